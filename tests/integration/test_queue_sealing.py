"""Queue entries are sealed (issue 12 "At rest", common/fv_qseal.h): what a front end puts into
Redis and into its spool holds no answer, location, instance XML or attachment in clear, so the
Redis AOF and the spool files carry no marker; the worker opens the entries and stores them
readable; a tampered entry, another entry's sealed payload, or a worker with the wrong key file
dead-letters the entry with a reason naming it, stores nothing and keeps running; an entry sealed
under a previous key opens after a rotation; unsealed entries of an older front end are taken
while queue_accept_unsealed is on and dead-lettered when it is off."""
import base64
import json
import os
import pathlib
import re
import uuid

import pytest

from conftest import good_data, make_survey
from faults import kill_redis, readyz, restart_redis
from fvharness import files_under, free_port, grep, new_id, wait_until

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk"


def fields_of(flat):
    return dict(zip(flat[::2], flat[1::2]))


def entry_of(c, rid, stream=None):
    """(stream id, fields) of the entry of submission rid on stream (the submissions stream)."""
    for eid, flat in c.redis_cli("XRANGE", stream or c.STREAM, "-", "+") or []:
        f = fields_of(flat)
        if f.get("id") == rid:
            return eid, flat
    return None


def dead_with(c, rid):
    out = []
    for eid, flat in c.redis_cli("XRANGE", c.DEAD, "-", "+") or []:
        f = fields_of(flat)
        if f.get("id") == rid:
            out.append((eid, f))
    return out


def rows(c, rid):
    return c.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0]


def key_file(c, *keys):
    """A key file (fv_keys.h) holding keys (hex), the first the current one."""
    p = c.base / "keys" / f"k-{uuid.uuid4().hex[:8]}.key"
    p.write_text("".join(k + "\n" for k in keys))
    os.chmod(p, 0o600)
    return p


@pytest.fixture()
def stopped_workers(world):
    """The default workers stopped for the test, started again after it."""
    c = world.cluster
    c.wait_drained()
    c.stop_all_workers()
    yield c
    c.stop_all_workers()
    c.start_default_workers()


def submit_openrosa(api, dep, xml, attachments=()):
    files = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
    files += [(name, (name, data, ctype)) for name, data, ctype in attachments]
    return api.post(f"/v1/openrosa/deployments/{dep['id']}/submission", files=files,
                    headers={"X-OpenRosa-Version": "1.0"})


def test_aof_and_spool_hold_no_marker(world):
    c = world.cluster
    tag = uuid.uuid4().hex[:12]
    marker = f"QSEALMARK{tag}"
    lat = 12.0 + int(tag[:6], 16) / 1e8  # a location no other test sends
    needles = [marker.encode(), repr(lat).encode()]
    ids = []
    for i in range(5):
        rid = new_id()
        r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses", json={
            "id": rid, "data": dict(good_data(i), household=f"{marker} {i}"),
            "location": {"lat": lat, "lon": 3.25, "accuracy": 4.0}})
        assert r.status_code == 202, r.text
        ids.append(rid)
    or_ids = []
    if (FIXTURES / "forms").is_dir():
        # OpenRosa: the instance XML and an attachment travel in the entry too.
        xml = (FIXTURES / "forms" / "binaryType.xml").read_text(encoding="utf-8")
        s = world.admin.post("/v1/surveys", json={"org_id": world.org_id, "name": f"qseal {tag}", "xform": xml})
        assert s.status_code == 201, s.text
        dep = world.admin.post(f"/v1/surveys/{s.json()['id']}/deployments", json={
            "name": "qseal", "roles": {"enumerators": [{"type": "user", "id": world.enum_id}]}})
        assert dep.status_code == 201, dep.text
        dep = dep.json()
        attachment = (f"ATTACH{marker}" * 40).encode()
        needles.append(base64.b64encode(attachment)[:48])
        inst = (f'<data id="binaryType"><meta><instanceID>uuid:{new_id()}</instanceID></meta>'
                f'<file1>photo.jpg</file1><file2>{marker}.mp4</file2></data>')
        # (file2's file is not sent: the marker is in the XML only, not in any URL the logs show)
        r = submit_openrosa(world.enum, dep, inst.encode(), [("photo.jpg", attachment, "image/jpeg")])
        assert r.status_code == 201, r.text[:300]
        or_ids.append(inst.split("uuid:")[1].split("<")[0].lower())
        needles.append(b"<data id=\"binaryType\"><meta><instanceID>uuid:" + or_ids[0].encode())

    # Redis down: these go to the spool, which must be sealed as well.
    kill_redis(c)
    spooled = []
    try:
        for i in range(5):
            rid = new_id()
            r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses", json={
                "id": rid, "data": dict(good_data(i), household=f"{marker} spool {i}"),
                "location": {"lat": lat, "lon": 3.25}})
            assert r.status_code == 202, r.text
            spooled.append(rid)
        spool_files = list((c.base / "spool").glob("spool-*.log"))
        assert sum(p.stat().st_size for p in spool_files) > 8 * len(spool_files) + 500
        spool_bytes = b"".join(p.read_bytes() for p in spool_files)
        assert spooled[0].encode() in spool_bytes or any(r.encode() in spool_bytes for r in spooled)
        assert b"sealed" in spool_bytes and b"q1." in spool_bytes
        assert grep(spool_files, needles) == []
    finally:
        restart_redis(c)
    wait_until(lambda: readyz(c).json().get("spool_pending") == 0, 60, what="the spool replayed")

    for i, rid in enumerate(ids):
        got = world.wait_readable(rid)
        assert got["data"]["household"] == f"{marker} {i}"
        assert got["location"]["lat"] == pytest.approx(lat) and got["location"]["lon"] == 3.25
    for i, rid in enumerate(spooled):
        assert world.wait_readable(rid)["data"]["household"] == f"{marker} spool {i}"
    for rid in or_ids:
        got = world.wait_readable(rid, api=world.admin)
        assert got["data"]["file2"] == f"{marker}.mp4"
        r = world.admin.get(f"/v1/responses/{rid}/attachments/photo.jpg")
        assert r.status_code == 200 and r.content == attachment
        assert marker.encode() in world.admin.get(f"/v1/responses/{rid}/xml").content
    c.wait_drained()

    # The AOF saw every XADD (appendfsync always); none carries a marker, all are sealed.
    aof = [p for p in files_under(c.base / "redis") if "appendonly" in p.name or p.parent.name.startswith("appendonly")]
    assert aof, files_under(c.base / "redis")
    aof_bytes = b"".join(p.read_bytes() for p in aof)
    assert all(r.encode() in aof_bytes for r in ids + spooled), "the AOF does not hold the entries"
    assert b"sealed" in aof_bytes
    assert grep(aof, needles) == []
    # Nor do the programs' logs.
    assert c.scan_logs(re.compile(re.escape(marker))) == []


