/* The job kind 'export' (migration 015): the whole organisation as one zip, written as a stream.
 *
 * What. The zip holds org.json, branches, teams, members (fv_membership_json as the export's
 * creator sees them: nobody else's email), sites and their history, the org's audit log, the
 * surveys, and per survey (surveys/<id>/): every definition version, the deployments, the
 * responses (deleted ones too) as JSON lines and as CSV (fv_export_csv_columns: one column per
 * question, select_multiple one per choice; cells by common/fv_csv.c), their history, the OpenRosa
 * instances' XML and their attachments (base64, one per batch: max_rows); last,
 * manifest.json with each file's rows, bytes and SHA-256 (of the file as extracted).
 *
 * How, in bounded memory. Each file is read in keyset-paged batches (LIMIT export_step_rows,
 * a cursor per file kept here), each row written at once into libarchive, whose zip writer
 * (deflate, sizes in data descriptors: it never seeks) calls out_write(), which fills one chunk
 * of export_chunk_bytes and, when full, INSERTs it into export_chunks in the step's
 * transaction. Memory is one chunk, one batch's PGresult, libarchive's deflate state and the
 * manifest (one line per file). Nothing grows with the number of responses.
 *
 * Steps and takeover. A zip stream cannot be resumed from a checkpoint in another process: the
 * builder (below, `cur`) lives in this worker between steps. Each step first checks that the
 * builder is this claim's (job id and attempt) and that every chunk it wrote is committed (their
 * count in export_chunks); otherwise (a takeover after a crash, or a step rolled back) it starts
 * the zip again from nothing, deleting the chunks of earlier attempts in the same transaction.
 * So a finished export is always one whole zip from one claim. The export reads the org across
 * several transactions (one per step): rows changed while it is built may appear as they were
 * before or after; each file agrees with its manifest. */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "fv_answers.h"
#include "fv_crypto.h"
#include "fv_csv.h"
#include "fv_datakey.h"
#include "fv_json.h"
#include "fv_log.h"
#include "fv_pgutil.h"
#include "fv_pii.h"
#include "wk_config.h"
#include "wk_job_kinds.h"
#include "wk_seal.h"

/* A file's rows: $1 the scope (org or survey id), $2 the last row's key (NULL: from the start),
 * $3 the batch size, $4 the export's creator, $5 (CSV only) the columns; columns: key, line. */
/* F_XML and F_BLOB: a line (columns 1..6: the object without its closing brace, a value sealed
 * under the org's data key (migration 026), its org, the wrapped key, the id and the SHA-256 of
 * its associated data) completed here with the opened value: "xml" as a JSON string, or
 * "content_base64". */
/* F_PII: an F_LINES line whose "name" and "email" may be sealed (migration 028's fv_pii_json),
 * opened here under the global data key. */
typedef enum { F_LINES, F_CSV, F_XML, F_BLOB, F_PII } file_kind;
typedef struct file_spec {
    const char *name; /* file name in its folder */
    file_kind kind;
    const char *sql;
    long max_rows; /* rows per batch at most (0: the step's budget): attachments are read one by one */
} file_spec;

static const file_spec org_files[] = {
    {"org.jsonl", F_LINES,
     "SELECT o.id::text, (fv_org_json(o, $4::uuid) || jsonb_build_object('created_at', fv_ts(o.created_at)))::text "
     "FROM orgs o WHERE o.id = $1::uuid AND $2::text IS NULL AND $3::int > 0",
     0},
    {"branches.jsonl", F_LINES,
     "SELECT b.id::text, jsonb_build_object('id', b.id, 'parent_id', b.parent_id, 'name', b.name, "
     "       'created_at', fv_ts(b.created_at))::text "
     "FROM branches b WHERE b.org_id = $1::uuid AND ($2::uuid IS NULL OR b.id > $2::uuid) "
     "ORDER BY b.id LIMIT $3::int",
     0},
    {"teams.jsonl", F_LINES,
     "SELECT t.id::text, (to_jsonb(t) - 'created_at' || jsonb_build_object('created_at', fv_ts(t.created_at)))::text "
     "FROM teams t WHERE t.org_id = $1::uuid AND ($2::uuid IS NULL OR t.id > $2::uuid) "
     "ORDER BY t.id LIMIT $3::int",
     0},
    {"members.jsonl", F_PII,
     "SELECT m.id::text, fv_membership_json(m, u, $4::uuid)::text "
     "FROM memberships m JOIN users u ON u.id = m.user_id "
     "WHERE m.org_id = $1::uuid AND ($2::uuid IS NULL OR m.id > $2::uuid) ORDER BY m.id LIMIT $3::int",
     0},
    {"sites.jsonl", F_LINES,
     "SELECT s.id::text, (fv_site_json(s, true) || jsonb_build_object('deleted_at', fv_ts(s.deleted_at)))::text "
     "FROM sites s WHERE s.org_id = $1::uuid AND ($2::uuid IS NULL OR s.id > $2::uuid) "
     "ORDER BY s.id LIMIT $3::int",
     0},
    {"site_history.jsonl", F_LINES,
     "SELECT v.site_id::text || '/' || v.version, "
     "       (fv_site_version_json(v, s, $4::uuid) || jsonb_build_object('site_id', v.site_id))::text "
     "FROM site_versions v JOIN sites s ON s.id = v.site_id WHERE s.org_id = $1::uuid "
     "AND ($2::text IS NULL OR (v.site_id, v.version) > (split_part($2, '/', 1)::uuid, split_part($2, '/', 2)::int)) "
     "ORDER BY v.site_id, v.version LIMIT $3::int",
     0},
    {"audit.jsonl", F_LINES,
     "SELECT a.id::text, jsonb_build_object('id', a.id::text, 'actor', a.actor, 'action', a.action, "
     "       'target_type', a.target_type, 'target_id', a.target_id, 'address', host(a.address), "
     "       'at', fv_ts(a.at), 'detail', a.detail)::text "
     "FROM audit a WHERE a.org_id = $1::uuid AND ($2::bigint IS NULL OR a.id > $2::bigint) "
     "ORDER BY a.id LIMIT $3::int",
     0},
    {"surveys.jsonl", F_LINES,
     "SELECT s.id::text, fv_survey_json(s, $4::uuid, false)::text "
     "FROM surveys s WHERE s.org_id = $1::uuid AND ($2::uuid IS NULL OR s.id > $2::uuid) "
     "ORDER BY s.id LIMIT $3::int",
     0},
};
#define N_ORG_FILES (sizeof org_files / sizeof org_files[0])

