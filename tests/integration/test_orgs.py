"""Organisations: branches (a tree), teams, members and their roles, the audit log and the TOTP
policy; who may do what (org admin, branch admin, manager, member, member of another org,
stranger, anonymous); member removal taking effect at once; bad input on every endpoint."""
import json
import types

import pytest

from accesshelp import add_member, denied, ok
from fvharness import child_of, error_body, new_id, pin_children, wait_until

PREFIX = "orgs-"


def user(c, name):
    """A new user with an API key: (client, id)."""
    key = c.create_user(f"{PREFIX}{name}@example.org", name.replace("-", " ").title())
    api = c.api(key)
    uid = api.get("/v1/me").json()["id"]
    return types.SimpleNamespace(api=api, id=uid, name=name)


@pytest.fixture(scope="module")
def o(world):
    """The org under test and one user per role:

        root (org "Orgs Test")          admin: org admin (its creator)   manager: manager
         +- north                       branch_admin: admin              (on the root)
         |   +- north_east              member: member
         +- south                       sibling: member
        team "Pumps"                    team_member: member
        another org "Elsewhere"         other: its admin (no role here)
        stranger: no membership anywhere; anon: no credentials
    """
    c = world.cluster
    u = {n: user(c, n) for n in ("admin", "branch-admin", "manager", "member", "sibling",
                                  "team-member", "other", "stranger")}
    org = ok(u["admin"].api.post("/v1/orgs", json={"name": "Orgs Test"}), 201)
    oid, root = org["id"], org["root_branch_id"]
    a = u["admin"].api
    north = ok(a.post(f"/v1/orgs/{oid}/branches", json={"name": "North"}), 201)
    north_east = ok(a.post(f"/v1/orgs/{oid}/branches", json={"name": "North East", "parent_id": north["id"]}), 201)
    south = ok(a.post(f"/v1/orgs/{oid}/branches", json={"name": "South"}), 201)
    team = ok(a.post(f"/v1/orgs/{oid}/teams", json={"name": "Pumps"}), 201)
    for who, role, where in [("branch-admin", "admin", {"branch_id": north["id"]}),
                             ("manager", "manager", {}),
                             ("member", "member", {"branch_id": north_east["id"]}),
                             ("sibling", "member", {"branch_id": south["id"]}),
                             ("team-member", "member", {"team_id": team["id"]})]:
        # joined with SQL (joining needs the user's consent: test_invitations.py)
        add_member(c, oid, u[who].id, role, branch_id=where.get("branch_id", None if where else root),
                   team_id=where.get("team_id"))
    other_org = ok(u["other"].api.post("/v1/orgs", json={"name": "Elsewhere"}), 201)
    anon = c.api()
    ns = types.SimpleNamespace(c=c, id=oid, root=root, north=north["id"], north_east=north_east["id"],
                               south=south["id"], team=team["id"], other_org=other_org["id"], anon=anon,
                               **{k.replace("-", "_"): v for k, v in u.items()})
    yield ns
    for v in u.values():
        v.api.close()
    anon.close()


# ---------------------------------------------------------------- reading the org

def test_org_list_shows_my_orgs_with_my_role(o):
    items = ok(o.admin.api.get("/v1/orgs"))["items"]
    mine = [x for x in items if x["id"] == o.id]
    assert mine and mine[0]["role"] == "admin" and mine[0]["org_admin"] is True
    assert mine[0]["root_branch_id"] == o.root
    items = ok(o.member.api.get("/v1/orgs"))["items"]
    assert [x["id"] for x in items] == [o.id]
    assert items[0]["role"] == "member" and items[0]["org_admin"] is False
    assert ok(o.branch_admin.api.get("/v1/orgs"))["items"][0]["role"] == "admin"
    assert ok(o.stranger.api.get("/v1/orgs")) == {"items": [], "next": None}
    assert o.other_org not in [x["id"] for x in ok(o.member.api.get("/v1/orgs"))["items"]]


def test_org_list_pages(o, world):
    api = o.c.api(o.c.create_user(f"{PREFIX}pager@example.org", "Pager"))
    made = [ok(api.post("/v1/orgs", json={"name": f"Page {i}"}), 201)["id"] for i in range(5)]
    seen, after = [], None
    while True:
        page = ok(api.get("/v1/orgs", params={"limit": 2, **({"after": after} if after else {})}))
        assert len(page["items"]) <= 2
        seen += [x["id"] for x in page["items"]]
        after = page["next"]
        if not after:
            break
    assert sorted(seen) == sorted(made) and len(seen) == 5
    api.close()


