/* Unit tests for common/fv_spool.c: durability bookkeeping, torn and damaged records, replay
 * reads, truncation, the lock and the size bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fv_spool.h"

static char dir[64], path[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/fv_test_spool.XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(path, sizeof path, "%s/spool-0.log", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

/* Runs completions until `*counter` reaches want (bounded). */
static void pump(fv_spool *s, int *counter, int want)
{
    for (int i = 0; i < 500 && *counter < want; i++) {
        struct pollfd p = {fv_spool_notify_fd(s), POLLIN, 0};
        poll(&p, 1, 20);
        fv_spool_run_completions(s);
    }
    assert_int_equal(*counter, want);
}

static int appended, append_errors;
static void on_append(int err, void *arg)
{
    (void)arg;
    appended++;
    if (err) append_errors++;
}

static fv_spool_batch *got;
static int reads;
static void on_read(int err, fv_spool_batch *b, void *arg)
{
    (void)arg;
    assert_int_equal(err, 0);
    got = b;
    reads++;
}

static int truncated;
static void on_truncate(int err, void *arg)
{
    (void)arg;
    assert_int_equal(err, 0);
    truncated++;
}

static void append_n(fv_spool *s, int n)
{
    appended = append_errors = 0;
    for (int i = 0; i < n; i++) {
        char id[32], data[64];
        snprintf(id, sizeof id, "id-%d", i);
        snprintf(data, sizeof data, "{\"n\":%d}", i);
        const char *items[] = {"id", id, "data", data};
        size_t lens[] = {2, strlen(id), 4, strlen(data)};
        assert_int_equal(fv_spool_append(s, items, lens, 4, on_append, NULL), 0);
    }
    pump(s, &appended, n);
}

static fv_spool_batch *read_all(fv_spool *s)
{
    reads = 0;
    got = NULL;
    assert_int_equal(fv_spool_read(s, 0, 1000, on_read, NULL), 0);
    pump(s, &reads, 1);
    assert_non_null(got);
    return got;
}

