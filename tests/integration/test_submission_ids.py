"""A submission whose id is already taken (issue 9, item 4).

The same submitter retrying the same submission (same id, deployment and content) stays an
idempotent success. Anything else reusing a taken id is refused and the sender can learn it:
409 id_conflict at once while the id's claim is in Redis (another submitter, another
deployment), and in every case the worker keeps the refused entry (refused_submissions) and
GET /v1/submissions/{id} answers `refused` with reason `id_conflict` to its submitter. Neither
side learns anything of the other: the attacker's status names nothing of the existing response
(not its org, deployment or answers), the owner's status is `stored`, and a stranger's question
gets the same 404 as an unknown id."""
import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import good_data, make_survey
from fvharness import answers_sql, error_body, new_id, wait_until


@pytest.fixture(scope="module")
def ids(world):
    """World's org A with a deployment DA for enum and enum2, and org B (its own admin's) with a
    deployment DB for mallory."""
    c, admin = world.cluster, world.admin
    apis = []

    keys = {}

    def user(email, name):
        keys[email] = c.create_user(email, name)
        api = c.api(keys[email])
        apis.append(api)
        return api, api.get("/v1/me").json()["id"]
    enum2, enum2_id = user("enum2-ids@example.org", "Second Enumerator")
    mallory, mallory_id = user("mallory-ids@example.org", "Mallory Elsewhere")
    boss_b, boss_b_id = user("boss-b-ids@example.org", "Boss of B")
    _, da = make_survey(admin, world.org_id, [world.enum_id, enum2_id], name="Ids survey A")
    r = boss_b.post("/v1/orgs", json={"name": "Org B of the id tests"})
    assert r.status_code == 201, r.text
    org_b = r.json()["id"]
    _, db = make_survey(boss_b, org_b, [mallory_id], name="Ids survey B")
    w = type("Ids", (), {})()
    w.c, w.world, w.enum = c, world, world.enum
    w.enum2, w.enum2_id, w.mallory, w.mallory_id = enum2, enum2_id, mallory, mallory_id
    w.mallory_key = keys["mallory-ids@example.org"]
    w.boss_b, w.org_b = boss_b, org_b
    w.da, w.db = da["id"], db["id"]
    yield w
    for api in apis:
        api.close()


def submit(api, dep, rid, data):
    return api.post(f"/v1/deployments/{dep}/responses", json={"id": rid, "data": data})


def status(api, rid):
    return api.get(f"/v1/submissions/{rid}")


def stored_row(c, rid):
    """(submitter, deployment, answers, version): the answers opened (sealed at rest, 027)."""
    rows = c.psql_opened("SELECT jsonb_build_object('s', submitted_by::text, 'd', deployment_id::text, "
                         "'v', version, " + answers_sql("r") + ") FROM responses r WHERE id = %s", rid)
    return [(x["s"], x["d"], x["data"], x["v"]) for x in rows]


def refused_rows(c, rid):
    rows = c.psql_opened("SELECT jsonb_build_object('s', submitted_by::text, 'd', deployment_id::text, "
                         "'reason', reason, " + answers_sql("f") + ") FROM refused_submissions f "
                         "WHERE id = %s ORDER BY seq", rid)
    return [(x["s"], x["d"], x["data"], x["reason"]) for x in rows]


def stored_by_enum(w, data):
    rid = new_id()
    r = submit(w.enum, w.da, rid, data)
    assert r.status_code == 202, r.text
    w.world.wait_readable(rid)
    return rid


def drop_claim(w, rid):
    """As when the id was stored longer ago than the claim's TTL (or Redis lost it)."""
    assert w.c.redis_cli("DEL", f"fv:subid:{rid}") == 1


def wait_status(api, rid, want, timeout=60):
    def get():
        r = status(api, rid)
        assert r.status_code in (200, 404), r.text
        return r.json() if r.status_code == 200 and r.json()["status"] == want else None
    return wait_until(get, timeout, what=f"submission {rid} to be {want}")


def attacker(w, who):
    return (w.mallory, w.db, w.mallory_id) if who == "other_org" else (w.enum2, w.da, w.enum2_id)


def says_nothing_of(text, w, data):
    """The refused side's answers name nothing of the existing response."""
    for secret in (w.world.org_id, w.world.enum_id, w.da if data else None, data["household"]):
        if secret:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize("who", ["other_org", "same_org"])
