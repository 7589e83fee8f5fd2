"""History (issue 11): every change to a response or a site appends exactly one version with the
full new state and its actor; GET .../history shows every version, paged, to exactly those who may
see the object (confidential answers masked as in reads); restore brings a soft-deleted response
or site back; the history rows are append-only in the database itself (and a change that skips its
history row cannot commit); the migration gives old objects a full history."""
import json
import pathlib

import psycopg2
import pytest

from accesshelp import P, User, add_branch, add_member, denied, list_all, ok, submit_and_wait
from fvharness import build_dir, new_id

DEF = {"questions": [
    {"name": "household", "type": "text", "label": "Household", "required": True},
    {"name": "members", "type": "integer", "label": "Members", "required": True,
     "constraint": {"min": 1, "max": 50}},
    {"name": "phone", "type": "text", "label": "Phone", "required": False, "confidential": True},
]}

def sql_dir():
    """The migrations fvctl migrate applies: the build's copy, else the source tree's."""
    built = pathlib.Path(build_dir()) / "share" / "fieldvault" / "sql"
    return built if built.is_dir() else pathlib.Path(__file__).resolve().parents[2] / "common" / "sql"


def data(i=0, phone="555-0100"):
    d = {"household": f"House {i}", "members": 1 + i % 50}
    if phone is not None:
        d["phone"] = phone
    return d


@pytest.fixture(scope="module")
def hw(workers):
    """An org (owner is its admin and the survey's creator) with a branch, a survey with a confidential
    question, a two-stage deployment and one without stages, and a user per role."""
    c = workers
    names = ["owner", "enum", "viewer", "manager", "appr1", "appr2", "stranger", "member"]
    u = {n: User(c, n) for n in names}
    org = ok(u["owner"].api.post("/v1/orgs", json={"name": "History org"}), 201)
    branch = add_branch(c, org["id"], org["root_branch_id"], "field")
    add_member(c, org["id"], u["member"].id, "member", branch_id=branch)
    # Users named as principals are members of the org (issue 10), in a branch named nowhere.
    home = add_branch(c, org["id"], org["root_branch_id"], "home")
    for n in ("enum", "viewer", "manager", "appr1", "appr2"):
        add_member(c, org["id"], u[n].id, "member", branch_id=home)
    survey = ok(u["owner"].api.post("/v1/surveys", json={"org_id": org["id"], "name": "History",
                                                           "definition": DEF}), 201)
    roles = {"enumerators": [P("user", u["enum"].id)], "viewers": [P("user", u["viewer"].id)],
             "managers": [P("user", u["manager"].id)],
             "approvers": [[P("user", u["appr1"].id)], [P("user", u["appr2"].id)]]}
    dep = ok(u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments",
                                 json={"name": "two stages", "roles": roles}), 201)
    flat = ok(u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "no stages", "branch_id": branch,
        "roles": {"enumerators": [P("user", u["enum"].id), P("branch", branch)],
                  "viewers": [P("user", u["viewer"].id)], "managers": [P("user", u["manager"].id)]}}), 201)

    class HW:
        pass
    w = HW()
    w.c, w.u, w.org, w.survey, w.dep, w.flat, w.branch = c, u, org, survey, dep, flat, branch
    w.site_id = ok(u["owner"].api.post("/v1/sites", json={"org_id": org["id"], "name": "Paged well",
                                                           "type": "well", "privacy": "public"}), 201)["id"]
    yield w
    for x in u.values():
        x.close()


def api(w, who):
    return w.u[who].api


def history(w, who, rid, kind="responses", limit=500):
    return list_all(api(w, who), f"/v1/{kind}/{rid}/history", limit=limit)


def stored_versions(w, rid):
    return w.c.psql("SELECT version, action, actor::text, state FROM response_events "
                    "WHERE response_id = %s ORDER BY version", rid)


def row_state(w, rid):
    return w.c.psql("SELECT to_jsonb(r) FROM responses r WHERE id = %s", rid)[0][0]


