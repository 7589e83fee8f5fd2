/* Fuzz target: the OpenRosa submission's multipart parser (fv_multipart, as
 * frontend/api/surveys/fe_orsubmit.c feeds it evbuffer segments) and the instance XML it carries
 * (fv_instance, typed by a fixed derived definition with a group, a nested repeat, numbers and a
 * select_multiple).
 *
 * Input: a Content-Type header value, "\n", then the body. The body is parsed twice, whole and in
 * pieces whose sizes come from the body's bytes: both parses must agree on the outcome and on
 * every byte handed to the callbacks. The first part's data is also parsed as an instance. */
#include <yajl/yajl_tree.h>

#include "fuzz_util.h"
#include "fv_form.h"
#include "fv_instance.h"
#include "fv_json.h"
#include "fv_multipart.h"
#include "fv_xform.h"

#define FORM                                                                                               \
    "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" "            \
    "xmlns:jr=\"http://openrosa.org/javarosa\"><h:head><model><instance><data id=\"f\">"                   \
    "<meta><instanceID/></meta><age/><n/><many/><g><s/></g><kids><kid jr:template=\"\"><name/>"            \
    "<toys><toy jr:template=\"\"><t/></toy></toys></kid></kids></data></instance>"                         \
    "<bind nodeset=\"/data/age\" type=\"int\"/><bind nodeset=\"/data/n\" type=\"decimal\"/>"               \
    "<bind nodeset=\"/data/kids/kid/toys/toy/t\" type=\"int\"/></model></h:head><h:body>"                  \
    "<select ref=\"/data/many\"><label>m</label><item><label>A</label><value>a</value></item></select>"    \
    "<repeat nodeset=\"/data/kids/kid\"><input ref=\"name\"/><repeat nodeset=\"/data/kids/kid/toys/toy\">" \
    "<input ref=\"t\"/></repeat></repeat></h:body></h:html>"

typedef struct out {
    char *buf;
    size_t n, cap;
    size_t first_end; /* bytes of the first part's data */
    int parts;
} out;

static void put(out *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        size_t c = o->cap ? o->cap * 2 : 4096;
        while (c < o->n + n) c *= 2;
        o->buf = realloc(o->buf, c);
        if (!o->buf) abort();
        o->cap = c;
    }
    memcpy(o->buf + o->n, p, n);
    o->n += n;
}

static bool begin(void *arg, const fv_multipart_part *p)
{
    out *o = arg;
    if (!p->name) abort();
    o->parts++;
    put(o, "[", 1);
    put(o, p->name, strlen(p->name));
    if (p->filename) put(o, p->filename, strlen(p->filename));
    put(o, "]", 1);
    return true;
}

static bool data(void *arg, const char *d, size_t n)
{
    out *o = arg;
    put(o, d, n);
    return true;
}

static bool end(void *arg)
{
    out *o = arg;
    if (o->parts == 1) o->first_end = o->n;
    put(o, "<end>", 5);
    return true;
}

static const fv_multipart_cbs cbs = {begin, data, end};
static yajl_val def;
static fv_form *form;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    char why[256], err[128];
    fv_xform *x = fv_xform_parse(FORM, strlen(FORM), why, sizeof why);
    char *json = x ? fv_xform_definition(x) : NULL;
    def = json ? fv_json_parse(json, err, sizeof err) : NULL;
    fv_form_errors e;
    fv_form_errors_init(&e);
    form = def ? fv_form_compile(def, &e) : NULL;
    if (!form) abort();
    fv_form_errors_free(&e);
    free(json);
    fv_xform_free(x);
    return 0;
}

static int run(const char *boundary, const uint8_t *body, size_t len, bool pieces, out *o)
{
    fv_multipart *m = fv_multipart_new(boundary, &cbs, o, 50);
    if (!m) abort();
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t n = pieces ? 1 + body[i] % 17 : len;
        if (n > len - i) n = len - i;
        rc = fv_multipart_feed(m, (const char *)body + i, n);
        i += n;
    }
    if (rc == 0) rc = fv_multipart_finish(m);
    if (rc != 0 && !fv_multipart_error(m)[0]) abort(); /* refused without a reason */
    fv_multipart_free(m);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t size)
{
    const uint8_t *nl = memchr(d, '\n', size < 200 ? size : 200);
    if (!nl) return 0;
    char ct[201];
    memcpy(ct, d, (size_t)(nl - d));
    ct[nl - d] = '\0';
    char boundary[FV_MULTIPART_MAX_BOUNDARY + 1];
    if (!fv_multipart_boundary(ct, boundary, sizeof boundary)) return 0;
    const uint8_t *body = nl + 1;
    size_t len = size - (size_t)(body - d);
    out whole = {0}, split = {0};
    int a = run(boundary, body, len, false, &whole);
    int b = run(boundary, body, len, true, &split);
    /* the same outcome, the same bytes (up to the failure, which may come later in pieces) */
    if (a != b) abort();
    if (a == 0 && (whole.n != split.n || (whole.n && memcmp(whole.buf, split.buf, whole.n) != 0)))
        abort();
    if (a == 0 && whole.parts >= 1) {
        const char *x = memchr(whole.buf, ']', whole.first_end);
        if (x) {
            size_t off = (size_t)(x + 1 - whole.buf);
            fv_instance in;
            fv_form_errors e;
            fv_form_errors_init(&e);
            char why[256];
            why[0] = '\0';
            int rc = fv_instance_parse(whole.buf + off, whole.first_end - off, def, form, &in, &e, why,
                                       sizeof why);
            if (rc < 0 && !why[0]) abort();
            if (rc >= 0) {
                char err[128];
                yajl_val v = fv_json_parse(in.data, err, sizeof err); /* always one JSON object */
                if (!v || !YAJL_IS_OBJECT(v)) abort();
                yajl_tree_free(v);
                fv_instance_clear(&in);
            }
            fv_form_errors_free(&e);
        }
    }
    free(whole.buf);
    free(split.buf);
    return 0;
}
