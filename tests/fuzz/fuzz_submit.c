/* Fuzz target: a submission's body as the front end reads it (frontend/http/fe_dispatch.c
 * parse_body: NUL check, fv_json_parse, fv_json_check_escapes, object check), then what
 * frontend/api/surveys/fe_submit.c does with it: id / location / collected_at checks
 * (fv_id_valid, fv_check_geopoint, fv_check_datetime), the data re-serialised (fv_jgen_tree)
 * and validated against compiled forms (fv_form_validate).
 *
 * Input: BODY, validated against built-in forms that use every question type; or
 * DEFINITION \0 BODY, where DEFINITION (a form definition as stored, fv_form_compile_text) is
 * compiled and BODY validated against it as well. */
#include <yajl/yajl_tree.h>

#include "fuzz_util.h"
#include "fv_check.h"
#include "fv_form.h"
#include "fv_id.h"
#include "fv_json.h"

static const char *const builtin_defs[] = {
    "{\"questions\":["
    "{\"name\":\"t\",\"type\":\"text\",\"required\":true,\"constraint\":{\"min\":1,\"max\":20}},"
    "{\"name\":\"code\",\"type\":\"text\",\"constraint\":{\"pattern\":\"[A-Z]{2}[0-9]+\"}},"
    "{\"name\":\"i\",\"type\":\"integer\",\"constraint\":{\"min\":-5,\"max\":1e3}},"
    "{\"name\":\"d\",\"type\":\"decimal\",\"constraint\":{\"min\":-0.5,\"max\":99.25}},"
    "{\"name\":\"one\",\"type\":\"select_one\",\"choices\":[\"a\",\"b\",\"c\"]},"
    "{\"name\":\"many\",\"type\":\"select_multiple\",\"choices\":[\"x\",\"y\",\"z\",\"w\"],"
    "\"constraint\":{\"min\":1,\"max\":3}},"
    "{\"name\":\"day\",\"type\":\"date\"},"
    "{\"name\":\"at\",\"type\":\"datetime\",\"confidential\":true},"
    "{\"name\":\"where\",\"type\":\"geopoint\"},"
    "{\"name\":\"n\",\"type\":\"note\",\"label\":\"read me\"}]}",
    "{\"questions\":[{\"name\":\"name\",\"type\":\"text\"},{\"name\":\"age\",\"type\":\"integer\"},"
    "{\"name\":\"hometown\",\"type\":\"text\"}]}",
};
#define NBUILTIN (sizeof builtin_defs / sizeof builtin_defs[0])
static fv_form *builtin[NBUILTIN];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    for (size_t i = 0; i < NBUILTIN; i++)
        if (!(builtin[i] = fv_form_compile_text(builtin_defs[i]))) abort(); /* the harness is wrong */
    return 0;
}

static void validate(const fv_form *f, yajl_val data)
{
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    size_t n = fv_form_validate(f, data, &errs);
    /* The contract: the count is what was added, each field at most once. */
    if (n != errs.n + errs.dropped) abort();
    for (size_t i = 0; i < errs.n; i++)
        for (size_t j = i + 1; j < errs.n; j++)
            if (strcmp(errs.items[i].field, errs.items[j].field) == 0) abort();
    fv_form_errors_free(&errs);
}

/* What fe_submit_response checks before the form. */
static void submission_fields(yajl_val body)
{
    yajl_val id = fv_json_get(body, "id"), loc = fv_json_get(body, "location");
    yajl_val coll = fv_json_get(body, "collected_at");
    if (id && YAJL_IS_STRING(id)) (void)fv_id_valid(id->u.string);
    if (loc && !YAJL_IS_NULL(loc)) {
        fv_geopoint geo;
        if (fv_check_geopoint(loc, &geo) == NULL) {
            char *json = fv_geopoint_json(&geo);
            if (!json) abort();
            /* What is queued must read back as the same geopoint. */
            char err[128];
            yajl_val back = fv_json_parse(json, err, sizeof err);
            fv_geopoint g2;
            if (!back || fv_check_geopoint(back, &g2) != NULL || g2.lat != geo.lat || g2.lon != geo.lon)
                abort();
            yajl_tree_free(back);
            free(json);
        }
    }
    if (coll && YAJL_IS_STRING(coll)) (void)fv_check_datetime(coll->u.string);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, '\0', size);
    fv_form *own = NULL;
    const uint8_t *body = data;
    size_t blen = size;
    if (nul) {
        size_t dlen = (size_t)(nul - data);
        char *def = fuzz_cstr(data, dlen, false);
        own = fv_form_compile_text(def);
        free(def);
        body = nul + 1;
        blen = size - dlen - 1;
    }

    /* parse_body: a body with a NUL byte is refused before parsing. */
    char *text = fuzz_cstr(body, blen, true);
    if (strlen(text) == blen) {
        char err[256];
        yajl_val v = fv_json_parse(text, err, sizeof err);
        if (v) {
            (void)fv_json_check_escapes(text, blen);
            if (YAJL_IS_OBJECT(v)) {
                submission_fields(v);
                yajl_val answers = fv_json_get(v, "data");
                /* The answers are queued as fv_jgen_tree's text: it must parse again. */
                fv_jgen *j = fv_jgen_new();
                if (!j) abort();
                fv_jgen_tree(j, answers ? answers : v);
                size_t glen = 0;
                const char *gen = fv_jgen_buf(j, &glen);
                if (gen && glen) {
                    char *copy = fuzz_cstr((const uint8_t *)gen, glen, true);
                    yajl_val again = fv_json_parse(copy, err, sizeof err);
                    if (!again) abort();
                    yajl_tree_free(again);
                    free(copy);
                }
                fv_jgen_free(j);
                for (size_t i = 0; i < NBUILTIN; i++) {
                    validate(builtin[i], answers);
                    validate(builtin[i], v); /* the whole body as answers too */
                }
                if (own) validate(own, answers ? answers : v);
            }
            yajl_tree_free(v);
        }
    }
    free(text);
    fv_form_free(own);
    return 0;
}