def test_every_response_operation_appends_one_full_version(hw):
    """submit, approve, reject, resubmit, edit, delete, restore: each appends exactly one version
    with its actor, operation and number; the stored state is the whole row after the change, and
    the history's state is byte for byte what GET answered right after the change."""
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.dep["id"], data(1, phone="555-0101"))["id"]
    seen = {}  # version -> the owner's GET body (JSON text) right after the change

    def snap():
        r = api(w, "owner").get(f"/v1/responses/{rid}")
        assert r.status_code == 200, r.text
        seen[r.json()["version"]] = r.text
        return r.json()

    steps = [("submit", "enum", None)]
    snap()
    full = {1: row_state(w, rid)}

    def step(op, who, call):
        r = call()
        assert r.status_code in (200, 204), f"{op}: {r.status_code} {r.text}"
        steps.append((op, who, r))
        n = len(steps)
        assert [v[0] for v in stored_versions(w, rid)] == list(range(1, n + 1)), op
        full[n] = row_state(w, rid)
        if op != "delete":
            assert snap()["version"] == n

    step("approve", "appr1", lambda: api(w, "appr1").post(f"/v1/responses/{rid}/approve", json={"message": "ok"}))
    step("reject", "appr2", lambda: api(w, "appr2").post(f"/v1/responses/{rid}/reject", json={"message": "redo"}))
    step("resubmit", "enum", lambda: api(w, "enum").patch(f"/v1/responses/{rid}", json={"data": data(2)}))
    step("edit", "manager", lambda: api(w, "manager").patch(f"/v1/responses/{rid}", json={
        "data": {"household": "Edited", "members": 4}, "location": {"lat": 1.5, "lon": 2.5}}))
    step("delete", "manager", lambda: api(w, "manager").delete(f"/v1/responses/{rid}"))
    assert api(w, "owner").get(f"/v1/responses/{rid}").status_code == 404
    step("restore", "manager", lambda: api(w, "manager").post(f"/v1/responses/{rid}/restore"))
    assert json.loads(steps[-1][2].text)["version"] == 7

    stored = stored_versions(w, rid)
    assert [(v[0], v[1], v[2]) for v in stored] == [
        (i + 1, op, w.u[who].id) for i, (op, who, _) in enumerate(steps)]
    for v in stored:  # the full state: the whole row as it was after that change
        assert v[3] == full[v[0]], v[0]
    assert stored[5][3]["deleted_at"] is not None and stored[6][3]["deleted_at"] is None
    assert stored[2][3]["rejection_message"] == "redo" and stored[2][3]["status"] == "rejected"
    assert stored[1][3]["stage"] == 2 and stored[3][3]["stage"] == 1
    # the state's answers are sealed at rest (027): the first version's, opened
    first = w.c.psql_opened(
        "SELECT jsonb_build_object('data', e.state->'data', 'location', e.state->'location', '_fv', "
        "fv_answers_hint(e.response_id, (SELECT s.org_id FROM responses r JOIN surveys s ON s.id = r.survey_id "
        "WHERE r.id = e.response_id), (e.state->>'answers_kv')::int)) FROM response_events e "
        "WHERE e.response_id = %s AND e.version = 1", rid)
    assert first[0]["data"]["phone"] == "555-0101"
    assert "555-0101" not in json.dumps(stored[0][3])

    items = history(w, "owner", rid)
    assert [(i["version"], i["operation"], i["actor"], i["deleted"]) for i in items] == [
        (i + 1, op, w.u[who].id, op == "delete") for i, (op, who, _) in enumerate(steps)]
    raw = api(w, "owner").get(f"/v1/responses/{rid}/history").text
    for it in items:
        if it["version"] in seen:  # byte-identical to what GET returned then
            assert it["state"] == json.loads(seen[it["version"]]), it["version"]
            # (replies that carry responses are written compact: fv_answers_finish)
            assert '"state":' + seen[it["version"]] in raw, it["version"]
    # the deleted version shows the response as it stood, its version and time moved on
    dele = items[5]["state"]
    assert dele["version"] == 6 and dele["data"] == json.loads(seen[5])["data"]
    assert items[1]["message"] == "ok" and items[2]["message"] == "redo"
    assert items[1]["override"] is False
    page = ok(api(w, "owner").get(f"/v1/responses/{rid}/history", params={"after": 6}))
    assert [i["version"] for i in page["items"]] == [7] and page["next"] is None


