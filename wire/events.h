/* events.h: children (brains, muscles) tell the conductor what happens, as JSON objects
 * over an NNG REQ/REP pair at ipc://<run dir>/events: the conductor acknowledges each
 * event, so a sender knows it arrived (a PUSH could be lost when its process exits right
 * after). A child dials in the background, so start order does not matter. Each event object carries "event" (its kind) and whatever fields the
 * sender adds; the conductor stamps the time and writes it to log.jsonl. */
#ifndef BODHI_WIRE_EVENTS_H
#define BODHI_WIRE_EVENTS_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "bodhi/bodhi.h"

typedef struct bd_events bd_events;

/* Child side: dial url (non-blocking, reconnects in the background). */
int bd_events_dial(const char *url, uint32_t sender, bd_events **out);

/* Conductor side: listen on url. */
int bd_events_listen(const char *url, bd_events **out);

/* Sends obj as JSON text (obj stays the caller's) and waits for the acknowledgement
 * (up to 10 s each way). Call from one thread at a time. */
int bd_events_send(bd_events *ev, const cJSON *obj);

/* Receives one event: *obj is the caller's (cJSON_Delete). BD_ETIMEDOUT after timeout_ms;
 * BD_EPROTO for a malformed message (which is consumed). */
int bd_events_recv(bd_events *ev, int timeout_ms, cJSON **obj, uint32_t *sender);

void bd_events_close(bd_events *ev); /* NULL-safe */

#endif
