"""End-to-end encryption in the ODK format (issue 12, migration 022, common/fv_odkcrypt.h): a survey
carries an RSA public key (POST /v1/surveys, PUT .../definition, an XForm's <submission
base64RsaPublicKey>); submissions arrive as envelopes encrypted by the client (here a Python test
client using the `cryptography` module, in ODK Collect's format), are stored as received, shown as
envelopes by reads, lists, history and exports, and opened offline by fv-decrypt with the private
key, byte for byte. Answers in clear to such a survey, bad keys and bad envelopes are 422; a
tampered export or the wrong key is an error naming the submission."""
import base64
import hashlib
import io
import json
import os
import pathlib
import subprocess
import tempfile
import zipfile

import pytest

from accesshelp import User, add_plain_member, denied, list_all, ok
from fvharness import binary, new_id, wait_until

crypto = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

FIXTURES = pathlib.Path(os.environ.get("FV_ODK_FIXTURES") or
                        pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk")
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "keys").is_dir(), reason="no ODK fixtures")
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
DEFINITION = {"questions": [{"name": "name", "type": "text", "label": "Name", "required": True},
                            {"name": "age", "type": "integer", "label": "Age"}]}


def new_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def pub_pem(key):
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pub_der_b64(key):
    return base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()


def priv_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def iv_of(instance_id, key, n):
    seed = bytearray(hashlib.md5(instance_id.encode() + key).digest())
    for i in range(n + 1):
        seed[i % 16] = (seed[i % 16] + 1) & 0xFF
    return bytes(seed)


def encrypt_file(key, instance_id, n, plain):
    pad = 16 - len(plain) % 16
    enc = Cipher(algorithms.AES(key), modes.CFB(iv_of(instance_id, key, n))).encryptor()
    return enc.update(plain + bytes([pad]) * pad) + enc.finalize()


def envelope(public_key, form_id, version, xml, media=(), instance_id=None):
    """An encrypted submission as ODK Collect makes it, in the JSON API's envelope: media files
    first (IV 0, 1, ...), the XML last; the signature wraps md5 of the element signature source."""
    instance_id = instance_id or f"uuid:{new_id()}"
    key = os.urandom(32)
    wrapped = base64.b64encode(public_key.encrypt(key, OAEP)).decode()
    parts = []
    source = f"{form_id}\n" + (f"{version}\n" if version else "") + f"{wrapped}\n{instance_id}\n"
    for i, (name, data) in enumerate(media):
        parts.append({"name": name + ".enc", "content": base64.b64encode(encrypt_file(key, instance_id, i, data)).decode()})
        source += f"{name}::{hashlib.md5(data).hexdigest()}\n"
    source += f"submission.xml::{hashlib.md5(xml).hexdigest()}\n"
    sig = base64.b64encode(public_key.encrypt(hashlib.md5(source.encode()).digest(), OAEP)).decode()
    return {"instanceID": instance_id, "version": version, "base64EncryptedKey": wrapped,
            "encryptedXmlFile": base64.b64encode(encrypt_file(key, instance_id, len(media), xml)).decode(),
            "media": parts, "base64EncryptedElementSignature": sig}


def submission_xml(form_id, version, instance_id, name, age, photo=None):
    from xml.sax.saxutils import escape
    name = escape(name)
    v = f' version="{version}"' if version else ""
    p = f"<photo>{photo}</photo>" if photo else ""
    return (f'<?xml version="1.0"?><data id="{form_id}"{v}><meta><instanceID>{instance_id}</instanceID></meta>'
            f"<name>{name}</name><age>{age}</age>{p}</data>").encode()


