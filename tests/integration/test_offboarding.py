"""Offboarding (issue 10): rights on an organisation's objects need current membership of it, and
removing a member cuts every right they held at once, on every front end and in the worker.

The matrix: every deployment role (enumerator, viewer, manager, approver of stage 1 and 2) and
both survey grants (admin, viewer), each held through a user, a team or a branch principal,
removed from the org (every membership) or from the one team or branch that named them (the
user keeps another membership). Each case shows the right working before and gone after, and
the audit entry listing what the removal took. Then the review's removed creator, a person named
directly in every role at once, naming a non-member, the org's grant review list, two front ends,
and a removal racing the person's submissions in flight.

Worlds are built with SQL (accesshelp) so that only the removal goes through the endpoint under
test; the users hold API keys, and one has a password and a session too."""
import json
import signal
import threading

import pytest
import requests

from accesshelp import P, User, add_branch, add_member, add_team, list_all
from fvharness import error_body, free_port, new_id, pin_children, wait_until
from openapi_check import hook_session

DEF = {"questions": [
    {"name": "household", "type": "text", "label": "Household", "required": True},
    {"name": "members", "type": "integer", "label": "Members", "required": True,
     "constraint": {"min": 1, "max": 50}},
    {"name": "secret", "type": "text", "label": "Diagnosis", "required": False, "confidential": True},
]}
SECRET = "HIV+"
ROLES = ["enumerator", "viewer", "manager", "approver1", "approver2", "survey_admin", "survey_viewer"]
REVOCATION_BOUND_S = 15  # revocation_poll_ms is 1 s by default: generous


def answers(i=0, secret=SECRET):
    return {"household": f"House {i}", "members": 1 + i % 50, "secret": secret}


def insert_response(c, survey, dep, by, status, stage, secret=SECRET):
    """A response as the worker (and the lifecycle) would leave it."""
    rid = new_id()
    # One statement: the response and its version row with the full state (migration 012).
    c.psql("WITH r AS (INSERT INTO responses AS x (id, survey_id, survey_version, deployment_id, submitted_by, "
           "  status, stage, data, received_at) VALUES (%s, %s, 1, %s, %s, %s, %s, %s::jsonb, now()) "
           "  RETURNING x.id, x.stage, x.status, x.submitted_by, to_jsonb(x) AS state) "
           "INSERT INTO response_events (response_id, version, action, stage, status, actor, state) "
           "SELECT id, 1, 'submit', stage, status, submitted_by, state FROM r",
           rid, survey, dep, by, status, stage, json.dumps(answers(1, secret)))
    return rid


@pytest.fixture(scope="module")
def ob(workers):
    """Org O made by `admin`; `target` is the branch deployments go to (nobody is in it, so no
    implicit manager); `home` a branch named nowhere, where a user keeps a membership that
    confers nothing."""
    c = workers
    admin = User(c, "offboarding admin")
    r = admin.api.post("/v1/orgs", json={"name": "Offboarding org"})
    assert r.status_code == 201, r.text
    org = r.json()

    class W:
        pass
    w = W()
    w.c, w.admin, w.org, w.root = c, admin, org["id"], org["root_branch_id"]
    w.target = add_branch(c, w.org, w.root, "deployment target")
    w.home = add_branch(c, w.org, w.root, "home")
    w.users = []
    yield w
    for u in [admin] + w.users:
        u.close()


def new_user(w, label, home=True):
    u = User(w.c, label)
    w.users.append(u)
    if home:
        add_member(w.c, w.org, u.id, "member", branch_id=w.home)
    return u


def new_survey(w, name, by=None):
    r = (by or w.admin).api.post("/v1/surveys", json={"org_id": w.org, "name": name, "definition": DEF})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def deploy(w, survey, roles, by=None, **where):
    body = {"name": "offboarding", "roles": roles}
    body.update(where or {"branch_id": w.target})
    r = (by or w.admin).api.post(f"/v1/surveys/{survey}/deployments", json=body)
    assert r.status_code == 201, r.text
    return r.json()["id"]


