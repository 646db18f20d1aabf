/* dispatch.c: the control socket and the --listen door (see run.h): what arrives is
 * checked against its connection and its door and handed to its handler; answers go back
 * on the server it came on. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "conductor/run.h"
#include "wire/addr.h"
#include "wire/events.h"
#include "wire/wire.h"

/* The server of the request being handled (the control socket, or the --listen door). */
bd_server *bd_from(const bd_conductor *c)
{
    return c->from ? c->from : c->hub;
}

void bd_answer_json(bd_conductor *c, bd_request *req, bd_msg_type type, const cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    bd_server_answer_bytes(bd_from(c), req, type, 0, text, text ? strlen(text) : 0);
    free(text);
}

static cJSON *bd_status_json(bd_conductor *c, const char *status)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "uid", c->rf->uid);
    cJSON_AddStringToObject(s, "status", status);
    cJSON_AddNumberToObject(s, "pid", getpid());
    cJSON_AddNumberToObject(s, "wall_s", bd_now() - c->t0);
    if (c->phase)
        cJSON_AddStringToObject(s, "phase", c->phase);
    bd_journal_rank(s); /* one rank of many, as summary.json says */
    cJSON_AddItemToObject(s, "processes", bd_procs_json(&c->procs, bd_now()));
    cJSON *ag = cJSON_AddArrayToObject(s, "agents");
    for (int i = 0; i < c->nagents; i++)
        if (c->agents[i].last_update)
            cJSON_AddItemToArray(ag, cJSON_Duplicate(c->agents[i].last_update, 1));
    return s;
}

/* The slot a message's sender names (wire.h: brains send as BD_SENDER_BRAIN + agent index,
 * muscles as their id). */
bd_proc *bd_sender(bd_conductor *c, uint32_t sender)
{
    if (sender >= BD_SENDER_JOINING)
        return NULL;
    return sender >= BD_SENDER_BRAIN ? bd_procs_brain(&c->procs, (int)(sender - BD_SENDER_BRAIN))
                                     : bd_procs_muscle(&c->procs, (int)sender);
}

/* 1 when the message comes from the process now in slot p: a remote muscle's pid must be
 * the one that joined (an older one, lost, may still speak), with the grant that JOIN got
 * (a pid is the peer's word, and STATUS names it). */
static int bd_current(const bd_proc *p, const cJSON *o)
{
    if (!p || !p->alive)
        return 0;
    if (!p->remote)
        return 1;
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(o, "pid");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(o, "epoch");
    const cJSON *grant = cJSON_GetObjectItemCaseSensitive(o, "grant");
    uint8_t said[sizeof p->grant], diff = 0;
    uint32_t number;
    if (!cJSON_IsNumber(pid) || pid->valuedouble != (double)p->pid || !bd_events_grant_number(epoch, &number)
        || number != p->epoch || !cJSON_IsString(grant)
        || !bd_unhex(grant->valuestring, said, sizeof said))
        return 0;
    for (size_t i = 0; i < sizeof said; i++)
        diff |= (uint8_t)(said[i] ^ p->grant[i]);
    return diff == 0;
}

/* 1 when the message came on the connection of the process now in slot p. A sender id is
 * whatever a message says; the connection is not: a local child is the process the kernel
 * names at the other end of its ipc connection (the pid it was started with; a connection
 * it makes again is its own too), a remote muscle the connection its first message after
 * its JOIN came on. A new process in the slot binds anew. */
static int bd_owner(bd_proc *p, const bd_request *req, const cJSON *o)
{
    if (!p || !p->alive)
        return 0;
    const uint32_t id = (uint32_t)nng_pipe_id(req->pipe);
    if (p->pipe == id)
        return 1;
    const int peer = bd_pipe_peer_pid(req->pipe);
    if (!p->remote ? peer <= 0 || peer != (int)p->pid : p->pipe || peer > 0 || !bd_current(p, o))
        return 0;
    p->pipe = id;
    return 1;
}

/* Drops a well-formed message the conductor does not take (why), counting it: one from a
 * connection that does not own its sender id, or that came on the wrong socket. */
void bd_refuse(bd_conductor *c, bd_request *req, const char *why)
{
    c->refused++;
    snprintf(c->refused_why, sizeof c->refused_why, "%s (sender %u, type %u)", why, req->h.sender, req->h.type);
    bd_server_drop(bd_from(c), req);
}

