"""Encrypted OpenRosa submissions (issue 13 "Encrypted submissions", issue 12 "over OpenRosa as ODK
Collect sends them"): multipart with the cleartext manifest in xml_submission_file and the
submission.xml.enc and media .enc files as parts, stored as the JSON API's envelope (so reads,
exports and fv-decrypt are unchanged) with the manifest as the stored XML. ODK Central's fixture
manifests; a round trip made by the test client in Collect's format over HTTP Basic and an app
user's token, exported and opened by fv-decrypt byte for byte; status codes as for plain
submissions; missing, tampered and garbage parts 400; answers in clear to an encrypted survey and
an encrypted manifest to a plain one refused."""
import base64
import json
import os
import pathlib
import re
import subprocess
import tempfile
import zipfile

import pytest

from accesshelp import User, add_plain_member, denied, ok
from fvharness import binary, new_id, wait_until
from test_odk_encryption import envelope as make_envelope
from test_odk_encryption import new_key, pub_pem
from test_openrosa_submissions import envelope as or_envelope
from test_openrosa_submissions import response_id

crypto = pytest.importorskip("cryptography")
from cryptography.hazmat.primitives import serialization  # noqa: E402

FIXTURES = pathlib.Path(os.environ.get("FV_ODK_FIXTURES") or
                        pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk")
pytestmark = pytest.mark.skipif(not (FIXTURES / "keys").is_dir(), reason="no ODK fixtures")
PASSWORD = "quartz-heron-lantern-58-meadow"


def manifest_of(form_id, version, env):
    """The cleartext manifest ODK Collect sends for an envelope (EncryptionUtils' layout)."""
    v = f' version="{version}"' if version else ""
    media = "".join(f"<media><file>{m['name']}</file></media>" for m in env["media"])
    return (f'<data id="{form_id}"{v} encrypted="yes" xmlns="http://www.opendatakit.org/xforms/encrypted">'
            f"<base64EncryptedKey>{env['base64EncryptedKey']}</base64EncryptedKey>"
            f'<orx:meta xmlns:orx="http://openrosa.org/xforms"><orx:instanceID>{env["instanceID"]}'
            f"</orx:instanceID></orx:meta>{media}<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>"
            f"<base64EncryptedElementSignature>{env['base64EncryptedElementSignature']}"
            f"</base64EncryptedElementSignature></data>").encode()


def parts_of(env):
    """The multipart files besides the manifest: submission.xml.enc and each media .enc."""
    files = [("submission.xml.enc", base64.b64decode(env["encryptedXmlFile"]))]
    files += [(m["name"], base64.b64decode(m["content"])) for m in env["media"]]
    return files


def post(api, path, manifest, files, **kw):
    fs = [("xml_submission_file", ("submission.xml", manifest, "text/xml"))]
    fs += [(n, (n, d, "application/octet-stream")) for n, d in files]
    kw["headers"] = {"X-OpenRosa-Version": "1.0", **kw.get("headers", {})}  # as ODK Collect sends it
    r = api.post(path, files=fs, **kw)
    assert r.headers.get("X-OpenRosa-Version") == "1.0", (r.status_code, r.text[:300])
    return r


def url(dep):
    return f"/v1/openrosa/deployments/{dep['id']}/submission"


@pytest.fixture(scope="module")
def oe(workers):
    c = workers
    owner, enum, stranger = User(c, "ore owner"), User(c, "ore enum"), User(c, "ore stranger")
    org = ok(owner.api.post("/v1/orgs", json={"name": "Encrypted OpenRosa org"}), 201)
    add_plain_member(c, org["id"], enum.id)
    xml = (FIXTURES / "forms" / "encrypted.xml").read_text()
    s = ok(owner.api.post("/v1/surveys", json={"org_id": org["id"], "name": "odk enc", "xform": xml}), 201)
    dep = ok(owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "odk enc", "roles": {"enumerators": [{"type": "user", "id": enum.id}]}}), 201)
    simple = (FIXTURES / "forms" / "simple.xml").read_text()
    ps = ok(owner.api.post("/v1/surveys", json={"org_id": org["id"], "name": "plain", "xform": simple}), 201)
    pdep = ok(owner.api.post(f"/v1/surveys/{ps['id']}/deployments", json={
        "name": "plain", "roles": {"enumerators": [{"type": "user", "id": enum.id}]}}), 201)

    class W:
        pass
    w = W()
    w.c, w.owner, w.enum, w.stranger, w.org, w.survey, w.dep, w.pdep = c, owner, enum, stranger, org, s, dep, pdep
    w.pub = serialization.load_pem_public_key((FIXTURES / "keys" / "pub.pem").read_bytes())
    yield w
    for u in (owner, enum, stranger):
        u.close()


