"""Table-driven permission test: every cell of permission_table.ROWS (an endpoint against a role)
and every list of permission_table.LIST_ROWS, against the real front end.

The world is built through the API itself: branches, teams and memberships by org_admin with
the orgs endpoints, sites with POST /v1/sites; only the responses of survey S are inserted with
SQL (in every status at once, as the worker and the lifecycle would leave them)."""
import json
import re
import types

import pytest

from accesshelp import P, User, add_member, list_all
from conftest import DEFINITION, good_data
from fvharness import error_body, new_id
from permission_table import BODIES, LIST_ROWS, MEMBERS_A, ROLES, ROWS

SIGNED_IN = [r for r in ROLES if r != "anonymous"]


# Media file names of the OpenRosa rows (permission_table.py): {logo} stored by the cell, {nomedia} never.
MEDIA_NAMES = {"logo": "logo.png", "nomedia": "none.png"}


def _insert_response(c, survey_id, dep_id, submitted_by, status, stage, deleted=False):
    rid = new_id()
    # One statement: the response and its version row (with the full state, migration 012) commit
    # together, as the database requires.
    c.psql("WITH r AS (INSERT INTO responses AS x (id, survey_id, survey_version, deployment_id, submitted_by, "
           "  status, stage, data, received_at, rejection_message, deleted_at) "
           "  VALUES (%s, %s, 1, %s, %s, %s, %s, %s::jsonb, now(), %s, CASE WHEN %s THEN now() END) "
           "  RETURNING x.id, x.stage, x.status, x.submitted_by, to_jsonb(x) AS state) "
           "INSERT INTO response_events (response_id, version, action, stage, status, actor, state) "
           "SELECT id, 1, 'submit', stage, status, submitted_by, state FROM r",
           rid, survey_id, dep_id, submitted_by, status, stage, json.dumps(good_data(1)),
           "rejected by the table's world" if status == "rejected" else None, deleted)
    return rid


def _deployment(w, sid, name):
    """A deployment of survey sid made by org_admin with D's roles (see permission_table.py)."""
    u = {k: v.id for k, v in w.users.items() if v is not None}
    roles = {"enumerators": [P("branch", w.region)], "viewers": [P("team", w.team)],
             "managers": [P("user", u["manager"])],
             "approvers": [[P("user", u["approver1"])], [P("user", u["approver2"])]]}
    r = w.users["org_admin"].api.post(f"/v1/surveys/{sid}/deployments",
                                      json={"name": name, "branch_id": w.region, "roles": roles})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _survey(w, name):
    """A survey made by org_admin with D and D2 and the two grants (see permission_table.py)."""
    oa = w.users["org_admin"].api
    r = oa.post("/v1/surveys", json={"org_id": w.org_id, "name": name, "definition": DEFINITION})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    u = {k: v.id for k, v in w.users.items() if v is not None}
    dep = _deployment(w, sid, "D")
    r = oa.post(f"/v1/surveys/{sid}/deployments", json={
        "name": "D2", "branch_id": w.region, "roles": {"enumerators": [P("user", w.enumerator2.id)]}})
    assert r.status_code == 201, r.text
    dep2 = r.json()["id"]
    for who, role in (("survey_viewer", "viewer"), ("survey_admin", "admin")):
        r = oa.put(f"/v1/surveys/{sid}/access", json={"principal_type": "user", "principal_id": u[who],
                                                       "role": role})
        assert r.status_code == 200, r.text
    return sid, dep, dep2


