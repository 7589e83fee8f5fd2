"""The response lifecycle: approval through the stages, rejection with a message, resubmission,
overrides, edits, deletes, confidential answers, survey grants and definitions, and bad input on
every endpoint of the access area."""
import pytest

from accesshelp import P, User, add_member, add_plain_member, list_all, submit_and_wait
from conftest import good_data
from fvharness import error_body, new_id

DEF = {"questions": [
    {"name": "household", "type": "text", "label": "Household", "required": True},
    {"name": "members", "type": "integer", "label": "Members", "required": True,
     "constraint": {"min": 1, "max": 50}},
    {"name": "phone", "type": "text", "label": "Phone", "required": False, "confidential": True},
]}


def data(i=0, phone="555-0100"):
    d = {"household": f"House {i}", "members": 1 + i % 50}
    if phone is not None:
        d["phone"] = phone
    return d


@pytest.fixture(scope="module")
def lc(workers, admin):
    """An org (the operator admin made it), a survey with a two-stage deployment and one without
    stages, and a user per role; every role named as a user principal."""
    c = workers
    names = ["owner", "enum", "enum2", "viewer", "manager", "appr1", "appr2", "stranger", "orgadmin"]
    u = {n: User(c, n) for n in names}
    r = u["owner"].api.post("/v1/orgs", json={"name": "Lifecycle org"})
    assert r.status_code == 201, r.text
    org = r.json()
    add_member(c, org["id"], u["orgadmin"].id, "admin", branch_id=org["root_branch_id"])
    for n in ("enum", "enum2", "viewer", "manager", "appr1", "appr2", "stranger"):
        add_plain_member(c, org["id"], u[n].id)  # a user principal must be a member (migration 009)
    r = u["owner"].api.post("/v1/surveys", json={"org_id": org["id"], "name": "Lifecycle", "definition": DEF})
    assert r.status_code == 201, r.text
    survey = r.json()
    roles = {"enumerators": [P("user", u["enum"].id), P("user", u["enum2"].id)],
             "viewers": [P("user", u["viewer"].id)], "managers": [P("user", u["manager"].id)],
             "approvers": [[P("user", u["appr1"].id)], [P("user", u["appr2"].id)]]}
    r = u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments",
                            json={"name": "two stages", "roles": roles})
    assert r.status_code == 201, r.text
    dep = r.json()
    assert dep["approval_stages"] == 2
    r = u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments",
                            json={"name": "no stages", "roles": {"enumerators": [P("user", u["enum"].id)],
                                                                 "viewers": [P("user", u["viewer"].id)]}})
    assert r.status_code == 201, r.text
    flat = r.json()

    class LC:
        pass
    w = LC()
    w.c, w.u, w.org, w.survey, w.dep, w.flat = c, u, org, survey, dep, flat
    w.sid, w.did = survey["id"], dep["id"]
    yield w
    for x in u.values():
        x.close()


def api(lc, who):
    return lc.u[who].api


def events(lc, rid):
    return lc.c.psql("SELECT version, action, stage, status, actor::text, override, message "
                     "FROM response_events WHERE response_id = %s ORDER BY version", rid)


def status_of(lc, who, rid):
    return api(lc, who).get(f"/v1/responses/{rid}").status_code


def test_two_stage_approval(lc):
    resp = submit_and_wait(api(lc, "enum"), lc.did, data(1))
    rid = resp["id"]
    assert (resp["status"], resp["stage"], resp["version"]) == ("pending", 1, 1)
    # Who sees it at stage 1: the stage-1 approver and the manager, not the viewer nor stage 2.
    assert status_of(lc, "appr1", rid) == 200
    assert status_of(lc, "manager", rid) == 200
    assert status_of(lc, "viewer", rid) == 404
    assert status_of(lc, "appr2", rid) == 404
    assert status_of(lc, "enum2", rid) == 404
    r = api(lc, "appr2").post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 404, r.text
    r = api(lc, "appr1").post(f"/v1/responses/{rid}/approve", json={"message": "looks right"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["stage"], got["version"]) == ("pending", 2, 2)
    assert status_of(lc, "appr1", rid) == 404  # no longer at its stage
    assert status_of(lc, "appr2", rid) == 200
    r = api(lc, "appr2").post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["stage"], got["version"]) == ("final", 0, 3)
    # Final: viewers and every approver read it; approving again is 409.
    for who in ("viewer", "appr1", "appr2", "enum", "manager", "owner"):
        assert status_of(lc, who, rid) == 200, who
    assert status_of(lc, "enum2", rid) == 404
    r = api(lc, "appr2").post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 409 and error_body(r)["code"] == "not_pending"
    r = api(lc, "viewer").post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 403, r.text
    ev = events(lc, rid)
    assert [(e[0], e[1], e[2], e[3], e[5]) for e in ev] == [
        (1, "submit", 1, "pending", False), (2, "approve", 1, "pending", False),
        (3, "approve", 2, "final", False)]
    assert ev[1][4] == lc.u["appr1"].id and ev[1][6] == "looks right"
    audit = lc.c.psql("SELECT action, actor::text, detail->>'override' FROM audit "
                      "WHERE target_id = %s AND org_id = %s ORDER BY id", rid, lc.org["id"])
    assert audit == [("response.approve", lc.u["appr1"].id, "false"),
                     ("response.approve", lc.u["appr2"].id, "false")]


