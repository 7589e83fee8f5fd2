"""Revert of a compromised account (issue 11): POST /v1/orgs/{org}/revert makes a job that puts
every response and site of the org the user changed in the window back to its state just before
their first change there (creations deleted, deletions restored, edits and approvals undone), each
as a new version 'revert' by the admin; objects others changed after them are conflicts, left alone
unless force. The job survives kill -9 of the worker running it and does its work once."""
import psycopg2
import pytest

from accesshelp import P, User, add_branch, add_member, denied, ok, submit_and_wait
from fvharness import new_id, wait_until
from test_totp_policy import _totp_admin

DEF = {"questions": [
    {"name": "household", "type": "text", "label": "Household", "required": True},
    {"name": "members", "type": "integer", "label": "Members", "required": True},
]}


def d(tag, n=1):
    return {"household": f"House {tag}", "members": n}


@pytest.fixture(scope="module")
def rw(workers):
    """An org (owner: its admin), a deployment without stages and one with two, mallory (the
    compromised account: enumerator, manager, stage-1 approver of both, org manager for sites),
    alice (another enumerator) and bob (another manager, stage-2 approver)."""
    c = workers
    u = {n: User(c, n) for n in ("owner", "mallory", "alice", "bob", "stranger")}
    org = ok(u["owner"].api.post("/v1/orgs", json={"name": "Revert org"}), 201)
    home = add_branch(c, org["id"], org["root_branch_id"], "home")
    for n in ("alice", "bob"):
        add_member(c, org["id"], u[n].id, "member", branch_id=home)
    add_member(c, org["id"], u["mallory"].id, "manager", branch_id=org["root_branch_id"])
    add_member(c, org["id"], u["bob"].id, "manager", branch_id=org["root_branch_id"])
    survey = ok(u["owner"].api.post("/v1/surveys", json={"org_id": org["id"], "name": "Revert",
                                                           "definition": DEF}), 201)
    roles = {"enumerators": [P("user", u["mallory"].id), P("user", u["alice"].id)],
             "managers": [P("user", u["mallory"].id), P("user", u["bob"].id)]}
    flat = ok(u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments",
                                  json={"name": "flat", "roles": roles}), 201)
    staged = ok(u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "staged", "roles": dict(roles, approvers=[[P("user", u["mallory"].id)],
                                                          [P("user", u["bob"].id)]])}), 201)

    class W:
        pass
    w = W()
    w.c, w.u, w.org, w.survey, w.flat, w.staged = c, u, org, survey, flat, staged
    yield w
    for x in u.values():
        x.close()


def db_now(w):
    return w.c.psql("SELECT fv_ts(now())")[0][0]


def start_revert(w, user_id, since, until, force=False, who="owner"):
    r = w.u[who].api.post(f"/v1/orgs/{w.org['id']}/revert",
                          json={"user_id": user_id, "since": since, "until": until, "force": force})
    return ok(r, 202)["job_id"]


def wait_job(w, jid, timeout=120):
    def ended():
        j = ok(w.u["owner"].api.get(f"/v1/jobs/{jid}"))
        return j if j["state"] in ("done", "failed") else None
    return wait_until(ended, timeout, what=f"job {jid} to end")


def versions(w, kind, oid):
    """[(version, operation, actor, state-without-version-and-updated_at as text)] from the history."""
    if kind == "response":
        sql = ("SELECT version, action, actor::text, (state - 'version' - 'updated_at')::text, "
               "state->>'deleted_at' FROM response_events WHERE response_id = %s ORDER BY version")
    else:
        sql = ("SELECT version, operation, actor::text, (state - 'version' - 'updated_at')::text, "
               "state->>'deleted_at' FROM site_versions WHERE site_id = %s ORDER BY version")
    return w.c.psql(sql, oid)


def first_in_window(w, kind, oid, uid, since, until):
    """The version number of uid's first change of the object in [since, until)."""
    if kind == "response":
        sql = "SELECT min(version) FROM response_events WHERE response_id = %s AND actor = %s AND at >= %s AND at < %s"
    else:
        sql = "SELECT min(version) FROM site_versions WHERE site_id = %s AND actor = %s AND at >= %s AND at < %s"
    return w.c.psql(sql, oid, uid, since, until)[0][0]


