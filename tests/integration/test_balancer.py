"""fv-balancer (issue 4): TLS passed through to the front ends, least connections with connect
retries, HAProxy-style health checks (up / degraded / down), the admin listener, SIGHUP reload,
the spawner, descriptor hygiene under half-closes and disconnects, and SIGTERM.

Backends are the session front end, a second front end started here, and a small Python backend
(fake_backend.py) whose /readyz answer the test controls and which also speaks a plain-TCP protocol
for the data-path tests (echo after half-close, large replies, counters)."""
import hashlib
import json
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from fvharness import (REPO, SANITIZER_PATTERNS, binary, build_dir, child_env, free_port, metric_sum,
                       new_id, pid_running, start_balancer, stop_pid, tail, wait_until)

PY = "/usr/bin/python3"
PATTERN = bytes(range(256)) * 256


class Fake:
    def __init__(self, cluster, name, cert=None, key=None):
        self.cluster = cluster
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.modefile = cluster.base / f"{name}.mode"
        self.set_mode("ready")
        script = Path(__file__).with_name("fake_backend.py")
        self.proc = cluster._spawn(name, [PY, script, self.port, cert or cluster.cert, key or cluster.key,
                                          self.modefile])

        def listening():
            self.proc.check_alive()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_until(listening, 30, what=f"{name} to listen")

    def set_mode(self, m):
        tmp = self.modefile.with_suffix(".tmp")
        tmp.write_text(m)
        os.replace(tmp, self.modefile)

    def stats(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(b"STATS\n")
            return json.loads(recv_all(s))

    def stop(self):
        if self.proc.returncode is None:
            self.proc.stop()


def recv_all(s, limit=None):
    out = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(out)
        out += chunk
        if limit and len(out) >= limit:
            return bytes(out)


@pytest.fixture()
def balancers(frontend):
    """Starts balancers for one test; each is stopped at the end and must exit 0."""
    started = []

    def start(**keys):
        b = start_balancer(frontend, **keys)
        started.append(b)
        return b
    yield start
    for b in started:
        if b.proc.returncode is None:
            assert b.stop() == 0, f"fv-balancer exited {b.proc.returncode}:\n{tail(b.proc.log_path)}"


@pytest.fixture()
def fake(frontend):
    fakes = []

    def make(name="fake-backend", cert=None, key=None):
        f = Fake(frontend, name, cert, key)
        fakes.append(f)
        return f
    yield make
    for f in fakes:
        f.stop()


@pytest.fixture(scope="module")
def fe2(frontend):
    """A second front end for the module (the session one is the first)."""
    port = free_port()
    p = frontend.start_frontend(name="frontend-lb2", FV_LISTEN_PORT=port)
    p.port = port
    p.addr = f"127.0.0.1:{port}"
    yield p
    if p.returncode is None:
        assert p.stop() == 0


def fe1_addr(c):
    return f"127.0.0.1:{c.http_port}"


def healthz_via(b, n=1):
    """n fresh connections through the balancer to GET /healthz; returns the status codes."""
    codes = []
    with requests.Session() as s:
        s.trust_env = False
        for _ in range(n):
            r = s.get(f"https://127.0.0.1:{b.port}/healthz", verify=str(b.cluster.cert), timeout=10,
                      headers={"Connection": "close"})
            codes.append(r.status_code)
    return codes


# ------------------------------------------------------------------------------------ tests
def test_submissions_through_the_balancer_are_stored(world, fe2, balancers):
    c = world.cluster
    b = balancers(backends=f"{fe1_addr(c)},{fe2.addr}")
    b.wait_state(fe1_addr(c), "up")
    b.wait_state(fe2.addr, "up")
    api = b.api(world.enum_key)
    ids = []
    try:
        for i in range(12):
            rid = new_id()
            r = api.post(f"/v1/deployments/{world.deployment_id}/responses",
                         json={"id": rid, "data": {"household": f"LB {i}", "members": 2}},
                         headers={"Connection": "close"})  # a new connection each: both backends serve
            assert r.status_code == 202, r.text
            assert r.json()["id"] == rid
            ids.append(rid)
        for rid in ids:
            world.wait_readable(rid)
        rows = c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", ids)
        assert rows[0][0] == len(ids)
    finally:
        api.close()
    st = {x["addr"]: x for x in b.status()["backends"]}
    assert st[fe1_addr(c)]["total_connections"] > 0 and st[fe2.addr]["total_connections"] > 0, st


def test_tls_is_passed_through(frontend, balancers):
    """The certificate seen through the balancer is the front end's own (the balancer has none)."""
    b = balancers()
    b.wait_state(fe1_addr(frontend), "up")
    ctx = ssl.create_default_context(cafile=str(frontend.cert))
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            reply = recv_all(s)
    assert der == ssl.PEM_cert_to_DER_cert(frontend.cert.read_text())
    assert reply.startswith(b"HTTP/1.1 200"), reply[:100]


def test_status_shows_both_backends_up(frontend, fe2, balancers):
    b = balancers(backends=f"{fe1_addr(frontend)},{fe2.addr}")
    b.wait_state(fe1_addr(frontend), "up")
    b.wait_state(fe2.addr, "up")
    st = b.status()
    assert st["listen"] == f"127.0.0.1:{b.port}"
    assert st["spawned"] == 0
    assert [x["addr"] for x in st["backends"]] == [fe1_addr(frontend), fe2.addr]
    for x in st["backends"]:
        assert x["state"] == "up" and x["source"] == "config", x
        lc = x["last_check"]
        assert lc["ok"] is True and lc["status"] == 200 and lc["error"] is None, lc
        assert isinstance(lc["latency_ms"], (int, float)) and lc["latency_ms"] >= 0
        assert lc["at"].endswith("Z")
        assert isinstance(x["active_connections"], int) and isinstance(x["total_connections"], int)
    m = b.metrics()
    states = {(l["backend"], l["state"]): v for l, v in m["fv_lb_backend_state"]}
    assert states[(fe2.addr, "up")] == 1 and states[(fe2.addr, "down")] == 0
    assert sum(v for l, v in m["fv_lb_checks_total"] if l["result"] == "ready") >= 4


def test_backend_down_and_back(frontend, balancers):
    """A front end that stops is taken out of rotation (requests keep succeeding through the
    other one) and comes back when it returns."""
    port = free_port()
    addr = f"127.0.0.1:{port}"
    fe3 = frontend.start_frontend(name="frontend-lb3", FV_LISTEN_PORT=port)
    b = balancers(backends=f"{fe1_addr(frontend)},{addr}")
    b.wait_state(addr, "up")
    b.wait_state(fe1_addr(frontend), "up")
    assert fe3.stop() == 0
    assert set(healthz_via(b, 10)) == {200}  # even before the checks notice: connects are retried
    b.wait_state(addr, "down", timeout=30)
    assert set(healthz_via(b, 10)) == {200}
    st = b.backend(addr)
    assert st["last_check"]["ok"] is False and st["last_check"]["error"], st
    assert any(m.startswith(f"backend {addr} state up -> down (") for m in b.log_messages())
    fe3b = frontend.start_frontend(name="frontend-lb3", FV_LISTEN_PORT=port)
    try:
        b.wait_state(addr, "up", timeout=30)
        assert any(m.startswith(f"backend {addr} state down -> up (") for m in b.log_messages())
        before = b.backend(addr)["total_connections"]
        assert set(healthz_via(b, 10)) == {200}
        assert b.backend(addr)["total_connections"] > before  # back in rotation
    finally:
        assert fe3b.stop() == 0


def test_degraded_backend_stays_in_rotation(fake, balancers):
    f = fake()
    f.set_mode("degraded")
    b = balancers(backends=f.addr)
    b.wait_state(f.addr, "degraded")
    # the only backend is degraded: it still gets the traffic
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(f"https://127.0.0.1:{b.port}/anything", verify=str(f.cluster.cert), timeout=10)
    assert r.status_code == 200 and r.headers.get("X-Backend") == "fake", r.text
    f.set_mode("ready")
    b.wait_state(f.addr, "up")
    f.set_mode("garbage")  # 200 without a known status is a failure
    b.wait_state(f.addr, "down")
    assert "status" in b.backend(f.addr)["last_check"]["error"]
    f.set_mode("degraded")
    b.wait_state(f.addr, "degraded")
    f.set_mode("fail")
    b.wait_state(f.addr, "down")
    lc = b.backend(f.addr)["last_check"]
    assert lc["status"] == 503 and not lc["ok"], lc
    f.set_mode("hang")  # a check that never answers times out
    wait_until(lambda: "within" in (b.backend(f.addr)["last_check"]["error"] or ""), 30,
               what="a check timeout to be recorded")
    msgs = b.log_messages()
    for t in ("degraded -> up", "up -> down", "down -> degraded", "degraded -> down"):
        assert any(m.startswith(f"backend {f.addr} state {t} (") for m in msgs), (t, msgs)


def test_failed_connect_is_retried_on_another_backend(frontend, fake, balancers):
    f = fake()
    # fall is large: the dead backend stays "up" for the whole test, so clients do hit it
    b = balancers(backends=f"{f.addr},{fe1_addr(frontend)}", rise=1, fall=1000, check_interval_ms=100)
    b.wait_state(f.addr, "up")
    b.wait_state(fe1_addr(frontend), "up")
    f.stop()
    assert set(healthz_via(b, 10)) == {200}
    assert b.state(f.addr) == "up"
    m = b.metrics()
    assert metric_sum(m, "fv_lb_connect_retries_total") >= 1
    assert metric_sum(m, "fv_lb_connect_failures_total") == 0


def test_no_backend_closes_the_client(fake, balancers):
    f = fake()
    b = balancers(backends=f.addr, rise=1, fall=1)
    b.wait_state(f.addr, "up")
    f.set_mode("fail")
    b.wait_state(f.addr, "down")
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        assert recv_all(s) == b""  # closed: nobody to send it to
    assert metric_sum(b.metrics(), "fv_lb_connect_failures_total") >= 1


def test_sighup_adds_and_removes_backends(frontend, fe2, fake, balancers):
    f = fake()
    b = balancers(backends=fe1_addr(frontend))
    b.wait_state(fe1_addr(frontend), "up")
    r = b.admin_request("POST", "/backends", json={"addr": f.addr})
    assert r.status_code == 201, r.text
    b.reload(backends=f"{fe1_addr(frontend)},{fe2.addr}")
    b.wait_state(fe2.addr, "up")
    b.reload(backends=fe2.addr)
    wait_until(lambda: b.backend(fe1_addr(frontend)) is None and
               all(x["addr"] != fe1_addr(frontend) for x in b.status()["backends"]), 30,
               what="the backend gone from the config to be drained and removed")
    # the runtime one is kept across reloads
    assert b.backend(f.addr)["source"] == "runtime"
    # a broken file changes nothing
    b.reload(backends="frontend-host:8443")
    wait_until(lambda: any(m.startswith("reload failed") for m in b.log_messages()), 30, what="reload failed")
    assert {x["addr"] for x in b.status()["backends"]} == {fe2.addr, f.addr}
    assert set(healthz_via(b, 4)) == {200}
    assert any(m.startswith(f"backend {fe1_addr(frontend)} state up -> draining (") for m in b.log_messages())


def test_admin_add_and_delete(frontend, fe2, balancers):
    b = balancers(backends=fe1_addr(frontend), max_backends=2)
    r = b.admin_request("POST", "/backends", json={"addr": fe2.addr})
    assert r.status_code == 201, r.text
    assert r.json()["addr"] == fe2.addr and r.json()["source"] == "runtime"
    assert r.json()["state"] == "checking"
    b.wait_state(fe2.addr, "up")
    r = b.admin_request("POST", "/backends", json={"addr": fe2.addr})
    assert r.status_code == 409, r.text
    r = b.admin_request("POST", "/backends", json={"addr": "127.0.0.1:1"})
    assert r.status_code == 409 and "max_backends" in r.json()["error"]["message"], r.text
    for bad in ({"addr": "localhost:8443"}, {"addr": 5}, {}):
        r = b.admin_request("POST", "/backends", json=bad)
        assert r.status_code == 400, r.text
    r = b.admin_request("POST", "/backends", data="not json")
    assert r.status_code == 400
    r = b.admin_request("DELETE", f"/backends/{fe2.addr}")
    assert r.status_code == 202, r.text
    wait_until(lambda: all(x["addr"] != fe2.addr for x in b.status()["backends"]), 30,
               what="the deleted backend to go")
    assert b.admin_request("DELETE", f"/backends/{fe2.addr}").status_code == 404
    assert b.admin_request("GET", "/nothing").status_code == 404
    assert b.admin_request("DELETE", "/status").status_code in (404, 405)
    r = b.admin_request("GET", "/metrics")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert "# TYPE fv_lb_connections_total counter" in r.text


def test_check_config_refuses_a_public_admin_listener(frontend):
    base = start_conf = frontend.base / "lb-check.conf"
    from fvharness import balancer_sections, write_config
    write_config(start_conf, balancer_sections(frontend, free_port(), free_port()))
    ok = subprocess.run([binary("fv-balancer"), "-c", base, "--check-config"], capture_output=True,
                        text=True, env=child_env(), timeout=30)
    assert ok.returncode == 0 and "configuration ok" in ok.stdout, ok.stderr
    bad = subprocess.run([binary("fv-balancer"), "-c", base, "--check-config"], capture_output=True,
                         text=True, env=child_env(FV_ADMIN_ADDR="0.0.0.0"), timeout=30)
    assert bad.returncode == 2 and "admin_addr" in bad.stderr, bad.stderr
    bad = subprocess.run([binary("fv-balancer"), "-c", base, "--check-config"], capture_output=True,
                         text=True, env=child_env(FV_CHECK_CA_FILE=str(frontend.base / "missing.pem")),
                         timeout=30)
    assert bad.returncode == 2 and "check_ca_file" in bad.stderr, bad.stderr


def test_checks_verify_with_check_ca_file(frontend, balancers):
    """The right CA brings the front end up; another CA fails every check (a balancer that did not
    verify would bring it up with either)."""
    b = balancers(check_ca_file=frontend.cert)
    b.wait_state(fe1_addr(frontend), "up")
    other = frontend.base / "other-ca"
    other.mkdir(exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(other / "key.pem"), "-out", str(other / "cert.pem")],
                   check=True, capture_output=True, timeout=60)
    wrong = balancers(check_ca_file=other / "cert.pem")
    addr = fe1_addr(frontend)

    def checks(result):
        return sum(v for labels, v in wrong.metrics().get("fv_lb_checks_total", [])
                   if labels["backend"] == addr and labels["result"] == result)
    wait_until(lambda: checks("failed") >= 3, 30, what="three failed checks against the wrong CA")
    assert checks("ready") == 0 and checks("degraded") == 0
    assert wrong.state(addr) != "up"