def test_versions_byte_identical_to_get(hw):
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(3))["id"]
    before = api(w, "owner").get(f"/v1/responses/{rid}").text
    r = api(w, "manager").patch(f"/v1/responses/{rid}", json={"data": {"household": "X", "members": 2}})
    assert r.status_code == 200, r.text
    after = api(w, "owner").get(f"/v1/responses/{rid}").text
    body = api(w, "owner").get(f"/v1/responses/{rid}/history").text
    # (replies that carry responses are written compact: fv_answers_finish)
    assert '"state":' + before in body and '"state":' + after in body


def test_viewer_sees_masked_history_admin_full(hw):
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(4, phone="555-0444"))["id"]
    ok(api(w, "manager").patch(f"/v1/responses/{rid}", json={"data": {"household": "Y", "members": 3}}))
    for who in ("viewer", "enum", "manager"):  # none is a survey admin
        items = history(w, who, rid)
        assert len(items) == 2, who
        assert all("phone" not in i["state"]["data"] for i in items), who
        assert "555-0444" not in api(w, who).get(f"/v1/responses/{rid}/history").text, who
    items = history(w, "owner", rid)
    assert [i["state"]["data"].get("phone") for i in items] == ["555-0444", "555-0444"]


def test_history_paging(hw):
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(5))["id"]
    for i in range(6):
        ok(api(w, "manager").patch(f"/v1/responses/{rid}", json={"data": data(10 + i)}))
    every = history(w, "owner", rid)
    assert [i["version"] for i in every] == list(range(1, 8))
    for limit in (1, 2, 3, 7):
        assert history(w, "owner", rid, limit=limit) == every
    r = api(w, "owner").get(f"/v1/responses/{rid}/history", params={"limit": 3})
    page = ok(r)
    assert [i["version"] for i in page["items"]] == [1, 2, 3] and page["next"]
    page2 = ok(api(w, "owner").get(f"/v1/responses/{rid}/history", params={"limit": 3, "after": page["next"]}))
    assert [i["version"] for i in page2["items"]] == [4, 5, 6]
    for bad in ({"limit": 0}, {"limit": 501}, {"after": "x"}, {"after": "-1"}):
        denied(api(w, "owner").get(f"/v1/responses/{rid}/history", params=bad), 422, "validation_failed")
    for kind, obj in (("responses", rid), ("sites", w.site_id)):  # the largest cursor: an empty page
        page = ok(api(w, "owner").get(f"/v1/{kind}/{obj}/history", params={"after": "9" * 18}))
        assert page == {"items": [], "next": None}


