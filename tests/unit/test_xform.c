/* Unit tests of fv_xform: every ODK fixture form parses and compiles as a Fieldvault form, the
 * derived questions of a few forms checked by hand, a generated XForm parses back to the same
 * questions, and malicious XML is refused. The fixtures are ../shared/fixtures/odk beside the
 * source tree (FV_ODK_FIXTURES overrides); the fixture tests are skipped without them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>

#include <cmocka.h>

#include "fv_form.h"
#include "fv_json.h"
#include "fv_xform.h"

static char fixtures[1024];

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Parses xml and compiles its derived definition; returns the definition tree (caller frees). */
static yajl_val derive(const char *xml, size_t len)
{
    char why[256] = "";
    fv_xform *x = fv_xform_parse(xml, len, why, sizeof why);
    if (!x) fail_msg("refused: %s", why);
    char *json = fv_xform_definition(x);
    fv_xform_free(x);
    assert_non_null(json);
    char err[128];
    yajl_val def = fv_json_parse(json, err, sizeof err);
    free(json);
    assert_non_null(def);
    fv_form_errors errs;
    fv_form_errors_init(&errs);
    fv_form *f = fv_form_compile(def, &errs);
    if (!f)
        fail_msg("derived form does not compile: %s: %s", errs.n ? errs.items[0].field : "",
                 errs.n ? errs.items[0].reason : "");
    fv_form_free(f);
    fv_form_errors_free(&errs);
    return def;
}

static yajl_val derive_file(const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", fixtures, name);
    size_t len = 0;
    char *xml = slurp(path, &len);
    if (!xml) fail_msg("cannot read %s", path);
    yajl_val d = derive(xml, len);
    free(xml);
    return d;
}

static yajl_val question(yajl_val def, const char *name)
{
    yajl_val qs = fv_json_get(def, "questions");
    for (size_t i = 0; i < qs->u.array.len; i++) {
        const char *n = fv_json_get_str(qs->u.array.values[i], "name");
        if (n && strcmp(n, name) == 0) return qs->u.array.values[i];
    }
    fail_msg("no question %s", name);
    return NULL;
}

static void every_fixture_imports(void **state)
{
    (void)state;
    if (!*fixtures) skip();
    const char *dirs[] = {"forms", "soak", "standard"};
    size_t n = 0;
    for (size_t d = 0; d < 3; d++) {
        char dir[1100];
        snprintf(dir, sizeof dir, "%s/%s", fixtures, dirs[d]);
        DIR *dh = opendir(dir);
        assert_non_null(dh);
        for (struct dirent *e; (e = readdir(dh));) {
            size_t l = strlen(e->d_name);
            if (l < 5 || strcmp(e->d_name + l - 4, ".xml") || strstr(e->d_name, "submission")) continue;
            char rel[1200];
            snprintf(rel, sizeof rel, "%s/%s", dirs[d], e->d_name);
            yajl_tree_free(derive_file(rel));
            n++;
        }
        closedir(dh);
    }
    assert_true(n >= 15);
}

static void checked_by_hand(void **state)
{
    (void)state;
    if (!*fixtures) skip();
    yajl_val d = derive_file("forms/groupRepeat.xml");
    assert_string_equal(fv_json_get_str(question(d, "text"), "type"), "text");
    yajl_val city = question(d, "child_repeat/address/city");
    assert_string_equal(fv_json_get_str(fv_json_get(city, "xform"), "repeat"), "child_repeat");
    assert_string_equal(fv_json_get_str(city, "label"), "City");
    yajl_val id = question(d, "meta/instanceID");
    assert_string_equal(fv_json_get_str(fv_json_get(id, "xform"), "preload"), "uid");
    assert_string_equal(fv_json_get_str(fv_json_get(d, "xform"), "form_id"), "groupRepeat");
    yajl_tree_free(d);

    /* a select without items (choices unknown to the server) is kept as text with its control */
    d = derive_file("forms/selectMultiple.xml");
    yajl_val q2 = question(d, "g1/q2");
    assert_string_equal(fv_json_get_str(q2, "type"), "text");
    assert_string_equal(fv_json_get_str(fv_json_get(q2, "xform"), "control"), "select");
    assert_string_equal(fv_json_get_str(q2, "label"), "two");
    yajl_tree_free(d);

    d = derive_file("forms/simple.xml");
    assert_string_equal(fv_json_get_str(question(d, "age"), "type"), "integer");
    yajl_tree_free(d);

    d = derive_file("forms/encrypted.xml");
    assert_non_null(fv_json_get(d, "questions"));
    yajl_tree_free(d);
}

