"""The whole-organisation export (issue 11, migration 015): POST /v1/orgs/{org}/exports starts a
worker job that writes one zip (libarchive, streamed) into PostgreSQL chunks; GET /v1/exports/{id}
streams it from any front end to the org's admins, each download audited; exports expire.
The export is compared field by field with what the API answers, the manifest's counts and
SHA-256 with the files, and the CSV is opened by LibreOffice when it is installed."""
import csv
import hashlib
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import zipfile

import pytest

from accesshelp import User, add_member, add_plain_member, denied, list_all, ok, submit_and_wait
from fvharness import free_port, new_id, wait_until

DEFINITION = {
    "questions": [
        {"name": "household", "type": "text", "label": "Household name", "required": True},
        {"name": "members", "type": "integer", "label": "Members", "required": False},
        {"name": "income", "type": "decimal", "label": "Income", "required": False},
        {"name": "water", "type": "select_multiple", "label": "Water sources",
         "choices": ["well", "river", "rain"]},
        {"name": "visit", "type": "date", "label": "Visit date", "required": False},
    ]
}
# Answers a spreadsheet would run as formulas, and UTF-8 it must keep.
HOSTILE = ["=1+1", "+SUM(1,2)", "-2+3", "@cmd", "=HYPERLINK(\"http://evil.example\",\"x\")", "Zürich ☕ 北京 😀",
           "quote \" and, comma", "-12"]


@pytest.fixture(scope="module")
def ex(workers):
    c = workers
    u = {n: User(c, n) for n in ("owner", "enum", "member", "outsider")}
    org = ok(u["owner"].api.post("/v1/orgs", json={"name": "Export org"}), 201)
    add_plain_member(c, org["id"], u["member"].id)
    add_plain_member(c, org["id"], u["enum"].id)
    oa = u["owner"].api
    survey = ok(oa.post("/v1/surveys", json={"org_id": org["id"], "name": "Water survey",
                                             "definition": {"questions": DEFINITION["questions"][:3]}}), 201)
    ok(oa.put(f"/v1/surveys/{survey['id']}/definition", json={"definition": DEFINITION}))
    dep = ok(oa.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "Water deployment", "roles": {"enumerators": [{"type": "user", "id": u["enum"].id}]}}), 201)
    rids = []
    for i, h in enumerate(HOSTILE):
        data = {"household": h, "members": i + 1, "water": ["well", "rain"] if i % 2 else ["river"]}
        if i == 3:
            data = {"household": h}  # water unanswered: its columns stay empty
        rids.append(submit_and_wait(u["enum"].api, dep["id"], data)["id"])
    ok(oa.patch(f"/v1/responses/{rids[0]}", json={"data": {"household": "edited", "members": 9}}))
    ok(oa.delete(f"/v1/responses/{rids[1]}"), 204)
    site = ok(oa.post("/v1/sites", json={"org_id": org["id"], "name": "Well A", "type": "well",
                                          "privacy": "private", "location": {"lat": 1.0, "lon": 2.0}}), 201)
    ok(oa.patch(f"/v1/sites/{site['id']}", json={"name": "Well B"}))
    other = ok(u["outsider"].api.post("/v1/orgs", json={"name": "Not yours"}), 201)

    class X:
        pass
    x = X()
    x.c, x.u, x.org, x.survey, x.dep, x.rids, x.site, x.other = c, u, org, survey, dep, rids, site, other
    yield x
    for v in u.values():
        v.close()


def start_export(api, org_id):
    job = ok(api.post(f"/v1/orgs/{org_id}/exports"), 202)
    assert job["kind"] == "export" and job["state"] == "queued", job
    assert job["export"]["id"] == job["id"] and job["export"]["download"] == f"/v1/exports/{job['id']}"
    return job


def wait_done(api, jid, timeout=120):
    def ended():
        j = ok(api.get(f"/v1/jobs/{jid}"))
        return j if j["state"] in ("done", "failed") else None
    j = wait_until(ended, timeout, what=f"export job {jid}")
    assert j["state"] == "done", j
    return j


def download(api, eid):
    r = api.get(f"/v1/exports/{eid}")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"] == "application/zip"
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert "attachment" in r.headers["Content-Disposition"]
    assert hashlib.sha256(r.content).hexdigest() == r.headers["X-Export-SHA256"]
    assert len(r.content) == int(r.headers["X-Export-Size"])
    return r.content


