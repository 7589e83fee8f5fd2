/* Unit tests of fv_instance: instances typed by the derived definition of their XForm (groups as
 * paths, repeats as lists, nested repeats as lists of lists, select_multiple as a list, numbers,
 * geopoints), validation naming every bad field (repeat items by position), the head pass
 * (instanceID, deprecatedID, prefixes ignored), and hostile XML refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fv_form.h"
#include "fv_instance.h"
#include "fv_json.h"
#include "fv_xform.h"

#define FORM                                                                                                        \
    "<h:html xmlns=\"http://www.w3.org/2002/xforms\" xmlns:h=\"http://www.w3.org/1999/xhtml\" "                     \
    "xmlns:jr=\"http://openrosa.org/javarosa\"><h:head><h:title>t</h:title><model><instance>"                       \
    "<data id=\"f\" version=\"3\"><meta><instanceID/></meta><age/><n/><where/><many/><g><s/></g>"                   \
    "<kids><kid jr:template=\"\"><name/><toys><toy jr:template=\"\"><t/></toy></toys></kid></kids>"                 \
    "<note/></data></instance>"                                                                                     \
    "<bind nodeset=\"/data/meta/instanceID\" type=\"string\"/><bind nodeset=\"/data/age\" type=\"int\"/>"           \
    "<bind nodeset=\"/data/n\" type=\"decimal\"/><bind nodeset=\"/data/where\" type=\"geopoint\"/>"                 \
    "<bind nodeset=\"/data/many\" type=\"string\"/><bind nodeset=\"/data/g/s\" type=\"string\"/>"                   \
    "<bind nodeset=\"/data/kids/kid/name\" type=\"string\"/>"                                                       \
    "<bind nodeset=\"/data/kids/kid/toys/toy/t\" type=\"int\"/>"                                                    \
    "<bind nodeset=\"/data/note\" type=\"string\" readonly=\"true()\"/>"                                            \
    "</model></h:head><h:body><input ref=\"/data/age\"><label>a</label></input>"                                    \
    "<input ref=\"/data/n\"><label>n</label></input><input ref=\"/data/where\"><label>w</label></input>"            \
    "<select ref=\"/data/many\"><label>m</label><item><label>A</label><value>a</value></item>"                      \
    "<item><label>B</label><value>b</value></item></select>"                                                        \
    "<group ref=\"/data/g\"><input ref=\"s\"><label>s</label></input></group>"                                      \
    "<group ref=\"/data/kids/kid\"><repeat nodeset=\"/data/kids/kid\"><input ref=\"name\"><label>k</label></input>" \
    "<repeat nodeset=\"/data/kids/kid/toys/toy\"><input ref=\"t\"><label>t</label></input></repeat>"                \
    "</repeat></group><input ref=\"/data/note\"><label>note</label></input></h:body></h:html>"

static yajl_val def;
static fv_form *form;

static int setup(void **st)
{
    (void)st;
    char why[256];
    fv_xform *x = fv_xform_parse(FORM, strlen(FORM), why, sizeof why);
    if (!x) fail_msg("%s", why);
    char *json = fv_xform_definition(x);
    char err[128];
    def = fv_json_parse(json, err, sizeof err);
    assert_non_null(def);
    fv_form_errors e;
    fv_form_errors_init(&e);
    form = fv_form_compile(def, &e);
    if (!form) fail_msg("%s: %s", e.n ? e.items[0].field : "", e.n ? e.items[0].reason : "");
    free(json);
    fv_xform_free(x);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    fv_form_free(form);
    yajl_tree_free(def);
    return 0;
}

static int parse(const char *xml, fv_instance *in, fv_form_errors *e)
{
    char why[256] = "";
    fv_form_errors_init(e);
    int rc = fv_instance_parse(xml, strlen(xml), def, form, in, e, why, sizeof why);
    if (rc < 0) print_message("refused: %s\n", why);
    return rc;
}

static void typed(void **st)
{
    (void)st;
    const char
        *xml = "<data id=\"f\" version=\"3\"><orx:meta xmlns:orx=\"http://openrosa.org/xforms\">"
               "<orx:instanceID>uuid:x</orx:instanceID></orx:meta><age> 42 </age><n>-1.50</n>"
               "<where>1.5 -2 3 4.5</where><many>b  a</many><g><s>hi &amp; \xc3\xa9</s></g>"
               "<kids><kid><name>A</name><toys><toy><t>1</t></toy><toy><t>2</t></toy></toys></kid>"
               "<kid><name>B</name></kid><kid><toys><toy><t>3</t></toy></toys></kid></kids>"
               "<note>ignored</note><extra></extra></data>";
    fv_instance in;
    fv_form_errors e;
    assert_int_equal(parse(xml, &in, &e), 0);
    assert_string_equal(in.data,
                        "{\"meta/instanceID\":\"uuid:x\",\"age\":42,\"n\":-1.50,"
                        "\"where\":{\"lat\":1.5,\"lon\":-2.0,\"altitude\":3.0,\"accuracy\":4.5},"
                        "\"many\":[\"b\",\"a\"],\"g/s\":\"hi & \xc3\xa9\","
                        "\"kids/kid/name\":[\"A\",\"B\",null],"
                        "\"kids/kid/toys/toy/t\":[[1,2],[],[3]]}");
    assert_string_equal(in.instance_id, "uuid:x");
    assert_string_equal(in.form_id, "f");
    assert_string_equal(in.version, "3");
    fv_instance_clear(&in);
    fv_form_errors_free(&e);
}

static void every_bad_field(void **st)
{
    (void)st;
    const char *xml =
        "<data id=\"f\"><meta><instanceID>i</instanceID></meta><age>old</age><n>1e999x</n>"
        "<many>a z</many><kids><kid><toys><toy><t>1</t></toy><toy><t>two</t></toy></toys></kid></kids>"
        "<unknown>x</unknown></data>";
    fv_instance in;
    fv_form_errors e;
    assert_true(parse(xml, &in, &e) >= 4);
    assert_non_null(fv_form_errors_get(&e, "age"));
    assert_non_null(fv_form_errors_get(&e, "n"));
    assert_non_null(fv_form_errors_get(&e, "many"));
    assert_non_null(fv_form_errors_get(&e, "unknown"));
    const char *t = fv_form_errors_get(&e, "kids/kid/toys/toy/t");
    assert_non_null(t);
    assert_non_null(strstr(t, "#1.2: "));
    assert_non_null(in.data);
    fv_instance_clear(&in);
    fv_form_errors_free(&e);
}

static void head(void **st)
{
    (void)st;
    const char *xml =
        "<d:data xmlns:d=\"urn:x\" id=\"f\" orx:version=\"7\" xmlns:orx=\"urn:o\"><meta>"
        "<deprecatedID>uuid:old</deprecatedID><instanceID> uuid:new </instanceID></meta></d:data>";
    fv_instance in;
    char why[128];
    assert_int_equal(fv_instance_head(xml, strlen(xml), &in, why, sizeof why), 0);
    assert_string_equal(in.instance_id, "uuid:new");
    assert_string_equal(in.deprecated_id, "uuid:old");
    assert_string_equal(in.version, "7");
    assert_null(in.data);
}

static void hostile(void **st)
{
    (void)st;
    fv_instance in;
    fv_form_errors e;
    char why[256];
    const char *bomb = "<!DOCTYPE d [<!ENTITY a \"aaaa\">]><data id=\"f\"><age>&a;</age></data>";
    fv_form_errors_init(&e);
    assert_int_equal(fv_instance_parse(bomb, strlen(bomb), def, form, &in, &e, why, sizeof why), -1);
    assert_non_null(strstr(why, "DOCTYPE"));
    size_t n = 200000;
    char *deep = malloc(n * 7 + 64);
    size_t k = (size_t)sprintf(deep, "<data id=\"f\">");
    for (size_t i = 0; i < n; i++) memcpy(deep + k, "<a>", 3), k += 3;
    deep[k] = '\0';
    assert_int_equal(fv_instance_parse(deep, k, def, form, &in, &e, why, sizeof why), -1);
    assert_non_null(strstr(why, "nest"));
    free(deep);
    const char *bad = "<data id=\"f\"><age>1</agex></data>";
    assert_int_equal(fv_instance_parse(bad, strlen(bad), def, form, &in, &e, why, sizeof why), -1);
    assert_non_null(strstr(why, "XML: "));
    const char *latin =
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><data id=\"f\"><g><s>\xe9</s></g></data>";
    assert_int_equal(fv_instance_parse(latin, strlen(latin), def, form, &in, &e, why, sizeof why), -1);
    fv_form_errors_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(typed),
        cmocka_unit_test(every_bad_field),
        cmocka_unit_test(head),
        cmocka_unit_test(hostile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
