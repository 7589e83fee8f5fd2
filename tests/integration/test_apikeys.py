"""API keys: create (shown once), list, revoke (POST/GET/DELETE /v1/me/api-keys), the per-key rate
limit (429 + Retry-After), automatic suspension (403 key_suspended, audit apikey.suspend) and
reinstatement by an org admin (POST /v1/api-keys/{id}/reinstate).

Besides the session's front end (default config: API-key callers may not create keys, limit out
of reach), this module starts its own front ends through FV_* variables:
  keys  api_key_create_with_key = yes (sessions are not there yet), the limit out of reach
  rl    limit 5 per 60 s window (the 429 and its Retry-After)
  fast  limit 2 per 1 s window, suspension after 3 strikes
"""
import hashlib
import json
import uuid

import pytest
import requests

from fvharness import child_of, error_body, free_port, wait_until
from fvharness import pin_children as harness_pin_children
from openapi_check import hook_session

FAST_LIMIT = 2


class Fe:
    """One of our front ends: its port, and clients for it."""

    def __init__(self, cluster, port):
        self.c = cluster
        self.port = port
        self.base = f"https://127.0.0.1:{port}"

    def api(self, key=None):
        from fvharness import Api
        return Api(self.base, self.c.cert, key)

    def one_shot(self, method, path, key, **kw):
        """One request on a new connection (so the children take turns), closed afterwards."""
        with hook_session(requests.Session()) as s:
            s.trust_env = False
            headers = {"Authorization": f"Bearer {key}", "Connection": "close"}
            return s.request(method, self.base + path, headers=headers, verify=str(self.c.cert),
                             timeout=30, **kw)


def pin_children(fe, timeout=30):
    return harness_pin_children(fe.c, fe.port, timeout=timeout)