def test_taken_id_gets_409_at_once_and_the_existing_response_is_unchanged(ids, who):
    w = ids
    mine = dict(good_data(1), household="Owner House 409")
    rid = stored_by_enum(w, mine)
    api, dep, _ = attacker(w, who)
    theirs = dict(good_data(2), household="Attacker House 409")
    r = submit(api, dep, rid, theirs)
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "id_conflict"
    if who == "other_org":
        says_nothing_of(r.text, w, mine)
    # The claim's SET and the XADD are sent together (the XADD goes whatever the SET finds), so
    # the refused copy went to the stream too: the worker refuses it by the claim's holder and keeps it (never stored), and its
    # sender may ask what became of it, learning nothing of the existing response.
    w.c.wait_drained()
    assert refused_rows(w.c, rid) == [(attacker(w, who)[2], dep, theirs, "id_conflict")]
    body = wait_status(api, rid, "refused")
    assert body["reason"] == "id_conflict"
    if who == "other_org":
        says_nothing_of(json.dumps(body), w, mine)
    row = stored_row(w.c, rid)
    assert row == [(w.world.enum_id, w.da, mine, 1)]
    assert status(w.enum, rid).json()["status"] == "stored"


@pytest.mark.parametrize("who", ["other_org", "same_org"])
def test_taken_id_without_its_claim_is_refused_and_kept(ids, who):
    w = ids
    mine = dict(good_data(3), household="Owner House refused")
    rid = stored_by_enum(w, mine)
    drop_claim(w, rid)
    api, dep, uid = attacker(w, who)
    theirs = dict(good_data(4), household="Attacker House refused")
    r = submit(api, dep, rid, theirs)
    assert r.status_code == 202, r.text  # the front end cannot know: the worker refuses it
    body = wait_status(api, rid, "refused")
    assert body["reason"] == "id_conflict" and body["id"] == rid
    assert body["entry"]["data"] == theirs and body["entry"]["deployment_id"] == dep
    if who == "other_org":
        says_nothing_of(json.dumps(body), w, mine)
    # Kept whole, with its submitter; the existing response is unchanged.
    assert refused_rows(w.c, rid) == [(uid, dep, theirs, "id_conflict")]
    assert stored_row(w.c, rid) == [(w.world.enum_id, w.da, mine, 1)]
    assert w.enum.get(f"/v1/responses/{rid}").json()["data"] == mine
    # The owner learns nothing of the attacker's entry: their submission is stored.
    owner = status(w.enum, rid)
    assert owner.json() == {"id": rid, "status": "stored", "stored_at": owner.json()["stored_at"]}
    assert theirs["household"] not in owner.text
    # The audit entry goes to the submitter's org only.
    audit_orgs = w.c.psql("SELECT org_id::text FROM audit WHERE action = 'submission.refused' "
                          "AND target_id = %s", rid)
    assert audit_orgs == [(w.org_b if who == "other_org" else w.world.org_id,)]
    # The operator sees it.
    out = w.c.fvctl("refused").stdout
    assert rid in out and uid in out and "id_conflict" in out, out
    assert theirs["household"] not in out  # the answers only with --show-data
    rows = [json.loads(line) for line in w.c.fvctl("refused", "--limit", "0", "--json").stdout.splitlines()]
    mine_rows = [r for r in rows if r["id"] == rid]
    assert len(mine_rows) == 1 and mine_rows[0]["submitted_by"] == uid and "data" not in mine_rows[0]
    shown = w.c.fvctl("refused", "--show-data", "--limit", "0").stdout
    assert theirs["household"] in shown


def test_same_submitter_same_content_retry_is_idempotent(ids):
    w = ids
    data = dict(good_data(5), household="Retry House")
    rid = new_id()
    for _ in range(2):
        r = submit(w.enum, w.da, rid, data)
        assert r.status_code == 202 and r.json() == {"id": rid, "status": "queued"}, r.text
    w.world.wait_readable(rid)
    # After it was stored, with and without its claim: still a success, nothing refused.
    assert submit(w.enum, w.da, rid, data).status_code == 202
    drop_claim(w, rid)
    # The same answers with their keys in another order are the same content.
    reordered = dict(reversed(list(data.items())))
    assert submit(w.enum, w.da, rid, reordered).status_code == 202
    w.c.wait_drained()
    assert refused_rows(w.c, rid) == []
    assert stored_row(w.c, rid) == [(w.world.enum_id, w.da, data, 1)]
    assert status(w.enum, rid).json()["status"] == "stored"


def test_same_submitter_other_content_is_refused(ids):
    """The client's own reuse of an id for other answers is a bug of the client: refused, kept,
    the first stays."""
    w = ids
    first = dict(good_data(6), household="First Answers")
    rid = stored_by_enum(w, first)
    other = dict(good_data(7), household="Other Answers")
    r = submit(w.enum, w.da, rid, other)
    assert r.status_code == 202, r.text  # its claim matches: only the worker can compare
    body = wait_status(w.enum, rid, "refused")
    assert body["entry"]["data"] == other
    assert stored_row(w.c, rid) == [(w.world.enum_id, w.da, first, 1)]