class Case:
    """One user holding one role through one principal, and how to try it."""

    def __init__(self, w, role, kind):
        self.w, self.role, self.kind = w, role, kind
        # a user principal needs a membership (home); a team or branch principal is the membership
        self.user = new_user(w, f"{role} via {kind}", home=True)
        if kind == "user":
            self.principal = P("user", self.user.id)
        elif kind == "team":
            self.team = add_team(w.c, w.org, f"team of {role}")
            add_member(w.c, w.org, self.user.id, "member", team_id=self.team)
            self.principal = P("team", self.team)
        else:
            self.branch = add_branch(w.c, w.org, w.root, f"branch of {role}")
            add_member(w.c, w.org, self.user.id, "member", branch_id=self.branch)
            self.principal = P("branch", self.branch)
        self.survey = new_survey(w, f"survey of {role} via {kind}")
        me = P("user", w.admin.id)
        roles = {"enumerators": [me], "approvers": [[me], [me]]}
        if role == "enumerator":
            roles["enumerators"] = [self.principal]
        elif role == "viewer":
            roles["viewers"] = [self.principal]
        elif role == "manager":
            roles["managers"] = [self.principal]
        elif role in ("approver1", "approver2"):
            roles["approvers"][int(role[-1]) - 1] = [self.principal]
        self.dep = deploy(w, self.survey, roles)
        if role in ("survey_admin", "survey_viewer"):
            r = w.admin.api.put(f"/v1/surveys/{self.survey}/access", json={
                "principal_type": self.principal["type"], "principal_id": self.principal["id"],
                "role": role.split("_")[1]})
            assert r.status_code == 200, r.text
        self.fin = insert_response(w.c, self.survey, self.dep, w.admin.id, "final", 0)
        self.p1 = insert_response(w.c, self.survey, self.dep, w.admin.id, "pending", 1)

    def attempt(self):
        """The role's own right, exercised once; returns the status (and checks the body)."""
        api, w = self.user.api, self.w
        if self.role == "enumerator":
            r = api.post(f"/v1/deployments/{self.dep}/responses", json={"id": new_id(), "data": answers(2)})
            return r.status_code
        if self.role == "viewer":
            r = api.get(f"/v1/responses/{self.fin}")
            return r.status_code
        if self.role == "manager":
            r = api.get(f"/v1/responses/{self.p1}")  # a manager reads every stage
            return r.status_code
        if self.role in ("approver1", "approver2"):
            stage = int(self.role[-1])
            rid = insert_response(w.c, self.survey, self.dep, w.admin.id, "pending", stage)
            return api.post(f"/v1/responses/{rid}/approve", json={}).status_code
        if self.role == "survey_admin":
            r = api.get(f"/v1/surveys/{self.survey}/responses")
            if r.status_code == 200:  # the confidential answers are a survey admin's
                assert SECRET in {i["data"].get("secret") for i in r.json()["items"]}, r.text
            return r.status_code
        r = api.get(f"/v1/surveys/{self.survey}")
        if r.status_code == 200:
            assert r.json()["role"] == "viewer", r.text
        return r.status_code

    def allowed(self):
        return {"enumerator": 202}.get(self.role, 200)


def remove(w, user_id, **which):
    r = w.admin.api.delete(f"/v1/orgs/{w.org}/members/{user_id}", params=which or None)
    assert r.status_code == 204, r.text
    rows = w.c.psql("SELECT detail::text FROM audit WHERE action = 'member.remove' AND org_id = %s "
                    "AND target_id = %s ORDER BY id DESC LIMIT 1", w.org, user_id)
    return json.loads(rows[0][0])


def gone(case):
    """The right is refused: at once for what PostgreSQL decides, within the revocation bound
    for a submission (the front ends' cached permission goes with the revocation)."""
    if case.role == "enumerator":
        wait_until(lambda: case.attempt() == 404, REVOCATION_BOUND_S,
                   what=f"{case.user} refused on every child")
        for _ in range(6):  # every child of the front end (connections alternate)
            assert case.attempt() == 404
    else:
        assert case.attempt() == 404, f"{case.role} via {case.kind} still works after the removal"


