"""PostgreSQL down (stopped with -m immediate), refusing (the database refuses connections) or
hung (every postgres process SIGSTOPped):
submissions from known users keep getting 202, /readyz says degraded with db: down, reads get
503 with Retry-After, workers acknowledge nothing; when PostgreSQL is back, everything queued is
written once and /readyz returns to ready by itself."""
import os
import signal

import pytest
import requests

from conftest import good_data
from faults import pg_accept, pg_hang, pg_refuse, pg_resume, pg_start, pg_stop_immediate
from fvharness import free_port, new_id, wait_until
from openapi_check import hook_session


class Instance:
    """A front end of our own with a short PostgreSQL deadline, so a hung server is noticed fast."""

    def __init__(self, c, proc, port):
        self.c, self.proc, self.port = c, proc, port
        self.s = hook_session(requests.Session())
        self.s.trust_env = False
        self.s.verify = str(c.cert)

    def get(self, path, key=None, **kw):
        h = {"Authorization": f"Bearer {key}"} if key else {}
        return self.s.get(f"https://127.0.0.1:{self.port}{path}", headers=h, timeout=30, **kw)

    def submit(self, world, rid, i=0):
        return self.s.post(f"https://127.0.0.1:{self.port}/v1/deployments/{world.deployment_id}/responses",
                           json={"id": rid, "data": good_data(i)},
                           headers={"Authorization": f"Bearer {world.enum_key}"}, timeout=30)

    def readyz(self):
        return self.get("/readyz").json()


@pytest.fixture()
def instance(world):
    c = world.cluster
    port = free_port()
    p = c.start_frontend(name="frontend-degraded", FV_LISTEN_PORT=port, FV_PG_TIMEOUT_MS=1000)
    inst = Instance(c, p, port)
    # Warm this instance's caches (and the shared ones in Redis) the normal way.
    assert inst.submit(world, new_id()).status_code == 202
    wait_until(lambda: inst.readyz()["status"] == "ready", 30, what="ready")
    yield inst
    inst.s.close()
    assert p.stop(signal.SIGTERM, timeout=30) == 0


def stored(c, ids):
    return c.psql("SELECT count(*), count(DISTINCT id) FROM responses WHERE id = ANY(%s::uuid[])", ids)[0]


def check_degraded_and_recovers(world, inst, restore):
    c = world.cluster
    wait_until(lambda: inst.readyz().get("db") == "down", 60, what="/readyz db: down")
    body = inst.readyz()
    assert body["status"] == "degraded" and body["queue"] == "up", body
    ids = [new_id() for _ in range(30)]
    for i, rid in enumerate(ids):
        r = inst.submit(world, rid, i)
        assert r.status_code == 202, r.text
    r = inst.get(f"/v1/responses/{ids[0]}", key=world.enum_key)
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After"), r.headers
    assert r.json()["error"]["code"].startswith("db_")
    # Workers cannot write, so they acknowledge nothing: the entries stay in the stream.
    assert c.redis_cli("XLEN", c.STREAM) >= len(ids)
    restore()
    wait_until(lambda: stored(c, ids)[0] == len(ids), 120, what="everything queued to be written")
    c.wait_drained(120)
    assert stored(c, ids) == (len(ids), len(ids))
    wait_until(lambda: inst.readyz()["status"] == "ready", 60, what="/readyz back to ready by itself")
    assert inst.get(f"/v1/responses/{ids[0]}", key=world.enum_key).status_code == 200


def test_postgres_stopped(world, instance):
    c = world.cluster
    pg_stop_immediate(c)
    try:
        check_degraded_and_recovers(world, instance, lambda: pg_start(c))
    finally:
        pg_start(c)


def test_postgres_refusing(world, instance):
    c = world.cluster
    pg_refuse(c)
    restored = []

    def restore():
        pg_accept(c)
        restored.append(True)
    try:
        check_degraded_and_recovers(world, instance, restore)
    finally:
        if not restored:
            pg_accept(c)


def test_postgres_hung(world, instance):
    c = world.cluster
    pids = pg_hang(c)
    resumed = []

    def resume():
        pg_resume(pids)
        resumed.append(True)
    try:
        check_degraded_and_recovers(world, instance, resume)
    finally:
        if not resumed:
            resume()


def test_new_child_recognises_keys_and_deployments_through_redis(world, instance):
    """With PostgreSQL down, a front end that never saw this key or deployment (an instance
    started after the lookups were made elsewhere) still accepts: the lookups are shared in Redis."""
    c = world.cluster
    port = free_port()
    fresh = c.start_frontend(name="frontend-cold", FV_LISTEN_PORT=port, FV_PG_TIMEOUT_MS=1000)
    cold = Instance(c, fresh, port)
    try:
        pg_stop_immediate(c)
        try:
            wait_until(lambda: cold.readyz().get("db") == "down", 60, what="db: down on the new instance")
            rid = new_id()
            r = cold.submit(world, rid)
            assert r.status_code == 202, r.text
            # A key nobody has used is not accepted blind: no PostgreSQL, no entry in Redis.
            unknown = cold.s.post(f"https://127.0.0.1:{port}/v1/deployments/{world.deployment_id}/responses",
                                  json={"data": good_data()}, timeout=30,
                                  headers={"Authorization": "Bearer fvk_" + "A" * 43})
            assert unknown.status_code in (401, 503), unknown.text
        finally:
            pg_start(c)
        wait_until(lambda: stored(c, [rid])[0] == 1, 120, what="the submission written after recovery")
    finally:
        cold.s.close()
        assert fresh.stop(signal.SIGTERM, timeout=30) == 0