def test_same_submitter_other_deployment_gets_409(ids):
    w = ids
    rid = stored_by_enum(w, good_data(8))
    r = submit(w.enum, w.world.deployment_id, rid, good_data(8))
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == "id_conflict"


def test_status_queued_while_the_workers_are_stopped(ids):
    w = ids
    c = w.c
    rid = new_id()
    c.stop_all_workers()
    try:
        assert submit(w.enum, w.da, rid, good_data(9)).status_code == 202
        assert status(w.enum, rid).json() == {"id": rid, "status": "queued"}
        # Nobody else learns that the id is queued.
        for api in (w.world.stranger, w.mallory, w.enum2):
            r = status(api, rid)
            assert r.status_code == 404, r.text
    finally:
        c.start_default_workers()
    wait_status(w.enum, rid, "stored")


def test_status_of_a_stranger_is_the_404_of_an_unknown_id(ids, anon):
    w = ids
    rid = stored_by_enum(w, good_data(10))
    theirs = status(w.world.stranger, rid)
    unknown = status(w.world.stranger, new_id())
    assert theirs.status_code == unknown.status_code == 404
    assert error_body(theirs) == error_body(unknown)
    assert status(w.boss_b, rid).status_code == 404
    # Not even the owner's org admin: the status is the submitter's.
    assert status(w.world.admin, rid).status_code == 404
    assert status(w.enum, "not-a-uuid").status_code == 404
    assert anon.get(f"/v1/submissions/{rid}").status_code == 401


def test_status_quarantined(ids):
    """A quarantine row as the worker writes it (wk_verify.c): its reason is not given."""
    w = ids
    rid = new_id()
    w.c.psql("INSERT INTO quarantine (id, deployment_id, submitted_by, data, received_at, reason) "
             "VALUES (%s, %s, %s, '{}', now(), 'the submitter is not an enumerator of the deployment')",
             rid, w.db, w.world.enum_id)
    body = status(w.enum, rid).json()
    assert body["status"] == "quarantined" and "reason" not in body, body
    assert status(w.mallory, rid).status_code == 404


def test_a_conflicting_entry_does_not_fail_its_batch(ids):
    """One refused entry among many in the same batch: the others are written, none dead-lettered."""
    w = ids
    c = w.c
    taken = stored_by_enum(w, good_data(11))
    drop_claim(w, taken)
    dead_before = c.redis_cli("XLEN", c.DEAD)
    good = [new_id() for _ in range(20)]
    c.stop_all_workers()
    try:
        for i, rid in enumerate(good[:10]):
            assert submit(w.enum, w.da, rid, good_data(i)).status_code == 202
        assert submit(w.mallory, w.db, taken, good_data(12)).status_code == 202
        for i, rid in enumerate(good[10:]):
            assert submit(w.enum2, w.da, rid, good_data(i)).status_code == 202
    finally:
        c.start_default_workers()
    c.wait_drained()
    n = c.psql("SELECT count(*) FROM responses WHERE id = ANY(%s::uuid[])", good)[0][0]
    assert n == len(good)
    assert [r[0] for r in refused_rows(c, taken)] == [w.mallory_id]
    assert c.redis_cli("XLEN", c.DEAD) == dead_before


def xadd_unverified(c, rid, dep, submitter, data):
    """An envelope as a front end queues it while PostgreSQL is down (fe_submit.c, unverified)."""
    c.redis_cli("XADD", c.STREAM, "*", "v", "1", "id", rid,
                "survey_id", "00000000-0000-0000-0000-000000000000", "survey_version", "0",
                "deployment_id", dep, "submitted_by", submitter,
                "received_at", str(int(time.time() * 1000)), "data", json.dumps(data),
                "location", "", "collected_at", "", "verified", "0")


def test_unverified_reuse_of_a_stored_id_is_refused(ids):
    """Accepted unverified (no claim, no permission check): the worker's re-check finds the id
    stored; it is refused and kept, not dropped."""
    w = ids
    mine = dict(good_data(13), household="Owner House unverified")
    rid = stored_by_enum(w, mine)
    theirs = dict(good_data(14), household="Attacker House unverified")
    xadd_unverified(w.c, rid, w.db, w.mallory_id, theirs)
    body = wait_status(w.mallory, rid, "refused")
    assert body["entry"]["data"] == theirs
    says_nothing_of(json.dumps(body), w, mine)
    assert stored_row(w.c, rid) == [(w.world.enum_id, w.da, mine, 1)]
    # The same unverified submission of the owner's again is a retry: nothing refused.
    xadd_unverified(w.c, rid, w.da, w.world.enum_id, mine)
    w.c.wait_drained()
    assert [r[0] for r in refused_rows(w.c, rid)] == [w.mallory_id]


