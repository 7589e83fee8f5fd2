"""People's names and emails sealed at rest (issue 12, migration 028, docs/security.md "Personal
data at rest"): users' emails and names and invitations' emails are sealed under the global data key
before they reach PostgreSQL, bound to their row; emails are found for login, sign-up's uniqueness
and invitations by an HMAC under a subkey of the master key, never in clear. Neither pg_dump, the
data directory (after a checkpoint), the Redis AOF nor the spool holds a marker name or email; every reader
(GET /v1/me, member lists, invitations, personal data, login) answers as before; a flipped byte or a
value moved to another user's row is an error naming the row; rows from before 028 are read in
clear and sealed by the workers' sweep; `fvctl rotate-master-key` recomputes the HMACs under the new
key, --drop refuses while one is under the old key, and login works once the old key is gone."""
import os
import signal
import uuid

import pytest

from fvharness import Api, child_env, email_hmacs, files_under, free_port, grep, new_id, wait_until
from test_accounts import STRONG, login, start_fe
from test_purge import pg_dump

CMD = "rotate-master-key"


def key_id(hexkey):
    import hashlib
    return hashlib.sha256(bytes.fromhex(hexkey)).hexdigest()[:8]


def write_keys(path, *keys):
    path.write_text("".join(k + "\n" for k in keys))
    os.chmod(path, 0o600)