static const char inline_form[] =
    "<?xml version=\"1.0\"?>\n"
    "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" "
    "xmlns:jr=\"http://openrosa.org/javarosa\">"
    "<h:head><h:title>T</h:title><model>"
    "<instance><data id=\"f1\" version=\"7\"><name/><age/><c/><many/><g><t/><pt/></g><n/><meta><instanceID/></meta></data></instance>"
    "<instance id=\"list\"><root><item><name>a</name><label>A</label></item>"
    "<item><name>b</name><label>B</label></item></root></instance>"
    "<bind nodeset=\"/data/name\" type=\"string\" required=\"true()\" constraint=\"string-length(.) &lt; 10\" "
    "jr:constraintMsg=\"short\"/>"
    "<bind nodeset=\"/data/age\" type=\"int\" relevant=\"/data/name != ''\"/>"
    "<bind nodeset=\"/data/c\" type=\"string\"/><bind nodeset=\"/data/many\" type=\"string\"/>"
    "<bind nodeset=\"/data/g/t\" type=\"time\"/><bind nodeset=\"/data/g/pt\" type=\"geoshape\"/>"
    "<bind nodeset=\"/data/n\" type=\"string\" readonly=\"true()\"/>"
    "<bind nodeset=\"/data/meta/instanceID\" type=\"string\" readonly=\"true()\" jr:preload=\"uid\"/>"
    "</model></h:head><h:body>"
    "<input ref=\"/data/name\"><label>Name</label></input>"
    "<input ref=\"/data/age\"><label>Age</label></input>"
    "<select1 ref=\"/data/c\"><label>C</label><item><label>X</label><value>x</value></item>"
    "<item><label>Y</label><value>y</value></item></select1>"
    "<select ref=\"/data/many\"><label>M</label><itemset nodeset=\"instance('list')/root/item\">"
    "<value ref=\"name\"/><label ref=\"label\"/></itemset></select>"
    "<group ref=\"/data/g\"><input ref=\"t\"><label>T</label></input><input ref=\"/data/g/pt\"/></group>"
    "<input ref=\"/data/n\"><label>Note</label></input>"
    "</h:body></h:html>";

static void derived_questions(void **state)
{
    (void)state;
    yajl_val d = derive(inline_form, strlen(inline_form));
    yajl_val q = question(d, "name");
    assert_true(YAJL_IS_TRUE(fv_json_get(q, "required")));
    assert_string_equal(fv_json_get_str(fv_json_get(q, "xform"), "constraint"), "string-length(.) < 10");
    assert_string_equal(fv_json_get_str(fv_json_get(q, "xform"), "constraint_msg"), "short");
    assert_string_equal(fv_json_get_str(question(d, "age"), "type"), "integer");
    assert_string_equal(fv_json_get_str(fv_json_get(question(d, "age"), "xform"), "relevant"),
                        "/data/name != ''");
    assert_string_equal(fv_json_get_str(question(d, "c"), "type"), "select_one");
    yajl_val many = question(d, "many");
    assert_string_equal(fv_json_get_str(many, "type"), "select_multiple");
    assert_int_equal(fv_json_get(many, "choices")->u.array.len, 2);
    assert_string_equal(fv_json_get(many, "choices")->u.array.values[1]->u.string, "b");
    assert_string_equal(fv_json_get_str(fv_json_get(question(d, "g/t"), "xform"), "type"), "time");
    assert_string_equal(fv_json_get_str(fv_json_get(question(d, "g/pt"), "xform"), "type"), "geoshape");
    assert_string_equal(fv_json_get_str(question(d, "n"), "type"), "note");
    yajl_tree_free(d);
}

/* required="true()" makes a question required on the server only when it is always relevant:
 * a relevant expression on its bind or on a group or repeat above it (not true()) leaves it
 * optional here, as the server evaluates no XPath and a client sends it empty when irrelevant. */
