/* fvctl reseal: every value sealed under a key of the key file (common/fv_seal.h) sealed again
 * under its current (first) key, so that older keys can then be dropped from the file. Today the
 * only sealed values are TOTP secrets (users.totp_secret, label "fv-seal-totp", associated data
 * "totp:<user id>").
 *
 * Resumable and idempotent: rows are read in id order in batches, and each is replaced with one
 * compare-and-set UPDATE (only if it still holds the text that was opened, so an enrolment made
 * meanwhile wins), committed on its own; a value already under the current key is not touched.
 * A run stopped half-way is simply run again. A value that opens under no key of the file is
 * reported (its user id, never the value) and makes the exit status 1: dropping a key before
 * every value sealed under it was re-sealed is what this command is there to prevent. */
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_cli.h"
#include "fv_id.h"
#include "fv_keys.h"
#include "fv_pgutil.h"
#include "fv_seal.h"
#include "fv_settings.h"
#include "fvctl.h"

#define DEFAULT_BATCH 500

static void reseal_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] reseal [--batch N]\n"
            "  Seals every sealed value (TOTP secrets) again under the current key: the first key of\n"
            "  key_file. Run it after putting a new key first in the file, and before dropping an\n"
            "  old one. Resumable and idempotent; exit status 1 if a value opens under no key.\n"
            "  --batch N   rows read per query (default %d)\n",
            DEFAULT_BATCH);
}

/* Rows not under the current key ($1 is "s1.<id>.%"), after id $2, in id order. */
static const char sql_batch[] =
    "SELECT id::text, totp_secret FROM users "
    "WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE $1 AND id > $2::uuid "
    "ORDER BY id LIMIT $3::int";

static const char sql_replace[] =
    "UPDATE users SET totp_secret = $3 WHERE id = $1::uuid AND totp_secret = $2";

int fvctl_reseal(int argc, char **argv)
{
    static const struct option opts[] = {{"batch", required_argument, NULL, 'b'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o, batch = DEFAULT_BATCH;
    while ((o = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
        if (o == 'h') {
            reseal_usage(stdout);
            return FV_EXIT_OK;
        }
        char *end;
        long v = o == 'b' ? strtol(optarg, &end, 10) : 0;
        if (o != 'b' || *end || v < 1 || v > 100000) {
            if (o == 'b') fprintf(stderr, "fvctl reseal: --batch must be 1 to 100000\n");
            reseal_usage(stderr);
            return FV_EXIT_CONFIG;
        }
        batch = (int)v;
    }
    if (optind < argc) {
        fprintf(stderr, "fvctl reseal: unexpected argument '%s'\n", argv[optind]);
        reseal_usage(stderr);
        return FV_EXIT_CONFIG;
    }
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
    char current[3 + FV_KEY_IDLEN + 3],
        last[FV_UUID_STRLEN + 1] = "00000000-0000-0000-0000-000000000000", nbatch[16];
    snprintf(current, sizeof current, "s1.%s.%%", ks.keys[0].id);
    snprintf(nbatch, sizeof nbatch, "%d", batch);
    long resealed = 0, changed = 0, unopened = 0;
    int status = FV_EXIT_OK;
    for (;;) {
        const char *params[] = {current, last, nbatch};
        PGresult *res = PQexecParams(conn, sql_batch, 3, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fv_pgutil_error(conn, res, err, sizeof err);
            fprintf(stderr, "fvctl reseal: reading TOTP secrets: %s\n", err);
            PQclear(res);
            status = FV_EXIT_FAILURE;
            break;
        }
        int n = PQntuples(res);
        for (int i = 0; i < n && status == FV_EXIT_OK; i++) {
            const char *id = PQgetvalue(res, i, 0), *sealed = PQgetvalue(res, i, 1);
            snprintf(last, sizeof last, "%s", id);
            char aad[8 + FV_UUID_STRLEN + 1];
            snprintf(aad, sizeof aad, "totp:%s", id);
            size_t len = 0;
            unsigned char *pt = fv_unseal(&ks, "fv-seal-totp", aad, sealed, &len); /* owned, wiped */
            if (!pt) {
                fprintf(stderr, "fvctl reseal: the TOTP secret of user %s opens under no key of %s\n",
                        id, fv_common.key_file);
                unopened++;
                continue;
            }
            char *again = fv_seal(&ks, "fv-seal-totp", aad, pt, len); /* owned */
            OPENSSL_cleanse(pt, len);
            free(pt);
            if (!again) {
                fprintf(stderr, "fvctl reseal: sealing failed (out of memory or no random numbers)\n");
                status = FV_EXIT_FAILURE;
                break;
            }
            const char *up[] = {id, sealed, again};
            PGresult *u = PQexecParams(conn, sql_replace, 3, NULL, up, NULL, NULL, 0);
            free(again);
            if (PQresultStatus(u) != PGRES_COMMAND_OK) {
                fv_pgutil_error(conn, u, err, sizeof err);
                fprintf(stderr, "fvctl reseal: updating user %s: %s\n", id, err);
                status = FV_EXIT_FAILURE;
            } else if (strcmp(PQcmdTuples(u), "1") == 0) {
                resealed++;
            } else {
                changed++; /* re-enrolled or switched off meanwhile: nothing to do */
            }
            PQclear(u);
        }
        PQclear(res);
        if (status != FV_EXIT_OK || n < batch) break;
    }
    PQfinish(conn);
    printf(
        "fvctl reseal: %ld TOTP secret(s) re-sealed under key %s, %ld changed meanwhile, %ld that open "
        "under no key\n",
        resealed, ks.keys[0].id, changed, unopened);
    fv_keys_clear(&ks);
    if (status == FV_EXIT_OK && unopened) status = FV_EXIT_FAILURE;
    return status;
}
