#!/usr/bin/env python3
"""Fault-injection runner: the whole cluster (fv-balancer, two fv-frontend instances, two
fv-workers, PostgreSQL, Redis with AOF always) under load from fv-bench through the balancer,
which records every submission id it got a 202 for. Each scenario breaks one thing while the load
runs, heals it, waits for the queue and the spools to drain, then checks PostgreSQL: every
acknowledged id stored exactly once. It prints one line per scenario,

    scenario=<name> acked=N stored=N lost=0 duplicates=0 errors=E

and exits non-zero if anything was lost. Every scenario is bounded in time and stops itself.

    tests/chaos/chaos.py                     # the short scenarios (what tests/run.sh runs)
    tests/chaos/chaos.py worker-kill pg-hang # some of them
    tests/chaos/chaos.py --mixed 120         # faults at random for 120 s (on demand)

FV_BUILD_DIR picks the binaries (default build/); FV_KEEP_TMP=1 keeps the cluster's directory.
"""
import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import faults  # noqa: E402
import requests  # noqa: E402
from fvharness import Cluster, binary, child_env, free_port, new_id, wait_until, write_config  # noqa: E402

DEFINITION = {"questions": [
    {"name": "household", "type": "text", "required": True},
    {"name": "members", "type": "integer", "constraint": {"min": 1, "max": 50}},
]}


