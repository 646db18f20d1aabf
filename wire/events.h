/* events.h: a child process (brain, muscle) and its conductor. The child holds one REQ
 * socket to the conductor's control socket with two contexts: one for events, sent from
 * the child's own thread, and one for heartbeats, sent every `interval` from a thread of
 * their own, so a child that is alive beats even while it computes for minutes, and one
 * that is stopped (SIGSTOP) or gone does not. Each message is answered: an event's answer
 * says it arrived (a PUSH could be lost when its process exits right after) and may carry
 * the conductor's word (a brain's round report is answered with whether the phase goes
 * on); a heartbeat's answer may carry news for the child. Messages are JSON objects
 * carrying "event" (their kind) and whatever fields the sender adds. */
#ifndef BODHI_WIRE_EVENTS_H
#define BODHI_WIRE_EVENTS_H

#include <signal.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "bodhi/bodhi.h"
#include "wire/tls.h"
#include "wire/wire.h"

typedef struct bd_events bd_events;

/* Dials url (non-blocking; reconnects in the background, so start order does not matter).
 * sender identifies the child in every header. */
int bd_events_dial(const char *url, uint32_t sender, bd_events **out);

/* The same through TLS with the run's credential (a remote muscle; url is tls+tcp://);
 * tls stays the caller's and must outlive the connection. */
int bd_events_dial_tls(const char *url, uint32_t sender, bd_tls *tls, bd_events **out);

/* Sends obj as JSON text (obj stays the caller's) and waits up to the timeout (10 s unless
 * set) for the answer. *reply (may be NULL) gets the answer's JSON object, or NULL when it
 * carried none; the caller deletes it. BD_ETIMEDOUT when no answer came. */
int bd_events_send(bd_events *ev, const cJSON *obj, cJSON **reply);

/* The same for a message of another type (JOIN). */
int bd_events_request(bd_events *ev, bd_msg_type type, const cJSON *obj, cJSON **reply);

/* The longest answer taken (bytes; NNG closes a connection that announces a longer one
 * before anything of that size is allocated). 64 MiB unless set: the largest answer is a
 * JOIN's, which carries the effective run file; a local child's answers are small. */
void bd_events_set_recvmax(bd_events *ev, size_t bytes);

/* The most a local child's answers carry: a round's admissions, the muscles lost. */
#define BD_EVENTS_CHILD_RECVMAX ((size_t)1 << 20)

/* How long a send waits for its answer (ms; < 0: no limit; 10 s unless set). A heartbeat
 * waits 5 s for its own. */
void bd_events_set_timeout(bd_events *ev, int ms);

/* A flag (a signal handler's) whose setting cancels an event's wait (the send then fails);
 * NULL: none. Heartbeats do not look at it. */
void bd_events_set_stop(bd_events *ev, const volatile sig_atomic_t *stop);

/* Starts the heartbeat thread: every interval_ms it sends what beat(ctx) returns (a new
 * JSON object; NULL: {"event": "beat"}) and passes any answer's JSON to heard(ctx, json)
 * (may be NULL). Both run on the heartbeat thread. */
int bd_events_beat(bd_events *ev, int interval_ms, cJSON *(*beat)(void *ctx),
                   void (*heard)(void *ctx, const cJSON *answer), void *ctx);

/* When the conductor last answered a heartbeat (bd_now's clock), 0 before the first. Read
 * it from the heartbeat thread (beat or heard), which writes it. */
double bd_events_beat_ok(const bd_events *ev);

/* 1 while a connection to the conductor is open (a stopped conductor keeps its
 * connections; a killed one, or its machine's restart, closes them). */
int bd_events_connected(bd_events *ev);

/* A grant's number (wire/tls.h) as a JOIN answer, a heartbeat or the conductor's news
 * carry it: 1 with *out when x is a whole number in 1 .. 2^32 - 1, else 0. */
int bd_events_grant_number(const cJSON *x, uint32_t *out);

/* Stops the heartbeat thread and closes the socket; NULL-safe. */
void bd_events_close(bd_events *ev);

#endif
