/* A worker batch: parsing the delivered entries into envelopes, marking poison ones. */
#include "wk_batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "fv_json.h"

bool wk_json_is_object(const char *text, size_t len)
{
    /* The front end's strict reader (fv_json.h): whatever the worker hands PostgreSQL verbatim
     * must be what the front end would have acknowledged, so nothing PostgreSQL would refuse or
     * alter (deep nesting, bad UTF-8, numbers numeric cannot hold, duplicate keys) gets there. */
    return fv_json_is_object(text, len, NULL);
}

static fv_qseal *batch_seal; /* borrowed (wk_batch_set_seal) */
static bool batch_accept_unsealed = true;

void wk_batch_set_seal(fv_qseal *qs, bool accept_unsealed)
{
    batch_seal = qs;
    batch_accept_unsealed = accept_unsealed;
}

void wk_batch_init(wk_batch *b)
{
    memset(b, 0, sizeof *b);
    b->state = WK_BATCH_EMPTY;
}

void wk_batch_reset(wk_batch *b)
{
    if (b->reply) freeReplyObject(b->reply);
    for (size_t i = 0; b->entries && i < b->n; i++)
        fv_qseal_plain_free(b->entries[i].plain, b->entries[i].plain_len);
    free(b->entries);
    wk_batch_init(b);
}

size_t wk_batch_count(const wk_batch *b, wk_entry_state s)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        if (b->entries[i].state == s) n++;
    return n;
}

/* Parses one entry's fields into e; marks it POISON with a reason when it is malformed. */
static void parse_entry(wk_entry *e, const redisReply *fields)
{
    const char *items_small[2 * 16];
    size_t lens_small[2 * 16];
    const char **items = items_small;
    size_t *lens = lens_small;
    size_t n = fields->elements;

    e->state = WK_ENTRY_POISON;
    if (n > 2 * 16) {
        items = malloc(n * sizeof *items);
        lens = malloc(n * sizeof *lens);
        if (!items || !lens) {
            snprintf(e->error, sizeof e->error, "out of memory parsing %zu fields", n);
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = fields->element[i];
        if (f->type != REDIS_REPLY_STRING) {
            snprintf(e->error, sizeof e->error, "field %zu is not a string", i);
            goto done;
        }
        items[i] = f->str;
        lens[i] = f->len;
    }
    if (n % 2 != 0) {
        snprintf(e->error, sizeof e->error, "odd number of field items");
        goto done;
    }
    if (fv_envelope_parse(&e->env, items, lens, n, e->error, sizeof e->error) != 0) goto done;
    if (e->env.sealed) {
        char why[200];
        if (!batch_seal ||
            fv_qseal_open(batch_seal, &e->env, &e->plain, &e->plain_len, why, sizeof why) != 0) {
            snprintf(e->error, sizeof e->error, "entry %.48s (submission %s): %.140s", e->stream_id,
                     e->env.id, batch_seal ? why : "no key to open sealed payloads");
            goto done;
        }
    } else if (!batch_accept_unsealed) {
        snprintf(e->error, sizeof e->error,
                 "entry %.48s (submission %s): payload not sealed (queue_accept_unsealed is off)",
                 e->stream_id, e->env.id);
        goto done;
    }
    /* data and location go into the INSERT's JSON verbatim: they must be exactly one object. */
    fv_json_error je;
    if (!fv_json_is_object(e->env.data, e->env.data_len, &je)) {
        snprintf(e->error, sizeof e->error, "malformed field 'data': %s", je.msg);
        goto done;
    }
    if (e->env.location_len > 0 && !fv_json_is_object(e->env.location, e->env.location_len, &je)) {
        snprintf(e->error, sizeof e->error, "malformed field 'location': %s", je.msg);
        goto done;
    }
    if (e->env.openrosa && !fv_json_is_object(e->env.openrosa, e->env.openrosa_len, &je)) {
        snprintf(e->error, sizeof e->error, "malformed field 'openrosa': %s", je.msg);
        goto done;
    }
    e->state = WK_ENTRY_NEW;
done:
    if (items != items_small) free(items);
    if (lens != lens_small) free(lens);
}

int wk_batch_fill(wk_batch *b, redisReply *reply, const redisReply *list, bool redelivered, char *err,
                  size_t errlen)
{
    wk_batch_reset(b);
    b->reply = reply;
    b->redelivered = redelivered;
    if (list == NULL || list->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "stream entries: expected an array");
        goto failed;
    }
    if (list->elements == 0) {
        wk_batch_reset(b);
        return 0;
    }
    b->entries = calloc(list->elements, sizeof *b->entries);
    if (!b->entries) {
        snprintf(err, errlen, "out of memory for %zu entries", list->elements);
        goto failed;
    }
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *item = list->element[i];
        /* XAUTOCLAIM in Redis 6.2 answers nil for an entry deleted while pending. */
        if (item->type == REDIS_REPLY_NIL) continue;
        if (item->type != REDIS_REPLY_ARRAY || item->elements != 2 ||
            item->element[0]->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "stream entry %zu: expected [id, fields]", i);
            goto failed;
        }
        wk_entry *e = &b->entries[b->n++];
        e->stream_id = item->element[0]->str;
        e->deliveries = redelivered ? 0 : 1;
        const redisReply *fields = item->element[1];
        if (fields->type == REDIS_REPLY_NIL) {
            e->state = WK_ENTRY_GONE;
        } else if (fields->type != REDIS_REPLY_ARRAY) {
            e->state = WK_ENTRY_POISON;
            snprintf(e->error, sizeof e->error, "fields are not an array");
        } else {
            e->fields = fields;
            parse_entry(e, fields);
        }
    }
    b->state = b->n ? WK_BATCH_READ : WK_BATCH_EMPTY;
    if (b->n == 0) wk_batch_reset(b);
    return 0;
failed:
    wk_batch_reset(b);
    return -1;
}
