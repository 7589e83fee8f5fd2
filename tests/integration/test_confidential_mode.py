"""Confidential mode (issue 12, DESIGN.md section 3; migration 024): confidential answers only for
survey admins in reads, lists, history, edits and the OpenRosa XML and attachments; every other
reader gets each response's GPS points (location and geopoint answers) moved by one offset drawn
once per response from a CSPRNG, uniform over a disc of confidential_gps_radius_m; bad settings
are refused with 422."""
import math
import uuid
import xml.etree.ElementTree as ET

import pytest

from accesshelp import P, User, add_plain_member, list_all, ok, submit_and_wait
from fvharness import new_id, wait_until

RADIUS = 500.0
EARTH = 6371008.8
DEF = {"confidential_mode": True, "confidential_gps_radius_m": RADIUS, "questions": [
    {"name": "household", "type": "text", "required": True},
    {"name": "home", "type": "geopoint"},
    {"name": "secret", "type": "text", "confidential": True},
    {"name": "photo", "type": "text"},
]}


@pytest.fixture(scope="module")
def cm(workers):
    c = workers
    names = ["owner", "enum", "viewer", "manager", "appr"]
    u = {n: User(c, "cm " + n) for n in names}
    r = u["owner"].api.post("/v1/orgs", json={"name": "Confidential org"})
    assert r.status_code == 201, r.text
    org = r.json()
    for n in names[1:]:
        add_plain_member(c, org["id"], u[n].id)
    r = u["owner"].api.post("/v1/surveys", json={"org_id": org["id"], "name": "Conf", "definition": DEF})
    assert r.status_code == 201, r.text
    survey = r.json()
    r = u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "d", "roles": {"enumerators": [P("user", u["enum"].id)], "viewers": [P("user", u["viewer"].id)],
                               "managers": [P("user", u["manager"].id)]}})
    assert r.status_code == 201, r.text

    class CM:
        pass
    w = CM()
    w.c, w.u, w.org, w.survey, w.sid, w.did = c, u, org, survey, survey["id"], r.json()["id"]
    r = u["owner"].api.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": "staged", "roles": {"enumerators": [P("user", u["enum"].id)],
                                    "approvers": [[P("user", u["appr"].id)]]}})
    assert r.status_code == 201, r.text
    w.staged = r.json()["id"]
    yield w
    for x in u.values():
        x.close()


def offset_m(true, moved):
    """(north, east) metres from true to moved, on the sphere the server uses."""
    dn = math.radians(moved["lat"] - true["lat"]) * EARTH
    dlon = (moved["lon"] - true["lon"] + 180.0) % 360.0 - 180.0
    de = math.radians(dlon) * EARTH * math.cos(math.radians(true["lat"]))
    return dn, de


def submit(w, i, lat, lon):
    rid = new_id()
    r = w.u["enum"].api.post(f"/v1/deployments/{w.did}/responses", json={
        "id": rid, "data": {"household": f"H{i}", "home": {"lat": lat, "lon": lon, "accuracy": 4.5},
                            "secret": f"marker-{i}"},
        "location": {"lat": lat, "lon": lon, "accuracy": 4.5}})
    assert r.status_code == 202, r.text
    return rid


