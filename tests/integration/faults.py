"""Fault injection on a harness Cluster: Redis killed and restarted on its AOF, PostgreSQL stopped
with -m immediate or hung with SIGSTOP, and health probes. Shared by the degraded-mode tests and
tests/chaos/."""
import os
import signal
import subprocess

import requests

from fvharness import PG_BIN, pin_children, wait_until
from openapi_check import hook_session


def kill_redis(c):
    """SIGKILL: no shutdown save; what survives is the AOF (appendfsync always)."""
    c.redis_proc.kill()
    c._redis.close()


def restart_redis(c):
    c.redis_proc = c._spawn("redis", c.redis_argv(), track=False)

    def pong():
        c.redis_proc.check_alive()
        try:
            return c.redis_cli("PING") == "PONG"
        except Exception:
            c._redis.close()
            return False
    wait_until(pong, 30, what="redis PING after the restart")


def pg_ctl(c, *args):
    argv = [str(PG_BIN / "pg_ctl"), "-D", str(c.pg.data), *map(str, args)]
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--"] + argv
    subprocess.run(argv, check=True, capture_output=True, timeout=120)


def pg_running(c):
    return (c.pg.data / "postmaster.pid").exists()


def pg_stop_immediate(c):
    pg_ctl(c, "-m", "immediate", "-w", "stop")


def frontend_db_up(c):
    """Waits until every child of the session's front end (c.frontend, when it runs) has its
    PostgreSQL connections back (after pg_start or pg_accept): otherwise the next test, often of
    another module, met a child still reconnecting (503 db_unavailable)."""
    fe = getattr(c, "frontend", None)
    if fe is None or not fe.alive():
        return
    sessions = pin_children(c, c.http_port, children=len(fe.children()) or 1, timeout=60)
    try:
        for s in sessions.values():
            url = f"https://127.0.0.1:{c.http_port}/readyz"
            wait_until(lambda: s.get(url, timeout=10).json().get("db") == "up", 60,
                       what="every child of the session's front end back on PostgreSQL")
    finally:
        for s in sessions.values():
            s.close()


def pg_start(c):
    """Starts PostgreSQL again (if it is down), then waits until every child of the session's
    front end (c.frontend, when it runs) has its connections back: otherwise the next test, often
    of another module, met a child still reconnecting (503 db_unavailable)."""
    if not pg_running(c):
        pg_ctl(c, "-l", c.pg.log_path, "-w", "start")
    frontend_db_up(c)


def postgres_pids(c):
    """The postmaster and every process it forked."""
    master = int((c.pg.data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def pg_hang(c):
    """Stops every PostgreSQL process: connections stay open and nothing answers. Returns the
    pids for pg_resume."""
    pids = postgres_pids(c)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    return pids


def pg_resume(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def readyz(c, port=None):
    with hook_session(requests.Session()) as s:
        s.trust_env = False
        return s.get(f"https://127.0.0.1:{port or c.http_port}/readyz", verify=str(c.cert), timeout=10)


def pg_refuse(c):
    """PostgreSQL up but refusing: the database stops accepting connections (superusers too) and
    every open session to it is terminated. Undone by pg_accept."""
    c.pg.psql_cli("ALTER DATABASE fieldvault ALLOW_CONNECTIONS false", db="postgres")
    c.pg.psql_cli("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                  "WHERE datname = 'fieldvault' AND pid <> pg_backend_pid()", db="postgres")


def pg_accept(c):
    c.pg.psql_cli("ALTER DATABASE fieldvault ALLOW_CONNECTIONS true", db="postgres")
    frontend_db_up(c)
