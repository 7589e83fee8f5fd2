/* The master key file rewritten by fvctl rotate-master-key (see fvctl_keyfile.h). */
#include "fvctl_keyfile.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYFILE_MAX (64 * 1024)         /* eight keys and their comments fit many times over */
#define KEY_LINE (2 * FV_KEY_BYTES + 1) /* a key's line as written: 64 hex characters, a newline */

/* How a rewrite changes the file. */
typedef enum keyfile_edit {
    EDIT_FIRST,   /* a new key as the file's first line */
    EDIT_SECOND,  /* a new key just after the first key's line (a standby) */
    EDIT_PROMOTE, /* a key of the file moved to the file's first line */
    EDIT_DROP,    /* a key of the file (every line of its id) removed from the file */
} keyfile_edit;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w == -1 && errno == EINTR) continue;
        if (w == -1) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads fd to its end into a new buffer (caller wipes and frees) of at most KEYFILE_MAX bytes.
 * NULL with errno set (EFBIG: larger). */
static char *read_all(int fd, size_t *len)
{
    char *buf = malloc(KEYFILE_MAX + 1);
    size_t n = 0;
    if (!buf) return NULL;
    for (;;) {
        ssize_t r = read(fd, buf + n, KEYFILE_MAX + 1 - n);
        if (r == -1 && errno == EINTR) continue;
        if (r == -1 || (r > 0 && n + (size_t)r > KEYFILE_MAX)) {
            int e = r == -1 ? errno : EFBIG;
            OPENSSL_cleanse(buf, KEYFILE_MAX + 1);
            free(buf);
            errno = e;
            return NULL;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    *len = n;
    return buf;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Where the key lines of text are, read as fv_keys_load reads them (blank lines and lines
 * starting with '#' after white space are not keys): the i-th key's line is [start[i], end[i]),
 * its newline included when it has one. Returns how many, or -1 beyond FV_KEYS_MAX. */
static int key_lines(const char *text, size_t len, size_t start[FV_KEYS_MAX], size_t end[FV_KEYS_MAX])
{
    int n = 0;
    for (size_t i = 0; i < len;) {
        size_t e = i;
        while (e < len && text[e] != '\n') e++;
        size_t next = e < len ? e + 1 : e, a = i, b = e;
        while (a < b && isspace((unsigned char)text[a])) a++;
        while (b > a && isspace((unsigned char)text[b - 1])) b--;
        if (a < b && text[a] != '#') {
            if (n == FV_KEYS_MAX) return -1;
            start[n] = i;
            end[n] = next;
            n++;
        }
        i = next;
    }
    return n;
}

static void key_line(const unsigned char key[FV_KEY_BYTES], char line[KEY_LINE])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < FV_KEY_BYTES; i++) {
        line[2 * i] = hex[key[i] >> 4];
        line[2 * i + 1] = hex[key[i] & 15];
    }
    line[2 * FV_KEY_BYTES] = '\n';
}

static bool id_shaped(const char *id)
{
    if (!id || strlen(id) != FV_KEY_IDLEN) return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

/* Appends " (its keys, in order: <id> <id>...)" to err, which holds o characters. */
static void list_ids(const fv_keyset *ks, char *err, size_t errlen, int o)
{
    if (o < 0 || (size_t)o >= errlen) return;
    o += snprintf(err + o, errlen - (size_t)o, " (its keys, in order:");
    for (int i = 0; i < ks->n && o > 0 && (size_t)o < errlen; i++)
        o += snprintf(err + o, errlen - (size_t)o, " %s", ks->keys[i].id);
    if (o > 0 && (size_t)o < errlen) snprintf(err + o, errlen - (size_t)o, ")");
}

/* Says in err that id is not the shape of a key id (what was given shown safely). */
static void not_an_id(const char *id, char *err, size_t errlen)
{
    snprintf(err, errlen, "'%.16s' is not a key id (%d lowercase hex characters)", id ? id : "",
             FV_KEY_IDLEN);
    for (char *p = err; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) *p = '?';
}

/* Which keys of ks dropping id removes (drop[i] for the i-th key: every line of that id). Returns 0,
 * or -1 with the reason in err: not the shape of an id, no key of the file has it (the file's ids
 * listed), the file's only key, or its first (current) key. */
static int drop_plan(const fv_keyset *ks, const char *path, const char *id, bool drop[FV_KEYS_MAX],
                     char *err, size_t errlen)
{
    int found = 0;
    if (!id_shaped(id)) {
        not_an_id(id, err, errlen);
        return -1;
    }
    for (int i = 0; i < ks->n; i++) {
        drop[i] = strcmp(ks->keys[i].id, id) == 0;
        if (drop[i]) found++;
    }
    if (!found) {
        list_ids(ks, err, errlen, snprintf(err, errlen, "no key of %s has the id %s", path, id));
        return -1;
    }
    if (ks->n == found) {
        snprintf(err, errlen,
                 "key %s is the only key of %s: the programs would have none (a new key goes in with "
                 "--new-key --standby and --promote first)",
                 id, path);
        return -1;
    }
    if (drop[0]) {
        snprintf(err, errlen,
                 "key %s is the first (current) key of %s: everything new is signed, sealed and wrapped "
                 "under it. Put another key first (--promote ID), restart every program, re-wrap "
                 "(`fvctl rotate-master-key`), then drop it",
                 id, path);
        return -1;
    }
    return 0;
}

/* The file at path rewritten by edit: a new key (EDIT_FIRST, EDIT_SECOND; borrowed) or the id of a
 * key of the file (target: EDIT_PROMOTE, EDIT_DROP). Returns 0, 1 (EDIT_PROMOTE: that key is the
 * first already, nothing written) or -1 with the reason in err. */
static int rewrite(const char *path, keyfile_edit edit, const unsigned char *key, const char *target,
                   int *nkeys, char *err, size_t errlen)
{
    int rc = -1, fd = -1, tfd = -1, dfd = -1, nwant = 0, moved = -1;
    char *real = NULL, *tmp = NULL, *text = NULL, *out = NULL, id[FV_KEY_IDLEN + 1], line[KEY_LINE];
    char want[FV_KEYS_MAX][FV_KEY_IDLEN + 1]; /* the ids the new file must hold, in its order */
    size_t len = 0, olen = 0, kstart[FV_KEYS_MAX], kend[FV_KEYS_MAX];
    struct stat st, tst, now;
    const char *what = NULL;          /* the step that failed, for the one message at failed: */
    bool drop[FV_KEYS_MAX] = {false}; /* EDIT_DROP: the keys whose lines go */
    fv_keyset ks;
    memset(line, 0, sizeof line);
    /* The file as every program loads it: its mode, its syntax, the keys and their order. */
    if (fv_keys_load(&ks, path, err, errlen) != 0) return -1;
    int n = ks.n;
    if (edit == EDIT_PROMOTE) {
        int found = 0;
        if (!id_shaped(target)) {
            not_an_id(target, err, errlen);
            goto out;
        }
        snprintf(id, sizeof id, "%s", target);
        for (int i = 0; i < n; i++)
            if (strcmp(ks.keys[i].id, id) == 0 && found++ == 0) moved = i;
        if (found > 1) {
            snprintf(err, errlen, "key %s is on %d lines of %s: remove all but one first", id, found,
                     path);
            goto out;
        }
        if (!found) {
            list_ids(&ks, err, errlen, snprintf(err, errlen, "no key of %s has the id %s", path, id));
            goto out;
        }
        if (moved == 0) {
            *nkeys = n;
            rc = 1;
            goto out;
        }
        key_line(ks.keys[moved].key, line);
        snprintf(want[nwant++], sizeof want[0], "%s", id);
        for (int i = 0; i < n; i++)
            if (i != moved) snprintf(want[nwant++], sizeof want[0], "%s", ks.keys[i].id);
    } else if (edit == EDIT_DROP) {
        if (drop_plan(&ks, path, target, drop, err, errlen) != 0) goto out;
        for (int i = 0; i < n; i++)
            if (!drop[i]) snprintf(want[nwant++], sizeof want[0], "%s", ks.keys[i].id);
    } else {
        fv_keys_id(key, id);
        if (n >= FV_KEYS_MAX) {
            snprintf(err, errlen,
                     "key file %s holds %d keys already, the most it may hold: drop an old key first "
                     "(`fvctl rotate-master-key --drop ID` of one nothing is left under), then run "
                     "this again",
                     path, n);
            goto out;
        }
        if (fv_keys_find(&ks, id)) {
            snprintf(err, errlen, "the new key's id %s is the id of a key already in %s", id, path);
            goto out;
        }
        key_line(key, line);
        for (int i = 0; i < n; i++) {
            if (i == (edit == EDIT_FIRST ? 0 : 1)) snprintf(want[nwant++], sizeof want[0], "%s", id);
            snprintf(want[nwant++], sizeof want[0], "%s", ks.keys[i].id);
        }
        if (nwant == n) snprintf(want[nwant++], sizeof want[0], "%s", id); /* second of one key */
    }
    fv_keys_clear(&ks);
    /* A symbolic link stays one: the file it points to is replaced, in its own directory. */
    what = "resolving";
    if (!(real = realpath(path, NULL))) goto failed;
    what = "opening";
    if ((fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) goto failed;
    what = "reading";
    if (fstat(fd, &st) == -1 || !(text = read_all(fd, &len))) goto failed;
    if (key_lines(text, len, kstart, kend) != n) {
        snprintf(err, errlen,
                 "key file %s changed while it was being rewritten: nothing done, run again", real);
        goto out;
    }
    what = "rewriting";
    if (!(out = malloc(len + KEY_LINE + 1))) goto failed;
    if (edit == EDIT_FIRST) {
        memcpy(out, line, KEY_LINE);
        memcpy(out + KEY_LINE, text, len);
        olen = KEY_LINE + len;
    } else if (edit == EDIT_SECOND) {
        size_t at = kend[0]; /* after the first key's line and its newline */
        memcpy(out, text, at);
        olen = at;
        if (text[at - 1] != '\n') out[olen++] = '\n'; /* the first key was the last line */
        memcpy(out + olen, line, KEY_LINE);
        olen += KEY_LINE;
        memcpy(out + olen, text + at, len - at);
        olen += len - at;
    } else if (edit == EDIT_DROP) {
        size_t at = 0; /* the text up to here is copied, or was a dropped key's line */
        for (int i = 0; i < n; i++) {
            if (!drop[i]) continue;
            memcpy(out + olen, text + at, kstart[i] - at);
            olen += kstart[i] - at;
            at = kend[i]; /* its newline goes with it */
        }
        memcpy(out + olen, text + at, len - at);
        olen += len - at;
    } else {
        memcpy(out, line, KEY_LINE);
        memcpy(out + KEY_LINE, text, kstart[moved]);
        olen = KEY_LINE + kstart[moved];
        memcpy(out + olen, text + kend[moved], len - kend[moved]);
        olen += len - kend[moved];
    }
    char *slash = strrchr(real, '/'); /* realpath's answer is absolute */
    size_t dirlen = slash == real ? 1 : (size_t)(slash - real);
    what = "creating a temporary file beside";
    if (!(tmp = malloc(strlen(real) + 16))) goto failed;
    snprintf(tmp, strlen(real) + 16, "%.*s/.%s.XXXXXX", (int)dirlen, real, slash + 1);
    if ((tfd = mkostemp(tmp, O_CLOEXEC)) == -1) {
        int e = errno;
        free(tmp);
        tmp = NULL; /* nothing was created */
        errno = e;
        goto failed;
    }
    what = "setting the mode of the temporary file for";
    if (fchmod(tfd, 0600) == -1 || fstat(tfd, &tst) == -1) goto failed;
    /* The owner of the old file, so the programs that read it can read the new one. Its group is
     * best effort: a mode 0600 file grants its group nothing. */
    what = "giving the temporary file the owner of";
    if (tst.st_uid != st.st_uid && fchown(tfd, st.st_uid, st.st_gid) == -1) goto failed;
    if (tst.st_uid == st.st_uid && tst.st_gid != st.st_gid && fchown(tfd, (uid_t)-1, st.st_gid) == -1) {
        /* not a member of that group: keep ours */
    }
    what = "writing the temporary file for";
    if (write_all(tfd, out, olen) == -1) goto failed;
    what = "syncing the temporary file for";
    if (fsync(tfd) == -1) goto failed;
    int c = close(tfd);
    tfd = -1;
    if (c == -1) goto failed;
    /* What the programs will load: exactly the keys expected, in the order expected. */
    char lerr[256];
    bool same = fv_keys_load(&ks, tmp, lerr, sizeof lerr) == 0 && ks.n == nwant;
    for (int i = 0; same && i < nwant; i++) same = strcmp(ks.keys[i].id, want[i]) == 0;
    fv_keys_clear(&ks);
    if (!same) {
        snprintf(err, errlen,
                 "the rewritten key file does not read back as %s with its keys in the expected order: "
                 "nothing done",
                 path);
        goto out;
    }
    what = "checking";
    if (stat(real, &now) == -1) goto failed;
    if (!same_file(&st, &now)) {
        snprintf(err, errlen,
                 "key file %s changed while it was being rewritten: nothing done, run again", real);
        goto out;
    }
    what = "renaming the temporary file over";
    if (rename(tmp, real) == -1) goto failed;
    free(tmp);
    tmp = NULL; /* renamed: no longer ours to remove */
    real[dirlen] = '\0';
    if ((dfd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || fsync(dfd) == -1) {
        snprintf(err, errlen,
                 "the new key file is in place, but syncing its directory %s failed: %s (check the file "
                 "before restarting anything)",
                 real, strerror(errno));
        goto out;
    }
    *nkeys = nwant;
    rc = 0;
    goto out;
failed:
    snprintf(err, errlen, "%s %s: %s", what, real ? real : path, strerror(errno));
out:
    fv_keys_clear(&ks);
    OPENSSL_cleanse(line, sizeof line);
    if (text) OPENSSL_cleanse(text, KEYFILE_MAX + 1);
    free(text);
    if (out) OPENSSL_cleanse(out, len + KEY_LINE + 1);
    free(out);
    if (tfd != -1) close(tfd);
    if (tmp) unlink(tmp); /* never a partial file left behind */
    free(tmp);
    if (fd != -1) close(fd);
    if (dfd != -1) close(dfd);
    free(real);
    return rc;
}

int fvctl_keyfile_prepend(const char *path, const unsigned char key[FV_KEY_BYTES], int *nkeys, char *err,
                          size_t errlen)
{
    return rewrite(path, EDIT_FIRST, key, NULL, nkeys, err, errlen);
}

int fvctl_keyfile_standby(const char *path, const unsigned char key[FV_KEY_BYTES], int *nkeys, char *err,
                          size_t errlen)
{
    return rewrite(path, EDIT_SECOND, key, NULL, nkeys, err, errlen);
}

int fvctl_keyfile_promote(const char *path, const char *id, int *nkeys, char *err, size_t errlen)
{
    return rewrite(path, EDIT_PROMOTE, NULL, id, nkeys, err, errlen);
}

int fvctl_keyfile_drop(const char *path, const char *id, int *nkeys, char *err, size_t errlen)
{
    return rewrite(path, EDIT_DROP, NULL, id, nkeys, err, errlen);
}

int fvctl_keyfile_drop_check(const char *path, const char *id, int *position, char *err, size_t errlen)
{
    fv_keyset ks;
    bool drop[FV_KEYS_MAX] = {false};
    if (fv_keys_load(&ks, path, err, errlen) != 0) return -1;
    int rc = drop_plan(&ks, path, id, drop, err, errlen);
    for (int i = ks.n - 1; rc == 0 && i >= 0; i--)
        if (drop[i]) *position = i + 1;
    fv_keys_clear(&ks);
    return rc;
}