@pytest.fixture(scope="module")
def enc(workers):
    c = workers
    u = {n: User(c, n) for n in ("owner", "enum", "viewer", "outsider")}
    org = ok(u["owner"].api.post("/v1/orgs", json={"name": "Encrypted org"}), 201)
    for n in ("enum", "viewer"):
        add_plain_member(c, org["id"], u[n].id)
    key = new_key()
    oa = u["owner"].api
    survey = ok(oa.post("/v1/surveys", json={"org_id": org["id"], "name": "Secret survey",
                                             "definition": DEFINITION, "public_key": pub_pem(key)}), 201)
    ok(oa.put(f"/v1/surveys/{survey['id']}/access",
              json={"principal_type": "user", "principal_id": u["viewer"].id, "role": "viewer"}))
    dep = ok(oa.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "Secret deployment", "roles": {"enumerators": [{"type": "user", "id": u["enum"].id}]}}), 201)
    plain = ok(oa.post("/v1/surveys", json={"org_id": org["id"], "name": "Clear survey", "definition": DEFINITION}), 201)
    pdep = ok(oa.post(f"/v1/surveys/{plain['id']}/deployments", json={
        "name": "Clear deployment", "roles": {"enumerators": [{"type": "user", "id": u["enum"].id}]}}), 201)

    class E:
        pass
    e = E()
    e.c, e.u, e.org, e.key, e.survey, e.dep, e.plain, e.pdep = c, u, org, key, survey, dep, plain, pdep
    e.xform = oa.get(f"/v1/surveys/{survey['id']}/xform").text
    yield e
    for v in u.values():
        v.close()


def form_version(e):
    """The generated XForm's formID and version (the signature covers both)."""
    import re
    m = re.search(r'<data id="([^"]+)"[^>]*version="([^"]+)"', e.xform)
    return m.group(1), m.group(2)


def post(api, dep_id, body):
    return api.post(f"/v1/deployments/{dep_id}/responses", json=body)


def submit_env(e, env, rid=None):
    rid = rid or new_id()
    ok(post(e.u["enum"].api, e.dep["id"], {"id": rid, "encrypted": env}), 202)

    def readable():
        g = e.u["enum"].api.get(f"/v1/responses/{rid}")
        assert g.status_code in (200, 404), g.text
        return g.json() if g.status_code == 200 else None
    return wait_until(readable, 60, what=f"encrypted response {rid}")


def test_survey_shows_its_key_and_the_xform_carries_it(enc):
    s = ok(enc.u["owner"].api.get(f"/v1/surveys/{enc.survey['id']}"))
    assert s["public_key"] == pub_pem(enc.key) and s["form_id"] == enc.survey["form_id"]
    assert enc.survey["public_key"] == pub_pem(enc.key)
    assert f'base64RsaPublicKey="{pub_der_b64(enc.key)}"' in enc.xform
    # a survey in clear has none, in its XForm neither
    p = ok(enc.u["owner"].api.get(f"/v1/surveys/{enc.plain['id']}"))
    assert p["public_key"] is None
    assert "base64RsaPublicKey" not in enc.u["owner"].api.get(f"/v1/surveys/{enc.plain['id']}/xform").text
    # the viewer and the enumerator see the key (they need it to encrypt); a stranger sees nothing
    assert ok(enc.u["enum"].api.get(f"/v1/surveys/{enc.survey['id']}"))["public_key"] == pub_pem(enc.key)
    denied(enc.u["outsider"].api.get(f"/v1/surveys/{enc.survey['id']}"), 404)


BAD_KEYS = {
    "short": lambda: pub_pem(new_key(1024)),
    "not_pem": lambda: "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
    "garbage": lambda: "-----BEGIN PUBLIC KEY-----\n" + base64.b64encode(os.urandom(300)).decode() + "\n-----END PUBLIC KEY-----\n",
    "private": lambda: priv_pem(new_key()),
    "two_keys": lambda: pub_pem(new_key()) * 2,
    "trailing": lambda: pub_pem(new_key()) + "and more",
    "nul": lambda: pub_pem(new_key()) + "\u0000",
    "empty": lambda: "",
    "huge": lambda: "-----BEGIN PUBLIC KEY-----\n" + "A" * 20000 + "\n-----END PUBLIC KEY-----\n",
    "number": lambda: 2048,
}


