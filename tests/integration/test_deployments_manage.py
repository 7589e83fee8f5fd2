"""What an org admin manages after the fact (issue 10): a survey's grants listed and removed,
PATCH /v1/deployments/{id} (rename, principals per role and stage, close and reopen), archived
surveys, and the members of a team and of a branch.

A change to who may submit (principals, closed, archived) reaches every front-end child and every
front end through a `deployment` or `survey` revocation row: the tests start a second front end
whose caches would otherwise keep the old answer for minutes. Submissions acknowledged before a
close are stored; an entry no front end could check (unverified) for a closed deployment goes to
quarantine."""
import json
import signal
import threading
import time

import pytest
import requests

from accesshelp import P, User, add_branch, add_member, add_plain_member, add_team, denied, list_all, ok
from conftest import DEFINITION, good_data
from faults import pg_start, pg_stop_immediate
from fvharness import free_port, new_id, pin_children, wait_until
from openapi_check import hook_session
from test_permissions import _insert_response


@pytest.fixture(scope="module")
def mw(workers, admin):
    """An org of admin's with a region branch below the root, a district below the region, a team,
    a survey S and enumerator E (member of region) named as a user in deployment D of S."""
    c = workers
    r = admin.post("/v1/orgs", json={"name": "Management org"})
    assert r.status_code == 201, r.text
    org = r.json()
    region = add_branch(c, org["id"], org["root_branch_id"], "region")
    district = add_branch(c, org["id"], region, "district")
    team = add_team(c, org["id"], "team M")
    e, e2, outsider = User(c, "manage-enum"), User(c, "manage-enum2"), User(c, "manage-outsider")
    named = User(c, "manage-named")  # a member named only as a user principal
    add_member(c, org["id"], e.id, "member", branch_id=region)
    add_member(c, org["id"], e2.id, "member", branch_id=district)
    add_plain_member(c, org["id"], named.id)
    r = admin.post("/v1/orgs", json={"name": "Another management org"})
    assert r.status_code == 201, r.text
    other = r.json()
    other_team = add_team(c, other["id"], "a team of another org")
    ns = type("MW", (), {})()
    ns.c, ns.admin, ns.org, ns.region, ns.district, ns.team = c, admin, org, region, district, team
    ns.e, ns.e2, ns.outsider, ns.other, ns.other_team = e, e2, outsider, other, other_team
    ns.named = named
    yield ns
    for u in (e, e2, outsider, named):
        u.close()


def new_survey(mw, name="Managed survey"):
    r = mw.admin.post("/v1/surveys", json={"org_id": mw.org["id"], "name": name, "definition": DEFINITION})
    return ok(r, 201)["id"]


def new_deployment(mw, sid, roles=None, name="Managed deployment"):
    roles = roles if roles is not None else {"enumerators": [P("user", mw.e.id)]}
    r = mw.admin.post(f"/v1/surveys/{sid}/deployments", json={"name": name, "roles": roles})
    return ok(r, 201)["id"]


def submit(api, dep, rid=None):
    return api.post(f"/v1/deployments/{dep}/responses", json={"id": rid or new_id(), "data": good_data()})


def audit(mw, action, target):
    items = list_all(mw.admin, f"/v1/orgs/{mw.org['id']}/audit", limit=200)
    return [i for i in items if i["action"] == action and i["target_id"] == target]


# ---------------------------------------------------------------- grants

