"""Peak memory of an organisation export (issue 11): a throwaway cluster of the harness (PostgreSQL,
Redis, one fv-frontend with its children, one fv-worker), N responses (default 1,000,000) and
their history rows inserted with SQL generate_series, then POST /v1/orgs/{org}/exports, the job
run to its end, and the zip downloaded (streamed, hashed, never kept). Prints the worker's and the
front end's peak RSS (VmHWM of /proc/<pid>/status: the kernel's high-water mark over the whole
life of each process, so it covers the build and the download) with the timings, as JSON.

A measurement, not a CI test (the 1,000,000 rows take minutes; CI's test_exports.py exports
20,000 responses in several chunks). Results: docs/performance.md, "Export memory".

    FV_BUILD_DIR=$PWD/build /usr/bin/python3 tests/bench/export_memory.py [--responses N]
"""
import argparse
import hashlib
import json
import pathlib
import sys
import time
import zipfile
import io

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
from fvharness import Cluster, wait_until  # noqa: E402
from test_exports import DEFINITION, insert_responses  # noqa: E402


def status_kib(pid, field):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children(pid):
    try:
        return [int(x) for x in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--responses", type=int, default=1000000)
    args = ap.parse_args()
    c = Cluster()
    c.start_infra()
    out = {"responses": args.responses}
    try:
        c.migrate()
        fe = c.start_frontend()
        w = c.start_worker("bench")
        key = c.create_user("bench@example.org", "Bench")
        api = c.api(key)
        me = api.get("/v1/me").json()["id"]
        org = api.post("/v1/orgs", json={"name": "Big"}).json()
        sv = api.post("/v1/surveys", json={"org_id": org["id"], "name": "Big", "definition": DEFINITION}).json()
        dep = api.post(f"/v1/surveys/{sv['id']}/deployments", json={
            "name": "Big", "roles": {"enumerators": [{"type": "user", "id": me}]}}).json()
        t = time.monotonic()
        insert_responses(c.psql, sv["id"], dep["id"], me, args.responses)
        c.psql("VACUUM ANALYZE")
        out["insert_s"] = round(time.monotonic() - t, 1)
        rss_before = {"worker": status_kib(w.pid, "VmHWM"),
                      "frontend_children": [status_kib(p, "VmHWM") for p in children(fe.pid)]}
        t = time.monotonic()
        r = api.post(f"/v1/orgs/{org['id']}/exports")
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        peak_rss_worker = 0

        def done():
            nonlocal peak_rss_worker
            peak_rss_worker = max(peak_rss_worker, status_kib(w.pid, "VmRSS") or 0)
            j = api.get(f"/v1/jobs/{jid}").json()
            return j if j["state"] in ("done", "failed") else None
        j = wait_until(done, 7200, interval=1.0, what="the export")
        assert j["state"] == "done", j
        out["build_s"] = round(time.monotonic() - t, 1)
        out["progress"] = j["progress"]
        t = time.monotonic()
        h, n, tail = hashlib.sha256(), 0, b""
        peak_rss_fe = 0
        with api.s.get(f"{api.base}/v1/exports/{jid}", stream=True, timeout=600) as resp:
            assert resp.status_code == 200, resp.text
            for i, part in enumerate(resp.iter_content(1 << 20)):
                h.update(part)
                n += len(part)
                if i % 16 == 0:
                    peak_rss_fe = max([peak_rss_fe] + [status_kib(p, "VmRSS") or 0 for p in children(fe.pid)])
            want = resp.headers["X-Export-SHA256"]
        assert h.hexdigest() == want and n == int(resp.headers["X-Export-Size"])
        out["download_s"] = round(time.monotonic() - t, 1)
        out["zip_bytes"] = n
        out["worker_VmHWM_kib"] = status_kib(w.pid, "VmHWM")
        out["worker_VmHWM_kib_before_export"] = rss_before["worker"]
        out["worker_VmRSS_peak_sampled_kib"] = peak_rss_worker
        out["frontend_children_VmHWM_kib"] = [status_kib(p, "VmHWM") for p in children(fe.pid)]
        out["frontend_children_VmHWM_kib_before_export"] = rss_before["frontend_children"]
        out["frontend_master_VmHWM_kib"] = status_kib(fe.pid, "VmHWM")
        out["frontend_VmRSS_peak_sampled_kib"] = peak_rss_fe
        out["chunks"] = c.psql("SELECT chunks FROM exports WHERE id = %s", jid)[0][0]
        print(json.dumps(out, indent=1))
    finally:
        c.stop_all()
        c.cleanup()


if __name__ == "__main__":
    main()
