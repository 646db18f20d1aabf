/* events.c: a child's messages to its conductor (see events.h). */
#include "wire/events.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/util.h"
#include "wire/call.h"
#include "wire/wire.h"

#define BD_BEAT_TIMEOUT_MS 5000 /* a heartbeat's wait for its answer */
#define BD_EVENTS_RECVMAX ((size_t)64 << 20) /* a JOIN's answer carries the run file */

struct bd_events {
    nng_socket sock;
    nng_ctx ctx_ev, ctx_beat;
    uint32_t sender;
    uint32_t seq;
    int timeout_ms;
    const volatile sig_atomic_t *stop_flag; /* ends an event's wait (may be NULL) */
    /* heartbeats */
    pthread_t thread;
    int beating;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    int interval_ms;
    cJSON *(*beat)(void *);
    void (*heard)(void *, const cJSON *);
    void *beat_ctx;
    uint32_t beat_seq;
    double beat_ok; /* when a heartbeat was last answered (bd_now; 0: never) */
    int pipes;      /* connections to the conductor now open (NNG's pipe callbacks) */
};

static void bd_events_pipe_cb(nng_pipe p, nng_pipe_ev e, void *arg)
{
    (void)p;
    bd_events *ev = arg;
    __atomic_add_fetch(&ev->pipes, e == NNG_PIPE_EV_ADD_POST ? 1 : -1, __ATOMIC_RELAXED);
}

int bd_events_dial(const char *url, uint32_t sender, bd_events **out)
{
    return bd_events_dial_tls(url, sender, NULL, out);
}

int bd_events_dial_tls(const char *url, uint32_t sender, bd_tls *tls, bd_events **out)
{
    *out = NULL;
    bd_events *ev = calloc(1, sizeof *ev);
    if (!ev)
        return bd_seterr(BD_ENOMEM, "events: out of memory");
    int rv = nng_req0_open(&ev->sock);
    if (rv != 0) {
        free(ev);
        return bd_nng_err(rv, "events: nng_req0_open");
    }
    ev->timeout_ms = 10000;
    nng_socket_set_ms(ev->sock, NNG_OPT_RECONNMINT, 10);
    nng_socket_set_ms(ev->sock, NNG_OPT_RECONNMAXT, 200);
    /* Never sent twice: the conductor may hold a request for long (a brain's round report
     * until every brain has reported). A request waits for a connection, and one whose
     * connection drops is sent again on the next. */
    nng_socket_set_ms(ev->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(ev->sock, NNG_OPT_RECVMAXSZ, BD_EVENTS_RECVMAX);
    nng_pipe_notify(ev->sock, NNG_PIPE_EV_ADD_POST, bd_events_pipe_cb, ev);
    nng_pipe_notify(ev->sock, NNG_PIPE_EV_REM_POST, bd_events_pipe_cb, ev);
    rv = nng_ctx_open(&ev->ctx_ev, ev->sock);
    if (rv == 0)
        rv = nng_ctx_open(&ev->ctx_beat, ev->sock);
    int rc = rv == 0 ? bd_tls_dial(ev->sock, url, tls, NNG_FLAG_NONBLOCK) : bd_nng_err(rv, url);
    if (rc != BD_OK) {
        nng_close(ev->sock);
        free(ev);
        return rc;
    }
    pthread_mutex_init(&ev->mu, NULL);
    pthread_cond_init(&ev->cv, NULL);
    ev->sender = sender;
    *out = ev;
    return BD_OK;
}

void bd_events_set_timeout(bd_events *ev, int ms)
{
    ev->timeout_ms = ms;
}

void bd_events_set_recvmax(bd_events *ev, size_t bytes)
{
    nng_socket_set_size(ev->sock, NNG_OPT_RECVMAXSZ, bytes);
}

void bd_events_set_stop(bd_events *ev, const volatile sig_atomic_t *stop)
{
    ev->stop_flag = stop;
}

/* One request on ctx: type and JSON obj out, the answer's JSON (or NULL) back. */
static int bd_events_call(bd_events *ev, nng_ctx ctx, bd_msg_type type, uint32_t seq, const cJSON *obj,
                          int timeout_ms, const volatile sig_atomic_t *stop, cJSON **reply)
{
    if (reply)
        *reply = NULL;
    char *text = cJSON_PrintUnformatted(obj);
    if (!text)
        return bd_seterr(BD_ENOMEM, "events: cannot format JSON");
    size_t len = strlen(text);
    nng_msg *m;
    uint8_t *payload;
    int rc = bd_wire_msg_alloc(&m, type, ev->sender, seq, len, &payload);
    if (rc != BD_OK) {
        free(text);
        return rc;
    }
    memcpy(payload, text, len);
    free(text);
    bd_call *call;
    if ((rc = bd_call_open(&call)) != BD_OK) {
        nng_msg_free(m);
        return rc;
    }
    nng_msg *ack = NULL;
    bd_call_send(call, ctx, m); /* the call frees m when the send fails */
    rc = bd_call_wait_as(call, timeout_ms, stop, NULL, "events: send to the conductor");
    if (rc == BD_OK) {
        bd_call_recv(call, ctx);
        rc = bd_call_wait_as(call, timeout_ms, stop, &ack, "events: no answer from the conductor");
    }
    bd_call_close(call);
    if (rc != BD_OK)
        return rc;
    bd_wire_header h;
    const uint8_t *p;
    rc = bd_wire_msg_decode(ack, type, &h, &p);
    if (rc == BD_OK && h.payload_len > 0 && reply) {
        *reply = cJSON_ParseWithLength((const char *)p, (size_t)h.payload_len);
        if (*reply && !cJSON_IsObject(*reply)) {
            cJSON_Delete(*reply);
            *reply = NULL;
        }
    }
    nng_msg_free(ack);
    return rc;
}

int bd_events_send(bd_events *ev, const cJSON *obj, cJSON **reply)
{
    return bd_events_request(ev, BD_MSG_EVENT, obj, reply);
}

int bd_events_request(bd_events *ev, bd_msg_type type, const cJSON *obj, cJSON **reply)
{
    return bd_events_call(ev, ev->ctx_ev, type, ev->seq++, obj, ev->timeout_ms, ev->stop_flag, reply);
}

static void *bd_events_beat_main(void *arg)
{
    bd_events *ev = arg;
    pthread_mutex_lock(&ev->mu);
    while (!ev->stop) {
        pthread_mutex_unlock(&ev->mu);
        cJSON *o = ev->beat ? ev->beat(ev->beat_ctx) : NULL;
        if (!o) {
            o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "event", "beat");
        }
        cJSON *answer = NULL;
        int ok = o && bd_events_call(ev, ev->ctx_beat, BD_MSG_BEAT, ev->beat_seq++, o, BD_BEAT_TIMEOUT_MS, NULL,
                                     &answer) == BD_OK;
        if (ok)
            ev->beat_ok = bd_now();
        if (ok && answer && ev->heard)
            ev->heard(ev->beat_ctx, answer);
        cJSON_Delete(answer);
        cJSON_Delete(o);
        const struct timespec ts = bd_timespec_after(CLOCK_REALTIME, ev->interval_ms);
        pthread_mutex_lock(&ev->mu);
        if (!ev->stop)
            pthread_cond_timedwait(&ev->cv, &ev->mu, &ts);
    }
    pthread_mutex_unlock(&ev->mu);
    return NULL;
}

