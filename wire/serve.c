/* serve.c: a REP server that holds many requests at once (see serve.h). */
#include "wire/serve.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/util.h"
#include "wire/call.h"

enum { SLOT_ARMED, SLOT_QUEUED, SLOT_TAKEN, SLOT_DEAD };

#define BD_TEXT_MAX 4096 /* longest plain-text request let through */
#define BD_LISTENERS 8   /* listeners per server */
#define BD_REFUSED 256   /* connections closed over a cap whose removal is not passed on */
#define BD_OLD_IDS 16    /* earlier listeners of one address, newest kept (see bd_serve_lis) */
#define BD_GUARD_EVERY_S 2.0 /* a guard's probe every this often */
/* Its connection, up at its end, not handed over this long: dead. Far above a live
 * listener's hand-over (milliseconds) even on a starved machine: a wrong verdict closes a
 * live listener's connections (a suite run here took one at 3 s). */
#define BD_GUARD_LATE_S 10.0
/* A probe that neither came up nor was closed by the listener (whose NNG closes a
 * connection that has not finished its handshake within 10 s) is closed after this. */
#define BD_GUARD_GIVEUP_S 120.0

/* A probe's stages (bd_serve_probe_cb) */
enum { PROBE_NONE, PROBE_DIALING, PROBE_SENDING, PROBE_READING, PROBE_UP, PROBE_FAILED };

/* A listener and those that replaced it at its address (bd_server_guard_check): callers
 * know it by its first id (key); its connections, counted against its cap, may have come
 * through any of them. A guarded one is probed now and then over its own transport. */
typedef struct {
    uint32_t key, id;
    uint32_t old[BD_OLD_IDS]; /* earlier listeners' ids (closed, or kept for their connections) */
    int nold;
    int cap, open;            /* cap 0: none */
    uint64_t added;           /* connections NNG handed over (ADD_PRE) */
    char *url;                /* with the port it bound, to listen there again */
    char *dial;               /* the address a probe dials (a wildcard host made loopback) */
    bd_tls *tls;
    int guard;                /* BD_GUARD_* */
    nng_stream_dialer *pd;    /* the probe: one connection of the transport's own */
    nng_stream *ps;
    nng_aio *pa;
    int probing, pstage, pdone, stalled, down;
    uint8_t ptx[8], prx[8];   /* SP headers: the probe's (REQ) and the listener's */
    double since, up_at, next;
    uint64_t added0;
    struct bd_server *s;
} bd_serve_lis;

typedef struct {
    nng_ctx ctx;
    nng_aio *rx, *tx;
    int state;
    bd_request req;
    char *text;
    struct bd_server *s;
    int index;
} bd_serve_slot;

struct bd_server {
    nng_socket sock;
    int sock_open;
    bd_serve_slot *slots;
    int n;
    int *queue; /* slot indexes in arrival order (ring of n) */
    int qhead, qlen;
    int text_ok;
    uint64_t rejected;
    char why[256];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*pipe_fn)(void *, nng_pipe, int);
    void *pipe_ctx;
    bd_serve_lis lis[BD_LISTENERS];
    int nlis;
    int guard_off; /* bd_server_guard_stop */
    uint32_t refused[BD_REFUSED]; /* pipes closed over a cap, until their removal is seen */
    int nrefused;
};

static void bd_serve_arm(bd_serve_slot *sl)
{
    sl->state = SLOT_ARMED;
    nng_ctx_recv(sl->ctx, sl->rx);
}

/* Plain printable text (nngcat --data "status"), NUL-terminated copy, or NULL. */
static char *bd_serve_text(const uint8_t *p, size_t len)
{
    if (len == 0 || len > BD_TEXT_MAX)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!isprint(p[i]) && !isspace(p[i]))
            return NULL;
    char *t = malloc(len + 1);
    if (t) {
        memcpy(t, p, len);
        t[len] = '\0';
    }
    return t;
}

