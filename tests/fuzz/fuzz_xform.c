/* Fuzz target: XForms. The text as it arrives in POST /v1/surveys's "xform" (fv_xform_parse, as
 * frontend/api/surveys/fe_surveys.c does), the derived definition (which must be JSON that
 * fv_form_compile either accepts or refuses with a reason), and the XForm generated back from an
 * accepted definition (which must parse again).
 *
 * Input: the XML text. */
#include <yajl/yajl_tree.h>

#include "fuzz_util.h"
#include "fv_form.h"
#include "fv_json.h"
#include "fv_xform.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size, false);
    if (!text) return -1; /* a JSON string never holds a NUL (fv_json refuses \u0000) */
    char why[256];
    why[0] = '\0';
    fv_xform *x = fv_xform_parse(text, size, why, sizeof why);
    if (!x && !why[0]) abort(); /* refused without a reason */
    if (x) {
        if (!fv_xform_id(x)[0] || fv_xform_field_count(x) == 0) abort();
        char *json = fv_xform_definition(x);
        char err[128];
        yajl_val def = json ? fv_json_parse(json, err, sizeof err) : NULL;
        if (json && !def) abort(); /* the derived definition is always JSON */
        fv_form_errors errs;
        fv_form_errors_init(&errs);
        fv_form *f = def ? fv_form_compile(def, &errs) : NULL;
        if (def && !f && errs.n + errs.dropped == 0) abort();
        if (f) {
            char *gen = fv_xform_generate(def, fv_xform_id(x), "v", fv_xform_title(x));
            if (gen) {
                fv_xform *back = fv_xform_parse(gen, strlen(gen), why, sizeof why);
                if (!back) abort(); /* a generated XForm always parses */
                fv_xform_free(back);
            }
            free(gen);
            fv_form_free(f);
        }
        fv_form_errors_free(&errs);
        yajl_tree_free(def);
        free(json);
        fv_xform_free(x);
    }
    free(text);
    return 0;
}
