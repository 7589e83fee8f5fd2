"""OpenRosa submissions (issue 13, Submissions part): every fixture instance of ODK Central's suite
submitted as ODK Collect sends it (multipart/form-data, the XML in xml_submission_file, the
attachments as further parts) and its stored answers checked field by field against the XML; the
status codes ODK Central's suite asserts (201, the same instance again 201 adding missing
attachments, different XML 409, missing part 400, broken multipart 400, unknown form 404, no
credentials 401, closed deployment 409, an older form version still accepted); the XML byte for
byte and the attachments read back; who may read them; hostile bodies."""
import hashlib
import pathlib
import xml.etree.ElementTree as ET

import pytest

from accesshelp import User, add_plain_member, denied, ok
from fvharness import wait_until

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk"
needs_fixtures = pytest.mark.skipif(not (FIXTURES / "forms").is_dir(), reason="no ODK fixtures")
ORNS = "{http://openrosa.org/http/response}"
# ODK Collect sends it on every request; the submission routes require it (as ODK Central does)
ORV = {"X-OpenRosa-Version": "1.0"}


@pytest.fixture(scope="module")
def ow(workers):
    c = workers
    owner, enum, viewer, stranger = (User(c, n) for n in ("or owner", "or enum", "or viewer", "or stranger"))
    org = ok(owner.api.post("/v1/orgs", json={"name": "OpenRosa submissions org"}), 201)
    for u in (enum, viewer):
        add_plain_member(c, org["id"], u.id)

    class W:
        pass
    w = W()
    w.c, w.owner, w.enum, w.viewer, w.stranger, w.org = c, owner, enum, viewer, stranger, org
    w.deps = {}
    yield w
    for u in (owner, enum, viewer, stranger):
        u.close()


def deploy(w, form):
    """A survey from fixture form `form` and a deployment with w.enum as enumerator (cached)."""
    if form in w.deps:
        return w.deps[form]
    xml = (FIXTURES / "forms" / f"{form}.xml").read_text(encoding="utf-8")
    s = ok(w.owner.api.post("/v1/surveys", json={"org_id": w.org["id"], "name": form, "xform": xml}), 201)
    dep = ok(w.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": form, "roles": {"enumerators": [{"type": "user", "id": w.enum.id}],
                                "viewers": [{"type": "user", "id": w.viewer.id}]}}), 201)
    w.deps[form] = (s, dep)
    return s, dep


def url(dep):
    return f"/v1/openrosa/deployments/{dep['id']}/submission"


def submit(api, dep, xml, attachments=(), **kw):
    files = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
    files += [(name, (name, data, ctype)) for name, data, ctype in attachments]
    kw["headers"] = {**ORV, **kw.get("headers", {})}
    r = api.post(url(dep), files=files, **kw)
    assert r.headers.get("X-OpenRosa-Version") == "1.0", (r.status_code, r.headers, r.text[:300])
    assert "Date" in r.headers
    return r


def envelope(r, status):
    assert r.status_code == status, (r.status_code, r.text[:500])
    assert r.headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(r.content)
    assert root.tag == ORNS + "OpenRosaResponse"
    msg = root.find(ORNS + "message")
    assert msg is not None and msg.get("nature") is not None
    return msg.text or ""


def response_id(dep, instance_id):
    """The id the server gives an instance (docs/api/openrosa.md): uuid:<UUID> as is, else derived."""
    if instance_id.startswith("uuid:"):
        return instance_id[5:].lower()
    h = bytearray(hashlib.sha256(b"fv-openrosa-instance\0" + dep["id"].encode() + b"\0" + instance_id.encode()).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x80
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:32]}"


def stored(w, rid, who=None):
    r = (who or w.owner).api.get(f"/v1/responses/{rid}")
    return r.json() if r.status_code == 200 else None


def expected(xml_bytes, survey):
    """The answers the XML should give, computed here independently: leaves by path (prefixes
    dropped), typed by the derived definition; repeat questions as lists (nested for nested
    repeats), one item per repeat instance."""
    import re
    qs = {q["name"]: q for q in survey["definition"]["questions"]}
    repeats = {q["xform"]["repeat"] for q in qs.values() if q.get("xform", {}).get("repeat")}
    # prefixes dropped (doubleRepeat's orx: is not even declared; the server ignores prefixes)
    root = ET.fromstring(re.sub(rb"<(/?)[A-Za-z_][\w.-]*:", rb"<\1", re.sub(rb"\sxmlns:\w+=\"[^\"]*\"", b"", xml_bytes)))

    def local(tag):
        return tag.split("}")[-1]

    def typed(q, text):
        t = q["type"]
        if t == "integer":
            return int(text)
        if t == "decimal":
            return float(text)
        if t == "select_multiple":
            return text.split()
        return text

    out = {}

    def chain_of(name):
        return sorted((r for r in repeats if name.startswith(r + "/")), key=len)

    def walk(el, path, holder):
        kids = list(el)
        if not kids:
            q = qs.get(path)
            if q is None or q["type"] == "note" or not (el.text or "").strip():
                return
            holder.setdefault(path, []).append(typed(q, el.text.strip()))
            return
        for k in kids:
            walk(k, f"{path}/{local(k.tag)}" if path else local(k.tag), holder)

    # flat questions
    flat = {}
    walk(root, "", flat)
    for name, vals in flat.items():
        if not chain_of(name):
            out[name] = vals[-1]

    # repeat questions: nested lists over instances
    def instances(el, path, rep):
        """Elements at repeat path rep below el (at path)."""
        if path == rep:
            return [el]
        found = []
        for k in el:
            p = f"{path}/{local(k.tag)}" if path else local(k.tag)
            if rep == p or rep.startswith(p + "/"):
                found += instances(k, p, rep)
        return found

    def value_in(el, path, name):
        for k in el.iter():
            pass
        rel = name[len(path) + 1:].split("/")
        cur = [el]
        for seg in rel:
            cur = [c for e in cur for c in e if local(c.tag) == seg]
        texts = [(c.text or "").strip() for c in cur if not list(c)]
        texts = [t for t in texts if t]
        return typed(qs[name], texts[-1]) if texts else None

    def nested(el, path, chain, name):
        items = []
        for inst in instances(el, path, chain[0]):
            if len(chain) > 1:
                items.append(nested(inst, chain[0], chain[1:], name))
            else:
                items.append(value_in(inst, chain[0], name))
        return items

    for name, q in qs.items():
        ch = chain_of(name)
        if not ch or q["type"] == "note":
            continue
        vals = nested(root, "", ch, name)
        if vals:
            out[name] = vals
    return out


