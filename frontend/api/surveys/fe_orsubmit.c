/* OpenRosa submissions (issue 13, docs/api/openrosa.md): HEAD and POST
 * /v1/openrosa/deployments/{id}/submission, multipart/form-data with the instance XML in
 * xml_submission_file and the attachments as further parts; and what they stored, read back
 * through the JSON API (GET /v1/responses/{id}/xml, /attachments/{name}).
 *
 * A POST, state by state (or_state.step):
 *   LOOKUP    the caller's right to submit to the deployment, as a JSON submission's
 *             (fe_submit_lookup: caches, Redis, PostgreSQL; unverified while it is down)
 *   PARTS     on the work pool: the body through the streaming multipart parser
 *             (fv_multipart), each attachment hashed (SHA-256), the XML's head read
 *             (form id, version, instanceID, deprecatedID) and, when the instance is of the
 *             form version the deployment's survey is at, the instance typed and validated
 *             (fv_instance) with the queue's openrosa field built (base64 attachments)
 *   VERSION   an instance of an older form version: its definition asked from PostgreSQL,
 *             then INSTANCE
 *   INSTANCE  on the work pool: the instance typed and validated against that definition
 *             An encrypted survey's (docs/api/openrosa.md, "Encrypted submissions"): the XML is
 *             ODK Collect's cleartext manifest (fv_odkmanifest); its submission.xml.enc and
 *             media .enc parts become the stored envelope of the JSON API
 *             (fv_odkcrypt_envelope_build, checked as any), the manifest the stored XML
 *   PRECHECK  (PostgreSQL up) the stored response of the same instance: identical XML goes on
 *             (attachments that were missing are added), different XML is 409; the
 *             organisation's attachment quota (413)
 *   QUEUE     the same stream (or spool) as a JSON submission (fe_queue, with the id's claim)
 *   WAIT      polling PostgreSQL for the stored response and all its attachments, at most
 *             openrosa_store_wait_ms: 201 when seen, else 202 (durably queued)
 * Every answer is the OpenRosa envelope with X-OpenRosa-Version: 1.0 (r->openrosa: errors of
 * every layer too, fe_reply.c) and Date (evhttp).
 *
 * The body: libevent 2.1 gives a server handler the request only once its body is read, so the
 * body is held in evhttp's buffer up to openrosa_max_body_bytes (fe_conn.c refuses larger ones
 * before reading them into it); it is moved (not copied) to the job and parsed in place, segment
 * by segment; the XML and each attachment are copied out once.
 *
 * Authentication: or_caller() is the one step (the API's bearer tokens today; HTTP Basic and
 * app-user tokens slot in there). Then or_version(): both methods require X-OpenRosa-Version: 1.0
 * (400 without it), as ODK Central does. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "fe_config.h"
#include "fe_datakeys.h"
#include "fe_handlers.h"
#include "fe_identity.h"
#include "fe_metrics.h"
#include "fe_pg.h"
#include "fe_queue.h"
#include "fe_subid.h"
#include "fe_submit.h"
#include "fe_verdict.h"
#include "fe_workpool.h"
#include "fv_answers.h"
#include "fv_attachment.h"
#include "fv_envelope.h"
#include "fv_orseal.h"
#include "fv_instance.h"
#include "fv_json.h"
#include "fv_log.h"
#include "fv_multipart.h"
#include "fv_odkcrypt.h"
#include "fv_odkmanifest.h"

#define XML_PART "xml_submission_file"
#define POLL_MS 40

typedef struct or_att {
    char name[FV_ATTACHMENT_NAME_MAX + 1];
    char ctype[FV_MULTIPART_MAX_NAME + 1];
    unsigned char *data; /* owned */
    size_t len, cap;
    char sha256[65]; /* hex */
} or_att;

/* The pool's job: owned by the pool from submission (fe_workpool.h); done() moves its results
 * into the request's state (the pointers are taken and cleared in the job). */
typedef struct or_job {
    struct evbuffer *body; /* owned: the request body (PARTS only) */
    char boundary[FV_MULTIPART_MAX_BOUNDARY + 1];
    size_t max_parts;
    int key_bytes;    /* the survey's modulus in bytes: an encrypted survey; 0: in clear */
    char *definition; /* owned: the derived definition to type the instance with */
    char cur_form_id[FV_INSTANCE_MAX_ID + 1], cur_version[FV_INSTANCE_MAX_ID + 1];
    /* results */
    int status; /* 0, or the error status (400, 404, 413, 422, 503) with why */
    char why[320];
    char *xml; /* owned */
    size_t xml_len, xml_cap;
    bool have_xml, in_xml;
    or_att *atts; /* owned */
    size_t natt, catt;
    or_att *cur;
    size_t att_bytes;
    fv_instance inst;    /* data owned */
    bool typed;          /* the instance was typed (else: another version's definition needed) */
    fv_form_errors errs; /* owned */
    char *openrosa;      /* owned: the envelope's openrosa field */
    char xml_sha256[65]; /* of the XML as received (hex): how a stored instance is compared */
    /* an edit's sealing job (fe_orsubmit's SEAL step): the org's data key, copied (wiped in
     * job_free), and what fv_orseal_field made of openrosa */
    bool sealing;
    unsigned char seal_key[FV_DATAKEY_BYTES];
    int seal_version;
    char seal_org[FV_UUID_STRLEN + 1], seal_rid[FV_UUID_STRLEN + 1];
    char *sealed;      /* owned */
    char *sealed_data; /* owned: the answers sealed for the response (fv_answers_seal) */
} or_job;

typedef enum {
    OR_LOOKUP,
    OR_PARTS,
    OR_VERSION,
    OR_INSTANCE,
    OR_SEAL,
    OR_PRECHECK,
    OR_QUEUE,
    OR_WAIT
} or_step;

typedef struct or_state {
    fe_submit_base base; /* first: the lookup's (fe_submit.h) */
    or_step step;
    struct evbuffer *body; /* owned until handed to the PARTS job */
    char boundary[FV_MULTIPART_MAX_BOUNDARY + 1];
    fe_work *work; /* the running job, or NULL */
    char survey_id[FV_UUID_STRLEN + 1];
    int survey_version;
    bool verified;
    long long rversion;
    char *definition; /* owned: the current version's */
    or_job *res;      /* owned: the job's results, moved here (body and definition NULL) */
    char id[FV_UUID_STRLEN + 1];
    struct event *timer; /* owned: WAIT's poll */
    struct timespec wait_until;
    char *names; /* owned: the attachment names as a PostgreSQL array literal */
} or_state;

