/* fvctl: the operator's command line: migrate, create-admin, create-user, queue, dead letters. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_config.h"
#include "fv_crypto.h"
#include "fv_envelope.h"
#include "fv_id.h"
#include "fv_migrate.h"
#include "fv_pgutil.h"
#include "fv_redisutil.h"
#include "fv_settings.h"
#include "fv_spool.h"

#ifndef FV_SQL_DIR
#define FV_SQL_DIR "common/sql"
#endif

#define FVCTL_TIMEOUT_S 10

static const fv_cfg_entry fvctl_config_table[] = {
    FV_COMMON_CFG_ENTRIES,
    {NULL, NULL, 0, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n"
            "  migrate [--sql-dir DIR]           apply the numbered migrations not yet applied\n"
            "                                    (default DIR: %s)\n"
            "  create-admin --email E --name N   create (or reuse and promote) an operator account\n"
            "                                    and print a new API key for it on stdout\n"
            "  create-user --email E --name N    the same for an ordinary (non-admin) account\n"
            "  queue                             show the stream length, pending entries per\n"
            "                                    consumer and the dead-letter stream length\n"
            "  dead-letters [--limit N] [--json] [--show-data]\n"
            "                                    list the dead-letter stream, oldest first (default\n"
            "                                    100 entries, --limit 0 for all); answers, location\n"
            "                                    and collected_at are shown only with --show-data\n"
            "  requeue ID | --all                move dead letter ID (or every one) back onto the\n"
            "                                    submissions stream, atomically (MULTI/EXEC)\n"
            "  spool-replay DIR                  replay the spool files a dead front end left in DIR\n"
            "                                    (its spool_dir) into Redis and empty them; files a\n"
            "                                    running front end holds are skipped; prints the count\n"
            "\n"
            "options:\n"
            "  -c FILE      configuration file (its [common] section: pg_dsn, redis_*, streams)\n"
            "  -h, --help   this text\n"
            "Environment FV_<KEY> overrides a key, e.g. FV_PG_DSN.\n",
            FV_SQL_DIR);
}

static PGconn *pg_connect(void)
{
    char err[512];
    PGconn *conn = fv_pgutil_connect(fv_common.pg_dsn, "fvctl", FVCTL_TIMEOUT_S, 0, err, sizeof err);
    if (!conn) fprintf(stderr, "fvctl: cannot connect to PostgreSQL: %s\n", err);
    return conn;
}

static int cmd_migrate(int argc, char **argv)
{
    const char *dir = FV_SQL_DIR;
    static const struct option opts[] = {{"sql-dir", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'd') dir = optarg;
        else if (c == 'h') { usage(stdout); return 0; }
        else return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl migrate: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    PGconn *conn = pg_connect();
    if (!conn) return 1;
    char err[1024];
    int n = fv_migrate_run(conn, dir, stderr, err, sizeof err);
    PQfinish(conn);
    if (n < 0) {
        fprintf(stderr, "fvctl %s\n", err);
        return 1;
    }
    fprintf(stderr, "fvctl migrate: %d migration%s applied, schema up to date\n", n, n == 1 ? "" : "s");
    return 0;
}

/* Runs one parameterised statement expecting `want`; returns the result (caller PQclears) or
 * NULL after printing the error with `what`. */
static PGresult *q(PGconn *conn, const char *what, const char *sql, int n, const char *const *params,
                   ExecStatusType want)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == want) return res;
    char err[512];
    fv_pgutil_error(conn, res, err, sizeof err);
    fprintf(stderr, "fvctl: %s: %s\n", what, err);
    PQclear(res);
    return NULL;
}

static bool plausible_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || at[1] == '\0' || strchr(at + 1, '@')) return false;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ') return false;
    return strlen(s) <= 254;
}

