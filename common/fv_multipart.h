/* A streaming multipart/form-data parser (RFC 7578 over RFC 2046): fed the body in pieces of any
 * size, it calls back with each part's headers and its data as runs of the caller's own bytes
 * (nothing is copied but a part's header lines, at most FV_MULTIPART_MAX_HEAD bytes). Knows
 * nothing of HTTP. Debian 12 packages no small C multipart library (gmime parses whole MIME
 * messages for mail), hence this one (its fuzz target: tests/fuzz/fuzz_multipart.c).
 *
 * What it refuses (fv_multipart_feed returns -1, fv_multipart_error says why): a part head over
 * FV_MULTIPART_MAX_HEAD bytes or FV_MULTIPART_MAX_HEADERS lines, a header line without a colon
 * or with a bare LF, a NUL byte in a part head, a name or filename over FV_MULTIPART_MAX_NAME
 * bytes, a part without Content-Disposition: form-data and a name, more than
 * max_parts parts, anything after the closing delimiter but CRLF or padding (ignored: the
 * epilogue), and (fv_multipart_finish) a body that ends before its closing delimiter. The
 * preamble before the first delimiter is skipped, as RFC 2046 says. */
#ifndef FV_MULTIPART_H
#define FV_MULTIPART_H
#include <stdbool.h>
#include <stddef.h>

#define FV_MULTIPART_MAX_BOUNDARY 70 /* RFC 2046 */
#define FV_MULTIPART_MAX_HEAD 4096   /* bytes of one part's header lines */
#define FV_MULTIPART_MAX_HEADERS 16  /* header lines of one part */
#define FV_MULTIPART_MAX_NAME 256    /* bytes of a part's name, filename and content type */
#define FV_MULTIPART_STR_(x) #x
#define FV_MULTIPART_STR(x) FV_MULTIPART_STR_(x)

/* One part's head, as the callbacks see it (borrowed: valid during part_begin only). */
typedef struct fv_multipart_part {
    const char *name;         /* the form field's name (Content-Disposition name=) */
    const char *filename;     /* filename=, or NULL */
    const char *content_type; /* Content-Type, or NULL (text/plain by RFC 7578) */
} fv_multipart_part;

typedef struct fv_multipart_cbs {
    /* A part begins. Return false to stop the parse (fv_multipart_feed then returns -1 with the
     * error "refused by the caller"). */
    bool (*part_begin)(void *arg, const fv_multipart_part *part);
    /* len bytes of the current part's data (borrowed: from the buffer given to feed, or from the
     * parser's own delimiter text). Return false to stop the parse. */
    bool (*part_data)(void *arg, const char *data, size_t len);
    /* The current part ended (its delimiter came). Return false to stop the parse. */
    bool (*part_end)(void *arg);
} fv_multipart_cbs;

typedef struct fv_multipart fv_multipart; /* owned by the caller (fv_multipart_free) */

/* The boundary parameter of a Content-Type header value ("multipart/form-data; boundary=..."),
 * unquoted, into out (at least FV_MULTIPART_MAX_BOUNDARY + 1 bytes). False when the type is not
 * multipart/form-data, the boundary is missing, longer than 70 characters, empty, or holds a
 * character RFC 2046 does not allow in one. */
bool fv_multipart_boundary(const char *content_type, char *out, size_t outlen);
/* A parser for boundary (borrowed, copied) calling cbs with arg (both borrowed, for the parser's
 * life); at most max_parts parts. NULL when out of memory or boundary is unusable. */
fv_multipart *fv_multipart_new(const char *boundary, const fv_multipart_cbs *cbs, void *arg,
                               size_t max_parts);
void fv_multipart_free(fv_multipart *m);
/* Feeds len more bytes of the body. 0, or -1 once the body is malformed or a callback stopped it
 * (every later call returns -1 too). */
int fv_multipart_feed(fv_multipart *m, const char *buf, size_t len);
/* The body ended: 0 when the closing delimiter was seen, else -1. */
int fv_multipart_finish(fv_multipart *m);
/* Why the parse failed ("" while it has not). Borrowed. */
const char *fv_multipart_error(const fv_multipart *m);
/* Parts begun so far. */
size_t fv_multipart_parts(const fv_multipart *m);
#endif
