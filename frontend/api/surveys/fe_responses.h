/* What the response handlers share (fe_responses.c reads, fe_review.c changes): the columns of
 * a response as read, and how one is written as JSON. */
#ifndef FE_RESPONSES_H
#define FE_RESPONSES_H

#include <libpq-fe.h>

#include "fv_json.h"

/* Columns of a response as read, in order (write_response). DATA is the answers as the caller
 * may see them: whole for survey admins, without the confidential questions for everybody else
 * (fv_confidential_names of the version answered). */
#define RESPONSE_COLS(DATA)                                                                    \
    "r.id, r.survey_id, r.deployment_id, r.status, (" DATA ")::text, r.location::text, "      \
    "r.submitted_by, fv_ts(r.created_at), fv_ts(r.updated_at), r.version, fv_ts(r.collected_at), " \
    "r.survey_version, r.stage, r.rejection_message"
/* The answers for a caller who is survey admin when ADMIN is true. */
#define MASKED_DATA(ADMIN)                                                                     \
    "CASE WHEN " ADMIN " THEN r.data ELSE r.data - (SELECT fv_confidential_names(v.definition) " \
    "FROM survey_versions v WHERE v.survey_id = r.survey_id AND v.version = r.survey_version) END"

/* Writes the response whose RESPONSE_COLS start at column base of row (borrows p). */
void fe_responses_write_at(fv_jgen *j, PGresult *p, int row, int base);

#endif
