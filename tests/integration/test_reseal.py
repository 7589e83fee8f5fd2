"""Key rotation for sealed values (docs/security.md, TOTP): `fvctl reseal` seals every TOTP secret
again under the key file's current key, so the old key can be dropped without breaking a single
TOTP login. Resumable and idempotent; a secret that opens under no key is reported (exit 1).

The test's processes use key files of their own (FV_KEY_FILE); the session's key (K1) is put back
at the end with a reseal the other way, so the session's other front ends keep opening them."""
import hashlib
import os
import signal

from fvharness import Api, child_env, free_port
from test_accounts import STRONG, email, enrol, login, now_step, signup, token_of, totp


def key_id(hexkey):
    return hashlib.sha256(bytes.fromhex(hexkey)).hexdigest()[:8]


def write_keys(path, *keys):
    path.write_text("".join(k + "\n" for k in keys))
    os.chmod(path, 0o600)


def test_reseal_then_drop_the_old_key_totp_login_still_works(migrated):
    c = migrated
    k1 = c.master_key.read_text().split()[0]
    k2 = os.urandom(32).hex()
    both, only_new, back = (c.base / "keys" / n for n in ("k2k1.key", "k2.key", "k1k2.key"))
    write_keys(both, k2, k1)
    write_keys(only_new, k2)
    write_keys(back, k1, k2)
    procs = []

    def fe(keyfile):
        port = free_port()
        procs.append(c.start_frontend(name=f"frontend-reseal-{len(procs)}", FV_LISTEN_PORT=port,
                                      FV_KEY_FILE=keyfile, FV_LOGIN_MAX_FAILURES_ADDRESS=100000))
        return Api(f"https://127.0.0.1:{port}", c.cert)

    def fvctl(keyfile, check=True):
        return c.fvctl("reseal", "--batch", "2", check=check, env=child_env(FV_KEY_FILE=keyfile))

    try:
        # TOTP on, its secret sealed under K1 (the session's key file)
        anon1 = fe(c.master_key)
        mail = email()
        u = signup(anon1, mail, c=c)
        api = Api(anon1.base, c.cert, token_of(anon1, mail))
        secret = enrol(api)["secret"]
        s = now_step()
        assert api.post("/v1/me/totp/confirm", json={"code": totp(secret, s)}).status_code == 200

        def sealed():
            return c.psql("SELECT totp_secret FROM users WHERE id = %s", u["id"])[0][0]
        assert sealed().startswith(f"s1.{key_id(k1)}.")

        # K1 dropped without a reseal: the secret opens no more (what the command prevents)
        bad = fvctl(only_new, check=False)
        assert bad.returncode == 1 and u["id"] in bad.stderr and secret not in bad.stderr + bad.stdout
        # K2 put first, K1 kept: reseal (batches of 2: several users, resumable by id)
        r = fvctl(both)
        assert "re-sealed under key " + key_id(k2) in r.stdout, r.stdout
        assert sealed().startswith(f"s1.{key_id(k2)}.")
        # idempotent: nothing left under another key
        again = fvctl(both)
        assert again.stdout.startswith("fvctl reseal: 0 TOTP secret(s) re-sealed"), again.stdout
        # since migration 028 a login also needs the global data key (the email and name) and the
        # email's HMAC under K2: rotate-master-key brings those, reseal is the TOTP part alone
        r = c.fvctl("rotate-master-key", env=child_env(FV_KEY_FILE=both))
        assert "TOTP secrets: 0 re-sealed" in r.stdout and "users' email HMACs:" in r.stdout, r.stdout
        # K1 dropped from the key file: TOTP login still works, with the same authenticator
        anon2 = fe(only_new)
        r = login(anon2, mail)
        assert r.status_code == 401 and r.json()["error"]["code"] == "totp_required", r.text
        r = login(anon2, mail, STRONG, totp=totp(secret, s + 1))
        assert r.status_code == 200, r.text
        assert r.json()["mfa"] is True
    finally:
        # back under the session's key for the rest of the run (data keys and HMACs too)
        fvctl(back)
        c.fvctl("rotate-master-key", env=child_env(FV_KEY_FILE=back))
        for p in procs:
            assert p.stop(signal.SIGTERM, timeout=30) == 0
    assert sealed().startswith(f"s1.{key_id(k1)}.")