/* create-admin / create-user: one transaction making (or reusing) the user, a key and audit rows. */
static int cmd_create_user(int argc, char **argv, bool admin)
{
    const char *email = NULL, *name = NULL;
    static const struct option opts[] = {{"email", required_argument, NULL, 'e'},
                                         {"name", required_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'e') email = optarg;
        else if (c == 'n') name = optarg;
        else if (c == 'h') { usage(stdout); return 0; }
        else return 2;
    }
    const char *cmd = admin ? "create-admin" : "create-user";
    if (!email || !name || optind < argc) {
        fprintf(stderr, "fvctl %s: needs --email E --name N\n", cmd);
        return 2;
    }
    if (!plausible_email(email) || name[0] == '\0') {
        fprintf(stderr, "fvctl %s: '%s' is not an email address, or the name is empty\n", cmd, email);
        return 2;
    }

    int status = 1;
    PGresult *res = NULL;
    char user_id[FV_UUID_STRLEN + 1], key_id[FV_UUID_STRLEN + 1], key[FV_API_KEY_LEN + 1];
    char hash[FV_SHA256_HEXLEN + 1], err[512];
    PGconn *conn = pg_connect();
    if (!conn) return 1;
    if (fv_pgutil_exec(conn, "BEGIN", err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: BEGIN: %s\n", cmd, err);
        goto done;
    }

    fv_id_new(user_id);
    const char *ins[] = {user_id, email, name, admin ? "true" : "false"};
    res = q(conn, "insert user",
            "INSERT INTO users (id, email, name, is_admin) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT ((lower(email))) DO NOTHING RETURNING id",
            4, ins, PGRES_TUPLES_OK);
    if (!res) goto done;
    bool created = PQntuples(res) == 1;
    PQclear(res);
    const char *sel[] = {email};
    res = q(conn, "find user", "SELECT id, is_admin FROM users WHERE lower(email) = lower($1) FOR UPDATE",
            1, sel, PGRES_TUPLES_OK);
    if (!res) goto done;
    if (PQntuples(res) != 1) {
        fprintf(stderr, "fvctl %s: user %s vanished\n", cmd, email);
        goto done;
    }
    snprintf(user_id, sizeof user_id, "%s", PQgetvalue(res, 0, 0));
    bool was_admin = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    PQclear(res);
    res = NULL;

    const char *uid[] = {user_id};
    if (created) {
        res = q(conn, "audit", "INSERT INTO audit (actor, action, target_type, target_id, detail)"
                " VALUES (NULL, 'user.create', 'user', $1, '{\"via\":\"fvctl\"}')", 1, uid, PGRES_COMMAND_OK);
        if (!res) goto done;
        PQclear(res);
        fprintf(stderr, "fvctl %s: created user %s (%s)\n", cmd, user_id, email);
    } else {
        fprintf(stderr, "fvctl %s: reusing existing user %s (%s)\n", cmd, user_id, email);
        if (admin && !was_admin) {
            /* create-admin on an ordinary account makes it an operator: said and audited. */
            res = q(conn, "promote user", "UPDATE users SET is_admin = true WHERE id = $1", 1, uid,
                    PGRES_COMMAND_OK);
            if (!res) goto done;
            PQclear(res);
            res = q(conn, "audit", "INSERT INTO audit (actor, action, target_type, target_id, detail)"
                    " VALUES (NULL, 'user.admin_grant', 'user', $1, '{\"via\":\"fvctl\"}')", 1, uid,
                    PGRES_COMMAND_OK);
            if (!res) goto done;
            PQclear(res);
            fprintf(stderr, "fvctl %s: user %s is now an admin\n", cmd, user_id);
        }
    }
    res = NULL;

    if (!fv_api_key_new(key)) {
        fprintf(stderr, "fvctl %s: the random number generator failed\n", cmd);
        goto done;
    }
    fv_sha256_hex(key, strlen(key), hash);
    fv_id_new(key_id);
    const char *kparams[] = {key_id, user_id, hash};
    res = q(conn, "insert api key",
            "INSERT INTO api_keys (id, user_id, key_hash, name) VALUES ($1, $2, $3, 'fvctl')", 3, kparams,
            PGRES_COMMAND_OK);
    if (!res) goto done;
    PQclear(res);
    const char *aparams[] = {user_id, key_id};
    res = q(conn, "audit",
            "INSERT INTO audit (actor, action, target_type, target_id, detail)"
            " VALUES (NULL, 'api_key.create', 'user', $1,"
            "         jsonb_build_object('key_id', $2::text, 'via', 'fvctl'))",
            2, aparams, PGRES_COMMAND_OK);
    if (!res) goto done;
    PQclear(res);
    res = NULL;
    if (fv_pgutil_exec(conn, "COMMIT", err, sizeof err) != 0) {
        fprintf(stderr, "fvctl %s: COMMIT: %s\n", cmd, err);
        goto done;
    }
    /* The key itself, shown once: the only thing on stdout. */
    printf("%s\n", key);
    fflush(stdout);
    status = 0;
done:
    PQclear(res);
    PQfinish(conn);
    return status;
}

static int cmd_queue(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "fvctl queue: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    char err[512];
    int status = 1;
    redisReply *r = NULL;
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_user, fv_common.redis_password, FVCTL_TIMEOUT_S * 1000,
                                           FVCTL_TIMEOUT_S * 1000, err, sizeof err);
    if (!c) {
        fprintf(stderr, "fvctl queue: cannot connect to Redis: %s\n", err);
        return 1;
    }
    const char *what = "XLEN";
    r = redisCommand(c, "XLEN %s", fv_common.stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    printf("stream %s: %lld entries\n", fv_common.stream, r->integer);
    freeReplyObject(r);

    what = "XPENDING";
    r = redisCommand(c, "XPENDING %s %s", fv_common.stream, fv_common.group);
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOGROUP", 7) == 0) {
        printf("group %s: does not exist yet (no worker has started)\n", fv_common.group);
    } else {
        /* [count, min-id, max-id, [[consumer, count], ...] or nil] */
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4 || r->element[0]->type != REDIS_REPLY_INTEGER)
            goto failed;
        printf("group %s: %lld pending\n", fv_common.group, r->element[0]->integer);
        const redisReply *cons = r->element[3];
        for (size_t i = 0; cons->type == REDIS_REPLY_ARRAY && i < cons->elements; i++) {
            const redisReply *p = cons->element[i];
            if (p->type == REDIS_REPLY_ARRAY && p->elements == 2)
                printf("  consumer %s: %s pending\n", p->element[0]->str, p->element[1]->str);
        }
    }
    freeReplyObject(r);

    what = "XLEN";
    r = redisCommand(c, "XLEN %s", fv_common.dead_stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    printf("dead-letter stream %s: %lld entries\n", fv_common.dead_stream, r->integer);
    status = 0;
    goto done;
failed:
    fv_redisutil_error(c, r, err, sizeof err);
    fprintf(stderr, "fvctl queue: %s: %s\n", what, err);
done:
    if (r) freeReplyObject(r);
    redisFree(c);
    return status;
}

