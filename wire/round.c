/* round.c: the gather-and-answer round with membership (see round.h). */
#include "wire/round.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"

typedef struct {
    bd_peer_state state;
    int greeted;        /* greeted at least once */
    nng_pipe pipe;      /* the connection it greeted on */
    uint32_t next_seq;  /* sequence number of its next round request */
    bd_request *held;   /* its request of this round (or, ready, of its first) */
} bd_peer;

struct bd_round {
    bd_server *srv;
    bd_peer *peer;
    int n;
    bd_msg_type greet, request;
    pthread_mutex_t mu; /* guards what the pipe callback touches */
    uint32_t *gone;     /* ids of connections closed since last looked at */
    int ngone, capgone;
    int pipes;          /* connections open now */
    int gone_lost;      /* a closed connection could not be recorded (out of memory) */
    uint64_t dropped;
    char why[256];
    uint64_t refused;   /* of those, messages from a connection that does not own their sender id */
    char refused_why[256];
    struct { uint32_t listener; int first, count; } door[4]; /* bd_round_listen_for */
    int ndoors;
    uint64_t relistened; /* listeners replaced by the server's guard */
    char relisten_why[512];
};

static void bd_round_pipe_cb(void *arg, nng_pipe p, int added)
{
    bd_round *r = arg;
    pthread_mutex_lock(&r->mu);
    r->pipes += added ? 1 : -1;
    if (!added) {
        if (r->ngone < r->capgone)
            r->gone[r->ngone++] = (uint32_t)nng_pipe_id(p);
        else
            r->gone_lost = 1; /* the next reap asks NNG about every peer's connection */
    }
    pthread_mutex_unlock(&r->mu);
}

