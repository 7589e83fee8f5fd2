/* Backend pool, health state machine and least-connections choice (no I/O). */
#include "lb_backend.h"

#include <stdlib.h>
#include <string.h>

#include "fv_log.h"

const char *lb_state_name(lb_state s)
{
    switch (s) {
    case LB_CHECKING: return "checking";
    case LB_UP: return "up";
    case LB_DEGRADED: return "degraded";
    case LB_DOWN: return "down";
    case LB_DRAINING: return "draining";
    }
    return "?";
}

const char *lb_source_name(lb_source s)
{
    switch (s) {
    case LB_SRC_CONFIG: return "config";
    case LB_SRC_RUNTIME: return "runtime";
    case LB_SRC_SPAWNED: return "spawned";
    }
    return "?";
}

const char *lb_result_name(lb_result r)
{
    switch (r) {
    case LB_RES_READY: return "ready";
    case LB_RES_DEGRADED: return "degraded";
    case LB_RES_FAILED: return "failed";
    }
    return "?";
}

lb_backend *lb_pool_add(lb_pool *p, const lb_addr *addr, lb_source source)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        lb_backend **v = realloc(p->v, cap * sizeof *v);
        if (!v) return NULL;
        p->v = v;
        p->cap = cap;
    }
    lb_backend *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->id = ++p->next_id;
    b->addr = *addr;
    b->state = LB_CHECKING;
    b->source = source;
    p->v[p->n++] = b;
    return b;
}

lb_backend *lb_pool_find(const lb_pool *p, const char *addr_text)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i]->state != LB_DRAINING && strcmp(p->v[i]->addr.text, addr_text) == 0) return p->v[i];
    return NULL;
}

void lb_pool_remove(lb_pool *p, lb_backend *b)
{
    for (size_t i = 0; i < p->n; i++) {
        if (p->v[i] != b) continue;
        memmove(&p->v[i], &p->v[i + 1], (p->n - i - 1) * sizeof *p->v);
        p->n--;
        free(b);
        return;
    }
}

void lb_pool_free(lb_pool *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

bool lb_backend_in_rotation(const lb_backend *b)
{
    return b->state == LB_UP || b->state == LB_DEGRADED;
}

size_t lb_pool_count(const lb_pool *p, int state)
{
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        lb_state s = p->v[i]->state;
        if (state == LB_NSTATES ? s != LB_DRAINING : (int)s == state) n++;
    }
    return n;
}

static bool skipped(const lb_backend *b, const uint64_t *skip, size_t nskip)
{
    for (size_t i = 0; i < nskip; i++)
        if (skip[i] == b->id) return true;
    return false;
}

static lb_backend *least(lb_pool *p, const uint64_t *skip, size_t nskip, bool checking)
{
    lb_backend *best = NULL;
    if (p->n == 0) return NULL;
    size_t start = p->rr % p->n;
    for (size_t k = 0; k < p->n; k++) {
        lb_backend *b = p->v[(start + k) % p->n];
        bool eligible = checking ? b->state == LB_CHECKING : lb_backend_in_rotation(b);
        if (!eligible || skipped(b, skip, nskip)) continue;
        if (!best || b->active < best->active) best = b;
    }
    return best;
}

lb_backend *lb_pool_pick(lb_pool *p, const uint64_t *skip, size_t nskip)
{
    lb_backend *b = least(p, skip, nskip, false);
    /* Fall back to backends still being checked only when none at all is in rotation (not
     * merely all tried): a starting balancer then serves before its first checks complete. */
    if (!b && lb_pool_count(p, LB_UP) + lb_pool_count(p, LB_DEGRADED) == 0)
        b = least(p, skip, nskip, true);
    p->rr++;
    return b;
}

void lb_backend_set_state(lb_backend *b, lb_state s, const char *reason)
{
    if (b->state == s) return;
    lb_state old = b->state;
    b->state = s;
    if (s == LB_DOWN)
        fv_warn("backend %s state %s -> %s (%s)", b->addr.text, lb_state_name(old), lb_state_name(s),
                reason);
    else
        fv_info("backend %s state %s -> %s (%s)", b->addr.text, lb_state_name(old), lb_state_name(s),
                reason);
}

bool lb_backend_record(lb_backend *b, lb_result r, int rise, int fall, const char *reason)
{
    if (b->state == LB_DRAINING) return false;
    lb_state old = b->state, next = old;
    int max = rise + fall - 1;
    if (r != LB_RES_FAILED) {
        b->fails = 0;
        if (b->health < max) b->health++;
        if (b->health >= rise) {
            if (old != LB_UP && old != LB_DEGRADED) b->health = max; /* just came up: full credit */
            next = r == LB_RES_READY ? LB_UP : LB_DEGRADED;
        }
    } else if (b->health >= rise) {
        /* In service: each failure costs one; below rise it is down and must rise again. */
        b->health--;
        if (b->health < rise) {
            b->health = 0;
            next = LB_DOWN;
        }
    } else {
        b->health = 0; /* not in service: rise successes in a row are needed */
        if (old == LB_CHECKING && ++b->fails >= fall) next = LB_DOWN;
    }
    if (next == old) return false;
    lb_backend_set_state(b, next, reason);
    return true;
}
