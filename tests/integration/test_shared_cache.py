"""The lookups shared through Redis (fv:cache:enumerator:<user>, fv:cache:deployment:<id>,
fv:cache:apikey:<sha256>) cannot outlive a revocation, nor be forged by whoever can write to Redis
(review item 4 and the "Redis is trusted for authentication" note; issue 9 item 5).

Each race is reproduced deterministically the way the review did: the answer as it stood before
the change is written back into Redis directly after the change (the lookup that read PostgreSQL
before the removal committed and shared its answer after the DEL; a DEL lost while Redis was
unreachable), once as captured (correctly MACed, an old version) and once unMACed (a forgery).
A front end started afterwards (whose children know nothing locally and keep nothing: cache times
of 0) must refuse the removed member, and store nothing of theirs as verified, even with
PostgreSQL down; and must not authenticate a revoked or forged API key."""
import hashlib
import json
import time
import signal

import requests

from conftest import DEFINITION, good_data
from faults import kill_redis, pg_start, pg_stop_immediate, restart_redis
from fvharness import free_port, new_id, pin_children, wait_until
from openapi_check import hook_session
from test_accounts import STRONG

COLD = dict(FV_PROCESSES=1, FV_DEPLOYMENT_CACHE_TTL_S=0, FV_CACHE_STALE_S=0, FV_AUTH_CACHE_TTL_S=0,
            FV_PG_TIMEOUT_MS=1000)


class Cold:
    """A front end of one child that keeps nothing in its own caches: every lookup goes to Redis
    (when it knows nothing of the deployment) and then PostgreSQL."""

    def __init__(self, c, name, **env):
        self.c, self.port = c, free_port()
        self.proc = c.start_frontend(name=name, FV_LISTEN_PORT=self.port, **dict(COLD, **env))
        self.s = hook_session(requests.Session())
        self.s.trust_env = False
        self.s.verify = str(c.cert)
        # connected to Redis (else nothing shared is even looked at)
        wait_until(lambda: self.readyz().get("queue") == "up", 30, what="the cold front end's Redis connection")

    def req(self, method, path, key, **kw):
        return self.s.request(method, f"https://127.0.0.1:{self.port}{path}", timeout=30,
                              headers={"Authorization": f"Bearer {key}"}, **kw)

    def submit(self, key, dep, rid):
        return self.req("POST", f"/v1/deployments/{dep}/responses", key, json={"id": rid, "data": good_data()})

    def readyz(self):
        return self.s.get(f"https://127.0.0.1:{self.port}/readyz", timeout=30).json()

    def close(self):
        self.s.close()
        assert self.proc.stop(signal.SIGTERM, timeout=30) == 0


def db_back(world):
    """After PostgreSQL was restarted: the session's front end answers again (its pool
    reconnects with backoff)."""
    wait_until(lambda: world.admin.get("/v1/me", headers={"Connection": "close"}).status_code == 200, 60,
               what="the front end reading PostgreSQL again")


def setup_member(world, label, marker):
    """A user who is an enumerator of a new deployment through their membership of the org's root
    branch (removing the membership revokes it), warmed: one submission accepted and the lookups
    shared in Redis. Returns (key, user id, deployment id, shared permission, shared deployment)."""
    c, admin = world.cluster, world.admin
    key = c.create_user(f"{label}-{new_id()[:8]}@example.org", label)
    api = c.api(key)
    uid = api.get("/v1/me").json()["id"]
    # the membership with SQL: joining needs the user's consent (test_invitations.py)
    c.psql("INSERT INTO memberships (id, org_id, user_id, role, branch_id) VALUES (%s, %s, %s, 'member', %s)",
           new_id(), world.org_id, uid, world.root_branch_id)
    marker.wait_all()  # else a child reading the membership's revocation deletes what is shared
    r = admin.post(f"/v1/surveys/{world.survey_id}/deployments", json={
        "name": f"{label} deployment", "roles": {"enumerators": [{"type": "branch", "id": world.root_branch_id}]}})
    assert r.status_code == 201, r.text
    dep = r.json()["id"]
    rid = new_id()
    r = api.post(f"/v1/deployments/{dep}/responses", json={"id": rid, "data": good_data()})
    assert r.status_code == 202, r.text
    world.wait_readable(rid, api=api)
    perm_key, dep_key = f"fv:cache:enumerator:{uid}", f"fv:cache:deployment:{dep}"

    def shared_now():
        return c.redis_cli("HGET", perm_key, dep) and c.redis_cli("GET", dep_key)
    # An answer is shared only once its version (the revocation log read without a gap) is past
    # the membership's revocation; one computed during a gap (a revocation insert another test
    # rolled back, fe_revoke.c) is neither kept nor shared, and nothing asks again by itself: so
    # submit again (new ids) until a lookup made after the gap shares both entries.
    deadline = time.monotonic() + 120
    while not shared_now():
        assert time.monotonic() < deadline, "the lookups were never shared in Redis"
        try:
            wait_until(shared_now, 3, what="the lookups shared in Redis")
        except TimeoutError:
            r = api.post(f"/v1/deployments/{dep}/responses", json={"id": new_id(), "data": good_data()})
            assert r.status_code == 202, r.text
    shared = (c.redis_cli("HGET", perm_key, dep), c.redis_cli("GET", dep_key))
    api.close()
    return key, uid, dep, shared


