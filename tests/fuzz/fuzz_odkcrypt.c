/* Fuzz target: the ODK encrypted-submission format's parsers (common/fv_odkcrypt.h,
 * common/fv_odkxml.h). The first byte chooses what the rest is:
 *   0  an envelope as it arrives in POST /v1/deployments/{id}/responses's "encrypted" (the JSON
 *      text; checked for a 2048-bit key and for an unknown key, as the front end and the worker do)
 *   1  a decrypted submission.xml, as fv-decrypt flattens it
 *   2  a public key as it arrives in "public_key" (PEM) and, the same bytes, as an XForm's
 *      base64RsaPublicKey
 *   3  an OpenRosa xml_submission_file read as an encrypted submission's manifest
 *      (common/fv_odkmanifest.h)
 * Invariants: a refusal has a reason (and a field); an accepted envelope is accepted for the
 * unknown key too; a manifest's names are within their bounds; an accepted key is 2048 to 8192 bits and its PEM parses back to itself. */
#include <string.h>

#include "fuzz_util.h"
#include "fv_odkcrypt.h"
#include "fv_odkmanifest.h"
#include "fv_odkxml.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return -1;
    uint8_t mode = data[0] % 4;
    data++, size--;
    if (mode == 0) {
        const char *field = NULL;
        const char *why = fv_odkcrypt_envelope_check_text((const char *)data, size, 256, &field);
        if (why && !field) abort();
        const char *why0 = fv_odkcrypt_envelope_check_text((const char *)data, size, 0, &field);
        if (!why && why0) abort(); /* good for a 2048-bit key: good when the key is not known */
    } else if (mode == 1) {
        fv_odkxml x;
        char why[256];
        why[0] = '\0';
        if (fv_odkxml_parse((const char *)data, size, &x, why, sizeof why)) {
            if (!x.form_id || !x.version || !x.instance_id) abort();
            for (size_t i = 0; i < x.n; i++)
                if (!x.f[i].path || !x.f[i].value || !x.f[i].path[0]) abort();
            fv_odkxml_free(&x);
        } else if (!why[0]) {
            abort();
        }
    } else if (mode == 3) {
        fv_odkmanifest m;
        char why[256];
        why[0] = '\0';
        if (fv_odkmanifest_parse((const char *)data, size, &m, why, sizeof why) == 0) {
            if (m.nmedia > FV_ODKCRYPT_MAX_MEDIA || strlen(m.instance_id) > FV_ODKCRYPT_MAX_ID ||
                strlen(m.xml_file) > FV_ODKCRYPT_MAX_NAME)
                abort();
            for (size_t i = 0; i < m.nmedia; i++)
                if (!m.media[i][0] || strlen(m.media[i]) > FV_ODKCRYPT_MAX_NAME) abort();
            if (m.b64_key && strlen(m.b64_key) > FV_ODKMANIFEST_MAX_TEXT) abort();
        } else if (!why[0]) {
            abort();
        }
        fv_odkmanifest_clear(&m);
    } else {
        fv_odkcrypt_pubkey k, k2;
        if (!fv_odkcrypt_pubkey_from_pem((const char *)data, size, &k)) {
            if (k.bits < FV_ODKCRYPT_MIN_BITS || k.bits > FV_ODKCRYPT_MAX_BITS) abort();
            if (fv_odkcrypt_pubkey_from_pem(k.pem, strlen(k.pem), &k2)) abort();
            if (strcmp(k.pem, k2.pem) != 0 || strcmp(k.der_b64, k2.der_b64) != 0) abort();
            fv_odkcrypt_pubkey_free(&k2);
            fv_odkcrypt_pubkey_free(&k);
        }
        if (!fv_odkcrypt_pubkey_from_b64((const char *)data, size, &k)) fv_odkcrypt_pubkey_free(&k);
    }
    return 0;
}
