"""What migration 012's history check costs the worker's batch insert (issue 11): PostgreSQL CPU
per row of the worker's own statement (worker/wk_store.c insert_sql, 200 rows a batch, one commit
each) with the insert trigger on and off, alternated, on a throwaway PostgreSQL of the harness.
A measurement, never a test: /usr/bin/python3 tests/bench/history_check.py"""
import json
import os
import pathlib
import re
import socket
import sys
import tempfile
import uuid
REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from fvharness import Postgres  # noqa: E402
sql_dir = REPO / "common" / "sql"
base = tempfile.mkdtemp(prefix="history-bench-")
os.chmod(base, 0o755)  # initdb runs as postgres when we are root
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
pg = Postgres(base, port); pg.start()
try:
    c = pg.connect(user="fieldvault", autocommit=True)
    cur = c.cursor()
    for f in sorted(sql_dir.glob("*.sql")):
        cur.execute(f.read_text())
    u, org, root, sv, d = (str(uuid.uuid4()) for _ in range(5))
    cur.execute("INSERT INTO users (id, email, name) VALUES (%s, 'b@x', 'B')", (u,))
    cur.execute("BEGIN; INSERT INTO orgs (id, name, root_branch_id, created_by) VALUES (%s,'o',%s,%s);"
                "INSERT INTO branches (id, org_id, name) VALUES (%s,%s,'r'); COMMIT", (org, root, u, root, org))
    cur.execute("INSERT INTO surveys (id, org_id, name, created_by) VALUES (%s,%s,'s',%s)", (sv, org, u))
    cur.execute("INSERT INTO deployments (id, survey_id, name, branch_id, created_by) VALUES (%s,%s,'d',%s,%s)", (d, sv, root, u))
    src = open(REPO / "worker" / "wk_store.c").read()
    start = src.index("static const char insert_sql[] =") 
    end = src.index(";\n", start)
    sql = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', src[start:end])).replace("$1", "%s")
    data = {"household": "House 1", "members": 3, "income": 12.5, "visit": "2024-05-01"}
    def batch(n=200):
        return json.dumps([{"id": str(uuid.uuid4()), "survey_id": sv, "survey_version": 1, "deployment_id": d,
                            "submitted_by": u, "data": data, "location": None, "collected_at": None,
                            "received_at_ms": 1700000000000} for _ in range(n)])
    c.autocommit = False
    cur.execute("SELECT pg_backend_pid()")
    bpid = cur.fetchone()[0]
    c.commit()
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        f = open(f"/proc/{bpid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / tick
    res = {"check on": [], "check off": []}
    for rnd in range(10):
        for mode in res:
            cur.execute("ALTER TABLE responses " + ("ENABLE" if mode == "check on" else "DISABLE")
                        + " TRIGGER responses_history_on_insert")
            c.commit()
            bs = [batch() for _ in range(25)]
            t = cpu()
            for b in bs:
                cur.execute(sql, (b,))
                c.commit()
            res[mode].append((cpu() - t) / (25 * 200) * 1e6)
    for mode, v in res.items():
        v = sorted(v)
        print(f"{mode}: PostgreSQL CPU per row, median {v[len(v) // 2]:.0f} us, min {v[0]:.0f} us")
finally:
    pg.stop()
