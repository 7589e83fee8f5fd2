"""Pseudonymisation (issue 11): POST /v1/surveys/{id}/purge removes questions' answers from every
response of the survey, from every stored version of its history (through the audited
fv_history_purge_begin) and from submissions queued before the purge; afterwards pg_dump of the
database holds none of the purged values."""
import io
import json
import subprocess
import uuid
import zipfile

import pytest

import psycopg2

from accesshelp import P, User, add_plain_member, denied, ok, submit_and_wait
from fvharness import PG_BIN, answers_sql, new_id, wait_until
from test_totp_policy import _totp_admin

DEF = {"questions": [
    {"name": "household", "type": "text", "label": "Household", "required": True},
    {"name": "phone", "type": "text", "label": "Phone", "required": False},
    {"name": "note", "type": "text", "label": "Note", "required": False},
]}


@pytest.fixture(scope="module")
def pw(workers):
    c = workers
    mfa, plain, keyed, admin_id = _totp_admin(c)
    enum = User(c, "purge enumerator")
    org = ok(mfa.post("/v1/orgs", json={"name": "Purge org"}), 201)
    add_plain_member(c, org["id"], enum.id)
    survey = ok(mfa.post("/v1/surveys", json={"org_id": org["id"], "name": "Purge", "definition": DEF}), 201)
    dep = ok(mfa.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "d", "roles": {"enumerators": [P("user", enum.id)], "managers": [P("user", admin_id)]}}), 201)

    class W:
        pass
    w = W()
    w.c, w.mfa, w.plain, w.keyed, w.admin_id, w.enum, w.org, w.survey, w.dep = \
        c, mfa, plain, keyed, admin_id, enum, org, survey, dep
    yield w
    for a in (mfa, plain, keyed):
        a.close()
    enum.close()


def marker(tag):
    return f"MARKER-{tag}-{uuid.uuid4().hex}"


