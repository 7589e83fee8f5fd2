/* fvctl's spool command: spool-replay, the spool files of a front end that is gone. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "fv_cli.h"
#include "fv_redisutil.h"
#include "fv_spool.h"
#include "fvctl.h"

static void spool_replay_usage(FILE *out)
{
    fprintf(out,
            "usage: fvctl [-c FILE] spool-replay DIR\n"
            "replay the spool files (spool-*.log) a dead front end left in DIR (its spool_dir) into\n"
            "Redis and empty them; files a running front end holds are skipped; prints the count.\n"
            "Replaying again is safe: the workers write each submission once.\n");
}
typedef struct replay_ctx {
    redisContext *c;
    long sent;
} replay_ctx;

static int replay_record(const fv_spool_record *r, void *arg)
{
    replay_ctx *x = arg;
    const char *argv[3 + FV_SPOOL_MAX_ITEMS];
    size_t lens[3 + FV_SPOOL_MAX_ITEMS];
    int argc = fv_spool_record_xadd_argv(r, fv_common.stream, argv, lens);
    redisReply *reply = redisCommandArgv(x->c, argc, argv, lens);
    int ok = reply && reply->type == REDIS_REPLY_STRING;
    if (!ok) {
        char err[256];
        fv_redisutil_error(x->c, reply, err, sizeof err);
        fprintf(stderr, "fvctl spool-replay: XADD failed: %s\n", err);
    }
    if (reply) freeReplyObject(reply);
    if (ok) x->sent++;
    return ok ? 0 : -1;
}

int fvctl_spool_replay(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        spool_replay_usage(stdout);
        return FV_EXIT_OK;
    }
    if (argc != 2 || argv[1][0] == '-') {
        spool_replay_usage(stderr);
        return FV_EXIT_CONFIG;
    }
    const char *dir = argv[1];
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "fvctl spool-replay: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char err[512];
    redisContext *c = fv_redisutil_connect(fv_common.redis_host, fv_common.redis_port,
                                           fv_common.redis_user, fv_common.redis_password, 5000, 30000,
                                           err, sizeof err);
    if (!c) {
        fprintf(stderr, "fvctl spool-replay: redis: %s\n", err);
        closedir(d);
        return 1;
    }
    int status = 0;
    long total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "spool-", 6) != 0 || n < 5 || strcmp(e->d_name + n - 4, ".log") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        replay_ctx x = {c, 0};
        long got = fv_spool_drain_file(path, replay_record, &x, err, sizeof err);
        if (got == -2) {
            fprintf(stderr, "fvctl spool-replay: skipping %s\n", err);
            continue;
        }
        if (got < 0) {
            fprintf(stderr, "fvctl spool-replay: %s (%ld sent before; replaying again is safe)\n", err,
                    x.sent);
            status = 1;
            continue;
        }
        fprintf(stderr, "fvctl spool-replay: %s: %ld submissions replayed, file emptied\n", path, got);
        total += got;
    }
    closedir(d);
    redisFree(c);
    printf("%ld\n", total);
    return status;
}