SELECTS = """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa">
<h:head><h:title>selects</h:title><model>
<instance><data id="selects" version="1"><meta><instanceID/></meta><many/><one/><n/><where/></data></instance>
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
<bind nodeset="/data/many" type="string"/><bind nodeset="/data/one" type="string"/>
<bind nodeset="/data/n" type="decimal"/><bind nodeset="/data/where" type="geopoint"/>
</model></h:head>
<h:body>
<select ref="/data/many"><label>many</label><item><label>A</label><value>a</value></item><item><label>B</label><value>b</value></item><item><label>C</label><value>c</value></item></select>
<select1 ref="/data/one"><label>one</label><item><label>A</label><value>a</value></item><item><label>B</label><value>b</value></item></select1>
<input ref="/data/n"><label>n</label></input><input ref="/data/where"><label>where</label></input>
</h:body></h:html>"""


# ---- every fixture instance ----

PLAIN = [("simple", "one"), ("simple", "two"), ("simple2", "one"), ("simple2", "two"),
         ("withrepeat", "one"), ("withrepeat", "two"), ("selectMultiple", "one"),
         ("selectMultiple", "two"), ("nestedGroup", "one"), ("groupRepeat", "one"),
         ("doubleRepeat", "double"), ("clientAudits", "one"), ("clientAudits", "two")]


@needs_fixtures
@pytest.mark.parametrize("form,inst", PLAIN, ids=lambda x: str(x))
def test_fixture_instance_stored_field_by_field(ow, form, inst):
    s, dep = deploy(ow, form)
    xml = (FIXTURES / "instances" / form / f"{inst}.xml").read_bytes()
    import re
    rid = response_id(dep, re.search(rb"instanceID>([^<]*)<", xml).group(1).decode().strip())
    atts = []
    if form == "clientAudits":  # the audit CSV the form names
        atts = [("audit.csv", b"event,node,start,end\nform start,,1,\n", "text/csv")]
    msg = envelope(submit(ow.enum.api, dep, xml, atts), 201)
    assert "success" in msg
    got = stored(ow, rid)
    assert got is not None and got["deployment_id"] == dep["id"]
    assert got["data"] == expected(xml, s), (got["data"], expected(xml, s))
    # the XML byte for byte
    r = ow.owner.api.get(f"/v1/responses/{rid}/xml")
    assert r.status_code == 200 and r.content == xml


@needs_fixtures
def test_repeat_and_select_multiple_shapes_checked_by_hand(ow):
    s, dep = deploy(ow, "doubleRepeat")
    rid = response_id(dep, "double")
    if not stored(ow, rid):
        envelope(submit(ow.enum.api, dep, (FIXTURES / "instances/doubleRepeat/double.xml").read_bytes()), 201)
    d = stored(ow, rid)["data"]
    assert d["name"] == "Vick"
    assert d["children/child/name"] == ["Alice", "Bob", "Chelsea"]
    assert d["children/child/toys/toy/name"] == [
        [], ["Twilight Sparkle", "Pinkie Pie", "Applejack", "Spike"],
        ["Rainbow Dash", "Rarity", "Fluttershy", "Princess Luna"]]
    # the fixture's selects have no choices in the form: text (docs/api/openrosa.md); with
    # inline items, select_multiple: a list
    s, dep = deploy(ow, "selectMultiple")
    rid = response_id(dep, "one")
    if not stored(ow, rid):
        envelope(submit(ow.enum.api, dep, (FIXTURES / "instances/selectMultiple/one.xml").read_bytes()), 201)
    assert stored(ow, rid)["data"]["q1"] == "a b"
    form = SELECTS
    s = ok(ow.owner.api.post("/v1/surveys", json={"org_id": ow.org["id"], "name": "selects", "xform": form}), 201)
    dep = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "sel", "roles": {"enumerators": [{"type": "user", "id": ow.enum.id}]}}), 201)
    inst = (b'<data id="selects" version="1"><meta><instanceID>uuid:0b7c3c5e-1d2a-4c4e-9f3b-1a2b3c4d5e6f</instanceID></meta>'
            b'<many> a  c </many><one>b</one><n>2.5</n><where>1.5 2.25 10 4</where></data>')
    envelope(submit(ow.enum.api, dep, inst), 201)
    d = stored(ow, "0b7c3c5e-1d2a-4c4e-9f3b-1a2b3c4d5e6f")["data"]
    assert d["many"] == ["a", "c"] and d["one"] == "b" and d["n"] == 2.5
    assert d["where"] == {"lat": 1.5, "lon": 2.25, "altitude": 10, "accuracy": 4}
    bad = inst.replace(b"0b7c3c5e", b"1b7c3c5e").replace(b" a  c ", b"a zz").replace(b"<one>b", b"<one>q")
    msg = envelope(submit(ow.enum.api, dep, bad), 422)
    assert "many" in msg and "one" in msg
    s, dep = deploy(ow, "simple")
    d = stored(ow, response_id(dep, "one"))["data"]
    assert d == {"meta/instanceID": "one", "name": "Alice", "age": 30}


