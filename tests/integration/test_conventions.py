"""HTTP conventions a client expects of every route: 405 with Allow on a path that has other
methods, RFC 9110 reason phrases, a timestamp on every access-log line, and one name for requests
no route takes in the access log and in the metrics."""
import http.client
import re
import ssl
from datetime import datetime
from pathlib import Path

import pytest

from fvharness import error_body, json_lines, new_id, parse_metrics, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("method,path,allow", [
    ("PATCH", "/v1/surveys/{id}", "GET, HEAD"),
    ("DELETE", "/v1/orgs", "GET, HEAD, POST"),
    ("GET", "/v1/auth/login", "POST"),
    ("PUT", "/v1/responses/{id}", "GET, HEAD, PATCH, DELETE"),
    ("OPTIONS", "/v1/me/totp", "POST, DELETE"),
])
def test_a_path_with_other_methods_answers_405_with_allow(admin, method, path, allow):
    r = admin.request(method, path.format(id=new_id()), json={})
    assert r.status_code == 405, r.text
    assert r.headers.get("Allow") == allow
    assert error_body(r)["code"] == "method_not_allowed"


def test_an_unknown_path_is_404_without_allow(admin):
    r = admin.patch(f"/v1/nothing-here/{new_id()}", json={})
    assert r.status_code == 404, r.text
    assert "Allow" not in r.headers
    assert error_body(r)["code"] == "not_found"


def raw_request(cluster, method, path, key=None, body=None):
    """(status, reason, headers) of one request through http.client, which keeps the reason phrase."""
    ctx = ssl.create_default_context(cafile=str(cluster.cert))
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.http_port, context=ctx, timeout=30)
    try:
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.reason, resp.headers
    finally:
        conn.close()


@pytest.mark.parametrize("method,path,body,status,reason", [
    ("POST", "/v1/orgs", b"{}", 422, "Unprocessable Content"),
    ("POST", "/v1/orgs", b"[", 400, "Bad Request"),
    ("GET", "/v1/nothing-here", None, 404, "Not Found"),
    ("DELETE", "/v1/orgs", None, 405, "Method Not Allowed"),
    ("GET", "/v1/me", None, 200, "OK"),
])
def test_reason_phrases_are_rfc_9110s(frontend, admin_key, method, path, body, status, reason):
    got_status, got_reason, _ = raw_request(frontend, method, path, key=admin_key, body=body)
    assert (got_status, got_reason) == (status, reason)


def test_401_and_415_reason_phrases(frontend, admin_key):
    assert raw_request(frontend, "GET", "/v1/me")[:2] == (401, "Unauthorized")
    ctx = ssl.create_default_context(cafile=str(frontend.cert))
    conn = http.client.HTTPSConnection("127.0.0.1", frontend.http_port, context=ctx, timeout=30)
    try:
        conn.request("POST", "/v1/orgs", body=b"name=x",
                     headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "text/plain"})
        resp = conn.getresponse()
        resp.read()
        assert (resp.status, resp.reason) == (415, "Unsupported Media Type")
    finally:
        conn.close()


def access_lines(cluster, mark, count):
    """The access-log lines whose path holds mark, once there are count of them."""
    def logged():
        lines = [line for line in json_lines(cluster.frontend.log_path)
                 if line.get("msg") == "access" and mark in line.get("path", "")]
        return lines if len(lines) >= count else None
    return wait_until(logged, 30, what=f"{count} access-log lines with {mark}")


def test_every_access_log_line_has_a_timestamp_and_unmatched_routes_are_named_unmatched(frontend, admin):
    mark = new_id()
    assert admin.get("/v1/me", params={"mark": mark}).status_code == 200
    assert admin.get(f"/v1/no-such-route-{mark}").status_code == 404
    assert admin.delete("/v1/orgs", params={"mark": mark}).status_code == 405
    lines = access_lines(frontend, mark, 3)
    by_status = {line["status"]: line for line in lines}
    assert by_status[200]["route"] == "me"
    assert by_status[404]["route"] == "unmatched"
    assert by_status[405]["route"] == "unmatched"
    for line in lines:
        ts = line.get("ts")
        assert isinstance(ts, str) and ts.endswith("Z"), line
        when = datetime.fromisoformat(ts[:-1] + "+00:00")
        assert abs((datetime.now(when.tzinfo) - when).total_seconds()) < 300, line
        assert isinstance(line.get("pid"), int), line
        assert list(line)[:2] == ["ts", "pid"], line  # in the order of the other log lines


def test_every_log_line_of_the_front_end_has_a_timestamp(frontend, admin):
    assert admin.get("/v1/me").status_code == 200
    lines = json_lines(frontend.frontend.log_path)
    assert lines
    assert [line for line in lines if "ts" not in line] == []


