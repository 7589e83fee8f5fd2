"""Authentication the OpenRosa clients can do (issue 13): HTTP Basic over TLS (email and password)
through a keyed cache in front of PBKDF2, throttled like logins; per-deployment app-user tokens in
the path (/v1/key/{token}/openrosa/...), shown once, revocable, with Collect's settings QR payload.
Every refusal of authentication is an OpenRosa envelope with X-OpenRosa-Version: 1.0, and 401
carries a Basic challenge, never Digest. Two front ends of ours besides the session's prove that a
change made through one is applied by the other at once (revocations, fe_revoke.c)."""
import base64
import concurrent.futures
import hashlib
import json
import signal
import threading
import xml.etree.ElementTree as ET
import zlib

import pytest

from accesshelp import User, add_plain_member, denied, ok
from fvharness import Api, free_port, metric_sum, new_id, parse_metrics, wait_until

PASSWORD = "quartz-heron-lantern-58-meadow"
NEW_PASSWORD = "copper-finch-harbor-23-tundra"
XFORMS_NS = "{http://openrosa.org/xforms/xformsList}"
ENVELOPE_NS = "{http://openrosa.org/http/response}"
REVOCATION_WAIT = 5  # revocation_poll_ms is 1 s: "at once" is within a poll or two


class FE:
    def __init__(self, cluster, proc, port):
        self.c, self.proc, self.port = cluster, proc, port
        self.base = f"https://127.0.0.1:{port}"

    def api(self, key=None):
        return Api(self.base, self.c.cert, key)

    def basic_checks(self):
        """(pbkdf2, cache) counts of fv_openrosa_basic_auth_total of this front end."""
        a = self.api()
        try:
            r = a.get("/metrics", headers=self.c.metrics_headers)
            assert r.status_code == 200, r.text
            m = parse_metrics(r.text).get("fv_openrosa_basic_auth_total", [])
        finally:
            a.close()
        by = {labels["check"]: v for labels, v in m}
        return by.get("pbkdf2", 0), by.get("cache", 0)


def start_fe(cluster, name, **env):
    port = free_port()
    p = cluster.start_frontend(name=name, FV_LISTEN_PORT=port, **env)
    return FE(cluster, p, port)


def forget_throttling(c):
    for key in c.redis_cli("KEYS", "fv:throttle:*") or []:
        c.redis_cli("DEL", key)


@pytest.fixture(scope="module")
def oa(frontend):
    """Two front ends of ours (A, B: one child each, so a keep-alive client meets one cache), and
    a throttling one (T: three failures per account and address, five requests per user an hour);
    an org with a deployment of a
    JSON survey (its XForm generated), whose enumerators are password users signed up here."""
    c = frontend
    a = start_fe(c, "frontend-or-a", FV_PROCESSES=1)
    b = start_fe(c, "frontend-or-b", FV_PROCESSES=1)
    t = start_fe(c, "frontend-or-t", FV_PROCESSES=1, FV_LOGIN_MAX_FAILURES_ACCOUNT=3,
                 FV_SESSION_RATE_LIMIT=5, FV_SESSION_RATE_WINDOW_S=3600)
    owner, stranger, enum_key_user = User(c, "or owner"), User(c, "or stranger"), User(c, "or key enum")
    org = ok(owner.api.post("/v1/orgs", json={"name": "OpenRosa auth org"}), 201)
    other_org = ok(stranger.api.post("/v1/orgs", json={"name": "Someone else's org"}), 201)
    survey = ok(owner.api.post("/v1/surveys", json={
        "org_id": org["id"], "name": "Basic survey",
        "definition": {"questions": [{"name": "n", "type": "integer", "label": "N"}]}}), 201)

    class W:
        pass
    w = W()
    w.c, w.a, w.b, w.t, w.owner, w.stranger, w.org, w.survey = c, a, b, t, owner, stranger, org, survey
    w.other_org, w.key_enum = other_org, enum_key_user
    w.users = []
    add_plain_member(c, org["id"], enum_key_user.id)
    w.dep = new_deployment(w, [enum_key_user.id])
    w.dep2 = new_deployment(w, [enum_key_user.id])
    yield w
    for u in (owner, stranger, enum_key_user):
        u.close()
    forget_throttling(c)
    for fe in (a, b, t):
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def new_deployment(w, enumerators):
    return ok(w.owner.api.post(f"/v1/surveys/{w.survey['id']}/deployments", json={
        "name": f"dep {new_id()[:8]}",
        "roles": {"enumerators": [{"type": "user", "id": u} for u in enumerators]}}), 201)