/* Responses are paged on responses_survey_created (survey_id, created_at, id). */
#define RESP_KEY \
    "to_char(x.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') || '|' || x.id"
#define RESP_AFTER                                                                                \
    "($2::text IS NULL OR (x.created_at, x.id) > ((split_part($2, '|', 1) || 'Z')::timestamptz, " \
    "split_part($2, '|', 2)::uuid))"

static const file_spec survey_files[] = {
    {"definitions.jsonl", F_LINES,
     "SELECT v.version::text, jsonb_build_object('survey_id', v.survey_id, 'version', v.version, "
     "       'definition', v.definition, 'created_by', v.created_by, 'created_at', fv_ts(v.created_at), "
     "       'xform_version', v.xform_version, 'public_key', v.public_key)::text "
     "FROM survey_versions v WHERE v.survey_id = $1::uuid AND ($2::int IS NULL OR v.version > $2::int) "
     "AND $4::uuid IS NOT NULL ORDER BY v.version LIMIT $3::int",
     0},
    {"deployments.jsonl", F_LINES,
     "SELECT d.id::text, fv_deployment_json(d)::text FROM deployments d "
     "WHERE d.survey_id = $1::uuid AND ($2::uuid IS NULL OR d.id > $2::uuid) AND $4::uuid IS NOT NULL "
     "ORDER BY d.id LIMIT $3::int",
     0},
    {"responses.jsonl", F_LINES,
     "SELECT " RESP_KEY
     ", (fv_response_json(x, true) || jsonb_build_object('deleted_at', fv_ts(x.deleted_at)))::text "
     "FROM responses x WHERE x.survey_id = $1::uuid AND " RESP_AFTER " AND $4::uuid IS NOT NULL "
     "ORDER BY x.created_at, x.id LIMIT $3::int",
     0},
    {"responses.csv", F_CSV,
     /* the cells of the questions are the worker's: the answers are sealed (migration 027) */
     "SELECT " RESP_KEY
     ", jsonb_build_object('fixed', to_jsonb(ARRAY[x.id::text, x.survey_version::text, "
     "       x.status, x.submitted_by::text, fv_ts(x.collected_at), fv_ts(x.created_at), "
     "       fv_ts(x.updated_at), fv_ts(x.deleted_at)]), 'data', x.data, 'location', x.location, "
     "       '_fv', fv_answers_hint(x.id, (SELECT s.org_id FROM surveys s WHERE s.id = x.survey_id), "
     "                              x.answers_kv))::text "
     "FROM responses x WHERE x.survey_id = $1::uuid AND " RESP_AFTER " AND $4::uuid IS NOT NULL "
     "ORDER BY x.created_at, x.id LIMIT $3::int",
     0},
    {"history.jsonl", F_LINES,
     "SELECT e.id::text, (fv_response_version_json(e, true) || jsonb_build_object('response_id', e.response_id))::text "
     "FROM response_events e JOIN responses x ON x.id = e.response_id "
     "WHERE x.survey_id = $1::uuid AND ($2::bigint IS NULL OR e.id > $2::bigint) AND $4::uuid IS NOT NULL "
     "ORDER BY e.id LIMIT $3::int",
     0},
    /* OpenRosa submissions (migration 023): each instance XML byte for byte, and each attachment
     * with its content in base64, one per batch (max_rows 1: a batch holds one file, whatever
     * export_step_rows is). */
    {"instances.jsonl", F_XML,
     "SELECT x.id::text, jsonb_build_object('response_id', x.id, 'instance_id', x.instance_id)::text, "
     "       b.body, b.org_id::text, fv_dk_wrapped(b.org_id, b.key_version), x.id::text, "
     "       encode(b.sha256, 'hex') "
     "FROM responses x JOIN response_xml b ON b.response_id = x.id AND b.sha256 = x.xml_sha256 "
     "WHERE x.survey_id = $1::uuid AND NOT fv_openrosa_purged(x) "
     "AND ($2::uuid IS NULL OR x.id > $2::uuid) "
     "AND $4::uuid IS NOT NULL ORDER BY x.id LIMIT $3::int",
     0},
    {"attachments.jsonl", F_BLOB,
     "SELECT a.response_id::text || '/' || a.name, jsonb_build_object('response_id', a.response_id, "
     "       'name', a.name, 'content_type', a.content_type, 'size', a.size, "
     "       'sha256', encode(a.sha256, 'hex'))::text, "
     "       b.data, b.org_id::text, fv_dk_wrapped(b.org_id, b.key_version), b.org_id::text, "
     "       encode(b.sha256, 'hex') "
     "FROM response_attachments a JOIN responses x ON x.id = a.response_id "
     "JOIN attachment_blobs b ON b.org_id = a.org_id AND b.sha256 = a.sha256 "
     "WHERE x.survey_id = $1::uuid AND $4::uuid IS NOT NULL AND fv_attachment_visible(x, a.name) "
     "AND ($2::text IS NULL "
     "  OR (a.response_id, a.name) > (split_part($2, '/', 1)::uuid, substr($2, 38))) "
     "ORDER BY a.response_id, a.name LIMIT $3::int",
     1},
};
#define N_SURVEY_FILES (sizeof survey_files / sizeof survey_files[0])

