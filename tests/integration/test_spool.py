"""Redis down: the front end keeps accepting submissions into its local spool (fdatasync'd
before the 202), /readyz says so, and when Redis returns the spool is replayed and emptied;
nothing acknowledged is lost or stored twice, even if the front end is killed meanwhile."""
import copy
import signal

import pytest

from conftest import DEFINITION, good_data, make_survey
from faults import kill_redis, readyz, restart_redis
from fvharness import free_port, new_id, wait_until
from openapi_check import hook_session


def stored(c, ids):
    return c.psql("SELECT count(*), count(DISTINCT id) FROM responses WHERE id = ANY(%s::uuid[])", ids)[0]


@pytest.fixture()
def redis_restored(world):
    """Whatever a test does to Redis, the next test finds it up and the front end ready."""
    yield world.cluster
    c = world.cluster
    if not c.redis_proc.alive():
        restart_redis(c)
    wait_until(lambda: readyz(c).json().get("queue") == "up" and readyz(c).json().get("spool_pending") == 0,
               60, what="the front end to be back on redis with an empty spool")


def test_redis_down_spools_then_replays(world, redis_restored):
    c = world.cluster
    wait_until(lambda: readyz(c).json().get("status") == "ready", 30, what="ready before the test")
    kill_redis(c)
    ids = [new_id() for _ in range(40)]
    for i, rid in enumerate(ids):
        r = world.submit(good_data(i), id=rid)
        assert r.status_code == 202, r.text
        assert r.json() == {"id": rid, "status": "queued"}
    body = readyz(c).json()
    assert readyz(c).status_code == 200
    assert body["status"] == "degraded", body
    assert body["spool_pending"] == len(ids), body
    # Whichever child answers, with Redis gone the answer is the spool.
    wait_until(lambda: readyz(c).json()["queue"] == "spool", 30, what="queue: spool")
    metrics = world.admin.get("/metrics", headers=c.metrics_headers).text
    spooled = [int(l.split()[1]) for l in metrics.splitlines() if l.startswith("fv_submissions_spooled_total ")]
    assert spooled and spooled[0] >= len(ids), spooled
    assert f"fv_spool_pending {len(ids)}" in metrics
    spool_files = list((c.base / "spool").glob(f"spool-{c.http_port}-*.log"))
    assert spool_files and sum(f.stat().st_size for f in spool_files) > 8 * len(spool_files)

    restart_redis(c)
    wait_until(lambda: readyz(c).json().get("spool_pending") == 0, 60, what="the spool to be replayed")
    wait_until(lambda: stored(c, ids)[0] == len(ids), 60, what="every spooled submission in PostgreSQL")
    c.wait_drained()
    assert stored(c, ids) == (len(ids), len(ids))
    assert all(f.stat().st_size == 8 for f in spool_files), "the spool was not emptied after the replay"


def test_spool_survives_a_killed_front_end(world, redis_restored):
    """Submissions acknowledged from the spool are on disk: SIGKILL the whole front end while
    Redis is down, bring Redis back, start the front end again: it replays them."""
    c = world.cluster
    port = free_port()
    extra = c.start_frontend(name="frontend-spool", FV_LISTEN_PORT=port)
    api = world.enum
    kill_redis(c)
    ids = [new_id() for _ in range(25)]
    import requests
    with hook_session(requests.Session()) as s:
        s.trust_env = False
        s.headers["Authorization"] = f"Bearer {world.enum_key}"
        for i, rid in enumerate(ids):
            r = s.post(f"https://127.0.0.1:{port}/v1/deployments/{world.deployment_id}/responses",
                       json={"id": rid, "data": good_data(i)}, verify=str(c.cert), timeout=30)
            assert r.status_code == 202, r.text
    assert readyz(c, port).json()["spool_pending"] == len(ids)
    extra.stop(signal.SIGKILL)
    restart_redis(c)
    assert stored(c, ids)[0] == 0  # nothing could have reached PostgreSQL yet
    extra = c.start_frontend(name="frontend-spool", FV_LISTEN_PORT=port)
    try:
        wait_until(lambda: stored(c, ids)[0] == len(ids), 60, what="the restarted front end to replay its spool")
        wait_until(lambda: readyz(c, port).json().get("spool_pending") == 0, 30, what="an empty spool")
        c.wait_drained()
        assert stored(c, ids) == (len(ids), len(ids))
        assert api.get(f"/v1/responses/{ids[0]}").status_code == 200
    finally:
        assert extra.stop(signal.SIGTERM, timeout=30) == 0