static void bd_handle_event(bd_conductor *c, bd_request *req)
{
    cJSON *o = cJSON_ParseWithLength((const char *)req->payload, (size_t)req->h.payload_len);
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "event");
    if (!cJSON_IsObject(o) || !cJSON_IsString(kind)) {
        cJSON_Delete(o);
        bd_server_drop(bd_from(c), req);
        return;
    }
    bd_proc *p = bd_sender(c, req->h.sender);
    if (!bd_owner(p, req, o)) {
        char what[128];
        snprintf(what, sizeof what, "a '%.64s' event from a connection that is not its sender's", kind->valuestring);
        cJSON_Delete(o);
        bd_refuse(c, req, what);
        return;
    }
    /* a brain speaks for its own agent alone */
    bd_agent_state *a = p->role == BD_ROLE_BRAIN && p->index < c->nagents ? &c->agents[p->index] : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (cJSON_IsString(err)) {
        snprintf(p->error, sizeof p->error, "%s", err->valuestring);
        if (p->remote) /* another machine's word, printed on the terminal */
            bd_text_printable(p->error);
    }
    cJSON_AddNumberToObject(o, "sender", req->h.sender);
    if (strcmp(kind->valuestring, "startup") == 0)
        bd_startup_since(c, o);
    cJSON_DeleteItemFromObjectCaseSensitive(o, "grant"); /* the slot's, not for whoever reads the log */
    bd_log(c, o);
    if (strcmp(kind->valuestring, "ready") == 0 && a) {
        a->ready = 1;
        a->port = (int)bd_num(o, "port", 0);
    }
    if (p->remote && (strcmp(kind->valuestring, "leaving") == 0 || strcmp(kind->valuestring, "error") == 0))
        bd_remote_left(c, p, cJSON_IsString(err) ? p->error : "its phase is over");
    if (p->remote && strcmp(kind->valuestring, "ready") == 0)
        p->greeted = 1;
    if (strcmp(kind->valuestring, "update") == 0 && a && !a->held) {
        bd_journal_tb(c, a, o);
        if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "greedy_return"))) {
            a->greedy = bd_num(o, "greedy_return", 0);
            a->has_greedy = 1;
        }
        cJSON_Delete(a->last_update);
        a->last_update = o;
        a->held = req; /* answered by bd_barrier */
        bd_progress(c, a, 0);
        bd_barrier(c);
        return;
    }
    if (strcmp(kind->valuestring, "result") == 0 && a) {
        cJSON_Delete(a->result);
        a->result = o;
        bd_rank_stop(c, a);
        bd_progress(c, a, 1);
        o = NULL;
    }
    bd_server_answer_bytes(bd_from(c), req, BD_MSG_EVENT, 0, NULL, 0);
    cJSON_Delete(o);
}

/* A heartbeat: the slot lives. A brain hears each remote slot's newest grant taken back
 * (its muscle lost); a remote muscle that is no longer its slot's hears that it should go. */
static void bd_handle_beat(bd_conductor *c, bd_request *req)
{
    bd_proc *p = bd_sender(c, req->h.sender);
    cJSON *o = cJSON_ParseWithLength((const char *)req->payload, (size_t)req->h.payload_len);
    cJSON *answer = NULL;
    if (!bd_owner(p, req, o)) {
        if (!p || !p->remote) { /* a beat that would hide a hung process: dropped */
            cJSON_Delete(o);
            bd_refuse(c, req, "a heartbeat from a connection that is not its sender's");
            return;
        }
        /* a remote muscle that is no longer its slot's (it was lost) hears that it should go */
        c->refused++;
        snprintf(c->refused_why, sizeof c->refused_why, "a heartbeat from a connection that is not sender %u's",
                 req->h.sender);
        answer = cJSON_CreateObject();
        cJSON_AddBoolToObject(answer, "exit", 1);
    } else {
        p->last_beat = bd_now();
        p->round = (long long)bd_num(o, "round", (double)p->round);
        bd_agent_state *a = p->role == BD_ROLE_BRAIN && p->index < c->nagents ? &c->agents[p->index] : NULL;
        /* every remote slot's newest grant taken back, each time: nothing to lose on the way */
        for (int i = 0; a && i < c->procs.n; i++) {
            const bd_proc *q = &c->procs.p[i];
            if (!q->remote || !q->revoked)
                continue;
            if (!answer)
                answer = cJSON_CreateObject();
            cJSON *list = cJSON_GetObjectItemCaseSensitive(answer, "revoked");
            if (!list)
                list = cJSON_AddArrayToObject(answer, "revoked");
            cJSON *x = cJSON_CreateArray();
            cJSON_AddItemToArray(x, cJSON_CreateNumber(q->index));
            cJSON_AddItemToArray(x, cJSON_CreateNumber(q->revoked));
            cJSON_AddItemToArray(list, x);
        }
    }
    cJSON_Delete(o);
    bd_answer_json(c, req, BD_MSG_BEAT, answer);
    cJSON_Delete(answer);
}