def wait_every_child(fe, key, status, what, timeout=10, never_after=None):
    """Polls GET /v1/me with key on each child of fe until every child answered status. With
    never_after, a child that answered status must never answer never_after again."""
    pinned = pin_children(fe)
    seen = set()

    def done():
        for s in pinned.values():
            r = s.get(fe.base + "/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            pid = child_of(r)  # the pinned child, unless the connection was closed and redone
            if r.status_code == status:
                seen.add(pid)
            elif never_after is not None and r.status_code == never_after:
                assert pid not in seen, f"child {pid} answered {never_after} after {status}"
        return seen >= set(pinned)
    try:
        wait_until(done, timeout, what=what)
    finally:
        for s in pinned.values():
            s.close()


def start_fe(cluster, name, **env):
    port = free_port()
    cluster.start_frontend(name=name, FV_LISTEN_PORT=port, **env)
    return Fe(cluster, port)


@pytest.fixture(scope="module")
def fes(frontend):
    """The session's front end and this module's three."""
    c = frontend
    keys = start_fe(c, "frontend-keys", FV_API_KEY_CREATE_WITH_KEY="yes")
    rl = start_fe(c, "frontend-rl", FV_API_KEY_RATE_LIMIT=5, FV_API_KEY_RATE_WINDOW_S=60,
                  FV_API_KEY_SUSPEND_AFTER=0)
    fast = start_fe(c, "frontend-fast", FV_API_KEY_RATE_LIMIT=FAST_LIMIT, FV_API_KEY_RATE_WINDOW_S=1,
                    FV_API_KEY_SUSPEND_AFTER=3, FV_API_KEY_CREATE_WITH_KEY="yes")
    return {"default": Fe(c, c.http_port), "keys": keys, "rl": rl, "fast": fast}


_n = [0]


def new_user(cluster, prefix="user"):
    """A new user made by fvctl: (its fvctl key, its id)."""
    _n[0] += 1
    email = f"{prefix}{_n[0]}-{uuid.uuid4().hex[:8]}@example.org"
    key = cluster.create_user(email, f"{prefix.title()} {_n[0]}")
    uid = cluster.user_rows(email)[0][0]
    return key, uid


def create_key(api, name="laptop"):
    r = api.post("/v1/me/api-keys", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()


def audit_rows(cluster, action, target):
    return cluster.psql(
        "SELECT actor::text, host(address), org_id::text, detail::text, at FROM audit "
        "WHERE action = %s AND target_type = 'api_key' AND target_id = %s ORDER BY id", action, target)


# ------------------------------------------------------------------ creation


def test_api_key_caller_cannot_create_keys_by_default(fes):
    key, _ = new_user(fes["default"].c)
    api = fes["default"].api(key)
    r = api.post("/v1/me/api-keys", json={"name": "minted by a key"})
    assert r.status_code == 403, r.text
    assert error_body(r)["code"] == "session_required"
    assert fes["default"].c.psql(
        "SELECT count(*) FROM api_keys WHERE name = 'minted by a key'") == [(0,)]


def test_create_shows_the_key_once_and_stores_only_its_hash(fes):
    c = fes["keys"].c
    key, uid = new_user(c)
    api = fes["keys"].api(key)
    body = create_key(api, "field tablet 7")
    assert set(body) == {"id", "name", "key", "created_at"}
    assert body["name"] == "field tablet 7"
    assert uuid.UUID(body["id"]) and body["created_at"].endswith("Z")
    new = body["key"]
    assert new.startswith("fvk_") and len(new) == 47 and new != key
    # the new key is the same user's, on every front end
    for fe in ("default", "keys"):
        me = fes[fe].api(new).get("/v1/me")
        assert me.status_code == 200, me.text
        assert me.json()["id"] == uid
    # stored as SHA-256 only
    rows = c.psql("SELECT key_hash, name, user_id::text FROM api_keys WHERE id = %s", body["id"])
    assert rows == [(hashlib.sha256(new.encode()).hexdigest(), "field tablet 7", uid)]
    assert c.psql("SELECT count(*) FROM api_keys WHERE key_hash = %s OR name = %s", new, new) == [(0,)]
    # the list never shows it again, nor its hash
    r = api.get("/v1/me/api-keys")
    assert r.status_code == 200, r.text
    assert new not in r.text and rows[0][0] not in r.text and "hash" not in r.text
    item = [i for i in r.json()["items"] if i["id"] == body["id"]]
    assert item == [{"id": body["id"], "name": "field tablet 7", "created_at": body["created_at"],
                     "revoked_at": None, "suspended_at": None, "suspended_reason": None,
                     "current": False}]
    # audit: who, what, where; never the key or its hash
    a = audit_rows(c, "apikey.create", body["id"])
    assert len(a) == 1
    actor, address, org, detail, _ = a[0]
    assert actor == uid and address == "127.0.0.1" and org is None
    assert new not in detail and rows[0][0] not in detail and json.loads(detail)["name"] == "field tablet 7"


def test_list_is_own_keys_only_paginated(fes):
    c = fes["keys"].c
    key, uid = new_user(c)
    other_key, _ = new_user(c)
    api = fes["keys"].api(key)
    made = [create_key(api, f"k{i}")["id"] for i in range(3)]
    create_key(fes["keys"].api(other_key), "not yours")
    r = api.get("/v1/me/api-keys")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert r.json()["next"] is None
    ids = [i["id"] for i in items]
    assert len(ids) == 4 and set(made) <= set(ids)  # 3 + the fvctl key
    assert "not yours" not in r.text
    assert [i["current"] for i in items].count(True) == 1
    # pages of 2
    seen, after = [], None
    for _ in range(5):
        params = {"limit": 2} | ({"after": after} if after else {})
        r = api.get("/v1/me/api-keys", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        after = page["next"]
        if after is None:
            break
    assert seen == ids


@pytest.mark.parametrize("query,field", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
    ("limit=99999999999999999999", "limit"), ("after=nope", "after"), ("after=" + "a" * 300, "after"),
], ids=["zero", "501", "abc", "empty", "huge", "after_word", "after_long"])
def test_list_bad_query_is_422(fes, query, field):
    key, _ = new_user(fes["keys"].c)
    r = fes["keys"].api(key).get("/v1/me/api-keys?" + query)
    assert r.status_code == 422, r.text
    assert field in error_body(r)["fields"]


@pytest.mark.parametrize("body", [
    {}, {"name": None}, {"name": 5}, {"name": ["a"]}, {"name": {"a": 1}}, {"name": True},
    {"name": ""}, {"name": "   "}, {"name": "x" * 101}, {"name": "é" * 101}, {"name": "tab\there"},
    {"name": "nl\n"},
])
def test_create_invalid_name_is_422(fes, body):
    c = fes["keys"].c
    key, uid = new_user(c)
    r = fes["keys"].api(key).post("/v1/me/api-keys", json=body)
    assert r.status_code == 422, r.text
    assert "name" in error_body(r)["fields"]
    assert c.psql("SELECT count(*) FROM api_keys WHERE user_id = %s", uid) == [(1,)]


def test_create_name_limits_count_characters(fes):
    key, _ = new_user(fes["keys"].c)
    api = fes["keys"].api(key)
    assert create_key(api, "é" * 100)["name"] == "é" * 100
    assert create_key(api, "x")["name"] == "x"


@pytest.mark.parametrize("data,ctype,status", [
    (b'{"name": "x"', "application/json", 400),
    (b'["name"]', "application/json", 400),
    (b"", "application/json", 400),
    (b'{"name": "x"}', "text/plain", 415),
    (b'{"name": "' + b"x" * 200000 + b'"}', "application/json", 413),
], ids=["truncated", "array", "empty", "text_plain", "huge"])
def test_create_malformed_body(fes, data, ctype, status):
    key, _ = new_user(fes["keys"].c)
    r = fes["keys"].api(key).post("/v1/me/api-keys", data=data, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    if status != 413:  # evhttp itself refuses a body over max_body_bytes, in HTML
        error_body(r)


def test_unauthenticated_is_401(fes):
    with hook_session(requests.Session()) as s:
        s.trust_env = False
        for method, path in [("POST", "/v1/me/api-keys"), ("GET", "/v1/me/api-keys"),
                             ("DELETE", f"/v1/me/api-keys/{uuid.uuid4()}"),
                             ("POST", f"/v1/api-keys/{uuid.uuid4()}/reinstate")]:
            r = s.request(method, fes["keys"].base + path, json={"name": "x"},
                          verify=str(fes["keys"].c.cert), timeout=30)
            assert r.status_code == 401, (method, path, r.text)


# ------------------------------------------------------------------ revocation


def test_revoke_stops_the_key_on_every_child_and_front_end(fes):
    c = fes["keys"].c
    key, uid = new_user(c)
    api = fes["keys"].api(key)
    victim = create_key(api, "to revoke")
    # warm the caches: every child of both front ends has served the key
    for fe in ("default", "keys"):
        wait_every_child(fes[fe], victim["key"], 200, f"both children of {fe} to serve the key", 30)

    r = api.delete(f"/v1/me/api-keys/{victim['id']}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    for fe in ("default", "keys"):
        wait_every_child(fes[fe], victim["key"], 401, f"both children of {fe} to refuse the revoked key",
                         never_after=200)
        assert error_body(fes[fe].one_shot("GET", "/v1/me", victim["key"]))["code"] == "invalid_token"
    # the caller's own key still works; the list shows the revocation; again -> 204, no new audit
    items = {i["id"]: i for i in api.get("/v1/me/api-keys").json()["items"]}
    assert items[victim["id"]]["revoked_at"] is not None
    assert api.delete(f"/v1/me/api-keys/{victim['id']}").status_code == 204
    a = audit_rows(c, "apikey.revoke", victim["id"])
    assert len(a) == 1 and a[0][0] == uid and a[0][1] == "127.0.0.1"
    assert victim["key"] not in (a[0][3] or "")
    assert c.psql("SELECT count(*) FROM revocations WHERE kind = 'api_key' AND subject = %s AND "
                  "expires_at > now() + interval '1 hour'",
                  hashlib.sha256(victim["key"].encode()).hexdigest()) == [(1,)]


def test_a_key_can_revoke_itself(fes):
    key, _ = new_user(fes["keys"].c)
    k = create_key(fes["keys"].api(key), "self")
    api = fes["keys"].api(k["key"])
    assert api.delete(f"/v1/me/api-keys/{k['id']}").status_code == 204
    wait_until(lambda: fes["keys"].one_shot("GET", "/v1/me", k["key"]).status_code == 401, 10,
               what="the key to refuse itself")


def test_revoke_someone_elses_or_unknown_key_is_404(fes):
    c = fes["keys"].c
    owner_key, _ = new_user(c)
    thief_key, _ = new_user(c)
    k = create_key(fes["keys"].api(owner_key), "mine")
    thief = fes["keys"].api(thief_key)
    for path in (f"/v1/me/api-keys/{k['id']}", f"/v1/me/api-keys/{uuid.uuid4()}",
                 "/v1/me/api-keys/not-a-uuid", "/v1/me/api-keys/" + "9" * 60):
        r = thief.delete(path)
        assert r.status_code == 404, (path, r.text)
        assert error_body(r)["code"] == "not_found"
    assert c.psql("SELECT revoked_at FROM api_keys WHERE id = %s", k["id"]) == [(None,)]
    assert fes["keys"].api(k["key"]).get("/v1/me").status_code == 200


# ------------------------------------------------------------------ rate limit


def test_rate_limit_429_with_retry_after(fes):
    c = fes["rl"].c
    key, _ = new_user(c)
    other, _ = new_user(c)
    api = fes["rl"].api(key)
    statuses, refused = [], None
    for _ in range(20):  # 5 per window; a window may end during the loop, so allow two
        r = api.get("/v1/me")
        statuses.append(r.status_code)
        if r.status_code == 429:
            refused = r
            break
        assert r.status_code == 200, r.text
    assert refused is not None, statuses
    assert 5 <= statuses.count(200) <= 10
    err = error_body(refused)
    assert err["code"] == "rate_limited"
    retry = refused.headers["Retry-After"]
    assert retry.isdigit() and 1 <= int(retry) <= 60, retry
    assert "," not in retry  # one header, not two
    # the count is per key: another key is served; so is this key where the limit is higher
    assert fes["rl"].api(other).get("/v1/me").status_code == 200
    assert fes["default"].api(key).get("/v1/me").status_code == 200


# ------------------------------------------------------------------ suspension, reinstatement


@pytest.fixture()
def org(fes, admin):
    """An org made by the session's admin: (org id, root branch id)."""
    r = admin.post("/v1/orgs", json={"name": f"Keys org {uuid.uuid4().hex[:6]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"], r.json()["root_branch_id"]


def add_member(cluster, org, user_id, role):
    org_id, root = org
    cluster.psql("INSERT INTO memberships (id, org_id, user_id, role, branch_id) VALUES (%s, %s, %s, %s, %s)",
                 str(uuid.uuid4()), org_id, user_id, role, root)


def suspend(fe, key):
    """Drives key over its limit on the fast front end until it is suspended; returns the 403."""
    def suspended():
        for _ in range(FAST_LIMIT + 2):
            r = fe.api(key).get("/v1/me")
            if r.status_code == 403:
                return [r]  # a Response of status >= 400 is false
            assert r.status_code in (200, 429), r.text
        return None
    return wait_until(suspended, 60, interval=0.2, what="the key to be suspended")[0]


def test_suspension_after_strikes_and_reinstatement(fes, org, admin):
    c = fes["fast"].c
    owner_key, owner_id = new_user(c, "owner")
    add_member(c, org, owner_id, "member")
    owner = fes["keys"].api(owner_key)
    k = create_key(owner, "hammered")
    r = suspend(fes["fast"], k["key"])
    assert error_body(r)["code"] == "key_suspended"
    rows = c.psql("SELECT suspended_reason, suspended_at IS NOT NULL FROM api_keys WHERE id = %s", k["id"])
    assert rows == [("rate limit", True)]
    a = audit_rows(c, "apikey.suspend", k["id"])
    assert len(a) == 1
    actor, address, org_id, detail, _ = a[0]
    assert actor is None and address == "127.0.0.1" and org_id == org[0]
    assert k["key"] not in detail and json.loads(detail)["reason"] == "rate limit"
    # suspended everywhere (every cache forgets the old state), and not merely unknown
    for fe in ("default", "keys", "rl", "fast"):
        wait_every_child(fes[fe], k["key"], 403, f"every child of {fe} to refuse the suspended key")
        assert error_body(fes[fe].one_shot("GET", "/v1/me", k["key"]))["code"] == "key_suspended"
    item = [i for i in owner.get("/v1/me/api-keys").json()["items"] if i["id"] == k["id"]][0]
    assert item["suspended_at"] is not None and item["suspended_reason"] == "rate limit"
    assert item["revoked_at"] is None
    # the owner's other keys are not touched
    assert owner.get("/v1/me").status_code == 200

    path = f"/v1/api-keys/{k['id']}/reinstate"
    # a stranger, a plain member of the org, and the owner (not an admin) may not reinstate it
    stranger_key, _ = new_user(c, "stranger")
    member_key, member_id = new_user(c, "member")
    add_member(c, org, member_id, "member")
    for who in (stranger_key, member_key):
        r = fes["keys"].api(who).post(path)
        assert r.status_code == 404, r.text
    r = owner.post(path)
    assert r.status_code == 403 and error_body(r)["code"] == "forbidden", r.text
    # nor can the owner lift it by making an organisation of their own (its admin), nor can the
    # admin of an organisation the owner was added to after the suspension
    r = owner.post("/v1/orgs", json={"name": "my own org"})
    assert r.status_code == 201, r.text
    r = owner.post(path)
    assert r.status_code == 403 and error_body(r)["code"] == "forbidden", r.text
    late_admin_key, late_admin_id = new_user(c, "late-admin")
    late_admin = fes["keys"].api(late_admin_key)
    r = late_admin.post("/v1/orgs", json={"name": "joined after the suspension"})
    assert r.status_code == 201, r.text
    late_org = r.json()["id"]
    # a membership made after the suspension (joining needs consent: test_invitations.py has the
    # owner accept such an invitation; here it is written with SQL)
    add_member(c, (late_org, r.json()["root_branch_id"]), owner_id, "member")
    r = late_admin.post(path)
    assert r.status_code == 404, r.text
    late_admin.close()
    # an org requiring TOTP of its admins: an API key is no second factor
    c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", org[0])
    r = admin.post(path)
    assert r.status_code == 403 and error_body(r)["code"] == "totp_required", r.text
    c.psql("UPDATE orgs SET require_admin_totp = false WHERE id = %s", org[0])
    assert c.psql("SELECT count(*) FROM audit WHERE action = 'apikey.reinstate' AND target_id = %s",
                  k["id"]) == [(0,)]
    assert c.psql("SELECT suspended_at IS NOT NULL FROM api_keys WHERE id = %s", k["id"]) == [(True,)]

    r = admin.post(path)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == k["id"] and body["name"] == "hammered" and body["user_id"] == owner_id
    assert body["suspended_at"] is None and body["suspended_reason"] is None and body["revoked_at"] is None
    assert "key" not in body
    admin_id = admin.get("/v1/me").json()["id"]
    a = audit_rows(c, "apikey.reinstate", k["id"])
    assert len(a) == 1 and a[0][0] == admin_id and a[0][2] == org[0]
    assert c.redis_cli("EXISTS", f"fv:rl:strikes:{k['id']}") == 0
    # (not on rl: its 5 per minute are spent, as the counter is shared by every front end)
    for fe in ("default", "keys", "fast"):
        wait_every_child(fes[fe], k["key"], 200, f"every child of {fe} to accept the reinstated key")
    # again: nothing to do, same answer, no second audit row
    r = admin.post(path)
    assert r.status_code == 200 and r.json()["suspended_at"] is None
    assert len(audit_rows(c, "apikey.reinstate", k["id"])) == 1
    # it takes strikes again from zero and is suspended again
    suspend(fes["fast"], k["key"])
    # one row in each of the owner's three organisations by now (the first: one)
    assert len(audit_rows(c, "apikey.suspend", k["id"])) == 1 + 3


def test_suspension_audited_in_every_org_of_the_owner(fes, admin):
    c = fes["fast"].c
    orgs = []
    for i in range(2):
        r = admin.post("/v1/orgs", json={"name": f"Two orgs {i}"})
        assert r.status_code == 201
        orgs.append((r.json()["id"], r.json()["root_branch_id"]))
    key, uid = new_user(c, "busy")
    for o in orgs:
        add_member(c, o, uid, "member")
    k = create_key(fes["keys"].api(key), "busy key")
    suspend(fes["fast"], k["key"])
    a = audit_rows(c, "apikey.suspend", k["id"])
    assert sorted(r[2] for r in a) == sorted(o[0] for o in orgs)
    # a user in no org: one account-level row
    key2, _ = new_user(c, "loner")
    k2 = create_key(fes["keys"].api(key2), "loner key")
    suspend(fes["fast"], k2["key"])
    a = audit_rows(c, "apikey.suspend", k2["id"])
    assert len(a) == 1 and a[0][2] is None


def test_reinstate_revoked_unknown_and_bad_ids(fes, org, admin):
    c = fes["keys"].c
    key, uid = new_user(c)
    add_member(c, org, uid, "member")
    api = fes["keys"].api(key)
    k = create_key(api, "revoked one")
    # not suspended: 200, nothing changes
    r = admin.post(f"/v1/api-keys/{k['id']}/reinstate")
    assert r.status_code == 200 and r.json()["suspended_at"] is None, r.text
    assert audit_rows(c, "apikey.reinstate", k["id"]) == []
    assert api.delete(f"/v1/me/api-keys/{k['id']}").status_code == 204
    r = admin.post(f"/v1/api-keys/{k['id']}/reinstate")
    assert r.status_code == 409 and error_body(r)["code"] == "key_revoked", r.text
    for bad in (str(uuid.uuid4()), "nope", "0" * 63):
        r = admin.post(f"/v1/api-keys/{bad}/reinstate")
        assert r.status_code == 404, (bad, r.text)
    # the wrong method on a known path
    assert admin.get(f"/v1/api-keys/{k['id']}/reinstate").status_code == 405


def test_rate_limit_fails_open_while_redis_is_down(fes):
    """Redis down: nothing can be counted, so keys are not limited (docs/api/api-keys.md); when
    it returns, the limit applies again."""
    import faults
    c = fes["rl"].c
    key, _ = new_user(c)
    rl = fes["rl"]

    def refused():
        return any(rl.one_shot("GET", "/v1/me", key).status_code == 429 for _ in range(8))
    wait_until(refused, 30, what="the key to reach its limit on rl")
    faults.kill_redis(c)
    try:
        wait_until(lambda: faults.readyz(c, rl.port).json().get("queue") == "spool", 30,
                   what="rl to notice Redis is down")
        statuses = [rl.one_shot("GET", "/v1/me", key).status_code for _ in range(12)]
        assert statuses == [200] * 12, statuses
    finally:
        if not c.redis_proc.alive():
            faults.restart_redis(c)
    wait_until(lambda: faults.readyz(c, rl.port).json().get("queue") == "up", 60,
               what="rl back on Redis")
    wait_until(lambda: faults.readyz(c).json().get("queue") == "up", 60,
               what="the session's front end back on Redis")
    wait_until(refused, 30, what="the limit to apply again once Redis is back")


def test_suspension_waits_for_postgresql(fes):
    """PostgreSQL down: the key keeps working from the caches and strikes keep counting in Redis,
    but the suspension cannot be written; it is, at the first strike after PostgreSQL returns."""
    import faults
    c = fes["fast"].c
    fast = fes["fast"]
    key, _ = new_user(c, "patient")
    k = create_key(fes["keys"].api(key), "patient key")
    wait_every_child(fast, k["key"], 200, "both children of fast to cache the key")
    c.redis_cli("DEL", f"fv:rl:strikes:{k['id']}")  # the warm-up may have struck
    strikes = lambda: int(c.redis_cli("GET", f"fv:rl:strikes:{k['id']}") or 0)  # noqa: E731
    faults.pg_stop_immediate(c)
    try:
        wait_until(lambda: faults.readyz(c, fast.port).json().get("db") == "down", 60, what="db: down")

        def struck_enough():
            for _ in range(FAST_LIMIT + 2):
                r = fast.one_shot("GET", "/v1/me", k["key"])
                # past authentication and the rate limit, GET /v1/me reads PostgreSQL: 503
                assert r.status_code == 429 or (r.status_code == 503 and
                                                error_body(r)["code"] == "db_unavailable"), r.text
            return strikes() >= 4
        wait_until(struck_enough, 60, interval=0.2, what="4 strikes while PostgreSQL is down")
    finally:
        faults.pg_start(c)
        for fe in fes.values():  # also after a failure: the next tests need the database back
            wait_until(lambda: faults.readyz(c, fe.port).json().get("db") == "up", 60, what="db: up")
    # the harness's own connection died with the server: reconnect
    wait_until(lambda: c.psql("SELECT 1") == [(1,)], 30, what="the test's connection to PostgreSQL")
    assert c.psql("SELECT suspended_at FROM api_keys WHERE id = %s", k["id"]) == [(None,)]
    r = suspend(fast, k["key"])
    assert error_body(r)["code"] == "key_suspended"
    a = audit_rows(c, "apikey.suspend", k["id"])
    assert len(a) == 1 and json.loads(a[0][3])["strikes"] >= 5


def test_counts_sent_ahead_are_all_counted(fes):
    """Well under the limit a request does not wait for its count (fe_ratelimit.c counts ahead):
    every request is still counted once in Redis."""
    c = fes["keys"].c
    key, _ = new_user(c, "counted")
    k = create_key(fes["keys"].api(key), "counted key")
    api = fes["keys"].api(k["key"])  # one keep-alive connection: one child, its view warm
    for _ in range(40):
        assert api.get("/v1/me").status_code == 200
    api.close()

    def total():
        keys = c.redis_cli("KEYS", f"fv:rl:{k['id']}:*") or []
        return sum(int(c.redis_cli("GET", x) or 0) for x in keys)
    # the answers to the counts sent ahead may still be on their way: poll, never less, never more
    wait_until(lambda: total() == 40, 10, what="every request counted once")