@pytest.mark.parametrize("kind", ["user", "team", "branch"])
@pytest.mark.parametrize("role", ROLES)
def test_removal_from_the_org_cuts_every_role(ob, role, kind):
    case = Case(ob, role, kind)
    assert case.attempt() == case.allowed()
    detail = remove(ob, case.user.id)
    assert detail["left_org"] is True, detail
    assert len(detail["removed"]) == (1 if kind == "user" else 2), detail  # home (and the team, branch)
    gone(case)
    if kind == "user":  # the rows naming the user went with the last membership
        if role.startswith("survey_"):
            assert detail["grants"] == [{"survey_id": case.survey, "role": role.split("_")[1]}], detail
        else:
            assert [d["deployment_id"] for d in detail["deployment_roles"]] == [case.dep], detail
        assert ob.c.psql("SELECT count(*) FROM survey_grants WHERE principal_id = %s", case.user.id) == [(0,)]
        assert ob.c.psql("SELECT count(*) FROM deployment_roles WHERE principal_id = %s", case.user.id) == [(0,)]
        # joining again restores nothing
        add_member(ob.c, ob.org, case.user.id, "member", branch_id=ob.home)
        assert case.attempt() in (403, 404)
    else:
        assert detail["grants"] == [] and detail["deployment_roles"] == [], detail


@pytest.mark.parametrize("kind", ["team", "branch"])
@pytest.mark.parametrize("role", ROLES)
def test_removal_from_the_one_team_or_branch_cuts_its_roles(ob, role, kind):
    case = Case(ob, role, kind)
    assert case.attempt() == case.allowed()
    which = {"team_id": case.team} if kind == "team" else {"branch_id": case.branch}
    detail = remove(ob, case.user.id, **which)
    assert detail["left_org"] is False, detail  # still a member (home)
    assert detail["removed"] == [{"role": "member", "team_id": which.get("team_id"),
                                  "branch_id": which.get("branch_id")}], detail
    assert detail["grants"] == [] and detail["deployment_roles"] == [] and detail["creator_of"] == [], detail
    gone(case)
    me = case.user.api.get(f"/v1/orgs/{ob.org}")
    assert me.status_code == 200, me.text  # the membership that stays still counts


def test_a_removed_creator_keeps_nothing(ob):
    """The review's scenario: a member creates survey S; the admin deploys it naming X as
    manager and submits a confidential answer; both are removed. Before: the creator lists the
    answers, grants, deploys and submits; after: all refused, and the audit lists the lapse."""
    w = ob
    creator = new_user(w, "creator")
    x = new_user(w, "named manager X")
    outsider = new_user(w, "outsider", home=False)
    colleague = new_user(w, "colleague")
    sid = new_survey(w, "made by a member", by=creator)
    dep = deploy(w, sid, {"enumerators": [P("user", w.admin.id)], "managers": [P("user", x.id)]})
    rid = new_id()
    r = w.admin.api.post(f"/v1/deployments/{dep}/responses", json={"id": rid, "data": answers(1)})
    assert r.status_code == 202, r.text
    wait_until(lambda: w.admin.api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="the response")

    def lists_secret(api):
        r = api.get(f"/v1/surveys/{sid}/responses")
        return r.status_code, [i["data"].get("secret") for i in r.json()["items"]] if r.status_code == 200 else None

    assert lists_secret(creator.api) == (200, [SECRET])
    assert x.api.get(f"/v1/responses/{rid}").status_code == 200
    r = creator.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": colleague.id,
                                                           "role": "viewer"})
    assert r.status_code == 200, r.text
    own = deploy(w, sid, {"enumerators": [P("user", creator.id)]}, by=creator, branch_id=w.root)
    r = creator.api.post(f"/v1/deployments/{own}/responses", json={"id": new_id(), "data": answers(2)})
    assert r.status_code == 202, r.text

    for u in (creator, x):
        detail = remove(w, u.id)
        assert detail["left_org"] is True
    detail = json.loads(w.c.psql("SELECT detail::text FROM audit WHERE action = 'member.remove' AND "
                                 "target_id = %s", creator.id)[0][0])
    assert detail["creator_of"] == [sid] and detail["grants_made"] == 1, detail
    assert [d["deployment_id"] for d in detail["deployment_roles"]] == [own], detail

    assert lists_secret(creator.api)[0] == 404
    assert creator.api.get(f"/v1/surveys/{sid}").status_code == 404
    assert creator.api.get(f"/v1/responses/{rid}").status_code == 404
    add_member(w.c, w.org, outsider.id, "member", branch_id=w.home)  # so only the creator's power is tried
    r = creator.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": outsider.id,
                                                           "role": "admin"})
    assert r.status_code == 404, r.text
    r = creator.api.put(f"/v1/surveys/{sid}/definition", json={"definition": DEF})
    assert r.status_code == 404, r.text
    r = creator.api.post(f"/v1/surveys/{sid}/deployments", json={
        "name": "to the root", "branch_id": w.root, "roles": {"enumerators": [P("branch", w.root)]}})
    assert r.status_code == 404, r.text
    wait_until(lambda: creator.api.post(f"/v1/deployments/{own}/responses",
                                        json={"id": new_id(), "data": answers(3)}).status_code == 404,
               REVOCATION_BOUND_S, what="the removed creator's submission refused")
    assert x.api.get(f"/v1/responses/{rid}").status_code == 404
    assert x.api.get(f"/v1/surveys/{sid}/responses").status_code == 404
    # the grant the creator made stays, for the admin to review
    mine = list_all(w.admin.api, f"/v1/orgs/{w.org}/grants", {"granted_by": creator.id})
    assert [(g["survey_id"], g["principal"], g["role"]) for g in mine] == [(sid, P("user", colleague.id), "viewer")]