static void bd_serve_rx_cb(void *arg)
{
    bd_serve_slot *sl = arg;
    bd_server *s = sl->s;
    int rv = nng_aio_result(sl->rx);
    if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) { /* the server closes: the slot is done */
        pthread_mutex_lock(&s->mu);
        sl->state = SLOT_DEAD;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (rv != 0) { /* a receive that failed (a connection gone bad): listen again */
        pthread_mutex_lock(&s->mu);
        s->rejected++;
        snprintf(s->why, sizeof s->why, "a receive failed: %s", nng_strerror(rv));
        pthread_mutex_unlock(&s->mu);
        bd_serve_arm(sl);
        return;
    }
    nng_msg *m = nng_aio_get_msg(sl->rx);
    bd_request *r = &sl->req;
    memset(r, 0, sizeof *r);
    r->slot = sl->index;
    r->msg = m;
    r->pipe = nng_msg_get_pipe(m);
    int rc = bd_wire_decode(nng_msg_body(m), nng_msg_len(m), &r->h, &r->payload);
    char *text = NULL;
    if (rc != BD_OK && s->text_ok)
        text = bd_serve_text(nng_msg_body(m), nng_msg_len(m));
    pthread_mutex_lock(&s->mu);
    if (rc != BD_OK && !text) {
        s->rejected++;
        snprintf(s->why, sizeof s->why, "%s", bd_lasterr());
        pthread_mutex_unlock(&s->mu);
        nng_msg_free(m);
        r->msg = NULL;
        bd_serve_arm(sl); /* dropped: listen again */
        return;
    }
    sl->text = text;
    r->text = text;
    sl->state = SLOT_QUEUED;
    s->queue[(s->qhead + s->qlen) % s->n] = sl->index;
    s->qlen++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* The record of listener lid (its own id or an earlier one's), or s->nlis. Under s->mu. */
static int bd_serve_find(const bd_server *s, uint32_t lid)
{
    for (int k = 0; k < s->nlis; k++) {
        if (s->lis[k].id == lid)
            return k;
        for (int i = 0; i < s->lis[k].nold; i++)
            if (s->lis[k].old[i] == lid)
                return k;
    }
    return s->nlis;
}

/* A connection comes (ADD_PRE: closed there when its listener is at its cap; NNG then
 * never adds it, but still reports its removal), is added (ADD_POST) or goes (REM_POST). */
static void bd_serve_pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    bd_server *s = arg;
    uint32_t lid = (uint32_t)nng_listener_id(nng_pipe_listener(p)), pid = (uint32_t)nng_pipe_id(p);
    pthread_mutex_lock(&s->mu);
    int k = bd_serve_find(s, lid);
    if (ev == NNG_PIPE_EV_ADD_PRE) {
        if (k < s->nlis)
            s->lis[k].added++;
        int over = k < s->nlis && ++s->lis[k].open > s->lis[k].cap && s->lis[k].cap > 0;
        if (over) {
            s->rejected++;
            snprintf(s->why, sizeof s->why, "a connection over the listener's cap of %d", s->lis[k].cap);
            if (s->nrefused < BD_REFUSED)
                s->refused[s->nrefused++] = pid;
        }
        pthread_mutex_unlock(&s->mu);
        if (over)
            nng_pipe_close(p);
        return;
    }
    int refused = 0;
    if (ev == NNG_PIPE_EV_REM_POST) {
        if (k < s->nlis)
            s->lis[k].open--;
        for (int i = 0; i < s->nrefused && !refused; i++)
            if (s->refused[i] == pid) {
                s->refused[i] = s->refused[--s->nrefused];
                refused = 1;
            }
    }
    pthread_mutex_unlock(&s->mu);
    if (s->pipe_fn && !refused)
        s->pipe_fn(s->pipe_ctx, p, ev == NNG_PIPE_EV_ADD_POST);
}

int bd_server_open(int contexts, bd_server **out)
{
    *out = NULL;
    if (contexts < 1)
        return bd_seterr(BD_EINVAL, "a server needs at least one context");
    bd_server *s = calloc(1, sizeof *s);
    if (!s)
        return bd_seterr(BD_ENOMEM, "out of memory");
    s->n = contexts;
    s->slots = calloc((size_t)contexts, sizeof *s->slots);
    s->queue = calloc((size_t)contexts, sizeof *s->queue);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (!s->slots || !s->queue) {
        bd_server_close(s);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    int rv = nng_rep0_open(&s->sock);
    s->sock_open = rv == 0;
    if (rv == 0) {
        nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, bd_serve_pipe_cb, s);
        nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, bd_serve_pipe_cb, s);
        nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, bd_serve_pipe_cb, s);
    }
    for (int i = 0; i < contexts && rv == 0; i++) {
        bd_serve_slot *sl = &s->slots[i];
        sl->s = s;
        sl->index = i;
        sl->state = SLOT_DEAD;
        rv = nng_ctx_open(&sl->ctx, s->sock);
        if (rv == 0)
            rv = nng_aio_alloc(&sl->rx, bd_serve_rx_cb, sl);
        if (rv == 0)
            rv = nng_aio_alloc(&sl->tx, NULL, NULL);
    }
    if (rv != 0) {
        int rc = bd_nng_err(rv, "server: contexts");
        bd_server_close(s);
        return rc;
    }
    for (int i = 0; i < contexts; i++)
        bd_serve_arm(&s->slots[i]);
    *out = s;
    return BD_OK;
}