def fixture_manifest(name):
    return (FIXTURES / "instances" / "encrypted" / f"{name}.xml").read_bytes()


def stored(w, rid):
    r = w.owner.api.get(f"/v1/responses/{rid}")
    return r.json() if r.status_code == 200 else None


def test_fixture_manifests_stored_as_the_envelope(oe):
    """ODK Central's encrypted instances (their manifests) with .enc parts of the right shape and
    an extraneous part (ignored, as Central does): 201, the envelope holds the parts, the XML read
    back is the manifest byte for byte; the same again 201; another manifest for the instance 409."""
    for name, iid, media in [("one", "uuid:dcf4a151-5088-453f-99e6-369d67828f7a", "1561432508817.jpg.enc"),
                             ("two", "uuid:99b303d9-6494-477b-a30d-d8aae8867335", "1561432532482.jpg.enc")]:
        man = fixture_manifest(name)
        xml_enc, jpg_enc = os.urandom(160), os.urandom(4096)
        files = [("submission.xml.enc", xml_enc), (media, jpg_enc), ("extraneous.enc", b"x" * 16)]
        rid = response_id(oe.dep, iid)
        assert "successful" in or_envelope(post(oe.enum.api, url(oe.dep), man, files), 201)
        got = stored(oe, rid)
        assert got["encrypted"] is True
        env = got["data"]
        assert env["instanceID"] == iid and env["version"] == "working3"
        assert base64.b64decode(env["encryptedXmlFile"]) == xml_enc
        assert [(m["name"], base64.b64decode(m["content"])) for m in env["media"]] == [(media, jpg_enc)]
        key = re.search(rb"<base64EncryptedKey>([^<]+)<", man).group(1).decode()
        assert env["base64EncryptedKey"] == key
        assert oe.owner.api.get(f"/v1/responses/{rid}/xml").content == man
        # the .enc files live in the envelope, not as attachments
        assert oe.c.psql("SELECT count(*) FROM response_attachments WHERE response_id = %s", rid)[0][0] == 0
        # identical again: 201, nothing changes
        or_envelope(post(oe.enum.api, url(oe.dep), man, files[:2]), 201)
        assert stored(oe, rid)["data"] == env and stored(oe, rid)["version"] == 1
        # another manifest for the same instanceID: 409
        other = re.sub(rb"<base64EncryptedElementSignature>.", b"<base64EncryptedElementSignature>Z", man)
        assert other != man
        or_envelope(post(oe.enum.api, url(oe.dep), other, files[:2]), 409)
        assert stored(oe, rid)["data"] == env
    denied(oe.stranger.api.get(f"/v1/responses/{response_id(oe.dep, 'uuid:dcf4a151-5088-453f-99e6-369d67828f7a')}"), 404)


# The plaintext answer looked for in the export: with spaces, which neither base64 ciphertext nor
# the ids beside it can hold ("bob" turned up in a photo's base64 by chance).
PLAIN_MARK = "bob the enumerator"


def fresh(oe, media=(("x.jpg", b"\xff\xd8 photo"),), version="working3"):
    iid = f"uuid:{new_id()}"
    sub = (f'<data id="encrypted" version="{version}"><meta><instanceID>{iid}</instanceID></meta>'
           f"<name>{PLAIN_MARK}</name><age>30</age><file>x.jpg</file></data>").encode()
    env = make_envelope(oe.pub, "encrypted", version, sub, list(media), iid)
    return iid, sub, env, manifest_of("encrypted", version, env)