def test_unverified_submissions_are_checked_by_the_worker(world, instance):
    """DESIGN section 2: with PostgreSQL down and no cache knowing whether the caller may submit,
    the submission is accepted marked unverified; the worker checks permission and answers
    before writing, and sends a refused one to the quarantine table with an audit entry, never
    into responses."""
    from conftest import make_survey
    c = world.cluster
    e2_key = c.create_user(f"e2-{new_id()[:8]}@example.org", "Second Enumerator")
    e2 = c.api(e2_key)
    e2_id = e2.get("/v1/me").json()["id"]
    stranger_key = c.create_user(f"s-{new_id()[:8]}@example.org", "Stranger")
    _, known_dep = make_survey(world.admin, world.org_id, [world.enum_id, e2_id], name="Known")
    _, cold_dep = make_survey(world.admin, world.org_id, [e2_id], name="Never looked up")

    def post(key, dep, data, rid):
        return instance.s.post(f"https://127.0.0.1:{instance.port}/v1/deployments/{dep}/responses",
                               json={"id": rid, "data": data}, timeout=30,
                               headers={"Authorization": f"Bearer {key}"})
    # Warm what a front end would know: both keys, and the known deployment's form (through the
    # first enumerator). Nobody has looked up e2's permission nor the cold deployment.
    # (GET /v1/me reads PostgreSQL: polled, as this child's pool may still be connecting)
    for key in (e2_key, stranger_key):
        wait_until(lambda: instance.get("/v1/me", key=key).status_code == 200, 30, what="the key known here")
    assert post(world.enum_key, known_dep["id"], good_data(), new_id()).status_code == 202

    ids = {k: new_id() for k in ("e2_known", "stranger", "e2_cold_ok", "e2_cold_bad", "nowhere")}
    pg_stop_immediate(c)
    try:
        wait_until(lambda: instance.readyz().get("db") == "down", 60, what="db: down")
        assert post(e2_key, known_dep["id"], good_data(1), ids["e2_known"]).status_code == 202
        assert post(stranger_key, known_dep["id"], good_data(2), ids["stranger"]).status_code == 202
        assert post(e2_key, cold_dep["id"], good_data(3), ids["e2_cold_ok"]).status_code == 202
        bad = dict(good_data(4), members="many")  # unknown form here: only the worker can tell
        assert post(e2_key, cold_dep["id"], bad, ids["e2_cold_bad"]).status_code == 202
        assert post(e2_key, new_id(), good_data(5), ids["nowhere"]).status_code == 202
        # The form of the known deployment is cached: invalid answers are refused at once.
        r = post(stranger_key, known_dep["id"], dict(good_data(), members="x"), new_id())
        assert r.status_code == 422, r.text
    finally:
        pg_start(c)
    c.wait_drained(120)

    def stored_ids():
        return {r[0] for r in c.psql("SELECT id::text FROM responses WHERE id = ANY(%s::uuid[])",
                                     list(ids.values()))}

    def quarantined():
        return dict(c.psql("SELECT id::text, reason FROM quarantine WHERE id = ANY(%s::uuid[])",
                           list(ids.values())))
    wait_until(lambda: len(stored_ids()) + len(quarantined()) == len(ids), 60,
               what="every unverified submission written or quarantined")
    assert stored_ids() == {ids["e2_known"], ids["e2_cold_ok"]}
    q = quarantined()
    assert set(q) == {ids["stranger"], ids["e2_cold_bad"], ids["nowhere"]}
    assert "not an enumerator" in q[ids["stranger"]]
    assert "members" in q[ids["e2_cold_bad"]]
    assert "no such deployment" in q[ids["nowhere"]]
    # sealed by the worker before it wrote them (migration 027: no answer in clear, even for a
    # moment), except the one naming no deployment (no organisation, no key: kept as sent)
    sealed = dict(c.psql("SELECT id::text, answers_kv IS NOT NULL AND data->>'household' LIKE 'RlZEMQ%%' "
                         "FROM quarantine WHERE id = ANY(%s::uuid[])", list(q)))
    assert sealed == {ids["stranger"]: True, ids["e2_cold_bad"]: True, ids["nowhere"]: False}, sealed
    audited = c.psql("SELECT target_id FROM audit WHERE action = 'submission.quarantined' "
                     "AND target_id = ANY(%s)", list(q))
    assert {a[0] for a in audited} == set(q)
    # entries of submitters with a tie to the organisation (e2 has a role in its deployments)
    # are in its audit log; the stranger, who has none, left only a content-free entry there
    # (test_throttle_abuse.py has the whole of that rule)
    in_org = c.psql("SELECT target_id FROM audit WHERE action = 'submission.quarantined' "
                    "AND target_id = ANY(%s) AND org_id = %s", list(q), world.org_id)
    assert {a[0] for a in in_org} == {ids["e2_cold_bad"]}
    assert c.psql("SELECT org_visible FROM quarantine WHERE id = %s", ids["stranger"]) == [(False,)]
    assert c.psql("SELECT count(*) FROM audit WHERE action = 'submission.refused_no_tie' AND org_id = %s "
                  "AND target_id = %s AND actor IS NULL", world.org_id, known_dep["id"])[0][0] >= 1
    # The organisation's admins see its quarantine through the API (the entry naming no
    # deployment belongs to no organisation, the stranger's is the operator's); nobody else does.
    # (the session's front end may still be reconnecting to the restarted PostgreSQL: 503 until then)
    def answered(api, **kw):
        """The reply once it is not 503 (a Response of a 4xx is falsy: return it in a list)."""
        r = api.get(f"/v1/orgs/{world.org_id}/quarantine", **kw)
        return [r] if r.status_code != 503 else None
    r = wait_until(lambda: answered(world.admin, params={"limit": 500}), 60,
                   what="the quarantine list once PostgreSQL is back")[0]
    assert r.status_code == 200, r.text
    listed = {item["id"]: item for item in r.json()["items"]}
    assert ids["e2_cold_bad"] in listed
    assert ids["nowhere"] not in listed and ids["stranger"] not in listed
    assert "members" in listed[ids["e2_cold_bad"]]["reason"]
    assert listed[ids["e2_cold_bad"]]["data"]["members"] == "many"
    # (e2, named as a user principal, is a member of the org: rights need a membership)
    for outsider, status in ((c.api(stranger_key), 404), (e2, 403)):
        r = wait_until(lambda: answered(outsider), 60, what="an answer")[0]
        assert r.status_code == status, r.text