def make_cert(d, san, cn="fv-test"):
    """A self-signed certificate (its own CA) for san, in directory d: (cert, key)."""
    d.mkdir(parents=True, exist_ok=True)
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", f"/CN={cn}", "-addext", f"subjectAltName={san}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    os.chmod(key, 0o600)
    return cert, key


def check_results(b, addr, result):
    return sum(v for labels, v in b.metrics().get("fv_lb_checks_total", [])
               if labels["backend"] == addr and labels["result"] == result)


def test_checks_verify_by_default(frontend, balancers):
    """With no check_ca_file the checks still verify (against the system's CAs): the harness's
    self-signed front end is never marked up, and the check names the TLS failure. The opt-out
    check_tls_verify = no brings it up."""
    addr = fe1_addr(frontend)
    strict = balancers(check_ca_file="")
    wait_until(lambda: check_results(strict, addr, "failed") >= 3, 30,
               what="three failed checks of a certificate no system CA signed")
    assert check_results(strict, addr, "ready") == 0 and check_results(strict, addr, "degraded") == 0
    assert strict.state(addr) != "up"
    assert "certificate verify failed" in strict.backend(addr)["last_check"]["error"]
    lax = balancers(check_ca_file="", check_tls_verify="no")
    lax.wait_state(addr, "up")


