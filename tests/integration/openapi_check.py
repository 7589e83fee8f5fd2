"""Checks answers of the front end against docs/openapi.yaml.

`check(method, path, status, headers, body)` finds the document's path template for path (as the
router does: `{param}` is one segment of 1 to 765 characters), the operation for method (HEAD is
GET), the response for status, and validates the JSON body against its schema (Draft 2020-12,
`#/components/...` references resolved in the document). It raises AssertionError naming the
route, the status and the problem when the answer is not what the document says, including a
status the document does not list. A path no template has must answer 404 `NoSuchRoute`; a
template without the method, 405 `MethodNotAllowed` with an `Allow` header naming exactly the
path's methods.

`hook_session(session)` adds the check to a requests.Session as a response hook, so that every
answer a test receives through it is checked (fvharness.Api does this for every client). It is on
under pytest and off in the other users of fvharness (tests/chaos, tests/bench);
FV_OPENAPI_CHECK=1 or 0 says otherwise. Validators are compiled once per (operation, status, media
type); nothing is written anywhere. With FV_OPENAPI_COVERAGE=1 the run ends with the documented
(operation, status) pairs no answer exercised (conftest.py prints `unexercised()`).
"""
import decimal
import json
import os
import re
import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, RefResolver

ROOT = Path(__file__).resolve().parents[2]
DOC_PATH = ROOT / "docs" / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PARAM_SEGMENT = r"([^/]{1,765})"  # fe_req.param is FE_PARAM_MAX (766) bytes: longer segments match no route


def template_regex(template):
    """The regex of an OpenAPI path template: each {name} is one path segment."""
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile("^" + "".join(PARAM_SEGMENT if p.startswith("{") else re.escape(p) for p in parts) + "$")