def test_fvctl_spool_replay_takes_a_dead_hosts_spool(world, redis_restored):
    """A front end dies with submissions in its spool and does not come back (a lost host):
    `fvctl spool-replay DIR` replays its files into Redis and empties them, skipping the files a
    running front end holds; a second run finds nothing more to do."""
    c = world.cluster
    port = free_port()
    dead = c.start_frontend(name="frontend-lost", FV_LISTEN_PORT=port)
    kill_redis(c)
    ids = [new_id() for _ in range(15)]
    import requests
    with hook_session(requests.Session()) as s:
        s.trust_env = False
        s.headers["Authorization"] = f"Bearer {world.enum_key}"
        for i, rid in enumerate(ids):
            r = s.post(f"https://127.0.0.1:{port}/v1/deployments/{world.deployment_id}/responses",
                       json={"id": rid, "data": good_data(i)}, verify=str(c.cert), timeout=30)
            assert r.status_code == 202, r.text
    import os
    os.killpg(dead.pid, signal.SIGKILL)
    dead.kill()
    restart_redis(c)
    files = list((c.base / "spool").glob(f"spool-{port}-*.log"))
    assert sum(f.stat().st_size for f in files) > 8 * len(files)
    r = c.fvctl("spool-replay", c.base / "spool")
    assert r.stdout.strip() == str(len(ids)), (r.stdout, r.stderr)
    assert "in use by a running front end" in r.stderr  # the session front end's own files
    assert all(f.stat().st_size == 8 for f in files)
    wait_until(lambda: stored(c, ids)[0] == len(ids), 60, what="the replayed submissions in PostgreSQL")
    c.wait_drained()
    assert stored(c, ids) == (len(ids), len(ids))
    again = c.fvctl("spool-replay", c.base / "spool")
    assert again.stdout.strip() == "0"


def test_full_spool_refuses_with_503_and_recovers(world, redis_restored):
    """Redis down and the spool full: submissions get 503 (never a 202 that is not on disk) and
    /readyz answers 503 with queue: down; when Redis returns, the spool drains and every
    submission that got a 202 is stored."""
    c = world.cluster
    # Big answers fill the spool: the world's form checks `household` against a pattern, which
    # takes answers of at most 4096 bytes (common/fv_form.h); this form has none.
    form = copy.deepcopy(DEFINITION)
    del form["questions"][0]["constraint"]
    _, dep = make_survey(world.admin, world.org_id, [world.enum_id], definition=form, name="Spool filler")
    port = free_port()
    fe = c.start_frontend(name="frontend-tiny-spool", FV_LISTEN_PORT=port, FV_SPOOL_MAX_MB=1,
                          FV_PROCESSES=1)
    import requests
    s = hook_session(requests.Session())
    s.trust_env = False
    s.verify = str(c.cert)
    s.headers["Authorization"] = f"Bearer {world.enum_key}"
    url = f"https://127.0.0.1:{port}"
    try:
        assert s.post(f"{url}/v1/deployments/{dep['id']}/responses",
                      json={"data": good_data()}, timeout=30).status_code == 202  # warm the caches
        kill_redis(c)
        accepted, refused = [], 0
        big = "x" * 60000  # 1 MiB of spool holds about 17 of these
        for i in range(40):
            rid = new_id()
            data = dict(good_data(i), household="House " + big)
            r = s.post(f"{url}/v1/deployments/{dep['id']}/responses",
                       json={"id": rid, "data": data}, timeout=30)
            assert r.status_code in (202, 503), r.text
            if r.status_code == 202:
                accepted.append(rid)
            else:
                refused += 1
                assert r.headers.get("Retry-After")
        assert 5 < len(accepted) < 40 and refused > 0, (len(accepted), refused)
        ready = s.get(f"{url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["queue"] == "down", ready.text
        restart_redis(c)
        wait_until(lambda: s.get(f"{url}/readyz", timeout=10).json().get("status") == "ready", 60,
                   what="the tiny spool to drain")
        wait_until(lambda: stored(c, accepted)[0] == len(accepted), 60, what="every accepted submission stored")
        assert s.post(f"{url}/v1/deployments/{dep['id']}/responses",
                      json={"data": good_data()}, timeout=30).status_code == 202
    finally:
        s.close()
        assert fe.stop(signal.SIGTERM, timeout=30) == 0
