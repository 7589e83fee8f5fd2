"""Envelope encryption at rest of the OpenRosa side (issue 12, docs/security.md "Envelope
encryption", migrations 025 and 026): an instance's XML and its attachments (photos) are sealed under
their organisation's data key, itself wrapped by the master key, before they reach PostgreSQL, so
neither pg_dump, nor the data directory (tables, WAL), nor the Redis AOF holds them in clear; every
reader (the API, the export) opens them; a flipped byte or a value moved to another row is an error
that names the row, never garbage; values stored in clear before 026 are sealed by the workers'
sweep; `fvctl rotate-data-key` adds a version, the sweep seals everything again under it, and
--retire deletes the old one."""
import base64
import hashlib
import io
import json
import os
import pathlib
import uuid
import zipfile

import pytest

from accesshelp import User, add_plain_member, ok
from fvharness import files_under, grep, wait_until
from test_exports import download, start_export, wait_done
from test_purge import pg_dump

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk"
pytestmark = pytest.mark.skipif(not (FIXTURES / "forms").is_dir(), reason="no ODK fixtures")


def key_id(hexkey):
    return hashlib.sha256(bytes.fromhex(hexkey)).hexdigest()[:8]


@pytest.fixture(scope="module")
def ew(workers):
    c = workers
    owner, enum = User(c, "env owner"), User(c, "env enum")
    org = ok(owner.api.post("/v1/orgs", json={"name": "Envelope org"}), 201)
    add_plain_member(c, org["id"], enum.id)
    xml = (FIXTURES / "forms/binaryType.xml").read_text()
    s = ok(owner.api.post("/v1/surveys", json={"org_id": org["id"], "name": "bin", "xform": xml}), 201)
    dep = ok(owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "bin", "roles": {"enumerators": [{"type": "user", "id": enum.id},
                                                 {"type": "user", "id": owner.id}]}}), 201)

    class W:
        pass
    w = W()
    w.c, w.owner, w.enum, w.org, w.survey, w.dep = c, owner, enum, org, s, dep
    # One more worker of the group whose re-seal sweep comes every 200 ms: the session's workers
    # sweep every 10 s (reseal_sweep_ms' default), and the tests below wait for a sweep (the
    # rotation's --wait, a repaired value) up to three times each. The same sweep, sooner.
    sweeper = c.start_worker("env-sweep", FV_RESEAL_SWEEP_MS="200")
    yield w
    c.stop_worker(sweeper)
    owner.close()
    enum.close()


def instance(iid, comment, f1="", f2=""):
    # the comment is kept byte for byte in the XML and nowhere else (no answer holds it)
    return (f'<data id="binaryType"><!-- {comment} --><meta><instanceID>uuid:{iid}</instanceID></meta>'
            f'<file1>{f1}</file1><file2>{f2}</file2></data>').encode()


def submit(w, xml, attachments=()):
    files = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
    files += [(n, (n, d, "image/jpeg")) for n, d in attachments]
    r = w.enum.api.post(f"/v1/openrosa/deployments/{w.dep['id']}/submission", files=files,
                        headers={"X-OpenRosa-Version": "1.0"})
    assert r.status_code == 201, (r.status_code, r.text[:400])
    return r


def submitted(w, tag):
    """A stored submission with marker comment and photo: (response id, xml, photo, markers)."""
    rid = str(uuid.uuid4())
    xmark, pmark = f"XMLSEAL{tag}", f"PHOTOSEAL{tag}"
    photo = pmark.encode() + os.urandom(3000) + pmark.encode()
    xml = instance(rid, xmark, f"{tag}.jpg")
    submit(w, xml, [(f"{tag}.jpg", photo)])
    return rid, xml, photo, [xmark.encode(), pmark.encode()]


def read_back(w, rid, name, xml, photo):
    r = w.owner.api.get(f"/v1/responses/{rid}/xml")
    assert r.status_code == 200 and r.content == xml, (r.status_code, r.text[:300])
    r = w.owner.api.get(f"/v1/responses/{rid}/attachments/{name}")
    assert r.status_code == 200 and r.content == photo, (r.status_code, r.text[:300])


