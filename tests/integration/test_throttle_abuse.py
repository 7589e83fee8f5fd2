"""Abuse of the anonymous and signed-in entry points (issue 9, items 6, 8 and 9):

* sign-ups cannot starve logins of password-hashing capacity, are throttled per address and per
  child, and answer a taken email exactly as a new one;
* a stranger failing for someone's email locks out only himself, never the owner at another
  address; a sprayer's own good logins do not wash out his failures;
* session tokens are rate-limited per user like API keys per key;
* while PostgreSQL is down a user's unverified submissions are capped (count and bytes), and
  what the worker refuses from someone with no tie to the organisation never lands in that
  organisation's quarantine or audit log (the operator sees it: fvctl quarantine).

Clients bind other loopback source addresses (127.0.0.2, ...) to stand for other machines."""
import concurrent.futures
import json
import signal
import time

import pytest
import requests

from conftest import good_data
from faults import kill_redis, pg_start, pg_stop_immediate, restart_redis
from fvharness import error_body, free_port, new_id, wait_until

STRONG = "correct horse battery staple 42"


class SourceAdapter(requests.adapters.HTTPAdapter):
    """Connects from the given loopback address."""

    def __init__(self, ip, **kw):
        self.ip = ip
        super().__init__(**kw)

    def init_poolmanager(self, *args, **kw):
        kw["source_address"] = (self.ip, 0)
        return super().init_poolmanager(*args, **kw)


class FE:
    def __init__(self, c, proc, port):
        self.c, self.proc, self.port = c, proc, port

    def api(self, key=None, ip="127.0.0.1"):
        from fvharness import Api
        api = Api(f"https://127.0.0.1:{self.port}", self.c.cert, key)
        if ip != "127.0.0.1":
            api.s.mount("https://", SourceAdapter(ip))
        return api

    def stop(self):
        assert self.proc.stop(signal.SIGTERM, timeout=30) == 0


@pytest.fixture()
def start(migrated):
    started = []

    def go(name, **env):
        port = free_port()
        p = migrated.start_frontend(name=name, FV_LISTEN_PORT=port, **env)
        fe = FE(migrated, p, port)
        started.append(fe)
        return fe
    yield go
    for fe in started:
        fe.stop()
    forget(migrated)


def forget(c):
    for pattern in ("fv:throttle:*", "fv:rl:user:*", "fv:unverified:*"):
        for key in c.redis_cli("KEYS", pattern) or []:
            c.redis_cli("DEL", key)


def email(tag="u"):
    return f"{tag}-{new_id()[:12]}@example.org"


def signup(api, mail, password=STRONG, name="Test User"):
    r = api.post("/v1/users", json={"email": mail, "name": name, "password": password})
    assert r.status_code == 202, r.text
    return r


def login(api, mail, password=STRONG, timeout=30):
    return api.post("/v1/auth/login", json={"email": mail, "password": password}, timeout=timeout)


# ------------------------------------------------------------------ sign-up

