/* The master key file rewritten with a new key first (fvctl rotate-master-key --new-key). */
#ifndef FVCTL_KEYFILE_H
#define FVCTL_KEYFILE_H

#include <stddef.h>

#include "fv_keys.h"

/* Rewrites the key file at path (a symbolic link is followed: the file it names is replaced)
 * with key as its first line, every line of the old file after it unchanged (keys, comments,
 * blank lines). Atomic: a temporary file in the same directory, mode 0600 and the old file's
 * owner, fsync'd, read back with fv_keys_load, renamed over the old one, and the directory
 * fsync'd; on any failure the temporary file is removed and the old file stays as it was.
 * Refuses a file that fv_keys_load refuses, one that holds FV_KEYS_MAX keys already, a key whose
 * id is already in the file, and a file changed meanwhile. Returns 0 with the number of keys now
 * in the file in *nkeys, or -1 with the reason in err (never key material). Borrows key. */
int fvctl_keyfile_prepend(const char *path, const unsigned char key[FV_KEY_BYTES], int *nkeys, char *err,
                          size_t errlen);

#endif