def versions(w, rid):
    return w.c.psql("SELECT (SELECT key_version FROM response_xml WHERE response_id = %s), "
                    "(SELECT array_agg(b.key_version) FROM attachment_blobs b JOIN response_attachments a "
                    " ON a.org_id = b.org_id AND a.sha256 = b.sha256 WHERE a.response_id = %s)", rid, rid)[0]


def test_xml_and_photo_sealed_nowhere_in_clear(ew):
    w, c = ew, ew.c
    tag = uuid.uuid4().hex[:12]
    rid, xml, photo, needles = submitted(w, tag)
    read_back(w, rid, f"{tag}.jpg", xml, photo)
    # one data key for the org, wrapped under the master key; the values name its version
    keys = c.psql("SELECT version, wrapped FROM data_keys WHERE scope = %s", "org:" + w.org["id"])
    master = c.master_key.read_text().split()[0]
    assert [k[0] for k in keys] == [1] and keys[0][1].startswith(f"s1.{key_id(master)}."), keys
    assert master not in keys[0][1]
    assert versions(w, rid) == (1, [1])
    body = c.psql("SELECT body FROM response_xml WHERE response_id = %s", rid)[0][0]
    assert bytes(body[:4]) == b"FVD1" and len(body) == len(xml) + 36
    # nowhere in clear: the dump, the data directory (tables and WAL, after a checkpoint), the AOF
    c.psql("CHECKPOINT")
    dump = pg_dump(c).encode()
    assert [n for n in needles if n in dump] == []
    assert grep(files_under(c.pg.data), needles) == []
    assert grep(files_under(c.base / "redis"), needles) == []
    # the export opens them
    job = start_export(w.owner.api, w.org["id"])
    wait_done(w.owner.api, job["id"])
    z = zipfile.ZipFile(io.BytesIO(download(w.owner.api, job["id"])))
    sdir = f"surveys/{w.survey['id']}/"
    inst = [json.loads(x) for x in z.read(sdir + "instances.jsonl").splitlines()]
    assert [i["xml"] for i in inst if i["response_id"] == rid] == [xml.decode()]
    atts = [json.loads(x) for x in z.read(sdir + "attachments.jsonl").splitlines()]
    got = [a for a in atts if a["response_id"] == rid]
    assert len(got) == 1 and base64.b64decode(got[0]["content_base64"]) == photo
    assert got[0]["sha256"] == hashlib.sha256(photo).hexdigest() and got[0]["size"] == len(photo)


def test_same_instance_again_and_an_edit_stay_sealed(ew):
    w, c = ew, ew.c
    tag = uuid.uuid4().hex[:12]
    rid, xml, photo, needles = submitted(w, tag)
    # the same instance again (Collect's retry): 201, nothing new
    submit(w, xml, [(f"{tag}.jpg", photo)])
    assert c.psql("SELECT count(*) FROM response_xml WHERE response_id = %s", rid) == [(1,)]
    # an edit (meta/deprecatedID) by the owner: a new XML and photo, sealed by the front end
    new_iid = str(uuid.uuid4())
    photo2 = b"EDITPHOTO" + os.urandom(500)
    xml2 = (f'<data id="binaryType"><!-- EDITSEAL{tag} --><meta><instanceID>uuid:{new_iid}</instanceID>'
            f'<deprecatedID>uuid:{rid}</deprecatedID></meta><file1>e{tag}.jpg</file1><file2></file2></data>').encode()
    files = [("xml_submission_file", ("submission.xml", xml2, "text/xml")),
             (f"e{tag}.jpg", (f"e{tag}.jpg", photo2, "image/jpeg"))]
    r = w.owner.api.post(f"/v1/openrosa/deployments/{w.dep['id']}/submission", files=files,
                         headers={"X-OpenRosa-Version": "1.0"})
    assert r.status_code == 201, r.text[:400]
    read_back(w, rid, f"e{tag}.jpg", xml2, photo2)
    # both versions' XML kept (history names each by digest), both sealed
    rows = c.psql("SELECT sha256, key_version FROM response_xml WHERE response_id = %s ORDER BY created_at", rid)
    assert [bytes(r[0]).hex() for r in rows] == [hashlib.sha256(xml).hexdigest(), hashlib.sha256(xml2).hexdigest()]
    assert all(r[1] == 1 for r in rows)
    states = c.psql("SELECT state->>'xml_sha256' FROM response_events WHERE response_id = %s ORDER BY version", rid)
    assert states == [("\\x" + hashlib.sha256(xml).hexdigest(),), ("\\x" + hashlib.sha256(xml2).hexdigest(),)]
    dump = pg_dump(c).encode()
    assert [n for n in needles + [f"EDITSEAL{tag}".encode()] if n in dump] == []


