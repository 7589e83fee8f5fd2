/* fv-decrypt: opens the encrypted responses of an organisation export (docs/api/exports.md) offline
 * with the survey's RSA private key, which never reaches the server (common/fv_odkcrypt.h).
 *
 *   fv-decrypt --key priv.pem EXPORT.zip -o DIR
 *
 * Reads the zip as a stream (libarchive): org/surveys.jsonl (each survey's formID, which the
 * signature covers), then each surveys/<id>/responses.jsonl. Every response whose `encrypted` is
 * true is opened: key unwrapped (RSA-OAEP-SHA256), files decrypted (AES-256-CFB, PKCS#7), the
 * signature checked, the XML's formID and instanceID compared with the envelope's. Only then is
 * anything of it written:
 *   DIR/surveys/<survey>/<response>/submission.xml and its media files (names without ".enc")
 *   DIR/surveys/<survey>/responses.jsonl   (only for a survey with encrypted responses) one line per opened response: {"id", "survey_id",
 *        "instanceID", "form_id", "version", "submitted_by", "status", "created_at", "deleted_at",
 *        "answers": {"path": "text" or ["text", ...] for a repeat}, "media": [names]}
 *   DIR/surveys/<survey>/responses.csv     the same as CSV (fv_csv: every cell quoted, formulas
 *        neutralised): id, instanceID, submitted_by, status, created_at, then one column per
 *        answer path in first-seen order (a repeated path: its JSON array)
 * A response that does not open (wrong key, a flipped byte, a signature that does not match) is
 * named on stderr with why, nothing of it is written, and the exit status is 1 once the rest is
 * done. Usage and I/O errors exit 2. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "fv_csv.h"
#include "fv_id.h"
#include "fv_json.h"
#include "fv_odkcrypt.h"
#include "fv_odkxml.h"

#define FVD_MAX_LINE ((size_t)1 << 30) /* one JSON line of the export (a response with its media) */
#define FVD_MAX_SURVEYS 100000

typedef struct fvd_survey {
    char id[FV_UUID_STRLEN + 1];
    char *form_id; /* owned */
} fvd_survey;

/* The run: what was read so far and the counts. */
typedef struct fvd {
    fv_odkcrypt_privkey *key;
    const char *out;
    fvd_survey *surveys;
    size_t nsurveys, capsurveys;
    /* the survey being written */
    char cur[FV_UUID_STRLEN + 1];
    FILE *jsonl;
    char **cols; /* answer paths in first-seen order (owned) */
    size_t ncols, capcols;
    long opened, failed, clear;
} fvd;

static int mkdirs(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0700) == -1 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0700) == -1 && errno != EEXIST ? -1 : 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    int rc = fclose(f);
    return w == len && rc == 0 ? 0 : -1;
}

static const char *survey_form_id(const fvd *d, const char *sid)
{
    for (size_t i = 0; i < d->nsurveys; i++)
        if (strcmp(d->surveys[i].id, sid) == 0) return d->surveys[i].form_id;
    return NULL;
}

static void col_add(fvd *d, const char *path)
{
    for (size_t i = 0; i < d->ncols; i++)
        if (strcmp(d->cols[i], path) == 0) return;
    if (d->ncols == d->capcols) {
        size_t nc = d->capcols ? d->capcols * 2 : 32;
        char **n = realloc(d->cols, nc * sizeof *n);
        if (!n) return;
        d->cols = n, d->capcols = nc;
    }
    char *p = strdup(path);
    if (p) d->cols[d->ncols++] = p;
}

/* The answers of x as a JSON object: a path seen once is its text, a repeated one an array. */
static void answers_json(fv_jgen *j, const fv_odkxml *x)
{
    fv_jgen_map_open(j);
    for (size_t i = 0; i < x->n; i++) {
        bool first = true;
        size_t count = 0;
        for (size_t k = 0; k < x->n; k++)
            if (strcmp(x->f[k].path, x->f[i].path) == 0) {
                if (k < i) first = false;
                count++;
            }
        if (!first) continue;
        fv_jgen_key(j, x->f[i].path);
        if (count == 1) {
            fv_jgen_str(j, x->f[i].value);
            continue;
        }
        fv_jgen_array_open(j);
        for (size_t k = i; k < x->n; k++)
            if (strcmp(x->f[k].path, x->f[i].path) == 0) fv_jgen_str(j, x->f[k].value);
        fv_jgen_array_close(j);
    }
    fv_jgen_map_close(j);
}

static int survey_open(fvd *d);

