/* fvctl's stream commands: queue (the stream and its consumers), dead-letters, requeue. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_cli.h"
#include "fv_envelope.h"
#include "fv_keys.h"
#include "fv_qseal.h"
#include "fv_redisutil.h"
#include "fvctl.h"

static void queue_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] queue\n"
            "show the submissions stream's length, the pending entries per consumer of the workers'\n"
            "group and the dead-letter stream's length\n");
}

static void dead_letters_usage(FILE *out)
{
    fprintf(out, "usage: fvctl [-c FILE] dead-letters [--limit N] [--json] [--show-data]\n"
                 "list the dead-letter stream, oldest first: 100 entries unless --limit N (0: all);\n"
                 "--json: one JSON object per line; --show-data: also the answers, location and\n"
                 "collected_at (personal data: not shown otherwise), opening sealed entries\n"
                 "with key_file (sealed_error says why one does not open)\n");
}

static void requeue_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] requeue ID | --all\n"
            "move dead letter ID (from fvctl dead-letters), or every one present now, back onto the\n"
            "submissions stream without the dead-letter fields, atomically (MULTI/EXEC)\n");
}

int fvctl_queue(int argc, char **argv)
{
    int status = fvctl_no_options(argc, argv, queue_usage);
    if (status >= 0) return status;
    status = FV_EXIT_FAILURE;
    redisReply *r = NULL;
    redisContext *c = fvctl_redis_connect("queue", FVCTL_TIMEOUT_S * 1000);
    if (!c) return FV_EXIT_FAILURE;
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
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
            r->element[0]->type != REDIS_REPLY_INTEGER)
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
    fvctl_redis_failed("queue", what, c, r);
done:
    if (r) freeReplyObject(r);
    redisFree(c);
    return status;
}

/* ------------------------------------------------------------------ dead letters */

#define DEAD_PAGE 200      /* XRANGE COUNT per round trip */
#define REQUEUE_RETRIES 20 /* WATCH conflicts (a worker dead-lettering meanwhile) retried */

/* A stream entry id "ms-seq" (both parts decimal), as XADD * makes them. */
static bool valid_stream_id(const char *s)
{
    const char *dash = strchr(s, '-');
    if (!dash || dash == s || dash[1] == '\0' || dash - s > 20 || strlen(dash + 1) > 20) return false;
    for (const char *p = s; *p; p++)
        if (p != dash && (*p < '0' || *p > '9')) return false;
    return true;
}

/* One entry of an XRANGE reply: [id, [field, value, ...]], its items as arrays for
 * fv_envelope, and its dead-letter fields. Borrows the strings from the reply; dead_entry_free
 * frees the arrays. */
typedef struct dead_entry {
    const char *id;
    const char **items;
    size_t *lens;
    size_t n; /* items: 2 per field */
    fv_dead_letter dl;
} dead_entry;

static void dead_entry_free(dead_entry *d)
{
    free(d->items);
    free(d->lens);
    d->items = NULL;
    d->lens = NULL;
}

/* Returns false when e is not an entry of strings, or out of memory (then nothing to free). */
static bool dead_entry_from(const redisReply *e, dead_entry *d)
{
    memset(d, 0, sizeof *d);
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return false;
    d->id = e->element[0]->str;
    const redisReply *f = e->element[1];
    size_t n = f->type == REDIS_REPLY_ARRAY ? f->elements : 0;
    d->items = malloc((n + 1) * sizeof *d->items);
    d->lens = malloc((n + 1) * sizeof *d->lens);
    if (!d->items || !d->lens) {
        dead_entry_free(d);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (f->element[i]->type != REDIS_REPLY_STRING) {
            dead_entry_free(d);
            return false;
        }
        d->items[i] = f->element[i]->str;
        d->lens[i] = f->element[i]->len;
    }
    d->n = n;
    fv_envelope_dead_parse(&d->dl, d->items, d->lens, n);
    return true;
}

/* A value of the entry's own fields. */
typedef struct dead_value {
    const char *s; /* NULL: not there */
    size_t len;
} dead_value;

