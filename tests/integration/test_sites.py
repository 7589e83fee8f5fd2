"""Sites: a managing organisation and a privacy (public: anyone reads all of it; protected: any
signed-in user reads id, org, name, type, location and privacy; private: only the managing org);
edits and soft deletes by the managing org's admins and managers; lists never holding a row the
caller may not see; history and audit rows; bad input on every endpoint."""
import json
import types

import pytest

from accesshelp import add_member, denied, ok
from fvharness import error_body, new_id

PREFIX = "sites-"
RESTRICTED = {"id", "org_id", "name", "type", "location", "privacy"}
FULL = RESTRICTED | {"properties", "version", "created_by", "created_at", "updated_at"}


def user(c, name):
    key = c.create_user(f"{PREFIX}{name}@example.org", name.title())
    api = c.api(key)
    return types.SimpleNamespace(api=api, id=api.get("/v1/me").json()["id"], name=name)


@pytest.fixture(scope="module")
def s(world):
    """Org "Water Board" (admin: its admin; manager: manager of its branch "East"; member: member
    of the root), org "Clinics" (other: its admin), stranger (no org), anon (no credentials), and
    one Water Board site of each privacy."""
    c = world.cluster
    u = {n: user(c, n) for n in ("admin", "manager", "member", "other", "stranger")}
    org = ok(u["admin"].api.post("/v1/orgs", json={"name": "Water Board"}), 201)
    east = ok(u["admin"].api.post(f"/v1/orgs/{org['id']}/branches", json={"name": "East"}), 201)
    # memberships with SQL: joining needs the user's consent (test_invitations.py)
    add_member(c, org["id"], u["manager"].id, "manager", branch_id=east["id"])
    add_member(c, org["id"], u["member"].id, "member", branch_id=org["root_branch_id"])
    other_org = ok(u["other"].api.post("/v1/orgs", json={"name": "Clinics"}), 201)
    sites = {}
    for privacy in ("public", "protected", "private"):
        sites[privacy] = ok(u["admin"].api.post("/v1/sites", json={
            "org_id": org["id"], "name": f"{privacy.title()} well", "type": "water_point",
            "privacy": privacy, "location": {"lat": -1.28, "lon": 36.82},
            "properties": {"depth_m": 40, "pump": "hand"}}), 201)
    anon = c.api()
    ns = types.SimpleNamespace(c=c, org=org["id"], other_org=other_org["id"], anon=anon, sites=sites,
                               people={**u, "anon": types.SimpleNamespace(api=anon, id=None, name="anon")},
                               **u)
    yield ns
    for v in u.values():
        v.api.close()
    anon.close()


# What each caller may see of each privacy: "full", "restricted" or None (404).
SEES = {
    "admin":    {"public": "full", "protected": "full", "private": "full"},
    "manager":  {"public": "full", "protected": "full", "private": "full"},
    "member":   {"public": "full", "protected": "full", "private": "full"},
    "other":    {"public": "full", "protected": "restricted", "private": None},
    "stranger": {"public": "full", "protected": "restricted", "private": None},
    "anon":     {"public": "full", "protected": None, "private": None},
}


def test_created_site_shape(s):
    site = s.sites["private"]
    assert set(site) == FULL
    assert site["org_id"] == s.org and site["privacy"] == "private" and site["version"] == 1
    assert site["location"] == {"lat": -1.28, "lon": 36.82}
    assert site["properties"] == {"depth_m": 40, "pump": "hand"}
    assert site["created_by"] == s.admin.id


@pytest.mark.parametrize("who", list(SEES))
@pytest.mark.parametrize("privacy", ["public", "protected", "private"])
def test_read_one_by_privacy_and_role(s, who, privacy):
    site = s.sites[privacy]
    r = s.people[who].api.get(f"/v1/sites/{site['id']}")
    expect = SEES[who][privacy]
    if expect is None:
        denied(r, 404, "not_found")
        return
    got = ok(r)
    assert set(got) == (FULL if expect == "full" else RESTRICTED)
    assert got["name"] == site["name"] and got["location"] == site["location"]
    if expect == "full":
        assert got["properties"] == site["properties"]