/* ------------------------------------------------------------------ dead letters */

/* The fields the worker appends to an entry it dead-letters (wk_stream_dead_letter), after the
 * entry's own fields; requeue strips them. */
static const char *const dead_extras[] = {"error", "stream_id", "deliveries"};
#define DEAD_NEXTRAS (sizeof dead_extras / sizeof dead_extras[0])

#define DEAD_PAGE 200      /* XRANGE COUNT per round trip */
#define REQUEUE_RETRIES 20 /* WATCH conflicts (a worker dead-lettering meanwhile) retried */

static redisContext *redis_connect(const char *cmd)
{
    char err[512];
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_user, fv_common.redis_password, FVCTL_TIMEOUT_S * 1000,
                                           FVCTL_TIMEOUT_S * 1000, err, sizeof err);
    if (!c) fprintf(stderr, "fvctl %s: cannot connect to Redis: %s\n", cmd, err);
    return c;
}

static void redis_failed(const char *cmd, const char *what, redisContext *c, const redisReply *r)
{
    char err[512];
    fv_redisutil_error(c, r, err, sizeof err);
    fprintf(stderr, "fvctl %s: %s: %s\n", cmd, what, err);
}

/* A stream entry id "ms-seq" (both parts decimal), as XADD * makes them. */
static bool valid_stream_id(const char *s)
{
    const char *dash = strchr(s, '-');
    if (!dash || dash == s || dash[1] == '\0' || dash - s > 20 || strlen(dash + 1) > 20) return false;
    for (const char *p = s; *p; p++)
        if (p != dash && (*p < '0' || *p > '9')) return false;
    return true;
}

/* One entry of an XRANGE reply: [id, [field, value, ...]]. Borrows from the reply. */
typedef struct dead_entry {
    const char *id;
    const redisReply *fields; /* an array of 2n strings, or NULL */
} dead_entry;

static bool dead_entry_from(const redisReply *e, dead_entry *d)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return false;
    d->id = e->element[0]->str;
    d->fields = e->element[1]->type == REDIS_REPLY_ARRAY ? e->element[1] : NULL;
    if (d->fields)
        for (size_t i = 0; i < d->fields->elements; i++)
            if (d->fields->element[i]->type != REDIS_REPLY_STRING) return false;
    return true;
}