/* The fixed CSV columns before the questions' (fv_export_csv_row). */
static const char *const csv_fixed[] = {"id",           "survey_version", "status",     "submitted_by",
                                        "collected_at", "created_at",     "updated_at", "deleted_at",
                                        "latitude",     "longitude"};

static const char sql_csv_columns[] =
    "SELECT COALESCE(jsonb_agg(jsonb_build_object('name', name, 'question', question, 'kind', kind, "
    "       'choice', choice) ORDER BY ord), '[]'::jsonb)::text FROM fv_export_csv_columns($1::uuid)";
static const char sql_next_survey[] =
    "SELECT s.id::text FROM surveys s WHERE s.org_id = $1::uuid AND ($2::uuid IS NULL OR s.id > $2::uuid) "
    "ORDER BY s.id LIMIT 1";
static const char sql_chunk[] =
    "INSERT INTO export_chunks (export_id, seq, data) VALUES ($1::uuid, $2::int, $3::bytea)";
static const char sql_count_chunks[] =
    "SELECT count(*)::text FROM export_chunks WHERE export_id = $1::uuid";
static const char sql_restart[] =
    "WITH d AS (DELETE FROM export_chunks WHERE export_id = $1::uuid) "
    "UPDATE exports SET attempt = $2::int, state = 'building' WHERE id = $1::uuid AND state = 'building'";
static const char sql_progress[] =
    "UPDATE jobs SET progress = jsonb_build_object('files', $2::bigint, 'rows', $3::bigint, "
    "'bytes', $4::bigint, 'surveys', $5::bigint) WHERE id = $1::uuid";
static const char sql_ready[] =
    "UPDATE exports SET state = 'ready', size = $2::bigint, chunks = $3::int, sha256 = $4, "
    "expires_at = now() + $5::int * interval '1 second' WHERE id = $1::uuid AND state = 'building'";

typedef enum { PH_ORG, PH_SURVEYS, PH_MANIFEST, PH_DONE } phase;

/* The builder of one claim of one export job (owned by this file: `cur`). */
typedef struct builder {
    char id[40], org[40], creator[40];
    int attempts;
    wk_store *st; /* borrowed for the step under way */
    struct archive *a;
    bool failed;  /* out_write could not store a chunk (err says why); later bytes are dropped */
    bool discard; /* builder_free: the archive is being closed only to release it */
    char err[512];
    /* the chunk being filled */
    unsigned char *chunk;
    size_t fill, cap;
    long long seq;       /* chunks INSERTed so far */
    long long zip_bytes; /* bytes of zip written so far */
    EVP_MD_CTX *zip_sha; /* of the whole zip */
    /* where the export is */
    phase ph;
    size_t file;     /* index in org_files or survey_files */
    bool open;       /* the file is open in the archive */
    char *key;       /* the last row's key in the open file (owned), NULL at its start */
    char survey[40]; /* the survey of PH_SURVEYS ("" before the first) */
    char *csv_cols;  /* the open CSV's columns (jsonb text, owned) */
    EVP_MD_CTX *file_sha;
    long long file_rows, file_bytes;
    /* totals and the manifest's entries (one JSON object per file, comma-separated) */
    long long files, rows, surveys;
    char *manifest;
    size_t mlen, mcap;
    fv_csv_buf csv;
} builder;

static builder *cur;

static void builder_free(builder *b)
{
    if (!b) return;
    /* archive_write_free closes an open entry first, flushing its deflate stream through
     * out_write; libarchive 3.6's zip writer calls deflateEnd only when that flush succeeds, and
     * never once the archive is FATAL (a write that failed). So out_write never fails (it drops
     * bytes after a failure, and all of them here): zlib's state is always released. */
    b->discard = true;
    if (b->a) archive_write_free(b->a);
    free(b->chunk);
    free(b->key);
    free(b->csv_cols);
    free(b->manifest);
    EVP_MD_CTX_free(b->zip_sha);
    EVP_MD_CTX_free(b->file_sha);
    fv_csv_buf_free(&b->csv);
    free(b);
}