def test_grants_are_listed_and_one_is_removed_with_its_audit_entry(mw):
    sid = new_survey(mw)
    for p, role in ((P("user", mw.named.id), "viewer"), (P("team", mw.team), "admin")):
        ok(mw.admin.put(f"/v1/surveys/{sid}/access",
                        json={"principal_type": p["type"], "principal_id": p["id"], "role": role}))
    items = list_all(mw.admin, f"/v1/surveys/{sid}/access", limit=1)
    me = mw.admin.get("/v1/me").json()["id"]
    got = {(i["principal"]["type"], i["principal"]["id"]): i for i in items}
    assert set(got) == {("user", mw.named.id), ("team", mw.team)}
    assert got[("user", mw.named.id)]["role"] == "viewer" and got[("team", mw.team)]["role"] == "admin"
    assert all(i["granted_by"] == me and i["created_at"] for i in items)
    # the viewer sees the survey, not who else may
    ok(mw.named.api.get(f"/v1/surveys/{sid}"))
    denied(mw.named.api.get(f"/v1/surveys/{sid}/access"), 403, "forbidden")

    r = mw.admin.delete(f"/v1/surveys/{sid}/access/user/{mw.named.id.upper()}")
    assert r.status_code == 204, r.text
    denied(mw.named.api.get(f"/v1/surveys/{sid}"), 404)
    denied(mw.admin.delete(f"/v1/surveys/{sid}/access/user/{mw.named.id}"), 404, "not_found")
    assert [(i["principal"]["type"]) for i in list_all(mw.admin, f"/v1/surveys/{sid}/access")] == ["team"]
    (entry,) = audit(mw, "survey.access_remove", sid)
    assert entry["detail"]["principal_id"] == mw.named.id and entry["detail"]["role"] == "viewer"
    assert entry["detail"]["granted_by"] == me
    assert mw.c.psql("SELECT count(*) FROM revocations WHERE kind = 'survey' AND subject = %s", sid)[0][0] >= 1


def test_grant_removal_refuses_what_does_not_exist(mw):
    sid = new_survey(mw)
    for path in (f"/v1/surveys/{sid}/access/robot/{mw.e.id}", f"/v1/surveys/{sid}/access/user/not-a-uuid",
                 f"/v1/surveys/{new_id()}/access/user/{mw.e.id}", f"/v1/surveys/{sid}/access/team/{mw.team}"):
        denied(mw.admin.delete(path), 404, "not_found")
    denied(mw.outsider.api.delete(f"/v1/surveys/{sid}/access/team/{mw.team}"), 404)
    denied(mw.outsider.api.get(f"/v1/surveys/{sid}/access"), 404)
    denied(mw.admin.get(f"/v1/surveys/{sid}/access", params={"after": "nope"}), 422)


# ---------------------------------------------------------------- PATCH /v1/deployments/{id}

def test_patch_renames_and_replaces_the_roles_listed(mw):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid, {"enumerators": [P("user", mw.e.id)], "viewers": [P("team", mw.team)]})
    assert submit(mw.e.api, dep).status_code == 202
    body = ok(mw.admin.patch(f"/v1/deployments/{dep}", json={
        "name": "Renamed", "roles": {"enumerators": [P("user", mw.e2.id), P("branch", mw.region)],
                                     "approvers": [[P("user", mw.e.id)], [P("team", mw.team)]]}}))
    assert body["name"] == "Renamed" and body["approval_stages"] == 2 and body["closed"] is False
    assert sorted(body["roles"]["enumerators"], key=lambda p: (p["type"], p["id"])) == sorted(
        [P("user", mw.e2.id), P("branch", mw.region)], key=lambda p: (p["type"], p["id"]))
    assert body["roles"]["viewers"] == [P("team", mw.team)]  # not listed: kept
    assert body["roles"]["approvers"] == [[P("user", mw.e.id)], [P("team", mw.team)]]
    assert ok(mw.admin.get(f"/v1/deployments/{dep}")) == body
    # e was named as a user; as a member of region it is still an enumerator through the branch
    wait_until(lambda: submit(mw.e.api, dep).status_code == 202, 10, what="e accepted through the branch")
    wait_until(lambda: submit(mw.e2.api, dep).status_code == 202, 10, what="e2 accepted as named")
    (entry,) = audit(mw, "deployment.update", dep)
    d = entry["detail"]
    assert d["name"] == {"old": "Managed deployment", "new": "Renamed"}
    assert d["approval_stages"] == {"old": 0, "new": 2}
    assert {"role": "enumerator", "stage": 0, "type": "user", "id": mw.e.id} in d["roles"]["old"]
    assert {"role": "enumerator", "stage": 0, "type": "user", "id": mw.e2.id} in d["roles"]["new"]
    assert sorted(d["roles"]["replaced"]) == ["approver", "enumerator"]