class ChaosCluster:
    """Starts and holds everything; scenarios act on it."""

    def __init__(self, connections=16):
        self.connections = connections
        self.c = Cluster()
        c = self.c
        c.start_infra()
        # The harness runs PostgreSQL without fsync for speed; crashing it on purpose needs the
        # real thing, or commits acknowledged before the crash vanish with it.
        for setting in ("fsync = on", "synchronous_commit = on", "full_page_writes = on"):
            c.psql(f"ALTER SYSTEM SET {setting}")
        c.psql("SELECT pg_reload_conf()")
        c.migrate()
        self.fe_ports = [c.http_port, free_port()]
        self.frontends = {}
        for port in self.fe_ports:
            self.start_frontend(port)
        c.start_default_workers()
        self.admin_key = c.create_admin("chaos-admin@example.org", "Chaos Admin")
        self.enum_key = c.create_user("chaos-enumerator@example.org", "Chaos Enumerator")
        admin, enum = c.api(self.admin_key), c.api(self.enum_key)
        enum_id = enum.get("/v1/me").json()["id"]
        org = admin.post("/v1/orgs", json={"name": "Chaos"}).json()
        # Rights need a membership of the org (issue 10): the enumerator is a plain member.
        c.psql("INSERT INTO memberships (id, org_id, user_id, role, branch_id) "
               "SELECT %s, id, %s, 'member', root_branch_id FROM orgs WHERE id = %s",
               new_id(), enum_id, org["id"])
        survey = admin.post("/v1/surveys", json={"org_id": org["id"], "name": "Chaos",
                                                 "definition": DEFINITION}).json()
        dep = admin.post(f"/v1/surveys/{survey['id']}/deployments", json={
            "name": "Chaos", "roles": {"enumerators": [{"type": "user", "id": enum_id}]}}).json()
        self.deployment = dep["id"]
        self.start_balancer()

    def start_frontend(self, port):
        name = "frontend" if port == self.c.http_port else f"frontend-{port}"
        # One API key drives thousands of requests a second: no per-key rate limit here.
        self.frontends[port] = self.c.start_frontend(name=name, FV_LISTEN_PORT=port,
                                                     FV_API_KEY_RATE_LIMIT=0)

    def start_balancer(self):
        self.lb_port, self.lb_admin = free_port(), free_port()
        conf = self.c.base / "balancer.conf"
        sections = self.c.config_sections()
        sections["balancer"] = {
            "proxy_addr": "127.0.0.1", "proxy_port": self.lb_port,
            "admin_addr": "127.0.0.1", "admin_port": self.lb_admin,
            "backends": ",".join(f"127.0.0.1:{p}" for p in self.fe_ports),
            "check_interval_ms": 300, "check_timeout_ms": 1000, "rise": 2, "fall": 2,
            "connect_timeout_ms": 500, "min_backends": 1, "max_backends": 4,
            "check_ca_file": self.c.cert,  # the checks verify the front ends' certificate
        }
        write_config(conf, sections)
        self.balancer = self.c._spawn("balancer", [binary("fv-balancer"), "-c", conf])

        def up():
            self.balancer.check_alive()
            try:
                return faults.readyz(self.c, self.lb_port).status_code == 200
            except Exception:
                return False
        wait_until(up, 60, what="the balancer to pass requests")

    # ------------------------------------------------------------------ load and checks
    def start_load(self, seconds, ids_file):
        env = child_env(FV_BENCH_KEY=self.enum_key)
        log = open(self.c.logs / f"bench-{ids_file.stem}.log", "w")
        return subprocess.Popen([
            binary("fv-bench"), "--url", f"https://127.0.0.1:{self.lb_port}", "--deployment",
            self.deployment, "--connections", str(self.connections), "--duration", str(seconds),
            "--max-time", str(seconds + 90), "--timeout", "15", "--cacert", str(self.c.cert),
            "--ids-out", str(ids_file), "--json", "--data", '{"household":"chaos","members":3}'], stdout=log, stderr=subprocess.STDOUT, env=env)

    def accepted_now(self):
        """Submissions the front ends have acknowledged so far (their /metrics; fv-bench writes
        its ids file only when it ends, so that cannot tell whether load is flowing)."""
        total = 0
        for port in self.fe_ports:
            try:
                with requests.Session() as s:
                    s.trust_env = False
                    text = s.get(f"https://127.0.0.1:{port}/metrics", verify=str(self.c.cert), timeout=5,
                                 headers=self.c.metrics_headers).text
            except Exception:
                continue
            for line in text.splitlines():
                if line.startswith("fv_submissions_accepted_total "):
                    total += int(line.split()[1])
        return total

    def wait_load_flowing(self, bench, more=500):
        start = self.accepted_now()

        def flowing():
            if bench.poll() is not None:
                raise RuntimeError(f"fv-bench ended early (exit {bench.returncode}); see its log")
            return self.accepted_now() >= start + more
        wait_until(flowing, 60, interval=0.1, what="load to be flowing")

    def wait_recovered(self, timeout=180):
        """Every front end ready with an empty spool, the stream drained."""
        def ready():
            for port in self.fe_ports:
                try:
                    body = faults.readyz(self.c, port).json()
                except Exception:
                    return False
                if body.get("status") != "ready" or body.get("spool_pending"):
                    return False
            return self.c.queue_drained()
        wait_until(ready, timeout, interval=0.25, what="the cluster to recover and drain")

    def count(self, ids):
        rows = self.c.psql("SELECT count(*), count(DISTINCT id) FROM responses WHERE id = ANY(%s::uuid[])", ids)
        return rows[0]

    # ------------------------------------------------------------------ faults
    def kill_worker(self):
        victim = next(iter(self.c.workers.values()))
        self.c.kill_worker(victim)
        return lambda: self.c.start_worker(f"w-{int(time.monotonic() * 1000)}")

    def kill_frontend_child(self):
        proc = self.frontends[self.fe_ports[0]]
        children = proc.children()
        if children:
            os.kill(children[0], signal.SIGKILL)
        return lambda: wait_until(lambda: len(proc.children()) == 2, 30, what="the child to be replaced")

    def kill_frontend_instance(self):
        """SIGKILL to the master and its children at once (a host dying): no drain, requests
        in flight on it are cut off (never acknowledged), its spool stays on disk."""
        port = self.fe_ports[1]
        proc = self.frontends[port]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.kill()  # reaps it and records that it was killed on purpose
        return lambda: self.start_frontend(port)

    def stop_pg(self):
        faults.pg_stop_immediate(self.c)
        return lambda: faults.pg_start(self.c)

    def hang_pg(self):
        pids = faults.pg_hang(self.c)
        return lambda: faults.pg_resume(pids)

    def kill_redis(self):
        faults.kill_redis(self.c)
        return lambda: faults.restart_redis(self.c)

    def stop(self):
        """Stops everything; returns what a clean run would not show (crashes, sanitizer
        reports, stray processes)."""
        self.c.stop_all()
        findings = list(self.c.findings)
        if findings:
            for name, text in self.c.log_tails(40):
                print(f"----- {name}\n{text}", file=sys.stderr)
        self.c.cleanup()
        return findings


