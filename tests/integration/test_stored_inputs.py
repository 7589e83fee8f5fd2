"""Whatever the front end acknowledges, PostgreSQL stores, and it reads back equal (issue 9).

Every odd input the validators accept (unicode at its edges, emoji, noncharacters, the longest
strings a body holds, numbers at the edges of PostgreSQL's numeric, the deepest and widest
documents, each question type's extremes) is sent as raw bytes; each acknowledged one must be
stored (never dead-lettered) and read back equal, numbers compared by value (jsonb keeps a
number's value, not its spelling: 1e3 reads back as 1000). Each shape the strict JSON reader
refuses (common/fv_json.h) must get its 4xx with a JSON error and never be stored: before,
overlong UTF-8, numbers numeric cannot hold and duplicate keys were acknowledged with 202 and then
dead-lettered by the worker (or, for duplicate keys, validated on the first copy of a key and
stored with the last).

A front end of its own with the production body limit (1 MiB; the session's has 64 KiB) takes
the requests."""
import json
from decimal import Decimal

import pytest

from conftest import make_survey
from fvharness import Api, error_body, free_port, new_id, wait_until

MIB = 1048576
CHOICES = [f"c{i}" for i in range(1000)]  # FV_FORM_MAX_CHOICES: the widest select_multiple
DEFINITION = {
    "questions": [
        {"name": "t", "type": "text", "label": "Any text"},
        {"name": "t5", "type": "text", "label": "At most 5 characters", "constraint": {"max": 5}},
        {"name": "i", "type": "integer", "label": "Any integer"},
        {"name": "d", "type": "decimal", "label": "Any number"},
        {"name": "so", "type": "select_one", "label": "One", "choices": ["a", "caf\u00e9 \u2615", "\U0001f600"]},
        {"name": "sm", "type": "select_multiple", "label": "Many", "choices": CHOICES},
        {"name": "day", "type": "date", "label": "A day"},
        {"name": "at", "type": "datetime", "label": "An instant"},
        {"name": "g", "type": "geopoint", "label": "A place"},
        {"name": "n", "type": "note", "label": "A note"},
    ]
}


def jload(raw):
    """JSON text -> Python, numbers as Decimal (exact; no 4300-digit int limit)."""
    return json.loads(raw, parse_float=Decimal, parse_int=Decimal)


def nested(levels, inner="1"):
    return "[" * levels + inner + "]" * levels


@pytest.fixture(scope="module")
def st(world, admin_key):
    c = world.cluster
    port = free_port()
    p = c.start_frontend(name="frontend-stored", FV_LISTEN_PORT=port, FV_MAX_BODY_BYTES=MIB)
    base = f"https://127.0.0.1:{port}"
    enum, admin, anon = Api(base, c.cert, world.enum_key), Api(base, c.cert, admin_key), Api(base, c.cert)
    _survey, dep = make_survey(admin, world.org_id, [world.enum_id], definition=DEFINITION,
                               name="Stored inputs")

    class St:
        pass
    s = St()
    s.c, s.enum, s.admin, s.anon, s.dep, s.org = c, enum, admin, anon, dep["id"], world.org_id
    yield s
    for a in (enum, admin, anon):
        a.close()
    p.stop()


def post(api, path, raw):
    body = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return api.post(path, data=body, headers={"Content-Type": "application/json"})


def submit(st, data_raw, rid=None, api=None):
    rid = rid or new_id()
    if isinstance(data_raw, bytes):
        raw = b'{"id":"' + rid.encode() + b'","data":' + data_raw + b'}'
    else:
        raw = '{"id":"' + rid + '","data":' + data_raw + '}'
    return rid, post(api or st.enum, f"/v1/deployments/{st.dep}/responses", raw)


def dead_with(c, rid):
    return [f for _e, f in c.redis_cli("XRANGE", c.DEAD, "-", "+") or [] if rid in f]


def read_back(st, rid, timeout=60):
    """Polls GET /v1/responses/{rid} until it is stored; fails at once if it was dead-lettered
    (acknowledged, then lost: what this file is about)."""
    def get():
        r = st.enum.get(f"/v1/responses/{rid}")
        assert r.status_code in (200, 404), f"{r.status_code}: {r.text[:300]}"
        if r.status_code == 200:
            return jload(r.content)
        dead = dead_with(st.c, rid)
        assert not dead, f"acknowledged {rid}, then dead-lettered: {str(dead)[:600]}"
        return None
    return wait_until(get, timeout, what=f"response {rid} to be stored")