static bool store_chunk(builder *b)
{
    if (b->fill == 0) return true;
    if (!b->st) {
        b->failed = true;
        return false;
    }
    char seq[24];
    snprintf(seq, sizeof seq, "%lld", b->seq);
    const char *params[] = {b->id, seq, (const char *)b->chunk};
    int lengths[] = {0, 0, (int)b->fill}, formats[] = {0, 0, 1};
    PGresult *res = wk_store_exec_bin(b->st, sql_chunk, 3, params, lengths, formats);
    bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        fv_pgutil_error(b->st->conn, res, b->err, sizeof b->err);
        b->failed = true;
    }
    PQclear(res);
    if (ok) {
        b->seq++;
        b->fill = 0;
    }
    return ok;
}

/* libarchive's output: the zip's bytes, into chunks. */
static la_ssize_t out_write(struct archive *a, void *arg, const void *buf, size_t len)
{
    (void)a;
    builder *b = arg;
    /* never -1: see builder_free. A failure is b->failed, checked after each archive call. */
    if (b->failed || b->discard) return (la_ssize_t)len;
    const unsigned char *p = buf;
    size_t left = len;
    EVP_DigestUpdate(b->zip_sha, buf, len);
    while (left > 0) {
        size_t n = b->cap - b->fill < left ? b->cap - b->fill : left;
        memcpy(b->chunk + b->fill, p, n);
        b->fill += n;
        p += n;
        left -= n;
        if (b->fill == b->cap && !store_chunk(b)) return (la_ssize_t)len;
    }
    b->zip_bytes += (long long)len;
    return (la_ssize_t)len;
}

static builder *builder_new(const wk_job *job)
{
    builder *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    snprintf(b->id, sizeof b->id, "%s", job->id);
    b->attempts = job->attempts;
    b->cap = (size_t)wk_cfg.export_chunk_bytes;
    b->chunk = malloc(b->cap);
    b->zip_sha = EVP_MD_CTX_new();
    b->file_sha = EVP_MD_CTX_new();
    b->a = archive_write_new();
    if (!b->chunk || !b->zip_sha || !b->file_sha || !b->a ||
        EVP_DigestInit_ex(b->zip_sha, EVP_sha256(), NULL) != 1 ||
        archive_write_set_format_zip(b->a) != ARCHIVE_OK ||
        archive_write_set_bytes_per_block(b->a, 0) != ARCHIVE_OK ||
        archive_write_open(b->a, b, NULL, out_write, NULL) != ARCHIVE_OK) {
        builder_free(b);
        return NULL;
    }
    return b;
}

/* Appends text to the manifest. */
static bool manifest_add(builder *b, const char *text, size_t len)
{
    if (b->mlen + len + 1 > b->mcap) {
        size_t cap = b->mcap ? b->mcap : 1024;
        while (cap < b->mlen + len + 1) cap *= 2;
        char *p = realloc(b->manifest, cap);
        if (!p) return false;
        b->manifest = p;
        b->mcap = cap;
    }
    memcpy(b->manifest + b->mlen, text, len);
    b->mlen += len;
    b->manifest[b->mlen] = '\0';
    return true;
}

static bool entry_open(builder *b, const char *path)
{
    struct archive_entry *e = archive_entry_new();
    if (!e) return false;
    archive_entry_set_pathname(e, path);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, time(NULL), 0);
    /* no size: the zip writer puts the sizes in a data descriptor after the data (a stream) */
    int rc = archive_write_header(b->a, e);
    archive_entry_free(e);
    if (rc != ARCHIVE_OK || b->failed) {
        if (!b->failed) snprintf(b->err, sizeof b->err, "zip: %s", archive_error_string(b->a));
        return false;
    }
    return true;
}

static bool entry_write(builder *b, const char *p, size_t len, bool hashed)
{
    if (len == 0) return true;
    la_ssize_t n = archive_write_data(b->a, p, len);
    if (n < 0 || (size_t)n != len || b->failed) {
        if (!b->failed) snprintf(b->err, sizeof b->err, "zip: %s", archive_error_string(b->a));
        return false;
    }
    if (hashed) {
        EVP_DigestUpdate(b->file_sha, p, len);
        b->file_bytes += (long long)len;
    }
    return true;
}