def test_response_history_permissions(hw):
    """Visible to exactly those who read the response; a deleted one's to its managers only; a
    member removed from the branch that made them an enumerator loses it; strangers see nothing."""
    w = hw
    rid = submit_and_wait(api(w, "member"), w.flat["id"], data(6))["id"]
    for who in ("member", "viewer", "manager", "owner"):
        assert api(w, who).get(f"/v1/responses/{rid}/history").status_code == 200, who
    for who in ("stranger", "appr1", "enum"):  # enum reads only its own responses
        denied(api(w, who).get(f"/v1/responses/{rid}/history"), 404, "not_found")
    # the removed member
    ok(api(w, "owner").delete(f"/v1/orgs/{w.org['id']}/members/{w.u['member'].id}"), 204)
    denied(api(w, "member").get(f"/v1/responses/{rid}/history"), 404, "not_found")
    denied(api(w, "member").get(f"/v1/responses/{rid}"), 404, "not_found")
    add_member(w.c, w.org["id"], w.u["member"].id, "member", branch_id=w.branch)
    assert api(w, "member").get(f"/v1/responses/{rid}/history").status_code == 200
    # deleted: its managers (and survey admins) only
    ok(api(w, "manager").delete(f"/v1/responses/{rid}"), 204)
    for who in ("member", "viewer", "stranger"):
        denied(api(w, who).get(f"/v1/responses/{rid}/history"), 404, "not_found")
        denied(api(w, who).post(f"/v1/responses/{rid}/restore"), 404, "not_found")
    for who in ("manager", "owner"):
        items = history(w, who, rid)
        assert items[-1]["operation"] == "delete" and items[-1]["deleted"] is True
    restored = ok(api(w, "owner").post(f"/v1/responses/{rid}/restore"))
    assert restored["version"] == 3 and restored["status"] == "final"
    seen_by_viewer = ok(api(w, "viewer").get(f"/v1/responses/{rid}"))
    assert seen_by_viewer == dict(restored, data={k: v for k, v in restored["data"].items() if k != "phone"})
    audit = w.c.psql("SELECT action, actor::text FROM audit WHERE target_id = %s ORDER BY id", rid)
    assert audit[-2:] == [("response.delete", w.u["manager"].id), ("response.restore", w.u["owner"].id)]


def test_restore_not_deleted_and_bad_ids(hw):
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(7))["id"]
    err = denied(api(w, "manager").post(f"/v1/responses/{rid}/restore"), 409, "not_deleted")
    assert "not deleted" in err["message"]
    denied(api(w, "viewer").post(f"/v1/responses/{rid}/restore"), 403, "forbidden")
    assert len(stored_versions(w, rid)) == 1
    for path in ("/v1/responses/{}/history", "/v1/responses/{}/restore", "/v1/sites/{}/history",
                 "/v1/sites/{}/restore"):
        method = "post" if path.endswith("restore") else "get"
        for bad in ("not-a-uuid", new_id(), "00000000-0000-0000-0000-00000000000g"):
            r = getattr(api(w, "owner"), method)(path.format(bad))
            denied(r, 404, "not_found")
    denied(w.c.api().get(f"/v1/responses/{rid}/history"), 401)


def test_site_history_restore_and_visibility(hw):
    w = hw
    oa, who_id = api(w, "owner"), w.u["owner"].id
    s = ok(oa.post("/v1/sites", json={"org_id": w.org["id"], "name": "Well A", "type": "well",
                                       "privacy": "private", "location": {"lat": 1.0, "lon": 2.0}}), 201)
    sid = s["id"]
    seen = {1: oa.get(f"/v1/sites/{sid}").text}
    ok(oa.patch(f"/v1/sites/{sid}", json={"name": "Well B", "privacy": "protected"}))
    seen[2] = oa.get(f"/v1/sites/{sid}").text
    ok(oa.delete(f"/v1/sites/{sid}"), 204)
    denied(oa.get(f"/v1/sites/{sid}"), 404)
    denied(api(w, "stranger").get(f"/v1/sites/{sid}/history"), 404, "not_found")
    denied(api(w, "member").get(f"/v1/sites/{sid}/history"), 404, "not_found")  # a member, not a manager
    denied(api(w, "member").post(f"/v1/sites/{sid}/restore"), 404, "not_found")
    assert ok(oa.get(f"/v1/sites/{sid}/history"))["items"][-1]["deleted"] is True
    restored = ok(oa.post(f"/v1/sites/{sid}/restore"))
    assert restored["version"] == 4 and restored["name"] == "Well B"
    seen[4] = oa.get(f"/v1/sites/{sid}").text
    denied(oa.post(f"/v1/sites/{sid}/restore"), 409, "not_deleted")

    rows = w.c.psql("SELECT version, operation, actor::text, state FROM site_versions "
                    "WHERE site_id = %s ORDER BY version", sid)
    assert [(r[0], r[1], r[2]) for r in rows] == [(1, "create", who_id), (2, "update", who_id),
                                                   (3, "delete", who_id), (4, "restore", who_id)]
    assert rows[2][3]["deleted_at"] is not None and rows[3][3]["deleted_at"] is None
    assert rows[3][3] == w.c.psql("SELECT to_jsonb(s) FROM sites s WHERE id = %s", sid)[0][0]
    items = history(w, "owner", sid, kind="sites")
    assert [(i["version"], i["operation"], i["deleted"]) for i in items] == [
        (1, "create", False), (2, "update", False), (3, "delete", True), (4, "restore", False)]
    for v, text in seen.items():
        assert items[v - 1]["state"] == json.loads(text), v
    # a signed-in stranger sees the protected part of the versions it could have seen, and nothing
    # of the version made while the site was private
    st = history(w, "stranger", sid, kind="sites")
    assert [i["version"] for i in st] == [1, 2, 3, 4]
    assert st[0]["state"] is None
    assert set(st[1]["state"]) == {"id", "org_id", "name", "type", "privacy", "location"}
    denied(w.c.api().get(f"/v1/sites/{sid}/history"), 404, "not_found")  # anonymous: protected