# ------------------------------------------------------------------------- accepted answers
# (name, data as JSON text): every one is valid for DEFINITION.
U = "\U0001f600"
ACCEPTED = [
    ("unicode", '{"t": "caf\u00e9 \u2014 \u4e2d\u6587 \u05e2\u05d1\u05e8\u05d9\u05ea \ufdfd \u00df"}'),
    ("emoji_raw", '{"t": "\U0001f600\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f3f3\ufe0f\u200d\U0001f308"}'),
    ("emoji_escaped", r'{"t": "\ud83d\ude00 \uD83C\uDFF3"}'),
    ("noncharacters_raw", '{"t": "\uffff\ufffe\ufdd0\U0001fffe\U0010ffff"}'),
    ("noncharacters_escaped", r'{"t": "\uffff\ufffe\udbff\udfff"}'),
    ("utf8_boundaries", '{"t": "\u0080\u07ff\u0800\ud7ff\ue000\U00010000"}'),
    ("controls_escaped", r'{"t": "\u0001\u001f\b\f\n\r\t\"\\\/ \u007f"}'),
    ("c1_and_del_raw", '{"t": "\x7f\x80\x85\x9f\xa0"}'),
    ("combining_and_bidi", '{"t": "e\u0301\u0308 \u202e\u200f\u2066x\u2069 \ufeffbom"}'),
    ("escaped_key", r'{"\u0074": "the key t, escaped"}'),
    ("blanks_everywhere", ' \r\n\t{ \r\n\t"t" \r\n\t: \r\n\t"x" \r\n\t, "i" : 1 \r\n\t} \r\n\t'),
    ("longest_text", '{"t": "' + U * 240000 + '"}'),             # 960,000 bytes of 4-byte characters
    ("t5_five_4byte_chars", '{"t5": "' + U * 5 + '"}'),          # a limit in characters, not bytes
    ("int_min", '{"i": -9223372036854775808}'),
    ("int_max", '{"i": 9223372036854775807}'),
    ("int_minus_zero", '{"i": -0}'),
    ("int_spelled_with_exponent", '{"i": 1e3}'),
    ("int_spelled_with_fraction", '{"i": 12.000}'),
    ("int_zero_huge_exponent", '{"i": 0e999999}'),
    ("int_longest_fraction_of_zeros", '{"i": 1.' + "0" * 16383 + '}'),
    ("dec_tiny", '{"d": 1e-16383}'),                               # numeric's smallest
    ("dec_tiny_digits", '{"d": 0.' + "0" * 16382 + '1}'),
    ("dec_max_double", '{"d": 1.7976931348623157e308}'),
    ("dec_min_double", '{"d": -1.7976931348623157E+308}'),
    ("dec_subnormal", '{"d": 5e-324}'),
    ("dec_more_digits_than_double", '{"d": 123456789012345678901234567890.123456789012345678901234567890}'),
    ("select_unicode_choice", '{"so": "caf\u00e9 \u2615"}'),
    ("select_emoji_choice", '{"so": "\U0001f600"}'),
    ("select_every_choice", '{"sm": ' + json.dumps(CHOICES) + '}'),
    ("dates_first", '{"day": "0001-01-01", "at": "0001-01-01T14:59:00+14:59"}'),
    ("dates_last", '{"day": "9999-12-31", "at": "9999-12-31T09:00:59-14:59"}'),
    ("geopoint_edges", '{"g": {"lat": -90, "lon": 180, "altitude": -1.7976931348623157e308, "accuracy": 1e7}}'),
    ("geopoint_tiny", '{"g": {"lat": 1e-16383, "lon": -0.0, "altitude": 1e-300, "accuracy": 0}}'),
    ("unanswered", '{"t": null, "t5": "", "i": null, "d": null, "so": null, "sm": [], "day": null, "g": null}'),
    ("empty", '{}'),
]


@pytest.mark.parametrize("name,data", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_acknowledged_is_stored_and_reads_back_equal(st, name, data):
    assert len(data.encode("utf-8", "surrogatepass")) < MIB - 100
    rid, r = submit(st, data)
    assert r.status_code == 202, f"{name}: {r.status_code} {r.text[:400]}"
    got = read_back(st, rid)
    assert got["data"] == jload(data), name
    assert st.c.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0] == 1