/* The value of field `name` (the last occurrence: the worker's extras come last), or NULL. */
static const redisReply *dead_field(const dead_entry *d, const char *name)
{
    if (!d->fields) return NULL;
    for (size_t i = d->fields->elements & ~(size_t)1; i >= 2; i -= 2) {
        const redisReply *k = d->fields->element[i - 2];
        if (k->len == strlen(name) && memcmp(k->str, name, k->len) == 0) return d->fields->element[i - 1];
    }
    return NULL;
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    size_t n;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if ((s[0] & 0xe0) == 0xc0) n = 2, cp = s[0] & 0x1f;
    else if ((s[0] & 0xf0) == 0xe0) n = 3, cp = s[0] & 0x0f;
    else if ((s[0] & 0xf8) == 0xf0) n = 4, cp = s[0] & 0x07;
    else return 0;
    if (n > len) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* Prints text for a terminal: control characters (C0, DEL, C1) and bytes that are not UTF-8
 * become '?' (a poison entry may hold anything, escape sequences included). */
static void put_plain(FILE *out, const char *s, size_t len)
{
    for (size_t i = 0; i < len;) {
        const unsigned char *u = (const unsigned char *)s + i;
        size_t n = utf8_len(u, len - i);
        bool c1 = n == 2 && u[0] == 0xc2 && u[1] < 0xa0;
        if (n == 0 || c1 || (n == 1 && (u[0] < 0x20 || u[0] == 0x7f))) {
            fputc('?', out);
            i += n ? n : 1;
        } else {
            fwrite(u, 1, n, out);
            i += n;
        }
    }
}

/* Prints s as a JSON string; bytes that are not UTF-8 become U+FFFD so the line stays JSON. */
static void put_json_str(FILE *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
            i++;
        } else {
            size_t n = utf8_len((const unsigned char *)s + i, len - i);
            if (n == 0) {
                fputs("\\ufffd", out);
                i++;
            } else {
                fwrite(s + i, 1, n, out);
                i += n;
            }
        }
    }
    fputc('"', out);
}

static void put_json_field(FILE *out, const char *key, const redisReply *v, bool *first)
{
    fprintf(out, "%s\"%s\":", *first ? "" : ",", key);
    *first = false;
    if (v) put_json_str(out, v->str, v->len);
    else fputs("null", out);
}