def _app_conn(w):
    return w.c.pg.connect(user="fieldvault", autocommit=False)


@pytest.mark.parametrize("table,key", [("response_events", "response_id"), ("site_versions", "site_id")])
def test_history_rows_append_only_in_the_database(hw, table, key):
    """As the application's own database user: UPDATE, DELETE and TRUNCATE of history rows are
    refused; so is an UPDATE after setting the purge switch by hand; only fv_history_purge_begin
    (which writes its audit entry) opens content updates, never of a version's identity."""
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(8))["id"]
    sid = ok(api(w, "owner").post("/v1/sites", json={"org_id": w.org["id"], "name": "Well C", "type": "well",
                                                      "privacy": "public"}), 201)["id"]
    obj = rid if table == "response_events" else sid
    for sql in (f"UPDATE {table} SET state = state || '{{\"x\": 1}}' WHERE {key} = %s",
                f"UPDATE {table} SET version = version + 100 WHERE {key} = %s",
                f"DELETE FROM {table} WHERE {key} = %s",
                f"TRUNCATE {table} CASCADE"):
        conn = _app_conn(w)
        try:
            with conn.cursor() as cur:
                with pytest.raises(psycopg2.Error) as e:
                    cur.execute(sql, (obj,) if "%s" in sql else None)
                assert "append-only" in str(e.value), sql
        finally:
            conn.rollback()
            conn.close()
    conn = _app_conn(w)  # the switch set by hand, without the audited function
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT set_config('fieldvault.history_purge', txid_current()::text, true)")
            with pytest.raises(psycopg2.Error):
                cur.execute(f"UPDATE {table} SET state = state WHERE {key} = %s", (obj,))
    finally:
        conn.rollback()
        conn.close()
    conn = _app_conn(w)  # the audited purge: content only
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT fv_history_purge_begin(%s, %s, 'test', %s, '{\"why\": \"test\"}')",
                        (w.u["owner"].id, w.org["id"], obj))
            entry = cur.fetchone()[0]
            cur.execute(f"UPDATE {table} SET state = state || '{{\"purged\": true}}' WHERE {key} = %s", (obj,))
            assert cur.rowcount == 1
            with pytest.raises(psycopg2.Error):
                cur.execute(f"UPDATE {table} SET version = version + 100 WHERE {key} = %s", (obj,))
        conn.rollback()
        with conn.cursor() as cur:
            with pytest.raises(psycopg2.Error):  # the next transaction is not a purge
                cur.execute(f"UPDATE {table} SET state = state WHERE {key} = %s", (obj,))
    finally:
        conn.rollback()
        conn.close()
    assert entry > 0
    assert w.c.psql(f"SELECT count(*) FROM {table} WHERE {key} = %s AND state ? 'purged'", obj) == [(0,)]