def test_metrics_name_unmatched_requests_as_the_access_log_does(frontend, anon):
    def unmatched_404s():
        m = parse_metrics(anon.get("/metrics", headers=frontend.metrics_headers).text)
        return sum(v for labels, v in m.get("fv_http_requests_total", [])
                   if labels.get("route") == "unmatched" and labels.get("status") == "404")
    before = unmatched_404s()
    assert anon.get(f"/v1/no-such-route-{new_id()}").status_code == 404
    wait_until(lambda: unmatched_404s() >= before + 1, 30, what="an unmatched 404 in fv_http_requests_total")
    m = parse_metrics(anon.get("/metrics", headers=frontend.metrics_headers).text)
    routes = {labels.get("route") for labels, _ in m.get("fv_http_requests_total", [])}
    assert "none" not in routes


# ------------------------------------------------------------------ SQL is never built from text

SOURCES = [p for d in ("frontend", "worker", "balancer", "common", "tools") for p in (REPO / d).rglob("*.c")]


def test_sql_is_never_built_from_strings():
    """ASVS 5.3.4: every statement is a constant with $n parameters. No SQL keyword appears in a
    format string or a string concatenation, and the libpq calls that take a statement text are
    only given literals, named constants (sql_*, FE_*), or, for the migrations, the text of the
    installed SQL files."""
    assert len(SOURCES) > 50
    building = re.compile(r'\b(v?s?n?printf|asprintf|evbuffer_add_printf|strcat|strncat|strcpy|memcpy)\s*\(((?:[^;"]|"(?:[^"\\]|\\.)*")*)\)\s*;', re.S)
    keyword = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|ALTER|DROP|CREATE)\b")
    calls = re.compile(r'\b(PQexec|PQsendQuery|PQexecParams|PQsendQueryParams|PQprepare|PQsendPrepare|fe_pg_query|fv_pgutil_exec)\s*\(\s*([^,]+),\s*([^,)]+)')
    allowed_dynamic = {  # (file, argument): where a variable holds the statement, and why it is constant
        ("frontend/io/fe_pg.c", "q->sql"): "fe_pg_query's own queue: the text fe_pg_query was given",
        ("worker/wk_store.c", "sql"): "wk_store's send helper: called with its sql_* constants",
        ("tools/fvctl/fvctl_db.c", "sql"): "fvctl's query helper: called with its sql_* constants",
        ("tools/fvctl/fvctl_datakey.c", "sql"): "rotate-data-key's run(): called with its sql_* constants",
        ("tools/fvctl/fvctl_keydrop.c", "sql"): "--drop's print_named(): called with its sql_* constants",
        ("common/fv_pgutil.c", "sql"): "fv_pgutil_exec itself",
        ("common/fv_migrate.c", "sql"): "a migration file's text, read from the installed sql directory",
        ("frontend/api/fe_verdict.c", "sql"): "fe_verdict_run/list: called with the handlers' sql_* constants",
        ("frontend/api/identity/fe_totp.c", "s->disable ? sql_disable : sql_confirm"): "two constants",
        ("tools/fvctl/fvctl_keys.c", "kind->sql_current"): "rewrap's kinds: static const tables of literals",
        ("tools/fvctl/fvctl_keys.c", "kind->sql_batch"): "rewrap's kinds: static const tables of literals",
        ("tools/fvctl/fvctl_keys.c", "kind->sql_replace"): "rewrap's kinds: static const tables of literals",
    }
    bad = []
    for path in SOURCES:
        rel = str(path.relative_to(REPO))
        text = path.read_text()
        for m in building.finditer(text):
            literals = re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(2))
            if any(keyword.search(lit) for lit in literals):
                bad.append(f"{rel}: SQL built with {m.group(1)}: {m.group(0)[:80]!r}")
        for m in calls.finditer(text):
            fn, first, second = m.group(1), m.group(2).strip(), m.group(3).strip()
            stmt = first if fn == "fe_pg_query" else second
            if fn == "fe_pg_query" and first.startswith("const char"):
                continue  # the prototype
            if stmt.startswith('"') or re.fullmatch(r"(sql_\w+|FE_[A-Z_]+|s->sql|st->sql_\w+)", stmt):
                continue
            if (rel, stmt) in allowed_dynamic or (rel, first) in allowed_dynamic:
                continue
            if re.match(r"(const )?(char|PGconn|struct|fe_)", stmt):
                continue  # a declaration
            bad.append(f"{rel}: {fn} given {stmt!r}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("query", ["limit=1&limit=500", "after=x&limit=2&after=y", "limit=2&limit=2",
                                   "%C0%AF=1&%C0%AF=2"])
def test_a_query_parameter_given_twice_is_400(admin, query):
    """ASVS 5.1.1 (HTTP parameter pollution): which copy would count depends on the parser, so
    neither does; the answer is a JSON 400 naming the problem (never echoing odd bytes)."""
    r = admin.get(f"/v1/orgs?{query}")
    assert r.status_code == 400, r.text
    err = error_body(r)
    assert err["code"] == "bad_request" and "more than once" in err["message"]
    assert r.headers.get("Connection") == "close"  # refused before routing, like every framing refusal
    r.content.decode("utf-8")  # the answer is UTF-8 whatever the query held
    assert admin.get("/v1/orgs?limit=1").status_code == 200
