"""Answers sealed at rest (issue 12, docs/security.md "Answers at rest", migration 027): every
answer and location of a response, of each of its versions, of a refused and of a quarantined
submission is sealed under the organisation's data key by the program that writes it; pg_dump,
the data directory, the Redis AOF and the spool hold none in clear, and every reader (reads, lists,
history, the submission status, the export) opens them. A flipped byte or a value moved to another
row is an error naming the row; answers stored in clear (before 027) are sealed by the workers'
sweep, history included; a rotated data key seals them all again and the old one can be retired."""
import csv
import io
import json
import uuid
import zipfile

import pytest

from accesshelp import User, add_plain_member, ok
from fvharness import answers_sql, files_under, grep, new_id, wait_until
from test_exports import download, start_export, wait_done
from test_purge import pg_dump

DEF = {"questions": [
    {"name": "household", "type": "text", "label": "Household", "required": True},
    {"name": "members", "type": "integer", "label": "Members"},
    {"name": "home", "type": "geopoint", "label": "Home"},
]}


@pytest.fixture(scope="module")
def sw(workers):
    c = workers
    owner, enum, other = User(c, "sa owner"), User(c, "sa enum"), User(c, "sa other")
    org = ok(owner.api.post("/v1/orgs", json={"name": "Sealed answers org"}), 201)
    for u in (enum, other):
        add_plain_member(c, org["id"], u.id)
    s = ok(owner.api.post("/v1/surveys", json={"org_id": org["id"], "name": "sa", "definition": DEF}), 201)
    dep = ok(owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "sa", "roles": {"enumerators": [{"type": "user", "id": u.id} for u in (enum, other, owner)]}}),
        201)

    class W:
        pass
    w = W()
    w.c, w.owner, w.enum, w.other, w.org, w.survey, w.dep = c, owner, enum, other, org, s, dep
    yield w
    for u in (owner, enum, other):
        u.close()


def submit(w, api, data, rid=None, location=None):
    body = {"id": rid or new_id(), "data": data}
    if location:
        body["location"] = location
    return api.post(f"/v1/deployments/{w.dep['id']}/responses", json=body)


def readable(w, rid):
    def get():
        r = w.owner.api.get(f"/v1/responses/{rid}")
        return r.json() if r.status_code == 200 else None
    return wait_until(get, 60, what=f"response {rid}")


def row_kv(w, rid):
    return w.c.psql("SELECT answers_kv FROM responses WHERE id = %s", rid)[0][0]


