/* join.c: the remote muscles (see run.h and docs/architecture.md, "Remote muscles"): the
 * --listen door (mutual TLS with the run's credential), JOIN and its slots, the squat list
 * of peers that joined and did not take part, and the credential itself. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "conductor/run.h"
#include "wire/tls.h"
#include "wire/wire.h"

_Static_assert(sizeof(((bd_proc *)0)->grant) == BD_TLS_GRANT_SIZE, "a slot keeps one grant");

/* A remote muscle left its slot (it said so, failed, or went silent): its grant is taken
 * back, so the brains drop it (a newer grant in the slot is spared) and refuse it, and
 * the slot waits for another JOIN. */
void bd_remote_left(bd_conductor *c, bd_proc *p, const char *why)
{
    if (!p->alive)
        return;
    p->alive = 0;
    p->free_since = bd_now();
    p->revoked = p->epoch;
    cJSON *o = bd_proc_ev(c, "left", p);
    cJSON_AddNumberToObject(o, "pid", p->pid);
    cJSON_AddStringToObject(o, "host", p->host);
    cJSON_AddStringToObject(o, "reason", why);
    bd_log(c, o);
    cJSON_Delete(o);
    if (!c->o->quiet && !c->stopping)
        fprintf(stderr, "bodhi: remote muscle %s on %s left (%s); its slot waits for another\n", p->name,
                p->host, why);
}

/* A remote muscle asks for a slot: a free one of this phase once every brain listens (the
 * answer carries what the muscle needs), "wait" until then with "why" (the muscle prints
 * it), "done" after the run. */