@pytest.fixture(scope="module")
def sfe(workers):
    fe = start_fe(workers, "frontend-sealed-identity", FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
    yield fe
    assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def ok(r, status=200):
    assert r.status_code == status, (r.status_code, r.text[:500])
    return r.json() if r.content else None


def person(fe, tag, kind="p"):
    """Signs a marker person up (email in mixed case) and logs in: (email, name, id, Api)."""
    mail = f"Mark{kind.upper()}{tag}@Example.ORG"
    name = f"Namemark{kind}{tag} O'Brien"
    anon = fe.api()
    ok(anon.post("/v1/users", json={"email": mail, "name": name, "password": STRONG}), 202)
    r = login(anon, mail.lower())  # any case finds the account
    tok = ok(r)["token"]
    anon.close()
    api = fe.api(tok)
    me = ok(api.get("/v1/me"))
    assert me["email"] == mail and me["name"] == name, me
    return mail, name, me["id"], api


def needles_of(*texts):
    out = []
    for t in texts:
        out += [t.encode(), t.lower().encode(), t.upper().encode()]
    return out


def test_names_and_emails_nowhere_in_clear_and_every_reader_opens_them(sfe):
    c = sfe.c
    tag = uuid.uuid4().hex[:10]
    amail, aname, aid, a = person(sfe, tag, "a")
    bmail, bname, bid, b = person(sfe, tag, "b")
    imail = f"InviteMark{tag}@Example.ORG"
    # the row holds neither in clear: sealed (FVD1, bound to the row), the HMAC of the lower-cased email
    row = c.psql("SELECT email, name, email_sealed, name_sealed, encode(email_hmac, 'hex'), email_hmac_key "
                 "FROM users WHERE id = %s", aid)[0]
    assert row[0] is None and row[1] is None, row
    assert bytes(row[2][:4]) == b"FVD1" and bytes(row[3][:4]) == b"FVD1"
    master = c.master_key.read_text().split()[0]
    assert row[4] == email_hmacs(c.master_key, amail.lower())[0] and row[5] == key_id(master), row
    # an org: a's and b's names in the member list, an email only on the caller's own row
    org = ok(a.post("/v1/orgs", json={"name": f"Sealed org {tag}"}), 201)
    inv = ok(a.post(f"/v1/orgs/{org['id']}/invitations", json={"user_id": bid, "role": "member"}), 201)
    ok(b.post(f"/v1/me/invitations/{inv['id']}/accept", json={"current_password": STRONG}))
    listed = {m["user_id"]: m for m in ok(a.get(f"/v1/orgs/{org['id']}/members"))["items"]}
    assert listed[aid]["name"] == aname and listed[aid]["email"] == amail, listed
    assert listed[bid]["name"] == bname and listed[bid]["email"] is None, listed
    # an invitation by email (typed in another case): sealed, listed as typed, found by the invitee
    einv = ok(a.post(f"/v1/orgs/{org['id']}/invitations", json={"email": imail, "role": "member"}), 201)
    assert einv["email"] == imail and einv["code"]
    irow = c.psql("SELECT email, email_sealed, encode(email_hmac, 'hex') FROM invitations WHERE id = %s",
                  einv["id"])[0]
    assert irow[0] is None and bytes(irow[1][:4]) == b"FVD1"
    assert irow[2] == email_hmacs(c.master_key, imail)[0]
    listed = {i["id"]: i for i in ok(a.get(f"/v1/orgs/{org['id']}/invitations"))["items"]}
    assert listed[einv["id"]]["email"] == imail
    anon = sfe.api()
    ok(anon.post("/v1/users", json={"email": imail.lower(), "name": f"Invitee{tag}", "password": STRONG}), 202)
    ci = sfe.api(ok(login(anon, imail.upper()))["token"])
    mine = [i["id"] for i in ok(ci.get("/v1/me/invitations"))["items"]]
    assert mine == [einv["id"]], mine
    ok(ci.post(f"/v1/me/invitations/{einv['id']}/accept", json={"current_password": STRONG, "code": einv["code"]}))
    # the personal data download holds the account as it was typed
    pd = ok(a.get("/v1/me/personal-data"))
    assert pd["account"]["email"] == amail and pd["account"]["name"] == aname
    # TOTP enrolment names the account by its email
    en = ok(a.post("/v1/me/totp", json={"current_password": STRONG}))
    assert amail.replace("@", "%40") in en["otpauth_uri"], en
    # nowhere in clear: the dump, the data directory (tables and WAL, after a checkpoint), the AOF
    needles = needles_of(amail, aname, bmail, bname, imail, f"Invitee{tag}")
    c.psql("CHECKPOINT")
    dump = pg_dump(c).encode()
    assert [n for n in needles if n in dump] == []
    assert grep(files_under(c.pg.data), needles) == []
    assert grep(files_under(c.base / "redis"), needles) == []
    assert grep(files_under(c.base / "spool"), needles) == []  # the front ends' spools (none goes there)
    for x in (a, b, ci, anon):
        x.close()


def test_login_signup_uniqueness_and_fvctl_by_hmac(sfe):
    c = sfe.c
    tag = uuid.uuid4().hex[:10]
    mail, name, uid, api = person(sfe, tag)
    anon = sfe.api()
    for typed in (mail, mail.upper(), mail.lower()):
        assert login(anon, typed).status_code == 200, typed
    assert login(anon, "x" + mail).status_code == 401
    # a failed login's audit entry correlates by the keyed HMAC, never the email or a plain digest
    import hashlib
    assert login(anon, mail.upper(), "not the password").status_code == 401
    details = [d for (d,) in c.psql("SELECT detail FROM audit WHERE action = 'auth.login_failed' AND actor = %s", uid)]
    assert {"reason": "bad_password", "email_hmac": email_hmacs(c.master_key, mail)[0]} in details, details
    assert hashlib.sha256(mail.lower().encode()).hexdigest() not in str(details)
    # taken in another case: the same answer, still one account, its name unchanged
    r = anon.post("/v1/users", json={"email": mail.upper(), "name": "Someone Else", "password": STRONG})
    assert r.status_code == 202
    assert c.user_rows(mail, "count(*)") == [(1,)]
    assert ok(api.get("/v1/me"))["name"] == name
    # a second account at once cannot take it either: the unique index on the HMAC
    with pytest.raises(Exception, match="users_email_hmac"):
        c.psql("INSERT INTO users (id, email_sealed, name_sealed, pii_version, email_hmac, email_hmac_key) "
               "SELECT %s, email_sealed, name_sealed, pii_version, email_hmac, email_hmac_key FROM users "
               "WHERE id = %s", new_id(), uid)
    # fvctl create-user by email: reuses the account (any case), a new email makes a sealed one
    r = c.fvctl("create-user", "--email", mail.lower(), "--name", "Ignored")
    assert f"reusing existing user {uid}" in r.stderr, r.stderr
    other = f"FvctlMark{tag}@example.org"
    c.fvctl("create-user", "--email", other, "--name", f"Fvctlname{tag}")
    rows = c.user_rows(other.upper(), "email, name, email_sealed IS NOT NULL")
    assert rows == [(None, None, True)], rows
    anon.close()
    api.close()


def test_flipped_byte_or_moved_value_is_an_error_naming_the_row(sfe):
    c = sfe.c
    tag = uuid.uuid4().hex[:10]
    amail, aname, aid, a = person(sfe, tag, "a")
    bmail, bname, bid, b = person(sfe, tag, "b")
    orig = c.psql("SELECT email_sealed, name_sealed FROM users WHERE id = %s", aid)[0]
    try:
        c.psql("UPDATE users SET email_sealed = set_byte(email_sealed, 40, get_byte(email_sealed, 40) # 1) "
               "WHERE id = %s", aid)
        r = a.get("/v1/me")
        assert r.status_code == 500, r.text
        err = r.json()["error"]
        assert err["code"] == "internal" and aid in err["message"] and "does not open" in err["message"], err
        assert amail.encode() not in r.content and amail.lower().encode() not in r.content
        # login: the account is found by its HMAC, its email does not open: an error, not garbage
        r = login(sfe.api(), amail)
        assert r.status_code == 500 and aid in r.json()["error"]["message"], r.text
        c.psql("UPDATE users SET email_sealed = %s WHERE id = %s", orig[0], aid)
        assert ok(a.get("/v1/me"))["email"] == amail
        # b's sealed name copied into a's row: bound to b's row, it does not open as a's
        c.psql("UPDATE users SET name_sealed = (SELECT name_sealed FROM users WHERE id = %s) WHERE id = %s",
               bid, aid)
        r = a.get("/v1/me")
        assert r.status_code == 500 and aid in r.json()["error"]["message"], r.text
        assert bname.encode() not in r.content
        # a list holding a's row fails too, naming it
        org = ok(a.post("/v1/orgs", json={"name": f"Tamper org {tag}"}), 201)
        r = a.get(f"/v1/orgs/{org['id']}/members")
        assert r.status_code == 500 and aid in r.json()["error"]["message"] and bname.encode() not in r.content
        # the value moved over with its HMAC and its email: still bound to b's row
        c.psql("UPDATE users SET email_sealed = (SELECT email_sealed FROM users WHERE id = %s) WHERE id = %s",
               bid, aid)
        r = a.get("/v1/me")
        assert r.status_code == 500 and bmail.encode() not in r.content
    finally:
        c.psql("UPDATE users SET email_sealed = %s, name_sealed = %s WHERE id = %s", orig[0], orig[1], aid)
    me = ok(a.get("/v1/me"))
    assert (me["email"], me["name"]) == (amail, aname)
    a.close()
    b.close()


def test_rows_from_before_028_are_read_in_clear_then_sealed_by_the_sweep(sfe):
    c = sfe.c
    tag = uuid.uuid4().hex[:10]
    mail, name, uid, api = person(sfe, tag)
    # as migration 028 leaves a row from before it: email and name in clear, no HMAC
    c.psql("UPDATE users SET email = %s, name = %s, email_sealed = NULL, name_sealed = NULL, pii_version = NULL, "
           "email_hmac = NULL, email_hmac_key = NULL WHERE id = %s", mail, name, uid)
    # an invitation typed before 028, to that address
    owner = person(sfe, tag, "o")
    org = ok(owner[3].post("/v1/orgs", json={"name": f"Sweep org {tag}"}), 201)
    inv = ok(owner[3].post(f"/v1/orgs/{org['id']}/invitations", json={"email": mail.upper(), "role": "member"}), 201)
    c.psql("UPDATE invitations SET email = %s, email_sealed = NULL, email_hmac = NULL, email_hmac_key = NULL, "
           "pii_version = NULL WHERE id = %s", mail.upper(), inv["id"])
    # read in clear meanwhile (the sweep may already have sealed them: both read the same)
    assert ok(api.get("/v1/me"))["email"] == mail
    assert login(sfe.api(), mail.lower()).status_code == 200

    def sealed():
        u = c.psql("SELECT email IS NULL AND name IS NULL AND email_hmac IS NOT NULL FROM users WHERE id = %s", uid)
        i = c.psql("SELECT email IS NULL AND email_hmac IS NOT NULL FROM invitations WHERE id = %s", inv["id"])
        return u == [(True,)] and i == [(True,)]
    wait_until(sealed, 90, what="the workers' sweep to seal the name and emails")
    me = ok(api.get("/v1/me"))
    assert (me["email"], me["name"]) == (mail, name)
    assert login(sfe.api(), mail.upper()).status_code == 200
    assert [i["id"] for i in ok(api.get("/v1/me/invitations"))["items"]] == [inv["id"]]
    listed = {i["id"]: i for i in ok(owner[3].get(f"/v1/orgs/{org['id']}/invitations"))["items"]}
    assert listed[inv["id"]]["email"] == mail.upper()
    api.close()
    owner[3].close()


def test_rotate_master_key_recomputes_hmacs_drop_refuses_then_login_under_the_new_key(sfe, tmp_path):
    c = sfe.c
    tag = uuid.uuid4().hex[:10]
    mail, name, uid, api = person(sfe, tag)
    api.close()
    owner = person(sfe, tag, "o")
    org = ok(owner[3].post("/v1/orgs", json={"name": f"Rotate org {tag}"}), 201)
    inv = ok(owner[3].post(f"/v1/orgs/{org['id']}/invitations", json={"email": mail, "role": "member"}), 201)
    k1 = c.master_key.read_text().split()[0]
    both = tmp_path / "both.key"
    write_keys(both, k1)
    c.fvctl(CMD, "--new-key", env=child_env(FV_KEY_FILE=both))
    k2 = both.read_text().split()[0]
    procs = []
    try:
        r = c.fvctl(CMD, "--batch", "3", env=child_env(FV_KEY_FILE=both))
        assert "users' email HMACs:" in r.stdout and "invitations' email HMACs:" in r.stdout, r.stdout
        assert "email HMAC(s)" not in r.stdout.split("left under another master key")[-1] or \
            "0 email" in r.stdout, r.stdout
        assert c.psql("SELECT count(*) FROM users WHERE email_hmac_key = %s", key_id(k1)) == [(0,)]
        assert c.psql("SELECT count(*) FROM invitations WHERE email_hmac_key = %s", key_id(k1)) == [(0,)]
        row = c.psql("SELECT encode(email_hmac, 'hex'), email_hmac_key FROM users WHERE id = %s", uid)[0]
        assert row == (email_hmacs(both, mail)[0], key_id(k2)), row
        assert c.psql("SELECT encode(email_hmac, 'hex') FROM invitations WHERE id = %s", inv["id"]) == [
            (email_hmacs(both, mail)[0],)]
        # one HMAC back under K1 (a program not yet restarted wrote it): --drop K1 refuses, naming it
        old = email_hmacs(c.master_key, mail)[0]
        c.psql("UPDATE users SET email_hmac = decode(%s, 'hex'), email_hmac_key = %s WHERE id = %s",
               old, key_id(k1), uid)
        r = c.fvctl(CMD, "--drop", key_id(k1), check=False, env=child_env(FV_KEY_FILE=both))
        assert r.returncode == 1 and "email HMAC(s)" in r.stderr and uid in r.stdout, (r.stdout, r.stderr)
        assert both.read_text().split() == [k2, k1]
        # a front end with both keys finds the account meanwhile (HMACs under every key)
        port = free_port()
        procs.append(c.start_frontend(name="frontend-sealed-both", FV_LISTEN_PORT=port, FV_KEY_FILE=both,
                                      FV_LOGIN_MAX_FAILURES_ADDRESS=100000))
        assert login(Api(f"https://127.0.0.1:{port}", c.cert), mail.upper()).status_code == 200
        # rotate again (resumable): that one recomputed, then --drop goes through
        r = c.fvctl(CMD, env=child_env(FV_KEY_FILE=both))
        assert "users' email HMACs: 1 re-computed" in r.stdout, r.stdout
        r = c.fvctl(CMD, "--drop", key_id(k1), check=False, env=child_env(FV_KEY_FILE=both))
        assert r.returncode == 0, (r.stdout, r.stderr)
        assert both.read_text().split() == [k2]
        # under K2 alone: login by email in any case, the name opens, the invitation still matches
        port = free_port()
        procs.append(c.start_frontend(name="frontend-sealed-k2", FV_LISTEN_PORT=port, FV_KEY_FILE=both,
                                      FV_LOGIN_MAX_FAILURES_ADDRESS=100000))
        anon2 = Api(f"https://127.0.0.1:{port}", c.cert)
        r = login(anon2, mail.lower())
        assert r.status_code == 200, r.text
        me = Api(anon2.base, c.cert, r.json()["token"])
        got = ok(me.get("/v1/me"))
        assert (got["email"], got["name"]) == (mail, name)
        assert [i["id"] for i in ok(me.get("/v1/me/invitations"))["items"]] == [inv["id"]]
    finally:
        for p in procs:
            assert p.stop(signal.SIGTERM, timeout=30) == 0
        # back under K1 for the rest of the session: data keys, TOTP secrets and HMACs
        back = tmp_path / "back.key"
        write_keys(back, k1, k2)
        r = c.fvctl(CMD, check=False, env=child_env(FV_KEY_FILE=back))
        assert r.returncode == 0, r.stdout + r.stderr
        assert c.psql("SELECT count(*) FROM users WHERE email_hmac_key <> %s", key_id(k1)) == [(0,)]
    owner[3].close()


def test_migration_028_keeps_rows_in_clear_readable_until_the_sweep(sfe):
    """A database before 028 with users and an email invitation in clear: after 028 they are kept
    as they were (the sweep seals them), read in clear by fv_pii_cell / fv_pii_json, matched by
    lower(email), and the constraints refuse a row holding neither a clear nor a sealed email."""
    from test_history import sql_dir
    import psycopg2
    c = sfe.c
    db = "pii_migr_" + uuid.uuid4().hex[:8]
    admin = c.pg.connect()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} OWNER fieldvault")
    admin.close()
    conn = c.pg.connect(user="fieldvault", db=db, autocommit=True)
    try:
        files = sorted(sql_dir().glob("*.sql"))
        with conn.cursor() as cur:
            for f in files:
                if f.name < "028":
                    cur.execute(f.read_text())
            u, v, org, root, inv = (str(uuid.uuid4()) for _ in range(5))
            cur.execute("INSERT INTO users (id, email, name) VALUES (%s, 'Old.Mark@Example.org', 'Old Mark'), "
                        "(%s, 'other@example.org', 'Other')", (u, v))
            cur.execute("BEGIN; INSERT INTO orgs (id, name, root_branch_id, created_by) VALUES (%s, 'o', %s, %s);"
                        "INSERT INTO branches (id, org_id, name) VALUES (%s, %s, 'root'); COMMIT",
                        (org, root, u, root, org))
            cur.execute("INSERT INTO invitations (id, org_id, invited_by, email, code_hash, role, branch_id, expires_at) "
                        "VALUES (%s, %s, %s, 'OLD.MARK@example.org', %s, 'member', %s, now() + interval '1 day')",
                        (inv, org, v, "0" * 64, root))
            cur.execute(next(f for f in files if f.name.startswith("028")).read_text())
            cur.execute("SELECT email, name, email_hmac, fv_pii_cell(email, email_sealed), fv_pii_cell(name, name_sealed) "
                        "FROM users WHERE id = %s", (u,))
            assert cur.fetchall() == [("Old.Mark@Example.org", "Old Mark", None, "c:Old.Mark@Example.org", "c:Old Mark")]
            cur.execute("SELECT fv_invitation_is_for(i, %s) IS TRUE, fv_invitation_is_for(i, %s) IS TRUE, "
                        "fv_invitation_json(i)->>'email' "
                        "FROM invitations i WHERE id = %s", (u, v, inv))
            assert cur.fetchall() == [(True, False, "OLD.MARK@example.org")]
            cur.execute("SELECT i.id::text FROM invitations i, users x WHERE x.id = %s AND i.email IS NOT NULL "
                        "AND lower(i.email) = lower(x.email)", (u,))
            assert cur.fetchall() == [(inv,)]
            # the old unique index still guards the rows in clear; a row with no email at all is refused
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute("INSERT INTO users (id, email, name) VALUES (%s, 'old.mark@EXAMPLE.org', 'Twin')",
                            (str(uuid.uuid4()),))
            with pytest.raises(psycopg2.errors.CheckViolation):
                cur.execute("INSERT INTO users (id, name) VALUES (%s, 'Nobody')", (str(uuid.uuid4()),))
            with pytest.raises(psycopg2.errors.CheckViolation):  # sealed but not findable: no HMAC
                cur.execute("INSERT INTO users (id, email_sealed, name, pii_version) VALUES (%s, %s, 'N', 1)",
                            (str(uuid.uuid4()), b"FVD1\x00\x00\x00\x01" + bytes(40)))
    finally:
        conn.close()
        admin = c.pg.connect()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        admin.close()
