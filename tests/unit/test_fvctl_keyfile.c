/* Unit tests of the key file rewrites of `fvctl rotate-master-key` (tools/fvctl/fvctl_keyfile.c,
 * compiled in alone): --new-key puts the new key first, --new-key --standby second (just after the
 * first key's line), --promote ID moves a key to the first line, --drop ID removes an old key's line
 * (never the first or the only key; what is under it is fvctl_keydrop.c's to check, not tested here); every other line kept in its order,
 * mode 0600 and the old owner, a symbolic link kept, and every refusal leaves the old file as it
 * was and no temporary file behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../tools/fvctl/fvctl_keyfile.c"

static const char *K1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *K2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
/* the key key_bytes(key, 0x40) makes, in hex */
static const char *NEWHEX = "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f";

typedef struct fixture {
    char dir[64];
    char path[96];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/fv-test-keyfile-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/master.key", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[400];
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
    if (d) closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void put(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* The file's text (static buffer). */
static const char *text_of(const char *path)
{
    static char buf[128 * 1024];
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* How many names the directory holds besides . and .. (a temporary file left would count). */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void key_bytes(unsigned char key[FV_KEY_BYTES], unsigned char b)
{
    for (int i = 0; i < FV_KEY_BYTES; i++) key[i] = (unsigned char)(b + i);
}

/* The id of a key given in hex (static buffer, one at a time). */
static const char *id_of_hex(const char *hex)
{
    static char id[FV_KEY_IDLEN + 1];
    unsigned char key[FV_KEY_BYTES];
    for (int i = 0; i < FV_KEY_BYTES; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        key[i] = (unsigned char)v;
    }
    fv_keys_id(key, id);
    return id;
}

static void test_new_key_first_old_lines_kept(void **state)
{
    fixture *f = *state;
    char old[512], err[512] = "", id[FV_KEY_IDLEN + 1];
    /* comments, a blank line, indentation and no final newline: all kept byte for byte */
    snprintf(old, sizeof old, "# current\n%s\n\n  %s  \n# the end, no newline", K1, K2);
    put(f->path, old, 0600);
    unsigned char key[FV_KEY_BYTES];
    key_bytes(key, 0x40);
    int n = 0;
    assert_int_equal(fvctl_keyfile_prepend(f->path, key, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    const char *now = text_of(f->path);
    assert_int_equal(strncmp(now, "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f\n",
                             65),
                     0);
    assert_string_equal(now + 65, old);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(entries(f->dir), 1);
    fv_keyset ks;
    assert_int_equal(fv_keys_load(&ks, f->path, err, sizeof err), 0);
    assert_int_equal(ks.n, 3);
    fv_keys_id(key, id);
    assert_string_equal(ks.keys[0].id, id);
    assert_memory_equal(ks.keys[0].key, key, FV_KEY_BYTES);
    assert_int_equal(ks.keys[1].key[31], 0x1f);
    assert_int_equal(ks.keys[2].key[0], 0xff);
    fv_keys_clear(&ks);
}

static void test_symlink_kept(void **state)
{
    fixture *f = *state;
    char link[128], err[512] = "", old[128];
    snprintf(old, sizeof old, "%s\n", K1);
    put(f->path, old, 0600);
    snprintf(link, sizeof link, "%s/link.key", f->dir);
    assert_int_equal(symlink("master.key", link), 0);
    unsigned char key[FV_KEY_BYTES];
    key_bytes(key, 0x80);
    int n = 0;
    assert_int_equal(fvctl_keyfile_prepend(link, key, &n, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_string_equal(text_of(f->path) + 65, old);
    assert_int_equal(entries(f->dir), 2);
}

static void test_owner_kept(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0) skip(); /* only root can give a file to somebody else */
    char err[512] = "", old[128];
    snprintf(old, sizeof old, "%s\n", K1);
    put(f->path, old, 0600);
    assert_int_equal(chown(f->path, 65534, 65534), 0);
    unsigned char key[FV_KEY_BYTES];
    key_bytes(key, 0x90);
    int n = 0;
    assert_int_equal(fvctl_keyfile_prepend(f->path, key, &n, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* and the standby and the promotion keep it too */
    key_bytes(key, 0x40);
    assert_int_equal(fvctl_keyfile_standby(f->path, key, &n, err, sizeof err), 0);
    assert_int_equal(fvctl_keyfile_promote(f->path, id_of_hex(NEWHEX), &n, err, sizeof err), 0);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(strncmp(text_of(f->path), NEWHEX, 64), 0);
    /* and the drop */
    assert_int_equal(fvctl_keyfile_drop(f->path, id_of_hex(K1), &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 65534);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_null(strstr(text_of(f->path), K1));
}

/* Which rewrite a refusal is asked of. */
typedef enum op {
    OP_PREPEND, /* fvctl_keyfile_prepend(key) */
    OP_STANDBY, /* fvctl_keyfile_standby(key) */
    OP_PROMOTE, /* fvctl_keyfile_promote(id) */
    OP_DROP,    /* fvctl_keyfile_drop(id) */
    OP_CHECK,   /* fvctl_keyfile_drop_check(id): the same refusals, nothing written */
} op;

static int run(op o, const char *path, const unsigned char *key, const char *id, int *n, char *err,
               size_t errlen)
{
    int position = -7;
    if (o == OP_PREPEND) return fvctl_keyfile_prepend(path, key, n, err, errlen);
    if (o == OP_STANDBY) return fvctl_keyfile_standby(path, key, n, err, errlen);
    if (o == OP_DROP) return fvctl_keyfile_drop(path, id, n, err, errlen);
    if (o == OP_CHECK) {
        int rc = fvctl_keyfile_drop_check(path, id, &position, err, errlen);
        if (rc != 0) assert_int_equal(position, -7);
        return rc;
    }
    return fvctl_keyfile_promote(path, id, n, err, errlen);
}

/* Every refusal: -1, a reason without key material, the old file unchanged, nothing left over. */
static void refused_by(op o, fixture *f, const char *path, const unsigned char *key, const char *id,
                       const char *expect)
{
    char err[512] = "", before[128 * 1024];
    bool exists = access(f->path, F_OK) == 0;
    if (exists) snprintf(before, sizeof before, "%s", text_of(f->path));
    int nent = entries(f->dir), n = -7;
    int rc = run(o, path, key, id, &n, err, sizeof err);
    if (rc != -1) fail_msg("accepted (%d), expected a refusal with '%s'", rc, expect);
    assert_int_equal(n, -7);
    if (!strstr(err, expect)) fail_msg("'%s' not in '%s'", expect, err);
    assert_null(strstr(err, K1));
    assert_null(strstr(err, K2));
    assert_null(strstr(err, "404142"));
    if (exists) assert_string_equal(text_of(f->path), before);
    assert_int_equal(entries(f->dir), nent);
}

static void refused(fixture *f, const char *path, const unsigned char *key, const char *expect)
{
    refused_by(OP_PREPEND, f, path, key, NULL, expect);
}

/* The ids of the file's keys, in order, joined by spaces (static buffer). */
static const char *ids_of(const char *path)
{
    static char out[FV_KEYS_MAX * (FV_KEY_IDLEN + 1) + 1];
    char err[512];
    fv_keyset ks;
    assert_int_equal(fv_keys_load(&ks, path, err, sizeof err), 0);
    out[0] = '\0';
    for (int i = 0; i < ks.n; i++) {
        if (i) strcat(out, " ");
        strcat(out, ks.keys[i].id);
    }
    fv_keys_clear(&ks);
    return out;
}


static void test_refusals(void **state)
{
    fixture *f = *state;
    unsigned char key[FV_KEY_BYTES], k1[FV_KEY_BYTES];
    key_bytes(key, 0x40);
    key_bytes(k1, 0x00); /* K1's bytes */
    /* no file */
    refused(f, f->path, key, "cannot open key file");
    /* readable by others: what the programs refuse */
    char text[2048];
    snprintf(text, sizeof text, "%s\n", K1);
    put(f->path, text, 0644);
    refused(f, f->path, key, "readable by group or others");
    /* not a key file */
    put(f->path, "not hex at all\n", 0600);
    refused(f, f->path, key, "line 1");
    /* a key whose id is in the file already (here: the same key) */
    put(f->path, text, 0600);
    refused(f, f->path, k1, "already in");
    /* full: FV_KEYS_MAX keys */
    text[0] = '\0';
    for (int i = 0; i < FV_KEYS_MAX; i++) {
        char line[80];
        snprintf(line, sizeof line, "%02x%s\n", i, K1 + 2);
        strcat(text, line);
    }
    put(f->path, text, 0600);
    refused(f, f->path, key, "drop an old key first");
    /* one key under 64 KiB of comments: fv_keys_load takes it, the rewrite reads no more */
    static char big[70 * 1024];
    snprintf(big, sizeof big, "%s\n", K1);
    static const char comment[] = "# a comment line, a comment line, a comment line.\n";
    for (size_t len = strlen(big); len + sizeof comment < sizeof big; len += sizeof comment - 1)
        memcpy(big + len, comment, sizeof comment);
    assert_true(strlen(big) > 65 * 1024);
    put(f->path, big, 0600);
    refused(f, f->path, key, "reading");
}

static void test_standby_second_old_lines_kept(void **state)
{
    fixture *f = *state;
    char old[512], want[1024], err[512] = "", ids[128], id1[FV_KEY_IDLEN + 1], id2[FV_KEY_IDLEN + 1],
                               idn[FV_KEY_IDLEN + 1];
    snprintf(id1, sizeof id1, "%s", id_of_hex(K1));
    snprintf(id2, sizeof id2, "%s", id_of_hex(K2));
    snprintf(idn, sizeof idn, "%s", id_of_hex(NEWHEX));
    /* comments before and after the first key, an indented older key, no final newline */
    snprintf(old, sizeof old, "# made at install\n\n%s\n# previous\n  %s  \n# the end", K1, K2);
    put(f->path, old, 0600);
    unsigned char key[FV_KEY_BYTES];
    key_bytes(key, 0x40);
    int n = 0;
    assert_int_equal(fvctl_keyfile_standby(f->path, key, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    snprintf(want, sizeof want, "# made at install\n\n%s\n%s\n# previous\n  %s  \n# the end", K1, NEWHEX,
             K2);
    assert_string_equal(text_of(f->path), want);
    snprintf(ids, sizeof ids, "%s %s %s", id1, idn, id2);
    assert_string_equal(ids_of(f->path), ids); /* still signs under K1, opens the new key */
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(entries(f->dir), 1);

    /* the only key on a last line without a newline: one is added before the standby */
    put(f->path, K1, 0600);
    assert_int_equal(fvctl_keyfile_standby(f->path, key, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    snprintf(want, sizeof want, "%s\n%s\n", K1, NEWHEX);
    assert_string_equal(text_of(f->path), want);
    /* CRLF line ends, as the programs read them: the standby goes after the first key's line */
    snprintf(old, sizeof old, "%s\r\n%s\r\n", K1, K2);
    put(f->path, old, 0600);
    assert_int_equal(fvctl_keyfile_standby(f->path, key, &n, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s\r\n%s\n%s\r\n", K1, NEWHEX, K2);
    assert_string_equal(text_of(f->path), want);
    assert_int_equal(entries(f->dir), 1);
}

static void test_standby_refusals(void **state)
{
    fixture *f = *state;
    unsigned char key[FV_KEY_BYTES], k1[FV_KEY_BYTES];
    key_bytes(key, 0x40);
    key_bytes(k1, 0x00); /* K1's bytes */
    char text[2048];
    refused_by(OP_STANDBY, f, f->path, key, NULL, "cannot open key file");
    snprintf(text, sizeof text, "%s\n", K1);
    put(f->path, text, 0640);
    refused_by(OP_STANDBY, f, f->path, key, NULL, "readable by group or others");
    put(f->path, "# only a comment\n", 0600);
    refused_by(OP_STANDBY, f, f->path, key, NULL, "holds no key");
    /* the first key itself as a standby of itself, or a key that is further down already */
    snprintf(text, sizeof text, "%s\n%s\n", K2, K1);
    put(f->path, text, 0600);
    refused_by(OP_STANDBY, f, f->path, k1, NULL, "already in");
    text[0] = '\0';
    for (int i = 0; i < FV_KEYS_MAX; i++) {
        char line[80];
        snprintf(line, sizeof line, "%02x%s\n", i, K1 + 2);
        strcat(text, line);
    }
    put(f->path, text, 0600);
    refused_by(OP_STANDBY, f, f->path, key, NULL, "drop an old key first");
}

static void test_promote_moves_the_key_first(void **state)
{
    fixture *f = *state;
    char old[1024], want[1024], err[512] = "", ids[128], id1[FV_KEY_IDLEN + 1], id2[FV_KEY_IDLEN + 1],
                                idn[FV_KEY_IDLEN + 1];
    snprintf(id1, sizeof id1, "%s", id_of_hex(K1));
    snprintf(id2, sizeof id2, "%s", id_of_hex(K2));
    snprintf(idn, sizeof idn, "%s", id_of_hex(NEWHEX));
    /* the standby (second) key promoted: its line moves to the top, the rest stays in order */
    snprintf(old, sizeof old, "# made at install\n%s\n%s\n# previous\n%s\n# the end", K1, NEWHEX, K2);
    put(f->path, old, 0600);
    int n = 0;
    assert_int_equal(fvctl_keyfile_promote(f->path, idn, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    snprintf(want, sizeof want, "%s\n# made at install\n%s\n# previous\n%s\n# the end", NEWHEX, K1, K2);
    assert_string_equal(text_of(f->path), want);
    snprintf(ids, sizeof ids, "%s %s %s", idn, id1, id2);
    assert_string_equal(ids_of(f->path), ids);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(entries(f->dir), 1);

    /* the last key, on a last line without a newline, in capitals and indented: written anew */
    char upper[80];
    for (size_t i = 0; i <= strlen(K2); i++) upper[i] = (char)toupper((unsigned char)K2[i]);
    snprintf(old, sizeof old, "%s\n%s\n\t%s ", K1, NEWHEX, upper);
    put(f->path, old, 0600);
    assert_int_equal(fvctl_keyfile_promote(f->path, id2, &n, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s\n%s\n%s\n", K2, K1, NEWHEX);
    assert_string_equal(text_of(f->path), want);

    /* the first key already: nothing written (the same inode, the same text) */
    struct stat before, after;
    assert_int_equal(stat(f->path, &before), 0);
    n = -7;
    assert_int_equal(fvctl_keyfile_promote(f->path, id2, &n, err, sizeof err), 1);
    assert_int_equal(n, 3);
    assert_int_equal(stat(f->path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_string_equal(text_of(f->path), want);
    assert_int_equal(entries(f->dir), 1);

    /* through a symbolic link: the link stays one, the file it names is replaced */
    char link[128];
    snprintf(link, sizeof link, "%s/link.key", f->dir);
    assert_int_equal(symlink("master.key", link), 0);
    assert_int_equal(fvctl_keyfile_promote(link, id1, &n, err, sizeof err), 0);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    snprintf(want, sizeof want, "%s\n%s\n%s\n", K1, K2, NEWHEX);
    assert_string_equal(text_of(f->path), want);
    assert_int_equal(entries(f->dir), 2);
}

static void test_promote_refusals(void **state)
{
    fixture *f = *state;
    char text[1024], id1[FV_KEY_IDLEN + 1], idn[FV_KEY_IDLEN + 1], expect[128];
    snprintf(id1, sizeof id1, "%s", id_of_hex(K1));
    snprintf(idn, sizeof idn, "%s", id_of_hex(NEWHEX));
    refused_by(OP_PROMOTE, f, f->path, NULL, idn, "cannot open key file");
    snprintf(text, sizeof text, "%s\n%s\n", K1, K2);
    put(f->path, text, 0600);
    /* an id no key of the file has: refused, naming the file's ids in order */
    snprintf(expect, sizeof expect, "has the id %s (its keys, in order: %s %s)", idn, id1,
             id_of_hex(K2));
    refused_by(OP_PROMOTE, f, f->path, NULL, idn, expect);
    /* not the shape of an id */
    refused_by(OP_PROMOTE, f, f->path, NULL, "", "is not a key id");
    refused_by(OP_PROMOTE, f, f->path, NULL, "1234567", "is not a key id");
    refused_by(OP_PROMOTE, f, f->path, NULL, "123456789", "is not a key id");
    refused_by(OP_PROMOTE, f, f->path, NULL, "ABCDEF01", "is not a key id");
    refused_by(OP_PROMOTE, f, f->path, NULL, "1234567\n", "is not a key id");
    refused_by(OP_PROMOTE, f, f->path, NULL, K1, "is not a key id"); /* a key is no id */
    /* the same key on two lines: which line to move is not ours to guess */
    snprintf(text, sizeof text, "%s\n%s\n%s\n", K2, K1, K1);
    put(f->path, text, 0600);
    refused_by(OP_PROMOTE, f, f->path, NULL, id1, "on 2 lines");
    /* what the programs refuse */
    snprintf(text, sizeof text, "%s\n%s\n", K1, K2);
    put(f->path, text, 0604);
    refused_by(OP_PROMOTE, f, f->path, NULL, id1, "readable by group or others");
    snprintf(text, sizeof text, "%s\n%s\nnot a key\n", K1, K2);
    put(f->path, text, 0600);
    refused_by(OP_PROMOTE, f, f->path, NULL, id1, "line 3");
}

static void test_unwritable_directory(void **state)
{
    fixture *f = *state;
    if (geteuid() == 0) skip(); /* root writes anyway */
    char text[256];
    snprintf(text, sizeof text, "%s\n", K1);
    put(f->path, text, 0600);
    assert_int_equal(chmod(f->dir, 0500), 0);
    unsigned char key[FV_KEY_BYTES];
    key_bytes(key, 0x40);
    refused(f, f->path, key, "creating a temporary file beside");
    refused_by(OP_STANDBY, f, f->path, key, NULL, "creating a temporary file beside");
    snprintf(text, sizeof text, "%s\n%s\n", K1, K2);
    assert_int_equal(chmod(f->dir, 0700), 0);
    put(f->path, text, 0600);
    assert_int_equal(chmod(f->dir, 0500), 0);
    refused_by(OP_PROMOTE, f, f->path, NULL, id_of_hex(K2), "creating a temporary file beside");
    refused_by(OP_DROP, f, f->path, NULL, id_of_hex(K2), "creating a temporary file beside");
    assert_int_equal(chmod(f->dir, 0700), 0);
}

static void test_drop_removes_the_line(void **state)
{
    fixture *f = *state;
    char old[1024], want[1024], err[512] = "", ids[128], id1[FV_KEY_IDLEN + 1], id2[FV_KEY_IDLEN + 1],
                                idn[FV_KEY_IDLEN + 1];
    snprintf(id1, sizeof id1, "%s", id_of_hex(K1));
    snprintf(id2, sizeof id2, "%s", id_of_hex(K2));
    snprintf(idn, sizeof idn, "%s", id_of_hex(NEWHEX));
    /* an indented key in the middle: its line goes, the comment above it and every other line stay */
    snprintf(old, sizeof old, "# made at install\n%s\n\n# previous\n  %s  \n%s\n# the end", K1, NEWHEX,
             K2);
    put(f->path, old, 0600);
    int n = 0, position = 0;
    assert_int_equal(fvctl_keyfile_drop_check(f->path, idn, &position, err, sizeof err), 0);
    assert_int_equal(position, 2);
    assert_string_equal(text_of(f->path), old); /* the check writes nothing */
    assert_int_equal(fvctl_keyfile_drop(f->path, idn, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    snprintf(want, sizeof want, "# made at install\n%s\n\n# previous\n%s\n# the end", K1, K2);
    assert_string_equal(text_of(f->path), want);
    snprintf(ids, sizeof ids, "%s %s", id1, id2);
    assert_string_equal(ids_of(f->path), ids);
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(entries(f->dir), 1);

    /* the last line, without a newline: the line before keeps its own */
    snprintf(old, sizeof old, "%s\n%s", K1, K2);
    put(f->path, old, 0600);
    assert_int_equal(fvctl_keyfile_drop(f->path, id2, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    snprintf(want, sizeof want, "%s\n", K1);
    assert_string_equal(text_of(f->path), want);

    /* CRLF line ends, a key in capitals */
    char upper[80];
    for (size_t i = 0; i <= strlen(K2); i++) upper[i] = (char)toupper((unsigned char)K2[i]);
    snprintf(old, sizeof old, "%s\r\n%s\r\n%s\r\n", K1, upper, NEWHEX);
    put(f->path, old, 0600);
    assert_int_equal(fvctl_keyfile_drop(f->path, id2, &n, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s\r\n%s\r\n", K1, NEWHEX);
    assert_string_equal(text_of(f->path), want);

    /* the same key on two lines (not the first): both go, it leaves the file */
    snprintf(old, sizeof old, "%s\n%s\n# kept\n%s\n%s\n", K1, K2, NEWHEX, K2);
    put(f->path, old, 0600);
    assert_int_equal(fvctl_keyfile_drop_check(f->path, id2, &position, err, sizeof err), 0);
    assert_int_equal(position, 2);
    assert_int_equal(fvctl_keyfile_drop(f->path, id2, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    snprintf(want, sizeof want, "%s\n# kept\n%s\n", K1, NEWHEX);
    assert_string_equal(text_of(f->path), want);
    assert_int_equal(entries(f->dir), 1);

    /* through a symbolic link: the link stays one, the file it names is replaced */
    char link[128];
    snprintf(link, sizeof link, "%s/link.key", f->dir);
    assert_int_equal(symlink("master.key", link), 0);
    assert_int_equal(fvctl_keyfile_drop(link, idn, &n, err, sizeof err), 0);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    snprintf(want, sizeof want, "%s\n# kept\n", K1);
    assert_string_equal(text_of(f->path), want);
    assert_int_equal(entries(f->dir), 2);
    /* the only key left now: refused */
    refused_by(OP_DROP, f, link, NULL, id1, "is the only key of");
}

static void test_drop_refusals(void **state)
{
    fixture *f = *state;
    char text[1024], id1[FV_KEY_IDLEN + 1], id2[FV_KEY_IDLEN + 1], idn[FV_KEY_IDLEN + 1], expect[160];
    snprintf(id1, sizeof id1, "%s", id_of_hex(K1));
    snprintf(id2, sizeof id2, "%s", id_of_hex(K2));
    snprintf(idn, sizeof idn, "%s", id_of_hex(NEWHEX));
    static const op ops[] = {OP_DROP, OP_CHECK};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        op o = ops[k];
        unlink(f->path);
        refused_by(o, f, f->path, NULL, id2, "cannot open key file");
        snprintf(text, sizeof text, "# current\n%s\n%s\n", K1, K2);
        put(f->path, text, 0600);
        /* the first (current) key, whatever else the file holds */
        refused_by(o, f, f->path, NULL, id1, "is the first (current) key of");
        /* an id no key of the file has: the file's ids, in order */
        snprintf(expect, sizeof expect, "has the id %s (its keys, in order: %s %s)", idn, id1, id2);
        refused_by(o, f, f->path, NULL, idn, expect);
        /* not the shape of an id (capitals are fvctl's to fold, not the file's) */
        refused_by(o, f, f->path, NULL, "", "is not a key id");
        refused_by(o, f, f->path, NULL, "1234567", "is not a key id");
        refused_by(o, f, f->path, NULL, "123456789", "is not a key id");
        refused_by(o, f, f->path, NULL, "ABCDEF01", "is not a key id");
        refused_by(o, f, f->path, NULL, "1234567\n", "is not a key id");
        refused_by(o, f, f->path, NULL, "%s%s%s%n", "is not a key id");
        refused_by(o, f, f->path, NULL, K2, "is not a key id"); /* a key is no id */
        /* the only key, and the only key on two lines */
        snprintf(text, sizeof text, "%s\n", K1);
        put(f->path, text, 0600);
        refused_by(o, f, f->path, NULL, id1, "is the only key of");
        snprintf(text, sizeof text, "%s\n# again\n%s\n", K1, K1);
        put(f->path, text, 0600);
        refused_by(o, f, f->path, NULL, id1, "is the only key of");
        /* the first key's id on a later line too: it is the first key */
        snprintf(text, sizeof text, "%s\n%s\n%s\n", K1, K2, K1);
        put(f->path, text, 0600);
        refused_by(o, f, f->path, NULL, id1, "is the first (current) key of");
        /* what the programs refuse */
        snprintf(text, sizeof text, "%s\n%s\n", K1, K2);
        put(f->path, text, 0640);
        refused_by(o, f, f->path, NULL, id2, "readable by group or others");
        snprintf(text, sizeof text, "%s\n%s\nnot a key\n", K1, K2);
        put(f->path, text, 0600);
        refused_by(o, f, f->path, NULL, id2, "line 3");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_key_first_old_lines_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_standby_second_old_lines_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_standby_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_moves_the_key_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promote_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_removes_the_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drop_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
