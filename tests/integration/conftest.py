"""Fixtures of the integration tests: one real cluster per session (PostgreSQL 15, Redis with AOF,
a test-time ECDSA certificate, fv-frontend with two children, two fv-workers), and a ready world
(an org, a survey, a deployment with an enumerator, and a stranger).

Layers: `cluster` (PostgreSQL, Redis, certificate, config) -> `migrated` (fvctl migrate) ->
`frontend` -> `workers`. A test asks only for the layers it needs, so a program that is not built
yet fails only the tests that need it.

Environment: FV_BUILD_DIR (default <repo>/build) picks the binaries; FV_KEEP_TMP=1 keeps the
temporary directory (its path is printed); FV_TEST_TMPDIR chooses where it is made.
"""
import os
import sys
import types
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fvharness import Cluster, new_id, wait_until  # noqa: E402

_state = types.SimpleNamespace(cluster=None, findings=[], tails=[], base=None, bases=[],
                               setup_errors_shown=set())


def _teardown(c, request):
    try:
        c.stop_all()
    finally:
        _state.findings = list(c.findings)
        failed = request.session.testsfailed > 0
        if failed or c.findings:
            _state.tails = c.log_tails(60)
        _state.base = c.base
        c.cleanup()


@pytest.fixture(scope="session")
def cluster(request):
    """PostgreSQL + Redis + certificate + config file, nothing of ours started yet."""
    c = Cluster()
    _state.cluster = c
    request.addfinalizer(lambda: _teardown(c, request))
    c.start_infra()
    return c


@pytest.fixture(scope="session")
def migrated(cluster):
    cluster.migrate()
    return cluster


@pytest.fixture(scope="session")
def frontend(migrated):
    migrated.start_frontend()
    return migrated


@pytest.fixture(scope="session")
def workers(frontend):
    frontend.start_default_workers()
    return frontend


@pytest.fixture(scope="session")
def admin_key(migrated):
    return migrated.create_admin("admin@example.org", "Admin")


@pytest.fixture(scope="session")
def admin(frontend, admin_key):
    api = frontend.api(admin_key)
    yield api
    api.close()


@pytest.fixture()
def anon(frontend):
    api = frontend.api()
    yield api
    api.close()


# A form with one question of each kind the tests lean on; used by the world's survey.
DEFINITION = {
    "questions": [
        {"name": "household", "type": "text", "label": "Household name", "required": True,
         "constraint": {"pattern": "^[A-Za-z0-9 .'-]+$"}},
        {"name": "members", "type": "integer", "label": "Members", "required": True,
         "constraint": {"min": 1, "max": 50}},
        {"name": "income", "type": "decimal", "label": "Monthly income", "required": False},
        {"name": "visit", "type": "date", "label": "Visit date", "required": False},
        {"name": "intro", "type": "note", "label": "Introduce yourself"},
    ]
}


def good_data(i=0):
    return {"household": f"House {i}", "members": 1 + i % 50, "income": 12.5, "visit": "2024-05-01"}


class World(types.SimpleNamespace):
    """Ids and clients of the ready-to-submit world."""

    def submit(self, data=None, id=None, api=None, deployment=None):
        body = {"id": id or new_id(), "data": data if data is not None else good_data()}
        return (api or self.enum).post(f"/v1/deployments/{deployment or self.deployment_id}/responses",
                                       json=body)

    def wait_readable(self, rid, api=None, timeout=60):
        """Polls GET /v1/responses/{rid} until 200 (the worker wrote it); returns the body."""
        api = api or self.enum

        def get():
            r = api.get(f"/v1/responses/{rid}")
            assert r.status_code in (200, 404), f"{r.status_code}: {r.text[:300]}"
            return r.json() if r.status_code == 200 else None
        return wait_until(get, timeout, what=f"response {rid} to become readable")


def make_survey(admin, org_id, enumerator_ids, definition=None, name="Household survey"):
    """A survey of org_id and a deployment naming enumerator_ids as user principals, each made a
    member of the org first (accesshelp.add_plain_member: a user principal must be a member)."""
    from accesshelp import add_plain_member
    for u in enumerator_ids:
        add_plain_member(_state.cluster, org_id, u)
    r = admin.post("/v1/surveys", json={"org_id": org_id, "name": name,
                                        "definition": definition or DEFINITION})
    assert r.status_code == 201, r.text
    survey = r.json()
    r = admin.post(f"/v1/surveys/{survey['id']}/deployments", json={
        "name": f"{name} deployment",
        "roles": {"enumerators": [{"type": "user", "id": u} for u in enumerator_ids]}})
    assert r.status_code == 201, r.text
    return survey, r.json()


