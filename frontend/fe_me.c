/* The caller's own account: GET /v1/me. */
#include "fe_handlers.h"

void fe_me_get(fe_req *r)
{
    fv_jgen *j = fe_reply_gen(r);
    if (!j) return;
    fv_jgen_map_open(j);
    fv_jgen_key(j, "id");
    fv_jgen_str(j, r->user->id);
    fv_jgen_key(j, "email");
    fv_jgen_str(j, r->user->email);
    fv_jgen_key(j, "name");
    fv_jgen_str(j, r->user->name);
    fv_jgen_key(j, "is_admin");
    fv_jgen_bool(j, r->user->is_admin);
    fv_jgen_map_close(j);
    fe_reply_gen_send(r, 200, j);
}
