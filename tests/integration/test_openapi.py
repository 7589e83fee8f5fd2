"""docs/openapi.yaml against the route table (frontend/**/fe_routes.c), and the checker that
validates every answer of the integration tests (openapi_check.py) against known answers. No
cluster is started here."""
import glob
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from requests.structures import CaseInsensitiveDict

import openapi_check
from openapi_check import ROOT

ROUTE = re.compile(
    r'\{\s*(?:EVHTTP_REQ_)?(GET|HEAD|POST|PUT|PATCH|DELETE)\s*,\s*"(/[^"]*)"\s*,\s*(\w+)\s*,\s*(\w+)\s*,'
    r'\s*(\w+)\s*,\s*"(\w+)"\s*\}')


def route_table():
    """[(METHOD, /openapi/{path}, handler, auth, body, metrics name)] of fe_routes.c, wherever it is."""
    files = glob.glob(str(ROOT / "frontend" / "**" / "fe_routes.c"), recursive=True)
    assert len(files) == 1, f"expected one frontend/**/fe_routes.c, found {files}"
    text = Path(files[0]).read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)  # the comments show example patterns
    routes = [(m, re.sub(r":(\w+)", r"{\1}", p), h, a, b, n) for m, p, h, a, b, n in ROUTE.findall(text)]
    # Every initialiser line of the table must have been understood.
    entries = re.findall(r"^\s*\{\s*(?:EVHTTP_REQ_)?[A-Z]+\s*,\s*\"", text, flags=re.M)
    assert len(routes) == len(entries) > 40, (len(routes), len(entries))
    # Every OPENROSA route is also /v1/key/{token}/<rest> (fe_dispatch.c), documented as its own
    # path with the operationId <name>_key and auth KEY (the token in the path).
    routes += [(m, "/v1/key/{token}" + p[len("/v1"):], h, "KEY", b, n + "_key")
               for m, p, h, a, b, n in routes if a == "OPENROSA"]
    return routes


@pytest.fixture(scope="module")
def doc():
    return openapi_check.doc()


def test_route_table_and_document_name_the_same_routes(doc):
    table = {(m, p) for m, p, *_ in route_table()}
    documented = doc.operations()
    assert not table - documented, f"routes missing from docs/openapi.yaml: {sorted(table - documented)}"
    assert not documented - table, f"documented, but not in fe_routes.c: {sorted(documented - table)}"


def test_operation_ids_are_the_metrics_names(doc):
    for m, p, _h, _a, _b, name in route_table():
        assert doc.doc["paths"][p][m.lower()]["operationId"] == name, (m, p)


def test_security_matches_the_route_auth(doc):
    for m, p, _h, auth, _b, _n in route_table():
        op = doc.doc["paths"][p][m.lower()]
        security = op.get("security", doc.doc["security"])
        responses = op["responses"]
        # the OpenRosa submission answers in its protocol's envelope, 401 included
        unauthorized = responses.get("401", {}).get("$ref") in (
            "#/components/responses/Unauthorized", "#/components/responses/OpenRosaError")
        if auth == "NONE" and p == "/metrics":  # its own token, checked by the handler
            assert security == [{"metricsToken": []}] and "401" in responses, (m, p, security)
        elif auth == "NONE":
            assert security == [] and not unauthorized, (m, p, security)
        elif auth == "OPTIONAL":
            assert {} in security and len(security) > 1 and unauthorized, (m, p, security)
        elif auth in ("OPENROSA", "KEY"):  # OpenRosa envelopes, Basic challenge (fe_openrosa_auth.h)
            ref = responses.get("401", {}).get("$ref")
            assert ref == "#/components/responses/OpenRosaUnauthorized", (m, p, ref)
            want = [] if auth == "KEY" else [{"basic": []}, {"apiKey": []}, {"session": []}]
            assert security == want, (m, p, security)
        else:
            assert security and {} not in security and unauthorized, (m, p, security)
        if auth != "NONE":  # an API key can be over its rate limit or suspended
            assert "429" in responses and "403" in responses, (m, p)


