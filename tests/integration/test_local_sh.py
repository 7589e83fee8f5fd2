"""deploy/local.sh runs the whole design and heals itself: two local clusters side by side (one
with every port knob set, one with FV_PORT alone, its other ports derived), submissions through
the balancer stored in PostgreSQL, a worker and a front end killed with SIGKILL and restarted
while submissions keep being accepted, `fvctl status` showing every part, WAL archived, and
SIGTERM stopping everything local.sh started.

Real binaries, a temporary FV_LOCAL_DIR per cluster, ports from free_port() (the harness's own
picker, so nothing collides with the session cluster). Bounded: every wait polls a condition
with a deadline."""
import os
import re
import signal
import subprocess
import tempfile
import threading
import shutil
from pathlib import Path

import psycopg2
import requests

from fvharness import REPO, SANITIZER_PATTERNS, build_dir, child_env, free_port, pid_running, tail, wait_until

START_TIMEOUT = 120  # two clusters start at once on a shared 2-core machine
ACTION_TIMEOUT = 60


class LocalCluster:
    """One deploy/local.sh in its own session, its output in a file."""

    def __init__(self, name, **env):
        parent = os.environ.get("FV_TEST_TMPDIR") or None
        self.dir = Path(tempfile.mkdtemp(prefix=f"fv-local-{name}-", dir=parent))
        # PostgreSQL runs as `postgres` when we are root: it must reach the data directory.
        os.chmod(self.dir, 0o755)
        self.local = self.dir / "local"
        self.out_path = self.dir / "local.sh.out"
        self.env = child_env(FV_LOCAL_DIR=self.local, FV_BUILD_DIR=build_dir(), **env)
        self.port = int(env["FV_PORT"])
        self.out = open(self.out_path, "wb")
        self.proc = subprocess.Popen([str(REPO / "deploy" / "local.sh"), "--no-install", "--no-build"],
                                     stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=self.env, start_new_session=True)
        self.base = f"https://127.0.0.1:{self.port}"
        self.cert = str(self.local / "tls" / "cert.pem")
        self.conf = str(self.local / "fieldvault.conf")

    def output(self):
        return self.out_path.read_text(errors="replace")

    def check_alive(self):
        assert self.proc.poll() is None, f"local.sh exited {self.proc.returncode}:\n{self.output()[-6000:]}"

    def ready(self):
        self.check_alive()
        return "local.sh: ready: " in self.output()

    def setting(self, section, key):
        """A value of the fieldvault.conf local.sh wrote."""
        cur = None
        for line in Path(self.conf).read_text().splitlines():
            m = re.match(r"\[(\w+)\]", line)
            if m:
                cur = m.group(1)
            elif cur == section and line.startswith(key + " ="):
                return line.split("=", 1)[1].strip()
        raise KeyError(key)

    @property
    def admin_port(self):
        return int(self.setting("balancer", "admin_port"))

    @property
    def pg_port(self):
        return int(re.search(r"port=(\d+)", self.setting("common", "pg_dsn")).group(1))

    @property
    def redis_port(self):
        return int(self.setting("common", "redis_port"))

    def lb_status(self):
        with requests.Session() as s:
            s.trust_env = False
            return s.get(f"http://127.0.0.1:{self.admin_port}/status", timeout=5).json()

    def session(self, key=None):
        s = requests.Session()
        s.trust_env = False
        s.verify = self.cert
        if key:
            s.headers["Authorization"] = f"Bearer {key}"
        return s

    def pg(self):
        return psycopg2.connect(host="127.0.0.1", port=self.pg_port, user="postgres", dbname="fieldvault",
                                connect_timeout=5)

    def fvctl_status(self):
        env = {k: v for k, v in self.env.items() if k not in ("FV_LOCAL_DIR", "FV_BUILD_DIR", "FV_PORT",
                                                            "FV_PG_PORT", "FV_REDIS_PORT",
                                                            "FV_LB_ADMIN_PORT", "FV_FE_PORT_BASE")}
        return subprocess.run([str(build_dir() / "fvctl"), "-c", self.conf, "status"], capture_output=True,
                              text=True, env=env, timeout=30)

    def our_processes(self):
        """Every live process whose command line names this cluster's directory (PostgreSQL,
        Redis, the balancer, front ends, workers) or is local.sh itself."""
        found = []
        needle = str(self.local).encode()
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                cmd = (p / "cmdline").read_bytes()
            except OSError:
                continue
            if (needle in cmd or int(p.name) == self.proc.pid) and pid_running(int(p.name)):
                found.append((int(p.name), cmd.replace(b"\0", b" ").decode(errors="replace")))
        return found

    def stop(self, timeout=ACTION_TIMEOUT):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError(f"local.sh did not stop on SIGTERM in {timeout}s:\n{self.output()[-4000:]}")
        self.out.close()
        return self.proc.returncode

    def kill_leftovers(self):
        """After a failed test: stop whatever is left, by pid."""
        for pid, _ in self.our_processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cleanup(self):
        if not os.environ.get("FV_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)


def make_world(c):
    """An org, a survey and a deployment with the admin as enumerator; returns (key, deployment id)."""
    key = (c.local / "admin.key").read_text().strip()
    with c.session(key) as s:
        me = s.get(f"{c.base}/v1/me", timeout=30).json()["id"]
        org = s.post(f"{c.base}/v1/orgs", json={"name": "Local"}, timeout=30).json()["id"]
        survey = s.post(f"{c.base}/v1/surveys", timeout=30, json={
            "org_id": org, "name": "Households", "definition": {"questions": [
                {"name": "household", "type": "text", "label": "Household", "required": True}]}}).json()["id"]
        r = s.post(f"{c.base}/v1/surveys/{survey}/deployments", timeout=30, json={
            "name": "Round 1", "roles": {"enumerators": [{"type": "user", "id": me}]}})
        assert r.status_code == 201, r.text
        return key, r.json()["id"]


def submit(c, key, dep, n, tag):
    """n submissions, each on a new connection (so none is pinned to a front end that was
    killed): every one must be accepted."""
    for i in range(n):
        with c.session(key) as s:
            r = s.post(f"{c.base}/v1/deployments/{dep}/responses", timeout=30,
                       headers={"Connection": "close"}, json={"data": {"household": f"{tag}-{i}"}})
        assert r.status_code in (201, 202), f"submission {tag}-{i}: {r.status_code} {r.text}"


def stored(c, dep):
    with c.pg() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM responses WHERE deployment_id = %s", (dep,))
        n = cur.fetchone()[0]
    conn.close()
    return n


def worker_pids(c):
    pids = []
    for pid, cmd in c.our_processes():
        if "/fv-worker -c " in cmd:
            pids.append(pid)
    return sorted(pids)


def test_two_local_clusters_heal_and_stop(tmp_path):
    # A: every port knob set (the env knobs still work); B: FV_PORT alone, the rest derived.
    a = LocalCluster("a", FV_PORT=free_port(), FV_PG_PORT=free_port(), FV_REDIS_PORT=free_port(),
                     FV_LB_ADMIN_PORT=free_port(), FV_FE_PORT_BASE=free_port())
    b = LocalCluster("b", FV_PORT=free_port())
    clusters = [a, b]
    ok = False
    try:
        for c in clusters:
            wait_until(c.ready, START_TIMEOUT, what=f"local.sh on {c.port} to be ready")
        assert a.admin_port == int(a.env["FV_LB_ADMIN_PORT"]) and a.pg_port == int(a.env["FV_PG_PORT"])
        assert a.redis_port == int(a.env["FV_REDIS_PORT"])
        # B's ports follow from its FV_PORT, or the next free one, and are none of A's
        ports_a = {a.port, a.admin_port, a.pg_port, a.redis_port}
        ports_b = {b.port, b.admin_port, b.pg_port, b.redis_port}
        assert len(ports_b) == 4 and not ports_a & ports_b
        out = a.output()
        for what in (f"https://127.0.0.1:{a.port}", f"127.0.0.1:{a.pg_port}", f"127.0.0.1:{a.redis_port}",
                     f"http://127.0.0.1:{a.admin_port}/status", "fvctl -c", " status"):
            assert what in out, f"local.sh does not say {what!r}"

        for c in clusters:
            st = c.lb_status()
            fes = [x for x in st["backends"] if x["source"] == "spawned" and x["state"] == "up"]
            assert len(fes) >= 2, st
            assert st["listen"] == f"127.0.0.1:{c.port}"
        # the two clusters' front ends are distinct processes on distinct ports
        fe_a = {x["addr"] for x in a.lb_status()["backends"]}
        fe_b = {x["addr"] for x in b.lb_status()["backends"]}
        assert not fe_a & fe_b

        worlds = {}
        for c in clusters:
            worlds[c] = make_world(c)
        key, dep = worlds[a]

        # B takes submissions the whole time A is being broken
        b_errors = []
        b_done = threading.Event()

        def load_b():
            try:
                submit(b, *worlds[b], 20, "b")
            except BaseException as e:  # noqa: BLE001 - reported by the main thread
                b_errors.append(e)
            finally:
                b_done.set()
        t = threading.Thread(target=load_b, daemon=True)
        t.start()

        submit(a, key, dep, 10, "before")
        wait_until(lambda: stored(a, dep) == 10, ACTION_TIMEOUT, what="the first 10 to be stored")

        # SIGKILL a worker and a front end
        workers = worker_pids(a)
        assert len(workers) == 2, a.our_processes()
        victim_fe = next(x for x in a.lb_status()["backends"] if x["state"] == "up" and x["pid"])
        os.kill(workers[0], signal.SIGKILL)
        os.kill(victim_fe["pid"], signal.SIGKILL)
        # the balancer routes around the dead one at once: every submission still accepted
        submit(a, key, dep, 20, "during")

        def fe_restarted():
            x = next(x for x in a.lb_status()["backends"] if x["addr"] == victim_fe["addr"])
            return x["state"] == "up" and x["restarts"] >= 1 and x["pid"] not in (None, victim_fe["pid"])
        wait_until(fe_restarted, ACTION_TIMEOUT, what="the killed front end to be restarted and back up")
        wait_until(lambda: len(worker_pids(a)) == 2 and workers[0] not in worker_pids(a), ACTION_TIMEOUT,
                   what="the killed worker to be restarted")
        a.check_alive()  # the cluster did not stop
        out = a.output()
        assert re.search(rf"worker \d \(pid {workers[0]}\) killed by signal 9: restarting it in \d+s", out), out[-3000:]
        wait_until(lambda: re.search(rf"balancer: spawned front end on {re.escape(victim_fe['addr'])} "
                                     rf"\(pid {victim_fe['pid']}\) killed by signal 9: restarting it",
                                     a.output()), 10, what="local.sh to say the front end restarts")
        assert len([x for x in a.lb_status()["backends"] if x["state"] != "draining"]) == 2, \
            "a replacement was spawned besides the restart"

        submit(a, key, dep, 10, "after")
        wait_until(lambda: stored(a, dep) == 40, ACTION_TIMEOUT, what="all 40 submissions to be stored")

        # WAL is archived into FV_LOCAL_DIR
        with a.pg() as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_switch_wal()")
        conn.close()
        archive = a.local / "pg" / "wal-archive"
        wait_until(lambda: any(re.fullmatch(r"[0-9A-F]{24}", p.name) for p in archive.iterdir()),
                   ACTION_TIMEOUT, what="a WAL segment in the archive")

        def status_all_ok():
            r = a.fvctl_status()
            return r.returncode == 0 and r
        r = wait_until(status_all_ok, ACTION_TIMEOUT, what="fvctl status to exit 0")
        lines = r.stdout.splitlines()
        parts = [l.split()[0] for l in lines[1:]]
        for part in ("balancer", "redis", "worker", "queue", "dead", "postgresql", "spool"):
            assert part in parts, r.stdout
        assert sum(1 for l in lines if l.startswith("front end") and " up " in l) == 2, r.stdout
        assert sum(1 for l in lines if l.startswith("worker") and " ok " in l) == 2, r.stdout
        assert re.search(r"restarted 1 times", r.stdout), r.stdout
        assert re.search(r"WAL archiving on: [1-9]\d* archived", r.stdout), r.stdout
        assert re.search(r"^queue .* \d+ entries, 0 pending", r.stdout, re.M), r.stdout
        assert f"127.0.0.1:{a.admin_port}" in r.stdout and str(a.local / "spool") in r.stdout

        # a part that is down shows, and fails the exit status
        down = subprocess.run([str(build_dir() / "fvctl"), "-c", a.conf, "status",
                               "--balancer", f"127.0.0.1:{free_port()}"], capture_output=True, text=True,
                              env=child_env(), timeout=30)
        assert down.returncode == 1 and re.search(r"^balancer .* DOWN ", down.stdout, re.M), down.stdout
        # worst answers: not an address, something that is not HTTP (PostgreSQL's port), HTTP that
        # is not the balancer's JSON (a front end's port over plain HTTP answers nothing usable)
        for bad, why in (("not-an-address", "is not IP:PORT"), ("127.0.0.1:99999", "is not IP:PORT"),
                         (f"127.0.0.1:{a.pg_port}", ""), (f"127.0.0.1:{a.redis_port}", "")):
            r = subprocess.run([str(build_dir() / "fvctl"), "-c", a.conf, "status", "--balancer", bad],
                               capture_output=True, text=True, env=child_env(), timeout=30)
            assert r.returncode == 1, (bad, r.returncode, r.stdout, r.stderr)
            assert re.search(rf"^balancer +{re.escape(bad)} +DOWN +.*{re.escape(why)}", r.stdout, re.M), r.stdout
            assert re.search(r"^postgresql .* ok ", r.stdout, re.M), r.stdout  # the rest still shown
        r = subprocess.run([str(build_dir() / "fvctl"), "-c", a.conf, "status", "extra"], capture_output=True,
                           text=True, env=child_env(), timeout=30)
        assert r.returncode == 2 and "unexpected argument" in r.stderr, r.stderr

        assert b_done.wait(ACTION_TIMEOUT), "B's submissions did not finish"
        assert not b_errors, b_errors
        wait_until(lambda: stored(b, worlds[b][1]) == 20, ACTION_TIMEOUT, what="B's 20 submissions stored")
        assert stored(a, worlds[b][1]) == 0  # separate databases

        # SIGTERM stops everything each one started, and only that
        for c in clusters:
            c.check_alive()
            rc = c.stop()
            assert rc == 0 and "stopped; data kept in" in c.output(), (rc, c.output()[-3000:])
        for c in clusters:
            left = c.our_processes()
            assert not left, f"left running after SIGTERM: {left}"
            # the sanitizer build: no report in any program's log
            for log in list((c.local / "logs").glob("*.log")) + list(c.local.glob("frontend-*.log")):
                bad = [l for l in log.read_text(errors="replace").splitlines() if SANITIZER_PATTERNS.search(l)]
                assert not bad, f"sanitizer report in {log}: {bad[:3]}"
        ok = True
    finally:
        for c in clusters:
            if c.proc.poll() is None:
                try:
                    c.stop()
                except AssertionError:
                    pass
            if not ok:
                print(f"--- local.sh {c.port} output:\n{c.output()[-6000:]}")
                print(f"--- balancer log:\n{tail(c.local / 'logs' / 'balancer.log', 30)}")
            c.kill_leftovers()
            c.cleanup()
