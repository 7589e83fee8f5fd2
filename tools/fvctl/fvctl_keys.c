/* fvctl reseal and rotate-master-key: what is sealed or wrapped under a key of the key file
 * (common/fv_keys.h) brought under its current (first) key, so that older keys can then be
 * dropped from the file.
 *
 * Two kinds of rows: TOTP secrets (users.totp_secret, fv_seal label "fv-seal-totp", associated
 * data "totp:<user id>"), which `fvctl reseal` re-seals, and data keys (data_keys.wrapped,
 * common/fv_datakey.h), which `fvctl rotate-master-key` re-wraps before re-sealing the TOTP
 * secrets the same way. `rotate-master-key --new-key --standby` puts a new random key second in the
 * key file, `--promote ID` moves it first, plain `--new-key` puts it first at once (fvctl_keyfile.c);
 * `--drop ID` removes an old key once nothing is under it (fvctl_keydrop.c).
 *
 * Resumable and idempotent: one loop (rewrap) for both kinds reads the rows not under the current
 * key in key order (keyset pagination) in batches, and replaces each with one compare-and-set
 * UPDATE (only if it still holds the text that was opened, so a change made meanwhile wins),
 * committed on its own; a row already under the current key is not touched. A run stopped
 * half-way is simply run again. A row that opens under no key of the file is reported (its user
 * id, or its scope and version, never a key or a secret) and makes the exit status 1: dropping a
 * key before everything under it was re-wrapped is what these commands are there to prevent. */
#include <ctype.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_cli.h"
#include "fv_datakey.h"
#include "fv_id.h"
#include "fv_keys.h"
#include "fv_pgutil.h"
#include "fv_pii.h"
#include "fv_seal.h"
#include "fv_settings.h"
#include "fvctl.h"
#include "fvctl_keyfile.h"

#define DEFAULT_BATCH 500
#define TOTP_LABEL "fv-seal-totp"

static void reseal_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] reseal [--batch N]\n"
            "  Seals every sealed value (TOTP secrets) again under the current key: the first key of\n"
            "  key_file. Run it after putting a new key first in the file, and before dropping an\n"
            "  old one. Resumable and idempotent; exit status 1 if a value opens under no key.\n"
            "  (`fvctl rotate-master-key` does this too, after re-wrapping the data keys.)\n"
            "  --batch N   rows read per query (default %d)\n",
            DEFAULT_BATCH);
}

static void rotate_usage(FILE *out)
{
    fprintf(
        out,
        "usage: fvctl [-c FILE] rotate-master-key --new-key --standby\n"
        "       fvctl [-c FILE] rotate-master-key --promote ID\n"
        "       fvctl [-c FILE] rotate-master-key [--batch N]\n"
        "       fvctl [-c FILE] rotate-master-key --drop ID [--force]\n"
        "       fvctl [-c FILE] rotate-master-key --new-key\n"
        "  --new-key --standby  put a new random master key second in key_file (an atomic\n"
        "              rewrite, mode 0600): every program restarted with the file accepts it for\n"
        "              opening and verifying, none uses it yet. Prints its id, never the key.\n"
        "  --promote ID  move the key with that id to the first line (an atomic rewrite, the\n"
        "              others kept in order): programs restarted with the file sign, seal and\n"
        "              wrap under it. Only once every program runs with the key as a standby.\n"
        "  (without)   re-wrap every data key under the current master key (the first of\n"
        "              key_file) and seal every TOTP secret again under it, as `fvctl reseal`.\n"
        "              Resumable and idempotent; exit status 1 if a data key or a secret opens\n"
        "              under no key of key_file. When it reports nothing left under another\n"
        "              key, the old key may leave the file with --drop.\n"
        "  --drop ID   remove the key with that id from key_file (an atomic rewrite, the other\n"
        "              lines kept), never the first or the only one. Refused (exit 1, saying what\n"
        "              and how many) while a data key or a TOTP secret is under it, or a queue\n"
        "              entry on the submissions or dead-letter stream is sealed under it. Names\n"
        "              what it cannot check: the front ends' spool files (their /readyz) and the\n"
        "              session tokens signed under it (session_ttl_s after the last restart).\n"
        "  --force     (with --drop) drop it anyway, printing what is still under it: for a\n"
        "              leaked key that must go now; what is under it then opens under no key.\n"
        "  --new-key   (alone) put a new random key first at once: for a single host, or when\n"
        "              sessions and queue entries may break until every program restarted.\n"
        "  --batch N   rows read per query (default %d)\n"
        "  Without downtime: --new-key --standby, copy the file everywhere, restart everything;\n"
        "  --promote ID, copy, restart everything; then without options; then, after\n"
        "  session_ttl_s, --drop OLD-ID, copy, restart everything (docs/operations.md section 12).\n",
        DEFAULT_BATCH);
}