# Odd but storable documents elsewhere: survey definitions (extra members are kept as sent) and
# site properties take any JSON, so they reach the extremes the answers cannot.
EXTRAS = [
    ("biggest_integer", "9" * 131072),                       # numeric's most digits before the point
    ("extreme_numbers", "[1e131071, -9.99e131071, 1e-16383, 0e999999, -0, 0.00001e131076, 1E+2]"),
    ("deepest", nested(62)),                                 # body, definition, then 62: depth 64
    ("widest_array", "[" + ",".join(["0"] * 200000) + "]"),
    ("many_keys", "{" + ",".join(f'"k{i}":{i},"K{i}":{i}' for i in range(20000)) + "}"),
    ("unicode_keys", '{"\U0001f600": 1, "\uffff": 2, "": 3, "e\u0301": 4, "\u00e9": 5, "\U0010ffff": 6}'),
]


@pytest.mark.parametrize("name,extra", EXTRAS, ids=[e[0] for e in EXTRAS])
def test_survey_definition_extremes_are_stored_equal(st, name, extra):
    raw = ('{"org_id": "%s", "name": "Extreme %s", "definition": {"questions": [{"name": "q", "type": '
           '"text", "label": "Q"}], "x_extra": %s}}' % (st.org, name, extra))
    assert len(raw.encode()) < MIB
    r = post(st.admin, "/v1/surveys", raw)
    assert r.status_code == 201, f"{r.status_code} {r.text[:400]}"
    sent = jload(raw)["definition"]
    assert jload(r.content)["definition"] == sent
    got = st.admin.get(f"/v1/surveys/{jload(r.content)['id']}")
    assert got.status_code == 200, got.text[:300]
    assert jload(got.content)["definition"] == sent


def test_site_properties_extremes_are_stored_equal(st):
    props = ('{"n": [1e131071, -1e131071, 1e-16383, 0e-16383, 123456789012345678901234567890.5], '
             '"deep": %s, "\U0001f600": "\uffff\U0010ffff", "wide": [%s]}'
             % (nested(62), ",".join(["true"] * 5000)))  # body, properties, then 62: depth 64
    raw = ('{"org_id": "%s", "name": "Odd well", "type": "water_point", "privacy": "public", '
           '"location": {"lat": -1.28, "lon": 36.82}, "properties": %s}' % (st.org, props))
    r = post(st.admin, "/v1/sites", raw)
    assert r.status_code == 201, f"{r.status_code} {r.text[:400]}"
    got = st.admin.get(f"/v1/sites/{jload(r.content)['id']}")
    assert got.status_code == 200, got.text[:300]
    assert jload(got.content)["properties"] == jload(props)