@pytest.fixture(scope="module")
def pw(workers):
    c = workers
    w = types.SimpleNamespace(cluster=c, definition=DEFINITION, answers=good_data(3))
    w.users = {r: (User(c, r) if r != "anonymous" else None) for r in ROLES}
    w.apis = {r: (u.api if u else c.api()) for r, u in w.users.items()}
    w.enumerator2 = User(c, "enumerator2")
    w.next_id = new_id
    w.cell_surveys = set()  # surveys made for cells ({fresh_survey}, {fresh_archived})
    w.password = "correct horse battery staple " + new_id()[-8:]
    w.login_email = f"table-login-{new_id()}@example.org"
    r = w.apis["anonymous"].post("/v1/users", json={"email": w.login_email, "name": "Table login",
                                                     "password": w.password})
    assert r.status_code == 202, r.text
    w.grantee = User(c, "grantee").id
    w.outsider = new_id()  # a user of no org: PUT members answers 409 not_a_member
    c.psql("INSERT INTO users (id, email, name) VALUES (%s, %s, 'Outsider')", w.outsider,
           f"outsider-{w.outsider}@example.org")
    oa = w.users["org_admin"]
    r = oa.api.post("/v1/orgs", json={"name": "Permission table org"})
    assert r.status_code == 201, r.text
    w.org_id, root = r.json()["id"], r.json()["root_branch_id"]
    w.root = root

    def made(path, body, status=201):
        r = oa.api.request("PUT" if "/members/" in path else "POST", path, json=body)
        assert r.status_code == status, r.text
        return r.json()["id"]
    w.region = made(f"/v1/orgs/{w.org_id}/branches", {"name": "region", "parent_id": root})
    w.district = made(f"/v1/orgs/{w.org_id}/branches", {"name": "district", "parent_id": w.region})
    w.region2 = made(f"/v1/orgs/{w.org_id}/branches", {"name": "region2", "parent_id": root})
    w.region3 = made(f"/v1/orgs/{w.org_id}/branches", {"name": "region3", "parent_id": root})
    w.team = made(f"/v1/orgs/{w.org_id}/teams", {"name": "team T"})
    # memberships with SQL: joining needs the user's consent (invitations, test_invitations.py)
    w.add_member = lambda user_id, **where: add_member(c, w.org_id, user_id, "member", **where)
    uid = {k: v.id for k, v in w.users.items() if v is not None}
    w.add_member(uid["enumerator"], branch_id=w.region)
    w.add_member(w.enumerator2.id, branch_id=w.region)
    w.add_member(uid["dep_viewer"], team_id=w.team)
    w.add_member(uid["below"], branch_id=w.district)
    w.add_member(uid["beside"], branch_id=w.region2)
    for r in ("manager", "approver1", "approver2", "survey_viewer", "survey_admin"):
        w.add_member(uid[r], branch_id=w.region3)  # a membership that confers nothing else
    w.add_member(w.grantee, branch_id=w.region3)
    r = w.users["other_org"].api.post("/v1/orgs", json={"name": "Another org"})
    assert r.status_code == 201, r.text
    w.org_b = r.json()["id"]
    w.new_site = lambda privacy: made("/v1/sites", {"org_id": w.org_id, "name": f"{privacy} well",
                                                     "type": "well", "privacy": privacy,
                                                     "location": {"lat": -1.28, "lon": 36.82}})

    w.survey, w.dep, w.dep2 = _survey(w, "Table survey S")
    w.msurvey, w.mdep, _ = _survey(w, "Table survey M")
    e, e2 = uid["enumerator"], w.enumerator2.id
    w.labels = {"survey": w.survey, "msurvey": w.msurvey, "dep": w.dep, "dep2": w.dep2, "mdep": w.mdep,
                "org": w.org_id, "org_b": w.org_b, "grantee": w.grantee, "outsider": w.outsider,
                "region2": w.region2, "team": w.team, "region": w.region, "ptype_user": "user",
                "pub": w.new_site("public"), "prot": w.new_site("protected"), "priv": w.new_site("private")}
    for label, dep, who, status, stage, deleted in (
            ("p1", w.dep, e, "pending", 1, False), ("p2", w.dep, e, "pending", 2, False),
            ("fin", w.dep, e, "final", 0, False), ("rej", w.dep, e, "rejected", 1, False),
            ("p1x", w.dep, e2, "pending", 1, False), ("oth", w.dep2, e2, "final", 0, False),
            ("del", w.dep, e, "final", 0, True)):
        w.labels[label] = _insert_response(c, w.survey, dep, who, status, stage, deleted)

    def openrosa_instance():
        """A fresh instance of M's current XForm (generated from DEFINITION), as Collect sends it."""
        import re as _re
        x = w.users["org_admin"].api.get(f"/v1/surveys/{w.msurvey}/xform").text
        m = _re.search(r'<data id="([^"]+)" version="([^"]+)"', x)
        xml = (f'<data id="{m.group(1)}" version="{m.group(2)}"><household>House</household>'
               f'<members>3</members><meta><instanceID>uuid:{new_id()}</instanceID></meta></data>')
        return [("xml_submission_file", ("submission.xml", xml.encode(), "text/xml"))]
    w.openrosa_instance = openrosa_instance
    yield w
    for u in list(w.users.values()) + [w.enumerator2]:
        if u is not None:
            u.close()
    w.apis["anonymous"].close()


