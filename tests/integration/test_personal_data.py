"""Personal data and erasure (issue 11; docs/security.md "Personal data and erasure").

GET /v1/me/personal-data shows everything held about the caller and nothing of anyone else's;
POST /v1/me/erase (session, password, TOTP when on) disables the account for good, revokes its
sessions and keys on every front end at once, removes its memberships and invitations, and
replaces its name and email everywhere by a stable pseudonym: afterwards a pg_dump of the whole
database holds neither (marker values)."""
import io
import json
import signal
import subprocess
import types
import zipfile

import pytest

from accesshelp import add_member, add_plain_member, denied, ok
from conftest import good_data, make_survey
from fvharness import free_port, new_id, pin_children, wait_until


def _marker():
    tag = new_id().replace("-", "")[-12:]
    return f"pd-mark-{tag}@example.org", f"Zebulon Quixmark {tag}"


def _session(c, mail, password):
    anon = c.api()
    r = anon.post("/v1/auth/login", json={"email": mail, "password": password})
    anon.close()
    assert r.status_code == 200, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def pd(workers, admin):
    c = workers
    from test_accounts import forget_throttling
    forget_throttling(c)  # earlier modules' failed logins from 127.0.0.1 must not throttle ours
    org = ok(admin.post("/v1/orgs", json={"name": f"Personal data org {new_id()[:6]}"}), 201)
    survey, dep = make_survey(admin, org["id"], [], name="Personal data survey")
    w = types.SimpleNamespace(c=c, admin=admin, org=org["id"], root=org["root_branch_id"],
                              survey=survey["id"], dep=dep["id"])
    return w


def _person_submitting(w):
    """A person who is an enumerator of w's deployment (named as a user principal)."""
    c = w.c
    from test_accounts import STRONG, signup
    mail, name = _marker()
    anon = c.api()
    uid = signup(anon, mail, name, c=c)["id"]
    anon.close()
    add_plain_member(c, w.org, uid)
    c.psql("INSERT INTO deployment_roles (deployment_id, principal_type, principal_id, role) "
           "VALUES (%s, 'user', %s, 'enumerator')", w.dep, uid)
    c.psql("INSERT INTO revocations (kind, subject, expires_at) VALUES ('permissions', %s, now() + interval '1 hour')",
           uid)
    return mail, name, uid, STRONG


def _make(w):
    """A fully furnished subject in w's org (see _person), submitting to w's deployment."""
    c = w.c
    mail, name, uid, password = _person_submitting(w)
    anon = c.api()
    assert anon.post("/v1/auth/login", json={"email": mail, "password": "not the password"}).status_code == 401
    anon.close()
    # the failed logins of the session's modules are counted under 127.0.0.1: this one's too
    from test_accounts import forget_throttling
    forget_throttling(c)
    session = _session(c, mail, password)
    api = c.api(session)
    key = ok(api.post("/v1/me/api-keys", json={"name": "field phone", "current_password": password}), 201)["key"]
    p = types.SimpleNamespace(mail=mail, name=name, id=uid, session=session, key=key, api=api, password=password)
    rid = new_id()
    kapi = c.api(key)

    def stored():
        r = kapi.post(f"/v1/deployments/{w.dep}/responses", json={"id": rid, "data": good_data(3)})
        assert r.status_code in (202, 403, 404), r.text
        return r.status_code == 202
    wait_until(stored, 30, what="the enumerator role to reach the front end")
    wait_until(lambda: c.psql("SELECT 1 FROM responses WHERE id = %s", rid), 60, what="the response")
    kapi.close()
    p.response = rid
    p.quarantined = new_id()
    c.psql("INSERT INTO quarantine (id, deployment_id, submitted_by, data, received_at, reason) "
           "VALUES (%s, %s, %s, %s, now(), 'not_enumerator')",
           p.quarantined, w.dep, uid, json.dumps({"household": name, "contact": mail}))
    other = ok(w.admin.post("/v1/orgs", json={"name": f"Inviting org {new_id()[:6]}"}), 201)
    p.invited_to = other["id"]
    ok(w.admin.post(f"/v1/orgs/{other['id']}/invitations", json={"email": mail, "role": "member"}), 201)
    return p