@pytest.fixture(scope="module")
def built(ex):
    job = start_export(ex.u["owner"].api, ex.org["id"])
    done = wait_done(ex.u["owner"].api, job["id"])
    body = download(ex.u["owner"].api, job["id"])
    z = zipfile.ZipFile(io.BytesIO(body))
    assert z.testzip() is None
    return job, done, z, body


def jsonl(z, name):
    return [json.loads(line) for line in z.read(name).decode().splitlines()]


def test_manifest_counts_and_hashes(ex, built):
    job, done, z, _ = built
    m = json.loads(z.read("manifest.json"))
    assert m["org_id"] == ex.org["id"] and m["export_id"] == job["id"] and m["surveys"] == 1
    names = {f["path"] for f in m["files"]}
    assert names == set(z.namelist()) - {"manifest.json"}
    s = ex.survey["id"]
    for want in ("org/org.jsonl", "org/branches.jsonl", "org/teams.jsonl", "org/members.jsonl", "org/sites.jsonl",
                 "org/site_history.jsonl", "org/audit.jsonl", "org/surveys.jsonl",
                 f"surveys/{s}/definitions.jsonl", f"surveys/{s}/deployments.jsonl",
                 f"surveys/{s}/responses.jsonl", f"surveys/{s}/responses.csv", f"surveys/{s}/history.jsonl"):
        assert want in names, want
    for f in m["files"]:
        data = z.read(f["path"])
        assert hashlib.sha256(data).hexdigest() == f["sha256"], f
        assert len(data) == f["bytes"], f
        lines = data.decode().count("\n")
        assert f["rows"] == (lines - 1 if f["path"].endswith(".csv") else lines), f
    assert done["progress"]["files"] == len(m["files"]) and done["progress"]["surveys"] == 1


def test_export_matches_the_api(ex, built):
    _, _, z, _ = built
    oa, s = ex.u["owner"].api, ex.survey["id"]
    # responses: every one, deleted included, as GET /v1/responses/{id} shows them to an admin
    rows = {r["id"]: r for r in jsonl(z, f"surveys/{s}/responses.jsonl")}
    assert set(rows) == set(ex.rids)
    for rid in ex.rids:
        if rid == ex.rids[1]:
            assert rows[rid]["deleted_at"] is not None
            continue
        api = ok(oa.get(f"/v1/responses/{rid}"))
        got = dict(rows[rid])
        assert got.pop("deleted_at") is None
        assert got == api, rid
    # their history, version by version
    hist = jsonl(z, f"surveys/{s}/history.jsonl")
    for rid in ex.rids:
        mine = [dict(h) for h in hist if h["response_id"] == rid]
        for h in mine:
            h.pop("response_id")
        assert mine == list_all(oa, f"/v1/responses/{rid}/history"), rid
    assert len([h for h in hist if h["response_id"] == ex.rids[0]]) == 2  # submit, edit
    # every definition version
    defs = jsonl(z, f"surveys/{s}/definitions.jsonl")
    assert [d["version"] for d in defs] == [1, 2]
    assert defs[1]["definition"] == ok(oa.get(f"/v1/surveys/{s}"))["definition"]
    assert [d["id"] for d in jsonl(z, f"surveys/{s}/deployments.jsonl")] == [ex.dep["id"]]
    # sites and their history
    sites = jsonl(z, "org/sites.jsonl")
    assert len(sites) == 1
    api_site = ok(oa.get(f"/v1/sites/{ex.site['id']}"))
    got = dict(sites[0])
    assert got.pop("deleted_at") is None and got == api_site
    sh = [dict(h) for h in jsonl(z, "org/site_history.jsonl")]
    for h in sh:
        assert h.pop("site_id") == ex.site["id"]
    assert sh == list_all(oa, f"/v1/sites/{ex.site['id']}/history")
    # members as GET .../members shows them to the admin: nobody else's email
    members = jsonl(z, "org/members.jsonl")
    assert sorted(members, key=lambda m: m["id"]) == sorted(list_all(oa, f"/v1/orgs/{ex.org['id']}/members"),
                                                            key=lambda m: m["id"])
    for m in members:
        assert (m["email"] is None) == (m["user_id"] != ex.u["owner"].id), m
    # branches and teams
    branches = {b["id"]: b for b in jsonl(z, "org/branches.jsonl")}
    for b in list_all(oa, f"/v1/orgs/{ex.org['id']}/branches"):
        assert branches[b["id"]]["name"] == b["name"] and branches[b["id"]]["parent_id"] == b.get("parent_id")
    teams = {t["id"]: t for t in jsonl(z, "org/teams.jsonl")}
    assert set(teams) == {t["id"] for t in list_all(oa, f"/v1/orgs/{ex.org['id']}/teams")}
    # the audit log: every entry the API lists up to the export's own start
    audit = {a["id"]: a for a in jsonl(z, "org/audit.jsonl")}
    assert any(a["action"] == "export.create" for a in audit.values())
    api_audit = {a["id"]: a for a in list_all(oa, f"/v1/orgs/{ex.org['id']}/audit")}
    for aid, a in audit.items():
        assert api_audit[aid] == a
    assert {a for a in api_audit if int(a) <= max(map(int, audit))} == set(audit)
    assert [o["id"] for o in jsonl(z, "org/org.jsonl")] == [ex.org["id"]]
    assert [x["id"] for x in jsonl(z, "org/surveys.jsonl")] == [s]
    # nothing of the other org
    assert ex.other["id"] not in z.read("org/audit.jsonl").decode()