static const char relevance_form[] =
    "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" "
    "xmlns:jr=\"http://openrosa.org/javarosa\"><h:head><h:title>R</h:title><model>"
    "<instance><data id=\"rel\" version=\"1\"><a/><b/><c/><g><d/></g><r jr:template=\"\"><e/><f/></r>"
    "<meta><instanceID/></meta></data></instance>"
    "<bind nodeset=\"/data/a\" type=\"string\" required=\"true()\"/>"
    "<bind nodeset=\"/data/b\" type=\"string\" required=\"true()\" relevant=\"/data/a = 'y'\"/>"
    "<bind nodeset=\"/data/c\" type=\"string\" required=\"true()\" relevant=\"true()\"/>"
    "<bind nodeset=\"/data/g\" relevant=\"/data/a = 'y'\"/>"
    "<bind nodeset=\"/data/g/d\" type=\"string\" required=\"true()\"/>"
    "<bind nodeset=\"/data/r\" relevant=\"/data/a = 'y'\"/>"
    "<bind nodeset=\"/data/r/e\" type=\"string\" required=\"true()\"/>"
    "<bind nodeset=\"/data/r/f\" type=\"int\" required=\"true()\" relevant=\"../e != ''\"/>"
    "<bind nodeset=\"/data/meta/instanceID\" type=\"string\" readonly=\"true()\" jr:preload=\"uid\"/>"
    "</model></h:head><h:body><input ref=\"/data/a\"/><input ref=\"/data/b\"/><input ref=\"/data/c\"/>"
    "<group ref=\"/data/g\"><input ref=\"/data/g/d\"/></group>"
    "<group ref=\"/data/r\"><repeat nodeset=\"/data/r\"><input ref=\"/data/r/e\"/><input ref=\"/data/r/f\"/>"
    "</repeat></group></h:body></h:html>";

static void required_only_when_always_relevant(void **state)
{
    (void)state;
    yajl_val d = derive(relevance_form, strlen(relevance_form));
    static const struct {
        const char *name;
        bool required;
    } want[] = {{"a", true}, {"b", false}, {"c", true}, {"g/d", false}, {"r/e", false}, {"r/f", false}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        yajl_val q = question(d, want[i].name);
        if (YAJL_IS_TRUE(fv_json_get(q, "required")) != want[i].required)
            fail_msg("%s: required is %d", want[i].name, !want[i].required);
        /* the clients' rule is kept whatever the server checks */
        assert_string_equal(fv_json_get_str(fv_json_get(q, "xform"), "required"), "true()");
    }
    assert_string_equal(fv_json_get_str(fv_json_get(question(d, "r/e"), "xform"), "repeat"), "r");
    yajl_tree_free(d);
}

/* The names, types, required flags and choices of a definition's questions, as one string. */
static void summary(yajl_val def, char *out, size_t n)
{
    out[0] = '\0';
    yajl_val qs = fv_json_get(def, "questions");
    for (size_t i = 0; i < qs->u.array.len; i++) {
        yajl_val q = qs->u.array.values[i];
        char one[512];
        snprintf(one, sizeof one, "%s:%s:%d", fv_json_get_str(q, "name"), fv_json_get_str(q, "type"),
                 YAJL_IS_TRUE(fv_json_get(q, "required")));
        strncat(out, one, n - strlen(out) - 1);
        yajl_val ch = fv_json_get(q, "choices");
        for (size_t k = 0; ch && k < ch->u.array.len; k++) {
            strncat(out, ",", n - strlen(out) - 1);
            yajl_val c = ch->u.array.values[k];
            strncat(out, YAJL_IS_STRING(c) ? c->u.string : fv_json_get_str(c, "name"),
                    n - strlen(out) - 1);
        }
        strncat(out, ";", n - strlen(out) - 1);
    }
}