static void job_free(void *p)
{
    or_job *j = p;
    if (!j) return;
    if (j->body) evbuffer_free(j->body);
    free(j->definition);
    free(j->xml);
    for (size_t i = 0; i < j->natt; i++) free(j->atts[i].data);
    free(j->atts);
    fv_instance_clear(&j->inst);
    fv_form_errors_free(&j->errs);
    free(j->openrosa);
    free(j->sealed);
    free(j->sealed_data);
    OPENSSL_cleanse(j->seal_key, sizeof j->seal_key);
    free(j);
}

static void state_free(void *p)
{
    or_state *st = p;
    if (st->work) fe_work_detach(st->work);
    if (st->body) evbuffer_free(st->body);
    if (st->timer) event_free(st->timer);
    free(st->definition);
    job_free(st->res);
    free(st->names);
    fe_submit_base_clear(&st->base);
    free(st);
}

/* ---- on the work pool ---- */

static bool grow(unsigned char **buf, size_t *cap, size_t need)
{
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    unsigned char *n = realloc(*buf, c);
    if (!n) return false;
    *buf = n, *cap = c;
    return true;
}

static void job_failed(or_job *j, int status, const char *why)
{
    if (j->status) return;
    j->status = status;
    snprintf(j->why, sizeof j->why, "%s", why);
}

static bool on_begin(void *arg, const fv_multipart_part *p)
{
    or_job *j = arg;
    j->cur = NULL;
    j->in_xml = false;
    if (strcmp(p->name, XML_PART) == 0) {
        if (j->have_xml) {
            job_failed(j, 400, "xml_submission_file is sent twice");
            return false;
        }
        j->have_xml = j->in_xml = true;
        return true;
    }
    if (!p->filename) return true; /* another form field: not ours, ignored */
    /* A file part names its attachment by its field name, as ODK Central does (Collect sends the
     * file name as both). */
    const char *bad = fv_attachment_name_problem(p->name);
    if (bad) {
        job_failed(j, 400, bad);
        return false;
    }
    for (size_t i = 0; i < j->natt; i++)
        if (strcmp(j->atts[i].name, p->name) == 0) {
            job_failed(j, 400, "two attachments have the same file name");
            return false;
        }
    if (j->natt == j->catt) {
        size_t c = j->catt ? j->catt * 2 : 4;
        or_att *n = realloc(j->atts, c * sizeof *n);
        if (!n) {
            job_failed(j, 503, "out of memory");
            return false;
        }
        j->atts = n, j->catt = c;
    }
    or_att *a = &j->atts[j->natt++];
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", p->name);
    /* a content type is printable ASCII, else the file is octet-stream */
    const char *ct = p->content_type && p->content_type[0] ? p->content_type
                                                           : "application/octet-stream";
    for (const char *c = ct; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) ct = "application/octet-stream";
    snprintf(a->ctype, sizeof a->ctype, "%s", ct);
    j->cur = a;
    return true;
}

static bool on_data(void *arg, const char *d, size_t n)
{
    or_job *j = arg;
    if (j->in_xml) {
        if (!grow((unsigned char **)&j->xml, &j->xml_cap, j->xml_len + n + 1)) {
            job_failed(j, 503, "out of memory");
            return false;
        }
        memcpy(j->xml + j->xml_len, d, n);
        j->xml_len += n;
        j->xml[j->xml_len] = '\0';
    } else if (j->cur) {
        if (!grow(&j->cur->data, &j->cur->cap, j->cur->len + n)) {
            job_failed(j, 503, "out of memory");
            return false;
        }
        memcpy(j->cur->data + j->cur->len, d, n);
        j->cur->len += n;
        j->att_bytes += n;
    }
    return true;
}

static bool on_end(void *arg)
{
    or_job *j = arg;
    j->in_xml = false;
    j->cur = NULL;
    return true;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) out[2 * i] = d[in[i] >> 4], out[2 * i + 1] = d[in[i] & 15];
    out[2 * n] = '\0';
}

/* The multipart body into the job's XML and attachments. */
static void run_parts(or_job *j)
{
    static const fv_multipart_cbs cbs = {on_begin, on_data, on_end};
    fv_multipart *m = fv_multipart_new(j->boundary, &cbs, j, j->max_parts);
    if (!m) {
        job_failed(j, 503, "out of memory");
        return;
    }
    int n = evbuffer_peek(j->body, -1, NULL, NULL, 0);
    struct evbuffer_iovec *v = n > 0 ? calloc((size_t)n, sizeof *v) : NULL;
    int rc = 0;
    if (n > 0 && !v) {
        job_failed(j, 503, "out of memory");
        rc = -1;
    } else if (n > 0) {
        evbuffer_peek(j->body, -1, NULL, v, n);
        for (int i = 0; i < n && rc == 0; i++) rc = fv_multipart_feed(m, v[i].iov_base, v[i].iov_len);
    }
    if (rc == 0) rc = fv_multipart_finish(m);
    if (rc != 0 && !j->status) {
        char why[160];
        snprintf(why, sizeof why, "malformed multipart body: %s", fv_multipart_error(m));
        job_failed(j, 400, why);
    }
    free(v);
    fv_multipart_free(m);
    evbuffer_free(j->body);
    j->body = NULL;
    if (j->status) return;
    if (!j->have_xml) {
        job_failed(j, 400, "the submission has no xml_submission_file part");
        return;
    }
    for (size_t i = 0; i < j->natt; i++) {
        unsigned char md[32];
        unsigned int mdlen = 0;
        if (!EVP_Digest(j->atts[i].data ? j->atts[i].data : (unsigned char *)"", j->atts[i].len, md,
                        &mdlen, EVP_sha256(), NULL)) {
            job_failed(j, 503, "out of memory");
            return;
        }
        hex(md, 32, j->atts[i].sha256);
    }
    {
        unsigned char md[32];
        unsigned int mdlen = 0;
        if (!EVP_Digest(j->xml, j->xml_len, md, &mdlen, EVP_sha256(), NULL)) {
            job_failed(j, 503, "out of memory");
            return;
        }
        hex(md, 32, j->xml_sha256);
    }
    char why[256];
    if (fv_instance_head(j->xml, j->xml_len, &j->inst, why, sizeof why) != 0) {
        job_failed(j, 400, why);
        return;
    }
    if (!j->inst.instance_id[0]) job_failed(j, 400, "the instance has no meta/instanceID");
}

