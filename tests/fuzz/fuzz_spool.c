/* Fuzz target: the spool file reader (common/fv_spool.c). A fuzzed file is read the two ways the
 * code reads one: fvctl spool-replay's synchronous scan (fv_spool_scan_file) and a front end's
 * open (fv_spool_open: header check, torn tail cut, records counted) followed by reading every
 * record back on the spool's thread (fv_spool_read). Each record read is then turned into its
 * XADD arguments (fv_spool_record_xadd_argv) and parsed as an envelope, as replay does. Both
 * readers must agree on how many good records the file holds.
 *
 * Input: one mode byte, then the file. Mode bit 0: the harness rewrites each record's checksum
 * so that the fuzzer reaches the payload decoder (a random input never has a valid SHA-256);
 * bit 1: the harness puts the "FVSPOOL1" header in front; bit 2: the file is also opened as a
 * front end does and read back on the spool's thread (a thread per input: 50 times slower, so
 * the fuzzer may choose). */
#include <errno.h>
#include <openssl/evp.h>
#include <poll.h>

#include "fuzz_util.h"
#include "fv_envelope.h"
#include "fv_spool.h"

#define FILE_HDR 8
#define REC_HDR 16

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walks the records the headers describe and writes the right checksum into each. */
static void fix_checksums(uint8_t *f, size_t size)
{
    size_t off = FILE_HDR;
    while (off + REC_HDR <= size) {
        uint32_t len = get32(f + off + 4);
        if (len > size - off - REC_HDR) break;
        unsigned char md[32];
        unsigned int mdlen = 0;
        EVP_Digest(f + off + REC_HDR, len, md, &mdlen, EVP_sha256(), NULL);
        memcpy(f + off + 8, md, 8);
        off += REC_HDR + len;
    }
}

static void use_record(const fv_spool_record *r)
{
    if (r->n > FV_SPOOL_MAX_ITEMS) abort();
    const char *argv[3 + FV_SPOOL_MAX_ITEMS];
    size_t lens[3 + FV_SPOOL_MAX_ITEMS];
    int argc = fv_spool_record_xadd_argv(r, "s", argv, lens);
    if (argc != 3 + (int)r->n) abort();
    fv_envelope e;
    char err[256];
    (void)fv_envelope_parse(&e, argv + 3, lens + 3, r->n & ~(size_t)1, err, sizeof err);
}

static int scanned(const fv_spool_record *r, void *arg)
{
    use_record(r);
    return 0;
}

typedef struct reading {
    bool done;
    int err;
    fv_spool_batch *batch;
} reading;

static void on_read(int err, fv_spool_batch *batch, void *arg)
{
    reading *rd = arg;
    rd->done = true;
    rd->err = err;
    rd->batch = batch; /* handed over: freed by the loop below */
}

/* Reads every record of an open spool back; returns how many, or -1 on an error. */
static long read_all(fv_spool *s)
{
    long total = 0;
    uint64_t offset = 0;
    for (;;) {
        reading rd = {0};
        if (fv_spool_read(s, offset, 7, on_read, &rd) != 0) return -1;
        while (!rd.done) {
            struct pollfd p = {.fd = fv_spool_notify_fd(s), .events = POLLIN};
            int ready = poll(&p, 1, 10000);
            if (ready == -1 && errno == EINTR) continue; /* libFuzzer's SIGALRM (-timeout) */
            if (ready != 1) abort();                     /* the spool thread never answered */
            fv_spool_run_completions(s);
        }
        if (rd.err || !rd.batch) return -1;
        for (size_t i = 0; i < rd.batch->n; i++) use_record(&rd.batch->records[i]);
        total += (long)rd.batch->n;
        bool eof = rd.batch->eof || rd.batch->n == 0;
        if (!eof && rd.batch->next_offset <= offset) abort(); /* no progress */
        offset = rd.batch->next_offset;
        fv_spool_batch_free(rd.batch);
        if (eof) return total;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    size_t hdr = (mode & 2) ? FILE_HDR : 0;
    size_t fsize = hdr + size - 1;
    uint8_t *f = malloc(fsize ? fsize : 1);
    if (!f) abort();
    memcpy(f, "FVSPOOL1", hdr);
    memcpy(f + hdr, data + 1, size - 1);
    if (mode & 1) fix_checksums(f, fsize);
    const char *path = fuzz_file(f, fsize);
    free(f);

    char err[256];
    long scan = fv_spool_scan_file(path, scanned, NULL, err, sizeof err);
    fv_spool *s = (mode & 4) ? fv_spool_open(path, UINT64_MAX, err, sizeof err) : NULL;
    if (s) {
        uint64_t pending = fv_spool_pending(s);
        long read = read_all(s);
        fv_spool_close(s);
        /* The replay tool, the open count and the reader agree on the good records. */
        if (scan >= 0 && (uint64_t)scan != pending) abort();
        if (read >= 0 && (uint64_t)read != pending) abort();
    }
    return 0;
}
