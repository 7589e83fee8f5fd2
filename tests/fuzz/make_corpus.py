#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

    /usr/bin/python3 tests/fuzz/make_corpus.py [--fixtures DIR]

Seeds come from the ODK fixtures (/work/shared/fixtures/odk by default: XForms turned into our
form definitions, their instances into submission bodies, envelopes and spool files), from the
string literals of the project's unit tests (tests/unit/test_*.c), from the sample configuration
(deploy/fieldvault.conf) and the route table (frontend/http/fe_routes.c), plus a few written here.
The output is committed; re-run after changing what it reads. Files are named by the SHA-1 of
their content (libFuzzer's own naming), so a re-run changes nothing that did not change, and the
regression inputs kept under corpus/<target>/ by hand (regress-*) are left alone.
"""
import argparse
import base64
import hashlib
import json
import os
import re
import struct
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
UUIDS = ["5b0c3f0e-2f7b-4a55-9d43-6f1f7c1a0001", "0e8c2d4a-91b3-4c6e-8f7a-2b5d9c1e0002",
         "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b0003", "00000000-0000-0000-0000-000000000000"]
MAX_SEED = 8192


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        return
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


def c_strings(path):
    """The string literals of a C file, adjacent ones joined, escapes decoded."""
    src = open(path, encoding="utf-8").read()
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"^\s*#.*$", " ", src, flags=re.M)
    lit = r'"(?:[^"\\\n]|\\.)*"'
    out = []
    for m in re.finditer(r"(?:%s\s*)+" % lit, src):
        parts = re.findall(lit, m.group(0))
        s = "".join(p[1:-1] for p in parts)
        try:
            s = s.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1").decode(
                "utf-8", "replace")
        except Exception:
            continue
        out.append(s)
    return out


# ---- the ODK fixtures as our forms and submissions --------------------------------------------

XF = "{http://www.w3.org/2002/xforms}"
TYPES = {"string": "text", "int": "integer", "integer": "integer", "decimal": "decimal",
         "date": "date", "dateTime": "datetime", "geopoint": "geopoint", "select1": "select_one",
         "select": "select_multiple"}


def local(tag):
    return tag.split("}")[-1]


def odk_form(path):
    """(definition, {name: (type, choices)}) of an XForm: every bound leaf a question."""
    root = ET.parse(path).getroot()
    binds = {}
    for b in root.iter(XF + "bind"):
        ns = b.get("nodeset", "")
        t = b.get("type", "string").split(":")[-1]
        binds[ns] = t
    choices = {}
    for tag in ("select1", "select"):
        for sel in root.iter(XF + tag):
            ref = sel.get("ref", "")
            vals = [v.text for item in sel.iter(XF + "item") for v in item.iter(XF + "value") if v.text]
            choices[ref] = (tag, vals)
    qs, kinds, seen = [], {}, set()
    for ns, t in binds.items():
        name = re.sub(r"[^A-Za-z0-9_]", "_", ns.rsplit("/", 1)[-1])[:64]
        if not name or name[0].isdigit() or name in seen or name in ("instanceID",):
            continue
        seen.add(name)
        typ = TYPES.get(t, "text")
        q = {"name": name, "type": typ, "label": name.replace("_", " ")}
        if ns in choices and choices[ns][1]:
            typ = "select_one" if choices[ns][0] == "select1" else "select_multiple"
            q["type"] = typ
            q["choices"] = sorted(set(choices[ns][1]))
        elif typ in ("select_one", "select_multiple"):
            q["type"] = typ = "text"
        kinds[name] = (typ, q.get("choices"))
        qs.append(q)
    return {"questions": qs[:200]}, kinds


def odk_answer(typ, text):
    text = (text or "").strip()
    if typ == "integer":
        try:
            return int(text)
        except ValueError:
            return text
    if typ == "decimal":
        try:
            return float(text)
        except ValueError:
            return text
    if typ == "select_multiple":
        return text.split()
    if typ == "geopoint":
        p = text.split()
        if len(p) >= 2:
            g = {"lat": float(p[0]), "lon": float(p[1])}
            if len(p) > 2:
                g["altitude"] = float(p[2])
            if len(p) > 3:
                g["accuracy"] = float(p[3])
            return g
    return text


def odk_instance(path, kinds):
    root = ET.parse(path).getroot()
    data = {}
    for el in root.iter():
        name = local(el.tag)
        if len(el) == 0 and name in kinds and name not in data:
            data[name] = odk_answer(kinds[name][0], el.text)
    return data


def odk(fixtures):
    """[(definition, [answers...])] from forms/ and instances/."""
    out = []
    forms = os.path.join(fixtures, "forms")
    if not os.path.isdir(forms):
        return out
    for fn in sorted(os.listdir(forms)):
        if not fn.endswith(".xml"):
            continue
        try:
            definition, kinds = odk_form(os.path.join(forms, fn))
        except ET.ParseError:
            continue
        if not definition["questions"]:
            continue
        inst = os.path.join(fixtures, "instances", fn[:-4])
        answers = []
        if os.path.isdir(inst):
            for i in sorted(os.listdir(inst)):
                try:
                    answers.append(odk_instance(os.path.join(inst, i), kinds))
                except ET.ParseError:
                    pass
        out.append((definition, answers))
    return out


# ---- the targets -------------------------------------------------------------------------------

def envelope_items(data, i=0, location="", verified="1", version="3", survey=None):
    return ["v", "1", "id", UUIDS[i % 3], "survey_id", survey or UUIDS[(i + 1) % 3],
            "survey_version", version, "deployment_id", UUIDS[(i + 2) % 3], "submitted_by", UUIDS[i % 3],
            "received_at", str(1700000000000 + i), "data", json.dumps(data, separators=(",", ":")),
            "location", location, "collected_at", "2024-05-01T10:00:00Z", "verified", verified]


def spool_file(records):
    out = b"FVSPOOL1"
    for items in records:
        payload = struct.pack("<I", len(items))
        for it in items:
            b = it.encode()
            payload += struct.pack("<I", len(b)) + b
        out += struct.pack("<II", 0x31525646, len(payload)) + hashlib.sha256(payload).digest()[:8] + payload
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="/work/shared/fixtures/odk")
    args = ap.parse_args()
    unit = os.path.join(ROOT, "tests", "unit")
    forms = odk(args.fixtures)
    form_lits = [s for s in c_strings(os.path.join(unit, "test_form.c")) if s.lstrip().startswith("{")]
    defs = [s for s in form_lits if "questions" in s]
    answers = [s for s in form_lits if "questions" not in s]
    conf_def = {"questions": [
        {"name": "household", "type": "text", "label": "Household name", "required": True,
         "constraint": {"min": 1, "max": 80}},
        {"name": "members", "type": "integer", "label": "Members", "required": True,
         "constraint": {"min": 1, "max": 50}},
        {"name": "income", "type": "decimal", "label": "Monthly income", "required": False},
        {"name": "visit", "type": "date", "label": "Visit date", "required": False},
        {"name": "intro", "type": "note", "label": "Introduce yourself"}]}

    # form: definitions (no "pattern" key while the harness skips them; see fuzz_util.h)
    for d, _ in forms:
        write("form", json.dumps(d))
    write("form", json.dumps(conf_def))
    for s in defs[:40]:
        if "pattern" not in s:
            write("form", s)

    # xform: the fixture XForms as they are, and a few refused shapes
    for sub in ("forms", "standard"):
        d = os.path.join(args.fixtures, sub)
        for fn in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if fn.endswith(".xml") and "submission" not in fn:
                with open(os.path.join(d, fn), "rb") as f:
                    write("xform", f.read())
    write("xform", '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>')
    write("xform", "<a>" * 100 + "</a>" * 100)

    # odkcrypt: first byte 0 an envelope, 1 a submission.xml, 2 a public key, 3 an encrypted
    # submission's manifest (fuzz_odkcrypt.c)
    env = {"instanceID": "uuid:" + UUIDS[0], "version": "v1", "base64EncryptedKey": base64.b64encode(b"k" * 256).decode(),
           "encryptedXmlFile": base64.b64encode(b"x" * 48).decode(),
           "media": [{"name": "a.jpg.enc", "content": base64.b64encode(b"m" * 32).decode()}],
           "base64EncryptedElementSignature": base64.b64encode(b"s" * 256).decode()}
    write("odkcrypt", b"\0" + json.dumps(env).encode())
    write("odkcrypt", b"\0" + json.dumps(dict(env, media=None, version=None)).encode())
    write("odkcrypt", b"\1" + b'<data id="f" version="1"><meta><instanceID>uuid:x</instanceID></meta>'
                              b"<g><a>1</a><a>2</a></g><b/></data>")
    write("odkcrypt", b"\1" + b'<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>')
    pub = os.path.join(args.fixtures, "keys", "pub.pem")
    if os.path.isfile(pub):
        with open(pub, "rb") as f:
            pem = f.read()
        write("odkcrypt", b"\2" + pem)
        write("odkcrypt", b"\2" + b"".join(pem.splitlines()[1:-1]))
    for name in ("one", "two"):
        man = os.path.join(args.fixtures, "instances", "encrypted", name + ".xml")
        if os.path.isfile(man):
            with open(man, "rb") as f:
                write("odkcrypt", b"\3" + f.read())

    # submit: bodies (against the built-in forms), and definition \0 body
    for d, ans in forms:
        for a in ans[:2]:
            body = {"data": a, "collected_at": "2024-05-01T10:00:00+02:00"}
            write("submit", json.dumps(body))
            write("submit", json.dumps(d).encode() + b"\0" + json.dumps(body).encode())
    write("submit", json.dumps(conf_def).encode() + b"\0" + json.dumps(
        {"id": UUIDS[0], "data": {"household": "House 1", "members": 3, "income": 12.5, "visit": "2024-05-01"},
         "location": {"lat": 51.5, "lon": -0.12, "accuracy": 5}}).encode())
    builtin = {"t": "hello", "code": "AB12", "i": 7, "d": 1.5, "one": "a", "many": ["x", "z"],
               "day": "2024-02-29", "at": "2024-02-29T23:59:59.123456789-14:59",
               "where": {"lat": -90, "lon": 180, "altitude": -10.5, "accuracy": 0}, "n": None}
    write("submit", json.dumps({"data": builtin}))
    write("submit", json.dumps({"data": {"name": "Ann", "age": 1e2, "hometown": "", "x": []}}))
    write("submit", '{"data":{"t":"\\ud83d\\ude00","i":-0,"d":1e-400,"many":["x","x"]},"id":null}')
    for a in answers[:10]:
        write("submit", '{"data":%s}' % a)

    # envelope: stream entries from the fixtures' answers, and dead letters
    n = 0
    for d, ans in forms:
        for a in ans[:1]:
            items = envelope_items(a, n)
            write("envelope", "\0".join(items))
            write("envelope", "\0".join(items + ["error", "malformed field 'data'", "stream_id",
                                                 "1700000000000-0", "deliveries", "5"]))
            n += 1
    write("envelope", "\0".join(envelope_items({"a": 1}, 1, '{"lat":1,"lon":2}', "0", "0", UUIDS[3])))
    write("envelope", "\0".join(["error", "x", "v", "1", "deliveries", "-1", "stream_id", "0-1"]))

    # spool: files of real records (mode 0: as written, 4: also opened and read), and modes 3, 7
    # (the harness adds the header and the checksums)
    recs = [envelope_items(a, i) for i, (d, ans) in enumerate(forms) for a in ans[:1]]
    for k in range(0, len(recs), 3):
        f = spool_file(recs[k:k + 3])
        for m in (b"\0", b"\4"):  # scan only; scan, open and read on the spool's thread
            write("spool", m + f)
            write("spool", m + f[:-7])                   # torn tail
            write("spool", m + f[:40] + b"junk" + f[40:])  # garbage before a record
        write("spool", b"\3" + f[8:])
        write("spool", b"\7" + f[8:])
    write("spool", b"\0FVSPOOL1")
    write("spool", b"\4FVSPOOL1")
    write("spool", b"\3" + struct.pack("<II", 0x31525646, 4) + b"\0" * 8 + struct.pack("<I", 0))

    # config: the sample file, each section alone, and the test files' literals
    sample = open(os.path.join(ROOT, "deploy", "fieldvault.conf"), encoding="utf-8").read()
    write("config", sample)
    for sec in re.split(r"(?m)^(?=\[)", sample):
        if sec.strip():
            write("config", sec)
    for t in ("test_config.c", "test_fe_config.c", "test_wk_config.c", "test_lb_config.c", "test_fvctl_config.c"):
        p = os.path.join(unit, t)
        if os.path.exists(p):
            for s in c_strings(p):
                if "=" in s and ("[" in s or "\n" in s):
                    write("config", s)

    # lbcheck: /readyz answers
    ready = b'{"status":"ready","checks":{"postgres":"ok","redis":"ok"}}'
    for body, status in ((ready, 200), (b'{"status":"degraded"}', 200), (b'{"status":"down"}', 503),
                         (b'{"status":"nope"}', 200), (b"[]", 200), (b"", 200)):
        head = b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n" % status
        write("lbcheck", head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        write("lbcheck", head + b"Connection: close\r\n\r\n" + body)
    write("lbcheck", b"HTTP/1.0 200 OK\r\ncontent-length: 99\r\n\r\n" + ready)
    write("lbcheck", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + ready)
    write("lbcheck", b"HTTP/1.1 200 OK\r\n")
    write("lbcheck", b"SSH-2.0-OpenSSH\r\n\r\n")

    # check: dates, date-times, geopoints
    for s in c_strings(os.path.join(unit, "test_check.c")):
        if re.match(r"^[0-9{\[\-]", s) or "lat" in s:
            write("check", s)
    for d, ans in forms:
        for a in ans:
            for v in a.values():
                if isinstance(v, dict):
                    write("check", json.dumps(v))

    # token: raw tokens (mode 0) and payloads the harness signs (mode 1)
    for i in range(3):
        p = "v1|KEYID|%s|%s|1690000000|%d|%d" % (UUIDS[i], UUIDS[(i + 1) % 3], 1690000000 + 10 ** (i + 5), i % 2)
        write("token", b"\1" + p.encode())
    write("token", b"\1v1|KEYID|" + UUIDS[0].upper().encode() + b"|" + UUIDS[1].encode() + b"|0|999999999999999999|1")
    write("token", b"\1v1|00000000|x|y|1|2|0")
    b64 = base64.urlsafe_b64encode(b"v1|abcdef01|s|u|1|2|0").rstrip(b"=")
    write("token", b"\0fvs_" + b64 + b"." + b"A" * 43)
    write("token", b"\0fvs_.")

    # routes: every route with its parameters filled, and the unit tests' paths
    src = open(os.path.join(ROOT, "frontend", "http", "fe_routes.c"), encoding="utf-8").read()
    for pat in re.findall(r'\{\s*[A-Z]+,\s*"(/[^"]*)"', src):
        path = re.sub(r":[a-z]+", lambda m: UUIDS[0], pat)
        write("routes", path)
        if pat.endswith("s"):  # a list: with its paging query
            write("routes", path + "?after=" + UUIDS[1] + "&limit=10")
    for s in c_strings(os.path.join(unit, "test_fe_routes.c")):
        if s.startswith("/"):
            write("routes", s)

    # page: cursors of each kind and query strings
    ts = "2024-05-01T10:00:00.123456Z|" + UUIDS[0]
    for c in (UUIDS[0], "12345", ts.encode().hex(), ts.encode().hex().upper()):
        write("page", c)
        write("page", "after=%s&limit=50" % c)
    write("page", "limit=500&after=")
    for s in c_strings(os.path.join(unit, "test_fe_page.c")):
        if s and not s.startswith(("the ", "must ")) and " " not in s:
            write("page", s)

    # secrets: mode byte, then a password hash, sealed text, base64, key file, API key / UUID
    for lit in c_strings(os.path.join(unit, "test_password.c")):
        if lit.startswith("pbkdf2"):
            write("secrets", b"\0" + lit.encode())
    salt_hash = base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"password", b"salt", 3)).decode()
    write("secrets", "\0pbkdf2_sha256$3$salt$" + salt_hash)
    write("secrets", "\0pbkdf2_sha256$0$salt$" + salt_hash)
    write("secrets", b"\1" + os.urandom(0) + b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    write("secrets", "\1s1.%s.%s" % ("0" * 8, base64.urlsafe_b64encode(b"n" * 40).rstrip(b"=").decode()))
    for v in (b"", b"f", b"fo", b"foo", b"\xff\xfe", b"x" * 32):
        write("secrets", b"\2" + base64.urlsafe_b64encode(v).rstrip(b"="))
        write("secrets", b"\2" + base64.b64encode(v))
    write("secrets", "\3# master key\n" + "ab" * 32 + "\n\n" + "CD" * 32 + "\n")
    write("secrets", "\3" + "0" * 63 + "\n")
    write("secrets", "\4fvk_" + base64.urlsafe_b64encode(b"k" * 32).rstrip(b"=").decode())
    write("secrets", "\4" + UUIDS[0].upper())

    for t in sorted(os.listdir(CORPUS)):
        print("%-10s %d seeds" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    sys.exit(main())