/* The queue's openrosa field: {"instance_id", "xml", "attachments": [...]}. */
static char *openrosa_field(or_job *j)
{
    fv_jgen *g = fv_jgen_new();
    if (!g) return NULL;
    fv_jgen_map_open(g);
    fv_jgen_key(g, "instance_id");
    fv_jgen_str(g, j->inst.instance_id);
    fv_jgen_key(g, "xml");
    fv_jgen_strn(g, j->xml, j->xml_len);
    fv_jgen_key(g, "attachments");
    fv_jgen_array_open(g);
    char *b64 = NULL;
    size_t b64cap = 0;
    bool ok = true;
    for (size_t i = 0; i < j->natt && ok; i++) {
        or_att *a = &j->atts[i];
        size_t need = 4 * ((a->len + 2) / 3) + 1;
        if (need > b64cap) {
            free(b64);
            b64 = malloc(need);
            b64cap = b64 ? need : 0;
        }
        if (!b64) {
            ok = false;
            break;
        }
        int n = EVP_EncodeBlock((unsigned char *)b64, a->data ? a->data : (unsigned char *)"",
                                (int)a->len);
        fv_jgen_map_open(g);
        fv_jgen_key(g, "name");
        fv_jgen_str(g, a->name);
        fv_jgen_key(g, "content_type");
        fv_jgen_str(g, a->ctype);
        fv_jgen_key(g, "size");
        fv_jgen_int(g, (long long)a->len);
        fv_jgen_key(g, "sha256");
        fv_jgen_str(g, a->sha256);
        fv_jgen_key(g, "data");
        fv_jgen_strn(g, b64, (size_t)n);
        fv_jgen_map_close(g);
    }
    free(b64);
    fv_jgen_array_close(g);
    fv_jgen_map_close(g);
    const char *t = ok ? fv_jgen_buf(g, NULL) : NULL;
    char *out = t ? strdup(t) : NULL;
    fv_jgen_free(g);
    return out;
}

/* Whether some string in v (an answer, or an item of a list of them) is name. */
static bool named_by(yajl_val v, const char *name)
{
    if (YAJL_IS_STRING(v)) return strcmp(v->u.string, name) == 0;
    if (YAJL_IS_ARRAY(v)) {
        for (size_t i = 0; i < v->u.array.len; i++)
            if (named_by(v->u.array.values[i], name)) return true;
    } else if (YAJL_IS_OBJECT(v)) {
        for (size_t i = 0; i < v->u.object.len; i++)
            if (named_by(v->u.object.values[i], name)) return true;
    }
    return false;
}

/* Attachments no answer names are dropped, as ODK Central does ("should ignore unknown
 * attachments"): only the files the instance refers to are kept and counted. */
static void keep_named(or_job *j)
{
    char err[64];
    yajl_val data = fv_json_parse(j->inst.data, err, sizeof err);
    size_t k = 0;
    j->att_bytes = 0;
    for (size_t i = 0; i < j->natt; i++) {
        if (data && named_by(data, j->atts[i].name)) {
            j->att_bytes += j->atts[i].len;
            j->atts[k++] = j->atts[i];
        } else {
            free(j->atts[i].data);
        }
    }
    j->natt = k;
    if (data) yajl_tree_free(data);
}

/* The instance typed by j->definition and validated; the openrosa field built. */
static void run_instance(or_job *j)
{
    char err[128], why[256];
    yajl_val def = fv_json_parse(j->definition, err, sizeof err);
    fv_form *form = def ? fv_form_compile_stored(def, &j->errs) : NULL;
    fv_form_errors_free(&j->errs); /* a stored definition compiles: nothing of it to report */
    if (!form) {
        job_failed(j, 500, "the survey's form cannot be loaded");
    } else {
        fv_instance head = j->inst; /* the head's fields, kept over the full parse */
        fv_instance_clear(&j->inst);
        int rc = fv_instance_parse(j->xml, j->xml_len, def, form, &j->inst, &j->errs, why, sizeof why);
        if (rc < 0) {
            j->inst = head;
            j->inst.data = NULL;
            job_failed(j, strcmp(why, "out of memory") == 0 ? 503 : 400, why);
        } else {
            j->typed = true;
            if (rc == 0) keep_named(j);
            if (rc == 0 && !(j->openrosa = openrosa_field(j))) job_failed(j, 503, "out of memory");
            for (size_t i = 0; rc == 0 && j->openrosa && i < j->natt; i++) {
                free(j->atts[i].data); /* the envelope field holds them now (base64) */
                j->atts[i].data = NULL;
                j->atts[i].cap = 0;
            }
        }
    }
    fv_form_free(form);
    if (def) yajl_tree_free(def);
}

static or_att *att_named(or_job *j, const char *name)
{
    for (size_t i = 0; i < j->natt; i++)
        if (strcmp(j->atts[i].name, name) == 0) return &j->atts[i];
    return NULL;
}

/* An encrypted survey's submission: the manifest (j->xml) read, its parts found, the envelope
 * built and checked (modulus_bytes 0: another version's key, checked by the worker), the
 * openrosa field holding the manifest as the XML and no attachments (the .enc files are inside
 * the envelope, where fv-decrypt opens them). Parts the manifest does not name are ignored, as
 * ODK Central does. */