static void hex_digest(EVP_MD_CTX *md, char out[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    EVP_DigestFinal_ex(md, d, &n);
    for (unsigned i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* The path of the current file. */
static void file_path(const builder *b, char *out, size_t n)
{
    if (b->ph == PH_ORG) snprintf(out, n, "org/%s", org_files[b->file].name);
    else snprintf(out, n, "surveys/%s/%s", b->survey, survey_files[b->file].name);
}

static const file_spec *file_cur(const builder *b)
{
    return b->ph == PH_ORG ? &org_files[b->file] : &survey_files[b->file];
}

static PGresult *query1(builder *b, const char *sql, int n, const char *const *params)
{
    PGresult *res = wk_store_exec(b->st, sql, n, params);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) return res;
    fv_pgutil_error(b->st->conn, res, b->err, sizeof b->err);
    PQclear(res);
    return NULL;
}

/* Opens the current file: its zip entry, its digest, and for a CSV its columns and header. */
static bool file_open(builder *b)
{
    char path[256];
    file_path(b, path, sizeof path);
    if (!entry_open(b, path)) return false;
    EVP_DigestInit_ex(b->file_sha, EVP_sha256(), NULL);
    b->file_rows = b->file_bytes = 0;
    free(b->key);
    b->key = NULL;
    b->open = true;
    if (file_cur(b)->kind != F_CSV) return true;
    const char *params[] = {b->survey};
    PGresult *res = query1(b, sql_csv_columns, 1, params);
    if (!res) return false;
    free(b->csv_cols);
    b->csv_cols = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (!b->csv_cols) return false;
    yajl_val cols = yajl_tree_parse(b->csv_cols, NULL, 0);
    if (!YAJL_IS_ARRAY(cols)) {
        yajl_tree_free(cols);
        snprintf(b->err, sizeof b->err, "CSV columns unreadable");
        return false;
    }
    fv_csv_buf_reset(&b->csv);
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof csv_fixed / sizeof csv_fixed[0]; i++)
        ok = fv_csv_cell(&b->csv, csv_fixed[i], strlen(csv_fixed[i]), i == 0);
    for (size_t i = 0; ok && i < cols->u.array.len; i++) {
        const char *name = fv_json_get_str(cols->u.array.values[i], "name");
        ok = fv_csv_cell(&b->csv, name, name ? strlen(name) : 0, false);
    }
    yajl_tree_free(cols);
    ok = ok && fv_csv_end_row(&b->csv) && entry_write(b, b->csv.p, b->csv.len, true);
    return ok;
}

/* Closes the current file and adds its manifest line. */
static bool file_close(builder *b)
{
    if (archive_write_finish_entry(b->a) != ARCHIVE_OK || b->failed) {
        if (!b->failed) snprintf(b->err, sizeof b->err, "zip: %s", archive_error_string(b->a));
        return false;
    }
    char path[256], sha[65], esc[600], line[900];
    file_path(b, path, sizeof path);
    hex_digest(b->file_sha, sha);
    fv_json_escape(path, strlen(path), esc, sizeof esc);
    int n = snprintf(line, sizeof line,
                     "%s{\"path\":\"%s\",\"rows\":%lld,\"bytes\":%lld,\"sha256\":\"%s\"}",
                     b->files ? ",\n  " : "\n  ", esc, b->file_rows, b->file_bytes, sha);
    b->open = false;
    b->files++;
    return manifest_add(b, line, (size_t)n);
}

/* The text of value v as PostgreSQL's ->> gives it (NULL for a JSON null or none); objects and
 * arrays as compact JSON into *owned (the caller frees). */
static const char *cell_text(yajl_val v, char **owned)
{
    *owned = NULL;
    if (!v || YAJL_IS_NULL(v)) return NULL;
    if (YAJL_IS_STRING(v)) return YAJL_GET_STRING(v);
    if (YAJL_IS_NUMBER(v)) return YAJL_GET_NUMBER(v);
    if (YAJL_IS_TRUE(v)) return "true";
    if (YAJL_IS_FALSE(v)) return "false";
    return (*owned = fv_json_text(v));
}

/* One CSV row of a response: the fixed cells from SQL, the location's and the questions' (the
 * columns of fv_export_csv_columns, migration 015: a choice column is "1"/"0" for a
 * multiple-choice answer holding the choice or not) from its answers opened here. */
static bool csv_row(builder *b, const char *key, const char *line)
{
    char why[512];
    size_t n = 0;
    fv_dkring *ring = wk_seal_ring();
    char *text = ring ? fv_answers_finish(line, strlen(line), ring, &n, why, sizeof why)
                      : NULL; /* owned */
    if (!text) {
        snprintf(b->err, sizeof b->err, "row %.40s: %.400s", key,
                 ring ? why : "data keys not initialised");
        return false;
    }
    yajl_val v = fv_json_parse_n(text, n, NULL),
             cols = fv_json_parse_n(b->csv_cols, strlen(b->csv_cols), NULL);
    fv_answers_free_text(text);
    yajl_val fixed = fv_json_get(v, "fixed"), data = fv_json_get(v, "data"),
             loc = fv_json_get(v, "location");
    bool ok = YAJL_IS_ARRAY(fixed) && YAJL_IS_ARRAY(cols);
    if (!ok) snprintf(b->err, sizeof b->err, "CSV row unreadable");
    fv_csv_buf_reset(&b->csv);
    char *owned = NULL;
    for (size_t i = 0; ok && i < fixed->u.array.len; i++) {
        const char *s = YAJL_GET_STRING(fixed->u.array.values[i]);
        ok = fv_csv_cell(&b->csv, s, s ? strlen(s) : 0, i == 0);
    }
    for (int i = 0; ok && i < 2; i++) {
        const char *s = cell_text(YAJL_IS_OBJECT(loc) ? fv_json_get(loc, i ? "lon" : "lat") : NULL,
                                  &owned);
        ok = fv_csv_cell(&b->csv, s, s ? strlen(s) : 0, false);
        free(owned);
    }
    for (size_t i = 0; ok && i < cols->u.array.len; i++) {
        yajl_val c = cols->u.array.values[i];
        const char *q = fv_json_get_str(c, "question"), *kind = fv_json_get_str(c, "kind");
        yajl_val a = q && YAJL_IS_OBJECT(data) ? fv_json_get(data, q) : NULL;
        const char *s = NULL;
        if (kind && !strcmp(kind, "choice")) {
            const char *choice = fv_json_get_str(c, "choice");
            if (YAJL_IS_ARRAY(a)) {
                s = "0";
                for (size_t k = 0; choice && k < a->u.array.len; k++) {
                    const char *e = YAJL_GET_STRING(a->u.array.values[k]);
                    if (e && !strcmp(e, choice)) s = "1";
                }
            }
            ok = fv_csv_cell(&b->csv, s, s ? strlen(s) : 0, false);
        } else {
            s = cell_text(a, &owned);
            ok = fv_csv_cell(&b->csv, s, s ? strlen(s) : 0, false);
            free(owned);
        }
    }
    if (v) yajl_tree_free(v);
    if (cols) yajl_tree_free(cols);
    return ok && fv_csv_end_row(&b->csv) && entry_write(b, b->csv.p, b->csv.len, true);
}

/* Writes one line of an F_XML or F_BLOB file (see file_kind): the object from SQL, then the
 * value opened under the org's data key. A value that does not open fails the export, naming
 * the row (never garbage in the zip). */
static bool sealed_row(builder *b, file_kind kind, const PGresult *res, int row)
{
    const char *line = PQgetvalue(res, row, 1);
    size_t llen = strlen(line);
    if (llen < 2 || line[llen - 1] != '}') {
        snprintf(b->err, sizeof b->err, "%s: unexpected line", PQgetvalue(res, row, 0));
        return false;
    }
    size_t slen = 0;
    unsigned char *sealed = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, 2),
                                            &slen);       /* ours: PQfreemem */
    unsigned char *pt = sealed ? malloc(slen + 1) : NULL; /* ours */
    char *text = NULL;                                    /* ours: the value as JSON text */
    bool ok = false;
    if (!pt) {
        snprintf(b->err, sizeof b->err, "out of memory");
        goto done;
    }
    long n;
    int v = fv_dk_version(sealed, slen);
    if (v < 0) { /* in clear, from before migration 026, not yet sealed by the sweep */
        memcpy(pt, sealed, slen);
        n = (long)slen;
    } else {
        char scope[FV_DATAKEY_SCOPE_MAX], aad[FV_DK_AAD_MAX], why[256];
        snprintf(scope, sizeof scope, "org:%s", PQgetvalue(res, row, 3));
        fv_dkring *ring = wk_seal_ring();
        const unsigned char *key = ring ? fv_dkring_get(ring, scope, v) : NULL;
        if (!key && ring && !PQgetisnull(res, row, 4))
            key = fv_dkring_put(ring, scope, v, PQgetvalue(res, row, 4), why, sizeof why);
        if (kind == F_XML) fv_dk_aad_xml(PQgetvalue(res, row, 5), PQgetvalue(res, row, 6), aad);
        else fv_dk_aad_blob(PQgetvalue(res, row, 5), PQgetvalue(res, row, 6), aad);
        n = key ? fv_dk_open(key, aad, sealed, slen, pt) : -1;
        if (n < 0) {
            snprintf(b->err, sizeof b->err, "%s of %s does not open under its data key (v%d): %s",
                     kind == F_XML ? "the XML" : "the attachment", PQgetvalue(res, row, 0), v,
                     key ? "tampered or moved" : "key unavailable");
            goto done;
        }
    }
    size_t cap = kind == F_XML ? 6 * (size_t)n + 3 : 4 * (((size_t)n + 2) / 3) + 3;
    text = malloc(cap);
    if (!text) {
        snprintf(b->err, sizeof b->err, "out of memory");
        goto done;
    }
    size_t tlen;
    if (kind == F_XML) {
        text[0] = '"';
        tlen = 1 + fv_json_escape((const char *)pt, (size_t)n, text + 1, cap - 2);
    } else {
        text[0] = '"';
        tlen = 1 + fv_b64_encode(pt, (size_t)n, text + 1);
    }
    text[tlen++] = '"';
    const char *name = kind == F_XML ? ", \"xml\": " : ", \"content_base64\": ";
    ok = entry_write(b, line, llen - 1, true) && entry_write(b, name, strlen(name), true) &&
         entry_write(b, text, tlen, true) && entry_write(b, "}\n", 2, true);
