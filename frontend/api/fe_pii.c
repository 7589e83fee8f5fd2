/* Personal data in the front end: opening names and emails, and the emails' HMACs (fe_pii.h). */
#include "fe_pii.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_datakeys.h"
#include "fv_log.h"

static void unreadable(fe_req *r, const char *err)
{
    fv_error("req %s: personal data: %s", r->req_id, err);
    fe_reply_error(r, 500, "internal", err); /* the message names the row, never a value */
}

bool fe_pii_read(fe_req *r, const PGresult *res, int row, int col, const char *table, const char *id,
                 const char *column, char **out)
{
    *out = NULL;
    if (PQgetisnull(res, row, col)) return true;
    char aad[FV_DK_AAD_MAX], err[400];
    fv_pii_aad(table, id, column, aad);
    fv_dkring *ring = fe_datakeys_ring();
    if (!ring) {
        fe_reply_oom(r);
        return false;
    }
    *out = fv_pii_cell_open(ring, PQgetvalue(res, row, col), aad, err, sizeof err);
    if (!*out) {
        unreadable(r, err);
        return false;
    }
    return true;
}

char *fe_pii_json(fe_req *r, const char *json)
{
    static const char *const keys[] = {"name", "email", NULL};
    char err[400];
    fv_dkring *ring = fe_datakeys_ring();
    if (!ring) {
        fe_reply_oom(r);
        return NULL;
    }
    if (!strstr(json, "\"fv_sealed\"")) { /* nothing sealed in it: no parse */
        char *c = strdup(json);
        if (!c) fe_reply_oom(r);
        return c;
    }
    char *out = fv_pii_json_open(ring, json, strlen(json), keys, err, sizeof err);
    if (!out) unreadable(r, err);
    return out;
}

char *fe_pii_hmacs(const char *email)
{
    return fv_pii_email_hmacs(&fe_keys, email);
}

bool fe_pii_hmac_current(const char *email, char hmac[FV_PII_HMAC_HEXLEN + 1],
                         char key_id[FV_KEY_IDLEN + 1])
{
    if (fe_keys.n < 1 || fv_pii_email_hmac(&fe_keys.keys[0], email, hmac)) return false;
    memcpy(key_id, fe_keys.keys[0].id, FV_KEY_IDLEN + 1);
    return true;
}
