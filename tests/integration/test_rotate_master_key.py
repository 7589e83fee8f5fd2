"""Master key rotation (docs/operations.md section 12, docs/security.md "The master key file"):
`fvctl rotate-master-key --new-key` puts a new random key first in the key file (atomically, mode
0600, the old keys kept, only its id printed); `fvctl rotate-master-key` then re-wraps every data key
(data_keys, common/fv_datakey.h) and re-seals every TOTP secret under it, compare-and-set row by
row, so that the old key can leave the file and everything still opens. Resumable, idempotent; a
row that opens under no key is named (scope and version, user id) and makes the exit status 1.

The data keys are made and checked here in Python with the `cryptography` module, reproducing
fv_seal's format (HKDF-SHA256 without salt, info "fv-wrap-datakey", of the master key; AES-256-GCM,
a 12-byte nonce, associated data "fv-datakey:<scope>:<version>"; "s1.<key id>.<base64url>"), so
both directions are checked: fvctl opens what Python wrapped, Python opens what fvctl wrapped.

Rotation without downtime: `--new-key --standby` puts the new key second (accepted, used for
nothing), `--promote ID` moves it first; front ends and a worker side by side on the key files a
rolling restart has at once ([K1] and [K1, K2]; [K1, K2] and [K2, K1]) accept each other's session
tokens and queue entries, and plain `--new-key` ([K3, K1] beside [K1]) does not: the window the
standby step closes.

The last step, `--drop ID`: refused (exit 1, the file untouched) while a data key or a TOTP secret
is under the key, or a queue entry on the submissions stream or the dead-letter stream is sealed
under it (streams longer than a page, a 2 MiB entry among them), or PostgreSQL or Redis does not
answer; allowed after the re-wrap and with the stream drained (the line gone, comments, order and
mode kept); `--force` drops anyway saying what it found; the first key, the only key, an unknown id
(exit 1) and a malformed id or option mix (exit 2) are refused before anything is checked.

The test's processes use key files of their own (FV_KEY_FILE); every row is put back under the
session's key (K1) at the end, and the rows made here are deleted, so the session's other
programs and a later module's `fvctl reseal` find what they expect."""
import base64
import os
import re
import signal
import subprocess
import uuid

import pytest

from fvharness import Api, binary, child_env, free_port, wait_until
from test_accounts import STRONG, email, enrol, login, now_step, signup, token_of, totp

cryptography = pytest.importorskip("cryptography")  # apt: python3-cryptography
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402

CMD = "rotate-master-key"
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def key_id(hexkey):
    import hashlib
    return hashlib.sha256(bytes.fromhex(hexkey)).hexdigest()[:8]


def write_keys(path, *keys):
    path.write_text("".join(k + "\n" for k in keys))
    os.chmod(path, 0o600)


def subkey(master_hex, label):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()).derive(bytes.fromhex(master_hex))


def aad(scope, version):
    return f"fv-datakey:{scope}:{version}".encode()


def wrap(master_hex, scope, version, dk):
    """fv_datakey_wrap, in Python."""
    nonce = os.urandom(12)
    ct = AESGCM(subkey(master_hex, "fv-wrap-datakey")).encrypt(nonce, dk, aad(scope, version))
    return f"s1.{key_id(master_hex)}." + base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")


def unwrap(masters, scope, version, text):
    """fv_datakey_unwrap, in Python: the key bytes (raises when it does not open)."""
    m = re.fullmatch(r"s1\.([0-9a-f]{8})\.([A-Za-z0-9_-]+)", text)
    assert m, text
    master = next(k for k in masters if key_id(k) == m.group(1))
    raw = base64.urlsafe_b64decode(m.group(2) + "=" * (-len(m.group(2)) % 4))
    return AESGCM(subkey(master, "fv-wrap-datakey")).decrypt(raw[:12], raw[12:], aad(scope, version))


def scope():
    return f"org:{uuid.uuid4()}"


def counts(out, what):
    """The counts fvctl printed for what ("data keys", "TOTP secrets")."""
    m = re.search(rf"{what}: (\d+) re-\w+ under master key ([0-9a-f]{{8}}), (\d+) already under it, (\d+) changed "
                  r"meanwhile, (\d+) that open under no key", out)
    assert m, out
    return {"done": int(m[1]), "key": m[2], "current": int(m[3]), "changed": int(m[4]), "unopened": int(m[5])}


def left(out):
    m = re.search(r"left under another master key: (\d+) data key\(s\), (\d+) TOTP secret\(s\)", out)
    assert m, out
    return int(m[1]), int(m[2])


class Rows:
    """Data keys inserted by a test, wrapped in Python; deleted at the end."""

    def __init__(self, c):
        self.c, self.keys = c, {}

    def add(self, master_hex, sc, version, dk=None, wrapped=None):
        dk = dk or os.urandom(32)
        self.c.psql("INSERT INTO data_keys (scope, version, wrapped) VALUES (%s, %s, %s)", sc, version,
                    wrapped or wrap(master_hex, sc, version, dk))
        self.keys[(sc, version)] = dk
        return dk

    def wrapped(self, sc, version):
        return self.c.psql("SELECT wrapped FROM data_keys WHERE scope = %s AND version = %s", sc, version)[0][0]

    def delete(self):
        for sc, version in self.keys:
            self.c.psql("DELETE FROM data_keys WHERE scope = %s AND version = %s", sc, version)


@pytest.fixture()
def k1(migrated):
    return migrated.master_key.read_text().split()[0]


@pytest.fixture()
def restore(migrated, k1, tmp_path):
    """Puts every data key and TOTP secret back under K1 (k2s: the keys the test used) and deletes
    the rows the test inserted."""
    state = {"k2s": [], "rows": None}
    yield state
    back = tmp_path / "back.key"
    write_keys(back, k1, *state["k2s"])
    if state["rows"]:
        state["rows"].delete()
    r = migrated.fvctl(CMD, check=False, env=child_env(FV_KEY_FILE=back))
    assert r.returncode == 0, r.stdout + r.stderr
    assert left(r.stdout) == (0, 0), r.stdout


