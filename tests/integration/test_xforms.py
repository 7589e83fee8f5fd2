"""XForms (issue 13, Forms part): a survey made from an XForm (every ODK Central fixture form
imports, its derived questions checked by hand for a few), kept byte for byte and versioned; a
JSON survey gets a generated XForm that imports back to the same questions; unsupported
constructs answer 422 naming them; malicious XML is refused quickly with a 4xx JSON error."""
import json
import pathlib
import time

import pytest

from accesshelp import User, add_plain_member, denied, ok

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk"
FORMS = sorted((FIXTURES / "forms").glob("*.xml")) + [FIXTURES / "soak" / "250q-form.xml",
                                                      FIXTURES / "standard" / "test-form.xml"]
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "forms").is_dir(), reason="no ODK fixtures")


@pytest.fixture(scope="module")
def xw(frontend):
    c = frontend
    owner, stranger = User(c, "xform owner"), User(c, "xform stranger")
    org = ok(owner.api.post("/v1/orgs", json={"name": "XForm org"}), 201)

    class W:
        pass
    w = W()
    w.c, w.owner, w.stranger, w.org = c, owner, stranger, org
    yield w
    owner.close()
    stranger.close()


def create(w, xml, name="from xform", who=None):
    return (who or w.owner).api.post("/v1/surveys", json={"org_id": w.org["id"], "name": name, "xform": xml})


def questions(survey):
    return {q["name"]: q for q in survey["definition"]["questions"]}


@needs_fixtures
@pytest.mark.parametrize("path", FORMS, ids=lambda p: p.name)
def test_every_fixture_form_imports_and_downloads_byte_for_byte(xw, path):
    xml = path.read_text(encoding="utf-8")
    s = ok(create(xw, xml, path.stem), 201)
    assert s["version"] == 1 and s["definition"]["questions"]
    r = xw.owner.api.get(f"/v1/surveys/{s['id']}/xform")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/xml")
    assert r.content == path.read_bytes()


@needs_fixtures
def test_derived_questions_checked_by_hand(xw):
    s = ok(create(xw, (FIXTURES / "forms" / "groupRepeat.xml").read_text()), 201)
    q = questions(s)
    assert q["text"]["type"] == "text" and q["text"]["label"] == "text"
    city = q["child_repeat/address/city"]
    assert city["xform"]["repeat"] == "child_repeat" and city["label"] == "City"
    assert q["meta/instanceID"]["xform"]["preload"] == "uid"
    assert s["definition"]["xform"]["form_id"] == "groupRepeat"

    s = ok(create(xw, (FIXTURES / "forms" / "simple.xml").read_text()), 201)
    q = questions(s)
    assert q["age"]["type"] == "integer" and q["name"]["type"] == "text"

    s = ok(create(xw, (FIXTURES / "forms" / "geoTypes.xml").read_text()), 201)
    types = {v["xform"]["type"] for v in questions(s).values()}
    assert {"geopoint", "geotrace", "geoshape"} <= types

    s = ok(create(xw, (FIXTURES / "forms" / "binaryType.xml").read_text()), 201)
    assert "binary" in {v["xform"]["type"] for v in questions(s).values()}