def current(w, kind, oid):
    table = "responses" if kind == "response" else "sites"
    return w.c.psql(f"SELECT (to_jsonb(x) - 'version' - 'updated_at')::text FROM {table} x WHERE id = %s",
                    oid)[0][0]


def new_site(api, w, name):
    return ok(api.post("/v1/sites", json={"org_id": w.org["id"], "name": name, "type": "well",
                                          "privacy": "private"}), 201)["id"]


def test_revert_restores_prior_states_and_reports_conflicts(rw):
    w, u = rw, rw.u
    M, A, B, O = (u[n].api for n in ("mallory", "alice", "bob", "owner"))
    mid = u["mallory"].id
    # ---- before the window ----
    a = [submit_and_wait(A, w.flat["id"], d(f"a{i}"))["id"] for i in range(10)]
    s = [submit_and_wait(A, w.staged["id"], d(f"s{i}"))["id"] for i in range(5)]
    m_pre = [submit_and_wait(M, w.flat["id"], d(f"m{i}"))["id"] for i in range(3)]
    t = [new_site(O, w, f"T{i}") for i in range(5)]
    untouched = submit_and_wait(A, w.flat["id"], d("untouched"))["id"]
    since = db_now(w)
    # ---- mallory's changes in the window (50), mixed with others' ----
    changes = 0
    created = [submit_and_wait(M, w.flat["id"], d(f"c{i}"))["id"] for i in range(10)]
    created += [submit_and_wait(M, w.staged["id"], d(f"cs{i}"))["id"] for i in range(3)]
    changes += 13
    others_new = [submit_and_wait(A, w.flat["id"], d(f"b{i}"))["id"] for i in range(3)]
    for i in range(5):                                   # edits of her own creations
        ok(M.patch(f"/v1/responses/{created[i]}", json={"data": d(f"c{i}-edited", 7)}))
    changes += 5
    for i in range(10):                                  # edits of alice's responses
        ok(M.patch(f"/v1/responses/{a[i]}", json={"data": d(f"a{i}-evil", 9)}))
        if i == 4:
            ok(B.patch(f"/v1/responses/{others_new[0]}", json={"data": d("b0-by-bob", 2)}))
    for i in range(3):                                   # ... some twice
        ok(M.patch(f"/v1/responses/{a[i]}", json={"data": d(f"a{i}-evil2", 8)}))
    changes += 13
    for i in range(5):                                   # approvals at stage 1
        ok(M.post(f"/v1/responses/{s[i]}/approve", json={"message": "fine"}))
    changes += 5
    for rid in m_pre + a[8:10]:                          # deletions
        ok(M.delete(f"/v1/responses/{rid}"), 204)
    changes += 5
    n_sites = [new_site(M, w, f"N{i}") for i in range(3)]
    changes += 3
    for i in range(4):
        ok(M.patch(f"/v1/sites/{t[i]}", json={"name": f"T{i} evil", "privacy": "public"}))
    ok(M.delete(f"/v1/sites/{t[4]}"), 204)
    ok(M.delete(f"/v1/sites/{t[0]}"), 204)
    changes += 6
    assert changes >= 50
    # others change some of the same objects after her: conflicts
    ok(B.patch(f"/v1/responses/{a[1]}", json={"data": d("a1-fixed-by-bob", 3)}))
    ok(B.post(f"/v1/responses/{s[0]}/approve", json={"message": "stage 2"}))
    ok(O.patch(f"/v1/sites/{t[1]}", json={"name": "T1 by owner"}))
    until = db_now(w)
    ok(M.patch(f"/v1/responses/{a[3]}", json={"data": d("a3-after-window", 4)}))  # her own, outside
    conflicts = {("response", a[1]), ("response", s[0]), ("site", t[1]), ("response", a[3])}

    before_untouched = versions(w, "response", untouched)
    before_others = {rid: versions(w, "response", rid) for rid in others_new}
    before_conflicts = {oid: versions(w, k, oid) for k, oid in conflicts}

    jid = start_revert(w, mid, since, until)
    j = wait_job(w, jid)
    assert j["state"] == "done", j
    touched = ([("response", x) for x in created + a + s + m_pre]
               + [("site", x) for x in n_sites + t])
    p = j["progress"]
    assert p["total"] == len(touched) == p["done"], p
    assert p["conflicts"] == len(conflicts) and p["errors"] == 0 and p["forced"] == 0, p
    assert p["reverted"] == len(touched) - len(conflicts), p
    assert {(c["type"], c["id"]) for c in j["conflicts"]} == conflicts, j["conflicts"]
    for c in j["conflicts"]:
        assert c["later_versions"], c
    owner_id = u["owner"].id
    for kind, oid in touched:
        vs = versions(w, kind, oid)
        if (kind, oid) in conflicts:
            assert vs == before_conflicts[oid], (kind, oid)   # left alone
            continue
        last = vs[-1]
        assert last[1] == "revert" and last[2] == owner_id, (kind, oid, last)
        assert sum(1 for v in vs if v[1] == "revert") == 1, (kind, oid)
        first = first_in_window(w, kind, oid, mid, since, until)
        assert current(w, kind, oid) == last[3]
        if first == 1:                                  # her creation: deleted, else as she left it
            assert last[4] is not None, (kind, oid)
            prev = vs[-2]
            assert last[3].replace(f'"deleted_at": "{last[4]}"', "") == \
                prev[3].replace('"deleted_at": null', ""), (kind, oid)
        else:                                           # byte-identical to the version before hers
            assert last[3] == vs[first - 2][3], (kind, oid, last[3], vs[first - 2][3])
    # restored deletions and undone approvals, as the API shows them
    for rid in m_pre + a[8:10]:
        ok(O.get(f"/v1/responses/{rid}"))
    for rid in s[1:]:
        g = ok(O.get(f"/v1/responses/{rid}"))
        assert g["status"] == "pending" and g["stage"] == 1, g
    for rid in created:
        denied(M.get(f"/v1/responses/{rid}"), 404)
    # nothing else changed
    assert versions(w, "response", untouched) == before_untouched
    assert {rid: versions(w, "response", rid) for rid in others_new} == before_others
    # audited: the request and the end with its counts
    req = w.c.psql("SELECT actor::text, target_id, detail->>'job_id' FROM audit WHERE action = 'org.revert' "
                   "AND org_id = %s AND detail->>'job_id' = %s", w.org["id"], jid)
    assert req == [(owner_id, mid, jid)], req
    end = w.c.psql("SELECT detail->'progress' FROM audit WHERE action = 'job.done' AND target_id = %s", jid)
    assert len(end) == 1 and end[0][0] == p, end

    # ---- force: the conflicts too (the window's versions are the same; the revert's own versions are
    # after it, so the objects reverted already are conflicts now, of the admin's own revert) ----
    jid2 = start_revert(w, mid, since, until, force=True)
    j2 = wait_job(w, jid2)
    assert j2["state"] == "done", j2
    # the conflicts are reverted now; the others are as the first job left them (unchanged)
    p2 = j2["progress"]
    assert p2["reverted"] == p2["forced"] == len(conflicts), p2
    assert p2["unchanged"] == len(touched) - len(conflicts) and p2["errors"] == 0, p2
    for kind, oid in conflicts:
        vs = versions(w, kind, oid)
        assert vs[-1][1] == "revert", (kind, oid)
        first = first_in_window(w, kind, oid, mid, since, until)
        assert vs[-1][3] == vs[first - 2][3], (kind, oid)
        assert sum(1 for v in vs if v[1] == "revert") == 1, (kind, oid)


