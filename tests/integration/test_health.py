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
    # One year at least, and subdomains too (a sibling host must not be reachable over http).
    hsts = [p.strip() for p in r.headers.get("Strict-Transport-Security", "").split(";")]
    ages = [int(p.split("=", 1)[1]) for p in hsts if p.lower().startswith("max-age=")]
    assert ages and ages[0] >= 31536000, hsts
    assert "includesubdomains" in [p.lower() for p in hsts], hsts


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
