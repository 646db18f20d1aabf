/* round.c: the gather-and-answer round (see round.h). */
#include "wire/round.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <nng/protocol/reqrep0/rep.h>

#include "common/util.h"
#include "wire/wire.h"

typedef struct {
    nng_ctx ctx;
    nng_aio *rx;      /* receive, with callback */
    nng_aio *tx;      /* send, waited on */
    nng_msg *msg;     /* the request held */
    int ctx_open;
} bd_slot;

struct bd_round {
    nng_socket sock;
    int sock_open;
    bd_slot *slots;
    int peers;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int arrived;      /* receives completed in this gather */
    int pipes;        /* peer connections open now */
};

static void bd_round_rx_cb(void *arg)
{
    bd_round *r = arg;
    pthread_mutex_lock(&r->mu);
    r->arrived++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void bd_round_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    bd_round *r = arg;
    pthread_mutex_lock(&r->mu);
    r->pipes += ev == NNG_PIPE_EV_ADD_POST ? 1 : -1;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Waits on r->cv for at most ms milliseconds. Caller holds r->mu. */
static void bd_round_wait(bd_round *r, long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += ms * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

int bd_round_listen(const char *url, int peers, bd_round **out)
{
    *out = NULL;
    if (peers < 1)
        return bd_seterr(BD_EINVAL, "%s: a round needs at least one peer", url);
    bd_round *r = calloc(1, sizeof *r);
    if (!r || !(r->slots = calloc((size_t)peers, sizeof *r->slots))) {
        free(r);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    r->peers = peers;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rv = nng_rep0_open(&r->sock);
    if (rv == 0) {
        r->sock_open = 1;
        nng_pipe_notify(r->sock, NNG_PIPE_EV_ADD_POST, bd_round_pipe_cb, r);
        nng_pipe_notify(r->sock, NNG_PIPE_EV_REM_POST, bd_round_pipe_cb, r);
        rv = nng_listen(r->sock, url, NULL, 0);
    }
    if (rv != 0) {
        int rc = bd_nng_err(rv, url);
        bd_round_close(r);
        return rc;
    }
    for (int i = 0; i < peers && rv == 0; i++) {
        rv = nng_ctx_open(&r->slots[i].ctx, r->sock);
        r->slots[i].ctx_open = rv == 0;
        if (rv == 0)
            rv = nng_aio_alloc(&r->slots[i].rx, bd_round_rx_cb, r);
        if (rv == 0)
            rv = nng_aio_alloc(&r->slots[i].tx, NULL, NULL);
    }
    if (rv != 0) {
        int rc = bd_nng_err(rv, "round: contexts");
        bd_round_close(r);
        return rc;
    }
    *out = r;
    return BD_OK;
}

int bd_round_gather(bd_round *r, const volatile sig_atomic_t *stop)
{
    bd_round_release(r);
    pthread_mutex_lock(&r->mu);
    r->arrived = 0;
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->peers; i++)
        nng_ctx_recv(r->slots[i].ctx, r->slots[i].rx);
    pthread_mutex_lock(&r->mu);
    while (r->arrived < r->peers && !(stop && *stop))
        bd_round_wait(r, 200);
    pthread_mutex_unlock(&r->mu);
    int rc = BD_OK;
    if (stop && *stop) {
        for (int i = 0; i < r->peers; i++)
            nng_aio_cancel(r->slots[i].rx);
        rc = bd_seterr(BD_EINTR, "stopped by a signal");
    }
    for (int i = 0; i < r->peers; i++) {
        nng_aio_wait(r->slots[i].rx);
        int rv = nng_aio_result(r->slots[i].rx);
        if (rv == 0)
            r->slots[i].msg = nng_aio_get_msg(r->slots[i].rx);
        else if (rc == BD_OK)
            rc = bd_nng_err(rv, "round: receive");
    }
    return rc;
}

nng_msg *bd_round_request(const bd_round *r, int i)
{
    return i >= 0 && i < r->peers ? r->slots[i].msg : NULL;
}

int bd_round_answer(bd_round *r, int i, nng_msg *msg)
{
    if (i < 0 || i >= r->peers)
        return bd_seterr(BD_EINVAL, "round: no slot %d", i);
    bd_slot *s = &r->slots[i];
    nng_aio_set_msg(s->tx, msg);
    nng_ctx_send(s->ctx, s->tx);
    nng_aio_wait(s->tx);
    int rv = nng_aio_result(s->tx);
    return rv ? bd_nng_err(rv, "round: answer") : BD_OK;
}

void bd_round_release(bd_round *r)
{
    for (int i = 0; i < r->peers; i++) {
        if (r->slots[i].msg)
            nng_msg_free(r->slots[i].msg);
        r->slots[i].msg = NULL;
    }
}

void bd_round_wait_hangup(bd_round *r, double seconds, const volatile sig_atomic_t *stop)
{
    double end = bd_now() + seconds;
    pthread_mutex_lock(&r->mu);
    while (r->pipes > 0 && bd_now() < end && !(stop && *stop))
        bd_round_wait(r, 50);
    pthread_mutex_unlock(&r->mu);
}

void bd_round_close(bd_round *r)
{
    if (!r)
        return;
    if (r->sock_open)
        nng_close(r->sock);
    for (int i = 0; i < r->peers; i++) {
        if (r->slots[i].rx)
            nng_aio_free(r->slots[i].rx);
        if (r->slots[i].tx)
            nng_aio_free(r->slots[i].tx);
        if (r->slots[i].msg)
            nng_msg_free(r->slots[i].msg);
    }
    free(r->slots);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