def no_secret(r, *secrets):
    out = r.stdout + r.stderr
    for s in secrets:
        assert s not in out
    assert not HEX64.search(out), out  # no key of any kind in hex


def test_new_key_rewrites_the_key_file_atomically(migrated, k1, tmp_path):
    c = migrated
    d = tmp_path / "keys"
    d.mkdir()
    path = d / "master.key"
    old_k = os.urandom(32).hex()
    before = f"# made at install\n{k1}\n\n# previous\n{old_k}\n"
    path.write_text(before)
    os.chmod(path, 0o600)
    env = child_env(FV_KEY_FILE=path)
    r = c.fvctl(CMD, "--new-key", env=env)
    after = path.read_text()
    new = after.split("\n", 1)[0]
    assert re.fullmatch(r"[0-9a-f]{64}", new), after
    assert after == new + "\n" + before  # the new key first, every old line as it was
    assert os.stat(path).st_mode & 0o7777 == 0o600
    assert sorted(os.listdir(d)) == ["master.key"]  # no temporary file left
    assert f"new master key {key_id(new)} is now the first" in r.stdout, r.stdout
    assert f"key 2: {key_id(k1)}" in r.stdout and f"key 3: {key_id(old_k)}" in r.stdout, r.stdout
    assert "restart every program" in r.stdout and f"fvctl {CMD}" in r.stdout
    no_secret(r, new, k1, old_k)
    # --new-key with --batch is bad usage
    assert c.fvctl(CMD, "--new-key", "--batch", "2", check=False, env=env).returncode == 2
    # up to FV_KEYS_MAX (8), then refused with the file unchanged
    for n in range(4, 9):
        c.fvctl(CMD, "--new-key", env=env)
        assert len([ln for ln in path.read_text().splitlines() if HEX64.fullmatch(ln)]) == n
    full = path.read_text()
    r = c.fvctl(CMD, "--new-key", check=False, env=env)
    assert r.returncode == 1 and "drop an old key first" in r.stderr, r.stderr
    assert path.read_text() == full and sorted(os.listdir(d)) == ["master.key"]
    no_secret(r)
    # a key file readable by others is refused as the programs refuse it, and left alone
    os.chmod(path, 0o640)
    r = c.fvctl(CMD, "--new-key", check=False, env=env)
    assert r.returncode == 1 and "readable by group or others" in r.stderr, r.stderr
    assert path.read_text() == full and sorted(os.listdir(d)) == ["master.key"]


def test_rotate_then_drop_the_old_key_data_keys_and_totp_still_open(migrated, k1, tmp_path, restore):
    c = migrated
    rows = restore["rows"] = Rows(c)
    scopes = [scope() for _ in range(4)]
    for sc in scopes:
        rows.add(k1, sc, 1)
    rows.add(k1, scopes[0], 2)  # a second version of one scope
    procs = []

    def fe(keyfile):
        port = free_port()
        procs.append(c.start_frontend(name=f"frontend-rotate-{len(procs)}", FV_LISTEN_PORT=port,
                                      FV_KEY_FILE=keyfile, FV_LOGIN_MAX_FAILURES_ADDRESS=100000))
        return Api(f"https://127.0.0.1:{port}", c.cert)

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

        # --new-key on a copy of the session's key file: K2 first, K1 kept
        both = tmp_path / "rotated.key"
        write_keys(both, k1)
        c.fvctl(CMD, "--new-key", env=child_env(FV_KEY_FILE=both))
        k2 = both.read_text().split()[0]
        restore["k2s"].append(k2)
        assert both.read_text().split() == [k2, k1]

        r = c.fvctl(CMD, "--batch", "2", env=child_env(FV_KEY_FILE=both))
        dk, tp = counts(r.stdout, "data keys"), counts(r.stdout, "TOTP secrets")
        assert dk["key"] == key_id(k2) and dk["done"] >= 5 and dk["unopened"] == 0, r.stdout
        assert tp["done"] >= 1 and tp["unopened"] == 0, r.stdout
        assert left(r.stdout) == (0, 0), r.stdout
        no_secret(r, secret, *(k.hex() for k in rows.keys.values()))
        for (sc, v), key in rows.keys.items():
            w = rows.wrapped(sc, v)
            assert w.startswith(f"s1.{key_id(k2)}."), w
            assert unwrap([k2], sc, v, w) == key  # the same key, under K2 alone
        assert c.psql("SELECT count(*) FROM data_keys WHERE scope = ANY(%s) AND rewrapped_at IS NULL",
                      scopes)[0][0] == 0
        assert sealed().startswith(f"s1.{key_id(k2)}.")

        # idempotent: a second run re-wraps and re-seals nothing
        again = c.fvctl(CMD, "--batch", "2", env=child_env(FV_KEY_FILE=both))
        dk2, tp2 = counts(again.stdout, "data keys"), counts(again.stdout, "TOTP secrets")
        assert (dk2["done"], tp2["done"]) == (0, 0), again.stdout
        assert dk2["current"] >= 5 and tp2["current"] >= 1, again.stdout
        unchanged = {kv: rows.wrapped(*kv) for kv in rows.keys}

        # K1 dropped from the key file: every row still opens, nothing is left to do
        only_new = tmp_path / "k2.key"
        write_keys(only_new, k2)
        r = c.fvctl(CMD, env=child_env(FV_KEY_FILE=only_new))
        assert counts(r.stdout, "data keys")["done"] == 0 and left(r.stdout) == (0, 0), r.stdout
        assert {kv: rows.wrapped(*kv) for kv in rows.keys} == unchanged
        for (sc, v), key in rows.keys.items():
            assert unwrap([k2], sc, v, rows.wrapped(sc, v)) == key
        # and TOTP login works under K2 alone, with the same authenticator
        anon2 = fe(only_new)
        r = login(anon2, mail)
        assert r.status_code == 401 and r.json()["error"]["code"] == "totp_required", r.text
        r = login(anon2, mail, STRONG, totp=totp(secret, s + 1))
        assert r.status_code == 200, r.text
        assert r.json()["mfa"] is True
        # `fvctl reseal` still works as before (nothing left under another key)
        r = c.fvctl("reseal", env=child_env(FV_KEY_FILE=only_new))
        assert r.stdout.startswith(f"fvctl reseal: 0 TOTP secret(s) re-sealed under key {key_id(k2)}"), r.stdout
    finally:
        for p in procs:
            assert p.stop(signal.SIGTERM, timeout=30) == 0


