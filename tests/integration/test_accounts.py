"""Identity (issue 3): sign-up, login, sessions, logout, password change, throttling, TOTP.

Most tests talk to a front end of their own (`idfe`, two children) whose per-address login limit is
high, so failed logins of one test cannot throttle another (all tests come from 127.0.0.1); the
throttling tests start front ends with low limits. Every account is new per test (unique emails).
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import signal
import ssl
import struct
import threading
import time

import pytest

from fvharness import Api, error_body, free_port, new_id, wait_until

STRONG = "vivid-otter-cactus-91-lagoon"
STRONG2 = "amber-walrus-piano-47-glacier"
CLOSE = {"Connection": "close"}  # a new connection per request: reaches either child


class FE:
    """A front end of ours on its own port."""

    def __init__(self, cluster, proc, port):
        self.c, self.proc, self.port = cluster, proc, port
        self.base = f"https://127.0.0.1:{port}"

    def api(self, key=None):
        return Api(self.base, self.c.cert, key)


def start_fe(cluster, name, **env):
    port = free_port()
    p = cluster.start_frontend(name=name, FV_LISTEN_PORT=port, **env)
    return FE(cluster, p, port)


def forget_throttling(c):
    for key in c.redis_cli("KEYS", "fv:throttle:*") or []:
        c.redis_cli("DEL", key)


@pytest.fixture(scope="module", autouse=True)
def no_throttling_left(migrated):
    """The failed logins of this module are counted in the shared Redis under 127.0.0.1: forget
    them afterwards, so other modules of the same session (whose front end keeps the default
    per-address limit) start clean."""
    global _CLUSTER
    _CLUSTER = migrated
    yield
    forget_throttling(migrated)


@pytest.fixture(scope="module")
def idfe(migrated):
    fe = start_fe(migrated, "frontend-identity", FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
    yield fe
    assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


@pytest.fixture()
def anon(idfe):
    api = idfe.api()
    yield api
    api.close()


def email():
    return f"u-{new_id()[:12]}@example.org"


_CLUSTER = None  # set by no_throttling_left: signup() reads the new account's id from it


def signup(api, mail=None, name="Test User", password=STRONG, c=None):
    """Signs up; returns the answer (email, name, password_strength) with the new account's id,
    which the answer does not carry (it is the same for a taken email), read from the database."""
    mail = mail or email()
    r = api.post("/v1/users", json={"email": mail, "name": name, "password": password})
    assert r.status_code == 202, r.text
    u = r.json()
    assert u["email"] == mail and set(u) == {"email", "name", "password_strength"}, u
    rows = (c or _CLUSTER).user_rows(mail)
    assert len(rows) == 1, rows
    u["id"] = rows[0][0]
    return u


def login(api, mail, password=STRONG, **extra):
    return api.post("/v1/auth/login", json={"email": mail, "password": password, **extra})


def token_of(api, mail, password=STRONG, **extra):
    r = login(api, mail, password, **extra)
    assert r.status_code == 200, r.text
    return r.json()["token"]


def totp(secret_b32, step):
    """RFC 6238 code (SHA-1, 6 digits) of a 30-second step."""
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1000000)


def now_step():
    return int(time.time()) // 30


def audit(c, action, actor=None):
    if actor:
        return c.psql("SELECT actor::text, target_id, host(address), detail::text FROM audit "
                      "WHERE action = %s AND actor = %s ORDER BY id", action, actor)
    return c.psql("SELECT actor::text, target_id, host(address), detail::text FROM audit "
                  "WHERE action = %s ORDER BY id", action)


# ------------------------------------------------------------------ sign-up

def test_signup_strong_password(anon, idfe):
    mail = email()
    r = anon.post("/v1/users", json={"email": mail, "name": "Ada Strong", "password": STRONG})
    assert r.status_code == 202, r.text
    u = r.json()
    assert u["email"] == mail and u["name"] == "Ada Strong"
    # the same answer as for a taken email: no id, no created_at (sign in to get them)
    assert set(u) == {"email", "name", "password_strength"}
    ps = u["password_strength"]
    assert ps["score"] >= 3 and ps["guesses_log10"] >= 8
    assert set(ps["feedback"]) == {"warning", "suggestions"}
    (uid, h) = idfe.c.user_rows(mail, "id::text, password_hash")[0]
    # stored in Django's format with the configured iterations, never the password itself
    algo, it, salt, digest = h.split("$")
    assert (algo, it) == ("pbkdf2_sha256", "600000")
    assert len(salt) == 22 and len(base64.b64decode(digest)) == 32
    assert base64.b64encode(hashlib.pbkdf2_hmac("sha256", STRONG.encode(), salt.encode(), 600000)).decode() == digest
    assert audit(idfe.c, "user.create", uid)


@pytest.mark.parametrize("pw", ["password1234", "qwertyuiopas", "123456789012", "aaaaaaaaaaaa"])
def test_signup_weak_password_is_refused_with_feedback(anon, idfe, pw):
    mail = email()
    r = anon.post("/v1/users", json={"email": mail, "name": "Weak", "password": pw})
    assert r.status_code == 422, r.text
    err = error_body(r)
    assert err["code"] == "weak_password"
    assert "password" in err["fields"]
    ps = err["password_strength"]
    assert ps["score"] < 3
    assert ps["feedback"]["warning"] and ps["feedback"]["suggestions"]
    assert idfe.c.user_rows(mail, "count(*)") == [(0,)]


def test_password_length_is_counted_in_characters_and_never_cut(anon):
    """ASVS 2.1.1-2.1.4: 12 characters are enough, 128 of any kind (emoji, CJK, accents:
    code points, not bytes) are allowed, and the whole password counts: a prefix of it is wrong."""
    short = "Zq9!vB2#kL4m"  # 12 characters
    mail = email()
    signup(anon, mail, password=short)
    assert login(anon, mail, short).status_code == 200
    assert login(anon, mail, short[:-1]).status_code == 401
    rnd = random.Random(1)
    long_pw = "".join(rnd.choice("abcdefghijkmnpqrstuvwxyz23456789\u00e9\u00f8\u00df\U0001f989\u65e5\u672c")
                      for _ in range(128))
    assert len(long_pw) == 128 and len(long_pw.encode()) > 128
    mail = email()
    signup(anon, mail, password=long_pw)
    assert login(anon, mail, long_pw).status_code == 200
    assert login(anon, mail, long_pw[:-1]).status_code == 401


def test_signup_password_made_of_own_name_is_weak(anon):
    r = anon.post("/v1/users", json={"email": "gwendolyn.harrington@example.org",
                                     "name": "Gwendolyn Harrington", "password": "gwendolyn.harrington"})
    assert r.status_code == 422, r.text
    assert "name or email" in error_body(r)["password_strength"]["feedback"]["warning"]


def test_signup_taken_email_answers_like_a_new_one_and_leaves_the_account(anon, idfe):
    """No email enumeration: a taken email (in any case) gets the very answer a new one gets; the
    existing account keeps its name and password, and its audit log records the attempt."""
    mail = email()
    first = signup(anon, mail)
    (before,) = idfe.c.psql("SELECT name_sealed, password_hash FROM users WHERE id = %s", first["id"])
    r = anon.post("/v1/users", json={"email": mail.upper(), "name": "Again", "password": STRONG2})
    assert r.status_code == 202, r.text
    again = r.json()
    assert set(again) == {"email", "name", "password_strength"}
    assert again["email"] == mail.upper() and again["name"] == "Again"
    assert idfe.c.user_rows(mail, "count(*)") == [(1,)]
    assert idfe.c.psql("SELECT name_sealed, password_hash FROM users WHERE id = %s", first["id"]) == [before]
    assert login(anon, mail, STRONG2).status_code == 401
    assert login(anon, mail, STRONG).status_code == 200
    rows = idfe.c.psql("SELECT actor FROM audit WHERE action = 'user.signup_existing' AND target_id = %s",
                       first["id"])
    assert rows == [(None,)]


@pytest.mark.parametrize("body,field", [
    ({"name": "X", "password": STRONG}, "email"),
    ({"email": 42, "name": "X", "password": STRONG}, "email"),
    ({"email": "no-at-sign", "name": "X", "password": STRONG}, "email"),
    ({"email": "a b@example.org", "name": "X", "password": STRONG}, "email"),
    ({"email": "x" * 300 + "@example.org", "name": "X", "password": STRONG}, "email"),
    ({"email": "ok@example.org", "password": STRONG}, "name"),
    ({"email": "ok@example.org", "name": "", "password": STRONG}, "name"),
    ({"email": "ok@example.org", "name": ["X"], "password": STRONG}, "name"),
    ({"email": "ok@example.org", "name": "N" * 201, "password": STRONG}, "name"),
    ({"email": "ok@example.org", "name": "X"}, "password"),
    ({"email": "ok@example.org", "name": "X", "password": "short"}, "password"),
    ({"email": "ok@example.org", "name": "X", "password": 12345678}, "password"),
    ({"email": "ok@example.org", "name": "X", "password": "p" * 1025}, "password"),
    # ASVS 2.1.1-2.1.2: 12 to 128 characters, counted as code points, a run of spaces once
    ({"email": "ok@example.org", "name": "X", "password": "Zq9!vB2#kL4"}, "password"),
    ({"email": "ok@example.org", "name": "X", "password": "Zq9! vB2#  " + " " * 20}, "password"),
    ({"email": "ok@example.org", "name": "X", "password": "\u00e9" * 129}, "password"),
    ({"email": "ok@example.org", "name": "X", "password": "Zq9!vB2#kL4m" * 10 + "Zq9!vB2#k"}, "password"),
])
def test_signup_bad_input_is_422(anon, body, field):
    r = anon.post("/v1/users", json=body)
    assert r.status_code == 422, r.text
    err = error_body(r)
    assert err["code"] == "validation_failed" and field in err["fields"]


@pytest.mark.parametrize("path,method", [
    ("/v1/users", "POST"), ("/v1/auth/login", "POST"), ("/v1/me/password", "PUT"),
    ("/v1/me/totp/confirm", "POST"), ("/v1/me/totp", "DELETE"),
])
def test_malformed_json_is_400(anon, idfe, path, method):
    # authenticated where the route needs it, so the body is what is judged
    mail = email()
    signup(anon, mail)
    tok = token_of(anon, mail)
    for body in (b"{", b"[1,2]", b"\"text\"", b"{\"email\":}"):
        r = anon.request(method, path, data=body, headers={"Content-Type": "application/json",
                                                            "Authorization": f"Bearer {tok}"})
        assert r.status_code == 400, (path, body, r.text)
        assert error_body(r)["code"] == "malformed_json"


def test_signup_closed(migrated):
    fe = start_fe(migrated, "frontend-closed", FV_SIGNUP_OPEN="no")
    api = fe.api()
    try:
        mail = email()
        r = api.post("/v1/users", json={"email": mail, "name": "Closed", "password": STRONG})
        assert r.status_code == 403, r.text
        assert error_body(r)["code"] == "signup_closed"
        assert migrated.user_rows(mail, "count(*)") == [(0,)]
    finally:
        api.close()
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_weak_iterations_are_refused_at_start(migrated):
    from fvharness import binary, child_env
    import subprocess
    r = subprocess.run([binary("fv-frontend"), "-c", str(migrated.conf), "--check-config"],
                       env=child_env(FV_PASSWORD_ITERATIONS="100000"), capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "password_iterations" in r.stderr


# ------------------------------------------------------------------ login, tokens, /v1/me

def test_login_and_token_on_protected_endpoints(anon, idfe):
    mail = email()
    u = signup(anon, mail, name="Lou Login")
    r = login(anon, mail.upper())  # email is case-insensitive
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token"].startswith("fvs_") and body["expires_at"].endswith("Z")
    assert body["user"]["id"] == u["id"] and body["user"]["email"] == mail
    tok = body["token"]
    api = idfe.api(tok)
    me = api.get("/v1/me")
    assert me.status_code == 200, me.text
    m = me.json()
    assert (m["id"], m["email"], m["name"], m["totp_enabled"]) == (u["id"], mail, "Lou Login", False)
    assert m["created_at"]
    # a protected endpoint of another area accepts the session too
    r = api.post("/v1/orgs", json={"name": f"Org of {mail}"})
    assert r.status_code == 201, r.text
    # the session row and the audit entry
    rows = idfe.c.psql("SELECT user_id::text, mfa, revoked_at IS NULL, expires_at > now() + interval '11 hours' "
                       "FROM sessions WHERE user_id = %s", u["id"])
    assert rows == [(u["id"], False, True, True)]
    a = audit(idfe.c, "auth.login", u["id"])
    assert len(a) == 1 and a[0][2] == "127.0.0.1"
    api.close()


def test_bad_password_and_unknown_email_answer_alike(anon, idfe):
    mail = email()
    u = signup(anon, mail)
    r1 = login(anon, mail, "wrong-password-here")
    r2 = login(anon, email(), "wrong-password-here")
    assert r1.status_code == r2.status_code == 401
    e1, e2 = error_body(r1), error_body(r2)
    assert e1 == e2 and e1["code"] == "invalid_credentials"
    assert r1.headers.get("Retry-After") is None
    # audit: failure with actor for the account, NULL actor for the unknown email; never the password
    # (the failure's audit row is written after the answer: poll for it)
    a = wait_until(lambda: audit(idfe.c, "auth.login_failed", u["id"]), 30, what="the failed login's audit row")
    assert len(a) == 1 and "bad_password" in a[0][3] and "wrong-password" not in a[0][3]
    wait_until(lambda: idfe.c.psql("SELECT count(*) FROM audit WHERE action = 'auth.login_failed' "
                                   "AND actor IS NULL AND detail->>'reason' = 'unknown_email'")[0][0] >= 1,
               30, what="the unknown email's audit row")
    assert idfe.c.psql("SELECT count(*) FROM audit WHERE detail::text LIKE '%%wrong-password%%'") == [(0,)]


def test_account_without_password_cannot_log_in(anon, idfe):
    mail = email()
    idfe.c.create_user(mail, "Key Only")  # fvctl: API key, no password
    r = login(anon, mail, STRONG)
    assert r.status_code == 401 and error_body(r)["code"] == "invalid_credentials"


@pytest.mark.parametrize("body,field", [
    ({"password": STRONG}, "email"),
    ({"email": ["x"], "password": STRONG}, "email"),
    ({"email": "e" * 300, "password": STRONG}, "email"),
    ({"email": "a@b.org"}, "password"),
    ({"email": "a@b.org", "password": ""}, "password"),
    ({"email": "a@b.org", "password": {"x": 1}}, "password"),
    ({"email": "a@b.org", "password": "p" * 1025}, "password"),
    ({"email": "a@b.org", "password": STRONG, "totp": 123456}, "totp"),
    ({"email": "a@b.org", "password": STRONG, "totp": "1" * 40}, "totp"),
])
def test_login_bad_input_is_422(anon, body, field):
    r = anon.post("/v1/auth/login", json=body)
    assert r.status_code == 422, r.text
    assert field in error_body(r)["fields"]


@pytest.mark.parametrize("token", [
    "fvs_", "fvs_abc", "fvs_abc.def", "fvs_" + "A" * 300 + "." + "B" * 43, "fvs_a.b.c",
])
def test_garbage_session_tokens_are_401(anon, token):
    r = anon.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert error_body(r)["code"] == "invalid_token"


def test_tampered_token_is_401(anon, idfe):
    mail = email()
    signup(anon, mail)
    tok = token_of(anon, mail)
    payload, sig = tok[4:].split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    forged = raw.rsplit("|", 1)[0] + "|1"  # claim a TOTP-proven session
    fp = base64.urlsafe_b64encode(forged.encode()).decode().rstrip("=")
    for bad in (f"fvs_{fp}.{sig}", tok[:-2] + ("AA" if tok[-2:] != "AA" else "BB")):
        r = anon.get("/v1/me", headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401, r.text
        assert error_body(r)["code"] == "invalid_token"


def test_expired_token_is_token_expired(migrated, anon):
    """A token signed with the real key but already past its expiry (minted by a front end whose
    session_ttl_s is the minimum, 60 s, is too slow to wait for: sign one in the test instead)."""
    import hashlib as h
    key = bytes.fromhex(migrated.master_key.read_text().split()[0])
    kid = h.sha256(key).hexdigest()[:8]
    # HKDF-SHA256 (no salt) of the key with info "fv-session-token", as fv_keys_derive does
    prk = hmac.new(b"\0" * 32, key, h.sha256).digest()
    sub = hmac.new(prk, b"fv-session-token\x01", h.sha256).digest()
    mail = email()
    u = signup(anon, mail)
    t0 = int(time.time()) - 7200
    payload = f"v1|{kid}|{new_id()}|{u['id']}|{t0}|{t0 + 3600}|0"
    head = "fvs_" + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(hmac.new(sub, head.encode(), h.sha256).digest()).decode().rstrip("=")
    r = anon.get("/v1/me", headers={"Authorization": f"Bearer {head}.{sig}"})
    assert r.status_code == 401, r.text
    assert error_body(r)["code"] == "token_expired"
    # the same construction, not expired, is accepted: the test's signing matches the server's
    payload = f"v1|{kid}|{new_id()}|{u['id']}|{int(time.time())}|{int(time.time()) + 3600}|0"
    head = "fvs_" + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(hmac.new(sub, head.encode(), h.sha256).digest()).decode().rstrip("=")
    r = anon.get("/v1/me", headers={"Authorization": f"Bearer {head}.{sig}"})
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ logout and revocation

def test_logout_revokes_on_a_second_front_end(anon, idfe, migrated):
    other = start_fe(migrated, "frontend-identity-2", FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
    try:
        mail = email()
        u = signup(anon, mail)
        tok = token_of(anon, mail)
        keep = token_of(anon, mail)  # another session of the same user: unaffected
        there, here = other.api(tok), idfe.api(tok)
        assert there.get("/v1/me").status_code == 200
        r = here.post("/v1/auth/logout")
        assert r.status_code == 204, r.text
        # at once on the front end (child) that wrote it is not guaranteed for the other child:
        # every child, here and there, refuses it within a few seconds
        wait_until(lambda: there.get("/v1/me").status_code == 401, 10, what="logout seen by the 2nd front end")
        wait_until(lambda: all(here.get("/v1/me", headers=CLOSE).status_code == 401 for _ in range(6)), 10,
                   what="logout seen by both children")
        assert error_body(there.get("/v1/me"))["code"] == "invalid_token"
        k = other.api(keep)
        assert k.get("/v1/me").status_code == 200
        k.close()
        rows = migrated.psql("SELECT revoked_at IS NOT NULL FROM sessions WHERE user_id = %s ORDER BY created_at", u["id"])
        assert sorted(rows) == [(False,), (True,)]
        assert migrated.psql("SELECT count(*) FROM revocations WHERE kind = 'session' AND subject IN "
                             "(SELECT id::text FROM sessions WHERE user_id = %s)", u["id"]) == [(1,)]
        assert audit(migrated, "auth.logout", u["id"])
    finally:
        assert other.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_logout_needs_a_session(anon, idfe):
    key = idfe.c.create_user(email(), "Key User")
    api = idfe.api(key)
    r = api.post("/v1/auth/logout")
    assert r.status_code == 403 and error_body(r)["code"] == "not_a_session"
    assert anon.post("/v1/auth/logout").status_code == 401
    api.close()


# ------------------------------------------------------------------ password change

def test_password_change_voids_other_sessions(anon, idfe):
    mail = email()
    u = signup(anon, mail)
    old1, old2 = token_of(anon, mail), token_of(anon, mail)
    a1 = idfe.api(old1)
    r = a1.put("/v1/me/password", json={"current_password": STRONG, "new_password": STRONG2})
    assert r.status_code == 200, r.text
    body = r.json()
    new = body["token"]
    assert new.startswith("fvs_") and body["password_strength"]["score"] >= 3
    a2, an = idfe.api(old2), idfe.api(new)
    wait_until(lambda: all(a2.get("/v1/me", headers=CLOSE).status_code == 401 for _ in range(6)), 10,
               what="old session void")
    wait_until(lambda: all(a1.get("/v1/me", headers=CLOSE).status_code == 401 for _ in range(6)), 10,
               what="caller's old token void")
    for _ in range(6):  # every child accepts the new one (new connections spread over them)
        assert an.get("/v1/me", headers=CLOSE).status_code == 200
    assert login(anon, mail, STRONG).status_code == 401
    assert login(anon, mail, STRONG2).status_code == 200
    assert audit(idfe.c, "user.password_change", u["id"])
    for a in (a1, a2, an):
        a.close()


def test_password_change_revokes_every_api_key(anon, idfe):
    """A key minted with a stolen session must not survive the owner's password change: every API
    key of the account is revoked with it (each with a revocations row and an audit entry), and
    the reply says how many."""
    mail = email()
    u = signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    keys = []
    for name in ("thief's", "tablet"):
        r = api.post("/v1/me/api-keys", json={"name": name, "current_password": STRONG})
        assert r.status_code == 201, r.text
        keys.append(r.json())
    keyed = [idfe.api(k["key"]) for k in keys]
    for k in keyed:
        for _ in range(4):  # cached by every child
            assert k.get("/v1/me", headers=CLOSE).status_code == 200
    r = api.put("/v1/me/password", json={"current_password": STRONG, "new_password": STRONG2})
    assert r.status_code == 200, r.text
    assert r.json()["api_keys_revoked"] == 2
    for k in keyed:
        wait_until(lambda: all(k.get("/v1/me", headers=CLOSE).status_code == 401 for _ in range(6)), 10,
                   what="the key refused by every child")
    assert idfe.c.psql("SELECT count(*) FROM api_keys WHERE user_id = %s AND revoked_at IS NULL", u["id"]) == [(0,)]
    revoked = audit(idfe.c, "apikey.revoke", u["id"])
    assert {row[1] for row in revoked} == {k["id"] for k in keys}
    assert all("password_change" in row[3] for row in revoked)
    for a in [api] + keyed:
        a.close()


def test_session_mints_a_key_only_with_the_password_and_code(anon, idfe):
    """A stolen session cannot mint an API key (which outlives it): the current password again,
    and the current TOTP code when TOTP is on (used once)."""
    mail = email()
    u = signup(anon, mail)
    api = idfe.api(token_of(anon, mail))

    def mint(**extra):
        return api.post("/v1/me/api-keys", json={"name": "laptop", **extra})
    r = mint()
    assert r.status_code == 422 and "current_password" in error_body(r)["fields"], r.text
    r = mint(current_password="not-the-password")
    assert r.status_code == 403 and error_body(r)["code"] == "wrong_password", r.text
    r = mint(current_password=STRONG, totp="12x456")
    assert r.status_code == 422 and "totp" in error_body(r)["fields"], r.text
    assert idfe.c.psql("SELECT count(*) FROM api_keys WHERE user_id = %s", u["id"]) == [(0,)]
    assert mint(current_password=STRONG).status_code == 201
    # TOTP on: the code too
    secret = enrol(api)["secret"]
    s = now_step()
    assert api.post("/v1/me/totp/confirm", json={"code": totp(secret, s)}).status_code == 200
    r = mint(current_password=STRONG)
    assert r.status_code == 422 and "totp" in error_body(r)["fields"], r.text
    r = mint(current_password=STRONG, totp=totp(secret, s))  # used to confirm: refused
    assert r.status_code == 422 and error_body(r)["code"] == "invalid_code", r.text
    r = mint(current_password="not-the-password", totp=totp(secret, s + 1))
    assert r.status_code == 403, r.text
    code = totp(secret, s + 1)
    assert mint(current_password=STRONG, totp=code).status_code == 201
    r = mint(current_password=STRONG, totp=code)  # once only
    assert r.status_code == 422 and error_body(r)["code"] == "invalid_code", r.text
    assert idfe.c.psql("SELECT count(*) FROM api_keys WHERE user_id = %s", u["id"]) == [(2,)]
    api.close()


def test_totp_enrol_needs_the_password(anon, idfe):
    """A stolen session cannot put the thief's authenticator on the account."""
    mail = email()
    u = signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    r = api.post("/v1/me/totp", json={})
    assert r.status_code == 422 and "current_password" in error_body(r)["fields"], r.text
    r = api.post("/v1/me/totp", json={"current_password": "not-the-password"})
    assert r.status_code == 403 and error_body(r)["code"] == "wrong_password", r.text
    assert idfe.c.psql("SELECT totp_secret IS NULL FROM users WHERE id = %s", u["id"]) == [(True,)]
    assert enrol(api)["secret"]
    api.close()