/* What rewrap counted. */
typedef struct rewrap_counts {
    long done;     /* re-sealed or re-wrapped under the current key */
    long current;  /* already under it when the run began */
    long changed;  /* changed (or deleted) meanwhile: left alone */
    long unopened; /* open under no key of the file */
} rewrap_counts;

/* What opening a row's text and sealing it again gave. */
typedef enum rewrap_result {
    REWRAP_OK,       /* *out is the new text */
    REWRAP_UNOPENED, /* opens under no key of the file: err names the row */
    REWRAP_FAILED,   /* sealing failed (out of memory, no random numbers): stop */
} rewrap_result;

/* A kind of row rewrap brings under the current key. The row's key is nkey text columns; the
 * queries take the LIKE pattern of the current key ("s1.<id>.%") as $1. */
typedef struct rewrap_kind {
    const char *what;        /* "TOTP secrets", "data keys": for messages */
    const char *sql_current; /* how many are under the current key */
    const char *sql_batch;   /* not under it, after the key $2.. in key order, LIMIT $(2+nkey):
                                  the key columns, then the text */
    const char *sql_replace; /* the key columns, the old text, the new text: compare-and-set */
    int nkey;                /* 1 or 2 */
    const char *start[2];    /* the key before the first row */
    /* Opens text (of the row with key k) with ks and seals it again under ks's current key into
     * *out (caller frees). Names the row in err. */
    rewrap_result (*again)(const fv_keyset *ks, const char *const *k, const char *text, char **out,
                           char *err, size_t errlen);
} rewrap_kind;

static rewrap_result totp_again(const fv_keyset *ks, const char *const *k, const char *text, char **out,
                                char *err, size_t errlen)
{
    char aad[8 + FV_UUID_STRLEN + 1];
    snprintf(aad, sizeof aad, "totp:%s", k[0]);
    size_t len = 0;
    unsigned char *pt = fv_unseal(ks, TOTP_LABEL, aad, text, &len); /* owned, wiped */
    if (!pt) {
        snprintf(err, errlen, "the TOTP secret of user %s opens under no key of %s", k[0],
                 fv_common.key_file);
        return REWRAP_UNOPENED;
    }
    *out = fv_seal(ks, TOTP_LABEL, aad, pt, len); /* handed to the caller */
    OPENSSL_cleanse(pt, len);
    free(pt);
    if (!*out) {
        snprintf(err, errlen, "sealing failed (out of memory or no random numbers)");
        return REWRAP_FAILED;
    }
    return REWRAP_OK;
}