def test_flipped_byte_and_moved_value_name_the_row(ew):
    w, c = ew, ew.c
    a, xml_a, photo_a, _ = submitted(w, uuid.uuid4().hex[:12])
    b, xml_b, _, _ = submitted(w, uuid.uuid4().hex[:12])
    name_a = xml_a.decode().split("<file1>")[1].split("<")[0]
    orig = c.psql("SELECT body FROM response_xml WHERE response_id = %s", a)[0][0]
    # a flipped byte in the ciphertext
    c.psql("UPDATE response_xml SET body = set_byte(body, 40, get_byte(body, 40) # 1) WHERE response_id = %s", a)
    r = w.owner.api.get(f"/v1/responses/{a}/xml")
    assert r.status_code == 500 and a in r.json()["error"]["message"], r.text
    assert xml_a not in r.content
    c.psql("UPDATE response_xml SET body = %s WHERE response_id = %s", orig, a)
    assert w.owner.api.get(f"/v1/responses/{a}/xml").content == xml_a
    # b's sealed XML copied over a's: bound to b's row, it does not open as a's
    c.psql("UPDATE response_xml SET body = (SELECT body FROM response_xml WHERE response_id = %s) "
           "WHERE response_id = %s", b, a)
    r = w.owner.api.get(f"/v1/responses/{a}/xml")
    assert r.status_code == 500 and a in r.json()["error"]["message"] and xml_b not in r.content, r.text
    c.psql("UPDATE response_xml SET body = %s WHERE response_id = %s", orig, a)
    # a flipped byte in a photo
    sha = hashlib.sha256(photo_a).digest()
    c.psql("UPDATE attachment_blobs SET data = set_byte(data, 100, get_byte(data, 100) # 128) "
           "WHERE org_id = %s AND sha256 = %s", w.org["id"], sha)
    r = w.owner.api.get(f"/v1/responses/{a}/attachments/{name_a}")
    assert r.status_code == 500 and "attachment" in r.json()["error"]["message"], r.text
    # the export fails naming the row rather than writing garbage
    job = start_export(w.owner.api, w.org["id"])
    j = wait_until(lambda: (lambda x: x if x["state"] in ("done", "failed") else None)(
        ok(w.owner.api.get(f"/v1/jobs/{job['id']}"))), 180, what="the export to end")
    assert j["state"] == "failed" and any(a in e["error"] and "does not open" in e["error"] for e in j["errors"]), j
    c.psql("UPDATE attachment_blobs SET data = set_byte(data, 100, get_byte(data, 100) # 128) "
           "WHERE org_id = %s AND sha256 = %s", w.org["id"], sha)
    assert w.owner.api.get(f"/v1/responses/{a}/attachments/{name_a}").content == photo_a


def test_values_in_clear_are_sealed_by_the_sweep(ew):
    """What 026 moved into response_xml and attachment_blobs in clear (stored before it) is sealed
    by the workers' sweep, and reads work before and after."""
    w, c = ew, ew.c
    tag = uuid.uuid4().hex[:12]
    rid, xml, photo, _ = submitted(w, tag)
    sha = hashlib.sha256(photo).digest()
    c.psql("UPDATE response_xml SET body = %s, key_version = NULL WHERE response_id = %s", xml, rid)
    c.psql("UPDATE attachment_blobs SET data = %s, key_version = NULL WHERE org_id = %s AND sha256 = %s",
           photo, w.org["id"], sha)
    assert versions(w, rid) == (None, [None])
    read_back(w, rid, f"{tag}.jpg", xml, photo)  # in clear: read as it is
    wait_until(lambda: versions(w, rid) == (1, [1]), 90, what="the sweep to seal the values in clear")
    body = c.psql("SELECT body FROM response_xml WHERE response_id = %s", rid)[0][0]
    assert bytes(body[:4]) == b"FVD1" and xml not in bytes(body)
    read_back(w, rid, f"{tag}.jpg", xml, photo)


