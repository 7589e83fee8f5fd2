"""Issue 13's browser proof: ODK Web Forms (@getodk/web-forms from npm, bundled with Vue by esbuild,
tests/browser/) renders a Fieldvault XForm in Debian's Chromium (headless, driven by playwright-core
from npm: no browser download), a person's input is typed and clicked into it (Send is first
refused in the page on the empty form, required, and on a value outside the XForm's constraint),
and its Send button submits the instance to Fieldvault's OpenRosa submission URL; the response is
stored with those answers, read back through the JSON API (one response, its XML byte for byte).

Everything goes through the real front end over TLS: the host page is served under Fieldvault's
origin by Playwright's request routing (tests/browser/webforms.mjs), so the page's formList, form
download and multipart POST (as an app user, the token in the path) are same-origin requests to
the front end. Chromium trusts only the test's certificate (--ignore-certificate-errors-spki-list
with its public key's hash). The npm packages come from tests/browser/package-lock.json
(tests/browser/ensure.sh, npm ci only when the lockfile changed)."""
import base64
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from accesshelp import User, ok
from fvharness import wait_until

BROWSER_DIR = pathlib.Path(__file__).resolve().parents[1] / "browser"
CHROMIUM = os.environ.get("FV_CHROMIUM", "/usr/bin/chromium")
ORNS = "{http://openrosa.org/http/response}"

# Under CI (tests/run.sh installs them) their absence fails the test instead of skipping it.
_HAVE_BROWSER = os.access(CHROMIUM, os.X_OK) and shutil.which("node") and shutil.which("npm")
needs_browser = pytest.mark.skipif(
    not _HAVE_BROWSER and not os.environ.get("CI"),
    reason="needs Debian's chromium, nodejs and npm (deploy/install-deps.sh --test)")

FORM_ID = "fv_webforms_proof"
XFORM = f"""<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
        xmlns:jr="http://openrosa.org/javarosa" xmlns:orx="http://openrosa.org/xforms">
  <h:head>
    <h:title>Fieldvault Web Forms proof</h:title>
    <model>
      <instance>
        <data id="{FORM_ID}" orx:version="2026120301">
          <household/>
          <members/>
          <water/>
          <meta><instanceID/></meta>
        </data>
      </instance>
      <bind nodeset="/data/household" type="string" required="true()"/>
      <bind nodeset="/data/members" type="int" required="true()" constraint=". &gt;= 1 and . &lt;= 50"/>
      <bind nodeset="/data/water" type="string" required="true()"/>
      <bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
    </model>
  </h:head>
  <h:body>
    <input ref="/data/household"><label>Household name</label></input>
    <input ref="/data/members"><label>Number of members</label></input>
    <select1 ref="/data/water">
      <label>Main water source</label>
      <item><label>Piped water</label><value>piped</value></item>
      <item><label>Protected well</label><value>well</value></item>
      <item><label>River or lake</label><value>river</value></item>
    </select1>
  </h:body>
</h:html>
"""


