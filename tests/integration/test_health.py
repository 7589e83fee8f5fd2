"""/healthz, /readyz and /metrics (DESIGN.md section 5)."""
import os
import subprocess

import pytest
import requests

from fvharness import (Api, binary, child_env, error_body, free_port, metric_sum, parse_metrics,
                       wait_until)


def test_healthz(anon):
    r = anon.get("/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_readyz_ready_when_everything_is_up(anon):
    # A child that has just started may still be opening its PostgreSQL connections and say
    # "degraded" for a moment: poll until ready (bounded), then check every child agrees.
    def ready():
        for _ in range(6):  # new connections, so that every child is likely asked
            r = anon.get("/readyz", headers={"Connection": "close"})
            assert r.status_code == 200, r.text
            if r.json()["status"] != "ready":
                return False
        return True
    wait_until(ready, 30, what="/readyz to say ready")
    for _ in range(10):  # new connections: both children answer
        r = anon.get("/readyz", headers={"Connection": "close"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["status"] == "ready", body
        assert body["db"] == "up", body
        assert body["queue"] == "up", body


def test_hsts_header(anon):
    # Transport: TLS only, with HSTS (DESIGN.md section 3).
    r = anon.get("/healthz")
    # One year at least, and subdomains too (a sibling host must not be reachable over http).
    hsts = [p.strip() for p in r.headers.get("Strict-Transport-Security", "").split(";")]
    ages = [int(p.split("=", 1)[1]) for p in hsts if p.lower().startswith("max-age=")]
    assert ages and ages[0] >= 31536000, hsts
    assert "includesubdomains" in [p.lower() for p in hsts], hsts


def test_security_headers_on_answers_and_errors(anon):
    """OWASP ASVS 14.4.x and 7.4.1: every answer carries the browser-hardening headers; JSON is
    an attachment; an error names its request id in the body, equal to X-Request-Id; nothing
    names the software or opens the API to other origins."""
    for r in (anon.get("/healthz"), anon.get("/v1/no-such-thing"), anon.get("/v1/me")):
        h = r.headers
        assert h["Strict-Transport-Security"].startswith("max-age=")
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Cache-Control"] == "no-store"
        assert h["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert h["X-Frame-Options"] == "DENY"
        assert h["Referrer-Policy"] == "no-referrer"
        assert h["Content-Type"].startswith("application/json")
        assert h["Content-Disposition"] == 'attachment; filename="api.json"'
        assert "Server" not in h and "X-Powered-By" not in h
        assert not any(k.lower().startswith("access-control-") for k in h)
        if r.status_code >= 400:
            assert r.json()["error"]["request_id"] == h["X-Request-Id"], r.text
    r = anon.get("/v1/me", headers={"Origin": "https://evil.example"})
    assert r.status_code == 401
    assert not any(k.lower().startswith("access-control-") for k in r.headers)


def test_metrics_format(frontend, anon):
    anon.get("/healthz")
    r = anon.get("/metrics", headers=frontend.metrics_headers)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    m = parse_metrics(r.text)  # every sample line must parse
    assert "fv_http_requests_total" in m
    assert "fv_submissions_accepted_total" in m
    buckets = m.get("fv_http_request_duration_seconds_bucket")
    assert buckets, "no fv_http_request_duration_seconds histogram"
    assert any(labels.get("le") == "+Inf" for labels, _ in buckets)
    assert "fv_http_request_duration_seconds_count" in m
    assert "fv_http_request_duration_seconds_sum" in m
    assert "# TYPE fv_http_request_duration_seconds histogram" in r.text
    assert "# TYPE fv_http_requests_total counter" in r.text


def test_request_counter_counts_across_children(frontend, anon):
    """The front end has several children; /metrics sums them, so the total only grows."""
    before = metric_sum(parse_metrics(anon.get("/metrics", headers=frontend.metrics_headers).text), "fv_http_requests_total")
    for _ in range(20):  # new connections, so both children are likely to serve some
        assert anon.get("/healthz", headers={"Connection": "close"}).status_code == 200
    wait_until(lambda: metric_sum(parse_metrics(anon.get("/metrics", headers=frontend.metrics_headers).text), "fv_http_requests_total")
               >= before + 20, 30, what="fv_http_requests_total to grow by 20")


def test_accepted_counter_grows_after_a_submission(world, anon):
    frontend = world.cluster
    def accepted():
        return metric_sum(parse_metrics(anon.get("/metrics", headers=frontend.metrics_headers).text), "fv_submissions_accepted_total")
    before = accepted()
    r = world.submit()
    assert r.status_code == 202, r.text
    wait_until(lambda: accepted() >= before + 1, 30, what="fv_submissions_accepted_total to grow")


def test_metrics_need_the_metrics_token_on_the_api_port(frontend, anon, admin_key):
    """The harness sets metrics_token_file: without that token (none, a wrong one, an API key)
    /metrics on the API port answers 401 and no metrics."""
    for headers in ({}, {"Authorization": "Bearer " + "0" * 48},
                    {"Authorization": f"Bearer {admin_key}"},
                    {"Authorization": f"Bearer {frontend.metrics_token}x"},
                    {"Authorization": frontend.metrics_token}):
        r = anon.get("/metrics", headers=headers)
        assert r.status_code == 401, (headers, r.status_code)
        assert error_body(r)["code"] == "unauthenticated"
        assert "fv_http_requests_total" not in r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    r = anon.get("/metrics", headers=frontend.metrics_headers)
    assert r.status_code == 200 and "fv_http_requests_total" in r.text


@pytest.fixture()
def metrics_frontend(frontend):
    """A second front end with metrics_listen on a free loopback port; metrics_token_file as the
    test asks (FV_METRICS_TOKEN_FILE)."""
    started = []

    def start(token_file=""):
        port, mport = free_port(), free_port()
        p = frontend.start_frontend(name="frontend-metrics", FV_LISTEN_PORT=port,
                                    FV_METRICS_LISTEN=f"127.0.0.1:{mport}",
                                    FV_METRICS_TOKEN_FILE=str(token_file))
        started.append(p)
        p.port, p.metrics_url = port, f"http://127.0.0.1:{mport}/metrics"
        return p
    yield start
    for p in started:
        if p.returncode is None:
            assert p.stop() == 0


def plain_get(url, **kw):
    with requests.Session() as s:
        s.trust_env = False
        return s.request(kw.pop("method", "GET"), url, timeout=30, **kw)


def test_metrics_listen_serves_metrics_apart(frontend, metrics_frontend):
    """metrics_listen without a token file: metrics on the separate plain-HTTP listener only; the
    API port has no /metrics (404)."""
    p = metrics_frontend()
    api = Api(f"https://127.0.0.1:{p.port}", frontend.cert)
    try:
        r = api.get("/metrics")
        assert r.status_code == 404 and error_body(r)["code"] == "not_found"
        assert api.get("/metrics", headers=frontend.metrics_headers).status_code == 404
    finally:
        api.close()
    r = plain_get(p.metrics_url)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain")
    m = parse_metrics(r.text)
    assert any(labels.get("route") == "metrics" and labels.get("status") == "404"
               for labels, _ in m.get("fv_http_requests_total", []))
    assert plain_get(p.metrics_url.replace("/metrics", "/v1/me")).status_code == 404
    r = plain_get(p.metrics_url, method="POST")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_metrics_listen_asks_for_the_token_when_one_is_set(frontend, metrics_frontend):
    p = metrics_frontend(frontend.metrics_token_file)
    r = plain_get(p.metrics_url)
    assert r.status_code == 401 and "fv_http_requests_total" not in r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    r = plain_get(p.metrics_url, headers=frontend.metrics_headers)
    assert r.status_code == 200 and "fv_http_requests_total" in r.text


def test_check_config_checks_the_metrics_keys(frontend, tmp_path):
    def check(**env):
        return subprocess.run([binary("fv-frontend"), "-c", frontend.conf, "--check-config"],
                              capture_output=True, text=True, env=child_env(**env), timeout=60)
    assert check().returncode == 0
    assert check(FV_METRICS_LISTEN="127.0.0.1:9464").returncode == 0
    for value in ("9464", "localhost:9464", "127.0.0.1:0", "127.0.0.1:x"):
        r = check(FV_METRICS_LISTEN=value)
        assert r.returncode == 2 and "metrics_listen" in r.stderr, (value, r.stderr)
    r = check(FV_METRICS_LISTEN="0.0.0.0:9464", FV_METRICS_TOKEN_FILE="")
    assert r.returncode == 2 and "metrics_listen" in r.stderr and "loopback" in r.stderr, r.stderr
    assert check(FV_METRICS_LISTEN="0.0.0.0:9464").returncode == 0  # with the harness's token file
    loose = tmp_path / "metrics.token"
    loose.write_text("x" * 40)
    os.chmod(loose, 0o644)
    r = check(FV_METRICS_TOKEN_FILE=str(loose))
    assert r.returncode == 2 and "metrics_token_file" in r.stderr, r.stderr