def test_long_hang_dead_letters_nothing(world):
    """PostgreSQL hung for several claim periods while four workers hold or could take batches:
    nothing good is dead-lettered and everything is stored once PostgreSQL answers again. A worker
    keeps its claim fresh while it waits on a statement (wk_store_exec) and while it connects
    (wk_store_connect); with the blocking connect of before, this test dead-letters good entries.)"""
    import time
    c = world.cluster
    c.wait_drained()
    c.stop_all_workers()
    dead_before = c.redis_cli("XLEN", c.DEAD)
    ids = [new_id() for _ in range(60)]
    workers = []
    pids = None
    # io_timeout 3 s: a connection attempt to the hung server lasts three claim periods, so a
    # worker that stopped refreshing its claim while connecting would lose its batch to the others
    # The jobs poll and the export sweep are put an hour apart: a job poll that met the hang first
    # (it runs between batches) blocked A there instead of in its INSERT, and A, finding
    # PostgreSQL gone, took no entries (seen in the sanitizer pass under load).
    env = dict(FV_CLAIM_IDLE_MS=1000, FV_MAX_DELIVERIES=2, FV_BLOCK_MS=100, FV_IO_TIMEOUT_MS=3000,
               FV_PG_RETRY_MAX_MS=300, FV_JOBS_POLL_MS=3600000, FV_EXPORT_SWEEP_MS=3600000)
    try:
        # Worker A holds an open PostgreSQL connection (it wrote something) when the server
        # hangs; the entries it takes next block in its INSERT on that connection. B, C and D,
        # idle, would take them over one after the other as soon as A's claim is a second old
        # (a delivery each; max_deliveries 2, so the third dead-letters good entries).
        a = c.start_worker("hang-a", **env)
        workers.append(a)
        first = new_id()
        assert world.submit(good_data(), id=first).status_code == 202
        wait_until(lambda: stored(c, [first])[0] == 1, 30, what="worker A to write through its connection")
        pids = pg_hang(c)
        for i, rid in enumerate(ids):
            assert world.submit(good_data(i), id=rid).status_code == 202
        wait_until(lambda: c.pending_by_consumer().get("hang-a", 0) > 0, 30,
                   what="A to take entries and block in its INSERT")
        for name in ("hang-b", "hang-c", "hang-d"):
            workers.append(c.start_worker(name, **env))
        time.sleep(6)  # the fault's length: six claim periods, not a synchronisation
    finally:
        if pids:
            pg_resume(pids)
    try:
        wait_until(lambda: stored(c, ids)[0] == len(ids), 120, what="everything stored after the hang")
        c.wait_drained(120)
        assert stored(c, ids) == (len(ids), len(ids))
        assert c.redis_cli("XLEN", c.DEAD) == dead_before, "good entries were dead-lettered during the hang"
    finally:
        for w in workers:
            c.stop_worker(w)
        c.start_default_workers()