def test_media_names_up_to_255_bytes(oe):
    """An encrypted photo keeps a device's long file name: a media part of 255 bytes (with .enc)
    is stored in the envelope; one of 256 is 400 naming the limit."""
    for size, status in ((255, 201), (256, 400)):
        name = "p" * (size - len(".jpg.enc")) + ".jpg"
        iid, _sub, env, man = fresh(oe, media=((name, b"\xff\xd8 long photo"),))
        assert [m["name"] for m in env["media"]] == [name + ".enc"] and len(name + ".enc") == size
        msg = or_envelope(post(oe.enum.api, url(oe.dep), man, parts_of(env)), status)
        got = stored(oe, response_id(oe.dep, iid))
        if status == 201:
            assert [m["name"] for m in got["data"]["media"]] == [name + ".enc"]
        else:
            assert "255" in msg and got is None


def test_missing_tampered_and_garbage_parts_are_400(oe):
    iid, _sub, env, man = fresh(oe)
    files = parts_of(env)
    rid = response_id(oe.dep, iid)

    def bad(manifest, fs, expect=400, says=None):
        r = post(oe.enum.api, url(oe.dep), manifest, fs)
        msg = or_envelope(r, expect)
        if says:
            assert says in msg, msg
        assert stored(oe, rid) is None
    bad(man, files[1:], says="submission.xml.enc")                 # no submission.xml.enc
    bad(man, files[:1], says="x.jpg.enc")                          # a named media file missing
    bad(man, [("submission.xml.enc", files[0][1][:-1]), files[1]], says="encryptedXmlFile")  # not blocks of 16
    bad(man, [("submission.xml.enc", b""), files[1]])              # empty
    bad(man, [files[0], ("x.jpg.enc", b"\0" * 15)], says="media")
    for tag in (b"base64EncryptedKey", b"base64EncryptedElementSignature"):
        short = re.sub(rb"<%s>[^<]{8}" % tag, b"<%s>" % tag, man)   # wrong length for the key
        bad(short, files, says=tag.decode())
        notb64 = re.sub(rb"<%s>.." % tag, b"<%s>!!" % tag, man)
        bad(notb64, files, says=tag.decode())
        bad(re.sub(rb"<%s>[^<]*</%s>" % (tag, tag), b"", man), files, says=tag.decode())  # absent
    bad(man.replace(b"<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>", b""), files,
        says="encryptedXmlFile")
    bad(man.replace(env["instanceID"].encode(), b""), files)      # no instanceID
    bad(b'<!DOCTYPE d [<!ENTITY e "x">]>' + man, files)            # DOCTYPE
    bad(man[:-20], files)                                          # truncated XML
    bad(b"\xff\xfe garbage", files)
    bad(man.replace(b'id="encrypted"', b'id="nosuchform"'), files, 404)
    # two media files of the same name in the manifest
    dup = man.replace(b"<media><file>x.jpg.enc</file></media>",
                      b"<media><file>x.jpg.enc</file></media><media><file>x.jpg.enc</file></media>")
    bad(dup, files)
    # the good one still goes in afterwards
    or_envelope(post(oe.enum.api, url(oe.dep), man, files), 201)
    assert stored(oe, rid)["data"] == env


def test_clear_and_crossed_submissions_are_refused(oe):
    # answers in clear to the encrypted survey (ODK Central's plain shape of the same form)
    iid = f"uuid:{new_id()}"
    plain = (f'<data id="encrypted" version="working3"><meta><instanceID>{iid}</instanceID></meta>'
             f"<name>bob</name><age>3</age></data>").encode()
    msg = or_envelope(post(oe.enum.api, url(oe.dep), plain, []), 400)
    assert "encrypted" in msg and "clear" in msg
    assert stored(oe, response_id(oe.dep, iid)) is None
    # an encrypted manifest to a plain survey
    man = fixture_manifest("one").replace(b'id="encrypted" version="working3"', b'id="simple"')
    man = man.replace(b"dcf4a151-5088-453f-99e6-369d67828f7a", new_id().encode())
    msg = or_envelope(post(oe.enum.api, url(oe.pdep), man, [("submission.xml.enc", b"\0" * 32)]), 400)
    assert "not encrypted" in msg
    # a stranger learns nothing
    iid2, _s, env, man2 = fresh(oe)
    or_envelope(post(oe.stranger.api, url(oe.dep), man2, parts_of(env)), 404)


def password_enumerator(oe):
    mail = f"ore-{new_id()[:12]}@example.org"
    anon = oe.c.api()
    r = anon.post("/v1/users", json={"email": mail, "name": "Collect User", "password": PASSWORD})
    anon.close()
    assert r.status_code == 202, r.text
    uid = oe.c.user_rows(mail)[0][0]
    add_plain_member(oe.c, oe.org["id"], uid)
    return mail, uid


