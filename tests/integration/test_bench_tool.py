"""fv-bench, the load generator of tests/bench/ (docs/performance.md), kept from rotting: a handful
of requests in each mode against the session's cluster, and what it counts checked against what
PostgreSQL holds. JSON submissions (the API key as bearer); OpenRosa submissions of the fixture
form simple.xml with the app user's token in the URL and with HTTP Basic; binaryType.xml with a
photo attachment, each stored once per response and distinct (the request's id appended); and the
refusals: a form id the deployment does not have is counted as not accepted (exit 1), and
templates fv-bench cannot use are refused before any request (exit 2). Times nothing."""
import json
import pathlib
import subprocess

import pytest

from accesshelp import User, add_plain_member, ok
from fvharness import answers_sql, binary, child_env

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk"
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "forms").is_dir(), reason="no ODK fixtures")
PASSWORD = "bench-harbor-quartz-82-meadow"
N = 12


@pytest.fixture(scope="module")
def bw(workers, tmp_path_factory):
    c = workers
    owner = User(c, "bench owner")
    org = ok(owner.api.post("/v1/orgs", json={"name": "fv-bench org"}), 201)

    class W:
        pass
    w = W()
    w.c, w.owner, w.org, w.tmp = c, owner, org, tmp_path_factory.mktemp("bench")
    yield w
    owner.close()


def xform_deployment(w, form, enumerator=None):
    xml = (FIXTURES / "forms" / f"{form}.xml").read_text(encoding="utf-8")
    s = ok(w.owner.api.post("/v1/surveys", json={"org_id": w.org["id"], "name": f"bench {form}", "xform": xml}), 201)
    return ok(w.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": f"bench {form}", "roles": {"enumerators": [{"type": "user", "id": enumerator or w.owner.id}]}}), 201)


def app_token(w, dep):
    return ok(w.owner.api.post(f"/v1/deployments/{dep['id']}/app-users", json={"name": "bench tablet"}), 201)["token"]


def bench(w, key, dep, *args, requests=N):
    """Runs fv-bench (key in FV_BENCH_KEY); returns (exit status, the JSON summary or None, output)."""
    ids = w.tmp / f"ids-{dep['id']}.txt"
    r = subprocess.run([binary("fv-bench"), "--url", w.c.base_url, "--cacert", str(w.c.cert),
                        "--deployment", dep["id"], "--connections", "3", "--requests", str(requests),
                        "--max-time", "60", "--timeout", "20", "--pg", w.c.pg.dsn(), "--drain-timeout", "30",
                        "--ids-out", str(ids), "--json", *map(str, args)],
                       capture_output=True, text=True, timeout=120, env=child_env(FV_BENCH_KEY=key))
    lines = r.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    acked = ids.read_text().split() if ids.exists() else []
    return r.returncode, summary, r.stdout + r.stderr, acked


def template(w, name, text):
    p = w.tmp / name
    p.write_text(text)
    return p


SIMPLE = '<data id="simple"><meta><instanceID>uuid:{{uuid}}</instanceID></meta><name>Bench</name><age>{{randInt}}</age></data>'


def all_committed(summary, n=N):
    assert summary["accepted"] == n and summary["non_202"] == 0 and summary["no_response"] == 0, summary
    assert summary["e2e"]["ok"] and summary["e2e"]["stored"] == n, summary


def test_json_mode_counts_what_postgres_holds(bw):
    s = ok(bw.owner.api.post("/v1/surveys", json={"org_id": bw.org["id"], "name": "bench json", "definition": {
        "questions": [{"name": "name", "type": "text", "required": True},
                      {"name": "age", "type": "integer", "constraint": {"min": 0, "max": 150}}]}}), 201)
    dep = ok(bw.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "bench json", "roles": {"enumerators": [{"type": "user", "id": bw.owner.id}]}}), 201)
    rc, summary, out, acked = bench(bw, bw.owner.key, dep)
    assert rc == 0, out
    all_committed(summary)
    assert summary["mode"] == "json"
    # (the answers are sealed at rest, migration 027: read opened)
    rows = [(x["id"], x["data"]["name"]) for x in bw.c.psql_opened(
        "SELECT jsonb_build_object('id', r.id::text, " + answers_sql("r") + ") FROM responses r "
        "WHERE deployment_id = %s", dep["id"])]
    assert sorted(r[0] for r in rows) == sorted(acked) and {r[1] for r in rows} == {"bench"}


@needs_fixtures
def test_openrosa_app_user_token(bw):
    dep = xform_deployment(bw, "simple")
    rc, summary, out, acked = bench(bw, app_token(bw, dep), dep, "--openrosa", template(bw, "simple.xml", SIMPLE))
    assert rc == 0, out
    all_committed(summary)
    assert summary["mode"] == "openrosa" and summary["stored_201"] + summary["queued_202"] == N
    assert "app-user token auth" in out
    rows = [(x["id"], x["iid"], int(x["data"]["age"]), x["by"]) for x in bw.c.psql_opened(
        "SELECT jsonb_build_object('id', r.id::text, 'iid', r.instance_id, 'by', r.submitted_by::text, "
        + answers_sql("r") + ") FROM responses r WHERE deployment_id = %s", dep["id"])]
    assert sorted(r[0] for r in rows) == sorted(acked) and len(set(acked)) == N
    # the XML is sealed at rest (migration 026): read back through the API
    rows = [(rid, iid, bw.owner.api.get(f"/v1/responses/{rid}/xml").text, age, by) for rid, iid, age, by in rows]
    for rid, iid, xml, age, by in rows:
        # every request its own instance: the id in the instanceID, a fresh 6-digit number
        assert iid == f"uuid:{rid}" and f"<instanceID>uuid:{rid}</instanceID>" in xml, (iid, xml)
        assert 100000 <= age <= 999999 and f"<age>{age}</age>" in xml
        assert by != bw.owner.id  # the app user's own users row, not the owner's
    assert len({r[3] for r in rows}) > 1


