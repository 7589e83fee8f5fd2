/* fv-worker: command line, configuration, signals; the consumer loop lives in wk_loop.c. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fv_cli.h"
#include "fv_keys.h"
#include "fv_log.h"
#include "fv_qseal.h"
#include "fv_settings.h"
#include "wk_batch.h"
#include "wk_config.h"
#include "wk_loop.h"
#include "wk_seal.h"

static volatile sig_atomic_t wk_stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    wk_stop_flag = 1;
}

static const fv_program program = {
    .name = "fv-worker",
    .purpose =
        "Fieldvault's worker: reads submissions from the Redis stream and writes them to PostgreSQL.\n"
        "No key is reloaded: a change needs a restart (SIGTERM finishes the batch first).",
    .table = wk_config_table,
    .check = wk_config_check,
};

/* SIGTERM/SIGINT only set a flag: the loop finishes its batch (commit + ack) and exits. No
 * SA_RESTART, so a blocking sleep returns at once. SIGPIPE is ignored: a dead socket is an
 * error return, never a killed process. */
static int install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    const char *errpos = "sigaction(SIGTERM)";
    if (sigaction(SIGTERM, &sa, NULL) == -1) goto failed;
    errpos = "sigaction(SIGINT)";
    if (sigaction(SIGINT, &sa, NULL) == -1) goto failed;
    sa.sa_handler = SIG_IGN;
    errpos = "sigaction(SIGPIPE)";
    if (sigaction(SIGPIPE, &sa, NULL) == -1) goto failed;
    return 0;
failed:
    fv_error("%s failed: %m", errpos);
    return -1;
}

int main(int argc, char **argv)
{
    int status = FV_EXIT_FAILURE;
    char *consumer = NULL;
    fv_qseal *seal = NULL;
    fv_cli cli;
    int cli_status = fv_cli_start(&program, argc, argv, &cli);
    if (cli_status >= 0) return cli_status;
    int level = fv_log_parse_level(fv_common.log_level);
    fv_log_init("worker", (fv_log_level)level);
    if (install_signals() != 0) goto done;

    if (wk_cfg.consumer_name[0]) {
        consumer = strdup(wk_cfg.consumer_name);
    } else {
        char host[256];
        if (gethostname(host, sizeof host) == -1) snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        if (asprintf(&consumer, "%s:%d", host, (int)getpid()) == -1) consumer = NULL;
    }
    if (consumer == NULL) {
        fv_error("out of memory");
        goto done;
    }
    /* The queue subkeys (fv_qseal.h), derived once; the key material itself is wiped at once. */
    char kerr[512];
    fv_keyset keys;
    memset(&keys, 0, sizeof keys);
    if (fv_keys_load(&keys, fv_common.key_file, kerr, sizeof kerr) != 0) {
        fv_error("key_file: %s", kerr);
        goto done;
    }
    char kdesc[160]; /* which keys it seals under and opens: rotation, docs/operations.md section 12 */
    fv_keys_describe(&keys, kdesc, sizeof kdesc);
    fv_info("key_file %s: %s", fv_common.key_file, kdesc);
    seal = fv_qseal_new(&keys);
    /* the data keys' ring (wk_seal.h) keeps its own copy of the master keys */
    int dk = wk_seal_init(&keys);
    fv_keys_clear(&keys);
    if (!seal || dk != 0) {
        fv_error("cannot derive the queue sealing keys from key_file");
        goto done;
    }
    wk_batch_set_seal(seal, wk_cfg.queue_accept_unsealed);
    if (!wk_cfg.queue_accept_unsealed) fv_info("only sealed stream entries are accepted");

    wk_loop loop;
    wk_loop_init(&loop, consumer, &wk_stop_flag);
    status = wk_loop_run(&loop);
    wk_loop_free(&loop);
done:
    fv_qseal_free(seal);
    wk_seal_free();
    free(consumer);
    fv_config_free(wk_config_table);
    return status;
}
