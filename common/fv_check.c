/* Value checks shared by forms and handlers: dates, date-times, geopoints. */
#include "fv_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fv_json.h"

/* Reads n decimal digits of s into *out; false when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return days[m - 1];
}

/* The date in the first 10 characters of s (which must have them). */
static bool date_ok(const char *s)
{
    int y, m, d;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &m) || s[7] != '-' ||
        !digits(s + 8, 2, &d))
        return false;
    return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

bool fv_check_date(const char *s)
{
    return strlen(s) == 10 && date_ok(s);
}

bool fv_check_datetime(const char *s)
{
    size_t len = strlen(s);
    if (len < 20 || len > 40 || !date_ok(s) || (s[10] != 'T' && s[10] != 't')) return false;
    int hh, mm, ss;
    if (!digits(s + 11, 2, &hh) || s[13] != ':' || !digits(s + 14, 2, &mm) || s[16] != ':' ||
        !digits(s + 17, 2, &ss))
        return false;
    if (hh > 23 || mm > 59 || ss > 59) return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9' && n <= 9) {
            p++;
            n++;
        }
        if (n < 1 || n > 9) return false;
    }
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') return true;
    if (*p != '+' && *p != '-') return false;
    int oh, om;
    if (strlen(p) != 6 || !digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om)) return false;
    if (oh > 14 || om > 59) return false;
    /* The instant in UTC stays within 0001-01-01 and 9999-12-31 too: PostgreSQL would store
     * 0001-01-01T00:30+01:00 in 1 BC and 9999-12-31T23:30-01:00 in year 10000, and give back
     * text that is no RFC 3339 date-time. Only the first and the last day can cross. */
    int y = 0, mo = 0, d = 0;
    digits(s, 4, &y);
    digits(s + 5, 2, &mo);
    digits(s + 8, 2, &d);
    int utc_min = hh * 60 + mm - (*p == '+' ? 1 : -1) * (oh * 60 + om);
    if (y == 1 && mo == 1 && d == 1 && utc_min < 0) return false;
    if (y == 9999 && mo == 12 && d == 31 && utc_min >= 24 * 60) return false;
    return true;
}

/* A finite number within lo..hi. */
static bool number_in(yajl_val v, double lo, double hi, double *out)
{
    if (!v || !YAJL_IS_NUMBER(v) || v->u.number.r == NULL) return false;
    double d = strtod(v->u.number.r, NULL);
    if (!isfinite(d) || d < lo || d > hi) return false;
    *out = d;
    return true;
}

const char *fv_check_geopoint(yajl_val v, fv_geopoint *out)
{
    fv_geopoint g = {0};
    if (!v || !YAJL_IS_OBJECT(v)) return "expected geopoint";
    yajl_val lat = fv_json_get(v, "lat"), lon = fv_json_get(v, "lon");
    if (lat == NULL || lon == NULL) return "expected geopoint";
    for (size_t i = 0; i < v->u.object.len; i++) {
        const char *k = v->u.object.keys[i];
        if (strcmp(k, "lat") && strcmp(k, "lon") && strcmp(k, "altitude") && strcmp(k, "accuracy"))
            return "invalid geopoint";
    }
    if (!number_in(lat, -90, 90, &g.lat)) return "invalid latitude";
    if (!number_in(lon, -180, 180, &g.lon)) return "invalid longitude";
    yajl_val alt = fv_json_get(v, "altitude"), acc = fv_json_get(v, "accuracy");
    if (alt && !YAJL_IS_NULL(alt)) {
        if (!number_in(alt, -HUGE_VAL, HUGE_VAL, &g.altitude)) return "invalid altitude";
        g.has_altitude = true;
    }
    if (acc && !YAJL_IS_NULL(acc)) {
        if (!number_in(acc, 0, 1e7, &g.accuracy)) return "invalid accuracy";
        g.has_accuracy = true;
    }
    if (out) *out = g;
    return NULL;
}

char *fv_geopoint_json(const fv_geopoint *g)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf, "{\"lat\":%.17g,\"lon\":%.17g", g->lat, g->lon);
    if (g->has_altitude)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"altitude\":%.17g", g->altitude);
    if (g->has_accuracy)
        n += snprintf(buf + n, sizeof buf - (size_t)n, ",\"accuracy\":%.17g", g->accuracy);
    snprintf(buf + n, sizeof buf - (size_t)n, "}");
    return strdup(buf);
}
