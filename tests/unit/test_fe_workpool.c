/* Unit tests of the password work pool's classes (frontend/fe_workpool.c, linked from fvfrontend):
 * sign-ups (the bulk class) can neither take the reserved thread nor fill the logins' queue. */
#include <event2/event.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "fe_workpool.h"

/* A job that blocks until released (bulk jobs here), or runs at once. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool released;
static int delivered_auth, delivered_bulk, never_ran;

typedef struct job {
    bool blocks, auth;
} job;

static void run(void *p)
{
    job *j = p;
    if (!j->blocks) return;
    pthread_mutex_lock(&mu);
    while (!released) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void done(void *p, bool ran, void *owner)
{
    (void)owner;
    job *j = p;
    if (!ran) never_ran++;
    else if (j->auth) delivered_auth++;
    else delivered_bulk++;
}

static job *new_job(bool blocks, bool auth)
{
    job *j = calloc(1, sizeof *j);
    j->blocks = blocks;
    j->auth = auth;
    return j;
}

static void release(void)
{
    pthread_mutex_lock(&mu);
    released = true;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Runs the loop until want auth jobs were delivered (bounded: a few seconds at most). */
static void loop_until_auth(struct event_base *base, int want)
{
    for (int i = 0; i < 5000 && delivered_auth < want; i++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

static void test_bulk_jobs_cannot_starve_auth_jobs(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_non_null(base);
    /* 2 threads, 1 reserved for auth; queues: auth 3, bulk 2 */
    assert_int_equal(fe_workpool_init(base, 2, 1, 3, 2), 0);
    /* the flood: one bulk job holds the shared thread, two wait, the rest are refused at once */
    int accepted = 0;
    for (int i = 0; i < 10; i++) {
        job *j = new_job(true, false);
        if (fe_work_submit_bulk(j, run, done, free, &accepted)) accepted++;
        else free(j);
    }
    assert_true(accepted >= 2 && accepted <= 3); /* 2 queued (+1 if a thread took one already) */
    /* logins still run, on the reserved thread, while every bulk job is stuck */
    for (int i = 0; i < 3; i++) {
        job *j = new_job(false, true);
        assert_non_null(fe_work_submit(j, run, done, free, &accepted));
    }
    loop_until_auth(base, 3);
    assert_int_equal(delivered_auth, 3);
    assert_int_equal(delivered_bulk, 0);
    release();
    fe_workpool_shutdown();
    assert_int_equal(delivered_bulk + never_ran, accepted);
    event_base_free(base);
}

static void test_reserved_must_leave_a_thread(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    assert_int_equal(fe_workpool_init(base, 2, 2, 4, 4), -1);
    assert_int_equal(fe_workpool_init(base, 1, 1, 4, 4), -1);
    assert_int_equal(fe_workpool_init(base, 1, 0, 4, 4), 0);
    fe_workpool_shutdown();
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_jobs_cannot_starve_auth_jobs),
        cmocka_unit_test(test_reserved_must_leave_a_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