@needs_fixtures
def test_openrosa_basic_auth(bw):
    mail = "bench-collector@example.org"
    anon = bw.c.api()
    r = anon.post("/v1/users", json={"email": mail, "name": "Collector", "password": PASSWORD})
    anon.close()
    assert r.status_code == 202, r.text
    uid = bw.c.user_rows(mail)[0][0]
    add_plain_member(bw.c, bw.org["id"], uid)
    dep = xform_deployment(bw, "simple", enumerator=uid)
    rc, summary, out, acked = bench(bw, f"{mail}:{PASSWORD}", dep, "--openrosa", template(bw, "simple-b.xml", SIMPLE),
                                    "--auth", "basic")
    assert rc == 0, out
    all_committed(summary)
    by = bw.c.psql("SELECT DISTINCT submitted_by::text FROM responses WHERE deployment_id = %s", dep["id"])
    assert by == [(uid,)]
    # a wrong password: every request refused (401), none counted as accepted
    rc, summary, out, acked = bench(bw, f"{mail}:not-the-password", dep, "--openrosa",
                                    template(bw, "simple-c.xml", SIMPLE), "--auth", "basic", requests=3)
    assert rc == 1 and summary["accepted"] == 0 and summary["status"] == {"401": 3} and acked == [], out


@needs_fixtures
def test_openrosa_photo_attachment(bw):
    dep = xform_deployment(bw, "binaryType")
    photo = bw.tmp / "1700000000000.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9")
    t = template(bw, "photo.xml", '<data id="binaryType"><meta><instanceID>uuid:{{uuid}}</instanceID></meta>'
                                  '<file1>1700000000000.jpg</file1></data>')
    rc, summary, out, acked = bench(bw, app_token(bw, dep), dep, "--openrosa", t, "--attach", photo)
    assert rc == 0, out
    all_committed(summary)
    rows = bw.c.psql("SELECT a.response_id::text, a.name, a.content_type, a.size FROM response_attachments a "
                     "JOIN responses r ON r.id = a.response_id WHERE r.deployment_id = %s", dep["id"])
    assert sorted(r[0] for r in rows) == sorted(acked)
    size = photo.stat().st_size + 36
    for rid, name, ctype, n in rows:
        assert (name, ctype, n) == ("1700000000000.jpg", "image/jpeg", size)
    # each photo its own bytes: the file, then the request's id (sealed at rest: read back through the API)
    for rid, name, _, _ in rows:
        data = bw.owner.api.get(f"/v1/responses/{rid}/attachments/{name}").content
        assert data == photo.read_bytes() + rid.encode()


@needs_fixtures
def test_openrosa_refusals_are_not_counted(bw):
    dep = xform_deployment(bw, "simple")
    token = app_token(bw, dep)
    # another form's instance: 404 from the server, nothing accepted, exit 1
    other = template(bw, "other.xml", SIMPLE.replace('id="simple"', 'id="not_this_form"'))
    rc, summary, out, acked = bench(bw, token, dep, "--openrosa", other, requests=3)
    assert rc == 1 and summary["accepted"] == 0 and summary["status"] == {"404": 3} and acked == [], out
    assert 'not accepted: 404 <message nature="error">no such form' in out  # the envelope's message, logged
    # templates fv-bench cannot use: refused before any request (exit 2, no summary)
    photo = bw.tmp / "p.jpg"
    photo.write_bytes(b"\xff\xd8\xff\xd9")
    for args, why in [
        (["--openrosa", template(bw, "noid.xml", SIMPLE.replace("uuid:{{uuid}}", "fixed"))], "uuid:{{uuid}}"),
        (["--openrosa", template(bw, "ph.xml", SIMPLE.replace("Bench", "{{name}}"))], "unknown placeholder"),
        (["--openrosa", template(bw, "noatt.xml", SIMPLE), "--attach", photo], "does not name the attachment"),
        (["--openrosa", bw.tmp / "missing.xml"], "cannot open"),
        (["--attach", photo], "need --openrosa"),
        (["--openrosa", template(bw, "s2.xml", SIMPLE), "--data", "{}"], "--data is for JSON"),
        (["--openrosa", template(bw, "s3.xml", SIMPLE), "--auth", "basic"], "email:password"),
    ]:
        rc, summary, out, acked = bench(bw, token, dep, *args, requests=1)
        assert rc == 2 and summary is None and why in out, (args, out)
    assert bw.c.psql("SELECT count(*) FROM responses WHERE deployment_id = %s", dep["id"]) == [(0,)]