def test_concurrent_signups_do_not_make_a_login_wait(start):
    """Item 6: 150 anonymous sign-ups at once (no sign-up throttle here) take only the bulk class
    of the hashing pool, with its short queue: a login sent in the middle of them is answered at
    once (generous bound: 10 s), and the sign-ups beyond the queue get 503 with Retry-After rather
    than a long wait. On the old code (one queue of 256) no sign-up was refused and a login
    queued behind all of them (over 30 s)."""
    fe = start("frontend-signup-flood", FV_PROCESSES=1, FV_SIGNUP_MAX_PER_ADDRESS=0,
               FV_SIGNUP_MAX_PER_CHILD=0, FV_LOGIN_MAX_FAILURES_ADDRESS=0)
    owner = email("owner")
    api = fe.api()
    signup(api, owner)
    assert login(api, owner).status_code == 200

    def one_signup(i):
        a = fe.api()
        try:
            t0 = time.monotonic()
            # a long client deadline: on a loaded machine (or a sanitizer build) hashing is slow
            r = a.post("/v1/users", json={"email": email(f"flood{i}"), "name": "Flood",
                                          "password": STRONG}, timeout=120)
            return r.status_code, r.headers.get("Retry-After"), time.monotonic() - t0
        finally:
            a.close()
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(one_signup, i) for i in range(150)]
        # the flood has filled the sign-up queue once one of them was refused for it
        wait_until(lambda: any(f.done() and f.result()[0] == 503 for f in futures), 60,
                   what="a sign-up refused with 503 (the queue full)")
        t0 = time.monotonic()
        r = login(api, owner)
        waited = time.monotonic() - t0
        results = [f.result(timeout=300) for f in futures]
    assert r.status_code == 200, r.text
    assert waited < 10.0, f"a login waited {waited:.1f} s behind sign-ups"
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {202, 503}, statuses
    assert statuses.count(503) > 0, "the sign-up queue is bounded"
    assert all(ra and int(ra) >= 1 for s, ra, _ in results if s == 503)
    api.close()


def test_signup_throttled_per_address_and_per_child(start):
    fe = start("frontend-signup-throttle", FV_PROCESSES=1, FV_SIGNUP_MAX_PER_ADDRESS=3,
               FV_SIGNUP_MAX_PER_CHILD=5, FV_SIGNUP_WINDOW_S=600)
    a, b = fe.api(ip="127.0.0.4"), fe.api(ip="127.0.0.5")
    made = [email() for _ in range(3)]
    for mail in made:
        signup(a, mail)
    r = a.post("/v1/users", json={"email": email(), "name": "Four", "password": STRONG})
    assert r.status_code == 429, r.text
    assert error_body(r)["code"] == "too_many_signups"
    assert 1 <= int(r.headers["Retry-After"]) <= 600
    # another address still may, until the child's limit (5 in all)
    signup(b, email())
    signup(b, email())
    r = b.post("/v1/users", json={"email": email(), "name": "Six", "password": STRONG})
    assert r.status_code == 429 and error_body(r)["code"] == "too_many_signups", r.text
    # a taken email is throttled like any other (no free probe either)
    assert fe.c.user_rows(made[0], "count(*)") == [(1,)]  # taken (emails are sealed: known here)
    r = a.post("/v1/users", json={"email": made[0], "name": "Probe", "password": STRONG})
    assert r.status_code == 429, r.text
    a.close()
    b.close()


def test_signup_answer_is_the_same_for_a_taken_email(start):
    """Same status, same shape, same fields for a new and a taken email; the taken account is
    untouched, and the strength feedback still works for both (422 weak_password alike)."""
    fe = start("frontend-signup-same", FV_PROCESSES=1)
    api = fe.api()
    taken = email("taken")
    signup(api, taken)
    (before,) = fe.c.user_rows(taken, "id, name_sealed, password_hash")
    fresh = email("fresh")
    answers = {}
    for mail in (taken, fresh):
        r = api.post("/v1/users", json={"email": mail, "name": "Same Name", "password": STRONG + "!"})
        answers[mail] = r
    rt, rf = answers[taken], answers[fresh]
    assert rt.status_code == rf.status_code == 202
    assert set(rt.headers) - {"Date", "X-Request-Id", "Content-Length"} == \
        set(rf.headers) - {"Date", "X-Request-Id", "Content-Length"}
    bt, bf = rt.json(), rf.json()
    assert bt.pop("email") == taken and bf.pop("email") == fresh
    assert bt == bf
    assert fe.c.user_rows(taken, "id, name_sealed, password_hash") == [before]
    # the strength estimate is given for both, and weak passwords are refused for both alike
    weak = {m: api.post("/v1/users", json={"email": m, "name": "Weak", "password": "password1234"})
            for m in (taken, email("weak"))}
    assert [r.status_code for r in weak.values()] == [422, 422]
    assert [error_body(r)["code"] for r in weak.values()] == ["weak_password", "weak_password"]
    assert error_body(list(weak.values())[0]) == error_body(list(weak.values())[1])
    api.close()