def test_bad_input(rw):
    w, u = rw, rw.u
    O = u["owner"].api
    path = f"/v1/orgs/{w.org['id']}/revert"
    now = db_now(w)
    body = {"user_id": u["mallory"].id, "since": "2020-01-01T00:00:00Z", "until": now}
    e = denied(O.post(path, json=dict(body, since="2999-01-01T00:00:00Z", until="2999-01-02T00:00:00Z")),
               422, "validation_failed")
    assert "since" in e["fields"], e
    e = denied(O.post(path, json=dict(body, since=now, until="2020-01-01T00:00:00Z")), 422, "validation_failed")
    assert "until" in e["fields"], e
    e = denied(O.post(path, json=dict(body, since=now, until=now)), 422, "validation_failed")
    assert "until" in e["fields"], e
    e = denied(O.post(path, json=dict(body, user_id=u["stranger"].id)), 422, "validation_failed")
    assert "user_id" in e["fields"], e
    e = denied(O.post(path, json=dict(body, user_id=new_id())), 422, "validation_failed")
    assert "user_id" in e["fields"], e
    for bad in ({"since": "yesterday"}, {"user_id": "x"}, {"force": "yes"}, {"until": None}):
        e = denied(O.post(path, json=dict(body, **bad)), 422, "validation_failed")
        assert set(bad) <= set(e["fields"]), e
    denied(O.post(f"/v1/orgs/{new_id()}/revert", json=body), 404)
    denied(O.post("/v1/orgs/nope/revert", json=body), 404)
    denied(u["mallory"].api.post(path, json=body), 403, "forbidden")   # a manager, not an admin
    denied(u["stranger"].api.post(path, json=body), 404)
    # TOTP: an org that requires it of its admins refuses an API key's revert
    w.c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", w.org["id"])
    try:
        denied(O.post(path, json=body), 403, "totp_required")
    finally:
        w.c.psql("UPDATE orgs SET require_admin_totp = false WHERE id = %s", w.org["id"])


