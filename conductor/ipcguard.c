/* ipcguard.c: noticing that NNG stopped an ipc listener (see ipcguard.h). */
#include "conductor/ipcguard.h"

#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/util.h"

struct bd_ipc_guard {
    char *url;
    double every, window;
    nng_socket probe;
    int open;                 /* a probe is dialing, asking or waiting */
    int sent;                 /* its request went out */
    double since;             /* when the probe's window started */
    double next;              /* when the next probe starts */
};

int bd_ipc_guard_create(const char *url, double every_s, double window_s, bd_ipc_guard **out)
{
    *out = NULL;
    bd_ipc_guard *g = calloc(1, sizeof *g);
    if (!g || !(g->url = bd_strdup(url))) {
        free(g);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    g->every = every_s;
    g->window = window_s;
    g->next = bd_now() + every_s;
    *out = g;
    return BD_OK;
}

static void bd_ipc_guard_close_probe(bd_ipc_guard *g)
{
    if (g->open)
        nng_close(g->probe);
    g->open = 0;
}

int bd_ipc_guard_check(bd_ipc_guard *g, double now)
{
    if (!g)
        return 0;
    if (!g->open) {
        if (now < g->next)
            return 0;
        g->sent = 0;
        if (nng_req0_open(&g->probe) != 0)
            return 0; /* no probe this time */
        g->open = 1;
        nng_socket_set_ms(g->probe, NNG_OPT_RECONNMINT, 100);
        nng_socket_set_ms(g->probe, NNG_OPT_RECONNMAXT, 500);
        nng_socket_set_ms(g->probe, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        if (nng_dial(g->probe, g->url, NULL, NNG_FLAG_NONBLOCK) != 0) {
            bd_ipc_guard_close_probe(g);
            g->next = now + g->every;
            return 0;
        }
        g->since = now;
        return 0;
    }
    /* "status" as text, which the owner answers on its own thread between two checks */
    if (!g->sent && nng_send(g->probe, "status", 6, NNG_FLAG_NONBLOCK) == 0)
        g->sent = 1;
    void *buf = NULL;
    size_t len = 0;
    if (g->sent && nng_recv(g->probe, &buf, &len, NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK) == 0) {
        nng_free(buf, len); /* answered: closing is harmless */
        bd_ipc_guard_close_probe(g);
        g->next = now + g->every;
        return 0;
    }
    if (now - g->since <= g->window)
        return 0;
    /* The listener is dead (or so slow that closing the probe now stops it): the owner
     * listens again at once, and the next probe checks the new listener. */
    bd_ipc_guard_close_probe(g);
    g->next = now;
    return 1;
}

const char *bd_ipc_guard_path(const bd_ipc_guard *g)
{
    return g && strncmp(g->url, "ipc://", 6) == 0 ? g->url + 6 : NULL;
}

void bd_ipc_guard_destroy(bd_ipc_guard *g)
{
    if (!g)
        return;
    bd_ipc_guard_close_probe(g);
    free(g->url);
    free(g);
}
