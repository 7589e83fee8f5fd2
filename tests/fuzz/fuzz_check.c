/* Fuzz target: the value checks of common/fv_check.c: calendar dates (fv_check_date), RFC 3339
 * date-times (fv_check_datetime) and geopoints (fv_check_geopoint, fv_geopoint_json), which the
 * form validator, submissions' location/collected_at and sites use.
 *
 * Input: a text checked as a date and as a date-time; when it parses as JSON, the value is
 * checked as a geopoint, and an accepted geopoint's JSON must read back as the same point. */
#include <math.h>
#include <yajl/yajl_tree.h>

#include "fuzz_util.h"
#include "fv_check.h"
#include "fv_json.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size, true);
    bool date = fv_check_date(s), dt = fv_check_datetime(s);
    /* The documented shapes: YYYY-MM-DD, and a date-time that starts with a valid date. */
    if (date && (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !digit(s[0]))) abort();
    if (dt) {
        char d[11];
        memcpy(d, s, 10);
        d[10] = '\0';
        if (!fv_check_date(d) || strlen(s) > 40 || (s[10] != 'T' && s[10] != 't')) abort();
    }
    char err[128];
    yajl_val v = fv_json_parse(s, err, sizeof err);
    if (v) {
        fv_geopoint g;
        if (fv_check_geopoint(v, &g) == NULL) {
            if (!isfinite(g.lat) || !isfinite(g.lon) || fabs(g.lat) > 90 || fabs(g.lon) > 180) abort();
            char *json = fv_geopoint_json(&g);
            if (!json) abort();
            yajl_val back = fv_json_parse(json, err, sizeof err);
            fv_geopoint g2;
            if (!back || fv_check_geopoint(back, &g2) != NULL) abort();
            if (g.lat != g2.lat || g.lon != g2.lon || g.has_altitude != g2.has_altitude ||
                g.has_accuracy != g2.has_accuracy || (g.has_altitude && g.altitude != g2.altitude) ||
                (g.has_accuracy && g.accuracy != g2.accuracy))
                abort();
            yajl_tree_free(back);
            free(json);
        }
        if (YAJL_IS_STRING(v)) (void)(fv_check_date(v->u.string) + fv_check_datetime(v->u.string));
        yajl_tree_free(v);
    }
    free(s);
    return 0;
}