def test_change_without_history_cannot_commit(hw):
    """A change to a response or site that does not append, in the same statement, the version row
    of its new state is refused, whoever makes it; so is a new row without its first version."""
    w = hw
    rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(9))["id"]
    sid = ok(api(w, "owner").post("/v1/sites", json={"org_id": w.org["id"], "name": "Well D", "type": "well",
                                                      "privacy": "public"}), 201)["id"]
    stale = ("WITH u AS (UPDATE responses x SET version = x.version + 1, data = '{}' WHERE x.id = %s RETURNING x) "
             "INSERT INTO response_events (response_id, version, action, stage, status, actor, state) "
             "SELECT (u.x).id, (u.x).version, 'edit', 0, 'final', (u.x).submitted_by, "
             "       to_jsonb(u.x) || '{\"data\": {\"household\": \"not what was written\"}}' FROM u")
    for sql, obj in (("UPDATE responses SET data = '{\"household\": \"sneaky\", \"members\": 1}' WHERE id = %s", rid),
                     ("UPDATE responses SET version = version + 1, deleted_at = now() WHERE id = %s", rid),
                     (stale, rid),
                     ("UPDATE sites SET name = 'sneaky' WHERE id = %s", sid),
                     ("INSERT INTO sites (id, org_id, name, type, privacy, created_by) "
                      "SELECT gen_random_uuid(), org_id, 'unrecorded', 'well', 'public', created_by FROM sites "
                      "WHERE id = %s", sid),
                     ("INSERT INTO responses (id, survey_id, survey_version, deployment_id, submitted_by, status, "
                      "stage, data, received_at) SELECT gen_random_uuid(), survey_id, survey_version, deployment_id, "
                      "submitted_by, status, stage, data, now() FROM responses WHERE id = %s", rid)):
        conn = _app_conn(w)
        try:
            with pytest.raises(psycopg2.Error) as e:
                with conn.cursor() as cur:
                    cur.execute(sql, (obj,))
                conn.commit()
            assert "without its history row" in str(e.value), sql
        finally:
            conn.close()
    assert api(w, "owner").get(f"/v1/responses/{rid}").json()["data"]["household"] == "House 9"
    assert api(w, "owner").get(f"/v1/sites/{sid}").json()["name"] == "Well D"