static dead_value dead_field(const dead_entry *d, const char *name)
{
    long i = fv_envelope_find(d->items, d->lens, d->dl.own_items, name);
    dead_value v = {i < 0 ? NULL : d->items[i], i < 0 ? 0 : d->lens[i]};
    return v;
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

static void put_json_field(FILE *out, const char *key, dead_value v, bool *first)
{
    fprintf(out, "%s\"%s\":", *first ? "" : ",", key);
    *first = false;
    if (v.s) put_json_str(out, v.s, v.len);
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

/* The payload values (data, location, collected_at) of d for --show-data: as they are in an
 * unsealed entry, opened with qs (fv_qseal.h) in a sealed one; then *plain holds them (the caller
 * frees it with fv_qseal_plain_free) or why says why they could not be opened. */
static void dead_payload(const dead_entry *d, fv_qseal *qs, dead_value out[3], unsigned char **plain,
                         size_t *plen, char *why, size_t whylen)
{
    static const char *const data_fields[] = {FV_ENVELOPE_F_DATA, FV_ENVELOPE_F_LOCATION,
                                              FV_ENVELOPE_F_COLLECTED_AT};
    *plain = NULL;
    *plen = 0;
    why[0] = '\0';
    for (int k = 0; k < 3; k++) out[k] = dead_field(d, data_fields[k]);
    if (!dead_field(d, FV_ENVELOPE_F_SEALED).s) return;
    fv_envelope env;
    if (fv_envelope_parse(&env, d->items, d->lens, d->dl.own_items, why, whylen) != 0) return;
    if (!qs) {
        snprintf(why, whylen, "sealed, and key_file could not be loaded");
        return;
    }
    if (fv_qseal_open(qs, &env, plain, plen, why, whylen) != 0) return;
    out[0] = (dead_value){env.data, env.data_len};
    out[1] = (dead_value){env.location, env.location_len};
}

static void dead_print_row(const dead_entry *d, bool json, bool show_data, fv_qseal *qs)
{
    dead_value payload[3];
    unsigned char *plain = NULL;
    size_t plen = 0;
    char why[256] = "";
    if (show_data) dead_payload(d, qs, payload, &plain, &plen, why, sizeof why);
    char when[48];
    long long ms;
    id_time(d->id, when, sizeof when, &ms);
    dead_value sid = dead_field(d, FV_ENVELOPE_F_ID), dep = dead_field(d, FV_ENVELOPE_F_DEPLOYMENT_ID);
    dead_value error = {d->dl.error, d->dl.error_len}, orig = {d->dl.stream_id, d->dl.stream_id_len};
    static const char *const data_fields[] = {FV_ENVELOPE_F_DATA, FV_ENVELOPE_F_LOCATION,
                                              FV_ENVELOPE_F_COLLECTED_AT};
    if (json) {
        bool first = true;
        fputc('{', stdout);
        fprintf(stdout, "\"dead_id\":");
        put_json_str(stdout, d->id, strlen(d->id));
        fprintf(stdout, ",\"dead_at\":\"%s\",\"dead_at_ms\":%lld", when, ms);
        first = false;
        put_json_field(stdout, "id", sid, &first);
        put_json_field(stdout, "survey_id", dead_field(d, FV_ENVELOPE_F_SURVEY_ID), &first);
        put_json_field(stdout, "deployment_id", dep, &first);
        put_json_field(stdout, "submitted_by", dead_field(d, FV_ENVELOPE_F_SUBMITTED_BY), &first);
        put_json_field(stdout, "error", error, &first);
        if (d->dl.deliveries >= 0) fprintf(stdout, ",\"deliveries\":%lld", d->dl.deliveries);
        else fputs(",\"deliveries\":null", stdout);
        put_json_field(stdout, "stream_id", orig, &first);
        if (show_data) {
            for (int k = 0; k < 3; k++) put_json_field(stdout, data_fields[k], payload[k], &first);
            if (why[0]) put_json_field(stdout, "sealed_error", (dead_value){why, strlen(why)}, &first);
        }
        fputs("}\n", stdout);
        fv_qseal_plain_free(plain, plen);
        return;
    }
    /* Table: the error last and whole, so nothing an operator needs is cut off. */
    printf("%-20s  %-24s  ", d->id, when);
    if (d->dl.deliveries >= 0) printf("%5lld  ", d->dl.deliveries);
    else printf("%5s  ", "-");
    const dead_value cols[] = {sid, dep, orig};
    const int widths[] = {36, 36, 20};
    for (int k = 0; k < 3; k++) {
        const char *v = cols[k].s ? cols[k].s : "-";
        size_t len = cols[k].s ? cols[k].len : 1;
        put_plain(stdout, v, len);
        for (size_t pad = len; pad < (size_t)widths[k] + 2; pad++) fputc(' ', stdout);
    }
    if (error.s) put_plain(stdout, error.s, error.len);
    else fputs("-", stdout);
    fputc('\n', stdout);
    if (show_data) {
        for (int k = 0; k < 3; k++) {
            dead_value v = payload[k];
            if (!v.s || v.len == 0) continue;
            printf("    %s: ", data_fields[k]);
            put_plain(stdout, v.s, v.len);
            fputc('\n', stdout);
        }
        if (why[0]) printf("    sealed payload: %s\n", why);
    }
    fv_qseal_plain_free(plain, plen);
}

int fvctl_dead_letters(int argc, char **argv)
{
    fvctl_list_opts lo;
    int rc = fvctl_list_options(argc, argv, dead_letters_usage, true, false, &lo);
    if (rc >= 0) return rc;
    long limit = lo.limit;
    bool json = lo.json, show_data = lo.show_data;
    /* --show-data opens sealed payloads (fv_qseal.h) with the key file's queue subkeys. */
    fv_qseal *qs = NULL;
    if (show_data) {
        fv_keyset ks;
        char kerr[512];
        memset(&ks, 0, sizeof ks);
        if (fv_keys_load(&ks, fv_common.key_file, kerr, sizeof kerr) != 0)
            fprintf(stderr, "fvctl dead-letters: key_file: %s: sealed payloads stay sealed\n", kerr);
        else qs = fv_qseal_new(&ks);
        fv_keys_clear(&ks);
    }
    redisContext *c = fvctl_redis_connect("dead-letters", FVCTL_TIMEOUT_S * 1000);
    if (!c) {
        fv_qseal_free(qs);
        return FV_EXIT_FAILURE;
    }
    int status = FV_EXIT_FAILURE;
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
            dead_print_row(&d, json, show_data, qs);
            dead_entry_free(&d);
            shown++;
            snprintf(start, sizeof start, "(%s", d.id);
        }
        bool last_page = (long)r->elements < want;
        freeReplyObject(r);
        r = NULL;
        if (last_page) break;
    }
    fflush(stdout);
    if (total == 0) fprintf(stderr, "fvctl dead-letters: %s is empty\n", fv_common.dead_stream);
    else
        fprintf(stderr, "fvctl dead-letters: %ld shown of %lld in %s%s\n", shown, total,
                fv_common.dead_stream, shown < total ? " (--limit N, 0 for all)" : "");
    status = FV_EXIT_OK;
    goto done;
failed:
    fvctl_redis_failed("dead-letters", what, c, r);
done:
    if (r) freeReplyObject(r);
    redisFree(c);
    fv_qseal_free(qs);
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
    dead_entry d;
    memset(&d, 0, sizeof d);
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
        if (entry->elements != 1 || !dead_entry_from(entry->element[0], &d)) {
            r = entry;
            entry = NULL;
            goto failed;
        }
        /* The entry's own fields: without the dead-letter fields the worker put at the end. */
        size_t nf = d.dl.own_items;
        if (nf == 0) {
            fprintf(stderr, "fvctl requeue: dead letter %s has no fields of its own; left in %s\n", id,
                    fv_common.dead_stream);
            r = redisCommand(c, "UNWATCH");
            if (r) freeReplyObject(r);
            r = NULL;
            goto out;
        }
        dead_value sid = dead_field(&d, FV_ENVELOPE_F_ID);
        /* Say so when the worker is bound to refuse it again; requeue it all the same. */
        fv_envelope env;
        char why[256];
        if (attempt == 0 && fv_envelope_parse(&env, d.items, d.lens, nf, why, sizeof why) != 0)
            fprintf(stderr,
                    "fvctl requeue: warning: %s is not a valid envelope (%s): the worker "
                    "will dead-letter it again\n",
                    id, why);
        args = malloc((3 + nf) * sizeof *args);
        lens = malloc((3 + nf) * sizeof *lens);
        if (!args || !lens) {
            fprintf(stderr, "fvctl requeue: out of memory\n");
            goto out;
        }
        args[0] = "XADD", lens[0] = 4;
        args[1] = fv_common.stream, lens[1] = strlen(fv_common.stream);
        args[2] = "*", lens[2] = 1;
        memcpy(args + 3, d.items, nf * sizeof *args);
        memcpy(lens + 3, d.lens, nf * sizeof *lens);
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
            dead_entry_free(&d);
            freeReplyObject(entry), entry = NULL;
            what = "WATCH";
            continue;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) goto failed;
        if (r->element[0]->type != REDIS_REPLY_STRING) {
            /* Cannot happen short of a type clash on the stream key; the XDEL ran regardless.
             * Name the entry so that it can be found in the AOF. */
            fprintf(stderr,
                    "fvctl requeue: XADD of %s failed inside EXEC (%s) after it was removed "
                    "from %s; recover it from the AOF\n",
                    id, r->element[0]->type == REDIS_REPLY_ERROR ? r->element[0]->str : "?",
                    fv_common.dead_stream);
            goto out;
        }
        printf("requeued %s (submission ", id);
        if (sid.s) put_plain(stdout, sid.s, sid.len);
        else fputs("-", stdout);
        printf(") as %s on %s\n", r->element[0]->str, fv_common.stream);
        freeReplyObject(r);
        dead_entry_free(&d);
        freeReplyObject(entry);
        free(args);
        free(lens);
        return REQUEUE_OK;
    }
    fprintf(stderr, "fvctl requeue: %s kept changing; %s not requeued, try again\n",
            fv_common.dead_stream, id);
    goto out;