@pytest.mark.parametrize("kind", sorted(BAD_KEYS))
def test_bad_public_key_is_422_naming_it(enc, kind):
    k = BAD_KEYS[kind]()
    oa = enc.u["owner"].api
    r = oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "bad key", "definition": DEFINITION,
                                     "public_key": k})
    # a NUL is refused by the JSON reader before any field is looked at
    code = "unsupported_character" if kind == "nul" else "validation_failed"
    err = denied(r, 422, code)
    assert kind == "nul" or "public_key" in err["fields"], err
    r = oa.put(f"/v1/surveys/{enc.plain['id']}/definition", json={"definition": DEFINITION, "public_key": k})
    err = denied(r, 422, code)
    assert kind == "nul" or "public_key" in err["fields"], err
    # nothing was stored: the survey in clear stays so
    assert ok(oa.get(f"/v1/surveys/{enc.plain['id']}"))["public_key"] is None


def test_a_stranger_learns_nothing_from_a_bad_key(enc):
    # the key is checked only once the caller may store the survey: a stranger gets 404 either way
    r = enc.u["outsider"].api.put(f"/v1/surveys/{enc.survey['id']}/definition",
                                  json={"definition": DEFINITION, "public_key": "garbage"})
    denied(r, 404)


@needs_fixtures
def test_xform_key_is_the_surveys_key(enc):
    xml = (FIXTURES / "forms" / "encrypted.xml").read_text()
    pub = (FIXTURES / "keys" / "pub.pem").read_text()
    oa = enc.u["owner"].api
    s = ok(oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "odk encrypted", "xform": xml}), 201)
    got = ok(oa.get(f"/v1/surveys/{s['id']}"))
    norm = lambda p: "".join(p.split())  # noqa: E731
    assert norm(got["public_key"]) == norm(pub) and got["form_id"] == "encrypted"
    assert oa.get(f"/v1/surveys/{s['id']}/xform").text == xml  # kept byte for byte
    # the same key given beside it is fine; another key is refused
    ok(oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "odk2", "xform": xml, "public_key": pub}), 201)
    err = denied(oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "odk3", "xform": xml,
                                              "public_key": pub_pem(new_key())}), 422)
    assert list(err["fields"]) == ["public_key"]
    # an XForm whose base64RsaPublicKey is short or garbage
    for bad in (pub_der_b64(new_key(1024)), "AAAA", "not base64 at all"):
        x2 = xml.replace(xml.split('base64RsaPublicKey="')[1].split('"')[0], bad)
        err = denied(oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "odk4", "xform": x2}), 422)
        assert list(err["fields"]) == ["public_key"], err
    # a new version without the key turns encryption off only when said explicitly
    plain_x = xml.replace(xml.split("<submission")[1].split("/>")[0], "").replace("<submission/>", "")
    plain_x = plain_x.replace('version="working3"', 'version="working4"')
    err = denied(oa.put(f"/v1/surveys/{s['id']}/definition", json={"xform": plain_x}), 422)
    assert list(err["fields"]) == ["public_key"]
    ok(oa.put(f"/v1/surveys/{s['id']}/definition", json={"xform": plain_x, "public_key": None}))
    assert ok(oa.get(f"/v1/surveys/{s['id']}"))["public_key"] is None


def test_a_new_json_definition_keeps_the_key(enc):
    oa = enc.u["owner"].api
    key = new_key()
    s = ok(oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "keeps", "definition": DEFINITION,
                                        "public_key": pub_pem(key)}), 201)
    ok(oa.put(f"/v1/surveys/{s['id']}/definition", json={"definition": DEFINITION}))
    assert ok(oa.get(f"/v1/surveys/{s['id']}"))["public_key"] == pub_pem(key)
    key2 = new_key(3072)
    ok(oa.put(f"/v1/surveys/{s['id']}/definition", json={"definition": DEFINITION, "public_key": pub_pem(key2)}))
    assert ok(oa.get(f"/v1/surveys/{s['id']}"))["public_key"] == pub_pem(key2)
    assert pub_der_b64(key2) in oa.get(f"/v1/surveys/{s['id']}/xform").text
    ok(oa.put(f"/v1/surveys/{s['id']}/definition", json={"definition": DEFINITION, "public_key": None}))
    assert ok(oa.get(f"/v1/surveys/{s['id']}"))["public_key"] is None


