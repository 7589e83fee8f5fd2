/* Revocations polled from PostgreSQL and applied in this child (see fe_revoke.h). */
#include "fe_revoke.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fe_cache.h"
#include "fe_pg.h"
#include "fv_log.h"

#define BATCH 1000
#define MAX_ENTRIES 1000000
#define MAX_HANDLERS 4

static struct {
    fe_revoke_state state;
    struct event *timer;
    long long last_id;
    bool in_flight, again;
    fe_cache *sessions; /* session id -> (void *)1 until the token would have expired anyway */
    fe_cache *users;    /* user id -> int64_t not_before (Unix seconds), owned */
    /* user_sessions, api_key, permissions, deployment and survey rows: subject -> long long id of the newest
     * row (owned), kept
     * while the row is in force, so a cached answer computed before it is known to be stale */
    fe_cache *subjects[FE_REVOKE_NKINDS];
    long long evicted_id; /* newest id of a subject's row forgotten early (cache full) */
    fe_revoke_fn handlers[FE_REVOKE_NKINDS][MAX_HANDLERS];
    bool full_logged;
} rv;

static const char *const kind_names[FE_REVOKE_NKINDS] = {"session",     "user_sessions", "api_key",
                                                         "permissions", "deployment",    "survey"};

/* Rows after the last one applied, and the ids missing so far (gaps); on the first poll every row
 * from the oldest still in force ($3 NULL), expired or not, so that gaps are real.
 *
 * Gaps: ids come from a sequence when a row is inserted, but transactions commit in any order, so
 * a row with a lower id can become visible after a higher one was read. An id skipped over is
 * asked for again on every poll for GAP_WAIT_S (a rolled-back insert leaves a gap for good). */
static const char sql_poll[] =
    "SELECT id, kind, subject, COALESCE(floor(extract(epoch FROM not_before))::bigint, 0), "
    "       GREATEST(1, ceil(extract(epoch FROM expires_at - now())))::bigint "
    "FROM revocations "
    "WHERE (id > $1 AND id >= COALESCE($3::bigint, (SELECT min(id) FROM revocations WHERE expires_at > now()), 0)) "
    "   OR id = ANY($2::bigint[]) "
    "ORDER BY id LIMIT 1000";

#define MAX_GAPS 1024
#define GAP_WAIT_S 30
#define FIRST_LOOKBACK 64

static struct {
    long long id[MAX_GAPS];
    time_t until[MAX_GAPS];
    int n;
    bool full_logged;
} gaps;

static void gap_add(long long id, time_t until)
{
    if (gaps.n == MAX_GAPS) {
        if (!gaps.full_logged)
            fv_warn("revocations: more than %d ids missing; not waiting for more", MAX_GAPS);
        gaps.full_logged = true;
        return;
    }
    gaps.id[gaps.n] = id;
    gaps.until[gaps.n++] = until;
}

/* Drops id (found) and every gap waited for long enough. */
static void gaps_prune(long long found, time_t now)
{
    int o = 0;
    for (int i = 0; i < gaps.n; i++)
        if (gaps.id[i] != found && gaps.until[i] > now) {
            gaps.id[o] = gaps.id[i];
            gaps.until[o++] = gaps.until[i];
        }
    gaps.n = o;
}

static void poll(void);