static rewrap_result datakey_again(const fv_keyset *ks, const char *const *k, const char *text,
                                   char **out, char *err, size_t errlen)
{
    char *end;
    long version = strtol(k[1], &end, 10);
    unsigned char key[FV_DATAKEY_BYTES], back[FV_DATAKEY_BYTES];
    if (*end || version < 1 || version > 0x7fffffffL) {
        snprintf(err, errlen, "data key %s v%s: not a version", k[0], k[1]);
        return REWRAP_UNOPENED;
    }
    if (fv_datakey_unwrap(ks, k[0], (int)version, text, key, err, errlen) != 0) return REWRAP_UNOPENED;
    rewrap_result r = REWRAP_OK;
    *out = fv_datakey_wrap(ks, k[0], (int)version, key); /* handed to the caller */
    /* The wrapped key is the only copy of the data key: check the new text opens to it before it
     * replaces the old one. */
    char cerr[256];
    if (!*out || fv_datakey_unwrap(ks, k[0], (int)version, *out, back, cerr, sizeof cerr) != 0 ||
        CRYPTO_memcmp(key, back, sizeof key) != 0) {
        snprintf(err, errlen,
                 "data key %s v%ld: wrapping it again failed (out of memory or no random numbers)", k[0],
                 version);
        free(*out);
        *out = NULL;
        r = REWRAP_FAILED;
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(back, sizeof back);
    return r;
}

static const rewrap_kind totp_kind = {
    .what = "TOTP secrets",
    .sql_current = "SELECT count(*) FROM users WHERE totp_secret LIKE $1",
    .sql_batch = "SELECT id::text, totp_secret FROM users "
                 "WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE $1 AND id > $2::uuid "
                 "ORDER BY id LIMIT $3::int",
    .sql_replace = "UPDATE users SET totp_secret = $3 WHERE id = $1::uuid AND totp_secret = $2",
    .nkey = 1,
    .start = {"00000000-0000-0000-0000-000000000000"},
    .again = totp_again,
};

static const rewrap_kind datakey_kind = {
    .what = "data keys",
    .sql_current = "SELECT count(*) FROM data_keys WHERE wrapped LIKE $1",
    .sql_batch = "SELECT scope, version::text, wrapped FROM data_keys "
                 "WHERE wrapped NOT LIKE $1 AND (scope, version) > ($2::text, $3::int) "
                 "ORDER BY scope, version LIMIT $4::int",
    .sql_replace = "UPDATE data_keys SET wrapped = $4, rewrapped_at = now() "
                   "WHERE scope = $1 AND version = $2::int AND wrapped = $3",
    .nkey = 2,
    .start = {"", "0"},
    .again = datakey_again,
};

/* ---- the emails' lookup HMACs (migration 028) ----
 * A row's text is "<email_hmac_key>:<fv_pii_cell of the sealed email>": its email is opened under
 * the global data key (unwrapped with the key file: the data keys are re-wrapped first) and its
 * HMAC computed again under the current key; the new text "<key id>:<hex>" replaces the HMAC
 * and its key id when the row's text is still the same (compare-and-set). */
static fv_dkring *hmac_ring; /* made at first use from the key file; freed by the command */

static rewrap_result hmac_again(const char *table, const fv_keyset *ks, const char *const *k,
                                const char *text, char **out, char *err, size_t errlen)
{
    const char *cell = strchr(text, ':');
    if (!hmac_ring) hmac_ring = fv_dkring_new(ks, 16);
    if (!hmac_ring) {
        snprintf(err, errlen, "out of memory");
        return REWRAP_FAILED;
    }
    char aad[FV_DK_AAD_MAX], h[FV_PII_HMAC_HEXLEN + 1];
    fv_pii_aad(table, k[0], "email", aad);
    char *email = cell ? fv_pii_cell_open(hmac_ring, cell + 1, aad, err, errlen) : NULL; /* owned */
    if (!email) {
        if (!cell || !err[0]) snprintf(err, errlen, "%s: no sealed email", aad);
        return REWRAP_UNOPENED;
    }
    int rc = fv_pii_email_hmac(&ks->keys[0], email, h);
    OPENSSL_cleanse(email, strlen(email));
    free(email);
    if (rc != 0 || !(*out = malloc(FV_KEY_IDLEN + 1 + FV_PII_HMAC_HEXLEN))) { /* the caller's */
        snprintf(err, errlen, "%s: computing the HMAC failed", aad);
        return REWRAP_FAILED;
    }
    snprintf(*out, FV_KEY_IDLEN + 1 + FV_PII_HMAC_HEXLEN, "%s:%s", ks->keys[0].id, h + 2);
    return REWRAP_OK;
}

static rewrap_result users_hmac_again(const fv_keyset *ks, const char *const *k, const char *text,
                                      char **out, char *err, size_t errlen)
{
    return hmac_again("users", ks, k, text, out, err, errlen);
}

static rewrap_result invitations_hmac_again(const fv_keyset *ks, const char *const *k, const char *text,
                                            char **out, char *err, size_t errlen)
{
    return hmac_again("invitations", ks, k, text, out, err, errlen);
}

#define HMAC_KIND_SQL(table)                                                                          \
    .sql_current = "SELECT count(*) FROM " table " WHERE email_hmac_key = substr($1, 4, 8)",          \
    .sql_batch =                                                                                      \
        "SELECT id::text, email_hmac_key || ':' || COALESCE(fv_pii_cell(NULL, email_sealed), '') "    \
        "FROM " table " WHERE email_hmac_key IS NOT NULL AND email_hmac_key <> substr($1, 4, 8) "     \
        "AND id > $2::uuid ORDER BY id LIMIT $3::int",                                                \
    .sql_replace = "UPDATE " table " SET email_hmac = decode(split_part($3, ':', 2), 'hex'), "        \
                   "email_hmac_key = split_part($3, ':', 1) WHERE id = $1::uuid "                     \
                   "AND email_hmac_key || ':' || COALESCE(fv_pii_cell(NULL, email_sealed), '') = $2", \
    .nkey = 1, .start = {"00000000-0000-0000-0000-000000000000"}

static const rewrap_kind users_hmac_kind = {
    .what = "users' email HMACs",
    HMAC_KIND_SQL("users"),
    .again = users_hmac_again,
};

static const rewrap_kind invitations_hmac_kind = {
    .what = "invitations' email HMACs",
    HMAC_KIND_SQL("invitations"),
    .again = invitations_hmac_again,
};

/* How many rows of kind are under the current key (pattern), or -1 after saying why. */
static long count_current(const char *cmd, PGconn *conn, const rewrap_kind *kind, const char *pattern)
{
    const char *params[] = {pattern};
    PGresult *res = PQexecParams(conn, kind->sql_current, 1, NULL, params, NULL, NULL, 0);
    long n = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    } else {
        char err[512];
        fv_pgutil_error(conn, res, err, sizeof err);
        fprintf(stderr, "fvctl %s: counting %s: %s\n", cmd, kind->what, err);
    }
    PQclear(res);
    return n;
}