def test_answers_in_clear_to_an_encrypted_survey_are_refused(enc):
    api = enc.u["enum"].api
    err = denied(post(api, enc.dep["id"], {"id": new_id(), "data": {"name": "Ada"}}), 422, "validation_failed")
    assert list(err["fields"]) == ["data"], err
    # and an envelope to a survey in clear
    fid, ver = form_version(enc)
    env = envelope(enc.key.public_key(), fid, ver, b"<data/>")
    err = denied(post(api, enc.pdep["id"], {"id": new_id(), "encrypted": env}), 422)
    assert list(err["fields"]) == ["encrypted"], err


def test_bad_envelopes_are_422_naming_the_part(enc):
    api = enc.u["enum"].api
    fid, ver = form_version(enc)
    good = envelope(enc.key.public_key(), fid, ver, b"<data/>", [("a.jpg", b"x" * 40)])
    other = envelope(new_key(3072).public_key(), fid, ver, b"<data/>")

    def bad(**change):
        e = json.loads(json.dumps(good))
        for k, v in change.items():
            if v is None:
                e.pop(k)
            else:
                e[k] = v
        return e
    cases = [
        (bad(base64EncryptedKey=other["base64EncryptedKey"]), "encrypted.base64EncryptedKey"),
        (bad(base64EncryptedElementSignature="AAAA"), "encrypted.base64EncryptedElementSignature"),
        (bad(encryptedXmlFile="not base64!"), "encrypted.encryptedXmlFile"),
        (bad(encryptedXmlFile=base64.b64encode(b"x" * 17).decode()), "encrypted.encryptedXmlFile"),
        (bad(instanceID=None), "encrypted.instanceID"),
        (bad(instanceID="x" * 300), "encrypted.instanceID"),
        (bad(media=[{"name": "../../etc/passwd.enc", "content": "AAAAAAAAAAAAAAAAAAAAAA=="}]), "encrypted.media"),
        (bad(media=[{"name": "a.enc", "content": "AAAAAAAAAAAAAAAAAAAAAA=="}] * 2), "encrypted.media"),
        (bad(media=[{"name": f"f{i}.enc", "content": "AAAAAAAAAAAAAAAAAAAAAA=="} for i in range(101)]), "encrypted.media"),
        (bad(media="x"), "encrypted.media"),
        (bad(extra=1), "encrypted"),
        ("a string", "encrypted"),
    ]
    for body_env, field in cases:
        r = post(api, enc.dep["id"], {"id": new_id(), "encrypted": body_env})
        err = denied(r, 422, "validation_failed")
        assert list(err["fields"]) == [field], (field, err)
    err = denied(post(api, enc.dep["id"], {"id": new_id(), "encrypted": good, "data": {"name": "x"}}), 422)
    err = denied(post(api, enc.dep["id"], {"id": new_id(), "encrypted": good, "location": {"lat": 1, "lon": 2}}), 422)
    assert "location" in err["fields"], err


def test_permissions_unchanged(enc):
    fid, ver = form_version(enc)
    env = envelope(enc.key.public_key(), fid, ver, b"<data/>")
    denied(post(enc.u["outsider"].api, enc.dep["id"], {"id": new_id(), "encrypted": env}), 404)
    denied(post(enc.u["viewer"].api, enc.dep["id"], {"id": new_id(), "encrypted": env}), 403)


@pytest.fixture(scope="module")
def submitted(enc):
    fid, ver = form_version(enc)
    pub = enc.key.public_key()
    subs = []
    for i in range(3):
        iid = f"uuid:{new_id()}"
        photo = os.urandom(1000 + i * 777)
        media = [("photo.jpg", photo)] if i != 1 else []
        media += [("note.txt", f"note {i} ☕".encode())] if i == 2 else []
        xml = submission_xml(fid, ver, iid, f"Ada {i} & <co> ☕", 30 + i, "photo.jpg" if i != 1 else None)
        env = envelope(pub, fid, ver, xml, media, iid)
        resp = submit_env(enc, env)
        subs.append({"id": resp["id"], "env": env, "xml": xml, "media": dict(media), "resp": resp})
    return subs