/* "2026-11-23T10:00:00.123Z" from the milliseconds part of a stream id. */
static void id_time(const char *id, char *out, size_t outlen, long long *ms_out)
{
    errno = 0;
    char *end;
    long long ms = strtoll(id, &end, 10);
    *ms_out = ms;
    struct tm tm;
    time_t secs = (time_t)(ms / 1000);
    if (errno || end == id || !gmtime_r(&secs, &tm)) {
        snprintf(out, outlen, "?");
        return;
    }
    char day[32];
    strftime(day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03lldZ", day, ms % 1000);
}

#define DL_TABLE_FMT "%-20s  %-24s  %5s  %-36s  %-36s  %-20s  %s\n"

static void dead_print_row(const dead_entry *d, bool json, bool show_data)
{
    char when[48];
    long long ms;
    id_time(d->id, when, sizeof when, &ms);
    const redisReply *sid = dead_field(d, "id"), *dep = dead_field(d, "deployment_id"),
                     *error = dead_field(d, "error"), *deliveries = dead_field(d, "deliveries"),
                     *orig = dead_field(d, "stream_id");
    if (json) {
        bool first = true;
        fputc('{', stdout);
        fprintf(stdout, "\"dead_id\":");
        put_json_str(stdout, d->id, strlen(d->id));
        fprintf(stdout, ",\"dead_at\":\"%s\",\"dead_at_ms\":%lld", when, ms);
        first = false;
        put_json_field(stdout, "id", sid, &first);
        put_json_field(stdout, "survey_id", dead_field(d, "survey_id"), &first);
        put_json_field(stdout, "deployment_id", dep, &first);
        put_json_field(stdout, "submitted_by", dead_field(d, "submitted_by"), &first);
        put_json_field(stdout, "error", error, &first);
        char *end = NULL;
        long long n = deliveries ? strtoll(deliveries->str, &end, 10) : 0;
        if (deliveries && end != deliveries->str && *end == '\0') fprintf(stdout, ",\"deliveries\":%lld", n);
        else fputs(",\"deliveries\":null", stdout);
        put_json_field(stdout, "stream_id", orig, &first);
        if (show_data) {
            put_json_field(stdout, "data", dead_field(d, "data"), &first);
            put_json_field(stdout, "location", dead_field(d, "location"), &first);
            put_json_field(stdout, "collected_at", dead_field(d, "collected_at"), &first);
        }
        fputs("}\n", stdout);
        return;
    }
    /* Table: the error last and whole, so nothing an operator needs is cut off. */
    printf("%-20s  %-24s  ", d->id, when);
    size_t dl = deliveries ? deliveries->len : 1;
    for (size_t pad = dl; pad < 5; pad++) fputc(' ', stdout);
    put_plain(stdout, deliveries ? deliveries->str : "-", dl);
    fputs("  ", stdout);
    const redisReply *cols[] = {sid, dep, orig};
    const int widths[] = {36, 36, 20};
    for (int k = 0; k < 3; k++) {
        const char *v = cols[k] ? cols[k]->str : "-";
        size_t len = cols[k] ? cols[k]->len : 1;
        put_plain(stdout, v, len);
        for (size_t pad = len; pad < (size_t)widths[k] + 2; pad++) fputc(' ', stdout);
    }
    if (error) put_plain(stdout, error->str, error->len);
    else fputs("-", stdout);
    fputc('\n', stdout);
    if (show_data) {
        static const char *const extra[] = {"data", "location", "collected_at"};
        for (int k = 0; k < 3; k++) {
            const redisReply *v = dead_field(d, extra[k]);
            if (!v || v->len == 0) continue;
            printf("    %s: ", extra[k]);
            put_plain(stdout, v->str, v->len);
            fputc('\n', stdout);
        }
    }
}

static int cmd_dead_letters(int argc, char **argv)
{
    long limit = 100;
    bool json = false, show_data = false;
    static const struct option opts[] = {{"limit", required_argument, NULL, 'l'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"show-data", no_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'l') {
            char *end;
            errno = 0;
            limit = strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || limit < 0) {
                fprintf(stderr, "fvctl dead-letters: --limit wants a number >= 0 (0: all)\n");
                return 2;
            }
        } else if (o == 'j') json = true;
        else if (o == 'd') show_data = true;
        else if (o == 'h') { usage(stdout); return 0; }
        else return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl dead-letters: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    redisContext *c = redis_connect("dead-letters");
    if (!c) return 1;
    int status = 1;
    const char *what = "XLEN";
    redisReply *r = redisCommand(c, "XLEN %s", fv_common.dead_stream);
    if (!r || r->type != REDIS_REPLY_INTEGER) goto failed;
    long long total = r->integer;
    freeReplyObject(r);
    r = NULL;

    char start[64] = "-";
    long shown = 0;
    what = "XRANGE";
    while (limit == 0 || shown < limit) {
        long want = limit == 0 || limit - shown > DEAD_PAGE ? DEAD_PAGE : limit - shown;
        char cnt[24];
        snprintf(cnt, sizeof cnt, "%ld", want);
        const char *args[] = {"XRANGE", fv_common.dead_stream, start, "+", "COUNT", cnt};
        r = redisCommandArgv(c, 6, args, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY) goto failed;
        for (size_t i = 0; i < r->elements; i++) {
            dead_entry d;
            if (!dead_entry_from(r->element[i], &d)) goto failed;
            if (!json && shown == 0)
                printf(DL_TABLE_FMT, "DEAD-LETTER ID", "DEAD-LETTERED AT (UTC)", "TRIES", "SUBMISSION",
                       "DEPLOYMENT", "ORIGINAL STREAM ID", "ERROR");
            dead_print_row(&d, json, show_data);
            shown++;
            snprintf(start, sizeof start, "(%s", d.id);
        }
        bool last_page = (long)r->elements < want;
        freeReplyObject(r);
        r = NULL;
        if (last_page) break;
    }
    fflush(stdout);
    if (total == 0)
        fprintf(stderr, "fvctl dead-letters: %s is empty\n", fv_common.dead_stream);
    else
        fprintf(stderr, "fvctl dead-letters: %ld shown of %lld in %s%s\n", shown, total,
                fv_common.dead_stream, shown < total ? " (--limit N, 0 for all)" : "");
    status = 0;
    goto done;
failed:
    redis_failed("dead-letters", what, c, r);
done:
    if (r) freeReplyObject(r);
    redisFree(c);
    return status;
}

typedef enum { REQUEUE_OK, REQUEUE_MISSING, REQUEUE_FAILED } requeue_rc;

/* Moves dead letter `id` back onto the stream: WATCH the dead-letter stream, read the entry,
 * then MULTI / XADD (its fields without the dead-letter extras) / XDEL / EXEC. The transaction
 * is atomic (AOF logs it whole), so the entry is in exactly one of the two streams at any time;
 * a conflicting write to the dead-letter stream aborts EXEC and we try again. */
static requeue_rc requeue_one(redisContext *c, const char *id, bool quiet_missing)
{
    redisReply *r = NULL, *entry = NULL;
    const char **args = NULL;
    size_t *lens = NULL;
    const char *what = "WATCH";
    for (int attempt = 0; attempt < REQUEUE_RETRIES; attempt++) {
        r = redisCommand(c, "WATCH %s", fv_common.dead_stream);
        if (!r || r->type == REDIS_REPLY_ERROR) goto failed;
        freeReplyObject(r);
        r = NULL;
        what = "XRANGE";
        const char *xr[] = {"XRANGE", fv_common.dead_stream, id, id};
        entry = redisCommandArgv(c, 4, xr, NULL);
        if (!entry || entry->type != REDIS_REPLY_ARRAY) {
            r = entry;
            entry = NULL;
            goto failed;
        }
        if (entry->elements == 0) {
            freeReplyObject(entry);
            r = redisCommand(c, "UNWATCH");
            if (r) freeReplyObject(r);
            if (!quiet_missing)
                fprintf(stderr, "fvctl requeue: no dead letter %s in %s (see fvctl dead-letters)\n", id,
                        fv_common.dead_stream);
            return REQUEUE_MISSING;
        }
        dead_entry d;
        if (entry->elements != 1 || !dead_entry_from(entry->element[0], &d)) {
            r = entry;
            entry = NULL;
            goto failed;
        }
        /* Strip the extras from the end, where the worker put them. */
        size_t nf = d.fields ? d.fields->elements & ~(size_t)1 : 0;
        bool stripped[DEAD_NEXTRAS] = {false};
        while (nf >= 2) {
            const redisReply *k = d.fields->element[nf - 2];
            size_t x = 0;
            while (x < DEAD_NEXTRAS && (stripped[x] || k->len != strlen(dead_extras[x]) ||
                                        memcmp(k->str, dead_extras[x], k->len) != 0))
                x++;
            if (x == DEAD_NEXTRAS) break;
            stripped[x] = true;
            nf -= 2;
        }
        if (nf == 0) {
            fprintf(stderr, "fvctl requeue: dead letter %s has no fields of its own; left in %s\n", id,
                    fv_common.dead_stream);
            r = redisCommand(c, "UNWATCH");
            if (r) freeReplyObject(r);
            freeReplyObject(entry);
            return REQUEUE_FAILED;
        }
        const redisReply *sid = dead_field(&d, "id");
        {
            /* Say so when the worker is bound to refuse it again; requeue it all the same. */
            const char *items[2 * FV_ENVELOPE_NFIELDS + 64];
            size_t ilens[2 * FV_ENVELOPE_NFIELDS + 64];
            size_t ni = nf < sizeof items / sizeof items[0] ? nf : sizeof items / sizeof items[0];
            for (size_t i = 0; i < ni; i++) {
                items[i] = d.fields->element[i]->str;
                ilens[i] = d.fields->element[i]->len;
            }
            fv_envelope env;
            char why[256];
            if (attempt == 0 && fv_envelope_parse(&env, items, ilens, ni, why, sizeof why) != 0)
                fprintf(stderr, "fvctl requeue: warning: %s is not a valid envelope (%s): the worker "
                        "will dead-letter it again\n", id, why);
        }
        args = malloc((3 + nf) * sizeof *args);
        lens = malloc((3 + nf) * sizeof *lens);
        if (!args || !lens) {
            fprintf(stderr, "fvctl requeue: out of memory\n");
            goto out;
        }
        args[0] = "XADD", lens[0] = 4;
        args[1] = fv_common.stream, lens[1] = strlen(fv_common.stream);
        args[2] = "*", lens[2] = 1;
        for (size_t i = 0; i < nf; i++) {
            args[3 + i] = d.fields->element[i]->str;
            lens[3 + i] = d.fields->element[i]->len;
        }
        const char *exec[] = {"EXEC"};
        const char *del[] = {"XDEL", fv_common.dead_stream, id};
        /* MULTI on its own first: were it refused, the XADD and XDEL must not run bare. */
        what = "MULTI";
        r = redisCommand(c, "MULTI");
        if (!r || r->type != REDIS_REPLY_STATUS) goto failed;
        freeReplyObject(r);
        r = NULL;
        what = "XADD/XDEL/EXEC";
        if (redisAppendCommandArgv(c, (int)(3 + nf), args, lens) != REDIS_OK ||
            redisAppendCommandArgv(c, 3, del, NULL) != REDIS_OK ||
            redisAppendCommandArgv(c, 1, exec, NULL) != REDIS_OK)
            goto failed;
        /* +QUEUED, +QUEUED, then EXEC: [new-id, 1], nil (WATCH fired), or EXECABORT when a
         * command was refused while queueing (then nothing ran). */
        redisReply *queued[2] = {NULL, NULL};
        bool refused = false;
        for (int k = 0; k < 2; k++) {
            if (redisGetReply(c, (void **)&queued[k]) != REDIS_OK || !queued[k]) {
                if (queued[0]) freeReplyObject(queued[0]);
                goto failed;
            }
            if (queued[k]->type == REDIS_REPLY_ERROR && !refused) {
                refused = true;
                fprintf(stderr, "fvctl requeue: %s refused: %s\n", k == 0 ? "XADD" : "XDEL",
                        queued[k]->str);
            }
        }
        freeReplyObject(queued[0]);
        freeReplyObject(queued[1]);
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) goto failed;
        if (r->type == REDIS_REPLY_NIL) { /* the dead-letter stream changed since WATCH */
            freeReplyObject(r);
            r = NULL;
            free(args), args = NULL;
            free(lens), lens = NULL;
            freeReplyObject(entry), entry = NULL;
            what = "WATCH";
            continue;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) goto failed;
        if (r->element[0]->type != REDIS_REPLY_STRING) {
            /* Cannot happen short of a type clash on the stream key; the XDEL ran regardless.
             * Name the entry so that it can be found in the AOF. */
            fprintf(stderr, "fvctl requeue: XADD of %s failed inside EXEC (%s) after it was removed "
                    "from %s; recover it from the AOF\n", id,
                    r->element[0]->type == REDIS_REPLY_ERROR ? r->element[0]->str : "?",
                    fv_common.dead_stream);
            goto out;
        }
        printf("requeued %s (submission ", id);
        if (sid) put_plain(stdout, sid->str, sid->len);
        else fputs("-", stdout);
        printf(") as %s on %s\n", r->element[0]->str, fv_common.stream);
        freeReplyObject(r);
        freeReplyObject(entry);
        free(args);
        free(lens);
        return REQUEUE_OK;
    }
    fprintf(stderr, "fvctl requeue: %s kept changing; %s not requeued, try again\n",
            fv_common.dead_stream, id);
    goto out;
failed:
    redis_failed("requeue", what, c, r);
out:
    if (r) freeReplyObject(r);
    if (entry) freeReplyObject(entry);
    free(args);
    free(lens);
    return REQUEUE_FAILED;
}

