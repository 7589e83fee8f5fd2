"""OpenRosa submissions in degraded mode (issue 13): PostgreSQL stopped -> 202 (durably queued in
Redis, attachments up to openrosa_degraded_max_bytes; larger 503 with Retry-After), stored once
PostgreSQL is back, attachments included; Redis stopped -> the spool, replayed when Redis returns."""
import hashlib
import pathlib
import signal

import pytest
import requests

from accesshelp import User, add_plain_member, ok
from faults import kill_redis, pg_start, pg_stop_immediate, readyz, restart_redis
from fvharness import free_port, wait_until
from openapi_check import hook_session

FIXTURES = pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "odk"
pytestmark = pytest.mark.skipif(not (FIXTURES / "forms").is_dir(), reason="no ODK fixtures")
DEGRADED_MAX = 2000


class Instance:
    def __init__(self, c, proc, port, key):
        self.c, self.proc, self.port = c, proc, port
        self.s = hook_session(requests.Session())
        self.s.trust_env = False
        self.s.verify = str(c.cert)
        self.h = {"Authorization": f"Bearer {key}", "X-OpenRosa-Version": "1.0"}

    def submit(self, dep, xml, attachments=()):
        files = [("xml_submission_file", ("submission.xml", xml, "text/xml"))]
        files += [(n, (n, d, t)) for n, d, t in attachments]
        r = self.s.post(f"https://127.0.0.1:{self.port}/v1/openrosa/deployments/{dep['id']}/submission",
                        files=files, headers=self.h, timeout=30)
        assert r.headers.get("X-OpenRosa-Version") == "1.0" and r.headers["Content-Type"].startswith("text/xml")
        return r

    def readyz(self):
        return self.s.get(f"https://127.0.0.1:{self.port}/readyz", timeout=30).json()


@pytest.fixture(scope="module")
def od(workers):
    c = workers
    owner, enum = User(c, "ord owner"), User(c, "ord enum")
    org = ok(owner.api.post("/v1/orgs", json={"name": "OpenRosa degraded org"}), 201)
    add_plain_member(c, org["id"], enum.id)
    xml = (FIXTURES / "forms/binaryType.xml").read_text()
    s = ok(owner.api.post("/v1/surveys", json={"org_id": org["id"], "name": "bin", "xform": xml}), 201)
    dep = ok(owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "bin", "roles": {"enumerators": [{"type": "user", "id": enum.id}]}}), 201)
    port = free_port()
    p = c.start_frontend(name="frontend-openrosa-degraded", FV_LISTEN_PORT=port, FV_PG_TIMEOUT_MS=1000,
                         FV_OPENROSA_DEGRADED_MAX_BYTES=DEGRADED_MAX, FV_OPENROSA_ORG_QUOTA_MB=1)
    inst = Instance(c, p, port, enum.key)

    class W:
        pass
    w = W()
    w.c, w.owner, w.enum, w.dep, w.inst = c, owner, enum, dep, inst
    # warm this instance's caches the normal way
    r = inst.submit(dep, instance("warm"), [("warm.jpg", b"warm", "image/jpeg")])
    assert r.status_code == 201, r.text
    yield w
    inst.s.close()
    assert p.stop(signal.SIGTERM, timeout=30) == 0
    owner.close()
    enum.close()


def instance(iid, f1="", f2=""):
    return (f'<data id="binaryType"><meta><instanceID>uuid:{iid_uuid(iid)}</instanceID></meta>'
            f'<file1>{f1}</file1><file2>{f2}</file2></data>').encode()