/* Opens one response (its export line, parsed) of survey sid and writes it. */
static void one_response(fvd *d, const char *sid, yajl_val resp)
{
    const char *rid = fv_json_get_str(resp, "id");
    if (!rid || !fv_id_valid(rid)) {
        fprintf(stderr, "fv-decrypt: survey %s: a response without a valid id is skipped\n", sid);
        d->failed++;
        return;
    }
    if (!YAJL_IS_TRUE(fv_json_get(resp, "encrypted"))) {
        d->clear++;
        return;
    }
    yajl_val env = fv_json_get(resp, "data");
    const char *iid = fv_json_get_str(env, "instanceID");
    const char *form_id = survey_form_id(d, sid);
    char why[512];
    fv_odkcrypt_opened o;
    fv_odkxml x = {0};
    if (!form_id) {
        snprintf(why, sizeof why, "its survey is not in org/surveys.jsonl");
        goto failed;
    }
    if (!fv_odkcrypt_open(d->key, env, form_id, &o, why, sizeof why)) goto failed;
    if (!fv_odkxml_parse((const char *)o.xml.data, o.xml.len, &x, why, sizeof why)) {
        fv_odkcrypt_opened_free(&o);
        goto failed;
    }
    if (strcmp(x.form_id, form_id) != 0 || strcmp(x.instance_id, iid) != 0) {
        snprintf(why, sizeof why, "submission.xml's formID or instanceID is not the envelope's");
        fv_odkcrypt_opened_free(&o);
        fv_odkxml_free(&x);
        goto failed;
    }
    char dir[4096], path[4300];
    snprintf(dir, sizeof dir, "%s/surveys/%s/%s", d->out, sid, rid);
    bool io = mkdirs(dir) == 0;
    snprintf(path, sizeof path, "%s/submission.xml", dir);
    io = io && write_file(path, o.xml.data, o.xml.len) == 0;
    for (size_t i = 0; io && i < o.nmedia; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, o.media[i].name);
        io = write_file(path, o.media[i].data, o.media[i].len) == 0;
    }
    if (io && !d->jsonl && survey_open(d) != 0) io = false;
    fv_jgen *j = fv_jgen_new();
    if (io && j) {
        fv_jgen_map_open(j);
        fv_jgen_key(j, "id"), fv_jgen_str(j, rid);
        fv_jgen_key(j, "survey_id"), fv_jgen_str(j, sid);
        fv_jgen_key(j, "instanceID"), fv_jgen_str(j, iid);
        fv_jgen_key(j, "form_id"), fv_jgen_str(j, x.form_id);
        fv_jgen_key(j, "version"), fv_jgen_str(j, x.version);
        static const char *copied[] = {"submitted_by", "status", "created_at", "deleted_at"};
        for (size_t i = 0; i < sizeof copied / sizeof copied[0]; i++) {
            fv_jgen_key(j, copied[i]);
            fv_jgen_str(j, fv_json_get_str(resp, copied[i]));
        }
        fv_jgen_key(j, "answers");
        answers_json(j, &x);
        fv_jgen_key(j, "media");
        fv_jgen_array_open(j);
        for (size_t i = 0; i < o.nmedia; i++) fv_jgen_str(j, o.media[i].name);
        fv_jgen_array_close(j);
        fv_jgen_map_close(j);
        size_t len;
        const char *text = fv_jgen_buf(j, &len);
        io = text && fwrite(text, 1, len, d->jsonl) == len && fputc('\n', d->jsonl) != EOF;
        for (size_t i = 0; io && i < x.n; i++) col_add(d, x.f[i].path);
    }
    fv_jgen_free(j);
    fv_odkcrypt_opened_free(&o);
    fv_odkxml_free(&x);
    if (!io) {
        snprintf(why, sizeof why, "cannot write its files under %.400s", dir);
        goto failed;
    }
    d->opened++;
    return;
failed:
    fprintf(stderr, "fv-decrypt: response %s (instanceID %s) of survey %s does not open: %s\n", rid,
            iid ? iid : "?", sid, why);
    d->failed++;
}

