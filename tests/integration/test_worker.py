"""The worker's promises: a crash between taking entries and acknowledging them loses nothing and
duplicates nothing; entries that cannot be written end in the dead-letter stream, never dropped,
and do not hold up the others."""
import json
import time
import uuid

from conftest import good_data
from fvharness import new_id, wait_until


def waiting_on_responses_lock(c):
    return c.psql("SELECT count(*) FROM pg_locks WHERE relation = 'responses'::regclass "
                  "AND NOT granted")[0][0] > 0


def test_worker_sigterm_exits_0(world):
    c = world.cluster
    p = c.start_worker("short-lived")
    assert c.stop_worker(p) == 0
    assert not p.leftovers


def test_worker_killed_mid_batch_loses_and_duplicates_nothing(world):
    c = world.cluster
    n = 200
    c.wait_drained()
    c.stop_all_workers()
    dead_before = c.redis_cli("XLEN", c.DEAD)
    locker = b = None
    try:
        # With no worker running the submissions wait in the stream.
        ids = [new_id() for _ in range(n)]
        for i, rid in enumerate(ids):
            r = world.submit(good_data(i), id=rid)
            assert r.status_code == 202, r.text
        assert c.redis_cli("XLEN", c.STREAM) == n
        # Hold the responses table so that A's INSERT waits, with A's entries taken and unacked.
        locker = c.pg.connect(autocommit=False)
        locker.cursor().execute("LOCK TABLE responses IN ACCESS EXCLUSIVE MODE")
        a = c.start_worker("crash-a", FV_BLOCK_MS=100, FV_CLAIM_IDLE_MS=600000)
        wait_until(lambda: c.pending_by_consumer().get(a.consumer, 0) > 0 and waiting_on_responses_lock(c),
                   60, what="worker A to take entries and block in its INSERT")
        taken_by_a = c.pending_by_consumer()[a.consumer]
        assert taken_by_a > 1, "A should hold a whole batch (batch_size 50, 200 waiting)"
        c.kill_worker(a)
        locker.rollback()
        locker.close()
        locker = None
        assert c.pending_by_consumer().get(a.consumer, 0) == taken_by_a  # still A's, unacked

        b = c.start_worker("crash-b", FV_CLAIM_IDLE_MS=1000, FV_BLOCK_MS=100)

        def all_written():
            return c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", ids)[0][0] == n
        wait_until(all_written, 120, what=f"all {n} submissions in responses")
        c.wait_drained()
        rows = c.psql("SELECT id::text FROM responses WHERE id = ANY(%s::uuid[])", ids)
        assert len(rows) == n
        assert sorted(r[0] for r in rows) == sorted(ids)
        assert sum(c.pending_by_consumer().values()) == 0
        assert c.redis_cli("XLEN", c.DEAD) == dead_before, "a retried entry was dead-lettered"
    finally:
        if locker is not None:
            locker.rollback()
            locker.close()
        if b is not None:
            c.stop_worker(b)
        c.start_default_workers()


def dead_entries_with(c, marker):
    out = []
    for _eid, fields in c.redis_cli("XRANGE", c.DEAD, "-", "+") or []:
        d = dict(zip(fields[::2], fields[1::2]))
        if any(marker in v for v in d.values()):
            out.append(d)
    return out


def test_malformed_envelope_is_dead_lettered(world):
    c = world.cluster
    marker = "poison-" + uuid.uuid4().hex
    c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", marker, "data", "{not json")
    found = wait_until(lambda: dead_entries_with(c, marker), 60, what="the poison entry in fv:dead")
    assert len(found) == 1
    assert any("error" in k for k in found[0]), f"no error recorded with the dead letter: {found[0]}"
    c.wait_drained()
    assert c.psql("SELECT count(*) FROM responses WHERE data::text LIKE %s", f"%{marker}%")[0][0] == 0


def test_unwritable_entry_does_not_block_others(world):
    """A well-formed envelope whose survey does not exist fails its INSERT (foreign key): it must
    end in fv:dead after max_deliveries, and the good submission next to it must be written."""
    c = world.cluster
    bad_id = new_id()
    c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", bad_id, "survey_id", new_id(),
                "survey_version", "1", "deployment_id", new_id(), "submitted_by", new_id(),
                "received_at", str(int(time.time() * 1000)), "data", json.dumps(good_data()),
                "location", "", "collected_at", "", "verified", "1")
    good = new_id()
    assert world.submit(id=good).status_code == 202
    world.wait_readable(good, timeout=90)
    found = wait_until(lambda: dead_entries_with(c, bad_id), 90, what="the unwritable entry in fv:dead")
    assert len(found) == 1
    c.wait_drained()
    assert c.psql("SELECT count(*) FROM responses WHERE id = %s", bad_id)[0][0] == 0