def _dump(c):
    r = subprocess.run(c.pg._as_pg(["pg_dump", "-h", str(c.pg.sock), "-p", str(c.pg.port), "-U", "postgres",
                                    "fieldvault"]), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout.lower()


def test_personal_data_holds_the_callers_data_and_nobody_elses(pd):
    w = pd
    me, other = _make(w), _make(w)
    try:
        doc = ok(me.api.get("/v1/me/personal-data"))
        assert set(doc) == {"account", "memberships", "invitations", "api_keys", "sessions", "audit",
                            "submissions", "refused_submissions", "quarantined_submissions"}
        acc = doc["account"]
        assert (acc["id"], acc["email"], acc["name"], acc["totp_enrolled"]) == (me.id, me.mail, me.name, False)
        assert [m["org_id"] for m in doc["memberships"]] == [w.org]
        assert doc["memberships"][0]["org_name"].startswith("Personal data org")
        assert [i["org_id"] for i in doc["invitations"]] == [me.invited_to]
        assert len(doc["api_keys"]) == 1 and doc["api_keys"][0]["name"] == "field phone"
        assert len(doc["sessions"]["items"]) == 1 and doc["sessions"]["next"] is None
        assert [s["id"] for s in doc["submissions"]["items"]] == [me.response]
        sub = doc["submissions"]["items"][0]
        assert sub["deployment_id"] == w.dep and sub["survey_id"] == w.survey and sub["status"] == "final"
        assert sub["data"] == good_data(3)
        assert [q["id"] for q in doc["quarantined_submissions"]["items"]] == [me.quarantined]
        actions = {a["action"] for a in doc["audit"]["items"]}
        assert {"auth.login_failed", "apikey.create"} <= actions, actions
        text = json.dumps(doc)
        # never a secret, never the other person
        for secret in ("password_hash", "key_hash", "totp_secret", me.key, me.session):
            assert secret not in text
        for theirs in (other.id, other.mail, other.name, other.response, other.quarantined, other.invited_to):
            assert theirs not in text, theirs
        # the long sections page on
        page = ok(me.api.get("/v1/me/personal-data", params={"section": "audit", "after": "0"}))
        assert [a["id"] for a in page["items"]] == [a["id"] for a in doc["audit"]["items"]]
        last = page["items"][-1]["id"]
        assert ok(me.api.get("/v1/me/personal-data", params={"section": "audit", "after": str(last)}))["items"] == []
        for bad in ({"section": "passwords"}, {"section": "audit", "after": "x"},
                    {"section": "submissions", "after": "12"}, {"after": "1"}):
            denied(me.api.get("/v1/me/personal-data", params=bad), 422, "validation_failed")
        # an API key reads the same document
        kapi = w.c.api(me.key)
        assert ok(kapi.get("/v1/me/personal-data"))["account"]["id"] == me.id
        kapi.close()
    finally:
        me.api.close()
        other.api.close()


def test_erase_refusals_change_nothing(pd):
    w = pd
    me = _make(w)
    try:
        kapi = w.c.api(me.key)
        denied(kapi.post("/v1/me/erase", json={"current_password": me.password}), 403, "session_required")
        kapi.close()
        denied(me.api.post("/v1/me/erase", json={"current_password": "not my password at all"}), 403,
               "wrong_password")
        denied(me.api.post("/v1/me/erase", json={}), 422, "validation_failed")
        # sealed (migration 028): still there, unchanged; GET /v1/me opens them
        assert w.c.psql("SELECT email_sealed IS NOT NULL, name_sealed IS NOT NULL, disabled_at IS NULL "
                        "FROM users WHERE id = %s", me.id) == [(True, True, True)]
        assert ok(me.api.get("/v1/me"))["name"] == me.name
        assert ok(me.api.get("/v1/me"))["email"] == me.mail
        # the only admin of an organisation cannot leave it without one
        own = ok(me.api.post("/v1/orgs", json={"name": f"My own org {new_id()[:6]}"}), 201)
        denied(me.api.post("/v1/me/erase", json={"current_password": me.password}), 409, "last_admin")
        assert ok(me.api.get("/v1/me"))["email"] == me.mail
        # with a second admin the erasure goes through
        helper = _make(w)
        add_member(w.c, own["id"], helper.id, "admin", branch_id=own["root_branch_id"])
        ok(me.api.post("/v1/me/erase", json={"current_password": me.password}))
        helper.api.close()
    finally:
        me.api.close()


def test_erase_everywhere_at_once_and_for_good(pd):
    w = pd
    c = w.c
    from test_accounts import forget_throttling, signup
    me = _make(w)
    port2 = free_port()
    proc2 = c.start_frontend(name="frontend-erase", FV_LISTEN_PORT=port2, FV_AUTH_CACHE_TTL_S=300,
                             FV_CACHE_STALE_S=300)
    pins = []
    try:
        pins = [(port, pin_children(c, port)) for port in (c.http_port, port2)]

        def statuses(token):
            out = set()
            for port, pinned in pins:
                for s in pinned.values():
                    out.add(s.get(f"https://127.0.0.1:{port}/v1/me", timeout=30,
                                  headers={"Authorization": f"Bearer {token}"}).status_code)
            return out
        assert statuses(me.session) == {200} and statuses(me.key) == {200}  # cached everywhere
        before = _dump(c)  # the markers are there to be found before
        assert me.mail.lower() in before and me.name.lower() in before
        # an export of the org made before holds the name (members.jsonl) inside its zip, in
        # PostgreSQL: the erasure withdraws it
        eid = ok(w.admin.post(f"/v1/orgs/{w.org}/exports"), 202)["id"]
        wait_until(lambda: ok(w.admin.get(f"/v1/jobs/{eid}"))["state"] == "done", 120, what="the export")
        z = zipfile.ZipFile(io.BytesIO(w.admin.get(f"/v1/exports/{eid}").content))
        assert me.name in z.read("org/members.jsonl").decode()

        done = ok(me.api.post("/v1/me/erase", json={"current_password": me.password}))
        pseudonym = done["pseudonym"]
        assert pseudonym.startswith("erased-") and done["sessions_revoked"] == 1 and done["api_keys_revoked"] == 1
        wait_until(lambda: statuses(me.session) == {401} and statuses(me.key) == {401}, 10,
                   what="every child of both front ends refusing the session and the key")

        anon = c.api()
        assert anon.post("/v1/auth/login", json={"email": me.mail, "password": me.password}).status_code == 401
        forget_throttling(c)
        # a second erase: the account is gone
        assert me.api.post("/v1/me/erase", json={"current_password": me.password}).status_code == 401

        # the org: no member any more, its audit names the pseudonym, the submission is kept
        members = ok(w.admin.get(f"/v1/orgs/{w.org}/members", params={"limit": 200}))["items"]
        assert me.id not in {m["user_id"] for m in members}
        audit = json.dumps(ok(w.admin.get(f"/v1/orgs/{w.org}/audit", params={"limit": 200})))
        assert pseudonym in audit and me.mail.lower() not in audit.lower() and me.name.lower() not in audit.lower()
        resp = ok(w.admin.get(f"/v1/responses/{me.response}"))
        assert resp["submitted_by"] == me.id
        inv = ok(w.admin.get(f"/v1/orgs/{me.invited_to}/invitations"))["items"]
        assert inv and all(i["email"] != me.mail for i in inv), inv

        # the export: withdrawn, its bytes deleted, audited under the pseudonym
        denied(w.admin.get(f"/v1/exports/{eid}"), 410, "export_withdrawn")
        assert c.psql("SELECT state, (SELECT count(*) FROM export_chunks WHERE export_id = e.id) FROM exports e "
                      "WHERE id = %s", eid) == [("withdrawn", 0)]
        assert c.psql("SELECT detail->>'reason', detail->>'pseudonym' FROM audit WHERE action = 'export.withdrawn' "
                      "AND target_id = %s", eid) == [("erasure", pseudonym)]
        # the whole database: neither the name nor the email, anywhere
        dump = _dump(c)
        assert me.mail.lower() not in dump and me.name.lower() not in dump
        assert pseudonym in dump

        # nobody undoes it: the org admin cannot make the account a member again, fvctl refuses
        # to hand it a key, and the audit log refuses an UPDATE outside an erasure
        assert w.admin.put(f"/v1/orgs/{w.org}/members/{me.id}",
                           json={"role": "member", "branch_id": w.root}).status_code in (404, 409)
        r = c.fvctl("create-user", f"{pseudonym}@erased.invalid", "Back again", check=False)
        assert r.returncode != 0
        assert c.psql("SELECT disabled_at IS NOT NULL, password_hash IS NULL FROM users WHERE id = %s",
                      me.id) == [(True, True)]
        assert not c.psql("SELECT 1 FROM api_keys WHERE user_id = %s AND revoked_at IS NULL", me.id)
        with pytest.raises(Exception, match="append-only"):
            c.psql("UPDATE audit SET detail = '{}' WHERE actor = %s", me.id)

        # the email is free for a new sign-up, a new account
        again = signup(anon, me.mail, me.name, c=c)
        assert again["id"] != me.id
        anon.close()
    finally:
        for _, pinned in pins:
            for s in pinned.values():
                s.close()
        me.api.close()
        assert proc2.stop(signal.SIGTERM, timeout=30) == 0


def test_erase_with_totp_on_needs_the_code(pd):
    """An account with TOTP on erases only with a current code too (accepted once)."""
    w = pd
    from test_accounts import enrol, now_step, totp
    me = _make(w)
    try:
        secret = enrol(me.api, me.password)["secret"]
        s = now_step()
        ok(me.api.post("/v1/me/totp/confirm", json={"code": totp(secret, s)}))
        assert ok(me.api.get("/v1/me/personal-data"))["account"]["totp_enrolled"] is True
        err = denied(me.api.post("/v1/me/erase", json={"current_password": me.password}), 422, "validation_failed")
        assert "totp" in err["fields"]
        denied(me.api.post("/v1/me/erase", json={"current_password": me.password, "totp": totp(secret, s)}),
               422, "invalid_code")  # used to confirm
        assert w.c.psql("SELECT disabled_at IS NULL FROM users WHERE id = %s", me.id) == [(True,)]
        ok(me.api.post("/v1/me/erase", json={"current_password": me.password, "totp": totp(secret, s + 1)}))
        assert w.c.psql("SELECT disabled_at IS NOT NULL, totp_secret IS NULL FROM users WHERE id = %s",
                        me.id) == [(True, True)]
    finally:
        me.api.close()


def test_redis_forgets_the_erased_account(pd):
    """The Redis-shared cache of API keys holds a key's user (its id; never its email or name since
    migration 028): the key's revocation row makes every child delete it."""
    w = pd
    c = w.c
    me = _make(w)
    try:
        kapi = c.api(me.key)
        assert ok(kapi.get("/v1/me"))["email"] == me.mail  # cached, and shared through Redis
        kapi.close()
        rc = c.redis_client()

        def values():
            out = []
            for k in rc("KEYS", "fv:cache:*") or []:
                if rc("TYPE", k) in (b"string", "string"):
                    v = rc("GET", k)
                    out.append(v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
            return "\n".join(out).lower()
        # shared, but without the email or the name (migration 028: the cache needs neither)
        assert me.id.lower() in values()
        assert me.mail.lower() not in values() and me.name.lower() not in values()
        ok(me.api.post("/v1/me/erase", json={"current_password": me.password}))
        wait_until(lambda: me.id.lower() not in values(), 10, what="the shared cache to forget the erased account")
        rc.close()
    finally:
        me.api.close()
