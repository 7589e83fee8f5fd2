/* Thread pool with completions handed back to libevent (see fe_workpool.h). */
#include "fe_workpool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fv_log.h"

#define MAX_THREADS 64

struct fe_work {
    void *job; /* owned by the pool; freed with job_free */
    fe_work_run_fn run;
    fe_work_done_fn done;
    void (*job_free)(void *);
    void *owner; /* borrowed; NULL once detached (loop thread only) */
    bool ran;
    fe_work_class cls;
    fe_work *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t threads[MAX_THREADS];
    int nthreads;
    int reserved; /* threads 0..reserved-1 take FE_WORK_AUTH jobs only */
    int max_queued[FE_WORK_NCLASSES];
    int queued[FE_WORK_NCLASSES]; /* waiting for a thread, under mu */
    int busy;                     /* queued + running + done but not delivered (loop's view) */
    bool stop;
    fe_work *queue[FE_WORK_NCLASSES], *queue_tail[FE_WORK_NCLASSES]; /* waiting, under mu */
    fe_work *done, *done_tail;                                       /* finished, under mu */
    int efd;
    struct event *ev;
    bool running;
} P = {.efd = -1};

/* The next job a thread may take (under mu): FE_WORK_AUTH first; FE_WORK_BULK only when the
 * thread is not reserved. NULL when none. */
static fe_work *take_job(bool reserved)
{
    for (int c = 0; c < (reserved ? 1 : FE_WORK_NCLASSES); c++) {
        fe_work *w = P.queue[c];
        if (!w) continue;
        P.queue[c] = w->next;
        if (!P.queue[c]) P.queue_tail[c] = NULL;
        P.queued[c]--;
        return w;
    }
    return NULL;
}

/* arg: the thread's index (an intptr_t), below P.reserved for a reserved thread. */
static void *thread_main(void *arg)
{
    bool reserved = (intptr_t)arg < P.reserved;
    for (;;) {
        pthread_mutex_lock(&P.mu);
        fe_work *w = NULL;
        while (!P.stop && !(w = take_job(reserved))) pthread_cond_wait(&P.cv, &P.mu);
        if (!w) { /* stopping: shutdown delivers what is still queued (ran = false) */
            pthread_mutex_unlock(&P.mu);
            return NULL;
        }
        pthread_mutex_unlock(&P.mu);

        w->run(w->job);
        w->ran = true;

        pthread_mutex_lock(&P.mu);
        w->next = NULL;
        if (P.done_tail) P.done_tail->next = w;
        else P.done = w;
        P.done_tail = w;
        pthread_mutex_unlock(&P.mu);
        uint64_t one = 1;
        ssize_t n = write(P.efd, &one, sizeof one);
        (void)n;
    }
}

/* Delivers one finished (or never run) job on the loop thread and frees it. */
static void deliver(fe_work *w)
{
    P.busy--;
    if (w->owner) w->done(w->job, w->ran, w->owner);
    w->job_free(w->job);
    free(w);
}

static fe_work *take_done(void)
{
    pthread_mutex_lock(&P.mu);
    fe_work *list = P.done;
    P.done = P.done_tail = NULL;
    pthread_mutex_unlock(&P.mu);
    return list;
}

static void completions_cb(evutil_socket_t fd, short what, void *arg)
{
    uint64_t v;
    ssize_t n = read(P.efd, &v, sizeof v);
    (void)n;
    fe_work *list = take_done();
    while (list) {
        fe_work *next = list->next;
        deliver(list);
        list = next;
    }
}

int fe_workpool_init(struct event_base *base, int nthreads, int reserved, int max_auth, int max_bulk)
{
    if (nthreads < 1 || nthreads > MAX_THREADS || reserved < 0 || reserved >= nthreads) return -1;
    P.reserved = reserved;
    P.max_queued[FE_WORK_AUTH] = max_auth;
    P.max_queued[FE_WORK_BULK] = max_bulk;
    P.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (P.efd == -1) return -1;
    P.ev = event_new(base, P.efd, EV_READ | EV_PERSIST, completions_cb, NULL);
    if (!P.ev || event_add(P.ev, NULL) != 0) goto failed;
    pthread_mutex_init(&P.mu, NULL);
    pthread_cond_init(&P.cv, NULL);
    P.stop = false;
    for (P.nthreads = 0; P.nthreads < nthreads; P.nthreads++)
        if (pthread_create(&P.threads[P.nthreads], NULL, thread_main, (void *)(intptr_t)P.nthreads) !=
            0) {
            fv_error("work pool: pthread_create failed");
            P.running = true; /* so shutdown joins the ones started */
            fe_workpool_shutdown();
            return -1;
        }
    P.running = true;
    return 0;
failed:
    if (P.ev) event_free(P.ev);
    P.ev = NULL;
    close(P.efd);
    P.efd = -1;
    return -1;
}

void fe_workpool_shutdown(void)
{
    if (!P.running) return;
    pthread_mutex_lock(&P.mu);
    P.stop = true;
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    for (int i = 0; i < P.nthreads; i++) pthread_join(P.threads[i], NULL);
    P.nthreads = 0;
    P.running = false;
    /* Finished jobs first, then the ones no thread took (ran = false). */
    fe_work *list = take_done();
    while (list) {
        fe_work *next = list->next;
        deliver(list);
        list = next;
    }
    for (int c = 0; c < FE_WORK_NCLASSES; c++) {
        list = P.queue[c];
        P.queue[c] = P.queue_tail[c] = NULL;
        P.queued[c] = 0;
        while (list) {
            fe_work *next = list->next;
            deliver(list);
            list = next;
        }
    }
    if (P.ev) event_free(P.ev);
    P.ev = NULL;
    if (P.efd != -1) close(P.efd);
    P.efd = -1;
    pthread_cond_destroy(&P.cv);
    pthread_mutex_destroy(&P.mu);
}

static fe_work *submit(fe_work_class c, void *job, fe_work_run_fn run, fe_work_done_fn done,
                       void (*job_free)(void *), void *owner)
{
    if (!P.running) return NULL;
    fe_work *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    *w = (fe_work){.job = job, .run = run, .done = done, .job_free = job_free, .owner = owner, .cls = c};
    pthread_mutex_lock(&P.mu);
    if (P.queued[c] >= P.max_queued[c]) {
        pthread_mutex_unlock(&P.mu);
        free(w);
        return NULL;
    }
    if (P.queue_tail[c]) P.queue_tail[c]->next = w;
    else P.queue[c] = w;
    P.queue_tail[c] = w;
    P.queued[c]++;
    /* every waiting thread: a reserved one woken for a bulk job would go back to sleep */
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    P.busy++;
    return w;
}

fe_work *fe_work_submit(void *job, fe_work_run_fn run, fe_work_done_fn done, void (*job_free)(void *),
                        void *owner)
{
    return submit(FE_WORK_AUTH, job, run, done, job_free, owner);
}

fe_work *fe_work_submit_bulk(void *job, fe_work_run_fn run, fe_work_done_fn done,
                             void (*job_free)(void *), void *owner)
{
    return submit(FE_WORK_BULK, job, run, done, job_free, owner);
}

int fe_workpool_queued(fe_work_class c)
{
    if (!P.running || c < 0 || c >= FE_WORK_NCLASSES) return 0;
    pthread_mutex_lock(&P.mu);
    int n = P.queued[c];
    pthread_mutex_unlock(&P.mu);
    return n;
}

/* owner is only read on the loop thread (deliver), so no lock is needed. */
void fe_work_detach(fe_work *w)
{
    if (w) w->owner = NULL;
}

int fe_workpool_busy(void)
{
    return P.busy;
}