def pg_dump(c):
    r = subprocess.run(c.pg._as_pg([PG_BIN / "pg_dump", "-h", c.pg.sock, "-p", c.pg.port, "-U", "postgres",
                                    "fieldvault"]), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def opened_store(c, org):
    """Every answer org's responses store, opened (they are sealed at rest, migration 027): the
    responses, every version's state, the refused and the quarantined submissions, as one JSON
    text."""
    mine = "SELECT r.id FROM responses r JOIN surveys s ON s.id = r.survey_id WHERE s.org_id = %s"
    rows = c.psql_opened("SELECT jsonb_build_object(" + answers_sql("r") + ") FROM responses r "
                         "WHERE r.id IN (" + mine + ")", org)
    rows += c.psql_opened("SELECT jsonb_build_object('data', e.state->'data', 'location', e.state->'location', "
                          "'_fv', fv_answers_hint(e.response_id, %s::uuid, (e.state->>'answers_kv')::int)) "
                          "FROM response_events e WHERE e.response_id IN (" + mine + ")", org, org)
    for t in ("refused_submissions", "quarantine"):
        rows += c.psql_opened("SELECT jsonb_build_object(" + answers_sql("x") + f") FROM {t} x "
                              "WHERE fv_deployment_org(x.deployment_id) = %s", org)
    return json.dumps(rows)


def wait_job(api, jid, timeout=120):
    def ended():
        j = ok(api.get(f"/v1/jobs/{jid}"))
        return j if j["state"] in ("done", "failed") else None
    return wait_until(ended, timeout, what=f"job {jid} to end")


def export_zip(w):
    """A whole-org export of w's org by its admin: (export id, ZipFile)."""
    eid = ok(w.mfa.post(f"/v1/orgs/{w.org['id']}/exports"), 202)["id"]
    assert wait_job(w.mfa, eid)["state"] == "done"
    r = w.mfa.get(f"/v1/exports/{eid}")
    assert r.status_code == 200, r.text[:300]
    return eid, zipfile.ZipFile(io.BytesIO(r.content))


def test_purge_leaves_no_value_in_pg_dump(pw):
    w, c = pw, pw.c
    E = w.enum.api
    purged, kept = [], []
    rids = []
    for i in range(5):
        phone, note, house = marker(f"phone{i}"), marker(f"note{i}"), marker(f"house{i}")
        purged += [phone, note]
        kept.append(house)
        rids.append(submit_and_wait(E, w.dep["id"], {"household": house, "phone": phone, "note": note})["id"])
    # edits: older versions hold the first values, the current one others
    for i in (0, 1):
        phone = marker(f"edited{i}")
        purged.append(phone)
        ok(w.mfa.patch(f"/v1/responses/{rids[i]}", json={"data": {"household": kept[i], "phone": phone}}))
    ok(w.mfa.delete(f"/v1/responses/{rids[2]}"), 204)          # deleted ones too
    # an export made before the purge holds the values (inside its zip, in PostgreSQL): the purge
    # withdraws it; so it does one still being built (a job no worker runs: 'done' already)
    old_export = export_zip(w)
    old_text = "".join(old_export[1].read(n).decode() for n in old_export[1].namelist())
    assert purged[0] in old_text and purged[-1] in old_text
    building = new_id()
    c.psql("INSERT INTO jobs (id, org_id, kind, created_by, state, finished_at) "
           "VALUES (%s, %s, 'export', %s, 'done', now())", building, w.org["id"], w.admin_id)
    c.psql("INSERT INTO exports (id, org_id, created_by) VALUES (%s, %s, %s)", building, w.org["id"], w.admin_id)
    # queued before the purge, not yet written: the workers are stopped
    c.stop_all_workers()
    try:
        queued_phone, queued_house = marker("queued"), marker("queued-house")
        purged.append(queued_phone)
        kept.append(queued_house)
        qid = new_id()
        ok(E.post(f"/v1/deployments/{w.dep['id']}/responses",
                  json={"id": qid, "data": {"household": queued_house, "phone": queued_phone}}), 202)
        jid = ok(w.mfa.post(f"/v1/surveys/{w.survey['id']}/purge",
                            json={"questions": ["phone", "note"], "reason": "identifying answers"}), 202)["job_id"]
    finally:
        c.start_default_workers()
    j = wait_job(w.mfa, jid)
    assert j["state"] == "done", j
    c.wait_drained()
    wait_until(lambda: c.psql("SELECT count(*) FROM responses WHERE id = %s", qid)[0][0] == 1, 60,
               what="the queued submission to be written")
    assert j["progress"]["responses"] == 5 and j["progress"]["done"] >= 5, j["progress"]
    assert j["progress"]["versions"] >= 7, j["progress"]
    # after the purge a new answer to the question is kept (only what was received before goes)
    later = marker("after-purge")
    kept.append(later)
    after_id = submit_and_wait(E, w.dep["id"], {"household": "later", "phone": later})["id"]
    dump, store = pg_dump(c), opened_store(c, w.org["id"])
    for v in purged:
        assert v not in dump and v not in store, v
    for v in kept:  # kept, and sealed: never in the dump in clear
        assert v in store and v not in dump, v
    # the exports made before: withdrawn, their bytes gone, audited; a chunk cannot be added back
    for eid in (old_export[0], building):
        assert c.psql("SELECT state FROM exports WHERE id = %s", eid) == [("withdrawn",)], eid
        assert c.psql("SELECT count(*) FROM export_chunks WHERE export_id = %s", eid) == [(0,)], eid
        assert c.psql("SELECT actor::text, detail->>'reason', detail->>'job_id' FROM audit "
                      "WHERE action = 'export.withdrawn' AND target_id = %s", eid) == [(w.admin_id, "purge", jid)]
    denied(w.mfa.get(f"/v1/exports/{old_export[0]}"), 410, "export_withdrawn")
    conn = c.pg.connect(user="fieldvault", autocommit=True)
    try:
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error, match="only while it is being built"):
                cur.execute("INSERT INTO export_chunks (export_id, seq, data) VALUES (%s, 0, '\\x00')",
                            (building,))
    finally:
        conn.close()
    # an export made after the purge holds none of the purged values and the kept ones
    new_export = export_zip(w)
    new_text = "".join(new_export[1].read(n).decode() for n in new_export[1].namelist())
    for v in purged:
        assert v not in new_text, v
    for v in kept:
        assert v in new_text, v
    g = ok(w.mfa.get(f"/v1/responses/{rids[0]}"))
    assert "phone" not in g["data"] and g["data"]["household"] == kept[0], g
    ops = [v["operation"] for v in ok(w.mfa.get(f"/v1/responses/{rids[0]}/history"))["items"]]
    assert ops == ["submit", "edit", "purge"], ops
    assert ok(w.mfa.get(f"/v1/responses/{after_id}"))["data"]["phone"] == later
    # audited: who, which questions, why; each step's history purge; the end with the counts
    rows = c.psql("SELECT actor::text, detail->'questions', detail->>'reason' FROM audit "
                  "WHERE action = 'survey.purge' AND detail->>'job_id' = %s", jid)
    assert rows == [(w.admin_id, ["note", "phone"], "identifying answers")], rows
    assert c.psql("SELECT count(*) FROM audit WHERE action = 'history.purge' AND detail->>'job_id' = %s",
                  jid)[0][0] >= 1
    end = c.psql("SELECT actor::text, detail->'progress' FROM audit WHERE action = 'job.done' AND target_id = %s", jid)
    assert end == [(w.admin_id, j["progress"])], end