/* requeue --all: every dead letter present when it starts (up to the newest id then), so an
 * entry that fails again and comes back is not requeued in a loop. */
static int requeue_all(redisContext *c)
{
    redisReply *r = redisCommand(c, "XREVRANGE %s + - COUNT 1", fv_common.dead_stream);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        redis_failed("requeue", "XREVRANGE", c, r);
        if (r) freeReplyObject(r);
        return 1;
    }
    if (r->elements == 0) {
        freeReplyObject(r);
        fprintf(stderr, "fvctl requeue: %s is empty, nothing to requeue\n", fv_common.dead_stream);
        return 0;
    }
    dead_entry last;
    char last_id[64];
    if (!dead_entry_from(r->element[0], &last)) {
        redis_failed("requeue", "XREVRANGE", c, r);
        freeReplyObject(r);
        return 1;
    }
    snprintf(last_id, sizeof last_id, "%s", last.id);
    freeReplyObject(r);

    char start[64] = "-", cnt[16];
    snprintf(cnt, sizeof cnt, "%d", DEAD_PAGE);
    long done = 0, failed = 0;
    for (;;) {
        const char *args[] = {"XRANGE", fv_common.dead_stream, start, last_id, "COUNT", cnt};
        r = redisCommandArgv(c, 6, args, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            redis_failed("requeue", "XRANGE", c, r);
            if (r) freeReplyObject(r);
            return 1;
        }
        size_t n = r->elements;
        char ids[DEAD_PAGE][64];
        for (size_t i = 0; i < n && i < DEAD_PAGE; i++) {
            dead_entry d;
            if (!dead_entry_from(r->element[i], &d)) {
                redis_failed("requeue", "XRANGE", c, r);
                freeReplyObject(r);
                return 1;
            }
            snprintf(ids[i], sizeof ids[i], "%s", d.id);
        }
        freeReplyObject(r);
        for (size_t i = 0; i < n && i < DEAD_PAGE; i++) {
            requeue_rc rc = requeue_one(c, ids[i], true);
            if (rc == REQUEUE_OK) done++;
            else if (rc == REQUEUE_FAILED) failed++;
            if (c->err) {
                fprintf(stderr, "fvctl requeue: connection lost after %ld requeued\n", done);
                return 1;
            }
            snprintf(start, sizeof start, "(%.60s", ids[i]); /* stream ids are at most 41 chars */
        }
        if (n < DEAD_PAGE) break;
    }
    fprintf(stderr, "fvctl requeue: %ld requeued onto %s, %ld failed\n", done, fv_common.stream, failed);
    return failed ? 1 : 0;
}

