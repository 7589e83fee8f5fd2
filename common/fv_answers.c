/* Answers sealed at rest, opened and masked for a reader (see fv_answers.h). */
#include "fv_answers.h"

#include <math.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_crypto.h"

#define MAX_NAME 255

static bool aad_of(const char *id, const char *name, char out[FV_ANSWERS_AAD_MAX])
{
    if (!id || strlen(id) > 40 || (name && strlen(name) > MAX_NAME)) return false;
    if (name) snprintf(out, FV_ANSWERS_AAD_MAX, "fv:answer:%s:%s", id, name);
    else snprintf(out, FV_ANSWERS_AAD_MAX, "fv:location:%s", id);
    return true;
}

/* Writes v's compact text sealed under aad as one JSON string (base64). */
static int seal_one(fv_jgen *j, const unsigned char *key, int kv, const char *aad, yajl_val v, char *err,
                    size_t errlen)
{
    char *pt = fv_json_text(v); /* owned */
    if (!pt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = strlen(pt), slen = len + FV_DK_OVERHEAD;
    unsigned char *sealed = malloc(slen);         /* owned */
    char *b64 = malloc(4 * ((slen + 2) / 3) + 1); /* owned */
    int rc = -1;
    if (!sealed || !b64) snprintf(err, errlen, "out of memory");
    else if (fv_dk_seal_det(key, kv, aad, pt, len, sealed) != 0) snprintf(err, errlen, "sealing failed");
    else {
        size_t n = fv_b64_encode(sealed, slen, b64);
        fv_jgen_strn(j, b64, n);
        rc = 0;
    }
    OPENSSL_cleanse(pt, len);
    free(pt);
    free(sealed);
    free(b64);
    return rc;
}

int fv_answers_seal(fv_jgen *j, const unsigned char key[FV_DATAKEY_BYTES], int kv, const char *id,
                    yajl_val data, char *err, size_t errlen)
{
    if (!YAJL_IS_OBJECT(data)) {
        snprintf(err, errlen, "answers: not an object");
        return -1;
    }
    fv_jgen_map_open(j);
    for (size_t i = 0; i < data->u.object.len; i++) {
        char aad[FV_ANSWERS_AAD_MAX];
        if (!aad_of(id, data->u.object.keys[i], aad)) {
            snprintf(err, errlen, "answers: a question name over %d bytes", MAX_NAME);
            return -1;
        }
        fv_jgen_key(j, data->u.object.keys[i]);
        if (seal_one(j, key, kv, aad, data->u.object.values[i], err, errlen) != 0) return -1;
    }
    fv_jgen_map_close(j);
    return 0;
}

int fv_answers_seal_location(fv_jgen *j, const unsigned char key[FV_DATAKEY_BYTES], int kv,
                             const char *id, yajl_val loc, char *err, size_t errlen)
{
    char aad[FV_ANSWERS_AAD_MAX];
    if (!aad_of(id, NULL, aad)) {
        snprintf(err, errlen, "location: not a submission id");
        return -1;
    }
    if (!loc || YAJL_IS_NULL(loc)) {
        fv_jgen_null(j);
        return 0;
    }
    return seal_one(j, key, kv, aad, loc, err, errlen);
}

void fv_answers_free_text(char *text)
{
    if (!text) return;
    OPENSSL_cleanse(text, strlen(text));
    free(text);
}

char *fv_answers_open_value(const unsigned char key[FV_DATAKEY_BYTES], int kv, const char *id,
                            const char *name, const char *b64, size_t len, char *err, size_t errlen)
{
    char aad[FV_ANSWERS_AAD_MAX];
    const char *what = name ? "answer" : "location";
    if (!aad_of(id, name, aad)) {
        snprintf(err, errlen, "response %.40s: %s: a name too long", id ? id : "?", what);
        return NULL;
    }
    unsigned char *sealed = malloc(len * 3 / 4 + 3); /* owned */
    char *out = NULL;
    long n = sealed ? fv_b64_decode(b64, len, sealed) : -1;
    if (!sealed) snprintf(err, errlen, "out of memory");
    else if (n < (long)FV_DK_OVERHEAD || fv_dk_version(sealed, (size_t)n) < 0)
        snprintf(err, errlen, "response %s: %s %s%.64s%s is not a sealed value", id, what,
                 name ? "'" : "", name ? name : "", name ? "'" : "");
    else if (fv_dk_version(sealed, (size_t)n) != kv)
        snprintf(err, errlen, "response %s: %s %s%.64s%s is sealed under data key version %d, not %d",
                 id, what, name ? "'" : "", name ? name : "", name ? "'" : "",
                 fv_dk_version(sealed, (size_t)n), kv);
    else if (!(out = malloc((size_t)n - FV_DK_OVERHEAD + 1))) snprintf(err, errlen, "out of memory");
    else {
        long m = fv_dk_open(key, aad, sealed, (size_t)n, (unsigned char *)out);
        if (m < 0) {
            free(out);
            out = NULL;
            snprintf(err, errlen,
                     "response %s: %s %s%.64s%s does not open (tampered, or another row's or key's)", id,
                     what, name ? "'" : "", name ? name : "", name ? "'" : "");
        } else {
            out[m] = '\0';
        }
    }
    free(sealed);
    return out;
}

/* ---- the confidential-mode offset (migration 024's fv_gps_displace, in C) ---- */

static bool hex32(const char *s, unsigned long *v)
{
    char buf[9];
    memcpy(buf, s, 8);
    buf[8] = '\0';
    char *end;
    *v = strtoul(buf, &end, 16);
    return *end == '\0';
}

bool fv_gps_offset_of(const char *seed, double radius, fv_gps_offset *o)
{
    unsigned long u, v;
    /* the seed's text: 8-4-4-4-12 hex digits; u its first 8, v its last 8 */
    if (!seed || strlen(seed) != 36 || !hex32(seed, &u) || !hex32(seed + 28, &v)) return false;
    o->r = radius * sqrt(((double)u + 0.5) / 4294967296.0);
    o->a = 2 * M_PI * (double)v / 4294967296.0;
    return true;
}

void fv_double_text(double v, char out[32])
{
    for (int p = 15; p <= 17; p++) {
        snprintf(out, 32, "%.*g", p, v);
        if (strtod(out, NULL) == v) return;
    }
}

static bool point_of(yajl_val p, double *lat, double *lon)
{
    yajl_val a = fv_json_get(p, "lat"), b = fv_json_get(p, "lon");
    if (!YAJL_IS_OBJECT(p) || !YAJL_IS_NUMBER(a) || !YAJL_IS_NUMBER(b)) return false;
    *lat = strtod(YAJL_GET_NUMBER(a), NULL);
    *lon = strtod(YAJL_GET_NUMBER(b), NULL);
    return true;
}

static void moved(double lat, double lon, const fv_gps_offset *o, double *mlat, double *mlon)
{
    const double earth = 6371008.8, deg = 180.0 / M_PI;
    double c = cos(lat / deg);
    double x = lon + deg * (o->r * sin(o->a) / (earth * (c > 1e-9 ? c : 1e-9)));
    double y = lat + deg * (o->r * cos(o->a) / earth);
    *mlat = y > 90.0 ? 90.0 : y < -90.0 ? -90.0 : y;
    *mlon = x - 360.0 * floor((x + 180.0) / 360.0);
}

void fv_gps_displace(fv_jgen *j, yajl_val p, const fv_gps_offset *o)
{
    double lat, lon, mlat, mlon;
    if (!p || YAJL_IS_NULL(p)) {
        fv_jgen_null(j);
        return;
    }
    if (!point_of(p, &lat, &lon)) {
        fv_jgen_null(j);
        return;
    }
    moved(lat, lon, o, &mlat, &mlon);
    char t[32];
    fv_jgen_map_open(j);
    for (size_t i = 0; i < p->u.object.len; i++) {
        const char *k = p->u.object.keys[i];
        fv_jgen_key(j, k);
        if (!strcmp(k, "lat") || !strcmp(k, "lon")) {
            fv_double_text(!strcmp(k, "lat") ? mlat : mlon, t);
            fv_jgen_raw(j, t, strlen(t));
        } else {
            fv_jgen_tree(j, p->u.object.values[i]);
        }
    }
    fv_jgen_map_close(j);
}

bool fv_gps_is_moved(yajl_val sent, yajl_val p, const fv_gps_offset *o)
{
    double slat, slon, lat, lon, mlat, mlon;
    if (!point_of(sent, &slat, &slon) || !point_of(p, &lat, &lon)) return false;
    moved(lat, lon, o, &mlat, &mlon);
    /* compared as the reader was shown them: the texts fv_gps_displace wrote */
    char a[32], b[32];
    fv_double_text(mlat, a);
    fv_double_text(mlon, b);
    return strtod(a, NULL) == slat && strtod(b, NULL) == slon;
}

/* ---- opening ---- */

void fv_answers_opened_free(fv_answers_opened *o)
{
    if (o->data) yajl_tree_free(o->data);
    if (o->location) yajl_tree_free(o->location);
    o->data = o->location = NULL;
}

/* The tree of a sealed value (a JSON string). */
static yajl_val open_tree(const unsigned char *key, int kv, const char *id, const char *name, yajl_val v,
                          char *err, size_t errlen)
{
    if (!YAJL_IS_STRING(v)) {
        snprintf(err, errlen, "response %s: %s %s%.64s%s is not a sealed value", id,
                 name ? "answer" : "location", name ? "'" : "", name ? name : "", name ? "'" : "");
        return NULL;
    }
    const char *s = YAJL_GET_STRING(v);
    if (!s) s = "";
    char *text = fv_answers_open_value(key, kv, id, name, s, strlen(s), err, errlen); /* owned */
    if (!text) return NULL;
    fv_json_error je;
    yajl_val t = fv_json_parse_n(text, strlen(text), &je);
    fv_answers_free_text(text);
    if (!t)
        snprintf(err, errlen, "response %s: a sealed %s is not JSON: %s", id,
                 name ? "answer" : "location", je.msg);
    return t;
}

/* A copy of tree v (NULL stays NULL). */
static yajl_val copy_tree(yajl_val v)
{
    if (!v) return NULL;
    char *t = fv_json_text(v);
    if (!t) return NULL;
    yajl_val c = fv_json_parse_n(t, strlen(t), NULL);
    free(t);
    return c;
}

int fv_answers_open(const unsigned char *key, int kv, const char *id, yajl_val data, yajl_val location,
                    fv_answers_opened *out, char *err, size_t errlen)
{
    out->data = out->location = NULL;
    if (kv <= 0 || !key) {
        out->data = copy_tree(data);
        out->location = location && !YAJL_IS_NULL(location) ? copy_tree(location) : NULL;
        if ((data && !out->data) || (location && !YAJL_IS_NULL(location) && !out->location)) {
            fv_answers_opened_free(out);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    fv_jgen *j = fv_jgen_new(); /* owned: the opened object's text */
    if (!j) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    if (YAJL_IS_OBJECT(data)) {
        fv_jgen_map_open(j);
        size_t i = 0;
        for (; i < data->u.object.len; i++) {
            yajl_val t = open_tree(key, kv, id, data->u.object.keys[i], data->u.object.values[i], err,
                                   errlen);
            if (!t) break;
            fv_jgen_key(j, data->u.object.keys[i]);
            fv_jgen_tree(j, t);
            yajl_tree_free(t);
        }
        fv_jgen_map_close(j);
        if (i < data->u.object.len) goto done;
        size_t len;
        const char *text = fv_jgen_buf(j, &len);
        out->data = text ? fv_json_parse_n(text, len, NULL) : NULL;
        OPENSSL_cleanse((void *)text, len);
        if (!out->data) {
            snprintf(err, errlen, "response %s: out of memory", id);
            goto done;
        }
    } else {
        out->data = copy_tree(data);
    }
    if (YAJL_IS_OBJECT(location)) {
        /* a point in clear (an OpenRosa edit of a row stored before 027 keeps its location as it
         * was): a sealed location is always a string */
        if (!(out->location = copy_tree(location))) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    } else if (location && !YAJL_IS_NULL(location)) {
        out->location = open_tree(key, kv, id, NULL, location, err, errlen);
        if (!out->location) goto done;
    }
    rc = 0;
done:
    fv_jgen_free(j);
    if (rc != 0) fv_answers_opened_free(out);
    return rc;
}

/* ---- finishing a reply ---- */

typedef struct finisher {
    fv_dkring *ring;
    char *err;
    size_t errlen;
    bool failed;
} finisher;

static bool in_list(yajl_val list, const char *name)
{
    if (!YAJL_IS_ARRAY(list)) return false;
    for (size_t i = 0; i < list->u.array.len; i++) {
        const char *s = YAJL_GET_STRING(list->u.array.values[i]);
        if (s && !strcmp(s, name)) return true;
    }
    return false;
}

static void gen(finisher *f, fv_jgen *j, yajl_val v, int depth);

/* A response object with its "_fv" hint h. */
static void gen_response(finisher *f, fv_jgen *j, yajl_val obj, yajl_val h, int depth)
{
    const char *id = fv_json_get_str(h, "id"), *org = fv_json_get_str(h, "org");
    const char *wk = fv_json_get_str(h, "wk");
    yajl_val kvv = fv_json_get(h, "kv"), mask = fv_json_get(h, "mask");
    int kv = YAJL_IS_INTEGER(kvv) ? (int)YAJL_GET_INTEGER(kvv) : 0;
    if (!id) id = "?";
    const unsigned char *key = NULL;
    if (kv > 0) {
        char scope[FV_DATAKEY_SCOPE_MAX];
        snprintf(scope, sizeof scope, "org:%s", org ? org : "");
        key = fv_dkring_get(f->ring, scope, kv);
        if (!key && wk) key = fv_dkring_put(f->ring, scope, kv, wk, f->err, f->errlen);
        if (!key) {
            if (!wk) snprintf(f->err, f->errlen, "response %s: no data key %s v%d", id, scope, kv);
            f->failed = true;
            return;
        }
    }
    fv_gps_offset off;
    bool masked = YAJL_IS_OBJECT(mask);
    yajl_val geo = masked ? fv_json_get(mask, "geo") : NULL,
             rad = masked ? fv_json_get(mask, "radius") : NULL;
    if (masked && (!YAJL_IS_NUMBER(rad) || !fv_gps_offset_of(fv_json_get_str(mask, "seed"),
                                                             strtod(YAJL_GET_NUMBER(rad), NULL), &off)))
        masked = false, off.r = -1; /* no seed: points are written as null below */
    bool no_seed = YAJL_IS_OBJECT(mask) && !masked;
    fv_answers_opened o;
    if (fv_answers_open(key, kv, id, fv_json_get(obj, "data"), fv_json_get(obj, "location"), &o, f->err,
                        f->errlen) != 0) {
        f->failed = true;
        return;
    }
    fv_jgen_map_open(j);
    for (size_t i = 0; i < obj->u.object.len; i++) {
        const char *k = obj->u.object.keys[i];
        if (!strcmp(k, "_fv")) continue;
        fv_jgen_key(j, k);
        if (!strcmp(k, "data")) {
            if (YAJL_IS_OBJECT(o.data) && (masked || no_seed) && geo) {
                fv_jgen_map_open(j);
                for (size_t q = 0; q < o.data->u.object.len; q++) {
                    fv_jgen_key(j, o.data->u.object.keys[q]);
                    if (in_list(geo, o.data->u.object.keys[q])) {
                        if (masked) fv_gps_displace(j, o.data->u.object.values[q], &off);
                        else fv_jgen_null(j);
                    } else {
                        fv_jgen_tree(j, o.data->u.object.values[q]);
                    }
                }
                fv_jgen_map_close(j);
            } else if (o.data) {
                fv_jgen_tree(j, o.data);
            } else {
                fv_jgen_null(j);
            }
        } else if (!strcmp(k, "location")) {
            if (masked) fv_gps_displace(j, o.location, &off);
            else if (no_seed && o.location) fv_jgen_null(j);
            else if (o.location) fv_jgen_tree(j, o.location);
            else fv_jgen_null(j);
        } else {
            gen(f, j, obj->u.object.values[i], depth + 1);
        }
    }
    fv_jgen_map_close(j);
    /* the opened answers were copied into j; wipe them before freeing */
    fv_answers_opened_free(&o);
}

static void gen(finisher *f, fv_jgen *j, yajl_val v, int depth)
{
    if (f->failed) return;
    if (depth > FV_JSON_MAX_DEPTH) {
        snprintf(f->err, f->errlen, "a reply nested too deep");
        f->failed = true;
        return;
    }
    if (YAJL_IS_OBJECT(v)) {
        yajl_val h = fv_json_get(v, "_fv");
        if (YAJL_IS_OBJECT(h)) {
            gen_response(f, j, v, h, depth);
            return;
        }
        fv_jgen_map_open(j);
        for (size_t i = 0; i < v->u.object.len && !f->failed; i++) {
            fv_jgen_key(j, v->u.object.keys[i]);
            gen(f, j, v->u.object.values[i], depth + 1);
        }
        fv_jgen_map_close(j);
    } else if (YAJL_IS_ARRAY(v)) {
        fv_jgen_array_open(j);
        for (size_t i = 0; i < v->u.array.len && !f->failed; i++)
            gen(f, j, v->u.array.values[i], depth + 1);
        fv_jgen_array_close(j);
    } else {
        fv_jgen_tree(j, v);
    }
}

char *fv_answers_finish(const char *json, size_t len, fv_dkring *ring, size_t *outlen, char *err,
                        size_t errlen)
{
    if (!memmem(json, len, "\"_fv\"", 5)) {
        char *c = malloc(len + 1);
        if (!c) {
            snprintf(err, errlen, "out of memory");
            return NULL;
        }
        memcpy(c, json, len);
        c[len] = '\0';
        *outlen = len;
        return c;
    }
    fv_json_error je;
    yajl_val t = fv_json_parse_n(json, len, &je);
    if (!t) {
        snprintf(err, errlen, "a reply that is not JSON: %s", je.msg);
        return NULL;
    }
    fv_jgen *j = fv_jgen_new();
    finisher f = {ring, err, errlen, false};
    char *out = NULL;
    if (!j) snprintf(err, errlen, "out of memory");
    else {
        gen(&f, j, t, 0);
        size_t n = 0;
        const char *text = f.failed ? NULL : fv_jgen_buf(j, &n);
        if (!f.failed && !text) snprintf(err, errlen, "%s", fv_jgen_error(j));
        if (text && (out = malloc(n + 1))) {
            memcpy(out, text, n);
            out[n] = '\0';
            *outlen = n;
        } else if (text) {
            snprintf(err, errlen, "out of memory");
        }
        if (text) OPENSSL_cleanse((void *)text, n);
    }
    fv_jgen_free(j);
    yajl_tree_free(t);
    return out;
}
