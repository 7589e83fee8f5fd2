"""Helpers of the access tests (test_lifecycle, test_permissions, test_orgs, test_sites): users,
branches, teams and memberships written with SQL through cluster.psql (so a test of one endpoint
does not depend on another), and the two assertions every access test makes: ok() and denied().
"""
import itertools
import uuid

from fvharness import error_body, new_id, wait_until

_seq = itertools.count()


def ok(r, status=200):
    """Asserts r answered status; returns its JSON body (None when empty)."""
    assert r.status_code == status, f"{r.status_code}: {r.text[:400]}"
    return r.json() if r.content else None


def denied(r, status, code=None):
    """Asserts r was refused with status (and error code, when given); returns the error."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}: {r.text[:400]}"
    err = error_body(r)
    if code:
        assert err["code"] == code, err
    return err


class User:
    """A user with an API key: .id, .api (an Api client), .name."""

    def __init__(self, cluster, label):
        n = next(_seq)
        tag = uuid.uuid4().hex[:8]
        self.name = label
        self.key = cluster.create_user(f"{label.replace(' ', '-')}-{tag}-{n}@example.org", label)
        self.api = cluster.api(self.key)
        r = self.api.get("/v1/me")
        assert r.status_code == 200, r.text
        self.id = r.json()["id"]

    def close(self):
        self.api.close()

    def __repr__(self):
        return f"<User {self.name}>"


def add_branch(cluster, org_id, parent_id, name):
    bid = new_id()
    cluster.psql("INSERT INTO branches (id, org_id, parent_id, name) VALUES (%s, %s, %s, %s)",
                 bid, org_id, parent_id, name)
    return bid


def add_team(cluster, org_id, name):
    tid = new_id()
    cluster.psql("INSERT INTO teams (id, org_id, name) VALUES (%s, %s, %s)", tid, org_id, name)
    return tid


def add_member(cluster, org_id, user_id, role, branch_id=None, team_id=None):
    cluster.psql("INSERT INTO memberships (id, org_id, user_id, role, branch_id, team_id) "
                 "VALUES (%s, %s, %s, %s, %s, %s)", new_id(), org_id, user_id, role, branch_id, team_id)


def add_plain_member(cluster, org_id, user_id):
    """Makes user_id a member of org_id whose membership confers nothing else: a membership of the
    org's team "members without a role" (made once per org), which no deployment or grant names.
    Rights on an org's objects need a membership of the org (migration 009): a user principal must
    be a member to be named. Idempotent."""
    cluster.psql("INSERT INTO teams (id, org_id, name) SELECT %s, %s, 'members without a role' "
                 "WHERE NOT EXISTS (SELECT 1 FROM teams WHERE org_id = %s AND name = 'members without a role')",
                 new_id(), org_id, org_id)
    cluster.psql("INSERT INTO memberships (id, org_id, user_id, role, team_id) "
                 "SELECT %s, %s, %s, 'member', t.id FROM teams t "
                 "WHERE t.org_id = %s AND t.name = 'members without a role' "
                 "ON CONFLICT DO NOTHING", new_id(), org_id, user_id, org_id)


def P(kind, id):
    """A principal as the API takes it."""
    return {"type": kind, "id": id}


def submit_and_wait(enum_api, deployment_id, data, rid=None, timeout=60):
    """Submits data as enum_api and waits until the worker wrote it (the submitter reads it)."""
    rid = rid or new_id()
    r = enum_api.post(f"/v1/deployments/{deployment_id}/responses", json={"id": rid, "data": data})
    assert r.status_code == 202, r.text

    def readable():
        g = enum_api.get(f"/v1/responses/{rid}")
        assert g.status_code in (200, 404), g.text
        return g.json() if g.status_code == 200 else None
    return wait_until(readable, timeout, what=f"response {rid} to be written")


def list_all(api, path, params=None, limit=50):
    """Every item of a paginated list (asserting 200 on each page); returns the items."""
    items, after = [], None
    for _ in range(200):
        q = dict(params or {}, limit=limit)
        if after:
            q["after"] = after
        r = api.get(path, params=q)
        assert r.status_code == 200, (path, r.status_code, r.text)
        page = r.json()
        assert set(page) == {"items", "next"}, page
        items += page["items"]
        after = page["next"]
        if after is None:
            return items
    raise AssertionError(f"{path}: more than 200 pages")