def test_a_person_named_directly_in_every_role(ob):
    """One user named as a user principal in every role of one deployment and as survey admin:
    everything works before; after the removal nothing does, the rows are gone and the audit
    lists each; the grant they made to someone else is listed for review."""
    w = ob
    p = new_user(w, "named everywhere")
    other = new_user(w, "granted by them")
    sid = new_survey(w, "every role")
    me = P("user", p.id)
    dep = deploy(w, sid, {"enumerators": [me], "viewers": [me], "managers": [me], "approvers": [[me], [me]]})
    r = w.admin.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": p.id,
                                                           "role": "admin"})
    assert r.status_code == 200, r.text
    rid = insert_response(w.c, sid, dep, p.id, "pending", 1)
    rej = insert_response(w.c, sid, dep, p.id, "rejected", 1)
    assert p.api.get(f"/v1/responses/{rid}").status_code == 200
    assert p.api.patch(f"/v1/responses/{rej}", json={"data": answers(4)}).status_code == 200  # resubmits
    r = p.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": other.id,
                                                     "role": "viewer"})
    assert r.status_code == 200, r.text
    r = p.api.post(f"/v1/deployments/{dep}/responses", json={"id": new_id(), "data": answers(5)})
    assert r.status_code == 202, r.text

    detail = remove(w, p.id)
    assert sorted((d["role"], d["stage"]) for d in detail["deployment_roles"]) == \
        [("approver", 1), ("approver", 2), ("enumerator", 0), ("manager", 0), ("viewer", 0)], detail
    assert detail["grants"] == [{"survey_id": sid, "role": "admin"}] and detail["grants_made"] == 1, detail

    rid2 = insert_response(w.c, sid, dep, p.id, "pending", 1)
    rej2 = insert_response(w.c, sid, dep, p.id, "rejected", 1)
    for method, path, body in (("GET", f"/v1/surveys/{sid}", None), ("GET", f"/v1/surveys/{sid}/responses", None),
                               ("GET", f"/v1/surveys/{sid}/deployments", None), ("GET", f"/v1/deployments/{dep}", None),
                               ("GET", f"/v1/responses/{rid2}", None),
                               ("PATCH", f"/v1/responses/{rej2}", {"data": answers(6)}),
                               ("POST", f"/v1/responses/{rid2}/approve", {}),
                               ("POST", f"/v1/responses/{rid2}/reject", {"message": "no"}),
                               ("DELETE", f"/v1/responses/{rid2}", None)):
        r = p.api.request(method, path, json=body)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    wait_until(lambda: p.api.post(f"/v1/deployments/{dep}/responses",
                                  json={"id": new_id(), "data": answers(7)}).status_code == 404,
               REVOCATION_BOUND_S, what="the removed enumerator refused")
    assert sid not in {s["id"] for s in list_all(p.api, "/v1/surveys")}
    assert w.c.psql("SELECT count(*) FROM deployment_roles WHERE principal_id = %s", p.id) == [(0,)]
    got = list_all(w.admin.api, f"/v1/orgs/{w.org}/grants", {"granted_by": p.id})
    assert [(g["principal"]["id"], g["role"]) for g in got] == [(other.id, "viewer")]


