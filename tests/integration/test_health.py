"""/healthz, /readyz and /metrics (DESIGN.md section 5)."""
from fvharness import metric_sum, parse_metrics, wait_until


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
    assert "max-age=" in r.headers.get("Strict-Transport-Security", "")


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


def test_metrics_format(anon):
    anon.get("/healthz")
    r = anon.get("/metrics")
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


def test_request_counter_counts_across_children(anon):
    """The front end has several children; /metrics sums them, so the total only grows."""
    before = metric_sum(parse_metrics(anon.get("/metrics").text), "fv_http_requests_total")
    for _ in range(20):  # new connections, so both children are likely to serve some
        assert anon.get("/healthz", headers={"Connection": "close"}).status_code == 200
    wait_until(lambda: metric_sum(parse_metrics(anon.get("/metrics").text), "fv_http_requests_total")
               >= before + 20, 30, what="fv_http_requests_total to grow by 20")


def test_accepted_counter_grows_after_a_submission(world, anon):
    def accepted():
        return metric_sum(parse_metrics(anon.get("/metrics").text), "fv_submissions_accepted_total")
    before = accepted()
    r = world.submit()
    assert r.status_code == 202, r.text
    wait_until(lambda: accepted() >= before + 1, 30, what="fv_submissions_accepted_total to grow")
