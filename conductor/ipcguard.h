/* ipcguard.h: noticing that NNG stopped an ipc listener.
 *
 * In Debian 12's NNG 1.5.2 a connection to an ipc socket that closes during NNG's own
 * handshake (a bare connect(), raw bytes) stops that listener for good (nanomsg/nng#1518,
 * fixed in NNG 1.6): measured here, later connections still complete the transport's
 * handshake, but the socket never gets them, so no request is answered. The guard dials
 * the listener's URL now and then from a REQ socket of its own and asks "status" (text,
 * which the owner answers like any status query); no answer within the window means the
 * listener no longer hands connections over, and its owner listens again. A probe socket is
 * closed only after its answer came, or when its window passed (the listener is
 * dead, or stopped by that close and listened again at once). Runs on its owner's thread,
 * never blocking. */
#ifndef BODHI_CONDUCTOR_IPCGUARD_H
#define BODHI_CONDUCTOR_IPCGUARD_H

typedef struct bd_ipc_guard bd_ipc_guard;

/* A guard of the ipc listener at url (ipc://PATH): a probe every every_s seconds, each
 * given window_s to connect. BD_ENOMEM. */
int bd_ipc_guard_create(const char *url, double every_s, double window_s, bd_ipc_guard **out);

/* Called often from the owner's loop with bd_now(): 1 when the listener did not accept the
 * current probe within the window (the owner removes the socket file and listens again at
 * once), else 0. After a 1 the next call starts a probe of the new listener. */
int bd_ipc_guard_check(bd_ipc_guard *g, double now);

/* The path of the socket file (for unlinking the dead listener's before listening again). */
const char *bd_ipc_guard_path(const bd_ipc_guard *g);

void bd_ipc_guard_destroy(bd_ipc_guard *g); /* NULL-safe */

#endif