void bd_handle_join(bd_conductor *c, bd_request *req)
{
    cJSON *o = cJSON_ParseWithLength((const char *)req->payload, (size_t)req->h.payload_len);
    cJSON *answer = cJSON_CreateObject();
    const char *why = NULL; /* why it waits */
    int ready = 1;
    if (!c->plan || c->plan->remote <= 0)
        ready = 0, why = "this phase takes no remote muscles";
    else if (c->failed || bd_signal_seen)
        ready = 0, why = "the run is stopping";
    else if (c->stopping)
        ready = 0, why = "the phase is ending";
    for (int i = 0; ready && i < c->nagents; i++)
        if (!(ready = c->agents[i].ready && c->agents[i].port > 0))
            why = "the phase's brains are not listening yet";
    /* the address its connection shows, and whether that peer lately left a slot unused */
    char addr[64] = "?";
    nng_sockaddr sa;
    if (nng_pipe_get_addr(req->pipe, NNG_OPT_REMADDR, &sa) == 0) {
        if (sa.s_family == NNG_AF_INET)
            inet_ntop(AF_INET, &sa.s_in.sa_addr, addr, sizeof addr);
        else if (sa.s_family == NNG_AF_INET6)
            inet_ntop(AF_INET6, sa.s_in6.sa_addr, addr, sizeof addr);
    }
    const double pidn = bd_num(o, "pid", 0);
    const int pid = pidn >= 1 && pidn <= 4194304 ? (int)pidn : 0;
    /* first what waiting cannot mend */
    if (!cJSON_IsObject(o))
        ready = 0, why = "the JOIN is not a JSON object";
    else if (pid == 0) /* every muscle says its pid: a slot held by pid 0 would read as never taken */
        ready = 0, why = "a JOIN names its muscle's pid, 1 to 4194304";
    /* not at once to the same peer (address and pid) again: another may take the slot
     * first; nor to an address that left slots unused twice lately, whatever pid it now
     * says (the pid is the peer's word: a squatter may say a new one each time) */
    int lately = 0;
    char kept[160];
    for (int i = 0; ready && i < c->nsquat; i++)
        if (bd_now() < c->squat[i].until && strcmp(c->squat[i].addr, addr) == 0
            && (c->squat[i].pid == pid || ++lately >= 2)) {
            ready = 0;
            if (c->squat[i].pid == pid)
                snprintf(kept, sizeof kept, "this muscle (its address and pid) took a slot lately and left it "
                         "unused: it gets none for %.0f s more", ceil(c->squat[i].until - bd_now()));
            else
                snprintf(kept, sizeof kept, "muscles from this address took slots lately and left them unused, "
                         "twice: the address gets none for about a minute from then");
            why = kept;
        }
    bd_proc *slot = NULL;
    for (int i = 0; ready && !slot && i < c->procs.n; i++)
        if (c->procs.p[i].remote && !c->procs.p[i].alive)
            slot = &c->procs.p[i];
    if (ready && !slot)
        why = "every remote muscle's slot of this phase is taken";
    /* what the muscle shows the brains in its HELLO: only this phase, slot, pid and grant */
    uint8_t mac[BD_TLS_GRANT_SIZE];
    const uint32_t epoch = c->grants + 1;
    if (slot && bd_tls_grant(c->tls, (uint32_t)c->plan->phase_index, (uint32_t)slot->index, (uint32_t)pid, epoch,
                             mac) != BD_OK) {
        fprintf(stderr, "bodhi: no grant for a remote muscle: %s\n", bd_lasterr());
        slot = NULL; /* it waits: the slot is not taken by a muscle the brains would refuse */
        why = "the conductor could not make a grant (its output says why)";
    }
    if (c->run_over) {
        cJSON_AddBoolToObject(answer, "done", 1);
    } else if (!slot) {
        cJSON_AddBoolToObject(answer, "wait", 1);
        cJSON_AddStringToObject(answer, "why", why ? why : "no slot");
    } else {
        const cJSON *host = cJSON_GetObjectItemCaseSensitive(o, "host");
        slot->restarts += slot->pid != 0; /* a muscle held the slot before */
        slot->pid = (pid_t)bd_num(o, "pid", 0);
        slot->pipe = 0; /* bound by its first event or heartbeat */
        slot->alive = 1;
        slot->started = bd_now();
        slot->last_beat = 0;
        slot->error[0] = slot->killed_for[0] = '\0';
        slot->greeted = 0;
        snprintf(slot->host, sizeof slot->host, "%s", cJSON_IsString(host) ? host->valuestring : "?");
        bd_text_printable(slot->host); /* the peer's word, printed on the terminal */
        snprintf(slot->addr, sizeof slot->addr, "%s", addr);
        cJSON_AddStringToObject(answer, "run_file", c->run_yml);
        cJSON_AddStringToObject(answer, "phase", c->phase);
        cJSON_AddNumberToObject(answer, "id", slot->index);
        cJSON_AddNumberToObject(answer, "restart", slot->restarts);
        char hex[2 * BD_TLS_GRANT_SIZE + 1];
        bd_hex(mac, sizeof mac, hex);
        slot->epoch = c->grants = epoch;
        memcpy(slot->grant, mac, sizeof slot->grant);
        cJSON_AddNumberToObject(answer, "epoch", epoch);
        cJSON_AddStringToObject(answer, "grant", hex);
        cJSON *ports = cJSON_AddArrayToObject(answer, "ports");
        for (int i = 0; i < c->nagents; i++)
            cJSON_AddItemToArray(ports, cJSON_CreateNumber(c->agents[i].port));
        cJSON *j = bd_proc_ev(c, "joined", slot);
        cJSON_AddNumberToObject(j, "pid", slot->pid);
        cJSON_AddStringToObject(j, "host", slot->host);
        cJSON_AddStringToObject(j, "addr", slot->addr);
        bd_log(c, j);
        cJSON_Delete(j);
        if (!c->o->quiet)
            fprintf(stderr, "bodhi: remote muscle %s joined from %s (pid %d)\n", slot->name, slot->host,
                    (int)slot->pid);
    }
    cJSON_Delete(o);
    bd_answer_json(c, req, BD_MSG_JOIN, answer);
    cJSON_Delete(answer);
}

/* The --listen door takes what a remote muscle sends, from peers that proved themselves
 * with the run's credential (TLS): JOIN, its events and heartbeats as a remote slot, and
 * STATUS. The control socket takes nothing of a remote slot's. 1 when req may go on. */