def test_reject_and_resubmit(lc):
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(2))["id"]
    r = api(lc, "appr1").post(f"/v1/responses/{rid}/reject", json={})
    assert r.status_code == 422 and "message" in error_body(r)["fields"]
    r = api(lc, "appr1").post(f"/v1/responses/{rid}/reject", json={"message": "members is wrong"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["stage"], got["rejection_message"]) == ("rejected", 1, "members is wrong")
    own = api(lc, "enum").get(f"/v1/responses/{rid}").json()
    assert own["status"] == "rejected" and own["rejection_message"] == "members is wrong"
    assert status_of(lc, "appr1", rid) == 404  # rejected: not pending at its stage, not final
    r = api(lc, "manager").post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 409 and error_body(r)["code"] == "not_pending"
    # Resubmission: only the submitter, answers checked against the form.
    r = api(lc, "enum").patch(f"/v1/responses/{rid}", json={"data": {"household": "x", "members": 0}})
    assert r.status_code == 422 and "members" in error_body(r)["fields"]
    r = api(lc, "enum2").patch(f"/v1/responses/{rid}", json={"data": data(3)})
    assert r.status_code == 404
    r = api(lc, "enum").patch(f"/v1/responses/{rid}", json={"data": data(3)})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["stage"], got["version"]) == ("pending", 1, 3)
    assert "rejection_message" not in got and got["data"]["members"] == 4
    assert [e[1] for e in events(lc, rid)] == ["submit", "reject", "resubmit"]
    # A pending response is not the submitter's to edit.
    r = api(lc, "enum").patch(f"/v1/responses/{rid}", json={"data": data(4)})
    assert r.status_code == 403, r.text


def test_override_is_recorded(lc):
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(5))["id"]
    r = api(lc, "manager").post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 200 and r.json()["stage"] == 2
    r = api(lc, "owner").post(f"/v1/responses/{rid}/reject", json={"message": "survey admin says no"})
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    ev = events(lc, rid)
    assert [(e[1], e[2], e[5]) for e in ev] == [("submit", 1, False), ("approve", 1, True), ("reject", 2, True)]
    audit = lc.c.psql("SELECT action, detail->>'override' FROM audit WHERE target_id = %s ORDER BY id", rid)
    assert audit == [("response.approve", "true"), ("response.reject", "true")]


def test_viewer_sees_only_final_and_enumerator_only_own(lc):
    a = submit_and_wait(api(lc, "enum"), lc.flat["id"], data(6))        # final at once
    b = submit_and_wait(api(lc, "enum2"), lc.did, data(7))              # pending
    assert a["status"] == "final" and a["stage"] == 0
    path = f"/v1/surveys/{lc.sid}/responses"
    viewer = list_all(api(lc, "viewer"), path)
    assert viewer and all(i["status"] == "final" for i in viewer)
    assert a["id"] in {i["id"] for i in viewer} and b["id"] not in {i["id"] for i in viewer}
    mine = list_all(api(lc, "enum2"), path)
    assert mine and all(i["submitted_by"] == lc.u["enum2"].id for i in mine)
    appr1 = list_all(api(lc, "appr1"), path)
    assert all(i["status"] == "final" or (i["status"] == "pending" and i["stage"] == 1) for i in appr1)
    assert b["id"] in {i["id"] for i in appr1}
    managed = {i["id"] for i in list_all(api(lc, "manager"), path)}
    assert b["id"] in managed and a["id"] not in managed  # manages only the two-stage deployment
    assert {a["id"], b["id"]} <= {i["id"] for i in list_all(api(lc, "owner"), path)}
    assert list_all(api(lc, "manager"), path, {"status": "final"}) and \
        all(i["status"] == "final" for i in list_all(api(lc, "manager"), path, {"status": "final"}))
    only_flat = list_all(api(lc, "owner"), path, {"deployment": lc.flat["id"]})
    assert only_flat and all(i["deployment_id"] == lc.flat["id"] for i in only_flat)
    r = api(lc, "stranger").get(path)
    assert r.status_code == 404