def test_one_point_for_every_read_and_truth_for_admins(cm):
    true = {"lat": 46.2, "lon": 6.15, "accuracy": 4.5}
    rid = submit(cm, 0, true["lat"], true["lon"])
    wait_until(lambda: cm.u["enum"].api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="written")
    seen = set()
    for _ in range(100):
        r = cm.u["viewer"].api.get(f"/v1/responses/{rid}")
        assert r.status_code == 200, r.text
        got = r.json()
        assert "secret" not in got["data"] and got["data"]["household"] == "H0"
        # the location and the geopoint answer move together (one offset per response)
        assert got["location"] == got["data"]["home"]
        seen.add((got["location"]["lat"], got["location"]["lon"]))
    assert len(seen) == 1
    moved = {"lat": seen.pop()[0], "lon": got["location"]["lon"]}
    assert (moved["lat"], moved["lon"]) != (true["lat"], true["lon"])
    assert math.hypot(*offset_m(true, moved)) <= RADIUS * (1 + 1e-9)
    assert got["location"]["accuracy"] == 4.5
    # every other reader who is not survey admin: the same moved point, no confidential answer
    for who in ("manager", "enum"):
        got = cm.u[who].api.get(f"/v1/responses/{rid}").json()
        assert (got["location"]["lat"], got["location"]["lon"]) == (moved["lat"], moved["lon"]), who
        assert "secret" not in got["data"], who
    listed = {i["id"]: i for i in list_all(cm.u["viewer"].api, f"/v1/surveys/{cm.sid}/responses")}
    assert listed[rid]["location"] == got["location"] and "secret" not in listed[rid]["data"]
    hist = cm.u["viewer"].api.get(f"/v1/responses/{rid}/history")
    assert hist.status_code == 200, hist.text
    for item in hist.json()["items"]:
        st = item["state"]
        assert st["location"] == got["location"] and st["data"]["home"] == got["location"]
        assert "secret" not in st["data"]
    assert "marker-0" not in hist.text and "gps_seed" not in hist.text
    # the offset is drawn once: no update changes it (a revert to a state written before 024
    # writes a null seed)
    seed = cm.c.psql("SELECT gps_seed::text FROM responses WHERE id = %s", rid)
    cm.c.psql("UPDATE responses SET gps_seed = NULL WHERE id = %s", rid)
    cm.c.psql("UPDATE responses SET gps_seed = gen_random_uuid() WHERE id = %s", rid)
    assert cm.c.psql("SELECT gps_seed::text FROM responses WHERE id = %s", rid) == seed
    again = cm.u["viewer"].api.get(f"/v1/responses/{rid}").json()
    assert (again["location"]["lat"], again["location"]["lon"]) == (moved["lat"], moved["lon"])
    # the survey admin sees the truth, everywhere
    full = cm.u["owner"].api.get(f"/v1/responses/{rid}").json()
    assert full["location"] == true and full["data"]["home"] == true and full["data"]["secret"] == "marker-0"
    fh = cm.u["owner"].api.get(f"/v1/responses/{rid}/history").json()["items"]
    assert all(i["state"]["location"] == true for i in fh)


def test_edit_by_manager_keeps_true_points(cm):
    rid = submit(cm, 1, -33.9, 151.2)
    wait_until(lambda: cm.u["enum"].api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="written")
    shown = cm.u["manager"].api.get(f"/v1/responses/{rid}").json()
    r = cm.u["manager"].api.patch(f"/v1/responses/{rid}", json={
        "data": dict(shown["data"], household="edited"), "location": shown["location"]})
    assert r.status_code == 200, r.text
    assert r.json()["location"] == shown["location"]
    full = cm.u["owner"].api.get(f"/v1/responses/{rid}").json()
    assert full["data"] == {"household": "edited", "home": {"lat": -33.9, "lon": 151.2, "accuracy": 4.5},
                            "secret": "marker-1"}
    assert full["location"] == {"lat": -33.9, "lon": 151.2, "accuracy": 4.5}
    # a point the manager really changes is stored as sent
    r = cm.u["manager"].api.patch(f"/v1/responses/{rid}", json={"data": shown["data"],
                                                                   "location": {"lat": -33.0, "lon": 151.0}})
    assert r.status_code == 200, r.text
    assert cm.u["owner"].api.get(f"/v1/responses/{rid}").json()["location"] == {"lat": -33.0, "lon": 151.0}


