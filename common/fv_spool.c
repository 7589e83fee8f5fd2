/* The spool: an append-only, checksummed, group-committed file of stream entries. */
#include "fv_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fv_log.h"

#define FILE_MAGIC "FVSPOOL1"
#define FILE_HDR 8
#define REC_MAGIC 0x31525646u /* "FVR1" little-endian */
#define REC_HDR 16

typedef enum { OP_APPEND, OP_READ, OP_TRUNCATE } op_kind;

/* One queued operation: owned by the spool from submission until its callback has run. */
typedef struct op {
    struct op *next;
    op_kind kind;
    int err;
    void *cb;
    void *arg;
    char *rec; /* OP_APPEND: the encoded record (owned) */
    size_t reclen;
    uint64_t offset; /* OP_READ */
    size_t max;
    fv_spool_batch *batch; /* OP_READ result, handed to the callback */
} op;

struct fv_spool {
    int fd, efd;
    uint64_t max_bytes;
    uint64_t size;    /* file size; written by the thread, read anywhere (atomic) */
    uint64_t pending; /* records on disk (atomic) */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    op *queue, *queue_tail; /* submitted, guarded by mu */
    op *done, *done_tail;   /* completed, guarded by mu */
};

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void checksum(const void *data, size_t len, unsigned char out[8])
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL);
    memcpy(out, md, 8);
}

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n == -1 && errno == EINTR) continue;
        if (n == -1) return -1;
        if (n == 0) break;
        got += (size_t)n;
    }
    return (int)(got == len);
}

/* Decodes a payload into r (items borrow from buf, which r takes). Returns 0 or -1. */
static int decode(char *buf, size_t len, fv_spool_record *r)
{
    const unsigned char *p = (const unsigned char *)buf;
    if (len < 4) return -1;
    uint32_t n = get32(p);
    if (n > FV_SPOOL_MAX_ITEMS) return -1;
    size_t off = 4;
    for (uint32_t i = 0; i < n; i++) {
        if (len - off < 4) return -1;
        uint32_t l = get32(p + off);
        off += 4;
        if (l > len - off) return -1;
        r->items[i] = buf + off;
        r->lens[i] = l;
        off += l;
    }
    if (off != len) return -1;
    r->n = n;
    r->buf = buf;
    return 0;
}

typedef enum {
    PARSE_RECORD, /* *r filled, *next after it */
    PARSE_END,    /* offset is the end of the file */
    PARSE_TORN,   /* an incomplete record runs to the end of the file */
    PARSE_BAD,    /* a damaged record or garbage; *next is where the next good record starts
                     (or the end of the file) */
    PARSE_IOERR,
} parse_result;

/* Reads the record at off without looking further: PARSE_RECORD, PARSE_END, PARSE_TORN (it
 * runs past the end of the file), PARSE_BAD (not a good record here), or PARSE_IOERR. */
static parse_result parse_here(int fd, uint64_t off, uint64_t size, fv_spool_record *r, uint64_t *next)
{
    if (off >= size) return PARSE_END;
    unsigned char h[REC_HDR];
    if (size - off < REC_HDR) return PARSE_TORN;
    if (pread_full(fd, h, REC_HDR, off) != 1) return PARSE_IOERR;
    uint32_t len = get32(h + 4);
    if (get32(h) != REC_MAGIC || len > FV_SPOOL_MAX_RECORD) return PARSE_BAD;
    if (size - off - REC_HDR < len) return PARSE_TORN;
    char *buf = malloc(len ? len : 1);
    if (!buf) return PARSE_IOERR;
    if (pread_full(fd, buf, len, off + REC_HDR) != 1) {
        free(buf);
        return PARSE_IOERR;
    }
    unsigned char sum[8];
    checksum(buf, len, sum);
    if (memcmp(sum, h + 8, 8) != 0 || decode(buf, len, r) != 0) {
        free(buf);
        return PARSE_BAD;
    }
    *next = off + REC_HDR + len;
    return PARSE_RECORD;
}

/* Reads one good record at off (size = file size). A damaged record or garbage gives PARSE_BAD
 * with *next at the next position where a whole good record starts; when none follows, the
 * damage is a torn tail (PARSE_TORN). */