done:
    if (pt) OPENSSL_cleanse(pt, slen);
    free(pt);
    free(text);
    if (sealed) PQfreemem(sealed);
    return ok;
}

/* A line of JSON: the responses it carries opened (fv_answers_finish: their "_fv" hints), then
 * written with its newline. A value that does not open fails the export, naming its response. */
static bool lines_row(builder *b, const char *key, const char *line)
{
    size_t len = strlen(line);
    if (!memmem(line, len, "\"_fv\"", 5))
        return entry_write(b, line, len, true) && entry_write(b, "\n", 1, true);
    char why[512];
    size_t n = 0;
    fv_dkring *ring = wk_seal_ring();
    char *out = ring ? fv_answers_finish(line, len, ring, &n, why, sizeof why) : NULL; /* owned */
    if (!out) {
        snprintf(b->err, sizeof b->err, "row %.40s: %.400s", key,
                 ring ? why : "data keys not initialised");
        return false;
    }
    bool ok = entry_write(b, out, n, true) && entry_write(b, "\n", 1, true);
    fv_answers_free_text(out);
    return ok;
}

/* Writes one line of an F_PII file: the names and emails in it opened. One that does not open
 * fails the export, naming the row. */
static bool pii_row(builder *b, const char *line)
{
    static const char *const keys[] = {"name", "email", NULL};
    fv_dkring *ring = wk_seal_ring();
    if (!ring) {
        snprintf(b->err, sizeof b->err, "data keys: not initialised");
        return false;
    }
    char *out = fv_pii_json_open(ring, line, strlen(line), keys, b->err, sizeof b->err); /* ours */
    bool ok = out && entry_write(b, out, strlen(out), true) && entry_write(b, "\n", 1, true);
    free(out);
    return ok;
}

