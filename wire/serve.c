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
#define BD_GUARD_LATE_S 3.0  /* its connection, up at its end, not handed over this long: dead */
/* A probe whose connection never came up is closed only after this: past NNG's own 10 s
 * limit on a connection's handshake, so the close cannot fall inside one (a close there
 * is what stops a listener). It dials once: no second attempt is under way then. */
#define BD_GUARD_GIVEUP_S 12.0

/* A listener and those that replaced it at its address (bd_server_guard_check): callers
 * know it by its first id (key); its connections, counted against its cap, may have come
 * through any of them. A guarded one is probed now and then over its own transport. */
typedef struct {
    uint32_t key, id;
    uint32_t old[BD_OLD_IDS]; /* closed listeners' ids, for their connections' removal */
    int nold;
    int cap, open;            /* cap 0: none */
    uint64_t added;           /* connections NNG handed over (ADD_PRE) */
    char *url;                /* with the port it bound, to listen there again */
    char *dial;               /* the address a probe dials (a wildcard host made loopback) */
    bd_tls *tls;
    int guard;
    nng_socket probe;
    int probing, probe_up, stalled, down;
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

/* The guard's probe connection is up (NNG's thread). */
static void bd_serve_probe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    (void)ev;
    bd_serve_lis *rec = arg;
    pthread_mutex_lock(&rec->s->mu);
    rec->probe_up = 1;
    pthread_mutex_unlock(&rec->s->mu);
}

static void bd_serve_probe_close(bd_serve_lis *rec)
{
    if (rec->probing)
        nng_close(rec->probe);
    rec->probing = 0;
}

/* Starts rec's probe: a connection of its own over the listener's transport (with the
 * run's client certificate for a TLS door), which sends nothing. It dials once. */
static void bd_serve_probe_start(bd_serve_lis *rec, double now)
{
    rec->next = now + BD_GUARD_EVERY_S;
    if (nng_req0_open(&rec->probe) != 0)
        return;
    rec->probing = 1;
    nng_socket_set_ms(rec->probe, NNG_OPT_RECONNMINT, 600000);
    nng_socket_set_ms(rec->probe, NNG_OPT_RECONNMAXT, 600000);
    nng_pipe_notify(rec->probe, NNG_PIPE_EV_ADD_POST, bd_serve_probe_cb, rec);
    pthread_mutex_lock(&rec->s->mu);
    rec->probe_up = 0;
    rec->added0 = rec->added;
    pthread_mutex_unlock(&rec->s->mu);
    rec->up_at = 0;
    rec->since = now;
    if (bd_tls_dial(rec->probe, rec->dial, rec->tls, NNG_FLAG_NONBLOCK) != BD_OK)
        bd_serve_probe_close(rec); /* refused before it began: nothing was sent */
}

/* rec's listener (dead, or closed by an earlier attempt) is replaced by a new one at its
 * address. The dead one is closed first, with its connections: those it took while dead
 * wait for ever otherwise, and it frees the port (tcp) or its socket file (ipc, whose
 * path the new one takes; closing removes the file, so the close comes first). */
static int bd_serve_relisten(bd_server *s, bd_serve_lis *rec, char *what, size_t len)
{
    int ipc = strncmp(rec->url, "ipc://", 6) == 0;
    pthread_mutex_lock(&s->mu);
    int open = rec->open;
    pthread_mutex_unlock(&s->mu);
    if (!rec->down) {
        nng_listener_close((nng_listener){.id = rec->id});
        if (ipc && unlink(rec->url + 6) != 0 && errno != ENOENT) {
            rec->down = 1;
            snprintf(what, len, "%s: NNG stopped handing over its connections; its socket file stays: %s",
                     rec->url, strerror(errno));
            return BD_EIO;
        }
    }
    int was_down = rec->down;
    uint32_t id;
    int rc = bd_serve_start(s, rec->url, rec->tls, rec, &id);
    rec->down = rc != BD_OK;
    if (rc != BD_OK)
        snprintf(what, len, "%s: listening there again failed (tried again every %.0f s): %s", rec->url,
                 BD_GUARD_EVERY_S, bd_lasterr());
    else if (was_down)
        snprintf(what, len, "%s: listening there again", rec->url);
    else
        snprintf(what, len, "%s: NNG stopped handing over its connections (a connection that closed during its "
                            "handshake, nanomsg/nng#1518); listening there again%s", rec->url,
                 open > 0 ? ", its connections closed with it" : "");
    return rc;
}

void bd_server_guard_stop(bd_server *s)
{
    s->guard_off = 1;
    for (int k = 0; k < s->nlis; k++)
        bd_serve_probe_close(&s->lis[k]);
}

/* Where rec's probe stands: 0 nothing yet (or closed without a verdict), 1 the listener
 * is dead. A probe is closed only once its connection is up (the listener's side of the
 * handshake is then done) or past NNG's handshake limit: never inside a handshake. */
static int bd_serve_probe_verdict(bd_server *s, bd_serve_lis *rec, double now)
{
    pthread_mutex_lock(&s->mu);
    int up = rec->probe_up, moved = rec->added != rec->added0;
    pthread_mutex_unlock(&s->mu);
    if (!up) {
        if (now - rec->since > BD_GUARD_GIVEUP_S)
            bd_serve_probe_close(rec);
        return 0;
    }
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
         * missing; ipc connections come back by themselves */
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
