/* The balancer's shared operations: adding, draining and freeing backends, reloading the list. */
#include "lb_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fv_log.h"
#include "lb_check.h"
#include "lb_config.h"
#include "lb_spawn.h"

long long lb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

size_t lb_server_live_backends(const lb_server *s)
{
    return lb_pool_count(&s->pool, LB_NSTATES);
}

lb_backend *lb_server_add_backend(lb_server *s, const lb_addr *a, lb_source src, int first_delay_ms,
                                  char *err, size_t errlen)
{
    if (lb_pool_find(&s->pool, a->text)) {
        snprintf(err, errlen, "backend %s is already there", a->text);
        return NULL;
    }
    if (lb_server_live_backends(s) >= (size_t)lb_cfg.max_backends) {
        snprintf(err, errlen, "max_backends (%d) reached", lb_cfg.max_backends);
        return NULL;
    }
    lb_backend *b = lb_pool_add(&s->pool, a, src);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!lb_check_start(s, b, first_delay_ms)) {
        lb_pool_remove(&s->pool, b);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    fv_info("backend %s state new -> checking (%s)", b->addr.text, lb_source_name(src));
    return b;
}

void lb_server_backend_released(lb_server *s, lb_backend *b)
{
    if (b->state != LB_DRAINING || b->active > 0) return;
    fv_info("backend %s drained: removed", b->addr.text);
    lb_check_stop(b);
    lb_pool_remove(&s->pool, b);
}

void lb_server_drain_backend(lb_server *s, lb_backend *b, const char *reason)
{
    lb_check_stop(b);
    lb_backend_set_state(b, LB_DRAINING, reason);
    lb_server_backend_released(s, b);
}

void lb_server_checked(lb_server *s, bool changed)
{
    if (changed) lb_spawn_evaluate(s);
}

/* A value of the table as text, for comparing before and after a reload. */
static void value_text(const fv_cfg_entry *e, char *out, size_t outlen)
{
    switch (e->type) {
    case FV_CFG_STR: snprintf(out, outlen, "%s", *(char **)e->var ? *(char **)e->var : ""); break;
    case FV_CFG_INT: snprintf(out, outlen, "%d", *(int *)e->var); break;
    case FV_CFG_BOOL: snprintf(out, outlen, "%d", (int)*(bool *)e->var); break;
    }
}

static size_t table_size(void)
{
    size_t n = 0;
    while (lb_config_table[n].name) n++;
    return n;
}

/* Saves every value of the table as text (caller frees with free_saved). */
static char **save_values(size_t n)
{
    char **saved = calloc(n, sizeof *saved);
    if (!saved) return NULL;
    for (size_t i = 0; i < n; i++) {
        char buf[4096];
        value_text(&lb_config_table[i], buf, sizeof buf);
        saved[i] = strdup(buf);
        if (!saved[i]) {
            for (size_t k = 0; k < i; k++) free(saved[k]);
            free(saved);
            return NULL;
        }
    }
    return saved;
}

static void free_saved(char **saved, size_t n)
{
    for (size_t i = 0; i < n; i++) free(saved[i]);
    free(saved);
}

/* Puts the saved text back into entry i (it parsed before, so it parses again). */
static void restore_value(size_t i, const char *text)
{
    const fv_cfg_entry *e = &lb_config_table[i];
    switch (e->type) {
    case FV_CFG_STR: {
        char *copy = strdup(text);
        if (!copy) return; /* keeps the new value: out of memory is not worth a crash */
        free(*(char **)e->var);
        *(char **)e->var = copy;
        break;
    }
    case FV_CFG_INT: *(int *)e->var = atoi(text); break;
    case FV_CFG_BOOL: *(bool *)e->var = atoi(text) != 0; break;
    }
}

void lb_server_reload(lb_server *s)
{
    size_t n = table_size();
    char **saved = save_values(n);
    if (!saved) {
        fv_error("reload: out of memory; configuration unchanged");
        return;
    }
    char err[2048];
    if (fv_config_load_checked(lb_config_table, s->config_path, lb_config_check, err, sizeof err) != 0) {
        for (size_t i = 0; i < n; i++) restore_value(i, saved[i]);
        free_saved(saved, n);
        fv_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    /* Keys a reload cannot change go back to their running values, with a note. */
    for (size_t i = 0; i < n; i++) {
        char now[4096];
        value_text(&lb_config_table[i], now, sizeof now);
        if (strcmp(now, saved[i]) == 0 || lb_config_table[i].reload == FV_CFG_RELOAD) continue;
        fv_warn("reload: %s changed; restart fv-balancer to apply it", lb_config_table[i].name);
        restore_value(i, saved[i]);
    }
    free_saved(saved, n);
    fv_log_init("balancer", (fv_log_level)fv_log_parse_level(fv_common.log_level));

    lb_addr *list = calloc((size_t)lb_cfg.max_backends, sizeof *list);
    int count = list ? lb_addr_parse_list(lb_cfg.backends, list, lb_cfg.max_backends, err, sizeof err)
                     : -1;
    if (count < 0) {
        free(list);
        fv_error("reload: backends: %s; list unchanged", list ? err : "out of memory");
        return;
    }
    int added = 0, removed = 0;
    /* Config backends no longer listed drain; runtime and spawned ones are kept. */
    for (size_t i = s->pool.n; i-- > 0;) {
        lb_backend *b = s->pool.v[i];
        if (b->source != LB_SRC_CONFIG || b->state == LB_DRAINING) continue;
        bool listed = false;
        for (int k = 0; k < count && !listed; k++) listed = strcmp(list[k].text, b->addr.text) == 0;
        if (!listed) {
            lb_server_drain_backend(s, b, "no longer in the configuration");
            removed++;
        }
    }
    for (int k = 0; k < count; k++) {
        lb_backend *b = lb_pool_find(&s->pool, list[k].text);
        if (b) {
            b->source = LB_SRC_CONFIG; /* a runtime one now listed: the file owns it */
            continue;
        }
        if (lb_server_add_backend(s, &list[k], LB_SRC_CONFIG,
                                  (int)(random() % (lb_cfg.check_interval_ms / 4 + 1)), err, sizeof err))
            added++;
        else fv_error("reload: backend %s not added: %s", list[k].text, err);
    }
    free(list);
    fv_info("reloaded %s: %d backend(s) added, %d draining, %zu in the pool",
            s->config_path ? s->config_path : "(defaults)", added, removed, lb_server_live_backends(s));
}