def test_password_change_refusals(anon, idfe):
    mail = email()
    signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    r = api.put("/v1/me/password", json={"current_password": "not-the-password", "new_password": STRONG2})
    assert r.status_code == 403 and error_body(r)["code"] == "wrong_password"
    r = api.put("/v1/me/password", json={"current_password": STRONG, "new_password": "password1234"})
    assert r.status_code == 422
    err = error_body(r)
    assert err["code"] == "weak_password" and "new_password" in err["fields"]
    assert err["password_strength"]["score"] < 3
    for body in ({}, {"current_password": STRONG}, {"current_password": 5, "new_password": STRONG2},
                 {"current_password": STRONG, "new_password": "x" * 2000}):
        r = api.put("/v1/me/password", json=body)
        assert r.status_code == 422, r.text
        assert error_body(r)["code"] == "validation_failed"
    # nothing changed
    assert login(anon, mail, STRONG).status_code == 200
    api.close()


def test_guessing_with_a_stolen_token_is_throttled(anon, idfe):
    """The current password (password change) and TOTP codes (disable) cannot be guessed at
    leisure with a session token: 5 failures, then 429 before any check."""
    mail = email()
    signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    for _ in range(5):
        r = api.put("/v1/me/password", json={"current_password": "guess-guess-guess", "new_password": STRONG2})
        assert r.status_code == 403, r.text
    r = api.put("/v1/me/password", json={"current_password": STRONG, "new_password": STRONG2})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert error_body(r)["code"] == "too_many_attempts"
    r = api.request("DELETE", "/v1/me/totp", json={"code": "000000", "current_password": STRONG})
    assert r.status_code == 429
    assert login(anon, mail, STRONG2).status_code == 401  # the change did not happen
    api.close()