def test_collect_round_trip_basic_and_app_user_export_and_fv_decrypt(oe):
    """Made by the test client in Collect's format to the fixture form's key, sent over HTTP Basic
    and over an app user's token, exported and opened by fv-decrypt with the fixture's private
    key: the XML and the photo byte for byte."""
    org = ok(oe.owner.api.post("/v1/orgs", json={"name": "Encrypted round trip org"}), 201)
    mail, uid = password_enumerator(oe)
    add_plain_member(oe.c, org["id"], uid)
    xml = (FIXTURES / "forms" / "encrypted.xml").read_text()
    s = ok(oe.owner.api.post("/v1/surveys", json={"org_id": org["id"], "name": "rt", "xform": xml}), 201)
    dep = ok(oe.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "rt", "roles": {"enumerators": [{"type": "user", "id": uid}]}}), 201)
    au = ok(oe.owner.api.post(f"/v1/deployments/{dep['id']}/app-users", json={"name": "tablet"}), 201)
    anon = oe.c.api(None)
    photo1, photo2 = os.urandom(30000), b"\xff\xd8\xff\xe0" + os.urandom(777)
    sent = {}
    for how, photo in (("basic", photo1), ("app", photo2)):
        iid, sub, env, man = fresh(oe, [("x.jpg", photo)])
        if how == "basic":
            auth = "Basic " + base64.b64encode(f"{mail}:{PASSWORD}".encode()).decode()
            r = post(anon, url(dep), man, parts_of(env), headers={"Authorization": auth})
        else:
            r = post(anon, f"/v1/key/{au['token']}/openrosa/deployments/{dep['id']}/submission", man, parts_of(env))
        or_envelope(r, 201)
        rid = response_id(dep, iid)
        got = stored(oe, rid)
        assert got["data"] == env and got["submitted_by"] == (uid if how == "basic" else au["id"])
        sent[rid] = (sub, photo)
    anon.close()
    job = ok(oe.owner.api.post(f"/v1/orgs/{org['id']}/exports"), 202)
    wait_until(lambda: ok(oe.owner.api.get(f"/v1/jobs/{job['id']}"))["state"] in ("done", "failed"), 120,
               what="export")
    assert ok(oe.owner.api.get(f"/v1/jobs/{job['id']}"))["state"] == "done"
    with tempfile.TemporaryDirectory() as t:
        t = pathlib.Path(t)
        (t / "e.zip").write_bytes(oe.owner.api.get(f"/v1/exports/{job['id']}").content)
        raw = zipfile.ZipFile(t / "e.zip").read(f"surveys/{s['id']}/responses.jsonl").decode()
        assert PLAIN_MARK not in raw
        assert {json.loads(x)["id"] for x in raw.splitlines()} == set(sent)
        p = subprocess.run([str(binary("fv-decrypt")), "--key", str(FIXTURES / "keys" / "priv.pem"),
                            str(t / "e.zip"), "-o", str(t / "o")], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert "2 response(s) opened, 0 did not open" in p.stderr
        for rid, (sub, photo) in sent.items():
            d = t / "o" / "surveys" / s["id"] / rid
            assert (d / "submission.xml").read_bytes() == sub
            assert (d / "x.jpg").read_bytes() == photo
        # a tampered .enc part goes in (the server cannot tell) but fv-decrypt names it
        iid, sub, env, man = fresh(oe, [("x.jpg", b"photo to tamper")])
        files = parts_of(env)
        files[1] = (files[1][0], bytes([files[1][1][0] ^ 1]) + files[1][1][1:])
        auth = {"Authorization": "Basic " + base64.b64encode(f"{mail}:{PASSWORD}".encode()).decode()}
        a2 = oe.c.api(None)
        or_envelope(post(a2, url(dep), man, files, headers=auth), 201)
        a2.close()
        rid = response_id(dep, iid)
        job = ok(oe.owner.api.post(f"/v1/orgs/{org['id']}/exports"), 202)
        wait_until(lambda: ok(oe.owner.api.get(f"/v1/jobs/{job['id']}"))["state"] == "done", 120, what="export 2")
        (t / "e2.zip").write_bytes(oe.owner.api.get(f"/v1/exports/{job['id']}").content)
        p = subprocess.run([str(binary("fv-decrypt")), "--key", str(FIXTURES / "keys" / "priv.pem"),
                            str(t / "e2.zip"), "-o", str(t / "o2")], capture_output=True, text=True, timeout=120)
        assert p.returncode == 1 and f"response {rid}" in p.stderr, p.stderr
        assert "2 response(s) opened, 1 did not open" in p.stderr
        assert not (t / "o2" / "surveys" / s["id"] / rid).exists()  # never garbage
        for orid, (sub, photo) in sent.items():
            assert (t / "o2" / "surveys" / s["id"] / orid / "x.jpg").read_bytes() == photo


def test_a_new_key_of_another_size_is_checked(oe):
    """A JSON survey with a 3072-bit key: a manifest whose key is 2048 bits long is refused."""
    key = new_key(3072)
    s = ok(oe.owner.api.post("/v1/surveys", json={
        "org_id": oe.org["id"], "name": "3072", "public_key": pub_pem(key),
        "definition": {"questions": [{"name": "name", "type": "text", "label": "Name"}]}}), 201)
    dep = ok(oe.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "3072", "roles": {"enumerators": [{"type": "user", "id": oe.enum.id}]}}), 201)
    xf = oe.owner.api.get(f"/v1/surveys/{s['id']}/xform").text
    fid, ver = re.search(r'<data id="([^"]+)"[^>]*version="([^"]+)"', xf).groups()
    iid = f"uuid:{new_id()}"
    sub = f'<data id="{fid}" version="{ver}"><meta><instanceID>{iid}</instanceID></meta><name>x</name></data>'.encode()
    env = make_envelope(oe.pub, fid, ver, sub, [], iid)  # the 2048-bit fixture key: wrong size
    msg = or_envelope(post(oe.enum.api, url(dep), manifest_of(fid, ver, env), parts_of(env)), 400)
    assert "base64EncryptedKey" in msg
    env = make_envelope(key.public_key(), fid, ver, sub, [], iid)
    or_envelope(post(oe.enum.api, url(dep), manifest_of(fid, ver, env), parts_of(env)), 201)
    assert stored(oe, response_id(dep, iid))["data"] == env


