/* The master key file rewritten with a new key first (fvctl rotate-master-key --new-key). */
#include "fvctl_keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEYFILE_MAX (64 * 1024) /* eight keys and their comments fit many times over */

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

int fvctl_keyfile_prepend(const char *path, const unsigned char key[FV_KEY_BYTES], int *nkeys, char *err,
                          size_t errlen)
{
    int rc = -1, fd = -1, tfd = -1, dfd = -1;
    char *real = NULL, *tmp = NULL, *text = NULL, id[FV_KEY_IDLEN + 1], line[2 * FV_KEY_BYTES + 2];
    size_t len = 0;
    struct stat st, tst, now;
    const char *what = NULL; /* the step that failed, for the one message at failed: */
    fv_keyset ks;
    /* The file as every program loads it: its mode, its syntax, and room for one more key. */
    if (fv_keys_load(&ks, path, err, errlen) != 0) return -1;
    int n = ks.n;
    fv_keys_id(key, id);
    bool taken = fv_keys_find(&ks, id) != NULL;
    fv_keys_clear(&ks);
    if (n >= FV_KEYS_MAX) {
        snprintf(err, errlen,
                 "key file %s holds %d keys already, the most it may hold: drop an old key first (one "
                 "that `fvctl rotate-master-key` reported nothing left under), then run this again",
                 path, n);
        return -1;
    }
    if (taken) {
        snprintf(err, errlen, "the new key's id %s is the id of a key already in %s", id, path);
        return -1;
    }
    /* A symbolic link stays one: the file it points to is replaced, in its own directory. */
    what = "resolving";
    if (!(real = realpath(path, NULL))) goto failed;
    what = "opening";
    if ((fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) goto failed;
    what = "reading";
    if (fstat(fd, &st) == -1 || !(text = read_all(fd, &len))) goto failed;
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
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < FV_KEY_BYTES; i++) {
        line[2 * i] = hex[key[i] >> 4];
        line[2 * i + 1] = hex[key[i] & 15];
    }
    line[2 * FV_KEY_BYTES] = '\n';
    what = "writing the temporary file for";
    if (write_all(tfd, line, 2 * FV_KEY_BYTES + 1) == -1 || write_all(tfd, text, len) == -1) goto failed;
    what = "syncing the temporary file for";
    if (fsync(tfd) == -1) goto failed;
    int c = close(tfd);
    tfd = -1;
    if (c == -1) goto failed;
    /* What the programs will load: the new key first, every old one after it. */
    char lerr[256];
    if (fv_keys_load(&ks, tmp, lerr, sizeof lerr) != 0 || ks.n != n + 1 ||
        strcmp(ks.keys[0].id, id) != 0) {
        fv_keys_clear(&ks);
        snprintf(err, errlen, "the rewritten key file does not read back as %s with the new key first",
                 path);
        goto out;
    }
    fv_keys_clear(&ks);
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
    *nkeys = n + 1;
    rc = 0;
    goto out;
failed:
    snprintf(err, errlen, "%s %s: %s", what, real ? real : path, strerror(errno));
out:
    OPENSSL_cleanse(line, sizeof line);
    if (text) OPENSSL_cleanse(text, KEYFILE_MAX + 1);
    free(text);
    if (tfd != -1) close(tfd);
    if (tmp) unlink(tmp); /* never a partial file left behind */
    free(tmp);
    if (fd != -1) close(fd);
    if (dfd != -1) close(dfd);
    free(real);
    return rc;
}
