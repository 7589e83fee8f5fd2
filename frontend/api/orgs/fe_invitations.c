/* Invitations, the organisation's side: an admin invites a user by user id or by email
 * (POST /v1/orgs/{org}/invitations), lists (GET) and withdraws (DELETE .../{id}) them. Joining
 * needs the invitee's consent (fe_invitations_me.c); until they accept, the org learns nothing
 * about them: the answer is the same whether or not the id or address is an account (nothing here
 * looks at users), and a declined invitation reads `pending` until it expires. An email
 * invitation carries a one-time code (fvi_ + 43 base64url characters, 256 random bits), shown
 * once, stored as SHA-256: emails are not verified, so the account that registered the address
 * first must not be able to accept with it alone. Rules and bounds: migration 011. */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_config.h"
#include "fe_datakeys.h"
#include "fe_handlers.h"
#include "fe_pii.h"
#include "fe_verdict.h"
#include "fv_crypto.h"
#include "fv_log.h"

#define EMAIL_MAX 254
#define CODE_PREFIX "fvi_"
#define CODE_LEN 47 /* "fvi_" + 43 base64url characters of 32 random bytes */

/* A new invitation code into out[CODE_LEN + 1]; false when the RNG failed. */
static bool code_new(char out[CODE_LEN + 1])
{
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) return false;
    memcpy(out, CODE_PREFIX, 4);
    fv_b64url_encode(raw, sizeof raw, out + 4);
    out[CODE_LEN] = '\0';
    return true;
}

/* True when s looks like an email address: 3 to 254 bytes, one '@' neither first nor last, no
 * whitespace or control characters. It is never checked against the accounts. */
static bool email_ok(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > EMAIL_MAX) return false;
    const char *at = strchr(s, '@');
    if (!at || at == s || !at[1] || strchr(at + 1, '@')) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p == 0x7f) return false;
    return true;
}

/* An optional id member: absent or null (*out = NULL) or a UUID string. False when malformed. */
static bool optional_id(yajl_val body, const char *key, const char **out)
{
    yajl_val v = fv_json_get(body, key);
    *out = NULL;
    if (!v || YAJL_IS_NULL(v)) return true;
    if (!YAJL_IS_STRING(v) || !fv_id_valid(v->u.string)) return false;
    *out = v->u.string;
    return true;
}

/* ---- POST /v1/orgs/{org}/invitations ---- */

/* State of one invitation being made: owned by the request. */
typedef struct invite {
    char code[CODE_LEN + 1]; /* "" for a user-id invitation */
    char id[FV_UUID_STRLEN + 1];
    char hash[FV_SHA256_HEXLEN + 1]; /* of the code; "" for a user-id invitation */
    char user[FV_UUID_STRLEN + 1];   /* "" for an email invitation */
    char *email;                     /* as typed (owned), NULL for a user-id invitation */
    char *role, *branch, *team;      /* owned copies (NULL: absent) */
} invite;

/* Who may invite: exactly who may set that membership with PUT /v1/orgs/{org}/members (the org
 * admin; for a branch, an admin of it or of an ancestor), then room under the org's bounds
 * (fv_invitation_room: $12 open invitations, $13 per hour). The audit row holds what the admin
 * typed, nothing about an account. */
static const char sql_invite[] =
    "WITH o AS (SELECT id, root_branch_id FROM orgs WHERE id = $2), "
    "     t AS (SELECT CASE WHEN $10::uuid IS NULL THEN COALESCE($9::uuid, o.root_branch_id) END AS branch_id, "
    "                  $10::uuid AS team_id, o.root_branch_id FROM o), "
    "     v AS (SELECT CASE WHEN p.verdict <> 'ok' THEN p.verdict "
    "             ELSE fv_invitation_room($2, $12::int, $13::int) END AS verdict "
    "           FROM (SELECT 1) one LEFT JOIN t ON true, LATERAL (SELECT fv_membership_place_verdict("
    "                $1, $2, t.branch_id, t.team_id, t.root_branch_id, $3::boolean) AS verdict) p), "
    "     ins AS (INSERT INTO invitations AS i (id, org_id, invited_by, user_id, email_sealed, code_hash, role, "
    "                                           branch_id, team_id, expires_at, email_hmac, email_hmac_key, "
    "                                           pii_version) "
    "             SELECT $4, $2, $1, $5::uuid, $6::bytea, $7, $8, t.branch_id, t.team_id, "
    "                    now() + make_interval(secs => $11::int), $15::bytea, $16, $17::int FROM t "
    "             WHERE (SELECT verdict FROM v) = 'ok' "
    "             RETURNING fv_invitation_json(i) AS j, i.role, i.branch_id, i.team_id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'invitation.create', 'invitation', $4::text, NULLIF($14, '')::inet, $2, "
    "                  jsonb_strip_nulls(jsonb_build_object('user_id', $5::uuid, 'by_email', $6 IS NOT NULL, "
    "                      'role', ins.role, 'branch_id', ins.branch_id, 'team_id', ins.team_id)) FROM ins) "
    "SELECT v.verdict, (SELECT ins.j::text FROM ins) FROM v";