def spki_sha256(cert_path):
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (Chromium's SPKI pin form)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    cert = x509.load_pem_x509_certificate(pathlib.Path(cert_path).read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def run_node(args, timeout, cwd=BROWSER_DIR):
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout


def browser_run(cfg_path):
    """tests/browser/webforms.mjs on a config file; its one JSON line."""
    return json.loads(run_node(["node", "webforms.mjs", str(cfg_path)], 120).strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """tests/browser's packages installed (when needed) and the host page bundled."""
    run_node([str(BROWSER_DIR / "ensure.sh")], 300)
    out = tmp_path_factory.mktemp("webforms")
    run_node(["node", "build.mjs", str(out)], 120)
    assert (out / "host.html").is_file() and (out / "webforms.bundle.js").is_file()
    return out


@needs_browser
def test_web_forms_renders_fills_and_submits(workers, bundle, tmp_path):
    c = workers
    owner = User(c, "webforms owner")
    try:
        org = ok(owner.api.post("/v1/orgs", json={"name": "Web Forms org"}), 201)
        survey = ok(owner.api.post("/v1/surveys", json={
            "org_id": org["id"], "name": "Web Forms proof", "xform": XFORM}), 201)
        dep = ok(owner.api.post(f"/v1/surveys/{survey['id']}/deployments", json={
            "name": "Web Forms deployment", "roles": {"enumerators": []}}), 201)
        app_user = ok(owner.api.post(f"/v1/deployments/{dep['id']}/app-users",
                                     json={"name": "browser tablet"}), 201)
        openrosa = f"/v1/key/{app_user['token']}/openrosa/deployments/{dep['id']}"

        answers = {"text": "Casa Ndlovu 7", "integer": 6, "bad_integer": 60, "text_label": "Household name",
                   "integer_label": "Number of members", "choice_label": "Protected well"}
        cfg = tmp_path / "config.json"
        cfg.write_text(json.dumps({
            "origin": c.base_url, "openrosa": openrosa, "bundle_dir": str(bundle),
            "spki": spki_sha256(c.cert), "chromium": CHROMIUM, "answers": answers}))
        # Chromium checks the certificate: pinned to another key, the page cannot get the form.
        bad = dict(json.loads(cfg.read_text()), load_only=True,
                   spki=base64.b64encode(hashlib.sha256(b"not our key").digest()).decode())
        bad_cfg = tmp_path / "bad.json"
        bad_cfg.write_text(json.dumps(bad))
        refused = browser_run(bad_cfg)
        assert refused.get("status") == "error" and "fetch" in (refused.get("error") or ""), refused
        assert any("ERR_CERT_AUTHORITY_INVALID" in line for line in refused["log"]), refused

        out = browser_run(cfg)
        log = "\n".join(out.get("log", []))[-3000:]
        assert out.get("error") is None, f"{out.get('error')}\n{log}"
        # Send on the empty form and with 60 members (constraint 1..50) submitted nothing.
        assert [st["status"] for st in out["steps"]] == ["rendered", "rendered"], out["steps"]
        res = out["result"]
        # Fieldvault's answer to the browser's POST: 201 and the OpenRosa envelope.
        assert res["status"] == 201, (res, log)
        root = ET.fromstring(res["body"])
        assert root.tag == ORNS + "OpenRosaResponse", res["body"]

        # The instance Web Forms built: the form's id, our answers, a uuid instanceID.
        inst = ET.fromstring(res["instanceXml"])
        assert inst.get("id") == FORM_ID, res["instanceXml"]
        leaf = {el.tag.split("}")[-1]: (el.text or "") for el in inst.iter()}
        assert leaf["household"] == answers["text"] and leaf["members"] == "6" and leaf["water"] == "well", leaf
        iid = leaf["instanceID"]
        assert iid.startswith("uuid:"), iid

        # Stored: the same response through the JSON API, typed by the form.
        rid = iid[5:].lower()

        def stored():
            r = owner.api.get(f"/v1/responses/{rid}")
            assert r.status_code in (200, 404), r.text[:300]
            return r.json() if r.status_code == 200 else None
        resp = wait_until(stored, 60, what="the browser's submission to be stored")
        assert resp["deployment_id"] == dep["id"], resp
        assert resp["data"]["household"] == answers["text"], resp["data"]
        assert resp["data"]["members"] == answers["integer"], resp["data"]
        assert resp["data"]["water"] == "well", resp["data"]
        # exactly one response: the refused attempts never reached Fieldvault
        page = ok(owner.api.get(f"/v1/surveys/{survey['id']}/responses", params={"deployment": dep["id"]}))
        assert [x["id"] for x in page["items"]] == [rid], page
        # and the instance XML kept byte for byte as the browser sent it
        r = owner.api.get(f"/v1/responses/{rid}/xml")
        assert r.status_code == 200 and r.content == res["instanceXml"].encode(), r.text[:500]
    finally:
        owner.close()
