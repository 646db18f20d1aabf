/* round.h: the gather-and-answer round over NNG REQ/REP, with membership.
 *
 * A server (a brain) expects `peers` clients (muscles) with ids 0..peers-1, the `sender`
 * of their messages. A peer first greets (a request of the greeting type, HELLO): the
 * caller answers it at once and the peer is `ready`. The caller admits ready peers, which
 * makes them `active`; from then on each sends one request per round (ROLLOUT, with
 * sequence numbers 1, 2, ... after its greeting's). bd_round_gather waits until every
 * active peer's request of the round is held; the caller works on the set and answers
 * each. Admission is the caller's, between gathers, so that several servers that serve
 * the same peers (one brain per agent) can agree on who takes part in which round.
 *
 * A peer whose connection closes (its process died) or that the caller declares lost
 * drops out: its held request is dropped and it must greet again. A request from a peer
 * that is not active (it greeted but waits for admission) is held for its first round. A
 * request with the wrong sequence number, from an unknown sender, from another connection
 * than the peer greeted on, or of another type is dropped and counted; a malformed message
 * is dropped by the server (wire/serve.h). Nothing a peer sends can crash or stall a
 * gather beyond the peer's own absence.
 *
 * A sender id belongs to the connection it greeted on: a greeting with the id of a peer
 * whose connection is still open is refused (and the greeter's connection closed), so a
 * stranger cannot take a live peer's place; a peer whose connection closed (it restarted)
 * may greet again from a new one. The greet hook decides who may greet as which id at all
 * (a brain: local muscles from processes of the run over ipc, remote ones over TCP).
 * Greetings it turns down and requests from a connection that does not own their sender
 * id are counted as refused.
 *
 * One thread drives a round. A gather looks at a stop flag every 200 ms. */
#ifndef BODHI_WIRE_ROUND_H
#define BODHI_WIRE_ROUND_H

#include <signal.h>

#include "wire/serve.h"

typedef struct bd_round bd_round;

typedef enum { BD_PEER_ABSENT, BD_PEER_READY, BD_PEER_ACTIVE } bd_peer_state;

/* What the caller does while a round waits. greet is called for a peer's greeting: it
 * answers req (bd_server_answer*) and returns BD_OK to make the peer ready, or returns an
 * error to drop the greeting unanswered; `again` is 1 when the peer greeted before (it
 * restarted). tick (may be NULL) is called about every 200 ms, and before what came while
 * the round was not waited on, e.g. to bd_round_lose a peer that someone else knows to be
 * lost. last (may be NULL; bd_round_drain only) makes the final answer to a peer's
 * request into *out (the caller's last word, e.g. a stop). */
typedef struct {
    int (*greet)(void *ctx, int peer, bd_request *req, int again);
    void (*tick)(void *ctx);
    void *ctx;
    int (*last)(void *ctx, int peer, nng_msg **out);
    /* supersedes (may be NULL): 1 when req, a greeting as peer k while k's own connection
     * is still open, may take k's place (that connection is closed), else 0 (it is refused) */
    int (*supersedes)(void *ctx, int peer, bd_request *req);
} bd_round_hooks;

/* Opens a round for `peers` peers whose greetings are of type greet and whose round
 * requests are of type request. */
int bd_round_open(int peers, bd_msg_type greet, bd_msg_type request, bd_round **out);

/* The longest request taken (bytes; set before listening): wire/serve.h. */
int bd_round_set_recvmax(bd_round *r, size_t bytes);

/* Listens on url (several calls for several urls); for tcp port 0, *bound gets the port. */
int bd_round_listen(bd_round *r, const char *url, int *bound);

/* Listens on url as a door of its own for peers first .. first + count - 1 only: a greeting
 * of another peer through it, or of one of them through another such door, is dropped and
 * counted (local muscles on ipc, remote ones on TLS: a remote peer never takes a local
 * slot). o as for bd_server_listen_with (TLS, a connection cap, the bound port). */
int bd_round_listen_for(bd_round *r, const char *url, int first, int count, const bd_listen_opts *o);

/* Handles what arrives (greetings through fn) until every peer is at least ready, or
 * *stop: BD_EINTR. */
int bd_round_await_all(bd_round *r, const bd_round_hooks *h, const volatile sig_atomic_t *stop);

/* Handles what arrives until every active peer's request is held and at least one is,
 * or *stop (BD_EINTR). Greetings go through fn as they come. */
int bd_round_gather(bd_round *r, const bd_round_hooks *h, const volatile sig_atomic_t *stop);

bd_peer_state bd_round_state(const bd_round *r, int peer);

/* Makes a ready peer active (its held request, if any, counts in the next gather). */
void bd_round_admit(bd_round *r, int peer);

/* Drops a peer (the caller was told it is lost): closes its connection, drops what it holds. */
void bd_round_lose(bd_round *r, int peer);

/* The active peer's held request of this round, or NULL. */
bd_request *bd_round_request(const bd_round *r, int peer);

/* Answers a greeting (from the greet hook) with msg (taken on BD_OK). */
int bd_round_reply(bd_round *r, bd_request *req, nng_msg *msg);

/* Answers the active peer's held request with msg (taken on BD_OK). */
int bd_round_answer(bd_round *r, int peer, nng_msg *msg);

/* Requests dropped so far (wrong sequence, stranger, wrong type, malformed); *why (may be
 * NULL) the last reason. */
uint64_t bd_round_dropped(bd_round *r, char *why, size_t len);

/* Of the dropped requests, those refused for their connection (another's sender id, a
 * greeting the greet hook turned down); *why (may be NULL) the last reason. */
/* Listeners its server's guard replaced (bd_server_guard_check), *why (may be NULL) the
 * last one's account. */
uint64_t bd_round_relistened(bd_round *r, char *why, size_t len);

uint64_t bd_round_refused(bd_round *r, char *why, size_t len);

/* Waits up to `seconds` (or until *stop) for every peer to hang up: an answer still queued
 * in a connection is dropped when its socket closes. */
void bd_round_wait_hangup(bd_round *r, double seconds, const volatile sig_atomic_t *stop);

/* After the last round, until every peer has hung up, `seconds` pass or *stop: greetings
 * go through h->greet as they come, and every request a peer holds or sends (ready peers
 * too, which the last round did not answer) is answered with h->last's message, so that
 * no peer is left waiting for an answer that never comes while holding its connection
 * open. h NULL: only waits (bd_round_wait_hangup). Returns how many connections were
 * still open when it stopped waiting (0: every peer hung up). */
int bd_round_drain(bd_round *r, const bd_round_hooks *h, double seconds, const volatile sig_atomic_t *stop);

/* Closes the socket and frees; NULL-safe. */
void bd_round_close(bd_round *r);

#endif