def test_checks_verify_check_server_name(frontend, fake, balancers):
    """check_server_name: the certificate must carry that name (sent as SNI too); without it, the
    backend's IP address."""
    cert, key = make_cert(frontend.base / "named-backend", "DNS:backend.fv.test")
    f = fake("fake-named", cert=cert, key=key)
    good = balancers(backends=f.addr, check_ca_file=cert, check_server_name="backend.fv.test")
    good.wait_state(f.addr, "up")
    for keys in ({"check_server_name": "other.fv.test"}, {}):  # a wrong name; the IP (not in it)
        b = balancers(backends=f.addr, check_ca_file=cert, **keys)
        wait_until(lambda: check_results(b, f.addr, "failed") >= 3, 30,
                   what=f"three failed checks with {keys}")
        assert check_results(b, f.addr, "ready") == 0, keys
        assert b.state(f.addr) != "up", keys


def test_check_from_another_ca_is_not_up(frontend, fake, balancers):
    """A backend whose certificate comes from another CA (right IP address in it) is not marked up
    by a balancer that trusts the harness's CA."""
    cert, key = make_cert(frontend.base / "other-ca-backend", "IP:127.0.0.1", cn="127.0.0.1")
    f = fake("fake-other-ca", cert=cert, key=key)
    b = balancers(backends=f"{fe1_addr(frontend)},{f.addr}")
    b.wait_state(fe1_addr(frontend), "up")  # the harness's CA: verified
    wait_until(lambda: check_results(b, f.addr, "failed") >= 3, 30, what="three failed checks")
    assert check_results(b, f.addr, "ready") == 0 and b.state(f.addr) != "up"