def test_offsets_spread_over_the_disc(cm):
    n = 1000
    truth = {}
    for i in range(n):
        lat, lon = -60.0 + 120.0 * i / n, -179.9 + 359.8 * ((i * 7919) % n) / n
        truth[submit(cm, 100 + i, lat, lon)] = {"lat": lat, "lon": lon}

    def all_written():
        items = list_all(cm.u["owner"].api, f"/v1/surveys/{cm.sid}/responses", limit=200)
        ids = {i["id"] for i in items}
        return items if set(truth) <= ids else None
    admin_items = wait_until(all_written, 180, interval=0.5, what="1000 responses written")
    for it in admin_items:
        if it["id"] in truth:
            assert (it["location"]["lat"], it["location"]["lon"]) == (truth[it["id"]]["lat"], truth[it["id"]]["lon"])
    viewer_items = {i["id"]: i for i in list_all(cm.u["viewer"].api, f"/v1/surveys/{cm.sid}/responses", limit=200)}
    offs = [offset_m(truth[rid], viewer_items[rid]["location"]) for rid in truth]
    dist = [math.hypot(dn, de) for dn, de in offs]
    assert all(0 < d <= RADIUS * (1 + 1e-9) for d in dist)
    # uniform over the AREA: P(d <= R/sqrt 2) = 1/2, P(d <= R/2) = 1/4 (binomial sd 0.016 and
    # 0.014 for 1000 draws: the tolerances are 5 sd, a false alarm about once in 10^6 runs)
    inner = sum(d <= RADIUS / math.sqrt(2) for d in dist) / n
    assert abs(inner - 0.5) < 0.08, inner
    quarter = sum(d <= RADIUS / 2 for d in dist) / n
    assert abs(quarter - 0.25) < 0.07, quarter
    # directions: each quadrant about 250 (sd 13.7; bounds about 5.8 sd)
    quads = [0, 0, 0, 0]
    for dn, de in offs:
        quads[(dn >= 0) * 2 + (de >= 0)] += 1
    assert all(170 <= q <= 330 for q in quads), quads
    # mean offset near 0 (each component has sd R/2 per draw, R/2/sqrt(1000) for the mean)
    mean_n = sum(o[0] for o in offs) / n
    mean_e = sum(o[1] for o in offs) / n
    assert abs(mean_n) < 0.08 * RADIUS and abs(mean_e) < 0.08 * RADIUS, (mean_n, mean_e)
    # no two responses share an offset (drawn once per response, not once per survey)
    assert len({(round(dn, 6), round(de, 6)) for dn, de in offs}) == n


def test_openrosa_xml_and_attachments_only_for_admins(cm):
    owner = cm.u["owner"].api
    form = ET.fromstring(owner.get(f"/v1/surveys/{cm.sid}/xform").content)
    data = form.find(".//{http://www.w3.org/2002/xforms}instance/{http://www.w3.org/2002/xforms}data")
    iid = str(uuid.uuid4())
    xml = (f'<?xml version="1.0"?>\n<data id="{data.get("id")}" version="{data.get("version")}">'
           f"<household>XML house</household><home>12.5 -7.25 100 3</home><secret>xml-marker.jpg</secret>"
           f"<photo>open.jpg</photo>"
           f"<meta><instanceID>uuid:{iid}</instanceID></meta></data>")
    r = cm.u["enum"].api.post(f"/v1/openrosa/deployments/{cm.did}/submission",
                              files=[("xml_submission_file", ("submission.xml", xml, "text/xml")),
                                     ("xml-marker.jpg", ("xml-marker.jpg", b"SECRET-JPEG", "image/jpeg")),
                                     ("open.jpg", ("open.jpg", b"OPEN-JPEG", "image/jpeg"))],
                              headers={"X-OpenRosa-Version": "1.0"})
    assert r.status_code in (201, 202), (r.status_code, r.text[:500])
    wait_until(lambda: owner.get(f"/v1/responses/{iid}").status_code == 200, 60, what="XML response written")
    assert owner.get(f"/v1/responses/{iid}/xml").text == xml
    assert owner.get(f"/v1/responses/{iid}/attachments/xml-marker.jpg").content == b"SECRET-JPEG"
    assert owner.get(f"/v1/responses/{iid}/attachments/open.jpg").content == b"OPEN-JPEG"
    for who in ("viewer", "manager", "enum"):
        r = cm.u[who].api.get(f"/v1/responses/{iid}/xml")
        assert r.status_code == 403, (who, r.status_code, r.text)
        assert r.json()["error"]["code"] == "forbidden" and "confidential mode" in r.text
        assert "xml-marker" not in r.text
        got = cm.u[who].api.get(f"/v1/responses/{iid}").json()
        assert "secret" not in got["data"] and "xml-marker" not in str(got)
        assert got["data"]["home"]["lat"] != 12.5 and got["data"]["photo"] == "open.jpg"
        # the file a confidential answer names is not served to them; the others are
        r = cm.u[who].api.get(f"/v1/responses/{iid}/attachments/xml-marker.jpg")
        assert r.status_code == 404 and b"SECRET" not in r.content, (who, r.status_code)
        assert cm.u[who].api.get(f"/v1/responses/{iid}/attachments/open.jpg").content == b"OPEN-JPEG"