/* One batch of the open file: up to limit rows. Returns rows read, or -1. */
static long file_batch(builder *b, long limit)
{
    const file_spec *f = file_cur(b);
    char lim[24];
    snprintf(lim, sizeof lim, "%ld", limit);
    const char *scope = b->ph == PH_ORG ? b->org : b->survey;
    const char *params[] = {scope, b->key, lim, b->creator, b->csv_cols};
    /* a query names $1..$3 and, when it needs them, $4 and $5: pass just those */
    int np = strstr(f->sql, "$5") ? 5 : strstr(f->sql, "$4") ? 4 : 3;
    PGresult *res = query1(b, f->sql, np, params);
    if (!res) return -1;
    long n = PQntuples(res);
    for (long i = 0; i < n; i++) {
        const char *line = PQgetvalue(res, (int)i, 1);
        bool ok = f->kind == F_CSV     ? csv_row(b, PQgetvalue(res, (int)i, 0), line)
                  : f->kind == F_PII   ? pii_row(b, line)
                  : f->kind != F_LINES ? sealed_row(b, f->kind, res, (int)i)
                                       : lines_row(b, PQgetvalue(res, (int)i, 0), line);
        if (!ok) {
            PQclear(res);
            return -1;
        }
        b->file_rows++;
        b->rows++;
    }
    if (n > 0) {
        free(b->key);
        b->key = strdup(PQgetvalue(res, (int)n - 1, 0));
        if (!b->key) n = -1;
    }
    PQclear(res);
    return n;
}

/* Moves to the next survey (b->survey), or to the manifest when none is left. */
static bool next_survey(builder *b)
{
    const char *params[] = {b->org, b->survey[0] ? b->survey : NULL};
    PGresult *res = query1(b, sql_next_survey, 2, params);
    if (!res) return false;
    if (PQntuples(res) == 0) {
        b->ph = PH_MANIFEST;
    } else {
        snprintf(b->survey, sizeof b->survey, "%s", PQgetvalue(res, 0, 0));
        b->ph = PH_SURVEYS;
        b->file = 0;
        b->surveys++;
    }
    PQclear(res);
    return true;
}

/* The last entry: manifest.json (not listed in itself), then the zip's end. */
static bool write_manifest(builder *b)
{
    if (!entry_open(b, "manifest.json")) return false;
    char head[400];
    int n = snprintf(
        head, sizeof head,
        "{\n \"format\": \"fieldvault-export/1\",\n \"export_id\": \"%s\",\n \"org_id\": \"%s\",\n"
        " \"created_by\": \"%s\",\n \"surveys\": %lld,\n \"files\": [",
        b->id, b->org, b->creator, b->surveys);
    if (!entry_write(b, head, (size_t)n, false) ||
        !entry_write(b, b->manifest ? b->manifest : "", b->mlen, false) ||
        !entry_write(b, "\n ]\n}\n", 6, false))
        return false;
    if (archive_write_finish_entry(b->a) != ARCHIVE_OK || archive_write_close(b->a) != ARCHIVE_OK ||
        b->failed) {
        if (!b->failed) snprintf(b->err, sizeof b->err, "zip: %s", archive_error_string(b->a));
        return false;
    }
    return store_chunk(b);
}

/* Runs the export on until about budget rows were written or it is done. */
static bool advance(builder *b, long budget)
{
    while (budget > 0 && b->ph != PH_DONE) {
        if (b->ph == PH_MANIFEST) {
            if (!write_manifest(b)) return false;
            b->ph = PH_DONE;
            break;
        }
        if (!b->open && !file_open(b)) return false;
        long max = file_cur(b)->max_rows, lim = max > 0 && max < budget ? max : budget;
        long n = file_batch(b, lim);
        if (n < 0) return false;
        budget -= n > 0 ? n : 1;
        if (n > 0 && budget <= 0) break; /* the file may have more */
        if (n == lim) continue;          /* a full batch below the budget: more may follow */
        if (!file_close(b)) return false;
        if (b->ph == PH_ORG) {
            if (++b->file == N_ORG_FILES && !next_survey(b)) return false;
        } else if (++b->file == N_SURVEY_FILES && !next_survey(b)) {
            return false;
        }
    }
    return true;
}

static wk_job_rc fail_rc(wk_store *st, char *err, size_t errlen, const char *why)
{
    snprintf(err, errlen, "export: %s", why && *why ? why : "out of memory");
    /* PostgreSQL trouble is retried (the builder starts again: its chunks were rolled back) */
    return st->conn && PQstatus(st->conn) == CONNECTION_OK &&
                   PQtransactionStatus(st->conn) != PQTRANS_INERROR
               ? WK_JOB_FAILED
               : WK_JOB_RETRY;
}

