/* fvctl rotate-master-key --drop ID: what is still under an old master key (data keys and TOTP
 * secrets in PostgreSQL, queue entries on the submissions and dead-letter streams in Redis), then,
 * when nothing is (or with --force), the key's line removed from the key file (fvctl_keyfile_drop).
 * What it cannot see from here (the front ends' spool files, session tokens) it names, with the
 * advice.
 *
 * Under a key means: a data key whose wrapped text is "s1.<id>.…" (fv_datakey.h), a TOTP secret
 * sealed as "s1.<id>.…" (fv_seal.h), a queue entry whose `sealed` field is "q1.<id>.…" (fv_qseal.h).
 * Nothing re-seals queue entries: they leave the streams when a worker that holds the key stores
 * them (or an operator requeues a dead letter and a worker then does). Every check is of the
 * moment it runs; the streams are read in pages (XRANGE COUNT), so a long one never loads whole. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_cli.h"
#include "fv_envelope.h"
#include "fv_keys.h"
#include "fv_pgutil.h"
#include "fv_redisutil.h"
#include "fv_settings.h"
#include "fvctl.h"
#include "fvctl_keyfile.h"

#define CMD "rotate-master-key"
#define SCAN_FIRST 16                      /* XRANGE COUNT of the first page */
#define SCAN_PAGE 500                      /* XRANGE COUNT, at most */
#define SCAN_PAGE_BYTES ((size_t)32 << 20) /* and about this much reply a page, once sizes are seen */
#define STREAM_ID_MAX 48                   /* "ms-seq": two 20-digit numbers and a dash fit */
#define NOT_CHECKED (-1)                   /* a count that could not be made (why is on stderr) */

static const char sql_under[] =
    "SELECT (SELECT count(*) FROM data_keys WHERE wrapped LIKE $1), "
    "(SELECT count(*) FROM users WHERE totp_secret LIKE $1), "
    "(SELECT count(*) FROM users WHERE email_hmac_key = substr($1, 4, 8)) + "
    "(SELECT count(*) FROM invitations WHERE email_hmac_key = substr($1, 4, 8))";
/* The rows named (5 of each kind, then "..."). */
static const char sql_dk_named[] = "SELECT scope, version::text FROM data_keys WHERE wrapped LIKE $1 "
                                   "ORDER BY scope, version LIMIT 5";
static const char sql_totp_named[] = "SELECT id::text FROM users WHERE totp_secret LIKE $1 "
                                     "ORDER BY id LIMIT 5";
static const char sql_hmac_named[] =
    "SELECT * FROM (SELECT 'user ' || id::text FROM users WHERE email_hmac_key = substr($1, 4, 8) "
    "ORDER BY id LIMIT 5) u UNION ALL SELECT * FROM (SELECT 'invitation ' || id::text FROM invitations "
    "WHERE email_hmac_key = substr($1, 4, 8) ORDER BY id LIMIT 5) i";
static const char sql_sessions[] = "SELECT count(*), coalesce(fv_ts(min(created_at)), '') FROM sessions "
                                   "WHERE revoked_at IS NULL AND expires_at > now()";

/* What one stream holds under the key. */
typedef struct stream_found {
    long long read;             /* entries read; NOT_CHECKED when the stream could not be read */
    long long under;            /* of them, sealed under the key */
    char oldest[STREAM_ID_MAX]; /* the first of those, in stream order */
    char newest[STREAM_ID_MAX]; /* the last */
} stream_found;

/* Everything the checks found (each count NOT_CHECKED when it could not be made). */
typedef struct drop_found {
    long long data_keys, totp, hmacs;
    stream_found queued, dead;
    long long sessions;      /* valid sessions (not revoked, not expired) */
    char oldest_session[40]; /* the oldest one's created_at, fv_ts */
} drop_found;

/* One count query's single row, or false after saying why on stderr. */
static bool one_row(PGconn *conn, PGresult *res, const char *what, int ncols)
{
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == ncols)
        return true;
    char err[512];
    fv_pgutil_error(conn, res, err, sizeof err);
    fprintf(stderr, "fvctl %s: %s: %s\n", CMD, what, err);
    return false;
}

/* The rows sql names (a scope and a version, or a user id), after ": " on the current line, with
 * ", ..." when total is more. */
static void print_named(PGconn *conn, const char *sql, const char *pattern, long long total)
{
    const char *params[] = {pattern};
    PGresult *res = PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++) {
            printf("%s%s", i ? ", " : ": ", PQgetvalue(res, i, 0));
            if (PQnfields(res) > 1) printf(" v%s", PQgetvalue(res, i, 1));
        }
        if (total > PQntuples(res)) printf(", ...");
    }
    PQclear(res);
}