def test_admin_changes_need_the_token(frontend, fe2, balancers):
    """POST /backends and DELETE /backends/ADDR answer 401 (JSON) without the admin token or with
    a wrong one, and change nothing; GET /status and /metrics stay open (loopback only)."""
    b = balancers(backends=fe1_addr(frontend), max_backends=3)
    for token in (False, "wrong-" + "x" * 30, b.admin_token[:-1], b.admin_token + "x"):
        r = b.admin_request("POST", "/backends", token=token, json={"addr": fe2.addr})
        assert r.status_code == 401, (token, r.text)
        assert r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        r = b.admin_request("DELETE", f"/backends/{fe1_addr(frontend)}", token=token)
        assert r.status_code == 401, (token, r.text)
    r = b.admin_request("POST", "/backends", headers={"Authorization": f"Basic {b.admin_token}"},
                        token=False, json={"addr": fe2.addr})
    assert r.status_code == 401
    assert [x["addr"] for x in b.status()["backends"]] == [fe1_addr(frontend)]
    assert b.admin_request("GET", "/status", token=False).status_code == 200
    assert b.admin_request("GET", "/metrics", token=False).status_code == 200
    r = b.admin_request("POST", "/backends", json={"addr": fe2.addr})
    assert r.status_code == 201, r.text
    # Without admin_token_file no token opens the admin API's changes.
    closed = balancers(backends=fe1_addr(frontend), admin_token_file="")
    r = closed.admin_request("POST", "/backends", token=b.admin_token, json={"addr": fe2.addr})
    assert r.status_code == 401 and "admin_token_file" in r.json()["error"]["message"], r.text