def test_reads_lists_and_history_show_the_envelope(enc, submitted):
    for s in submitted:
        for who in ("owner", "enum"):  # the submitter and the survey admin (rules unchanged)
            g = enc.u[who].api.get(f"/v1/responses/{s['id']}")
            assert g.status_code == 200, (who, g.text)
            r = g.json()
            assert r["encrypted"] is True and r["data"] == s["env"], who
        h = ok(enc.u["owner"].api.get(f"/v1/responses/{s['id']}/history"))
        assert h["items"][0]["state"]["data"] == s["env"] and h["items"][0]["state"]["encrypted"] is True
    items = list_all(enc.u["owner"].api, f"/v1/surveys/{enc.survey['id']}/responses")
    by_id = {i["id"]: i for i in items}
    for s in submitted:
        assert by_id[s["id"]]["data"] == s["env"] and by_id[s["id"]]["encrypted"] is True
    denied(enc.u["outsider"].api.get(f"/v1/responses/{submitted[0]['id']}"), 404)
    # the server holds no answer in clear
    rows = enc.c.psql("SELECT data::text FROM responses WHERE survey_id = %s", enc.survey["id"])
    assert rows and all("Ada " not in str(row) for row in rows)


def test_encrypted_responses_cannot_be_edited(enc, submitted):
    denied(enc.u["owner"].api.patch(f"/v1/responses/{submitted[0]['id']}", json={"data": {"name": "x"}}),
           409, "survey_encrypted")
    assert ok(enc.u["owner"].api.get(f"/v1/responses/{submitted[0]['id']}"))["version"] == 1


@pytest.fixture(scope="module")
def exported(enc, submitted, tmp_path_factory):
    oa = enc.u["owner"].api
    job = ok(oa.post(f"/v1/orgs/{enc.org['id']}/exports"), 202)

    def ended():
        j = ok(oa.get(f"/v1/jobs/{job['id']}"))
        return j if j["state"] in ("done", "failed") else None
    assert wait_until(ended, 120, what="export")["state"] == "done"
    r = oa.get(f"/v1/exports/{job['id']}")
    assert r.status_code == 200
    d = tmp_path_factory.mktemp("odkexport")
    (d / "export.zip").write_bytes(r.content)
    (d / "priv.pem").write_text(priv_pem(enc.key))
    return d


def decrypt(d, zip_name, key_name, out):
    return subprocess.run([str(binary("fv-decrypt")), "--key", str(d / key_name), str(d / zip_name), "-o",
                           str(d / out)], capture_output=True, text=True, timeout=120)


def test_export_carries_ciphertext_and_fv_decrypt_opens_it_byte_for_byte(enc, submitted, exported):
    z = zipfile.ZipFile(exported / "export.zip")
    raw = z.read(f"surveys/{enc.survey['id']}/responses.jsonl").decode()
    assert "Ada " not in raw  # a space: never in base64 nor after a letter in JSON
    lines = [json.loads(x) for x in raw.splitlines()]
    assert {x["id"]: x["data"] for x in lines} == {s["id"]: s["env"] for s in submitted}
    p = decrypt(exported, "export.zip", "priv.pem", "out")
    assert p.returncode == 0, p.stderr
    assert "3 response(s) opened, 0 did not open" in p.stderr
    sd = exported / "out" / "surveys" / enc.survey["id"]
    for s in submitted:
        assert (sd / s["id"] / "submission.xml").read_bytes() == s["xml"]
        for name, data in s["media"].items():
            assert (sd / s["id"] / name).read_bytes() == data
        assert sorted(os.listdir(sd / s["id"])) == sorted(["submission.xml", *s["media"]])
    out = {x["id"]: x for x in map(json.loads, (sd / "responses.jsonl").read_text().splitlines())}
    assert out[submitted[0]["id"]]["answers"]["name"] == "Ada 0 & <co> ☕"
    assert out[submitted[2]["id"]]["answers"]["age"] == "32"
    assert out[submitted[2]["id"]]["media"] == ["photo.jpg", "note.txt"]
    assert out[submitted[0]["id"]]["instanceID"] == submitted[0]["env"]["instanceID"]
    import csv
    rows = list(csv.DictReader(io.StringIO((sd / "responses.csv").read_text(encoding="utf-8"), newline="")))
    assert {r["id"]: r["name"] for r in rows} == {s["id"]: out[s["id"]]["answers"]["name"] for s in submitted}
    assert {r["meta/instanceID"] for r in rows} == {s["env"]["instanceID"] for s in submitted}