def test_unverified_reuse_of_a_quarantined_id_is_refused(ids):
    """Two unverified submissions refused by the re-check with one id: the first is quarantined,
    the second (another submitter's) is kept as refused, not dropped."""
    w = ids
    c = w.c
    rid = new_id()
    first = dict(good_data(15), household="Quarantined First")
    xadd_unverified(c, rid, w.db, w.world.enum_id, first)  # enum is no enumerator of DB
    wait_status(w.enum, rid, "quarantined")
    second = dict(good_data(16), household="Quarantined Second")
    xadd_unverified(c, rid, w.da, w.mallory_id, second)  # mallory is none of DA
    body = wait_status(w.mallory, rid, "refused")
    assert body["entry"]["data"] == second and body["entry"]["deployment_id"] == w.da
    assert [(x["s"], x["data"]) for x in c.psql_opened(
        "SELECT jsonb_build_object('s', submitted_by::text, " + answers_sql("q") + ") FROM quarantine q "
        "WHERE id = %s", rid)] == [(w.world.enum_id, first)]
    # A retry of the quarantined one stays a retry.
    xadd_unverified(c, rid, w.db, w.world.enum_id, first)
    c.wait_drained()
    assert [r[0] for r in refused_rows(c, rid)] == [w.mallory_id]


def test_concurrent_claims_of_one_id_leave_one_owner_and_store_nothing_else(ids):
    """The claim and the XADD go in one round trip: of two submitters racing for one id, one
    gets 202 for every copy it sends, the other 409 for every copy; the worker decides by the
    claim's holder, so the winner's answer is the one stored whichever copy it reads first, and
    the loser's copies are kept as one refused entry (they are retries of each other)."""
    w = ids
    rid = new_id()
    sides = {"enum": (w.world.enum_key, w.da, dict(good_data(21), household="Race A")),
             "mallory": (w.mallory_key, w.db, dict(good_data(22), household="Race B"))}

    def send(side):
        key, dep, data = sides[side]
        api = w.c.api(key)
        try:
            return side, api.post(f"/v1/deployments/{dep}/responses", json={"id": rid, "data": data}).status_code
        finally:
            api.close()
    with ThreadPoolExecutor(max_workers=16) as ex:
        results = list(ex.map(send, ["enum", "mallory"] * 8))
    by_side = {side: sorted(code for s2, code in results if s2 == side) for side in sides}
    winners = [side for side, codes in by_side.items() if codes == [202] * 8]
    assert len(winners) == 1, by_side
    loser = "mallory" if winners[0] == "enum" else "enum"
    assert by_side[loser] == [409] * 8, by_side
    key, dep, data = sides[winners[0]]
    api = w.c.api(key)
    wait_status(api, rid, "stored")
    api.close()
    w.c.wait_drained()
    owner = w.world.enum_id if winners[0] == "enum" else w.mallory_id
    assert stored_row(w.c, rid) == [(owner, dep, data, 1)]
    loser_id = w.mallory_id if loser == "mallory" else w.world.enum_id
    assert refused_rows(w.c, rid) == [(loser_id, sides[loser][1], sides[loser][2], "id_conflict")]


def test_the_claims_holder_wins_even_when_the_losers_copy_is_read_first(ids):
    """The worker decides by the claim, not by which copy it writes first: a copy of another
    submitter's that reaches the worker before the holder's (spooled while Redis was away, say)
    is refused and kept, and the holder's acknowledged submission is the one stored."""
    w = ids
    c = w.c
    rid = new_id()
    mine = dict(good_data(31), household="Holder House")
    theirs = dict(good_data(32), household="Early Copy House")
    # The holder's claim, then another submitter's copy, unverified (as spooled during an outage:
    # the worker's re-check would pass it), written by the workers before the holder's arrives.
    c.redis_cli("SET", f"fv:subid:{rid}", f"{w.world.enum_id}:{w.da}", "EX", "600")
    xadd_unverified(c, rid, w.db, w.mallory_id, theirs)
    c.wait_drained()
    assert stored_row(c, rid) == []
    assert refused_rows(c, rid) == [(w.mallory_id, w.db, theirs, "id_conflict")]
    assert submit(w.enum, w.da, rid, mine).status_code == 202
    wait_status(w.enum, rid, "stored")
    assert stored_row(c, rid) == [(w.world.enum_id, w.da, mine, 1)]
    assert wait_status(w.mallory, rid, "refused")["reason"] == "id_conflict"