def tampered(sealed):
    """sealed with one base64 character of the ciphertext changed."""
    i = len(sealed) // 2
    return sealed[:i] + ("A" if sealed[i] != "A" else "B") + sealed[i + 1:]


def test_tampered_and_moved_entries_dead_lettered(world, stopped_workers):
    c = stopped_workers
    marker = "QSEALTAMPER" + uuid.uuid4().hex[:10]
    a, b = new_id(), new_id()
    for rid in (a, b):
        assert world.submit(dict(good_data(), household=marker), id=rid).status_code == 202
    sid_a, flat_a = entry_of(c, a)
    sid_b, flat_b = entry_of(c, b)
    fa, fb = fields_of(flat_a), fields_of(flat_b)
    assert "data" not in fa and fa["sealed"].startswith("q1.")
    # a: one byte flipped; b: a's (authentic) sealed payload under b's id.
    fa2 = dict(fa, sealed=tampered(fa["sealed"]))
    fb2 = dict(fb, sealed=fa["sealed"])
    c.redis_cli("XDEL", c.STREAM, sid_a, sid_b)
    new_a = c.redis_cli("XADD", c.STREAM, "*", *[x for kv in fa2.items() for x in kv])
    new_b = c.redis_cli("XADD", c.STREAM, "*", *[x for kv in fb2.items() for x in kv])
    w = c.start_worker("qseal-tamper")
    for rid, sid in ((a, new_a), (b, new_b)):
        dead = wait_until(lambda: dead_with(c, rid), 60, what=f"{rid} dead-lettered")
        assert len(dead) == 1
        err = dead[0][1]["error"]
        assert sid in err and rid in err and "does not open" in err, err
        assert dead[0][1]["sealed"] != "" and "data" not in dead[0][1]
    c.wait_drained()
    assert rows(c, a) == 0 and rows(c, b) == 0
    assert w.alive()
    assert c.scan_logs(re.compile(re.escape(marker))) == []
    # The listing and --show-data: the tampered one says why it stays closed.
    out = c.fvctl("dead-letters", "--json", "--limit", "0", "--show-data").stdout
    listed = {d["id"]: d for d in map(json.loads, out.splitlines()) if d.get("id") in (a, b)}
    assert "does not open" in listed[a]["sealed_error"] and listed[a].get("data") is None
    for dead_id, _f in dead_with(c, a) + dead_with(c, b):
        c.redis_cli("XDEL", c.DEAD, dead_id)


