/* Unit tests of the key file rewrite of `fvctl rotate-master-key --new-key`
 * (tools/fvctl/fvctl_keyfile.c, compiled in alone): the new key first and every old line kept,
 * mode 0600 and the old owner, a symbolic link kept, and every refusal leaves the old file as it
 * was and no temporary file behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../tools/fvctl/fvctl_keyfile.c"

static const char *K1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char *K2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

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
}

/* Every refusal: -1, a reason without key material, the old file unchanged, nothing left over. */
static void refused(fixture *f, const char *path, const unsigned char *key, const char *expect)
{
    char err[512] = "", before[128 * 1024];
    bool exists = access(f->path, F_OK) == 0;
    if (exists) snprintf(before, sizeof before, "%s", text_of(f->path));
    int nent = entries(f->dir), n = -7;
    int rc = fvctl_keyfile_prepend(path, key, &n, err, sizeof err);
    if (rc != -1) fail_msg("accepted, expected a refusal with '%s'", expect);
    assert_int_equal(n, -7);
    if (!strstr(err, expect)) fail_msg("'%s' not in '%s'", expect, err);
    assert_null(strstr(err, K1));
    assert_null(strstr(err, K2));
    assert_null(strstr(err, "404142"));
    if (exists) assert_string_equal(text_of(f->path), before);
    assert_int_equal(entries(f->dir), nent);
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

static void test_unwritable_directory(void **state)
{
    fixture *f = *state;
    if (geteuid() == 0) skip(); /* root writes anyway */
    char text[128];
    snprintf(text, sizeof text, "%s\n", K1);
    put(f->path, text, 0600);
    assert_int_equal(chmod(f->dir, 0500), 0);
    unsigned char key[FV_KEY_BYTES];
    key_bytes(key, 0x40);
    refused(f, f->path, key, "creating a temporary file beside");
    assert_int_equal(chmod(f->dir, 0700), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_new_key_first_old_lines_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_owner_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