def password_user(w, deployment=None):
    """A user with a password (signed up), a member of the org and an enumerator of a new
    deployment (or of `deployment`, by a PATCH adding them). Returns (email, id, deployment)."""
    mail = f"or-{new_id()[:12]}@example.org"
    anon = w.c.api()
    r = anon.post("/v1/users", json={"email": mail, "name": "Collect User", "password": PASSWORD})
    anon.close()
    assert r.status_code == 202, r.text
    uid = w.c.user_rows(mail)[0][0]
    add_plain_member(w.c, w.org["id"], uid)
    dep = new_deployment(w, [uid, w.key_enum.id])
    return mail, uid, dep


def or_url(dep, what="formList"):
    return f"/v1/openrosa/deployments/{dep['id']}/{what}"


def basic(mail, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{mail}:{password}".encode()).decode()}


def envelope(r, status):
    """Asserts an OpenRosa error envelope with status; returns its message."""
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers.get("X-OpenRosa-Version") == "1.0", r.headers
    assert r.headers["Content-Type"].startswith("text/xml"), r.headers
    root = ET.fromstring(r.content)
    assert root.tag == ENVELOPE_NS + "OpenRosaResponse", r.text
    msg = root.find(ENVELOPE_NS + "message")
    assert msg is not None and msg.get("nature") == "error" and msg.text, r.text
    return msg.text


def challenged(r):
    envelope(r, 401)
    h = r.headers.get("WWW-Authenticate", "")
    assert h.startswith('Basic realm="fieldvault"'), h
    assert "digest" not in h.lower(), h


def form_ids(r):
    assert r.status_code == 200, r.text[:300]
    assert r.headers.get("X-OpenRosa-Version") == "1.0"
    return [x.find(XFORMS_NS + "formID").text for x in ET.fromstring(r.content).findall(XFORMS_NS + "xform")]


def counts_after(fe, expect_pbkdf2, expect_cache, before):
    p, c = fe.basic_checks()
    assert (p - before[0], c - before[1]) == (expect_pbkdf2, expect_cache), (p, c, before)


# ---------------------------------------------------------------- HTTP Basic

def test_missing_or_unusable_credentials_are_401_with_a_basic_challenge(oa):
    api = oa.a.api()
    try:
        challenged(api.get(or_url(oa.dep)))
        for bad in ("Basic", "Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(),
                    "Basic " + base64.b64encode(b"a@b.org:x\x00y").decode(),
                    "Basic " + base64.b64encode(b":nopassword").decode(),
                    "Basic " + "A" * 5000, "Digest username=\"x\"", "Negotiate abc"):
            challenged(api.get(or_url(oa.dep), headers={"Authorization": bad}))
        # every OpenRosa route asks the same way
        for what in ("form", "manifest", "media/x.png"):
            challenged(api.get(or_url(oa.dep, what)))
    finally:
        api.close()


def test_good_basic_credentials_read_the_form_list_and_form(oa):
    mail, _uid, dep = password_user(oa)
    api = oa.a.api()
    try:
        ids = form_ids(api.get(or_url(dep), headers=basic(mail, PASSWORD)))
        assert len(ids) == 1
        r = api.get(or_url(dep, "form"), headers=basic(mail.upper(), PASSWORD))  # email in any case
        assert r.status_code == 200 and r.content.startswith(b"<"), r.text[:200]
        # a deployment the user is no enumerator of: 404 as for any stranger
        denied(api.get(or_url(oa.dep), headers=basic(mail, PASSWORD)), 404)
    finally:
        api.close()


def test_wrong_password_or_unknown_email_is_401(oa):
    mail, _uid, dep = password_user(oa)
    api = oa.a.api()
    try:
        challenged(api.get(or_url(dep), headers=basic(mail, PASSWORD + "x")))
        challenged(api.get(or_url(dep), headers=basic("nobody-" + mail, PASSWORD)))
        # an API key is no password here
        challenged(api.get(or_url(dep), headers=basic(mail, oa.key_enum.key)))
    finally:
        forget_throttling(oa.c)
        api.close()


def test_second_request_is_answered_from_the_cache_without_pbkdf2(oa):
    mail, _uid, dep = password_user(oa)
    api = oa.a.api()  # one keep-alive connection to a one-child front end: one cache
    try:
        before = oa.a.basic_checks()
        form_ids(api.get(or_url(dep), headers=basic(mail, PASSWORD)))
        counts_after(oa.a, 1, 0, before)
        for _ in range(3):
            form_ids(api.get(or_url(dep), headers=basic(mail, PASSWORD)))
        counts_after(oa.a, 1, 3, before)
        # a wrong password is never a cache hit: it is hashed (and refused)
        challenged(api.get(or_url(dep), headers=basic(mail, PASSWORD + "!")))
        counts_after(oa.a, 2, 3, before)
    finally:
        forget_throttling(oa.c)
        api.close()


def test_failed_basic_attempts_are_throttled_like_logins(oa):
    mail, _uid, dep = password_user(oa)
    api = oa.t.api()
    try:
        for _ in range(3):
            challenged(api.get(or_url(dep), headers=basic(mail, "wrong-" + PASSWORD)))
        r = api.get(or_url(dep), headers=basic(mail, PASSWORD))  # even the right one, from here
        envelope(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
        # the login endpoint counts the same failures (one throttle for both)
        r = oa.t.api().post("/v1/auth/login", json={"email": mail, "password": PASSWORD})
        assert r.status_code == 429, r.text
    finally:
        forget_throttling(oa.c)
        api.close()
    # the pair was refused, not the account: from another front end (whose memory holds no
    # counts), once the shared counts are forgotten, the password works
    form_ids(oa.a.api().get(or_url(dep), headers=basic(mail, PASSWORD)))


BURST = 32  # phones sharing one account, each its own TLS connection


def burst(fe, mail, password, dep):
    """BURST first requests at once, each on its own warmed keep-alive connection (opened with
    an unauthenticated request, so the handshakes do not spread the burst out): the responses."""
    apis = [fe.api() for _ in range(BURST)]
    go = threading.Barrier(BURST)

    def one(api):
        challenged(api.get(or_url(dep)))
        go.wait(timeout=30)
        return api.get(or_url(dep), headers=basic(mail, password))
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=BURST) as pool:
            return list(pool.map(one, apis))
    finally:
        for api in apis:
            api.close()


def account_hex(mail):
    return hashlib.sha256(mail.lower().encode()).hexdigest()


def test_concurrent_first_requests_with_the_right_password_all_succeed(oa):
    """A team sharing one account on many phones: the first requests of all of them, before any
    is cached, wait for one password check (coalesced per child) instead of being refused as
    failed attempts; no failure is counted and nothing stays pending."""
    mail, _uid, dep = password_user(oa)
    before = oa.a.basic_checks()
    try:
        rs = burst(oa.a, mail, PASSWORD, dep)
        assert [r.status_code for r in rs] == [200] * BURST, sorted(
            (r.status_code, r.text[:120]) for r in rs if r.status_code != 200)
        for r in rs:
            assert len(form_ids(r)) == 1
        # one child: one PBKDF2 for the burst, every other request answered by its result
        counts_after(oa.a, 1, BURST - 1, before)
        acct = account_hex(mail)
        assert not oa.c.redis_cli("KEYS", f"fv:throttle:fail:*{acct}*")
        pend = oa.c.redis_cli("GET", f"fv:throttle:pend:pair:{acct}:127.0.0.1")
        assert pend in (None, "0", b"0", 0), pend
    finally:
        forget_throttling(oa.c)


def test_concurrent_wrong_passwords_are_still_throttled(oa):
    """The same burst with a wrong password, on the front end that refuses the pair after three
    failures: at most three password checks fail (401), every other attempt is 429, and the pair
    stays refused afterwards, even with the right password."""
    mail, _uid, dep = password_user(oa)
    try:
        rs = burst(oa.t, mail, "wrong-" + PASSWORD, dep)
        codes = sorted(r.status_code for r in rs)
        n401 = codes.count(401)
        assert 1 <= n401 <= 3 and codes.count(429) == BURST - n401, codes
        for r in rs:
            if r.status_code == 429:
                envelope(r, 429)
                assert int(r.headers["Retry-After"]) >= 1
            else:
                challenged(r)
        envelope(oa.t.api().get(or_url(dep), headers=basic(mail, PASSWORD)), 429)
    finally:
        forget_throttling(oa.c)


def test_totp_enrolled_account_cannot_use_basic(oa):
    mail, uid, dep = password_user(oa)
    api = oa.a.api()
    try:
        form_ids(api.get(or_url(dep), headers=basic(mail, PASSWORD)))
        # TOTP turned on (the confirmed enrolment, written as POST /v1/me/totp/confirm would)
        oa.c.psql("UPDATE users SET totp_secret = 'x', totp_confirmed_at = now() WHERE id = %s", uid)
        fresh = oa.b.api()
        challenged(fresh.get(or_url(dep), headers=basic(mail, PASSWORD)))
        fresh.close()
    finally:
        # a secret that opens under no key would stop a later module's `fvctl reseal`
        oa.c.psql("UPDATE users SET totp_secret = NULL, totp_confirmed_at = NULL WHERE id = %s", uid)
        forget_throttling(oa.c)
        api.close()


def warm(fe_list, mail, dep, password=PASSWORD):
    """A keep-alive client per front end, each with the credentials cached (two good requests)."""
    apis = []
    for fe in fe_list:
        api = fe.api()
        for _ in range(2):
            form_ids(api.get(or_url(dep), headers=basic(mail, password)))
        apis.append(api)
    return apis


def session_of(w, mail, password=PASSWORD):
    r = w.c.api().post("/v1/auth/login", json={"email": mail, "password": password})
    assert r.status_code == 200, r.text
    return w.c.api(r.json()["token"])


def test_password_change_stops_cached_basic_at_once_on_two_front_ends(oa):
    mail, _uid, dep = password_user(oa)
    apis = warm([oa.a, oa.b], mail, dep)
    s = session_of(oa, mail)
    ok(s.put("/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
    try:
        for api in apis:
            wait_until(lambda: api.get(or_url(dep), headers=basic(mail, PASSWORD)).status_code == 401,
                       REVOCATION_WAIT, what="the old password refused")
            form_ids(api.get(or_url(dep), headers=basic(mail, NEW_PASSWORD)))
    finally:
        forget_throttling(oa.c)
        for api in apis:
            api.close()


def test_erased_account_stops_at_once_on_two_front_ends(oa):
    mail, uid, dep = password_user(oa)
    apis = warm([oa.a, oa.b], mail, dep)
    s = session_of(oa, mail)
    ok(s.post("/v1/me/erase", json={"current_password": PASSWORD}))
    try:
        for api in apis:
            wait_until(lambda: api.get(or_url(dep), headers=basic(mail, PASSWORD)).status_code == 401,
                       REVOCATION_WAIT, what="the erased account refused")
    finally:
        forget_throttling(oa.c)
        for api in apis:
            api.close()


def test_member_removed_from_the_org_stops_at_once_on_two_front_ends(oa):
    mail, uid, dep = password_user(oa)
    apis = warm([oa.a, oa.b], mail, dep)
    before = [fe.basic_checks() for fe in (oa.a, oa.b)]
    r = oa.owner.api.delete(f"/v1/orgs/{oa.org['id']}/members/{uid}")
    assert r.status_code == 204, r.text
    try:
        for api, fe, b in zip(apis, (oa.a, oa.b), before):
            # refused by the verdict at once; and the cached credentials dropped within a poll:
            # the front end hashes the password again
            wait_until(lambda: api.get(or_url(dep), headers=basic(mail, PASSWORD)).status_code == 404
                       and fe.basic_checks()[0] > b[0], REVOCATION_WAIT,
                       what="the removed member's cached credentials dropped")
    finally:
        for api in apis:
            api.close()


# ---------------------------------------------------------------- app users

def create_app_user(w, dep, name="tablet 1", who=None):
    return (who or w.owner).api.post(f"/v1/deployments/{dep['id']}/app-users", json={"name": name})


def key_path(token, dep, what="formList"):
    return f"/v1/key/{token}/openrosa/deployments/{dep['id']}/{what}"


def test_app_user_lifecycle(oa):
    dep = new_deployment(oa, [oa.key_enum.id])
    made = ok(create_app_user(oa, dep), 201)
    token = made["token"]
    assert token.startswith("fva_") and len(token) == 47
    assert made["openrosa_url"].endswith(f"/v1/key/{token}/openrosa/deployments/{dep['id']}")
    assert made["openrosa_url"].startswith("https://")
    # Collect's settings QR payload: base64 of zlib-compressed settings JSON
    settings = json.loads(zlib.decompress(base64.b64decode(made["collect_settings"], validate=True)))
    assert settings == {"general": {"server_url": made["openrosa_url"]}, "admin": {}}
    # stored hashed: neither the token nor anything that contains it is in the database
    rows = oa.c.psql("SELECT token_hash FROM app_users WHERE id = %s", made["id"])
    import hashlib
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]
    # listed without a secret, and never shown again
    items = ok(oa.owner.api.get(f"/v1/deployments/{dep['id']}/app-users"))["items"]
    assert [i["id"] for i in items] == [made["id"]] and items[0]["revoked"] is False
    assert token not in json.dumps(items) and "token" not in items[0] and "token_hash" not in items[0]

    # the token on the OpenRosa routes, on both front ends, with no Authorization header
    apis = [oa.a.api(), oa.b.api()]
    try:
        for api in apis:
            r = api.get(key_path(token, dep))
            assert len(form_ids(r)) == 1
            # the form list's URLs carry the token, so Collect downloads with it
            url = ET.fromstring(r.content).find(f"{XFORMS_NS}xform/{XFORMS_NS}downloadUrl").text
            path = made["openrosa_url"].split("/v1/", 1)[1]  # each front end names its own origin
            assert url == f"{api.base}/v1/{path}/form"
            f = api.get(key_path(token, dep, "form"))
            assert f.status_code == 200 and f.content.startswith(b"<"), f.text[:200]
            assert f.headers.get("X-OpenRosa-Version") == "1.0"
            denied(api.get(key_path(token, dep, "media/none.png")), 404)
        # nothing else: another deployment, the JSON API, the token as a bearer
        api = apis[0]
        envelope(api.get(key_path(token, oa.dep)), 404)
        for p in ("/surveys", f"/deployments/{dep['id']}", "/me", f"/deployments/{dep['id']}/app-users",
                  f"/deployments/{dep['id']}/responses"):
            denied(api.get(f"/v1/key/{token}{p}"), 404)
        r = api.post(f"/v1/key/{token}/deployments/{dep['id']}/responses", json={"id": new_id(), "data": {}})
        denied(r, 404)
        denied(Api(oa.a.base, oa.c.cert, token).get("/v1/me"), 401)
        challenged(api.get(key_path(token[:-1] + ("A" if token[-1] != "A" else "B"), dep)))
        challenged(api.get(key_path("fva_short", dep)))
        # the access log never holds the token
        assert token not in oa.c.logs.joinpath("frontend-or-a.log").read_text()

        # revocation: at once on both front ends
        r = oa.owner.api.delete(f"/v1/deployments/{dep['id']}/app-users/{made['id']}")
        assert r.status_code == 204, r.text
        for api in apis:
            wait_until(lambda: api.get(key_path(token, dep)).status_code == 401, REVOCATION_WAIT,
                       what="the revoked token refused")
            challenged(api.get(key_path(token, dep, "form")))
        items = ok(oa.owner.api.get(f"/v1/deployments/{dep['id']}/app-users"))["items"]
        assert items[0]["revoked"] is True and items[0]["revoked_at"]
        audited = oa.c.psql("SELECT action, actor::text, org_id::text FROM audit WHERE target_id = %s "
                            "AND action LIKE 'app_user.%%' ORDER BY id", dep["id"])
        assert audited == [("app_user.create", oa.owner.id, oa.org["id"]),
                           ("app_user.revoke", oa.owner.id, oa.org["id"])]
        assert token not in json.dumps(oa.c.psql("SELECT detail FROM audit WHERE target_id = %s", dep["id"]))
        assert oa.owner.api.delete(f"/v1/deployments/{dep['id']}/app-users/{made['id']}").status_code == 204
    finally:
        for api in apis:
            api.close()


def test_closing_the_deployment_or_archiving_the_survey_stops_tokens(oa):
    dep = new_deployment(oa, [oa.key_enum.id])
    token = ok(create_app_user(oa, dep), 201)["token"]
    apis = [oa.a.api(), oa.b.api()]
    try:
        for api in apis:
            form_ids(api.get(key_path(token, dep)))
        ok(oa.owner.api.patch(f"/v1/deployments/{dep['id']}", json={"closed": True}))
        for api in apis:
            wait_until(lambda: api.get(key_path(token, dep)).status_code == 401, REVOCATION_WAIT,
                       what="a closed deployment's token refused")
        ok(oa.owner.api.patch(f"/v1/deployments/{dep['id']}", json={"closed": False}))
        for api in apis:
            wait_until(lambda: api.get(key_path(token, dep)).status_code == 200, REVOCATION_WAIT + 6,
                       what="a reopened deployment's token accepted")
    finally:
        for api in apis:
            api.close()
    # archiving: a survey of its own
    s = ok(oa.owner.api.post("/v1/surveys", json={
        "org_id": oa.org["id"], "name": "archived one",
        "definition": {"questions": [{"name": "n", "type": "integer", "label": "N"}]}}), 201)
    d = ok(oa.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "d", "roles": {"enumerators": [{"type": "user", "id": oa.key_enum.id}]}}), 201)
    tok = ok(create_app_user(oa, d), 201)["token"]
    api = oa.b.api()
    try:
        form_ids(api.get(key_path(tok, d)))
        ok(oa.owner.api.post(f"/v1/surveys/{s['id']}/archive"))
        wait_until(lambda: api.get(key_path(tok, d)).status_code == 401, REVOCATION_WAIT,
                   what="an archived survey's token refused")
    finally:
        api.close()