INLINE = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa">
<h:head><h:title>Inline</h:title><model>
<instance><data id="inline" version="{v}"><name/><c/><meta><instanceID/></meta></data></instance>
<bind nodeset="/data/name" type="string" required="true()" constraint="string-length(.) &lt; 10"/>
<bind nodeset="/data/c" type="string"/>
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
</model></h:head><h:body>
<input ref="/data/name"><label>Name</label></input>
<select1 ref="/data/c"><label>C</label><item><label>X</label><value>x</value></item><item><label>Y</label><value>y</value></item></select1>
</h:body></h:html>"""


def test_inline_choices_required_constraint_and_versions(xw):
    s = ok(create(xw, INLINE.format(v="1")), 201)
    q = questions(s)
    assert q["name"]["required"] is True
    assert q["name"]["xform"]["constraint"] == "string-length(.) < 10"
    assert q["c"]["type"] == "select_one" and q["c"]["choices"] == ["x", "y"]
    sid = s["id"]
    # the same version again: refused; a new version attribute: version 2; another formID: refused
    err = denied(xw.owner.api.put(f"/v1/surveys/{sid}/definition", json={"xform": INLINE.format(v="1")}), 422,
                 "validation_failed")
    assert "version" in err["fields"]["xform"]
    v2 = ok(xw.owner.api.put(f"/v1/surveys/{sid}/definition", json={"xform": INLINE.format(v="2")}))
    assert v2["version"] == 2
    other = INLINE.format(v="3").replace('id="inline"', 'id="other"')
    err = denied(xw.owner.api.put(f"/v1/surveys/{sid}/definition", json={"xform": other}), 422)
    assert "formID" in err["fields"]["xform"]
    assert xw.owner.api.get(f"/v1/surveys/{sid}/xform").text == INLINE.format(v="2")
    # both or neither of definition and xform
    denied(xw.owner.api.post("/v1/surveys", json={"org_id": xw.org["id"], "name": "x", "xform": INLINE,
                                                   "definition": {"questions": []}}), 422)
    denied(xw.owner.api.post("/v1/surveys", json={"org_id": xw.org["id"], "name": "x", "xform": 5}), 422)


JSON_DEF = {"questions": [
    {"name": "name", "type": "text", "label": "Name & co", "required": True},
    {"name": "age", "type": "integer"},
    {"name": "colour", "type": "select_one", "choices": ["red", "green"]},
    {"name": "tags", "type": "select_multiple", "choices": ["a", "b"]},
    {"name": "d", "type": "date"}, {"name": "when", "type": "datetime"},
    {"name": "where", "type": "geopoint"}, {"name": "hello", "type": "note"},
    {"name": "w", "type": "decimal"}]}


def summary(defn):
    return [(q["name"], q["type"], bool(q.get("required")),
             [c if isinstance(c, str) else c["name"] for c in q.get("choices", [])]) for q in defn["questions"]]


def test_generated_xform_imports_back_to_the_same_questions(xw):
    s = ok(xw.owner.api.post("/v1/surveys", json={"org_id": xw.org["id"], "name": "JSON one",
                                                   "definition": JSON_DEF}), 201)
    r = xw.owner.api.get(f"/v1/surveys/{s['id']}/xform")
    assert r.status_code == 200 and r.text.startswith("<?xml")
    back = ok(create(xw, r.text, "reimported"), 201)
    got = summary(back["definition"])
    assert got[:-1] == summary(JSON_DEF)
    assert got[-1][0] == "meta/instanceID"
    # a new JSON definition is a new generated XForm with a new version attribute
    ok(xw.owner.api.put(f"/v1/surveys/{s['id']}/definition", json={"definition": JSON_DEF}))
    r2 = xw.owner.api.get(f"/v1/surveys/{s['id']}/xform")
    assert r2.text != r.text and f'id="{s["id"]}"' in r2.text


def test_xform_download_is_filtered_by_rights(xw):
    s = ok(create(xw, INLINE.format(v="9")), 201)
    denied(xw.stranger.api.get(f"/v1/surveys/{s['id']}/xform"), 404)
    denied(xw.owner.api.get("/v1/surveys/00000000-0000-4000-8000-000000000000/xform"), 404)
    # a stranger's XForm is not even parsed: 404 org_not_found first
    denied(create(xw, "<not xml", who=xw.stranger), 404, "org_not_found")


def unsupported(body_xml="", inst="<a/>", binds=""):
    return ('<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" '
            'xmlns:odk="http://www.opendatakit.org/xforms"><h:head><model><instance><data id="u">'
            f'{inst}</data></instance>{binds}</model></h:head><h:body>{body_xml}</h:body></h:html>')


@pytest.mark.parametrize("xml,named", [
    (unsupported('<odk:rank ref="/data/a"/>'), "rank"),
    (unsupported(inst="<a-b/>"), "a-b"),
    (unsupported(binds='<bind nodeset="/data/a" type="xsd:weird"/>'), "weird"),
    ("<x/>", "not an XForm"),
], ids=["rank", "name", "type", "not-xform"])
def test_unsupported_construct_is_422_naming_it(xw, xml, named):
    err = denied(create(xw, xml), 422, "validation_failed")
    assert named in err["fields"]["xform"]


def laughs():
    ents = '<!ENTITY a0 "lol">' + "".join(f'<!ENTITY a{i} "{("&a%d;" % (i - 1)) * 10}">' for i in range(1, 10))
    return f'<?xml version="1.0"?><!DOCTYPE h [{ents}]><h>&a9;</h>'


@pytest.mark.parametrize("xml,reason", [
    (laughs(), "DOCTYPE"),
    ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', "DOCTYPE"),
    ('<!DOCTYPE x SYSTEM "http://127.0.0.1:1/evil.dtd"><x/>', "DOCTYPE"),
    # 20,000 deep (the harness's max_body_bytes is 64 KiB; test_xform.c has 100,000 deep)
    ("<a>" * 20000, "nested"),
    ('<x a="' + "a" * 40000 + '"/>', "attribute"),
    ("<x>&undeclared;</x>", "XML:"),
], ids=["billion-laughs", "external-entity", "external-dtd", "deep", "huge-attribute", "entity-ref"])
def test_malicious_xml_refused_quickly(xw, xml, reason):
    t0 = time.monotonic()
    r = create(xw, xml)
    elapsed = time.monotonic() - t0
    err = denied(r, 422, "validation_failed")
    assert reason in err["fields"]["xform"]
    assert elapsed < 5  # generous: each is refused at its first offending construct
    assert xw.owner.api.get("/v1/me").status_code == 200  # the front end is fine


# ---- OpenRosa: per-deployment form list, form, manifest, media ----

@pytest.fixture(scope="module")
def orw(xw):
    enum, viewer = User(xw.c, "xform enum"), User(xw.c, "xform dep viewer")
    for u in (enum, viewer):
        add_plain_member(xw.c, xw.org["id"], u.id)
    s = ok(create(xw, INLINE.format(v="2024-01"), "OpenRosa form"), 201)
    dep = ok(xw.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "collect", "roles": {"enumerators": [{"type": "user", "id": enum.id}],
                                     "viewers": [{"type": "user", "id": viewer.id}]}}), 201)
    xw.enum, xw.viewer, xw.or_survey, xw.dep = enum, viewer, s, dep
    yield xw
    enum.close()
    viewer.close()


def or_get(api, path):
    r = api.get(path)
    assert r.headers.get("X-OpenRosa-Version") == "1.0", r.headers
    assert "Date" in r.headers
    return r


def xml_of(r):
    import xml.etree.ElementTree as ET
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/xml")
    return ET.fromstring(r.content)


def test_deployment_json_carries_openrosa_url(orw):
    url = orw.dep["openrosa_url"]
    assert url.startswith("https://") and url.endswith(f"/v1/openrosa/deployments/{orw.dep['id']}")
    got = ok(orw.owner.api.get(f"/v1/deployments/{orw.dep['id']}"))
    assert got["openrosa_url"] == url
    listed = ok(orw.owner.api.get(f"/v1/surveys/{orw.or_survey['id']}/deployments"))["items"]
    assert listed[0]["openrosa_url"] == url


def test_form_list_form_download_and_md5(orw):
    import hashlib
    base = f"/v1/openrosa/deployments/{orw.dep['id']}"
    ns = "{http://openrosa.org/xforms/xformsList}"
    root = xml_of(or_get(orw.enum.api, base + "/formList"))
    forms = root.findall(ns + "xform")
    assert len(forms) == 1
    f = forms[0]
    xml = INLINE.format(v="2024-01")
    assert f.find(ns + "formID").text == "inline"
    assert f.find(ns + "name").text == "OpenRosa form"
    assert f.find(ns + "version").text == "2024-01"
    assert f.find(ns + "hash").text == "md5:" + hashlib.md5(xml.encode()).hexdigest()
    assert f.find(ns + "downloadUrl").text == orw.dep["openrosa_url"] + "/form"
    assert f.find(ns + "manifestUrl") is None  # no media yet
    r = or_get(orw.enum.api, base + "/form")
    assert r.status_code == 200 and r.content == xml.encode()
    assert r.headers["Content-Type"].startswith("text/xml")


def test_media_upload_manifest_and_download(orw):
    import base64
    import hashlib
    sid, base = orw.or_survey["id"], f"/v1/openrosa/deployments/{orw.dep['id']}"
    png = bytes(range(256)) * 4
    up = ok(orw.owner.api.put(f"/v1/surveys/{sid}/media/logo.png", json={
        "content_type": "image/png", "content_base64": base64.b64encode(png).decode()}))
    assert up["hash"] == "md5:" + hashlib.md5(png).hexdigest() and up["size"] == len(png)
    ns = "{http://openrosa.org/xforms/xformsList}"
    f = xml_of(or_get(orw.enum.api, base + "/formList")).find(ns + "xform")
    assert f.find(ns + "manifestUrl").text == orw.dep["openrosa_url"] + "/manifest"
    mns = "{http://openrosa.org/xforms/xformsManifest}"
    files = xml_of(or_get(orw.enum.api, base + "/manifest")).findall(mns + "mediaFile")
    assert [m.find(mns + "filename").text for m in files] == ["logo.png"]
    assert files[0].find(mns + "hash").text == up["hash"]
    assert files[0].find(mns + "downloadUrl").text == orw.dep["openrosa_url"] + "/media/logo.png"
    r = or_get(orw.enum.api, base + "/media/logo.png")
    assert r.status_code == 200 and r.content == png and r.headers["Content-Type"] == "image/png"
    denied(or_get(orw.enum.api, base + "/media/nothere.png"), 404)
    # bad uploads, and not an admin
    denied(orw.owner.api.put(f"/v1/surveys/{sid}/media/..x", json={"content_type": "image/png",
                                                                     "content_base64": "AAAA"}), 422)
    denied(orw.owner.api.put(f"/v1/surveys/{sid}/media/a.png", json={"content_type": "image/png",
                                                                       "content_base64": "not base64!"}), 422)
    denied(orw.enum.api.put(f"/v1/surveys/{sid}/media/a.png", json={"content_type": "image/png",
                                                                      "content_base64": "AAAA"}), 403)


def test_media_names_up_to_128_bytes(orw):
    """A media file's name may be 128 bytes (the survey_media CHECK): uploaded, listed and served
    (the route's path parameter once stopped at 63 bytes); 129 is 422."""
    import base64
    sid, base = orw.or_survey["id"], f"/v1/openrosa/deployments/{orw.dep['id']}"
    name = "m" * 124 + ".csv"
    body = {"content_type": "text/csv", "content_base64": base64.b64encode(b"a,b\n1,2\n").decode()}
    ok(orw.owner.api.put(f"/v1/surveys/{sid}/media/{name}", json=body))
    mns = "{http://openrosa.org/xforms/xformsManifest}"
    files = xml_of(or_get(orw.enum.api, base + "/manifest")).findall(mns + "mediaFile")
    assert name in [m.find(mns + "filename").text for m in files]
    r = or_get(orw.enum.api, base + "/media/" + name)
    assert r.status_code == 200 and r.content == b"a,b\n1,2\n"
    denied(orw.owner.api.put(f"/v1/surveys/{sid}/media/x{name}", json=body), 422)


def test_etags_and_304(orw):
    """The form list, the form and the manifest carry a strong ETag (the MD5 of their body; the
    form's is the form list's hash) and answer 304 without a body to an If-None-Match naming it
    (also weakly, in a list, or *), 200 to any other; a change of the form or its media changes
    the tag. Only those who may read get either: a viewer keeps its 403, a stranger its 404."""
    import base64
    import hashlib
    import re
    s = ok(create(orw, INLINE.format(v="etag-1"), "ETag form"), 201)
    dep = ok(orw.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "etag", "roles": {"enumerators": [{"type": "user", "id": orw.enum.id}],
                                  "viewers": [{"type": "user", "id": orw.viewer.id}]}}), 201)
    sid, base = s["id"], f"/v1/openrosa/deployments/{dep['id']}"
    ns = "{http://openrosa.org/xforms/xformsList}"

    def tagged(path, api=None):
        r = or_get(api or orw.enum.api, base + path)
        assert r.status_code == 200, r.text[:300]
        tag = r.headers["ETag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', tag), tag
        return r, tag

    for path in ("/formList", "/form", "/manifest"):
        r, tag = tagged(path)
        if path == "/form":
            hash_ = xml_of(or_get(orw.enum.api, base + "/formList")).find(ns + "xform").find(ns + "hash").text
            assert tag == '"' + hash_[len("md5:"):] + '"' == '"' + hashlib.md5(r.content).hexdigest() + '"'
        else:
            assert tag == '"' + hashlib.md5(r.content).hexdigest() + '"'
        for inm in (tag, "W/" + tag, f'"nope", {tag}', "*"):
            for method in ("GET", "HEAD"):
                n = orw.enum.api.request(method, base + path, headers={"If-None-Match": inm})
                assert n.status_code == 304 and n.content == b"", (path, inm, method, n.status_code)
                assert n.headers["ETag"] == tag and n.headers["X-OpenRosa-Version"] == "1.0"
                assert n.headers["Cache-Control"] == "no-store"
                assert "Content-Length" not in n.headers or n.headers["Content-Length"] == "0"
        for inm in ('"' + "0" * 32 + '"', tag[:-2] + '"', tag.strip('"'), "W/", tag + " junk"):
            n = orw.enum.api.get(base + path, headers={"If-None-Match": inm})
            assert n.status_code == 200 and n.content == r.content, (path, inm, n.status_code)
        # no tag for those who may not read it, whatever they send
        for who, status in ((orw.viewer, 403), (orw.stranger, 404)):
            if path == "/formList" and who is orw.viewer:
                continue  # a viewer's own (empty) list is its to cache
            d = who.api.get(base + path, headers={"If-None-Match": "*"})
            assert d.status_code == status and "ETag" not in d.headers, (path, who, d.status_code)
    # an app user's form list names its URLs with its token: another body, another tag
    _, list_tag = tagged("/formList")
    au = ok(orw.owner.api.post(f"/v1/deployments/{dep['id']}/app-users", json={"name": "etag tablet"}), 201)
    anon = orw.c.api(None)
    key_base = f"/v1/key/{au['token']}/openrosa/deployments/{dep['id']}"
    r = anon.get(key_base + "/formList")
    assert r.status_code == 200 and au["token"] in r.text and r.headers["ETag"] != list_tag
    assert anon.get(key_base + "/formList", headers={"If-None-Match": r.headers["ETag"]}).status_code == 304
    assert anon.get(key_base + "/formList", headers={"If-None-Match": list_tag}).status_code == 200
    anon.close()
    # a new media file: the form list (manifestUrl) and the manifest change, the form does not
    _, form_tag = tagged("/form")
    _, man_tag = tagged("/manifest")
    ok(orw.owner.api.put(f"/v1/surveys/{sid}/media/etag.csv", json={
        "content_type": "text/csv", "content_base64": base64.b64encode(b"x,y\n").decode()}))
    assert or_get(orw.enum.api, base + "/manifest").headers["ETag"] != man_tag
    assert orw.enum.api.get(base + "/manifest", headers={"If-None-Match": man_tag}).status_code == 200
    assert or_get(orw.enum.api, base + "/form").headers["ETag"] == form_tag
    # a new version of the form: its tag and the list's change
    new = INLINE.format(v="2024-etag")
    ok(orw.owner.api.put(f"/v1/surveys/{sid}/definition", json={"xform": new}))
    r = orw.enum.api.get(base + "/form", headers={"If-None-Match": form_tag})
    assert r.status_code == 200 and r.content == new.encode()
    assert r.headers["ETag"] == '"' + hashlib.md5(new.encode()).hexdigest() + '"'
    assert orw.enum.api.get(base + "/formList", headers={"If-None-Match": list_tag}).status_code == 200


def test_openrosa_rights(orw):
    base = f"/v1/openrosa/deployments/{orw.dep['id']}"
    # a deployment viewer sees the deployment but is no enumerator: an empty list, 403 on the rest
    root = xml_of(or_get(orw.viewer.api, base + "/formList"))
    assert list(root) == []
    for p in ("/form", "/manifest", "/media/logo.png"):
        denied(or_get(orw.viewer.api, base + p), 403)
    # a stranger: 404 everywhere, as an unknown deployment
    for p in ("/formList", "/form", "/manifest", "/media/logo.png"):
        denied(or_get(orw.stranger.api, base + p), 404)
        denied(or_get(orw.enum.api, "/v1/openrosa/deployments/00000000-0000-4000-8000-000000000000" + p), 404)
    anon = orw.c.api(None)
    assert anon.get(base + "/formList").status_code == 401
    anon.close()


def test_new_xform_version_is_listed_and_old_one_kept(orw):
    sid, base = orw.or_survey["id"], f"/v1/openrosa/deployments/{orw.dep['id']}"
    new = INLINE.format(v="2024-02")
    v = ok(orw.owner.api.put(f"/v1/surveys/{sid}/definition", json={"xform": new}))
    ns = "{http://openrosa.org/xforms/xformsList}"
    f = xml_of(or_get(orw.enum.api, base + "/formList")).find(ns + "xform")
    assert f.find(ns + "version").text == "2024-02"
    assert or_get(orw.enum.api, base + "/form").content == new.encode()
    kept = orw.c.psql("SELECT xform FROM survey_versions WHERE survey_id = %s AND version = %s",
                      sid, v["version"] - 1)
    assert kept[0][0] == INLINE.format(v="2024-01")  # the old version's XForm, byte for byte