@needs_fixtures
def test_binary_instance_with_attachments_and_later_missing_ones(ow):
    s, dep = deploy(ow, "binaryType")
    xml = (FIXTURES / "instances/binaryType/both.xml").read_bytes()
    rid = response_id(dep, "both")
    mp4 = bytes(range(256)) * 40
    jpg = b"\xff\xd8\xff" + b"\x00jpeg" * 3000
    # first POST: only one of the two files (Collect splits big submissions)
    # (a file no answer names is ignored, as ODK Central does)
    envelope(submit(ow.enum.api, dep, xml, [("my_file1.mp4", mp4, "video/mp4"),
                                            ("some_random_file", b"unknown", "image/png")]), 201)
    assert stored(ow, rid)["data"]["file1"] == "my_file1.mp4"
    r = ow.owner.api.get(f"/v1/responses/{rid}/attachments/my_file1.mp4")
    assert r.status_code == 200 and r.content == mp4 and r.headers["Content-Type"] == "video/mp4"
    assert r.headers["Content-Disposition"] == "attachment; filename=\"my_file1.mp4\"; filename*=UTF-8''my_file1.mp4"
    denied(ow.owner.api.get(f"/v1/responses/{rid}/attachments/some_random_file"), 404)
    denied(ow.owner.api.get(f"/v1/responses/{rid}/attachments/here_is_file2.jpg"), 404)
    # the same instance again with the missing file: 201, the file added, nothing duplicated
    envelope(submit(ow.enum.api, dep, xml, [("here_is_file2.jpg", jpg, "image/jpeg")]), 201)
    r = ow.owner.api.get(f"/v1/responses/{rid}/attachments/here_is_file2.jpg")
    assert r.status_code == 200 and r.content == jpg
    rows = ow.c.psql("SELECT name, size, encode(sha256, 'hex') FROM response_attachments "
                     "WHERE response_id = %s ORDER BY name", rid)
    assert rows == [("here_is_file2.jpg", len(jpg), hashlib.sha256(jpg).hexdigest()),
                    ("my_file1.mp4", len(mp4), hashlib.sha256(mp4).hexdigest())]
    assert ow.c.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0] == 1
    # identical content in another response is stored once (deduplicated)
    xml1 = (FIXTURES / "instances/binaryType/one.xml").read_bytes()
    names = [e.text for e in ET.fromstring(xml1) if e.tag.startswith("file") and e.text]
    envelope(submit(ow.enum.api, dep, xml1, [(names[0], mp4, "video/mp4")]), 201)
    assert ow.c.psql("SELECT count(*) FROM attachment_blobs WHERE sha256 = decode(%s, 'hex')",
                     hashlib.sha256(mp4).hexdigest())[0][0] == 1
    # readers: the viewer reads final responses; a stranger gets 404 for the XML and the file
    assert ow.viewer.api.get(f"/v1/responses/{rid}/attachments/my_file1.mp4").status_code == 200
    denied(ow.stranger.api.get(f"/v1/responses/{rid}/attachments/my_file1.mp4"), 404)
    denied(ow.stranger.api.get(f"/v1/responses/{rid}/xml"), 404)


@needs_fixtures
def test_unicode_attachment_names(ow):
    from urllib.parse import quote
    s, dep = deploy(ow, "binaryType")
    xml = (FIXTURES / "instances/binaryType/unicode.xml").read_bytes()
    root = ET.fromstring(xml)
    f1, f2 = root.find("file1").text, root.find("file2").text  # as the fixture spells them (NFD)
    # the same instanceID as both.xml with other content in another deployment: its own response
    s2 = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "unicode", "roles": {"enumerators": [{"type": "user", "id": ow.enum.id}]}}), 201)
    # named by the part's field name, whatever its filename (as ODK Central's suite sends them)
    files = [("xml_submission_file", ("data.xml", xml, "text/xml")),
             (f1, (f1 + ".bin", b"first", "image/png")), (f2, (f2, b"second", "video/mp4"))]
    envelope(ow.enum.api.post(url(s2), files=files, headers=ORV), 201)
    rid = response_id(s2, "both")
    assert stored(ow, rid)["data"]["file2"] == f2
    for name, content in ((f1, b"first"), (f2, b"second")):
        r = ow.owner.api.get(f"/v1/responses/{rid}/attachments/{quote(name)}")
        assert r.status_code == 200 and r.content == content
        assert r.headers["Content-Disposition"].endswith("filename*=UTF-8''" + quote(name, safe=""))


def raw_multipart(parts, boundary="fvB0undary"):
    """A multipart/form-data body built byte by byte (requests percent-encodes control characters
    in names): parts are (name bytes, filename bytes or None, content type, data)."""
    out = b""
    for name, filename, ctype, data in parts:
        out += b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; name=\"" + name + b"\""
        if filename is not None:
            out += b"; filename=\"" + filename + b"\""
        out += b"\r\nContent-Type: " + ctype.encode() + b"\r\n\r\n" + data + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n", "multipart/form-data; boundary=" + boundary


def binary_instance(iid, f1, f2="none.mp4"):
    return ('<data id="binaryType"><meta><instanceID>' + iid + "</instanceID></meta><file1>" + f1 +
            "</file1><file2>" + f2 + "</file2></data>").encode()


@needs_fixtures
def test_attachment_names_up_to_255_bytes(ow):
    """Attachment names of 64 to 255 bytes (the Android limit of a file name; Enketo and Web Forms
    send the device's own file names) are stored and read back by name, percent-encoded UTF-8
    included (765 bytes in the path)."""
    from urllib.parse import quote
    s, dep = deploy(ow, "binaryType")
    names = ["n" * 60 + ".jpg",                      # 64 bytes: one over the old route limit
             "p" * 251 + ".jpg",                     # 255 bytes of ASCII
             "\u00e9" * 125 + ".jpgx",              # 255 bytes of UTF-8 (765 percent-encoded)
             "a b+c%d;e=f'g(h)i~j!k$l&m,n" + "q" * 224 + ".png",  # 255 bytes, URL-special characters
             "x.." + "d" * 57 + ".jpg"]              # ".." inside a name: a name, never a path
    for i, name in enumerate(names):
        assert len(name.encode()) in (64, 255), name  # the last: 64
        iid = f"uuid:5a5a5a5a-0000-4000-8000-00000000000{i}"
        xml = binary_instance(iid, name.replace("&", "&amp;"))
        body = f"content of name {i}".encode() * 10
        envelope(submit(ow.enum.api, dep, xml, [(name, body, "image/jpeg")]), 201)
        rid = iid[5:]
        assert stored(ow, rid)["data"]["file1"] == name
        assert ow.c.psql("SELECT name, size FROM response_attachments WHERE response_id = %s", rid) == [
            (name, len(body))]
        r = ow.owner.api.get(f"/v1/responses/{rid}/attachments/{quote(name, safe='')}")
        assert r.status_code == 200 and r.content == body, (name, r.status_code, r.text[:200])
        disp = r.headers["Content-Disposition"]
        assert disp.endswith("filename*=UTF-8''" + quote(name, safe="")), disp
        assert ow.viewer.api.get(f"/v1/responses/{rid}/attachments/{quote(name, safe='')}").status_code == 200
        denied(ow.stranger.api.get(f"/v1/responses/{rid}/attachments/{quote(name, safe='')}"), 404)
    # names that cannot be stored are not found (never a 500, never another file)
    rid = "5a5a5a5a-0000-4000-8000-000000000001"
    for bad in ["p" * 252 + ".jpg", "p" * 2000, "..", "%2e%2e", "a%2Fb", "a%5Cb", "%01x", "%C2%85x",
                quote(names[1]) + "%00"]:
        r = ow.owner.api.get(f"/v1/responses/{rid}/attachments/{bad}")
        assert r.status_code in (400, 404), (bad[:40], r.status_code, r.text[:200])


