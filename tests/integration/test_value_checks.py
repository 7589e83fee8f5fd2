"""The date-time and geopoint rules exist once (common/fv_check.c): whatever the front end accepts
in a submission's envelope, PostgreSQL stores (nothing acknowledged ends in the dead letters), and
the edges it refuses are refused with a 422 naming the field."""
import pytest

from conftest import good_data
from fvharness import error_body, new_id

# Edges fv_check_datetime accepts; each must survive the worker's timestamptz cast.
ACCEPTED_TIMES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:59",     # lands before year 1 in UTC: PostgreSQL keeps it (BC)
    "9999-12-31T23:59:59-14:59",     # lands in year 10000 in UTC
    "2024-02-29T12:00:00.123456789Z",
    "2024-05-01t10:20:30z",          # RFC 3339 allows lower case
    "1899-12-31T23:59:59+00:00",     # before the old copy's 1900 floor
]

REFUSED_TIMES = [
    "0000-01-01T00:00:00Z",          # PostgreSQL has no year 0
    "2023-02-29T10:00:00Z",
    "2024-05-01T10:20:30+15:00",
    "2024-05-01T10:20:30",
    "2016-12-31T23:59:60Z",
    "2024-05-01T10:20:30.1234567890Z",
    "2024-05-01T10:20:30Z" + "0" * 30,
]


@pytest.mark.parametrize("ts", ACCEPTED_TIMES)
def test_accepted_date_times_are_stored(world, ts):
    rid = new_id()
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses",
                        json={"id": rid, "data": good_data(), "collected_at": ts})
    assert r.status_code == 202, r.text
    got = world.wait_readable(rid)
    assert got["collected_at"], got


@pytest.mark.parametrize("ts", REFUSED_TIMES)
def test_refused_date_times_name_the_field(world, ts):
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses",
                        json={"id": new_id(), "data": good_data(), "collected_at": ts})
    assert r.status_code == 422, r.text
    assert list(error_body(r)["fields"]) == ["collected_at"]


def test_geopoint_with_altitude_and_accuracy_is_stored_exactly(world):
    rid = new_id()
    loc = {"lat": -1.2921, "lon": 36.8219, "altitude": 1795.5, "accuracy": 4.25}
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses",
                        json={"id": rid, "data": good_data(), "location": loc})
    assert r.status_code == 202, r.text
    assert world.wait_readable(rid)["location"] == loc


@pytest.mark.parametrize("loc,reason", [
    ({"lat": 90.0001, "lon": 0}, "latitude"),
    ({"lat": 0, "lon": -180.5}, "longitude"),
    ({"lat": 0, "lon": 0, "accuracy": -1}, "accuracy"),
    ({"lat": 0, "lon": 0, "altitude": "high"}, "altitude"),
    ({"lat": 0, "lon": 0, "speed": 3}, "geopoint"),
    ({"lat": 0}, "geopoint"),
    ([0, 0], "geopoint"),
])
def test_bad_locations_are_refused_the_same_everywhere(world, loc, reason):
    """The submission, an edit and a site use one rule with one reason."""
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses",
                        json={"id": new_id(), "data": good_data(), "location": loc})
    assert r.status_code == 422, r.text
    assert reason in error_body(r)["fields"]["location"], r.text
    r = world.admin.post("/v1/sites", json={"org_id": world.org_id, "name": "Well 7", "type": "well",
                                            "privacy": "public", "location": loc})
    assert r.status_code == 422, r.text
    assert reason in error_body(r)["fields"]["location"], r.text
