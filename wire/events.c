/* events.c: the event channel (see events.h): REQ/REP so every event is acknowledged. */
#include "wire/events.h"

#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "wire/wire.h"

struct bd_events {
    nng_socket sock;
    uint32_t sender;
    uint32_t seq;
};

int bd_events_dial(const char *url, uint32_t sender, bd_events **out)
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
    nng_socket_set_ms(ev->sock, NNG_OPT_SENDTIMEO, 10000);
    nng_socket_set_ms(ev->sock, NNG_OPT_RECVTIMEO, 10000);
    nng_socket_set_ms(ev->sock, NNG_OPT_RECONNMINT, 10);
    nng_socket_set_ms(ev->sock, NNG_OPT_RECONNMAXT, 200);
    rv = nng_dial(ev->sock, url, NULL, NNG_FLAG_NONBLOCK);
    if (rv != 0) {
        nng_close(ev->sock);
        free(ev);
        return bd_nng_err(rv, url);
    }
    ev->sender = sender;
    *out = ev;
    return BD_OK;
}

int bd_events_listen(const char *url, bd_events **out)
{
    *out = NULL;
    bd_events *ev = calloc(1, sizeof *ev);
    if (!ev)
        return bd_seterr(BD_ENOMEM, "events: out of memory");
    int rv = nng_rep0_open(&ev->sock);
    if (rv == 0)
        rv = nng_listen(ev->sock, url, NULL, 0);
    if (rv != 0) {
        nng_close(ev->sock);
        free(ev);
        return bd_nng_err(rv, url);
    }
    *out = ev;
    return BD_OK;
}

int bd_events_send(bd_events *ev, const cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    if (!text)
        return bd_seterr(BD_ENOMEM, "events: cannot format JSON");
    size_t len = strlen(text);
    nng_msg *m;
    uint8_t *payload;
    int rc = bd_wire_msg_alloc(&m, BD_MSG_EVENT, ev->sender, ev->seq++, len, &payload);
    if (rc == BD_OK) {
        memcpy(payload, text, len);
        int rv = nng_sendmsg(ev->sock, m, 0);
        if (rv != 0) {
            nng_msg_free(m);
            rc = bd_nng_err(rv, "events: send");
        } else {
            nng_msg *ack; /* the conductor's acknowledgement: the event was received */
            rv = nng_recvmsg(ev->sock, &ack, 0);
            if (rv != 0)
                rc = bd_nng_err(rv, "events: no acknowledgement from the conductor");
            else
                nng_msg_free(ack);
        }
    }
    free(text);
    return rc;
}

int bd_events_recv(bd_events *ev, int timeout_ms, cJSON **obj, uint32_t *sender)
{
    *obj = NULL;
    nng_socket_set_ms(ev->sock, NNG_OPT_RECVTIMEO, timeout_ms);
    nng_msg *m;
    int rv = nng_recvmsg(ev->sock, &m, 0);
    if (rv != 0)
        return bd_nng_err(rv, "events: recv");
    bd_wire_header h = {0};
    const uint8_t *payload;
    int rc = bd_wire_msg_decode(m, BD_MSG_EVENT, &h, &payload);
    if (rc == BD_OK) {
        *obj = cJSON_ParseWithLength((const char *)payload, (size_t)h.payload_len);
        if (!*obj || !cJSON_IsObject(*obj)) {
            cJSON_Delete(*obj);
            *obj = NULL;
            rc = bd_seterr(BD_EPROTO, "event from sender %u is not a JSON object", h.sender);
        }
        if (sender)
            *sender = h.sender;
    }
    /* Acknowledge (even a malformed event, so the sender is not left waiting). */
    nng_msg_clear(m);
    nng_msg_free(m);
    nng_msg *ack;
    uint8_t *unused;
    if (bd_wire_msg_alloc(&ack, BD_MSG_EVENT, 0, h.seq, 0, &unused) == BD_OK
        && nng_sendmsg(ev->sock, ack, 0) != 0)
        nng_msg_free(ack);
    return rc;
}

void bd_events_close(bd_events *ev)
{
    if (!ev)
        return;
    nng_close(ev->sock);
    free(ev);
}
