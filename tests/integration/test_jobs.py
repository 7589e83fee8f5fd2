"""Jobs (issue 11, migration 013): the workers claim jobs (FOR UPDATE SKIP LOCKED), hold a lease
renewed by every step, and end each job with an audit entry; GET /v1/jobs/{id} shows a job to the
org's admins and its creator only. (The revert and purge kinds are tested in test_revert.py and
test_purge.py, the takeover after kill -9 in test_revert.py.)"""
import pytest

from accesshelp import User, add_plain_member, denied, ok
from fvharness import new_id, wait_until


@pytest.fixture(scope="module")
def jw(workers):
    c = workers
    u = {n: User(c, n) for n in ("owner", "creator", "member", "outsider")}
    org = ok(u["owner"].api.post("/v1/orgs", json={"name": "Jobs org"}), 201)
    add_plain_member(c, org["id"], u["creator"].id)
    add_plain_member(c, org["id"], u["member"].id)

    class W:
        pass
    w = W()
    w.c, w.u, w.org = c, u, org
    yield w
    for x in u.values():
        x.close()


def insert_job(w, kind, by, params="{}"):
    j = new_id()
    w.c.psql("INSERT INTO jobs (id, org_id, kind, params, created_by) VALUES (%s, %s, %s, %s::jsonb, %s)",
             j, w.org["id"], kind, params, by)
    return j


def wait_job(api, jid, timeout=60):
    def ended():
        j = ok(api.get(f"/v1/jobs/{jid}"))
        return j if j["state"] in ("done", "failed") else None
    return wait_until(ended, timeout, what=f"job {jid} to end")


def test_unknown_kind_fails_with_its_error_and_audit(jw):
    """A job whose kind no worker knows ends failed, with the reason in its errors, and the audit
    entry that every job's end writes."""
    jid = insert_job(jw, "no_such_kind", jw.u["creator"].id)
    j = wait_job(jw.u["owner"].api, jid)
    assert j["state"] == "failed", j
    assert j["kind"] == "no_such_kind" and j["attempts"] == 1
    assert any("unknown job kind" in e["error"] for e in j["errors"]), j
    assert j["started_at"] and j["finished_at"]
    rows = jw.c.psql("SELECT actor::text, org_id::text, detail->>'kind', detail->>'error' FROM audit "
                     "WHERE action = 'job.failed' AND target_id = %s", jid)
    assert len(rows) == 1, rows
    assert rows[0][0] == jw.u["creator"].id and rows[0][1] == jw.org["id"]
    assert rows[0][2] == "no_such_kind" and "unknown job kind" in rows[0][3]


def test_job_visible_to_admins_and_creator_only(jw):
    jid = insert_job(jw, "no_such_kind", jw.u["creator"].id)
    wait_job(jw.u["owner"].api, jid)
    ok(jw.u["creator"].api.get(f"/v1/jobs/{jid}"))
    denied(jw.u["member"].api.get(f"/v1/jobs/{jid}"), 404, "not_found")
    denied(jw.u["outsider"].api.get(f"/v1/jobs/{jid}"), 404, "not_found")
    denied(jw.u["owner"].api.get(f"/v1/jobs/{new_id()}"), 404, "not_found")
    denied(jw.u["owner"].api.get("/v1/jobs/not-a-uuid"), 404, "not_found")
    # the creator loses sight of it with their membership (rights need current membership)
    jw.c.psql("DELETE FROM memberships WHERE org_id = %s AND user_id = %s", jw.org["id"], jw.u["creator"].id)
    try:
        denied(jw.u["creator"].api.get(f"/v1/jobs/{jid}"), 404, "not_found")
    finally:
        add_plain_member(jw.c, jw.org["id"], jw.u["creator"].id)


def test_claimed_too_often_fails(jw):
    """A job claimed more than jobs_max_attempts times (its workers kept dying on it) ends failed
    instead of killing workers forever."""
    jid = insert_job(jw, "no_such_kind", jw.u["creator"].id)
    jw.c.psql("UPDATE jobs SET attempts = 5, state = 'running', lease_owner = 'gone', "
              "lease_expires = now() - interval '1 second' WHERE id = %s", jid)
    j = wait_job(jw.u["owner"].api, jid)
    assert j["state"] == "failed" and j["attempts"] == 6, j
    assert any("claimed 6 times" in e["error"] for e in j["errors"]), j
