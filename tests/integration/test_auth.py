"""Authentication with API keys (Authorization: Bearer), and the JSON errors around it."""
import pytest

from fvharness import error_body, json_lines, wait_until


def test_no_authorization_is_401(anon):
    r = anon.get("/v1/me")
    assert r.status_code == 401
    error_body(r)


def test_wrong_key_is_401(frontend):
    api = frontend.api("fvk_" + "0" * 40)
    r = api.get("/v1/me")
    assert r.status_code == 401
    error_body(r)


@pytest.mark.parametrize("header", [
    "Bearer",                      # no token
    "Bearer ",                     # empty token
    "Basic YWRtaW46YWRtaW4=",      # another scheme
    "Bearer fvk_a fvk_b",          # two tokens
    "bearer\tfvk_x\x7f",           # control characters
    "Bearer " + "A" * 8000,        # absurdly long
])
def test_malformed_authorization_is_401(anon, header):
    r = anon.get("/v1/me", headers={"Authorization": header})
    # 400/413/431 only for a header the HTTP layer itself rejects (the long one)
    assert r.status_code in (400, 401, 413, 431), r.text
    if r.status_code == 401:
        error_body(r)


def test_me_with_admin_key(admin):
    r = admin.get("/v1/me")
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["email"] == "admin@example.org"
    assert me["name"] == "Admin"
    assert len(me["id"]) == 36
    assert "password_hash" not in me and "key_hash" not in me


def test_key_of_one_user_is_not_another(frontend, admin):
    key = frontend.create_user("someone@example.org", "Someone Else")
    r = frontend.api(key).get("/v1/me")
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "someone@example.org"
    assert r.json()["id"] != admin.get("/v1/me").json()["id"]


def test_create_user_twice_with_same_email_makes_no_second_user(frontend):
    k1 = frontend.create_user("twice@example.org", "Twice")
    r = frontend.fvctl("create-user", "--email", "TWICE@example.org", "--name", "Again", check=False)
    # fvctl may refuse, or hand out another key of the same user; never a second account.
    assert frontend.user_rows("twice@example.org", "count(*)") == [(1,)]
    if r.returncode == 0:
        k2 = r.stdout.strip()
        assert k2 != k1
        id1 = frontend.api(k1).get("/v1/me").json()["id"]
        assert frontend.api(k2).get("/v1/me").json()["id"] == id1
    else:
        assert r.stdout.strip() == ""


def test_access_log_names_the_user(frontend, admin):
    """One JSON line per request on stderr with the authenticated user's id (DESIGN.md 3)."""
    uid = admin.get("/v1/me").json()["id"]
    log = frontend.frontend.log_path

    def logged():
        return any(uid in str(v) for line in json_lines(log) for v in line.values())
    wait_until(logged, 30, what="an access-log line with the admin's user id")


@pytest.mark.parametrize("param", ["access_token", "token", "api_key", "key", "authorization"])
def test_credentials_in_the_url_are_never_used(anon, admin, admin_key, param):
    """ASVS 3.1.1 / 13.1.3: a credential travels in the Authorization header only. A key or a
    token in the query string is ignored (401 as for no credential at all), so it never becomes
    the way in that ends up in proxy logs and browser histories."""
    assert admin.get("/v1/me").status_code == 200  # the key itself works, in the header
    key = admin_key
    r = anon.get(f"/v1/me?{param}={key}")
    assert r.status_code == 401, r.text
    assert error_body(r)["code"] == "unauthenticated"
    r = anon.get(f"/v1/me?{param}=Bearer%20{key}")
    assert r.status_code == 401, r.text