def test_purge_bad_input_and_totp(pw):
    w = pw
    path = f"/v1/surveys/{w.survey['id']}/purge"
    e = denied(w.mfa.post(path, json={"questions": ["phone", "nope"], "reason": "x"}), 422, "validation_failed")
    assert "nope" in e["fields"]["questions"], e
    for body in ({"questions": [], "reason": "x"}, {"questions": "phone", "reason": "x"},
                 {"questions": [1], "reason": "x"}, {"questions": ["phone"]}, {"questions": ["phone"], "reason": ""}):
        denied(w.mfa.post(path, json=body), 422, "validation_failed")
    # a survey admin without a TOTP session: refused (a key, a password-only session)
    for api in (w.keyed, w.plain):
        denied(api.post(path, json={"questions": ["phone"], "reason": "x"}), 403, "totp_required")
    denied(w.enum.api.post(path, json={"questions": ["phone"], "reason": "x"}), 403, "forbidden")
    denied(w.mfa.post(f"/v1/surveys/{new_id()}/purge", json={"questions": ["phone"], "reason": "x"}), 404)
    assert w.c.psql("SELECT count(*) FROM jobs WHERE kind = 'purge' AND params->>'survey_id' = %s "
                    "AND created_at > now() - interval '1 minute' AND params->'questions' ? 'nope'",
                    w.survey["id"])[0][0] == 0


def test_entry_queued_before_the_purge_and_quarantined_after_it_is_stripped(pw):
    """Work queued before a purge and not yet written that the worker quarantines after the purge
    ended (its submitter was removed from the org meanwhile: issue 10) loses the purged answers
    too: the job's own pass over the quarantine ran before the entry got there."""
    w, c = pw, pw.c
    leaver = User(c, "purge leaver")
    lock = None
    try:
        add_plain_member(c, w.org["id"], leaver.id)
        dep = ok(w.mfa.post(f"/v1/surveys/{w.survey['id']}/deployments", json={
            "name": "leaver's", "roles": {"enumerators": [P("user", leaver.id)]}}), 201)["id"]
        submit_and_wait(leaver.api, dep, {"household": "warm-up"})  # the front end knows the role
        phone, house = marker("quarantined-phone"), marker("quarantined-house")
        c.wait_drained()
        c.stop_all_workers()
        qid = new_id()
        ok(leaver.api.post(f"/v1/deployments/{dep}/responses",
                           json={"id": qid, "data": {"household": house, "phone": phone}}), 202)
        ok(w.mfa.delete(f"/v1/orgs/{w.org['id']}/members/{leaver.id}"), 204)
        jid = ok(w.mfa.post(f"/v1/surveys/{w.survey['id']}/purge",
                            json={"questions": ["phone"], "reason": "after the leaver"}), 202)["job_id"]
        # the worker's quarantine INSERT waits (ON CONFLICT on its id) for an uncommitted row of
        # the same id until the purge job has ended; the job cannot see that row
        lock = psycopg2.connect(c.pg.dsn(user="postgres"))
        lock.cursor().execute("INSERT INTO quarantine (id, deployment_id, submitted_by, data, received_at, reason) "
                              "VALUES (%s, %s, %s, '{}', now(), 'placeholder')", (qid, dep, leaver.id))
        for n in ("p1", "p2"):
            c.start_worker(n, FV_JOBS_LEASE_MS="1500", FV_JOBS_POLL_MS="50")
        assert wait_job(w.mfa, jid)["state"] == "done"
        wait_until(lambda: c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fv-worker' "
                                  "AND wait_event_type = 'Lock'")[0][0] == 1, 60,
                   what="the worker's quarantine INSERT to wait")
        assert c.psql("SELECT count(*) FROM quarantine WHERE id = %s", qid) == [(0,)]
        lock.rollback()
        wait_until(lambda: c.psql("SELECT 1 FROM quarantine WHERE id = %s", qid), 60, what="the quarantine row")
    finally:
        if lock is not None:
            lock.close()
        c.stop_all_workers()
        c.start_default_workers()
        leaver.close()
    data = c.psql_opened("SELECT jsonb_build_object('reason', reason, " + answers_sql("q") + ") "
                         "FROM quarantine q WHERE id = %s", qid)[0]
    assert data["data"] == {"household": house}, data
    assert "revoked" in data["reason"]
    dump = pg_dump(c)
    assert phone not in dump and house not in dump  # the answer purged, the other sealed
    store = opened_store(c, w.org["id"])
    assert phone not in store and house in store