def test_naming_a_user_who_is_not_a_member_is_refused(ob):
    w = ob
    outsider = new_user(w, "not a member", home=False)
    sid = new_survey(w, "no outsiders")
    for pid in (outsider.id, new_id()):  # one answer for a non-member and for no such user
        r = w.admin.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": pid,
                                                               "role": "admin"})
        assert r.status_code == 422, r.text
        err = error_body(r)
        assert err["code"] == "principal_not_member" and "principal_id" in err["fields"], err
        r = w.admin.api.post(f"/v1/surveys/{sid}/deployments", json={
            "name": "x", "roles": {"viewers": [P("user", w.admin.id)], "managers": [P("user", pid)]}})
        assert r.status_code == 422, r.text
        err = error_body(r)
        assert err["code"] == "principal_not_member" and "roles" in err["fields"], err
    assert w.c.psql("SELECT count(*) FROM survey_grants WHERE survey_id = %s", sid) == [(0,)]
    assert w.c.psql("SELECT count(*) FROM deployments WHERE survey_id = %s", sid) == [(0,)]
    # a member may be named; removing a grant of a non-member stays possible (role null)
    add_member(w.c, w.org, outsider.id, "member", branch_id=w.home)
    r = w.admin.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": outsider.id,
                                                           "role": "viewer"})
    assert r.status_code == 200, r.text
    w.c.psql("DELETE FROM memberships WHERE user_id = %s", outsider.id)
    r = w.admin.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": outsider.id,
                                                           "role": None})
    assert r.status_code == 200 and r.json()["role"] is None, r.text


def test_org_grants_list(ob):
    """GET /v1/orgs/{org}/grants: every grant on the org's surveys, or those one user made, paged;
    for the org admin only (a member 403, others 404)."""
    w = ob
    maker = new_user(w, "grant maker")
    a, b, c3 = (new_user(w, f"grantee {i}") for i in range(3))
    team = add_team(w.c, w.org, "granted team")
    sid = new_survey(w, "grants listed")
    r = w.admin.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": maker.id,
                                                           "role": "admin"})
    assert r.status_code == 200, r.text
    made = [("user", a.id, "viewer"), ("user", b.id, "admin"), ("team", team, "viewer")]
    for ptype, pid, role in made:
        r = maker.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": ptype, "principal_id": pid,
                                                             "role": role})
        assert r.status_code == 200, r.text
    items = list_all(w.admin.api, f"/v1/orgs/{w.org}/grants", {"granted_by": maker.id}, limit=1)
    assert sorted((g["principal"]["type"], g["principal"]["id"], g["role"]) for g in items) == sorted(made)
    assert all(g["survey_id"] == sid and g["granted_by"] == maker.id and g["created_at"] for g in items)
    every = list_all(w.admin.api, f"/v1/orgs/{w.org}/grants", limit=2)
    assert {(g["survey_id"], g["principal"]["id"]) for g in every} >= {(sid, maker.id), (sid, a.id), (sid, team)}
    assert all(w.c.psql("SELECT org_id::text FROM surveys WHERE id = %s", g["survey_id"]) == [(w.org,)]
               for g in every)
    assert list_all(w.admin.api, f"/v1/orgs/{w.org}/grants", {"granted_by": c3.id}) == []
    # a member (even a survey admin) may not list the org's grants; a non-member does not see the org
    assert maker.api.get(f"/v1/orgs/{w.org}/grants").status_code == 403
    stranger = new_user(w, "grants stranger", home=False)
    assert stranger.api.get(f"/v1/orgs/{w.org}/grants").status_code == 404
    r = w.admin.api.get(f"/v1/orgs/{w.org}/grants", params={"granted_by": "not-a-uuid"})
    assert r.status_code == 422 and "granted_by" in error_body(r)["fields"], r.text
    r = w.admin.api.get(f"/v1/orgs/{w.org}/grants", params={"after": "nonsense"})
    assert r.status_code == 422, r.text


# ---- two front ends ----

class FE:
    """Keep-alive sessions to every child of the front end on port."""

    def __init__(self, c, port):
        self.port, self.pinned = port, pin_children(c, port)

    def statuses(self, method, path, token, body=None):
        out = []
        for s in self.pinned.values():
            r = s.request(method, f"https://127.0.0.1:{self.port}{path}", json=body, timeout=30,
                          headers={"Authorization": f"Bearer {token}"})
            out.append(r.status_code)
        return out

    def close(self):
        for s in self.pinned.values():
            s.close()