def test_old_django_hash_logs_in_and_is_rehashed(anon, idfe):
    """A KoboToolbox/Django account imported with 390000 iterations: logs in unchanged and gets
    the configured iteration count at that login."""
    mail = email()
    uid = new_id()
    salt = "seasalt"
    digest = base64.b64encode(hashlib.pbkdf2_hmac("sha256", "lètmein".encode(), salt.encode(), 390000)).decode()
    assert digest == "8xBlGd3jVgvJ+92hWPxi5ww0uuAuAnKgC45eudxro7c="  # Django's own test vector
    idfe.c.psql("INSERT INTO users (id, email, name, password_hash) VALUES (%s, %s, 'Kobo', %s)",
                uid, mail, f"pbkdf2_sha256$390000${salt}${digest}")
    r = login(anon, mail, "lètmein")
    assert r.status_code == 200, r.text
    (h,) = idfe.c.psql("SELECT password_hash FROM users WHERE id = %s", uid)[0]
    assert h.startswith("pbkdf2_sha256$600000$") and "seasalt" not in h
    assert login(anon, mail, "lètmein").status_code == 200


# ------------------------------------------------------------------ throttling

def test_account_throttling_same_answer_for_missing_email(migrated):
    fe = start_fe(migrated, "frontend-throttle", FV_LOGIN_MAX_FAILURES_ACCOUNT=3,
                  FV_LOGIN_MAX_FAILURES_ADDRESS=100000, FV_LOGIN_WINDOW_S=600)
    api = fe.api()
    try:
        known = email()
        signup(api, known)
        missing = email()
        for mail in (known, missing):
            for _ in range(3):
                r = login(api, mail, "wrong-password-here")
                assert r.status_code == 401, r.text
        answers = [login(api, mail, "wrong-password-here") for mail in (known, missing)]
        for r in answers:
            assert r.status_code == 429, r.text
            assert 1 <= int(r.headers["Retry-After"]) <= 600
            assert error_body(r)["code"] == "too_many_attempts"
        assert error_body(answers[0]) == error_body(answers[1])
        # even the right password is refused from this address while it is throttled for the
        # account (no password work is done); from another address it works (test_throttle_abuse)
        r = login(api, known, STRONG)
        assert r.status_code == 429
        # another account from the same address is not affected
        other = email()
        signup(api, other)
        assert login(api, other).status_code == 200
        assert migrated.psql("SELECT count(*) FROM audit WHERE action = 'auth.throttled'")[0][0] >= 3
        # the counters live in Redis under the email's hash, never the email itself
        keys = migrated.redis_cli("KEYS", "fv:throttle:*")
        want = hashlib.sha256(known.lower().encode()).hexdigest()
        assert f"fv:throttle:fail:acct:{want}" in keys
        assert f"fv:throttle:fail:pair:{want}:127.0.0.1" in keys
        assert not any(known in k for k in keys)
    finally:
        api.close()
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_parallel_burst_cannot_outrun_the_count(migrated):
    """Attempts are counted when they start: ten wrong passwords sent at once for one account
    (limit 3) get three 401s and seven 429s, never ten password checks."""
    fe = start_fe(migrated, "frontend-throttle-burst", FV_LOGIN_MAX_FAILURES_ACCOUNT=3,
                  FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
    try:
        mail = email()
        with_api = fe.api()
        signup(with_api, mail)
        with_api.close()
        results = []
        lock = threading.Lock()

        def attempt():
            a = fe.api()
            try:
                r = login(a, mail, "wrong-password-here")
                with lock:
                    results.append(r.status_code)
            finally:
                a.close()
        threads = [threading.Thread(target=attempt) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert sorted(results) == [401] * 3 + [429] * 7, results
    finally:
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_successful_logins_do_not_use_up_the_address(migrated):
    migrated.redis_cli("DEL", "fv:throttle:fail:addr:127.0.0.1")
    fe = start_fe(migrated, "frontend-throttle-ok", FV_LOGIN_MAX_FAILURES_ADDRESS=3)
    api = fe.api()
    try:
        mail = email()
        signup(api, mail)
        for _ in range(6):
            assert login(api, mail).status_code == 200
    finally:
        api.close()
        migrated.redis_cli("DEL", "fv:throttle:fail:addr:127.0.0.1")
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_address_limit_zero_is_off(migrated):
    """Behind a TCP proxy every client has the proxy's address: login_max_failures_address = 0
    turns that limit off, while the per-account limit still holds."""
    migrated.redis_cli("DEL", "fv:throttle:fail:addr:127.0.0.1")
    fe = start_fe(migrated, "frontend-throttle-addr-off", FV_LOGIN_MAX_FAILURES_ADDRESS=0,
                  FV_LOGIN_MAX_FAILURES_ACCOUNT=2)
    api = fe.api()
    try:
        for _ in range(6):  # six accounts from one address: more than any address limit here
            assert login(api, email(), "wrong-password-here").status_code == 401
        mail = email()
        assert [login(api, mail, "wrong-password-here").status_code for _ in range(3)] == [401, 401, 429]
    finally:
        api.close()
        migrated.redis_cli("DEL", "fv:throttle:fail:addr:127.0.0.1")
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_address_throttling(migrated):
    migrated.redis_cli("DEL", "fv:throttle:fail:addr:127.0.0.1")
    fe = start_fe(migrated, "frontend-throttle-addr", FV_LOGIN_MAX_FAILURES_ADDRESS=4,
                  FV_LOGIN_WINDOW_S=600)
    api = fe.api()
    try:
        for _ in range(4):
            assert login(api, email(), "wrong-password-here").status_code == 401
        r = login(api, email(), "wrong-password-here")
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    finally:
        api.close()
        migrated.redis_cli("DEL", "fv:throttle:fail:addr:127.0.0.1")
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


# ------------------------------------------------------------------ TOTP

def enrol(api, password=STRONG):
    r = api.post("/v1/me/totp", json={"current_password": password})
    assert r.status_code == 200, r.text
    return r.json()


def test_totp_enrol_confirm_login_and_replay(anon, idfe):
    mail = email()
    u = signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    e = enrol(api)
    secret = e["secret"]
    assert len(secret) == 32 and e["otpauth_uri"].startswith("otpauth://totp/Fieldvault:")
    assert f"secret={secret}" in e["otpauth_uri"] and "issuer=Fieldvault" in e["otpauth_uri"]
    # sealed at rest: the secret is not in the row
    (stored,) = idfe.c.psql("SELECT totp_secret FROM users WHERE id = %s", u["id"])[0]
    assert stored.startswith("s1.") and secret not in stored
    # not confirmed yet: login needs no code
    assert login(anon, mail).status_code == 200
    # a wrong code does not confirm
    s = now_step()
    wrong = "%06d" % ((int(totp(secret, s)) + 1) % 1000000)
    r = api.post("/v1/me/totp/confirm", json={"code": wrong})
    assert r.status_code == 422 and error_body(r)["code"] == "invalid_code"
    r = api.post("/v1/me/totp/confirm", json={"code": totp(secret, s)})
    assert r.status_code == 200, r.text
    assert r.json()["totp_enabled"] is True
    assert api.get("/v1/me").json()["totp_enabled"] is True
    # enrolling again is refused once confirmed
    assert api.post("/v1/me/totp", json={"current_password": STRONG}).status_code == 409
    # login now asks for the code
    r = login(anon, mail)
    assert r.status_code == 401 and error_body(r)["code"] == "totp_required"
    # the confirming code (step s) is used: refused
    r = login(anon, mail, totp=totp(secret, s))
    assert r.status_code == 401 and error_body(r)["code"] == "invalid_credentials"
    # the next step's code works once (one step of drift), and the session is mfa
    code = totp(secret, s + 1)
    r = login(anon, mail, totp=code)
    assert r.status_code == 200, r.text
    assert r.json()["mfa"] is True
    assert idfe.c.psql("SELECT mfa FROM sessions WHERE user_id = %s ORDER BY created_at DESC LIMIT 1", u["id"]) == [(True,)]
    r = login(anon, mail, totp=code)
    assert r.status_code == 401, r.text  # replay, even a moment later
    # right code, wrong password: still a failure
    r = login(anon, mail, "wrong-password-here", totp=totp(secret, s + 2))
    assert r.status_code == 401
    assert audit(idfe.c, "totp.enable", u["id"])
    reasons = [row[3] for row in audit(idfe.c, "auth.login_failed", u["id"])]
    assert any("totp_missing" in x for x in reasons) and any("totp_replay" in x for x in reasons)
    assert not any(code in x for x in reasons)
    api.close()


def test_totp_disable_needs_a_current_code(anon, idfe):
    mail = email()
    u = signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    assert api.request("DELETE", "/v1/me/totp", json={"code": "123456", "current_password": STRONG}).status_code == 409
    secret = enrol(api)["secret"]
    s = now_step()
    assert api.post("/v1/me/totp/confirm", json={"code": totp(secret, s)}).status_code == 200
    # the code used to confirm cannot disable
    r = api.request("DELETE", "/v1/me/totp", json={"code": totp(secret, s), "current_password": STRONG})
    assert r.status_code == 422, r.text
    # a current code without the password (a stolen session with a stolen phone... or just the
    # session): refused before the code is even looked at
    r = api.request("DELETE", "/v1/me/totp", json={"code": totp(secret, s + 1)})
    assert r.status_code == 422 and "current_password" in error_body(r)["fields"], r.text
    r = api.request("DELETE", "/v1/me/totp", json={"code": totp(secret, s + 1), "current_password": "wrong-wrong"})
    assert r.status_code == 403 and error_body(r)["code"] == "wrong_password", r.text
    r = api.request("DELETE", "/v1/me/totp", json={"code": totp(secret, s + 1), "current_password": STRONG})
    assert r.status_code == 204, r.text
    assert api.get("/v1/me").json()["totp_enabled"] is False
    assert login(anon, mail).status_code == 200  # no code needed any more
    assert audit(idfe.c, "totp.disable", u["id"])
    api.close()


def test_totp_bad_input(anon, idfe):
    mail = email()
    signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    r = api.post("/v1/me/totp/confirm", json={"code": "123456"})
    assert r.status_code == 409 and error_body(r)["code"] == "totp_not_enrolled"
    enrol(api)
    for body in ({}, {"code": 123456}, {"code": "12345"}, {"code": "1234567"}, {"code": "12a456"},
                 {"code": "1" * 5000}, {"code": None}):
        r = api.post("/v1/me/totp/confirm", json=body)
        assert r.status_code == 422, (body, r.text)
        assert "code" in error_body(r)["fields"]
    assert anon.post("/v1/me/totp", json={}).status_code == 401
    api.close()


# ------------------------------------------------------------------ the event loop never stalls

def test_logins_never_stall_other_requests(world, migrated):
    """password_threads=1, one child, a user whose stored hash has 4,000,000 iterations: three
    logins are sent (and received) first; then a health check, GET /v1/me with an API key and a
    submission all complete while every one of the logins is still unanswered."""
    fe = start_fe(migrated, "frontend-stall", FV_PROCESSES=1, FV_PASSWORD_THREADS=1,
                  FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
    try:
        mail = email()
        pw = "slow-hash-" + new_id()
        salt = "stallsalt"
        digest = base64.b64encode(hashlib.pbkdf2_hmac("sha256", pw.encode(), salt.encode(), 4000000)).decode()
        migrated.psql("INSERT INTO users (id, email, name, password_hash) VALUES (%s, %s, 'Slow', %s)",
                      new_id(), mail, f"pbkdf2_sha256$4000000${salt}${digest}")
        ctx = ssl.create_default_context(cafile=str(migrated.cert))
        body = json.dumps({"email": mail, "password": pw})
        conns = []
        for _ in range(3):
            c = http.client.HTTPSConnection("127.0.0.1", fe.port, context=ctx, timeout=120)
            c.request("POST", "/v1/auth/login", body=body, headers={"Content-Type": "application/json"})
            conns.append(c)  # request() returns once the request is sent
        done = []
        lock = threading.Lock()

        def answer(c):
            r = c.getresponse()
            data = r.read()
            with lock:
                done.append((r.status, data))
        threads = [threading.Thread(target=answer, args=(c,)) for c in conns]
        for t in threads:
            t.start()

        others = []
        anon = fe.api()
        enum = fe.api(world.enum_key)
        others.append(anon.get("/healthz").status_code)
        others.append(enum.get("/v1/me").status_code)
        others.append(enum.post(f"/v1/deployments/{world.deployment_id}/responses",
                                json={"id": new_id(), "data": {"household": "Stall", "members": 2}}).status_code)
        with lock:
            answered_before = len(done)
        assert others == [200, 200, 202]
        assert answered_before == 0, "a login was answered before the other requests: the loop waited for it"
        for t in threads:
            t.join(120)
        assert [s for s, _ in done] == [200, 200, 200], done
        anon.close()
        enum.close()
        for c in conns:
            c.close()
    finally:
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0



# ------------------------------------------------------------------ PostgreSQL down

def test_session_token_verifies_while_postgres_is_down(anon, idfe):
    """DESIGN section 2: session tokens are verified without PostgreSQL. With it stopped, a good
    token gets past authentication (GET /v1/me then answers 503, it needs the database), a bad
    one is still 401; logins answer 503 (+ Retry-After), never 401 or 500."""
    from faults import pg_start, pg_stop_immediate, readyz
    c = idfe.c
    mail = email()
    signup(anon, mail)
    api = idfe.api(token_of(anon, mail))
    pg_stop_immediate(c)
    try:
        wait_until(lambda: readyz(c, idfe.port).json().get("db") == "down", 60, what="db: down")
        for _ in range(4):
            r = api.get("/v1/me", headers=CLOSE)
            assert r.status_code == 503, r.text
            assert r.headers.get("Retry-After")
        r = anon.get("/v1/me", headers={"Authorization": "Bearer fvs_garbage.garbage"})
        assert r.status_code == 401
        r = login(anon, mail)
        assert r.status_code == 503, r.text
        assert r.headers.get("Retry-After")
    finally:
        pg_start(c)
        # the harness's own connection died with the server: let it reconnect
        wait_until(lambda: c.psql("SELECT 1") == [(1,)], 60, what="the harness's psql connection back")
    wait_until(lambda: api.get("/v1/me").status_code == 200, 60, what="GET /v1/me after PostgreSQL is back")
    api.close()


# ------------------------------------------------------------------ Redis down

def test_throttling_holds_in_memory_while_redis_is_down(migrated):
    """With Redis killed, each child still counts failures in memory: one child, limit 3."""
    from faults import kill_redis, readyz, restart_redis
    c = migrated
    fe = start_fe(c, "frontend-throttle-mem", FV_PROCESSES=1, FV_LOGIN_MAX_FAILURES_ACCOUNT=3,
                  FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
    api = fe.api()
    try:
        mail = email()
        signup(api, mail)
        kill_redis(c)
        try:
            wait_until(lambda: readyz(c, fe.port).json().get("queue") != "up", 30, what="queue not up")
            for _ in range(3):
                assert login(api, mail, "wrong-password-here").status_code == 401
            r = login(api, mail, STRONG)
            assert r.status_code == 429, r.text
            assert int(r.headers["Retry-After"]) >= 1
        finally:
            restart_redis(c)
    finally:
        api.close()
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_totp_changes_need_a_session(migrated, idfe):
    """An API key (a script's, or a stolen one) may not enrol a second factor that would lock its
    owner out of their own login, nor confirm or remove one."""
    api = idfe.api(migrated.create_user(email(), "Key Only"))
    for method, path, body in (("POST", "/v1/me/totp", {"current_password": "x"}),
                               ("POST", "/v1/me/totp/confirm", {"code": "123456"}),
                               ("DELETE", "/v1/me/totp", {"code": "123456"})):
        r = api.request(method, path, json=body) if body else api.request(method, path)
        assert r.status_code == 403, r.text
        assert error_body(r)["code"] == "session_required"
    api.close()


# ------------------------------------------------------------------ the caller's sessions

def test_sessions_are_listed_and_ended_one_or_all(anon, idfe):
    """ASVS 3.3.4: a user sees their live sessions (address, time, TOTP, which is this one) and
    ends any or all the others, with the password again; an ended session stops working on every
    child; nobody sees or ends another user's sessions."""
    mail = email()
    u = signup(anon, mail)
    t1, t2, t3 = token_of(anon, mail), token_of(anon, mail), token_of(anon, mail)
    a1, a2, a3 = idfe.api(t1), idfe.api(t2), idfe.api(t3)
    r = a1.get("/v1/me/sessions")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert len(items) == 3 and [i["current"] for i in items].count(True) == 1
    assert all(i["address"] == "127.0.0.1" and i["mfa"] is False for i in items)
    mine = next(i["id"] for i in items if i["current"])

    def current_of(a):
        return next(i["id"] for i in a.get("/v1/me/sessions").json()["items"] if i["current"])
    other = current_of(a2)
    # ending needs the password again: a stolen token alone cannot sign its owner out
    r = a1.delete(f"/v1/me/sessions/{other}", json={})
    assert r.status_code == 422 and "current_password" in error_body(r)["fields"]
    r = a1.delete(f"/v1/me/sessions/{other}", json={"current_password": "not-" + STRONG})
    assert r.status_code == 403 and error_body(r)["code"] == "wrong_password"
    # another user can neither see nor end them
    stranger = signup(anon, email())
    sa = idfe.api(token_of(anon, stranger["email"]))
    assert all(i["id"] not in (mine, other) for i in sa.get("/v1/me/sessions").json()["items"])
    r = sa.delete(f"/v1/me/sessions/{other}", json={"current_password": STRONG})
    assert r.status_code == 404, r.text
    r = a1.delete(f"/v1/me/sessions/{new_id()}", json={"current_password": STRONG})
    assert r.status_code == 404, r.text
    r = a1.delete(f"/v1/me/sessions/{other}", json={"current_password": STRONG})
    assert r.status_code == 204, r.text
    ended, still = a2, a3
    wait_until(lambda: all(ended.get("/v1/me", headers=CLOSE).status_code == 401 for _ in range(6)), 10,
               what="the ended session refused on every child")
    assert still.get("/v1/me").status_code == 200
    assert audit(idfe.c, "auth.session_end", u["id"])
    # all the others at once: the caller's own stays
    r = a1.delete("/v1/me/sessions", json={"current_password": STRONG})
    assert r.status_code == 200 and r.json() == {"ended": 1}, r.text
    wait_until(lambda: all(still.get("/v1/me", headers=CLOSE).status_code == 401 for _ in range(6)), 10,
               what="the other session refused on every child")
    items = a1.get("/v1/me/sessions").json()["items"]
    assert [i["id"] for i in items] == [mine]
    for a in (a1, a2, a3, sa):
        a.close()


def test_sessions_cannot_be_ended_with_an_api_key(anon, idfe):
    mail = email()
    signup(anon, mail)
    a = idfe.api(token_of(anon, mail))
    r = a.post("/v1/me/api-keys", json={"name": "k", "current_password": STRONG})
    assert r.status_code == 201, r.text
    k = idfe.api(r.json()["key"])
    assert k.get("/v1/me/sessions").status_code == 200
    r = k.delete("/v1/me/sessions", json={"current_password": STRONG})
    assert r.status_code == 403 and error_body(r)["code"] == "session_required"
    a.close()
    k.close()