class OpenApiDoc:
    def __init__(self, path=DOC_PATH):
        with open(path) as f:
            self.doc = yaml.safe_load(f)
        self.resolver = RefResolver.from_schema(self.doc)
        # Templates with more literal segments first: /v1/me/api-keys before a /v1/me/{x}.
        self.templates = sorted(
            ((template_regex(t), t) for t in self.doc["paths"]),
            key=lambda rt: -len([s for s in rt[1].split("/") if s and not s.startswith("{")]))
        self._validators = {}
        self.seen = set()  # (METHOD, template, status) of the answers checked

    def deref(self, obj):
        while isinstance(obj, dict) and "$ref" in obj:
            obj = self.resolver.resolve(obj["$ref"])[1]
        return obj

    def match(self, path):
        """The template that path matches, or None."""
        for rx, template in self.templates:
            if rx.match(path):
                return template
        return None

    def methods(self, template):
        """The methods of a template, upper case (HEAD not listed: it answers as GET)."""
        return sorted(m.upper() for m in self.doc["paths"][template] if m in METHODS)

    def allowed(self, template):
        """The methods an Allow header lists for a template (HEAD is implied by GET)."""
        return [m for m in self.methods(template) if m != "HEAD"]

    def operations(self):
        """Every (METHOD, template) pair of the document."""
        return {(m, t) for t in self.doc["paths"] for m in self.methods(t)}

    def _validator(self, key, schema):
        v = self._validators.get(key)
        if v is None:
            v = Draft202012Validator(schema, resolver=RefResolver.from_schema(self.doc))
            self._validators[key] = v
        return v

    def check(self, method, path, status, headers, body):
        """Raises AssertionError when the answer (status, headers: a case-insensitive mapping,
        body: bytes) is not what the document says for method and path."""
        method = method.upper()
        template = self.match(path)
        where = f"{method} {path}"
        if self._refused(status, headers, body):
            # Refused before routing (framing, deadlines): the same on every path.
            return self._check_response(where, "RequestRefused", status, headers, body,
                                        self.doc["components"]["responses"]["RequestRefused"], method)
        if template is None:
            if status == 400:  # a malformed request target: the router answers before matching
                return self._check_response(where, "-", status, headers, body,
                                            self.doc["components"]["responses"]["BadRequest"], method)
            assert status == 404, (
                f"OpenAPI: {where}: no path of docs/openapi.yaml matches, and the answer is {status}, not 404")
            return self._check_response(where, "NoSuchRoute", status, headers, body,
                                        self.doc["components"]["responses"]["NoSuchRoute"], method)
        item = self.doc["paths"][template]
        op_method = ("head" if "head" in item else "get") if method == "HEAD" else method.lower()
        where = f"{method} {template} ({path})"
        if op_method not in item:
            assert status == 405, f"OpenAPI: {where}: the path has no {method}, yet the answer is {status}, not 405"
            allow = headers.get("Allow")
            assert allow is not None, f"OpenAPI: {where}: 405 without an Allow header"
            listed = sorted(m.strip().upper() for m in allow.split(",") if m.strip() and m.strip().upper() != "HEAD")
            assert listed == self.allowed(template), (
                f"OpenAPI: {where}: Allow: {allow!r}, the document has {', '.join(self.allowed(template))}")
            return self._check_response(where, "MethodNotAllowed", status, headers, body,
                                        self.doc["components"]["responses"]["MethodNotAllowed"], method)
        responses = item[op_method]["responses"]
        self.seen.add((op_method.upper(), template, str(status)))
        response = responses.get(str(status), responses.get("default"))
        assert response is not None, (
            f"OpenAPI: {where}: status {status} is not documented (documented: {', '.join(sorted(responses))}); "
            f"body: {body[:300]!r}")
        self._check_response(where, f"{op_method} {template} {status}", status, headers, body, response, method)

    REFUSAL_STATUSES = {400, 408, 413, 417, 431, 501}

    def _refused(self, status, headers, body):
        """An answer of components/responses/RequestRefused: one of its statuses and codes, with
        Connection: close (the router's own 400 and 413 do not close the connection)."""
        if status not in self.REFUSAL_STATUSES or (headers.get("Connection") or "").lower() != "close":
            return False
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return False
        schema = self.doc["components"]["schemas"]["ErrorRefused"]["allOf"][1]
        return code in schema["properties"]["error"]["properties"]["code"]["enum"]

    def _check_response(self, where, key, status, headers, body, response, method):
        response = self.deref(response)
        content = response.get("content") or {}
        if method == "HEAD" or status == 204:
            assert not body, f"OpenAPI: {where}: {status} with a body: {body[:200]!r}"
            return
        if not content:
            assert not body, f"OpenAPI: {where}: {status} is documented without a body, but got {body[:200]!r}"
            return
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in content and "*/*" in content:  # a file served with its own type
            return
        assert ctype in content, (
            f"OpenAPI: {where}: {status} with Content-Type {ctype!r}, documented: {', '.join(content)}; "
            f"body: {body[:200]!r}")
        schema = content[ctype].get("schema")
        if ctype != "application/json" or schema is None:
            return
        try:
            value = json.loads(body, parse_int=_parse_int)
        except ValueError as e:
            raise AssertionError(f"OpenAPI: {where}: {status} is not JSON ({e}): {body[:200]!r}") from None
        errors = sorted(self._validator((key, ctype), schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            detail = "; ".join(
                f"at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors[:5])
            raise AssertionError(f"OpenAPI: {where}: {status} does not match the document: {detail}; "
                                 f"body: {json.dumps(value, default=str)[:500]}")


def _parse_int(text):
    """Python refuses int() of more than 4300 digits; the server stores numbers of up to 131072
    (test_stored_inputs.py): those are checked as Decimal (a number to jsonschema)."""
    return int(text) if len(text) <= 4000 else decimal.Decimal(text)


_doc = None


def doc():
    global _doc
    if _doc is None:
        _doc = OpenApiDoc()
    return _doc


def unexercised():
    """The documented (METHOD, template, status) triples that no checked answer had."""
    d = doc()
    documented = {(m.upper(), t, s) for t, item in d.doc["paths"].items() for m in item if m in METHODS
                  for s in item[m]["responses"]}
    return sorted(documented - d.seen)


# RFC 9110's reason phrases of the statuses the front end answers (frontend/http/fe_reply.c).
REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
           401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 409: "Conflict", 413: "Content Too Large",
           415: "Unsupported Media Type", 417: "Expectation Failed", 422: "Unprocessable Content",
           429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable"}


def check_response(resp):
    """Checks a requests.Response against the document, and its reason phrase against RFC 9110
    (except on libevent's own HTML pages, such as its 413)."""
    req = resp.request
    path = urlsplit(req.url).path
    doc().check(req.method, path, resp.status_code, resp.headers, resp.content)
    html = (resp.headers.get("Content-Type") or "").startswith("text/html")
    want = REASONS.get(resp.status_code)
    assert html or want is None or resp.reason == want, (
        f"{req.method} {path}: status line says {resp.status_code} {resp.reason!r}, not {want!r}")


def _hook(resp, *args, **kwargs):
    check_response(resp)
    return resp


def hook_session(session):
    """Checks every answer session receives (a requests.Session to a front end)."""
    on = os.environ.get("FV_OPENAPI_CHECK", "1" if "pytest" in sys.modules else "0") != "0"
    if on and _hook not in session.hooks["response"]:
        session.hooks["response"].append(_hook)
    return session
