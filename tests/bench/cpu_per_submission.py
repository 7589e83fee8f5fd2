#!/usr/bin/env python3
"""CPU per submission by process kind: runs tests/bench/run.sh (in the repository given, with its
build/) and sums the utime + stime of the bench cluster's processes (found by the bench's ports
and directory in their command lines), sampled every 0.1 s from /proc while it runs.

    /usr/bin/python3 tests/bench/cpu_per_submission.py REPO_DIR

Prints the accepted/s line and microseconds of CPU per submission for fv-frontend, redis-server,
fv-worker, fv-bench and the postgres server processes. CPU time moves far less than the rate when
the machine is shared, so alternating two builds this way says which process a change costs.
"""
import os
import subprocess
import sys
import time

# Runs the bench (argv[1] = repo dir) and sums the CPU seconds of its cluster's processes by kind.
repo = sys.argv[1] if len(sys.argv) > 1 else "."
env = dict(os.environ, FV_BUILD_DIR=repo + "/build")
p = subprocess.Popen(["tests/bench/run.sh", "--connections", "32", "--requests", "20000"], cwd=repo, env=env,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
tick = os.sysconf("SC_CLK_TCK")
last = {}
def kind(pid):
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        comm = open(f"/proc/{pid}/comm").read().strip()
    except OSError:
        return None
    if "fv-bench" not in cmd and "16379" not in cmd and "15432" not in cmd and "/tmp/fv-bench." not in cmd:
        # a PostgreSQL backend names neither: it counts when its parent is the bench's postmaster
        try:
            ppid = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1]
        except OSError:
            return None
        return "postgres" if kinds.get(ppid) == "postgres" and comm.startswith("postgres") else None
    for k in ("fv-frontend", "redis-server", "fv-worker", "fv-bench", "postgres"):
        if k in comm or comm.startswith(k[:15]):
            return k
    return None
kinds = {}
while p.poll() is None:
    for d in os.listdir("/proc"):
        if not d.isdigit(): continue
        k = kinds.get(d) or kind(d)
        if not k: continue
        kinds[d] = k
        try:
            f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            last[d] = (int(f[11]) + int(f[12])) / tick
        except OSError:
            pass
    time.sleep(0.1)
out = p.stdout.read()
acc = [l for l in out.splitlines() if "accepted/s" in l]
tot = {}
for d, v in last.items():
    tot[kinds[d]] = tot.get(kinds[d], 0) + v
print(acc, {k: round(v * 1e6 / 20000, 1) for k, v in tot.items()}, "us CPU per submission")