def iid_uuid(label):
    h = hashlib.sha256(label.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def stored_row(c, rid):
    return c.psql("SELECT count(*) FROM responses r JOIN response_xml x ON x.response_id = r.id AND x.sha256 = r.xml_sha256 WHERE r.id = %s", rid)[0][0]


def test_org_attachment_quota(od):
    """This instance allows the org 1 MiB of attachments: past it, 413 in the envelope."""
    c, inst = od.c, od.inst
    r = inst.submit(od.dep, instance("quota-1", "q1.bin"), [("q1.bin", b"\1" * 700000, "application/octet-stream")])
    assert r.status_code == 201, r.text
    r = inst.submit(od.dep, instance("quota-2", "q2.bin"), [("q2.bin", b"\2" * 700000, "application/octet-stream")])
    assert r.status_code == 413 and r.headers["X-Fieldvault-Error"] == "attachment_quota", r.text
    assert stored_row(c, iid_uuid("quota-2")) == 0
    # without attachments the org may still submit
    assert inst.submit(od.dep, instance("quota-3")).status_code == 201


def test_pg_down_202_then_stored_once(od):
    c, inst = od.c, od.inst
    photo = b"\x89PNG" + bytes(range(200)) * 5
    pg_stop_immediate(c)
    try:
        wait_until(lambda: inst.readyz().get("db") == "down", 60, what="/readyz db: down")
        xml = instance("pgdown", "p.png")
        r = inst.submit(od.dep, xml, [("p.png", photo, "image/png")])
        assert r.status_code == 202, r.text
        assert "queued" in r.text
        # too large to queue while the database is down: 503 with Retry-After
        big = instance("pgdown-big", "big.png")
        r = inst.submit(od.dep, big, [("big.png", b"\0" * (DEGRADED_MAX + 1), "image/png")])
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    finally:
        pg_start(c)
    rid = iid_uuid("pgdown")
    wait_until(lambda: stored_row(c, rid) == 1, 90, what="the queued OpenRosa submission stored")
    wait_until(lambda: c.psql("SELECT count(*) FROM response_attachments WHERE response_id = %s", rid)[0][0] == 1,
               30, what="its attachment stored")
    # the shared front end reconnects to PostgreSQL in its own time
    wait_until(lambda: od.owner.api.get(f"/v1/responses/{rid}/attachments/p.png").status_code == 200, 60,
               what="the attachment readable")
    assert od.owner.api.get(f"/v1/responses/{rid}/attachments/p.png").content == photo
    assert od.owner.api.get(f"/v1/responses/{rid}/xml").content == instance("pgdown", "p.png")
    assert stored_row(c, iid_uuid("pgdown-big")) == 0
    c.wait_drained()
    assert c.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0] == 1


def test_redis_down_spools_then_replays(od):
    c, inst = od.c, od.inst
    wait_until(lambda: inst.readyz().get("status") == "ready", 60, what="ready before the test")
    kill_redis(c)
    try:
        r = inst.submit(od.dep, instance("spooled", "s.jpg"), [("s.jpg", b"spooled photo", "image/jpeg")])
        assert r.status_code == 202, r.text
        wait_until(lambda: inst.readyz().get("queue") == "spool", 30, what="queue: spool")
    finally:
        restart_redis(c)
    rid = iid_uuid("spooled")
    wait_until(lambda: stored_row(c, rid) == 1, 90, what="the spooled OpenRosa submission stored")
    wait_until(lambda: od.owner.api.get(f"/v1/responses/{rid}/attachments/s.jpg").status_code == 200, 30,
               what="its attachment readable")
    assert od.owner.api.get(f"/v1/responses/{rid}/attachments/s.jpg").content == b"spooled photo"
    wait_until(lambda: readyz(c).json().get("spool_pending") == 0 and inst.readyz().get("spool_pending") == 0,
               60, what="spools empty")


def test_repeats_pg_down_202_then_stored(od):
    """An instance with repeats while PostgreSQL is down, from an enumerator whose right nobody has
    looked up here: 202 unverified, and the worker, which checks an unverified entry's answers
    against the form again, stores it (its repeat questions as lists, which the form's validation
    takes; once it quarantined them as "expected text")."""
    c, inst = od.c, od.inst
    wait_until(lambda: inst.readyz().get("status") == "ready", 60, what="ready before the test")
    org = od.owner.api.get(f"/v1/surveys/{od.dep['survey_id']}").json()["org_id"]
    e2 = User(c, "ord e2")
    add_plain_member(c, org, e2.id)
    s = ok(od.owner.api.post("/v1/surveys", json={"org_id": org, "name": "rep",
                                                  "xform": (FIXTURES / "forms/withrepeat.xml").read_text()}), 201)
    dep = ok(od.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "rep", "roles": {"enumerators": [{"type": "user", "id": od.enum.id},
                                                 {"type": "user", "id": e2.id}]}}), 201)
    two = (FIXTURES / "instances/withrepeat/two.xml").read_bytes()

    def one(label):
        return two.replace(b">rtwo<", f">uuid:{iid_uuid(label)}<".encode())
    assert inst.submit(dep, one("rep-warm")).status_code == 201  # the deployment's form cached here
    # e2's key known here, its right to submit never looked up
    wait_until(lambda: inst.s.get(f"https://127.0.0.1:{inst.port}/v1/me", timeout=30,
                                  headers={"Authorization": f"Bearer {e2.key}"}).status_code == 200,
               30, what="e2's key known here")
    pg_stop_immediate(c)
    try:
        wait_until(lambda: inst.readyz().get("db") == "down", 60, what="/readyz db: down")
        files = [("xml_submission_file", ("submission.xml", one("rep-pgdown"), "text/xml"))]
        r = inst.s.post(f"https://127.0.0.1:{inst.port}/v1/openrosa/deployments/{dep['id']}/submission",
                        files=files, timeout=30,
                        headers={"Authorization": f"Bearer {e2.key}", "X-OpenRosa-Version": "1.0"})
        assert r.status_code == 202, r.text
    finally:
        pg_start(c)
    rid = iid_uuid("rep-pgdown")
    c.wait_drained(120)
    wait_until(lambda: stored_row(c, rid) + c.psql("SELECT count(*) FROM quarantine WHERE id = %s", rid)[0][0] == 1,
               90, what="the queued instance with repeats written or quarantined")
    assert c.psql("SELECT reason FROM quarantine WHERE id = %s", rid) == []
    assert stored_row(c, rid) == 1
    wait_until(lambda: od.owner.api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="readable")
    d = od.owner.api.get(f"/v1/responses/{rid}").json()["data"]
    assert d["children/child/name"] == ["Billy", "Blaine"] and d["children/child/age"] == [4, 6]
    e2.close()


