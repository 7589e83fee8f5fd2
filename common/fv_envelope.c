/* The queue envelope: encoding and decoding of a submission as stream entry fields. */
#include "fv_envelope.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fv_envelope_xadd_argv(const fv_envelope *e, const char *stream, char *scratch, size_t scratchlen,
                          const char **argv, size_t *argvlen)
{
    int n = 0;
#define ARG(s, l) (argv[n] = (s), argvlen[n] = (l), n++)
#define ARGS(s) ARG((s), strlen(s))
    ARGS("XADD");
    ARGS(stream);
    ARGS("*");
    char *ver = scratch, *recv = scratch + 24;
    snprintf(ver, 24, "%d", e->survey_version);
    snprintf(recv, scratchlen - 24, "%lld", (long long)e->received_at_ms);
    ARGS("v");            ARGS(FV_ENVELOPE_VERSION);
    ARGS("id");           ARGS(e->id);
    ARGS("survey_id");    ARGS(e->survey_id);
    ARGS("survey_version"); ARGS(ver);
    ARGS("deployment_id"); ARGS(e->deployment_id);
    ARGS("submitted_by"); ARGS(e->submitted_by);
    ARGS("received_at");  ARGS(recv);
    ARGS("data");         ARG(e->data, e->data_len);
    ARGS("location");     ARG(e->location ? e->location : "", e->location ? e->location_len : 0);
    ARGS("collected_at"); ARG(e->collected_at ? e->collected_at : "", e->collected_at ? e->collected_at_len : 0);
    ARGS("verified");     ARGS(e->verified ? "1" : "0");
#undef ARG
#undef ARGS
    return n;
}

static int copy_uuid(char dst[FV_UUID_STRLEN + 1], const char *s, size_t len)
{
    if (len != FV_UUID_STRLEN) return -1;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return fv_id_valid(dst) ? 0 : -1;
}

static int parse_i64(const char *s, size_t len, long long *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int fv_envelope_parse(fv_envelope *e, const char *const *items, const size_t *lens, size_t nitems,
                      char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    unsigned seen = 0;
    for (size_t i = 0; i + 1 < nitems; i += 2) {
        const char *k = items[i], *v = items[i + 1];
        size_t kl = lens[i], vl = lens[i + 1];
        long long num;
#define IS(name) (kl == sizeof(name) - 1 && memcmp(k, name, kl) == 0)
        if (IS("v")) {
            if (vl != 1 || v[0] != '1') goto bad;
            seen |= 1u << 0;
        } else if (IS("id")) {
            if (copy_uuid(e->id, v, vl)) goto bad;
            seen |= 1u << 1;
        } else if (IS("survey_id")) {
            if (copy_uuid(e->survey_id, v, vl)) goto bad;
            seen |= 1u << 2;
        } else if (IS("survey_version")) {
            if (parse_i64(v, vl, &num) || num < 0 || num > 2147483647) goto bad;
            e->survey_version = (int)num;
            seen |= 1u << 3;
        } else if (IS("deployment_id")) {
            if (copy_uuid(e->deployment_id, v, vl)) goto bad;
            seen |= 1u << 4;
        } else if (IS("submitted_by")) {
            if (copy_uuid(e->submitted_by, v, vl)) goto bad;
            seen |= 1u << 5;
        } else if (IS("received_at")) {
            if (parse_i64(v, vl, &num)) goto bad;
            e->received_at_ms = num;
            seen |= 1u << 6;
        } else if (IS("data")) {
            if (vl == 0) goto bad;
            e->data = v;
            e->data_len = vl;
            seen |= 1u << 7;
        } else if (IS("location")) {
            e->location = v;
            e->location_len = vl;
            seen |= 1u << 8;
        } else if (IS("collected_at")) {
            e->collected_at = v;
            e->collected_at_len = vl;
            seen |= 1u << 9;
        } else if (IS("verified")) {
            if (vl != 1 || (v[0] != '0' && v[0] != '1')) goto bad;
            e->verified = v[0] == '1';
            seen |= 1u << 10;
        }
        /* Unknown fields are ignored: a newer front end may add some. */
        continue;
    bad:
        snprintf(err, errlen, "malformed field '%.*s'", (int)(kl > 40 ? 40 : kl), k);
        return -1;
#undef IS
    }
    static const char *names[] = {"v", "id", "survey_id", "survey_version", "deployment_id",
                                  "submitted_by", "received_at", "data", "location",
                                  "collected_at", "verified"};
    for (int b = 0; b < FV_ENVELOPE_NFIELDS; b++)
        if (!(seen & (1u << b))) {
            snprintf(err, errlen, "missing field '%s'", names[b]);
            return -1;
        }
    /* Only an unverified submission may leave its survey to the worker. */
    if (e->survey_version == 0 && (e->verified || strcmp(e->survey_id, FV_ENVELOPE_UNKNOWN_SURVEY) != 0)) {
        snprintf(err, errlen, "survey_version 0 without an unverified, survey-less entry");
        return -1;
    }
    return 0;
}