int bd_server_listen(bd_server *s, const char *url, int *bound)
{
    bd_listen_opts o = {.bound = bound};
    return bd_server_listen_with(s, url, &o);
}

/* A listener of s at url (with tls for tls+tcp://), started: BD_OK with *id. When rec is
 * given, the listener is counted in it before it starts (no connection comes first). */
static int bd_serve_start(bd_server *s, const char *url, bd_tls *tls, bd_serve_lis *rec, uint32_t *id)
{
    nng_listener l = NNG_LISTENER_INITIALIZER;
    nng_tls_config *cfg = NULL;
    int rv = nng_listener_create(&l, s->sock, url);
    if (rv == 0 && tls) {
        int rc = bd_tls_config(tls, 1, &cfg);
        if (rc != BD_OK) {
            nng_listener_close(l);
            return rc;
        }
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, cfg);
    }
    if (rv == 0 && rec) {
        pthread_mutex_lock(&s->mu);
        if (rec->id) { /* the newest BD_OLD_IDS are kept: their connections went at once */
            if (rec->nold == BD_OLD_IDS)
                memmove(rec->old, rec->old + 1, sizeof rec->old - sizeof rec->old[0]);
            rec->old[rec->nold < BD_OLD_IDS ? rec->nold++ : BD_OLD_IDS - 1] = rec->id;
        }
        rec->id = (uint32_t)nng_listener_id(l);
        pthread_mutex_unlock(&s->mu);
    }
    if (rv == 0)
        rv = nng_listener_start(l, 0);
    if (rv != 0) {
        if (nng_listener_id(l) > 0)
            nng_listener_close(l);
        return bd_nng_err(rv, url);
    }
    *id = (uint32_t)nng_listener_id(l);
    return BD_OK;
}

/* Where a probe of the listener at url dials: the same, but a wildcard host (*, none,
 * 0.0.0.0, ::), which NNG will not dial, made this machine's loopback. Heap, or NULL. */
static char *bd_serve_dial_url(const char *url)
{
    const char *sep = strstr(url, "://"), *colon = strrchr(url, ':');
    if (!sep || strncmp(url, "ipc", 3) == 0 || !colon || colon < sep + 3)
        return bd_strdup(url);
    const char *host = sep + 3;
    size_t n = (size_t)(colon - host);
    static const char *const any4[] = {"", "*", "0.0.0.0"}, *const any6[] = {"[::]", "::"};
    for (size_t i = 0; i < 3; i++)
        if (n == strlen(any4[i]) && strncmp(host, any4[i], n) == 0)
            return bd_strfmt("%.*s127.0.0.1%s", (int)(host - url), url, colon);
    for (size_t i = 0; i < 2; i++)
        if (n == strlen(any6[i]) && strncmp(host, any6[i], n) == 0)
            return bd_strfmt("%.*s[::1]%s", (int)(host - url), url, colon);
    return bd_strdup(url);
}

