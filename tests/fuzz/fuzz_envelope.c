/* Fuzz target: the queue envelope (common/fv_envelope.c). A stream entry's items as the worker
 * gets them (fv_envelope_parse, then worker/wk_batch.c's wk_json_is_object on data and
 * location), as fvctl reads a dead letter (fv_envelope_dead_parse, fv_envelope_find), and the
 * round trip: a parsed envelope written again (fv_envelope_xadd_argv) must parse to the same.
 *
 * Input: the entry's items (field, value, field, value, ...) separated by NUL bytes; each item
 * is handed over in its own buffer of exactly its length, as hiredis gives lengths. */
#include "fuzz_util.h"
#include "fv_envelope.h"
#include "wk_batch.h"

#define MAX_ITEMS 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

static bool same(const fv_envelope *a, const fv_envelope *b)
{
    return strcmp(a->id, b->id) == 0 && strcmp(a->survey_id, b->survey_id) == 0 &&
           a->survey_version == b->survey_version && strcmp(a->deployment_id, b->deployment_id) == 0 &&
           strcmp(a->submitted_by, b->submitted_by) == 0 && a->received_at_ms == b->received_at_ms &&
           a->sealed_len == b->sealed_len &&
           (a->sealed_len == 0 || memcmp(a->sealed, b->sealed, a->sealed_len) == 0) &&
           a->data_len == b->data_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0) &&
           a->location_len == b->location_len &&
           (a->location_len == 0 || memcmp(a->location, b->location, a->location_len) == 0) &&
           a->collected_at_len == b->collected_at_len &&
           (a->collected_at_len == 0 ||
            memcmp(a->collected_at, b->collected_at, a->collected_at_len) == 0) &&
           a->verified == b->verified;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *items[MAX_ITEMS];
    size_t lens[MAX_ITEMS];
    size_t n = fuzz_split(data, size, '\0', MAX_ITEMS, items, lens);
    const char *const *it = (const char *const *)items;

    fv_envelope e;
    char err[256];
    /* The worker refuses an odd number of items before parsing (wk_batch.c parse_entry). */
    if (n % 2 == 0 && fv_envelope_parse(&e, it, lens, n, err, sizeof err) == 0) {
        /* A sealed entry's payload is opened later (fv_qseal_open); a clear one has its data. */
        if (e.sealed ? (e.data || e.location || e.openrosa) : (!e.data || e.data_len == 0)) abort();
        if (e.data) (void)wk_json_is_object(e.data, e.data_len);
        if (e.location_len > 0) (void)wk_json_is_object(e.location, e.location_len);
        /* Round trip through the XADD arguments, as the front end writes an entry. */
        const char *argv[3 + 2 * FV_ENVELOPE_MAX_FIELDS];
        size_t argvlen[3 + 2 * FV_ENVELOPE_MAX_FIELDS];
        char scratch[64];
        int argc = fv_envelope_xadd_argv(&e, "s", scratch, sizeof scratch, argv, argvlen);
        if (argc != (e.sealed ? 3 + 2 * FV_ENVELOPE_NSEALED
                              : 3 + 2 * FV_ENVELOPE_NFIELDS + (e.openrosa ? 2 : 0)))
            abort();
        fv_envelope back;
        if (fv_envelope_parse(&back, argv + 3, argvlen + 3, (size_t)argc - 3, err, sizeof err) != 0)
            abort();
        if (!same(&e, &back)) abort();
    }

    fv_dead_letter d;
    fv_envelope_dead_parse(&d, it, lens, n);
    if (d.own_items > n || d.own_items % 2 != 0) abort();
    if (d.own_items >= 2) (void)fv_envelope_parse(&e, it, lens, d.own_items, err, sizeof err);
    static const char *const names[] = {"id", "error", "stream_id", "deliveries", "data", "v"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        long at = fv_envelope_find(it, lens, n, names[k]);
        if (at >= (long)n || (at >= 0 && at % 2 != 1)) abort();
    }
    fuzz_parts_free(items, n);
    return 0;
}