wk_job_rc wk_job_export_step(wk_store *st, const wk_job *job, int items, char *err, size_t errlen)
{
    (void)items; /* an export's step is counted in rows: export_step_rows */
    char attempts[16];
    snprintf(attempts, sizeof attempts, "%d", job->attempts);
    /* Is the builder this claim's, with every chunk it wrote committed? */
    if (cur && (strcmp(cur->id, job->id) != 0 || cur->attempts != job->attempts)) {
        builder_free(cur);
        cur = NULL;
    }
    if (cur) {
        const char *params[] = {job->id};
        PGresult *res = wk_store_exec(st, sql_count_chunks, 1, params);
        bool same = res && PQresultStatus(res) == PGRES_TUPLES_OK &&
                    atoll(PQgetvalue(res, 0, 0)) == cur->seq;
        bool failed = !res || PQresultStatus(res) != PGRES_TUPLES_OK;
        if (failed) fv_pgutil_error(st->conn, res, err, errlen);
        PQclear(res);
        if (failed) return WK_JOB_RETRY;
        if (!same) {
            fv_info("export %s: a step was rolled back; the zip starts again", job->id);
            cur->st = NULL;
            builder_free(cur);
            cur = NULL;
        }
    }
    if (!cur) {
        const char *params[] = {job->id, attempts};
        PGresult *res = wk_store_exec(st, sql_restart, 2, params);
        bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok) fv_pgutil_error(st->conn, res, err, errlen);
        bool building = ok && strcmp(PQcmdTuples(res), "1") == 0;
        PQclear(res);
        if (!ok) return WK_JOB_RETRY;
        if (!building) {
            snprintf(err, errlen,
                     "export: no export in state 'building' for this job (withdrawn by a purge or "
                     "an erasure in the organisation, migration 019?)");
            return WK_JOB_FAILED;
        }
        cur = builder_new(job);
        if (!cur) {
            snprintf(err, errlen, "export: out of memory");
            return WK_JOB_RETRY;
        }
        snprintf(cur->org, sizeof cur->org, "%s", job->org_id);
        snprintf(cur->creator, sizeof cur->creator, "%s", job->created_by);
    }
    cur->st = st;
    bool ok = advance(cur, wk_cfg.export_step_rows);
    cur->st = NULL;
    if (!ok) {
        wk_job_rc rc = fail_rc(st, err, errlen, cur->err);
        builder_free(cur); /* a failed or retried step: the next claim or step starts again */
        cur = NULL;
        return rc;
    }
    char files[24], rows[24], bytes[24], surveys[24];
    snprintf(files, sizeof files, "%lld", cur->files);
    snprintf(rows, sizeof rows, "%lld", cur->rows);
    snprintf(bytes, sizeof bytes, "%lld", cur->zip_bytes);
    snprintf(surveys, sizeof surveys, "%lld", cur->surveys);
    const char *pp[] = {job->id, files, rows, bytes, surveys};
    PGresult *res = wk_store_exec(st, sql_progress, 5, pp);
    ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) fv_pgutil_error(st->conn, res, err, errlen);
    PQclear(res);
    if (!ok) return WK_JOB_RETRY;
    if (cur->ph != PH_DONE) return WK_JOB_MORE;
    char sha[65], chunks[24], ttl[24];
    hex_digest(cur->zip_sha, sha);
    snprintf(chunks, sizeof chunks, "%lld", cur->seq);
    snprintf(ttl, sizeof ttl, "%d", wk_cfg.export_ttl_s);
    const char *rp[] = {job->id, bytes, chunks, sha, ttl};
    res = wk_store_exec(st, sql_ready, 5, rp);
    ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) fv_pgutil_error(st->conn, res, err, errlen);
    /* no row: the export is no longer 'building' (withdrawn meanwhile, migration 019) */
    bool withdrawn = ok && strcmp(PQcmdTuples(res), "0") == 0;
    PQclear(res);
    builder_free(cur); /* done (or a lost COMMIT: then the next claim builds it again) */
    cur = NULL;
    if (withdrawn) {
        snprintf(err, errlen,
                 "export: withdrawn while it was built (a purge or an erasure in the "
                 "organisation)");
        return WK_JOB_FAILED;
    }
    return ok ? WK_JOB_DONE : WK_JOB_RETRY;
}

/* Expired exports lose their bytes (the row stays 'expired': downloads answer 410); the bytes of
 * exports whose job failed go too. Autocommitted, between two batches. */
static const char sql_sweep[] =
    "WITH x AS (UPDATE exports e SET state = CASE WHEN e.state = 'ready' THEN 'expired' ELSE 'failed' END "
    "           WHERE (e.state = 'ready' AND e.expires_at <= now()) "
    "              OR (e.state = 'building' AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = e.id AND j.state = 'failed')) "
    "           RETURNING e.id, e.org_id, e.state), "
    "     d AS (DELETE FROM export_chunks c USING x WHERE c.export_id = x.id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, org_id, detail) "
    "           SELECT NULL, 'export.' || x.state, 'export', x.id::text, x.org_id, '{}'::jsonb FROM x) "
    "SELECT count(*) FROM x";

void wk_job_export_sweep(wk_store *st)
{
    static long long next_ms;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (now < next_ms || !st->conn || PQstatus(st->conn) != CONNECTION_OK ||
        PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        return;
    next_ms = now + wk_cfg.export_sweep_ms;
    PGresult *res = wk_store_exec(st, sql_sweep, 0, NULL);
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK) {
        if (atoll(PQgetvalue(res, 0, 0)) > 0)
            fv_info("exports: %s expired or failed, bytes deleted", PQgetvalue(res, 0, 0));
    } else {
        char why[256];
        fv_pgutil_error(st->conn, res, why, sizeof why);
        fv_warn("exports: the sweep failed (retried): %s", why);
    }
    PQclear(res);
}