static void bd_handle(bd_conductor *c, bd_request *req)
{
    if (!bd_door_checks(c, req))
        return;
    if (req->text) { /* nngcat --req --dial ... --data status */
        cJSON *s = bd_status_json(c, "running");
        char *text = cJSON_PrintUnformatted(s);
        nng_msg *m;
        if (text && nng_msg_alloc(&m, 0) == 0) {
            nng_msg_append(m, text, strlen(text));
            if (bd_server_answer(bd_from(c), req, m) != BD_OK)
                nng_msg_free(m);
        } else {
            bd_server_drop(bd_from(c), req);
        }
        free(text);
        cJSON_Delete(s);
        return;
    }
    switch (req->h.type) {
    case BD_MSG_EVENT:
        bd_handle_event(c, req);
        break;
    case BD_MSG_BEAT:
        bd_handle_beat(c, req);
        break;
    case BD_MSG_JOIN:
        bd_handle_join(c, req);
        break;
    case BD_MSG_STEER:
        bd_handle_steer(c, req);
        break;
    case BD_MSG_STATUS: {
        cJSON *s = bd_status_json(c, "running");
        bd_answer_json(c, req, BD_MSG_STATUS, s);
        cJSON_Delete(s);
        break;
    }
    default:
        bd_server_drop(bd_from(c), req);
    }
}

/* A dead --listen door (wire/serve.h, bd_server_guard_check) is replaced, which closes the
 * connections it has, when a remote slot waits for a muscle or none is held: a new
 * connection is needed then, and nothing else can bring it. */
static int bd_door_may_close(void *ctx, uint32_t key)
{
    (void)key;
    bd_conductor *c = ctx;
    int held = 0, waiting = 0;
    for (int i = 0; i < c->procs.n; i++)
        if (c->procs.p[i].remote) {
            held += c->procs.p[i].alive;
            waiting += !c->procs.p[i].alive;
        }
    return waiting > 0 || held == 0;
}

/* NNG 1.5.2 stops a listener for good when a connection closes during its handshake: the
 * guard of the control socket and of the door finds it and listens again (wire/serve.h);
 * log.jsonl says so. */
static void bd_guard_listeners(bd_conductor *c)
{
    for (int k = 0; k < 2; k++) {
        bd_server *s = k == 0 ? c->hub : c->door;
        char what[512];
        int g = s ? bd_server_guard_check(s, bd_now(), k == 0 ? NULL : bd_door_may_close, c, what, sizeof what) : 0;
        if (!g)
            continue;
        cJSON *o = bd_ev(g == 2 ? "door_stalled" : "relistened");
        cJSON_AddStringToObject(o, "listener", k == 0 ? "control" : "door");
        cJSON_AddStringToObject(o, g == 3 ? "error" : "reason", what);
        bd_log(c, o);
        cJSON_Delete(o);
        if (!c->o->quiet && k == 1)
            fprintf(stderr, "bodhi: the --listen door %s\n", what);
    }
}

/* Everything the control socket and the --listen door hold, waiting up to ms for the
 * control socket's first. */
void bd_serve(bd_conductor *c, int ms)
{
    bd_guard_listeners(c);
    bd_request *req;
    c->from = c->hub;
    if (bd_server_next(c->hub, ms, &req) == BD_OK)
        bd_handle(c, req);
    while (bd_server_next(c->hub, 0, &req) == BD_OK)
        bd_handle(c, req);
    c->from = c->door;
    while (c->door && bd_server_next(c->door, 0, &req) == BD_OK)
        bd_handle(c, req);
    c->from = NULL;
}

/* The control socket, with room to hold every child's messages at once. */
int bd_open_hub(bd_conductor *c)
{
    int most = 0;
    for (int i = 0; i < c->rf->nphases; i++) {
        const bd_phase_cfg *ph = &c->rf->phases[i];
        int n = ph->nagents + ph->worker + ph->remote_worker;
        most = n > most ? n : most;
    }
    int rc = bd_server_open(3 * most + 16, &c->hub);
    if (rc != BD_OK)
        return rc;
    bd_server_accept_text(c->hub, 1);
    /* the longest message a child sends: an event (a round's report names the muscles
     * waiting for admission; an error names what failed); NNG refuses longer ones unread */
    if ((rc = bd_server_set_recvmax(c->hub, 65536 + 64 * (size_t)most)) != BD_OK)
        return rc;
    char *url = bd_url_control(c->sockdir);
    /* a replaced control socket keeps the connections it has: a brain's report held at the
     * round's barrier stays answerable (a REQ whose connection closes loses its request) */
    bd_listen_opts lo = {.guard = BD_GUARD_KEEP};
    rc = url ? bd_server_listen_with(c->hub, url, &lo) : bd_seterr(BD_ENOMEM, "out of memory");
    free(url);
    return rc == BD_OK && c->o->listen ? bd_open_door(c) : rc;
}