def test_a_data_key_that_opens_under_no_key_is_named_exit_1(migrated, k1, tmp_path, restore):
    c = migrated
    rows = restore["rows"] = Rows(c)
    k2, k9 = os.urandom(32).hex(), os.urandom(32).hex()
    restore["k2s"].append(k2)
    good, tampered, foreign, moved, odd = scope(), scope(), scope(), scope(), scope()
    rows.add(k1, good, 1)
    rows.add(k1, odd, 1, wrapped="s1." + "x" * 5000)  # not the shape of a wrapped key at all
    w = wrap(k1, tampered, 3, os.urandom(32))
    flip = w[:-6] + ("A" if w[-6] != "A" else "B") + w[-5:]
    rows.add(k1, tampered, 3, wrapped=flip)  # a flipped character
    rows.add(k9, foreign, 1)                  # wrapped by a master key not in the file
    rows.add(k1, moved, 2, wrapped=wrap(k1, moved, 1, os.urandom(32)))  # another version's wrap
    rows.add(k1, moved, 1)
    both = tmp_path / "k2k1.key"
    write_keys(both, k2, k1)
    r = c.fvctl(CMD, "--batch", "1", check=False, env=child_env(FV_KEY_FILE=both))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"data key {tampered} v3: does not open under master key {key_id(k1)}" in r.stderr, r.stderr
    assert f"data key {foreign} v1: wrapped by master key {key_id(k9)}, which is not in the key file" in r.stderr
    assert f"data key {moved} v2: does not open" in r.stderr, r.stderr
    assert f"data key {odd} v1: not a wrapped key" in r.stderr, r.stderr
    assert f"{moved} v1" not in r.stderr and good not in r.stderr
    dk = counts(r.stdout, "data keys")
    assert dk["unopened"] == 4 and dk["done"] >= 2, r.stdout
    assert left(r.stdout)[0] == 4, r.stdout
    no_secret(r, k9, *(k.hex() for k in rows.keys.values()))
    # the bad rows are left as they were, the good ones carried on past them
    assert rows.wrapped(tampered, 3) == flip
    assert rows.wrapped(foreign, 1).startswith(f"s1.{key_id(k9)}.")
    for sc, v in ((good, 1), (moved, 1)):
        assert unwrap([k2], sc, v, rows.wrapped(sc, v)) == rows.keys[(sc, v)]
    # a second run: the same four, nothing else
    r = c.fvctl(CMD, check=False, env=child_env(FV_KEY_FILE=both))
    assert r.returncode == 1 and counts(r.stdout, "data keys")["unopened"] == 4, r.stdout
    assert counts(r.stdout, "data keys")["done"] == 0, r.stdout
    # restore deletes them (they would stop every later run)