def test_a_principal_removed_from_a_deployment_is_refused_on_every_child_at_once(mw):
    sid = new_survey(mw)
    outsider = mw.named
    dep = new_deployment(mw, sid, {"enumerators": [P("user", outsider.id), P("user", mw.e.id)]})
    port = mw.c.http_port
    pins = pin_children(mw.c, port)
    for s in pins.values():  # cached as an enumerator by both children
        r = s.post(f"https://127.0.0.1:{port}/v1/deployments/{dep}/responses", timeout=30,
                   headers={"Authorization": f"Bearer {outsider.key}"}, json={"id": new_id(), "data": good_data()})
        assert r.status_code == 202, r.text
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {"enumerators": [P("user", mw.e.id)]}}))

    def refused():
        out = set()
        for s in pins.values():
            r = s.post(f"https://127.0.0.1:{port}/v1/deployments/{dep}/responses", timeout=30,
                       headers={"Authorization": f"Bearer {outsider.key}"}, json={"id": new_id(), "data": good_data()})
            out.add(r.status_code)
        return out == {404}
    wait_until(refused, 10, what="every child to refuse the removed enumerator")
    for s in pins.values():
        s.close()


@pytest.mark.parametrize("body,field", [
    ({}, "body"),
    ({"nmae": "typo"}, "body"),
    ({"name": ""}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"closed": "yes"}, "closed"),
    ({"roles": []}, "roles"),
    ({"roles": {"owners": []}}, "roles"),
    ({"roles": {"enumerators": "everyone"}}, "enumerators"),
    ({"roles": {"enumerators": [{"type": "user"}]}}, "enumerators"),
    ({"roles": {"enumerators": [{"type": "robot", "id": "0190a4c2-0000-7000-8000-000000000001"}]}}, "enumerators"),
    ({"roles": {"approvers": [[]]}}, "approvers"),
    ({"roles": {"approvers": [{"type": "team"}]}}, "approvers"),
    ({"roles": {"approvers": [[P("user", "0190a4c2-0000-7000-8000-000000000001")]] * 17}}, "approvers"),
    ({"roles": {"viewers": [P("user", new_id()) for _ in range(1001)]}}, "viewers"),
])
def test_patch_refuses_malformed_changes(mw, body, field):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    err = denied(mw.admin.patch(f"/v1/deployments/{dep}", json=body), 422, "validation_failed")
    assert field in err["fields"], err
    assert ok(mw.admin.get(f"/v1/deployments/{dep}"))["roles"]["enumerators"] == [P("user", mw.e.id)]


def test_patch_refuses_principals_it_may_not_name(mw):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    for roles in ({"viewers": [P("team", mw.other_team)]},                       # another org's team
                  {"managers": [P("branch", mw.other["root_branch_id"])]},       # another org's branch
                  {"enumerators": [P("team", mw.team), P("team", mw.team)]},     # twice in a role
                  {"approvers": [[P("user", mw.e.id), P("user", mw.e.id)]]}):    # twice in a stage
        err = denied(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": roles}), 422, "validation_failed")
        assert "roles" in err["fields"], (roles, err)
    for roles in ({"enumerators": [P("user", new_id())]},                        # no such user
                  {"viewers": [P("user", mw.outsider.id)]}):                     # not a member
        err = denied(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": roles}), 422, "principal_not_member")
        assert "roles" in err["fields"], (roles, err)
    # the same principal in two roles or two stages is fine
    body = ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {
        "viewers": [P("user", mw.e.id)], "approvers": [[P("user", mw.e.id)], [P("user", mw.e.id)]]}}))
    assert body["approval_stages"] == 2
    assert ok(mw.admin.get(f"/v1/deployments/{dep}"))["roles"]["enumerators"] == [P("user", mw.e.id)]