def test_removed_person_refused_on_both_front_ends(ob):
    """After the 204, the removed person's session and API key get 404 on the org's survey, its
    responses, one response, a submission, the deployment and a private site, on every child of
    two front ends whose caches were warm (kept 5 minutes: only the revocation can end them)."""
    w, c = ob, ob.c
    from test_accounts import STRONG, signup
    port2 = free_port()
    proc2 = c.start_frontend(name="frontend-offboarding", FV_LISTEN_PORT=port2, FV_DEPLOYMENT_CACHE_TTL_S=300,
                             FV_CACHE_STALE_S=300, FV_AUTH_CACHE_TTL_S=300)
    fes = []
    try:
        anon = c.api()
        mail = f"leaver-{new_id()[:8]}@example.org"
        uid = signup(anon, mail, "Leaver", c=c)["id"]
        r = anon.post("/v1/auth/login", json={"email": mail, "password": STRONG})
        assert r.status_code == 200, r.text
        session = r.json()["token"]
        r = anon.post("/v1/me/api-keys", json={"name": "field phone", "current_password": STRONG},
                      headers={"Authorization": f"Bearer {session}"})
        assert r.status_code == 201, r.text
        key = r.json()["key"]
        anon.close()
        add_member(c, w.org, uid, "member", branch_id=w.home)
        sid = new_survey(w, "two front ends")
        dep = deploy(w, sid, {"enumerators": [P("user", uid)], "viewers": [P("user", uid)]})
        rid = insert_response(c, sid, dep, uid, "final", 0)
        r = w.admin.api.post("/v1/sites", json={"org_id": w.org, "name": "private well", "type": "well",
                                                "privacy": "private"})
        assert r.status_code == 201, r.text
        site = r.json()["id"]
        fes = [FE(c, c.http_port), FE(c, port2)]
        reads = [("GET", f"/v1/surveys/{sid}"), ("GET", f"/v1/surveys/{sid}/responses"),
                 ("GET", f"/v1/responses/{rid}"), ("GET", f"/v1/deployments/{dep}"), ("GET", f"/v1/sites/{site}")]

        def submit_statuses(fe, token):
            return fe.statuses("POST", f"/v1/deployments/{dep}/responses", token,
                               {"id": new_id(), "data": answers(8)})
        for fe in fes:  # every child's caches warm: the credential and the permission
            for token in (session, key):
                assert set(submit_statuses(fe, token)) == {202}
                for method, path in reads:
                    assert set(fe.statuses(method, path, token)) == {200}, path

        remove(w, uid)

        def all_refused():
            for fe in fes:
                for token in (session, key):
                    if set(submit_statuses(fe, token)) - {403, 404}:
                        return False
            return True
        wait_until(all_refused, REVOCATION_BOUND_S, what="every child of both front ends refusing the submission")
        for fe in fes:
            for token in (session, key):
                for method, path in reads:
                    assert set(fe.statuses(method, path, token)) == {404}, path
                assert set(submit_statuses(fe, token)) == {404}
    finally:
        for fe in fes:
            fe.close()
        assert proc2.stop(signal.SIGTERM, timeout=30) == 0


# ---- the race: a removal while the person's submissions are in flight ----

def _burst_world(w, label):
    u = new_user(w, label)
    sid = new_survey(w, f"burst of {label}")
    dep = deploy(w, sid, {"enumerators": [P("user", u.id)]})
    assert u.api.post(f"/v1/deployments/{dep}/responses",  # the permission cached on this child
                      json={"id": new_id(), "data": answers(0)}).status_code == 202
    return u, dep


def _fates(c, ids):
    """Where each id ended: 'response', 'quarantine', or missing."""
    stored = {r[0] for r in c.psql("SELECT id::text FROM responses WHERE id = ANY(%s::uuid[])", ids)}
    kept = {r[0]: r[1] for r in c.psql("SELECT id::text, reason FROM quarantine WHERE id = ANY(%s::uuid[])", ids)}
    return stored, kept


