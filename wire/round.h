/* round.h: the gather-and-answer round over NNG REQ/REP. A server listens for `peers`
 * clients (REQ sockets), holds one request from each at once (one REP context per peer),
 * and answers them all together once it has worked on the whole set: a brain gathers one
 * rollout from every muscle, learns, and answers each with the new weights.
 *
 * Receives complete in NNG's threads; the caller's thread waits on a condition variable
 * and looks at a stop flag every 200 ms, so a signal handler that sets the flag ends a
 * gather promptly. One thread drives a round at a time. */
#ifndef BODHI_WIRE_ROUND_H
#define BODHI_WIRE_ROUND_H

#include <signal.h>

#include <nng/nng.h>

#include "bodhi/bodhi.h"

typedef struct bd_round bd_round;

/* Listens on url for `peers` clients. Errors: BD_ENNG naming the url, BD_ENOMEM. */
int bd_round_listen(const char *url, int peers, bd_round **out);

/* Waits until a request from every peer is held, or until *stop (may be NULL) is set:
 * then BD_EINTR, and the requests held so far are kept (bd_round_release frees them).
 * A receive that fails gives its error (BD_ECLOSED, BD_ENNG). */
int bd_round_gather(bd_round *r, const volatile sig_atomic_t *stop);

/* The request held in slot i (0 <= i < peers), or NULL. Owned by the round until
 * bd_round_release. */
nng_msg *bd_round_request(const bd_round *r, int i);

/* Answers the request in slot i with msg: the round takes msg when it returns BD_OK. */
int bd_round_answer(bd_round *r, int i, nng_msg *msg);

/* Frees the requests held (after answering them, or to drop them). */
void bd_round_release(bd_round *r);

/* Waits up to `seconds` (or until *stop) for every peer to hang up: an answer still
 * queued in a pipe is dropped when its socket closes. */
void bd_round_wait_hangup(bd_round *r, double seconds, const volatile sig_atomic_t *stop);

/* Closes the socket and frees; NULL-safe. */
void bd_round_close(bd_round *r);

#endif