def test_check_config_checks_the_admin_token_file(frontend, tmp_path):
    from fvharness import balancer_sections, write_config
    conf = tmp_path / "lb.conf"
    write_config(conf, balancer_sections(frontend, free_port(), free_port()))

    def check(token_text, mode):
        f = tmp_path / "token"
        f.write_text(token_text)
        os.chmod(f, mode)
        return subprocess.run([binary("fv-balancer"), "-c", conf, "--check-config"], capture_output=True,
                              text=True, env=child_env(FV_ADMIN_TOKEN_FILE=str(f)), timeout=30)
    ok = check("a" * 40 + "\n", 0o600)
    assert ok.returncode == 0, ok.stderr
    for text, mode in (("a" * 40, 0o644), ("short", 0o600), ("two words here and more", 0o600)):
        bad = check(text, mode)
        assert bad.returncode == 2 and "admin_token_file" in bad.stderr, (text, mode, bad.stderr)
        assert text not in bad.stderr


def test_spawner_starts_front_ends_up_to_max_backends(frontend, balancers):
    """min_backends = 3 = max_backends with a live and a dead configured backend: once the dead
    one is down, exactly one front end is spawned (it joins rotation); then the balancer would
    spawn another but may not go past max_backends."""
    spawn_cmd = (f"FV_CONFIG={frontend.conf} FV_BUILD_DIR={build_dir()} "
                 f"{REPO / 'deploy' / 'spawn-frontend.sh'} {{port}}")
    base = free_port()
    dead = f"127.0.0.1:{free_port()}"
    b = balancers(backends=f"{fe1_addr(frontend)},{dead}", min_backends=3, max_backends=3,
                  spawn_command=f'"{spawn_cmd}"', spawn_port_base=base, spawn_cooldown_ms=300)
    pids = []
    try:
        def spawned_up():
            xs = [x for x in b.status()["backends"] if x["source"] == "spawned"]
            for x in xs:
                if x["pid"] and x["pid"] not in pids:
                    pids.append(x["pid"])
            return xs and xs[0]["state"] == "up" and xs[0]["pid"] and xs[0]
        x = wait_until(spawned_up, 60, what="a spawned front end to join rotation")
        assert int(x["addr"].rsplit(":", 1)[1]) >= base
        assert pid_running(x["pid"])
        wait_until(lambda: any("max_backends = 3 is reached" in m for m in b.log_messages()), 30,
                   what="the spawner to refuse going past max_backends")
        st = b.status()
        assert len(st["backends"]) == 3 and st["spawned"] == 1, st
        assert b.state(dead) == "down"
        assert metric_sum(b.metrics(), "fv_lb_spawns_total") == 1
        # the spawned front end serves through the balancer
        assert frontend.healthy(int(x["addr"].rsplit(":", 1)[1]))
        assert set(healthz_via(b, 6)) == {200}
        log = frontend.base / f"frontend-{x['addr'].rsplit(':', 1)[1]}.log"
        assert log.exists()
    finally:
        for pid in pids:
            assert stop_pid(pid), f"spawned front end {pid} did not stop on SIGTERM"
        frontend.stop_spawned()  # any the test did not see (a slow one replaced by another)
        for log in frontend.base.glob("frontend-*.log"):
            bad = [l for l in log.read_text(errors="replace").splitlines() if SANITIZER_PATTERNS.search(l)]
            assert not bad, f"sanitizer report in {log}: {bad[:3]}"


