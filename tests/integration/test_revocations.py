"""Revocations reach every front-end child even when they commit out of id order.

Revocation rows take their id from a sequence when inserted, but transactions commit in any
order: a row with a lower id can become visible after a child has read past it. fe_revoke.c keeps
asking for the ids it skipped over (for GAP_WAIT_S), so such a late row is still applied."""
from fvharness import child_of, free_port, pin_children, wait_until

AUTH_TTL = 300  # far longer than the test: only a revocation can end a cached key here


def start_fe(c, name, **env):
    port = free_port()
    c.start_frontend(name=name, FV_LISTEN_PORT=port, **env)
    return port


def statuses(port, pinned, key):
    out = {}
    for pid, s in pinned.items():
        r = s.get(f"https://127.0.0.1:{port}/v1/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        assert child_of(r) == pid
        out[pid] = r.status_code
    return out


def test_a_revocation_committed_after_a_later_one_is_applied(migrated):
    c = migrated
    port = start_fe(c, "frontend-revocations", FV_AUTH_CACHE_TTL_S=AUTH_TTL, FV_CACHE_STALE_S=AUTH_TTL,
                    FV_REVOCATION_POLL_MS=200)
    early = c.create_user("early-revoked@example.org", "Early")
    late = c.create_user("late-revoked@example.org", "Late")
    pins = {k: pin_children(c, port) for k in (early, late)}
    for k in (early, late):  # cached by both children
        assert set(statuses(port, pins[k], k).values()) == {200}

    conn = c.pg.connect(autocommit=False)
    try:
        cur = conn.cursor()
        # the early revocation: its row takes the lower id, but is not committed yet
        cur.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = encode(sha256(%s::bytea), 'hex') "
                    "RETURNING key_hash", (early,))
        (h_early,) = cur.fetchone()
        cur.execute("INSERT INTO revocations (kind, subject, expires_at) "
                    "VALUES ('api_key', %s, now() + interval '1 hour') RETURNING id", (h_early,))
        (id_early,) = cur.fetchone()
        # the late one commits first, with a higher id; every child reads past the early id
        rows = c.psql("WITH k AS (UPDATE api_keys SET revoked_at = now() "
                      "           WHERE key_hash = encode(sha256(%s::bytea), 'hex') RETURNING key_hash) "
                      "INSERT INTO revocations (kind, subject, expires_at) "
                      "SELECT 'api_key', key_hash, now() + interval '1 hour' FROM k RETURNING id", late)
        assert rows[0][0] > id_early
        wait_until(lambda: set(statuses(port, pins[late], late).values()) == {401}, 10,
                   what="every child to apply the late revocation")
        assert set(statuses(port, pins[early], early).values()) == {200}  # not visible yet
        conn.commit()
    finally:
        conn.close()
    wait_until(lambda: set(statuses(port, pins[early], early).values()) == {401}, 10,
               what="every child to apply the revocation that committed late")
    for p in pins.values():
        for s in p.values():
            s.close()