# name: (method, seconds the fault lasts, description)
SCENARIOS = {
    "worker-kill": ("kill_worker", 2, "SIGKILL a worker mid-batch"),
    "frontend-child-kill": ("kill_frontend_child", 1, "SIGKILL a front-end child"),
    "frontend-kill": ("kill_frontend_instance", 3, "SIGKILL a whole front-end instance"),
    "pg-stop": ("stop_pg", 4, "PostgreSQL stopped with -m immediate, then restarted"),
    "pg-hang": ("hang_pg", 4, "every PostgreSQL process SIGSTOPped, then resumed"),
    "redis-kill": ("kill_redis", 3, "Redis SIGKILLed, restarted on its AOF"),
    "redis-long": ("kill_redis", 10, "Redis down long enough that the spools fill, then replayed"),
}


def run_scenario(cc, name, load_s=None):
    method, fault_s, _ = SCENARIOS[name]
    ids_file = cc.c.base / f"acked-{name}.txt"
    load_s = load_s or fault_s + 6
    bench = cc.start_load(load_s, ids_file)
    try:
        cc.wait_load_flowing(bench)
        heal = getattr(cc, method)()
        time.sleep(fault_s)  # the fault's duration: not a synchronisation
        if bench.poll() is not None:
            raise RuntimeError("fv-bench ended before the fault was healed: the load was too short")
        heal()
        bench.wait(timeout=load_s + 120)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    cc.wait_recovered()
    return report(cc, name, ids_file)


def report(cc, name, ids_file):
    ids = [l.strip() for l in open(ids_file) if l.strip()]
    stored, distinct = cc.count(ids)
    lost = len(set(ids)) - distinct
    dup = stored - distinct
    errors = "?"
    try:
        import json
        last = open(cc.c.logs / f"bench-{ids_file.stem}.log").read().strip().splitlines()[-1]
        summary = json.loads(last)
        errors = sum(v for k, v in summary.items() if k in ("non_202", "no_response", "connection_errors")
                     and isinstance(v, int))
    except Exception:
        pass
    print(f"scenario={name} acked={len(ids)} stored={distinct} lost={lost} duplicates={dup} errors={errors}",
          flush=True)
    return len(ids) > 0 and lost == 0 and dup == 0


def run_mixed(cc, seconds):
    ids_file = cc.c.base / "acked-mixed.txt"
    bench = cc.start_load(seconds + 10, ids_file)
    rng = random.Random(os.environ.get("FV_CHAOS_SEED", "fieldvault"))
    deadline = time.monotonic() + seconds
    try:
        cc.wait_load_flowing(bench)
        while time.monotonic() < deadline:
            name = rng.choice([n for n in SCENARIOS if n != "redis-long"])
            method, fault_s, _ = SCENARIOS[name]
            print(f"mixed: {name}", flush=True)
            heal = getattr(cc, method)()
            time.sleep(fault_s)
            heal()
            time.sleep(rng.uniform(1, 3))
        bench.wait(timeout=seconds + 150)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    cc.wait_recovered(300)
    return report(cc, "mixed", ids_file)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--mixed", type=int, metavar="SECONDS", help="random faults for this long")
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    names = args.scenarios or list(SCENARIOS)
    for n in names:
        if n not in SCENARIOS:
            ap.error(f"unknown scenario {n}")
    cc = ChaosCluster(args.connections)
    ok = True
    try:
        if args.mixed:
            ok = run_mixed(cc, args.mixed)
        else:
            for n in names:
                ok = run_scenario(cc, n) and ok
    finally:
        for f in cc.stop():
            print(f"chaos: finding: {f}", flush=True)
            ok = False
    print(f"chaos: {'passed' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