def test_spawner_fills_min_backends(frontend, balancers):
    """min_backends = 2 with one configured backend: one front end is spawned and joins; no more."""
    spawn_cmd = (f"FV_CONFIG={frontend.conf} FV_BUILD_DIR={build_dir()} "
                 f"{REPO / 'deploy' / 'spawn-frontend.sh'} {{port}}")
    b = balancers(min_backends=2, max_backends=4, spawn_command=f'"{spawn_cmd}"',
                  spawn_port_base=free_port(), spawn_cooldown_ms=300)
    pid = None
    try:
        x = wait_until(lambda: next((x for x in b.status()["backends"] if x["source"] == "spawned"
                                     and x["state"] == "up" and x["pid"]), None), 60,
                       what="a spawned front end to join rotation")
        pid = x["pid"]
        # healthy = 2 = min_backends: over several checks and cooldowns, nothing else is spawned
        checks = lambda: sum(v for l, v in b.metrics()["fv_lb_checks_total"] if l["backend"] == x["addr"])
        n0 = checks()
        wait_until(lambda: checks() >= n0 + 5, 30, what="five more checks")
        assert len(b.status()["backends"]) == 2
        assert metric_sum(b.metrics(), "fv_lb_spawns_total") == 1
    finally:
        if pid:
            assert stop_pid(pid)
        # a spawned front end slow to come up (sanitizer build) counts as down, and the spawner
        # starts another meanwhile: stop every one it started
        frontend.stop_spawned()