def test_encrypted_pg_down_202_then_stored(od):
    """An encrypted submission as ODK Collect sends it, PostgreSQL stopped: 202, then stored as
    the envelope with the manifest as its XML once PostgreSQL is back."""
    pytest.importorskip("cryptography")
    from cryptography.hazmat.primitives import serialization
    from test_odk_encryption import envelope as make_envelope
    from test_openrosa_encrypted import manifest_of, parts_of
    c, inst = od.c, od.inst
    wait_until(lambda: inst.readyz().get("status") == "ready", 60, what="ready before the test")
    org = od.owner.api.get(f"/v1/surveys/{od.dep['survey_id']}").json()["org_id"]
    s = ok(od.owner.api.post("/v1/surveys", json={"org_id": org, "name": "enc",
                                                  "xform": (FIXTURES / "forms/encrypted.xml").read_text()}), 201)
    dep = ok(od.owner.api.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "enc", "roles": {"enumerators": [{"type": "user", "id": od.enum.id}]}}), 201)
    pub = serialization.load_pem_public_key((FIXTURES / "keys/pub.pem").read_bytes())

    def one(label, photo):
        iid = f"uuid:{iid_uuid(label)}"
        sub = (f'<data id="encrypted" version="working3"><meta><instanceID>{iid}</instanceID></meta>'
               f"<name>n</name><file>x.jpg</file></data>").encode()
        env = make_envelope(pub, "encrypted", "working3", sub, [("x.jpg", photo)], iid)
        return env, manifest_of("encrypted", "working3", env), [(n, d, "application/octet-stream")
                                                                 for n, d in parts_of(env)]
    env, man, parts = one("enc-warm", b"warm")
    assert inst.submit(dep, man, parts).status_code == 201  # the deployment cached here
    env, man, parts = one("enc-pgdown", b"\xff\xd8" + bytes(range(100)))
    pg_stop_immediate(c)
    try:
        wait_until(lambda: inst.readyz().get("db") == "down", 60, what="/readyz db: down")
        r = inst.submit(dep, man, parts)
        assert r.status_code == 202, r.text
        # a plain instance is refused while the database is down too (the cached key says so)
        plain = (f'<data id="encrypted" version="working3"><meta><instanceID>uuid:{iid_uuid("enc-plain")}'
                 f"</instanceID></meta><name>n</name></data>").encode()
        assert inst.submit(dep, plain).status_code == 400
    finally:
        pg_start(c)
    rid = iid_uuid("enc-pgdown")
    wait_until(lambda: stored_row(c, rid) == 1, 90, what="the queued encrypted submission stored")
    wait_until(lambda: od.owner.api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="readable")
    got = od.owner.api.get(f"/v1/responses/{rid}").json()
    assert got["encrypted"] is True and got["data"] == env
    assert od.owner.api.get(f"/v1/responses/{rid}/xml").content == man
    assert stored_row(c, iid_uuid("enc-plain")) == 0