static void run_encrypted(or_job *j, int modulus_bytes)
{
    fv_odkmanifest m;
    char why[300];
    if (fv_odkmanifest_parse(j->xml, j->xml_len, &m, why, sizeof why) != 0) {
        fv_odkmanifest_clear(&m);
        job_failed(j, strcmp(why, "out of memory") == 0 ? 503 : 400, why);
        return;
    }
    const char *bad = !m.encrypted ? "this survey is encrypted (its form has a public key): send the "
                                     "encrypted submission (its manifest with encrypted=\"yes\" and the "
                                     ".enc files); answers in clear are refused"
                      : !m.instance_id[0] ? "the manifest has no meta/instanceID"
                      : !m.b64_key        ? "the manifest has no base64EncryptedKey"
                      : !m.b64_sig        ? "the manifest has no base64EncryptedElementSignature"
                      : !m.xml_file[0]    ? "the manifest has no encryptedXmlFile"
                      : j->inst.deprecated_id[0]
                          ? "an encrypted submission cannot be an edit (meta/deprecatedID)"
                          : NULL;
    if (bad) {
        fv_odkmanifest_clear(&m);
        job_failed(j, 400, bad);
        return;
    }
    or_att *x = att_named(j, m.xml_file);
    fv_odkcrypt_part *media = m.nmedia ? calloc(m.nmedia, sizeof *media) : NULL;
    if (m.nmedia && !media) {
        fv_odkmanifest_clear(&m);
        job_failed(j, 503, "out of memory");
        return;
    }
    size_t bytes = x ? x->len : 0;
    for (size_t i = 0; x && i < m.nmedia && !bad; i++) {
        or_att *a = att_named(j, m.media[i]);
        if (!a) {
            snprintf(why, sizeof why, "the manifest names the media file %.160s but no part carries it",
                     m.media[i]);
            bad = why;
            break;
        }
        media[i] = (fv_odkcrypt_part){a->name, a->data, a->len};
        bytes += a->len;
    }
    if (!x) {
        snprintf(why, sizeof why,
                 "the manifest names the encryptedXmlFile %.160s but no part carries it", m.xml_file);
        bad = why;
    }
    char *env = bad ? NULL
                    : fv_odkcrypt_envelope_build(m.instance_id, m.version, m.b64_key, x->data, x->len,
                                                 media, m.nmedia, m.b64_sig);
    free(media);
    if (bad || !env) {
        fv_odkmanifest_clear(&m);
        job_failed(j, bad ? 400 : 503, bad ? bad : "out of memory");
        return;
    }
    const char *field = NULL;
    bad = fv_odkcrypt_envelope_check_text(env, strlen(env), modulus_bytes, &field);
    if (bad) {
        snprintf(why, sizeof why, "not an encrypted submission for this survey's key: %s: %s",
                 field ? field : "envelope", bad);
        free(env);
        fv_odkmanifest_clear(&m);
        job_failed(j, 400, why);
        return;
    }
    fv_odkmanifest_clear(&m);
    for (size_t i = 0; i < j->natt; i++) free(j->atts[i].data);
    j->natt = 0;
    j->att_bytes = bytes; /* the degraded-mode bound and the quota count the ciphertext */
    free(j->inst.data);
    j->inst.data = env; /* owned by the job now */
    j->typed = true;
    if (!(j->openrosa = openrosa_field(j))) job_failed(j, 503, "out of memory");
}

/* A plain survey's submission that is an encrypted manifest: refused rather than stored as
 * answers nobody asked for. */
static bool manifest_in_clear(or_job *j)
{
    fv_odkmanifest m;
    char why[64];
    bool enc = fv_odkmanifest_parse(j->xml, j->xml_len, &m, why, sizeof why) == 0 && m.encrypted;
    fv_odkmanifest_clear(&m);
    return enc;
}

/* The edit's answers sealed under the job's key for the response it edits (migration 027); the
 * caller frees. NULL with why. */
static char *seal_answers(or_job *j, char *why, size_t whylen)
{
    yajl_val data = j->inst.data ? fv_json_parse_n(j->inst.data, strlen(j->inst.data), NULL) : NULL;
    fv_jgen *g = fv_jgen_new();
    char *out = NULL;
    if (data && g &&
        fv_answers_seal(g, j->seal_key, j->seal_version, j->seal_rid, data, why, whylen) == 0) {
        const char *t = fv_jgen_buf(g, NULL);
        out = t ? strdup(t) : NULL;
    }
    if (!out && (!data || !g)) snprintf(why, whylen, "out of memory");
    else if (!out) snprintf(why, whylen, "%s", why[0] ? why : "out of memory");
    fv_jgen_free(g);
    if (data) yajl_tree_free(data);
    return out;
}

static void job_run(void *p)
{
    or_job *j = p;
    if (j->sealing) { /* an edit's XML and attachments, sealed for the response it edits */
        char why[256];
        j->sealed = fv_orseal_field(j->seal_key, j->seal_version, j->seal_org, j->seal_rid, j->openrosa,
                                    strlen(j->openrosa), j->inst.data,
                                    j->inst.data ? strlen(j->inst.data) : 0, why, sizeof why);
        if (j->sealed) j->sealed_data = seal_answers(j, why, sizeof why);
        OPENSSL_cleanse(j->seal_key, sizeof j->seal_key);
        if (j->sealed && !j->sealed_data) {
            job_failed(j, 503, why);
            return;
        }
        if (!j->sealed) job_failed(j, strncmp(why, "malformed", 9) == 0 ? 500 : 503, why);
        return;
    }
    if (j->key_bytes && !j->body) {
        /* another version's envelope, built already: only the version's key was looked up */
        j->typed = true;
        return;
    }
    if (j->body) {
        run_parts(j);
        if (j->status) return;
        if (j->key_bytes) {
            if (strcmp(j->inst.form_id, j->cur_form_id) != 0) {
                job_failed(j, 404, "no such form: the instance's form id is not this deployment's form");
                return;
            }
            bool current = strcmp(j->inst.version, j->cur_version) == 0;
            run_encrypted(j, current ? j->key_bytes : 0);
            if (!current) j->typed = false; /* the version is looked up (its key's size) */
            return;
        }
        if (manifest_in_clear(j)) {
            job_failed(j, 400,
                       "this survey is not encrypted (its form has no public key): an encrypted "
                       "submission is refused; send the instance in clear");
            return;
        }
        /* The deployment's current version, or (typed stays false) an older one to fetch. */
        if (strcmp(j->inst.form_id, j->cur_form_id) != 0) {
            job_failed(j, 404, "no such form: the instance's form id is not this deployment's form");
            return;
        }
        if (strcmp(j->inst.version, j->cur_version) != 0) return;
    }
    run_instance(j);
}

/* ---- on the loop ---- */

/* The one authentication step of the OpenRosa routes: false after answering 401. */
static bool or_caller(fe_req *r)
{
    if (r->user) return true;
    fe_reply_error(r, 401, "unauthenticated", "credentials are required to submit");
    return false;
}

/* The protocol's version, as ODK Central asks it of every OpenRosa request (HEAD and POST
 * .../submission): X-OpenRosa-Version: 1.0, which ODK Collect (and KoboCollect), Enketo and the
 * hosts of ODK Web Forms send on every request. False after answering 400 (in the envelope; a
 * HEAD's body is dropped, its X-Fieldvault-Error says openrosa_version). */
static bool or_version(fe_req *r)
{
    const char *v = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "X-OpenRosa-Version");
    if (v && strcmp(v, "1.0") == 0) return true;
    fe_reply_error(r, 400, "openrosa_version",
                   v ? "this server speaks OpenRosa 1.0: send X-OpenRosa-Version: 1.0"
                     : "the X-OpenRosa-Version: 1.0 header is required (OpenRosa clients send it)");
    return false;
}