def test_patch_of_an_unknown_or_foreign_deployment_is_404(mw):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    denied(mw.admin.patch(f"/v1/deployments/{new_id()}", json={"name": "x"}), 404, "not_found")
    denied(mw.admin.patch("/v1/deployments/not-a-uuid", json={"name": "x"}), 404, "not_found")
    denied(mw.outsider.api.patch(f"/v1/deployments/{dep}", json={"closed": True}), 404, "not_found")
    denied(mw.e.api.patch(f"/v1/deployments/{dep}", json={"closed": True}), 403, "forbidden")
    # a stranger's own org admin power does not reach this org's deployment
    key = mw.c.create_user(f"foreign-admin-{new_id()[:8]}@example.org", "Foreign admin")
    foreign = mw.c.api(key)
    ok(foreign.post("/v1/orgs", json={"name": "Foreign org"}), 201)
    denied(foreign.patch(f"/v1/deployments/{dep}", json={"roles": {"managers": []}}), 404)
    foreign.close()
    assert ok(mw.admin.get(f"/v1/deployments/{dep}"))["closed"] is False


def test_reducing_stages_is_refused_while_responses_wait_at_a_removed_stage(mw):
    sid = new_survey(mw)
    a1, a2 = P("user", mw.e.id), P("user", mw.e2.id)
    dep = new_deployment(mw, sid, {"enumerators": [P("user", mw.e.id)], "approvers": [[a1], [a2]]})
    rid = _insert_response(mw.c, sid, dep, mw.e.id, "pending", 2)
    denied(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {"approvers": [[a1]]}}), 409, "responses_pending")
    assert ok(mw.admin.get(f"/v1/deployments/{dep}"))["approval_stages"] == 2
    # replacing a stage's approvers, or adding a stage, is fine
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {"approvers": [[a2], [a1], [a2]]}}))
    ok(mw.admin.post(f"/v1/responses/{rid}/approve", json={}))  # stage 2 -> 3
    denied(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {"approvers": [[a1], [a2]]}}), 409)
    ok(mw.admin.post(f"/v1/responses/{rid}/approve", json={}))  # final
    assert ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {"approvers": []}}))["approval_stages"] == 0


def test_a_change_that_began_before_another_committed_is_a_conflict(mw):
    """Two changes at once: the second's statement began before the first committed, so it could
    not see the roles the first wrote: 409 conflict, never a mix of both."""
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    conn = mw.c.pg.connect(autocommit=False)
    out = {}
    try:
        cur = conn.cursor()
        cur.execute("UPDATE deployments SET revision = revision + 1 WHERE id = %s", (dep,))
        t = threading.Thread(target=lambda: out.setdefault("r", mw.admin.patch(
            f"/v1/deployments/{dep}", json={"roles": {"enumerators": [P("user", mw.e2.id)]}})))
        t.start()
        wait_until(lambda: mw.c.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND query LIKE %s", "%deployment_manage_verdict%")[0][0] == 1, 30,
                   what="the PATCH to wait for the row lock")
        conn.commit()
    finally:
        conn.close()
    t.join(30)
    denied(out["r"], 409, "conflict")
    assert ok(mw.admin.get(f"/v1/deployments/{dep}"))["roles"]["enumerators"] == [P("user", mw.e.id)]


# ---------------------------------------------------------------- closing

def test_a_closed_deployment_refuses_submissions_keeps_its_data_and_reopens(mw):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid, {"enumerators": [P("user", mw.e.id)], "approvers": [[P("user", mw.e2.id)]]})
    before = new_id()
    assert submit(mw.e.api, dep, before).status_code == 202
    wait_until(lambda: mw.admin.get(f"/v1/responses/{before}").status_code == 200, 60, what="the response")
    body = ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))
    assert body["closed"] is True and body["closed_at"]
    port = mw.c.http_port
    pins = pin_children(mw.c, port)

    def answers():
        return {s.post(f"https://127.0.0.1:{port}/v1/deployments/{dep}/responses", timeout=30,
                       headers={"Authorization": f"Bearer {mw.e.key}"},
                       json={"id": new_id(), "data": good_data()}).status_code for s in pins.values()}
    wait_until(lambda: answers() == {409}, 10, what="every child to refuse submissions to the closed deployment")
    denied(submit(mw.e.api, dep), 409, "deployment_closed")
    denied(submit(mw.outsider.api, dep), 404)  # not an enumerator: the close is not its business
    # readable and reviewable
    assert ok(mw.admin.get(f"/v1/deployments/{dep}"))["closed"] is True
    assert ok(mw.e.api.get(f"/v1/responses/{before}"))["status"] == "pending"
    assert ok(mw.e2.api.post(f"/v1/responses/{before}/approve", json={}))["status"] == "final"
    assert before in [i["id"] for i in list_all(mw.admin, f"/v1/surveys/{sid}/responses")]
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))  # again: no change
    closes = [a for a in audit(mw, "deployment.update", dep) if "closed" in a["detail"]]
    assert [a["detail"]["closed"] for a in closes] == [{"old": False, "new": True}]
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": False}))
    wait_until(lambda: answers() == {202}, 10, what="every child to accept again after the reopening")
    for s in pins.values():
        s.close()


