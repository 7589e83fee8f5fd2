"""One slow query must not mark a child's whole PostgreSQL pool down (issue 9, item 11).

A front end of our own (one child, four connections, pg_timeout_ms 1000). The test holds a lock
on `responses` from its own connection, so a read of a response waits on it past the deadline:
that request gets 503 db_timeout, its statement is cancelled on the server (not left waiting on
the lock), only its connection is replaced, and meanwhile other requests are served and /readyz
stays ready with db: up (no degraded mode)."""
import signal
import threading

import pytest
import requests

from conftest import good_data
from fvharness import free_port, new_id, wait_until
from openapi_check import hook_session


@pytest.fixture()
def inst(world):
    c = world.cluster
    port = free_port()
    p = c.start_frontend(name="frontend-slowq", FV_LISTEN_PORT=port, FV_PROCESSES=1,
                         FV_PG_POOL_SIZE=4, FV_PG_TIMEOUT_MS=1000)
    s = hook_session(requests.Session())
    s.trust_env = False
    s.verify = str(c.cert)
    base = f"https://127.0.0.1:{port}"

    def get(path, key=world.enum_key):
        return s.get(base + path, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    wait_until(lambda: get("/readyz").json()["status"] == "ready", 30, what="ready")
    yield type("Inst", (), {"get": get, "proc": p})
    s.close()
    assert p.stop(signal.SIGTERM, timeout=30) == 0


def log_lines(p):
    return p.log_path.read_text(errors="replace").splitlines()


def waiting_on_lock(c):
    return c.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fv-frontend' "
                  "AND wait_event_type = 'Lock'")[0][0]


def test_one_slow_query_leaves_the_pool_up(world, inst):
    c = world.cluster
    rid = new_id()
    assert world.submit(good_data(1), id=rid).status_code == 202
    world.wait_readable(rid)
    assert inst.get(f"/v1/responses/{rid}").status_code == 200  # this child knows the key now
    before = len(log_lines(inst.proc))

    lock = c.pg.connect(autocommit=False)
    slow = {}
    try:
        lock.cursor().execute("LOCK TABLE responses IN ACCESS EXCLUSIVE MODE")
        t = threading.Thread(target=lambda: slow.update(r=inst.get(f"/v1/responses/{rid}")))
        t.start()
        wait_until(lambda: waiting_on_lock(c) == 1, 10, what="the read to wait on the lock")
        # While it waits and after it timed out, the child serves and is not degraded.
        seen = []
        while t.is_alive() or len(seen) < 20:
            ready = inst.get("/readyz").json()
            me = inst.get("/v1/me")
            seen.append((ready["status"], ready["db"], me.status_code))
        t.join()
        assert slow["r"].status_code == 503, slow["r"].text
        assert slow["r"].json()["error"]["code"] == "db_timeout"
        assert all(x == ("ready", "up", 200) for x in seen), [x for x in seen if x != ("ready", "up", 200)]
        # The timed-out statement was cancelled on the server, not left waiting on the lock.
        wait_until(lambda: waiting_on_lock(c) == 0, 10, what="the slow statement to be cancelled")
    finally:
        lock.rollback()
        lock.close()
    assert inst.get(f"/v1/responses/{rid}").status_code == 200
    # Exactly one connection was replaced; no other went down.
    down = [line for line in log_lines(inst.proc)[before:] if "postgresql connection" in line and "down" in line]
    assert len(down) == 1 and "replacing this connection" in down[0], down