def test_anonymous_gets_401_everywhere(o):
    for method, path in [("GET", "/v1/orgs"), ("GET", f"/v1/orgs/{o.id}"), ("PATCH", f"/v1/orgs/{o.id}"),
                         ("GET", f"/v1/orgs/{o.id}/branches"), ("POST", f"/v1/orgs/{o.id}/branches"),
                         ("GET", f"/v1/orgs/{o.id}/teams"), ("POST", f"/v1/orgs/{o.id}/teams"),
                         ("GET", f"/v1/orgs/{o.id}/members"), ("GET", f"/v1/orgs/{o.id}/audit"),
                         ("PUT", f"/v1/orgs/{o.id}/members/{o.member.id}"),
                         ("DELETE", f"/v1/orgs/{o.id}/members/{o.member.id}")]:
        kw = {"json": {"name": "x", "role": "member"}} if method in ("POST", "PUT", "PATCH") else {}
        denied(o.anon.request(method, path, **kw), 401)


def test_org_get_for_members_only(o):
    for who in (o.admin, o.branch_admin, o.manager, o.member, o.sibling, o.team_member):
        got = ok(who.api.get(f"/v1/orgs/{o.id}"))
        assert got["id"] == o.id and got["name"] == "Orgs Test" and got["require_admin_totp"] is False
    for who in (o.other, o.stranger):
        denied(who.api.get(f"/v1/orgs/{o.id}"), 404, "not_found")
    denied(o.admin.api.get(f"/v1/orgs/{new_id()}"), 404)
    denied(o.admin.api.get("/v1/orgs/not-a-uuid"), 404)


def test_rename_org_admin_only(o):
    got = ok(o.admin.api.patch(f"/v1/orgs/{o.id}", json={"name": "Orgs Test Renamed"}))
    assert got["name"] == "Orgs Test Renamed"
    assert ok(o.member.api.get(f"/v1/orgs/{o.id}"))["name"] == "Orgs Test Renamed"
    for who in (o.branch_admin, o.manager, o.member, o.team_member):
        denied(who.api.patch(f"/v1/orgs/{o.id}", json={"name": "Hijacked"}), 403, "forbidden")
    for who in (o.other, o.stranger):
        denied(who.api.patch(f"/v1/orgs/{o.id}", json={"name": "Hijacked"}), 404)
    ok(o.admin.api.patch(f"/v1/orgs/{o.id}", json={"name": "Orgs Test"}))
    assert ok(o.admin.api.get(f"/v1/orgs/{o.id}"))["name"] == "Orgs Test"


# ---------------------------------------------------------------- branches and teams

def test_branch_tree_listing(o):
    for who in (o.admin, o.member, o.sibling, o.team_member):
        items = ok(who.api.get(f"/v1/orgs/{o.id}/branches"))["items"]
        parent = {b["id"]: b["parent_id"] for b in items}
        assert parent[o.root] is None
        assert parent[o.north] == o.root and parent[o.south] == o.root
        assert parent[o.north_east] == o.north
    for who in (o.other, o.stranger):
        denied(who.api.get(f"/v1/orgs/{o.id}/branches"), 404)


def test_branch_admin_reaches_sub_branches_not_siblings_nor_root(o):
    api = o.branch_admin.api
    # on its own branch and below
    b = ok(api.post(f"/v1/orgs/{o.id}/branches", json={"name": "North West", "parent_id": o.north}), 201)
    assert b["parent_id"] == o.north and b["org_id"] == o.id
    ok(api.post(f"/v1/orgs/{o.id}/branches", json={"name": "NE village", "parent_id": o.north_east}), 201)
    # not on a sibling, not on the root (the default parent)
    denied(api.post(f"/v1/orgs/{o.id}/branches", json={"name": "S village", "parent_id": o.south}), 403, "forbidden")
    denied(api.post(f"/v1/orgs/{o.id}/branches", json={"name": "Top"}), 403, "forbidden")
    # members and managers create no branches; strangers do not see the org
    for who in (o.manager, o.member):
        denied(who.api.post(f"/v1/orgs/{o.id}/branches", json={"name": "x", "parent_id": o.north_east}), 403)
    for who in (o.other, o.stranger):
        denied(who.api.post(f"/v1/orgs/{o.id}/branches", json={"name": "x"}), 404)


def test_branch_parent_must_be_in_the_org(o):
    other_root = ok(o.other.api.get(f"/v1/orgs/{o.other_org}"))["root_branch_id"]
    for parent in (other_root, new_id()):
        err = denied(o.admin.api.post(f"/v1/orgs/{o.id}/branches", json={"name": "x", "parent_id": parent}), 422)
        assert "parent_id" in err["fields"]