/* Brings every row of kind under ks's current key, batch rows per query, into *n. Returns
 * FV_EXIT_OK (rows that open under no key are only counted, and named on stderr) or
 * FV_EXIT_FAILURE (a query or sealing failed: the run stopped there; run it again). */
static int rewrap(const char *cmd, PGconn *conn, const fv_keyset *ks, const rewrap_kind *kind, int batch,
                  rewrap_counts *n)
{
    *n = (rewrap_counts){0};
    char pattern[3 + FV_KEY_IDLEN + 3], nbatch[16], err[512];
    /* the last row's key: a uuid, or a scope (FV_DATAKEY_SCOPE_MAX) and a version */
    char last[2][FV_DATAKEY_SCOPE_MAX + FV_UUID_STRLEN];
    snprintf(pattern, sizeof pattern, "s1.%s.%%", ks->keys[0].id);
    snprintf(nbatch, sizeof nbatch, "%d", batch);
    for (int j = 0; j < kind->nkey; j++) snprintf(last[j], sizeof last[j], "%s", kind->start[j]);
    if ((n->current = count_current(cmd, conn, kind, pattern)) < 0) return FV_EXIT_FAILURE;
    int status = FV_EXIT_OK;
    for (;;) {
        const char *params[4];
        int np = 0;
        params[np++] = pattern;
        for (int j = 0; j < kind->nkey; j++) params[np++] = last[j];
        params[np++] = nbatch;
        PGresult *res = PQexecParams(conn, kind->sql_batch, np, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fv_pgutil_error(conn, res, err, sizeof err);
            fprintf(stderr, "fvctl %s: reading %s: %s\n", cmd, kind->what, err);
            PQclear(res);
            return FV_EXIT_FAILURE;
        }
        int rows = PQntuples(res);
        for (int i = 0; i < rows && status == FV_EXIT_OK; i++) {
            const char *k[2], *text = PQgetvalue(res, i, kind->nkey);
            for (int j = 0; j < kind->nkey; j++) {
                k[j] = PQgetvalue(res, i, j);
                snprintf(last[j], sizeof last[j], "%s", k[j]);
            }
            char *again = NULL; /* owned */
            rewrap_result r = kind->again(ks, k, text, &again, err, sizeof err);
            if (r == REWRAP_UNOPENED) {
                fprintf(stderr, "fvctl %s: %s\n", cmd, err);
                n->unopened++;
                continue;
            }
            if (r == REWRAP_FAILED) {
                fprintf(stderr, "fvctl %s: %s\n", cmd, err);
                status = FV_EXIT_FAILURE;
                break;
            }
            const char *up[4];
            int nu = 0;
            for (int j = 0; j < kind->nkey; j++) up[nu++] = k[j];
            up[nu++] = text;
            up[nu++] = again;
            PGresult *u = PQexecParams(conn, kind->sql_replace, nu, NULL, up, NULL, NULL, 0);
            free(again);
            if (PQresultStatus(u) != PGRES_COMMAND_OK) {
                fv_pgutil_error(conn, u, err, sizeof err);
                fprintf(stderr, "fvctl %s: updating %s (%s%s%s): %s\n", cmd, kind->what, k[0],
                        kind->nkey > 1 ? " v" : "", kind->nkey > 1 ? k[1] : "", err);
                status = FV_EXIT_FAILURE;
            } else if (strcmp(PQcmdTuples(u), "1") == 0) {
                n->done++;
            } else {
                n->changed++; /* re-enrolled, switched off, re-wrapped or removed meanwhile */
            }
            PQclear(u);
        }
        PQclear(res);
        if (status != FV_EXIT_OK || rows < batch) break;
    }
    return status;
}