def test_purge_job_survives_kill_9_and_runs_once(pw):
    """The worker running a purge is killed (SIGKILL) in the middle of a step (it waits on a locked
    response); another takes the job over once the lease expired: every response loses the
    answer with exactly one 'purge' version, and the job ends once."""
    w, c = pw, pw.c
    survey = ok(w.mfa.post("/v1/surveys", json={"org_id": w.org["id"], "name": "Purge kill", "definition": DEF}), 201)
    dep = ok(w.mfa.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "k", "roles": {"enumerators": [P("user", w.enum.id)]}}), 201)
    phones = [marker(f"kill{i}") for i in range(6)]
    rids = [submit_and_wait(w.enum.api, dep["id"], {"household": f"K{i}", "phone": p})["id"]
            for i, p in enumerate(phones)]
    c.wait_drained()
    c.stop_all_workers()
    lock = None
    try:
        k1 = c.start_worker("purge-k1", FV_JOBS_LEASE_MS="1500", FV_JOBS_STEP_ITEMS="1", FV_JOBS_POLL_MS="50")
        lock = psycopg2.connect(c.pg.dsn(user="postgres"))
        lock.cursor().execute("SELECT 1 FROM responses WHERE id = %s FOR UPDATE", (sorted(rids)[3],))
        jid = ok(w.mfa.post(f"/v1/surveys/{survey['id']}/purge",
                            json={"questions": ["phone"], "reason": "kill test"}), 202)["job_id"]
        wait_until(lambda: c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fv-worker' "
                                  "AND wait_event_type = 'Lock'")[0][0] == 1, 60,
                   what="the purge step to wait on the locked response")
        row = c.psql("SELECT state, lease_owner, progress->>'done' FROM jobs WHERE id = %s", jid)[0]
        assert row == ("running", k1.consumer, "3"), row
        c.kill_worker(k1)
        c.start_worker("purge-k2", FV_JOBS_LEASE_MS="1500", FV_JOBS_STEP_ITEMS="1", FV_JOBS_POLL_MS="50")
        lock.rollback()
        j = wait_job(w.mfa, jid)
    finally:
        if lock is not None:
            lock.close()
        c.stop_all_workers()
        c.start_default_workers()
    assert j["state"] == "done" and j["attempts"] == 2, j
    assert j["progress"]["responses"] == 6 and j["progress"]["done"] == 6, j["progress"]
    for rid in rids:
        ops = c.psql("SELECT action FROM response_events WHERE response_id = %s ORDER BY version", rid)
        assert ops == [("submit",), ("purge",)], (rid, ops)
    assert c.psql("SELECT count(*) FROM audit WHERE action LIKE 'job.%%' AND target_id = %s", jid) == [(1,)]
    dump = pg_dump(c)
    for p in phones:
        assert p not in dump, p