failed:
    fvctl_redis_failed("requeue", what, c, r);
out:
    if (r) freeReplyObject(r);
    dead_entry_free(&d);
    if (entry) freeReplyObject(entry);
    free(args);
    free(lens);
    return REQUEUE_FAILED;
}

/* The id of an XRANGE entry [id, fields], or NULL. Borrows from the reply. */
static const char *entry_id(const redisReply *e)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING)
        return NULL;
    return e->element[0]->str;
}

/* requeue --all: every dead letter present when it starts (up to the newest id then), so an
 * entry that fails again and comes back is not requeued in a loop. */
static int requeue_all(redisContext *c)
{
    redisReply *r = redisCommand(c, "XREVRANGE %s + - COUNT 1", fv_common.dead_stream);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        fvctl_redis_failed("requeue", "XREVRANGE", c, r);
        if (r) freeReplyObject(r);
        return 1;
    }
    if (r->elements == 0) {
        freeReplyObject(r);
        fprintf(stderr, "fvctl requeue: %s is empty, nothing to requeue\n", fv_common.dead_stream);
        return 0;
    }
    char last_id[64];
    const char *last = entry_id(r->element[0]);
    if (!last) {
        fvctl_redis_failed("requeue", "XREVRANGE", c, r);
        freeReplyObject(r);
        return 1;
    }
    snprintf(last_id, sizeof last_id, "%s", last);
    freeReplyObject(r);

    char start[64] = "-", cnt[16];
    snprintf(cnt, sizeof cnt, "%d", DEAD_PAGE);
    long done = 0, failed = 0;
    for (;;) {
        const char *args[] = {"XRANGE", fv_common.dead_stream, start, last_id, "COUNT", cnt};
        r = redisCommandArgv(c, 6, args, NULL);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            fvctl_redis_failed("requeue", "XRANGE", c, r);
            if (r) freeReplyObject(r);
            return 1;
        }
        size_t n = r->elements;
        char ids[DEAD_PAGE][64];
        for (size_t i = 0; i < n && i < DEAD_PAGE; i++) {
            const char *eid = entry_id(r->element[i]);
            if (!eid) {
                fvctl_redis_failed("requeue", "XRANGE", c, r);
                freeReplyObject(r);
                return 1;
            }
            snprintf(ids[i], sizeof ids[i], "%s", eid);
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

int fvctl_requeue(int argc, char **argv)
{
    bool all = false;
    static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o == 'a') all = true;
        else if (o == 'h') {
            requeue_usage(stdout);
            return FV_EXIT_OK;
        } else {
            requeue_usage(stderr);
            return FV_EXIT_CONFIG;
        }
    }
    if (all ? optind != argc : optind + 1 != argc) {
        fprintf(stderr, "fvctl requeue: needs one dead-letter ID (from fvctl dead-letters) or --all\n");
        return FV_EXIT_CONFIG;
    }
    const char *id = all ? NULL : argv[optind];
    if (id && !valid_stream_id(id)) {
        fprintf(stderr, "fvctl requeue: '%s' is not a stream entry id (like 1700000000000-0)\n", id);
        return FV_EXIT_FAILURE;
    }
    redisContext *c = fvctl_redis_connect("requeue", FVCTL_TIMEOUT_S * 1000);
    if (!c) return FV_EXIT_FAILURE;
    int status = all                                       ? requeue_all(c)
                 : requeue_one(c, id, false) == REQUEUE_OK ? FV_EXIT_OK
                                                           : FV_EXIT_FAILURE;
    fflush(stdout);
    redisFree(c);
    return status;
}
