/* CSV cells for exports (RFC 4180, UTF-8): every cell quoted, quotes doubled, and a cell that a
 * spreadsheet would read as a formula neutralised (OWASP "CSV injection"): a value starting with
 * '=', '+', '-', '@', a tab or a carriage return gets a leading apostrophe, unless the whole value
 * is a plain decimal number (-12, -0.5: no formula can hide there, and a negative answer stays a
 * number). Knows nothing of PostgreSQL. */
#ifndef FV_CSV_H
#define FV_CSV_H

#include <stdbool.h>
#include <stddef.h>

/* A growing output buffer; owned by its user (fv_csv_buf_free). */
typedef struct fv_csv_buf {
    char *p;
    size_t len, cap;
} fv_csv_buf;

void fv_csv_buf_free(fv_csv_buf *b);
/* Empties b, keeping its memory. */
void fv_csv_buf_reset(fv_csv_buf *b);

/* True when a spreadsheet could read v (len bytes) as a formula (the rule above). */
bool fv_csv_needs_neutralising(const char *v, size_t len);

/* Appends one cell (v may be NULL: an empty cell), preceded by a comma unless first. Returns
 * false when memory runs out (b keeps what it had). */
bool fv_csv_cell(fv_csv_buf *b, const char *v, size_t len, bool first);
/* Appends the record's end, CRLF. */
bool fv_csv_end_row(fv_csv_buf *b);

#endif
