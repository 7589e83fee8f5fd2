/* Pseudonymisation: POST /v1/surveys/{id}/purge {questions: [...], reason} (survey admin, from a
 * session opened with a TOTP code, always: a purge cannot be undone) records the questions in
 * survey_purges, makes a job of kind 'purge' (migration 013) and answers 202 {"job_id"}; a worker
 * removes the answers from every response of the survey and every stored version of its history
 * (worker/jobs/wk_job_purge.c, fv_job_purge_step); entries queued before the purge are stripped as
 * the worker writes them (fv_purge_strip). Questions that no version of the survey's definition has
 * are 422, and so is a survey with an encrypted version (its responses are ciphertext). Audited: 'survey.purge' (who, which questions, why, the job), and at the job's end
 * 'job.done' with the counts. */
#include <string.h>

#include "fe_handlers.h"
#include "fe_verdict.h"
#include "fv_id.h"
#include "fv_json.h"

#define PURGE_MAX_QUESTIONS 1000
#define PURGE_NAME_MAX 256
#define PURGE_REASON_MAX 2000

/* $1 caller, $2 survey, $3 mfa, $4 job id, $5 questions (JSON array of strings), $6 reason,
 * $7 address. */
static const char sql_purge[] =
    "WITH q AS (SELECT DISTINCT x AS name FROM jsonb_array_elements_text($5::jsonb) x), "
    "     v AS (SELECT CASE "
    "             WHEN fv_survey_admin_verdict($1, $2, $3::boolean) <> 'ok' "
    "               THEN fv_survey_admin_verdict($1, $2, $3::boolean) "
    "             WHEN NOT $3::boolean THEN 'totp_required' "
    /* an encrypted version's responses are envelopes: their fields are not answers, and
     * stripping one (a question named like `media`) would destroy ciphertext nobody can restore */
    "             WHEN EXISTS (SELECT 1 FROM survey_versions sv WHERE sv.survey_id = $2 AND sv.public_key IS NOT NULL) "
    "               THEN 'invalid:questions:the survey has encrypted versions: the server cannot read or purge "
    "their responses (purge the decrypted copies)' "
    "             WHEN EXISTS (SELECT 1 FROM q WHERE q.name NOT IN (SELECT fv_survey_question_names($2))) "
    "               THEN 'invalid:questions:no such question in any version of the survey: ' || "
    "                    (SELECT string_agg(q.name, ', ' ORDER BY q.name) FROM q "
    "                     WHERE q.name NOT IN (SELECT fv_survey_question_names($2))) "
    "             ELSE 'ok' END AS verdict), "
    "     ins AS (INSERT INTO jobs AS j (id, org_id, kind, params, created_by) "
    "             SELECT $4, s.org_id, 'purge', jsonb_build_object('survey_id', s.id, "
    "                    'questions', (SELECT jsonb_agg(q.name ORDER BY q.name) FROM q), 'reason', $6::text), $1 "
    "             FROM v, surveys s WHERE v.verdict = 'ok' AND s.id = $2 RETURNING j.id, j.org_id, j.params), "
    "     p AS (INSERT INTO survey_purges (survey_id, question, job_id) "
    "           SELECT $2, q.name, ins.id FROM q, ins), "
    "     a AS (INSERT INTO audit (actor, action, target_type, target_id, address, org_id, detail) "
    "           SELECT $1, 'survey.purge', 'survey', $2::uuid::text, NULLIF($7, '')::inet, ins.org_id, "
    "                  ins.params || jsonb_build_object('job_id', ins.id) FROM ins) "
    "SELECT v.verdict, (SELECT jsonb_build_object('job_id', ins.id)::text FROM ins) FROM v";

void fe_purge_create(fe_req *r)
{
    if (!fe_verdict_id(r, 0, "survey")) return;
    yajl_val qv = fv_json_get(r->body, "questions");
    const char *reason = fv_json_get_str(r->body, "reason"), *bad[2], *why[2];
    size_t nbad = 0;
    bool q_ok = qv && YAJL_IS_ARRAY(qv) && qv->u.array.len >= 1 &&
                qv->u.array.len <= PURGE_MAX_QUESTIONS;
    for (size_t i = 0; q_ok && i < qv->u.array.len; i++) {
        yajl_val e = qv->u.array.values[i];
        q_ok = YAJL_IS_STRING(e) && e->u.string[0] && strlen(e->u.string) <= PURGE_NAME_MAX;
    }
    if (!q_ok) bad[nbad] = "questions", why[nbad++] = "required: 1 to 1000 question names";
    if (!reason || !reason[0] || strlen(reason) > PURGE_REASON_MAX)
        bad[nbad] = "reason", why[nbad++] = "required: why, 1 to 2000 characters";
    if (nbad) {
        fe_reply_error_fields(r, 422, "validation_failed", "the purge request is invalid", nbad, bad,
                              why);
        return;
    }
    fv_jgen *j = fv_jgen_new(); /* owned here; fe_verdict_run copies the parameters */
    if (j) fv_jgen_tree(j, qv);
    const char *questions = j ? fv_jgen_buf(j, NULL) : NULL;
    if (!questions) {
        fv_jgen_free(j);
        fe_reply_oom(r);
        return;
    }
    char id[FV_UUID_STRLEN + 1];
    fv_id_new(id);
    const char *params[] = {r->user->id, r->param[0], fe_verdict_mfa(r), id,
                            questions,   reason,      r->address};
    fe_verdict_run(r, sql_purge, 7, params, 202, "survey", NULL);
    fv_jgen_free(j);
}
