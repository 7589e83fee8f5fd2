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
    /* scratch: the survey version (at most 12 bytes), received_at and rversion (21 each) */
    char *ver = scratch, *recv = scratch + 12, *rver = scratch + 33;
    snprintf(ver, 12, "%d", e->survey_version);
    snprintf(recv, 21, "%lld", (long long)e->received_at_ms);
    snprintf(rver, scratchlen - 33, "%lld", e->rversion < -1 ? -1LL : e->rversion);
    ARGS(FV_ENVELOPE_F_VERSION);
    ARGS(FV_ENVELOPE_VERSION);
    ARGS(FV_ENVELOPE_F_ID);
    ARGS(e->id);
    ARGS(FV_ENVELOPE_F_SURVEY_ID);
    ARGS(e->survey_id);
    ARGS(FV_ENVELOPE_F_SURVEY_VERSION);
    ARGS(ver);
    ARGS(FV_ENVELOPE_F_DEPLOYMENT_ID);
    ARGS(e->deployment_id);
    ARGS(FV_ENVELOPE_F_SUBMITTED_BY);
    ARGS(e->submitted_by);
    ARGS(FV_ENVELOPE_F_RECEIVED_AT);
    ARGS(recv);
    if (e->sealed) {
        ARGS(FV_ENVELOPE_F_SEALED);
        ARG(e->sealed, e->sealed_len);
    } else {
        ARGS(FV_ENVELOPE_F_DATA);
        ARG(e->data, e->data_len);
        ARGS(FV_ENVELOPE_F_LOCATION);
        ARG(e->location ? e->location : "", e->location ? e->location_len : 0);
    }
    ARGS(FV_ENVELOPE_F_COLLECTED_AT);
    ARG(e->collected_at ? e->collected_at : "", e->collected_at ? e->collected_at_len : 0);
    ARGS(FV_ENVELOPE_F_VERIFIED);
    ARGS(e->verified ? "1" : "0");
    ARGS(FV_ENVELOPE_F_RVERSION);
    ARGS(rver);
    if (!e->sealed && e->openrosa && e->openrosa_len > 0) {
        ARGS(FV_ENVELOPE_F_OPENROSA);
        ARG(e->openrosa, e->openrosa_len);
    }
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
    e->rversion = -1;
    unsigned seen = 0;
    for (size_t i = 0; i + 1 < nitems; i += 2) {
        const char *k = items[i], *v = items[i + 1];
        size_t kl = lens[i], vl = lens[i + 1];
        long long num;
#define IS(name) (kl == sizeof(name) - 1 && memcmp(k, name, kl) == 0)
        if (IS(FV_ENVELOPE_F_VERSION)) {
            if (vl != 1 || v[0] != '1') goto bad;
            seen |= 1u << 0;
        } else if (IS(FV_ENVELOPE_F_ID)) {
            if (copy_uuid(e->id, v, vl)) goto bad;
            seen |= 1u << 1;
        } else if (IS(FV_ENVELOPE_F_SURVEY_ID)) {
            if (copy_uuid(e->survey_id, v, vl)) goto bad;
            seen |= 1u << 2;
        } else if (IS(FV_ENVELOPE_F_SURVEY_VERSION)) {
            if (parse_i64(v, vl, &num) || num < 0 || num > 2147483647) goto bad;
            e->survey_version = (int)num;
            seen |= 1u << 3;
        } else if (IS(FV_ENVELOPE_F_DEPLOYMENT_ID)) {
            if (copy_uuid(e->deployment_id, v, vl)) goto bad;
            seen |= 1u << 4;
        } else if (IS(FV_ENVELOPE_F_SUBMITTED_BY)) {
            if (copy_uuid(e->submitted_by, v, vl)) goto bad;
            seen |= 1u << 5;
        } else if (IS(FV_ENVELOPE_F_RECEIVED_AT)) {
            if (parse_i64(v, vl, &num)) goto bad;
            e->received_at_ms = num;
            seen |= 1u << 6;
        } else if (IS(FV_ENVELOPE_F_DATA)) {
            if (vl == 0) goto bad;
            e->data = v;
            e->data_len = vl;
            seen |= 1u << 7;
        } else if (IS(FV_ENVELOPE_F_LOCATION)) {
            e->location = v;
            e->location_len = vl;
            seen |= 1u << 8;
        } else if (IS(FV_ENVELOPE_F_COLLECTED_AT)) {
            e->collected_at = v;
            e->collected_at_len = vl;
            seen |= 1u << 9;
        } else if (IS(FV_ENVELOPE_F_VERIFIED)) {
            if (vl != 1 || (v[0] != '0' && v[0] != '1')) goto bad;
            e->verified = v[0] == '1';
            seen |= 1u << 10;
        } else if (IS(FV_ENVELOPE_F_RVERSION)) {
            if (parse_i64(v, vl, &num) || num < -1) goto bad;
            e->rversion = num;
        } else if (IS(FV_ENVELOPE_F_OPENROSA)) {
            if (vl == 0) goto bad;
            e->openrosa = v;
            e->openrosa_len = vl;
            seen |= 1u << 11;
        } else if (IS(FV_ENVELOPE_F_SEALED)) {
            if (vl == 0) goto bad;
            e->sealed = v;
            e->sealed_len = vl;
        }
        /* Unknown fields are ignored: a newer front end may add some. */
        continue;
    bad:
        snprintf(err, errlen, "malformed field '%.*s'", (int)(kl > 40 ? 40 : kl), k);
        return -1;
#undef IS
    }
    static const char *names[] = {FV_ENVELOPE_F_VERSION,       FV_ENVELOPE_F_ID,
                                  FV_ENVELOPE_F_SURVEY_ID,     FV_ENVELOPE_F_SURVEY_VERSION,
                                  FV_ENVELOPE_F_DEPLOYMENT_ID, FV_ENVELOPE_F_SUBMITTED_BY,
                                  FV_ENVELOPE_F_RECEIVED_AT,   FV_ENVELOPE_F_DATA,
                                  FV_ENVELOPE_F_LOCATION,      FV_ENVELOPE_F_COLLECTED_AT,
                                  FV_ENVELOPE_F_VERIFIED};
    if (e->sealed) {
        /* The payload is inside: a clear copy beside it would be a forgery or a bug. */
        if (seen & (1u << 7 | 1u << 8 | 1u << 11)) {
            snprintf(err, errlen, "sealed entry with a clear data, location or openrosa field");
            return -1;
        }
        seen |= 1u << 7 | 1u << 8;
    }
    for (int b = 0; b < FV_ENVELOPE_NREQUIRED; b++)
        if (!(seen & (1u << b))) {
            snprintf(err, errlen, "missing field '%s'", names[b]);
            return -1;
        }
    /* Only an unverified submission may leave its survey to the worker. */
    if (e->survey_version == 0 &&
        (e->verified || strcmp(e->survey_id, FV_ENVELOPE_UNKNOWN_SURVEY) != 0)) {
        snprintf(err, errlen, "survey_version 0 without an unverified, survey-less entry");
        return -1;
    }
    return 0;
}