static void generated_round_trip(void **state)
{
    (void)state;
    const char *json =
        "{\"questions\":[{\"name\":\"name\",\"type\":\"text\",\"label\":\"A & B\",\"required\":true},"
        "{\"name\":\"age\",\"type\":\"integer\"},{\"name\":\"w\",\"type\":\"decimal\"},"
        "{\"name\":\"c\",\"type\":\"select_one\",\"choices\":[\"red\",{\"name\":\"green\"}]},"
        "{\"name\":\"m\",\"type\":\"select_multiple\",\"choices\":[\"a\",\"b\"]},"
        "{\"name\":\"d\",\"type\":\"date\"},{\"name\":\"dt\",\"type\":\"datetime\"},"
        "{\"name\":\"p\",\"type\":\"geopoint\"},{\"name\":\"n\",\"type\":\"note\"},"
        "{\"name\":\"g/inner\",\"type\":\"text\"}]}";
    char err[128];
    yajl_val def = fv_json_parse(json, err, sizeof err);
    assert_non_null(def);
    char *xml = fv_xform_generate(def, "s1", "v1", "Title <x>");
    assert_non_null(xml);
    yajl_val back = derive(xml, strlen(xml));
    char a[4096], b[4096];
    summary(def, a, sizeof a);
    summary(back, b, sizeof b);
    /* the generated form adds meta/instanceID at the end */
    strncat(a, "meta/instanceID:text:0;", sizeof a - strlen(a) - 1);
    assert_string_equal(a, b);
    assert_string_equal(fv_json_get_str(fv_json_get(back, "xform"), "form_id"), "s1");
    yajl_tree_free(back);
    /* an XForm-derived definition regenerates to the same questions too */
    char *xml2 = fv_xform_generate(def, "s1", "v2", "");
    free(xml2);
    free(xml);
    yajl_tree_free(def);
}

/* Confidential mode (migration 024) in an XForm: fv:confidential on a bind, fv:confidential_mode
 * and fv:confidential_gps_radius_m on the primary instance's root, in Fieldvault's namespace; a
 * generated form carries them, so the round trip keeps them; other clients ignore them. */
static void confidential_attributes(void **state)
{
    (void)state;
    const char *json = "{\"confidential_mode\":true,\"confidential_gps_radius_m\":250,"
                       "\"questions\":[{\"name\":\"phone\",\"type\":\"text\",\"confidential\":true},"
                       "{\"name\":\"age\",\"type\":\"integer\"}]}";
    char err[128];
    yajl_val def = fv_json_parse(json, err, sizeof err);
    assert_non_null(def);
    char *xml = fv_xform_generate(def, "c1", "v1", "C");
    assert_non_null(xml);
    assert_non_null(strstr(xml, "fv:confidential=\"true()\""));
    assert_non_null(strstr(xml, "fv:confidential_mode=\"true()\""));
    assert_non_null(strstr(xml, "fv:confidential_gps_radius_m=\"250\""));
    yajl_val back = derive(xml, strlen(xml));
    assert_true(YAJL_IS_TRUE(fv_json_get(back, "confidential_mode")));
    assert_int_equal(YAJL_GET_INTEGER(fv_json_get(back, "confidential_gps_radius_m")), 250);
    yajl_val qs = fv_json_get(back, "questions");
    assert_true(YAJL_IS_TRUE(fv_json_get(qs->u.array.values[0], "confidential")));
    assert_null(fv_json_get(qs->u.array.values[1], "confidential"));
    yajl_tree_free(back);
    free(xml);
    yajl_tree_free(def);
    /* an uploaded form: the attributes only in Fieldvault's namespace count, a bad radius is kept
     * as text for the definition check to refuse */
    const char *up =
        "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" "
        "xmlns:fv=\"https://fieldvault.org/xforms\" xmlns:o=\"urn:other\"><h:head><h:title>t</h:title>"
        "<model><instance><data id=\"u\" fv:confidential_gps_radius_m=\"far\"><a/><b/></data></instance>"
        "<bind nodeset=\"/data/a\" type=\"string\" fv:confidential=\"true()\"/>"
        "<bind nodeset=\"/data/b\" type=\"string\" o:confidential=\"true()\" confidential=\"true()\"/>"
        "</model></h:head><h:body><input ref=\"/data/a\"/><input ref=\"/data/b\"/></h:body></h:html>";
    char why[256] = "";
    fv_xform *x = fv_xform_parse(up, strlen(up), why, sizeof why);
    if (!x) fail_msg("refused: %s", why);
    char *dj = fv_xform_definition(x);
    fv_xform_free(x);
    assert_non_null(dj);
    back = fv_json_parse(dj, err, sizeof err); /* not compiled: the radius is refused there */
    free(dj);
    assert_non_null(back);
    qs = fv_json_get(back, "questions");
    assert_true(YAJL_IS_TRUE(fv_json_get(qs->u.array.values[0], "confidential")));
    assert_null(fv_json_get(qs->u.array.values[1], "confidential"));
    assert_null(fv_json_get(back, "confidential_mode"));
    assert_string_equal(fv_json_get_str(back, "confidential_gps_radius_m"), "far");
    yajl_tree_free(back);
}

