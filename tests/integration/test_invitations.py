"""Joining an organisation needs the user's consent (issue 10): invitations by user id and by
email (+ a one-time code), accepted or declined by the invitee, withdrawn by the admin, expiring;
PUT /v1/orgs/{org}/members only for users already in the org; what an org learns about a user who
has not accepted (nothing: no email, no address, no power over their keys); and the rule for
reinstating a suspended API key (the org whose data triggered it, or an org the owner joined
before the suspension).

Front ends of this module (FV_* variables):
  inv     sign-ups not limited (every test makes accounts with passwords: accepting needs one)
  fast    API-key limit 2 per 1 s window, suspension after 3 strikes (keys are struck out here)
  capped  at most 3 open invitations per org and 5 invitations per org and hour
"""
import hashlib
import itertools
import signal
import types

import pytest

from accesshelp import denied, list_all, ok
from fvharness import Api, error_body, free_port, new_id, wait_until

PASSWORD = "quiet-heron-lantern-58-meadow"
_seq = itertools.count()


class Fe:
    def __init__(self, cluster, proc, port):
        self.c, self.proc, self.port = cluster, proc, port
        self.base = f"https://127.0.0.1:{port}"

    def api(self, key=None):
        return Api(self.base, self.c.cert, key)


def start_fe(c, name, **env):
    port = free_port()
    p = c.start_frontend(name=name, FV_LISTEN_PORT=port, **env)
    return Fe(c, p, port)


@pytest.fixture(scope="module")
def fes(migrated):
    c = migrated
    made = {"inv": start_fe(c, "frontend-inv", FV_SIGNUP_MAX_PER_ADDRESS=0, FV_SIGNUP_MAX_PER_CHILD=0,
                            FV_LOGIN_MAX_FAILURES_ADDRESS=100000),
            "fast": start_fe(c, "frontend-inv-fast", FV_API_KEY_RATE_LIMIT=2, FV_API_KEY_RATE_WINDOW_S=1,
                             FV_API_KEY_SUSPEND_AFTER=3),
            "capped": start_fe(c, "frontend-inv-capped", FV_INVITATION_MAX_PENDING_PER_ORG=3,
                               FV_INVITATION_MAX_PER_ORG_HOUR=5)}
    yield made
    for fe in made.values():
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