def test_who_may_manage_app_users(oa):
    dep = oa.dep
    # a foreign organisation's admin, a stranger: 404 as for an unknown deployment
    for api in (oa.stranger.api,):
        denied(create_app_user(oa, dep, who=oa.stranger), 404)
        denied(api.get(f"/v1/deployments/{dep['id']}/app-users"), 404)
        denied(api.delete(f"/v1/deployments/{dep['id']}/app-users/{new_id()}"), 404)
    made = ok(create_app_user(oa, dep), 201)
    denied(oa.stranger.api.delete(f"/v1/deployments/{dep['id']}/app-users/{made['id']}"), 404)
    # an enumerator sees the deployment but manages nothing: 403
    denied(create_app_user(oa, dep, who=oa.key_enum), 403)
    denied(oa.key_enum.api.get(f"/v1/deployments/{dep['id']}/app-users"), 403)
    denied(oa.key_enum.api.delete(f"/v1/deployments/{dep['id']}/app-users/{made['id']}"), 403)
    # an app user of another deployment is not one of this deployment's
    other = ok(create_app_user(oa, oa.dep2), 201)
    denied(oa.owner.api.delete(f"/v1/deployments/{dep['id']}/app-users/{other['id']}"), 404)
    denied(oa.owner.api.delete(f"/v1/deployments/{dep['id']}/app-users/not-a-uuid"), 404)
    # the token still works: nothing was revoked by the refused calls
    form_ids(oa.a.api().get(key_path(made["token"], dep)))