@pytest.mark.parametrize("bad", [
    {"confidential_gps_radius_m": 0}, {"confidential_gps_radius_m": 100001},
    {"confidential_gps_radius_m": -1}, {"confidential_gps_radius_m": "1000"},
    {"confidential_gps_radius_m": 1e400}, {"confidential_mode": "yes"}, {"confidential_mode": 1},
])
def test_bad_settings_refused(cm, bad):
    definition = dict(DEF, **bad) if not isinstance(bad.get("confidential_gps_radius_m"), float) \
        or not math.isinf(bad["confidential_gps_radius_m"]) else None
    if definition is None:  # 1e400 is not a Python float: sent as raw JSON text
        body = ('{"org_id":"%s","name":"bad","definition":{"confidential_gps_radius_m":1e400,'
                '"questions":[{"name":"a","type":"text"}]}}' % cm.org["id"])
        r = cm.u["owner"].api.post("/v1/surveys", data=body, headers={"Content-Type": "application/json"})
        field = "confidential_gps_radius_m"
    else:
        r = cm.u["owner"].api.post("/v1/surveys", json={"org_id": cm.org["id"], "name": "bad",
                                                         "definition": definition})
        field = next(iter(bad))
    assert r.status_code == 422, r.text
    assert field in str(r.json()), r.text
    r = cm.u["owner"].api.put(f"/v1/surveys/{cm.sid}/definition",
                              json={"definition": dict(DEF, **{field: "nope"})})
    assert r.status_code == 422, r.text


def test_approver_sees_masked_points(cm):
    rid = new_id()
    true = {"lat": 0.5, "lon": 179.999}
    r = cm.u["enum"].api.post(f"/v1/deployments/{cm.staged}/responses", json={
        "id": rid, "data": {"household": "staged", "home": true, "secret": "appr-marker"}, "location": true})
    assert r.status_code == 202, r.text
    wait_until(lambda: cm.u["appr"].api.get(f"/v1/responses/{rid}").status_code == 200, 60, what="written")
    shown = cm.u["appr"].api.get(f"/v1/responses/{rid}").json()
    assert shown["status"] == "pending" and "secret" not in shown["data"]
    assert shown["location"] != true and shown["location"] == shown["data"]["home"]
    # near the antimeridian the longitude wraps into [-180, 180)
    assert -180 <= shown["location"]["lon"] < 180
    assert math.hypot(*offset_m(true, shown["location"])) <= RADIUS * (1 + 1e-9)
    r = cm.u["appr"].api.post(f"/v1/responses/{rid}/approve", json={})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["status"] == "final" and got["location"] == shown["location"] and "secret" not in got["data"]
    assert "appr-marker" not in r.text
    assert cm.u["owner"].api.get(f"/v1/responses/{rid}").json()["location"] == true


def test_geodesy_edges(cm):
    """Near a pole the latitude is clamped; across the antimeridian the longitude wraps; a point
    that is not one is never passed through (null), a missing location stays null."""
    rows = cm.c.psql(
        "SELECT (p->>'lat')::float8, (p->>'lon')::float8, lon0 FROM ("
        " SELECT fv_gps_displace(jsonb_build_object('lat', lat, 'lon', lon), gen_random_uuid(), 100000) AS p,"
        "        lon AS lon0"
        " FROM (VALUES (89.9, 179.99), (-89.9, -179.99), (90.0, 0.0), (0.0, 179.9999), (0.0, -180.0)) v(lat, lon),"
        " generate_series(1, 200)) t")
    assert len(rows) == 1000
    assert all(-90 <= lat <= 90 and -180 <= lon < 180 for lat, lon, _ in rows), rows[:5]
    assert any(lat == 90 for lat, _, _ in rows)  # clamped at the pole, not reflected past it
    near = [lon for _, lon, lon0 in rows if float(lon0) == 179.9999]
    assert len(near) == 200 and any(lon < 0 for lon in near) and any(lon > 0 for lon in near)
    assert cm.c.psql("SELECT fv_gps_displace('{\"lat\": \"x\", \"lon\": 1}', gen_random_uuid(), 10) IS NULL, "
                     "fv_gps_displace('null', gen_random_uuid(), 10), fv_gps_displace(NULL, gen_random_uuid(), 10) "
                     "IS NULL, fv_gps_displace('{\"lat\": 1, \"lon\": 1}', NULL, 10) IS NULL") == [(True, None, True, True)]


