/* Bearer tokens kept in a file: loaded as a SHA-256 digest, compared in constant time. */
#include "fv_bearer.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static bool digest_of(const char *s, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32;
}

bool fv_bearer_load(const char *path, fv_bearer *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char buf[FV_BEARER_MAX_LEN + 64];
    bool ok = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    ssize_t n = -1;
    if (fstat(fd, &st) == -1) {
        snprintf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
        goto done;
    }
    if (st.st_mode & 077) {
        snprintf(err, errlen, "%s is readable by group or others (chmod 600 it)", path);
        goto done;
    }
    n = read(fd, buf, sizeof buf - 1);
    if (n == -1) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    buf[n] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    size_t len = strcspn(p, "\r\n");
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)p[i])) {
            snprintf(err, errlen, "%s: the token holds white space or a control character", path);
            goto done;
        }
    if (len < FV_BEARER_MIN_LEN || len > FV_BEARER_MAX_LEN) {
        snprintf(err, errlen, "%s: the token must be %d to %d characters (openssl rand -hex 32)", path,
                 FV_BEARER_MIN_LEN, FV_BEARER_MAX_LEN);
        goto done;
    }
    if (!digest_of(p, len, out->digest)) {
        snprintf(err, errlen, "%s: SHA-256 failed", path);
        goto done;
    }
    out->set = true;
    ok = true;
done:
    OPENSSL_cleanse(buf, sizeof buf);
    close(fd);
    return ok;
}

bool fv_bearer_matches(const fv_bearer *b, const char *header)
{
    if (!b->set || !header) return false;
    while (*header == ' ') header++;
    if (strncasecmp(header, "Bearer ", 7) != 0) return false;
    const char *t = header + 7;
    while (*t == ' ') t++;
    size_t len = strlen(t);
    while (len > 0 && t[len - 1] == ' ') len--;
    if (len == 0 || len > FV_BEARER_MAX_LEN) return false;
    unsigned char d[32];
    if (!digest_of(t, len, d)) return false;
    return CRYPTO_memcmp(d, b->digest, sizeof d) == 0;
}