/* ---- spool-replay: the spool files of a front end that is gone ---- */

typedef struct replay_ctx {
    redisContext *c;
    long sent;
} replay_ctx;

static int replay_record(const fv_spool_record *r, void *arg)
{
    replay_ctx *x = arg;
    const char *argv[3 + FV_SPOOL_MAX_ITEMS];
    size_t lens[3 + FV_SPOOL_MAX_ITEMS];
    int argc = fv_spool_record_xadd_argv(r, fv_common.stream, argv, lens);
    redisReply *reply = redisCommandArgv(x->c, argc, argv, lens);
    int ok = reply && reply->type == REDIS_REPLY_STRING;
    if (!ok) {
        char err[256];
        fv_redisutil_error(x->c, reply, err, sizeof err);
        fprintf(stderr, "fvctl spool-replay: XADD failed: %s\n", err);
    }
    if (reply) freeReplyObject(reply);
    if (ok) x->sent++;
    return ok ? 0 : -1;
}

static int cmd_spool_replay(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: fvctl spool-replay DIR  (the spool_dir of a front end that is gone)\n");
        return 2;
    }
    const char *dir = argv[1];
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fvctl spool-replay: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char err[512];
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_user, fv_common.redis_password, 5000, 30000, err, sizeof err);
    if (!c) {
        fprintf(stderr, "fvctl spool-replay: redis: %s\n", err);
        closedir(d);
        return 1;
    }
    int status = 0;
    long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "spool-", 6) != 0 || n < 5 || strcmp(e->d_name + n - 4, ".log") != 0) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        replay_ctx x = {c, 0};
        long got = fv_spool_drain_file(path, replay_record, &x, err, sizeof err);
        if (got == -2) {
            fprintf(stderr, "fvctl spool-replay: skipping %s\n", err);
            continue;
        }
        if (got < 0) {
            fprintf(stderr, "fvctl spool-replay: %s (%ld sent before; replaying again is safe)\n", err, x.sent);
            status = 1;
            continue;
        }
        fprintf(stderr, "fvctl spool-replay: %s: %ld submissions replayed, file emptied\n", path, got);
        total += got;
    }
    closedir(d);
    redisFree(c);
    printf("%ld\n", total);
    return status;
}