def _path(w, template):
    def sub(m):
        key = m.group(1)
        if key == "fresh_member":
            u = new_id()
            w.cluster.psql("INSERT INTO users (id, email, name) VALUES (%s, %s, 'Fresh member')",
                           u, f"fresh-{u}@example.org")
            w.add_member(u, branch_id=w.region2)
            return u
        if key == "fresh_invitation":  # stranger invited to the root by org_admin, with SQL
            i = new_id()
            w.cluster.psql("INSERT INTO invitations (id, org_id, invited_by, user_id, role, branch_id, expires_at) "
                           "VALUES (%s, %s, %s, %s, 'member', %s, now() + interval '1 day')",
                           i, w.org_id, w.users["org_admin"].id, w.users["stranger"].id, w.root)
            return i
        if key == "fresh_site":
            return w.new_site("private")
        if key == "job":  # a finished job of org A, created by enumerator, made with SQL
            j = new_id()
            w.cluster.psql("INSERT INTO jobs (id, org_id, kind, state, created_by, finished_at) "
                           "VALUES (%s, %s, 'table', 'done', %s, now())",
                           j, w.org_id, w.users["enumerator"].id)
            return j
        if key == "export":  # a ready export of org A (one chunk), made with SQL
            e = new_id()
            w.cluster.psql("INSERT INTO jobs (id, org_id, kind, state, created_by, finished_at) "
                           "VALUES (%s, %s, 'table', 'done', %s, now())", e, w.org_id, w.users["org_admin"].id)
            # built, then ready, as the worker does it (chunks are written only while building, 019)
            w.cluster.psql("INSERT INTO exports (id, org_id, created_by) VALUES (%s, %s, %s)",
                           e, w.org_id, w.users["org_admin"].id)
            w.cluster.psql("INSERT INTO export_chunks (export_id, seq, data) VALUES (%s, 0, 'PK')", e)
            w.cluster.psql("UPDATE exports SET state = 'ready', size = 2, chunks = 1, sha256 = 'x', "
                           "expires_at = now() + interval '1 hour' WHERE id = %s", e)
            return e
        if key == "fresh_session":  # a live session of org_admin's, made with SQL
            sid = new_id()
            w.cluster.psql("INSERT INTO sessions (id, user_id, expires_at) VALUES (%s, %s, now() + interval '1 hour')",
                           sid, w.users["org_admin"].id)
            return sid
        if key in ("oa_key", "susp_key"):
            kid = new_id()
            owner = w.users["org_admin" if key == "oa_key" else "enumerator"].id
            w.cluster.psql("INSERT INTO api_keys (id, user_id, key_hash, name, suspended_at, suspended_reason) "
                           "VALUES (%s, %s, encode(sha256(%s::bytea), 'hex'), 'table key', "
                           "CASE WHEN %s THEN now() END, CASE WHEN %s THEN 'rate limit' END)",
                           kid, owner, kid, key == "susp_key", key == "susp_key")
            return kid
        if key == "fresh_grantee":  # a user granted viewer on M, for the cell to remove
            u = new_id()
            w.cluster.psql("INSERT INTO users (id, email, name) VALUES (%s, %s, 'Fresh grantee')",
                           u, f"grantee-{u}@example.org")
            w.cluster.psql("INSERT INTO survey_grants (survey_id, principal_type, principal_id, role, granted_by) "
                           "VALUES (%s, 'user', %s, 'viewer', %s)", w.msurvey, u, w.users["org_admin"].id)
            return u
        if key == "fresh_app_user":  # an app user of M's D (migration 020), made with SQL
            u = new_id()
            w.cluster.psql("INSERT INTO users (id, email, name) VALUES (%s, %s, 'Table app user')",
                           u, f"{u}@app-users.invalid")
            w.cluster.psql("INSERT INTO app_users (id, deployment_id, name, token_hash, created_by) "
                           "VALUES (%s, %s, 'Table app user', encode(sha256(%s::bytea), 'hex'), %s)",
                           u, w.mdep, u, w.users["org_admin"].id)
            return u
        if key == "fresh_dep":  # a deployment of M with D's roles
            return _deployment(w, w.msurvey, "fresh D")
        if key in ("fresh_survey", "fresh_archived"):
            sid = _survey(w, "Table survey made for a cell")[0]
            w.cell_surveys.add(sid)
            if key == "fresh_archived":
                r = w.users["org_admin"].api.post(f"/v1/surveys/{sid}/archive")
                assert r.status_code == 200, r.text
            return sid
        if key == "fresh_del":
            return _insert_response(w.cluster, w.msurvey, w.mdep, w.users["enumerator"].id, "final", 0, True)
        if key == "fresh_del_site":
            site = w.new_site("private")
            r = w.users["org_admin"].api.delete(f"/v1/sites/{site}")
            assert r.status_code == 204, r.text
            return site
        if key.startswith("fresh:"):
            _, status, stage = key.split(":")
            return _insert_response(w.cluster, w.msurvey, w.mdep, w.users["enumerator"].id, status, int(stage))
        if key in MEDIA_NAMES:
            return MEDIA_NAMES[key]
        return w.labels[key]
    return re.sub(r"\{([^}]+)\}", sub, template)