int bd_server_listen_with(bd_server *s, const char *url, const bd_listen_opts *o)
{
    static const bd_listen_opts none = {0};
    o = o ? o : &none;
    if (bd_tls_url(url) != (o->tls != NULL))
        return bd_seterr(BD_EINVAL, "%s: %s", url, o->tls ? "a TLS door listens on tls+tcp:// only"
                                                         : "tls+tcp:// needs the run's credential");
    if (s->nlis >= BD_LISTENERS)
        return bd_seterr(BD_EINVAL, "%s: more than %d listeners on one server", url, BD_LISTENERS);
    bd_serve_lis *rec = &s->lis[s->nlis];
    memset(rec, 0, sizeof *rec);
    rec->cap = o->cap > 0 ? o->cap : 0;
    rec->tls = o->tls;
    rec->guard = o->guard;
    rec->s = s;
    rec->next = bd_now() + BD_GUARD_EVERY_S;
    pthread_mutex_lock(&s->mu);
    s->nlis++;
    pthread_mutex_unlock(&s->mu);
    uint32_t id = 0;
    int rc = bd_serve_start(s, url, o->tls, rec, &id);
    int port = 0;
    nng_sockaddr sa;
    if (rc == BD_OK && nng_listener_get_addr((nng_listener){.id = id}, NNG_OPT_LOCADDR, &sa) == 0) {
        if (sa.s_family == NNG_AF_INET)
            port = ntohs(sa.s_in.sa_port);
        else if (sa.s_family == NNG_AF_INET6)
            port = ntohs(sa.s_in6.sa_port);
    }
    /* the address it took (a port the system chose, for port 0), to listen there again */
    const char *colon = strrchr(url, ':');
    if (rc == BD_OK)
        rec->url = port && colon ? bd_strfmt("%.*s:%d", (int)(colon - url), url, port) : bd_strdup(url);
    if (rc == BD_OK && !rec->url)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK && !(rec->dial = bd_serve_dial_url(rec->url)))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    if (rc != BD_OK) {
        free(rec->url);
        rec->url = NULL;
        if (id)
            nng_listener_close((nng_listener){.id = id});
        pthread_mutex_lock(&s->mu);
        s->nlis--;
        pthread_mutex_unlock(&s->mu);
        return rc;
    }
    rec->key = id;
    if (o->listener)
        *o->listener = id;
    if (o->bound)
        *o->bound = port;
    return BD_OK;
}

uint32_t bd_server_listener_key(bd_server *s, uint32_t lid)
{
    pthread_mutex_lock(&s->mu);
    int k = bd_serve_find(s, lid);
    uint32_t key = k < s->nlis ? s->lis[k].key : lid;
    pthread_mutex_unlock(&s->mu);
    return key;
}

/* The probe's one connection, step by step on NNG's threads: dial, send the SP header of
 * a REQ socket, read the listener's. Up once both went: the listener's side of the
 * handshake is then over (it only reads our header, which is there), so closing cannot
 * fall inside it; that close is the very fault the guard looks for. */
static void bd_serve_probe_cb(void *arg)
{
    bd_serve_lis *rec = arg;
    int rv = nng_aio_result(rec->pa);
    pthread_mutex_lock(&rec->s->mu);
    int stage = rec->pstage, done = rec->pdone;
    pthread_mutex_unlock(&rec->s->mu);
    int next = PROBE_FAILED;
    if (rv == 0 && stage == PROBE_DIALING) {
        rec->ps = nng_aio_get_output(rec->pa, 0);
        next = PROBE_SENDING;
        done = 0;
    } else if (rv == 0 && (stage == PROBE_SENDING || stage == PROBE_READING)) {
        done += (int)nng_aio_count(rec->pa);
        next = done < 8 ? stage : stage == PROBE_SENDING ? PROBE_READING : PROBE_UP;
        if (next != stage)
            done = 0;
    }
    if (next == PROBE_UP && (rec->prx[0] != 0 || rec->prx[1] != 'S' || rec->prx[2] != 'P'))
        next = PROBE_FAILED; /* not an SP listener */
    pthread_mutex_lock(&rec->s->mu);
    rec->pstage = next;
    rec->pdone = done;
    pthread_mutex_unlock(&rec->s->mu);
    if (next == PROBE_SENDING || next == PROBE_READING) {
        nng_iov iov = {.iov_buf = (next == PROBE_SENDING ? rec->ptx : rec->prx) + done, .iov_len = (size_t)(8 - done)};
        nng_aio_set_iov(rec->pa, 1, &iov);
        if (next == PROBE_SENDING)
            nng_stream_send(rec->ps, rec->pa);
        else
            nng_stream_recv(rec->ps, rec->pa);
    }
}