def remove_member(world, uid):
    r = world.admin.delete(f"/v1/orgs/{world.org_id}/members/{uid}")
    assert r.status_code == 204, r.text


def plant(c, uid, dep, perm, dep_json):
    """What a late HSET (or an attacker) leaves in Redis."""
    c.redis_cli("HSET", f"fv:cache:enumerator:{uid}", dep, perm)
    c.redis_cli("EXPIRE", f"fv:cache:enumerator:{uid}", "600")
    c.redis_cli("SET", f"fv:cache:deployment:{dep}", dep_json, "EX", "600")


def forged_dep(world):
    return json.dumps({"survey_id": world.survey_id, "version": 1, "definition": DEFINITION})


class Marker:
    """Sessions whose logout, written right after a revocation, shows when a child has read that
    revocation: rows are applied in id order, and a session token is checked by the child alone
    (its signature, then the revocations it has read). Used to wait, without sleeping, until every
    child of the session's front end has read a revocation (and deleted the shared entry, so that
    nothing deletes what the test shares or plants afterwards), and until a cold front end has
    loaded it."""

    def __init__(self, c):
        self.c, self.token = c, None
        self.mail = f"marker-{new_id()[:8]}@example.org"
        anon = c.api()
        r = anon.post("/v1/users", json={"email": self.mail, "name": "Marker", "password": STRONG})
        assert r.status_code == 202, r.text  # sign-up: the same answer whether the email is new or taken
        anon.close()
        self.pins = pin_children(c, c.http_port, children=len(c.frontend.children()))

    def _status(self, s, port):
        return s.get(f"https://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {self.token}"},
                     timeout=30).status_code

    def wait_all(self):
        """A new session logged out: waits until every child of the session's front end refuses it,
        so every child has read every revocation written before."""
        api = self.c.api()
        r = api.post("/v1/auth/login", json={"email": self.mail, "password": STRONG})
        assert r.status_code == 200, r.text
        self.token = r.json()["token"]
        api.close()
        api = self.c.api(self.token)
        assert api.post("/v1/auth/logout").status_code == 204
        api.close()
        wait_until(lambda: all(self._status(s, self.c.http_port) == 401 for s in self.pins.values()), 30,
                   what="every child to read the revocations")

    def wait_loaded(self, cold):
        """Waits until the cold front end has read the revocations up to the last wait_all."""
        wait_until(lambda: self._status(cold.s, cold.port) == 401, 30, what="the cold front end's revocations")

    def close(self):
        for s in self.pins.values():
            s.close()


def test_removed_enumerator_refused_despite_stale_or_forged_shared_permission(world):
    c = world.cluster
    db_back(world)
    marker = Marker(c)
    key, uid, dep, (perm, dep_json) = setup_member(world, "Removed", marker)
    assert perm.startswith("m1.") and dep_json.startswith("m1.")  # MACed, versioned
    remove_member(world, uid)
    marker.wait_all()
    cold = Cold(c, "frontend-cold-perm")
    try:
        marker.wait_loaded(cold)
        # 1. the answer from before the removal, MACed and well-formed, but of an older version
        plant(c, uid, dep, perm, dep_json)
        rid = new_id()
        r = cold.submit(key, dep, rid)
        assert r.status_code in (403, 404), r.text
        # 2. an unMACed permission and deployment written by anyone with access to Redis
        plant(c, uid, dep, "1", forged_dep(world))
        rid2 = new_id()
        r2 = cold.submit(key, dep, rid2)
        assert r2.status_code in (403, 404), r2.text
        # 3. the same with PostgreSQL down: nothing can be checked, so the submission is taken
        #    unverified and the worker refuses it; never stored, never as verified
        plant(c, uid, dep, perm, dep_json)
        ids = [new_id(), new_id()]
        pg_stop_immediate(c)
        try:
            wait_until(lambda: cold.readyz().get("db") == "down", 60, what="db: down")
            for rid3, (p, dj) in zip(ids, [(perm, dep_json), ("1", forged_dep(world))]):
                plant(c, uid, dep, p, dj)
                r3 = cold.submit(key, dep, rid3)
                assert r3.status_code == 202, r3.text
        finally:
            pg_start(c)
        db_back(world)
        c.wait_drained(120)
        wait_until(lambda: c.psql("SELECT count(*) FROM quarantine WHERE id = ANY(%s::uuid[])", ids)[0][0] == 2,
                   60, what="both submissions quarantined by the worker")
        assert c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", [rid, rid2] + ids)[0][0] == 0
        assert cold.proc.log_path.read_text().count("refused") >= 1  # the bad MAC was logged
    finally:
        cold.close()
        marker.close()