def rewrite_zip(src, dst, name, change):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zo:
        for info in zi.infolist():
            data = zi.read(info.filename)
            zo.writestr(info.filename, change(data) if info.filename == name else data)


def test_tampered_export_is_an_error_naming_the_submission(enc, submitted, exported):
    name = f"surveys/{enc.survey['id']}/responses.jsonl"
    a, b, c = submitted

    def change(data):
        out = []
        for line in data.decode().splitlines():
            x = json.loads(line)
            if x["id"] == a["id"]:  # a flipped byte in the ciphertext of the XML
                ct = bytearray(base64.b64decode(x["data"]["encryptedXmlFile"]))
                ct[5] ^= 0x01
                x["data"]["encryptedXmlFile"] = base64.b64encode(bytes(ct)).decode()
            if x["id"] == b["id"]:  # another submission's signature
                x["data"]["base64EncryptedElementSignature"] = c["env"]["base64EncryptedElementSignature"]
            out.append(json.dumps(x))
        return ("\n".join(out) + "\n").encode()
    rewrite_zip(exported / "export.zip", exported / "tampered.zip", name, change)
    p = decrypt(exported, "tampered.zip", "priv.pem", "tout")
    assert p.returncode == 1, p.stderr
    assert f"response {a['id']}" in p.stderr and f"response {b['id']}" in p.stderr
    assert f"response {c['id']}" not in p.stderr
    sd = exported / "tout" / "surveys" / enc.survey["id"]
    assert not (sd / a["id"]).exists() and not (sd / b["id"]).exists()  # never garbage
    assert (sd / c["id"] / "submission.xml").read_bytes() == c["xml"]
    ids = [json.loads(x)["id"] for x in (sd / "responses.jsonl").read_text().splitlines()]
    assert ids == [c["id"]]


def test_wrong_key_opens_nothing(enc, submitted, exported):
    (exported / "other.pem").write_text(priv_pem(new_key()))
    p = decrypt(exported, "export.zip", "other.pem", "wout")
    assert p.returncode == 1
    for s in submitted:
        assert f"response {s['id']}" in p.stderr
    assert not any((exported / "wout" / "surveys" / enc.survey["id"] / s["id"]).exists() for s in submitted)
    # not a key, not a zip: exit 2 with a message
    (exported / "junk").write_bytes(b"junk")
    assert decrypt(exported, "export.zip", "junk", "j1").returncode == 2
    assert decrypt(exported, "junk", "priv.pem", "j2").returncode == 2