int bd_round_open(int peers, bd_msg_type greet, bd_msg_type request, bd_round **out)
{
    *out = NULL;
    if (peers < 1)
        return bd_seterr(BD_EINVAL, "a round needs at least one peer");
    bd_round *r = calloc(1, sizeof *r);
    if (!r || !(r->peer = calloc((size_t)peers, sizeof *r->peer))) {
        free(r);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    r->n = peers;
    r->capgone = 1024;
    if (!(r->gone = malloc((size_t)r->capgone * sizeof *r->gone))) {
        free(r->peer);
        free(r);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    r->greet = greet;
    r->request = request;
    pthread_mutex_init(&r->mu, NULL);
    /* A greeting and a round request of every peer at once, and room for strangers. */
    int rc = bd_server_open(2 * peers + 8, &r->srv);
    if (rc != BD_OK) {
        bd_round_close(r);
        return rc;
    }
    bd_server_on_pipe(r->srv, bd_round_pipe_cb, r);
    *out = r;
    return BD_OK;
}

int bd_round_set_recvmax(bd_round *r, size_t bytes)
{
    return bd_server_set_recvmax(r->srv, bytes);
}

int bd_round_listen(bd_round *r, const char *url, int *bound)
{
    bd_listen_opts lo = {.bound = bound, .guard = BD_GUARD_CLOSE}; /* muscles greet again */
    return bd_server_listen_with(r->srv, url, &lo);
}

int bd_round_listen_for(bd_round *r, const char *url, int first, int count, const bd_listen_opts *o)
{
    if (r->ndoors >= (int)(sizeof r->door / sizeof r->door[0]) || first < 0 || count < 1 || first + count > r->n)
        return bd_seterr(BD_EINVAL, "round: a door for peers %d..%d of %d", first, first + count - 1, r->n);
    uint32_t id = 0;
    bd_listen_opts lo = o ? *o : (bd_listen_opts){0};
    lo.listener = &id;
    lo.guard = BD_GUARD_CLOSE;
    int rc = bd_server_listen_with(r->srv, url, &lo);
    if (rc != BD_OK)
        return rc;
    r->door[r->ndoors].listener = id;
    r->door[r->ndoors].first = first;
    r->door[r->ndoors].count = count;
    r->ndoors++;
    return BD_OK;
}

/* 1 when peer k may greet through the connection pipe: a door of its own, or any when no
 * door was given. */
static int bd_round_door_ok(const bd_round *r, uint32_t k, nng_pipe pipe)
{
    if (r->ndoors == 0)
        return 1;
    uint32_t lid = bd_server_listener_key(r->srv, (uint32_t)nng_listener_id(nng_pipe_listener(pipe)));
    for (int i = 0; i < r->ndoors; i++)
        if (r->door[i].listener == lid)
            return (int)k >= r->door[i].first && (int)k < r->door[i].first + r->door[i].count;
    return 0;
}

static void bd_round_drop_req(bd_round *r, bd_request *req, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bd_round_drop_req(bd_round *r, bd_request *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    r->dropped++;
    bd_server_drop(r->srv, req);
}

/* A message its connection may not send (another's sender id): dropped and counted as
 * refused too. */
static void bd_round_refuse(bd_round *r, bd_request *req, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bd_round_refuse(bd_round *r, bd_request *req, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->refused_why, sizeof r->refused_why, fmt, ap);
    va_end(ap);
    snprintf(r->why, sizeof r->why, "%s", r->refused_why);
    r->refused++;
    r->dropped++;
    bd_server_drop(r->srv, req);
}

/* The peer leaves: what it holds is dropped; it must greet again. */
static void bd_round_leave(bd_round *r, int k)
{
    bd_peer *p = &r->peer[k];
    if (p->held)
        bd_server_drop(r->srv, p->held);
    p->held = NULL;
    p->state = BD_PEER_ABSENT;
}

/* Peers whose connection closed leave. */
static void bd_round_reap(bd_round *r)
{
    uint32_t ids[1024];
    pthread_mutex_lock(&r->mu);
    int n = r->ngone, lost = r->gone_lost;
    memcpy(ids, r->gone, (size_t)n * sizeof *ids);
    r->ngone = 0;
    r->gone_lost = 0;
    pthread_mutex_unlock(&r->mu);
    for (int k = 0; k < r->n; k++) {
        bd_peer *p = &r->peer[k];
        if (p->state == BD_PEER_ABSENT)
            continue;
        int gone = 0;
        for (int i = 0; !gone && i < n; i++)
            gone = ids[i] == (uint32_t)nng_pipe_id(p->pipe);
        if (!gone && lost) /* closings were missed: a closed connection is no longer found */
            gone = !bd_pipe_open(p->pipe);
        if (gone)
            bd_round_leave(r, k);
    }
}

static void bd_round_handle(bd_round *r, bd_request *req, const bd_round_hooks *h)
{
    if (req->text) {
        bd_round_drop_req(r, req, "a text message (not a bodhi message)");
        return;
    }
    uint32_t k = req->h.sender;
    if (k >= (uint32_t)r->n) {
        bd_round_drop_req(r, req, "a message from sender %u, not one of the %d peers", k, r->n);
        return;
    }
    bd_peer *p = &r->peer[k];
    if (req->h.type == r->greet && !bd_round_door_ok(r, k, req->pipe)) {
        bd_round_drop_req(r, req, "peer %u greeted through a door that is not its own", k);
        return;
    }
    if (req->h.type == r->greet) {
        nng_pipe pipe = req->pipe;
        uint32_t seq = req->h.seq;
        int again = p->greeted;
        if (p->state != BD_PEER_ABSENT && nng_pipe_id(p->pipe) != nng_pipe_id(pipe)) {
            if (bd_pipe_open(p->pipe) && bd_pipe_open(pipe) && h->supersedes && h->supersedes(h->ctx, (int)k, req)) {
                nng_pipe_close(p->pipe); /* the caller says the greeter replaces it */
            } else if (bd_pipe_open(p->pipe)) {
                /* the peer is alive on its own connection: another may not take its id. The
                 * greeter's connection is closed, so that a restarted peer whose old
                 * connection's end is not seen yet greets again on a new one. */
                bd_round_refuse(r, req, "a greeting as peer %u from another connection while its own is open", k);
                nng_pipe_close(pipe);
                return;
            }
            bd_round_leave(r, (int)k); /* it restarted or was replaced: its old connection is gone */
        }
        if (h->greet(h->ctx, (int)k, req, again) != BD_OK) { /* greet did not answer it */
            bd_round_refuse(r, req, "peer %u's greeting: %s", k, bd_lasterr());
            return;
        }
        if (p->held)
            bd_server_drop(r->srv, p->held);
        p->held = NULL;
        p->state = BD_PEER_READY;
        p->greeted = 1;
        p->pipe = pipe;
        p->next_seq = seq + 1;
        return;
    }
    if (req->h.type != r->request) {
        bd_round_drop_req(r, req, "a message of type %u from peer %u", req->h.type, k);
        return;
    }
    if (p->state == BD_PEER_ABSENT || nng_pipe_id(p->pipe) != nng_pipe_id(req->pipe)) {
        bd_round_refuse(r, req, "a request from peer %u, which has not greeted on that connection", k);
        return;
    }
    if (req->h.seq != p->next_seq || p->held) {
        bd_round_drop_req(r, req, "peer %u's request number %u (expected %u%s)", k, req->h.seq, p->next_seq,
                          p->held ? ", and one is held" : "");
        return;
    }
    p->held = req;
    p->next_seq++;
}

/* A dead door (bd_server_guard_check) is replaced, closing its connections, only when one
 * of its peers is absent: then a new connection is needed, and nothing else can bring it. */
static int bd_round_may_close(void *ctx, uint32_t key)
{
    bd_round *r = ctx;
    for (int i = 0; i < r->ndoors; i++)
        if (r->door[i].listener == key) {
            for (int k = r->door[i].first; k < r->door[i].first + r->door[i].count; k++)
                if (r->peer[k].state == BD_PEER_ABSENT)
                    return 1;
            return 0;
        }
    for (int k = 0; k < r->n; k++)
        if (r->peer[k].state == BD_PEER_ABSENT)
            return 1;
    return 0;
}

/* Handles what arrives for up to ms. */
static void bd_round_step_ms(bd_round *r, const bd_round_hooks *h, int ms)
{
    char what[512];
    int g = bd_server_guard_check(r->srv, bd_now(), bd_round_may_close, r, what, sizeof what);
    if (g == 1 || g == 3) { /* counted when done; a failure is said as the last account */
        pthread_mutex_lock(&r->mu);
        r->relistened += g == 1;
        snprintf(r->relisten_why, sizeof r->relisten_why, "%s", what);
        pthread_mutex_unlock(&r->mu);
    }
    if (h->tick) /* news heard during a long update counts before what waited meanwhile */
        h->tick(h->ctx);
    bd_request *req;
    if (bd_server_next(r->srv, ms, &req) == BD_OK)
        bd_round_handle(r, req, h);
    while (bd_server_next(r->srv, 0, &req) == BD_OK)
        bd_round_handle(r, req, h);
    if (h->tick)
        h->tick(h->ctx);
    bd_round_reap(r);
}

static void bd_round_step(bd_round *r, const bd_round_hooks *h)
{
    bd_round_step_ms(r, h, 200);
}

int bd_round_await_all(bd_round *r, const bd_round_hooks *h, const volatile sig_atomic_t *stop)
{
    for (;;) {
        bd_round_reap(r);
        int all = 1;
        for (int k = 0; k < r->n; k++)
            all &= r->peer[k].state != BD_PEER_ABSENT;
        if (all)
            return BD_OK;
        if (stop && *stop)
            return bd_seterr(BD_EINTR, "stopped by a signal");
        bd_round_step(r, h);
    }
}

int bd_round_gather(bd_round *r, const bd_round_hooks *h, const volatile sig_atomic_t *stop)
{
    for (;;) {
        bd_round_reap(r);
        int active = 0, held = 0, ready = 0;
        for (int k = 0; k < r->n; k++) {
            active += r->peer[k].state == BD_PEER_ACTIVE;
            held += r->peer[k].state == BD_PEER_ACTIVE && r->peer[k].held;
            ready += r->peer[k].state == BD_PEER_READY;
        }
        /* every active peer's request is in; with nobody active, a ready peer waits for
         * its admission, which the caller gives between gathers */
        if ((active > 0 && held == active) || (active == 0 && ready > 0))
            return BD_OK;
        if (stop && *stop)
            return bd_seterr(BD_EINTR, "stopped by a signal");
        bd_round_step(r, h);
    }
}

bd_peer_state bd_round_state(const bd_round *r, int peer)
{
    return peer >= 0 && peer < r->n ? r->peer[peer].state : BD_PEER_ABSENT;
}

void bd_round_admit(bd_round *r, int peer)
{
    if (peer >= 0 && peer < r->n && r->peer[peer].state == BD_PEER_READY)
        r->peer[peer].state = BD_PEER_ACTIVE;
}

void bd_round_lose(bd_round *r, int peer)
{
    if (peer < 0 || peer >= r->n || r->peer[peer].state == BD_PEER_ABSENT)
        return;
    nng_pipe_close(r->peer[peer].pipe);
    bd_round_leave(r, peer);
}

bd_request *bd_round_request(const bd_round *r, int peer)
{
    if (peer < 0 || peer >= r->n || r->peer[peer].state != BD_PEER_ACTIVE)
        return NULL;
    return r->peer[peer].held;
}

int bd_round_reply(bd_round *r, bd_request *req, nng_msg *msg)
{
    return bd_server_answer(r->srv, req, msg);
}

int bd_round_answer(bd_round *r, int peer, nng_msg *msg)
{
    bd_request *req = bd_round_request(r, peer);
    if (!req)
        return bd_seterr(BD_ESTATE, "round: peer %d holds no request", peer);
    r->peer[peer].held = NULL;
    return bd_server_answer(r->srv, req, msg);
}

uint64_t bd_round_dropped(bd_round *r, char *why, size_t len)
{
    char sw[256];
    uint64_t n = r->dropped + bd_server_rejected(r->srv, sw, sizeof sw);
    if (why && len)
        snprintf(why, len, "%s", r->why[0] ? r->why : sw);
    return n;
}

uint64_t bd_round_relistened(bd_round *r, char *why, size_t len)
{
    pthread_mutex_lock(&r->mu);
    uint64_t n = r->relistened;
    if (why && len)
        snprintf(why, len, "%s", r->relisten_why);
    pthread_mutex_unlock(&r->mu);
    return n;
}

uint64_t bd_round_refused(bd_round *r, char *why, size_t len)
{
    if (why && len)
        snprintf(why, len, "%s", r->refused_why);
    return r->refused;
}

/* Answers every request a peer holds (ready or active) with h->last's message. */
static void bd_round_answer_last(bd_round *r, const bd_round_hooks *h)
{
    for (int k = 0; k < r->n; k++) {
        bd_peer *p = &r->peer[k];
        if (p->state == BD_PEER_ABSENT || !p->held)
            continue;
        bd_request *req = p->held;
        nng_msg *m = NULL;
        p->held = NULL;
        if (h->last(h->ctx, k, &m) != BD_OK)
            bd_server_drop(r->srv, req);
        else if (bd_server_answer(r->srv, req, m) != BD_OK)
            nng_msg_free(m); /* its connection closed meanwhile */
    }
}

int bd_round_drain(bd_round *r, const bd_round_hooks *h, double seconds, const volatile sig_atomic_t *stop)
{
    double end = bd_now() + seconds;
    bd_server_guard_stop(r->srv); /* its probes would count as connections still open */
    for (;;) {
        if (h && h->last)
            bd_round_answer_last(r, h);
        pthread_mutex_lock(&r->mu);
        int open = r->pipes;
        pthread_mutex_unlock(&r->mu);
        if (open <= 0 || bd_now() >= end || (stop && *stop))
            return open > 0 ? open : 0;
        if (h) {
            bd_round_step_ms(r, h, 20);
        } else {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

void bd_round_wait_hangup(bd_round *r, double seconds, const volatile sig_atomic_t *stop)
{
    bd_round_drain(r, NULL, seconds, stop);
}

void bd_round_close(bd_round *r)
{
    if (!r)
        return;
    for (int k = 0; r->peer && r->srv && k < r->n; k++)
        if (r->peer[k].held)
            bd_server_drop(r->srv, r->peer[k].held);
    bd_server_close(r->srv);
    pthread_mutex_destroy(&r->mu);
    free(r->gone);
    free(r->peer);
    free(r);
}
