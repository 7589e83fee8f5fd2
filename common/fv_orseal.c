/* Sealing an OpenRosa submission's XML and attachments under its organisation's data key
 * (see fv_orseal.h). */
#include "fv_orseal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"
#include "fv_json.h"

static void hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* Seals pt[len] under key into base64 text (the caller frees it), or NULL. */
static char *seal_b64(const unsigned char *key, int version, const char *aad, const void *pt, size_t len)
{
    unsigned char *sealed = malloc(len + FV_DK_OVERHEAD); /* owned here */
    char *b64 = sealed ? malloc(4 * ((len + FV_DK_OVERHEAD + 2) / 3) + 1) : NULL;
    if (!b64 || fv_dk_seal(key, version, aad, pt, len, sealed) != 0) {
        free(sealed);
        free(b64);
        return NULL;
    }
    fv_b64_encode(sealed, len + FV_DK_OVERHEAD, b64);
    free(sealed);
    return b64;
}

/* Whether v holds the string name anywhere inside it. */
static bool names_file(yajl_val v, const char *name, int depth)
{
    if (depth > FV_JSON_MAX_DEPTH) return false;
    const char *s = YAJL_GET_STRING(v);
    if (s) return !strcmp(s, name);
    if (YAJL_IS_ARRAY(v))
        for (size_t i = 0; i < v->u.array.len; i++)
            if (names_file(v->u.array.values[i], name, depth + 1)) return true;
    if (YAJL_IS_OBJECT(v))
        for (size_t i = 0; i < v->u.object.len; i++)
            if (names_file(v->u.object.values[i], name, depth + 1)) return true;
    return false;
}

char *fv_orseal_field(const unsigned char key[FV_DATAKEY_BYTES], int version, const char *org,
                      const char *response_id, const char *openrosa, size_t len, const char *answers,
                      size_t answers_len, char *err, size_t errlen)
{
    fv_json_error je;
    yajl_val v = fv_json_parse_n(openrosa, len, &je); /* owned */
    const char *xml = v ? fv_json_get_str(v, "xml") : NULL;
    yajl_val atts = v ? fv_json_get(v, "attachments") : NULL;
    if (!v || !xml || (atts && !YAJL_IS_ARRAY(atts))) {
        snprintf(err, errlen, "malformed field 'openrosa' (no xml or attachments list)");
        yajl_tree_free(v);
        return NULL;
    }
    yajl_val ans = answers ? fv_json_parse_n(answers, answers_len, NULL) : NULL; /* owned */
    fv_jgen *g = fv_jgen_new();                                                  /* owned */
    char *out = NULL, *b64 = NULL;
    unsigned char *content = NULL;
    if (!g) goto done;
    unsigned char md[32];
    char mdhex[65], aad[FV_DK_AAD_MAX];
    size_t xlen = strlen(xml);
    EVP_Digest(xml, xlen, md, NULL, EVP_sha256(), NULL);
    hex(md, 32, mdhex);
    fv_dk_aad_xml(response_id, mdhex, aad);
    b64 = seal_b64(key, version, aad, xml, xlen);
    if (!b64) goto oom;
    fv_jgen_map_open(g);
    fv_jgen_key(g, "instance_id");
    fv_jgen_str(g, fv_json_get_str(v, "instance_id"));
    fv_jgen_key(g, "org_id");
    fv_jgen_str(g, org);
    fv_jgen_key(g, "key_version");
    fv_jgen_int(g, version);
    fv_jgen_key(g, "xml_sha256");
    fv_jgen_str(g, mdhex);
    fv_jgen_key(g, "xml_body");
    fv_jgen_str(g, b64);
    free(b64);
    b64 = NULL;
    fv_jgen_key(g, "attachments");
    fv_jgen_array_open(g);
    for (size_t i = 0; atts && i < atts->u.array.len; i++) {
        yajl_val a = atts->u.array.values[i];
        const char *data = fv_json_get_str(a, "data"), *sha = fv_json_get_str(a, "sha256");
        yajl_val size = fv_json_get(a, "size");
        if (!data || !sha || strlen(sha) != 64 || !YAJL_IS_INTEGER(size)) {
            snprintf(err, errlen, "malformed field 'openrosa': attachment %zu", i);
            goto done;
        }
        size_t dlen = strlen(data);
        content = malloc(dlen / 4 * 3 + 3);
        if (!content) goto oom;
        long n = fv_b64_decode(data, dlen, content);
        if (n < 0 || n != YAJL_GET_INTEGER(size)) {
            snprintf(err, errlen, "malformed field 'openrosa': attachment %zu's content", i);
            goto done;
        }
        EVP_Digest(content, (size_t)n, md, NULL, EVP_sha256(), NULL);
        hex(md, 32, mdhex);
        if (strcmp(mdhex, sha) != 0) {
            snprintf(err, errlen, "malformed field 'openrosa': attachment %zu's SHA-256", i);
            goto done;
        }
        fv_dk_aad_blob(org, mdhex, aad);
        b64 = seal_b64(key, version, aad, content, (size_t)n);
        OPENSSL_cleanse(content, (size_t)n);
        free(content);
        content = NULL;
        if (!b64) goto oom;
        fv_jgen_map_open(g);
        fv_jgen_key(g, "name");
        fv_jgen_str(g, fv_json_get_str(a, "name"));
        fv_jgen_key(g, "content_type");
        fv_jgen_str(g, fv_json_get_str(a, "content_type"));
        fv_jgen_key(g, "size");
        fv_jgen_int(g, n);
        fv_jgen_key(g, "sha256");
        fv_jgen_str(g, mdhex);
        fv_jgen_key(g, "data");
        fv_jgen_str(g, b64);
        fv_jgen_key(g, "questions");
        fv_jgen_array_open(g);
        const char *name = fv_json_get_str(a, "name");
        for (size_t q = 0; name && YAJL_IS_OBJECT(ans) && q < ans->u.object.len; q++)
            if (names_file(ans->u.object.values[q], name, 0)) fv_jgen_str(g, ans->u.object.keys[q]);
        fv_jgen_array_close(g);
        fv_jgen_map_close(g);
        free(b64);
        b64 = NULL;
    }
    fv_jgen_array_close(g);
    fv_jgen_map_close(g);
    size_t olen = 0;
    const char *t = fv_jgen_buf(g, &olen);
    if (!t) {
        snprintf(err, errlen, "openrosa: %s", fv_jgen_error(g));
        goto done;
    }
    out = strndup(t, olen);
    if (!out) goto oom;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
done:
    free(b64);
    free(content);
    fv_jgen_free(g);
    yajl_tree_free(v);
    if (ans) yajl_tree_free(ans);
    return out;
}