/* ---- dead letters ---- */

static const char *const dead_fields[FV_ENVELOPE_DEAD_NFIELDS] = {FV_ENVELOPE_F_ERROR,
                                                                  FV_ENVELOPE_F_STREAM_ID,
                                                                  FV_ENVELOPE_F_DELIVERIES};

int fv_envelope_dead_argv(const char *error, const char *stream_id, long long deliveries, char *scratch,
                          size_t scratchlen, const char **argv, size_t *argvlen)
{
    snprintf(scratch, scratchlen, "%lld", deliveries);
    const char *values[FV_ENVELOPE_DEAD_NFIELDS] = {error, stream_id, scratch};
    int n = 0;
    for (int i = 0; i < FV_ENVELOPE_DEAD_NFIELDS; i++) {
        argv[n] = dead_fields[i], argvlen[n] = strlen(dead_fields[i]), n++;
        argv[n] = values[i], argvlen[n] = strlen(values[i]), n++;
    }
    return n;
}

static bool item_is(const char *s, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(s, name, len) == 0;
}

void fv_envelope_dead_parse(fv_dead_letter *d, const char *const *items, const size_t *lens,
                            size_t nitems)
{
    memset(d, 0, sizeof *d);
    d->deliveries = -1;
    size_t n = nitems & ~(size_t)1;
    bool seen[FV_ENVELOPE_DEAD_NFIELDS] = {false};
    while (n >= 2) {
        const char *k = items[n - 2], *v = items[n - 1];
        size_t kl = lens[n - 2], vl = lens[n - 1];
        int x = 0;
        while (x < FV_ENVELOPE_DEAD_NFIELDS && (seen[x] || !item_is(k, kl, dead_fields[x]))) x++;
        if (x == FV_ENVELOPE_DEAD_NFIELDS) break;
        seen[x] = true;
        if (x == 0) d->error = v, d->error_len = vl;
        else if (x == 1) d->stream_id = v, d->stream_id_len = vl;
        else {
            long long num;
            if (parse_i64(v, vl, &num) == 0 && num >= 0) d->deliveries = num;
        }
        n -= 2;
    }
    d->own_items = n;
}

long fv_envelope_find(const char *const *items, const size_t *lens, size_t nitems, const char *name)
{
    for (size_t i = nitems & ~(size_t)1; i >= 2; i -= 2)
        if (item_is(items[i - 2], lens[i - 2], name)) return (long)(i - 1);
    return -1;
}