int bd_door_checks(bd_conductor *c, bd_request *req)
{
    const int door = c->from == c->door && c->door;
    if (req->text) {
        if (door)
            bd_refuse(c, req, "plain text through the TLS door");
        return !door;
    }
    bd_proc *p = bd_sender(c, req->h.sender);
    int remote_slot = p && p->role == BD_ROLE_MUSCLE && p->remote;
    switch (req->h.type) {
    case BD_MSG_JOIN:
        if (!door)
            bd_refuse(c, req, "a JOIN on the control socket (remote muscles join through --listen)");
        return door;
    case BD_MSG_EVENT:
    case BD_MSG_BEAT:
        if (door != remote_slot)
            bd_refuse(c, req, door ? "a message through the TLS door from a sender that is no remote slot"
                                   : "a remote slot's message on the control socket");
        return door == remote_slot;
    case BD_MSG_STATUS:
        return 1;
    case BD_MSG_STEER: /* bd_handle_steer looks further */
        if (door)
            bd_refuse(c, req, "a steering request through the TLS door (only the control socket takes them)");
        return !door;
    default:
        return 1; /* bd_handle drops it */
    }
}

/* The remote muscles' credential (wire/tls.h), before the run directory is touched: the
 * --credential file when it exists (it must hold its CA's key, to sign this run's server
 * certificate), else a new CA with a client certificate, written to the --credential file
 * now or to RUN_DIR/remote.key once the directory is the run's (bd_credential_write).
 * Returns BD_OK or an error to exit 2 with. */
int bd_credential_prepare(bd_conductor *c)
{
    if (c->o->credential) {
        int rc = bd_tls_load(c->o->credential, &c->tls);
        if (rc == BD_OK && !(bd_tls_parts(c->tls) & BD_TLS_CA_KEY))
            rc = bd_seterr(BD_EINVAL, "--credential %s holds no CA key (it is a muscle's copy, like RUN_DIR/remote.key): "
                                      "name a file an earlier bodhi run --credential made, or a new path",
                           c->o->credential);
        if (rc == BD_OK && !(bd_tls_parts(c->tls) & BD_TLS_CLIENT))
            rc = bd_seterr(BD_EINVAL, "--credential %s holds no client certificate", c->o->credential);
        if (rc != BD_ENOTFOUND)
            return rc;
        bd_tls_destroy(c->tls);
        c->tls = NULL;
    }
    int rc = bd_tls_create(&c->tls);
    if (rc == BD_OK)
        rc = bd_tls_issue(c->tls, BD_TLS_CLIENT);
    if (rc == BD_OK && c->o->credential)
        rc = bd_tls_write(c->tls, c->o->credential, BD_TLS_CA | BD_TLS_CA_KEY | BD_TLS_CLIENT);
    return rc;
}

/* RUN_DIR/remote.key (mode 0600): what a remote muscle needs, the CA's certificate and the
 * client certificate with its key; not the CA's key. Made when no --credential is given. */
int bd_credential_write(bd_conductor *c)
{
    if (!c->tls || c->o->credential)
        return BD_OK;
    char *path = bd_strfmt("%s/remote.key", c->dir);
    int rc = path ? bd_tls_write(c->tls, path, BD_TLS_CA | BD_TLS_CLIENT) : bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK && !c->o->quiet)
        fprintf(stderr, "bodhi: remote muscles need %s (copy it to their machine, keep it private): "
                        "bodhi muscle --connect %s --credential remote.key\n", path, c->o->listen);
    free(path);
    return rc;
}

/* A remote slot's deadlines (bd_deadlines): one that waits for a muscle past
 * phase_config.join_timeout fails the run; a muscle that joined and did not beat, or did
 * not greet every brain, in time loses its slot (and its peer goes on the squat list).
 * 1 when p was dealt with; 0 leaves a living muscle's heartbeat to the caller. */
