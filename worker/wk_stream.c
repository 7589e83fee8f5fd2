/* The worker's side of the Redis stream: every command the worker sends to Redis. */
#include "wk_stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_envelope.h"
#include "fv_redisutil.h"

void wk_stream_close(wk_stream *s)
{
    if (s->c) redisFree(s->c);
    s->c = NULL;
}

/* Records why a command failed and drops the connection (its state is unknown now). */
static int fail(wk_stream *s, const redisReply *r, const char *what, char *err, size_t errlen)
{
    char why[256];
    fv_redisutil_error(s->c, r, why, sizeof why);
    snprintf(err, errlen, "%s: %s", what, why);
    wk_stream_close(s);
    return -1;
}

int wk_stream_connect(wk_stream *s, char *err, size_t errlen)
{
    wk_stream_close(s);
    s->c = fv_redisutil_connect(s->host, s->port, s->user, s->password, s->connect_timeout_ms,
                                s->command_timeout_ms, err, errlen);
    if (s->c == NULL) return -1;
    /* Named after the consumer, so that `fvctl status` sees which workers are connected now (a
     * consumer of the group stays listed after its worker is gone). Best effort. */
    char name[80] = "fv-worker:";
    size_t n = strlen(name);
    for (const char *p = s->consumer; p && *p && n < sizeof name - 1; p++)
        name[n++] = *p > ' ' && *p <= '~' ? *p : '_';
    name[n] = '\0';
    redisReply *r = redisCommand(s->c, "CLIENT SETNAME %s", name);
    if (r) freeReplyObject(r);
    r = redisCommand(s->c, "XGROUP CREATE %s %s 0 MKSTREAM", s->stream, s->group);
    /* BUSYGROUP: another worker created it first, which is what we wanted. */
    bool ok = r && (r->type == REDIS_REPLY_STATUS ||
                    (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0));
    int rc = ok ? 0 : fail(s, r, "XGROUP CREATE", err, errlen);
    if (r) freeReplyObject(r);
    return rc;
}

int wk_stream_read(wk_stream *s, const char *id, int count, int block_ms, wk_batch *b, char *err,
                   size_t errlen)
{
    char cnt[16], blk[16];
    snprintf(cnt, sizeof cnt, "%d", count);
    snprintf(blk, sizeof blk, "%d", block_ms);
    bool fresh = strcmp(id, ">") == 0;
    const char *argv[] = {"XREADGROUP",
                          "GROUP",
                          s->group,
                          s->consumer,
                          "COUNT",
                          cnt,
                          fresh ? "BLOCK" : "STREAMS",
                          fresh ? blk : s->stream,
                          fresh ? "STREAMS" : id,
                          s->stream,
                          id};
    int argc = fresh ? 11 : 9;
    redisReply *r = redisCommandArgv(s->c, argc, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        int rc = fail(s, r, "XREADGROUP", err, errlen);
        if (r) freeReplyObject(r);
        return rc;
    }
    if (r->type == REDIS_REPLY_NIL) { /* BLOCK timed out */
        freeReplyObject(r);
        wk_batch_reset(b);
        return 0;
    }
    /* [[stream, [[id, fields], ...]]] */
    const redisReply *list = NULL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2)
        list = r->element[0]->element[1];
    if (wk_batch_fill(b, r, list, !fresh, err, errlen) != 0) {
        wk_stream_close(s);
        return -1;
    }
    return 0;
}

int wk_stream_claim(wk_stream *s, int min_idle_ms, int count, wk_batch *b, bool *more, char *err,
                    size_t errlen)
{
    char idle[16], cnt[16];
    snprintf(idle, sizeof idle, "%d", min_idle_ms);
    snprintf(cnt, sizeof cnt, "%d", count);
    if (s->claim_cursor[0] == '\0') snprintf(s->claim_cursor, sizeof s->claim_cursor, "0-0");
    const char *argv[] = {"XAUTOCLAIM", s->stream,       s->group, s->consumer,
                          idle,         s->claim_cursor, "COUNT",  cnt};
    redisReply *r = redisCommandArgv(s->c, 8, argv, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        int rc = fail(s, r, "XAUTOCLAIM", err, errlen);
        if (r) freeReplyObject(r);
        return rc;
    }
    /* [next-cursor, [[id, fields], ...], [deleted ids...]] (the third since Redis 7). */
    snprintf(s->claim_cursor, sizeof s->claim_cursor, "%s", r->element[0]->str);
    *more = strcmp(s->claim_cursor, "0-0") != 0;
    if (wk_batch_fill(b, r, r->element[1], true, err, errlen) != 0) {
        wk_stream_close(s);
        return -1;
    }
    return 0;
}