static void invited(const fe_pg_result *res, void *arg)
{
    fe_req *r = arg;
    invite *s = r->state;
    if (res->status == FE_PG_OK && PQntuples(res->res) == 1 &&
        !strncmp(PQgetvalue(res->res, 0, 0), "invitation_rate:", 16)) {
        int retry = atoi(PQgetvalue(res->res, 0, 0) + 16);
        fe_reply_error_retry(r, 429, "rate_limited",
                             "this organisation made too many invitations in the last hour; retry "
                             "after the seconds in Retry-After",
                             retry > 0 ? retry : 1);
        return;
    }
    const char *stored = fe_verdict_answer(r, res, "organisation");
    if (!stored) return;
    char *body = fe_pii_json(r, stored); /* owned here: the email opened */
    if (!body) return;
    size_t n = strlen(body);
    if (!s->code[0] || n < 2 || body[n - 1] != '}') {
        fe_reply_text(r, 201, "application/json", body, n);
        free(body);
        return;
    }
    /* The code is shown here once and never stored: appended to the stored invitation's JSON
     * (base64url needs no escaping). */
    char *out = malloc(n + CODE_LEN + 16);
    if (!out) {
        free(body);
        fe_reply_oom(r);
        return;
    }
    int len = snprintf(out, n + CODE_LEN + 16, "%.*s, \"code\": \"%s\"}", (int)(n - 1), body, s->code);
    free(body);
    fe_reply_text(r, 201, "application/json", out, (size_t)len);
    OPENSSL_cleanse(out, n + CODE_LEN + 16);
    free(out);
}

static void invite_free(void *p)
{
    invite *s = p;
    free(s->email);
    free(s->role);
    free(s->branch);
    free(s->team);
    OPENSSL_cleanse(s, sizeof *s);
    free(s);
}

/* Sends the statement; email_sealed, hmac, key_id and version are NULL for a user-id invitation. */
static void invite_send(fe_req *r, const char *email_sealed, const char *hmac, const char *key_id,
                        const char *version)
{
    invite *s = r->state;
    char ttl[16], max_pending[16], max_hour[16];
    snprintf(ttl, sizeof ttl, "%d", fe_cfg.invitation_ttl_s);
    snprintf(max_pending, sizeof max_pending, "%d", fe_cfg.invitation_max_pending_per_org);
    snprintf(max_hour, sizeof max_hour, "%d", fe_cfg.invitation_max_per_org_hour);
    const char *params[] = {r->user->id,
                            r->param[0],
                            fe_verdict_mfa(r),
                            s->id,
                            s->user[0] ? s->user : NULL,
                            email_sealed,
                            s->email ? s->hash : NULL,
                            s->role,
                            s->branch,
                            s->team,
                            ttl,
                            max_pending,
                            max_hour,
                            r->address,
                            hmac,
                            key_id,
                            version};
    fe_pg_query(sql_invite, 17, params, invited, r);
}

/* The global data key for sealing the email (fe_datakeys_current's callback). */
static void invite_keyed(const unsigned char *key, int version, const char *err, void *arg)
{
    fe_req *r = arg;
    invite *s = r->state;
    if (!key) {
        fv_warn("req %s: invitation: %s", r->req_id, err ? err : "no data key");
        fe_reply_error_retry(r, 503, "db_unavailable", "the data key is unavailable; retry later", 30);
        return;
    }
    char aad[FV_DK_AAD_MAX], hmac[FV_PII_HMAC_HEXLEN + 1], key_id[FV_KEY_IDLEN + 1], v[16];
    fv_pii_aad("invitations", s->id, "email", aad);
    char *sealed = fv_pii_seal_hex(key, version, aad, s->email); /* owned here */
    if (!sealed || !fe_pii_hmac_current(s->email, hmac, key_id)) {
        free(sealed);
        fe_reply_oom(r);
        return;
    }
    snprintf(v, sizeof v, "%d", version);
    invite_send(r, sealed, hmac, key_id, v);
    free(sealed);
}