/* The PostgreSQL half: data keys, TOTP secrets (printed as found), and the sessions for the advice. */
static void check_pg(const char *pattern, drop_found *f)
{
    f->data_keys = f->totp = f->hmacs = f->sessions = NOT_CHECKED;
    PGconn *conn = fvctl_pg_connect(CMD);
    if (conn) {
        const char *params[] = {pattern};
        PGresult *res = PQexecParams(conn, sql_under, 1, NULL, params, NULL, NULL, 0);
        if (one_row(conn, res, "counting the data keys, TOTP secrets and email HMACs under the key",
                    3)) {
            f->data_keys = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            f->totp = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
            f->hmacs = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        }
        PQclear(res);
        res = PQexecParams(conn, sql_sessions, 0, NULL, NULL, NULL, NULL, 0);
        if (one_row(conn, res, "counting the valid sessions", 2)) {
            f->sessions = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            snprintf(f->oldest_session, sizeof f->oldest_session, "%s", PQgetvalue(res, 0, 1));
        }
        PQclear(res);
    }
    if (f->data_keys == NOT_CHECKED) {
        printf("  data keys wrapped under it (data_keys): not checked (see the PostgreSQL error)\n");
        printf(
            "  TOTP secrets sealed under it (users.totp_secret): not checked (see the PostgreSQL error)\n");
    } else {
        printf("  data keys wrapped under it (data_keys): %lld", f->data_keys);
        if (f->data_keys > 0) print_named(conn, sql_dk_named, pattern, f->data_keys);
        printf("\n  TOTP secrets sealed under it (users.totp_secret): %lld", f->totp);
        if (f->totp > 0) print_named(conn, sql_totp_named, pattern, f->totp);
        printf("\n  email HMACs under it (users.email_hmac, invitations.email_hmac): %lld", f->hmacs);
        if (f->hmacs > 0) print_named(conn, sql_hmac_named, pattern, f->hmacs);
        printf("\n");
    }
    if (conn) PQfinish(conn);
}

/* Reads stream from its start to its end in pages and counts the entries whose `sealed` field
 * starts with prefix. Entries may be large (an OpenRosa submission carries its attachments) and
 * XRANGE cannot bound a reply in bytes, so the pages start small and grow: SCAN_FIRST entries, then
 * twice the last page, at most SCAN_PAGE, and at most SCAN_PAGE_BYTES / the largest entry seen (at
 * least 1). Returns 0, or -1 after saying why on stderr. */
static int scan_stream(redisContext *c, const char *stream, const char *prefix, stream_found *out)
{
    size_t plen = strlen(prefix), largest = 0, count = SCAN_FIRST;
    char start[STREAM_ID_MAX + 1] = "-", cnt[24];
    out->read = out->under = 0;
    out->oldest[0] = out->newest[0] = '\0';
    for (bool first = true;; first = false) {
        if (!first) count = count * 2 > SCAN_PAGE ? SCAN_PAGE : count * 2;
        if (largest > 0 && SCAN_PAGE_BYTES / largest < count) count = SCAN_PAGE_BYTES / largest;
        if (count == 0) count = 1;
        snprintf(cnt, sizeof cnt, "%zu", count);
        const char *args[] = {"XRANGE", stream, start, "+", "COUNT", cnt};
        redisReply *r = redisCommandArgv(c, 6, args, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            char what[160];
            snprintf(what, sizeof what, "reading %s (XRANGE)", stream);
            fvctl_redis_failed(CMD, what, c, r);
            if (r) freeReplyObject(r);
            return -1;
        }
        size_t n = r->elements;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= STREAM_ID_MAX) {
                fprintf(stderr, "fvctl %s: reading %s: an XRANGE reply that is not a stream entry\n",
                        CMD, stream);
                freeReplyObject(r);
                return -1;
            }
            const char *id = e->element[0]->str;
            const redisReply *f = e->element[1];
            size_t size = e->element[0]->len;
            bool under = false;
            /* Every field named `sealed` counts (an entry with two is refused by the worker, but
             * whether one of them is under the key is what matters here). */
            for (size_t j = 0; f->type == REDIS_REPLY_ARRAY && j + 1 < f->elements; j += 2) {
                const redisReply *name = f->element[j], *value = f->element[j + 1];
                if (name->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING) continue;
                size += name->len + value->len;
                if (name->len == strlen(FV_ENVELOPE_F_SEALED) &&
                    memcmp(name->str, FV_ENVELOPE_F_SEALED, name->len) == 0 && value->len > plen &&
                    memcmp(value->str, prefix, plen) == 0)
                    under = true;
            }
            if (size > largest) largest = size;
            out->read++;
            if (under) {
                if (out->under++ == 0) snprintf(out->oldest, sizeof out->oldest, "%s", id);
                snprintf(out->newest, sizeof out->newest, "%s", id);
            }
            snprintf(start, sizeof start, "(%s", id);
        }
        freeReplyObject(r);
        if (n < count) return 0;
    }
}