def test_migration_backfills_full_history(hw):
    """Old rows (written before migration 012: events without state, sites versions in the API's
    shape without deleted_at) get a full state per version; a response without events gets one."""
    w = hw
    db = "hist_backfill_" + new_id().replace("-", "")[:8]
    admin = w.c.pg.connect()
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db} OWNER fieldvault")
    admin.close()
    conn = w.c.pg.connect(user="fieldvault", db=db, autocommit=True)
    try:
        files = sorted(sql_dir().glob("*.sql"))
        old = [f for f in files if f.name < "012"]
        new = [f for f in files if f.name >= "012"]
        with conn.cursor() as cur:
            for f in old:
                cur.execute(f.read_text())
            u, org, root, s, d = (new_id() for _ in range(5))
            cur.execute("INSERT INTO users (id, email, name) VALUES (%s, 'b@example.org', 'B')", (u,))
            cur.execute("BEGIN; INSERT INTO orgs (id, name, root_branch_id, created_by) VALUES (%s, 'o', %s, %s);"
                        "INSERT INTO branches (id, org_id, name) VALUES (%s, %s, 'root'); COMMIT",
                        (org, root, u, root, org))
            cur.execute("INSERT INTO surveys (id, org_id, name, created_by) VALUES (%s, %s, 's', %s)", (s, org, u))
            cur.execute("INSERT INTO survey_versions (survey_id, version, definition, created_by) "
                        "VALUES (%s, 1, %s, %s)", (s, json.dumps(DEF), u))
            cur.execute("INSERT INTO deployments (id, survey_id, name, branch_id, approval_stages, created_by) "
                        "VALUES (%s, %s, 'd', %s, 1, %s)", (d, s, root, u))
            r1, r2 = new_id(), new_id()
            # r1: submitted (stage 1), approved -> final, edited, deleted: as 004's writers left it
            cur.execute("INSERT INTO responses (id, survey_id, survey_version, deployment_id, submitted_by, status, "
                        "stage, data, received_at, version, deleted_at, created_at, updated_at) VALUES "
                        "(%s, %s, 1, %s, %s, 'final', 0, '{\"household\": \"edited\", \"members\": 2}', "
                        "'2024-01-01Z', 4, '2024-01-04Z', '2024-01-01Z', '2024-01-04Z')", (r1, s, d, u))
            for v, act, st, status, dat, at in (
                    (1, "submit", 1, "pending", '{"household": "first", "members": 1}', "2024-01-01Z"),
                    (2, "approve", 1, "final", None, "2024-01-02Z"),
                    (3, "edit", 0, "final", '{"household": "edited", "members": 2}', "2024-01-03Z"),
                    (4, "delete", 0, "final", None, "2024-01-04Z")):
                cur.execute("INSERT INTO response_events (response_id, version, action, stage, status, actor, "
                            "data, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)", (r1, v, act, st, status, u, dat, at))
            # r2: no event at all (written before 004)
            cur.execute("INSERT INTO responses (id, survey_id, survey_version, deployment_id, submitted_by, status, "
                        "stage, data, received_at) VALUES (%s, %s, 1, %s, %s, 'pending', 1, '{}', now())",
                        (r2, s, d, u))
            site = new_id()
            cur.execute("INSERT INTO sites (id, org_id, name, type, privacy, version, created_by, created_at, "
                        "updated_at, deleted_at) VALUES (%s, %s, 'new', 'well', 'public', 2, %s, '2024-02-01Z', "
                        "'2024-02-02Z', '2024-02-02Z')", (site, org, u))
            cur.execute("INSERT INTO site_versions (site_id, version, operation, actor, at, state) VALUES "
                        "(%s, 1, 'create', %s, '2024-02-01Z', jsonb_build_object('id', %s::text, 'name', 'old', "
                        "'type', 'well', 'privacy', 'public', 'org_id', %s::text, 'version', 1, "
                        "'created_at', '2024-02-01T00:00:00.000000Z', 'updated_at', '2024-02-01T00:00:00.000000Z')),"
                        "(%s, 2, 'delete', %s, '2024-02-02Z', '{}')", (site, u, site, org, site, u))
            for f in new:
                cur.execute(f.read_text())
            cur.execute("SELECT version, state FROM response_events WHERE response_id = %s ORDER BY version", (r1,))
            st = dict(cur.fetchall())
            assert st[1]["data"] == {"household": "first", "members": 1} and st[1]["stage"] == 1
            assert st[1]["status"] == "pending" and st[1]["deleted_at"] is None
            assert st[2]["status"] == "final" and st[2]["stage"] == 0 and st[2]["data"] == st[1]["data"]
            assert st[3]["data"] == {"household": "edited", "members": 2} and st[3]["deleted_at"] is None
            assert st[4]["deleted_at"] is not None
            cur.execute("SELECT to_jsonb(r) FROM responses r WHERE id = %s", (r1,))
            row = cur.fetchone()[0]
            # columns added after 012 (023's instance_id, 026's xml_sha256, 027's answers_kv: NULL in
            # old rows; 024's gps_seed, drawn by the migration) are absent from the state 012 backfilled
            assert st[4] == {k: v for k, v in row.items() if k in st[4] or (v is not None and k != "gps_seed")}
            cur.execute("SELECT version, action, actor, state = (SELECT to_jsonb(r) - 'xml_sha256' "
                        "- 'instance_id' - 'gps_seed' - 'answers_kv' - 'answers_seal_error' "
                        "FROM responses r WHERE id = %s) FROM response_events WHERE response_id = %s", (r2, r2))
            assert cur.fetchall() == [(1, "submit", u, True)]
            cur.execute("SELECT version, state->>'name', state->>'deleted_at' IS NOT NULL FROM site_versions "
                        "WHERE site_id = %s ORDER BY version", (site,))
            assert cur.fetchall() == [(1, "old", False), (2, "new", True)]
    finally:
        conn.close()
        admin = w.c.pg.connect()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE {db}")
        admin.close()