def test_answers_sealed_nowhere_in_clear(sw):
    w, c = sw, sw.c
    tag = uuid.uuid4().hex[:12]
    house, edited, theirs, held = (f"SEALANS{tag}", f"SEALEDIT{tag}", f"SEALREF{tag}", f"SEALQUA{tag}")
    lat, hlat = "12.34567891234", "-3.98765432109"
    rid = new_id()
    r = submit(w, w.enum.api, {"household": house, "members": 4, "home": {"lat": float(hlat), "lon": 7.5}},
               rid, {"lat": float(lat), "lon": 45.5})
    assert r.status_code == 202, r.text
    got = readable(w, rid)
    assert got["data"]["household"] == house and got["location"]["lat"] == float(lat)
    assert got["data"]["home"]["lat"] == float(hlat)
    # an edit, a refused copy under the same id (another submitter), a quarantined submission
    ok(w.owner.api.patch(f"/v1/responses/{rid}", json={"data": {"household": edited, "members": 5}}))
    r = submit(w, w.other.api, {"household": theirs}, rid)
    assert r.status_code == 409, r.text
    c.wait_drained()
    wait_until(lambda: w.other.api.get(f"/v1/submissions/{rid}").json().get("status") == "refused", 60,
               what="the refused copy")
    st = w.other.api.get(f"/v1/submissions/{rid}").json()
    assert st["entry"]["data"] == {"household": theirs}, st
    qid = new_id()
    c.psql("INSERT INTO quarantine (id, deployment_id, submitted_by, data, received_at, reason) "
           "VALUES (%s, %s, %s, %s, now(), 'test')", qid, w.dep["id"], w.enum.id, json.dumps({"household": held}))
    wait_until(lambda: c.psql("SELECT answers_kv FROM quarantine WHERE id = %s", qid)[0][0] is not None, 90,
               what="the sweep to seal the quarantined answers")
    q = c.psql_opened("SELECT jsonb_build_object(" + answers_sql("q") + ") FROM quarantine q WHERE id = %s", qid)
    assert q[0]["data"] == {"household": held}
    # every reader opens them: the read, the history (both versions), the list, the export
    assert ok(w.owner.api.get(f"/v1/responses/{rid}"))["data"]["household"] == edited
    hist = ok(w.owner.api.get(f"/v1/responses/{rid}/history"))["items"]
    assert [i["state"]["data"]["household"] for i in hist] == [house, edited]
    items = ok(w.owner.api.get(f"/v1/surveys/{w.survey['id']}/responses"))["items"]
    assert [i["data"]["household"] for i in items if i["id"] == rid] == [edited]
    job = start_export(w.owner.api, w.org["id"])
    wait_done(w.owner.api, job["id"])
    z = zipfile.ZipFile(io.BytesIO(download(w.owner.api, job["id"])))
    sdir = f"surveys/{w.survey['id']}/"
    lines = [json.loads(x) for x in z.read(sdir + "responses.jsonl").splitlines()]
    assert [x["data"]["household"] for x in lines if x["id"] == rid] == [edited]
    assert not any("_fv" in x for x in lines)
    rows = list(csv.DictReader(io.StringIO(z.read(sdir + "responses.csv").decode())))
    mine = [x for x in rows if x["id"] == rid]
    assert len(mine) == 1 and mine[0]["household"] == edited and mine[0]["latitude"] == lat, mine
    hist_lines = z.read(sdir + "history.jsonl").decode()
    assert house in hist_lines and "_fv" not in hist_lines
    # ... and nothing holds them in clear: the dump, the data directory (tables and WAL, after a
    # checkpoint), the Redis AOF, the spool
    c.psql("CHECKPOINT")
    needles = [x.encode() for x in (house, edited, theirs, lat, hlat)]
    dump = pg_dump(c).encode()
    assert [n for n in needles + [held.encode()] if n in dump] == []
    # (the quarantined row was inserted here in clear, as a row from before 027, and sealed by the
    # sweep: its clear bytes are in this WAL and a dead tuple; the worker's own quarantine path
    # seals before it writes: test_degraded_db.py)
    assert grep(files_under(c.pg.data), needles) == []
    assert grep(files_under(c.base / "redis"), needles) == []
    assert grep(files_under(c.base / "spool"), needles) == []
    # the stored form: keys in clear, every value sealed under the org's key, bound to its row
    raw = c.psql("SELECT data, location, answers_kv FROM responses WHERE id = %s", rid)[0]
    assert sorted(raw[0]) == ["household", "members"] and all(isinstance(v, str) for v in raw[0].values())
    assert isinstance(raw[1], str) and raw[2] == 1


def test_flipped_byte_and_moved_answer_name_the_row(sw):
    w, c = sw, sw.c
    a, b = new_id(), new_id()
    for rid, h in ((a, "Flip A"), (b, "Flip B")):
        assert submit(w, w.enum.api, {"household": h, "members": 1}, rid).status_code == 202
        readable(w, rid)
    # a value moved from A to B does not open in B (bound to its submission): 500 naming B
    c.psql("ALTER TABLE responses DISABLE TRIGGER responses_history_on_update")
    try:
        c.psql("UPDATE responses SET data = jsonb_set(data, '{household}', "
               "(SELECT data->'household' FROM responses WHERE id = %s)) WHERE id = %s", a, b)
        r = w.owner.api.get(f"/v1/responses/{b}")
        assert r.status_code == 500 and b in r.json()["error"]["message"], r.text
        assert "Flip A" not in r.text
        # a flipped byte in A's answer: 500 naming A, never garbage
        v = c.psql("SELECT data->>'members' FROM responses WHERE id = %s", a)[0][0]
        flipped = v[:10] + ("A" if v[10] != "A" else "B") + v[11:]
        c.psql("UPDATE responses SET data = jsonb_set(data, '{members}', to_jsonb(%s::text)) WHERE id = %s",
               flipped, a)
        r = w.owner.api.get(f"/v1/responses/{a}")
        assert r.status_code == 500 and a in r.json()["error"]["message"] and "members" in r.text, r.text
        # a list holding it fails the same way (never a page with garbage)
        r = w.owner.api.get(f"/v1/surveys/{w.survey['id']}/responses")
        assert r.status_code == 500, r.text
    finally:
        c.psql("ALTER TABLE responses ENABLE TRIGGER responses_history_on_update")
    # put them right (their first version's state still holds the true values)
    c.psql("ALTER TABLE responses DISABLE TRIGGER responses_history_on_update")
    try:
        c.psql("UPDATE responses r SET data = e.state->'data' FROM response_events e "
               "WHERE e.response_id = r.id AND e.version = r.version AND r.id IN (%s, %s)", a, b)
    finally:
        c.psql("ALTER TABLE responses ENABLE TRIGGER responses_history_on_update")
    assert ok(w.owner.api.get(f"/v1/responses/{b}"))["data"]["household"] == "Flip B"


