/* serve.h: a REP server that holds many requests at once. A pool of NNG REP contexts
 * receives in NNG's threads; requests queue in arrival order; the caller takes them one at
 * a time and answers each when it likes, now or after others (a conductor holds every
 * brain's round report until all have reported). A request that is answered or dropped
 * frees its context for the next one.
 *
 * Malformed requests (not a bodhi message, another protocol version, a length that lies)
 * are dropped inside the server, never handed out, and counted with the last one's reason
 * kept, so a stranger writing to a socket can neither crash nor stall the caller.
 * One thread takes and answers requests; bd_server_listen may add listeners (ipc, tcp). */
#ifndef BODHI_WIRE_SERVE_H
#define BODHI_WIRE_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "bodhi/bodhi.h"
#include "wire/tls.h"
#include "wire/wire.h"

typedef struct bd_server bd_server;

/* A request taken from the server: its decoded header, payload (inside msg) and the
 * context to answer on. Owned by the server until answered or dropped. */
typedef struct bd_request {
    bd_wire_header h;
    const uint8_t *payload;
    nng_msg *msg;
    nng_pipe pipe;        /* the connection it came on */
    int slot;             /* the server's context */
    const char *text;     /* a request that is not a bodhi message but plain text (nngcat):
                             NUL-terminated copy, else NULL */
} bd_request;

/* Opens a server with `contexts` (>= 1) contexts, not listening yet. */
int bd_server_open(int contexts, bd_server **out);

/* Listens on url (ipc:// or tcp://); may be called for several urls. For tcp with port 0,
 * *bound (may be NULL) gets the port the system chose. */
int bd_server_listen(bd_server *s, const char *url, int *bound);

/* What bd_server_guard_check does with a listener NNG stopped (bd_listen_opts.guard). */
enum {
    BD_GUARD_NONE = 0,  /* nothing: not probed */
    BD_GUARD_CLOSE = 1, /* closed with its connections, a new one at its address */
    BD_GUARD_KEEP = 2   /* ipc: kept open for the connections it has (their held requests
                           stay answerable; any it took while dead stay stuck), a new one
                           at its path */
};

/* How a listener listens (bd_server_listen_with). */
typedef struct {
    bd_tls *tls;          /* tls+tcp:// urls: the run's credential (its server certificate;
                             peers must present a certificate of its CA); NULL otherwise */
    int cap;              /* at most this many connections at once (0: no cap); more are
                             closed as they come, and counted with the rejected requests */
    int *bound;           /* may be NULL: the port the system chose for port 0 */
    uint32_t *listener;   /* may be NULL: the listener's key (bd_server_listener_key) */
    int guard;            /* BD_GUARD_*: probed now and then by bd_server_guard_check (the
                             tls credential must then live as long as the server) */
} bd_listen_opts;

/* Listens on url as o says (o may be NULL: as bd_server_listen). A tls+tcp:// url needs
 * o->tls, and a tcp:// one is refused when o->tls is given (no plain door beside it). */
int bd_server_listen_with(bd_server *s, const char *url, const bd_listen_opts *o);

/* The key of the listener a connection came through (nng_listener_id of
 * nng_pipe_listener): the id bd_listen_opts.listener gave, also for a connection that came
 * through a listener that replaced it at its address. */
uint32_t bd_server_listener_key(bd_server *s, uint32_t lid);

/* NNG 1.5.2 (Debian 12) stops handing a listener's connections over for good when one
 * closes during its handshake (nanomsg/nng#1518, fixed in NNG 1.6): a TLS ClientHello
 * followed by a close is enough, on any door a stranger can reach. Later connections
 * still complete their handshake and then wait forever. The guard of a listener opened
 * with bd_listen_opts.guard makes one connection to it every 2 s over its own transport
 * (the client certificate of its credential for a TLS door; a wildcard host dialled on
 * loopback), which sends its SP header and nothing else: a probe that is up and not
 * handed over within 10 s finds the listener dead. A probe is never closed while its
 * handshake may still run on the listener's side (that close is the fault itself). A dead
 * listener is replaced as its guard mode says (BD_GUARD_CLOSE, BD_GUARD_KEEP); a tcp one
 * under BD_GUARD_CLOSE, whose closed connections may be remote slots, when
 * may_close(ctx, key) says so (NULL: always), else left until it does. A new listener
 * that cannot listen (the port taken meanwhile) is tried again every 2 s. Call often from
 * the thread that takes the requests; never blocks long (closing a probe waits for its
 * callback). Returns 0 (nothing to say), 1 a listener was replaced, 2 one is dead and
 * left (said once), 3 listening again failed (said once; tried again silently); *what
 * (len bytes) then says which and why. */
int bd_server_guard_check(bd_server *s, double now, int (*may_close)(void *ctx, uint32_t key), void *ctx,
                          char *what, size_t len);

/* Closes the guard's probes and starts no more (before waiting for connections to close). */
void bd_server_guard_stop(bd_server *s);

/* Lets plain-text requests through (bd_request.text set) instead of dropping them. */
void bd_server_accept_text(bd_server *s, int yes);

/* Waits up to timeout_ms (0: do not wait) for the next request: BD_OK with *req, or
 * BD_ETIMEDOUT. */
int bd_server_next(bd_server *s, int timeout_ms, bd_request **req);

/* Answers req with msg (taken on BD_OK) and frees its context. */
int bd_server_answer(bd_server *s, bd_request *req, nng_msg *msg);

/* Answers req with a bodhi message of `type` and payload bytes (copied). */
int bd_server_answer_bytes(bd_server *s, bd_request *req, bd_msg_type type, uint32_t sender,
                           const void *payload, size_t len);

/* Drops req without an answer and frees its context. */
void bd_server_drop(bd_server *s, bd_request *req);

/* Malformed requests dropped so far; *why (may be NULL) the last one's reason. */
uint64_t bd_server_rejected(bd_server *s, char *why, size_t len);

/* The process at the other end of an ipc connection (the kernel's word: SO_PEERCRED), or 0
 * for a connection of another transport (tcp) or one that is gone. */
int bd_pipe_peer_pid(nng_pipe p);

/* The user id of an ipc connection's peer into *uid: 1, or 0 when the kernel says none (not
 * ipc, or the connection is gone). */
int bd_pipe_peer_uid(nng_pipe p, uint64_t *uid);

/* 1 while the connection is open. */
int bd_pipe_open(nng_pipe p);

/* Messages longer than bytes are refused by NNG before they are received: the connection
 * that announces one is closed and nothing of that size is allocated. Set before listening. */
int bd_server_set_recvmax(bd_server *s, size_t bytes);

/* Calls fn(ctx, pipe, added) for every connection added or removed (from NNG's threads). */
void bd_server_on_pipe(bd_server *s, void (*fn)(void *ctx, nng_pipe p, int added), void *ctx);

/* Closes every listener and context, dropping what is held; NULL-safe. */
void bd_server_close(bd_server *s);

#endif