XFORM_CONF = """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
  xmlns:jr="http://openrosa.org/javarosa" xmlns:fv="https://fieldvault.org/xforms">
 <h:head><h:title>conf xform</h:title><model>
  <instance><data id="conf_xform" version="1" fv:confidential_gps_radius_m="{radius}">
   <name/><phone/><home/><meta><instanceID/></meta></data></instance>
  <bind nodeset="/data/name" type="string"/>
  <bind nodeset="/data/phone" type="string" fv:confidential="true()"/>
  <bind nodeset="/data/home" type="geopoint"/>
  <bind nodeset="/data/meta/instanceID" type="string" readonly="true()" jr:preload="uid"/>
 </model></h:head>
 <h:body><input ref="/data/name"/><input ref="/data/phone"/><input ref="/data/home"/></h:body></h:html>"""


def test_an_uploaded_xform_sets_confidential_mode(cm):
    """An XForm marks a question confidential with fv:confidential on its bind (Fieldvault's
    namespace, ignored by other clients) and sets the radius on its primary instance; its responses
    are then in confidential mode: a viewer sees neither the answer nor the true point, a survey
    admin sees both; the XForm downloaded back is byte for byte the one uploaded; a bad radius is
    refused as a JSON definition's is."""
    owner = cm.u["owner"].api
    bad = owner.post("/v1/surveys", json={"org_id": cm.org["id"], "name": "cx bad",
                                          "xform": XFORM_CONF.format(radius="far")})
    assert bad.status_code == 422 and "confidential_gps_radius_m" in bad.text, bad.text
    xform = XFORM_CONF.format(radius="300")
    s = ok(owner.post("/v1/surveys", json={"org_id": cm.org["id"], "name": "cx", "xform": xform}), 201)
    assert owner.get(f"/v1/surveys/{s['id']}/xform").text == xform
    d = ok(owner.post(f"/v1/surveys/{s['id']}/deployments", json={
        "name": "cx", "roles": {"enumerators": [P("user", cm.u["enum"].id)],
                                "viewers": [P("user", cm.u["viewer"].id)]}}), 201)
    iid = str(uuid.uuid4())
    xml = (f'<data id="conf_xform" version="1"><name>Ann</name><phone>CONFXFORM-555</phone>'
           f'<home>10.0 20.0 0 5</home><meta><instanceID>uuid:{iid}</instanceID></meta></data>')
    r = cm.u["enum"].api.post(f"/v1/openrosa/deployments/{d['id']}/submission",
                              files=[("xml_submission_file", ("submission.xml", xml, "text/xml"))],
                              headers={"X-OpenRosa-Version": "1.0"})
    assert r.status_code == 201, r.text[:300]
    mine = ok(owner.get(f"/v1/responses/{iid}"))
    assert mine["data"]["phone"] == "CONFXFORM-555" and mine["data"]["home"]["lat"] == 10.0
    seen = ok(cm.u["viewer"].api.get(f"/v1/responses/{iid}"))
    assert "phone" not in seen["data"] and "CONFXFORM" not in str(seen), seen
    assert seen["data"]["name"] == "Ann"
    dn, de = offset_m({"lat": 10.0, "lon": 20.0}, seen["data"]["home"])
    assert 0 < math.hypot(dn, de) <= 300 * 1.001, (dn, de)
