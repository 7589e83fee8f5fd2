/* The spool: an append-only file of checksummed records where a front-end child keeps
 * submissions while Redis is down, made durable (fdatasync) before the 202, replayed into Redis
 * when it returns, and truncated only after Redis has taken every record.
 *
 * File: "FVSPOOL1", then records: u32 magic "FVR1" | u32 payload length | 8 bytes of the
 * payload's SHA-256 | payload. A payload is the stream entry: u32 item count, then per item
 * u32 length + bytes (field, value, field, value, ...). All integers little-endian.
 *
 * A torn last record (a crash mid-write) is detected on open and cut off; a complete record
 * whose checksum does not match is skipped with a warning; neither is ever read as data.
 *
 * Threads: fdatasync and file reads run on the spool's own thread. Completions are handed back
 * through an eventfd (fv_spool_notify_fd) that the caller's event loop watches; the callbacks
 * run in the caller's thread, inside fv_spool_run_completions. */
#ifndef FV_SPOOL_H
#define FV_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FV_SPOOL_MAX_ITEMS 64
/* A record holds one entry: an OpenRosa submission of openrosa_max_body_bytes (11 MiB at most)
 * with its attachments base64-encoded in the openrosa field (x 4/3), then sealed, which
 * base64-encodes it once more (fv_qseal.h, x 4/3): about 20 MiB. */
#define FV_SPOOL_MAX_RECORD (24u * 1024 * 1024)

typedef struct fv_spool fv_spool;

/* One record read back: items borrow from the record's own buffer. Owned by a fv_spool_batch. */
typedef struct fv_spool_record {
    size_t n;
    const char *items[FV_SPOOL_MAX_ITEMS];
    size_t lens[FV_SPOOL_MAX_ITEMS];
    char *buf; /* owned */
} fv_spool_record;

/* Records read from the spool, in file order; freed with fv_spool_batch_free. */
typedef struct fv_spool_batch {
    size_t n;
    fv_spool_record *records; /* owned */
    uint64_t next_offset;     /* where the next read continues */
    bool eof;                 /* no record after these */
} fv_spool_batch;

/* err is 0 or an errno value. */
typedef void (*fv_spool_append_cb)(int err, void *arg);
/* batch is handed over to the callback (it frees it); NULL with err on failure. */
typedef void (*fv_spool_read_cb)(int err, fv_spool_batch *batch, void *arg);
typedef void (*fv_spool_truncate_cb)(int err, void *arg);

/* Opens (creating) the spool at path, takes an exclusive lock on it (a second opener fails),
 * cuts a torn tail, counts the records, and starts the writer thread. max_bytes bounds the
 * file (appends fail with ENOSPC past it). Returns NULL with a message in err. */
fv_spool *fv_spool_open(const char *path, uint64_t max_bytes, char *err, size_t errlen);
/* Stops the thread (operations still queued complete with ECANCELED), closes and frees. */
void fv_spool_close(fv_spool *s);

/* The descriptor to watch for readability; then call fv_spool_run_completions. */
int fv_spool_notify_fd(const fv_spool *s);
void fv_spool_run_completions(fv_spool *s);

/* Appends one record (items are copied); cb runs once it is on disk (or failed). Appends
 * queued together share one write and one fdatasync (group commit). Returns -1 (cb not
 * called) when the record is too large or memory ran out. */
int fv_spool_append(fv_spool *s, const char *const *items, const size_t *lens, size_t n,
                    fv_spool_append_cb cb, void *arg);
/* Reads up to max records starting at offset (0 = the first record). */
int fv_spool_read(fv_spool *s, uint64_t offset, size_t max, fv_spool_read_cb cb, void *arg);
/* Empties the spool (keeps the header) and syncs. */
int fv_spool_truncate(fv_spool *s, fv_spool_truncate_cb cb, void *arg);

/* Records on disk and not yet truncated (appends completed minus truncations), and the size. */
uint64_t fv_spool_pending(const fv_spool *s);
uint64_t fv_spool_bytes(const fv_spool *s);

void fv_spool_batch_free(fv_spool_batch *b);

/* Fills argv/lens (3 + FV_SPOOL_MAX_ITEMS slots) with `XADD <stream> * <the record's items>`,
 * borrowing from r and stream; returns argc. */
int fv_spool_record_xadd_argv(const fv_spool_record *r, const char *stream, const char **argv,
                              size_t *lens);

/* Synchronous whole-file reading for tools (fvctl spool-replay): calls fn for each good record
 * in order; stops early if fn returns non-zero. Returns the number of records, or -1 with err. */
long fv_spool_scan_file(const char *path, int (*fn)(const fv_spool_record *r, void *arg), void *arg,
                        char *err, size_t errlen);

/* For tools (fvctl spool-replay): takes the file's lock (fails with -2 when a running front end
 * holds it), calls fn for each good record in order, and when every call returned 0 empties the
 * file (header kept) and syncs it. Returns the number of records handed over, -2 (in use) or -1
 * with err. Records after a failed fn stay in the file, which is then left untouched. */
long fv_spool_drain_file(const char *path, int (*fn)(const fv_spool_record *r, void *arg), void *arg,
                         char *err, size_t errlen);

#endif