def test_confidential_answers(lc):
    rid = submit_and_wait(api(lc, "enum"), lc.flat["id"], data(8, phone="555-0199"))["id"]
    assert api(lc, "owner").get(f"/v1/responses/{rid}").json()["data"]["phone"] == "555-0199"
    assert api(lc, "orgadmin").get(f"/v1/responses/{rid}").json()["data"]["phone"] == "555-0199"
    for who in ("viewer", "enum"):
        got = api(lc, who).get(f"/v1/responses/{rid}").json()
        assert "phone" not in got["data"] and got["data"]["household"] == "House 8", who
    listed = {i["id"]: i for i in list_all(api(lc, "viewer"), f"/v1/surveys/{lc.sid}/responses")}
    assert "phone" not in listed[rid]["data"]
    # The deployment's implicit manager (admin membership above its branch is the org admin, a
    # survey admin); a named manager who is not a survey admin edits without losing the answer.
    r = api(lc, "owner").post(f"/v1/surveys/{lc.sid}/deployments", json={
        "name": "managed", "roles": {"enumerators": [P("user", lc.u["enum"].id)],
                                     "managers": [P("user", lc.u["manager"].id)]}})
    assert r.status_code == 201, r.text
    dep = r.json()["id"]
    rid2 = submit_and_wait(api(lc, "enum"), dep, data(9, phone="555-0123"))["id"]
    r = api(lc, "manager").patch(f"/v1/responses/{rid2}", json={"data": {"household": "Edited", "members": 3}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "final" and got["version"] == 2 and "phone" not in got["data"]
    full = api(lc, "owner").get(f"/v1/responses/{rid2}").json()
    assert full["data"] == {"household": "Edited", "members": 3, "phone": "555-0123"}


def test_manager_edit_keeps_status(lc):
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(10))["id"]
    r = api(lc, "manager").patch(f"/v1/responses/{rid}", json={
        "data": data(11), "location": {"lat": 1.5, "lon": 2.5}})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["status"], got["stage"], got["version"]) == ("pending", 1, 2)
    # the survey has a confidential question, so it is in confidential mode (migration 024): the
    # manager is shown the point moved, the survey admin the point stored
    assert got["location"] != {"lat": 1.5, "lon": 2.5}
    assert abs(got["location"]["lat"] - 1.5) < 0.01 and abs(got["location"]["lon"] - 2.5) < 0.01
    assert api(lc, "owner").get(f"/v1/responses/{rid}").json()["location"] == {"lat": 1.5, "lon": 2.5}
    assert api(lc, "owner").get(f"/v1/responses/{rid}").json()["data"] == data(11)
    assert [e[1] for e in events(lc, rid)] == ["submit", "edit"]
    r = api(lc, "appr1").patch(f"/v1/responses/{rid}", json={"data": data(12)})
    assert r.status_code == 403
    r = api(lc, "stranger").patch(f"/v1/responses/{rid}", json={"data": data(12)})
    assert r.status_code == 404


def test_delete(lc):
    rid = submit_and_wait(api(lc, "enum"), lc.flat["id"], data(13))["id"]
    for who in ("viewer", "enum"):
        r = api(lc, who).delete(f"/v1/responses/{rid}")
        assert r.status_code == 403, (who, r.text)
        error_body(r)
    assert api(lc, "stranger").delete(f"/v1/responses/{rid}").status_code == 404
    r = api(lc, "owner").delete(f"/v1/responses/{rid}")
    assert r.status_code == 204, r.text
    for who in ("owner", "viewer", "enum"):
        assert status_of(lc, who, rid) == 404
    assert rid not in {i["id"] for i in list_all(api(lc, "owner"), f"/v1/surveys/{lc.sid}/responses")}
    assert api(lc, "owner").delete(f"/v1/responses/{rid}").status_code == 404
    assert events(lc, rid)[-1][1] == "delete"
    assert lc.c.psql("SELECT count(*) FROM audit WHERE action = 'response.delete' AND target_id = %s "
                     "AND org_id = %s", rid, lc.org["id"]) == [(1,)]


