"""Resource limits, JSON bodies (issue 9): a body under the size limit that is absurdly deep, wide
or numeric gets a clear 4xx with a JSON error, the front-end child that read it lives on (its pid
stays, the master replaces nobody), and a second client keeps being served meanwhile.

Before, ~600 KB of JSON nested 300,000 levels (under the 1 MiB limit, refused nowhere) killed the
child that parsed it, before authentication: yajl_tree_free recursed once per level and
overflowed the stack. The strict reader (common/fv_json.h) now refuses nesting deeper than 64 in
its pre-scan, before any tree exists.

A front end of its own with the production body limit (1 MiB; the session's has 64 KiB)."""
import os
import threading
import time
import types

import pytest
import requests

from conftest import make_survey
from fvharness import Api, error_body, free_port, new_id, wait_until
from openapi_check import hook_session

MIB = 1048576
# A generous bound on any one answer to the second client while the big bodies are read (the
# task asks for one; a loaded CI machine is far from it: each body takes milliseconds).
LATENCY_BOUND_S = 2.0


@pytest.fixture(scope="module")
def fe(world):
    c = world.cluster
    port = free_port()
    p = c.start_frontend(name="frontend-limits-json", FV_LISTEN_PORT=port, FV_MAX_BODY_BYTES=MIB)
    base = f"https://127.0.0.1:{port}"
    ns = types.SimpleNamespace(c=c, p=p, port=port, base=base, dep=world.deployment_id,
                               enum=Api(base, c.cert, world.enum_key), anon=Api(base, c.cert))
    wait_until(lambda: len(p.children()) == 2, 30, what="the front end's 2 children")
    yield ns
    ns.enum.close()
    ns.anon.close()
    p.stop()


def deep_arrays(n):
    return '{"data": {"x": ' + "[" * n + "]" * n + "}}"


def deep_objects(n):
    return '{"data": {"x": ' + '{"a":' * n + "1" + "}" * n + "}}"


# (name, body, whether to send it without credentials too, status, code)
PAYLOADS = [
    ("deep_arrays_300000", deep_arrays(300000), True, 400, "json_too_deep"),
    ("deep_objects_100000", deep_objects(100000), True, 400, "json_too_deep"),
    ("deep_unclosed", "[" * (MIB - 16), True, 400, "json_too_deep"),
    ("wide_array_200000", '{"data": {"x": [' + ",".join(["0"] * 200000) + "]}}", False, 422,
     "validation_failed"),
    ("wide_object_90000", '{"data": {' + ",".join(f'"k{i}":0' for i in range(90000)) + "}}", False,
     422, "validation_failed"),
    ("many_strings", '{"data": {"x": [' + ",".join(['"\U0001f600\u00e9"'] * 100000) + "]}}", False, 422,
     "validation_failed"),
    ("number_1e999999", '{"data": {"income": 1e999999}}', True, 400, "number_out_of_range"),
    ("number_1e-999999", '{"data": {"income": 1e-999999}}', True, 400, "number_out_of_range"),
    ("number_200000_digits", '{"data": {"income": 1' + "0" * 199999 + "}}", True, 400,
     "number_out_of_range"),
    ("numbers_max_digits", '{"data": {"x": [' + ",".join(["9" * 131072] * 7) + "]}}", False, 422,
     "validation_failed"),
    ("numbers_100000_huge", '{"data": {"x": [' + ",".join(["1e131071"] * 100000) + "]}}", False, 422,
     "validation_failed"),
]


class Prober:
    """A second client asking /healthz in a loop on its own connection, recording each latency."""

    def __init__(self, fe):
        self.fe, self.stop, self.lat, self.bad = fe, threading.Event(), [], []
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        s = hook_session(requests.Session())
        s.trust_env = False
        s.verify = str(self.fe.c.cert)
        try:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    r = s.get(f"{self.fe.base}/healthz", timeout=10)
                    if r.status_code != 200:
                        self.bad.append(f"{r.status_code}: {r.text[:200]}")
                except requests.RequestException as e:
                    self.bad.append(repr(e))
                self.lat.append(time.monotonic() - t0)
        finally:
            s.close()

    def __enter__(self):
        self.t.start()
        wait_until(lambda: len(self.lat) >= 1, 30, what="the second client's first answer")
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(30)


@pytest.mark.parametrize("name,body,anon,status,code", PAYLOADS, ids=[p[0] for p in PAYLOADS])
def test_absurd_json_is_refused_and_the_child_lives(fe, name, body, anon, status, code):
    raw = body.encode()
    assert len(raw) <= MIB, len(raw)
    children = fe.p.children()
    assert len(children) == 2, children
    path = f"/v1/deployments/{fe.dep}/responses"
    with Prober(fe) as probe:
        for api in ([fe.enum, fe.anon] if anon else [fe.enum]) * 2:  # each child likely gets one
            r = api.post(path, data=raw, headers={"Content-Type": "application/json"}, timeout=60)
            assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
            assert error_body(r)["code"] == code, r.text[:300]
        seen = len(probe.lat)
        wait_until(lambda: len(probe.lat) > seen, 30, what="one more answer to the second client")
    assert not probe.bad, probe.bad[:5]
    assert max(probe.lat) < LATENCY_BOUND_S, f"second client waited {max(probe.lat):.2f} s"
    # No child died (the master would have replaced it with a new pid) and both still serve.
    assert fe.p.children() == children
    assert fe.c.healthy(fe.port, fe.p)


def test_a_good_submission_still_goes_through(fe):
    """The same child that refused all of the above still takes an ordinary submission."""
    rid = new_id()
    r = fe.enum.post(f"/v1/deployments/{fe.dep}/responses",
                     json={"id": rid, "data": {"household": "After the storm", "members": 3}})
    assert r.status_code == 202, r.text[:300]


@pytest.mark.skipif(os.environ.get("FV_HEAVY_TESTS") != "1",
                    reason="moves ~280 MB through Redis and PostgreSQL; set FV_HEAVY_TESTS=1 to run it")
def test_batch_beyond_jsonb_limit_is_written_entry_by_entry(fe, world):
    """A worker batch is one jsonb array, and jsonb refuses one whose elements total more than
    256 MiB (SQLSTATE 54000). With the default batch_size of 500, some 260 acknowledged
    submissions near the 1 MiB body limit make such a batch: before, it was retried forever (not a
    data error) and the whole queue stalled. Now it is written entry by entry."""
    c = world.cluster
    _s, dep = make_survey(world.admin, world.org_id, [world.enum_id], name="Big answers",
                          definition={"questions": [{"name": "t", "type": "text", "label": "T"}]})
    n, text = 280, "x" * (MIB - 200)
    c.stop_all_workers()  # the submissions pile up, to be read in one batch
    try:
        ids = []
        for _ in range(n):
            rid = new_id()
            r = fe.enum.post(f"/v1/deployments/{dep['id']}/responses", json={"id": rid, "data": {"t": text}},
                             timeout=60)
            assert r.status_code == 202, r.text[:300]
            ids.append(rid)
        w = c.start_worker("big-batch", FV_BATCH_SIZE=500)

        def stored():
            return c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", ids)[0][0] == n
        wait_until(stored, 300, interval=1, what=f"all {n} large submissions to be stored")
        assert not [f for _e, f in c.redis_cli("XRANGE", c.DEAD, "-", "+") or [] if set(ids) & set(f)]
        # ... and they did meet the limit in one batch (else this test proves nothing)
        log = w.log_path.read_text(errors="replace")
        assert "writing its entries one by one" in log and "jsonb" in log, log[-2000:]
    finally:
        c.stop_all_workers()
        c.start_default_workers()