def test_closing_is_seen_at_once_by_another_front_end(mw):
    """A second front end whose caches would keep the deployment for five minutes refuses
    submissions within its revocation poll of the close made through the first."""
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    port = free_port()
    proc = mw.c.start_frontend(name="frontend-manage", FV_LISTEN_PORT=port, FV_DEPLOYMENT_CACHE_TTL_S=300,
                               FV_CACHE_STALE_S=300, FV_REDIS_CACHE_TTL_S=300, FV_REVOCATION_POLL_MS=200)
    pins = pin_children(mw.c, port)
    try:
        def answers():
            return {s.post(f"https://127.0.0.1:{port}/v1/deployments/{dep}/responses", timeout=30,
                           headers={"Authorization": f"Bearer {mw.e.key}"},
                           json={"id": new_id(), "data": good_data()}).status_code for s in pins.values()}
        assert answers() == {202}  # cached by both children
        ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))
        wait_until(lambda: answers() == {409}, 10, what="the other front end to refuse the closed deployment")
        ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": False}))
        wait_until(lambda: answers() == {202}, 10, what="the other front end to accept again")
    finally:
        for s in pins.values():
            s.close()
        proc.stop()


def test_closing_while_submissions_are_in_flight_loses_none_acknowledged(mw):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    results, stop = [], threading.Event()

    def submitter(api):  # until told to stop (bounded: at most 20000 submissions in all)
        while not stop.is_set() and len(results) < 20000:
            rid = new_id()
            results.append((rid, submit(api, dep, rid).status_code))
    apis = [mw.c.api(mw.e.key) for _ in range(3)]
    threads = [threading.Thread(target=submitter, args=(a,)) for a in apis]
    for t in threads:
        t.start()
    wait_until(lambda: sum(1 for _, s in results if s == 202) >= 20, 60, what="submissions before the close")
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))
    try:
        wait_until(lambda: any(s == 409 for _, s in results[-3:]), 30, what="submissions refused after the close")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    for a in apis:
        a.close()
    assert {s for _, s in results} <= {202, 409}, {s for _, s in results}
    accepted = {rid for rid, s in results if s == 202}
    refused = {rid for rid, s in results if s == 409}
    assert accepted and refused

    def stored():
        rows = mw.c.psql("SELECT id::text FROM responses WHERE deployment_id = %s", dep)
        return {r[0] for r in rows} >= accepted and {r[0] for r in rows}
    rows = wait_until(stored, 90, what="every acknowledged submission stored")
    assert rows == accepted, "a refused submission was stored, or an acknowledged one lost"


def test_the_worker_stores_acknowledged_entries_and_quarantines_unverified_ones_of_a_closed_deployment(mw):
    """An entry the front end verified (acknowledged before the close) is stored; one it could
    not check (accepted unverified while PostgreSQL was down) is quarantined with the reason."""
    sid = new_survey(mw)
    dep = new_deployment(mw, sid)
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))
    c, ids = mw.c, {}
    for verified in ("1", "0"):
        ids[verified] = new_id()
        c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", ids[verified], "survey_id", sid,
                    "survey_version", "1", "deployment_id", dep, "submitted_by", mw.e.id,
                    "received_at", str(int(time.time() * 1000)), "data", json.dumps(good_data()),
                    "location", "", "collected_at", "", "verified", verified)
    wait_until(lambda: c.psql("SELECT count(*) FROM responses WHERE id = %s", ids["1"])[0][0] == 1, 60,
               what="the verified entry stored")
    rows = wait_until(lambda: c.psql("SELECT reason FROM quarantine WHERE id = %s", ids["0"]), 60,
                      what="the unverified entry quarantined")
    assert rows[0][0] == "the deployment is closed"
    assert c.psql("SELECT count(*) FROM responses WHERE id = %s", ids["0"])[0][0] == 0