int wk_stream_deliveries(wk_stream *s, wk_batch *b, wk_entry_state which, char *err, size_t errlen)
{
    size_t sent = 0;
    for (size_t i = 0; i < b->n; i++) {
        wk_entry *e = &b->entries[i];
        if (e->state != which) continue;
        const char *argv[] = {"XPENDING",   s->stream, s->group,   e->stream_id,
                              e->stream_id, "1",       s->consumer};
        if (redisAppendCommandArgv(s->c, 7, argv, NULL) != REDIS_OK)
            return fail(s, NULL, "XPENDING", err, errlen);
        sent++;
    }
    int rc = 0;
    for (size_t i = 0; i < b->n && sent > 0; i++) {
        wk_entry *e = &b->entries[i];
        if (e->state != which) continue;
        redisReply *r = NULL;
        sent--;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL || r->type != REDIS_REPLY_ARRAY) {
            rc = fail(s, r, "XPENDING", err, errlen);
            if (r) freeReplyObject(r);
            break;
        }
        /* [[id, consumer, idle-ms, deliveries]] or [] when not pending for us any more. */
        e->deliveries = 0;
        if (r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements == 4 && r->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
            e->deliveries = r->element[0]->element[3]->integer;
        freeReplyObject(r);
    }
    return rc;
}

int wk_stream_id_holders(wk_stream *s, wk_batch *b, char *err, size_t errlen)
{
    size_t n = wk_batch_count(b, WK_ENTRY_NEW);
    if (n == 0) return 0;
    enum { KEY_MAX = sizeof FV_SUBID_KEY_PREFIX + FV_UUID_STRLEN };
    const char **argv = malloc((n + 1) * sizeof *argv);
    char *keys = malloc(n * KEY_MAX);
    if (!argv || !keys) {
        free(argv);
        free(keys);
        snprintf(err, errlen, "MGET: out of memory");
        return -1;
    }
    size_t argc = 0;
    argv[argc++] = "MGET";
    for (size_t i = 0; i < b->n; i++) {
        if (b->entries[i].state != WK_ENTRY_NEW) continue;
        char *k = keys + (argc - 1) * KEY_MAX;
        snprintf(k, KEY_MAX, FV_SUBID_KEY_PREFIX "%s", b->entries[i].env.id);
        argv[argc++] = k;
    }
    redisReply *r = redisCommandArgv(s->c, (int)argc, argv, NULL);
    free(argv);
    free(keys);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != n) {
        int rc = fail(s, r, "MGET", err, errlen);
        if (r) freeReplyObject(r);
        return rc;
    }
    size_t k = 0;
    for (size_t i = 0; i < b->n; i++) {
        wk_entry *e = &b->entries[i];
        if (e->state != WK_ENTRY_NEW) continue;
        const redisReply *v = r->element[k++];
        e->id_taken = false;
        if (v->type != REDIS_REPLY_STRING)
            continue; /* no claim (expired, never made): the
                                                        stored response decides (wk_store.c) */
        char mine[2 * FV_UUID_STRLEN + 2];
        int len = snprintf(mine, sizeof mine, "%s:%s", e->env.submitted_by, e->env.deployment_id);
        e->id_taken = v->len != (size_t)len || memcmp(v->str, mine, v->len) != 0;
    }
    freeReplyObject(r);
    return 0;
}

/* Builds "<cmd> <stream> [group] id id ..." for the entries of b in the given states. */
static int append_ids(wk_stream *s, wk_batch *b, const char *cmd, bool with_group, size_t nids,
                      const wk_entry_state *states, size_t nstates)
{
    size_t argc = 0;
    const char **argv = malloc((3 + nids) * sizeof *argv);
    if (!argv) return -1;
    argv[argc++] = cmd;
    argv[argc++] = s->stream;
    if (with_group) argv[argc++] = s->group;
    for (size_t i = 0; i < b->n; i++)
        for (size_t k = 0; k < nstates; k++)
            if (b->entries[i].state == states[k]) argv[argc++] = b->entries[i].stream_id;
    int rc = redisAppendCommandArgv(s->c, (int)argc, argv, NULL) == REDIS_OK ? 0 : -1;
    free(argv);
    return rc;
}

int wk_stream_ack(wk_stream *s, wk_batch *b, char *err, size_t errlen)
{
    static const wk_entry_state states[] = {WK_ENTRY_WRITTEN, WK_ENTRY_GONE};
    size_t n = wk_batch_count(b, WK_ENTRY_WRITTEN) + wk_batch_count(b, WK_ENTRY_GONE);
    if (n == 0) return 0;
    if (append_ids(s, b, "XACK", true, n, states, 2) != 0 ||
        append_ids(s, b, "XDEL", false, n, states, 2) != 0)
        return fail(s, NULL, "XACK/XDEL", err, errlen);
    for (int k = 0; k < 2; k++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL ||
            r->type != REDIS_REPLY_INTEGER) {
            int rc = fail(s, r, k == 0 ? "XACK" : "XDEL", err, errlen);
            if (r) freeReplyObject(r);
            return rc;
        }
        freeReplyObject(r);
    }
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].state == WK_ENTRY_WRITTEN || b->entries[i].state == WK_ENTRY_GONE)
            b->entries[i].state = WK_ENTRY_DONE;
    return 0;
}