# ------------------------------------------------------------------ login lockout

def test_owner_logs_in_while_a_stranger_fails_50_times(start):
    """Item 8: failures are counted per (account, address). A stranger failing 50 times from ten
    addresses is refused at each address after login_max_failures_account; the account itself
    is only slowed (short delays here), so its owner, at an address that has not been failing,
    still gets in. On the old code the owner got 429 for the whole window."""
    fe = start("frontend-lockout", FV_PROCESSES=1, FV_LOGIN_MAX_FAILURES_ACCOUNT=5,
               FV_LOGIN_MAX_FAILURES_ADDRESS=20, FV_LOGIN_ACCOUNT_DELAY_AFTER=10,
               FV_LOGIN_ACCOUNT_DELAY_MS=50, FV_LOGIN_ACCOUNT_DELAY_MAX_MS=400)
    owner_api = fe.api(ip="127.0.0.1")
    victim = email("victim")
    signup(owner_api, victim)
    ips = [f"127.0.0.{20 + i}" for i in range(10)]

    def hammer(ip):
        a = fe.api(ip=ip)
        try:
            return [login(a, victim, "not-the-password-%d" % n, timeout=120).status_code
                    for n in range(5)]
        finally:
            a.close()
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        runs = list(pool.map(hammer, ips))
    assert all(r == [401] * 5 for r in runs), runs
    # each of the stranger's addresses is now refused for this account, even with the password
    stranger = fe.api(ip=ips[0])
    r = login(stranger, victim, "yet-another-guess")
    assert r.status_code == 429 and error_body(r)["code"] == "too_many_attempts", r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert login(stranger, victim).status_code == 429
    # 50 failures for the account: the owner is delayed, never refused
    hexes = fe.c.redis_cli("KEYS", "fv:throttle:fail:acct:*")
    assert any(int(fe.c.redis_cli("GET", k) or 0) >= 50 for k in hexes)
    t0 = time.monotonic()
    r = login(owner_api, victim)
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 < 10
    # while the stranger keeps going, the owner keeps getting in
    for _ in range(3):
        assert login(stranger, victim, "guess").status_code == 429
        assert login(owner_api, victim).status_code == 200
    stranger.close()
    owner_api.close()


def test_a_sprayer_mixing_in_own_logins_is_limited(start):
    """A password sprayer (one address, many accounts) who logs in to his own account between
    guesses still reaches login_max_failures_address: successes never lower the address's
    count of failures."""
    fe = start("frontend-spray", FV_PROCESSES=1, FV_LOGIN_MAX_FAILURES_ADDRESS=5,
               FV_LOGIN_MAX_FAILURES_ACCOUNT=5)
    api = fe.api(ip="127.0.0.3")
    own = email("sprayer")
    signup(api, own)
    seen = []
    for i in range(8):
        seen.append(login(api, email(f"target{i}"), "Summer2024!").status_code)
        seen.append(login(api, own).status_code)
    guesses, own_logins = seen[0::2], seen[1::2]
    assert guesses[:5] == [401] * 5 and set(guesses[5:]) == {429}, seen
    # at the limit the address is refused as a whole, his own account included
    assert own_logins[:4] == [200] * 4 and set(own_logins[4:]) == {429}, seen
    (addr_key,) = [k for k in fe.c.redis_cli("KEYS", "fv:throttle:fail:addr:127.0.0.3")]
    assert int(fe.c.redis_cli("GET", addr_key)) == 5
    # another address is not affected
    other = fe.api(ip="127.0.0.6")
    assert login(other, own).status_code == 200
    other.close()
    api.close()