# ---------------------------------------------------------------- archiving

def test_an_archived_survey_is_left_out_refuses_changes_and_submissions_and_unarchives(mw):
    sid = new_survey(mw, "Archived survey")
    dep = new_deployment(mw, sid)
    before = new_id()
    assert submit(mw.e.api, dep, before).status_code == 202
    wait_until(lambda: mw.admin.get(f"/v1/responses/{before}").status_code == 200, 60, what="the response")
    body = ok(mw.admin.post(f"/v1/surveys/{sid}/archive"))
    assert body["archived"] is True and body["archived_at"]
    assert sid not in {s["id"] for s in list_all(mw.admin, "/v1/surveys")}
    listed = {s["id"]: s for s in list_all(mw.admin, "/v1/surveys", params={"archived": "true"})}
    assert listed[sid]["archived"] is True
    denied(mw.admin.get("/v1/surveys", params={"archived": "maybe"}), 422, "validation_failed")
    denied(mw.admin.put(f"/v1/surveys/{sid}/definition", json={"definition": DEFINITION}), 409, "survey_archived")
    denied(mw.admin.post(f"/v1/surveys/{sid}/deployments", json={"name": "late", "roles": {}}), 409,
           "survey_archived")
    wait_until(lambda: submit(mw.e.api, dep).status_code == 409, 10, what="submissions refused")
    denied(submit(mw.e.api, dep), 409, "survey_archived")
    # readable
    assert ok(mw.admin.get(f"/v1/surveys/{sid}"))["archived"] is True
    ok(mw.e.api.get(f"/v1/responses/{before}"))
    ok(mw.admin.get(f"/v1/deployments/{dep}"))
    # archiving again changes nothing; only admins may
    ok(mw.admin.post(f"/v1/surveys/{sid}/archive"))
    assert len(audit(mw, "survey.archive", sid)) == 1
    denied(mw.e.api.post(f"/v1/surveys/{sid}/unarchive"), 403, "forbidden")
    denied(mw.outsider.api.post(f"/v1/surveys/{sid}/unarchive"), 404)
    denied(mw.admin.post(f"/v1/surveys/{new_id()}/archive"), 404)
    assert ok(mw.admin.post(f"/v1/surveys/{sid}/unarchive"))["archived"] is False
    assert len(audit(mw, "survey.unarchive", sid)) == 1
    wait_until(lambda: submit(mw.e.api, dep).status_code == 202, 10, what="submissions accepted again")
    ok(mw.admin.put(f"/v1/surveys/{sid}/definition", json={"definition": DEFINITION}))


# ---------------------------------------------------------------- members of a team and a branch