/* What rotate-master-key was asked to do besides re-wrapping. */
typedef struct rotate_opts {
    bool new_key;        /* --new-key */
    bool standby;        /* --standby (with --new-key) */
    const char *promote; /* --promote ID (argv's), or NULL */
    const char *drop;    /* --drop ID (argv's), or NULL */
    bool force;          /* --force (with --drop) */
} rotate_opts;

/* Parses [--batch N] (and, when ro is not NULL, rotate-master-key's --new-key, --standby,
 * --promote ID, --drop ID and --force). Returns -1 to go on, or the status to exit with. */
static int key_options(int argc, char **argv, void (*usage)(FILE *out), int *batch, rotate_opts *ro)
{
    static const struct option opts[] = {
        {"batch", required_argument, NULL, 'b'}, {"new-key", no_argument, NULL, 'n'},
        {"standby", no_argument, NULL, 's'},     {"promote", required_argument, NULL, 'p'},
        {"drop", required_argument, NULL, 'd'},  {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    int o;
    bool batch_given = false;
    const char *bad = NULL; /* a combination of options that makes no sense */
    *batch = DEFAULT_BATCH;
    while ((o = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
        if (o == 'h') {
            usage(stdout);
            return FV_EXIT_OK;
        }
        if (ro && o == 'n') {
            ro->new_key = true;
            continue;
        }
        if (ro && o == 's') {
            ro->standby = true;
            continue;
        }
        if (ro && o == 'p') {
            if (ro->promote) bad = "--promote takes one key id";
            ro->promote = optarg;
            continue;
        }
        if (ro && o == 'd') {
            if (ro->drop) bad = "--drop takes one key id";
            ro->drop = optarg;
            continue;
        }
        if (ro && o == 'f') {
            ro->force = true;
            continue;
        }
        char *end;
        long v = o == 'b' ? strtol(optarg, &end, 10) : 0;
        if (o != 'b' || *end || v < 1 || v > 100000) {
            if (o == 'b') fprintf(stderr, "fvctl %s: --batch must be 1 to 100000\n", argv[0]);
            usage(stderr);
            return FV_EXIT_CONFIG;
        }
        *batch = (int)v;
        batch_given = true;
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl %s: unexpected argument '%s'\n", argv[0], argv[optind]);
        usage(stderr);
        return FV_EXIT_CONFIG;
    }
    if (ro && !bad) {
        if (ro->new_key && batch_given) bad = "--new-key reads no rows: it takes no --batch";
        else if (ro->promote && batch_given) bad = "--promote reads no rows: it takes no --batch";
        else if (ro->standby && !ro->new_key) bad = "--standby goes with --new-key";
        else if (ro->promote && ro->new_key)
            bad = "--promote and --new-key are two steps: a new key first goes in as a standby";
        else if (ro->drop && (ro->new_key || ro->promote))
            bad = "--drop is a step of its own: the last of a rotation, after the re-wrap";
        else if (ro->drop && batch_given) bad = "--drop reads no rows in batches: it takes no --batch";
        else if (ro->force && !ro->drop) bad = "--force goes with --drop";
    }
    if (bad) {
        fprintf(stderr, "fvctl %s: %s\n", argv[0], bad);
        usage(stderr);
        return FV_EXIT_CONFIG;
    }
    return -1;
}

int fvctl_reseal(int argc, char **argv)
{
    int batch, status = key_options(argc, argv, reseal_usage, &batch, NULL);
    if (status >= 0) return status;
    fv_keyset ks;
    char err[512];
    if (fv_keys_load(&ks, fv_common.key_file, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl reseal: %s\n", err);
        return FV_EXIT_CONFIG;
    }
    PGconn *conn = fvctl_pg_connect("reseal");
    if (!conn) {
        fv_keys_clear(&ks);
        return FV_EXIT_FAILURE;
    }
    rewrap_counts n;
    status = rewrap("reseal", conn, &ks, &totp_kind, batch, &n);
    PQfinish(conn);
    printf(
        "fvctl reseal: %ld TOTP secret(s) re-sealed under key %s, %ld changed meanwhile, %ld that open "
        "under no key\n",
        n.done, ks.keys[0].id, n.changed, n.unopened);
    fv_keys_clear(&ks);
    if (status == FV_EXIT_OK && n.unopened) status = FV_EXIT_FAILURE;
    return status;
}

/* The ids of ks in file order: the first one says it is current, the one named mark says note. */
static void print_ids(const fv_keyset *ks, const char *mark, const char *note)
{
    for (int i = 0; i < ks->n; i++) {
        bool marked = strcmp(ks->keys[i].id, mark) == 0;
        printf("  key %d: %s%s%s%s%s\n", i + 1, ks->keys[i].id, marked || i == 0 ? " (" : "",
               marked ? note : "", marked && i == 0 ? ", " : "",
               i == 0   ? "current)"
               : marked ? ")"
                        : "");
    }
}

/* rotate-master-key --new-key [--standby]. */
static int new_master_key(bool standby)
{
    const char *path = fv_common.key_file;
    unsigned char key[FV_KEY_BYTES];
    char err[512], id[FV_KEY_IDLEN + 1];
    int nkeys = 0;
    if (RAND_bytes(key, sizeof key) != 1) {
        fprintf(stderr, "fvctl rotate-master-key: no random numbers (RAND_bytes failed)\n");
        return FV_EXIT_FAILURE;
    }
    fv_keys_id(key, id);
    int rc = standby ? fvctl_keyfile_standby(path, key, &nkeys, err, sizeof err)
                     : fvctl_keyfile_prepend(path, key, &nkeys, err, sizeof err);
    OPENSSL_cleanse(key, sizeof key);
    if (rc != 0) {
        fprintf(stderr, "fvctl rotate-master-key: %s\n", err);
        return FV_EXIT_FAILURE;
    }
    fv_keyset ks;
    if (fv_keys_load(&ks, path, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl rotate-master-key: the new key file: %s\n", err);
        return FV_EXIT_FAILURE;
    }
    if (standby) {
        printf("fvctl rotate-master-key: new master key %s is a standby, the second of the %d key(s) in "
               "%s: accepted for opening and verifying, used for nothing yet\n",
               id, nkeys, path);
        print_ids(&ks, id, "new, standby");
        printf("next:\n"
               "  1. copy %s to every other host that has one (mode 0600, owner fieldvault), then\n"
               "     restart every program that reads it (front ends, workers), one by one: each\n"
               "     logs \"key_file %s: ... also opens %s\"; they still sign, seal and wrap under %s\n"
               "  2. once every program runs with it: `fvctl rotate-master-key --promote %s`, copy\n"
               "     the file again and restart every program again, one by one\n"
               "  3. then `fvctl rotate-master-key` (re-wraps the data keys, re-seals TOTP secrets)\n"
               "     and docs/operations.md section 12 for when the old key may leave the file\n",
               path, path, id, ks.keys[0].id, id);
    } else {
        printf("fvctl rotate-master-key: new master key %s is now the first (current) of the %d "
               "key(s) in %s\n",
               id, nkeys, path);
        print_ids(&ks, id, "new");
        printf("next:\n"
               "  1. restart every program that reads %s, one by one (front ends, workers), so that\n"
               "     each loads it: what they sign, seal or wrap from then on is under %s, which the\n"
               "     programs not yet restarted cannot open (with more than one host, use\n"
               "     --new-key --standby and --promote instead: docs/operations.md section 12)\n"
               "  2. run `fvctl rotate-master-key` (without --new-key): it re-wraps every data key and\n"
               "     re-seals every TOTP secret under %s; run it again until it reports nothing left\n"
               "     under another key\n"
               "  3. then `fvctl rotate-master-key --drop OLD-ID` (it refuses while anything is left\n"
               "     under that key) and restart again (docs/operations.md section 12 says when)\n",
               path, id, id);
    }
    fv_keys_clear(&ks);
    return FV_EXIT_OK;
}

/* The key id arg given to option opt, in lowercase into id (ids are printed in lowercase; one
 * typed in capitals is the same id). False after saying why on stderr. */
static bool parse_id(const char *opt, const char *arg, char id[FV_KEY_IDLEN + 1])
{
    size_t i = 0;
    for (; i < FV_KEY_IDLEN && isxdigit((unsigned char)arg[i]); i++)
        id[i] = (char)tolower((unsigned char)arg[i]);
    id[i] = '\0';
    if (i == FV_KEY_IDLEN && !arg[i]) return true;
    char shown[17]; /* what was given, its first 16 bytes, each unprintable one as '?' */
    snprintf(shown, sizeof shown, "%s", arg);
    for (char *p = shown; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
    fprintf(stderr,
            "fvctl rotate-master-key: %s takes a key id (%d hex characters, as fvctl printed it), not "
            "'%s'\n",
            opt, FV_KEY_IDLEN, shown);
    return false;
}

/* rotate-master-key --promote ID. */
static int promote_master_key(const char *arg)
{
    const char *path = fv_common.key_file;
    char id[FV_KEY_IDLEN + 1], err[512];
    int nkeys = 0;
    if (!parse_id("--promote", arg, id)) return FV_EXIT_CONFIG;
    int rc = fvctl_keyfile_promote(path, id, &nkeys, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "fvctl rotate-master-key: %s\n", err);
        return FV_EXIT_FAILURE;
    }
    fv_keyset ks;
    if (fv_keys_load(&ks, path, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl rotate-master-key: the key file: %s\n", err);
        return FV_EXIT_FAILURE;
    }
    if (rc == 1)
        printf("fvctl rotate-master-key: master key %s is the first (current) key of %s already: "
               "nothing written\n",
               id, path);
    else
        printf("fvctl rotate-master-key: master key %s is now the first (current) of the %d key(s) in "
               "%s\n",
               id, nkeys, path);
    print_ids(&ks, id, "promoted");
    printf("next:\n"
           "  1. copy %s to every other host that has one (mode 0600, owner fieldvault), then\n"
           "     restart every program that reads it, one by one: each signs, seals and wraps under\n"
           "     %s from then on, which every program opens already if each was restarted with\n"
           "     %s as a standby (its journal said \"key_file ...: ... also opens %s\")\n"
           "  2. then `fvctl rotate-master-key` (without options): it re-wraps every data key and\n"
           "     re-seals every TOTP secret under %s (docs/operations.md section 12)\n"
           "  3. after session_ttl_s, `fvctl rotate-master-key --drop OLD-ID` removes the old key\n",
           path, id, id, id, id);
    fv_keys_clear(&ks);
    return FV_EXIT_OK;
}

static void print_counts(const char *what, const char *verb, const rewrap_counts *n, const char *id)
{
    printf("fvctl rotate-master-key: %s: %ld %s under master key %s, %ld already under it, %ld changed "
           "meanwhile, %ld that open under no key\n",
           what, n->done, verb, id, n->current, n->changed, n->unopened);
}

int fvctl_rotate_master_key(int argc, char **argv)
{
    int batch;
    rotate_opts ro = {0};
    int status = key_options(argc, argv, rotate_usage, &batch, &ro);
    if (status >= 0) return status;
    if (ro.new_key) return new_master_key(ro.standby);
    if (ro.promote) return promote_master_key(ro.promote);
    if (ro.drop) {
        char id[FV_KEY_IDLEN + 1];
        if (!parse_id("--drop", ro.drop, id)) return FV_EXIT_CONFIG;
        return fvctl_drop_master_key(id, ro.force);
    }
    fv_keyset ks;
    char err[512];
    if (fv_keys_load(&ks, fv_common.key_file, err, sizeof err) != 0) {
        fprintf(stderr, "fvctl rotate-master-key: %s\n", err);
        return FV_EXIT_CONFIG;
    }
    PGconn *conn = fvctl_pg_connect("rotate-master-key");
    if (!conn) {
        fv_keys_clear(&ks);
        return FV_EXIT_FAILURE;
    }
    rewrap_counts dk = {0}, totp = {0};
    status = rewrap("rotate-master-key", conn, &ks, &datakey_kind, batch, &dk);
    bool totp_ran = status == FV_EXIT_OK;
    if (totp_ran) status = rewrap("rotate-master-key", conn, &ks, &totp_kind, batch, &totp);
    rewrap_counts uh = {0}, ih = {0};
    bool hmac_ran = status == FV_EXIT_OK;
    if (hmac_ran) status = rewrap("rotate-master-key", conn, &ks, &users_hmac_kind, batch, &uh);
    if (status == FV_EXIT_OK)
        status = rewrap("rotate-master-key", conn, &ks, &invitations_hmac_kind, batch, &ih);
    fv_dkring_free(hmac_ring);
    hmac_ring = NULL;
    /* What is left under another key now: rows a program not yet restarted made meanwhile, or
     * the ones that open under no key. */
    char pattern[3 + FV_KEY_IDLEN + 3];
    snprintf(pattern, sizeof pattern, "s1.%s.%%", ks.keys[0].id);
    long dk_left = -1, totp_left = -1, hmac_left = -1;
    if (status == FV_EXIT_OK) {
        const char *params[] = {pattern};
        PGresult *res = PQexecParams(
            conn,
            "SELECT (SELECT count(*) FROM data_keys WHERE wrapped NOT LIKE $1), "
            "(SELECT count(*) FROM users WHERE totp_secret NOT LIKE $1), "
            "(SELECT count(*) FROM users WHERE email_hmac_key <> substr($1, 4, 8)) + "
            "(SELECT count(*) FROM invitations WHERE email_hmac_key <> substr($1, 4, 8))",
            1, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
            dk_left = strtol(PQgetvalue(res, 0, 0), NULL, 10);
            totp_left = strtol(PQgetvalue(res, 0, 1), NULL, 10);
            hmac_left = strtol(PQgetvalue(res, 0, 2), NULL, 10);
        } else {
            fv_pgutil_error(conn, res, err, sizeof err);
            fprintf(stderr, "fvctl rotate-master-key: counting what is left: %s\n", err);
            status = FV_EXIT_FAILURE;
        }
        PQclear(res);
    }
    PQfinish(conn);
    print_counts("data keys", "re-wrapped", &dk, ks.keys[0].id);
    if (totp_ran) print_counts("TOTP secrets", "re-sealed", &totp, ks.keys[0].id);
    else
        printf(
            "fvctl rotate-master-key: TOTP secrets: not reached (the run stopped at the data keys)\n");
    if (hmac_ran) {
        print_counts("users' email HMACs", "re-computed", &uh, ks.keys[0].id);
        print_counts("invitations' email HMACs", "re-computed", &ih, ks.keys[0].id);
    } else {
        printf("fvctl rotate-master-key: email HMACs: not reached (the run stopped before them)\n");
    }
    if (hmac_left > 0)
        printf("fvctl rotate-master-key: left under another master key: %ld email HMAC(s)%s\n",
               hmac_left,
               uh.unopened + ih.unopened == hmac_left ? " (the ones whose email does not open)"
                                                      : " (made meanwhile? run this again)");
    if (dk_left >= 0)
        printf("fvctl rotate-master-key: left under another master key: %ld data key(s), %ld TOTP "
               "secret(s)%s\n",
               dk_left, totp_left,
               dk_left + totp_left == 0 ? ""
               : dk.unopened + totp.unopened == dk_left + totp_left
                   ? " (the ones that open under no key)"
                   : " (made meanwhile by a program not yet restarted? run this again once every "
                     "program runs with the new key file)");
    fv_keys_clear(&ks);
    if (status == FV_EXIT_OK && (dk.unopened || totp.unopened || uh.unopened || ih.unopened))
        status = FV_EXIT_FAILURE;
    return status;
}
