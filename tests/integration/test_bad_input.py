"""Bad requests get the right 4xx with a JSON error (DESIGN.md section 5), never a 500, and the
front end keeps serving afterwards."""
import json
import socket

import pytest

from conftest import good_data, make_survey
from fvharness import error_body, new_id, read_status, tls_connect, wait_until


def post_raw(world, body, content_type="application/json", api=None, deployment=None):
    return (api or world.enum).post(
        f"/v1/deployments/{deployment or world.deployment_id}/responses",
        data=body, headers={"Content-Type": content_type})


def test_malformed_json_is_400(world):
    r = post_raw(world, b'{"id": "' + new_id().encode() + b'", "data": {')
    assert r.status_code == 400, r.text
    error_body(r)


def test_every_bad_field_reported_at_once(world):
    data = {"members": "many", "income": 3.5}  # members: wrong type; household: missing
    r = world.submit(data)
    assert r.status_code == 422, r.text
    err = error_body(r)
    fields = err.get("fields") or {}
    assert set(fields) >= {"household", "members"}, err
    assert "required" in str(fields["household"]).lower(), fields
    assert "integer" in str(fields["members"]).lower(), fields
    assert "income" not in fields


def test_unknown_question_is_422(world):
    data = dict(good_data(), favourite_colour="blue")
    r = world.submit(data)
    assert r.status_code == 422, r.text
    err = error_body(r)
    assert "favourite_colour" in (err.get("fields") or {}), err


@pytest.mark.parametrize("name,value,reason", [
    ("members", 0, None),           # below min 1
    ("members", 51, None),          # above max 50
    ("members", 2.5, "integer"),    # not an integer
    ("income", "lots", "number|decimal"),  # not a number
    ("visit", "2024-13-45", None),  # not a date
    ("household", "<script>", None),  # fails the pattern
])
def test_constraints(world, name, value, reason):
    r = world.submit(dict(good_data(), **{name: value}))
    assert r.status_code == 422, r.text
    fields = error_body(r).get("fields") or {}
    assert list(fields) == [name], fields
    if reason:
        assert any(w in str(fields[name]).lower() for w in reason.split("|")), fields


def test_oversized_body_is_413(world):
    """A client that sends `Expect: 100-continue` and, getting no 100 within a second, sends the
    body anyway (what curl and RFC 9110 section 10.1.1 clients do) reads a 413. The front end
    reads and drops the oversized body before answering (lingering close), so it never answers
    100 to a body it will refuse."""
    path = f"/v1/deployments/{world.deployment_id}/responses"
    size = 70000
    with tls_connect(world.cluster) as s:
        s.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   f"Authorization: Bearer {world.enum_key}\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {size}\r\nExpect: 100-continue\r\n\r\n").encode())
        s.settimeout(1.0)
        try:
            early = s.recv(4096)
        except (TimeoutError, socket.timeout):
            early = b""
        assert not early.startswith(b"HTTP/1.1 100"), "100 Continue for a body over the limit"
        s.settimeout(30)
        if not early:
            s.sendall(b"x" * size)
            status, _ = read_status(s)
        else:
            status = int(early.split(b" ", 2)[1])
    assert status == 413  # libevent's own 413 page may be HTML: only the status counts


def test_oversized_body_sent_whole_gets_413_not_a_reset(world):
    """A client that sends the whole oversized body must read a 413, not a connection reset (the
    server has to read and drop the body before closing, e.g. EVHTTP_SERVER_LINGERING_CLOSE):
    a phone that sees a network error retries forever instead of learning the body is too big."""
    body = json.dumps({"id": new_id(), "data": dict(good_data(), household="x" * 200000)}).encode()
    r = post_raw(world, body)
    assert r.status_code == 413


def test_non_uuid_id(world):
    r = world.submit(id="not-a-uuid")
    assert r.status_code in (400, 422), r.text
    error_body(r)


def test_unknown_deployment_is_404(world):
    r = world.submit(deployment=new_id())
    assert r.status_code == 404, r.text
    error_body(r)


def test_not_an_enumerator_is_403(world):
    # The org's admin sees the deployment but is not one of its enumerators: 403. A stranger may
    # not even see it: 404, as for a deployment that does not exist (issue 3's access model).
    r = world.submit(api=world.admin)
    assert r.status_code == 403, r.text
    error_body(r)
    r = world.submit(api=world.stranger)
    assert r.status_code == 404, r.text
    error_body(r)