def test_older_form_versions_by_their_own_key(oe):
    """A manifest of an older encrypted version is taken (stored under that version); answers in
    clear to it are refused even once the current version is in clear; an encrypted manifest to
    the current version in clear is refused."""
    xml = (FIXTURES / "forms" / "encrypted.xml").read_text()
    s = ok(oe.owner.api.post("/v1/surveys", json={"org_id": oe.org["id"], "name": "enc versions", "xform": xml}), 201)
    dep = ok(oe.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "v", "roles": {"enumerators": [{"type": "user", "id": oe.enum.id}]}}), 201)
    ok(oe.owner.api.put(f"/v1/surveys/{s['id']}/definition",
                        json={"xform": xml.replace('version="working3"', 'version="working4"')}))
    iid, _sub, env, man = fresh(oe)  # working3: the older version, encrypted
    or_envelope(post(oe.enum.api, url(dep), man, parts_of(env)), 201)
    rid = response_id(dep, iid)
    assert stored(oe, rid)["data"] == env and stored(oe, rid)["survey_version"] == 1
    clear = re.sub(r"<submission [^>]*/>", "", xml).replace('version="working3"', 'version="working5"')
    ok(oe.owner.api.put(f"/v1/surveys/{s['id']}/definition", json={"xform": clear, "public_key": None}))
    plain = (f'<data id="encrypted" version="working4"><meta><instanceID>uuid:{new_id()}</instanceID></meta>'
             f"<name>bob</name></data>").encode()
    assert "encrypted" in or_envelope(post(oe.enum.api, url(dep), plain, []), 400)
    iid2, _s, env2, man2 = fresh(oe, version="working5")
    assert "not encrypted" in or_envelope(post(oe.enum.api, url(dep), man2, parts_of(env2)), 400)
    assert stored(oe, response_id(dep, iid2)) is None
    # an older encrypted version still takes its manifests
    iid3, _s, env3, man3 = fresh(oe, version="working4")
    or_envelope(post(oe.enum.api, url(dep), man3, parts_of(env3)), 201)
    got = stored(oe, response_id(dep, iid3))
    assert got["survey_version"] == 2 and got["data"] == env3