def test_org_storage_counts_what_is_stored(od):
    """The quota reads org_storage (migration 026), kept by triggers: it always equals the sum of
    the org's attachment sizes (each response naming a file counts it) and of its encrypted
    submissions' files (inside their envelopes), after inserts and deletes (a purge deletes files
    no answer names)."""
    c = od.c
    org = c.psql("SELECT org_id FROM deployments d JOIN surveys s ON s.id = d.survey_id WHERE d.id = %s",
                 od.dep["id"])[0][0]

    def counted():
        return c.psql("SELECT fv_org_storage_bytes(%s), (SELECT COALESCE(sum(size), 0) FROM response_attachments "
                      "WHERE org_id = %s) + (SELECT COALESCE(sum(fv_envelope_bytes(r.data)), 0) FROM responses r "
                      "JOIN surveys s ON s.id = r.survey_id WHERE s.org_id = %s)", org, org, org)[0]
    before = counted()
    assert before[0] == before[1], before
    # an encrypted submission of this org was stored by an earlier test: its files are counted
    enc = c.psql("SELECT COALESCE(sum(fv_envelope_bytes(r.data)), 0) FROM responses r JOIN surveys s "
                 "ON s.id = r.survey_id WHERE s.org_id = %s", org)[0][0]
    assert enc > 0 or c.psql("SELECT count(*) FROM responses r JOIN surveys s ON s.id = r.survey_id "
                             "WHERE s.org_id = %s AND r.data ? 'encryptedXmlFile'", org)[0][0] == 0
    r = od.inst.submit(od.dep, instance("storage-1", "s1.bin", "s2.bin"),
                       [("s1.bin", b"\3" * 1000, "application/octet-stream"),
                        ("s2.bin", b"\4" * 2345, "application/octet-stream")])
    assert r.status_code in (201, 413), r.text
    after = counted()
    assert after[0] == after[1], after
    if r.status_code == 201:
        assert after[0] == before[0] + 3345
    # a delete through SQL (as a purge's trigger does) is counted out, per statement
    rid = iid_uuid("storage-1")
    c.psql("DELETE FROM response_attachments WHERE response_id = %s AND name = 's2.bin'", rid)
    gone = counted()
    assert gone[0] == gone[1], gone


def test_cold_frontend_pg_down_takes_form_ids_from_shared_entry(od):
    """A front end that has never looked the deployment up, PostgreSQL down: the deployment comes
    from its entry shared through Redis, and the XForm's id and version the instance is checked
    against come with it (read when the entry is built, fe_depcache.h), so the submission is
    queued (202), not refused as a form whose XForm is not cached (503), and stored once
    PostgreSQL is back."""
    from test_shared_cache import Cold, Marker
    c = od.c
    wait_until(lambda: od.inst.readyz().get("status") == "ready", 60, what="ready before the test")
    survey = od.dep["survey_id"]
    dep = ok(od.owner.api.post(f"/v1/surveys/{survey}/deployments", json={
        "name": "bin cold", "roles": {"enumerators": [{"type": "user", "id": od.enum.id}]}}), 201)
    marker = Marker(c)
    try:
        marker.wait_all()
        keys = (f"fv:cache:deployment:{dep['id']}",
                "fv:cache:apikey:" + hashlib.sha256(od.enum.key.encode()).hexdigest())

        def shared():
            return all(c.redis_cli("GET", k) for k in keys) and \
                c.redis_cli("HGET", f"fv:cache:enumerator:{od.enum.id}", dep["id"])
        # an answer taken during a revocation gap is not shared (test_shared_cache.setup_member):
        # submit again until one is
        n = 0
        while not shared():
            assert n < 20, "the deployment's lookups were never shared in Redis"
            r = od.inst.submit(dep, instance(f"cold-warm-{n}"))
            assert r.status_code == 201, r.text
            n += 1
            try:
                wait_until(shared, 3, what="the lookups shared in Redis")
            except TimeoutError:
                pass
        cold = Cold(c, "frontend-cold-openrosa")
        try:
            marker.wait_loaded(cold)
            inst = Instance(c, cold.proc, cold.port, od.enum.key)
            pg_stop_immediate(c)
            try:
                wait_until(lambda: cold.readyz().get("db") == "down", 60, what="db: down")
                r = inst.submit(dep, instance("cold-pgdown"))
                assert r.status_code == 202, r.text
                assert "queued" in r.text
            finally:
                pg_start(c)
            inst.s.close()
        finally:
            cold.close()
    finally:
        marker.close()
    wait_until(lambda: od.owner.api.get("/v1/me", headers={"Connection": "close"}).status_code == 200, 60,
               what="the front end reading PostgreSQL again")
    rid = iid_uuid("cold-pgdown")
    wait_until(lambda: stored_row(c, rid) == 1, 90, what="the queued OpenRosa submission stored")
    assert str(c.psql("SELECT deployment_id FROM responses WHERE id = %s", rid)[0][0]) == dep["id"]