def test_rotate_data_key_reseals_everything_then_retires_the_old(ew):
    w, c = ew, ew.c
    tag = uuid.uuid4().hex[:12]
    rid, xml, photo, _ = submitted(w, tag)
    before = c.psql("SELECT max(version) FROM data_keys WHERE scope = %s", "org:" + w.org["id"])[0][0]
    r = c.fvctl("rotate-data-key", "--org", w.org["id"], "--wait", "--timeout", "120", "--retire")
    assert f"data key version {before + 1}" in r.stdout and "older version(s) deleted" in r.stdout, r.stdout
    assert c.psql("SELECT array_agg(version) FROM data_keys WHERE scope = %s", "org:" + w.org["id"]) == [([before + 1],)]
    left = c.psql("SELECT count(*) FROM response_xml WHERE org_id = %s AND key_version IS DISTINCT FROM %s",
                  w.org["id"], before + 1)
    assert left == [(0,)]
    assert versions(w, rid) == (before + 1, [before + 1])
    read_back(w, rid, f"{tag}.jpg", xml, photo)
    # new submissions go under the new version at once
    rid2, xml2, photo2, _ = submitted(w, uuid.uuid4().hex[:12])
    assert versions(w, rid2) == (before + 1, [before + 1])
    # bad arguments and unknown orgs
    for args in (["--org", "nope"], [], ["--org", w.org["id"], "--retire"],
                 ["--org", str(uuid.uuid4())]):
        assert c.fvctl("rotate-data-key", *args, check=False).returncode != 0, args


def test_a_value_that_does_not_open_never_stalls_a_rotation(ew):
    """A tampered value met by the re-seal sweep is marked (seal_error) and left as it is; the sweep
    seals every other value; rotate-data-key --wait names it and exits 1, --retire keeps the version
    it is under; once an operator puts the value right and clears the mark, the sweep seals it."""
    w, c = ew, ew.c
    good, xml_g, photo_g, _ = submitted(w, uuid.uuid4().hex[:12])
    bad, xml_b, _, _ = submitted(w, uuid.uuid4().hex[:12])
    orig = c.psql("SELECT body FROM response_xml WHERE response_id = %s", bad)[0][0]
    c.psql("UPDATE response_xml SET body = set_byte(body, 50, get_byte(body, 50) # 4) WHERE response_id = %s", bad)
    before = c.psql("SELECT max(version) FROM data_keys WHERE scope = %s", "org:" + w.org["id"])[0][0]
    r = c.fvctl("rotate-data-key", "--org", w.org["id"], "--wait", "--timeout", "120", "--retire", check=False)
    assert r.returncode == 1 and "do not open" in r.stderr, (r.stdout, r.stderr)
    mark = c.psql("SELECT key_version, seal_error FROM response_xml WHERE response_id = %s", bad)[0]
    assert mark[0] == before and "does not open" in mark[1] and bad not in mark[1], mark
    assert versions(w, good) == (before + 1, [before + 1])
    read_back(w, good, xml_g.decode().split("<file1>")[1].split("<")[0], xml_g, photo_g)
    kept = c.psql("SELECT array_agg(version ORDER BY version) FROM data_keys WHERE scope = %s", "org:" + w.org["id"])
    assert kept == [([before, before + 1],)], kept
    # put right by an operator: the original bytes back, the mark cleared; the sweep seals it
    c.psql("UPDATE response_xml SET body = %s, seal_error = NULL WHERE response_id = %s", orig, bad)
    wait_until(lambda: c.psql("SELECT key_version FROM response_xml WHERE response_id = %s", bad) == [(before + 1,)],
               90, what="the sweep to seal the repaired value")
    assert w.owner.api.get(f"/v1/responses/{bad}/xml").content == xml_b
    r = c.fvctl("rotate-data-key", "--org", w.org["id"], "--wait", "--timeout", "120", "--retire")
    assert "older version(s) deleted" in r.stdout, r.stdout