static void bd_serve_probe_close(bd_serve_lis *rec)
{
    if (!rec->probing)
        return;
    nng_aio_stop(rec->pa); /* waits for the callback */
    if (rec->ps) {
        nng_stream_close(rec->ps);
        nng_stream_free(rec->ps);
    }
    nng_stream_dialer_free(rec->pd);
    nng_aio_free(rec->pa);
    rec->ps = NULL;
    rec->pd = NULL;
    rec->pa = NULL;
    rec->probing = 0;
}

/* Starts rec's probe: one connection over the listener's transport (with the run's client
 * certificate for a TLS door), dialled once, which sends its SP header and nothing else. */
static void bd_serve_probe_start(bd_serve_lis *rec, double now)
{
    rec->next = now + BD_GUARD_EVERY_S;
    nng_tls_config *cfg = NULL;
    if (rec->tls && bd_tls_config(rec->tls, 0, &cfg) != BD_OK)
        return;
    if (nng_stream_dialer_alloc(&rec->pd, rec->dial) != 0)
        return;
    if ((cfg && nng_stream_dialer_set_ptr(rec->pd, NNG_OPT_TLS_CONFIG, cfg) != 0)
        || nng_aio_alloc(&rec->pa, bd_serve_probe_cb, rec) != 0) {
        nng_stream_dialer_free(rec->pd);
        rec->pd = NULL;
        return;
    }
    static const uint8_t req_header[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0}; /* REQ v0 */
    memcpy(rec->ptx, req_header, 8);
    rec->probing = 1;
    rec->ps = NULL;
    pthread_mutex_lock(&rec->s->mu);
    rec->pstage = PROBE_DIALING;
    rec->pdone = 0;
    rec->added0 = rec->added;
    pthread_mutex_unlock(&rec->s->mu);
    rec->up_at = 0;
    rec->since = now;
    nng_stream_dialer_dial(rec->pd, rec->pa);
}

/* rec's listener (dead, or closed by an earlier attempt) is replaced by a new one at its
 * address. BD_GUARD_CLOSE: the dead one is closed first, with its connections (those it
 * took while dead wait for ever otherwise); that frees the port (tcp) or removes its
 * socket file (ipc). BD_GUARD_KEEP (ipc): it stays open for the connections it handed over
 * (requests held on them stay answerable); its socket file goes, and the new one takes
 * the path. */
static int bd_serve_relisten(bd_server *s, bd_serve_lis *rec, char *what, size_t len)
{
    const int keep = rec->guard == BD_GUARD_KEEP && strncmp(rec->url, "ipc://", 6) == 0;
    pthread_mutex_lock(&s->mu);
    int open = rec->open;
    pthread_mutex_unlock(&s->mu);
    if (!rec->down && keep && unlink(rec->url + 6) != 0 && errno != ENOENT) {
        snprintf(what, len, "%s: NNG stopped handing over its connections; its socket file stays: %s", rec->url,
                 strerror(errno));
        rec->down = 1;
        return BD_EIO;
    }
    if (!rec->down && !keep)
        nng_listener_close((nng_listener){.id = rec->id});
    int was_down = rec->down;
    uint32_t id;
    int rc = bd_serve_start(s, rec->url, rec->tls, rec, &id);
    rec->down = rc != BD_OK;
    if (rc != BD_OK)
        snprintf(what, len, "%s: listening there again failed (tried again every %.0f s, said once): %s", rec->url,
                 BD_GUARD_EVERY_S, bd_lasterr());
    else if (was_down)
        snprintf(what, len, "%s: listening there again", rec->url);
    else
        snprintf(what, len, "%s: NNG stopped handing over its connections (a connection that closed during its "
                            "handshake, nanomsg/nng#1518); listening there again%s", rec->url,
                 keep ? " (the old listener keeps the connections it has)"
                 : open > 0 ? ", its connections closed with it" : "");
    return rc;
}