BAD_NAMES = [
    (b"p" * 252 + b".jpg", "longer than 255 bytes"),        # 256 bytes
    (b"p" * 300 + b".jpg", "longer than"),                  # over the parser's own bound too
    (b"dir/x.jpg", "/"),
    (b"..", ".."),
    (b".", '"."'),
    (b"a\\\\b.jpg", "\\"),  # a\\b as a quoted-string writes a\b
    (b"tab\tname.jpg", "control character"),
    (b"esc\x1bname.jpg", "control character"),
    (b"del\x7fname.jpg", "control character"),
    (b"c1\xc2\x85name.jpg", "control character"),          # U+0085, a C1 control
    (b"nul\x00name.jpg", "NUL"),                            # never cut short to "nul"
    (b"\xc3\x28.jpg", "UTF-8"),
    (b"", "empty"),
]


@needs_fixtures
@pytest.mark.parametrize("name,why", BAD_NAMES, ids=[w + ":" + repr(n[:12]) for n, w in BAD_NAMES])
def test_attachment_names_refused(ow, name, why):
    """A part name (the attachment's name) over 255 bytes, with /, \\, "..", NUL, a control
    character or not UTF-8: 400 in the OpenRosa envelope saying why, nothing stored."""
    s, dep = deploy(ow, "binaryType")
    iid = "badname-" + hashlib.sha256(name).hexdigest()[:16]
    short = name.split(b"\x00")[0].decode("utf-8", "replace")
    # the instance names the (shortened) file so that a server cutting the name would keep it
    xml = binary_instance(iid, "".join(c for c in short if c.isprintable()) or "x.jpg")
    body, ctype = raw_multipart([(b"xml_submission_file", b"submission.xml", "text/xml", xml),
                                 (name, name or b"f.jpg", "image/jpeg", b"JPEGDATA")])
    r = ow.enum.api.post(url(dep), data=body, headers={**ORV, "Content-Type": ctype})
    msg = envelope(r, 400)
    assert why in msg, msg
    assert r.headers["X-Fieldvault-Error"] == "bad_submission"
    assert stored(ow, response_id(dep, iid)) is None
    assert ow.c.psql("SELECT count(*) FROM response_attachments WHERE name LIKE 'nul%%'")[0][0] == 0


# ---- repeats: edits through the JSON API, and their inner questions checked ----

def patch(w, rid, data, who=None):
    return (who or w.owner).api.patch(f"/v1/responses/{rid}", json={"data": data})


@needs_fixtures
@pytest.mark.parametrize("form,inst", [("withrepeat", "two"), ("doubleRepeat", "double"), ("groupRepeat", "one")])
def test_patch_of_a_response_with_repeats(ow, form, inst):
    """A response stored from an instance with repeats (its repeat questions as lists, nested for
    nested repeats) takes a JSON PATCH: the same answers back, an answer inside a repeat changed, an
    item added to every question of a repeat; a repeat answer of the wrong shape is 422 naming it."""
    import copy
    import re
    s, dep = deploy(ow, form)
    xml = (FIXTURES / "instances" / form / f"{inst}.xml").read_bytes()
    iid = re.search(rb"instanceID>([^<]*)<", xml).group(1).decode().strip()
    import uuid
    iid2 = f"uuid:{uuid.uuid4()}" if iid.startswith("uuid:") else iid + "-patched"
    xml = xml.replace(f">{iid}<".encode(), f">{iid2}<".encode())
    rid = response_id(dep, iid2)
    envelope(submit(ow.enum.api, dep, xml), 201)
    got = stored(ow, rid)
    data = got["data"]
    reps = {k: v for k, v in data.items() if isinstance(v, list)}
    assert reps, data
    # the same answers back: 200, a new version
    r = patch(ow, rid, data)
    assert r.status_code == 200, r.text
    assert r.json()["data"] == data and r.json()["version"] == got["version"] + 1
    # one answer inside a repeat changed
    def last_leaf_list(v):
        while v and isinstance(v[-1], list):
            v = v[-1]
        return v
    key = next(k for k in sorted(reps) if isinstance((last_leaf_list(reps[k]) or [None])[-1], str))
    edited = copy.deepcopy(data)
    last_leaf_list(edited[key])[-1] = "edited inside the repeat"
    r = patch(ow, rid, edited)
    assert r.status_code == 200, r.text
    assert stored(ow, rid)["data"] == edited
    hist = ok(ow.owner.api.get(f"/v1/responses/{rid}/history"))["items"]
    assert [h["version"] for h in hist] == [1, 2, 3] and hist[-1]["state"]["data"] == edited
    # one more instance of the outermost repeat, in every question of it
    grown = copy.deepcopy(edited)
    for k, v in grown.items():
        if isinstance(v, list):
            v.append([] if v and isinstance(v[0], list) else None)
    r = patch(ow, rid, grown)
    assert r.status_code == 200, r.text
    # wrong shapes: a repeat question answered by a bare value, or a list where items are expected
    bare = dict(edited, **{key: "not a list"})
    r = patch(ow, rid, bare)
    err = denied(r, 422, "validation_failed")
    assert key in err["fields"], err
    assert stored(ow, rid)["data"] == grown