static void print_stream(const char *what, const char *stream, const stream_found *s)
{
    printf("  %s sealed under it on %s: ", what, stream);
    if (s->read == NOT_CHECKED) printf("not checked (see the Redis error)\n");
    else if (s->under == 0) printf("0 of %lld\n", s->read);
    else if (s->under == 1) printf("1 of %lld (%s)\n", s->read, s->oldest);
    else
        printf("%lld of %lld (the oldest %s, the newest %s)\n", s->under, s->read, s->oldest, s->newest);
}

/* The Redis half: the submissions stream and the dead-letter stream. */
static void check_redis(const char *prefix, drop_found *f)
{
    f->queued.read = f->dead.read = NOT_CHECKED;
    redisContext *c = fvctl_redis_connect(CMD, FVCTL_TIMEOUT_S * 1000);
    if (c) {
        if (scan_stream(c, fv_common.stream, prefix, &f->queued) != 0) f->queued.read = NOT_CHECKED;
        if (!c->err && scan_stream(c, fv_common.dead_stream, prefix, &f->dead) != 0)
            f->dead.read = NOT_CHECKED;
        redisFree(c);
    }
    print_stream("queue entries", fv_common.stream, &f->queued);
    print_stream("dead letters", fv_common.dead_stream, &f->dead);
}

/* What fvctl cannot see from here, and what to do about it. */
static void print_unchecked(const char *id, const drop_found *f)
{
    printf("not checked (fvctl cannot see them from here; check them yourself):\n"
           "  the front ends' spool files: a submission spooled while Redis was unreachable, sealed\n"
           "    under %s, is replayed into the stream later and dead-lettered once no worker\n"
           "    holds %s. On every front-end host GET /readyz must show \"spool_pending\":0 (or\n"
           "    its spool_dir hold no spool-*.log with entries) since its restart with another key\n"
           "    first.\n"
           "  session tokens signed under %s: stateless, each verifies until session_ttl_s\n"
           "    ([frontend], default 43200 s = 12 h) after it was signed. Neither the sessions\n"
           "    table nor fvctl knows which key signed a token, nor when the last front end stopped\n"
           "    signing under %s (its restart with another key first): drop the key only\n"
           "    session_ttl_s after that restart. Dropped sooner, those tokens get 401 and their\n"
           "    users sign in again (nothing else is lost).\n",
           id, id, id, id);
    if (f->sessions > 0)
        printf("    Valid sessions now: %lld, the oldest created %s: if every front end\n"
               "    was restarted with another key first before then, none of them is under %s.\n",
               f->sessions, f->oldest_session, id);
    else if (f->sessions == 0)
        printf("    Valid sessions now: none, so no token signed under %s verifies any more.\n", id);
    else printf("    Valid sessions now: not known (see the PostgreSQL error).\n");
    printf("  shared-cache entries MACed under %s live redis_cache_ttl_s ([frontend], 600 s):\n"
           "    one read after the drop is a miss (a lookup in PostgreSQL), never an error.\n",
           id);
}

/* "2 data key(s), 1 queue entry(ies) on fv:submissions" into out: what is under the key. */
static void summary(const drop_found *f, char *out, size_t outlen)
{
    const struct {
        long long n;
        const char *what, *where;
    } kinds[] = {
        {f->data_keys, "data key(s)", ""},
        {f->totp, "TOTP secret(s)", ""},
        {f->hmacs, "email HMAC(s)", ""},
        {f->queued.read != NOT_CHECKED ? f->queued.under : 0, "queue entry(ies) on ", fv_common.stream},
        {f->dead.read != NOT_CHECKED ? f->dead.under : 0, "dead letter(s) on ", fv_common.dead_stream},
    };
    int o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].n > 0 && o >= 0 && (size_t)o < outlen)
            o += snprintf(out + o, outlen - (size_t)o, "%s%lld %s%s", o ? ", " : "", kinds[i].n,
                          kinds[i].what, kinds[i].where);
}