static parse_result parse_one(int fd, uint64_t off, uint64_t size, fv_spool_record *r, uint64_t *next)
{
    parse_result pr = parse_here(fd, off, size, r, next);
    if (pr != PARSE_BAD && pr != PARSE_TORN) return pr;
    for (uint64_t at = off + 1; at + REC_HDR <= size; at++) {
        unsigned char m[4];
        if (pread_full(fd, m, 4, at) != 1) return PARSE_IOERR;
        if (get32(m) != REC_MAGIC) continue;
        fv_spool_record probe;
        uint64_t after;
        parse_result p2 = parse_here(fd, at, size, &probe, &after);
        if (p2 == PARSE_RECORD) {
            free(probe.buf);
            *next = at;
            return PARSE_BAD;
        }
        if (p2 == PARSE_IOERR) return p2;
    }
    return PARSE_TORN;
}

/* ---- the writer thread ---- */

static void finish(fv_spool *s, op *o)
{
    pthread_mutex_lock(&s->mu);
    o->next = NULL;
    if (s->done_tail) s->done_tail->next = o;
    else s->done = o;
    s->done_tail = o;
    pthread_mutex_unlock(&s->mu);
    uint64_t one = 1;
    ssize_t w = write(s->efd, &one, sizeof one);
    (void)w;
}

/* Writes a run of appends with one write and one fdatasync. */
static void do_appends(fv_spool *s, op **ops, size_t n)
{
    uint64_t start = __atomic_load_n(&s->size, __ATOMIC_RELAXED), total = 0;
    size_t take = 0;
    for (; take < n; take++) {
        if (start + total + ops[take]->reclen > s->max_bytes) break;
        total += ops[take]->reclen;
    }
    int err = 0;
    if (take > 0) {
        char *buf = malloc(total);
        if (!buf) {
            err = ENOMEM;
        } else {
            size_t off = 0;
            for (size_t i = 0; i < take; i++) {
                memcpy(buf + off, ops[i]->rec, ops[i]->reclen);
                off += ops[i]->reclen;
            }
            size_t done = 0;
            while (done < total) {
                ssize_t w = pwrite(s->fd, buf + done, total - done, (off_t)(start + done));
                if (w == -1 && errno == EINTR) continue;
                if (w == -1) {
                    err = errno;
                    break;
                }
                done += (size_t)w;
            }
            free(buf);
            if (!err && fdatasync(s->fd) == -1) err = errno;
            if (err) {
                /* Leave no partial record behind: cut back to where this group started. */
                if (ftruncate(s->fd, (off_t)start) == -1) { /* the open-time scan cuts it */
                }
                fv_error("spool write failed: %s", strerror(err));
            } else {
                __atomic_store_n(&s->size, start + total, __ATOMIC_RELAXED);
                __atomic_fetch_add(&s->pending, take, __ATOMIC_RELAXED);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        ops[i]->err = i < take ? err : ENOSPC;
        finish(s, ops[i]);
    }
}

static void do_read(fv_spool *s, op *o)
{
    fv_spool_batch *b = calloc(1, sizeof *b);
    uint64_t size = __atomic_load_n(&s->size, __ATOMIC_RELAXED);
    uint64_t off = o->offset < FILE_HDR ? FILE_HDR : o->offset;
    if (!b || !(b->records = calloc(o->max ? o->max : 1, sizeof *b->records))) {
        free(b);
        o->err = ENOMEM;
        finish(s, o);
        return;
    }
    while (b->n < o->max) {
        uint64_t next = off;
        parse_result pr = parse_one(s->fd, off, size, &b->records[b->n], &next);
        if (pr == PARSE_RECORD) {
            b->n++;
            off = next;
        } else if (pr == PARSE_BAD) {
            fv_warn("spool: skipping a damaged record at offset %llu", (unsigned long long)off);
            off = next;
        } else if (pr == PARSE_IOERR) {
            o->err = errno ? errno : EIO;
            break;
        } else {
            b->eof = true; /* END, or a torn tail (cut at open; cannot appear later) */
            break;
        }
    }
    if (off >= size) b->eof = true;
    b->next_offset = off;
    if (o->err) {
        fv_spool_batch_free(b);
        b = NULL;
    }
    o->batch = b;
    finish(s, o);
}

static void do_truncate(fv_spool *s, op *o)
{
    if (ftruncate(s->fd, FILE_HDR) == -1 || fdatasync(s->fd) == -1) {
        o->err = errno;
    } else {
        __atomic_store_n(&s->size, FILE_HDR, __ATOMIC_RELAXED);
        __atomic_store_n(&s->pending, 0, __ATOMIC_RELAXED);
    }
    finish(s, o);
}

static void *writer_main(void *arg)
{
    fv_spool *s = arg;
    op *batch[256];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->queue && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->queue && s->stop) {
            pthread_mutex_unlock(&s->mu);
            return NULL;
        }
        /* Take a run of appends (group commit), or one other operation, keeping order. */
        size_t n = 0;
        if (s->queue->kind == OP_APPEND) {
            while (s->queue && s->queue->kind == OP_APPEND && n < 256) {
                batch[n++] = s->queue;
                s->queue = s->queue->next;
            }
        } else {
            batch[n++] = s->queue;
            s->queue = s->queue->next;
        }
        if (!s->queue) s->queue_tail = NULL;
        pthread_mutex_unlock(&s->mu);
        if (batch[0]->kind == OP_APPEND) do_appends(s, batch, n);
        else if (batch[0]->kind == OP_READ) do_read(s, batch[0]);
        else do_truncate(s, batch[0]);
    }
}

