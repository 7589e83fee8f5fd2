/* Unit tests of fv_odkmanifest: ODK Central's fixture manifest read (id, version, instanceID,
 * media files in order, encryptedXmlFile, key, signature), a plain instance read as not
 * encrypted, elements given twice, too long or too many, and hostile XML refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fv_odkmanifest.h"

#define MAN(media)                                                                                                  \
    "<data id=\"encrypted\" version=\"working3\" encrypted=\"yes\" "                                                \
    "xmlns=\"http://www.opendatakit.org/xforms/encrypted\">\n"                                                      \
    "  <base64EncryptedKey>\n  AAAA==  </base64EncryptedKey>\n"                                                     \
    "  <orx:meta xmlns:orx=\"http://openrosa.org/xforms\"><orx:instanceID>uuid:1</orx:instanceID></orx:meta>" media \
    "<encryptedXmlFile>submission.xml.enc</encryptedXmlFile>"                                                       \
    "<base64EncryptedElementSignature>BBBB</base64EncryptedElementSignature></data>"

static int parse(const char *xml, fv_odkmanifest *m, char *why, size_t n)
{
    int rc = fv_odkmanifest_parse(xml, strlen(xml), m, why, n);
    return rc;
}

static void fixture_shape(void **state)
{
    (void)state;
    fv_odkmanifest m;
    char why[256];
    assert_int_equal(parse(MAN("<media><file>a.jpg.enc</file></media><media><file>b.m4a.enc</file>"
                               "</media>"),
                           &m, why, sizeof why),
                     0);
    assert_true(m.encrypted);
    assert_string_equal(m.form_id, "encrypted");
    assert_string_equal(m.version, "working3");
    assert_string_equal(m.instance_id, "uuid:1");
    assert_string_equal(m.xml_file, "submission.xml.enc");
    assert_string_equal(m.b64_key, "AAAA=="); /* white space around it dropped */
    assert_string_equal(m.b64_sig, "BBBB");
    assert_int_equal(m.nmedia, 2);
    assert_string_equal(m.media[0], "a.jpg.enc");
    assert_string_equal(m.media[1], "b.m4a.enc");
    fv_odkmanifest_clear(&m);
    /* one <media> holding several files */
    assert_int_equal(parse(MAN("<media><file>a.enc</file><file>b.enc</file></media>"), &m, why,
                           sizeof why),
                     0);
    assert_int_equal(m.nmedia, 2);
    fv_odkmanifest_clear(&m);
}

static void plain_instance(void **state)
{
    (void)state;
    fv_odkmanifest m;
    char why[256];
    const char
        *x = "<data id=\"simple\"><meta><instanceID>one</instanceID></meta><a><b><c><d><e><f><g><h>"
             "<i><j><k><l><m><n><o><p><q><r><s>deep</s></r></q></p></o></n></m></l></k></j></i></h>"
             "</g></f></e></d></c></b></a></data>";
    assert_int_equal(parse(x, &m, why, sizeof why), 0);
    assert_false(m.encrypted);
    assert_null(m.b64_key);
    assert_string_equal(m.instance_id, "one");
    fv_odkmanifest_clear(&m);
    assert_int_equal(parse("<data encrypted=\"no\"/>", &m, why, sizeof why), 0);
    assert_false(m.encrypted);
    fv_odkmanifest_clear(&m);
}

static void refused(void **state)
{
    (void)state;
    fv_odkmanifest m;
    char why[256];
    const char *bad[] = {
        "<data encrypted=\"yes\"><base64EncryptedKey>A</base64EncryptedKey>"
        "<base64EncryptedKey>B</base64EncryptedKey></data>",
        "<data encrypted=\"yes\"><base64EncryptedElementSignature>A</base64EncryptedElementSignature>"
        "<base64EncryptedElementSignature>B</base64EncryptedElementSignature></data>",
        "<data encrypted=\"yes\"><encryptedXmlFile>a</encryptedXmlFile><encryptedXmlFile>b</encryptedXmlFile></data>",
        "<data encrypted=\"yes\"><meta><instanceID>a</instanceID><instanceID>b</instanceID></meta></data>",
        "<data encrypted=\"yes\"><media><file></file></media></data>",
        "<!DOCTYPE data [<!ENTITY e \"x\">]><data/>",
        "<data><unclosed></data>",
        "\xff\xfe",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(parse(bad[i], &m, why, sizeof why), -1);
        assert_true(why[0] != '\0');
        fv_odkmanifest_clear(&m);
    }
    /* too long a text, too many media files, too long an id */
    size_t n = FV_ODKMANIFEST_MAX_TEXT + 200;
    char *big = malloc(n + 100);
    assert_non_null(big);
    int k = snprintf(big, n + 100, "<data><base64EncryptedKey>");
    memset(big + k, 'A', FV_ODKMANIFEST_MAX_TEXT + 1);
    strcpy(big + k + FV_ODKMANIFEST_MAX_TEXT + 1, "</base64EncryptedKey></data>");
    assert_int_equal(parse(big, &m, why, sizeof why), -1);
    fv_odkmanifest_clear(&m);
    free(big);
    size_t cap = (FV_ODKCRYPT_MAX_MEDIA + 2) * 40 + 100;
    char *many = malloc(cap);
    assert_non_null(many);
    size_t off = (size_t)snprintf(many, cap, "<data><media>");
    for (int i = 0; i <= FV_ODKCRYPT_MAX_MEDIA; i++)
        off += (size_t)snprintf(many + off, cap - off, "<file>f%d.enc</file>", i);
    snprintf(many + off, cap - off, "</media></data>");
    assert_int_equal(parse(many, &m, why, sizeof why), -1);
    assert_non_null(strstr(why, "media"));
    fv_odkmanifest_clear(&m);
    free(many);
    char id[600];
    snprintf(id, sizeof id, "<data id=\"%0300d\"/>", 0);
    assert_int_equal(parse(id, &m, why, sizeof why), -1);
    fv_odkmanifest_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_shape),
        cmocka_unit_test(plain_instance),
        cmocka_unit_test(refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