def test_job_survives_kill_9_and_runs_once(rw):
    """The worker running a revert is killed (SIGKILL) in the middle of a step; another takes the job
    over once its lease expired and finishes it: every object reverted exactly once."""
    w, u = rw, rw.u
    c = w.c
    M = u["mallory"].api
    base = [submit_and_wait(u["alice"].api, w.flat["id"], d(f"k{i}"))["id"] for i in range(8)]
    since = db_now(w)
    for rid in base:
        ok(M.patch(f"/v1/responses/{rid}", json={"data": d("killed-evil", 5)}))
    until = db_now(w)
    c.stop_all_workers()
    lock = None
    try:
        k1 = c.start_worker("jobs-k1", FV_JOBS_LEASE_MS="1500", FV_JOBS_STEP_ITEMS="1", FV_JOBS_POLL_MS="50")
        # the 4th object in the job's order is locked: the worker's 5th step (after the count) waits on it
        order = sorted(base)
        lock = psycopg2.connect(c.pg.dsn(user="postgres"))
        cur = lock.cursor()
        cur.execute("SELECT 1 FROM responses WHERE id = %s FOR UPDATE", (order[3],))
        jid = start_revert(w, u["mallory"].id, since, until)

        def blocked():
            n = c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fv-worker' "
                       "AND wait_event_type = 'Lock'")[0][0]
            return n == 1
        wait_until(blocked, 60, what="the worker's step to wait on the locked response")
        row = c.psql("SELECT state, lease_owner, attempts, progress->>'done' FROM jobs WHERE id = %s", jid)[0]
        assert row[0] == "running" and row[1] == k1.consumer and row[2] == 1 and row[3] == "3", row
        c.kill_worker(k1)
        c.start_worker("jobs-k2", FV_JOBS_LEASE_MS="1500", FV_JOBS_STEP_ITEMS="1", FV_JOBS_POLL_MS="50")
        lock.rollback()
        j = wait_job(w, jid)
    finally:
        if lock is not None:
            lock.close()
        c.stop_all_workers()
        c.start_default_workers()
    assert j["state"] == "done" and j["attempts"] == 2, j
    assert j["progress"]["done"] == 8 and j["progress"]["reverted"] == 8, j
    # ended once: one audit entry of its end, with the counts of the one run
    end = c.psql("SELECT detail->'progress' FROM audit WHERE action LIKE 'job.%%' AND target_id = %s", jid)
    assert end == [(j["progress"],)], end
    for rid in base:
        vs = versions(w, "response", rid)
        assert [v[1] for v in vs] == ["submit", "edit", "revert"], (rid, vs)
        assert vs[2][3] == vs[0][3]


