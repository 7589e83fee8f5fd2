"""fv-frontend's master: forks `processes` children, replaces one that dies, and on SIGTERM
exits 0 with all children gone. Runs on a second instance, not the session's front end."""
import os
import socket
import signal

import pytest

from fvharness import free_port, wait_until
from openapi_check import hook_session


@pytest.fixture()
def extra(frontend):
    port = free_port()
    p = frontend.start_frontend(name="frontend-extra", FV_LISTEN_PORT=port)
    p.port = port
    yield p
    if p.returncode is None:
        p.stop()


def test_master_forks_children(extra):
    wait_until(lambda: len(extra.children()) == 2, 30, what="2 children (processes = 2)")


def test_dead_child_is_replaced(frontend, extra):
    before = wait_until(lambda: (lambda ch: ch if len(ch) == 2 else None)(extra.children()), 30,
                        what="2 children")
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: len(extra.children()) == 2 and before[0] not in extra.children(), 30,
               what="the killed child to be replaced")
    assert extra.alive()
    wait_until(lambda: frontend.healthy(extra.port, extra), 30, what="/healthz after the restart")


def test_sigterm_exits_0_without_strays(frontend, extra):
    wait_until(lambda: len(extra.children()) == 2, 30, what="2 children")
    children = extra.children()
    assert extra.stop(signal.SIGTERM, timeout=30) == 0
    assert not extra.leftovers
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or \
            open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"


def test_sigterm_lets_in_flight_requests_finish(frontend, extra, admin_key):
    """A request in flight when SIGTERM arrives is answered (not cut off), new connections are
    refused once the master has closed the listener, and the master then exits 0. The request is
    held in flight deterministically: its INSERT waits on a lock the test holds."""
    import threading

    import requests

    wait_until(lambda: len(extra.children()) == 2, 30, what="2 children")
    locker = frontend.pg.connect(autocommit=False)
    result = {}
    try:
        locker.cursor().execute("LOCK TABLE orgs IN ACCESS EXCLUSIVE MODE")

        def create_org():
            with hook_session(requests.Session()) as s:
                s.trust_env = False
                try:
                    result["r"] = s.post(f"https://127.0.0.1:{extra.port}/v1/orgs", json={"name": "drain"},
                                         headers={"Authorization": f"Bearer {admin_key}"},
                                         verify=str(frontend.cert), timeout=60)
                except requests.RequestException as e:
                    result["e"] = e
        t = threading.Thread(target=create_org)
        t.start()
        wait_until(lambda: frontend.psql("SELECT count(*) FROM pg_locks WHERE relation = 'orgs'::regclass "
                                         "AND NOT granted")[0][0] > 0, 30, what="the request to wait on the lock")
        os.kill(extra.pid, signal.SIGTERM)
        # The listener closes: a new connection is refused while the old request is still held.
        def refused():
            try:
                socket.create_connection(("127.0.0.1", extra.port), timeout=2).close()
                return False
            except OSError:
                return True
        wait_until(refused, 30, what="the listener to close after SIGTERM")
        assert t.is_alive(), "the in-flight request ended before the lock was released"
        locker.rollback()
        t.join(60)
    finally:
        locker.close()
    assert "e" not in result, f"in-flight request failed during the drain: {result.get('e')}"
    assert result["r"].status_code == 201, result["r"].text
    assert extra.stop(signal.SIGTERM, timeout=30) == 0
    assert not extra.leftovers


def test_request_ids_name_no_pid_and_stay_unique(frontend, extra):
    """X-Request-Id is <12 random hex digits drawn at child start>-<counter>: it does not reveal
    the child's pid, and ids stay unique across children, many requests and a child restart."""
    import re

    import requests

    def request_ids(n):
        out = []
        with hook_session(requests.Session()) as s:
            s.trust_env = False
            s.verify = str(frontend.cert)
            for i in range(n):
                # every 5th request on a new connection, so that both children answer
                headers = {"Connection": "close"} if i % 5 == 4 else {}
                r = s.get(f"https://127.0.0.1:{extra.port}/healthz", headers=headers, timeout=30)
                assert r.status_code == 200
                out.append(r.headers["X-Request-Id"])
        return out

    children = wait_until(lambda: (lambda ch: ch if len(ch) == 2 else None)(extra.children()), 30,
                          what="2 children")
    seen = request_ids(300)
    for rid in seen:
        assert re.fullmatch(r"[0-9a-f]{12}-[0-9a-f]{1,16}", rid), rid
        for pid in children:
            assert not rid.startswith(f"{pid:x}-") and not rid.startswith(f"{pid}-"), (rid, pid)
    assert len(set(seen)) == len(seen), "a request id repeated"
    prefixes = {rid.split("-")[0] for rid in seen}
    assert 1 <= len(prefixes) <= 2, prefixes

    os.kill(children[0], signal.SIGKILL)
    wait_until(lambda: len(extra.children()) == 2 and children[0] not in extra.children(), 30,
               what="the killed child to be replaced")

    def new_prefix():
        more = request_ids(20)
        seen.extend(more)
        return {rid.split("-")[0] for rid in more} - prefixes
    wait_until(new_prefix, 60, what="an answer from the replacement child")
    assert len(set(seen)) == len(seen), "a request id repeated after the restart"