void bd_server_guard_stop(bd_server *s)
{
    s->guard_off = 1;
    for (int k = 0; k < s->nlis; k++)
        bd_serve_probe_close(&s->lis[k]);
}

/* Where rec's probe stands: 0 nothing yet (or closed without a verdict), 1 the listener
 * is dead. A probe is closed once up, once the listener closed it (failed), or after
 * BD_GUARD_GIVEUP_S: never while its handshake may still run on the listener's side. */
static int bd_serve_probe_verdict(bd_server *s, bd_serve_lis *rec, double now)
{
    pthread_mutex_lock(&s->mu);
    int stage = rec->pstage, moved = rec->added != rec->added0;
    pthread_mutex_unlock(&s->mu);
    if (stage == PROBE_FAILED || (stage != PROBE_UP && now - rec->since > BD_GUARD_GIVEUP_S)) {
        bd_serve_probe_close(rec);
        return 0;
    }
    if (stage != PROBE_UP)
        return 0;
    if (rec->up_at == 0)
        rec->up_at = now;
    if (moved) { /* handed over (its own or another): alive */
        bd_serve_probe_close(rec);
        return 0;
    }
    if (now - rec->up_at <= BD_GUARD_LATE_S)
        return 0;
    bd_serve_probe_close(rec);
    return 1;
}

int bd_server_guard_check(bd_server *s, double now, int (*may_close)(void *ctx, uint32_t key), void *ctx,
                          char *what, size_t len)
{
    for (int k = 0; k < s->nlis && !s->guard_off; k++) {
        bd_serve_lis *rec = &s->lis[k];
        if (!rec->guard)
            continue;
        if (rec->down) { /* an earlier attempt to listen again failed: again, now and then */
            if (now < rec->next)
                continue;
            rec->next = now + BD_GUARD_EVERY_S;
            if (bd_serve_relisten(s, rec, what, len) == BD_OK)
                return 1;
            continue;
        }
        if (!rec->stalled) {
            if (!rec->probing) {
                if (now >= rec->next)
                    bd_serve_probe_start(rec, now);
                continue;
            }
            if (!bd_serve_probe_verdict(s, rec, now))
                continue;
        }
        /* dead: a tcp door (whose connections a new listener closes) waits until one is
         * missing; ipc ones are replaced at once (their peers dial again by themselves, or
         * the old listener keeps them) */
        int ipc = strncmp(rec->url, "ipc://", 6) == 0;
        if (!ipc && may_close && !may_close(ctx, rec->key)) {
            int first = !rec->stalled;
            rec->stalled = 1;
            if (first) {
                snprintf(what, len, "%s: NNG stopped handing over its connections (nanomsg/nng#1518); it is "
                                    "listened on again when a connection is missing", rec->url);
                return 2;
            }
            continue;
        }
        rec->stalled = 0;
        rec->next = now + BD_GUARD_EVERY_S;
        return bd_serve_relisten(s, rec, what, len) == BD_OK ? 1 : 3;
    }
    return 0;
}

void bd_server_accept_text(bd_server *s, int yes)
{
    pthread_mutex_lock(&s->mu);
    s->text_ok = yes;
    pthread_mutex_unlock(&s->mu);
}

int bd_server_next(bd_server *s, int timeout_ms, bd_request **req)
{
    *req = NULL;
    const struct timespec ts = bd_timespec_after(CLOCK_REALTIME, timeout_ms);
    pthread_mutex_lock(&s->mu);
    while (s->qlen == 0 && timeout_ms > 0)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
            break;
    if (s->qlen == 0) {
        pthread_mutex_unlock(&s->mu);
        return BD_ETIMEDOUT;
    }
    bd_serve_slot *sl = &s->slots[s->queue[s->qhead]];
    s->qhead = (s->qhead + 1) % s->n;
    s->qlen--;
    sl->state = SLOT_TAKEN;
    pthread_mutex_unlock(&s->mu);
    *req = &sl->req;
    return BD_OK;
}

