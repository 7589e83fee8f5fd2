/* Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): input as a file, input split
 * into parts, the temporary harness limits for crashes other engineers are fixing. */
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

/* TEMPORARY HARNESS LIMIT (issue 9, until wt-json's depth limit and yajl_gen result checks land
 * in common/fv_json.c). Two known crashes on deep JSON, both being fixed there:
 *  - fv_jgen_tree (what fe_submit_response queues) at 128 levels: yajl_gen stops at its
 *    YAJL_MAX_DEPTH (128) with an error fv_jgen ignores, and each further open reads its state
 *    array out of bounds (SEGV) - tests/fuzz/known/jgen-depth-128.json, 269 bytes;
 *  - yajl_tree_free (every parsed body) recursing once per level: a stack overflow at about
 *    100,000 levels (200 KB of '[').
 * Until then the JSON-reading targets skip inputs nested deeper than this, so that they find
 * other crashes. Remove (set to 0) once fv_json_parse refuses deep documents itself. */
#define FUZZ_JSON_MAX_DEPTH 100

/* TEMPORARY HARNESS LIMIT (issue 9, until wt-regex replaces regcomp/regexec with PCRE2 in
 * common/fv_form.c): glibc's regcomp/regexec blow up in time and memory on nested bounded
 * repetitions ("((a{1,100}){1,100}){1,100}"), a known problem being fixed there. Until then the
 * form-reading targets skip definitions that contain a "pattern" key. Set to 0 once PCRE2 with
 * match limits is in. */
#define FUZZ_SKIP_PATTERNS 1

/* Silences the parsers' warnings (a damaged spool record, ...): libFuzzer's output stays
 * readable and the run is not slowed by stderr. */
static inline void fuzz_quiet(void)
{
    fv_log_current_level = -1;
}

/* The deepest [ / { nesting of data (outside strings), stopping early once past limit. */
static inline size_t fuzz_json_depth(const uint8_t *data, size_t size, size_t limit)
{
    size_t depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < size; i++) {
        uint8_t c = data[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max && (max = depth) > limit) return max;
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

/* FV_FUZZ_NO_LIMITS=1 in the environment turns the temporary limits off: to reproduce the known
 * crashes (see docs/security.md, "Fuzzing") or to check that their fixes have landed. */
static inline bool fuzz_limits_on(void)
{
    static int on = -1;
    if (on < 0) {
        const char *v = getenv("FV_FUZZ_NO_LIMITS");
        on = !(v && v[0] == '1');
    }
    return on;
}

/* True when the input is past the temporary JSON depth limit (see FUZZ_JSON_MAX_DEPTH). */
static inline bool fuzz_too_deep(const uint8_t *data, size_t size)
{
    return FUZZ_JSON_MAX_DEPTH > 0 && fuzz_limits_on() &&
           fuzz_json_depth(data, size, FUZZ_JSON_MAX_DEPTH) > FUZZ_JSON_MAX_DEPTH;
}

/* True when a form definition should be skipped (see FUZZ_SKIP_PATTERNS). */
static inline bool fuzz_has_pattern(const uint8_t *data, size_t size)
{
    return FUZZ_SKIP_PATTERNS && fuzz_limits_on() && memmem(data, size, "pattern", 7) != NULL;
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