@pytest.mark.parametrize("who", list(SEES))
def test_list_never_holds_a_row_the_caller_may_not_see(s, who):
    api = s.people[who].api
    items, after = [], None
    while True:
        page = ok(api.get("/v1/sites", params={"limit": 500, **({"after": after} if after else {})}))
        items += page["items"]
        after = page["next"]
        if not after:
            break
    mine = {x["id"]: x for x in items if x["org_id"] == s.org}
    for privacy, site in s.sites.items():
        expect = SEES[who][privacy]
        if site["id"] not in mine:
            assert expect is None, f"{who} misses the {privacy} site in the list"
            continue
        assert expect is not None, f"{who} sees the {privacy} site in the list"
        assert set(mine[site["id"]]) == (FULL if expect == "full" else RESTRICTED)
    # whatever else is listed (other tests' sites) obeys the same rules
    for x in items:
        assert x["privacy"] != "private" or who in ("admin", "manager", "member") and x["org_id"] == s.org
        if who == "anon":
            assert x["privacy"] == "public"
    # and every visible site is listed
    assert {s.sites[p]["id"] for p in SEES[who] if SEES[who][p]} <= set(mine)


def test_list_filters_and_pages(s):
    a = s.admin.api
    made = [ok(a.post("/v1/sites", json={"org_id": s.org, "name": f"Clinic {i}", "type": "clinic",
                                         "privacy": "private"}), 201)["id"] for i in range(5)]
    seen, after = [], None
    while True:
        page = ok(a.get("/v1/sites", params={"org": s.org, "type": "clinic", "limit": 2,
                                             **({"after": after} if after else {})}))
        assert len(page["items"]) <= 2
        seen += [x["id"] for x in page["items"]]
        after = page["next"]
        if not after:
            break
    assert seen == made
    assert ok(a.get("/v1/sites", params={"org": s.other_org}))["items"] == []
    assert ok(s.other.api.get("/v1/sites", params={"org": s.org, "type": "clinic"}))["items"] == []
    assert ok(a.get("/v1/sites", params={"type": "no-such-type"})) == {"items": [], "next": None}


def test_create_by_role(s):
    body = {"org_id": s.org, "name": "New pump", "type": "water_point", "privacy": "public"}
    for who in ("admin", "manager"):
        site = ok(s.people[who].api.post("/v1/sites", json=body), 201)
        assert site["created_by"] == s.people[who].id
    denied(s.member.api.post("/v1/sites", json=body), 403, "forbidden")
    for who in ("other", "stranger"):
        denied(s.people[who].api.post("/v1/sites", json=body), 404)
    denied(s.anon.post("/v1/sites", json=body), 401)
    denied(s.admin.api.post("/v1/sites", json={**body, "org_id": new_id()}), 404)


@pytest.mark.parametrize("privacy", ["public", "protected", "private"])
def test_edit_by_role(s, privacy):
    site = ok(s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "Editable", "type": "tank",
                                                  "privacy": privacy}), 201)
    path = f"/v1/sites/{site['id']}"
    got = ok(s.manager.api.patch(path, json={"name": "Edited", "location": {"lat": 1, "lon": 2}}))
    assert got["version"] == 2 and got["name"] == "Edited" and got["location"] == {"lat": 1, "lon": 2}
    got = ok(s.admin.api.patch(path, json={"properties": {"capacity_l": 5000}, "version": 2}))
    assert got["version"] == 3 and got["properties"] == {"capacity_l": 5000} and got["name"] == "Edited"
    denied(s.member.api.patch(path, json={"name": "Nope"}), 403, "forbidden")
    for who in ("other", "stranger"):
        denied(s.people[who].api.patch(path, json={"name": "Nope"}), 404 if privacy == "private" else 403)
        denied(s.people[who].api.delete(path), 404 if privacy == "private" else 403)
    denied(s.anon.patch(path, json={"name": "Nope"}), 401)
    denied(s.member.api.delete(path), 403)
    assert ok(s.admin.api.get(path))["name"] == "Edited"