/* Frees what the request held and listens on its context again. */
static void bd_serve_release(bd_server *s, bd_request *req)
{
    bd_serve_slot *sl = &s->slots[req->slot];
    if (req->msg)
        nng_msg_free(req->msg);
    req->msg = NULL;
    free(sl->text);
    sl->text = NULL;
    req->text = NULL;
    pthread_mutex_lock(&s->mu);
    int alive = sl->state == SLOT_TAKEN;
    pthread_mutex_unlock(&s->mu);
    if (alive)
        bd_serve_arm(sl);
}

int bd_server_answer(bd_server *s, bd_request *req, nng_msg *msg)
{
    bd_serve_slot *sl = &s->slots[req->slot];
    nng_aio_set_msg(sl->tx, msg);
    nng_ctx_send(sl->ctx, sl->tx);
    nng_aio_wait(sl->tx);
    int rv = nng_aio_result(sl->tx);
    bd_serve_release(s, req);
    return rv ? bd_nng_err(rv, "server: answer") : BD_OK;
}

int bd_server_answer_bytes(bd_server *s, bd_request *req, bd_msg_type type, uint32_t sender,
                           const void *payload, size_t len)
{
    nng_msg *m;
    uint8_t *p;
    int rc = bd_wire_msg_alloc(&m, type, sender, req->h.seq, len, &p);
    if (rc != BD_OK) {
        bd_server_drop(s, req);
        return rc;
    }
    if (len)
        memcpy(p, payload, len);
    rc = bd_server_answer(s, req, m);
    if (rc != BD_OK)
        nng_msg_free(m);
    return rc;
}

void bd_server_drop(bd_server *s, bd_request *req)
{
    bd_serve_release(s, req);
}

uint64_t bd_server_rejected(bd_server *s, char *why, size_t len)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->rejected;
    if (why && len)
        snprintf(why, len, "%s", s->why);
    pthread_mutex_unlock(&s->mu);
    return n;
}

int bd_pipe_peer_pid(nng_pipe p)
{
    uint64_t pid = 0; /* NNG keeps it as a uint64 */
    if (nng_pipe_id(p) <= 0 || nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_PID, &pid) != 0)
        return 0;
    return pid > 0 && pid < (1u << 30) ? (int)pid : 0;
}

int bd_pipe_peer_uid(nng_pipe p, uint64_t *uid)
{
    return nng_pipe_id(p) > 0 && nng_pipe_get_uint64(p, NNG_OPT_IPC_PEER_UID, uid) == 0;
}

int bd_pipe_open(nng_pipe p)
{
    nng_sockaddr sa;
    return nng_pipe_id(p) > 0 && nng_pipe_get_addr(p, NNG_OPT_LOCADDR, &sa) != NNG_ENOENT;
}

int bd_server_set_recvmax(bd_server *s, size_t bytes)
{
    int rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, bytes);
    return rv ? bd_nng_err(rv, "server: receive limit") : BD_OK;
}

void bd_server_on_pipe(bd_server *s, void (*fn)(void *, nng_pipe, int), void *ctx)
{
    s->pipe_ctx = ctx;
    s->pipe_fn = fn;
}

void bd_server_close(bd_server *s)
{
    if (!s)
        return;
    for (int k = 0; k < s->nlis; k++) {
        bd_serve_probe_close(&s->lis[k]);
        free(s->lis[k].url);
        free(s->lis[k].dial);
    }
    if (s->sock_open)
        nng_close(s->sock); /* cancels every receive: the callbacks mark their slots dead */
    for (int i = 0; s->slots && i < s->n; i++) {
        bd_serve_slot *sl = &s->slots[i];
        if (sl->rx)
            nng_aio_free(sl->rx);
        if (sl->tx)
            nng_aio_free(sl->tx);
        if (sl->req.msg)
            nng_msg_free(sl->req.msg);
        free(sl->text);
    }
    free(s->slots);
    free(s->queue);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
