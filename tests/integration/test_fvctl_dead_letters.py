"""fvctl dead-letters and fvctl requeue: an operator sees what the workers gave up on (with the
error, never the answers unless asked), and can send an entry back to the workers after fixing
the cause, without losing or duplicating it."""
import json
import time
import uuid

from conftest import good_data
from fvharness import new_id, wait_until

EXTRAS = ("error", "stream_id", "deliveries")


def dead_letters(c, *args):
    """fvctl dead-letters --json [args]: the parsed lines."""
    r = c.fvctl("dead-letters", "--json", "--limit", "0", *args)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def entry_fields(flat):
    return dict(zip(flat[::2], flat[1::2]))


def dead_ids_for(c, submission_id):
    return [eid for eid, f in c.redis_cli("XRANGE", c.DEAD, "-", "+") or []
            if entry_fields(f).get("id") == submission_id]


def rows_for(c, rid):
    return c.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0]


def move_to_dead(c, stream_id, error, deliveries=4):
    """Does by hand what the worker does to an entry it gives up on (wk_stream_dead_letter): its
    fields plus error, stream_id and deliveries on the dead-letter stream, gone from the main
    one. Returns the dead-letter entry id."""
    entries = c.redis_cli("XRANGE", c.STREAM, stream_id, stream_id)
    assert len(entries) == 1, entries
    fields = entries[0][1]
    c.redis_cli("MULTI")
    c.redis_cli("XADD", c.DEAD, "*", *fields, "error", error, "stream_id", stream_id,
                "deliveries", deliveries)
    c.redis_cli("XDEL", c.STREAM, stream_id)
    dead_id, deleted = c.redis_cli("EXEC")
    assert deleted == 1
    return dead_id


def test_requeue_stores_exactly_once(world):
    """A good submission that (as if PostgreSQL had refused it for a while) sits in fv:dead is
    listed with its error but without its answers, requeued by id, and then written once; a
    second requeue of the same id is refused; requeuing a copy of an already stored submission
    does not duplicate it."""
    c = world.cluster
    c.wait_drained()
    c.stop_all_workers()
    marker = "Marker " + uuid.uuid4().hex[:12]
    rid = new_id()
    try:
        data = dict(good_data(), household=marker)
        r = world.submit(data, id=rid)
        assert r.status_code == 202, r.text
        entries = c.redis_cli("XRANGE", c.STREAM, "-", "+")
        mine = [eid for eid, f in entries if entry_fields(f).get("id") == rid]
        assert len(mine) == 1, entries
        stream_id = mine[0]
        error = "simulated: could not write batch: server closed the connection unexpectedly"
        dead_id = move_to_dead(c, stream_id, error, deliveries=4)
        assert c.redis_cli("XLEN", c.STREAM) == 0

        # The JSON listing: every field an operator needs, and no answers.
        listed = [d for d in dead_letters(c) if d["dead_id"] == dead_id]
        assert len(listed) == 1, dead_letters(c)
        d = listed[0]
        assert d["id"] == rid
        assert d["deployment_id"] == world.deployment_id
        assert d["survey_id"] == world.survey_id
        assert d["submitted_by"] == world.enum_id
        assert d["error"] == error
        assert d["deliveries"] == 4
        assert d["stream_id"] == stream_id
        assert d["dead_at_ms"] == int(dead_id.split("-")[0])
        assert abs(d["dead_at_ms"] / 1000 - time.time()) < 600
        assert "data" not in d and "location" not in d

        # The table: readable, with the error, and no answers either.
        table = c.fvctl("dead-letters").stdout
        assert "DEAD-LETTER ID" in table.splitlines()[0]
        row = [line for line in table.splitlines() if line.startswith(dead_id)]
        assert len(row) == 1, table
        assert rid in row[0] and world.deployment_id in row[0] and error in row[0]
        assert stream_id in row[0]
        assert marker not in table

        # Only --show-data shows the answers.
        assert marker in c.fvctl("dead-letters", "--show-data").stdout
        shown = [x for x in dead_letters(c, "--show-data") if x["dead_id"] == dead_id]
        assert json.loads(shown[0]["data"])["household"] == marker

        # Requeue: back on the submissions stream with the original fields only.
        r = c.fvctl("requeue", dead_id)
        assert dead_id in r.stdout and rid in r.stdout, r.stdout
        assert dead_ids_for(c, rid) == []
        back = c.redis_cli("XRANGE", c.STREAM, "-", "+")
        assert len(back) == 1
        new_id_, fields = back[0]
        assert new_id_ != stream_id
        assert not any(k in EXTRAS for k in fields[::2]), fields
        assert fields == c_original_fields(entries, stream_id)

        # The same id again: gone, a clear error, exit 1, nothing added.
        r = c.fvctl("requeue", dead_id, check=False)
        assert r.returncode == 1
        assert "no dead letter" in r.stderr and dead_id in r.stderr, r.stderr
        assert c.redis_cli("XLEN", c.STREAM) == 1
        r = c.fvctl("requeue", "not-an-id", check=False)
        assert r.returncode == 1, r.stderr
    finally:
        c.start_default_workers()

    body = world.wait_readable(rid, timeout=60)
    assert body["data"]["household"] == marker
    c.wait_drained()
    assert rows_for(c, rid) == 1

    # A copy of an already stored submission dead-lettered and requeued: still one row.
    c.stop_all_workers()
    try:
        r = world.submit(dict(good_data(), household=marker), id=rid)  # same id: same answer
        assert r.status_code == 202, r.text
        entries = c.redis_cli("XRANGE", c.STREAM, "-", "+")
        if entries:  # the front end may have answered from its idempotency record without an XADD
            again = move_to_dead(c, entries[0][0], "simulated again", deliveries=5)
            c.fvctl("requeue", again)
            assert dead_ids_for(c, rid) == []
    finally:
        c.start_default_workers()
    c.wait_drained()
    assert rows_for(c, rid) == 1