int wk_stream_dead_letter(wk_stream *s, wk_entry *e, const char *error, char *err, size_t errlen)
{
    size_t nf = e->fields ? e->fields->elements : 0;
    size_t argc = 0, room = 3 + nf + 2 * FV_ENVELOPE_DEAD_NFIELDS;
    const char **argv = malloc(room * sizeof *argv);
    size_t *lens = malloc(room * sizeof *lens);
    char deliveries[24];
    int rc = -1;
    if (!argv || !lens) {
        snprintf(err, errlen, "dead-letter: out of memory");
        goto done;
    }
#define ARG(str, len) (argv[argc] = (str), lens[argc] = (len), argc++)
    ARG("XADD", 4);
    ARG(s->dead, strlen(s->dead));
    ARG("*", 1);
    for (size_t i = 0; i < nf; i++) ARG(e->fields->element[i]->str, e->fields->element[i]->len);
#undef ARG
    /* The entry's own fields unchanged, then the dead-letter fields (fv_envelope.h). */
    argc += (size_t)fv_envelope_dead_argv(error, e->stream_id, e->deliveries, deliveries,
                                          sizeof deliveries, argv + argc, lens + argc);
    const char *ack[] = {"XACK", s->stream, s->group, e->stream_id};
    const char *del[] = {"XDEL", s->stream, e->stream_id};
    const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"};
    /* One transaction: the entry is in exactly one of the two streams, never in none. */
    if (redisAppendCommandArgv(s->c, 1, multi, NULL) != REDIS_OK ||
        redisAppendCommandArgv(s->c, (int)argc, argv, lens) != REDIS_OK ||
        redisAppendCommandArgv(s->c, 4, ack, NULL) != REDIS_OK ||
        redisAppendCommandArgv(s->c, 3, del, NULL) != REDIS_OK ||
        redisAppendCommandArgv(s->c, 1, exec, NULL) != REDIS_OK) {
        rc = fail(s, NULL, "dead-letter", err, errlen);
        goto done;
    }
    for (int k = 0; k < 5; k++) {
        redisReply *r = NULL;
        if (redisGetReply(s->c, (void **)&r) != REDIS_OK || r == NULL || r->type == REDIS_REPLY_ERROR ||
            (k == 4 && (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
                        r->element[0]->type == REDIS_REPLY_ERROR))) {
            rc = fail(s, r, "dead-letter MULTI/EXEC", err, errlen);
            if (r) freeReplyObject(r);
            goto done;
        }
        freeReplyObject(r);
    }
    e->state = WK_ENTRY_DONE;
    rc = 0;
done:
    free(argv);
    free(lens);
    return rc;
}

int wk_stream_touch(wk_stream *s, wk_batch *b, char *err, size_t errlen)
{
    size_t n = wk_batch_count(b, WK_ENTRY_NEW);
    if (n == 0) return 0;
    const char **argv = malloc((n + 6) * sizeof *argv);
    if (!argv) {
        snprintf(err, errlen, "XCLAIM: out of memory");
        return -1;
    }
    size_t argc = 0;
    argv[argc++] = "XCLAIM";
    argv[argc++] = s->stream;
    argv[argc++] = s->group;
    argv[argc++] = s->consumer;
    argv[argc++] = "0";
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].state == WK_ENTRY_NEW) argv[argc++] = b->entries[i].stream_id;
    argv[argc++] = "JUSTID"; /* JUSTID leaves the delivery count alone */
    redisReply *r = redisCommandArgv(s->c, (int)argc, argv, NULL);
    free(argv);
    int rc = 0;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) rc = fail(s, r, "XCLAIM", err, errlen);
    if (r) freeReplyObject(r);
    return rc;
}

int wk_stream_leave(wk_stream *s, bool *removed, char *err, size_t errlen)
{
    *removed = false;
    const char *pend[] = {"XPENDING", s->stream, s->group, "-", "+", "1", s->consumer};
    redisReply *r = redisCommandArgv(s->c, 7, pend, NULL);
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        int rc = fail(s, r, "XPENDING", err, errlen);
        if (r) freeReplyObject(r);
        return rc;
    }
    bool holds = r->elements > 0;
    freeReplyObject(r);
    if (holds) return 0;
    /* Nothing can join our pending list meanwhile: only our own reads add to it. */
    const char *del[] = {"XGROUP", "DELCONSUMER", s->stream, s->group, s->consumer};
    r = redisCommandArgv(s->c, 5, del, NULL);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        int rc = fail(s, r, "XGROUP DELCONSUMER", err, errlen);
        if (r) freeReplyObject(r);
        return rc;
    }
    freeReplyObject(r);
    *removed = true;
    return 0;
}