def test_spawner_restarts_a_crashed_front_end_with_a_backoff(frontend, balancers):
    """A spawned front end killed with SIGKILL goes down at once and is restarted on the same
    address after 1 s, then 2 s when it dies again soon after; no replacement is spawned
    meanwhile. One stopped with SIGTERM (exit 0) is not restarted."""
    spawn_cmd = (f"FV_CONFIG={frontend.conf} FV_BUILD_DIR={build_dir()} "
                 f"{REPO / 'deploy' / 'spawn-frontend.sh'} {{port}}")
    b = balancers(backends='""', min_backends=1, max_backends=3, spawn_command=f'"{spawn_cmd}"',
                  spawn_port_base=free_port(), spawn_cooldown_ms=300)
    try:
        def spawned_up(not_pid=None):
            xs = [x for x in b.status()["backends"] if x["source"] == "spawned"]
            return (len(xs) == 1 and xs[0]["state"] == "up" and xs[0]["pid"] and xs[0]["pid"] != not_pid
                    and xs[0])
        x = wait_until(spawned_up, 60, what="a spawned front end to join rotation")
        addr, pid = x["addr"], x["pid"]
        assert x["restarts"] == 0 and x["restart_in_ms"] is None
        for n, delay in ((1, 1000), (2, 2000)):
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: any(f"spawned front end on {addr} (pid {pid}) killed by signal 9: "
                                   f"restarting it in {delay} ms" in m for m in b.log_messages()), 10,
                       what=f"the balancer to see pid {pid} die")
            st = b.backend(addr)
            # out of rotation at once, not after `fall` checks (or already restarted)
            assert st["state"] in ("down", "checking") and st["pid"] != pid, st
            x = wait_until(lambda: spawned_up(pid), 60, what=f"restart {n} to rejoin rotation")
            assert x["addr"] == addr and x["restarts"] == n, x
            assert len(b.status()["backends"]) == 1, "a replacement was spawned besides the restart"
            assert set(healthz_via(b, 4)) == {200}
            pid = x["pid"]
        assert stop_pid(pid)
        wait_until(lambda: any(f"spawned front end on {addr} (pid {pid}) exited with status 0: stopped on "
                               "purpose, not restarted" in m for m in b.log_messages()), 15,
                   what="the balancer to see the clean exit")
        assert b.backend(addr)["restarts"] == 2 and b.backend(addr)["restart_in_ms"] is None
    finally:
        frontend.stop_spawned()


def test_backpressure_and_slow_client(fake, balancers):
    """A client that does not read: the balancer stops reading from the backend (which then
    stops being able to send), and everything arrives intact once the client reads."""
    f = fake()
    b = balancers(backends=f.addr, high_water_bytes=65536, rise=1)
    b.wait_state(f.addr, "up")
    total = 256 * 1024 * 1024
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(60)
    s.connect(("127.0.0.1", b.port))
    try:
        s.sendall(b"BIG %d\n" % total)
        samples = []

        def stalled():
            samples.append(f.stats()["big_sent"])
            return len(samples) >= 6 and samples[-1] == samples[-6] and samples[-1] > 0
        wait_until(stalled, 60, interval=0.1, what="the backend's sending to stall")
        assert samples[-1] < total // 2, f"backend sent {samples[-1]} of {total} to a client that reads nothing"
        got, h = 0, hashlib.sha256()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        assert got == total
        expect = hashlib.sha256()
        for _ in range(total // len(PATTERN)):
            expect.update(PATTERN)
        assert h.hexdigest() == expect.hexdigest()
    finally:
        s.close()


def _echo_half_close(port, payload):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"ECHO\n" + payload)
        s.shutdown(socket.SHUT_WR)
        return recv_all(s)


def test_half_close_is_passed_on(fake, balancers):
    """A client that shuts down its sending side still gets the whole answer."""
    f = fake()
    b = balancers(backends=f.addr, rise=1, high_water_bytes=4096)
    b.wait_state(f.addr, "up")
    payload = os.urandom(3 * 1024 * 1024)
    reply = _echo_half_close(b.port, payload)
    assert reply == b"%d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())