def test_per_pair_limit_holds_with_redis_down(start):
    """Degraded mode: with Redis down each child keeps the same counts in memory (one child
    here), so the per-(account, address) limit still refuses, and another address still gets
    in."""
    fe = start("frontend-throttle-noredis", FV_PROCESSES=1, FV_LOGIN_MAX_FAILURES_ACCOUNT=3,
               FV_LOGIN_MAX_FAILURES_ADDRESS=0)
    c = fe.c
    owner = email("nored")
    a = fe.api()
    signup(a, owner)
    kill_redis(c)
    try:
        wait_until(lambda: a.get("/readyz").json().get("queue") != "up", 60, what="queue not up")
        stranger = fe.api(ip="127.0.0.7")
        got = [login(stranger, owner, "wrong-guess-x").status_code for _ in range(5)]
        assert got == [401, 401, 401, 429, 429], got
        assert login(a, owner).status_code == 200
        stranger.close()
    finally:
        restart_redis(c)
    a.close()


def test_logins_during_a_database_outage_count_as_nothing(start):
    """A login that ends with neither success nor failure (503 while PostgreSQL is down) is taken
    back from the running count: it never adds up to a 429 once the database is back."""
    fe = start("frontend-throttle-pgdown", FV_PROCESSES=1, FV_PG_TIMEOUT_MS=1000,
               FV_LOGIN_MAX_FAILURES_ACCOUNT=3, FV_LOGIN_MAX_FAILURES_ADDRESS=3)
    c = fe.c
    api = fe.api(ip="127.0.0.8")
    mail = email("outage")
    signup(api, mail)
    pg_stop_immediate(c)
    try:
        wait_until(lambda: api.get("/readyz").json().get("db") == "down", 60, what="db: down")
        got = [login(api, mail).status_code for _ in range(6)]
        assert got == [503] * 6, got
    finally:
        pg_start(c)
    r = wait_until(lambda: (lambda r: r if r.status_code != 503 else None)(login(api, mail)), 60,
                   what="a login once PostgreSQL is back")
    assert r.status_code == 200, r.text
    api.close()


# ------------------------------------------------------------------ sessions, unverified

def test_sessions_are_rate_limited_per_user(start):
    """Item 9: a session token counts against its user's limit (all their sessions together),
    429 rate_limited with Retry-After past it; another user's session is not affected."""
    # one child: well under the limit a child does not wait for the shared count (fe_ratelimit.h),
    # so with several a few requests more than the limit can pass at its edge
    fe = start("frontend-session-rl", FV_PROCESSES=1, FV_SESSION_RATE_LIMIT=5,
               FV_SESSION_RATE_WINDOW_S=86400)
    api = fe.api()
    mail, other = email("sess"), email("sess2")
    signup(api, mail)
    signup(api, other)
    tokens = [login(api, mail).json()["token"] for _ in range(2)]
    s1, s2 = fe.api(tokens[0]), fe.api(tokens[1])
    got = [s1.get("/v1/me").status_code for _ in range(5)]
    assert got == [200] * 5, got
    for s in (s1, s2):
        r = s.get("/v1/me")
        assert r.status_code == 429, r.text
        assert error_body(r)["code"] == "rate_limited"
        assert int(r.headers["Retry-After"]) >= 1
    s3 = fe.api(login(api, other).json()["token"])
    assert s3.get("/v1/me").status_code == 200
    for s in (s1, s2, s3):
        s.close()
    api.close()