void fe_invitations_create(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation")) return;
    yajl_val emailv = fv_json_get(r->body, "email"), userv = fv_json_get(r->body, "user_id");
    if (emailv && YAJL_IS_NULL(emailv)) emailv = NULL;
    if (userv && YAJL_IS_NULL(userv)) userv = NULL;
    const char *role = fv_json_get_str(r->body, "role"), *branch, *team, *bad[4], *why[4];
    size_t nbad = 0;
    if (!emailv && !userv) bad[nbad] = "email", why[nbad++] = "required: email or user_id";
    else if (emailv && userv) bad[nbad] = "user_id", why[nbad++] = "give email or user_id, not both";
    else if (emailv && (!YAJL_IS_STRING(emailv) || !email_ok(emailv->u.string)))
        bad[nbad] = "email", why[nbad++] = "an email address of at most 254 characters";
    else if (userv && (!YAJL_IS_STRING(userv) || !fv_id_valid(userv->u.string)))
        bad[nbad] = "user_id", why[nbad++] = "a user id (UUID)";
    if (!role || (strcmp(role, "admin") && strcmp(role, "manager") && strcmp(role, "member")))
        bad[nbad] = "role", why[nbad++] = "required: admin, manager or member";
    if (!optional_id(r->body, "branch_id", &branch))
        bad[nbad] = "branch_id", why[nbad++] = "a branch id (UUID)";
    if (!optional_id(r->body, "team_id", &team)) bad[nbad] = "team_id", why[nbad++] = "a team id (UUID)";
    else if (team && branch) bad[nbad] = "team_id", why[nbad++] = "give branch_id or team_id, not both";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the invitation is invalid", nbad, bad, why);
        return;
    }
    invite *s = calloc(1, sizeof *s);
    if (!s) {
        fe_reply_oom(r);
        return;
    }
    r->state = s;
    r->state_free = invite_free;
    if (!(s->role = strdup(role)) || (branch && !(s->branch = strdup(branch))) ||
        (team && !(s->team = strdup(team))) || (emailv && !(s->email = strdup(emailv->u.string)))) {
        fe_reply_oom(r);
        return;
    }
    if (userv) {
        for (int i = 0; i <= FV_UUID_STRLEN; i++)
            s->user[i] = (char)tolower((unsigned char)userv->u.string[i]);
    } else {
        if (!code_new(s->code)) {
            fe_reply_error(r, 503, "unavailable", "no random numbers available; retry later");
            return;
        }
        fv_sha256_hex(s->code, strlen(s->code), s->hash);
    }
    fv_id_new(s->id);
    if (s->email) fe_datakeys_current(FE_DATAKEYS_GLOBAL, invite_keyed, r); /* seals it first */
    else invite_send(r, NULL, NULL, NULL, NULL);
}

/* ---- GET /v1/orgs/{org}/invitations ---- */

/* The callers who may invite (an admin of some branch; TOTP when the org requires it) see the
 * invitations they could make: those to a branch they administer (to a team: org admins). */
static const char sql_invitation_list[] = FE_VERDICT_PAGE_SQL(
    "SELECT CASE WHEN NOT fv_is_org_member($1, $2) THEN 'hidden' "
    "            WHEN NOT EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = $1 AND m.org_id = $2 "
    "                             AND m.role = 'admin' AND m.branch_id IS NOT NULL) THEN 'forbidden' "
    "            WHEN (SELECT o.require_admin_totp FROM orgs o WHERE o.id = $2) AND NOT $3::boolean "
    "              THEN 'totp_required' "
    "            ELSE 'ok' END",
    "SELECT i.id, fv_invitation_json(i) AS j FROM invitations i JOIN orgs o ON o.id = i.org_id "
    "WHERE i.org_id = $2 AND fv_is_branch_admin($1, COALESCE(i.branch_id, o.root_branch_id)) "
    "  AND ($4::uuid IS NULL OR i.id > $4::uuid)",
    "id", "page.id::text", "page.j", "$5");

void fe_invitations_list(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation")) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r)};
    fe_verdict_page_list_pii(r, FE_PAGE_UUID, sql_invitation_list, 3, params, "organisation");
}

/* ---- DELETE /v1/orgs/{org}/invitations/{id} ---- */

/* Withdrawn by whoever may make it; an accepted one is 409 (remove the member instead); a
 * withdrawn, declined or expired one is withdrawn again without change (204). */
static const char sql_withdraw[] =
    "WITH i AS (SELECT x.id, x.branch_id, x.accepted_at FROM invitations x "
    "           WHERE x.id = $4 AND x.org_id = $2 FOR UPDATE), "
    "     v AS (SELECT CASE "
    "             WHEN NOT fv_is_org_member($1, $2) OR i.id IS NULL THEN 'hidden' "
    "             WHEN fv_admin_verdict($1, $2, i.branch_id, $3::boolean) <> 'ok' "
    "               THEN fv_admin_verdict($1, $2, i.branch_id, $3::boolean) "
    "             WHEN i.accepted_at IS NOT NULL THEN 'invitation_used' "
    "             ELSE 'ok' END AS verdict "
    "           FROM (SELECT 1) one LEFT JOIN i ON true), "
    "     up AS (UPDATE invitations x SET withdrawn_at = now() "
    "            WHERE x.id = $4 AND x.withdrawn_at IS NULL AND (SELECT verdict FROM v) = 'ok' "
    "            RETURNING x.id), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id) "
    "           SELECT $1, 'invitation.withdraw', 'invitation', up.id::text, NULLIF($5, '')::inet, $2 "
    "           FROM up) "
    "SELECT v.verdict, NULL FROM v";

void fe_invitations_withdraw(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "organisation") || !fe_verdict_id(r, 1, "invitation")) return;
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), r->param[1], r->address};
    fe_verdict_run(r, sql_withdraw, 5, params, 204, "invitation", NULL);
}