def test_wrong_key_worker_dead_letters_then_requeue_opens(world, stopped_workers):
    c = stopped_workers
    marker = "QSEALWRONGKEY" + uuid.uuid4().hex[:10]
    rid = new_id()
    assert world.submit(dict(good_data(), household=marker), id=rid).status_code == 202
    sealed = fields_of(entry_of(c, rid)[1])["sealed"]
    wrong = key_file(c, os.urandom(32).hex())
    w = c.start_worker("qseal-wrongkey", FV_KEY_FILE=str(wrong))
    dead = wait_until(lambda: dead_with(c, rid), 60, what="the entry dead-lettered by the wrong key")
    err = dead[0][1]["error"]
    assert rid in err and "not in the key file" in err, err
    assert dead[0][1]["sealed"] == sealed  # kept sealed, as it came
    assert rows(c, rid) == 0 and w.alive()
    # --show-data with the right key (fvctl's key_file) opens it.
    out = c.fvctl("dead-letters", "--json", "--limit", "0", "--show-data").stdout
    mine = [d for d in map(json.loads, out.splitlines()) if d.get("id") == rid]
    assert json.loads(mine[0]["data"])["household"] == marker
    c.stop_worker(w)
    # Requeued as it is (still sealed), a worker with the right key stores it.
    r = c.fvctl("requeue", dead[0][0])
    assert rid in r.stdout
    assert fields_of(entry_of(c, rid)[1])["sealed"] == sealed
    c.start_default_workers()
    assert world.wait_readable(rid)["data"]["household"] == marker


def test_old_key_entries_open_after_rotation(world, stopped_workers):
    c = stopped_workers
    old_key = c.master_key.read_text().split()[0]
    new_key = os.urandom(32).hex()
    rotated = key_file(c, new_key, old_key)
    before = new_id()
    assert world.submit(dict(good_data(), household="before rotation"), id=before).status_code == 202
    # A front end on the rotated file seals under the new key.
    port = free_port()
    fe = c.start_frontend(name="frontend-rotated", FV_LISTEN_PORT=port, FV_KEY_FILE=str(rotated))
    try:
        import requests
        after = new_id()
        r = requests.post(f"https://127.0.0.1:{port}/v1/deployments/{world.deployment_id}/responses",
                          json={"id": after, "data": dict(good_data(), household="after rotation")},
                          headers={"Authorization": f"Bearer {world.enum_key}"}, verify=str(c.cert), timeout=30)
        assert r.status_code == 202, r.text
    finally:
        fe.stop()
    kid_before = fields_of(entry_of(c, before)[1])["sealed"].split(".")[1]
    kid_after = fields_of(entry_of(c, after)[1])["sealed"].split(".")[1]
    assert kid_before != kid_after
    # A worker on the rotated file opens both.
    w = c.start_worker("qseal-rotated", FV_KEY_FILE=str(rotated))
    assert world.wait_readable(before)["data"]["household"] == "before rotation"
    assert world.wait_readable(after)["data"]["household"] == "after rotation"
    assert w.alive()


def test_unsealed_entries_during_the_upgrade(world, stopped_workers):
    c = stopped_workers
    rid, rid2 = new_id(), new_id()
    assert world.submit(id=rid).status_code == 202
    sid, flat = entry_of(c, rid)
    f = fields_of(flat)
    c.redis_cli("XDEL", c.STREAM, sid)
    # As an older front end wrote it: data and location in clear, no sealed field.
    old = {k: v for k, v in f.items() if k != "sealed"}
    old.update(data=json.dumps(dict(good_data(), household="unsealed")), location="")
    c.redis_cli("XADD", c.STREAM, "*", *[x for kv in old.items() for x in kv])
    w = c.start_worker("qseal-transition")
    assert world.wait_readable(rid)["data"]["household"] == "unsealed"
    c.stop_worker(w)
    # With queue_accept_unsealed off it is dead-lettered, not stored.
    old.update(id=rid2)
    c.redis_cli("XADD", c.STREAM, "*", *[x for kv in old.items() for x in kv])
    w = c.start_worker("qseal-strict", FV_QUEUE_ACCEPT_UNSEALED="no")
    dead = wait_until(lambda: dead_with(c, rid2), 60, what="the unsealed entry dead-lettered")
    assert "not sealed" in dead[0][1]["error"] and rid2 in dead[0][1]["error"]
    assert rows(c, rid2) == 0 and w.alive()
    # ...while sealed entries are still stored.
    rid3 = new_id()
    assert world.submit(id=rid3).status_code == 202
    world.wait_readable(rid3)
    c.redis_cli("XDEL", c.DEAD, dead[0][0])