# --------------------------------------------------------------------------- refused shapes
# (name, data as JSON text or bytes, status, code). Each is refused whole with a JSON error and
# never stored.
REFUSED = [
    # not UTF-8 (RFC 3629): yajl let these through, PostgreSQL refuses them
    ("overlong_slash", b'{"t": "a\xc0\xafb"}', 400, "invalid_utf8"),
    ("overlong_nul", b'{"t": "a\xc0\x80b"}', 400, "invalid_utf8"),
    ("surrogate_bytes", b'{"t": "a\xed\xa0\x80b"}', 400, "invalid_utf8"),
    ("beyond_10ffff", b'{"t": "a\xf4\x90\x80\x80b"}', 400, "invalid_utf8"),
    ("overlong_3byte", b'{"t": "\xe0\x80\xaf"}', 400, "invalid_utf8"),
    ("bare_continuation", b'{"t": "\x80"}', 400, "invalid_utf8"),
    ("truncated", b'{"t": "\xe2\x82"}', 400, "invalid_utf8"),
    ("latin1", b'{"t": "caf\xe9"}', 400, "invalid_utf8"),
    ("bad_key", b'{"\xc0\xaf": 1}', 400, "invalid_utf8"),
    # characters jsonb cannot hold (kept from before: 422)
    ("escaped_nul", r'{"t": "a\u0000b"}', 422, "unsupported_character"),
    ("lone_high_surrogate", r'{"t": "\ud800"}', 422, "unsupported_character"),
    ("lone_low_surrogate", r'{"t": "\udc00x"}', 422, "unsupported_character"),
    ("escaped_nul_key", r'{"\u0000": 1}', 422, "unsupported_character"),
    # numbers numeric cannot hold
    ("dec_1e999999", '{"d": 1e999999}', 400, "number_out_of_range"),
    ("dec_1e-999999", '{"d": 1e-999999}', 400, "number_out_of_range"),
    ("dec_1e-16384", '{"d": 1e-16384}', 400, "number_out_of_range"),
    ("dec_16384_fraction_digits", '{"d": 0.' + "0" * 16383 + '1}', 400, "number_out_of_range"),
    ("int_200000_digits", '{"i": 1' + "0" * 199999 + '}', 400, "number_out_of_range"),
    ("int_1e131072", '{"i": 1e131072}', 400, "number_out_of_range"),
    ("int_zero_tiny_exponent", '{"i": 0e-16384}', 400, "number_out_of_range"),
    ("int_16384_zeros", '{"i": 1.' + "0" * 16384 + '}', 400, "number_out_of_range"),
    ("geopoint_altitude_tiny", '{"g": {"lat": 0, "lon": 0, "altitude": 1e-999999}}', 400,
     "number_out_of_range"),
    # the same key twice: validated on the first, stored (jsonb) with the last
    ("duplicate_answer", '{"t5": "ok", "t5": "far too long"}', 400, "duplicate_key"),
    ("duplicate_escaped", r'{"t5": "ok", "\u0074\u0035": "far too long"}', 400, "duplicate_key"),
    ("duplicate_in_geopoint", '{"g": {"lat": 1, "lon": 2, "lat": 999}}', 400, "duplicate_key"),
    # the key is named in the message, cut short: at a character boundary (the reply stays UTF-8)
    ("duplicate_long_unicode_key", '{"' + "\u00e9" * 60 + '": 1, "' + "\u00e9" * 60 + '": 2}', 400,
     "duplicate_key"),
    # too deep
    ("depth_65", '{"g": ' + nested(63) + '}', 400, "json_too_deep"),
    # not JSON
    ("comment_block", '{"t": "x" /* c */}', 400, "malformed_json"),
    ("comment_line", '{"t": "x"} // c', 400, "malformed_json"),
    ("nan", '{"d": NaN}', 400, "malformed_json"),
    ("infinity", '{"d": -Infinity}', 400, "malformed_json"),
    ("trailing_comma", '{"t": "x",}', 400, "malformed_json"),
    ("single_quotes", "{'t': 'x'}", 400, "malformed_json"),
    ("raw_tab_in_string", '{"t": "a\tb"}', 400, "malformed_json"),
    ("leading_zero", '{"i": 012}', 400, "malformed_json"),
    ("hex", '{"i": 0x10}', 400, "malformed_json"),
]


@pytest.mark.parametrize("name,data,status,code", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_shapes_get_their_4xx_and_are_not_stored(st, name, data, status, code):
    rid, r = submit(st, data)
    assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
    assert error_body(r)["code"] == code, r.text[:300]
    assert st.c.psql("SELECT count(*) FROM responses WHERE id = %s", rid)[0][0] == 0
    assert not dead_with(st.c, rid)


def test_body_level_duplicates_refused(st):
    rid = new_id()
    raw = ('{"id": "%s", "data": {"t5": "ok"}, "data": {"t5": "far too long"}}' % rid)
    r = post(st.enum, f"/v1/deployments/{st.dep}/responses", raw)
    assert r.status_code == 400 and error_body(r)["code"] == "duplicate_key", r.text[:300]


@pytest.mark.parametrize("path_kind", ["surveys", "sites", "anonymous"])
def test_other_routes_refuse_the_same(st, path_kind):
    """Every JSON body goes through the same reader: definitions and site properties take any
    JSON, and refusal comes before authentication."""
    cases = [('1e-16384', "number_out_of_range"), ('{"a": 1, "a": 2}', "duplicate_key"),
             (nested(63), "json_too_deep"), ('"\xc0\xaf"', "invalid_utf8")]
    for value, code in cases:
        if path_kind == "surveys":
            api, path = st.admin, "/v1/surveys"
            raw = ('{"org_id": "%s", "name": "Refused", "definition": {"questions": [{"name": "q", '
                   '"type": "text", "label": "Q"}], "x": %s}}' % (st.org, value))
        elif path_kind == "sites":
            api, path = st.admin, "/v1/sites"
            raw = ('{"org_id": "%s", "name": "Refused", "type": "water_point", "privacy": "public", '
                   '"properties": {"x": %s}}' % (st.org, value))
        else:
            api, path = st.anon, f"/v1/deployments/{st.dep}/responses"
            raw = '{"data": {"x": %s}}' % value
        body = raw.encode("latin-1") if "\xc0" in raw else raw.encode()
        r = post(api, path, body)
        assert r.status_code == 400, f"{path_kind} {code}: {r.status_code} {r.text[:300]}"
        assert error_body(r)["code"] == code, r.text[:300]