static void apply(long long id, const char *kind, const char *subject, long long not_before,
                  long long ttl)
{
    int k = -1;
    for (int i = 0; i < FE_REVOKE_NKINDS; i++)
        if (strcmp(kind, kind_names[i]) == 0) k = i;
    if (k < 0) return;
    time_t now = fe_cache_now();
    int ttl_s = ttl > 400 * 24 * 3600 ? 400 * 24 * 3600 : (int)ttl;
    if ((k == FE_REVOKE_SESSION || k == FE_REVOKE_USER_SESSIONS) && !rv.full_logged &&
        fe_cache_count(rv.sessions) + fe_cache_count(rv.users) >= MAX_ENTRIES - 1) {
        fv_error("revocations: %d entries in force; the ones nearest expiry are forgotten, and every "
                 "session token expiring before them is refused",
                 MAX_ENTRIES);
        rv.full_logged = true;
    }
    if (rv.subjects[k]) {
        long long *prev = fe_cache_get(rv.subjects[k], subject, now, NULL), *idp;
        if ((!prev || *prev < id) && (idp = malloc(sizeof *idp))) {
            *idp = id;
            fe_cache_put(rv.subjects[k], subject, idp, now, ttl_s, ttl_s);
        } else if (!prev || *prev < id) {
            rv.evicted_id = id; /* out of memory: fail closed as if forgotten */
        }
    }
    if (k == FE_REVOKE_SESSION) {
        fe_cache_put(rv.sessions, subject, (void *)1, now, ttl_s, ttl_s);
    } else if (k == FE_REVOKE_USER_SESSIONS) {
        int64_t *prev = fe_cache_get(rv.users, subject, now, NULL);
        if (prev && *prev >= not_before) return;
        int64_t *nb = malloc(sizeof *nb);
        if (!nb) return;
        *nb = not_before;
        fe_cache_put(rv.users, subject, nb, now, ttl_s, ttl_s);
    }
    for (int i = 0; i < MAX_HANDLERS && rv.handlers[k][i]; i++) rv.handlers[k][i](subject);
}

static void polled(const fe_pg_result *res, void *arg)
{
    rv.in_flight = false;
    if (res->status != FE_PG_OK) {
        if (res->status == FE_PG_SQL) fv_warn("revocations: poll refused (SQLSTATE %s)", res->sqlstate);
        return; /* PostgreSQL down: keep what we know; the timer tries again */
    }
    int n = PQntuples(res->res);
    time_t now = fe_cache_now();
    gaps_prune(-1, now);
    for (int i = 0; i < n; i++) {
        long long id = atoll(PQgetvalue(res->res, i, 0));
        if (id <= rv.last_id) {
            gaps_prune(id, now); /* a late commit: applied now */
        } else {
            /* ids skipped over may still commit; before the first row ever read, the few ids
             * just below it (older rows are expired, or committed and read) */
            long long from = rv.last_id > 0 ? rv.last_id + 1
                                            : (id > FIRST_LOOKBACK ? id - FIRST_LOOKBACK : 1);
            for (long long g = from; g < id && g < from + MAX_GAPS; g++) gap_add(g, now + GAP_WAIT_S);
            rv.last_id = id;
        }
        apply(id, PQgetvalue(res->res, i, 1), PQgetvalue(res->res, i, 2),
              atoll(PQgetvalue(res->res, i, 3)), atoll(PQgetvalue(res->res, i, 4)));
    }
    if (rv.state == FE_REVOKE_LOADING && n < BATCH) {
        rv.state = FE_REVOKE_CURRENT;
        fv_debug("revocations: loaded, last id %lld", rv.last_id);
    }
    if (n == BATCH || rv.again) {
        rv.again = false;
        poll();
    }
}