def test_survey_grants(lc):
    s = lc.u["stranger"]
    path = f"/v1/surveys/{lc.sid}"
    assert s.api.get(path).status_code == 404
    assert lc.sid not in {x["id"] for x in list_all(s.api, "/v1/surveys")}
    r = api(lc, "viewer").put(f"{path}/access", json={"principal_type": "user", "principal_id": s.id,
                                                      "role": "viewer"})
    assert r.status_code == 403  # a deployment viewer is not a survey admin
    r = api(lc, "owner").put(f"{path}/access", json={"principal_type": "user", "principal_id": s.id,
                                                     "role": "viewer"})
    assert r.status_code == 200 and r.json()["role"] == "viewer", r.text
    got = s.api.get(path)
    assert got.status_code == 200 and got.json()["role"] == "viewer"
    assert lc.sid in {x["id"] for x in list_all(s.api, "/v1/surveys")}
    assert list_all(s.api, f"{path}/responses") == []          # design only
    assert len(list_all(s.api, f"{path}/deployments")) >= 2    # sees every deployment
    r = s.api.put(f"{path}/definition", json={"definition": DEF})
    assert r.status_code == 403
    # Promoted to admin, the stranger sees every response; removed, nothing at all.
    r = api(lc, "owner").put(f"{path}/access", json={"principal_type": "user", "principal_id": s.id,
                                                     "role": "admin"})
    assert r.status_code == 200 and r.json()["role"] == "admin"
    assert list_all(s.api, f"{path}/responses")
    r = api(lc, "owner").put(f"{path}/access", json={"principal_type": "user", "principal_id": s.id,
                                                     "role": None})
    assert r.status_code == 200 and r.json()["role"] is None
    assert s.api.get(path).status_code == 404
    audit = lc.c.psql("SELECT detail->>'role' FROM audit WHERE action = 'survey.access' AND target_id = %s "
                      "AND org_id = %s AND detail->>'principal_id' = %s ORDER BY id", lc.sid, lc.org["id"], s.id)
    assert audit == [("viewer",), ("admin",), (None,)]
    # Principals must exist; teams and branches must be the survey's org's.
    for body in ({"principal_type": "user", "principal_id": new_id(), "role": "viewer"},
                 {"principal_type": "team", "principal_id": new_id(), "role": "viewer"},
                 {"principal_type": "branch", "principal_id": new_id(), "role": "admin"}):
        r = api(lc, "owner").put(f"{path}/access", json=body)
        assert r.status_code == 422, (body, r.text)
        assert "principal_id" in error_body(r)["fields"]
        assert error_body(r)["code"] == ("principal_not_member" if body["principal_type"] == "user"
                                         else "validation_failed"), r.text


def test_new_definition_version(lc):
    path = f"/v1/surveys/{lc.sid}"
    before = api(lc, "owner").get(path).json()["version"]
    new_def = {"questions": DEF["questions"] + [{"name": "notes", "type": "text", "label": "Notes"}]}
    r = api(lc, "owner").put(f"{path}/definition", json={"definition": new_def})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == before + 1
    got = api(lc, "enum").get(path).json()  # an enumerator reads the form
    assert got["version"] == before + 1 and got["definition"]["questions"][-1]["name"] == "notes"
    assert api(lc, "enum").put(f"{path}/definition", json={"definition": new_def}).status_code == 403
    r = api(lc, "owner").put(f"{path}/definition", json={"definition": {"questions": [{"name": "x"}]}})
    assert r.status_code == 422


