/* Unit tests of the worker batch (worker/wk_batch.c, linked from fvworker): parsing delivered
 * stream entries into envelopes and marking malformed ones as poison. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "wk_batch.h"

static redisReply *rstr(const char *s)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_STRING;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

static redisReply *rarr(size_t n)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n ? n : 1, sizeof *r->element);
    return r;
}

static redisReply *rnil(void)
{
    redisReply *r = calloc(1, sizeof *r);
    r->type = REDIS_REPLY_NIL;
    return r;
}

/* One entry [id, [field, value, ...]] with the good envelope, one field changed when given. */
static redisReply *entry(const char *id, const char *field, const char *value)
{
    const char *kv[] = {"v",
                        "1",
                        "id",
                        "0190a1b2-c3d4-7e5f-8a9b-0123456789ab",
                        "survey_id",
                        "0190a1b2-c3d4-7e5f-8a9b-0123456789ac",
                        "survey_version",
                        "3",
                        "deployment_id",
                        "0190a1b2-c3d4-7e5f-8a9b-0123456789ad",
                        "submitted_by",
                        "0190a1b2-c3d4-7e5f-8a9b-0123456789ae",
                        "received_at",
                        "1717171717123",
                        "data",
                        "{\"a\":[1,2,{\"b\":null}]}",
                        "location",
                        "",
                        "collected_at",
                        "",
                        "verified",
                        "0"};
    size_t n = sizeof kv / sizeof kv[0];
    redisReply *fields = rarr(n);
    for (size_t i = 0; i < n; i += 2) {
        fields->element[i] = rstr(kv[i]);
        fields->element[i + 1] = rstr(field && strcmp(kv[i], field) == 0 ? value : kv[i + 1]);
    }
    redisReply *e = rarr(2);
    e->element[0] = rstr(id);
    e->element[1] = fields;
    return e;
}

static void test_json_object_check(void **state)
{
    (void)state;
    const char *good[] = {"{}", " {\"a\":1}", "{\"a\":\"caf\xc3\xa9\",\"b\":[true,null,1.5e3]}\n"};
    /* ... and what the front end's strict reader refuses (fv_json.h), so nothing PostgreSQL
     * would refuse reaches its INSERT: overlong UTF-8, comments, numbers numeric cannot hold,
     * duplicate keys, nesting deeper than 64. */
    const char *bad[] = {"",
                         "[]",
                         "1",
                         "\"x\"",
                         "{",
                         "{\"a\":}",
                         "{} {}",
                         "{}x",
                         "{\"a\":\"\xff\"}",
                         "null",
                         "{\"a\":\"\xc0\xaf\"}",
                         "{/**/}",
                         "{\"a\":1e999999}",
                         "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!wk_json_is_object(good[i], strlen(good[i]))) fail_msg("rejected %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (wk_json_is_object(bad[i], strlen(bad[i]))) fail_msg("accepted %s", bad[i]);
    /* An embedded NUL would cut the text short in PostgreSQL. */
    assert_false(wk_json_is_object("{}\0{}", 5));
    /* 64 levels are fine, 65 are not: {"a": [[...]]} with 63 or 64 arrays inside the object */
    char deep[200];
    for (int n = 63; n <= 64; n++) {
        int o = snprintf(deep, sizeof deep, "{\"a\":");
        for (int i = 0; i < n; i++) deep[o++] = '[';
        for (int i = 0; i < n; i++) deep[o++] = ']';
        deep[o++] = '}';
        assert_int_equal(wk_json_is_object(deep, (size_t)o), n == 63);
    }
}

static void test_fill_marks_states(void **state)
{
    (void)state;
    redisReply *list = rarr(6);
    list->element[0] = entry("1-0", NULL, NULL);
    list->element[1] = entry("1-1", "data", "{\"a\":");        /* broken JSON */
    list->element[2] = entry("1-2", "location", "[1,2]");      /* not an object */
    list->element[3] = entry("1-3", "survey_version", "zero"); /* envelope refuses it */
    list->element[4] = rarr(2);                                /* deleted while pending */
    list->element[4]->element[0] = rstr("1-4");
    list->element[4]->element[1] = rnil();
    list->element[5] = entry("1-5", "location", "{\"lat\":1,\"lon\":2}");
    wk_batch b;
    wk_batch_init(&b);
    char err[128] = "";
    assert_int_equal(wk_batch_fill(&b, list, list, false, err, sizeof err), 0);
    assert_int_equal(b.state, WK_BATCH_READ);
    assert_int_equal(b.n, 6);
    assert_int_equal(b.entries[0].state, WK_ENTRY_NEW);
    assert_string_equal(b.entries[0].env.id, "0190a1b2-c3d4-7e5f-8a9b-0123456789ab");
    assert_int_equal(b.entries[0].env.survey_version, 3);
    assert_false(b.entries[0].env.verified);
    assert_int_equal(b.entries[0].deliveries, 1);
    assert_int_equal(b.entries[1].state, WK_ENTRY_POISON);
    assert_non_null(strstr(b.entries[1].error, "data"));
    assert_int_equal(b.entries[2].state, WK_ENTRY_POISON);
    assert_non_null(strstr(b.entries[2].error, "location"));
    assert_int_equal(b.entries[3].state, WK_ENTRY_POISON);
    assert_non_null(strstr(b.entries[3].error, "survey_version"));
    assert_int_equal(b.entries[4].state, WK_ENTRY_GONE);
    assert_string_equal(b.entries[4].stream_id, "1-4");
    assert_int_equal(b.entries[5].state, WK_ENTRY_NEW);
    assert_int_equal(wk_batch_count(&b, WK_ENTRY_NEW), 2);
    assert_int_equal(wk_batch_count(&b, WK_ENTRY_POISON), 3);
    wk_batch_reset(&b); /* frees list */
    assert_int_equal(b.state, WK_BATCH_EMPTY);
    assert_int_equal(b.n, 0);
}

static void test_fill_redelivered_counts_unknown(void **state)
{
    (void)state;
    redisReply *list = rarr(1);
    list->element[0] = entry("2-0", NULL, NULL);
    wk_batch b;
    wk_batch_init(&b);
    char err[128];
    assert_int_equal(wk_batch_fill(&b, list, list, true, err, sizeof err), 0);
    assert_true(b.redelivered);
    assert_int_equal(b.entries[0].deliveries, 0);
    wk_batch_reset(&b);
}

static void test_fill_empty_and_misshapen(void **state)
{
    (void)state;
    wk_batch b;
    wk_batch_init(&b);
    char err[128] = "";
    assert_int_equal(wk_batch_fill(&b, rarr(0), NULL, false, err, sizeof err), -1);
    assert_int_equal(b.state, WK_BATCH_EMPTY);
    redisReply *empty = rarr(0);
    assert_int_equal(wk_batch_fill(&b, empty, empty, false, err, sizeof err), 0);
    assert_int_equal(b.state, WK_BATCH_EMPTY);
    redisReply *list = rarr(1);
    list->element[0] = rstr("not an entry");
    assert_int_equal(wk_batch_fill(&b, list, list, false, err, sizeof err), -1);
    assert_int_equal(b.state, WK_BATCH_EMPTY);
    assert_null(b.reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_object_check),
        cmocka_unit_test(test_fill_marks_states),
        cmocka_unit_test(test_fill_redelivered_counts_unknown),
        cmocka_unit_test(test_fill_empty_and_misshapen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