def test_descriptors_return_to_baseline(frontend, fake, balancers):
    """200 connections: half-closes, disconnects mid-response, clients that close at once and
    TLS requests; afterwards the balancer holds exactly the descriptors it held before."""
    f = fake()
    # one check, then none for a minute: health checks do not open sockets while we count
    b = balancers(backends=f.addr, rise=1, check_interval_ms=60000, high_water_bytes=16384)
    b.wait_state(f.addr, "up")
    wait_until(lambda: b.status()["active_connections"] == 0, 10, what="no connections")
    baseline = b.fd_count()
    payload = os.urandom(20000)
    want = b"%d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
    tls = ssl.create_default_context(cafile=str(frontend.cert))
    errors = []

    def one(i):
        kind = i % 5
        try:
            if kind == 0:
                assert _echo_half_close(b.port, payload) == want
            elif kind == 1:  # disconnect mid-response with a reset
                s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
                s.sendall(b"BIG 20000000\n")
                assert len(recv_all(s, limit=100000)) >= 100000
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            elif kind == 2:  # disconnect mid-response with a FIN
                s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
                s.sendall(b"BIG 20000000\n")
                recv_all(s, limit=10000)
                s.close()
            elif kind == 3:  # connect and close at once
                socket.create_connection(("127.0.0.1", b.port), timeout=30).close()
            else:
                with socket.create_connection(("127.0.0.1", b.port), timeout=30) as raw:
                    with tls.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                        assert b"fake-backend" in recv_all(s)
        except Exception as e:  # noqa: BLE001
            errors.append((i, repr(e)))

    threads = []
    for i in range(200):
        t = threading.Thread(target=one, args=(i,))
        t.start()
        threads.append(t)
        if len(threads) >= 20:
            threads.pop(0).join(60)
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    wait_until(lambda: b.status()["active_connections"] == 0, 60, what="every connection to close")
    wait_until(lambda: b.fd_count() == baseline, 30,
               what=f"the descriptor count to return to {baseline} (now {b.fd_count()})")
    m = b.metrics()
    assert metric_sum(m, "fv_lb_connections_total") >= 200
    assert metric_sum(m, "fv_lb_connections_active") == 0


def test_sigterm_lets_open_connections_finish(fake, balancers):
    f = fake()
    b = balancers(backends=f.addr, rise=1)
    b.wait_state(f.addr, "up")
    s = socket.create_connection(("127.0.0.1", b.port), timeout=30)
    try:
        s.sendall(b"ECHO\nhello ")
        wait_until(lambda: b.status()["active_connections"] == 1, 10, what="the connection to be open")
        os.kill(b.pid, signal.SIGTERM)

        def refused():
            try:
                socket.create_connection(("127.0.0.1", b.port), timeout=2).close()
                return False
            except OSError:
                return True
        wait_until(refused, 30, what="the listener to close")
        assert b.proc.alive()
        s.sendall(b"world")
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b"%d %s\n" % (11, hashlib.sha256(b"hello world").hexdigest().encode())
    finally:
        s.close()
    b.proc.popen.wait(timeout=30)  # it exits by itself once its last connection is done
    assert b.proc.popen.returncode == 0
    assert b.stop() == 0
    assert "stopped" in b.log_messages()


def test_sigterm_drain_deadline(fake, balancers):
    f = fake()
    b = balancers(backends=f.addr, rise=1, drain_timeout_s=1)
    b.wait_state(f.addr, "up")
    with socket.create_connection(("127.0.0.1", b.port), timeout=30) as s:
        s.sendall(b"HOLD\n")
        wait_until(lambda: b.status()["active_connections"] == 1, 10, what="the connection to be open")
        os.kill(b.pid, signal.SIGTERM)
        b.proc.popen.wait(timeout=30)  # the deadline closes the held connection
        assert b.proc.popen.returncode == 0
        assert recv_all(s) == b""
    assert b.stop() == 0