int bd_join_deadlines(bd_conductor *c, bd_proc *p, double now, double timeout)
{
    if (!p->alive && !c->stopping) { /* a remote slot waits for a muscle */
        double wait = p->free_since > 0 ? now - p->free_since : 0;
        if ((c->join_by > 0 && p->pid == 0 && now > c->join_by)
            || (p->pid != 0 && wait > c->plan->ph->join_timeout))
            bd_fail(c, "waited %.0f s for a remote muscle in slot %s (phase_config.join_timeout); start "
                    "one with: bodhi muscle --connect %s --credential FILE", p->pid ? wait : c->plan->ph->join_timeout,
                    p->name, c->o->listen ? c->o->listen : "HOST:PORT");
        return 1;
    }
    if (!p->alive || p->killed_for[0])
        return 0;
    if ((p->last_beat == 0 && now - p->started > BD_JOIN_BEAT_S)
        || (!p->greeted && now - p->started > fmax(BD_JOIN_READY_S, timeout))) {
        /* it joined and did not take part: its slot goes to the next JOIN, not at
         * once to the same peer again */
        snprintf(p->killed_for, sizeof p->killed_for, "joined but %s within %.0f s",
                 p->last_beat == 0 ? "did not beat" : "did not greet every brain",
                 p->last_beat == 0 ? BD_JOIN_BEAT_S : fmax(BD_JOIN_READY_S, timeout));
        /* a free place, else the one that ends first (an ended one first of all): a full
         * list must not keep overwriting one place, where a squatter's second entry goes */
        const int cap = (int)(sizeof c->squat / sizeof c->squat[0]);
        int k = 0;
        if (c->nsquat < cap)
            k = c->nsquat++;
        else
            for (int i = 1; i < cap; i++)
                if (c->squat[i].until < c->squat[k].until)
                    k = i;
        snprintf(c->squat[k].addr, sizeof c->squat[k].addr, "%s", p->addr);
        c->squat[k].pid = (int)p->pid;
        c->squat[k].until = now + BD_SQUAT_S;
        bd_remote_left(c, p, p->killed_for);
        return 1;
    }
    /* the connection its events came on closed (the muscle was killed, its machine went
     * away): lost now, not after heartbeat_timeout. A muscle that leaves says so first and
     * waits for the answer; a connection it made again would not be its own (bd_owner). A
     * stopped muscle or conductor keeps its connection: the heartbeat decides then. */
    if (p->pipe && !bd_pipe_open((nng_pipe){.id = p->pipe})) {
        snprintf(p->killed_for, sizeof p->killed_for, "its connection closed");
        bd_remote_left(c, p, p->killed_for);
        return 1;
    }
    return 0;
}

/* The --listen door (c->door, when --listen is given): the remote muscles' server of its
 * own, mutual TLS with the run's credential, and the brains' server certificate in the
 * socket folder (0700) for their TLS doors; c->brain_tcp, where brains listen. */
int bd_open_door(bd_conductor *c)
{
    int remote = 0;
    for (int i = 0; i < c->rf->nphases; i++)
        remote = c->rf->phases[i].remote_worker > remote ? c->rf->phases[i].remote_worker : remote;
    char *cred = bd_strfmt("%s/server.pem", c->sockdir);
    int rc = cred ? bd_tls_issue(c->tls, BD_TLS_SERVER) : bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK)
        rc = bd_tls_write(c->tls, cred, BD_TLS_CA | BD_TLS_SERVER | BD_TLS_CLIENT); /* the client part: its guard's probes */
    free(cred);
    if (rc == BD_OK)
        rc = bd_server_open(3 * remote + 8, &c->door);
    /* a remote muscle sends JOINs, heartbeats and events: none near this long */
    if (rc == BD_OK)
        rc = bd_server_set_recvmax(c->door, 65536);
    bd_listen_opts lo = {.tls = c->tls, .cap = BD_TLS_DOOR_CAP(remote), .guard = BD_GUARD_CLOSE};
    if (rc == BD_OK)
        rc = bd_server_listen_with(c->door, c->o->listen, &lo);
    /* brains listen on the same host, on ports the system picks */
    const char *colon = strrchr(c->o->listen, ':');
    if (rc == BD_OK && !(c->brain_tcp = bd_strfmt("%.*s:0", (int)(colon - c->o->listen), c->o->listen)))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    return rc;
}

/* Every phase has ended: remote muscles come back for another phase; for 2 s the door
 * tells them the run is done. */
void bd_join_farewell(bd_conductor *c)
{
    c->run_over = 1;
    int remote = 0;
    for (int i = 0; i < c->rf->nphases; i++)
        remote |= c->rf->phases[i].remote_worker > 0;
    for (double until = bd_now() + 2.0; remote && c->door && bd_now() < until;)
        bd_serve(c, 100);
}

void bd_join_phase_open(bd_conductor *c, double t0)
{
    const bd_phase_plan *p = c->plan;
    c->join_by = p->remote > 0 ? t0 + p->ph->join_timeout : 0;
    if (p->remote > 0 && !c->o->quiet)
        fprintf(stderr, "bodhi: waiting up to %.0f s for %d remote muscle(s): bodhi muscle --connect %s "
                        "--credential %s\n", p->ph->join_timeout, p->remote, c->o->listen,
                c->o->credential ? c->o->credential : "RUN_DIR/remote.key");
}
