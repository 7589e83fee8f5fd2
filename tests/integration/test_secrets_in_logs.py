"""OWASP ASVS 7.1.1, 7.1.2, 8.3.1: no credential or personal datum ever reaches a log. A user signs
up, fails a login, logs in, changes the password, makes an API key, uses both and submits an
answer; then every log of the cluster (front-end children, workers, fvctl, PostgreSQL) is read
whole and none holds the passwords, the session tokens or their signatures, the API key, the
email, the name or the answer. Ids and hashes are fine: they name, they do not open."""
import uuid

from fvharness import wait_until

# the form's pattern allows letters, digits and spaces only

MARK = uuid.uuid4().hex[:10]
PASSWORD = f"lantern-{MARK}-orchid-quietly"
NEW_PASSWORD = f"harbour-{MARK}-velvet-sundial"
EMAIL = f"secret-{MARK}@example.org"
NAME = f"Name{MARK}"


def all_logs(cluster):
    texts = {}
    for p in sorted(cluster.logs.rglob("*")):
        if p.is_file():
            texts[str(p)] = p.read_bytes().decode("utf-8", "replace")
    if cluster.pg.log_path.exists():
        texts[str(cluster.pg.log_path)] = cluster.pg.log_path.read_text(errors="replace")
    assert texts
    return texts


def test_no_secret_or_personal_datum_is_logged(frontend, workers, anon, world):
    r = anon.post("/v1/users", json={"email": EMAIL, "name": NAME, "password": PASSWORD})
    assert r.status_code == 202, r.text  # the same answer for a taken email: no id in it
    user_id = str(frontend.user_rows(EMAIL, "id")[0][0])
    assert anon.post("/v1/auth/login", json={"email": EMAIL, "password": "wrong-" + PASSWORD}).status_code == 401
    r = anon.post("/v1/auth/login", json={"email": EMAIL, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    api = frontend.api(token)
    r = api.put("/v1/me/password", json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    assert r.status_code == 200, r.text
    token2 = r.json()["token"]
    api = frontend.api(token2)
    r = api.post("/v1/me/api-keys", json={"name": "k", "current_password": NEW_PASSWORD})
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert frontend.api(key).get("/v1/me").status_code == 200
    assert api.get("/v1/me").status_code == 200
    old = frontend.api(token)  # voided by the change, on every child within a poll
    wait_until(lambda: old.get("/v1/me").status_code == 401, 30, what="the old session voided")
    # an answer with a marker, through the queue and the worker
    answer = f"Answer {MARK}"
    rid = str(uuid.uuid4())
    r = world.submit({"household": answer, "members": 2}, id=rid)
    assert r.status_code == 202, r.text
    world.wait_readable(rid)
    # the access log did name the user (so the logs are the right ones and were written)
    wait_until(lambda: any(user_id in t for t in all_logs(frontend).values()), 30, what="the user id logged")
    secrets = {"password": PASSWORD, "new password": NEW_PASSWORD, "token": token, "new token": token2,
               "token signature": token.rsplit(".", 1)[-1], "email": EMAIL, "name": NAME, "answer": answer}
    secrets["api key"] = key
    secrets["api key body"] = key[4:]
    found = [(what, path) for path, text in all_logs(frontend).items() for what, s in secrets.items() if s in text]
    assert not found, found