static int cmd_requeue(int argc, char **argv)
{
    bool all = false;
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'a') all = true;
        else if (o == 'h') { usage(stdout); return 0; }
        else return 2;
    }
    if (all ? optind != argc : optind + 1 != argc) {
        fprintf(stderr, "fvctl requeue: needs one dead-letter ID (from fvctl dead-letters) or --all\n");
        return 2;
    }
    const char *id = all ? NULL : argv[optind];
    if (id && !valid_stream_id(id)) {
        fprintf(stderr, "fvctl requeue: '%s' is not a stream entry id (like 1700000000000-0)\n", id);
        return 1;
    }
    redisContext *c = redis_connect("requeue");
    if (!c) return 1;
    int status = all ? requeue_all(c) : requeue_one(c, id, false) == REQUEUE_OK ? 0 : 1;
    fflush(stdout);
    redisFree(c);
    return status;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "fvctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    char err[512];
    if (fv_config_load(fvctl_config_table, path, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl: configuration: %s\n", err);
        fv_config_free(fvctl_config_table);
        return 1;
    }
    /* The command's own options: getopt starts at its name. */
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    optind = 1;
    int status;
    if (strcmp(cmd, "migrate") == 0) status = cmd_migrate(sub_argc, sub_argv);
    else if (strcmp(cmd, "create-admin") == 0) status = cmd_create_user(sub_argc, sub_argv, true);
    else if (strcmp(cmd, "create-user") == 0) status = cmd_create_user(sub_argc, sub_argv, false);
    else if (strcmp(cmd, "queue") == 0) status = cmd_queue(sub_argc, sub_argv);
    else if (strcmp(cmd, "dead-letters") == 0) status = cmd_dead_letters(sub_argc, sub_argv);
    else if (strcmp(cmd, "requeue") == 0) status = cmd_requeue(sub_argc, sub_argv);
    else if (strcmp(cmd, "spool-replay") == 0) status = cmd_spool_replay(sub_argc, sub_argv);
    else if (strcmp(cmd, "help") == 0) { usage(stdout); status = 0; }
    else {
        fprintf(stderr, "fvctl: unknown command '%s'\n", cmd);
        usage(stderr);
        status = 2;
    }
    fv_config_free(fvctl_config_table);
    return status;
}