def test_restore_needs_the_totp_session_the_org_requires(hw):
    """An org admin whose power comes only from the org (not the survey's creator) restores only
    with the TOTP session the org requires (403 totp_required with an API key); reading the
    deleted response's history is a read and needs none."""
    w = hw
    oa = User(w.c, "history org admin")
    try:
        add_member(w.c, w.org["id"], oa.id, "admin", branch_id=w.org["root_branch_id"])
        rid = submit_and_wait(api(w, "enum"), w.flat["id"], data(12))["id"]
        ok(api(w, "manager").delete(f"/v1/responses/{rid}"), 204)
        w.c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", w.org["id"])
        try:
            denied(oa.api.post(f"/v1/responses/{rid}/restore"), 403, "totp_required")
            assert ok(oa.api.get(f"/v1/responses/{rid}/history"))["items"][-1]["deleted"] is True
        finally:
            w.c.psql("UPDATE orgs SET require_admin_totp = false WHERE id = %s", w.org["id"])
        assert ok(oa.api.post(f"/v1/responses/{rid}/restore"))["version"] == 3
    finally:
        oa.close()


def test_site_history_paging_and_a_removed_member(hw):
    """A site's history pages like a response's (every limit gives the same versions); a member of
    the org reads a private site's history, each version as GET showed it to them then; removed
    from the org (issue 10) they read nothing of it, and again once a member."""
    w = hw
    oa = api(w, "owner")
    sid = ok(oa.post("/v1/sites", json={"org_id": w.org["id"], "name": "Paged 0", "type": "well",
                                         "privacy": "private"}), 201)["id"]
    seen = {1: ok(api(w, "member").get(f"/v1/sites/{sid}"))}
    for i in range(1, 6):
        ok(oa.patch(f"/v1/sites/{sid}", json={"name": f"Paged {i}"}))
        seen[i + 1] = ok(api(w, "member").get(f"/v1/sites/{sid}"))
    every = history(w, "owner", sid, kind="sites")
    assert [i["version"] for i in every] == list(range(1, 7))
    for limit in (1, 2, 4, 6):
        assert history(w, "owner", sid, kind="sites", limit=limit) == every
    page = ok(oa.get(f"/v1/sites/{sid}/history", params={"limit": 4}))
    assert [i["version"] for i in page["items"]] == [1, 2, 3, 4] and page["next"]
    rest = ok(oa.get(f"/v1/sites/{sid}/history", params={"limit": 4, "after": page["next"]}))
    assert [i["version"] for i in rest["items"]] == [5, 6] and rest["next"] is None
    mine = history(w, "member", sid, kind="sites")
    assert [i["state"] for i in mine] == [seen[v] for v in range(1, 7)]
    ok(oa.delete(f"/v1/orgs/{w.org['id']}/members/{w.u['member'].id}"), 204)
    try:
        denied(api(w, "member").get(f"/v1/sites/{sid}/history"), 404, "not_found")
        denied(api(w, "member").get(f"/v1/sites/{sid}"), 404, "not_found")
    finally:
        add_member(w.c, w.org["id"], w.u["member"].id, "member", branch_id=w.branch)
    assert history(w, "member", sid, kind="sites") == mine
