/* Fuzz target: form definitions. The text as a survey's definition arrives (fv_json_parse +
 * fv_form_compile with its errors, as frontend/api/surveys/fe_surveys.c does) and as it is
 * read back from storage (fv_form_compile_text, frontend/io/fe_depcache.c); a compiled form's
 * accessors and the validation of a few fixed answer sets against it.
 *
 * Input: the definition's JSON text. */
#include <yajl/yajl_tree.h>

#include "fuzz_util.h"
#include "fv_form.h"
#include "fv_json.h"

static const char *const answer_sets[] = {
    "{}",
    "{\"a\":\"x\",\"b\":1,\"c\":[\"x\",\"y\"],\"d\":\"2024-02-29\",\"e\":\"2024-02-29T12:00:00Z\","
    "\"f\":{\"lat\":1,\"lon\":2},\"g\":null,\"h\":\"\",\"i\":[],\"j\":1.5,\"k\":true}",
};
#define NSETS (sizeof answer_sets / sizeof answer_sets[0])
static yajl_val answers[NSETS];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    char err[128];
    for (size_t i = 0; i < NSETS; i++)
        if (!(answers[i] = fv_json_parse(answer_sets[i], err, sizeof err))) abort();
    return 0;
}

/* Each field appears at most once per compile or validate call (fv_form.h). */
static void unique_fields(const fv_form_errors *e)
{
    for (size_t i = 0; i < e->n; i++)
        for (size_t j = i + 1; j < e->n; j++)
            if (strcmp(e->items[i].field, e->items[j].field) == 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size, false);
    if (!text) return -1; /* a stored definition never holds a NUL */
    char err[256];
    yajl_val def = fv_json_parse(text, err, sizeof err);
    if (def) {
        fv_form_errors errs;
        fv_form_errors_init(&errs);
        fv_form *f = fv_form_compile(def, &errs);
        if (!f && errs.n + errs.dropped == 0) abort(); /* refused without a reason */
        if (f && errs.n != 0) abort();                 /* accepted with errors */
        unique_fields(&errs);
        fv_form_errors_free(&errs);
        if (f) {
            size_t n = fv_form_question_count(f);
            for (size_t i = 0; i <= n; i++) {
                const char *name = fv_form_question_name(f, i);
                if ((name == NULL) != (i == n)) abort();
                (void)fv_form_question_confidential(f, i);
                if (name && fv_form_find(f, name) < 0) abort();
            }
            for (size_t i = 0; i < NSETS; i++) {
                fv_form_errors_init(&errs);
                size_t nerr = fv_form_validate(f, answers[i], &errs);
                if (nerr != errs.n + errs.dropped) abort();
                unique_fields(&errs);
                fv_form_errors_free(&errs);
            }
            fv_form_free(f);
        }
        yajl_tree_free(def);
    }
    fv_form_free(fv_form_compile_text(text));
    free(text);
    return 0;
}