def test_body_routes_document_a_body_and_its_errors(doc):
    for m, p, _h, _a, body, _n in route_table():
        op = doc.doc["paths"][p][m.lower()]
        if body == "true":
            assert op.get("requestBody", {}).get("required") is True, (m, p)
            for status in ("400", "413", "415", "422"):
                assert status in op["responses"], (m, p, status)
        else:  # a route without a JSON body documents none, or (OpenRosa) its multipart one
            assert "requestBody" not in op or "application/json" not in op["requestBody"]["content"], (m, p)


def test_every_schema_is_valid_and_every_reference_resolves(doc):
    for name, schema in doc.doc["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)

    def walk(o):
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "$ref":
                    doc.resolver.resolve(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(doc.doc)


def test_every_operation_has_one_success_status_and_json_errors(doc):
    for path, item in doc.doc["paths"].items():
        for method in openapi_check.METHODS:
            if method not in item:
                continue
            statuses = item[method]["responses"]
            # OpenRosa's submission has two: 201 stored, 202 queued (the protocol's own)
            openrosa = path.endswith("/submission")
            assert len([s for s in statuses if s.startswith("2")]) == (2 if openrosa and method == "post" else 1), (
                method, path)
            for status, resp in statuses.items():
                resp = doc.deref(resp)
                if status.startswith(("4", "5")) and path != "/readyz":
                    want = "text/xml" if openrosa else "application/json"
                    assert want in resp.get("content", {}), (method, path, status)


def _h(**kw):
    return CaseInsensitiveDict({k.replace("_", "-"): v for k, v in kw.items()})


JSON = "application/json"


def test_the_checker_accepts_documented_answers(doc):
    doc.check("GET", "/healthz", 200, _h(Content_Type=JSON), b'{"status":"ok"}')
    doc.check("HEAD", "/healthz", 200, _h(Content_Type=JSON), b"")
    doc.check("DELETE", "/v1/me/api-keys/abc", 204, _h(), b"")
    doc.check("GET", "/nope", 404, _h(Content_Type=JSON), b'{"error":{"code":"not_found","message":"no","request_id":"r-1"}}')
    doc.check("PATCH", "/v1/surveys/x", 405, _h(Content_Type=JSON, Allow="GET"),
              b'{"error":{"code":"method_not_allowed","message":"no","request_id":"r-1"}}')
    doc.check("GET", "/v1/me/api-keys", 200, _h(Content_Type=JSON), b'{"items":[],"next":null}')
    doc.check("POST", "/v1/users", 413, _h(Content_Type=JSON),
              b'{"error":{"code":"body_too_large","message":"too large","request_id":"r-1"}}')
    # Refused before routing (tests/integration/test_limits_http.py): any path, Connection: close.
    doc.check("GET", "/healthz", 431, _h(Content_Type=JSON, Connection="close"),
              b'{"error":{"code":"headers_too_large","message":"too large","request_id":"r-1"}}')
    doc.check("GET", "/no/such/path", 400, _h(Content_Type=JSON, Connection="close"),
              b'{"error":{"code":"bad_framing","message":"two Content-Length","request_id":"r-1"}}')


@pytest.mark.parametrize("method,path,status,headers,body,why", [
    ("GET", "/healthz", 200, {"Content-Type": JSON}, b'{"status":"up"}', "does not match"),
    ("GET", "/healthz", 500, {"Content-Type": JSON}, b'{}', "not documented"),
    # a refusal's code without Connection: close is not a refusal (the router's own answers)
    ("GET", "/healthz", 431, {"Content-Type": JSON}, b'{"error":{"code":"headers_too_large","message":"x","request_id":"r-1"}}',
     "not documented"),
    ("GET", "/v1/me", 404, {"Content-Type": JSON}, b'{"error":{"code":"gone","message":"x","request_id":"r-1"}}', "does not match"),
    ("GET", "/v1/me", 200, {"Content-Type": "text/plain"}, b"hi", "Content-Type"),
    ("GET", "/v1/me/api-keys", 200, {"Content-Type": JSON}, b'{"items":[]}', "next"),
    ("DELETE", "/v1/me/api-keys/x", 204, {}, b"{}", "with a body"),
    ("PATCH", "/v1/surveys/x", 405, {"Content-Type": JSON},
     b'{"error":{"code":"method_not_allowed","message":"no","request_id":"r-1"}}', "Allow"),
    ("PATCH", "/v1/surveys/x", 405, {"Content-Type": JSON, "Allow": "GET, PUT"},
     b'{"error":{"code":"method_not_allowed","message":"no","request_id":"r-1"}}', "Allow"),
    ("PATCH", "/v1/surveys/x", 404, {"Content-Type": JSON},
     b'{"error":{"code":"not_found","message":"no","request_id":"r-1"}}', "not 405"),
    ("GET", "/nope", 200, {"Content-Type": JSON}, b'{}', "not 404"),
    ("GET", "/v1/sites/" + "a" * 766, 200, {"Content-Type": JSON}, b'{}', "not 404"),
])
def test_the_checker_refuses_wrong_answers(doc, method, path, status, headers, body, why):
    with pytest.raises(AssertionError, match=why):
        doc.check(method, path, status, CaseInsensitiveDict(headers), body)


def test_the_checker_knows_the_shapes(doc):
    """A few answers the way the server writes them, and the same with a field wrong."""
    site = {"id": "0190a4c2-0000-7000-8000-000000000001", "org_id": "0190a4c2-0000-7000-8000-000000000002",
            "name": "Well 3", "type": "well", "privacy": "protected", "location": None}
    doc.check("GET", f"/v1/sites/{site['id']}", 200, _h(Content_Type=JSON), _j(site))
    full = dict(site, privacy="public")
    with pytest.raises(AssertionError, match="required"):
        doc.check("GET", f"/v1/sites/{site['id']}", 200, _h(Content_Type=JSON), _j(full))
    full.update(properties={}, version=1, created_by=site["org_id"], created_at="2026-11-23T16:11:14.962000Z",
                updated_at="2026-11-23T16:11:14.962000Z")
    doc.check("GET", f"/v1/sites/{site['id']}", 200, _h(Content_Type=JSON), _j(full))
    with pytest.raises(AssertionError, match="does not match"):
        doc.check("GET", f"/v1/sites/{site['id']}", 200, _h(Content_Type=JSON),
                  _j(dict(full, created_at="2026-11-23 16:11:14")))
    weak = {"error": {"code": "weak_password", "message": "too easy", "request_id": "r-1", "fields": {"password": "too weak"}}}
    with pytest.raises(AssertionError, match="password_strength"):
        doc.check("POST", "/v1/users", 422, _h(Content_Type=JSON), _j(weak))
    weak["error"]["password_strength"] = {"score": 1, "guesses_log10": 3.1,
                                          "feedback": {"warning": "common", "suggestions": []}}
    doc.check("POST", "/v1/users", 422, _h(Content_Type=JSON), _j(weak))


def _j(v):
    import json
    return json.dumps(v).encode()


def test_path_parameters_are_declared_and_operation_ids_unique(doc):
    ids = []
    for template, item in doc.doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", template))
        for method in openapi_check.METHODS:
            if method not in item:
                continue
            op = item[method]
            ids.append(op["operationId"])
            params = [doc.deref(p) for p in item.get("parameters", []) + op.get("parameters", [])]
            declared = {p["name"] for p in params if p["in"] == "path"}
            assert declared == names, (method, template, declared)
            assert all(p.get("required") is True for p in params if p["in"] == "path"), (method, template)
            assert op.get("summary") and op.get("tags"), (method, template)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


def _response(method, url, status, reason, ctype, body):
    import requests
    r = requests.Response()
    r.status_code, r.reason, r._content = status, reason, body
    r.headers = CaseInsensitiveDict({"Content-Type": ctype})
    r.request = requests.Request(method, url).prepare()
    return r


def test_the_hook_checks_reason_phrases():
    body = b'{"error":{"code":"validation_failed","message":"bad","request_id":"r-1","fields":{"name":"required"}}}'
    openapi_check.check_response(_response("POST", "https://h/v1/orgs", 422, "Unprocessable Content", JSON, body))
    with pytest.raises(AssertionError, match="Client Error"):
        openapi_check.check_response(_response("POST", "https://h/v1/orgs", 422, "Client Error", JSON, body))
    # libevent's own pages (HTML, its phrases) no longer reach clients: 413 is ours too
    with pytest.raises(AssertionError, match="Content Too Large"):
        openapi_check.check_response(_response("POST", "https://h/v1/orgs", 413, "Request Entity Too Large",
                                               JSON, b'{"error":{"code":"body_too_large","message":"x","request_id":"r-1"}}'))
