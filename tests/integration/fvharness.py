"""Integration-test harness: starts real PostgreSQL 15, Redis and the Fieldvault programs on free
loopback ports in a temporary directory, and gives the tests clients for all of them.

Everything started here is stopped here, by PID (SIGTERM, then SIGKILL after a deadline). Nothing
waits with a fixed sleep: readiness is always a polled condition with a bounded deadline.
"""
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

from openapi_check import hook_session

try:  # apt: python3-psycopg2 (tests/run.sh installs it); the psql CLI is the fallback
    import psycopg2
except ImportError:  # pragma: no cover - depends on the machine
    psycopg2 = None

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DIR = REPO / "deploy"
PG_BIN = Path(os.environ.get("FV_PG_BIN", "/usr/lib/postgresql/15/bin"))
IS_ROOT = os.geteuid() == 0

# Configuration keys the harness writes; env FV_* of the developer's shell must not leak into
# the programs, so children get an environment without any FV_ variable we did not set.
SANITIZER_PATTERNS = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: UndefinedBehaviorSanitizer|SUMMARY: AddressSanitizer"
)
# Redis's answer to a command the ACL of deploy/redis.conf does not allow: any program that logs
# it at teardown fails the run (the programs log the Redis error text).
REDIS_ACL_REFUSAL = re.compile(r"NOPERM")


class HarnessError(Exception):
    """A server could not be started or answered in a way the harness cannot work with."""


def build_dir():
    d = Path(os.environ.get("FV_BUILD_DIR") or "build")
    return d if d.is_absolute() else REPO / d


def binary(name):
    p = build_dir() / name
    if not (p.is_file() and os.access(p, os.X_OK)):
        raise HarnessError(f"{p} is not built (FV_BUILD_DIR={build_dir()})")
    return str(p)