def test_team_and_branch_member_lists(mw):
    org = mw.org["id"]
    t_members = list_all(mw.e.api, f"/v1/orgs/{org}/teams/{mw.team}/members")
    assert t_members == []
    add_member(mw.c, org, mw.e2.id, "member", team_id=mw.team)
    (item,) = list_all(mw.e.api, f"/v1/orgs/{org}/teams/{mw.team}/members")
    assert item["user_id"] == mw.e2.id and item["team_id"] == mw.team and item["email"] is None
    (own,) = list_all(mw.e2.api, f"/v1/orgs/{org}/teams/{mw.team}/members")
    assert own["email"]  # the caller's own row
    region = list_all(mw.e.api, f"/v1/orgs/{org}/branches/{mw.region}/members", limit=1)
    assert [m["user_id"] for m in region] == [mw.e.id]
    below = list_all(mw.e.api, f"/v1/orgs/{org}/branches/{mw.region}/members", params={"below": "true"}, limit=1)
    assert sorted(m["user_id"] for m in below) == sorted([mw.e.id, mw.e2.id])
    assert {m["branch_id"] for m in below} == {mw.region, mw.district}
    root = list_all(mw.admin, f"/v1/orgs/{org}/branches/{mw.org['root_branch_id']}/members", params={"below": "true"})
    assert {mw.e.id, mw.e2.id} <= {m["user_id"] for m in root}
    denied(mw.e.api.get(f"/v1/orgs/{org}/branches/{mw.region}/members", params={"below": "yes"}), 422)
    # another org's team or branch, unknown ids, and non-members: 404
    for path in (f"/v1/orgs/{org}/teams/{mw.other_team}/members",
                 f"/v1/orgs/{org}/branches/{mw.other['root_branch_id']}/members",
                 f"/v1/orgs/{org}/teams/{new_id()}/members", f"/v1/orgs/{org}/teams/nope/members",
                 f"/v1/orgs/{mw.other['id']}/teams/{mw.other_team}/members"):
        denied(mw.e.api.get(path), 404, "not_found")
    denied(mw.outsider.api.get(f"/v1/orgs/{org}/teams/{mw.team}/members"), 404)


def test_a_rejected_response_cannot_be_resubmitted_to_a_closed_deployment_but_managers_edit_it(mw):
    sid = new_survey(mw)
    dep = new_deployment(mw, sid, {"enumerators": [P("user", mw.e.id)], "approvers": [[P("user", mw.e2.id)]]})
    rid = new_id()
    assert submit(mw.e.api, dep, rid).status_code == 202
    wait_until(lambda: mw.e2.api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="the response")
    ok(mw.e2.api.post(f"/v1/responses/{rid}/reject", json={"message": "count again"}))
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))
    denied(mw.e.api.patch(f"/v1/responses/{rid}", json={"data": good_data(2)}), 409, "deployment_closed")
    assert ok(mw.admin.patch(f"/v1/responses/{rid}", json={"data": good_data(3)}))["status"] == "rejected"
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": False}))
    assert ok(mw.e.api.patch(f"/v1/responses/{rid}", json={"data": good_data(4)}))["status"] == "pending"


def test_org_admin_power_needs_the_totp_session_the_org_requires(mw):
    """Changes count org-admin power only as the org's TOTP policy allows (API keys never count
    as a second factor): 403 totp_required; the survey's creator is its admin regardless."""
    r = mw.admin.post("/v1/orgs", json={"name": "TOTP management org"})
    org = ok(r, 201)
    add_member(mw.c, org["id"], mw.e.id, "member", branch_id=org["root_branch_id"])
    sid = ok(mw.e.api.post("/v1/surveys", json={"org_id": org["id"], "name": "e's survey",
                                               "definition": DEFINITION}), 201)["id"]
    dep = ok(mw.e.api.post(f"/v1/surveys/{sid}/deployments", json={
        "name": "e's deployment", "roles": {"enumerators": [P("user", mw.e.id)]}}), 201)["id"]
    mw.c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", org["id"])
    denied(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}), 403, "totp_required")
    denied(mw.admin.post(f"/v1/surveys/{sid}/archive"), 403, "totp_required")
    denied(mw.admin.delete(f"/v1/surveys/{sid}/access/user/{mw.e2.id}"), 403, "totp_required")
    ok(mw.admin.get(f"/v1/surveys/{sid}/access"))  # a read: org-admin power counts
    assert ok(mw.e.api.patch(f"/v1/deployments/{dep}", json={"closed": True}))["closed"] is True