def test_org_totp_policy(lc):
    """An org admin's power over a survey they did not create needs a TOTP session when the org
    says so; API keys never count. The creator's own power does not depend on it."""
    path = f"/v1/surveys/{lc.sid}"
    body = {"principal_type": "user", "principal_id": lc.u["stranger"].id, "role": "viewer"}
    assert api(lc, "orgadmin").put(f"{path}/access", json=body).status_code == 200
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(19))["id"]
    lc.c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", lc.org["id"])
    try:
        # Reads stay open; changes made with org-admin power need the TOTP session.
        assert api(lc, "orgadmin").get(f"/v1/responses/{rid}").status_code == 200
        for method, rpath, rbody in (("POST", f"/v1/responses/{rid}/approve", {}),
                                     ("POST", f"/v1/responses/{rid}/reject", {"message": "no"}),
                                     ("PATCH", f"/v1/responses/{rid}", {"data": data(20)}),
                                     ("DELETE", f"/v1/responses/{rid}", None),
                                     ("PUT", f"{path}/definition", {"definition": DEF})):
            r = api(lc, "orgadmin").request(method, rpath, json=rbody)
            assert r.status_code == 403 and error_body(r)["code"] == "totp_required", (method, rpath, r.text)
        # The stage's approver and a named manager are not org-admin power: unaffected.
        r = api(lc, "appr1").post(f"/v1/responses/{rid}/approve", json={})
        assert r.status_code == 200, r.text
        r = api(lc, "manager").patch(f"/v1/responses/{rid}", json={"data": data(21)})
        assert r.status_code == 200, r.text
        r = api(lc, "orgadmin").put(f"{path}/access", json=body)
        assert r.status_code == 403 and error_body(r)["code"] == "totp_required", r.text
        r = api(lc, "orgadmin").post(f"{path}/deployments", json={"name": "x", "roles": {}})
        assert r.status_code == 403 and error_body(r)["code"] == "totp_required", r.text
        assert api(lc, "owner").put(f"{path}/access", json=dict(body, role=None)).status_code == 200
    finally:
        lc.c.psql("UPDATE orgs SET require_admin_totp = false WHERE id = %s", lc.org["id"])


def test_implicit_managers_and_branch_reach(lc):
    """Membership role manager on the deployment's branch (or above) makes an implicit manager;
    a plain member of the branch is not one."""
    c, org = lc.c, lc.org
    mgr, member = User(c, "branch manager"), User(c, "branch member")
    try:
        add_member(c, org["id"], mgr.id, "manager", branch_id=org["root_branch_id"])
        add_member(c, org["id"], member.id, "member", branch_id=org["root_branch_id"])
        rid = submit_and_wait(api(lc, "enum"), lc.did, data(14))["id"]
        assert mgr.api.get(f"/v1/responses/{rid}").status_code == 200
        assert member.api.get(f"/v1/responses/{rid}").status_code == 404
        r = mgr.api.post(f"/v1/responses/{rid}/approve", json={})
        assert r.status_code == 200 and r.json()["stage"] == 2
        assert events(lc, rid)[-1][5] is True  # an override: not the stage's approver
    finally:
        mgr.close()
        member.close()


# ---- bad input ----

def test_malformed_json_is_400(lc):
    rid = new_id()
    o = api(lc, "owner")
    for method, path in (("PUT", f"/v1/surveys/{lc.sid}/access"), ("PUT", f"/v1/surveys/{lc.sid}/definition"),
                         ("POST", f"/v1/surveys/{lc.sid}/deployments"), ("PATCH", f"/v1/responses/{rid}"),
                         ("POST", f"/v1/responses/{rid}/approve"), ("POST", f"/v1/responses/{rid}/reject")):
        for raw in (b"{", b"[1,2]", b"\"x\"", b"{\"a\":}"):
            r = o.request(method, path, data=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (method, path, raw, r.status_code, r.text)
            error_body(r)


def test_wrong_types_are_422(lc):
    o = api(lc, "owner")
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(15))["id"]
    cases = [
        ("PUT", f"/v1/surveys/{lc.sid}/access", {"principal_type": 1, "principal_id": "x", "role": "owner"},
         {"principal_type", "principal_id", "role"}),
        ("PUT", f"/v1/surveys/{lc.sid}/access", {"principal_type": "group", "principal_id": new_id()},
         {"principal_type", "role"}),
        ("PUT", f"/v1/surveys/{lc.sid}/definition", {"definition": []}, {"definition"}),
        ("PUT", f"/v1/surveys/{lc.sid}/definition", {}, {"definition"}),
        ("POST", f"/v1/surveys/{lc.sid}/deployments",
         {"name": 5, "roles": {"enumerators": [{"type": "robot", "id": new_id()}]}}, {"name", "enumerators"}),
        ("POST", f"/v1/surveys/{lc.sid}/deployments",
         {"name": "x", "roles": {"approvers": [[]]}}, {"approvers"}),
        ("POST", f"/v1/surveys/{lc.sid}/deployments",
         {"name": "x", "roles": {"enumerators": [P("user", new_id())]}}, {"roles"}),
        ("POST", f"/v1/surveys/{lc.sid}/deployments",
         {"name": "x", "branch_id": new_id()}, {"branch_id"}),
        ("PATCH", f"/v1/responses/{rid}", {"data": "no"}, {"data"}),
        ("PATCH", f"/v1/responses/{rid}", {"data": data(1), "location": {"lat": 91, "lon": 0}}, {"location"}),
        ("POST", f"/v1/responses/{rid}/approve", {"message": 7}, {"message"}),
        ("POST", f"/v1/responses/{rid}/reject", {"message": ""}, {"message"}),
        ("POST", f"/v1/responses/{rid}/reject", {"message": ["a"]}, {"message"}),
    ]
    for method, path, body, fields in cases:
        r = o.request(method, path, json=body)
        assert r.status_code == 422, (method, path, body, r.status_code, r.text)
        assert fields <= set(error_body(r).get("fields", {})), (body, r.text)