def test_wrong_content_type(world):
    body = json.dumps({"id": new_id(), "data": good_data()}).encode()
    r = post_raw(world, body, content_type="text/plain")
    assert r.status_code in (400, 415), r.text
    error_body(r)


def test_unknown_route_is_404_json(world):
    r = world.enum.get("/v1/no-such-thing")
    assert r.status_code == 404, r.text
    error_body(r)
    r = world.enum.get("/nothing/here")
    assert r.status_code == 404, r.text
    error_body(r)


@pytest.mark.parametrize("body", [
    b"",
    b"null",
    b"[]",
    b'"a string"',
    b'{"data": [1, 2, 3]}',
    b'{"data": null}',
    b'{"id": 12, "data": {}}',
    b'{"data": {"household": "\xff\xfe"}}',               # invalid UTF-8
    b"[" * 20000 + b"]" * 20000,                           # deep nesting
    b'{"data": {"members": 1e999999, "household": "x"}}',  # number overflow
    b'{"data": {"members": 99999999999999999999999, "household": "x"}}',
    b'{"data": {"members": 3, "household": "x"}, "location": {"lat": 91, "lon": 0}}',
    b'{"data": {"members": 3, "household": "x"}, "location": "here"}',
    b'{"data": {"members": 3, "household": "x"}, "collected_at": "yesterday"}',
])
def test_garbage_is_4xx_never_500(world, body):
    r = post_raw(world, body)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if r.status_code != 413:
        error_body(r)


def test_still_serving_after_garbage(world, anon):
    assert anon.get("/healthz").status_code == 200
    r = world.submit()
    assert r.status_code == 202, r.text


def test_pattern_sees_the_whole_string(world):
    """A NUL must not end the string early for the pattern check ("a" matches, "a<NUL>;" not)."""
    r = world.submit(dict(good_data(), household="a\u0000<script>"))
    assert r.status_code in (400, 422), r.text
    error_body(r)


@pytest.mark.parametrize("text", ["a\u0000b", "\ud800 lone surrogate", "emoji \U0001F600 ok",
                                  "x" * 30000])
def test_accepted_text_is_written(world, text):
    """Whatever the front end accepts (202) must reach the responses table: PostgreSQL's jsonb
    cannot hold \\u0000, for example, so such a text must be refused up front, not dead-lettered
    after the client was told it was safe."""
    survey, dep = make_survey(world.admin, world.org_id, [world.enum_id], name="Free text",
                              definition={"questions": [{"name": "notes", "type": "text",
                                                         "label": "Notes", "required": True}]})
    rid = new_id()
    body = json.dumps({"id": rid, "data": {"notes": text}})  # ensure_ascii: escapes, valid JSON
    r = post_raw(world, body.encode(), deployment=dep["id"])
    if r.status_code != 202:
        assert r.status_code in (400, 422), r.text
        error_body(r)
        return
    c = world.cluster

    def settled():
        g = world.enum.get(f"/v1/responses/{rid}")
        if g.status_code == 200:
            return ("written", g.json())
        for _eid, f in c.redis_cli("XRANGE", c.DEAD, "-", "+") or []:
            if rid in f:
                return ("dead", dict(zip(f[::2], f[1::2])))
        return None
    state, detail = wait_until(settled, 90, what=f"response {rid} to be written or dead-lettered")
    assert state == "written", f"accepted with 202 but dead-lettered: {detail.get('error')}"
    assert detail["data"] == {"notes": text}


@pytest.mark.parametrize("when,ok", [
    ("2024-02-29T23:59:59.123+05:30", True),
    ("2024-05-01T10:20:30Z", True),
    ("2024-02-31T00:00:00Z", False),   # no such day: PostgreSQL would refuse it later
    ("2023-02-29T00:00:00Z", False),   # not a leap year
    ("2024-05-01T10:20:30+99:00", False),
    ("2024-05-01 10:20:30Z", False),
    ("2024-05-01T24:00:00Z", False),
])
def test_collected_at_is_a_real_moment(world, when, ok):
    """What the front end accepts as collected_at, PostgreSQL must accept too: an acknowledged
    submission may never be refused by the worker's INSERT."""
    rid = new_id()
    r = world.enum.post(f"/v1/deployments/{world.deployment_id}/responses",
                        json={"id": rid, "data": good_data(), "collected_at": when})
    if ok:
        assert r.status_code == 202, r.text
        body = world.wait_readable(rid, timeout=60)
        assert body["collected_at"] is not None
    else:
        assert r.status_code == 422, r.text
        assert "collected_at" in error_body(r).get("fields", {})