static int submit(fv_spool *s, op *o)
{
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    o->next = NULL;
    if (s->queue_tail) s->queue_tail->next = o;
    else s->queue = o;
    s->queue_tail = o;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ---- the caller's side ---- */

int fv_spool_append(fv_spool *s, const char *const *items, const size_t *lens, size_t n,
                    fv_spool_append_cb cb, void *arg)
{
    if (n > FV_SPOOL_MAX_ITEMS) return -1;
    size_t payload = 4;
    for (size_t i = 0; i < n; i++) payload += 4 + lens[i];
    if (payload > FV_SPOOL_MAX_RECORD) return -1;
    op *o = calloc(1, sizeof *o);
    char *rec = malloc(REC_HDR + payload);
    if (!o || !rec) {
        free(o);
        free(rec);
        return -1;
    }
    unsigned char *p = (unsigned char *)rec + REC_HDR;
    put32(p, (uint32_t)n);
    size_t off = 4;
    for (size_t i = 0; i < n; i++) {
        put32(p + off, (uint32_t)lens[i]);
        memcpy(p + off + 4, items[i], lens[i]);
        off += 4 + lens[i];
    }
    put32((unsigned char *)rec, REC_MAGIC);
    put32((unsigned char *)rec + 4, (uint32_t)payload);
    checksum(p, payload, (unsigned char *)rec + 8);
    o->kind = OP_APPEND;
    o->rec = rec;
    o->reclen = REC_HDR + payload;
    o->cb = (void *)cb;
    o->arg = arg;
    if (submit(s, o) != 0) {
        free(rec);
        free(o);
        return -1;
    }
    return 0;
}

int fv_spool_read(fv_spool *s, uint64_t offset, size_t max, fv_spool_read_cb cb, void *arg)
{
    op *o = calloc(1, sizeof *o);
    if (!o) return -1;
    o->kind = OP_READ;
    o->offset = offset;
    o->max = max;
    o->cb = (void *)cb;
    o->arg = arg;
    if (submit(s, o) != 0) {
        free(o);
        return -1;
    }
    return 0;
}

int fv_spool_truncate(fv_spool *s, fv_spool_truncate_cb cb, void *arg)
{
    op *o = calloc(1, sizeof *o);
    if (!o) return -1;
    o->kind = OP_TRUNCATE;
    o->cb = (void *)cb;
    o->arg = arg;
    if (submit(s, o) != 0) {
        free(o);
        return -1;
    }
    return 0;
}

static void complete(op *o)
{
    switch (o->kind) {
    case OP_APPEND: ((fv_spool_append_cb)o->cb)(o->err, o->arg); break;
    case OP_READ: ((fv_spool_read_cb)o->cb)(o->err, o->batch, o->arg); break;
    case OP_TRUNCATE: ((fv_spool_truncate_cb)o->cb)(o->err, o->arg); break;
    }
    free(o->rec);
    free(o);
}

void fv_spool_run_completions(fv_spool *s)
{
    uint64_t v;
    ssize_t r = read(s->efd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&s->mu);
    op *list = s->done;
    s->done = s->done_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (list) {
        op *next = list->next;
        complete(list);
        list = next;
    }
}

int fv_spool_notify_fd(const fv_spool *s)
{
    return s->efd;
}
uint64_t fv_spool_pending(const fv_spool *s)
{
    return __atomic_load_n(&s->pending, __ATOMIC_RELAXED);
}
uint64_t fv_spool_bytes(const fv_spool *s)
{
    return __atomic_load_n(&s->size, __ATOMIC_RELAXED);
}

int fv_spool_record_xadd_argv(const fv_spool_record *r, const char *stream, const char **argv,
                              size_t *lens)
{
    argv[0] = "XADD", lens[0] = 4;
    argv[1] = stream, lens[1] = strlen(stream);
    argv[2] = "*", lens[2] = 1;
    for (size_t i = 0; i < r->n; i++) {
        argv[3 + i] = r->items[i];
        lens[3 + i] = r->lens[i];
    }
    return (int)(3 + r->n);
}

void fv_spool_batch_free(fv_spool_batch *b)
{
    if (!b) return;
    for (size_t i = 0; i < b->n; i++) free(b->records[i].buf);
    free(b->records);
    free(b);
}

/* Checks the header, cuts a torn tail and counts the good records. */
static int scan_on_open(fv_spool *s, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(s->fd, &st) == -1) {
        snprintf(err, errlen, "%s: fstat: %s", path, strerror(errno));
        return -1;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < FILE_HDR) {
        /* New, or torn while writing the header: start over. */
        if (ftruncate(s->fd, 0) == -1 || pwrite(s->fd, FILE_MAGIC, FILE_HDR, 0) != FILE_HDR ||
            fdatasync(s->fd) == -1) {
            snprintf(err, errlen, "%s: cannot initialise: %s", path, strerror(errno));
            return -1;
        }
        /* A new file: make its directory entry durable too, or a power cut could take the
         * file, and the records later acknowledged from it, away. */
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        int dfd = open(slash ? (dir[0] ? dir : "/") : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd == -1 || fsync(dfd) == -1) {
            snprintf(err, errlen, "%s: cannot sync its directory: %s", path, strerror(errno));
            if (dfd != -1) close(dfd);
            return -1;
        }
        close(dfd);
        s->size = FILE_HDR;
        return 0;
    }
    char magic[FILE_HDR];
    if (pread_full(s->fd, magic, FILE_HDR, 0) != 1 || memcmp(magic, FILE_MAGIC, FILE_HDR) != 0) {
        snprintf(err, errlen, "%s: not a Fieldvault spool (bad header); move it aside", path);
        return -1;
    }
    uint64_t off = FILE_HDR, count = 0, bad = 0;
    for (;;) {
        fv_spool_record r;
        uint64_t next = off;
        parse_result pr = parse_one(s->fd, off, size, &r, &next);
        if (pr == PARSE_RECORD) {
            free(r.buf);
            count++;
            off = next;
        } else if (pr == PARSE_BAD) {
            bad++;
            off = next;
        } else if (pr == PARSE_TORN) {
            fv_warn("spool %s: cutting a torn last record (%llu bytes at offset %llu)", path,
                    (unsigned long long)(size - off), (unsigned long long)off);
            if (ftruncate(s->fd, (off_t)off) == -1 || fdatasync(s->fd) == -1) {
                snprintf(err, errlen, "%s: cannot cut the torn tail: %s", path, strerror(errno));
                return -1;
            }
            size = off;
            break;
        } else if (pr == PARSE_END) {
            break;
        } else {
            snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
            return -1;
        }
    }
    if (bad) fv_warn("spool %s: %llu damaged records will be skipped", path, (unsigned long long)bad);
    s->size = size;
    s->pending = count;
    return 0;
}

