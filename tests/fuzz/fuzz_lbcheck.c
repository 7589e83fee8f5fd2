/* Fuzz target: the balancer's health-check reader (balancer/lb_check.c lb_check_parse): the
 * answer of a backend to GET /readyz, status line, Content-Length, JSON body. The answer is
 * fed the way the checker gets it: in pieces as they arrive (each prefix, until decided), then
 * the whole with the connection closed. A decision must not change once taken.
 *
 * Input: the bytes the backend sends. */
#include "fuzz_util.h"
#include "lb_check.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: an overread is a report. */
    char *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    lb_check_answer a, b;
    /* Pieces: a few split points, as reads would deliver them. */
    size_t step = size / 4 + 1;
    bool decided = false;
    for (size_t have = step; have < size && !decided; have += step)
        decided = lb_check_parse(buf, have, false, &a);
    if (!lb_check_parse(buf, size, true, &b)) abort(); /* at EOF it always decides */
    if (b.result > LB_RES_FAILED || (b.result != LB_RES_FAILED && b.error[0])) abort();
    if (b.result == LB_RES_FAILED && !b.error[0]) abort(); /* a failure says why */
    free(buf);
    return 0;
}
