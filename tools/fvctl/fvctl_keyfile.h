/* The master key file rewritten by fvctl rotate-master-key: a new key first (--new-key), a new key
 * second (--new-key --standby), a key moved to the first line (--promote ID), or an old key's line
 * removed (--drop ID). */
#ifndef FVCTL_KEYFILE_H
#define FVCTL_KEYFILE_H

#include <stddef.h>

#include "fv_keys.h"

/* Every rewrite below: the file at path (a symbolic link is followed: the file it names is
 * replaced) is written anew, atomically: a temporary file in the same directory, mode 0600 and the
 * old file's owner, fsync'd, read back with fv_keys_load and checked to hold exactly the keys
 * expected in the order expected, renamed over the old one, and the directory fsync'd; on any
 * failure the temporary file is removed and the old file stays as it was. Every line not named
 * below stays as it was, in its order (keys, comments, blank lines). Each refuses a file that
 * fv_keys_load refuses and a file changed meanwhile. On success *nkeys is the number of keys now in
 * the file; on failure err says why (never key material). */

/* key as the new first line of the file (the current key from the next start of each program).
 * Refuses a file that holds FV_KEYS_MAX keys already and a key whose id is in the file. Returns 0
 * or -1. Borrows key. */
int fvctl_keyfile_prepend(const char *path, const unsigned char key[FV_KEY_BYTES], int *nkeys, char *err,
                          size_t errlen);

/* key as a standby: the line just after the first key's line, so the programs accept it for
 * opening and verifying but seal, sign and wrap nothing under it. The same refusals as
 * fvctl_keyfile_prepend. Returns 0 or -1. Borrows key. */
int fvctl_keyfile_standby(const char *path, const unsigned char key[FV_KEY_BYTES], int *nkeys, char *err,
                          size_t errlen);

/* The key whose id is id (FV_KEY_IDLEN lowercase hex characters) moved to the first line of the
 * file (written as 64 lowercase hex characters), every other line kept in its order. Returns 0,
 * 1 when that key is the first already (nothing written), or -1: refuses an id that is not the
 * shape of one, one that names no key of the file (err lists the file's ids), or more than one. */
int fvctl_keyfile_promote(const char *path, const char *id, int *nkeys, char *err, size_t errlen);

/* The key whose id is id removed from the file: its line (and any other line of the same id), with
 * its newline, every other line kept in its order, comments and blank lines included (a comment
 * above the line stays: it is the operator's). Returns 0 or -1: refuses an id that is not the
 * shape of one, one that names no key of the file (err lists the file's ids), the file's only key,
 * and its first (current) key. Whether anything is still sealed or wrapped under the key is the
 * caller's to check (fvctl_keydrop.c) before. */
int fvctl_keyfile_drop(const char *path, const char *id, int *nkeys, char *err, size_t errlen);

/* The refusals of fvctl_keyfile_drop without writing anything, for the checks made before the drop:
 * 0 (*position is the key's place in the file, 1 for the first line's key) or -1 with the reason. */
int fvctl_keyfile_drop_check(const char *path, const char *id, int *position, char *err, size_t errlen);

#endif