@needs_fixtures
def test_fixture_key_opens_a_submission_to_the_odk_form(enc):
    """The ODK Central `encrypted` form with its own key pair: a submission made by the test
    client to the fixture's public key goes through the server and opens with keys/priv.pem."""
    oa = enc.u["owner"].api
    xml = (FIXTURES / "forms" / "encrypted.xml").read_text()
    s = ok(oa.post("/v1/surveys", json={"org_id": enc.org["id"], "name": "odk fixture", "xform": xml}), 201)
    dep = ok(oa.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "fixture dep", "roles": {"enumerators": [{"type": "user", "id": enc.u["enum"].id}]}}), 201)
    pub = serialization.load_pem_public_key((FIXTURES / "keys" / "pub.pem").read_bytes())
    iid = f"uuid:{new_id()}"
    sub = (f'<data id="encrypted" version="working3"><meta><instanceID>{iid}</instanceID></meta>'
           f"<name>bob</name><age>30</age><file>x.jpg</file></data>").encode()
    env = envelope(pub, "encrypted", "working3", sub, [("x.jpg", b"\xff\xd8 jpeg bytes")], iid)
    rid = new_id()
    ok(post(enc.u["enum"].api, dep["id"], {"id": rid, "encrypted": env}), 202)
    wait_until(lambda: enc.u["enum"].api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="fixture response")
    job = ok(oa.post(f"/v1/orgs/{enc.org['id']}/exports"), 202)
    wait_until(lambda: ok(oa.get(f"/v1/jobs/{job['id']}"))["state"] == "done", 120, what="export")
    with tempfile.TemporaryDirectory() as t:
        t = pathlib.Path(t)
        (t / "e.zip").write_bytes(oa.get(f"/v1/exports/{job['id']}").content)
        p = subprocess.run([str(binary("fv-decrypt")), "--key", str(FIXTURES / "keys" / "priv.pem"),
                            str(t / "e.zip"), "-o", str(t / "o")], capture_output=True, text=True, timeout=120)
        # the other surveys' responses were made for another key: named, the fixture's opens
        assert f"response {rid}" not in p.stderr, p.stderr
        assert (t / "o" / "surveys" / s["id"] / rid / "submission.xml").read_bytes() == sub
        assert (t / "o" / "surveys" / s["id"] / rid / "x.jpg").read_bytes() == b"\xff\xd8 jpeg bytes"


def test_an_encrypted_survey_is_not_purged(workers):
    """A purge strips question names from responses: on envelopes it would destroy ciphertext (a
    question named `media`), so a survey with an encrypted version refuses it (422 naming
    questions)."""
    from test_totp_policy import _totp_admin
    mfa, plain, keyed, _ = _totp_admin(workers)
    try:
        org = ok(mfa.post("/v1/orgs", json={"name": "Purge encrypted"}), 201)
        d = {"questions": [{"name": "media", "type": "text", "label": "Media"}]}
        s = ok(mfa.post("/v1/surveys", json={"org_id": org["id"], "name": "p", "definition": d,
                                             "public_key": pub_pem(new_key())}), 201)
        err = denied(mfa.post(f"/v1/surveys/{s['id']}/purge", json={"questions": ["media"], "reason": "x"}), 422)
        assert list(err["fields"]) == ["questions"] and "encrypted" in err["fields"]["questions"], err
    finally:
        for a in (mfa, plain, keyed):
            a.close()


def xadd_unverified(c, rid, dep, submitter, data):
    """An entry as a front end queues it while PostgreSQL is down (fe_submit.c, unverified): the
    front end did not know the survey, so the worker checks the envelope against its key."""
    import time
    c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", rid,
                "survey_id", "00000000-0000-0000-0000-000000000000", "survey_version", "0",
                "deployment_id", dep, "submitted_by", submitter,
                "received_at", str(int(time.time() * 1000)), "data", json.dumps(data),
                "location", "", "collected_at", "", "verified", "0")


def test_worker_rechecks_unverified_envelopes_against_the_key(enc):
    fid, ver = form_version(enc)
    iid = f"uuid:{new_id()}"
    xml = submission_xml(fid, ver, iid, "Unverified", 40)
    good = envelope(enc.key.public_key(), fid, ver, xml, instance_id=iid)
    short = envelope(new_key(3072).public_key(), fid, ver, xml)  # another key's length
    ok_id, bad_id, clear_id = new_id(), new_id(), new_id()
    xadd_unverified(enc.c, ok_id, enc.dep["id"], enc.u["enum"].id, good)
    xadd_unverified(enc.c, bad_id, enc.dep["id"], enc.u["enum"].id, short)
    xadd_unverified(enc.c, clear_id, enc.dep["id"], enc.u["enum"].id, {"name": "in clear"})
    enc.c.wait_drained()
    r = ok(enc.u["enum"].api.get(f"/v1/responses/{ok_id}"))
    assert r["encrypted"] is True and r["data"] == good
    q = dict(enc.c.psql("SELECT id::text, reason FROM quarantine WHERE id = ANY(%s::uuid[])", [bad_id, clear_id]))
    assert "base64EncryptedKey" in q[bad_id] and "encrypted" in q[clear_id], q
    denied(enc.u["enum"].api.get(f"/v1/responses/{bad_id}"), 404)