REQUIRED_REPEAT = """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml" xmlns:jr="http://openrosa.org/javarosa">
<h:head><h:title>required in a repeat</h:title><model>
<instance><data id="reqrep" version="1"><meta><instanceID/></meta><hh/>
<member jr:template=""><mname/><mage/><mwhy/><pet jr:template=""><pname/></pet></member></data></instance>
<bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
<bind nodeset="/data/hh" type="string" required="true()"/>
<bind nodeset="/data/member/mname" type="string" required="true()"/>
<bind nodeset="/data/member/mage" type="int"/>
<bind nodeset="/data/member/mwhy" type="string" required="true()" relevant="../mage &gt; 17"/>
<bind nodeset="/data/member/pet/pname" type="string" required="true()"/>
</model></h:head>
<h:body>
<input ref="/data/hh"><label>household</label></input>
<group ref="/data/member"><label>member</label><repeat nodeset="/data/member">
<input ref="/data/member/mname"><label>name</label></input>
<input ref="/data/member/mage"><label>age</label></input>
<input ref="/data/member/mwhy"><label>why (adults)</label></input>
<group ref="/data/member/pet"><label>pet</label><repeat nodeset="/data/member/pet">
<input ref="/data/member/pet/pname"><label>pet name</label></input></repeat></group>
</repeat></group>
</h:body></h:html>"""


def reqrep_instance(n, members):
    out = f'<data id="reqrep" version="1"><meta><instanceID>uuid:{n}</instanceID></meta><hh>home</hh>'
    for name, age, pets in members:
        out += f"<member><mname>{name}</mname><mage>{age}</mage><mwhy/>"
        out += "".join(f"<pet><pname>{p}</pname></pet>" for p in pets) + "</member>"
    return (out + "</data>").encode()


def test_required_and_types_inside_repeats_are_checked(ow):
    """A required question inside a repeat must be answered in every instance of it (on
    submission and on edit); its items are typed and checked one by one, reported by position."""
    s = ok(ow.owner.api.post("/v1/surveys", json={"org_id": ow.org["id"], "name": "reqrep",
                                                  "xform": REQUIRED_REPEAT}), 201)
    dep = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "reqrep", "roles": {"enumerators": [{"type": "user", "id": ow.enum.id}]}}), 201)
    q = {x["name"]: x for x in s["definition"]["questions"]}
    assert q["member/mname"]["required"] is True and q["member/mname"]["xform"]["repeat"] == "member"
    # required only when relevant: the server evaluates no XPath, so it does not require it (the
    # adult's empty <mwhy/> below is taken); the clients keep the rule
    assert "required" not in q["member/mwhy"] and q["member/mwhy"]["xform"]["required"] == "true()"
    good = "6d1f3a2e-0000-4000-8000-000000000001"
    envelope(submit(ow.enum.api, dep, reqrep_instance(good, [("Ann", 30, ["Rex"]), ("Bo", 4, [])])), 201)
    d = stored(ow, good)["data"]
    assert d["member/mname"] == ["Ann", "Bo"] and d["member/mage"] == [30, 4]
    assert d["member/pet/pname"] == [["Rex"], []]
    # no member at all: nothing inside the repeat is required
    none = "6d1f3a2e-0000-4000-8000-000000000002"
    envelope(submit(ow.enum.api, dep, reqrep_instance(none, [])), 201)
    # the second member without a name, the first member's second pet without one, an age "old"
    bad = "6d1f3a2e-0000-4000-8000-000000000003"
    msg = envelope(submit(ow.enum.api, dep, reqrep_instance(bad, [("Ann", "old", ["Rex", ""]), ("", 4, [])])), 422)
    assert "member/mname: #2: required" in msg, msg
    assert "member/pet/pname: #1.2: required" in msg, msg
    assert "member/mage: #1: expected integer" in msg, msg
    assert stored(ow, bad) is None
    # edits: the same rules through PATCH
    r = patch(ow, good, dict(d, **{"member/mname": ["Ann", None]}))
    err = denied(r, 422, "validation_failed")
    assert err["fields"]["member/mname"] == "#2: required", err
    r = patch(ow, good, dict(d, **{"member/pet/pname": [["Rex", ""], []]}))
    assert denied(r, 422, "validation_failed")["fields"]["member/pet/pname"] == "#1.2: required"
    r = patch(ow, good, dict(d, **{"member/mage": [30, "four"]}))
    assert denied(r, 422, "validation_failed")["fields"]["member/mage"] == "#2: expected integer"
    # the questions of one repeat must agree on how many instances it has
    r = patch(ow, good, dict(d, **{"member/mage": [30, 4, 5]}))
    assert "member/mage" in denied(r, 422, "validation_failed")["fields"]
    r = patch(ow, good, dict(d, **{"member/pet/pname": [["Rex"]]}))
    assert "member/pet/pname" in denied(r, 422, "validation_failed")["fields"]
    # a required repeat question left out while its repeat has instances: required
    partial = {k: v for k, v in d.items() if k != "member/mname"}
    r = patch(ow, good, partial)
    assert denied(r, 422, "validation_failed")["fields"]["member/mname"] == "#1: required"
    # and a good edit inside the repeat
    ok_edit = dict(d, **{"member/mname": ["Ann", "Bob"], "member/pet/pname": [["Rex", "Tom"], []]})
    r = patch(ow, good, ok_edit)
    assert r.status_code == 200, r.text
    assert stored(ow, good)["data"] == ok_edit


# ---- status codes as ODK Central's suite asserts them ----