def _body(w, method, template):
    for (m, p), make in BODIES.items():
        if m == method and (p == template or (p.startswith("*") and template.endswith(p[1:]))):
            return make(w)
    return None


CELLS = [pytest.param(row[0], row[1], role, row[2 + i], id=f"{row[0]} {row[1]} | {role}")
         for row in ROWS for i, role in enumerate(ROLES)]


def test_table_shape():
    for row in ROWS:
        assert len(row) == 2 + len(ROLES), row
        assert all(isinstance(x, int) for x in row[2:]), row
    for path, per_role in LIST_ROWS.items():
        assert set(per_role) <= set(ROLES), path


@pytest.mark.parametrize("method,template,role,expected", CELLS)
def test_cell(pw, method, template, role, expected):
    path = _path(pw, template)
    body = _body(pw, method, template)
    api = pw.apis[role]
    # the OpenRosa routes are asked as ODK Collect asks them (the submission requires the header)
    kw = {"headers": {"X-OpenRosa-Version": "1.0"}} if "/openrosa/" in template else {}
    if isinstance(body, dict) and "__files__" in body:
        r = api.request(method, path, files=body["__files__"], **kw)
    else:
        r = api.request(method, path, json=body, **kw) if body is not None else api.request(method, path, **kw)
    assert r.status_code == expected, f"{method} {template} as {role}: {r.status_code} {r.text[:300]}"
    if expected == 401 and template.startswith("/v1/openrosa/"):
        # the OpenRosa routes ask in their own envelope, with a Basic challenge (fe_openrosa_auth.h)
        assert r.headers["Content-Type"].startswith("text/xml"), r.headers
        assert method == "HEAD" or b"OpenRosaResponse" in r.content, r.text
        assert r.headers["WWW-Authenticate"].startswith("Basic "), r.headers
    elif "/openrosa/" in template and template.endswith("/submission"):
        # the submission answers in the OpenRosa envelope, errors included
        assert r.headers.get("X-OpenRosa-Version") == "1.0", r.headers
        if method != "HEAD":
            assert r.headers["Content-Type"].startswith("text/xml") and b"OpenRosaResponse" in r.content
    elif expected >= 400:
        err = error_body(r)
        if expected == 409:
            assert err["code"] == ("not_a_member" if "/members/" in template
                                   else "not_deleted" if template.endswith("/restore") else "not_pending")


