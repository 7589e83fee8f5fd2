/* Value checks shared by the form validator and the request handlers: calendar dates, RFC 3339
 * date-times and geopoints. One rule each, so what a form accepts, what a submission's envelope
 * accepts and what PostgreSQL later casts never disagree. */
#ifndef FV_CHECK_H
#define FV_CHECK_H

#include <stdbool.h>
#include <yajl/yajl_tree.h>

/* "YYYY-MM-DD": a real calendar date, year 0001 to 9999 (PostgreSQL has no year 0). */
bool fv_check_date(const char *s);

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM), 't' and 'z' in either
 * case, a date as fv_check_date, no leap second (:60), an offset of at most 14:59 (every offset
 * in use; PostgreSQL's timestamptz takes all of them), at most 40 bytes. */
bool fv_check_datetime(const char *s);

/* A geopoint: {lat: -90..90, lon: -180..180, altitude?: number, accuracy?: 0..1e7}, finite
 * numbers, no other keys; a null altitude or accuracy counts as absent. */
typedef struct fv_geopoint {
    double lat, lon, altitude, accuracy;
    bool has_altitude, has_accuracy;
} fv_geopoint;

/* Checks v (borrowed; NULL counts as not an object). Returns NULL and fills *out (may be NULL)
 * when v is a geopoint, else the reason (a static string): "expected geopoint", "invalid
 * geopoint" (an unknown key), "invalid latitude", "invalid longitude", "invalid altitude",
 * "invalid accuracy". */
const char *fv_check_geopoint(yajl_val v, fv_geopoint *out);

/* The geopoint as JSON text {"lat":..,"lon":..[,"altitude":..][,"accuracy":..]} with every
 * double written exactly (%.17g). Caller frees; NULL when out of memory. */
char *fv_geopoint_json(const fv_geopoint *g);

#endif