def read_csv(z, s):
    raw = z.read(f"surveys/{s}/responses.csv")
    text = raw.decode("utf-8")  # UTF-8, strictly
    return raw, list(csv.reader(io.StringIO(text, newline="")))


def test_csv_columns_values_and_formulas(ex, built):
    _, _, z, _ = built
    s = ex.survey["id"]
    _, rows = read_csv(z, s)
    head = rows[0]
    assert head[:10] == ["id", "survey_version", "status", "submitted_by", "collected_at", "created_at",
                         "updated_at", "deleted_at", "latitude", "longitude"]
    assert head[10:] == ["household", "members", "income", "water/well", "water/river", "water/rain", "visit"]
    by_id = {r[0]: dict(zip(head, r)) for r in rows[1:]}
    assert set(by_id) == set(ex.rids)
    for i, rid in enumerate(ex.rids):
        row = by_id[rid]
        if i == 0:
            assert row["household"] == "edited" and row["members"] == "9"
            continue
        h = HOSTILE[i]
        assert row["household"] == ("'" + h if h[0] in "=+-@" and h != "-12" else h), (h, row)
        if i == 3:
            assert row["water/well"] == row["water/river"] == row["water/rain"] == ""
        else:
            want = {"well", "rain"} if i % 2 else {"river"}
            for c in ("well", "river", "rain"):
                assert row[f"water/{c}"] == ("1" if c in want else "0")
        assert row["members"] == str(i + 1) or i == 3
    for r in rows[1:]:
        for cell in r:
            assert not cell or cell[0] not in "=+@" and not (cell[0] == "-" and not cell.lstrip("-").replace(".", "").isdigit()), r


def test_libreoffice_opens_the_csv(ex, built):
    """LibreOffice Calc imports the CSV (UTF-8, comma, quotes) headless and converts it to a
    flat ODF spreadsheet: the same rows and cells, every hostile value as text, no formula.
    deploy/install-deps.sh --test installs it (libreoffice-calc-nogui): under CI its absence is a
    failure, not a skip."""
    office = shutil.which("soffice") or shutil.which("libreoffice")
    if office is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice (libreoffice-calc-nogui, deploy/install-deps.sh --test) is not installed")
        pytest.skip("LibreOffice (Debian libreoffice-calc-nogui) is not installed")
    _, _, z, _ = built
    raw, rows = read_csv(z, ex.survey["id"])
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "responses.csv")
        with open(src, "wb") as f:
            f.write(raw)
        env = dict(os.environ, HOME=d)
        r = subprocess.run([office, "--headless", "--norestore", "--infilter=CSV:44,34,76,1",
                            "--convert-to", "fods", "--outdir", d, src],
                           capture_output=True, text=True, timeout=240, env=env)
        out = os.path.join(d, "responses.fods")
        assert r.returncode == 0 and os.path.exists(out), r.stdout + r.stderr
        doc = open(out, encoding="utf-8").read()
        back = subprocess.run([office, "--headless", "--norestore", "--infilter=CSV:44,34,76,1",
                               "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1", "--outdir",
                               os.path.join(d, "back"), src], capture_output=True, text=True, timeout=240, env=env)
        assert back.returncode == 0, back.stdout + back.stderr
        again = list(csv.reader(open(os.path.join(d, "back", "responses.csv"), encoding="utf-8", newline="")))
    assert "table:formula" not in doc  # nothing became a formula
    assert "Zürich ☕ 北京 😀" in doc
    assert len(again) == len(rows)
    for a, b in zip(again, rows):
        assert len(a) == len(b)
    hh = rows[0].index("household")
    cells = {r[hh] for r in again[1:]}
    for h in HOSTILE[2:]:
        if h[0] in "=+-@" and h != "-12":
            assert ("'" + h) in cells or h in cells, (h, cells)  # shown as text, never evaluated
    assert "2" not in cells and "3" not in cells  # =1+1, +SUM(1,2) were not computed