LISTS = [pytest.param(path, role, id=f"{path} | {role}") for path, per in LIST_ROWS.items() for role in per]


@pytest.mark.parametrize("template,role", LISTS)
def test_list_rows(pw, template, role):
    """The labelled rows a role finds are exactly the table's; any other row is one the role
    made itself (a survey it created in a POST /v1/surveys cell; for org_admin, one made in its
    org) or, for deployments and responses, none."""
    expected = LIST_ROWS[template][role]
    items = list_all(pw.apis[role], _path(pw, template), limit=2)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids)), "a row came on two pages"
    by_id = {v: k for k, v in pw.labels.items()}
    found = {by_id[i] for i in ids if i in by_id}
    assert found == expected, f"{template} as {role}: found {sorted(found)}, table says {sorted(expected)}"
    others = [i for i in ids if i not in by_id and i not in pw.cell_surveys]
    if others and template.startswith("/v1/sites"):
        # sites made by cells: private sites of org A, which only its members may list
        assert role in MEMBERS_A, others
        rows = pw.cluster.psql("SELECT count(*) FROM sites WHERE id = ANY(%s::uuid[]) AND org_id = %s "
                               "AND privacy = 'private'", others, pw.org_id)
        assert rows[0][0] == len(others), f"{role} lists sites it may not see: {others}"
        return
    if others and template == "/v1/orgs":
        made = pw.cluster.psql("SELECT id::text FROM orgs WHERE id = ANY(%s::uuid[]) AND created_by = %s",
                               others, pw.users[role].id)
        assert len(made) == len(others), f"{role} lists organisations it is not in: {others}"
        return
    if others:
        assert template == "/v1/surveys", others
        # made by the role, or (org_admin) made by anyone in the org it administers
        made = pw.cluster.psql("SELECT id::text FROM surveys WHERE id = ANY(%s::uuid[]) AND "
                               "(created_by = %s OR (%s = 'org_admin' AND org_id = %s))",
                               others, pw.users[role].id, role, pw.org_id)
        assert len(made) == len(others), f"{role} lists surveys it may not see: {others}"


# Routes open to everybody by design, without a row: the probes of monitoring systems.
UNTABLED = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


def test_every_route_is_in_the_table():
    """A new route must get its row (every route but the health probes)."""
    src = open(__file__.replace("tests/integration/test_permissions.py", "frontend/http/fe_routes.c")).read()
    routes = set(re.findall(r"\{(GET|POST|PUT|PATCH|DELETE), \"([^\"]+)\"", src)) - UNTABLED
    assert len(routes) > 40, "the route table was not parsed"
    norm = {(m, re.sub(r"\{[^}]+\}", ":id", p.split("?")[0])) for m, p, *_ in ROWS}
    missing = {(m, re.sub(r":\w+", ":id", p)) for m, p in routes} - norm
    assert not missing, f"routes without a row in permission_table.py: {sorted(missing)}"


def test_security_doc_shows_this_table():
    """docs/security.md carries the table as it is here (regenerate: python3 permission_table.py)."""
    from permission_table import markdown
    doc = open(__file__.replace("tests/integration/test_permissions.py", "docs/security.md")).read()
    assert markdown() in doc, "docs/security.md's permission table differs from permission_table.py"