static void announce(fe_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    char v[24];
    snprintf(v, sizeof v, "%d", fe_cfg.openrosa_max_body_bytes);
    evhttp_remove_header(h, "X-OpenRosa-Accept-Content-Length");
    evhttp_add_header(h, "X-OpenRosa-Accept-Content-Length", v);
}

void fe_orsubmit_head(fe_req *r)
{
    announce(r);
    if (!or_caller(r) || !or_version(r)) return;
    if (!fe_verdict_id(r, 0, "deployment")) return;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->ev);
    evhttp_remove_header(h, "X-OpenRosa-Version"); /* once, whoever set it (fe_openrosa_auth.c) */
    evhttp_add_header(h, "X-OpenRosa-Version", "1.0");
    fe_reply_text(r, 204, "text/xml; charset=utf-8", NULL, 0);
}

static void start_job(fe_req *r, or_job *j, or_step step);

/* A response id from the instanceID: the UUID of "uuid:<UUID>" (ODK Collect's), else a UUID
 * derived from the deployment and the instanceID (SHA-256, version 8 layout): the same instance
 * sent again gets the same id, and another deployment's "one" is another response. */
static bool response_id(const char *dep_id, const char *iid, char out[FV_UUID_STRLEN + 1])
{
    if (strncmp(iid, "uuid:", 5) == 0 && strlen(iid + 5) == FV_UUID_STRLEN && fv_id_valid(iid + 5)) {
        for (int i = 0; i < FV_UUID_STRLEN; i++) out[i] = (char)tolower((unsigned char)iid[5 + i]);
        out[FV_UUID_STRLEN] = '\0';
        return true;
    }
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned int n = 0;
    bool ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(c, "fv-openrosa-instance", 21) &&
              EVP_DigestUpdate(c, dep_id, strlen(dep_id) + 1) && EVP_DigestUpdate(c, iid, strlen(iid)) &&
              EVP_DigestFinal_ex(c, md, &n);
    EVP_MD_CTX_free(c);
    if (!ok) return false;
    md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
    md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
    char h[33];
    hex(md, 16, h);
    snprintf(out, FV_UUID_STRLEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
    return true;
}

static void answer_stored(fe_req *r, bool stored)
{
    fe_metrics_submission_accepted();
    if (stored) fe_reply_openrosa(r, 201, "", "full submission upload was successful!");
    else
        fe_reply_openrosa(r, 202, "",
                          "the submission is queued durably and will be stored shortly; do not send "
                          "it again");
}

static const char sql_stored[] =
    "SELECT EXISTS (SELECT 1 FROM responses WHERE id = $1::uuid AND xml_sha256 = decode($2, 'hex')), "
    "       (SELECT count(*) FROM response_attachments WHERE response_id = $1::uuid "
    "        AND name = ANY ($3::text[]))";

static void poll_stored(fe_req *r);

static void stored_answer(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (res->status != FE_PG_OK) {
        answer_stored(r, false); /* durably queued all the same */
        return;
    }
    bool seen = PQgetvalue(res->res, 0, 0)[0] == 't' &&
                (size_t)atol(PQgetvalue(res->res, 0, 1)) == st->res->natt;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    bool late = now.tv_sec > st->wait_until.tv_sec ||
                (now.tv_sec == st->wait_until.tv_sec && now.tv_nsec >= st->wait_until.tv_nsec);
    if (seen || late || !fe_pg_up()) {
        answer_stored(r, seen);
        return;
    }
    struct timeval tv = {0, POLL_MS * 1000};
    if (!st->timer || evtimer_add(st->timer, &tv) != 0) answer_stored(r, false);
}

static void poll_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    poll_stored(arg);
}

static void poll_stored(fe_req *r)
{
    or_state *st = r->state;
    const char *params[] = {st->id, st->res->xml_sha256, st->names};
    fe_pg_query(sql_stored, 3, params, stored_answer, r);
}

/* The attachment names as a PostgreSQL array literal. */
static char *names_literal(const or_job *j)
{
    struct evbuffer *b = evbuffer_new();
    if (!b) return NULL;
    evbuffer_add(b, "{", 1);
    for (size_t i = 0; i < j->natt; i++) {
        evbuffer_add(b, i ? ",\"" : "\"", i ? 2 : 1);
        for (const char *c = j->atts[i].name; *c; c++) {
            if (*c == '"' || *c == '\\') evbuffer_add(b, "\\", 1);
            evbuffer_add(b, c, 1);
        }
        evbuffer_add(b, "\"", 1);
    }
    evbuffer_add(b, "}", 1);
    size_t n = evbuffer_get_length(b);
    char *out = malloc(n + 1);
    if (out) {
        evbuffer_remove(b, out, n);
        out[n] = '\0';
    }
    evbuffer_free(b);
    return out;
}

static void queued(fe_queue_outcome outcome, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (outcome == FE_QUEUE_FAILED) {
        fv_warn("req %s: OpenRosa submission %s could not be queued or spooled", r->req_id, st->id);
        fe_reply_error(r, 503, "queue_unavailable", "the submission could not be queued; retry later");
        return;
    }
    if (outcome == FE_QUEUE_ID_TAKEN) {
        fe_metrics_submission_rejected();
        fe_reply_error(r, 409, "id_conflict",
                       "a submission with this instanceID was already sent by another user or to "
                       "another deployment");
        return;
    }
    struct evhttp_connection *evcon = evhttp_request_get_connection(r->ev);
    struct event_base *base = evcon ? evhttp_connection_get_base(evcon) : NULL;
    if (outcome != FE_QUEUED_REDIS || fe_cfg.openrosa_store_wait_ms == 0 || !fe_pg_up() || !base) {
        answer_stored(r, false);
        return;
    }
    st->step = OR_WAIT;
    st->names = names_literal(st->res);
    st->timer = evtimer_new(base, poll_cb, r);
    if (!st->names || !st->timer) {
        answer_stored(r, false);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &st->wait_until);
    st->wait_until.tv_sec += fe_cfg.openrosa_store_wait_ms / 1000;
    st->wait_until.tv_nsec += (long)(fe_cfg.openrosa_store_wait_ms % 1000) * 1000000L;
    if (st->wait_until.tv_nsec >= 1000000000L)
        st->wait_until.tv_sec++, st->wait_until.tv_nsec -= 1000000000L;
    struct timeval tv = {0, POLL_MS * 1000};
    if (evtimer_add(st->timer, &tv) != 0) answer_stored(r, false);
}