class Person:
    """An account with a password: .id, .email, .session (an Api with a session token), .key and
    .api (an API key of theirs and an Api with it)."""

    def __init__(self, fe, label, email=None):
        self.fe = fe
        self.email = email or f"{label}-{next(_seq)}-{new_id()[:8]}@example.org"
        anon = fe.api()
        r = anon.post("/v1/users", json={"email": self.email, "name": label.title(), "password": PASSWORD})
        assert r.status_code == 202, r.text
        r = anon.post("/v1/auth/login", json={"email": self.email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        anon.close()
        self.session = fe.api(r.json()["token"])
        self.id = ok(self.session.get("/v1/me"))["id"]
        k = ok(self.session.post("/v1/me/api-keys", json={"name": "laptop", "current_password": PASSWORD}), 201)
        self.key, self.key_id = k["key"], k["id"]
        self.api = fe.api(self.key)

    def accept(self, inv_id, code=None, fe=None):
        body = {"current_password": PASSWORD, **({"code": code} if code is not None else {})}
        return self.session.post(f"/v1/me/invitations/{inv_id}/accept", json=body)


def org_of(person, name="Invitations org"):
    org = ok(person.api.post("/v1/orgs", json={"name": f"{name} {new_id()[:6]}"}), 201)
    return types.SimpleNamespace(id=org["id"], root=org["root_branch_id"], admin=person)


def invite(admin_api, org_id, status=201, **body):
    """Posts an invitation; returns its body when status is given, else the answer."""
    body.setdefault("role", "member")
    r = admin_api.post(f"/v1/orgs/{org_id}/invitations", json=body)
    return ok(r, status) if status else r


def join(org, person, **where):
    """person joins org by invitation (user id) and acceptance; returns the membership."""
    inv = invite(org.admin.api, org.id, user_id=person.id, **where)
    return ok(person.accept(inv["id"]))


def members(org):
    return {m["user_id"] for m in list_all(org.admin.api, f"/v1/orgs/{org.id}/members")}


def org_audit(c, org_id):
    return c.psql("SELECT action, target_id, host(address), detail::text FROM audit WHERE org_id = %s "
                  "ORDER BY id", org_id)


@pytest.fixture(scope="module")
def base(fes):
    """An org admin with an org and its branch North and team Pumps."""
    fe = fes["inv"]
    boss = Person(fe, "boss")
    o = org_of(boss)
    o.north = ok(boss.api.post(f"/v1/orgs/{o.id}/branches", json={"name": "North"}), 201)["id"]
    o.team = ok(boss.api.post(f"/v1/orgs/{o.id}/teams", json={"name": "Pumps"}), 201)["id"]
    o.fe = fe
    return o


# ---------------------------------------------------------------- the flow by user id

def test_invite_by_user_id_then_accept(base):
    fe, c = base.fe, base.fe.c
    ann = Person(fe, "ann")
    inv = invite(base.admin.api, base.id, user_id=ann.id.upper(), role="manager", branch_id=base.north)
    assert inv["user_id"] == ann.id and inv["email"] is None and inv["status"] == "pending"
    assert inv["role"] == "manager" and inv["branch_id"] == base.north and inv["team_id"] is None
    assert inv["org_id"] == base.id and "code" not in inv and inv["expires_at"] > inv["created_at"]
    # until she accepts, she is not a member: the org does not list her, she does not see it
    assert ann.id not in members(base)
    denied(ann.api.get(f"/v1/orgs/{base.id}"), 404)
    mine = ok(ann.api.get("/v1/me/invitations"))["items"]
    assert [(i["id"], i["org_id"], i["role"], i["branch_name"], i["code_required"]) for i in mine] == \
        [(inv["id"], base.id, "manager", "North", False)]
    assert mine[0]["org_name"].startswith("Invitations org")
    # accepting needs a session and the password: not an API key, not a session alone
    denied(ann.api.post(f"/v1/me/invitations/{inv['id']}/accept", json={}), 403, "session_required")
    denied(ann.session.post(f"/v1/me/invitations/{inv['id']}/accept", json={}), 422, "validation_failed")
    denied(ann.session.post(f"/v1/me/invitations/{inv['id']}/accept", json={"current_password": "nope"}),
           403, "wrong_password")
    assert ann.id not in members(base)
    m = ok(ann.accept(inv["id"]))
    assert m["user_id"] == ann.id and m["org_id"] == base.id and m["role"] == "manager"
    assert m["branch_id"] == base.north and m["invitation_id"] == inv["id"]
    assert ann.id in members(base)
    assert ok(ann.api.get(f"/v1/orgs/{base.id}"))["role"] == "manager"
    rows = [r for r in org_audit(c, base.id) if r[0] == "invitation.accept"]
    assert len(rows) == 1 and rows[0][1] == ann.id
    # used: a second acceptance is 409, the invitation reads accepted, it left her list
    denied(ann.accept(inv["id"]), 409, "invitation_used")
    denied(ann.api.post(f"/v1/me/invitations/{inv['id']}/decline"), 409, "invitation_used")
    listed = {i["id"]: i for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations")}
    assert listed[inv["id"]]["status"] == "accepted"
    assert ok(ann.api.get("/v1/me/invitations"))["items"] == []


def test_two_acceptances_at_once_make_one_membership(base):
    """The invitation row is locked while it is accepted: of two acceptances sent together (each
    with its password check on the work pool), one makes the membership, the other is 409."""
    import threading
    vic = Person(base.fe, "vic")
    other = base.fe.api(vic.session.key)
    inv = invite(base.admin.api, base.id, user_id=vic.id, branch_id=base.north)
    body = {"current_password": PASSWORD}
    results = []

    def go(api):
        results.append(api.post(f"/v1/me/invitations/{inv['id']}/accept", json=body))
    threads = [threading.Thread(target=go, args=(api,)) for api in (vic.session, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
    assert [error_body(r)["code"] for r in results if r.status_code == 409] == ["invitation_used"]
    assert base.fe.c.psql("SELECT count(*) FROM memberships WHERE user_id = %s", vic.id) == [(1,)]
    assert len([r for r in org_audit(base.fe.c, base.id) if r[0] == "invitation.accept" and r[1] == vic.id]) == 1
    other.close()


def test_invitation_to_a_team(base):
    bob = Person(base.fe, "bob")
    inv = invite(base.admin.api, base.id, user_id=bob.id, team_id=base.team)
    m = ok(bob.accept(inv["id"]))
    assert m["team_id"] == base.team and m["branch_id"] is None and m["role"] == "member"


# ---------------------------------------------------------------- by email, with the code

def test_invite_by_email_needs_the_code_and_that_account(base):
    fe, c = base.fe, base.fe.c
    cleo = Person(fe, "cleo")
    typed = cleo.email.upper()  # the admin types it in another case: it still names her
    inv = invite(base.admin.api, base.id, email=typed)
    assert inv["email"] == typed and inv["user_id"] is None and inv["status"] == "pending"
    code = inv["code"]
    assert code.startswith("fvi_") and len(code) == 47
    # stored only as its SHA-256, nowhere in plain
    row = c.psql("SELECT code_hash FROM invitations WHERE id = %s", inv["id"])
    assert row == [(hashlib.sha256(code.encode()).hexdigest(),)]
    assert c.psql("SELECT count(*) FROM audit WHERE detail::text LIKE %s", f"%{code}%") == [(0,)]
    assert "code" not in {k for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations") for k in i}
    # she sees it without the code, and learns she needs one
    mine = ok(cleo.api.get("/v1/me/invitations"))["items"]
    assert [(i["id"], i["code_required"]) for i in mine] == [(inv["id"], True)]
    # another account holding the code cannot take it (not theirs: 404)
    dan = Person(fe, "dan")
    denied(dan.accept(inv["id"], code), 404, "not_found")
    denied(dan.api.post(f"/v1/me/invitations/{inv['id']}/decline"), 404, "not_found")
    # hers, but without the code or with a wrong one: 403
    denied(cleo.accept(inv["id"]), 403, "wrong_invitation_code")
    denied(cleo.accept(inv["id"], "fvi_" + "A" * 43), 403, "wrong_invitation_code")
    denied(cleo.accept(inv["id"], code.lower() if code.lower() != code else code + "x"), 403,
           "wrong_invitation_code")
    assert cleo.id not in members(base)
    m = ok(cleo.accept(inv["id"], code))
    assert m["user_id"] == cleo.id and m["branch_id"] == base.root
    denied(cleo.accept(inv["id"], code), 409, "invitation_used")


def test_email_invitation_for_an_address_nobody_has_waits(base):
    """An address without an account: the same answer; whoever signs up with it later sees the
    invitation and needs the code too."""
    email = f"later-{new_id()[:8]}@example.org"
    inv = invite(base.admin.api, base.id, email=email)
    eve = Person(base.fe, "eve", email=email)
    assert [i["id"] for i in ok(eve.api.get("/v1/me/invitations"))["items"]] == [inv["id"]]
    denied(eve.accept(inv["id"]), 403, "wrong_invitation_code")
    ok(eve.accept(inv["id"], inv["code"]))


# ---------------------------------------------------------------- the org learns nothing

def _shape(x):
    """An answer without the values that differ between any two invitations."""
    return {k: (None if k in ("id", "created_at", "expires_at", "user_id", "email", "code") else v)
            for k, v in x.items()}


def test_the_same_answer_for_existing_and_missing_invitees(base):
    c = base.fe.c
    fay = Person(base.fe, "fay")
    a = invite(base.admin.api, base.id, user_id=fay.id)
    b = invite(base.admin.api, base.id, user_id=new_id())
    assert set(a) == set(b) and _shape(a) == _shape(b)
    e1 = invite(base.admin.api, base.id, email=fay.email)
    e2 = invite(base.admin.api, base.id, email=f"nobody-{new_id()[:8]}@example.org")
    assert set(e1) == set(e2) and _shape(e1) == _shape(e2) and "code" in e1 and "code" in e2
    # the list and the audit read the same too
    listed = {i["id"]: i for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations")}
    assert _shape(listed[a["id"]]) == _shape(listed[b["id"]])
    assert _shape(listed[e1["id"]]) == _shape(listed[e2["id"]])
    rows = {r[1]: r for r in org_audit(c, base.id) if r[0] == "invitation.create"}
    for x, y in ((a, b), (e1, e2)):
        dx, dy = rows[x["id"]][3], rows[y["id"]][3]
        assert dx.replace(x.get("user_id") or x["email"], "?") == dy.replace(y.get("user_id") or y["email"], "?")


def test_put_members_refuses_non_members_alike(base):
    gus = Person(base.fe, "gus")
    a = base.admin.api.put(f"/v1/orgs/{base.id}/members/{gus.id}", json={"role": "member"})
    b = base.admin.api.put(f"/v1/orgs/{base.id}/members/{new_id()}", json={"role": "member"})
    ea, eb = denied(a, 409, "not_a_member"), denied(b, 409, "not_a_member")
    assert ea == eb and "invite" in ea["message"]
    assert gus.id not in members(base)
    # a member: another branch, a role change
    join(base, gus)
    ok(base.admin.api.put(f"/v1/orgs/{base.id}/members/{gus.id}", json={"role": "member", "branch_id": base.north}))
    ok(base.admin.api.put(f"/v1/orgs/{base.id}/members/{gus.id}", json={"role": "manager"}))
    ok(base.admin.api.put(f"/v1/orgs/{base.id}/members/{gus.id}", json={"role": "member", "team_id": base.team}))
    roles = {(m["branch_id"], m["team_id"], m["role"]) for m in
             list_all(base.admin.api, f"/v1/orgs/{base.id}/members") if m["user_id"] == gus.id}
    assert roles == {(base.root, None, "manager"), (base.north, None, "member"), (None, base.team, "member")}
    # removed again: a non-member again
    ok(base.admin.api.delete(f"/v1/orgs/{base.id}/members/{gus.id}"), 204)
    denied(base.admin.api.put(f"/v1/orgs/{base.id}/members/{gus.id}", json={"role": "member"}), 409, "not_a_member")


def test_put_members_racing_a_removal_does_not_re_add(base):
    """A removal in flight (uncommitted) when PUT members changes the same user: PUT waits for it
    and then finds no member, instead of adding the removed user back without their consent."""
    import threading
    c = base.fe.c
    wes = Person(base.fe, "wes")
    join(base, wes)
    t1 = c.pg.connect(autocommit=False)
    with t1.cursor() as cur:
        cur.execute("DELETE FROM memberships WHERE org_id = %s AND user_id = %s", (base.id, wes.id))
    out = []
    th = threading.Thread(target=lambda: out.append(base.admin.api.put(
        f"/v1/orgs/{base.id}/members/{wes.id}", json={"role": "member", "branch_id": base.north})))
    th.start()
    # the PUT waits on the removal's row locks (or, without them, has already answered)
    wait_until(lambda: out or c.psql("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0] > 0, 30,
               what="the PUT to wait on the removal")
    t1.commit()
    th.join(30)
    t1.close()
    assert not th.is_alive()
    denied(out[0], 409, "not_a_member")
    assert c.psql("SELECT count(*) FROM memberships WHERE org_id = %s AND user_id = %s", base.id, wes.id) == [(0,)]


def _blocked(c):
    return c.psql("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0] > 0


def _in_thread(call):
    import threading
    out = []
    th = threading.Thread(target=lambda: out.append(call()))
    th.start()
    return th, out


def test_a_removal_sees_what_an_admin_wrote_for_the_member_while_it_waited(base):
    """The other order of the race above: another admin's PUT of a further membership and a grant
    naming the member are in flight (their statements hold the member's rows) when the removal
    starts. The removal waits for them, then removes what they wrote: the member keeps nothing
    (before migration 021 the removal's one snapshot missed both rows, and the member kept a
    membership and, on rejoining, the grant)."""
    from conftest import make_survey
    c = base.fe.c
    vic = Person(base.fe, "vic")
    join(base, vic)
    survey, _dep = make_survey(base.admin.api, base.id, [], name="Race survey")
    t1 = c.pg.connect(autocommit=False)
    with t1.cursor() as cur:  # what sql_member_set and sql_access_put hold and write, uncommitted
        cur.execute("SELECT id FROM memberships WHERE org_id = %s AND user_id = %s ORDER BY id FOR UPDATE",
                    (base.id, vic.id))
        cur.execute("INSERT INTO memberships (id, org_id, user_id, role, branch_id) VALUES (%s, %s, %s, 'member', %s)",
                    (new_id(), base.id, vic.id, base.north))
        cur.execute("INSERT INTO survey_grants (survey_id, principal_type, principal_id, role, granted_by) "
                    "VALUES (%s, 'user', %s, 'viewer', %s)", (survey["id"], vic.id, base.admin.id))
    th, out = _in_thread(lambda: base.admin.api.delete(f"/v1/orgs/{base.id}/members/{vic.id}"))
    wait_until(lambda: out or _blocked(c), 30, what="the removal to wait on the writer's row locks")
    t1.commit()
    th.join(30)
    t1.close()
    assert not th.is_alive()
    assert out[0].status_code == 204, out[0].text
    assert c.psql("SELECT count(*) FROM memberships WHERE org_id = %s AND user_id = %s", base.id, vic.id) == [(0,)]
    assert c.psql("SELECT count(*) FROM survey_grants WHERE principal_id = %s", vic.id) == [(0,)]
    (detail,) = c.psql("SELECT detail FROM audit WHERE action = 'member.remove' AND target_id = %s", vic.id)[0]
    assert len(detail["removed"]) == 2 and detail["left_org"] is True
    assert [g["survey_id"] for g in detail["grants"]] == [survey["id"]]


@pytest.mark.parametrize("what", ["grant", "deployment_create", "deployment_patch"])
def test_naming_a_member_whose_removal_is_in_flight_waits_and_is_refused(base, what):
    """A grant or deployment role naming a member whose removal is in flight (uncommitted) waits
    for it and then finds no member: 422 principal_not_member, nothing written (before migration
    021 the statement's snapshot still showed the membership, and the row outlived the removal)."""
    from conftest import make_survey
    c = base.fe.c
    wil = Person(base.fe, "wil")
    join(base, wil)
    survey, dep = make_survey(base.admin.api, base.id, [], name="Race survey")
    api = base.admin.api
    principal = {"type": "user", "id": wil.id}
    call = {
        "grant": lambda: api.put(f"/v1/surveys/{survey['id']}/access",
                                 json={"principal_type": "user", "principal_id": wil.id, "role": "viewer"}),
        "deployment_create": lambda: api.post(f"/v1/surveys/{survey['id']}/deployments",
                                              json={"name": "Race", "roles": {"viewers": [principal]}}),
        "deployment_patch": lambda: api.patch(f"/v1/deployments/{dep['id']}",
                                              json={"roles": {"viewers": [principal]}}),
    }[what]
    t1 = c.pg.connect(autocommit=False)
    with t1.cursor() as cur:  # the removal's delete, uncommitted
        cur.execute("DELETE FROM memberships WHERE org_id = %s AND user_id = %s", (base.id, wil.id))
    th, out = _in_thread(call)
    wait_until(lambda: out or _blocked(c), 30, what="the write to wait on the removal's row locks")
    t1.commit()
    th.join(30)
    t1.close()
    assert not th.is_alive()
    denied(out[0], 422, "principal_not_member")
    assert c.psql("SELECT count(*) FROM survey_grants WHERE principal_id = %s", wil.id) == [(0,)]
    assert c.psql("SELECT count(*) FROM deployment_roles WHERE principal_id = %s", wil.id) == [(0,)]


# ---------------------------------------------------------------- closed invitations

def test_expired_invitation(base):
    c = base.fe.c
    hal = Person(base.fe, "hal")
    inv = invite(base.admin.api, base.id, user_id=hal.id)
    c.psql("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = %s", inv["id"])
    assert ok(hal.api.get("/v1/me/invitations"))["items"] == []
    denied(hal.accept(inv["id"]), 409, "invitation_expired")
    denied(hal.api.post(f"/v1/me/invitations/{inv['id']}/decline"), 409, "invitation_expired")
    listed = {i["id"]: i for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations")}
    assert listed[inv["id"]]["status"] == "expired"
    assert hal.id not in members(base)


def test_invitations_expire_after_the_configured_ttl(fes, migrated):
    fe = start_fe(migrated, "frontend-inv-ttl", FV_INVITATION_TTL_S=60)
    try:
        boss = Person(fes["inv"], "ttl-boss")
        o = org_of(boss)
        inv = ok(fe.api(boss.key).post(f"/v1/orgs/{o.id}/invitations", json={"user_id": new_id(), "role": "member"}), 201)
        left = migrated.psql("SELECT extract(epoch FROM expires_at - created_at)::int FROM invitations WHERE id = %s",
                             inv["id"])
        assert left == [(60,)]
    finally:
        assert fe.proc.stop(signal.SIGTERM, timeout=30) == 0


def test_withdrawn_invitation(base):
    c = base.fe.c
    ida = Person(base.fe, "ida")
    inv = invite(base.admin.api, base.id, user_id=ida.id)
    path = f"/v1/orgs/{base.id}/invitations/{inv['id']}"
    denied(ida.api.delete(path), 404)  # the invitee is no member
    ok(base.admin.api.delete(path), 204)
    ok(base.admin.api.delete(path), 204)  # again: nothing changes
    assert len([r for r in org_audit(c, base.id) if r[0] == "invitation.withdraw" and r[1] == inv["id"]]) == 1
    assert ok(ida.api.get("/v1/me/invitations"))["items"] == []
    denied(ida.accept(inv["id"]), 409, "invitation_withdrawn")
    listed = {i["id"]: i for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations")}
    assert listed[inv["id"]]["status"] == "withdrawn"
    # an accepted one cannot be withdrawn (remove the member instead)
    inv2 = invite(base.admin.api, base.id, user_id=ida.id)
    ok(ida.accept(inv2["id"]))
    denied(base.admin.api.delete(f"/v1/orgs/{base.id}/invitations/{inv2['id']}"), 409, "invitation_used")
    denied(base.admin.api.delete(f"/v1/orgs/{base.id}/invitations/{new_id()}"), 404)


def test_an_invitation_of_an_admin_who_lost_the_power_is_void(base):
    deputy, joe = Person(base.fe, "deputy"), Person(base.fe, "joe")
    join(base, deputy, role="admin", branch_id=base.north)
    inv = invite(deputy.api, base.id, user_id=joe.id, branch_id=base.north)
    ok(base.admin.api.put(f"/v1/orgs/{base.id}/members/{deputy.id}", json={"role": "member", "branch_id": base.north}))
    denied(joe.accept(inv["id"]), 409, "invitation_withdrawn")
    assert joe.id not in members(base)


def test_declined_invitation_reads_pending_for_the_org(base):
    c = base.fe.c
    kim = Person(base.fe, "kim")
    inv = invite(base.admin.api, base.id, user_id=kim.id)
    before = org_audit(c, base.id)
    ok(kim.api.post(f"/v1/me/invitations/{inv['id']}/decline"), 204)
    assert org_audit(c, base.id) == before  # the org is not told
    assert c.psql("SELECT org_id FROM audit WHERE action = 'invitation.decline' AND target_id = %s",
                  inv["id"]) == [(None,)]
    listed = {i["id"]: i for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations")}
    assert listed[inv["id"]]["status"] == "pending"
    assert ok(kim.api.get("/v1/me/invitations"))["items"] == []
    denied(kim.accept(inv["id"]), 409, "invitation_declined")
    denied(kim.api.post(f"/v1/me/invitations/{inv['id']}/decline"), 409, "invitation_declined")
    assert kim.id not in members(base)


def test_someone_elses_invitation_is_404(base):
    lea, max_ = Person(base.fe, "lea"), Person(base.fe, "max")
    inv = invite(base.admin.api, base.id, user_id=lea.id)
    for path in (f"/v1/me/invitations/{inv['id']}/decline", f"/v1/me/invitations/{new_id()}/decline"):
        denied(max_.api.post(path), 404, "not_found")
    denied(max_.accept(inv["id"]), 404, "not_found")
    denied(max_.accept(new_id()), 404, "not_found")
    denied(max_.api.post("/v1/me/invitations/not-a-uuid/decline"), 404)
    assert inv["id"] not in {i["id"] for i in ok(max_.api.get("/v1/me/invitations"))["items"]}
    # the admin who made it cannot accept it either
    denied(base.admin.accept(inv["id"]), 404, "not_found")
    ok(lea.accept(inv["id"]))


# ---------------------------------------------------------------- who may invite, bounds, input

def test_who_may_invite_and_list(base):
    fe = base.fe
    nan, ola, pat, out = (Person(fe, n) for n in ("nan", "ola", "pat", "out"))
    join(base, nan, role="admin", branch_id=base.north)  # a branch admin
    join(base, ola)  # a plain member
    org_of(out)  # an admin elsewhere
    target = new_id()
    # the branch admin: to North, not to the root nor a team (as PUT members)
    mine = invite(nan.api, base.id, user_id=target, branch_id=base.north)
    denied(invite(nan.api, base.id, None, user_id=target), 403, "forbidden")
    denied(invite(nan.api, base.id, None, user_id=target, team_id=base.team), 403, "forbidden")
    denied(invite(ola.api, base.id, None, user_id=target), 403, "forbidden")
    denied(invite(ola.api, base.id, None, user_id=target, branch_id=base.north), 403, "forbidden")
    for who in (pat, out):
        denied(invite(who.api, base.id, None, user_id=target), 404)
        denied(who.api.get(f"/v1/orgs/{base.id}/invitations"), 404)
    denied(ola.api.get(f"/v1/orgs/{base.id}/invitations"), 403, "forbidden")
    # the branch admin lists only the invitations to its branch; the org admin all
    seen = {i["id"] for i in list_all(nan.api, f"/v1/orgs/{base.id}/invitations")}
    assert mine["id"] in seen
    assert all(i["branch_id"] == base.north for i in list_all(nan.api, f"/v1/orgs/{base.id}/invitations"))
    assert mine["id"] in {i["id"] for i in list_all(base.admin.api, f"/v1/orgs/{base.id}/invitations", limit=2)}
    denied(ola.api.delete(f"/v1/orgs/{base.id}/invitations/{mine['id']}"), 403, "forbidden")
    ok(nan.api.delete(f"/v1/orgs/{base.id}/invitations/{mine['id']}"), 204)
    # a branch or team of another org
    other = org_of(out, "Elsewhere")
    team_b = ok(out.api.post(f"/v1/orgs/{other.id}/teams", json={"name": "B team"}), 201)["id"]
    err = denied(invite(base.admin.api, base.id, None, user_id=target, branch_id=other.root), 422)
    assert err["fields"] == {"branch_id": "not a branch of this organisation"}
    err = denied(invite(base.admin.api, base.id, None, user_id=target, team_id=team_b), 422)
    assert err["fields"] == {"team_id": "not a team of this organisation"}


def test_totp_policy_applies_to_invitations(base):
    c = base.fe.c
    o = org_of(Person(base.fe, "strict"))
    c.psql("UPDATE orgs SET require_admin_totp = true WHERE id = %s", o.id)
    denied(invite(o.admin.api, o.id, None, user_id=new_id()), 403, "totp_required")
    denied(o.admin.api.get(f"/v1/orgs/{o.id}/invitations"), 403, "totp_required")


@pytest.mark.parametrize("body,field", [
    ({"role": "member"}, "email"),
    ({"email": "a@example.org", "user_id": "00000000-0000-4000-8000-000000000000", "role": "member"}, "user_id"),
    ({"email": "not-an-address", "role": "member"}, "email"),
    ({"email": "a b@example.org", "role": "member"}, "email"),
    ({"email": "x" * 250 + "@example.org", "role": "member"}, "email"),
    ({"email": 7, "role": "member"}, "email"),
    ({"user_id": "nope", "role": "member"}, "user_id"),
    ({"user_id": "00000000-0000-4000-8000-000000000000"}, "role"),
    ({"user_id": "00000000-0000-4000-8000-000000000000", "role": "owner"}, "role"),
    ({"user_id": "00000000-0000-4000-8000-000000000000", "role": "member", "branch_id": "x"}, "branch_id"),
    ({"user_id": "00000000-0000-4000-8000-000000000000", "role": "member", "team_id": 1}, "team_id"),
])
def test_bad_invitations_are_422(base, body, field):
    err = denied(base.admin.api.post(f"/v1/orgs/{base.id}/invitations", json=body), 422, "validation_failed")
    assert field in err["fields"], err


def test_bad_acceptances(base):
    qin = Person(base.fe, "qin")
    inv = invite(base.admin.api, base.id, email=qin.email)
    for code in (7, "", "x" * 101):
        err = denied(qin.accept(inv["id"], code), 422, "validation_failed")
        assert "code" in err["fields"]
    denied(qin.session.post("/v1/me/invitations/not-a-uuid/accept", json={"current_password": PASSWORD}), 404)


def test_bounds_on_pending_invitations_and_rate(fes):
    fe = fes["capped"]
    boss = Person(fes["inv"], "capped-boss")
    o = org_of(boss)
    api = fe.api(boss.key)
    made = [ok(api.post(f"/v1/orgs/{o.id}/invitations", json={"user_id": new_id(), "role": "member"}), 201)
            for _ in range(3)]
    denied(api.post(f"/v1/orgs/{o.id}/invitations", json={"email": "z@example.org", "role": "member"}), 409,
           "too_many_invitations")
    ok(api.delete(f"/v1/orgs/{o.id}/invitations/{made[0]['id']}"), 204)
    ok(api.post(f"/v1/orgs/{o.id}/invitations", json={"user_id": new_id(), "role": "member"}), 201)
    fe.c.psql("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = %s", made[1]["id"])
    ok(api.post(f"/v1/orgs/{o.id}/invitations", json={"user_id": new_id(), "role": "member"}), 201)
    # five made within the hour: the sixth waits, whatever room the pending bound leaves
    ok(api.delete(f"/v1/orgs/{o.id}/invitations/{made[2]['id']}"), 204)
    r = api.post(f"/v1/orgs/{o.id}/invitations", json={"user_id": new_id(), "role": "member"})
    denied(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= 3600
    # another org is not affected
    other = org_of(boss, "Other capped")
    ok(api.post(f"/v1/orgs/{other.id}/invitations", json={"user_id": new_id(), "role": "member"}), 201)
    assert fe.c.psql("SELECT count(*) FROM invitations WHERE org_id = %s", o.id) == [(5,)]


# ---------------------------------------------------------------- keys: suspension and reinstatement

def strike_out(fast, key, path="/v1/me"):
    """Drives key over its limit on the fast front end (requests to path) until it is suspended."""
    api = fast.api(key)

    def suspended():
        for _ in range(4):
            r = api.get(path)
            if r.status_code == 403 and error_body(r)["code"] == "key_suspended":
                return [r]
            assert r.status_code in (200, 404, 429), r.text
        return None
    try:
        return wait_until(suspended, 60, interval=0.2, what="the key to be suspended")[0]
    finally:
        api.close()


def suspended_org(c, key_id):
    rows = c.psql("SELECT suspended_at IS NOT NULL, suspended_org_id::text FROM api_keys WHERE id = %s", key_id)
    assert rows[0][0], "the key is not suspended"
    return rows[0][1]


def test_an_invitee_who_has_not_accepted_is_invisible_to_the_org(fes):
    """Pending invitation, then the invitee's key is suspended: the org's audit holds nothing
    about it (no address), its member list no row, and its admin no power over the key."""
    inv_fe, c = fes["inv"], fes["inv"].c
    boss, ray = Person(inv_fe, "watcher"), Person(inv_fe, "ray")
    o = org_of(boss)
    home = org_of(Person(inv_fe, "ray-home"))
    join(home, ray)
    invite(boss.api, o.id, user_id=ray.id)
    invite(boss.api, o.id, email=ray.email)
    before = org_audit(c, o.id)
    strike_out(fes["fast"], ray.key)
    assert suspended_org(c, ray.key_id) is None
    after = org_audit(c, o.id)
    assert after == before, "the org was told about a user who did not accept its invitation"
    assert not [r for r in after if r[0].startswith("apikey.") or r[1] == ray.key_id]
    assert ray.id not in members(o)
    denied(boss.api.post(f"/v1/api-keys/{ray.key_id}/reinstate"), 404)
    # her own org got the entry, with the address
    rows = [r for r in org_audit(c, home.id) if r[0] == "apikey.suspend" and r[1] == ray.key_id]
    assert len(rows) == 1 and rows[0][2] == "127.0.0.1"


def test_sockpuppet_admin_cannot_reinstate_but_a_prior_org_can(fes):
    inv_fe, c = fes["inv"], fes["inv"].c
    sam = Person(inv_fe, "sam")
    home = org_of(Person(inv_fe, "sam-home"))
    join(home, sam)  # joined before the suspension
    strike_out(fes["fast"], sam.key)
    assert suspended_org(c, sam.key_id) is None  # /v1/me names no organisation
    path = f"/v1/api-keys/{sam.key_id}/reinstate"
    # an admin who gets the owner to join after the suspension has no power over the key
    puppet = org_of(Person(inv_fe, "puppet"))
    join(puppet, sam)
    denied(puppet.admin.api.post(path), 404)
    # nor does the owner, by an org of their own (the key is suspended: with the session)
    ok(sam.session.post("/v1/orgs", json={"name": "Sam's own"}), 201)
    denied(sam.session.post(path), 403, "forbidden")
    # the org the owner joined before does
    body = ok(home.admin.api.post(path))
    assert body["suspended_at"] is None and body["user_id"] == sam.id
    assert c.psql("SELECT suspended_org_id FROM api_keys WHERE id = %s", sam.key_id) == [(None,)]


def test_the_org_whose_data_triggered_the_suspension_may_reinstate(fes):
    """Struck out on org X's data while a member of X: X's admin may reinstate even after the
    owner left X (the membership rule alone would not let it: no current membership), while
    another org the owner has left may not."""
    inv_fe, c = fes["inv"], fes["inv"].c
    tia = Person(inv_fe, "tia")
    x = org_of(Person(inv_fe, "x-admin"), "Data org")
    y = org_of(Person(inv_fe, "y-admin"), "Left org")
    join(x, tia)
    join(y, tia)
    strike_out(fes["fast"], tia.key, f"/v1/orgs/{x.id}/branches")
    assert suspended_org(c, tia.key_id) == x.id
    detail = [r[3] for r in org_audit(c, x.id) if r[0] == "apikey.suspend" and r[1] == tia.key_id]
    assert len(detail) == 1 and x.id in detail[0]
    ok(x.admin.api.delete(f"/v1/orgs/{x.id}/members/{tia.id}"), 204)
    ok(y.admin.api.delete(f"/v1/orgs/{y.id}/members/{tia.id}"), 204)
    path = f"/v1/api-keys/{tia.key_id}/reinstate"
    denied(y.admin.api.post(path), 404)
    ok(x.admin.api.post(path))
    assert c.psql("SELECT suspended_at, suspended_org_id FROM api_keys WHERE id = %s", tia.key_id) == [(None, None)]


def test_a_key_struck_out_on_a_foreign_org_names_no_org(fes):
    """A thief with a stolen key hammers his own org's paths to be the admin who may lift the
    suspension: an org the owner never joined is not recorded, and its admin has no power."""
    inv_fe, c = fes["inv"], fes["inv"].c
    uma = Person(inv_fe, "uma")
    home = org_of(Person(inv_fe, "uma-home"))
    join(home, uma)
    thief_org = org_of(Person(inv_fe, "thief"), "Thief org")
    strike_out(fes["fast"], uma.key, f"/v1/orgs/{thief_org.id}")
    assert suspended_org(c, uma.key_id) is None
    denied(thief_org.admin.api.post(f"/v1/api-keys/{uma.key_id}/reinstate"), 404)
    assert not [r for r in org_audit(c, thief_org.id) if r[1] == uma.key_id]
    ok(home.admin.api.post(f"/v1/api-keys/{uma.key_id}/reinstate"))
