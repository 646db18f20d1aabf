/* call.c: stoppable waits on NNG operations (see call.h). */
#include "wire/call.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "wire/wire.h"

struct bd_call {
    nng_aio *aio;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    int sending;
};

static void bd_call_cb(void *arg)
{
    bd_call *c = arg;
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int bd_call_open(bd_call **out)
{
    *out = NULL;
    bd_call *c = calloc(1, sizeof *c);
    if (!c)
        return bd_seterr(BD_ENOMEM, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    int rv = nng_aio_alloc(&c->aio, bd_call_cb, c);
    if (rv != 0) {
        bd_call_close(c);
        return bd_nng_err(rv, "aio");
    }
    *out = c;
    return BD_OK;
}

void bd_call_close(bd_call *c)
{
    if (!c)
        return;
    if (c->aio) {
        nng_aio_cancel(c->aio);
        nng_aio_wait(c->aio);
        if (c->sending && nng_aio_result(c->aio) != 0 && nng_aio_get_msg(c->aio))
            nng_msg_free(nng_aio_get_msg(c->aio));
        nng_aio_free(c->aio);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void bd_call_send(bd_call *c, nng_ctx ctx, nng_msg *msg)
{
    c->done = 0;
    c->sending = 1;
    nng_aio_set_msg(c->aio, msg);
    nng_ctx_send(ctx, c->aio);
}

void bd_call_recv(bd_call *c, nng_ctx ctx)
{
    c->done = 0;
    c->sending = 0;
    nng_aio_set_msg(c->aio, NULL);
    nng_ctx_recv(ctx, c->aio);
}

/* A failed wait in words: a stop is BD_EINTR, a timeout BD_ETIMEDOUT, not NNG's
 * "Operation canceled" of the cancel that ended them. */
static int bd_call_err(int rv, int why, int timeout_ms, const char *what)
{
    const char *sep = what ? ": " : "";
    what = what ? what : "";
    if (why == 1)
        return bd_seterr(BD_EINTR, "%s%sstopped by a signal", what, sep);
    if (why == 2)
        return bd_seterr(BD_ETIMEDOUT, "%s%sno answer in %d ms", what, sep, timeout_ms);
    return bd_nng_err(rv, what[0] ? what : "wait");
}

int bd_call_wait(bd_call *c, int timeout_ms, const volatile sig_atomic_t *stop, nng_msg **msg)
{
    return bd_call_wait_as(c, timeout_ms, stop, msg, NULL);
}

int bd_call_wait_as(bd_call *c, int timeout_ms, const volatile sig_atomic_t *stop, nng_msg **msg,
                    const char *what)
{
    if (msg)
        *msg = NULL;
    const struct timespec end = bd_timespec_after(CLOCK_MONOTONIC, timeout_ms);
    int why = 0; /* 1 stopped, 2 late */
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (timeout_ms >= 0 && (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)))
            why = 2;
        if (stop && *stop)
            why = 1;
        if (why) {
            pthread_mutex_unlock(&c->mu);
            nng_aio_cancel(c->aio);
            pthread_mutex_lock(&c->mu);
            break;
        }
        const struct timespec slice = bd_timespec_after(CLOCK_REALTIME, 200);
        pthread_cond_timedwait(&c->cv, &c->mu, &slice);
    }
    pthread_mutex_unlock(&c->mu);
    nng_aio_wait(c->aio);
    int rv = nng_aio_result(c->aio);
    if (rv != 0) {
        if (c->sending && nng_aio_get_msg(c->aio)) {
            nng_msg_free(nng_aio_get_msg(c->aio));
            nng_aio_set_msg(c->aio, NULL);
        }
        return bd_call_err(rv, why, timeout_ms, what);
    }
    if (!c->sending && msg)
        *msg = nng_aio_get_msg(c->aio);
    else if (!c->sending)
        nng_msg_free(nng_aio_get_msg(c->aio));
    nng_aio_set_msg(c->aio, NULL);
    return BD_OK;
}