@needs_fixtures
def test_status_codes(ow):
    s, dep = deploy(ow, "simple")
    one = (FIXTURES / "instances/simple/one.xml").read_bytes()
    if not stored(ow, response_id(dep, "one")):
        envelope(submit(ow.enum.api, dep, one), 201)
    # identical again: 201
    envelope(submit(ow.enum.api, dep, one), 201)
    # the same instanceID with other content: 409
    other = one.replace(b"Alice", b"Mallory")
    envelope(submit(ow.enum.api, dep, other), 409)
    assert stored(ow, response_id(dep, "one"))["data"]["name"] == "Alice"
    # no xml_submission_file: 400
    r = ow.enum.api.post(url(dep), files=[("other", ("x.xml", one, "text/xml"))], headers=ORV)
    envelope(r, 400)
    # broken multipart: 400
    for body, ctype in [(b"not multipart at all", "multipart/form-data; boundary=xyz"),
                        (b"--xyz\r\nContent-Disposition: form-data; name=\"xml_submission_file\"\r\n\r\n<data/>",
                         "multipart/form-data; boundary=xyz"),  # never closed
                        (one, "text/xml"),
                        (b"--xyz\r\nno colon here\r\n\r\nx\r\n--xyz--", "multipart/form-data; boundary=xyz"),
                        (b"x", "multipart/form-data; boundary=" + "b" * 71),
                        (b"x", "multipart/form-data")]:
        envelope(ow.enum.api.post(url(dep), data=body, headers={**ORV, "Content-Type": ctype}), 400)
    # malformed XML, XML without instanceID: 400
    envelope(submit(ow.enum.api, dep, b"<data id='simple'><name>x</nam></data>"), 400)
    envelope(submit(ow.enum.api, dep, b"<data id='simple'><name>x</name></data>"), 400)
    # unknown form id in this deployment, unknown deployment: 404
    envelope(submit(ow.enum.api, dep, one.replace(b'id="simple"', b'id="nosuchform"')), 404)
    envelope(submit(ow.enum.api, {"id": "00000000-0000-4000-8000-000000000000"}, one), 404)
    # no credentials: 401 (HEAD too), in the envelope
    anon = ow.c.api(None)
    envelope(anon.post(url(dep), files=[("xml_submission_file", ("s.xml", one, "text/xml"))], headers=ORV), 401)
    h = anon.request("HEAD", url(dep), headers=ORV)
    assert h.status_code == 401 and h.headers["X-OpenRosa-Version"] == "1.0"
    anon.close()
    # HEAD: 204 with the announced limit
    h = ow.enum.api.request("HEAD", url(dep), headers=ORV)
    assert h.status_code == 204 and int(h.headers["X-OpenRosa-Accept-Content-Length"]) > 0
    assert h.headers["X-OpenRosa-Version"] == "1.0" and "Date" in h.headers
    # invalid answers: 422 naming every bad field
    bad = one.replace(b"<instanceID>one", b"<instanceID>bad1").replace(b"<age>30", b"<age>old")
    msg = envelope(submit(ow.enum.api, dep, bad), 422)
    assert "age" in msg
    # a viewer of the deployment: 403; a stranger: 404 (as the JSON path)
    two = (FIXTURES / "instances/simple/two.xml").read_bytes()
    envelope(submit(ow.viewer.api, dep, two), 403)
    envelope(submit(ow.stranger.api, dep, two), 404)
    assert stored(ow, response_id(dep, "two")) is None or True  # two may be stored by the fixture test
    # a closed deployment: 409
    s3 = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "closing", "roles": {"enumerators": [{"type": "user", "id": ow.enum.id}]}}), 201)
    ok(ow.owner.api.patch(f"/v1/deployments/{s3['id']}", json={"closed": True}))
    wait_until(lambda: submit(ow.enum.api, s3, two).status_code == 409, 30, what="closed: 409")


@needs_fixtures
def test_openrosa_version_header_is_required(ow):
    """HEAD and POST .../submission without X-OpenRosa-Version: 1.0 are 400, as ODK Central answers
    them ("should fail if not given X-OpenRosa-Version header"); ODK Collect's own pre-flight (the
    header, a Date, its User-Agent) is 204 with the announced body limit."""
    from email.utils import formatdate
    s, dep = deploy(ow, "simple")
    one = (FIXTURES / "instances/simple/one.xml").read_bytes().replace(b">one<", b">nover<")
    for headers in ({}, {"X-OpenRosa-Version": "2.0"}, {"X-OpenRosa-Version": ""},
                    {"X-OpenRosa-Version": "1.01"}):
        h = ow.enum.api.request("HEAD", url(dep), headers=headers)
        assert h.status_code == 400 and not h.content, (headers, h.status_code)
        assert h.headers["X-OpenRosa-Version"] == "1.0" and h.headers["X-Fieldvault-Error"] == "openrosa_version"
        files = [("xml_submission_file", ("s.xml", one, "text/xml"))]
        msg = envelope(ow.enum.api.post(url(dep), files=files, headers=headers), 400)
        assert "X-OpenRosa-Version" in msg
    assert stored(ow, response_id(dep, "nover")) is None
    # without credentials the challenge comes first (Collect then asks for them)
    anon = ow.c.api(None)
    h = anon.request("HEAD", url(dep))
    assert h.status_code == 401 and h.headers["WWW-Authenticate"].startswith("Basic ")
    anon.close()
    # ODK Collect's HEAD as it sends it
    collect = {"X-OpenRosa-Version": "1.0", "Date": formatdate(usegmt=True),
               "User-Agent": "org.odk.collect.android/v2024.3.0 okhttp/4.12.0", "Accept-Encoding": "gzip"}
    h = ow.enum.api.request("HEAD", url(dep), headers=collect)
    assert h.status_code == 204 and int(h.headers["X-OpenRosa-Accept-Content-Length"]) > 0
    assert h.headers["X-OpenRosa-Version"] == "1.0" and "Date" in h.headers
    # and an app user's token in the path: the same rule
    au = ok(ow.owner.api.post(f"/v1/deployments/{dep['id']}/app-users", json={"name": "no header"}), 201)
    anon = ow.c.api(None)
    base = f"/v1/key/{au['token']}/openrosa/deployments/{dep['id']}/submission"
    assert anon.request("HEAD", base).status_code == 400
    assert anon.request("HEAD", base, headers=collect).status_code == 204
    envelope(anon.post(base, files=[("xml_submission_file", ("s.xml", one, "text/xml"))]), 400)
    envelope(anon.post(base, files=[("xml_submission_file", ("s.xml", one, "text/xml"))], headers=collect), 201)
    anon.close()


def test_head_answers_carry_no_body_on_a_kept_alive_connection(ow):
    """ODK Collect sends its HEAD and then its POST on one connection: a HEAD's answer (401 without
    credentials, 400 without the header, 204, a GET route's 200 or 404) must end at its head, or
    the client reads the rest as the next answer's status line."""
    from fvharness import tls_connect
    s, dep = deploy(ow, "simple")
    path = url(dep)
    auth = f"Authorization: Bearer {ow.enum.api.key}\r\n"
    steps = [("HEAD", path, "", 401), ("HEAD", path, auth, 400),
             ("HEAD", path, auth + "X-OpenRosa-Version: 1.0\r\n", 204),
             ("HEAD", f"/v1/openrosa/deployments/{dep['id']}/formList", auth, 200),
             ("HEAD", "/v1/surveys/00000000-0000-4000-8000-000000000000", auth, 404),
             ("GET", "/healthz", "", 200)]
    sock = tls_connect(ow.c)
    try:
        pending = b""
        for method, p, extra, status in steps:
            sock.sendall(f"{method} {p} HTTP/1.1\r\nHost: fv\r\n{extra}\r\n".encode())
            while b"\r\n\r\n" not in pending:
                chunk = sock.recv(65536)
                assert chunk, (method, p, "connection closed")
                pending += chunk
            head, pending = pending.split(b"\r\n\r\n", 1)
            assert head.startswith(f"HTTP/1.1 {status} ".encode()), (method, p, head[:200])
            if method == "HEAD":
                # nothing after the head: the next bytes on the connection are the next answer's
                assert pending == b"", (p, pending[:200])
                assert b"Connection: close" not in head, head
    finally:
        sock.close()