/* Writes DIR/surveys/<cur>/responses.csv from the responses.jsonl just written. */
static int write_csv(fvd *d)
{
    char jp[4096], cp[4096];
    snprintf(jp, sizeof jp, "%s/surveys/%s/responses.jsonl", d->out, d->cur);
    snprintf(cp, sizeof cp, "%s/surveys/%s/responses.csv", d->out, d->cur);
    FILE *in = fopen(jp, "r"), *out = fopen(cp, "wb");
    int rc = in && out ? 0 : -1;
    fv_csv_buf b = {0};
    static const char *fixed[] = {"id", "instanceID", "submitted_by", "status", "created_at"};
    for (size_t i = 0; rc == 0 && i < 5; i++) fv_csv_cell(&b, fixed[i], strlen(fixed[i]), i == 0);
    for (size_t i = 0; rc == 0 && i < d->ncols; i++)
        fv_csv_cell(&b, d->cols[i], strlen(d->cols[i]), false);
    fv_csv_end_row(&b);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (rc == 0 && (n = getline(&line, &cap, in)) > 0) {
        fv_json_error e;
        yajl_val v = fv_json_parse_n(line, (size_t)n - (line[n - 1] == '\n'), &e);
        if (!v) {
            rc = -1;
            break;
        }
        for (size_t i = 0; i < 5; i++) {
            const char *s = fv_json_get_str(v, fixed[i]);
            fv_csv_cell(&b, s, s ? strlen(s) : 0, i == 0);
        }
        yajl_val ans = fv_json_get(v, "answers");
        for (size_t i = 0; i < d->ncols; i++) {
            yajl_val a = fv_json_get(ans, d->cols[i]);
            if (a && YAJL_IS_STRING(a)) {
                fv_csv_cell(&b, a->u.string, strlen(a->u.string), false);
            } else if (a) {
                char *t = fv_json_text(a);
                fv_csv_cell(&b, t, t ? strlen(t) : 0, false);
                free(t);
            } else {
                fv_csv_cell(&b, NULL, 0, false);
            }
        }
        fv_csv_end_row(&b);
        yajl_tree_free(v);
        if (b.len > (1u << 20)) {
            if (fwrite(b.p, 1, b.len, out) != b.len) rc = -1;
            fv_csv_buf_reset(&b);
        }
    }
    if (rc == 0 && b.len && fwrite(b.p, 1, b.len, out) != b.len) rc = -1;
    free(line);
    fv_csv_buf_free(&b);
    if (in) fclose(in);
    if (out && fclose(out) != 0) rc = -1;
    return rc;
}

static int survey_end(fvd *d)
{
    int rc = 0;
    if (d->jsonl) {
        if (fclose(d->jsonl) != 0) rc = -1;
        d->jsonl = NULL;
        if (rc == 0) rc = write_csv(d);
        if (rc != 0) fprintf(stderr, "fv-decrypt: cannot write the responses of survey %s\n", d->cur);
    }
    for (size_t i = 0; i < d->ncols; i++) free(d->cols[i]);
    d->ncols = 0;
    d->cur[0] = '\0';
    return rc;
}

/* Opens DIR/surveys/<cur>/responses.jsonl, at the survey's first encrypted response (a survey
 * in clear gets nothing). */