def test_branch_admin_grants_within_reach_only(o):
    c = o.c
    newbie = user(c, "newbie")
    api = o.branch_admin.api
    add_member(c, o.id, newbie.id, "member", branch_id=o.south)  # a member already (PUT: members only)
    m = ok(api.put(f"/v1/orgs/{o.id}/members/{newbie.id}", json={"role": "member", "branch_id": o.north_east}))
    assert m["branch_id"] == o.north_east and m["role"] == "member" and m["team_id"] is None
    denied(api.put(f"/v1/orgs/{o.id}/members/{newbie.id}", json={"role": "member", "branch_id": o.south}), 403)
    denied(api.put(f"/v1/orgs/{o.id}/members/{newbie.id}", json={"role": "member"}), 403)  # root
    denied(api.put(f"/v1/orgs/{o.id}/members/{newbie.id}", json={"role": "member", "branch_id": o.root}), 403)
    denied(api.put(f"/v1/orgs/{o.id}/members/{newbie.id}", json={"role": "member", "team_id": o.team}), 403)
    for who in (o.manager, o.member, o.team_member):
        denied(who.api.put(f"/v1/orgs/{o.id}/members/{newbie.id}",
                           json={"role": "admin", "branch_id": o.north_east}), 403)
    for who in (o.other, o.stranger):
        denied(who.api.put(f"/v1/orgs/{o.id}/members/{newbie.id}", json={"role": "admin"}), 404)
    # only the org admin removes
    denied(api.delete(f"/v1/orgs/{o.id}/members/{newbie.id}"), 403)
    ok(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{newbie.id}"), 204)
    denied(newbie.api.get(f"/v1/orgs/{o.id}"), 404)
    newbie.api.close()


def test_teams(o):
    t = ok(o.admin.api.post(f"/v1/orgs/{o.id}/teams", json={"name": "Drillers"}), 201)
    assert t["name"] == "Drillers" and t["org_id"] == o.id
    for who in (o.admin, o.member, o.team_member):
        names = [x["name"] for x in ok(who.api.get(f"/v1/orgs/{o.id}/teams"))["items"]]
        assert "Drillers" in names and "Pumps" in names
    for who in (o.branch_admin, o.manager, o.member):
        denied(who.api.post(f"/v1/orgs/{o.id}/teams", json={"name": "Mine"}), 403)
    for who in (o.other, o.stranger):
        denied(who.api.post(f"/v1/orgs/{o.id}/teams", json={"name": "Mine"}), 404)
        denied(who.api.get(f"/v1/orgs/{o.id}/teams"), 404)


# ---------------------------------------------------------------- members

def test_member_list(o):
    items = ok(o.member.api.get(f"/v1/orgs/{o.id}/members", params={"limit": 500}))["items"]
    by_user = {}
    for m in items:
        by_user.setdefault(m["user_id"], []).append(m)
    assert by_user[o.admin.id][0]["role"] == "admin" and by_user[o.admin.id][0]["branch_id"] == o.root
    assert by_user[o.team_member.id][0]["team_id"] == o.team
    assert o.stranger.id not in by_user and o.other.id not in by_user
    # an email only on the caller's own rows, for admins too: adding a user id to an org of one's
    # own must not reveal the user's email address
    assert all(m["email"] is None for m in items if m["user_id"] != o.member.id)
    assert any(m["email"] == f"{PREFIX}member@example.org" for m in items if m["user_id"] == o.member.id)
    items = ok(o.admin.api.get(f"/v1/orgs/{o.id}/members", params={"limit": 500}))["items"]
    assert all(m["email"] is None for m in items if m["user_id"] != o.admin.id)
    for who in (o.other, o.stranger):
        denied(who.api.get(f"/v1/orgs/{o.id}/members"), 404)


def test_member_list_pages(o):
    seen, after, pages = [], None, 0
    while True:
        page = ok(o.admin.api.get(f"/v1/orgs/{o.id}/members", params={"limit": 2, **({"after": after} if after else {})}))
        pages += 1
        seen += [m["id"] for m in page["items"]]
        after = page["next"]
        if not after:
            break
    everything = ok(o.admin.api.get(f"/v1/orgs/{o.id}/members", params={"limit": 500}))["items"]
    assert seen == [m["id"] for m in everything] and pages >= 3


def test_member_set_is_an_idempotent_upsert(o):
    c = o.c
    x = user(c, "upsert")
    denied(o.admin.api.put(f"/v1/orgs/{o.id}/members/{x.id}", json={"role": "member", "branch_id": o.south}),
           409, "not_a_member")
    add_member(c, o.id, x.id, "member", branch_id=o.south)  # joined (by invitation, elsewhere)
    for role in ("member", "member", "manager"):
        m = ok(o.admin.api.put(f"/v1/orgs/{o.id}/members/{x.id}", json={"role": role, "branch_id": o.south}))
        assert m["role"] == role
    rows = c.psql("SELECT role FROM memberships WHERE user_id = %s", x.id)
    assert rows == [("manager",)]
    ok(o.admin.api.put(f"/v1/orgs/{o.id}/members/{x.id}", json={"role": "member", "team_id": o.team}))
    assert sorted(c.psql("SELECT role FROM memberships WHERE user_id = %s", x.id)) == [("manager",), ("member",)]
    # removing just the team membership leaves the branch one
    ok(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{x.id}", params={"team_id": o.team}), 204)
    assert c.psql("SELECT role FROM memberships WHERE user_id = %s", x.id) == [("manager",)]
    denied(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{x.id}", params={"team_id": o.team}), 404)
    ok(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{x.id}"), 204)
    assert c.psql("SELECT count(*) FROM memberships WHERE user_id = %s", x.id) == [(0,)]
    denied(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{x.id}"), 404)
    x.api.close()


def test_member_set_unknown_user_or_place(o):
    # no such user and a user who is no member look the same (joining needs consent: invite them)
    missing = denied(o.admin.api.put(f"/v1/orgs/{o.id}/members/{new_id()}", json={"role": "member"}), 409,
                     "not_a_member")
    outsider = denied(o.admin.api.put(f"/v1/orgs/{o.id}/members/{o.stranger.id}", json={"role": "member"}), 409,
                      "not_a_member")
    assert {k: v for k, v in missing.items() if k != "request_id"} == \
        {k: v for k, v in outsider.items() if k != "request_id"}
    # a stranger learns nothing about users: the org is hidden first
    denied(o.stranger.api.put(f"/v1/orgs/{o.id}/members/{new_id()}", json={"role": "member"}), 404, "not_found")
    other_root = ok(o.other.api.get(f"/v1/orgs/{o.other_org}"))["root_branch_id"]
    err = denied(o.admin.api.put(f"/v1/orgs/{o.id}/members/{o.stranger.id}",
                                 json={"role": "member", "branch_id": other_root}), 422)
    assert "branch_id" in err["fields"]
    err = denied(o.admin.api.put(f"/v1/orgs/{o.id}/members/{o.stranger.id}",
                                 json={"role": "member", "team_id": new_id()}), 422)
    assert "team_id" in err["fields"]
    assert o.c.psql("SELECT count(*) FROM memberships WHERE user_id = %s", o.stranger.id) == [(0,)]


def test_last_admin_cannot_leave_or_be_demoted(o):
    c = o.c
    boss = user(c, "boss")
    org = ok(boss.api.post("/v1/orgs", json={"name": "Solo"}), 201)
    denied(boss.api.delete(f"/v1/orgs/{org['id']}/members/{boss.id}"), 409, "last_admin")
    denied(boss.api.put(f"/v1/orgs/{org['id']}/members/{boss.id}", json={"role": "manager"}), 409, "last_admin")
    denied(boss.api.delete(f"/v1/orgs/{org['id']}/members/{boss.id}",
                           params={"branch_id": org["root_branch_id"]}), 409, "last_admin")
    assert ok(boss.api.get(f"/v1/orgs/{org['id']}"))["org_admin"] is True
    # with a second admin, the first may step down
    deputy = user(c, "deputy")
    add_member(c, org["id"], deputy.id, "member", branch_id=org["root_branch_id"])
    ok(boss.api.put(f"/v1/orgs/{org['id']}/members/{deputy.id}", json={"role": "admin"}))
    ok(boss.api.put(f"/v1/orgs/{org['id']}/members/{boss.id}", json={"role": "member"}))
    assert ok(boss.api.get(f"/v1/orgs/{org['id']}"))["org_admin"] is False
    denied(boss.api.patch(f"/v1/orgs/{org['id']}", json={"name": "Mine again"}), 403)
    denied(deputy.api.delete(f"/v1/orgs/{org['id']}/members/{deputy.id}"), 409, "last_admin")
    ok(deputy.api.delete(f"/v1/orgs/{org['id']}/members/{boss.id}"), 204)
    denied(boss.api.get(f"/v1/orgs/{org['id']}"), 404)
    boss.api.close()
    deputy.api.close()


def test_removed_enumerator_is_refused_at_once_on_every_child(o, world):
    """An enumerator named through a branch principal submits; removed from the org, every
    front-end child refuses them within seconds (the permission caches are invalidated)."""
    c = o.c
    enum = user(c, "branch-enumerator")
    # a member of North is "in" North East (a membership reaches sub-branches)
    add_member(c, o.id, enum.id, "member", branch_id=o.north)
    survey = ok(o.admin.api.post("/v1/surveys", json={"org_id": o.id, "name": "Wells",
                                                      "definition": world.definition}), 201)
    dep = ok(o.admin.api.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "North wells", "branch_id": o.north,
        "roles": {"enumerators": [{"type": "branch", "id": o.north_east}]}}), 201)
    key = enum.api.key
    data = {"household": "Well 1", "members": 3}

    # One keep-alive connection to each of the two front-end children: then both are asked
    # every time, whatever the kernel's choice of child for new connections.
    pinned = pin_children(c, c.http_port)

    def submit(session):
        r = session.post(f"{c.base_url}/v1/deployments/{dep['id']}/responses", json={"id": new_id(), "data": data},
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return r.status_code, child_of(r)
    for child, api in pinned.items():
        assert submit(api) == (202, child)  # each child has the permission cached

    ok(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{enum.id}"), 204)

    def both_children_refuse():
        statuses = []
        for child, api in pinned.items():
            status, answered_by = submit(api)
            assert answered_by == child
            assert status in (202, 404), status
            statuses.append(status)
        # no longer in the org, the deployment is invisible to them: 404 (the access model)
        return statuses == [404, 404]
    wait_until(both_children_refuse, 10, what="both children to refuse the removed enumerator")
    # and it stays refused
    for _ in range(3):
        for api in pinned.values():
            assert submit(api)[0] == 404
    for api in pinned.values():
        api.close()
    enum.api.close()


# ---------------------------------------------------------------- audit

def test_audit_lists_the_orgs_role_changes_for_admins_only(o):
    c = o.c
    x = user(c, "audited")
    add_member(c, o.id, x.id, "member", team_id=o.team)  # joined (with SQL: no audit row)
    ok(o.admin.api.put(f"/v1/orgs/{o.id}/members/{x.id}", json={"role": "manager", "branch_id": o.south}))
    ok(o.admin.api.delete(f"/v1/orgs/{o.id}/members/{x.id}"), 204)
    items = ok(o.admin.api.get(f"/v1/orgs/{o.id}/audit", params={"limit": 500}))["items"]
    ids = [int(e["id"]) for e in items]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert items[0]["action"] == "member.remove" and items[0]["target_id"] == x.id
    assert items[1]["action"] == "member.set" and items[1]["detail"]["role"] == "manager"
    assert items[1]["actor"] == o.admin.id and items[1]["address"] == "127.0.0.1"
    assert items[1]["target_type"] == "user" and items[1]["at"].endswith("Z")
    actions = {e["action"] for e in items}
    assert {"org.create", "branch.create", "team.create", "member.set", "member.remove"} <= actions
    # only this org's rows: the other org's creation is not here
    assert not [e for e in items if e["target_id"] == o.other_org]
    rows = c.psql("SELECT count(*) FROM audit WHERE org_id = %s", o.id)
    assert rows == [(len(items),)]
    for who in (o.branch_admin, o.manager, o.member):
        denied(who.api.get(f"/v1/orgs/{o.id}/audit"), 403)
    for who in (o.other, o.stranger):
        denied(who.api.get(f"/v1/orgs/{o.id}/audit"), 404)
    x.api.close()


def test_audit_pages(o):
    seen, after = [], None
    while True:
        page = ok(o.admin.api.get(f"/v1/orgs/{o.id}/audit", params={"limit": 3, **({"after": after} if after else {})}))
        seen += [e["id"] for e in page["items"]]
        after = page["next"]
        if not after:
            break
    everything = ok(o.admin.api.get(f"/v1/orgs/{o.id}/audit", params={"limit": 500}))["items"]
    assert seen == [e["id"] for e in everything] and len(seen) > 3


def test_org_create_audit_row_carries_org_id(o):
    rows = o.c.psql("SELECT org_id::text, actor::text FROM audit WHERE action = 'org.create' AND target_id = %s", o.id)
    assert rows == [(o.id, o.admin.id)]


# ---------------------------------------------------------------- TOTP policy

def test_totp_policy_refuses_api_keys(o):
    """Turning the policy on needs a TOTP session; API keys never count. (Sessions with mfa come
    from the identity work: with them, turning it on and off is tested there.)"""
    c = o.c
    boss = user(c, "totp-boss")
    org = ok(boss.api.post("/v1/orgs", json={"name": "Strict"}), 201)
    denied(boss.api.patch(f"/v1/orgs/{org['id']}", json={"require_admin_totp": True}), 403, "totp_required")
    assert ok(boss.api.get(f"/v1/orgs/{org['id']}"))["require_admin_totp"] is False
    # an org that requires it (set by the operator here): every org-admin action refuses the key
    c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", org["id"])
    oid = org["id"]
    for method, path, body in [
            ("PATCH", f"/v1/orgs/{oid}", {"name": "Lax"}),
            ("PATCH", f"/v1/orgs/{oid}", {"require_admin_totp": False}),
            ("POST", f"/v1/orgs/{oid}/branches", {"name": "B"}),
            ("POST", f"/v1/orgs/{oid}/teams", {"name": "T"}),
            ("PUT", f"/v1/orgs/{oid}/members/{o.stranger.id}", {"role": "member"}),
            ("DELETE", f"/v1/orgs/{oid}/members/{boss.id}", None),
            ("GET", f"/v1/orgs/{oid}/audit", None)]:
        denied(boss.api.request(method, path, **({"json": body} if body else {})), 403, "totp_required")
    # reads that need no admin power still work
    got = ok(boss.api.get(f"/v1/orgs/{oid}"))
    assert got["require_admin_totp"] is True
    ok(boss.api.get(f"/v1/orgs/{oid}/branches"))
    # nothing was changed by the refused calls
    assert c.psql("SELECT count(*) FROM branches WHERE org_id = %s", oid) == [(1,)]
    assert c.psql("SELECT count(*) FROM memberships WHERE org_id = %s", oid) == [(1,)]
    # a member who is no admin is told 403 forbidden, not totp_required
    plain = user(c, "totp-plain")
    c.psql("INSERT INTO memberships (id, org_id, user_id, role, branch_id) VALUES (%s, %s, %s, 'member', %s)",
           new_id(), oid, plain.id, org["root_branch_id"])
    denied(plain.api.post(f"/v1/orgs/{oid}/teams", json={"name": "T"}), 403, "forbidden")
    denied(plain.api.get(f"/v1/orgs/{oid}/audit"), 403, "forbidden")
    plain.api.close()
    boss.api.close()


# ---------------------------------------------------------------- bad input

def raw(api, method, path, body, content_type="application/json"):
    return api.request(method, path, data=body, headers={"Content-Type": content_type})


BAD_BODIES = [b"", b"{", b"[]", b"null", b'"x"', b"{\"name\": " + b"[" * 5000 + b"]" * 5000 + b"}"]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_bodies_are_4xx(o, body):
    a = o.admin.api
    for method, path in [("PATCH", f"/v1/orgs/{o.id}"), ("POST", f"/v1/orgs/{o.id}/branches"),
                         ("POST", f"/v1/orgs/{o.id}/teams"), ("PUT", f"/v1/orgs/{o.id}/members/{o.member.id}")]:
        r = raw(a, method, path, body)
        assert 400 <= r.status_code < 500, (method, path, r.status_code, r.text[:200])
        error_body(r)


@pytest.mark.parametrize("method,path,body,field", [
    ("PATCH", "/v1/orgs/{org}", {}, "name"),
    ("PATCH", "/v1/orgs/{org}", {"name": ""}, "name"),
    ("PATCH", "/v1/orgs/{org}", {"name": 5}, "name"),
    ("PATCH", "/v1/orgs/{org}", {"name": "x" * 201}, "name"),
    ("PATCH", "/v1/orgs/{org}", {"require_admin_totp": "yes"}, "require_admin_totp"),
    ("PATCH", "/v1/orgs/{org}", {"require_admin_totp": 1}, "require_admin_totp"),
    ("POST", "/v1/orgs/{org}/branches", {}, "name"),
    ("POST", "/v1/orgs/{org}/branches", {"name": ["x"]}, "name"),
    ("POST", "/v1/orgs/{org}/branches", {"name": "x", "parent_id": "nope"}, "parent_id"),
    ("POST", "/v1/orgs/{org}/branches", {"name": "x", "parent_id": 7}, "parent_id"),
    ("POST", "/v1/orgs/{org}/branches", {"name": "x" * 1000}, "name"),
    ("POST", "/v1/orgs/{org}/teams", {"name": None}, "name"),
    ("POST", "/v1/orgs/{org}/teams", {"name": {"a": 1}}, "name"),
    ("PUT", "/v1/orgs/{org}/members/{user}", {}, "role"),
    ("PUT", "/v1/orgs/{org}/members/{user}", {"role": "owner"}, "role"),
    ("PUT", "/v1/orgs/{org}/members/{user}", {"role": 1}, "role"),
    ("PUT", "/v1/orgs/{org}/members/{user}", {"role": "member", "branch_id": "x"}, "branch_id"),
    ("PUT", "/v1/orgs/{org}/members/{user}", {"role": "member", "team_id": True}, "team_id"),
    ("PUT", "/v1/orgs/{org}/members/{user}", {"role": "member", "branch_id": "{root}", "team_id": "{team}"}, "team_id"),
])
def test_invalid_fields_are_422(o, method, path, body, field):
    fill = {"org": o.id, "user": o.member.id, "root": o.root, "team": o.team}
    path = path.format(**fill)
    body = json.loads(json.dumps(body).replace("{root}", o.root).replace("{team}", o.team))
    err = denied(o.admin.api.request(method, path, json=body), 422, "validation_failed")
    assert field in err["fields"], err


@pytest.mark.parametrize("params", [
    {"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"limit": ""}, {"limit": "1e3"},
    {"after": "nope"}, {"after": "0"}, {"after": "-1"}, {"after": "9" * 40},
])
def test_bad_paging_is_422(o, params):
    a = o.admin.api
    for path in ("/v1/orgs", f"/v1/orgs/{o.id}/branches", f"/v1/orgs/{o.id}/teams",
                 f"/v1/orgs/{o.id}/members", f"/v1/orgs/{o.id}/audit"):
        r = a.get(path, params=params)
        assert r.status_code == 422, (path, params, r.status_code, r.text[:200])
        error_body(r)


def test_unknown_ids_are_404(o):
    a = o.admin.api
    for bad in (new_id(), "not-a-uuid", "x" * 60):
        for method, path in [("GET", f"/v1/orgs/{bad}"), ("GET", f"/v1/orgs/{bad}/branches"),
                             ("GET", f"/v1/orgs/{bad}/teams"), ("GET", f"/v1/orgs/{bad}/members"),
                             ("GET", f"/v1/orgs/{bad}/audit"), ("PATCH", f"/v1/orgs/{bad}"),
                             ("POST", f"/v1/orgs/{bad}/branches"), ("POST", f"/v1/orgs/{bad}/teams"),
                             ("PUT", f"/v1/orgs/{bad}/members/{o.member.id}"),
                             ("DELETE", f"/v1/orgs/{bad}/members/{o.member.id}")]:
            kw = {"json": {"name": "x", "role": "member"}} if method in ("POST", "PUT", "PATCH") else {}
            denied(a.request(method, path, **kw), 404)
    denied(a.put(f"/v1/orgs/{o.id}/members/not-a-uuid", json={"role": "member"}), 404)
    denied(a.delete(f"/v1/orgs/{o.id}/members/not-a-uuid"), 404)
    err = denied(a.delete(f"/v1/orgs/{o.id}/members/{o.member.id}", params={"branch_id": "x"}), 422)
    assert "branch_id" in err["fields"]


def test_uppercase_ids_work(o):
    ok(o.admin.api.get(f"/v1/orgs/{o.id.upper()}"))
    ok(o.admin.api.put(f"/v1/orgs/{o.id}/members/{o.sibling.id.upper()}", json={"role": "member", "branch_id": o.south}))


def test_absurdly_large_body_is_413(o):
    r = o.admin.api.post(f"/v1/orgs/{o.id}/branches", json={"name": "x" * 200000})
    assert r.status_code == 413


def test_two_admins_removing_each_other_at_once_leave_one(o):
    """The statement's last-admin check cannot see a concurrent removal; the trigger of migration
    005 (org row lock, fresh count) makes the second of two such transactions fail."""
    import threading
    import psycopg2
    c = o.c
    a, b = user(c, "race-a"), user(c, "race-b")
    org = ok(a.api.post("/v1/orgs", json={"name": "Race"}), 201)
    add_member(c, org["id"], b.id, "member", branch_id=org["root_branch_id"])
    ok(a.api.put(f"/v1/orgs/{org['id']}/members/{b.id}", json={"role": "admin"}))
    t1, t2 = c.pg.connect(autocommit=False), c.pg.connect(autocommit=False)
    sql = "DELETE FROM memberships WHERE org_id = %s AND user_id = %s"
    with t1.cursor() as cur:
        cur.execute(sql, (org["id"], a.id))  # holds the org row lock until commit
    outcome = {}

    def second():
        try:
            with t2.cursor() as cur:
                cur.execute(sql, (org["id"], b.id))  # blocks on the lock, then counts afresh
            t2.commit()
            outcome["ok"] = True
        except psycopg2.Error as e:
            outcome["code"] = e.pgcode
            t2.rollback()
    th = threading.Thread(target=second)
    th.start()
    t1.commit()
    th.join(30)
    assert not th.is_alive()
    assert outcome == {"code": "FV409"}, outcome
    assert c.psql("SELECT user_id::text FROM memberships WHERE org_id = %s AND role = 'admin'", org["id"]) == [(b.id,)]
    t1.close()
    t2.close()
    a.api.close()
    b.api.close()


# ---------------------------------------------------------------- the allow/deny table

ROLES = ["admin", "branch_admin", "manager", "member", "other", "stranger", "anon"]

# (method, path, body, expected status per role in ROLES order). Paths use {org}, {root}, {north},
# {north_east}, {south}, {team} and users as {user:<role>}. Every call is repeatable (idempotent or
# creating a fresh object), so the table can be extended freely.
TABLE = [
    ("GET", "/v1/orgs/{org}", None,                              [200, 200, 200, 200, 404, 404, 401]),
    ("GET", "/v1/orgs/{org}/branches", None,                     [200, 200, 200, 200, 404, 404, 401]),
    ("GET", "/v1/orgs/{org}/teams", None,                        [200, 200, 200, 200, 404, 404, 401]),
    ("GET", "/v1/orgs/{org}/members", None,                      [200, 200, 200, 200, 404, 404, 401]),
    ("GET", "/v1/orgs/{org}/audit", None,                        [200, 403, 403, 403, 404, 404, 401]),
    ("PATCH", "/v1/orgs/{org}", {"name": "Orgs Test"},           [200, 403, 403, 403, 404, 404, 401]),
    ("POST", "/v1/orgs/{org}/branches", {"name": "B", "parent_id": "{north_east}"},
                                                                 [201, 201, 403, 403, 404, 404, 401]),
    ("POST", "/v1/orgs/{org}/branches", {"name": "B", "parent_id": "{south}"},
                                                                 [201, 403, 403, 403, 404, 404, 401]),
    ("POST", "/v1/orgs/{org}/branches", {"name": "B"},           [201, 403, 403, 403, 404, 404, 401]),
    ("POST", "/v1/orgs/{org}/teams", {"name": "T"},              [201, 403, 403, 403, 404, 404, 401]),
    ("PUT", "/v1/orgs/{org}/members/{user:member}", {"role": "member", "branch_id": "{north_east}"},
                                                                 [200, 200, 403, 403, 404, 404, 401]),
    ("PUT", "/v1/orgs/{org}/members/{user:sibling}", {"role": "member", "branch_id": "{south}"},
                                                                 [200, 403, 403, 403, 404, 404, 401]),
    ("PUT", "/v1/orgs/{org}/members/{user:team_member}", {"role": "member", "team_id": "{team}"},
                                                                 [200, 403, 403, 403, 404, 404, 401]),
    ("PUT", "/v1/orgs/{org}/members/{user:manager}", {"role": "manager"},
                                                                 [200, 403, 403, 403, 404, 404, 401]),
    # nothing to remove (member has no team membership): the verdict on the caller comes first
    ("DELETE", "/v1/orgs/{org}/members/{user:member}?team_id={team}", None,
                                                                 [404, 403, 403, 403, 404, 404, 401]),
]


def fill(o, text):
    for k in ("org", "root", "north_east", "north", "south", "team"):
        text = text.replace("{" + k + "}", getattr(o, k if k != "org" else "id"))
    for role in ROLES[:-1]:
        text = text.replace("{user:" + role + "}", getattr(o, role).id)
    for role in ("sibling", "team_member"):
        text = text.replace("{user:" + role + "}", getattr(o, role).id)
    return text


@pytest.mark.parametrize("method,path,body,expected", TABLE,
                         ids=[f"{m} {p} {json.dumps(b) if b else ''}" for m, p, b, _ in TABLE])
def test_allow_deny_table(o, method, path, body, expected):
    path = fill(o, path)
    body = json.loads(fill(o, json.dumps(body))) if body else None
    for role, want in zip(ROLES, expected):
        api = o.anon if role == "anon" else getattr(o, role).api
        r = api.request(method, path, **({"json": body} if body else {}))
        assert r.status_code == want, f"{role}: {method} {path} -> {r.status_code}, expected {want}: {r.text[:300]}"
        if want >= 400:
            error_body(r)
