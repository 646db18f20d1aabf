/* call.h: waiting on an NNG asynchronous operation without giving up the caller's ability
 * to stop: the wait looks at a flag (a signal handler's) every 200 ms and cancels the
 * operation when it is set or a deadline passes. A REQ socket's receive with a plain
 * timeout would abandon its request; this keeps it until the caller decides. */
#ifndef BODHI_WIRE_CALL_H
#define BODHI_WIRE_CALL_H

#include <signal.h>
#include <time.h>

#include <nng/nng.h>

#include "bodhi/bodhi.h"

typedef struct bd_call bd_call;

/* An operation slot (an aio and what it waits with). */
int bd_call_open(bd_call **out);
void bd_call_close(bd_call *c); /* NULL-safe; cancels what is in flight */

/* Starts sending msg on ctx (msg is taken when the send completes; see bd_call_wait). */
void bd_call_send(bd_call *c, nng_ctx ctx, nng_msg *msg);

/* Starts receiving on ctx. */
void bd_call_recv(bd_call *c, nng_ctx ctx);

/* Waits for the operation started last: BD_OK (a receive's message in *msg, the caller's),
 * or its error; BD_EINTR when *stop was set, BD_ETIMEDOUT past timeout_ms (< 0: none). A
 * send that failed gives its message back to nobody: it is freed. */
int bd_call_wait(bd_call *c, int timeout_ms, const volatile sig_atomic_t *stop, nng_msg **msg);

/* bd_call_wait, with what (NULL: none) before each error message: "what: no answer in
 * 300 ms", "what: stopped by a signal", "what: <NNG's error>". */
int bd_call_wait_as(bd_call *c, int timeout_ms, const volatile sig_atomic_t *stop, nng_msg **msg,
                    const char *what);

#endif