def test_unverified_caps_and_no_content_in_a_foreign_org(world, start):
    """Item 9, with PostgreSQL stopped for real: a signed-in user with no tie to the world's
    organisation names its deployment. Their unverified submissions are capped (count for one,
    bytes for another: 429 unverified_limit with Retry-After); after recovery the worker refuses
    the accepted ones, and the organisation's quarantine and audit log hold none of their
    content (only content-free entries); the operator lists them with fvctl quarantine."""
    c = world.cluster
    fe = start("frontend-unverified", FV_PG_TIMEOUT_MS=1000, FV_UNVERIFIED_MAX_PER_USER=4,
               FV_UNVERIFIED_MAX_BYTES_PER_USER=3000, FV_UNVERIFIED_WINDOW_S=86400)
    api = fe.api()
    mails = {who: email(who) for who in ("counter", "bytes")}
    tokens, uids = {}, {}
    for who, mail in mails.items():
        signup(api, mail)
        r = login(api, mail)
        assert r.status_code == 200, r.text
        tokens[who], uids[who] = r.json()["token"], r.json()["user"]["id"]
    attackers = {who: fe.api(tok) for who, tok in tokens.items()}
    marker = "Attacker Marker Zebra"
    dep = world.deployment_id

    def post(who, data, rid):
        return attackers[who].post(f"/v1/deployments/{dep}/responses", json={"id": rid, "data": data})
    ids = []
    # (polled: the harness's connection may be one a previous test's restart closed)
    ((audit_before,),) = wait_until(lambda: c.psql("SELECT coalesce(max(id), 0) FROM audit"), 30,
                                    what="the audit log's last id")
    pg_stop_immediate(c)
    try:
        wait_until(lambda: api.get("/readyz").json().get("db") == "down", 60, what="db: down")
        for i in range(4):
            rid = new_id()
            r = post("counter", dict(good_data(i), household=f"{marker} {i}"), rid)
            assert r.status_code == 202, r.text
            ids.append(rid)
        r = post("counter", dict(good_data(9), household=f"{marker} 9"), new_id())
        assert r.status_code == 429, r.text
        assert error_body(r)["code"] == "unverified_limit"
        assert int(r.headers["Retry-After"]) >= 1
        big = f"{marker} " + "x" * 1200
        for i in range(2):
            rid = new_id()
            r = post("bytes", dict(good_data(i), household=big), rid)
            assert r.status_code == 202, r.text
            ids.append(rid)
        r = post("bytes", dict(good_data(3), household=big), new_id())
        assert r.status_code == 429 and error_body(r)["code"] == "unverified_limit", r.text
        # small ones still fit the count but not the bytes already used
        r = post("bytes", dict(good_data(4), household=big), new_id())
        assert r.status_code == 429, r.text
    finally:
        pg_start(c)
    c.wait_drained(120)
    wait_until(lambda: c.psql("SELECT count(*) FROM quarantine WHERE id = ANY(%s::uuid[])", ids)[0][0]
               == len(ids), 60, what="the refused submissions quarantined")
    assert c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", ids) == [(0,)]
    rows = c.psql("SELECT org_visible, reason FROM quarantine WHERE id = ANY(%s::uuid[])", ids)
    assert all(not visible and "not an enumerator" in reason for visible, reason in rows), rows
    # the organisation's audit log: nothing of the attacker's (no answers, no ids, no user)
    org_audit = c.psql("SELECT action, coalesce(actor::text, ''), target_id, detail::text, id FROM audit "
                       "WHERE org_id = %s", world.org_id)
    text = json.dumps(org_audit)
    assert marker not in text
    for x in ids + list(uids.values()):
        assert x not in text
    refused = [a for a in org_audit if a[0] == "submission.refused_no_tie" and a[4] > audit_before]
    assert len(refused) == len(ids) and all(a[1] == "" and a[2] == dep for a in refused)
    # ... nor its quarantine, as its admins see it
    def listed():
        r = world.admin.get(f"/v1/orgs/{world.org_id}/quarantine", params={"limit": 500})
        return [r] if r.status_code != 503 else None
    r = wait_until(listed, 60, what="the quarantine list once PostgreSQL is back")[0]
    assert r.status_code == 200, r.text
    assert marker not in r.text and not set(ids) & {item["id"] for item in r.json()["items"]}
    # the operator sees them (metadata; the content with --show-data)
    out = c.fvctl("quarantine").stdout
    entries = [json.loads(line) for line in out.splitlines()]
    assert set(ids) <= {e["id"] for e in entries}
    assert marker not in out
    assert marker in c.fvctl("quarantine", "--show-data", "--limit", "0").stdout
    for a in attackers.values():
        a.close()
    api.close()