def test_stale_version_is_409(s):
    site = ok(s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "Racy", "type": "tank",
                                                  "privacy": "public"}), 201)
    path = f"/v1/sites/{site['id']}"
    ok(s.admin.api.patch(path, json={"name": "First", "version": 1}))
    denied(s.manager.api.patch(path, json={"name": "Second", "version": 1}), 409, "version_conflict")
    assert ok(s.anon.get(path))["name"] == "First"


def test_location_can_be_cleared(s):
    site = ok(s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "Moving", "type": "tank",
                                                  "privacy": "public", "location": {"lat": 5, "lon": 5}}), 201)
    got = ok(s.admin.api.patch(f"/v1/sites/{site['id']}", json={"location": None}))
    assert got["location"] is None


def test_privacy_change_takes_effect(s):
    site = ok(s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "Secret soon", "type": "tank",
                                                  "privacy": "public"}), 201)
    path = f"/v1/sites/{site['id']}"
    ok(s.anon.get(path))
    ok(s.manager.api.patch(path, json={"privacy": "private"}))
    denied(s.anon.get(path), 404)
    denied(s.stranger.api.get(path), 404)
    assert site["id"] not in [x["id"] for x in ok(s.stranger.api.get("/v1/sites", params={"limit": 500}))["items"]]
    ok(s.member.api.get(path))


def test_soft_delete(s):
    site = ok(s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "Doomed", "type": "tank",
                                                  "privacy": "public"}), 201)
    path = f"/v1/sites/{site['id']}"
    ok(s.manager.api.delete(path), 204)
    for who in SEES:
        denied(s.people[who].api.get(path), 404)
    assert site["id"] not in [x["id"] for x in ok(s.admin.api.get("/v1/sites", params={"org": s.org, "limit": 500}))["items"]]
    denied(s.admin.api.delete(path), 404)
    denied(s.admin.api.patch(path, json={"name": "Back"}), 404)
    # soft: the row and its history stay
    assert s.c.psql("SELECT deleted_at IS NOT NULL FROM sites WHERE id = %s", site["id"]) == [(True,)]
    ops = s.c.psql("SELECT version, operation FROM site_versions WHERE site_id = %s ORDER BY version", site["id"])
    assert ops == [(1, "create"), (2, "delete")]


def test_history_and_audit_rows(s):
    site = ok(s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "Tracked", "type": "tank",
                                                  "privacy": "protected"}), 201)
    ok(s.manager.api.patch(f"/v1/sites/{site['id']}", json={"name": "Tracked 2"}))
    ok(s.admin.api.delete(f"/v1/sites/{site['id']}"), 204)
    rows = s.c.psql("SELECT version, operation, actor::text, state->>'name' FROM site_versions "
                    "WHERE site_id = %s ORDER BY version", site["id"])
    assert rows == [(1, "create", s.admin.id, "Tracked"), (2, "update", s.manager.id, "Tracked 2"),
                    (3, "delete", s.admin.id, "Tracked 2")]
    audit = ok(s.admin.api.get(f"/v1/orgs/{s.org}/audit", params={"limit": 500}))["items"]
    mine = [(e["action"], e["actor"]) for e in audit if e["target_id"] == site["id"]]
    assert mine == [("site.delete", s.admin.id), ("site.update", s.manager.id), ("site.create", s.admin.id)]
    assert all(e["target_type"] == "site" for e in audit if e["target_id"] == site["id"])


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("body,field", [
    ({}, "org_id"),
    ({"org_id": "nope", "name": "x", "type": "t", "privacy": "public"}, "org_id"),
    ({"org_id": 5, "name": "x", "type": "t", "privacy": "public"}, "org_id"),
    ({"org_id": "{org}", "type": "t", "privacy": "public"}, "name"),
    ({"org_id": "{org}", "name": "", "type": "t", "privacy": "public"}, "name"),
    ({"org_id": "{org}", "name": "x" * 201, "type": "t", "privacy": "public"}, "name"),
    ({"org_id": "{org}", "name": "x", "privacy": "public"}, "type"),
    ({"org_id": "{org}", "name": "x", "type": 3, "privacy": "public"}, "type"),
    ({"org_id": "{org}", "name": "x", "type": "t"}, "privacy"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "secret"}, "privacy"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "public", "location": "here"}, "location"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "public", "location": {"lat": 91, "lon": 0}}, "location"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "public", "location": {"lat": 0}}, "location"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "public", "location": {"lat": "0", "lon": 0}}, "location"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "public", "properties": [1]}, "properties"),
    ({"org_id": "{org}", "name": "x", "type": "t", "privacy": "public",
      "properties": {"k": "v" * 40000}}, "properties"),
])
def test_create_invalid_is_422(s, body, field):
    body = json.loads(json.dumps(body).replace("{org}", s.org))
    err = denied(s.admin.api.post("/v1/sites", json=body), 422, "validation_failed")
    assert field in err["fields"], err