def test_purge_withdraws_an_export_being_built(pw):
    """An export of the org being built when a purge is asked for is withdrawn at once: its
    chunks are deleted, its worker's next step finds it no longer 'building' and the export job
    fails saying so; it never becomes ready."""
    from test_exports import insert_responses
    w, c = pw, pw.c
    big = ok(w.mfa.post("/v1/surveys", json={"org_id": w.org["id"], "name": "Purge big", "definition": DEF}), 201)
    dep = ok(w.mfa.post(f"/v1/surveys/{big['id']}/deployments", json={
        "name": "big", "roles": {"enumerators": [P("user", w.enum.id)]}}), 201)
    insert_responses(c.psql, big["id"], dep["id"], w.enum.id, 20000)
    c.stop_all_workers()
    try:
        c.start_worker("withdraw-1", FV_JOBS_POLL_MS="50", FV_EXPORT_STEP_ROWS="200", FV_EXPORT_CHUNK_BYTES="65536")
        eid = ok(w.mfa.post(f"/v1/orgs/{w.org['id']}/exports"), 202)["id"]
        wait_until(lambda: c.psql("SELECT count(*) FROM export_chunks WHERE export_id = %s", eid)[0][0] >= 3, 120,
                   what="the export to have written chunks")
        jid = ok(w.mfa.post(f"/v1/surveys/{w.survey['id']}/purge",
                            json={"questions": ["note"], "reason": "while exporting"}), 202)["job_id"]
        assert c.psql("SELECT state FROM exports WHERE id = %s", eid) == [("withdrawn",)]
        ej = wait_job(w.mfa, eid)
        assert ej["state"] == "failed", ej
        assert any("building" in e["error"] or "withdrawn" in e["error"] for e in ej["errors"]), ej
        assert wait_job(w.mfa, jid)["state"] == "done"
    finally:
        c.stop_all_workers()
        c.start_default_workers()
    assert c.psql("SELECT state, (SELECT count(*) FROM export_chunks WHERE export_id = e.id) FROM exports e "
                  "WHERE id = %s", eid) == [("withdrawn", 0)]
    denied(w.mfa.get(f"/v1/exports/{eid}"), 410, "export_withdrawn")


def test_purge_reaches_the_openrosa_xml_and_attachments(pw):
    """An OpenRosa submission keeps its XML and attachments (migration 023): a purge of the
    question removes the answer from them too (the XML of the response and of its versions, the
    file the purged answer named), so neither the API, the export nor pg_dump holds it."""
    import re
    w, c = pw, pw.c
    x = w.mfa.get(f"/v1/surveys/{w.survey['id']}/xform").text
    m = re.search(r'<data id="([^"]+)" version="([^"]+)"', x)
    phone, house = marker("or-phone"), marker("or-house")
    rid = new_id()
    xml = (f'<data id="{m.group(1)}" version="{m.group(2)}"><household>{house}</household>'
           f'<phone>{phone}.jpg</phone><note>kept-note</note><meta><instanceID>uuid:{rid}</instanceID></meta></data>')
    files = [("xml_submission_file", ("s.xml", xml.encode(), "text/xml")),
             (f"{phone}.jpg", (f"{phone}.jpg", phone.encode() * 3, "image/jpeg")),
             ("other.jpg", ("other.jpg", b"not named by any answer", "image/jpeg"))]
    r = w.enum.api.post(f"/v1/openrosa/deployments/{w.dep['id']}/submission", files=files,
                        headers={"X-OpenRosa-Version": "1.0"})
    assert r.status_code == 201, r.text
    assert w.mfa.get(f"/v1/responses/{rid}/xml").content == xml.encode()
    assert w.mfa.get(f"/v1/responses/{rid}/attachments/{phone}.jpg").status_code == 200
    jid = ok(w.mfa.post(f"/v1/surveys/{w.survey['id']}/purge",
                        json={"questions": ["phone"], "reason": "identifying answers"}), 202)["job_id"]
    assert wait_job(w.mfa, jid)["state"] == "done"
    denied(w.mfa.get(f"/v1/responses/{rid}/xml"), 404)
    denied(w.mfa.get(f"/v1/responses/{rid}/attachments/{phone}.jpg"), 404)
    assert c.psql("SELECT count(*) FROM response_attachments WHERE response_id = %s AND name = %s",
                  rid, f"{phone}.jpg")[0][0] == 0
    assert c.psql("SELECT count(*) FROM response_events WHERE response_id = %s AND state::text LIKE %s",
                  rid, f"%{phone}%")[0][0] == 0
    assert ok(w.mfa.get(f"/v1/responses/{rid}"))["data"]["household"] == house
    dump = pg_dump(c)
    assert phone not in dump and house not in dump  # the answer purged, the other sealed
    store = opened_store(c, w.org["id"])
    assert phone not in store and house in store
