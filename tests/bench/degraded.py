#!/usr/bin/env python3
"""Submission rate while parts are down, against the normal rate, with the same load generator:
a cluster like tests/chaos/ (durable PostgreSQL, Redis with appendfsync always, two front-end
instances, two workers), fv-bench straight at one front end in three phases:

    normal       everything up
    db-down      PostgreSQL stopped (-m immediate): submissions go to Redis, workers wait
    redis-down   Redis killed: submissions go to the front end's spool (fdatasync, group commit)

After each degraded phase the part is restored and the run waits until everything queued is in
PostgreSQL. Usage: tests/bench/degraded.py [--connections 32] [--requests 30000]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "chaos"))
sys.path.insert(0, str(HERE.parent / "integration"))

import chaos  # noqa: E402
import faults  # noqa: E402
from fvharness import binary, child_env, wait_until  # noqa: E402


def bench(cc, port, connections, requests):
    out = subprocess.run([
        binary("fv-bench"), "--url", f"https://127.0.0.1:{port}", "--deployment", cc.deployment,
        "--connections", str(connections), "--requests", str(requests), "--cacert", str(cc.c.cert),
        "--data", '{"household":"bench","members":3}', "--json"],
        capture_output=True, text=True, env=child_env(FV_BENCH_KEY=cc.enum_key), timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--requests", type=int, default=30000)
    args = ap.parse_args()
    cc = chaos.ChaosCluster()
    port = cc.fe_ports[0]
    rows = []
    try:
        # Warm the caches the normal way first (a known user and deployment, as in the field).
        bench(cc, port, 4, 200)
        cc.wait_recovered()
        phases = [("normal", None), ("db-down", "db"), ("redis-down", "redis")]
        for name, part in phases:
            if part == "db":
                faults.pg_stop_immediate(cc.c)
                wait_until(lambda: faults.readyz(cc.c, port).json().get("db") == "down", 60, what="db: down")
            elif part == "redis":
                faults.kill_redis(cc.c)
                wait_until(lambda: faults.readyz(cc.c, port).json().get("queue") == "spool", 60,
                           what="queue: spool")
            r = bench(cc, port, args.connections, args.requests)
            if part == "db":
                faults.pg_start(cc.c)
            elif part == "redis":
                faults.restart_redis(cc.c)
            cc.wait_recovered(300)
            lat = r["latency_ms"]
            rows.append((name, r["accepted"], r["sent"], r["accepted_per_s"], lat["p50"], lat["p99"], lat["max"]))
    finally:
        cc.stop()
    print(f"{'phase':<12} {'accepted':>9} {'sent':>7} {'accepted/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for row in rows:
        print(f"{row[0]:<12} {row[1]:>9} {row[2]:>7} {row[3]:>11.1f} {row[4]:>8.2f} {row[5]:>8.2f} {row[6]:>8.1f}")
    return 0 if all(r[1] == r[2] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