static uint64_t file_size(void)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void test_append_read_truncate(void **state)
{
    (void)state;
    char err[256];
    fv_spool *s = fv_spool_open(path, 1 << 20, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(fv_spool_pending(s), 0);
    append_n(s, 50);
    assert_int_equal(append_errors, 0);
    assert_int_equal(fv_spool_pending(s), 50);
    fv_spool_batch *b = read_all(s);
    assert_int_equal(b->n, 50);
    assert_true(b->eof);
    assert_int_equal(b->records[7].n, 4);
    assert_memory_equal(b->records[7].items[1], "id-7", 4);
    assert_memory_equal(b->records[7].items[3], "{\"n\":7}", 7);
    fv_spool_batch_free(b);

    /* A second opener is refused while the first holds it. */
    assert_null(fv_spool_open(path, 1 << 20, err, sizeof err));
    assert_non_null(strstr(err, "lock"));

    truncated = 0;
    assert_int_equal(fv_spool_truncate(s, on_truncate, NULL), 0);
    pump(s, &truncated, 1);
    assert_int_equal(fv_spool_pending(s), 0);
    b = read_all(s);
    assert_int_equal(b->n, 0);
    assert_true(b->eof);
    fv_spool_batch_free(b);
    fv_spool_close(s);
    assert_int_equal(file_size(), 8);
}

static void test_reopen_counts_and_reads_in_chunks(void **state)
{
    (void)state;
    char err[256];
    fv_spool *s = fv_spool_open(path, 1 << 20, err, sizeof err);
    append_n(s, 30);
    fv_spool_close(s);
    s = fv_spool_open(path, 1 << 20, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(fv_spool_pending(s), 30);
    uint64_t off = 0;
    int total = 0;
    for (int round = 0; round < 10; round++) {
        reads = 0;
        assert_int_equal(fv_spool_read(s, off, 8, on_read, NULL), 0);
        pump(s, &reads, 1);
        total += (int)got->n;
        off = got->next_offset;
        bool eof = got->eof;
        fv_spool_batch_free(got);
        if (eof) break;
    }
    assert_int_equal(total, 30);
    fv_spool_close(s);
}

static void test_torn_tail_is_cut(void **state)
{
    (void)state;
    char err[256];
    fv_spool *s = fv_spool_open(path, 1 << 20, err, sizeof err);
    append_n(s, 5);
    fv_spool_close(s);
    uint64_t good = file_size();
    /* A crash mid-append: the start of a record header and half a payload. */
    int fd = open(path, O_WRONLY | O_APPEND);
    const unsigned char torn[] = {'F', 'V', 'R', '1', 200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 'x', 'y'};
    assert_int_equal(write(fd, torn, sizeof torn), (ssize_t)sizeof torn);
    close(fd);
    s = fv_spool_open(path, 1 << 20, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(fv_spool_pending(s), 5);
    assert_int_equal(file_size(), good);
    /* New appends follow the good records, never the garbage. */
    append_n(s, 2);
    fv_spool_batch *b = read_all(s);
    assert_int_equal(b->n, 7);
    fv_spool_batch_free(b);
    fv_spool_close(s);
}

static void test_damaged_record_is_skipped(void **state)
{
    (void)state;
    char err[256];
    fv_spool *s = fv_spool_open(path, 1 << 20, err, sizeof err);
    append_n(s, 5);
    fv_spool_close(s);
    /* Flip a payload byte of the second record: header 8, records are equal-sized here. */
    uint64_t rec = (file_size() - 8) / 5;
    int fd = open(path, O_RDWR);
    unsigned char c;
    off_t at = (off_t)(8 + rec + 20);
    assert_int_equal(pread(fd, &c, 1, at), 1);
    c ^= 0x55;
    assert_int_equal(pwrite(fd, &c, 1, at), 1);
    close(fd);
    s = fv_spool_open(path, 1 << 20, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(fv_spool_pending(s), 4);
    fv_spool_batch *b = read_all(s);
    assert_int_equal(b->n, 4);
    assert_memory_equal(b->records[0].items[1], "id-0", 4);
    assert_memory_equal(b->records[1].items[1], "id-2", 4); /* id-1 was damaged */
    fv_spool_batch_free(b);
    fv_spool_close(s);
}

static int scanned;
static int count_record(const fv_spool_record *r, void *arg)
{
    (void)r;
    (void)arg;
    scanned++;
    return 0;
}

static void test_size_bound_and_scan(void **state)
{
    (void)state;
    char err[256];
    fv_spool *s = fv_spool_open(path, 400, err, sizeof err);
    append_n(s, 20); /* each record is about 40 bytes: only some fit */
    assert_true(append_errors > 0);
    uint64_t kept = fv_spool_pending(s);
    assert_int_equal(kept, (uint64_t)(20 - append_errors));
    assert_true(file_size() <= 400);
    fv_spool_close(s);
    scanned = 0;
    assert_int_equal(fv_spool_scan_file(path, count_record, NULL, err, sizeof err), (long)kept);
    assert_int_equal(scanned, (int)kept);
}

static int drained, fail_at;
static int drain_fn(const fv_spool_record *r, void *arg)
{
    (void)r;
    (void)arg;
    if (++drained == fail_at) return -1;
    return 0;
}

static void test_drain_file(void **state)
{
    (void)state;
    char err[256];
    fv_spool *s = fv_spool_open(path, 1 << 20, err, sizeof err);
    append_n(s, 6);
    /* A running front end holds the lock: a tool must not touch its file. */
    assert_int_equal(fv_spool_drain_file(path, drain_fn, NULL, err, sizeof err), -2);
    fv_spool_close(s);
    uint64_t full = file_size();
    drained = 0;
    fail_at = 3; /* Redis refused the third: nothing is cut */
    assert_int_equal(fv_spool_drain_file(path, drain_fn, NULL, err, sizeof err), -1);
    assert_int_equal(file_size(), full);
    drained = 0;
    fail_at = 0;
    assert_int_equal(fv_spool_drain_file(path, drain_fn, NULL, err, sizeof err), 6);
    assert_int_equal(drained, 6);
    assert_int_equal(file_size(), 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_counts_and_reads_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_is_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_record_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_bound_and_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_file, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
