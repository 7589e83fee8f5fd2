/* Organisations: POST /v1/orgs creates one with its root branch; the creator becomes its admin. */
#include <stdlib.h>
#include <string.h>

#include "fe_handlers.h"

#define FE_NAME_MAX 200

/* State of one creation: owned by the request. */
typedef struct org_create {
    char id[FV_UUID_STRLEN + 1];
    char root[FV_UUID_STRLEN + 1];
    char *name; /* owned */
} org_create;

static void org_create_free(void *p)
{
    org_create *s = p;
    free(s->name);
    free(s);
}

/* One statement, so the org, its root branch, the admin membership and the audit entry are
 * written together or not at all. */
static const char sql_org_create[] =
    "WITH o AS (INSERT INTO orgs (id, name, root_branch_id, created_by) VALUES ($1, $2, $3, $4) "
    "           RETURNING id, created_at), "
    "     b AS (INSERT INTO branches (id, org_id, parent_id, name) VALUES ($3, $1, NULL, $2)), "
    "     m AS (INSERT INTO memberships (id, org_id, user_id, role, branch_id) "
    "           VALUES ($5, $1, $4, 'admin', $3)), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address) "
    "           VALUES ($4, 'org.create', 'org', $1::text, NULLIF($6, '')::inet)) "
    "SELECT fv_ts(created_at) FROM o";

static void org_created(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    org_create *s = r->state;
    if (res->status != FE_PG_OK) {
        fe_reply_pg_failure(r, res);
        return;
    }
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, s->id);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, s->name);
    fv_jgen_key(j, "root_branch_id");
    fv_jgen_str(j, s->root);
    fv_jgen_key(j, "created_at");
    fv_jgen_str(j, PQntuples(res->res) ? PQgetvalue(res->res, 0, 0) : NULL);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 201, j);
}

void fe_orgs_create(fe_req *r)
{
    const char *name = fv_json_get_str(r->body, "name");
    if (!name || !*name || strlen(name) > FE_NAME_MAX) {
        const char *f[] = {"name"}, *why[] = {"required: a string of 1 to 200 characters"};
        fe_reply_error_fields(r, 422, "validation_failed", "the organisation is invalid", 1, f, why);
        return;
    }
    org_create *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        fe_reply_error(r, 503, "overloaded", "out of memory");
        return;
    }
    r->state = s;
    r->state_free = org_create_free;
    fv_id_new(s->id);
    fv_id_new(s->root);
    char membership[FV_UUID_STRLEN + 1];
    fv_id_new(membership);
    const char *params[] = {s->id, s->name, s->root, r->user->id, membership, r->address};
    fe_pg_query(sql_org_create, 6, params, org_created, r);
}