def test_batches_of_one_and_a_run_in_several_goes_converge(migrated, k1, tmp_path, restore):
    c = migrated
    rows = restore["rows"] = Rows(c)
    k2 = os.urandom(32).hex()
    restore["k2s"].append(k2)
    both = tmp_path / "k2k1.key"
    write_keys(both, k2, k1)
    env = child_env(FV_KEY_FILE=both)
    # several versions of one scope (pagination within a scope) and several scopes; two rows are
    # already under K2, as a run stopped half-way leaves them
    a, b, z = scope(), scope(), scope()
    for v in (1, 2, 3):
        rows.add(k1, a, v)
    rows.add(k2, b, 1)
    rows.add(k1, b, 2)
    rows.add(k2, z, 1)
    r = c.fvctl(CMD, "--batch", "1", env=env)
    dk = counts(r.stdout, "data keys")
    assert dk["done"] >= 4 and dk["current"] >= 2 and dk["unopened"] == 0, r.stdout
    assert left(r.stdout) == (0, 0)
    for (sc, v), key in rows.keys.items():
        assert unwrap([k2], sc, v, rows.wrapped(sc, v)) == key

    # rows made between two runs (by a program not yet restarted, under K1): the next run takes them
    late = [scope() for _ in range(3)]
    for sc in late:
        rows.add(k1, sc, 1)
    r = c.fvctl(CMD, "--batch", "1", env=env)
    assert counts(r.stdout, "data keys")["done"] == 3, r.stdout
    for sc in late:
        assert unwrap([k2], sc, 1, rows.wrapped(sc, 1)) == rows.keys[(sc, 1)]

    # a row changed between fvctl's read and its write (here: re-wrapped by someone else while
    # fvctl waits for the row lock) is left to the other writer: compare-and-set
    x = scope()
    rows.add(k1, x, 1)
    other = wrap(k2, x, 1, rows.keys[(x, 1)])
    conn = c.pg.connect(autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("UPDATE data_keys SET wrapped = %s WHERE scope = %s AND version = 1", (other, x))
            p = subprocess.Popen([binary("fvctl"), "-c", str(c.conf), CMD, "--batch", "1"], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                wait_until(lambda: c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fvctl' "
                                          "AND wait_event_type = 'Lock'")[0][0] == 1,
                           30, what="fvctl waiting for the locked row")
                conn.commit()
                out, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    finally:
        conn.close()
    assert p.returncode == 0, out + err
    dk = counts(out, "data keys")
    assert dk["changed"] == 1 and dk["done"] == 0, out
    assert rows.wrapped(x, 1) == other  # the other writer's text stands


# ---- rotation without downtime: a standby key, then promoted (docs/operations.md section 12) ----

def ids_in(path):
    return [key_id(ln.strip()) for ln in path.read_text().splitlines() if HEX64.fullmatch(ln.strip())]


def test_standby_then_promote_edit_the_key_file(migrated, k1, tmp_path):
    c = migrated
    d = tmp_path / "keys"
    d.mkdir()
    path = d / "master.key"
    old_k = os.urandom(32).hex()
    before = f"# made at install\n{k1}\n\n# previous\n{old_k}\n"
    path.write_text(before)
    os.chmod(path, 0o600)
    env = child_env(FV_KEY_FILE=path)

    # --new-key --standby: the new key second, just after the first key's line, the rest as it was
    r = c.fvctl(CMD, "--new-key", "--standby", env=env)
    lines = path.read_text().split("\n")
    k2 = lines[2]
    assert re.fullmatch(r"[0-9a-f]{64}", k2) and k2 not in (k1, old_k), lines
    assert path.read_text() == f"# made at install\n{k1}\n{k2}\n\n# previous\n{old_k}\n"
    assert ids_in(path) == [key_id(k1), key_id(k2), key_id(old_k)]
    assert os.stat(path).st_mode & 0o7777 == 0o600
    assert sorted(os.listdir(d)) == ["master.key"]
    assert f"new master key {key_id(k2)} is a standby" in r.stdout, r.stdout
    assert f"key 1: {key_id(k1)} (current)" in r.stdout and f"key 2: {key_id(k2)} (new, standby)" in r.stdout
    assert f"--promote {key_id(k2)}" in r.stdout, r.stdout
    no_secret(r, k1, k2, old_k)

    # with the standby in place the current key is still K1: the re-wrap run wraps under K1, not K2
    r = c.fvctl(CMD, check=False, env=env)
    assert counts(r.stdout, "data keys")["key"] == key_id(k1), r.stdout

    # usage errors (exit 2), the file untouched
    standby_text = path.read_text()
    for args in (["--standby"], ["--standby", "--batch", "5"], ["--new-key", "--standby", "--batch", "5"],
                 ["--promote", key_id(k2), "--new-key"], ["--promote", key_id(k2), "--batch", "5"],
                 ["--promote", key_id(k2), "--promote", key_id(k1)], ["--promote", "zz"],
                 ["--promote", key_id(k2) + "0"], ["--promote", k2], ["--promote", ""]):
        r = c.fvctl(CMD, *args, check=False, env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert path.read_text() == standby_text
        no_secret(r, k1, k2, old_k)
    # an id no key of the file has: exit 1, the file's ids listed
    stranger = key_id(os.urandom(32).hex())
    r = c.fvctl(CMD, "--promote", stranger, check=False, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"has the id {stranger} (its keys, in order: {key_id(k1)} {key_id(k2)} {key_id(old_k)})" in r.stderr
    assert path.read_text() == standby_text

    # --promote: K2's line moves to the top, the others stay in their order (typed in capitals too)
    r = c.fvctl(CMD, "--promote", key_id(k2).upper(), env=env)
    assert path.read_text() == f"{k2}\n# made at install\n{k1}\n\n# previous\n{old_k}\n"
    assert ids_in(path) == [key_id(k2), key_id(k1), key_id(old_k)]
    assert os.stat(path).st_mode & 0o7777 == 0o600
    assert sorted(os.listdir(d)) == ["master.key"]
    assert f"master key {key_id(k2)} is now the first (current) of the 3 key(s)" in r.stdout, r.stdout
    no_secret(r, k1, k2, old_k)
    # promoting the current key again: nothing written (the same inode), exit 0
    ino = os.stat(path).st_ino
    r = c.fvctl(CMD, "--promote", key_id(k2), env=env)
    assert "already: nothing written" in r.stdout and os.stat(path).st_ino == ino, r.stdout
    # back to K1 (an operator undoing a promotion before the restarts): K1 first, K2 second
    c.fvctl(CMD, "--promote", key_id(k1), env=env)
    assert ids_in(path) == [key_id(k1), key_id(k2), key_id(old_k)]

    # what the programs refuse is refused for both, and left alone
    os.chmod(path, 0o640)
    for args in (["--new-key", "--standby"], ["--promote", key_id(k2)]):
        r = c.fvctl(CMD, *args, check=False, env=env)
        assert r.returncode == 1 and "readable by group or others" in r.stderr, r.stderr
    os.chmod(path, 0o600)
    # a full file (FV_KEYS_MAX, 8 keys) takes no standby; promoting within it still works
    for _ in range(5):
        c.fvctl(CMD, "--new-key", "--standby", env=env)
    assert len(ids_in(path)) == 8 and ids_in(path)[0] == key_id(k1)
    full = path.read_text()
    r = c.fvctl(CMD, "--new-key", "--standby", check=False, env=env)
    assert r.returncode == 1 and "drop an old key first" in r.stderr, r.stderr
    assert path.read_text() == full and sorted(os.listdir(d)) == ["master.key"]
    c.fvctl(CMD, "--promote", key_id(old_k), env=env)
    assert ids_in(path)[0] == key_id(old_k) and len(ids_in(path)) == 8


def token_kid(token):
    """The key id a session token says it is signed with (common/fv_token.c: fvs_ b64(v1|kid|...).mac)."""
    body = token[len("fvs_"):].split(".")[0]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("|")[1]


def test_no_downtime_sessions_across_a_rolling_restart(migrated, k1, tmp_path, restore):
    """Front ends side by side as a rolling restart has them: A on [K1] (not yet restarted), B on
    [K1, K2] (restarted after --new-key --standby): each accepts the other's sessions. Then B
    restarted on [K2, K1] (after --promote) beside C on [K1, K2] (the second rolling restart's
    middle): each accepts the other's. And plain --new-key, D on [K3, K1] beside A on [K1]: A
    refuses D's sessions, the window the standby step closes."""
    c = migrated
    procs = []

    def fe(keyfile, tag):
        port = free_port()
        p = c.start_frontend(name=f"frontend-nodowntime-{tag}", FV_LISTEN_PORT=port, FV_KEY_FILE=keyfile,
                             FV_LOGIN_MAX_FAILURES_ADDRESS=100000)
        procs.append(p)
        return p, Api(f"https://127.0.0.1:{port}", c.cert)

    def me(api, token):
        r = api.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        return r.status_code

    # the files as fvctl makes them on one host and copies to the others
    host = tmp_path / "host.key"
    write_keys(host, k1)
    old = tmp_path / "a.key"
    write_keys(old, k1)
    c.fvctl(CMD, "--new-key", "--standby", env=child_env(FV_KEY_FILE=host))
    k2 = host.read_text().split()[1]
    restore["k2s"].append(k2)
    standby = tmp_path / "standby.key"
    standby.write_text(host.read_text())
    os.chmod(standby, 0o600)
    c.fvctl(CMD, "--promote", key_id(k2), env=child_env(FV_KEY_FILE=host))
    promoted = tmp_path / "promoted.key"
    promoted.write_text(host.read_text())
    os.chmod(promoted, 0o600)
    assert ids_in(standby) == [key_id(k1), key_id(k2)] and ids_in(promoted) == [key_id(k2), key_id(k1)]
    i1, i2 = key_id(k1), key_id(k2)
    try:
        pa, a = fe(old, "a")
        mail = email()
        signup(a, mail, c=c)
        # step 2 of the procedure, the first rolling restart: A not yet restarted, B restarted
        pb, b = fe(standby, "b")
        assert f"signs, seals and wraps under {i1}, also opens {i2}" in pb.log_path.read_text()
        la = pa.log_path.read_text()
        assert f"1 key(s): signs, seals and wraps under {i1}" in la and "also opens" not in la, la
        ta, tb = token_of(a, mail), token_of(b, mail)
        assert token_kid(tb) == i1  # the standby signs nothing yet
        assert (me(a, tb), me(b, ta), me(a, ta), me(b, tb)) == (200, 200, 200, 200)

        # step 4, the second rolling restart: B restarted on the promoted file, C still on standby
        assert pb.stop(signal.SIGTERM, timeout=30) == 0
        pb2, b2 = fe(promoted, "b-promoted")
        assert f"signs, seals and wraps under {i2}, also opens {i1}" in pb2.log_path.read_text()
        pc, cc = fe(standby, "c")
        tb2, tc = token_of(b2, mail), token_of(cc, mail)
        assert token_kid(tb2) == i2 and token_kid(tc) == i1
        assert (me(cc, tb2), me(b2, tc)) == (200, 200)
        # sessions signed before any restart still verify everywhere
        assert (me(b2, ta), me(cc, ta), me(b2, tb)) == (200, 200, 200)
        # once everybody is on [K2, K1], A's old file would be the only one that fails: with the
        # standby procedure no program on [K1] alone runs beside one on [K2, K1]

        # plain --new-key instead (the single-host variant): D restarted on [K3, K1] beside A on [K1]
        plain = tmp_path / "plain.key"
        write_keys(plain, k1)
        c.fvctl(CMD, "--new-key", env=child_env(FV_KEY_FILE=plain))
        k3 = plain.read_text().split()[0]
        restore["k2s"].append(k3)
        pd, dd = fe(plain, "d-plain")
        td = token_of(dd, mail)
        assert token_kid(td) == key_id(k3)
        r = a.get("/v1/me", headers={"Authorization": f"Bearer {td}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token", r.text
        assert me(dd, ta) == 200  # the other way works: D still holds K1
    finally:
        for p in procs:
            if p.alive():
                assert p.stop(signal.SIGTERM, timeout=30) == 0


@pytest.fixture()
def stopped_workers(world):
    """The default workers stopped for the test (the entries stay in the stream to be looked at),
    started again after it."""
    c = world.cluster
    c.wait_drained()
    c.stop_all_workers()
    yield c
    c.stop_all_workers()
    c.start_default_workers()


def test_no_downtime_queue_entry_of_a_promoted_front_end_opens_in_a_standby_worker(
        world, stopped_workers, k1, tmp_path, restore):
    """The second rolling restart's middle for the queue: a front end restarted on [K2, K1] seals
    under K2; a worker not yet restarted, on [K1, K2] since the first rolling restart, opens it
    and stores it (no dead letter, no requeue). A front end on [K1, K2] seals under K1."""
    import requests
    from test_queue_sealing import dead_with, entry_of, fields_of
    c = stopped_workers
    k2 = os.urandom(32).hex()
    restore["k2s"].append(k2)
    standby, promoted = tmp_path / "standby.key", tmp_path / "promoted.key"
    write_keys(standby, k1, k2)
    write_keys(promoted, k2, k1)
    procs, ids = [], {}
    try:
        for name, keyfile in (("promoted", promoted), ("standby", standby)):
            port = free_port()
            procs.append(c.start_frontend(name=f"frontend-queue-{name}", FV_LISTEN_PORT=port, FV_KEY_FILE=keyfile))
            rid = ids[name] = str(uuid.uuid4())
            r = requests.post(f"https://127.0.0.1:{port}/v1/deployments/{world.deployment_id}/responses",
                              json={"id": rid, "data": {"household": f"sealed by the {name} front end",
                                                        "members": 2}},
                              headers={"Authorization": f"Bearer {world.enum_key}"}, verify=str(c.cert), timeout=30)
            assert r.status_code == 202, r.text
    finally:
        for p in procs:
            assert p.stop(signal.SIGTERM, timeout=30) == 0
    sealed = {n: fields_of(entry_of(c, rid)[1])["sealed"] for n, rid in ids.items()}
    assert sealed["promoted"].startswith(f"q1.{key_id(k2)}."), sealed
    assert sealed["standby"].startswith(f"q1.{key_id(k1)}."), sealed  # the standby seals nothing yet
    w = c.start_worker("rotate-standby", FV_KEY_FILE=str(standby))
    for name, rid in ids.items():
        assert world.wait_readable(rid)["data"]["household"] == f"sealed by the {name} front end"
    assert w.alive()
    assert [d for rid in ids.values() for d in dead_with(c, rid)] == []
    assert f"signs, seals and wraps under {key_id(k1)}, also opens {key_id(k2)}" in w.log_path.read_text()


# ---- the last step: --drop ID, refused while anything is still under the key (section 12) ----

def seal(master_hex, label, aad_text, pt):
    """fv_seal, in Python (a TOTP secret: label "fv-seal-totp", associated data "totp:<user id>")."""
    nonce = os.urandom(12)
    ct = AESGCM(subkey(master_hex, label)).encrypt(nonce, pt, aad_text.encode())
    return f"s1.{key_id(master_hex)}." + base64.urlsafe_b64encode(nonce + ct).decode().rstrip("=")


def drop(c, path, kid, *more, env=None):
    return c.fvctl(CMD, "--drop", kid, *more, check=False, env=child_env(FV_KEY_FILE=path, **(env or {})))


FOUND = {"data_keys": r"data keys wrapped under it \(data_keys\): (\d+|not checked)",
         "totp": r"TOTP secrets sealed under it \(users\.totp_secret\): (\d+|not checked)",
         "queued": r"queue entries sealed under it on fv:submissions: (\d+|not checked)",
         "dead": r"dead letters sealed under it on fv:dead: (\d+|not checked)"}


def found(out):
    """What --drop reported under the key, per kind: a count, or None when not checked."""
    got = {}
    for kind, pat in FOUND.items():
        m = re.search(pat, out)
        assert m, (kind, out)
        got[kind] = None if m[1] == "not checked" else int(m[1])
    return got


NOTHING = {"data_keys": 0, "totp": 0, "queued": 0, "dead": 0}


def old_key_file(tmp_path, k1, kold):
    """A key file after --promote: K1 first, the old key after it, with comments."""
    d = tmp_path / "keys"
    d.mkdir(exist_ok=True)
    path = d / "master.key"
    path.write_text(f"# current, promoted\n{k1}\n\n# the old key, going\n{kold}\n# end\n")
    os.chmod(path, 0o600)
    return path


def assert_refused(r, path, before, kid, *secrets):
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"master key {kid} not dropped (nothing written)" in r.stderr, r.stderr
    assert path.read_text() == before and sorted(os.listdir(path.parent)) == [path.name]
    no_secret(r, *secrets)


def assert_dropped(r, path, k1, kid, *secrets):
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"master key {kid} dropped from {path}" in r.stdout, r.stdout
    # its line gone, every other line (the comment above it too) where it was
    assert path.read_text() == f"# current, promoted\n{k1}\n\n# the old key, going\n# end\n"
    assert ids_in(path) == [key_id(k1)]
    assert os.stat(path).st_mode & 0o7777 == 0o600
    assert sorted(os.listdir(path.parent)) == [path.name]  # no temporary file left
    no_secret(r, *secrets)


def assert_names_what_it_cannot_check(out, kid):
    assert "not checked (fvctl cannot see them" in out, out
    assert "spool files" in out and "/readyz" in out and "spool_pending" in out, out
    assert f"session tokens signed under {kid}" in out and "session_ttl_s" in out, out
    assert "Valid sessions now:" in out, out


def test_drop_refused_while_a_data_key_is_under_the_key_allowed_after_the_rewrap(migrated, k1, tmp_path,
                                                                                  restore):
    c = migrated
    rows = restore["rows"] = Rows(c)
    kold = os.urandom(32).hex()
    restore["k2s"].append(kold)
    kid = key_id(kold)
    sc, other = scope(), scope()
    rows.add(kold, sc, 1)
    rows.add(kold, sc, 2)
    rows.add(k1, other, 1)  # under the current key: not counted
    path = old_key_file(tmp_path, k1, kold)
    before = path.read_text()
    r = drop(c, path, kid)
    assert_refused(r, path, before, kid, k1, kold)
    assert found(r.stdout) == dict(NOTHING, data_keys=2), r.stdout
    assert f"{sc} v1, {sc} v2" in r.stdout and other not in r.stdout, r.stdout
    assert f"key 2 of 2 in {path}" in r.stdout, r.stdout
    assert f"not dropped (nothing written): still under it: 2 data key(s)\n" in r.stderr, r.stderr
    assert "run `fvctl rotate-master-key` (without options)" in r.stderr, r.stderr
    assert_names_what_it_cannot_check(r.stdout, kid)
    # the re-wrap brings them under K1; then the drop goes through (the id typed in capitals)
    r = c.fvctl(CMD, env=child_env(FV_KEY_FILE=path))
    assert left(r.stdout) == (0, 0), r.stdout
    r = drop(c, path, kid.upper())
    assert found(r.stdout) == NOTHING, r.stdout
    assert_dropped(r, path, k1, kid, k1, kold)
    assert_names_what_it_cannot_check(r.stdout, kid)
    assert "copy" in r.stdout and "restart" in r.stdout, r.stdout
    for v in (1, 2):  # and they open under K1 alone
        assert unwrap([k1], sc, v, rows.wrapped(sc, v)) == rows.keys[(sc, v)]
    # the key is gone: dropping it again is an unknown id
    r = drop(c, path, kid)
    assert r.returncode == 1 and f"has the id {kid} (its keys, in order: {key_id(k1)})" in r.stderr, r.stderr


def test_drop_refused_while_a_totp_secret_is_under_the_key(frontend, k1, tmp_path, restore):
    c = frontend
    kold = os.urandom(32).hex()
    restore["k2s"].append(kold)
    kid = key_id(kold)
    uid = c.api(c.create_user(email(), "Tia Totp")).get("/v1/me").json()["id"]
    secret = os.urandom(20)
    c.psql("UPDATE users SET totp_secret = %s WHERE id = %s", seal(kold, "fv-seal-totp", f"totp:{uid}", secret),
           uid)
    try:
        path = old_key_file(tmp_path, k1, kold)
        before = path.read_text()
        r = drop(c, path, kid)
        assert_refused(r, path, before, kid, k1, kold, secret.hex())
        assert found(r.stdout) == dict(NOTHING, totp=1), r.stdout
        assert uid in r.stdout, r.stdout
        r = c.fvctl(CMD, env=child_env(FV_KEY_FILE=path))
        assert counts(r.stdout, "TOTP secrets")["done"] >= 1 and left(r.stdout) == (0, 0), r.stdout
        r = drop(c, path, kid)
        assert found(r.stdout) == NOTHING, r.stdout
        assert_dropped(r, path, k1, kid, k1, kold, secret.hex())
        sealed = c.psql("SELECT totp_secret FROM users WHERE id = %s", uid)[0][0]
        assert sealed.startswith(f"s1.{key_id(k1)}.")
    finally:
        c.psql("UPDATE users SET totp_secret = NULL WHERE id = %s", uid)


def test_drop_refused_while_a_queue_entry_or_dead_letter_is_under_the_key(world, stopped_workers, k1, tmp_path,
                                                                           restore):
    """A front end not yet restarted after --promote ([Kold, K1]) sealed an entry under Kold: the drop
    is refused while it is on the stream, then while it is a dead letter (a worker without Kold took
    it), then again once requeued; a worker that holds Kold stores it and the drop goes through."""
    import requests
    from test_queue_sealing import dead_with, entry_of, fields_of
    c = stopped_workers
    kold = os.urandom(32).hex()
    restore["k2s"].append(kold)
    kid = key_id(kold)
    not_restarted, k1_only, both = tmp_path / "fe.key", tmp_path / "k1.key", tmp_path / "both.key"
    write_keys(not_restarted, kold, k1)
    write_keys(k1_only, k1)
    write_keys(both, k1, kold)
    port = free_port()
    fe = c.start_frontend(name="frontend-drop", FV_LISTEN_PORT=port, FV_KEY_FILE=not_restarted)
    rid = str(uuid.uuid4())
    try:
        r = requests.post(f"https://127.0.0.1:{port}/v1/deployments/{world.deployment_id}/responses",
                          json={"id": rid, "data": {"household": "sealed under the old key", "members": 3}},
                          headers={"Authorization": f"Bearer {world.enum_key}"}, verify=str(c.cert), timeout=30)
        assert r.status_code == 202, r.text
    finally:
        assert fe.stop(signal.SIGTERM, timeout=30) == 0
    eid, flat = entry_of(c, rid)
    assert fields_of(flat)["sealed"].startswith(f"q1.{kid}.")
    path = old_key_file(tmp_path, k1, kold)
    before = path.read_text()

    # on the submissions stream
    r = drop(c, path, kid)
    assert_refused(r, path, before, kid, k1, kold)
    got = found(r.stdout)
    assert got == dict(NOTHING, queued=1), r.stdout
    assert f"on fv:submissions: 1 of {c.redis_cli('XLEN', c.STREAM)} ({eid})" in r.stdout, r.stdout
    assert "still under it: 1 queue entry(ies) on fv:submissions\n" in r.stderr, r.stderr
    assert "let the workers store them" in r.stderr, r.stderr

    # dead-lettered by a worker without Kold
    w = c.start_worker("drop-k1only", FV_KEY_FILE=str(k1_only))
    dead = wait_until(lambda: dead_with(c, rid), 60, what="the entry dead-lettered by a worker without the old key")
    c.stop_worker(w)
    r = drop(c, path, kid)
    assert_refused(r, path, before, kid, k1, kold)
    assert found(r.stdout) == dict(NOTHING, dead=1), r.stdout
    assert f"({dead[0][0]})" in r.stdout and "fvctl requeue" in r.stderr, r.stdout + r.stderr

    # requeued: on the stream again
    c.fvctl("requeue", dead[0][0])
    r = drop(c, path, kid)
    assert_refused(r, path, before, kid, k1, kold)
    assert found(r.stdout) == dict(NOTHING, queued=1), r.stdout

    # a worker that holds Kold stores it; with the stream drained the drop goes through
    w = c.start_worker("drop-both", FV_KEY_FILE=str(both))
    assert world.wait_readable(rid)["data"]["household"] == "sealed under the old key"
    c.wait_drained()
    c.stop_worker(w)
    r = drop(c, path, kid)
    assert found(r.stdout) == NOTHING, r.stdout
    assert_dropped(r, path, k1, kid, k1, kold)


def test_drop_reads_long_streams_in_pages(world, stopped_workers, k1, tmp_path):
    """More entries than a page (500), one of them of 2 MiB (smaller pages from then on): the entries
    under the key are found wherever they are, and only a `sealed` field counts."""
    c = stopped_workers
    kold = os.urandom(32).hex()
    kid = key_id(kold)
    other = key_id(os.urandom(32).hex())
    added = {c.STREAM: [], c.DEAD: []}

    def add(stream, sealed, **extra):
        flat = ["v", "1", "id", str(uuid.uuid4()), "sealed", sealed]
        for k, v in extra.items():
            flat += [k, v]
        added[stream].append(c.redis_cli("XADD", stream, "*", *flat))
        return added[stream][-1]

    try:
        first = add(c.DEAD, f"q1.{kid}.AAAA", error="test")
        add(c.DEAD, f"q1.{other}.AAAA", error="x" * (2 << 20))
        for i in range(1200):
            # an answer or an error that looks like a seal under the key is not one
            add(c.DEAD, f"q1.{other}.AAAA", error=f"q1.{kid}.AAAA", note=f"q1.{kid}.{i}")
        last = add(c.DEAD, f"q1.{kid}.BBBB", error="test")
        for i in range(620):
            add(c.STREAM, f"q1.{other}.AAAA")
        queued = add(c.STREAM, f"q1.{kid}.CCCC")
        path = old_key_file(tmp_path, k1, kold)
        before = path.read_text()
        r = drop(c, path, kid)
        assert_refused(r, path, before, kid, k1, kold)
        assert found(r.stdout) == dict(NOTHING, queued=1, dead=2), r.stdout
        assert (f"on fv:dead: 2 of {c.redis_cli('XLEN', c.DEAD)} (the oldest {first}, the newest {last})"
                in r.stdout), r.stdout
        assert f"on fv:submissions: 1 of {c.redis_cli('XLEN', c.STREAM)} ({queued})" in r.stdout, r.stdout
        assert "still under it: 1 queue entry(ies) on fv:submissions, 2 dead letter(s) on fv:dead\n" in r.stderr, \
            r.stderr
    finally:
        for stream, ids in added.items():
            for i in range(0, len(ids), 200):
                c.redis_cli("XDEL", stream, *ids[i:i + 200])
    r = drop(c, path, kid)
    assert found(r.stdout) == NOTHING, r.stdout
    assert_dropped(r, path, k1, kid, k1, kold)


def test_drop_force_drops_anyway_and_says_what_it_found(migrated, k1, tmp_path, restore):
    c = migrated
    rows = restore["rows"] = Rows(c)
    kold = os.urandom(32).hex()
    restore["k2s"].append(kold)
    kid = key_id(kold)
    sc = scope()
    rows.add(kold, sc, 1)
    path = old_key_file(tmp_path, k1, kold)
    before = path.read_text()
    # Redis cannot be reached: not checked, so refused too (with nothing found elsewhere)
    r = drop(c, path, kid, env={"FV_REDIS_PORT": free_port()})
    assert_refused(r, path, before, kid, k1, kold)
    assert found(r.stdout) == dict(NOTHING, data_keys=1, queued=None, dead=None), r.stdout
    assert "still under it: 1 data key(s); and not everything could be checked" in r.stderr, r.stderr
    assert "cannot connect to Redis" in r.stderr, r.stderr
    # nor PostgreSQL
    r = drop(c, path, kid, env={"FV_PG_DSN": f"host=127.0.0.1 port={free_port()} dbname=x user=x"})
    assert_refused(r, path, before, kid, k1, kold)
    assert found(r.stdout) == dict(NOTHING, data_keys=None, totp=None), r.stdout
    # --force: dropped all the same, saying what is under it
    r = drop(c, path, kid, "--force")
    assert found(r.stdout) == dict(NOTHING, data_keys=1), r.stdout
    assert f"--force: dropping master key {kid} although still under it: 1 data key(s)\n" in r.stderr, r.stderr
    assert f"master key {kid} dropped from {path} (--force)" in r.stdout, r.stdout
    assert_dropped(r, path, k1, kid, k1, kold)
    # and that data key now opens under no key of the file: the price of --force
    r = c.fvctl(CMD, check=False, env=child_env(FV_KEY_FILE=path))
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"data key {sc} v1: wrapped by master key {kid}, which is not in the key file" in r.stderr, r.stderr


def test_drop_refusals(migrated, k1, tmp_path):
    """The first (current) key, an id no key has, the only key, a file the programs refuse (exit 1);
    an id not of the shape and options that do not go together (exit 2). Nothing is checked in the
    database for them and the file is left as it was."""
    c = migrated
    k2 = os.urandom(32).hex()
    path = old_key_file(tmp_path, k1, k2)
    before = path.read_text()
    env = child_env(FV_KEY_FILE=path)

    def refused(rc, args, expect):
        r = c.fvctl(CMD, *args, check=False, env=env)
        assert r.returncode == rc, (args, r.stdout, r.stderr)
        assert expect in r.stderr, (args, r.stderr)
        assert "what is still under it" not in r.stdout, r.stdout
        assert path.read_text() == before and sorted(os.listdir(path.parent)) == [path.name]
        no_secret(r, k1, k2)

    refused(1, ["--drop", key_id(k1)], f"key {key_id(k1)} is the first (current) key of {path}")
    refused(1, ["--drop", key_id(k1), "--force"], "is the first (current) key")  # --force does not lift it
    stranger = key_id(os.urandom(32).hex())
    refused(1, ["--drop", stranger], f"has the id {stranger} (its keys, in order: {key_id(k1)} {key_id(k2)})")
    for bad in ("zz", key_id(k2) + "0", key_id(k2)[:7], k2, "", "--force", "\x1b[31mabcdef"):
        refused(2, ["--drop", bad], "--drop takes a key id")
    for args in (["--drop", key_id(k2), "--promote", key_id(k2)], ["--drop", key_id(k2), "--new-key"],
                 ["--drop", key_id(k2), "--new-key", "--standby"], ["--drop", key_id(k2), "--batch", "5"],
                 ["--drop", key_id(k2), "--drop", key_id(k2)], ["--force"], ["--new-key", "--force"],
                 ["--drop", key_id(k2), "extra"]):
        r = c.fvctl(CMD, *args, check=False, env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert path.read_text() == before
    os.chmod(path, 0o640)
    refused(1, ["--drop", key_id(k2)], "readable by group or others")
    os.chmod(path, 0o600)
    # the only key
    only = tmp_path / "only.key"
    write_keys(only, k1)
    r = c.fvctl(CMD, "--drop", key_id(k1), check=False, env=child_env(FV_KEY_FILE=only))
    assert r.returncode == 1 and "is the only key of" in r.stderr, r.stderr
    assert only.read_text() == k1 + "\n"
    # the usage names it
    r = c.fvctl(CMD, "--help")
    assert "--drop ID [--force]" in r.stdout and "spool" in r.stdout, r.stdout