static int survey_open(fvd *d)
{
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/surveys/%s", d->out, d->cur);
    snprintf(path, sizeof path, "%s/responses.jsonl", dir);
    if (mkdirs(dir) != 0 || !(d->jsonl = fopen(path, "wb"))) {
        fprintf(stderr, "fv-decrypt: cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

typedef enum { FVD_SKIP, FVD_SURVEYS, FVD_RESPONSES } fvd_kind;

static int one_line(fvd *d, fvd_kind kind, const char *sid, const char *line, size_t len)
{
    if (len == 0) return 0;
    fv_json_error e;
    yajl_val v = fv_json_parse_n(line, len, &e);
    if (!v) {
        fprintf(stderr, "fv-decrypt: a line of %s is not JSON (%s): is this a Fieldvault export?\n",
                kind == FVD_SURVEYS ? "org/surveys.jsonl" : "responses.jsonl", e.msg);
        return -1;
    }
    if (kind == FVD_SURVEYS) {
        const char *id = fv_json_get_str(v, "id"), *fid = fv_json_get_str(v, "form_id");
        if (id && fv_id_valid(id) && d->nsurveys < FVD_MAX_SURVEYS) {
            if (d->nsurveys == d->capsurveys) {
                size_t nc = d->capsurveys ? d->capsurveys * 2 : 16;
                fvd_survey *n = realloc(d->surveys, nc * sizeof *n);
                if (!n) {
                    yajl_tree_free(v);
                    return -1;
                }
                d->surveys = n, d->capsurveys = nc;
            }
            fvd_survey *s = &d->surveys[d->nsurveys++];
            snprintf(s->id, sizeof s->id, "%s", id);
            s->form_id = strdup(fid ? fid : id);
        }
    } else {
        one_response(d, sid, v);
    }
    yajl_tree_free(v);
    return 0;
}

/* Reads the current entry line by line. */
static int read_lines(fvd *d, struct archive *a, fvd_kind kind, const char *sid)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    char chunk[1 << 16];
    la_ssize_t n;
    int rc = buf ? 0 : -1;
    while (rc == 0 && (n = archive_read_data(a, chunk, sizeof chunk)) > 0) {
        for (la_ssize_t i = 0; rc == 0 && i < n; i++) {
            if (chunk[i] == '\n') {
                rc = one_line(d, kind, sid, buf, len);
                len = 0;
                continue;
            }
            if (len + 1 >= cap) {
                if (cap >= FVD_MAX_LINE) {
                    fprintf(stderr, "fv-decrypt: a line of the export is over %zu bytes\n",
                            FVD_MAX_LINE);
                    rc = -1;
                    break;
                }
                char *nb = realloc(buf, cap * 2);
                if (!nb) {
                    rc = -1;
                    break;
                }
                buf = nb, cap *= 2;
            }
            buf[len++] = chunk[i];
        }
    }
    if (rc == 0 && n < 0) {
        fprintf(stderr, "fv-decrypt: reading the zip: %s\n", archive_error_string(a));
        rc = -1;
    }
    if (rc == 0) rc = one_line(d, kind, sid, buf, len);
    free(buf);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: fv-decrypt --key PRIVATE_KEY.pem EXPORT.zip -o DIR\n"
               "Decrypts the encrypted responses of a Fieldvault organisation export offline.\n"
               "  -k, --key FILE   the survey's RSA private key (PEM, no passphrase)\n"
               "  -o, --out DIR    where to write surveys/<id>/responses.{jsonl,csv} and files\n"
               "  -h, --help       this text\n"
               "  -V, --version    the version\n"
               "Exit status: 0 all opened, 1 some response did not open (named on stderr),\n"
               "2 usage or I/O error.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    const char *keyfile = NULL, *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "k:o:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'k': keyfile = optarg; break;
        case 'o': out = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("fv-decrypt %s\n", FV_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!keyfile || !out || optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *zip = argv[optind];
    char why[512];
    fvd d = {.out = out};
    if (!(d.key = fv_odkcrypt_privkey_load(keyfile, why, sizeof why))) {
        fprintf(stderr, "fv-decrypt: %s\n", why);
        return 2;
    }
    if (mkdirs(out) != 0) {
        fprintf(stderr, "fv-decrypt: cannot create %s: %s\n", out, strerror(errno));
        fv_odkcrypt_privkey_free(d.key);
        return 2;
    }
    struct archive *a = archive_read_new();
    archive_read_support_format_zip(a);
    int rc = 0;
    if (archive_read_open_filename(a, zip, 1 << 16) != ARCHIVE_OK) {
        fprintf(stderr, "fv-decrypt: %s: %s\n", zip, archive_error_string(a));
        rc = -1;
    }
    struct archive_entry *ent;
    bool manifest = false;
    while (rc == 0) {
        int r = archive_read_next_header(a, &ent);
        if (r == ARCHIVE_EOF) break;
        if (r != ARCHIVE_OK) {
            fprintf(stderr, "fv-decrypt: %s: %s\n", zip, archive_error_string(a));
            rc = -1;
            break;
        }
        const char *name = archive_entry_pathname(ent);
        char sid[FV_UUID_STRLEN + 1] = "";
        if (name && strcmp(name, "manifest.json") == 0) manifest = true;
        if (name && strcmp(name, "org/surveys.jsonl") == 0) {
            rc = read_lines(&d, a, FVD_SURVEYS, NULL);
        } else if (name && strncmp(name, "surveys/", 8) == 0 &&
                   strlen(name) == 8 + FV_UUID_STRLEN + 16 &&
                   strcmp(name + 8 + FV_UUID_STRLEN, "/responses.jsonl") == 0) {
            memcpy(sid, name + 8, FV_UUID_STRLEN);
            if (!fv_id_valid(sid)) continue;
            snprintf(d.cur, sizeof d.cur, "%s", sid);
            rc = read_lines(&d, a, FVD_RESPONSES, sid);
            if (survey_end(&d) != 0) rc = -1;
        }
    }
    if (rc == 0 && !manifest) {
        fprintf(stderr, "fv-decrypt: %s has no manifest.json: not a whole Fieldvault export\n", zip);
        rc = -1;
    }
    archive_read_free(a);
    fv_odkcrypt_privkey_free(d.key);
    for (size_t i = 0; i < d.nsurveys; i++) free(d.surveys[i].form_id);
    free(d.surveys);
    free(d.cols);
    if (rc != 0) return 2;
    fprintf(stderr,
            "fv-decrypt: %ld response(s) opened, %ld did not open, %ld in clear left as they are\n",
            d.opened, d.failed, d.clear);
    return d.failed ? 1 : 0;
}