@needs_fixtures
def test_older_form_version_still_accepted(ow):
    xml = (FIXTURES / "forms/withrepeat.xml").read_text()
    s = ok(ow.owner.api.post("/v1/surveys", json={"org_id": ow.org["id"], "name": "versions", "xform": xml}), 201)
    dep = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "v", "roles": {"enumerators": [{"type": "user", "id": ow.enum.id}]}}), 201)
    assert s["definition"]["xform"]["version"] == "1.0"  # orx:version, as ODK Central reads it
    new = xml.replace('orx:version="1.0"', 'version="2.0"')
    ok(ow.owner.api.put(f"/v1/surveys/{s['id']}/definition", json={"xform": new}))
    inst = (FIXTURES / "instances/withrepeat/two.xml").read_text().replace("rtwo", "oldv")
    assert 'version="1.0"' in inst
    envelope(submit(ow.enum.api, dep, inst.encode()), 201)
    rid = response_id(dep, "oldv")
    assert stored(ow, rid)["data"]["name"]
    assert ow.c.psql("SELECT survey_version FROM responses WHERE id = %s", rid)[0][0] == 1
    inst = inst.replace('version="1.0"', 'version="no-such-version"').replace("oldv", "nov")
    envelope(submit(ow.enum.api, dep, inst.encode()), 404)


# ---- hostile bodies ----

@needs_fixtures
def test_hostile_bodies(ow):
    s, dep = deploy(ow, "simple")
    one = (FIXTURES / "instances/simple/one.xml").read_bytes()
    # XML bombs and DOCTYPEs: 400 quickly
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<data id="simple"><meta><instanceID>bomb</instanceID></meta><name>&b;</name></data>')
    assert "DOCTYPE" in envelope(submit(ow.enum.api, dep, bomb), 400)
    deep = b'<data id="simple">' + b"<a>" * 100000 + b"</a>" * 100000 + b"</data>"
    envelope(submit(ow.enum.api, dep, deep), 400)
    # too many parts: 400
    many = [(f"f{i}.bin", b"x", "application/octet-stream") for i in range(150)]
    envelope(submit(ow.enum.api, dep, one, many), 400)
    # a body over the announced limit: 413, never read into a response
    limit = int(ow.enum.api.request("HEAD", url(dep), headers=ORV).headers["X-OpenRosa-Accept-Content-Length"])
    big = [("big.bin", ("big.bin", b"\0" * (limit + 1), "application/octet-stream"))]
    r = ow.enum.api.post(url(dep), files=[("xml_submission_file", ("s.xml", one, "text/xml"))] + big, headers=ORV)
    assert r.status_code == 413
    # a huge part head, a boundary inside data that is not one
    head = b"--xyz\r\nContent-Disposition: form-data; name=\"" + b"n" * 10000 + b"\"\r\n\r\nx\r\n--xyz--\r\n"
    envelope(ow.enum.api.post(url(dep), data=head, headers={**ORV, "Content-Type": "multipart/form-data; boundary=xyz"}), 400)
    tricky = (b"--xyz\r\nContent-Disposition: form-data; name=\"xml_submission_file\"; filename=\"s.xml\"\r\n\r\n"
              + one.replace(b"<instanceID>one", b"<instanceID>tricky").replace(b"Alice", b"A\r\n--xy\r\n--xyzz")
              + b"\r\n--xyz--\r\n")
    r = ow.enum.api.post(url(dep), data=tricky, headers={**ORV, "Content-Type": "multipart/form-data; boundary=xyz"})
    # "--xyzz" after CRLF is the delimiter "--xyz" followed by "z": malformed, refused as 400
    envelope(r, 400)
    # an attachment name that is not UTF-8 (PostgreSQL could not store it): 400, nothing queued
    raw = (b"--xyz\r\nContent-Disposition: form-data; name=\"xml_submission_file\"; filename=\"s.xml\"\r\n\r\n"
           + one.replace(b"<instanceID>one", b"<instanceID>badname") + b"\r\n--xyz\r\n"
           b"Content-Disposition: form-data; name=\"\xff\xfe.jpg\"; filename=\"f.jpg\"\r\n\r\nx\r\n--xyz--\r\n")
    assert "UTF-8" in envelope(ow.enum.api.post(url(dep), data=raw, headers={
        **ORV, "Content-Type": "multipart/form-data; boundary=xyz"}), 400)
    assert stored(ow, response_id(dep, "badname")) is None
    assert ow.enum.api.get("/v1/me").status_code == 200


@needs_fixtures
def test_removed_member_is_refused(ow):
    c = ow.c
    gone = User(c, "or leaver")
    add_plain_member(c, ow.org["id"], gone.id)
    s, dep = deploy(ow, "simple2")
    d2 = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "leaver", "roles": {"enumerators": [{"type": "user", "id": gone.id}]}}), 201)
    xml = (FIXTURES / "instances/simple2/one.xml").read_bytes().replace(b"s2one", b"leaver1")
    envelope(submit(gone.api, d2, xml), 201)
    ok(ow.owner.api.delete(f"/v1/orgs/{ow.org['id']}/members/{gone.id}"), 204)
    xml = xml.replace(b"leaver1", b"leaver2")
    wait_until(lambda: submit(gone.api, d2, xml).status_code == 404, 30, what="removed member: 404")
    assert stored(ow, response_id(d2, "leaver2")) is None
    gone.close()