def test_permissions(ex, built):
    job = built[0]
    org, other = ex.org["id"], ex.other["id"]
    denied(ex.u["member"].api.post(f"/v1/orgs/{org}/exports"), 403, "forbidden")
    denied(ex.u["outsider"].api.post(f"/v1/orgs/{org}/exports"), 404, "not_found")
    denied(ex.u["owner"].api.post(f"/v1/orgs/{other}/exports"), 404, "not_found")
    denied(ex.u["owner"].api.post(f"/v1/orgs/{new_id()}/exports"), 404, "not_found")
    denied(ex.u["owner"].api.post("/v1/orgs/not-a-uuid/exports"), 404)
    denied(ex.c.api().post(f"/v1/orgs/{org}/exports"), 401)
    denied(ex.u["member"].api.get(f"/v1/exports/{job['id']}"), 403, "forbidden")
    denied(ex.u["outsider"].api.get(f"/v1/exports/{job['id']}"), 404, "not_found")
    denied(ex.u["enum"].api.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
    denied(ex.u["owner"].api.get(f"/v1/exports/{new_id()}"), 404, "not_found")
    denied(ex.u["owner"].api.get("/v1/exports/xyz"), 404, "not_found")
    denied(ex.c.api().get(f"/v1/exports/{job['id']}"), 401)


def test_org_requiring_totp(ex):
    """An org that requires TOTP of its admins: an admin's API key cannot start or download."""
    api = ex.u["outsider"].api
    org = ok(api.post("/v1/orgs", json={"name": "TOTP org"}), 201)
    ex.c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", org["id"])
    denied(api.post(f"/v1/orgs/{org['id']}/exports"), 403, "totp_required")


def test_one_export_at_a_time(ex):
    api = ex.u["outsider"].api
    org = ok(api.post("/v1/orgs", json={"name": "Busy org"}), 201)
    jid = new_id()
    # a job no worker runs (already 'done') holding an export still 'building'
    ex.c.psql("INSERT INTO jobs (id, org_id, kind, created_by, state, finished_at) "
              "VALUES (%s, %s, 'export', %s, 'done', now())", jid, org["id"], ex.u["outsider"].id)
    ex.c.psql("INSERT INTO exports (id, org_id, created_by) VALUES (%s, %s, %s)", jid, org["id"], ex.u["outsider"].id)
    denied(api.post(f"/v1/orgs/{org['id']}/exports"), 409, "export_running")
    denied(api.get(f"/v1/exports/{jid}"), 409, "export_not_ready")


def test_every_download_audited(ex, built):
    job = built[0]
    before = ex.c.psql("SELECT count(*) FROM audit WHERE action = 'export.download' AND target_id = %s", job["id"])[0][0]
    download(ex.u["owner"].api, job["id"])
    download(ex.u["owner"].api, job["id"])
    denied(ex.u["member"].api.get(f"/v1/exports/{job['id']}"), 403)  # a refusal downloads nothing
    rows = ex.c.psql("SELECT actor::text, org_id::text, detail->>'sha256' FROM audit "
                     "WHERE action = 'export.download' AND target_id = %s ORDER BY id", job["id"])
    assert len(rows) == before + 2
    assert rows[-1] == (ex.u["owner"].id, ex.org["id"], built[3] and hashlib.sha256(built[3]).hexdigest())
    assert ex.c.psql("SELECT count(*) FROM audit WHERE action = 'export.create' AND target_id = %s", job["id"])[0][0] == 1


# n responses of incompressible text and each one's history row, in one statement (the history
# trigger of migration 012 wants both); tests/bench/export_memory.py uses it too. SQL cannot seal
# (migration 027): the rows are in clear, as rows from before 027, and marked so that the workers'
# re-seal sweep leaves them alone (sealing tens of thousands of rows would take the session's
# workers for minutes; test_sealed_answers.py tests the sweep).
INSERT_RESPONSES = (
    "WITH r AS (INSERT INTO responses (id, survey_id, survey_version, deployment_id, submitted_by, status, data, "
    "           received_at, answers_seal_error) SELECT gen_random_uuid(), %s, 1, %s, %s, 'final', "
    "           jsonb_build_object('household', md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text), "
    "                              'members', g %% 50, 'water', '[\"well\"]'::jsonb), now(), "
    "           'test: bulk rows in clear (test_exports.INSERT_RESPONSES)' "
    "           FROM generate_series(%s, %s) g RETURNING *) "
    "INSERT INTO response_events (response_id, version, action, stage, status, actor, state) "
    "SELECT r.id, 1, 'submit', 0, r.status, r.submitted_by, to_jsonb(r) FROM r")


def insert_responses(psql, survey, dep, user, n, batch=100000):
    for lo in range(1, n + 1, batch):
        psql(INSERT_RESPONSES, survey, dep, user, lo, min(n, lo + batch - 1))


def big_org(ex, n):
    """An org of the outsider with n responses of incompressible text, written with SQL."""
    api = ex.u["outsider"].api
    org = ok(api.post("/v1/orgs", json={"name": f"Big org {n}"}), 201)
    sv = ok(api.post("/v1/surveys", json={"org_id": org["id"], "name": "Big", "definition": DEFINITION}), 201)
    add_plain_member(ex.c, org["id"], ex.u["outsider"].id)
    dep = ok(api.post(f"/v1/surveys/{sv['id']}/deployments", json={
        "name": "Big dep", "roles": {"enumerators": [{"type": "user", "id": ex.u["outsider"].id}]}}), 201)
    insert_responses(ex.c.psql, sv["id"], dep["id"], ex.u["outsider"].id, n)
    return org


def test_download_from_another_front_end_and_a_client_that_leaves(ex):
    """The zip lives in PostgreSQL: a second front end (another port: another VM) serves the same
    bytes. A client that leaves mid-download leaves the front end serving (the stream ends)."""
    org = big_org(ex, 20000)
    api = ex.u["outsider"].api
    w = ex.c.start_worker("export-chunks", FV_EXPORT_CHUNK_BYTES="65536")
    try:
        job = start_export(api, org["id"])
        wait_done(api, job["id"], timeout=180)
    finally:
        ex.c.stop_worker(w)
    chunks = ex.c.psql("SELECT chunks, size FROM exports WHERE id = %s", job["id"])[0]
    assert chunks[0] > 5, chunks
    one = download(api, job["id"])
    port = free_port()
    fe2 = ex.c.start_frontend("frontend-export", FV_LISTEN_PORT=str(port))
    try:
        from fvharness import Api
        api2 = Api(f"https://127.0.0.1:{port}", ex.c.cert, ex.u["outsider"].key)
        two = download(api2, job["id"])
        api2.close()
        assert one == two
        assert zipfile.ZipFile(io.BytesIO(two)).testzip() is None
        m = json.loads(zipfile.ZipFile(io.BytesIO(two)).read("manifest.json"))
        rows = [f["rows"] for f in m["files"] if f["path"].endswith("responses.jsonl")]
        assert rows == [20000]
        # a client that reads one chunk's worth and leaves
        ctx = ssl.create_default_context(cafile=str(ex.c.cert))
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as t:
                    t.sendall((f"GET /v1/exports/{job['id']} HTTP/1.1\r\nHost: x\r\n"
                               f"Authorization: Bearer {ex.u['outsider'].key}\r\n\r\n").encode())
                    got = t.recv(65536)
                    assert got.startswith(b"HTTP/1.1 200"), got[:100]
        wait_until(lambda: ex.c.healthy(port, fe2), 30, what="the front end after clients left")
        api3 = Api(f"https://127.0.0.1:{port}", ex.c.cert, ex.u["outsider"].key)
        assert download(api3, job["id"]) == one
        api3.close()
    finally:
        fe2.stop()


def test_expiry(ex):
    """A ready export past its expiry answers 410 export_expired at once; the sweep then deletes
    its bytes (the row stays 'expired', audited) and it keeps answering 410."""
    api = ex.u["outsider"].api
    org = ok(api.post("/v1/orgs", json={"name": "Expiring org"}), 201)
    job = start_export(api, org["id"])
    wait_done(api, job["id"])
    download(api, job["id"])
    ex.c.psql("UPDATE exports SET expires_at = now() - interval '1 second' WHERE id = %s", job["id"])
    denied(api.get(f"/v1/exports/{job['id']}"), 410, "export_expired")
    w = ex.c.start_worker("export-sweep", FV_EXPORT_SWEEP_MS="200")
    try:
        wait_until(lambda: ex.c.psql("SELECT state FROM exports WHERE id = %s", job["id"])[0][0] == "expired", 60,
                   what="the sweep")
    finally:
        ex.c.stop_worker(w)
    assert ex.c.psql("SELECT count(*) FROM export_chunks WHERE export_id = %s", job["id"])[0][0] == 0
    assert ex.c.psql("SELECT count(*) FROM audit WHERE action = 'export.expired' AND target_id = %s",
                     job["id"])[0][0] == 1
    denied(api.get(f"/v1/exports/{job['id']}"), 410, "export_expired")
    # expires_at as the worker set it: export_ttl_s after it was built
    job2 = start_export(api, org["id"])
    wait_done(api, job2["id"])
    secs = ex.c.psql("SELECT extract(epoch FROM expires_at - now())::int FROM exports WHERE id = %s", job2["id"])[0][0]
    assert 86400 - 600 < secs <= 86400


def test_bad_input(ex):
    api = ex.u["owner"].api
    denied(api.get(f"/v1/exports/{'1' * 300}"), 404)
    denied(api.request("DELETE", f"/v1/exports/{new_id()}"), 405)


def test_export_survives_kill_9_of_its_worker(ex):
    """The worker building an export is killed (SIGKILL) mid-build; another takes the job over once
    the lease expired and builds the zip again from nothing: one whole zip of the second claim (its
    manifest agrees with its files), one export.create and one job.done. Only the first worker
    steps slowly (200 rows a step), so that it is surely killed mid-build; the second builds the
    zip at the default step size (with 200 rows a step too it took 48 of the test's 55 s)."""
    c = ex.c
    org = big_org(ex, 20000)
    api = ex.u["outsider"].api
    c.stop_all_workers()
    try:
        fast = dict(FV_JOBS_LEASE_MS="1500", FV_JOBS_POLL_MS="50", FV_EXPORT_CHUNK_BYTES="65536")
        slow = dict(fast, FV_EXPORT_STEP_ROWS="200")
        k1 = c.start_worker("export-k1", **slow)
        job = start_export(api, org["id"])

        def building():
            row = c.psql("SELECT j.state, j.lease_owner, (SELECT count(*) FROM export_chunks x WHERE x.export_id = j.id) "
                         "FROM jobs j WHERE j.id = %s", job["id"])[0]
            return row[0] == "running" and row[1] == k1.consumer and row[2] >= 3
        wait_until(building, 120, what="the export to have written chunks")
        c.kill_worker(k1)
        c.start_worker("export-k2", **fast)
        done = wait_done(api, job["id"], timeout=300)
    finally:
        c.stop_all_workers()
        c.start_default_workers()
    assert done["attempts"] == 2, done
    assert c.psql("SELECT attempt, state FROM exports WHERE id = %s", job["id"]) == [(2, "ready")]
    body = download(api, job["id"])
    z = zipfile.ZipFile(io.BytesIO(body))
    assert z.testzip() is None
    m = json.loads(z.read("manifest.json"))
    for f in m["files"]:
        assert hashlib.sha256(z.read(f["path"])).hexdigest() == f["sha256"], f
    assert [f["rows"] for f in m["files"] if f["path"].endswith("responses.jsonl")] == [20000]
    for action in ("export.create", "job.done"):
        assert c.psql("SELECT count(*) FROM audit WHERE action = %s AND target_id = %s", action, job["id"]) == [(1,)]


def test_a_removed_admin_downloads_nothing(ex, built):
    """Issue 10: an admin removed from the org loses the export at once (404 like a stranger, for
    the download and the job); made an admin again, they download it again."""
    job = built[0]
    org = ex.org["id"]
    a2 = User(ex.c, "second admin")
    try:
        add_member(ex.c, org, a2.id, "admin", branch_id=ex.org["root_branch_id"])
        assert download(a2.api, job["id"]) == built[3]
        ok(ex.u["owner"].api.delete(f"/v1/orgs/{org}/members/{a2.id}"), 204)
        denied(a2.api.get(f"/v1/exports/{job['id']}"), 404, "not_found")
        denied(a2.api.get(f"/v1/jobs/{job['id']}"), 404, "not_found")
        denied(a2.api.post(f"/v1/orgs/{org}/exports"), 404, "not_found")
        n = ex.c.psql("SELECT count(*) FROM audit WHERE action = 'export.download' AND actor = %s", a2.id)
        assert n == [(1,)], n
    finally:
        a2.close()