int bd_events_beat(bd_events *ev, int interval_ms, cJSON *(*beat)(void *ctx),
                   void (*heard)(void *ctx, const cJSON *answer), void *ctx)
{
    if (ev->beating)
        return bd_seterr(BD_ESTATE, "events: already beating");
    ev->interval_ms = interval_ms > 0 ? interval_ms : 1000;
    ev->beat = beat;
    ev->heard = heard;
    ev->beat_ctx = ctx;
    int e = pthread_create(&ev->thread, NULL, bd_events_beat_main, ev);
    if (e != 0)
        return bd_seterr(BD_EIO, "events: cannot start the heartbeat thread: %s", strerror(e));
    ev->beating = 1;
    return BD_OK;
}

double bd_events_beat_ok(const bd_events *ev)
{
    return ev ? ev->beat_ok : 0;
}

int bd_events_grant_number(const cJSON *x, uint32_t *out)
{
    if (!cJSON_IsNumber(x) || !(x->valuedouble >= 1 && x->valuedouble <= 4294967295.0)
        || x->valuedouble != floor(x->valuedouble))
        return 0;
    *out = (uint32_t)x->valuedouble;
    return 1;
}

int bd_events_connected(bd_events *ev)
{
    return ev && __atomic_load_n(&ev->pipes, __ATOMIC_RELAXED) > 0;
}



void bd_events_close(bd_events *ev)
{
    if (!ev)
        return;
    if (ev->beating) {
        pthread_mutex_lock(&ev->mu);
        ev->stop = 1;
        pthread_cond_signal(&ev->cv);
        pthread_mutex_unlock(&ev->mu);
        nng_ctx_close(ev->ctx_beat); /* ends a heartbeat waiting for its answer */
        pthread_join(ev->thread, NULL);
    }
    if (!bd_nng_close_within(ev->sock, BD_NNG_CLOSE_MS)) {
        /* ev stays (NNG's socket still points to it): its pipe callbacks may still come */
        fprintf(stderr, "bodhi: closing a connection to the conductor did not finish within %d s (a hang of the "
                        "NNG library's; going on without it)\n", BD_NNG_CLOSE_MS / 1000);
        return;
    }
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
    free(ev);
}