def wait_until(predicate, timeout=30.0, interval=0.05, what=None):
    """Polls predicate() until it returns a true value (returned) or timeout seconds pass
    (TimeoutError naming `what` and the last exception). HarnessError aborts the wait at once."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except HarnessError:
            raise
        except Exception as e:  # noqa: BLE001 - a predicate may fail while a server comes up
            last_exc = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:g}s waiting for {what or getattr(predicate, '__name__', predicate)}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise TimeoutError(msg)
        time.sleep(interval)  # the polling period, not a synchronisation point
        interval = min(interval * 1.5, 0.5)


_used_ports = set()


def _port_share():
    """(this process's index, processes): under pytest-xdist (tests/run.sh runs two) each worker
    process runs its own cluster, and hands out only the ports p with (p // 2) % processes ==
    index, so two workers never pick the same free port in the moment before a server binds it
    (p // 2: Linux gives bind() to port 0 odd ports, connect() even ones)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    if not worker.startswith("gw") or count < 2:
        return 0, 1
    return int(worker[2:]) % count, count


def free_port():
    """A TCP port nobody listens on at 127.0.0.1 right now, never handed out twice per session
    (nor by two xdist workers of the same run: _port_share)."""
    index, count = _port_share()
    for _ in range(100 * count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if (port // 2) % count == index and port not in _used_ports:
            _used_ports.add(port)
            return port
    raise HarnessError("no free port")


def files_under(d):
    """Every file under directory d (a data directory, the Redis directory, the spool)."""
    return [p for p in pathlib.Path(d).rglob("*") if p.is_file()]


def grep(paths, needles):
    """The (file, needle) pairs where a needle (bytes) occurs: the proof that nothing is stored in
    clear. A file that vanishes while it is read (a server writing) is skipped."""
    hits = []
    for p in paths:
        try:
            b = p.read_bytes()
        except OSError:
            continue
        hits += [(str(p), n) for n in needles if n in b]
    return hits


def answers_sql(t):
    """The members of a jsonb_build_object for row alias t of responses, refused_submissions or
    quarantine: its answers, location and their "_fv" hint (migration 027), for psql_opened."""
    return (f"'data', {t}.data, 'location', {t}.location, '_fv', fv_answers_hint({t}.id, "
            f"fv_deployment_org({t}.deployment_id), {t}.answers_kv)")


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FV_")}
    # Without -c the programs would read /etc/fieldvault/fieldvault.conf if it exists: never in
    # a test. FV_CONFIG="" means no file (a test that wants one passes -c or FV_CONFIG).
    env["FV_CONFIG"] = ""
    env.setdefault("ASAN_OPTIONS", "abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return "\n".join(data.splitlines()[-lines:])


class Proc:
    """One program we started, in its own session (process group) so that children it forks
    can be found and stopped with it. Output (stdout and stderr) goes to log_path."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"--- harness: starting {' '.join(map(str, argv))}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=env or child_env(), cwd=cwd,
                start_new_session=True)
        self.pid = self.popen.pid
        self.returncode = None
        self.leftovers = False

    def alive(self):
        return self.popen.poll() is None

    def check_alive(self):
        if not self.alive():
            raise HarnessError(f"{self.name} (pid {self.pid}) exited with {self.popen.returncode}; "
                               f"log {self.log_path}:\n{tail(self.log_path)}")

    def children(self):
        """PIDs whose parent is this process (for fv-frontend: its children)."""
        out = []
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            # pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'
            fields = stat.rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[1]) == self.pid:
                out.append(int(d.name))
        return sorted(out)

    def _group_alive(self):
        try:
            os.killpg(self.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig, waits up to timeout, then SIGKILL. Afterwards, anything left in the process
        group (children that outlived their parent) is killed too and noted in self.leftovers."""
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with open(self.log_path, "ab") as log:
                    log.write(f"--- harness: no exit {timeout:g}s after signal {sig}, SIGKILL\n".encode())
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(timeout=30)
        self.returncode = self.popen.returncode
        if self._group_alive():
            self.leftovers = True
            with open(self.log_path, "ab") as log:
                log.write(b"--- harness: processes of the group outlived the leader, SIGKILL\n")
            try:
                deadline = time.monotonic() + 10
                while self._group_alive() and time.monotonic() < deadline:
                    os.killpg(self.pid, signal.SIGKILL)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
        return self.returncode

    def kill(self):
        """SIGKILL now (a crash), and wait for the exit."""
        return self.stop(sig=signal.SIGKILL, timeout=30)


class RedisError(Exception):
    pass


class RedisClient:
    """A minimal RESP2 client (no dependency): call it with the command words, get the reply as
    str / int / list / None; an error reply raises RedisError."""

    def __init__(self, port, host="127.0.0.1", timeout=30.0, auth=None):
        self.addr = (host, port)
        self.timeout = timeout
        self.auth = auth  # (user, password): sent as AUTH on every new connection
        self.sock = None
        self.f = None

    def _connect(self):
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.f = self.sock.makefile("rb")
        if self.auth:
            try:
                self("AUTH", *self.auth)
            except BaseException:
                self.close()
                raise

    def close(self):
        if self.sock:
            try:
                self.f.close()
                self.sock.close()
            finally:
                self.sock = self.f = None

    def __call__(self, *args):
        if self.sock is None:
            self._connect()
        parts = [b"*%d\r\n" % len(args)]
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
        try:
            self.sock.sendall(b"".join(parts))
            return self._read()
        except (OSError, EOFError):
            self.close()
            raise

    def _read(self):
        line = self.f.readline()
        if not line:
            raise EOFError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode("utf-8", "surrogateescape")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")


class Postgres:
    """A PostgreSQL 15 cluster of our own: initdb into base/pg/data, unix socket in base/pg/sock,
    TCP on 127.0.0.1:port, trust authentication. Run as the postgres user when we are root."""

    def __init__(self, base, port):
        self.dir = Path(base) / "pg"
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log_path = self.dir / "postgresql.log"
        self.port = port
        self.started = False
        self._conn = None

    def _as_pg(self, argv):
        return ["runuser", "-u", "postgres", "--"] + [str(a) for a in argv] if IS_ROOT else [str(a) for a in argv]

    def _run(self, argv, **kw):
        r = subprocess.run(self._as_pg(argv), capture_output=True, text=True, **kw)
        if r.returncode != 0:
            raise HarnessError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
                               f"\n{tail(self.log_path) if self.log_path.exists() else ''}")
        return r

    def start(self):
        self.dir.mkdir(parents=True)
        self.sock.mkdir()
        if IS_ROOT:
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
        self._run([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust",
                   "-E", "UTF8", "--locale=C", "--no-sync"])
        conf = "\n".join([
            "# written by tests/integration/fvharness.py",
            f"port = {self.port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.sock}'",
            "max_connections = 200",
            # No fsync (an OS crash is not what these tests are about: go fast), but commits do
            # reach the WAL before they return, so the tests that kill PostgreSQL (-m immediate)
            # lose nothing that was committed.
            "fsync = off",
            "synchronous_commit = on",
            "full_page_writes = off",
            "log_min_messages = warning",
            "log_lock_waits = on",
            "",
        ])
        conf_path = self.data / "postgresql.conf"
        if IS_ROOT:
            self._run(["sh", "-c", f"cat >> '{conf_path}'"], input=conf)
        else:
            with open(conf_path, "a") as f:
                f.write(conf)
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log_path, "-w", "-t", "60", "start"])
        self.started = True
        self.psql_cli("CREATE ROLE fieldvault LOGIN", db="postgres")
        self.psql_cli("CREATE DATABASE fieldvault OWNER fieldvault", db="postgres")

    def dsn(self, user="fieldvault", db="fieldvault"):
        return f"host={self.sock} port={self.port} dbname={db} user={user}"

    def psql_cli(self, sql, db="fieldvault", user="postgres"):
        r = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", str(self.sock),
                            "-p", str(self.port), "-U", user, "-d", db, "-c", sql],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"psql {sql!r}: {r.stderr}")
        return r.stdout

    def connect(self, user="postgres", db="fieldvault", autocommit=True):
        if psycopg2 is None:
            raise HarnessError("python3-psycopg2 is not installed")
        c = psycopg2.connect(host=str(self.sock), port=self.port, dbname=db, user=user)
        c.autocommit = autocommit
        return c

    def query(self, sql, *params):
        """Runs sql (with %s placeholders) as the superuser in autocommit; returns the rows (a list
        of tuples, empty for statements without a result)."""
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self.connect()
                with self._conn.cursor() as cur:
                    cur.execute(sql, params or None)
                    return cur.fetchall() if cur.description else []
            except psycopg2.OperationalError:
                if attempt == 2:
                    raise
                self._conn = None
            except psycopg2.DatabaseError as e:
                # A connection that a restart of PostgreSQL cut (a test stopped it) is sometimes
                # reported as a plain DatabaseError without SQLSTATE, and not marked closed: once
                # more on a new one too (the next module's fixtures met it and all failed). An
                # error of the statement itself has a SQLSTATE and is raised as it is.
                if attempt == 2 or e.pgcode is not None:
                    raise
                try:
                    self._conn.close()
                except Exception:  # noqa: BLE001 - it is gone either way
                    pass
                self._conn = None

    def stop(self):
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
        if not self.started:
            return
        self.started = False
        r = subprocess.run(self._as_pg([PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w",
                                        "-t", "30", "stop"]), capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(self._as_pg([PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate",
                                        "-w", "-t", "30", "stop"]), capture_output=True, text=True)


class Api:
    """An HTTPS client for the front end: one keep-alive Session, the test CA trusted, an optional
    bearer key. Every request has a timeout so that no test can hang. Every answer is checked
    against docs/openapi.yaml (openapi_check.py): one the document does not describe fails the
    test that got it."""

    def __init__(self, base_url, ca_cert, key=None):
        self.base = base_url.rstrip("/")
        self.s = hook_session(requests.Session())
        # Ignore the environment (REQUESTS_CA_BUNDLE would override `verify`, a proxy variable
        # would route loopback traffic elsewhere): the test CA and a direct connection only.
        self.s.trust_env = False
        self.ca = str(ca_cert)
        self.s.verify = self.ca
        self.key = key
        if key:
            self.s.headers["Authorization"] = f"Bearer {key}"

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 30)
        kw.setdefault("verify", self.ca)
        return self.s.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    def close(self):
        self.s.close()


def write_config(path, sections):
    """Writes a config file: sections is {section: {key: value}}."""
    with open(path, "w") as f:
        f.write("# written by tests/integration/fvharness.py\n")
        for section, keys in sections.items():
            f.write(f"\n[{section}]\n")
            for k, v in keys.items():
                f.write(f"{k} = {v}\n")


class Cluster:
    """PostgreSQL + Redis + certificate + config + the Fieldvault programs, all in one temp dir."""

    STREAM = "fv:submissions"
    DEAD = "fv:dead"
    GROUP = "workers"

    def __init__(self):
        base = os.environ.get("FV_TEST_TMPDIR") or None
        self.base = Path(tempfile.mkdtemp(prefix="fv-it-", dir=base))
        # PostgreSQL runs as `postgres` when we are root: it must be able to reach its directory.
        os.chmod(self.base, 0o755)
        if IS_ROOT and subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(self.base)]).returncode != 0:
            shutil.rmtree(self.base)
            self.base = Path(tempfile.mkdtemp(prefix="fv-it-", dir="/tmp"))
            os.chmod(self.base, 0o755)
        self.logs = self.base / "logs"
        self.logs.mkdir()
        self.pg = Postgres(self.base, free_port())
        self.redis_port = free_port()
        self.http_port = free_port()
        self.redis_proc = None
        self.frontend = None
        self.workers = {}  # consumer name -> Proc
        self.procs = []    # every Proc ever started, for log tails and the sanitizer scan
        self.cert = self.base / "tls" / "cert.pem"
        self.key = self.base / "tls" / "key.pem"
        self.conf = self.base / "fieldvault.conf"
        self._redis = None
        self.findings = []  # problems seen at teardown (sanitizer reports, stray processes)

    # ---------------------------------------------------------------- infrastructure
    def write_redis_acl(self, d):
        """The ACL of deploy/redis.conf (its `user` lines, each password replaced by a random
        one), so that every test runs the programs as the production `fieldvault` user and a
        command the ACL forgot fails the suite. The harness itself is `fvadmin`."""
        self.redis_passwords = {}
        lines = []
        for line in (DEPLOY_DIR / "redis.conf").read_text().splitlines():
            m = re.match(r"user (\S+) ", line)
            if not m:
                continue
            pw = self.redis_passwords.setdefault(m.group(1), os.urandom(16).hex())
            lines.append(re.sub(r" >\S+", f" >{pw}", line))
        missing = {"fieldvault", "fvadmin"} - set(self.redis_passwords)
        if missing:
            raise HarnessError(f"deploy/redis.conf defines no user {missing}")
        acl = d / "acl.conf"
        acl.write_text("\n".join(lines) + "\n")
        os.chmod(acl, 0o600)
        return acl

    def redis_argv(self):
        d = self.base / "redis"
        return ["redis-server", d / "acl.conf", "--port", self.redis_port, "--bind", "127.0.0.1",
                "--dir", d, "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
                "--save", ""]

    def redis_client(self, user="fvadmin"):
        """A new Redis connection authenticated as user (of deploy/redis.conf's ACL)."""
        return RedisClient(self.redis_port, auth=(user, self.redis_passwords[user]))

    def start_redis(self):
        d = self.base / "redis"
        d.mkdir()
        self.write_redis_acl(d)
        self.redis_proc = self._spawn("redis", self.redis_argv(), track=False)
        self._redis = self.redis_client()

        def pong():
            self.redis_proc.check_alive()
            try:
                return self.redis_cli("PING") == "PONG"
            except OSError:
                self._redis.close()
                return False
        wait_until(pong, 30, what="redis PING")

    def make_cert(self):
        self.cert.parent.mkdir()
        r = subprocess.run([
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "7",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            capture_output=True, text=True)
        if r.returncode != 0:
            raise HarnessError(f"openssl req failed: {r.stderr}")
        os.chmod(self.key, 0o600)
        self.master_key = self.base / "keys" / "master.key"
        self.master_key.parent.mkdir()
        self.master_key.write_text(os.urandom(32).hex() + "\n")
        os.chmod(self.master_key, 0o600)
        # /metrics on the API port needs this token (metrics_token_file).
        self.metrics_token_file = self.base / "keys" / "metrics.token"
        self.metrics_token = os.urandom(24).hex()
        fd = os.open(self.metrics_token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.metrics_token + "\n")

    def config_sections(self):
        return {
            "common": {
                "pg_dsn": self.pg.dsn(),
                "redis_host": "127.0.0.1",
                "redis_port": self.redis_port,
                "redis_user": "fieldvault",
                "redis_password": self.redis_passwords["fieldvault"],
                "stream": self.STREAM,
                "dead_stream": self.DEAD,
                "group": self.GROUP,
                "log_level": "info",
                "key_file": self.master_key,
            },
            "frontend": {
                "listen_addr": "127.0.0.1",
                "listen_port": self.http_port,
                "processes": 2,
                "tls_cert": self.cert,
                "tls_key": self.key,
                "max_body_bytes": 65536,
                "shutdown_timeout_s": 5,
                "spool_dir": self.base / "spool",
                # Existing tests submit thousands of times with one key: a limit they never reach
                # (tests of the limit itself start front ends with FV_API_KEY_RATE_LIMIT).
                "api_key_rate_limit": 1000000,
                "metrics_token_file": self.metrics_token_file,
                # Likewise for sessions, sign-ups from 127.0.0.1 and unverified submissions (their
                # own tests, test_throttle_abuse.py, start front ends with low limits).
                "session_rate_limit": 1000000,
                "signup_max_per_address": 0,
                "signup_max_per_child": 0,
                "unverified_max_per_user": 1000000,
                "unverified_max_bytes_per_user": 1000000000,
                # Every client of the tests is 127.0.0.1: the failed sign-ins that modules make on
                # purpose add up, per front-end child and in Redis, to the per-address limit within
                # login_window_s (the slower sanitizer build stayed in the window: 429 on later
                # modules' sign-ins). The limit's own tests set FV_LOGIN_MAX_FAILURES_ADDRESS.
                "login_max_failures_address": 0,
            },
            "worker": {
                "batch_size": 50,
                "block_ms": 200,
                "claim_idle_ms": 2000,
                "max_deliveries": 3,
            },
        }

    def start_infra(self):
        self.pg.start()
        self.start_redis()
        self.make_cert()
        write_config(self.conf, self.config_sections())

    # ---------------------------------------------------------------- programs
    def _spawn(self, name, argv, env=None, track=True):
        n = sum(1 for p in self.procs if p.name == name)
        log = self.logs / (f"{name}.log" if n == 0 else f"{name}.{n}.log")
        p = Proc(name, argv, log, env=env or child_env())
        self.procs.append(p)
        p.tracked = track
        return p

    def fvctl(self, *args, check=True, env=None):
        r = subprocess.run([binary("fvctl"), "-c", str(self.conf), *map(str, args)],
                           capture_output=True, text=True, env=env or child_env(), timeout=120)
        with open(self.logs / "fvctl.log", "a") as f:
            f.write(f"--- fvctl {' '.join(map(str, args))} -> {r.returncode}\n{r.stdout}{r.stderr}")
        if check and r.returncode != 0:
            raise HarnessError(f"fvctl {' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
        return r

    def migrate(self):
        self.fvctl("migrate")

    def create_admin(self, email="admin@example.org", name="Admin"):
        return self._key_from(self.fvctl("create-admin", "--email", email, "--name", name))

    def create_user(self, email, name):
        return self._key_from(self.fvctl("create-user", "--email", email, "--name", name))

    @staticmethod
    def _key_from(r):
        key = r.stdout.strip()
        if not key or len(key.split()) != 1:
            raise HarnessError(f"expected only an API key on stdout, got {r.stdout!r}")
        return key

    @property
    def base_url(self):
        return f"https://127.0.0.1:{self.http_port}"

    def api(self, key=None):
        return Api(self.base_url, self.cert, key)

    def healthy(self, port=None, proc=None):
        if proc is not None:
            proc.check_alive()
        try:
            with requests.Session() as s:
                s.trust_env = False
                r = s.get(f"https://127.0.0.1:{port or self.http_port}/healthz",
                          verify=str(self.cert), timeout=2)
            return r.status_code == 200
        except requests.RequestException:
            return False

    def start_frontend(self, name="frontend", timeout=60, **env):
        p = self._spawn(name, [binary("fv-frontend"), "-c", self.conf], env=child_env(**env))
        port = int(env.get("FV_LISTEN_PORT", self.http_port))
        wait_until(lambda: self.healthy(port, p), timeout, what=f"{name} /healthz on port {port}")
        if name == "frontend":
            self.frontend = p
        return p

    def start_worker(self, consumer, timeout=60, **env):
        """Starts fv-worker with FV_CONSUMER_NAME=consumer (+ env overrides) and waits until the
        consumer shows in the group (it has issued its first XREADGROUP)."""
        p = self._spawn(f"worker-{consumer}", [binary("fv-worker"), "-c", self.conf],
                        env=child_env(FV_CONSUMER_NAME=consumer, **env))
        p.consumer = consumer

        def registered():
            p.check_alive()
            names = [c[c.index("name") + 1] for c in self.redis_cli("XINFO", "CONSUMERS", self.STREAM, self.GROUP)]
            for n in names:
                if n == consumer or n.endswith(f":{p.pid}"):
                    p.consumer = n
                    return True
            return False
        wait_until(registered, timeout, what=f"worker {consumer} to join group {self.GROUP}")
        self.workers[p.consumer] = p
        return p

    def stop_worker(self, p, sig=signal.SIGTERM):
        rc = p.stop(sig=sig)
        self.workers = {k: v for k, v in self.workers.items() if v is not p}
        return rc

    def kill_worker(self, p):
        """SIGKILL: a crash, no cleanup in the worker."""
        return self.stop_worker(p, sig=signal.SIGKILL)

    def start_default_workers(self):
        return [self.start_worker("w1"), self.start_worker("w2")]

    def stop_all_workers(self):
        for p in list(self.workers.values()):
            self.stop_worker(p)

    # ---------------------------------------------------------------- clients
    def acl_refusals(self):
        """Commands Redis refused to the programs' `fieldvault` user since it started (its ACL
        LOG): each a dict with reason, context, object (the command or key) and count."""
        out = []
        for entry in self.redis_cli("ACL", "LOG") or []:
            e = dict(zip(entry[0::2], entry[1::2]))
            if e.get("username") == "fieldvault":
                out.append({k: e.get(k) for k in ("reason", "context", "object", "count")})
        return out

    @property
    def metrics_headers(self):
        """The Authorization header /metrics on the API port needs."""
        return {"Authorization": f"Bearer {self.metrics_token}"}

    def redis_cli(self, *args):
        return self._redis(*args)

    def psql(self, sql, *params):
        return self.pg.query(sql, *params)

    def psql_opened(self, sql, *params):
        """The rows of sql (one jsonb column each, whose responses carry migration 027's "_fv"
        hint: answers_sql) with their sealed answers opened, by `fvctl open-answers`."""
        rows = [r[0] for r in self.psql(sql, *params)]
        if not rows:
            return []
        r = subprocess.run([binary("fvctl"), "-c", str(self.conf), "open-answers"],
                           input="".join(json.dumps(x) + "\n" for x in rows), capture_output=True,
                           text=True, env=child_env(), timeout=120)
        if r.returncode != 0:
            raise HarnessError(f"fvctl open-answers exited {r.returncode}: {r.stderr}")
        return [json.loads(line) for line in r.stdout.splitlines() if line]

    def email_hmacs(self, mail):
        """The HMACs (hex) of mail under every key of the key file, as fv_pii_email_hmac makes them
        (migration 028: users.email_hmac, invitations.email_hmac)."""
        return email_hmacs(self.master_key, mail)

    def user_rows(self, mail, cols="id::text"):
        """The users rows whose email is mail (case-insensitively): by HMAC, or in clear on a row the
        workers' sweep has not sealed yet."""
        return self.psql(f"SELECT {cols} FROM users WHERE encode(email_hmac, 'hex') = ANY (%s) "
                         "OR lower(email) = lower(%s)", self.email_hmacs(mail), mail)

    def pending(self):
        """Entries delivered to a consumer and not acknowledged, from XPENDING's summary."""
        return self.redis_cli("XPENDING", self.STREAM, self.GROUP)[0]

    def pending_by_consumer(self):
        summary = self.redis_cli("XPENDING", self.STREAM, self.GROUP)
        return {name: int(n) for name, n in (summary[3] or [])}

    def queue_drained(self):
        return self.redis_cli("XLEN", self.STREAM) == 0 and self.pending() == 0

    def wait_drained(self, timeout=60):
        wait_until(self.queue_drained, timeout, what="the submissions stream to drain (XLEN 0, XPENDING 0)")

    # ---------------------------------------------------------------- teardown
    def log_tails(self, lines=40):
        out = []
        for p in self.procs:
            out.append((f"{p.name} (pid {p.pid}) {p.log_path}", tail(p.log_path, lines)))
        if self.pg.log_path.exists():
            out.append((f"postgresql {self.pg.log_path}", tail(self.pg.log_path, lines)))
        fvctl = self.logs / "fvctl.log"
        if fvctl.exists():
            out.append((f"fvctl {fvctl}", tail(fvctl, lines)))
        return out

    def scan_logs(self, pattern=None):
        """Sanitizer reports (or lines matching pattern) in any of our programs' logs: a list
        of (log, line)."""
        pattern = pattern or SANITIZER_PATTERNS
        found = []
        for p in self.procs:
            if p.name == "redis":
                continue
            try:
                with open(p.log_path, errors="replace") as f:
                    for line in f:
                        if pattern.search(line):
                            found.append((str(p.log_path), line.rstrip()))
            except OSError:
                pass
        return found

    def spawned_pids(self):
        """Front ends started by fv-balancer's spawner (deploy/spawn-frontend.sh) for this
        cluster's configuration that still run."""
        f = self.base / "spawned-frontends.pids"
        pids = []
        for line in (f.read_text().split() if f.exists() else []):
            try:
                cmd = Path(f"/proc/{int(line)}/cmdline").read_bytes()
            except (OSError, ValueError):
                continue
            if str(self.conf).encode() in cmd:  # ours, not a recycled pid
                pids.append(int(line))
        return pids

    def stop_spawned(self, timeout=30.0):
        """SIGTERM (then SIGKILL) every spawned front end of this cluster still running."""
        pids = self.spawned_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        def running(pid):
            try:
                return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
            except (OSError, IndexError):
                return False
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if running(p)]
            if pids:
                time.sleep(0.05)  # polling the processes' exit
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def stop_all(self):
        """Stops every program still running (workers first, then front ends, Redis, PostgreSQL)
        and records in self.findings what a clean run would not show: a program that died by
        itself, one that did not exit 0 on SIGTERM, stray children, sanitizer reports."""
        self.stop_spawned()
        ours = [p for p in self.procs if p.name != "redis"]
        order = [p for p in ours if p.name.startswith("worker")] + \
                [p for p in ours if not p.name.startswith("worker")]
        for p in order:
            if p.returncode is not None:  # stopped (or killed) on purpose by a test or fixture
                continue
            if not p.alive():
                self.findings.append(f"{p.name} (pid {p.pid}) died by itself with status "
                                     f"{p.popen.returncode}; log {p.log_path}")
                p.stop()
                continue
            rc = p.stop()
            if rc != 0:
                self.findings.append(f"{p.name} (pid {p.pid}) exited with status {rc} after SIGTERM "
                                     f"(a negative status is the signal that ended it)")
            if p.leftovers:
                self.findings.append(f"{p.name} (pid {p.pid}): processes of its group outlived it")
        if self.redis_proc and self.redis_proc.alive():
            try:
                for entry in self.acl_refusals():
                    self.findings.append(f"deploy/redis.conf's ACL refused the programs: {entry}")
            except (OSError, EOFError, RedisError) as e:
                self.findings.append(f"could not read Redis's ACL LOG: {e}")
        if self._redis:
            self._redis.close()
        if self.redis_proc:
            self.redis_proc.stop()
        self.pg.stop()
        for log, line in self.scan_logs():
            self.findings.append(f"sanitizer report in {log}: {line}")
        for log, line in self.scan_logs(REDIS_ACL_REFUSAL):
            self.findings.append(f"deploy/redis.conf's ACL refused a command in {log}: {line}")

    def cleanup(self):
        if os.environ.get("FV_KEEP_TMP") == "1":
            return
        shutil.rmtree(self.base, ignore_errors=True)


def child_of(resp):
    """Which front-end child answered: the request id is <random per-child prefix>-<counter>."""
    return resp.headers["X-Request-Id"].split("-")[0]


def pin_children(cluster, port, children=2, timeout=30):
    """Keep-alive sessions to the front end on port, one per child ({child pid: session}): a
    connection stays with the child that accepted it, so each child can be asked on purpose
    (send the bearer per request). The caller closes them."""
    pinned = {}

    def all_pinned():
        s = hook_session(requests.Session())
        s.trust_env = False
        s.verify = str(cluster.cert)
        pid = child_of(s.get(f"https://127.0.0.1:{port}/healthz", timeout=30))
        if pid in pinned:
            s.close()
        else:
            pinned[pid] = s
        return len(pinned) >= children
    try:
        wait_until(all_pinned, timeout, what=f"a connection to each child of port {port}")
    except BaseException:
        for s in pinned.values():
            s.close()
        raise
    return pinned


def hkdf_sha256(key, label, length=32):
    """HKDF-SHA256 without salt (fv_keys_derive)."""
    import hashlib
    import hmac
    prk = hmac.new(b"\0" * 32, key, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(prk, t + label.encode() + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:length]


def email_hmacs(key_file, mail):
    """HMAC-SHA256(HKDF(master, "fv-email-hmac"), ASCII-lower-cased mail) as hex, per key of key_file."""
    import hashlib
    import hmac
    lower = "".join(ch.lower() if "A" <= ch <= "Z" else ch for ch in mail).encode()
    keys = [ln.strip() for ln in Path(key_file).read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return [hmac.new(hkdf_sha256(bytes.fromhex(k), "fv-email-hmac"), lower, hashlib.sha256).hexdigest()
            for k in keys]


def new_id():
    return str(uuid.uuid4())


def error_body(r):
    """The `error` object of an error response, after checking the common shape."""
    assert r.headers.get("Content-Type", "").startswith("application/json"), \
        f"{r.status_code} with Content-Type {r.headers.get('Content-Type')!r}: {r.text[:300]!r}"
    body = r.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    err = body["error"]
    assert isinstance(err.get("code"), str) and re.fullmatch(r"[a-z][a-z0-9_]*", err["code"]), err
    assert isinstance(err.get("message"), str) and err["message"], err
    if "fields" in err:
        assert isinstance(err["fields"], dict), err
    # Every error names its request (the X-Request-Id); returned without it, so two answers that
    # must say the same (e.g. for a known and an unknown email) compare equal.
    err = dict(err)
    assert err.pop("request_id", None) == r.headers.get("X-Request-Id"), (err, r.headers.get("X-Request-Id"))
    return err


def parse_metrics(text):
    """Prometheus text format -> {name: [(labels dict, value)]}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$", line)
        assert m, f"not a Prometheus sample line: {line!r}"
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out.setdefault(m.group(1), []).append((labels, float(m.group(4))))
    return out


def metric_sum(metrics, name):
    return sum(v for _, v in metrics.get(name, []))


def json_lines(path):
    """The lines of a log that are JSON objects (sanitizer output and harness notes are not)."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def tls_connect(cluster, port=None, timeout=30):
    """A TLS socket to the front end, verified against the test certificate."""
    import ssl
    ctx = ssl.create_default_context(cafile=str(cluster.cert))
    raw = socket.create_connection(("127.0.0.1", port or cluster.http_port), timeout=timeout)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def read_status(sock):
    """Reads until the end of the response headers; returns (status code, header text)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    m = re.match(r"HTTP/1\.[01] (\d{3})", head)
    if not m:
        raise AssertionError(f"no HTTP status line in {data[:200]!r}")
    return int(m.group(1)), head


# ---------------------------------------------------------------- fv-balancer (tests/integration/test_balancer.py)
class Balancer:
    """An fv-balancer we started: its Proc, config file, proxy and admin ports, and clients."""

    def __init__(self, cluster, proc, conf, port, admin_port, sections):
        self.cluster = cluster
        self.proc = proc
        self.conf = Path(conf)
        self.port = port
        self.admin_port = admin_port
        self.sections = sections
        self.admin = requests.Session()
        self.admin.trust_env = False
        token_file = sections.get("balancer", {}).get("admin_token_file")
        self.admin_token = Path(token_file).read_text().strip() if token_file else None

    @property
    def pid(self):
        return self.proc.pid

    def admin_request(self, method, path, token=True, **kw):
        """A request to the admin listener, with the admin token unless token is False (or a
        string to send instead)."""
        kw.setdefault("timeout", 10)
        headers = dict(kw.pop("headers", None) or {})
        bearer = self.admin_token if token is True else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        return self.admin.request(method, f"http://127.0.0.1:{self.admin_port}{path}",
                                  headers=headers, **kw)

    def status(self):
        self.proc.check_alive()
        r = self.admin_request("GET", "/status")
        assert r.status_code == 200, r.text
        return r.json()

    def metrics(self):
        r = self.admin_request("GET", "/metrics")
        assert r.status_code == 200, r.text
        return parse_metrics(r.text)

    def backend(self, addr):
        for b in self.status()["backends"]:
            if b["addr"] == addr and b["state"] != "draining":
                return b
        return None

    def state(self, addr):
        b = self.backend(addr)
        return b["state"] if b else None

    def wait_state(self, addr, states, timeout=30):
        states = (states,) if isinstance(states, str) else tuple(states)
        return wait_until(lambda: self.state(addr) in states, timeout,
                          what=f"backend {addr} to be {'/'.join(states)} in the balancer")

    def api(self, key=None):
        return Api(f"https://127.0.0.1:{self.port}", self.cluster.cert, key)

    def log_messages(self):
        return [line.get("msg", "") for line in json_lines(self.proc.log_path)]

    def rewrite(self, **keys):
        """Rewrites the balancer's config file with [balancer] keys changed (for SIGHUP)."""
        self.sections["balancer"].update(keys)
        write_config(self.conf, self.sections)

    def reload(self, **keys):
        self.rewrite(**keys)
        os.kill(self.pid, signal.SIGHUP)

    def fd_count(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def stop(self, sig=signal.SIGTERM, timeout=30):
        self.admin.close()
        return self.proc.stop(sig=sig, timeout=timeout)


def balancer_admin_token_file(cluster):
    """The cluster's balancer admin token file (mode 0600), made on first use."""
    f = cluster.base / "lb-admin.token"
    if not f.exists():
        fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(os.urandom(32).hex() + "\n")
    return f


def balancer_sections(cluster, port, admin_port, **keys):
    """The cluster's config with a [balancer] section for tests: loopback, fast checks, the
    front ends' certificates verified against the harness's (self-signed) certificate, and an
    admin token."""
    sections = cluster.config_sections()
    bal = {
        "check_ca_file": cluster.cert,
        "admin_token_file": balancer_admin_token_file(cluster),
        "proxy_addr": "127.0.0.1",
        "proxy_port": port,
        "admin_addr": "127.0.0.1",
        "admin_port": admin_port,
        "backends": f"127.0.0.1:{cluster.http_port}",
        "check_interval_ms": 200,
        "check_timeout_ms": 2000,
        "rise": 2,
        "fall": 2,
        "connect_timeout_ms": 1000,
        "min_backends": 0,
        "max_backends": 8,
        "drain_timeout_s": 10,
    }
    bal.update(keys)
    sections["balancer"] = bal
    return sections


def start_balancer(cluster, name="balancer", timeout=30, env=None, **keys):
    """Starts fv-balancer with its own config file (the cluster's + [balancer] keys) and waits
    until its admin listener answers. The Proc is tracked: stop_all stops it and expects exit 0."""
    port, admin_port = free_port(), free_port()
    sections = balancer_sections(cluster, port, admin_port, **keys)
    n = sum(1 for p in cluster.procs if p.name == name)
    conf = cluster.base / (f"{name}.conf" if n == 0 else f"{name}.{n}.conf")
    write_config(conf, sections)
    p = cluster._spawn(name, [binary("fv-balancer"), "-c", conf], env=child_env(**(env or {})))
    b = Balancer(cluster, p, conf, port, admin_port, sections)

    def up():
        p.check_alive()
        try:
            return b.admin_request("GET", "/status", timeout=2).status_code == 200
        except requests.RequestException:
            return False
    wait_until(up, timeout, what=f"{name} admin /status on port {admin_port}")
    return b


def pid_running(pid):
    """True while pid exists and is not a zombie (for processes that are not our children)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, timeout=15.0):
    """Stops a process we did not fork ourselves (e.g. a front end the balancer spawned): SIGTERM,
    then SIGKILL after timeout. Returns True if it went away after SIGTERM."""
    if not pid_running(pid):
        return True
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    try:
        wait_until(lambda: not pid_running(pid), timeout, what=f"pid {pid} to exit")
        return True
    except TimeoutError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_until(lambda: not pid_running(pid), 10, what=f"pid {pid} to die")
        return False