static void enqueue(fe_req *r)
{
    or_state *st = r->state;
    or_job *j = st->res;
    st->step = OR_QUEUE;
    fv_envelope e = {0};
    memcpy(e.id, st->id, sizeof e.id);
    memcpy(e.survey_id, st->survey_id, sizeof e.survey_id);
    e.survey_version = st->survey_version;
    memcpy(e.deployment_id, st->base.dep_id, sizeof e.deployment_id);
    memcpy(e.submitted_by, r->user->id, sizeof e.submitted_by);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    e.received_at_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    e.data = j->inst.data;
    e.data_len = strlen(j->inst.data);
    e.verified = st->verified;
    e.rversion = st->verified ? st->rversion : -1;
    e.openrosa = j->openrosa;
    e.openrosa_len = strlen(j->openrosa);
    char key[FE_SUBID_KEY_MAX], value[FE_SUBID_VALUE_MAX];
    bool claim = fe_subid_enabled();
    if (claim) fe_subid_claim_of(st->id, r->user->id, st->base.dep_id, key, value);
    fe_queue_submit(&e, claim ? key : NULL, claim ? value : NULL, fe_cfg.submission_claim_ttl_s, queued,
                    r);
}

/* $1 id, $2 the XML's SHA-256 (hex), $3 deployment, $4 survey: the stored response of this
 * instance (NULL when none) and whether it is this very instance; the organisation's stored
 * attachment bytes (org_storage, kept by triggers: migration 026). */
static const char sql_precheck[] =
    "SELECT r.id IS NOT NULL, r.xml_sha256 IS NOT DISTINCT FROM decode($2, 'hex') AND r.deployment_id = $3::uuid "
    "       AND r.deleted_at IS NULL, "
    "       fv_org_storage_bytes((SELECT s.org_id FROM surveys s WHERE s.id = $4::uuid)) "
    "FROM (SELECT 1) one LEFT JOIN responses r ON r.id = $1::uuid";

static void prechecked(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (res->status == FE_PG_OK && PQntuples(res->res) == 1) {
        bool exists = PQgetvalue(res->res, 0, 0)[0] == 't';
        bool same = PQgetvalue(res->res, 0, 1)[0] == 't';
        if (exists && !same) {
            fe_metrics_submission_rejected();
            fe_reply_error(r, 409, "instance_conflict",
                           "a submission with this instanceID was already stored with other "
                           "content; an edit carries meta/deprecatedID and a new instanceID");
            return;
        }
        long long used = atoll(PQgetvalue(res->res, 0, 2));
        if (used + (long long)st->res->att_bytes > (long long)fe_cfg.openrosa_org_quota_mb * 1048576LL) {
            fe_reply_error(r, 413, "attachment_quota", "the organisation's attachment quota is used up");
            return;
        }
    } else if (res->status == FE_PG_SQL) {
        fe_reply_pg_failure(r, res);
        return;
    }
    /* PostgreSQL down or slow: queued all the same (the worker keeps an id conflict apart) */
    enqueue(r);
}

/* An edit (meta/deprecatedID names the instance it replaces, ODK Collect's "edit a sent
 * form"): a new version of the response that holds the deprecated instance in this deployment,
 * by the rule of PATCH /v1/responses/{id} (fv_response_edit_verdict: its managers; its submitter
 * when it was rejected, which resubmits it), in one statement with its history row, its XML and
 * its attachments (a name sent again replaces the file). The same edit sent again (its
 * instanceID already holds this XML) is 201 again. Edits need PostgreSQL (as PATCH does).
 * Steps: the response and its org (sql_edit_target), the org's data key (fe_datakeys_current),
 * the XML and attachments sealed under it on a pool thread (the SEAL job: fv_orseal_field, bound
 * to the response), then sql_edit.
 * $1 caller, $2 mfa, $3 deployment, $4 deprecatedID, $5 answers, $6 the XML's SHA-256 (hex),
 * $7 new instanceID, $8 survey version, $9 the sealed openrosa field (fv_orseal.h), $10 the
 * response the field was sealed for (another response holding the instance meanwhile: 404). */
static const char sql_edit[] =
    "WITH t AS (SELECT r FROM responses r WHERE r.deployment_id = $3::uuid AND r.instance_id = $4 "
    "           AND r.deleted_at IS NULL AND r.id = $10::uuid LIMIT 1), "
    "     again AS (SELECT 1 FROM responses r WHERE r.deployment_id = $3::uuid AND r.instance_id = $7 "
    "               AND r.xml_sha256 = decode($6, 'hex') AND r.deleted_at IS NULL "
    "               AND fv_can_read_response($1, r.id)), "
    "     v AS (SELECT (t.r).id AS id, fv_response_edit_verdict($1, t.r, $2::boolean) AS verdict, "
    "                  fv_can_resubmit($1, t.r) AS resub FROM t), "
    "     u AS (UPDATE responses x SET data = $5::jsonb, xml_sha256 = decode($6, 'hex'), instance_id = $7, "
    "             answers_kv = ($9::jsonb->>'key_version')::int, "
    "             survey_version = $8::int, version = x.version + 1, updated_at = now(), "
    "             status = CASE WHEN v.resub THEN CASE WHEN d.approval_stages > 0 THEN 'pending' "
    "                                                  ELSE 'final' END ELSE x.status END, "
    "             stage = CASE WHEN v.resub THEN CASE WHEN d.approval_stages > 0 THEN 1 ELSE 0 END "
    "                          ELSE x.stage END, "
    "             rejection_message = CASE WHEN v.resub THEN NULL ELSE x.rejection_message END "
    "           FROM v, deployments d "
    "           WHERE x.id = v.id AND v.verdict = 'ok' AND d.id = x.deployment_id "
    "             AND NOT EXISTS (SELECT 1 FROM again) "
    "           RETURNING x, v.resub, d.id AS dep), "
    "     e AS (INSERT INTO response_events (response_id, version, action, stage, status, actor, data, "
    "                                        location, state) "
    "           SELECT (u.x).id, (u.x).version, CASE WHEN u.resub THEN 'resubmit' ELSE 'edit' END, "
    "                  (u.x).stage, (u.x).status, $1, (u.x).data, (u.x).location, to_jsonb(u.x) FROM u), "
    "     o AS (SELECT $9::jsonb AS f), "
    "     xb AS (INSERT INTO response_xml (response_id, sha256, org_id, key_version, body) "
    "            SELECT (u.x).id, decode($6, 'hex'), s.org_id, (o.f->>'key_version')::int, "
    "                   decode(o.f->>'xml_body', 'base64') "
    "            FROM u JOIN surveys s ON s.id = (u.x).survey_id, o "
    "            ON CONFLICT (response_id, sha256) DO NOTHING), "
    "     att AS (SELECT a FROM o, jsonb_array_elements(o.f->'attachments') a), "
    "     b AS (INSERT INTO attachment_blobs (org_id, sha256, size, key_version, data) "
    "           SELECT DISTINCT ON (a->>'sha256') s.org_id, decode(a->>'sha256', 'hex'), (a->>'size')::bigint, "
    "                  (o.f->>'key_version')::int, decode(a->>'data', 'base64') "
    "           FROM att, o, u JOIN surveys s ON s.id = (u.x).survey_id "
    "           ON CONFLICT (org_id, sha256) DO NOTHING), "
    "     f AS (INSERT INTO response_attachments (response_id, name, content_type, size, sha256, org_id, "
    "                                             questions) "
    "           SELECT (u.x).id, a->>'name', a->>'content_type', (a->>'size')::bigint, "
    "                  decode(a->>'sha256', 'hex'), s.org_id, "
    "                  ARRAY(SELECT jsonb_array_elements_text(COALESCE(a->'questions', '[]'::jsonb))) "
    "           FROM u JOIN surveys s ON s.id = (u.x).survey_id, att "
    "           ON CONFLICT (response_id, name) DO UPDATE SET content_type = EXCLUDED.content_type, "
    "              size = EXCLUDED.size, sha256 = EXCLUDED.sha256, questions = EXCLUDED.questions) "
    "SELECT CASE WHEN EXISTS (SELECT 1 FROM again) THEN 'ok' "
    "            ELSE COALESCE((SELECT verdict FROM v), 'hidden') END, NULL";