static void poll(void)
{
    if (rv.in_flight) {
        rv.again = true;
        return;
    }
    if (!fe_pg_up() && rv.state == FE_REVOKE_CURRENT) return;
    rv.in_flight = true;
    char last[32], missing[MAX_GAPS * 21 + 3];
    snprintf(last, sizeof last, "%lld", rv.last_id);
    size_t o = 0;
    missing[o++] = '{';
    for (int i = 0; i < gaps.n; i++)
        o += (size_t)snprintf(missing + o, sizeof missing - o, "%s%lld", i ? "," : "", gaps.id[i]);
    snprintf(missing + o, sizeof missing - o, "}");
    /* before anything was read: from the oldest row in force */
    const char *params[] = {last, missing, rv.last_id > 0 ? "0" : NULL};
    fe_pg_query(sql_poll, 3, params, polled, NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    poll();
}

/* A subject's row forgotten before its end (the cache is full): every cached answer older than
 * it counts as stale from now on (fail closed). */
static void subject_evicted(const char *subject, void *value, time_t expires)
{
    long long id = *(long long *)value;
    if (id > rv.evicted_id) rv.evicted_id = id;
}

int fe_revoke_init(struct event_base *base, int poll_ms)
{
    rv.sessions = fe_cache_new(MAX_ENTRIES, NULL);
    rv.users = fe_cache_new(MAX_ENTRIES, free);
    rv.timer = event_new(base, -1, EV_PERSIST, on_timer, NULL);
    if (!rv.sessions || !rv.users || !rv.timer) return -1;
    /* user_sessions rows are kept by subject too: fe_openrosa_auth's Basic cache asks about them */
    for (int k = FE_REVOKE_USER_SESSIONS; k < FE_REVOKE_NKINDS; k++) {
        rv.subjects[k] = fe_cache_new(MAX_ENTRIES, free);
        if (!rv.subjects[k]) return -1;
        fe_cache_on_evict(rv.subjects[k], subject_evicted);
    }
    struct timeval tv = {poll_ms / 1000, (poll_ms % 1000) * 1000};
    event_add(rv.timer, &tv);
    poll();
    return 0;
}

void fe_revoke_shutdown(void)
{
    if (rv.timer) event_free(rv.timer);
    fe_cache_free(rv.sessions);
    fe_cache_free(rv.users);
    for (int k = 0; k < FE_REVOKE_NKINDS; k++) fe_cache_free(rv.subjects[k]);
    memset(&rv, 0, sizeof rv);
    memset(&gaps, 0, sizeof gaps);
}

fe_revoke_state fe_revoke_get_state(void)
{
    return rv.state;
}

void fe_revoke_on(fe_revoke_kind kind, fe_revoke_fn fn)
{
    for (int i = 0; i < MAX_HANDLERS; i++)
        if (!rv.handlers[kind][i]) {
            rv.handlers[kind][i] = fn;
            return;
        }
    fv_error("revocations: too many handlers for kind %d", (int)kind);
}

bool fe_revoke_session_void(const char *session_id, const char *user_id, int64_t issued_at,
                            int64_t expires_at)
{
    time_t now = fe_cache_now();
    if (fe_cache_get(rv.sessions, session_id, now, NULL)) return true;
    int64_t *nb = fe_cache_get(rv.users, user_id, now, NULL);
    if (nb && issued_at < *nb) return true;
    /* A full cache forgot the revocations nearest their end: a token whose life ends no later
     * than the latest of them may be one of them, so it is refused (fail closed; its owner signs
     * in again). The rows' lives are the tokens' (+1 s of rounding). */
    time_t forgot = fe_cache_evicted_until(rv.sessions), forgot_users = fe_cache_evicted_until(rv.users);
    if (forgot_users > forgot) forgot = forgot_users;
    if (forgot == 0) return false;
    int64_t left = expires_at - (int64_t)time(NULL);
    return (int64_t)now + left <= (int64_t)forgot + 1;
}

long long fe_revoke_version(void)
{
    if (rv.state != FE_REVOKE_CURRENT) return -1;
    long long v = rv.last_id;
    for (int i = 0; i < gaps.n; i++)
        if (gaps.id[i] - 1 < v) v = gaps.id[i] - 1;
    return v;
}

bool fe_revoke_unchanged_since(fe_revoke_kind kind, const char *subject, long long version)
{
    if (rv.state != FE_REVOKE_CURRENT || version < 0 || version < rv.evicted_id) return false;
    if (!rv.subjects[kind]) return true;
    long long *id = fe_cache_get(rv.subjects[kind], subject, fe_cache_now(), NULL);
    return !id || *id <= version;
}

void fe_revoke_poll_now(void)
{
    poll();
}
