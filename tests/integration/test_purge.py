"""Pseudonymisation (issue 11): POST /v1/surveys/{id}/purge removes questions' answers from every
response of the survey, from every stored version of its history (through the audited
fv_history_purge_begin) and from submissions queued before the purge; afterwards pg_dump of the
database holds none of the purged values."""
import subprocess
import uuid

import pytest

from accesshelp import P, User, add_plain_member, denied, ok, submit_and_wait
from fvharness import PG_BIN, new_id, wait_until
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


def wait_job(api, jid, timeout=120):
    def ended():
        j = ok(api.get(f"/v1/jobs/{jid}"))
        return j if j["state"] in ("done", "failed") else None
    return wait_until(ended, timeout, what=f"job {jid} to end")


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
    dump = pg_dump(c)
    for v in purged:
        assert v not in dump, v
    for v in kept:
        assert v in dump, v
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