/* $1 deployment, $2 deprecatedID: the deployment's org and the response holding the instance. */
static const char sql_edit_target[] =
    "SELECT s.org_id::text, (SELECT r.id::text FROM responses r WHERE r.deployment_id = d.id "
    "                        AND r.instance_id = $2 AND r.deleted_at IS NULL LIMIT 1) "
    "FROM deployments d JOIN surveys s ON s.id = d.survey_id WHERE d.id = $1::uuid";

static void edited(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    if (!fe_verdict_answer(r, res, "submission to edit")) return;
    fe_reply_openrosa(r, 201, "", "full submission upload was successful!");
}

/* The SEAL job is done (st->res holds its results): the edit itself. */
static void edit_send(fe_req *r)
{
    or_state *st = r->state;
    or_job *j = st->res;
    char ver[16];
    snprintf(ver, sizeof ver, "%d", st->survey_version);
    const char *params[] = {r->user->id,
                            fe_verdict_mfa(r),
                            st->base.dep_id,
                            j->inst.deprecated_id,
                            j->sealed_data ? j->sealed_data : j->inst.data,
                            j->xml_sha256,
                            j->inst.instance_id,
                            ver,
                            j->sealed,
                            j->seal_rid[0] ? j->seal_rid : NULL};
    fe_pg_query(sql_edit, 10, params, edited, r);
}

static void start_job(fe_req *r, or_job *j, or_step step);

static void edit_keyed(const unsigned char *key, int version, const char *err, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (!key) {
        fv_warn("openrosa edit: %s", err ? err : "no data key");
        fe_reply_error_retry(r, 503, "db_unavailable",
                             "the organisation's data key is unavailable; retry later", 30);
        return;
    }
    or_job *j = st->res;
    memcpy(j->seal_key, key, sizeof j->seal_key);
    j->seal_version = version;
    j->sealing = true;
    st->res = NULL;
    start_job(r, j, OR_SEAL); /* takes j */
}

static void edit_target(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such deployment");
        return;
    }
    or_job *j = st->res;
    snprintf(j->seal_org, sizeof j->seal_org, "%s", PQgetvalue(res->res, 0, 0));
    if (PQgetisnull(res->res, 0, 1)) {
        /* no response holds the instance: sql_edit answers as for any edit it may not make */
        j->seal_rid[0] = '\0';
        if (!(j->sealed = strdup("{\"attachments\": []}"))) {
            fe_reply_oom(r);
            return;
        }
        edit_send(r);
        return;
    }
    snprintf(j->seal_rid, sizeof j->seal_rid, "%s", PQgetvalue(res->res, 0, 1));
    fe_datakeys_current(j->seal_org, edit_keyed, r);
}

static void edit(fe_req *r)
{
    or_state *st = r->state;
    or_job *j = st->res;
    if (!fe_pg_up()) {
        fe_reply_error_retry(
            r, 503, "db_unavailable",
            "the database is unavailable; an edit (meta/deprecatedID) needs it; retry later", 30);
        return;
    }
    const char *params[] = {st->base.dep_id, j->inst.deprecated_id};
    fe_pg_query(sql_edit_target, 2, params, edit_target, r);
}

/* The typed instance is ready: its answers' problems, the degraded-mode bound, the precheck. */
static void instance_ready(fe_req *r)
{
    or_state *st = r->state;
    or_job *j = st->res;
    if (j->errs.n > 0) {
        fe_metrics_submission_rejected();
        fe_reply_form_errors(r, "the answers are invalid", &j->errs);
        return;
    }
    if (j->inst.deprecated_id[0]) {
        edit(r);
        return;
    }
    if (!response_id(st->base.dep_id, j->inst.instance_id, st->id)) {
        fe_reply_oom(r);
        return;
    }
    if (!fe_pg_up()) {
        if (j->att_bytes > (size_t)fe_cfg.openrosa_degraded_max_bytes) {
            fe_reply_error_retry(r, 503, "db_unavailable",
                                 "the database is unavailable and the attachments are too large to "
                                 "queue; retry later",
                                 30);
            return;
        }
        enqueue(r);
        return;
    }
    st->step = OR_PRECHECK;
    const char *params[] = {st->id, j->xml_sha256, st->base.dep_id, st->survey_id};
    fe_pg_query(sql_precheck, 4, params, prechecked, r);
}

static const char sql_version[] =
    "SELECT version, definition::text, public_key_bytes FROM survey_versions "
    "WHERE survey_id = $1::uuid AND xform_version = $2 AND xform_form_id = $3 "
    "ORDER BY version DESC LIMIT 1";