@pytest.mark.parametrize("body,field", [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "   "}, "name"), ({"name": "x" * 201}, "name"),
    ({"name": "a\u0001b"}, "name"), ({"name": 5}, "name"),
], ids=["missing", "empty", "blank", "long", "control", "number"])
def test_bad_app_user_names_are_422(oa, body, field):
    r = oa.owner.api.post(f"/v1/deployments/{oa.dep['id']}/app-users", json=body)
    err = denied(r, 422, "validation_failed")
    assert field in err["fields"]


def test_app_users_and_basic_callers_are_rate_limited_per_user(oa):
    dep = new_deployment(oa, [oa.key_enum.id])
    token = ok(create_app_user(oa, dep), 201)["token"]
    mail, _uid, bdep = password_user(oa)
    api = oa.t.api()
    try:
        for path, headers in ((key_path(token, dep), {}), (or_url(bdep), basic(mail, PASSWORD))):
            for _ in range(5):
                form_ids(api.get(path, headers=headers))
            r = api.get(path, headers=headers)
            denied(r, 429, "rate_limited")
            assert int(r.headers["Retry-After"]) >= 1
            assert r.headers.get("X-OpenRosa-Version") == "1.0"
    finally:
        forget_throttling(oa.c)
        api.close()


@pytest.mark.parametrize("path,status", [
    ("/v1/key/", 404), ("/v1/key/fva_x", 404), ("/v1/key//openrosa/deployments/{dep}/formList", 404),
    ("/v1/key/" + "A" * 64 + "/openrosa/deployments/{dep}/formList", 404),
    ("/v1/key/%00%ff/openrosa/deployments/{dep}/formList", 400),  # refused before routing
    ("/v1/key/%41%41/openrosa/deployments/{dep}/formList", 401),
    ("/v1/key/fva_" + "!" * 43 + "/openrosa/deployments/{dep}/formList", 401),
    ("/v1/key/fva_" + "A" * 43 + "/openrosa/deployments/{dep}/formList", 401),
    ("/v1/key/fva_" + "A" * 43 + "/openrosa/deployments/not-a-uuid/formList", 401),
    ("/v1/key/fva_" + "A" * 43 + "/openrosa/deployments/{dep}/nothing", 404),
    ("/v1/key/fva_" + "A" * 43 + "/healthz", 404),
], ids=["bare", "no-rest", "empty-token", "long-token", "nul", "percent", "bad-alphabet", "unknown", "bad-id",
        "no-route", "health"])
def test_worst_key_paths_are_clear_refusals(oa, path, status):
    api = oa.a.api()
    try:
        r = api.get(path.replace("{dep}", oa.dep["id"]))
        assert r.status_code == status, (r.status_code, r.text[:200])
        if status == 401:
            challenged(r)
        else:
            denied(r, status)
        assert api.get("/healthz").status_code == 200
    finally:
        api.close()


def test_head_and_a_wrong_method_under_the_key_prefix(oa):
    dep = new_deployment(oa, [oa.key_enum.id])
    token = ok(create_app_user(oa, dep), 201)["token"]
    api = oa.a.api()
    try:
        r = api.head(key_path(token, dep)) if hasattr(api, "head") else api.request("HEAD", key_path(token, dep))
        assert r.status_code == 200 and not r.content
        r = api.post(key_path(token, dep), json={})
        assert r.status_code == 405 and "GET" in r.headers["Allow"], r.text
    finally:
        api.close()