def test_revoked_api_key_refused_despite_stale_shared_entry(world):
    """The DEL of the shared entry lost or overtaken by a late SET of the answer from before the
    revocation: the entry, MACed and well-formed, is in Redis again, and authenticates nobody."""
    c = world.cluster
    db_back(world)
    key = c.create_user(f"keys-{new_id()[:8]}@example.org", "Key Owner")
    owner = c.api(key)
    r = owner.get("/v1/me/api-keys")  # looked up in PostgreSQL and shared
    assert r.status_code == 200, r.text
    (key_id,) = [k["id"] for k in r.json()["items"]]
    rkey = "fv:cache:apikey:" + hashlib.sha256(key.encode()).hexdigest()
    shared = wait_until(lambda: c.redis_cli("GET", rkey), 30, what="the key shared in Redis")
    assert shared.startswith("m1.")
    marker = Marker(c)
    cold = None
    try:
        r = owner.delete(f"/v1/me/api-keys/{key_id}")
        assert r.status_code == 204, r.text
        marker.wait_all()
        cold = Cold(c, "frontend-cold-key")
        marker.wait_loaded(cold)
        c.redis_cli("SET", rkey, shared, "EX", "600")
        r = cold.req("GET", "/v1/me", key)
        assert r.status_code == 401, r.text
        assert c.redis_cli("GET", rkey) == shared  # it was there to be read, and was refused
    finally:
        if cold:
            cold.close()
        owner.close()
        marker.close()


def test_key_revoked_while_redis_is_down_stays_revoked(world):
    """The review's case: the key is revoked while Redis is unreachable, so every DEL of its shared
    entry is dropped (fire and forget) and the entry comes back with Redis (AOF). A running child
    that read the revocation but holds nothing of the key itself (its local entry expired: here
    cache times of 0) must not accept the key from that entry."""
    c = world.cluster
    db_back(world)
    key = c.create_user(f"down-{new_id()[:8]}@example.org", "Revoked While Down")
    owner = c.api(key)
    (key_id,) = [k["id"] for k in owner.get("/v1/me/api-keys").json()["items"]]
    rkey = "fv:cache:apikey:" + hashlib.sha256(key.encode()).hexdigest()
    shared = wait_until(lambda: c.redis_cli("GET", rkey), 30, what="the key shared in Redis")
    # a session whose logout, written after the key's revocation, shows when the cold child has
    # read the revocation (rows are applied in id order)
    anon = c.api()
    mail = f"marker-{new_id()[:8]}@example.org"
    assert anon.post("/v1/users", json={"email": mail, "name": "Marker", "password": STRONG}).status_code == 202
    r = anon.post("/v1/auth/login", json={"email": mail, "password": STRONG})
    assert r.status_code == 200, r.text
    marker = r.json()["token"]
    cold = Cold(c, "frontend-cold-down")
    try:
        assert cold.req("GET", "/v1/me", marker).status_code == 200
        kill_redis(c)
        try:
            r = owner.delete(f"/v1/me/api-keys/{key_id}")
            assert r.status_code == 204, r.text
            assert c.api(marker).post("/v1/auth/logout").status_code == 204
            wait_until(lambda: cold.req("GET", "/v1/me", marker).status_code == 401, 10,
                       what="the cold child to read both revocations")
        finally:
            restart_redis(c)
        assert c.redis_cli("GET", rkey) == shared  # every DEL was lost: the stale entry is back
        wait_until(lambda: cold.readyz().get("queue") == "up", 30, what="the cold child's Redis again")
        r = cold.req("GET", "/v1/me", key)
        assert r.status_code == 401, r.text
    finally:
        cold.close()
        owner.close()
        anon.close()


def test_forged_shared_api_key_does_not_authenticate(world):
    c = world.cluster
    me = world.admin.get("/v1/me").json()
    fake = "fvk_" + new_id().replace("-", "")[:32] + "AAAAAAAAAAA"
    assert len(fake) == 47
    rkey = "fv:cache:apikey:" + hashlib.sha256(fake.encode()).hexdigest()
    forged = json.dumps({"id": me["id"], "email": me["email"], "name": me["name"], "is_admin": True,
                         "key_id": new_id(), "suspended": False})
    c.redis_cli("SET", rkey, forged, "EX", "600")
    cold = Cold(c, "frontend-cold-forged")
    try:
        r = cold.req("GET", "/v1/me", fake)
        assert r.status_code == 401, r.text
        # a correctly shaped entry MACed under a key not in the key file: refused too
        c.redis_cli("SET", rkey, "m1.00000000.999999.9999999999." + "A" * 43 + "." + forged, "EX", "600")
        r = cold.req("GET", "/v1/me", fake)
        assert r.status_code == 401, r.text
    finally:
        cold.close()
        c.redis_cli("DEL", rkey)
