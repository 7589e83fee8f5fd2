"""An organisation that requires TOTP of its admins (orgs.require_admin_totp): the admin actions
work from a session opened with a code, and are refused (403 totp_required) from the same admin's
session without one or from their API key."""
import time

from fvharness import error_body, new_id
from test_accounts import STRONG, signup, token_of, totp


def _totp_admin(frontend):
    """An admin with TOTP on: (their mfa session api, password-only session api, API key api, id)."""
    anon = frontend.api()
    mail = f"mfa-admin-{new_id()[:8]}@example.org"
    user = signup(anon, mail, c=frontend)
    plain = frontend.api(token_of(anon, mail))
    # the script's key is made before TOTP is on (then the password alone confirms it)
    r = plain.post("/v1/me/api-keys", json={"name": "script", "current_password": STRONG})
    assert r.status_code == 201, r.text
    keyed = frontend.api(r.json()["key"])
    r = plain.post("/v1/me/totp", json={"current_password": STRONG})
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    step = int(time.time()) // 30
    r = plain.post("/v1/me/totp/confirm", json={"code": totp(secret, step)})
    assert r.status_code == 200, r.text
    # a code is used once: log in with the next step's (within the one step of drift)
    mfa = frontend.api(token_of(anon, mail, STRONG, totp=totp(secret, step + 1)))
    anon.close()
    return mfa, plain, keyed, user["id"]


def test_required_totp_admits_the_mfa_session_only(frontend):
    mfa, plain, keyed, _ = _totp_admin(frontend)
    try:
        r = mfa.post("/v1/orgs", json={"name": "Needs TOTP"})
        assert r.status_code == 201, r.text
        org = r.json()["id"]
        # turning the policy on needs a TOTP session itself
        for api in (plain, keyed):
            r = api.patch(f"/v1/orgs/{org}", json={"require_admin_totp": True})
            assert r.status_code == 403 and error_body(r)["code"] == "totp_required", r.text
        r = mfa.patch(f"/v1/orgs/{org}", json={"require_admin_totp": True})
        assert r.status_code == 200 and r.json()["require_admin_totp"] is True, r.text
        # under the policy: admin actions from the TOTP session only
        r = mfa.post(f"/v1/orgs/{org}/branches", json={"name": "North"})
        assert r.status_code == 201, r.text
        for api in (plain, keyed):
            r = api.post(f"/v1/orgs/{org}/teams", json={"name": "Team"})
            assert r.status_code == 403 and error_body(r)["code"] == "totp_required", r.text
            r = api.get(f"/v1/orgs/{org}/audit")
            assert r.status_code == 403 and error_body(r)["code"] == "totp_required", r.text
        r = mfa.post(f"/v1/orgs/{org}/teams", json={"name": "Team"})
        assert r.status_code == 201, r.text
        r = mfa.get(f"/v1/orgs/{org}/audit")
        assert r.status_code == 200, r.text
        assert "org.update" in {e["action"] for e in r.json()["items"]}
        # reads of a member are not admin actions
        assert plain.get(f"/v1/orgs/{org}").status_code == 200
        # and off again, from the TOTP session
        r = mfa.patch(f"/v1/orgs/{org}", json={"require_admin_totp": False})
        assert r.status_code == 200 and r.json()["require_admin_totp"] is False, r.text
        r = keyed.post(f"/v1/orgs/{org}/teams", json={"name": "Team 2"})
        assert r.status_code == 201, r.text
    finally:
        for api in (mfa, plain, keyed):
            api.close()
