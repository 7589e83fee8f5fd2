"""The main path: org -> survey -> deployment -> submission -> worker -> read back and list."""
import uuid

from conftest import DEFINITION, good_data, make_survey
from fvharness import error_body, new_id


def test_create_org(admin):
    r = admin.post("/v1/orgs", json={"name": "Flow Org"})
    assert r.status_code == 201, r.text
    org = r.json()
    assert org["name"] == "Flow Org"
    uuid.UUID(org["id"])
    uuid.UUID(org["root_branch_id"])
    assert org["id"] != org["root_branch_id"]


def test_org_without_name_is_422(admin):
    r = admin.post("/v1/orgs", json={})
    assert r.status_code in (400, 422), r.text
    error_body(r)


def test_create_and_read_survey(world):
    admin = world.admin
    r = admin.post("/v1/surveys", json={"org_id": world.org_id, "name": "Flow survey",
                                        "definition": DEFINITION})
    assert r.status_code == 201, r.text
    s = r.json()
    uuid.UUID(s["id"])
    assert s["version"] == 1
    r = admin.get(f"/v1/surveys/{s['id']}")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["id"] == s["id"]
    assert got["name"] == "Flow survey"
    assert got["definition"]["questions"] == DEFINITION["questions"]


def test_invalid_definitions_are_422(world):
    bad = [
        {"questions": [{"name": "x", "type": "colour", "label": "X"}]},          # unknown type
        {"questions": "no"},                                                  # not a list
        {"questions": [{"type": "text", "label": "no name"}]},                 # no name
        {"questions": [{"name": "a", "type": "text", "label": "A"},
                       {"name": "a", "type": "integer", "label": "A again"}]},   # duplicate name
    ]
    for d in bad:
        r = world.admin.post("/v1/surveys", json={"org_id": world.org_id, "name": "bad", "definition": d})
        assert r.status_code == 422, (d, r.status_code, r.text)
        error_body(r)


def test_survey_in_someone_elses_org_is_refused(world):
    r = world.stranger.post("/v1/surveys", json={"org_id": world.org_id, "name": "intruder",
                                                 "definition": DEFINITION})
    assert r.status_code in (403, 404), r.text
    error_body(r)


def test_deployment_defaults_to_root_branch(world):
    r = world.admin.post(f"/v1/surveys/{world.survey_id}/deployments", json={
        "name": "second", "roles": {"enumerators": [{"type": "user", "id": world.enum_id}]}})
    assert r.status_code == 201, r.text
    dep = r.json()
    uuid.UUID(dep["id"])
    assert dep["survey_id"] == world.survey_id
    row = world.cluster.psql("SELECT branch_id::text FROM deployments WHERE id = %s", dep["id"])
    assert row == [(world.root_branch_id,)]


def test_submit_and_read_back(world):
    rid = new_id()
    data = good_data(7)
    r = world.submit(data, id=rid)
    assert r.status_code == 202, r.text
    assert r.json() == {"id": rid, "status": "queued"}
    resp = world.wait_readable(rid)
    assert resp["id"] == rid
    assert resp["survey_id"] == world.survey_id
    assert resp["deployment_id"] == world.deployment_id
    assert resp["status"] == "final"
    assert resp["data"] == data
    assert resp["submitted_by"] == world.enum_id
    assert resp["version"] == 1
    assert resp["location"] is None
    for k in ("created_at", "updated_at"):
        assert isinstance(resp[k], str) and resp[k][:4].isdigit()
    # The org's admin reads it too; a stranger does not even learn it exists.
    assert world.admin.get(f"/v1/responses/{rid}").status_code == 200
    r = world.stranger.get(f"/v1/responses/{rid}")
    assert r.status_code == 404
    error_body(r)


def test_submit_with_location(world):
    rid = new_id()
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses", json={
        "id": rid, "data": good_data(), "location": {"lat": -1.2921, "lon": 36.8219, "accuracy": 8.5}})
    assert r.status_code == 202, r.text
    loc = world.wait_readable(rid)["location"]
    assert abs(loc["lat"] - -1.2921) < 1e-9 and abs(loc["lon"] - 36.8219) < 1e-9


def test_submit_without_id_gets_one(world):
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses", json={"data": good_data()})
    assert r.status_code == 202, r.text
    rid = r.json()["id"]
    uuid.UUID(rid)
    assert world.wait_readable(rid)["id"] == rid


def test_unknown_response_is_404(world):
    r = world.admin.get(f"/v1/responses/{new_id()}")
    assert r.status_code == 404
    error_body(r)


def test_list_paginates(world):
    survey, dep = make_survey(world.admin, world.org_id, [world.enum_id], name="Paged survey")
    ids = [new_id() for _ in range(5)]
    for i, rid in enumerate(ids):
        r = world.submit(good_data(i), id=rid, deployment=dep["id"])
        assert r.status_code == 202, r.text
    for rid in ids:
        world.wait_readable(rid)

    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 2} if after is None else {"limit": 2, "after": after}
        r = world.admin.get(f"/v1/surveys/{survey['id']}/responses", params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) >= {"items", "next"}
        assert len(page["items"]) <= 2
        if pages == 0:
            assert len(page["items"]) == 2 and page["next"], page
        for item in page["items"]:
            assert item["survey_id"] == survey["id"]
            assert item["deployment_id"] == dep["id"]
        seen += [item["id"] for item in page["items"]]
        pages += 1
        assert pages <= 4, "more pages than 5 items at 2 a page need"
        if page["next"] is None:
            break
        after = page["next"]
    assert len(seen) == len(set(seen)), "an item came on two pages"
    assert set(seen) == set(ids)


def test_list_is_filtered_by_grants(world):
    rid = new_id()
    assert world.submit(id=rid).status_code == 202
    world.wait_readable(rid)
    r = world.stranger.get(f"/v1/surveys/{world.survey_id}/responses")
    # A stranger either may not list at all or sees nothing of this survey.
    assert r.status_code in (200, 403, 404), r.text
    if r.status_code == 200:
        assert r.json()["items"] == []
    else:
        error_body(r)
    # The org's admin finds it, following the pages.
    found, after = False, None
    for _ in range(100):
        params = {"limit": 50} if after is None else {"limit": 50, "after": after}
        page = world.admin.get(f"/v1/surveys/{world.survey_id}/responses", params=params).json()
        found = found or rid in {i["id"] for i in page["items"]}
        after = page["next"]
        if found or after is None:
            break
    assert found
