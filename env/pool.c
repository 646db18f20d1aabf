/* pool.c: worker threads for the CPU env loops (see pool.h). A generation counter under
 * one mutex hands out work; the last worker to finish signals the caller. */
#include "env/pool.h"

#include <pthread.h>
#include <stdlib.h>

#include "bodhi/bodhi.h"

struct bd_pool {
    int threads;
    pthread_t *tids;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    unsigned long gen;
    int pending, quit;
    bd_pool_fn fn;
    void *ctx;
    int n;
};

typedef struct {
    bd_pool *p;
    int index;
} bd_worker_arg;

static void bd_pool_range(const bd_pool *p, int k, int *i0, int *i1)
{
    /* ranges of whole 64-world blocks; the last takes the rest */
    int blocks = (p->n + 63) / 64;
    int per = blocks / p->threads, extra = blocks % p->threads;
    int b0 = k * per + (k < extra ? k : extra);
    int b1 = b0 + per + (k < extra ? 1 : 0);
    *i0 = b0 * 64 < p->n ? b0 * 64 : p->n;
    *i1 = b1 * 64 < p->n ? b1 * 64 : p->n;
}

static void *bd_worker(void *arg)
{
    bd_worker_arg *a = arg;
    bd_pool *p = a->p;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->quit)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        seen = p->gen;
        pthread_mutex_unlock(&p->mu);
        int i0, i1;
        bd_pool_range(p, a->index, &i0, &i1);
        if (i1 > i0)
            p->fn(p->ctx, i0, i1);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
        pthread_mutex_unlock(&p->mu);
    }
    free(a);
    return NULL;
}

int bd_pool_create(int threads, bd_pool **out)
{
    *out = NULL;
    if (threads < 1)
        threads = 1;
    bd_pool *p = calloc(1, sizeof *p);
    if (!p)
        return bd_seterr(BD_ENOMEM, "pool: out of memory");
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->tids = calloc((size_t)threads, sizeof *p->tids);
    if (!p->tids) {
        bd_pool_destroy(p);
        return bd_seterr(BD_ENOMEM, "pool: out of memory");
    }
    for (int k = 1; k < threads; k++) {
        bd_worker_arg *a = malloc(sizeof *a);
        if (a) {
            a->p = p;
            a->index = k;
        }
        if (!a || pthread_create(&p->tids[k], NULL, bd_worker, a) != 0) {
            free(a);
            p->threads = k; /* the ones started so far are joined by destroy */
            bd_pool_destroy(p);
            return bd_seterr(BD_EIO, "pool: cannot start thread %d", k);
        }
    }
    *out = p;
    return BD_OK;
}

void bd_pool_destroy(bd_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int k = 1; p->tids && k < p->threads; k++)
        pthread_join(p->tids[k], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->tids);
    free(p);
}

int bd_pool_threads(const bd_pool *p)
{
    return p->threads;
}

void bd_pool_run(bd_pool *p, bd_pool_fn fn, void *ctx, int n)
{
    if (p->threads == 1 || n <= 64) {
        if (n > 0)
            fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->pending = p->threads - 1;
    p->gen++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    int i0, i1;
    bd_pool_range(p, 0, &i0, &i1);
    if (i1 > i0)
        fn(ctx, i0, i1);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