def test_migration_026_moves_the_xml_out_of_the_responses(ew):
    """A database at 025 with OpenRosa XML in responses.xml and in the history's states: after 026
    the XML is in response_xml (in clear until the sweep), named by digest in the row and in every
    state, and no state holds it any more."""
    from test_history import sql_dir
    w = ew
    db = "env_migr_" + uuid.uuid4().hex[:8]
    admin = w.c.pg.connect()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} OWNER fieldvault")
    admin.close()
    conn = w.c.pg.connect(user="fieldvault", db=db, autocommit=True)
    try:
        files = sorted(sql_dir().glob("*.sql"))
        with conn.cursor() as cur:
            for f in files:
                if f.name < "026":
                    cur.execute(f.read_text())
            u, org, root, s, d, rid = (str(uuid.uuid4()) for _ in range(6))
            cur.execute("INSERT INTO users (id, email, name) VALUES (%s, 'm@example.org', 'M')", (u,))
            cur.execute("BEGIN; INSERT INTO orgs (id, name, root_branch_id, created_by) VALUES (%s, 'o', %s, %s);"
                        "INSERT INTO branches (id, org_id, name) VALUES (%s, %s, 'root'); COMMIT",
                        (org, root, u, root, org))
            cur.execute("INSERT INTO surveys (id, org_id, name, created_by) VALUES (%s, %s, 's', %s)", (s, org, u))
            cur.execute("INSERT INTO survey_versions (survey_id, version, definition, created_by) "
                        "VALUES (%s, 1, '{\"questions\": [{\"name\": \"q\", \"type\": \"text\"}]}', %s)", (s, u))
            cur.execute("INSERT INTO deployments (id, survey_id, name, branch_id, approval_stages, created_by) "
                        "VALUES (%s, %s, 'd', %s, 0, %s)", (d, s, root, u))
            x1, x2 = "<data><q>first</q></data>", "<data><q>second</q></data>"
            cur.execute("WITH i AS (INSERT INTO responses AS r (id, survey_id, survey_version, deployment_id, "
                        "submitted_by, status, stage, data, received_at, xml, instance_id) VALUES "
                        "(%s, %s, 1, %s, %s, 'final', 0, '{\"q\": \"first\"}', now(), %s, 'uuid:i1') "
                        "RETURNING r.*) INSERT INTO response_events (response_id, version, action, stage, status, "
                        "actor, state) SELECT id, 1, 'submit', 0, 'final', %s, to_jsonb(i) FROM i",
                        (rid, s, d, u, x1, u))
            cur.execute("WITH x AS (UPDATE responses r SET xml = %s, data = '{\"q\": \"second\"}', version = 2 "
                        "WHERE id = %s RETURNING r.*) INSERT INTO response_events (response_id, version, action, "
                        "stage, status, actor, state) SELECT id, 2, 'edit', 0, 'final', %s, to_jsonb(x) FROM x",
                        (x2, rid, u))
            cur.execute(next(f for f in files if f.name.startswith("026")).read_text())
            cur.execute("SELECT encode(sha256, 'hex'), convert_from(body, 'UTF8'), key_version FROM response_xml "
                        "WHERE response_id = %s ORDER BY 2", (rid,))
            assert cur.fetchall() == [(hashlib.sha256(x1.encode()).hexdigest(), x1, None),
                                      (hashlib.sha256(x2.encode()).hexdigest(), x2, None)]
            cur.execute("SELECT version, state ? 'xml', state->>'xml_sha256' FROM response_events "
                        "WHERE response_id = %s ORDER BY version", (rid,))
            assert cur.fetchall() == [(1, False, "\\x" + hashlib.sha256(x1.encode()).hexdigest()),
                                      (2, False, "\\x" + hashlib.sha256(x2.encode()).hexdigest())]
            cur.execute("SELECT encode(xml_sha256, 'hex'), (SELECT state FROM response_events WHERE response_id = r.id "
                        "AND version = 2) = to_jsonb(r) FROM responses r WHERE id = %s", (rid,))
            assert cur.fetchall() == [(hashlib.sha256(x2.encode()).hexdigest(), True)]
    finally:
        conn.close()
        admin = w.c.pg.connect()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        admin.close()