static void version_found(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1) {
        fe_reply_error(r, 404, "not_found", "no such form version");
        return;
    }
    or_job *j = st->res;
    if (PQgetisnull(res->res, 0, 2) != (j->key_bytes == 0)) {
        fe_metrics_submission_rejected();
        fe_reply_error(r, 400, "bad_submission",
                       j->key_bytes
                           ? "that form version is not encrypted: an encrypted submission is refused"
                           : "that form version is encrypted: answers in clear are refused");
        return;
    }
    st->survey_version = atoi(PQgetvalue(res->res, 0, 0));
    st->res = NULL;
    free(j->definition);
    if (!(j->definition = strdup(PQgetvalue(res->res, 0, 1)))) {
        job_free(j);
        fe_reply_oom(r);
        return;
    }
    start_job(r, j, OR_INSTANCE);
}

static void job_done(void *p, bool ran, void *owner)
{
    fe_req *r = owner;
    or_state *st = r->state;
    or_job *j = p;
    st->work = NULL;
    if (!ran) {
        fe_reply_error(r, 503, "overloaded", "the server is shutting down; retry later");
        return;
    }
    if (j->status) {
        fe_metrics_submission_rejected();
        if (j->status == 503) fe_reply_oom(r);
        else if (j->status == 404) fe_reply_error(r, 404, "not_found", j->why);
        else if (j->status == 500) fe_reply_error(r, 500, "internal", j->why);
        else fe_reply_error(r, j->status, "bad_submission", j->why);
        return;
    }
    /* Take the results: the job is freed after this returns (fe_workpool.h). */
    or_job *mine = calloc(1, sizeof *mine);
    if (!mine) {
        fe_reply_oom(r);
        return;
    }
    *mine = *j;
    memset(j, 0, sizeof *j); /* every pointer now mine's */
    job_free(st->res);
    st->res = mine;
    if (mine->sealing) {
        edit_send(r);
        return;
    }
    if (mine->typed) {
        instance_ready(r);
        return;
    }
    /* an instance of another version of the form */
    if (!fe_pg_up()) {
        fe_reply_error_retry(
            r, 503, "db_unavailable",
            "the database is unavailable and this form version is not cached; retry later", 30);
        return;
    }
    st->step = OR_VERSION;
    const char *params[] = {st->survey_id, mine->inst.version, mine->inst.form_id};
    fe_pg_query(sql_version, 3, params, version_found, r);
}

/* Hands j (takes ownership) to the work pool. */
static void start_job(fe_req *r, or_job *j, or_step step)
{
    or_state *st = r->state;
    st->step = step;
    st->work = fe_work_submit_bulk(j, job_run, job_done, job_free, r);
    if (!st->work) {
        job_free(j);
        fe_reply_pool_full(r);
    }
}

static const char sql_generated[] =
    "SELECT xform_form_id, xform_version FROM survey_versions "
    "WHERE survey_id = $1::uuid AND version = $2::int AND xform IS NOT NULL";

static void generated_found(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    or_state *st = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    if (PQntuples(res->res) != 1 || PQgetisnull(res->res, 0, 0)) {
        fe_reply_error(r, 404, "not_found", "this deployment's survey has no XForm");
        return;
    }
    or_job *j = st->res;
    st->res = NULL;
    snprintf(j->cur_form_id, sizeof j->cur_form_id, "%s", PQgetvalue(res->res, 0, 0));
    snprintf(j->cur_version, sizeof j->cur_version, "%s", PQgetvalue(res->res, 0, 1));
    start_job(r, j, OR_PARTS);
}

static void permitted(fe_req *r, const fe_dep_info *dep, bool verified, long long rversion)
{
    or_state *st = r->state;
    if (!dep) {
        fe_reply_error_retry(r, 503, "db_unavailable",
                             "the database is unavailable and this deployment's form is not cached; "
                             "retry later",
                             30);
        return;
    }
    memcpy(st->survey_id, dep->survey_id, sizeof st->survey_id);
    st->survey_version = dep->version;
    st->verified = verified;
    st->rversion = rversion;
    or_job *j = calloc(1, sizeof *j);
    if (!j || !(j->definition = strdup(dep->definition))) {
        free(j);
        fe_reply_oom(r);
        return;
    }
    fv_form_errors_init(&j->errs);
    j->key_bytes = dep->key_bytes;
    /* read from the definition when the cache entry was built (fe_depcache.h): no parse here */
    memcpy(j->cur_form_id, dep->xform_form_id, sizeof j->cur_form_id);
    memcpy(j->cur_version, dep->xform_version, sizeof j->cur_version);
    j->body = st->body;
    st->body = NULL;
    memcpy(j->boundary, st->boundary, sizeof j->boundary);
    j->max_parts = (size_t)fe_cfg.openrosa_max_parts;
    if (j->cur_form_id[0]) {
        start_job(r, j, OR_PARTS);
        return;
    }
    /* A survey defined in JSON: its generated XForm's id and version are the version's columns
     * (its definition does not carry them). */
    st->res = j;
    if (!fe_pg_up()) {
        fe_reply_error_retry(
            r, 503, "db_unavailable",
            "the database is unavailable and this form's XForm is not cached; retry later", 30);
        return;
    }
    char ver[16];
    snprintf(ver, sizeof ver, "%d", st->survey_version);
    const char *params[] = {st->survey_id, ver};
    fe_pg_query(sql_generated, 2, params, generated_found, r);
}

void fe_orsubmit_post(fe_req *r)
{
    announce(r);
    if (!or_caller(r) || !or_version(r)) return;
    if (!fe_verdict_id(r, 0, "deployment")) return;
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(r->ev), "Content-Type");
    char boundary[FV_MULTIPART_MAX_BOUNDARY + 1];
    if (!fv_multipart_boundary(ct, boundary, sizeof boundary)) {
        fe_reply_error(r, 400, "bad_submission",
                       "send the submission as multipart/form-data with a valid boundary");
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    if (evbuffer_get_length(in) == 0) {
        fe_reply_error(r, 400, "bad_submission", "the submission body is empty");
        return;
    }
    or_state *st = calloc(1, sizeof *st);
    if (!st || !(st->body = evbuffer_new())) {
        free(st);
        fe_reply_oom(r);
        return;
    }
    r->state = st;
    r->state_free = state_free;
    memcpy(st->boundary, boundary, sizeof boundary);
    evbuffer_add_buffer(st->body, in); /* moved, not copied */
    st->base.unverified_bytes = evbuffer_get_length(st->body);
    st->step = OR_LOOKUP;
    fe_submit_lookup(r, &st->base, permitted);
}
