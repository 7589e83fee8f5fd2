/* Shared pieces of the access handlers: denial replies, list parameters, principals. */
#include "fe_access.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool fe_access_deny(fe_req *r, const fe_access_check *c, const char *what, const char *why)
{
    if (!c->visible) {
        char msg[96];
        snprintf(msg, sizeof msg, "no such %s", what);
        fe_reply_error(r, 404, "not_found", msg);
        return true;
    }
    if (c->allowed) return false;
    if (c->needs_totp) {
        fe_reply_error(r, 403, "totp_required",
                       "the organisation requires its admins to sign in with a TOTP code for this");
        return true;
    }
    fe_reply_error(r, 403, "forbidden", why);
    return true;
}

bool fe_access_pg_true(const PGresult *p, int col)
{
    return PQntuples(p) > 0 && !PQgetisnull(p, 0, col) && PQgetvalue(p, 0, col)[0] == 't';
}

bool fe_access_list_params(fe_req *r, int *limit, char *after)
{
    char *a = fe_query_param(r, "after"), *l = fe_query_param(r, "limit");
    const char *bad[2], *why[2];
    size_t nbad = 0;
    *limit = fe_list_limit(l);
    after[0] = '\0';
    if (a) {
        if (fv_id_valid(a))
            snprintf(after, FV_UUID_STRLEN + 1, "%s", a);
        else
            bad[nbad] = "after", why[nbad++] = "not a cursor this server returned";
    }
    if (*limit < 0) bad[nbad] = "limit", why[nbad++] = FE_LIST_LIMIT_REASON;
    free(a);
    free(l);
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "invalid query parameters", nbad, bad, why);
        return false;
    }
    return true;
}

const char *fe_access_principal_error(yajl_val v)
{
    if (!v || !YAJL_IS_OBJECT(v)) return "each principal must be an object {type, id}";
    const char *type = fv_json_get_str(v, "type"), *id = fv_json_get_str(v, "id");
    if (!type || (strcmp(type, "user") && strcmp(type, "team") && strcmp(type, "branch")))
        return "each principal needs type user, team or branch";
    if (!id || !fv_id_valid(id)) return "each principal needs an id (a UUID)";
    return NULL;
}
