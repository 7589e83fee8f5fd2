/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): input as a file, input split
 * into parts. */
#ifndef FUZZ_UTIL_H
#define FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fv_log.h"

/* Silences the parsers' warnings (a damaged spool record, ...): libFuzzer's output stays
 * readable and the run is not slowed by stderr. */
static inline void fuzz_quiet(void)
{
    fv_log_current_level = -1;
}

/* A NUL-terminated heap copy of data (the caller frees), or NULL when data holds a NUL byte and
 * nul_ok is false (the callers' real inputs never do: they refuse such text first). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size, bool nul_ok)
{
    if (!nul_ok && memchr(data, '\0', size)) return NULL;
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* The in-memory file of fuzz_file (created on first use). */
static int fuzz_file_fd = -1;

/* Writes data to an in-memory file (one per process, rewritten on each call) and returns a path
 * that open() accepts: "/proc/self/fd/N". Borrowed, static. */
static inline const char *fuzz_file(const uint8_t *data, size_t size)
{
    int fd = fuzz_file_fd;
    static char path[64];
    if (fd == -1) {
        fd = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd == -1) abort();
        fuzz_file_fd = fd;
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0) abort();
        off += (size_t)w;
    }
    return path;
}

/* Splits data at each sep byte into at most max parts, each copied into its own heap buffer of
 * exactly its length (not NUL-terminated: an overread past a part's end is a sanitizer report,
 * as it would be on the real inputs that carry lengths). Returns the number of parts; free with
 * fuzz_parts_free. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, uint8_t sep, size_t max, char **parts,
                                size_t *lens)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < max; i++) {
        if (i < size && data[i] != sep) continue;
        size_t len = i - start;
        parts[n] = malloc(len ? len : 1);
        if (!parts[n]) abort();
        memcpy(parts[n], data + start, len);
        lens[n] = len;
        n++;
        start = i + 1;
    }
    return n;
}

static inline void fuzz_parts_free(char **parts, size_t n)
{
    for (size_t i = 0; i < n; i++) free(parts[i]);
}

#endif