def test_revert_of_a_member_removed_first(rw):
    """The usual order: the compromised account is removed from the org (issue 10: it loses every
    right at once), then its changes are reverted. The removed user is still 'in the org' for the
    revert (it made versions there); it can neither start a revert nor see the job."""
    w, u, c = rw, rw.u, rw.c
    O = u["owner"].api
    eve = User(c, "eve")
    try:
        add_member(c, w.org["id"], eve.id, "manager", branch_id=w.org["root_branch_id"])
        mine = new_site(O, w, "Owner's well")
        since = db_now(w)
        made = new_site(eve.api, w, "Eve's well")
        ok(eve.api.patch(f"/v1/sites/{mine}", json={"name": "defaced", "privacy": "public"}))
        until = db_now(w)
        ok(O.delete(f"/v1/orgs/{w.org['id']}/members/{eve.id}"), 204)
        # removed: no right left (no change to the org's sites, no revert of her own)
        assert eve.api.patch(f"/v1/sites/{mine}", json={"name": "again"}).status_code in (403, 404)
        assert eve.api.patch(f"/v1/sites/{made}", json={"name": "again"}).status_code in (403, 404)
        denied(eve.api.post(f"/v1/orgs/{w.org['id']}/revert",
                            json={"user_id": eve.id, "since": since, "until": until}), 404)
        jid = start_revert(w, eve.id, since, until)
        j = wait_job(w, jid)
        assert j["state"] == "done", j
        assert j["progress"]["reverted"] == 2 and j["progress"]["conflicts"] == 0, j["progress"]
        denied(eve.api.get(f"/v1/jobs/{jid}"), 404, "not_found")
        vs = versions(w, "site", mine)
        assert vs[-1][1] == "revert" and vs[-1][3] == vs[0][3], vs
        assert versions(w, "site", made)[-1][4] is not None  # her creation: deleted
    finally:
        eve.close()


def test_revert_under_required_totp(rw):
    """An org that requires TOTP of its admins: the revert is refused from an API key and from a
    password-only session of the admin (403 totp_required, no job made), and runs from the
    admin's TOTP session."""
    c = rw.c
    mfa, plain, keyed, admin_id = _totp_admin(c)
    vic = User(c, "totp victim")
    try:
        org = ok(mfa.post("/v1/orgs", json={"name": "Revert TOTP org"}), 201)
        add_member(c, org["id"], vic.id, "manager", branch_id=org["root_branch_id"])
        ok(mfa.patch(f"/v1/orgs/{org['id']}", json={"require_admin_totp": True}))
        since = c.psql("SELECT fv_ts(now())")[0][0]
        sid = ok(vic.api.post("/v1/sites", json={"org_id": org["id"], "name": "V", "type": "well",
                                                  "privacy": "private"}), 201)["id"]
        until = c.psql("SELECT fv_ts(now())")[0][0]
        body = {"user_id": vic.id, "since": since, "until": until}
        path = f"/v1/orgs/{org['id']}/revert"
        for api in (keyed, plain):
            denied(api.post(path, json=body), 403, "totp_required")
        assert c.psql("SELECT count(*) FROM jobs WHERE org_id = %s", org["id"]) == [(0,)]
        jid = ok(mfa.post(path, json=body), 202)["job_id"]

        def ended():
            j = ok(mfa.get(f"/v1/jobs/{jid}"))
            return j if j["state"] in ("done", "failed") else None
        j = wait_until(ended, 120, what="the revert job")
        assert j["state"] == "done" and j["progress"]["reverted"] == 1, j
        assert c.psql("SELECT deleted_at IS NOT NULL FROM sites WHERE id = %s", sid) == [(True,)]
        assert c.psql("SELECT actor::text FROM site_versions WHERE site_id = %s ORDER BY version DESC LIMIT 1",
                      sid) == [(admin_id,)]
    finally:
        for a in (mfa, plain, keyed):
            a.close()
        vic.close()


def test_admin_removed_before_the_job_runs_reverts_nothing(rw):
    """Issue 10: the job runs with its creator's rights at every step; an admin removed from the
    org after asking (before a worker took the job) reverts nothing: the job fails, saying why."""
    w, u, c = rw, rw.u, rw.c
    adm = User(c, "short-lived admin")
    try:
        add_member(c, w.org["id"], adm.id, "admin", branch_id=w.org["root_branch_id"])
        since = db_now(w)
        sid = new_site(u["mallory"].api, w, "removed admin's case")
        until = db_now(w)
        c.stop_all_workers()
        try:
            jid = ok(adm.api.post(f"/v1/orgs/{w.org['id']}/revert",
                                  json={"user_id": u["mallory"].id, "since": since, "until": until}), 202)["job_id"]
            ok(u["owner"].api.delete(f"/v1/orgs/{w.org['id']}/members/{adm.id}"), 204)
        finally:
            c.start_default_workers()
        j = wait_job(w, jid)
        assert j["state"] == "failed", j
        assert any("no longer an admin" in e["error"] for e in j["errors"]), j
        assert [v[1] for v in versions(w, "site", sid)] == ["create"]
        denied(adm.api.get(f"/v1/jobs/{jid}"), 404, "not_found")
    finally:
        adm.close()