/* Says on stderr how to bring away what is under the key. */
static void print_left(const char *id, const drop_found *f)
{
    if (f->data_keys > 0 || f->totp > 0 || f->hmacs > 0)
        fprintf(
            stderr,
            "  data keys, TOTP secrets and email HMACs: run `fvctl rotate-master-key` (without options) with\n"
            "    this key file; it re-wraps and re-seals them under the current key (run it again\n"
            "    once every program has restarted if one not yet restarted made more meanwhile)\n");
    if (f->queued.read != NOT_CHECKED && f->queued.under > 0)
        fprintf(stderr,
                "  queue entries: let the workers store them, until `fvctl queue` shows %s\n"
                "    drained; every worker must still hold %s (restart none without it yet)\n",
                fv_common.stream, id);
    if (f->dead.read != NOT_CHECKED && f->dead.under > 0)
        fprintf(
            stderr,
            "  dead letters: see `fvctl dead-letters`; `fvctl requeue` them while the workers still\n"
            "    hold %s (docs/operations.md section 6), or accept that they are lost\n",
            id);
    if (f->data_keys == NOT_CHECKED || f->queued.read == NOT_CHECKED || f->dead.read == NOT_CHECKED)
        fprintf(stderr,
                "  what could not be checked may be under %s: run this again once\n"
                "    PostgreSQL and Redis answer\n",
                id);
}

int fvctl_drop_master_key(const char *id, bool force)
{
    const char *path = fv_common.key_file;
    char err[512], pattern[3 + FV_KEY_IDLEN + 3], prefix[3 + FV_KEY_IDLEN + 2], what[512];
    int position = 0, nkeys = 0;
    fv_keyset ks;
    /* The file's own refusals first: nothing to check for a key that cannot go anyway. */
    if (fvctl_keyfile_drop_check(path, id, &position, err, sizeof err) != 0 ||
        fv_keys_load(&ks, path, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: %s\n", CMD, err);
        return FV_EXIT_FAILURE;
    }
    int before = ks.n;
    fv_keys_clear(&ks);
    snprintf(pattern, sizeof pattern, "s1.%s.%%", id);
    snprintf(prefix, sizeof prefix, "q1.%s.", id);
    printf("fvctl %s: master key %s, key %d of %d in %s: what is still under it\n", CMD, id, position,
           before, path);
    drop_found f;
    memset(&f, 0, sizeof f);
    check_pg(pattern, &f);
    check_redis(prefix, &f);
    print_unchecked(id, &f);
    fflush(stdout);
    summary(&f, what, sizeof what);
    bool unchecked = f.data_keys == NOT_CHECKED || f.queued.read == NOT_CHECKED ||
                     f.dead.read == NOT_CHECKED;
    const char *also = what[0] && unchecked ? "; and not everything could be checked"
                       : unchecked          ? "not everything could be checked"
                                            : "";
    if ((what[0] || unchecked) && !force) {
        fprintf(stderr, "fvctl %s: master key %s not dropped (nothing written): %s%s%s\n", CMD, id,
                what[0] ? "still under it: " : "", what, also);
        print_left(id, &f);
        fprintf(stderr,
                "  then run this again. --force drops it anyway (a leaked key that must go now):\n"
                "    whatever is under it then opens in no program restarted with the new file\n");
        return FV_EXIT_FAILURE;
    }
    if (what[0] || unchecked) {
        fprintf(stderr, "fvctl %s: --force: dropping master key %s although %s%s%s\n", CMD, id,
                what[0] ? "still under it: " : "", what, also);
        print_left(id, &f);
        fprintf(stderr,
                "  once it is dropped, that opens in no program restarted with the new file: only\n"
                "    a copy of the old key file (your backup) opens it again\n");
    }
    if (fvctl_keyfile_drop(path, id, &nkeys, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: %s\n", CMD, err);
        return FV_EXIT_FAILURE;
    }
    if (fv_keys_load(&ks, path, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: the new key file: %s\n", CMD, err);
        return FV_EXIT_FAILURE;
    }
    printf("fvctl %s: master key %s dropped from %s%s: %d key(s) left\n", CMD, id, path,
           what[0] || unchecked ? " (--force)" : "", nkeys);
    for (int i = 0; i < ks.n; i++)
        printf("  key %d: %s%s\n", i + 1, ks.keys[i].id, i == 0 ? " (current)" : "");
    fv_keys_clear(&ks);
    printf("next:\n"
           "  copy %s to every other host that has one (mode 0600, owner fieldvault),\n"
           "  then restart every program that reads it, one by one: each then logs \"key_file ...\"\n"
           "  without %s. Until it restarts a program still holds %s, which is harmless:\n"
           "  nothing new is made under a key that is not first.\n",
           path, id, id);
    return FV_EXIT_OK;
}