fv_spool *fv_spool_open(const char *path, uint64_t max_bytes, char *err, size_t errlen)
{
    fv_spool *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->fd = s->efd = -1;
    s->max_bytes = max_bytes;
    const char *errpos = "open";
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->fd == -1) goto failed;
    errpos = "lock (is another process using this spool?)";
    if (flock(s->fd, LOCK_EX | LOCK_NB) == -1) goto failed;
    if (scan_on_open(s, path, err, errlen) != 0) goto out;
    errpos = "eventfd";
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->efd == -1) goto failed;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    errpos = "pthread_create";
    errno = pthread_create(&s->thread, NULL, writer_main, s);
    if (errno) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        goto failed;
    }
    return s;
failed:
    snprintf(err, errlen, "%s: %s: %s", path, errpos, strerror(errno));
out:
    if (s->fd != -1) close(s->fd);
    if (s->efd != -1) close(s->efd);
    free(s);
    return NULL;
}

void fv_spool_close(fv_spool *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    /* Operations not yet started are cancelled; the thread finishes the one it is on. */
    op *cancel = s->queue;
    s->queue = s->queue_tail = NULL;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    fv_spool_run_completions(s); /* what finished before the stop, in order, then the rest */
    while (cancel) {
        op *next = cancel->next;
        cancel->err = ECANCELED;
        complete(cancel);
        cancel = next;
    }
    fv_spool_run_completions(s);
    close(s->efd);
    close(s->fd);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

long fv_spool_scan_file(const char *path, int (*fn)(const fv_spool_record *r, void *arg), void *arg,
                        char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    char magic[FILE_HDR];
    if (fstat(fd, &st) == -1 || pread_full(fd, magic, FILE_HDR, 0) != 1 ||
        memcmp(magic, FILE_MAGIC, FILE_HDR) != 0) {
        snprintf(err, errlen, "%s: not a Fieldvault spool", path);
        close(fd);
        return -1;
    }
    uint64_t off = FILE_HDR, size = (uint64_t)st.st_size;
    long count = 0;
    for (;;) {
        fv_spool_record r;
        uint64_t next = off;
        parse_result pr = parse_one(fd, off, size, &r, &next);
        if (pr == PARSE_RECORD) {
            count++;
            int stop = fn(&r, arg);
            free(r.buf);
            if (stop) break;
            off = next;
        } else if (pr == PARSE_BAD) {
            fv_warn("spool %s: skipping a damaged record at offset %llu", path, (unsigned long long)off);
            off = next;
        } else if (pr == PARSE_IOERR) {
            snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
            close(fd);
            return -1;
        } else {
            if (pr == PARSE_TORN)
                fv_warn("spool %s: ignoring a torn last record at offset %llu", path,
                        (unsigned long long)off);
            break;
        }
    }
    close(fd);
    return count;
}

/* The record callback of fv_spool_drain_file: counts and stops at the first failure. */
typedef struct drain_ctx {
    int (*fn)(const fv_spool_record *r, void *arg);
    void *arg;
    bool failed;
} drain_ctx;

static int drain_one(const fv_spool_record *r, void *arg)
{
    drain_ctx *d = arg;
    if (d->fn(r, d->arg) != 0) {
        d->failed = true;
        return 1;
    }
    return 0;
}

long fv_spool_drain_file(const char *path, int (*fn)(const fv_spool_record *r, void *arg), void *arg,
                         char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
        snprintf(err, errlen, "%s: in use by a running front end (it replays its own spool)", path);
        close(fd);
        return -2;
    }
    drain_ctx d = {fn, arg, false};
    long n = fv_spool_scan_file(path, drain_one, &d, err, errlen);
    if (n >= 0 && d.failed) {
        snprintf(err, errlen, "%s: stopped at record %ld; the file is left as it was", path, n);
        n = -1;
    }
    if (n >= 0 && (ftruncate(fd, FILE_HDR) == -1 || fdatasync(fd) == -1)) {
        snprintf(err, errlen, "%s: replayed %ld records but cannot empty the file: %s", path, n,
                 strerror(errno));
        n = -1;
    }
    close(fd); /* releases the lock */
    return n;
}