@pytest.fixture(scope="session")
def world(workers, admin):
    c = workers
    me = admin.get("/v1/me")
    assert me.status_code == 200, me.text
    enum_key = c.create_user("enumerator@example.org", "Enid Enumerator")
    stranger_key = c.create_user("stranger@example.org", "Sam Stranger")
    enum, stranger = c.api(enum_key), c.api(stranger_key)
    enum_id = enum.get("/v1/me").json()["id"]
    stranger_id = stranger.get("/v1/me").json()["id"]
    r = admin.post("/v1/orgs", json={"name": "Water Aid Test"})
    assert r.status_code == 201, r.text
    org = r.json()
    survey, dep = make_survey(admin, org["id"], [enum_id])
    w = World(cluster=c, admin=admin, admin_id=me.json()["id"], enum=enum, enum_id=enum_id,
              enum_key=enum_key, stranger=stranger, stranger_id=stranger_id,
              org_id=org["id"], root_branch_id=org["root_branch_id"], survey_id=survey["id"],
              deployment_id=dep["id"], definition=DEFINITION)
    yield w
    enum.close()
    stranger.close()


# Under pytest-xdist (--dist loadfile) a worker takes the next module whenever it is nearly done,
# in collection order: the modules that take longest (the sanitizer pass's, measured) go first,
# so that neither worker is left with a long module at the end while the other idles. Without
# xdist the order stays the files' order.
SLOW_MODULES_FIRST = ("test_accounts", "test_invitations", "test_throttle_abuse", "test_exports",
                      "test_permissions", "test_openrosa_auth", "test_personal_data", "test_tls",
                      "test_degraded_db", "test_balancer", "test_purge", "test_apikeys")


def pytest_collection_modifyitems(session, config, items):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    rank = {name: i for i, name in enumerate(SLOW_MODULES_FIRST)}

    def module(item):
        return Path(item.nodeid.split("::")[0]).stem
    order = {}
    for item in items:  # a module's first appearance fixes its place among the others
        order.setdefault(module(item), len(order))
    items.sort(key=lambda item: (rank.get(module(item), len(rank)), order[module(item)]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    c = _state.cluster
    if rep.failed and c is not None and rep.when in ("setup", "call"):
        if rep.when == "setup":  # a failed session fixture fails every test after it: show once
            key = str(call.excinfo.value) if call.excinfo else ""
            if key in _state.setup_errors_shown:
                return
            _state.setup_errors_shown.add(key)
        for title, text in c.log_tails(25):
            rep.sections.append((f"log tail: {title}", text))


# pytest-xdist (tests/run.sh runs the suite in two worker processes, -n 2 --dist loadfile): each
# worker runs its own session, so its own cluster, and the controller prints the summary. A
# worker hands what its teardown found (sanitizer reports, programs that died, stray processes),
# the log tails and the answers it checked to the controller, which reports them and fails the
# run as a single process would.
@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    out = getattr(node, "workeroutput", None) or {}
    _state.findings.extend(f"[{node.gateway.id}] {f}" for f in out.get("fv_findings", []))
    _state.tails.extend((f"[{node.gateway.id}] {title}", text) for title, text in out.get("fv_tails", []))
    if out.get("fv_base"):
        _state.bases.append(out["fv_base"])
    if out.get("fv_openapi_seen"):
        import openapi_check
        openapi_check.doc().seen.update(tuple(x) for x in out["fv_openapi_seen"])


def pytest_terminal_summary(terminalreporter):
    tr = terminalreporter
    if os.environ.get("FV_OPENAPI_COVERAGE") == "1":
        import openapi_check
        missing = openapi_check.unexercised()
        tr.section(f"docs/openapi.yaml: {len(missing)} documented answers no test received")
        for method, template, status in missing:
            tr.write_line(f"{status} {method} {template}")
    if os.environ.get("FV_KEEP_TMP") == "1":
        for base in ([_state.base] if _state.base is not None else []) + _state.bases:
            tr.write_line(f"FV_KEEP_TMP=1: servers' files and logs kept in {base}")
    if _state.tails:
        tr.section("server logs (tails)")
        for title, text in _state.tails:
            tr.write_line(f"----- {title}")
            tr.write_line(text)
    if _state.findings:
        tr.section("harness findings (these fail the run)", red=True)
        for f in _state.findings:
            tr.write_line(f, red=True)


def pytest_sessionfinish(session, exitstatus):
    out = getattr(session.config, "workeroutput", None)
    if out is not None:  # an xdist worker: pytest_testnodedown gets these in the controller
        out["fv_findings"] = list(_state.findings)
        out["fv_tails"] = list(_state.tails)
        out["fv_base"] = str(_state.base) if _state.base is not None else None
        if os.environ.get("FV_OPENAPI_COVERAGE") == "1":
            import openapi_check
            out["fv_openapi_seen"] = sorted(openapi_check.doc().seen)
    if _state.findings and session.exitstatus == 0:
        session.exitstatus = 1