def c_original_fields(entries, stream_id):
    return next(f for eid, f in entries if eid == stream_id)


def test_poison_entry_listed_and_requeue_all(world):
    """An entry PostgreSQL keeps refusing (its survey and deployment do not exist) reaches fv:dead
    through a worker with max_deliveries 2, with the database's error; requeue --all sends it
    back, and the worker dead-letters it again rather than dropping it."""
    c = world.cluster
    c.wait_drained()
    c.stop_all_workers()
    w = None
    try:
        bad_id = new_id()
        c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", bad_id, "survey_id", new_id(),
                    "survey_version", "1", "deployment_id", new_id(), "submitted_by", new_id(),
                    "received_at", str(int(time.time() * 1000)), "data", json.dumps(good_data()),
                    "location", "", "collected_at", "", "verified", "1")
        w = c.start_worker("dl-test", FV_MAX_DELIVERIES=2, FV_CLAIM_IDLE_MS=500, FV_BLOCK_MS=100)
        wait_until(lambda: dead_ids_for(c, bad_id), 60, what="the unwritable entry in fv:dead")
        c.wait_drained()
        listed = [d for d in dead_letters(c) if d["id"] == bad_id]
        assert len(listed) == 1, listed
        d = listed[0]
        assert d["error"], d
        assert "violates foreign key" in d["error"] or "survey" in d["error"], d["error"]
        assert d["deliveries"] >= 2
        assert "data" not in d

        # requeue --all with the worker stopped: everything moves back, fv:dead empties.
        c.stop_worker(w)
        w = None
        before = c.redis_cli("XLEN", c.DEAD)
        assert before >= 1
        r = c.fvctl("requeue", "--all")
        assert f"{before} requeued" in r.stderr, r.stderr
        assert c.redis_cli("XLEN", c.DEAD) == 0
        assert c.redis_cli("XLEN", c.STREAM) == before
        assert bad_id in r.stdout

        # It still cannot be written: it comes back to fv:dead (a new entry), never dropped.
        w = c.start_worker("dl-test-2", FV_MAX_DELIVERIES=2, FV_CLAIM_IDLE_MS=500, FV_BLOCK_MS=100)
        wait_until(lambda: dead_ids_for(c, bad_id), 60, what="the entry back in fv:dead")
        c.wait_drained()
        assert c.redis_cli("XLEN", c.DEAD) <= before  # other tests' poison entries come back too
        assert rows_for(c, bad_id) == 0
        r = c.fvctl("requeue", "--all", "extra", check=False)
        assert r.returncode == 2
    finally:
        if w is not None:
            c.stop_worker(w)
        c.start_default_workers()