@pytest.mark.parametrize("body,field", [
    ({}, "name"),
    ({"name": None}, "name"),
    ({"privacy": "hidden"}, "privacy"),
    ({"org_id": "{other}"}, "org_id"),
    ({"version": 0, "name": "x"}, "version"),
    ({"version": "1", "name": "x"}, "version"),
    ({"version": 1e20, "name": "x"}, "version"),
    ({"location": {"lat": 0, "lon": 181}}, "location"),
    ({"properties": "x"}, "properties"),
])
def test_patch_invalid_is_422(s, body, field):
    body = json.loads(json.dumps(body).replace("{other}", s.other_org))
    err = denied(s.admin.api.patch(f"/v1/sites/{s.sites['public']['id']}", json=body), 422)
    assert field in err["fields"], err


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b"{\"name\": \"\\u0000\"}",
                                  b'{"name": 1e999999}', b"[" * 20000 + b"]" * 20000])
def test_malformed_json_is_4xx(s, body):
    for method, path in [("POST", "/v1/sites"), ("PATCH", f"/v1/sites/{s.sites['public']['id']}")]:
        r = s.admin.api.request(method, path, data=body, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, (method, r.status_code, r.text[:200])
        error_body(r)


@pytest.mark.parametrize("params,field", [
    ({"org": "nope"}, "org"), ({"type": "t" * 101}, "type"), ({"limit": 0}, "limit"),
    ({"limit": 501}, "limit"), ({"limit": "x"}, "limit"), ({"after": "nope"}, "after"),
])
def test_bad_list_params_are_422(s, params, field):
    for api in (s.admin.api, s.anon):
        err = denied(api.get("/v1/sites", params=params), 422)
        assert field in err["fields"]


def test_unknown_ids_are_404(s):
    for bad in (new_id(), "not-a-uuid", "x" * 60):
        for who in ("admin", "anon"):
            denied(s.people[who].api.get(f"/v1/sites/{bad}"), 404)
        denied(s.admin.api.patch(f"/v1/sites/{bad}", json={"name": "x"}), 404)
        denied(s.admin.api.delete(f"/v1/sites/{bad}"), 404)


def test_absurd_body_is_413(s):
    r = s.admin.api.post("/v1/sites", json={"org_id": s.org, "name": "x", "type": "t", "privacy": "public",
                                            "properties": {"k": "v" * 300000}})
    assert r.status_code == 413


def test_bad_credentials_on_optional_routes_are_401(s):
    bad = s.c.api("fvk_" + "0" * 40)
    denied(bad.get("/v1/sites"), 401)
    denied(bad.get(f"/v1/sites/{s.sites['public']['id']}"), 401)
    bad.close()


def test_access_log_names_the_caller_or_null(s):
    """The access log names the authenticated user on every request, and null for anonymous ones."""
    from fvharness import json_lines, wait_until
    mark = new_id()
    ok(s.member.api.get("/v1/sites", params={"type": mark}))
    ok(s.anon.get("/v1/sites", params={"type": mark}))
    log = s.c.frontend.log_path

    def logged():
        users = [line.get("user") for line in json_lines(log)
                 if line.get("msg") == "access" and mark in line.get("path", "")]
        return len(users) == 2 and users
    users = wait_until(logged, 30, what="two access-log lines of the marked requests")
    assert sorted(users, key=str) == sorted([s.member.id, None], key=str)