static void refused(const char *xml, size_t len, const char *want)
{
    char why[256] = "";
    clock_t t0 = clock();
    fv_xform *x = fv_xform_parse(xml, len, why, sizeof why);
    double s = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (x) fail_msg("accepted, expected refusal containing \"%s\"", want);
    if (!strstr(why, want)) fail_msg("reason \"%s\" lacks \"%s\"", why, want);
    assert_true(s < 1.0); /* generous: each refusal stops at the first offending byte */
}

static void malicious_refused(void **state)
{
    (void)state;
    const char *laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                         "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
                         "<h:html xmlns:h=\"http://www.w3.org/1999/xhtml\">&lol2;</h:html>";
    refused(laughs, strlen(laughs), "DOCTYPE");
    const char *xxe =
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><x>&e;</x>";
    refused(xxe, strlen(xxe), "DOCTYPE");
    const char *undeclared = "<x>&e;</x>";
    refused(undeclared, strlen(undeclared), "XML:");
    size_t depth = 100000;
    char *deep = malloc(depth * 7 + 1);
    assert_non_null(deep);
    for (size_t i = 0; i < depth; i++) memcpy(deep + i * 3, "<a>", 3);
    for (size_t i = 0; i < depth; i++) memcpy(deep + depth * 3 + i * 4, "</a>", 4);
    deep[depth * 7] = '\0';
    refused(deep, depth * 7, "nested");
    free(deep);
    size_t big = 200000;
    char *attr = malloc(big + 32);
    assert_non_null(attr);
    memcpy(attr, "<x a=\"", 6);
    memset(attr + 6, 'a', big);
    memcpy(attr + 6 + big, "\"/>", 4);
    refused(attr, strlen(attr), "attribute");
    free(attr);
    refused("", 0, "XML:");
    refused("<x/>", 4, "not an XForm");
    const char *utf16 = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><x/>";
    refused(utf16, strlen(utf16), "");
}

static void unsupported_named(void **state)
{
    (void)state;
    char buf[4096];
#define TPL                                                                                      \
    "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" "  \
    "xmlns:odk=\"http://www.opendatakit.org/xforms\"><h:head><model><instance><data id=\"f\">%s" \
    "</data></instance>%s</model></h:head><h:body>%s</h:body></h:html>"
    snprintf(buf, sizeof buf, TPL, "<r/>", "", "<odk:rank ref=\"/data/r\"/>");
    refused(buf, strlen(buf), "<rank>");
    snprintf(buf, sizeof buf, TPL, "<a-b/>", "", "");
    refused(buf, strlen(buf), "a-b");
    snprintf(buf, sizeof buf, TPL, "<a/>", "<bind nodeset=\"/data/a\" type=\"xsd:weird\"/>", "");
    refused(buf, strlen(buf), "weird");
}

int main(void)
{
    const char *env = getenv("FV_ODK_FIXTURES"), *src = getenv("FV_SOURCE_DIR");
    if (env) snprintf(fixtures, sizeof fixtures, "%s", env);
    else if (src) snprintf(fixtures, sizeof fixtures, "%s/../shared/fixtures/odk", src);
    DIR *d = *fixtures ? opendir(fixtures) : NULL;
    if (d) closedir(d);
    else fixtures[0] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_fixture_imports), cmocka_unit_test(checked_by_hand),
        cmocka_unit_test(derived_questions),     cmocka_unit_test(required_only_when_always_relevant),
        cmocka_unit_test(generated_round_trip),  cmocka_unit_test(confidential_attributes),
        cmocka_unit_test(malicious_refused),     cmocka_unit_test(unsupported_named),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