def test_with_postgresql_down_a_known_close_refuses_and_an_unchecked_entry_is_quarantined(mw):
    """PostgreSQL down: a front end that knows the deployment is closed still answers 409; one
    it could not check is accepted unverified and the worker quarantines it (reason: closed)."""
    c = mw.c
    sid = new_survey(mw)
    known = new_deployment(mw, sid, {"enumerators": [P("user", mw.e.id)]})
    cold = new_deployment(mw, sid, {"enumerators": [P("user", mw.e2.id)]}, name="never looked up")
    port = free_port()
    proc = c.start_frontend(name="frontend-manage-degraded", FV_LISTEN_PORT=port, FV_PG_TIMEOUT_MS=1000,
                            FV_PROCESSES=1)
    sess = hook_session(requests.Session())
    sess.trust_env, sess.verify = False, str(c.cert)

    def post(key, dep, rid=None):
        return sess.post(f"https://127.0.0.1:{port}/v1/deployments/{dep}/responses", timeout=30,
                         headers={"Authorization": f"Bearer {key}"}, json={"id": rid or new_id(), "data": good_data()})
    try:
        assert post(mw.e.key, known).status_code == 202  # the deployment and e's permission cached here
        wait_until(lambda: sess.get(f"https://127.0.0.1:{port}/v1/me", timeout=30,
                                    headers={"Authorization": f"Bearer {mw.e2.key}"}).status_code == 200, 30,
                   what="e2's key known here")
        for dep in (known, cold):
            ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"closed": True}))
        wait_until(lambda: post(mw.e.key, known).status_code == 409, 10, what="the close known here")
        rid, known_rid = new_id(), new_id()
        pg_stop_immediate(c)
        try:
            wait_until(lambda: sess.get(f"https://127.0.0.1:{port}/readyz", timeout=30).json().get("db") == "down",
                       60, what="db: down")
            # Known closed: 409. (When the child's answer is older than a revocation-log gap, it
            # is not used: then the submission is taken unverified, and quarantined below.)
            r = post(mw.e.key, known, known_rid)
            if r.status_code != 202:
                denied(r, 409, "deployment_closed")
            assert post(mw.e2.key, cold, rid).status_code == 202  # nothing known of it: unverified
        finally:
            pg_start(c)
            wait_until(lambda: mw.admin.get("/v1/me", headers={"Connection": "close"}).status_code == 200, 60,
                       what="the session's front end reading PostgreSQL again")
        taken = [rid] + ([known_rid] if r.status_code == 202 else [])
        rows = wait_until(lambda: (lambda q: q if len(q) == len(taken) else None)(
            c.psql("SELECT reason FROM quarantine WHERE id = ANY(%s::uuid[])", taken)), 120,
            what="the unverified entries quarantined")
        assert {x[0] for x in rows} == {"the deployment is closed"}
        assert c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", taken)[0][0] == 0
    finally:
        sess.close()
        assert proc.stop(signal.SIGTERM, timeout=30) == 0


def test_an_entry_checked_before_a_principal_was_removed_is_quarantined_by_the_worker(mw):
    """A front end checked the entries (verified) at revocation version v; the deployment's
    principals changed after v: the worker re-checks them, quarantines the one whose submitter is
    no longer an enumerator and stores the other."""
    c = mw.c
    sid = new_survey(mw)
    dep = new_deployment(mw, sid, {"enumerators": [P("user", mw.named.id), P("user", mw.e.id)]})
    (v,) = c.psql("SELECT COALESCE(max(id), 0) FROM revocations")[0]
    ok(mw.admin.patch(f"/v1/deployments/{dep}", json={"roles": {"enumerators": [P("user", mw.e.id)]}}))
    ids = {}
    for who in (mw.named, mw.e):
        ids[who.id] = new_id()
        c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", ids[who.id], "survey_id", sid,
                    "survey_version", "1", "deployment_id", dep, "submitted_by", who.id,
                    "received_at", str(int(time.time() * 1000)), "data", json.dumps(good_data()),
                    "location", "", "collected_at", "", "verified", "1", "rversion", str(v))
    wait_until(lambda: c.psql("SELECT count(*) FROM responses WHERE id = %s", ids[mw.e.id])[0][0] == 1, 60,
               what="the kept enumerator's entry stored")
    rows = wait_until(lambda: c.psql("SELECT reason FROM quarantine WHERE id = %s", ids[mw.named.id]), 60,
                      what="the removed enumerator's entry quarantined")
    assert "revoked" in rows[0][0]
    assert c.psql("SELECT count(*) FROM responses WHERE id = %s", ids[mw.named.id])[0][0] == 0