def test_answers_in_clear_are_sealed_by_the_sweep_with_their_history(sw):
    """A response written before 027 (answers and every version's state in clear) is sealed by the
    workers' sweep in place: the row and its history, nothing else changed; reads agree."""
    w, c = sw, sw.c
    rid, marker = new_id(), f"SWEEPANS{uuid.uuid4().hex[:10]}"
    assert submit(w, w.enum.api, {"household": marker, "members": 2}, rid,
                  {"lat": 1.25, "lon": 2.5}).status_code == 202
    readable(w, rid)
    ok(w.owner.api.patch(f"/v1/responses/{rid}", json={"data": {"household": marker + "x", "members": 3}}))
    before = ok(w.owner.api.get(f"/v1/responses/{rid}/history"))["items"]
    # as 026 left it: in clear everywhere (as the superuser, the history's triggers off)
    opened = c.psql_opened("SELECT jsonb_build_object(" + answers_sql("r") + ") FROM responses r WHERE id = %s", rid)
    states = c.psql_opened(
        "SELECT jsonb_build_object('v', e.version, 'data', e.state->'data', 'location', e.state->'location', "
        "'_fv', fv_answers_hint(e.response_id, %s::uuid, (e.state->>'answers_kv')::int)) "
        "FROM response_events e WHERE e.response_id = %s ORDER BY e.version", w.org["id"], rid)
    c.psql("ALTER TABLE responses DISABLE TRIGGER responses_history_on_update")
    c.psql("ALTER TABLE response_events DISABLE TRIGGER response_events_append_only")
    try:
        c.psql("UPDATE responses SET data = %s, location = %s, answers_kv = NULL WHERE id = %s",
               json.dumps(opened[0]["data"]), json.dumps(opened[0]["location"]), rid)
        for s in states:
            c.psql("UPDATE response_events SET state = (state - 'answers_kv') || jsonb_build_object('data', %s::jsonb, "
                   "'location', %s::jsonb), data = CASE WHEN data IS NULL THEN NULL ELSE %s::jsonb END, "
                   "location = CASE WHEN data IS NULL THEN NULL ELSE %s::jsonb END "
                   "WHERE response_id = %s AND version = %s", json.dumps(s["data"]), json.dumps(s["location"]),
                   json.dumps(s["data"]), json.dumps(s["location"]), rid, s["v"])
    finally:
        c.psql("ALTER TABLE response_events ENABLE TRIGGER response_events_append_only")
        c.psql("ALTER TABLE responses ENABLE TRIGGER responses_history_on_update")
    wait_until(lambda: row_kv(w, rid) is not None, 90, what="the sweep to seal the answers in clear")
    text = json.dumps(c.psql("SELECT data, location, (SELECT jsonb_agg(state) FROM response_events "
                             "WHERE response_id = %s) FROM responses WHERE id = %s", rid, rid))
    assert marker not in text and "1.25" not in text
    assert ok(w.owner.api.get(f"/v1/responses/{rid}/history"))["items"] == before
    assert c.psql("SELECT answers_seal_error FROM responses WHERE id = %s", rid) == [(None,)]


def test_rotation_reseals_the_answers_then_retires_the_old_key(sw):
    w, c = sw, sw.c
    rid = new_id()
    assert submit(w, w.enum.api, {"household": "Rotate me", "members": 2}, rid).status_code == 202
    readable(w, rid)
    ok(w.owner.api.patch(f"/v1/responses/{rid}", json={"data": {"household": "Rotated", "members": 2}}))
    before = c.psql("SELECT max(version) FROM data_keys WHERE scope = %s", "org:" + w.org["id"])[0][0]
    r = c.fvctl("rotate-data-key", "--org", w.org["id"], "--wait", "--timeout", "120", "--retire")
    assert "older version(s) deleted" in r.stdout, r.stdout
    assert c.psql("SELECT array_agg(version) FROM data_keys WHERE scope = %s", "org:" + w.org["id"]) == \
        [([before + 1],)]
    assert row_kv(w, rid) == before + 1
    kvs = c.psql("SELECT array_agg(DISTINCT (state->>'answers_kv')::int) FROM response_events WHERE response_id = %s",
                 rid)[0][0]
    assert kvs == [before + 1]
    assert ok(w.owner.api.get(f"/v1/responses/{rid}"))["data"]["household"] == "Rotated"
    hist = ok(w.owner.api.get(f"/v1/responses/{rid}/history"))["items"]
    assert [i["state"]["data"]["household"] for i in hist] == ["Rotate me", "Rotated"]
    # a retry of the first submission is still a retry (compared sealed, under the new key)
    assert submit(w, w.enum.api, {"household": "Rotate me", "members": 2}, rid).status_code == 202
    c.wait_drained()
    assert c.psql("SELECT count(*) FROM refused_submissions WHERE id = %s", rid) == [(0,)]