def test_absurd_sizes(lc):
    o = api(lc, "owner")
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(16))["id"]
    r = o.post(f"/v1/responses/{rid}/reject", json={"message": "x" * 2001})
    assert r.status_code == 422
    r = o.post(f"/v1/responses/{rid}/reject", json={"message": "x" * 200000})
    assert r.status_code == 413  # evhttp's own limit (max_body_bytes) answers before the handler
    r = o.post(f"/v1/surveys/{lc.sid}/deployments", json={"name": "n" * 201})
    assert r.status_code == 422
    many = [P("user", new_id()) for _ in range(1001)]
    r = o.post(f"/v1/surveys/{lc.sid}/deployments", json={"name": "big", "roles": {"viewers": many}})
    assert r.status_code in (413, 422), r.text
    r = o.post(f"/v1/surveys/{lc.sid}/deployments",
               json={"name": "stages", "roles": {"approvers": [[P("user", lc.u["appr1"].id)]] * 17}})
    assert r.status_code == 422
    for q in ({"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"after": "zz"}, {"status": "lost"},
              {"deployment": "nope"}, {"limit": "9" * 40}):
        r = o.get(f"/v1/surveys/{lc.sid}/responses", params=q)
        assert r.status_code == 422, (q, r.text)
    for q in ({"limit": 0}, {"after": "not-a-cursor"}):
        for path in ("/v1/surveys", f"/v1/surveys/{lc.sid}/deployments"):
            assert o.get(path, params=q).status_code == 422, (path, q)


def test_unknown_ids_are_404(lc):
    o = api(lc, "owner")
    for bad in (new_id(), "not-a-uuid", "0" * 36):
        for method, path, body in (
                ("GET", f"/v1/surveys/{bad}", None),
                ("PUT", f"/v1/surveys/{bad}/definition", {"definition": DEF}),
                ("PUT", f"/v1/surveys/{bad}/access", {"principal_type": "user", "principal_id": lc.u["enum"].id,
                                                      "role": "viewer"}),
                ("POST", f"/v1/surveys/{bad}/deployments", {"name": "x"}),
                ("GET", f"/v1/surveys/{bad}/deployments", None),
                ("GET", f"/v1/surveys/{bad}/responses", None),
                ("GET", f"/v1/deployments/{bad}", None),
                ("GET", f"/v1/responses/{bad}", None),
                ("PATCH", f"/v1/responses/{bad}", {"data": data(1)}),
                ("DELETE", f"/v1/responses/{bad}", None),
                ("POST", f"/v1/responses/{bad}/approve", {}),
                ("POST", f"/v1/responses/{bad}/reject", {"message": "no"})):
            r = o.request(method, path, json=body) if body is not None else o.request(method, path)
            assert r.status_code == 404, (method, path, r.status_code, r.text)
            error_body(r)


def test_pagination_of_surveys_and_deployments(lc):
    o = api(lc, "owner")
    made = []
    for i in range(3):
        r = o.post("/v1/surveys", json={"org_id": lc.org["id"], "name": f"paged {i}", "definition": DEF})
        assert r.status_code == 201
        made.append(r.json()["id"])
    seen = [s["id"] for s in list_all(o, "/v1/surveys", limit=2)]
    assert len(seen) == len(set(seen)) and set(made) <= set(seen)
    deps = list_all(o, f"/v1/surveys/{lc.sid}/deployments", limit=1)
    ids = [d["id"] for d in deps]
    assert len(ids) == len(set(ids)) and {lc.did, lc.flat["id"]} <= set(ids)
    two = next(d for d in deps if d["id"] == lc.did)
    assert two["roles"]["approvers"] == [[P("user", lc.u["appr1"].id)], [P("user", lc.u["appr2"].id)]]
    # An enumerator lists only the deployments naming them.
    mine = {d["id"] for d in list_all(api(lc, "enum2"), f"/v1/surveys/{lc.sid}/deployments")}
    assert mine == {lc.did}
    assert api(lc, "enum2").get(f"/v1/deployments/{lc.flat['id']}").status_code == 404
    assert api(lc, "enum2").get(f"/v1/deployments/{lc.did}").status_code == 200


def test_changes_answer_503_while_postgres_refuses(lc):
    """Edits, decisions, deletes and grants are written synchronously: 503 + Retry-After while
    PostgreSQL refuses connections, and they work again once it accepts them."""
    from faults import pg_accept, pg_refuse
    from fvharness import wait_until
    rid = submit_and_wait(api(lc, "enum"), lc.did, data(17))["id"]
    o = api(lc, "owner")
    calls = [("POST", f"/v1/responses/{rid}/approve", {}),
             ("PATCH", f"/v1/responses/{rid}", {"data": data(18)}),
             ("DELETE", f"/v1/responses/{rid}", None),
             ("PUT", f"/v1/surveys/{lc.sid}/access", {"principal_type": "user",
                                                      "principal_id": lc.u["stranger"].id, "role": None}),
             ("GET", f"/v1/surveys/{lc.sid}/responses", None)]
    pg_refuse(lc.c)
    try:
        def refused():
            r = o.get(f"/v1/responses/{rid}")
            return r.status_code == 503
        wait_until(refused, 60, what="the front end to notice PostgreSQL refusing")
        for method, path, body in calls:
            r = o.request(method, path, json=body) if body is not None else o.request(method, path)
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.headers.get("Retry-After"), r.headers
            assert error_body(r)["code"].startswith("db_")
    finally:
        pg_accept(lc.c)
    wait_until(lambda: o.get(f"/v1/responses/{rid}").status_code == 200, 60, what="PostgreSQL back")
    r = o.post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 200 and r.json()["version"] == 2, r.text


def test_team_and_branch_principals(lc):
    """A grant to a branch reaches the members of that branch and of the branches above it, not
    those of a sub-branch; a deployment to a team makes the team's managers implicit managers."""
    from accesshelp import add_branch, add_team
    c, org = lc.c, lc.org
    region = add_branch(c, org["id"], org["root_branch_id"], "region")
    district = add_branch(c, org["id"], region, "district")
    team = add_team(c, org["id"], "field team")
    up, down, tm = User(c, "region member"), User(c, "district member"), User(c, "team manager")
    try:
        add_member(c, org["id"], up.id, "member", branch_id=region)
        add_member(c, org["id"], down.id, "member", branch_id=district)
        add_member(c, org["id"], tm.id, "manager", team_id=team)
        path = f"/v1/surveys/{lc.sid}"
        r = api(lc, "owner").put(f"{path}/access", json={"principal_type": "branch", "principal_id": region,
                                                         "role": "viewer"})
        assert r.status_code == 200, r.text
        assert up.api.get(path).status_code == 200
        assert down.api.get(path).status_code == 404
        assert tm.api.get(path).status_code == 404
        r = api(lc, "owner").post(f"{path}/deployments", json={
            "name": "to a team", "team_id": team, "roles": {"enumerators": [P("user", lc.u["enum"].id)]}})
        assert r.status_code == 201 and r.json()["team_id"] == team, r.text
        dep = r.json()["id"]
        rid = submit_and_wait(api(lc, "enum"), dep, data(22))["id"]
        assert tm.api.get(f"/v1/responses/{rid}").status_code == 200   # implicit manager
        assert tm.api.get(path).status_code == 200                      # so it sees the survey
        assert down.api.get(f"/v1/responses/{rid}").status_code == 404
        r = tm.api.delete(f"/v1/responses/{rid}")
        assert r.status_code == 204, r.text
        api(lc, "owner").put(f"{path}/access", json={"principal_type": "branch", "principal_id": region,
                                                     "role": None})
        assert up.api.get(path).status_code == 404
    finally:
        for x in (up, down, tm):
            x.close()