def test_entries_checked_before_the_removal_are_quarantined_not_stored(ob):
    """The extreme of the race: every entry of the burst was checked (verified, 202) by the front
    end before the removal committed, and reaches the worker after it (the workers are stopped
    meanwhile). None is stored; each is in the org's quarantine with the reason; none is lost."""
    w, c = ob, ob.c
    u, dep = _burst_world(w, "burst before removal")
    c.wait_drained()
    c.stop_all_workers()
    try:
        ids = [new_id() for _ in range(30)]
        for i, rid in enumerate(ids):
            r = u.api.post(f"/v1/deployments/{dep}/responses", json={"id": rid, "data": answers(i)})
            assert r.status_code == 202, r.text
        remove(w, u.id)
    finally:
        c.start_default_workers()
    c.wait_drained(timeout=120)
    stored, kept = _fates(c, ids)
    assert stored == set(), f"{len(stored)} entries of a removed member stored as verified"
    assert set(kept) == set(ids), "an acknowledged submission was lost"
    assert set(kept.values()) == {"the submitter's permission was revoked before the submission was written"}
    listed = {q["id"] for q in list_all(w.admin.api, f"/v1/orgs/{w.org}/quarantine", limit=500)}
    assert set(ids) <= listed  # the org's admins see them (the front end had checked the submitter)
    assert c.psql("SELECT count(*) FROM audit WHERE action = 'submission.quarantined' AND org_id = %s "
                  "AND target_id = ANY(%s)", w.org, ids) == [(len(ids),)]


def test_removal_racing_a_burst_in_flight(ob):
    """Submissions keep coming from two threads while the member is removed: after the stream
    drains, no response of theirs is stored later than the removal's commit, every 202 is in
    responses or quarantine, and whatever came after the 204 was refused or quarantined."""
    w, c = ob, ob.c
    u, dep = _burst_world(w, "burst racing removal")
    accepted, statuses, unexpected, lock = [], [], [], threading.Lock()
    stop = threading.Event()
    removed_at = {}

    def send(n):
        with requests.Session() as s:
            hook_session(s)
            s.trust_env = False
            s.verify = str(c.cert)
            for i in range(400):
                if stop.is_set():
                    return
                rid = new_id()
                r = s.post(f"{c.base_url}/v1/deployments/{dep}/responses", timeout=30,
                           headers={"Authorization": f"Bearer {u.key}"},
                           json={"id": rid, "data": answers(n * 1000 + i)})
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 202:
                        accepted.append(rid)
                    elif r.status_code not in (403, 404):
                        unexpected.append(r.text[:300])
                if r.status_code != 202 and "after" in removed_at:
                    return  # refused after the removal: done
    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(accepted) >= 20, 60, what="the burst to get going")
        remove(w, u.id)
        removed_at["after"] = c.psql("SELECT clock_timestamp()")[0][0]  # later than the commit
        wait_until(lambda: not any(t.is_alive() for t in threads), REVOCATION_BOUND_S + 30,
                   what="the senders to be refused")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not unexpected, unexpected
    c.wait_drained(timeout=120)
    stored, kept = _fates(c, accepted)
    print(f"{len(accepted)} accepted: {len(stored)} stored, {len(kept)} quarantined")
    assert stored | set(kept) == set(accepted), "an acknowledged submission was lost"
    assert not (stored & set(kept))
    late = c.psql("SELECT count(*) FROM responses WHERE submitted_by = %s AND deployment_id = %s "
                  "AND created_at > %s", u.id, dep, removed_at["after"])
    assert late == [(0,)], "a response of the removed member was stored after the removal"
    assert set(kept.values()) <= {"the submitter's permission was revoked before the submission was written"}
    assert statuses.count(404) + statuses.count(403) >= 1


def test_removing_the_last_membership_by_team_is_leaving_the_org(ob):
    """A user whose only membership is one team, named directly as a survey viewer: removing that
    one membership (?team_id=) is leaving the org, so the user-principal grant goes with it."""
    w = ob
    u = new_user(w, "team only", home=False)
    team = add_team(w.c, w.org, "the only team")
    add_member(w.c, w.org, u.id, "member", team_id=team)
    sid = new_survey(w, "seen by a team member")
    r = w.admin.api.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": u.id,
                                                           "role": "viewer"})
    assert r.status_code == 200, r.text
    assert u.api.get(f"/v1/surveys/{sid}").status_code == 200
    detail = remove(w, u.id, team_id=team)
    assert detail["left_org"] is True and detail["grants"] == [{"survey_id": sid, "role": "viewer"}], detail
    assert u.api.get(f"/v1/surveys/{sid}").status_code == 404
    assert u.api.get(f"/v1/orgs/{w.org}").status_code == 404
    add_member(w.c, w.org, u.id, "member", team_id=team)  # back again: the grant is not
    assert u.api.get(f"/v1/surveys/{sid}").status_code == 404