@needs_fixtures
def test_deprecated_id_makes_an_edit_with_history(ow):
    xml = (FIXTURES / "forms/binaryType.xml").read_text()
    s = ok(ow.owner.api.post("/v1/surveys", json={"org_id": ow.org["id"], "name": "edits", "xform": xml}), 201)
    dep = ok(ow.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "e", "roles": {"enumerators": [{"type": "user", "id": ow.enum.id},
                                               {"type": "user", "id": ow.owner.id}]}}), 201)
    v1 = (b'<data id="binaryType"><meta><instanceID>uuid:11111111-1111-4111-8111-111111111111</instanceID></meta>'
          b'<file1>a.jpg</file1><file2>first.mp4</file2></data>')
    envelope(submit(ow.enum.api, dep, v1, [("a.jpg", b"one", "image/jpeg")]), 201)
    rid = "11111111-1111-4111-8111-111111111111"
    v2 = (b'<data id="binaryType"><meta><instanceID>uuid:22222222-2222-4222-8222-222222222222</instanceID>'
          b'<deprecatedID>uuid:11111111-1111-4111-8111-111111111111</deprecatedID></meta>'
          b'<file1>a.jpg</file1><file2>second.mp4</file2></data>')
    # the enumerator may not edit a final response (as PATCH): 403; its manager (the survey admin) may
    envelope(submit(ow.enum.api, dep, v2), 403)
    envelope(submit(ow.owner.api, dep, v2, [("a.jpg", b"two", "image/jpeg")]), 201)
    got = stored(ow, rid)
    assert got["data"]["file2"] == "second.mp4" and got["version"] == 2
    assert ow.owner.api.get(f"/v1/responses/{rid}/xml").content == v2
    assert ow.owner.api.get(f"/v1/responses/{rid}/attachments/a.jpg").content == b"two"
    hist = ok(ow.owner.api.get(f"/v1/responses/{rid}/history"))["items"]
    assert sorted(h["version"] for h in hist) == [1, 2]
    # the same edit again: 201, no new version; an edit of an unknown instance: 404
    envelope(submit(ow.owner.api, dep, v2), 201)
    assert stored(ow, rid)["version"] == 2
    v3 = v2.replace(b"22222222-2222-4222-8222-222222222222", b"33333333-3333-4333-8333-333333333333").replace(
        b"11111111-1111-4111-8111-111111111111", b"44444444-4444-4444-8444-444444444444")
    envelope(submit(ow.owner.api, dep, v3), 404)


@needs_fixtures
def test_export_carries_instances_and_attachments(ow):
    import io
    import json
    import zipfile
    s, dep = deploy(ow, "binaryType")
    rid = response_id(dep, "both")
    if ow.owner.api.get(f"/v1/responses/{rid}/attachments/my_file1.mp4").status_code != 200:
        test_binary_instance_with_attachments_and_later_missing_ones(ow)
    job = ok(ow.owner.api.post(f"/v1/orgs/{ow.org['id']}/exports"), 202)

    def ended():
        j = ok(ow.owner.api.get(f"/v1/jobs/{job['id']}"))
        return j if j["state"] in ("done", "failed") else None
    assert wait_until(ended, 120, what="export")["state"] == "done"
    r = ow.owner.api.get(f"/v1/exports/{job['id']}")
    assert r.status_code == 200
    z = zipfile.ZipFile(io.BytesIO(r.content))
    inst = [json.loads(l) for l in z.read(f"surveys/{s['id']}/instances.jsonl").decode().splitlines()]
    mine = [i for i in inst if i["response_id"] == rid]
    assert mine and mine[0]["xml"].encode() == (FIXTURES / "instances/binaryType/both.xml").read_bytes()
    atts = [json.loads(l) for l in z.read(f"surveys/{s['id']}/attachments.jsonl").decode().splitlines()]
    got = {a["name"]: a for a in atts if a["response_id"] == rid}
    import base64
    f1 = base64.b64decode(got["my_file1.mp4"]["content_base64"])
    assert f1 == bytes(range(256)) * 40 and got["my_file1.mp4"]["sha256"] == hashlib.sha256(f1).hexdigest()
    assert set(got) == {"my_file1.mp4", "here_is_file2.jpg"}


@needs_fixtures
def test_app_user_token_and_basic_submit(ow):
    """ODK Collect's credentials: an app user's token in the URL (the response is the app user's),
    revoked -> 401; and no credentials on HEAD -> 401 with a Basic challenge."""
    s, dep = deploy(ow, "simple")
    au = ok(ow.owner.api.post(f"/v1/deployments/{dep['id']}/app-users", json={"name": "tablet 1"}), 201)
    anon = ow.c.api(None)
    base = f"/v1/key/{au['token']}/openrosa/deployments/{dep['id']}/submission"
    xml = (FIXTURES / "instances/simple/one.xml").read_bytes().replace(b">one<", b">appuser1<")
    r = anon.post(base, files=[("xml_submission_file", ("s.xml", xml, "text/xml"))], headers=ORV)
    assert envelope(r, 201)
    rid = response_id(dep, "appuser1")
    got = stored(ow, rid)
    assert got and got["submitted_by"] == au["id"]
    h = anon.request("HEAD", base, headers=ORV)
    assert h.status_code == 204 and h.headers["X-OpenRosa-Version"] == "1.0"
    # the submission's body limit holds under the token prefix too (2 MiB > max_body_bytes)
    big = xml.replace(b"appuser1", b"appuser-big")
    r = anon.post(base, files=[("xml_submission_file", ("s.xml", big, "text/xml")),
                               ("pad.bin", ("pad.bin", b"\0" * (2 << 20), "application/octet-stream"))], headers=ORV)
    envelope(r, 201)
    # the app user's token is for its own deployment only
    s2, dep2 = deploy(ow, "simple2")
    other = f"/v1/key/{au['token']}/openrosa/deployments/{dep2['id']}/submission"
    envelope(anon.post(other, files=[("xml_submission_file", ("s.xml", xml, "text/xml"))], headers=ORV), 404)
    h = anon.request("HEAD", url(dep), headers=ORV)
    assert h.status_code == 401 and h.headers["WWW-Authenticate"].startswith("Basic ")
    ok(ow.owner.api.delete(f"/v1/deployments/{dep['id']}/app-users/{au['id']}"), 204)
    xml2 = xml.replace(b"appuser1", b"appuser2")
    wait_until(lambda: anon.post(base, files=[("xml_submission_file", ("s.xml", xml2, "text/xml"))], headers=ORV).status_code == 401,
               30, what="revoked app user: 401")
    anon.close()
