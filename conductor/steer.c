/* steer.c: `bodhi set` and `bodhi stop` on the control socket (see run.h). A request is
 * taken only from a process of the run's user that is not one of the run's own: the
 * socket folder is the user's alone, and the kernel names the process at the other end of
 * the connection, which must be neither the conductor's child nor any descendant of it (a
 * brain, a muscle, an environment's subprocess). Every change is checked here by the
 * rules the run file is read by (brain/steer.h) before the answer; the brains hear the
 * changes with the next round's answer and take them before that round's update, and each
 * logs a "set" event saying the update they take effect at. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/launch.h"
#include "common/util.h"
#include "conductor/run.h"
#include "wire/wire.h"

/* The longest STEER request: BD_STEER_MAX_ITEMS changes of BD_STEER_MAX_TEXT bytes, quoted. */
#define BD_STEER_MAX_BYTES ((size_t)BD_STEER_MAX_ITEMS * (2 * BD_STEER_MAX_TEXT + 8) + 256)

/* 1 when pid is the conductor or one of its descendants (the run's own processes). */
static int bd_steer_ours(pid_t pid)
{
    const pid_t me = getpid();
    for (int depth = 0; pid > 1 && depth < 64; depth++) {
        if (pid == me)
            return 1;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "re");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[n] = '\0';
        const char *close = strrchr(buf, ')'); /* "pid (comm) state ppid ...": comm may hold anything */
        int ppid;
        char state;
        if (!close || sscanf(close + 1, " %c %d", &state, &ppid) != 2)
            return 0;
        pid = ppid;
    }
    return 0;
}

/* Why req may not steer the run (NULL: it may). */
static const char *bd_steer_refusal(bd_conductor *c, const bd_request *req)
{
    if (c->from != c->hub)
        return "a steering request through the TLS door (only the run's control socket takes them)";
    if (req->h.sender != BD_SENDER_CONTROL)
        return "a steering request in the name of a run's process";
    const int peer = bd_pipe_peer_pid(req->pipe);
    uint64_t uid;
    if (peer <= 0 || !bd_pipe_peer_uid(req->pipe, &uid))
        return "a steering request from a connection whose process the kernel does not name";
    if (uid != (uint64_t)geteuid())
        return "a steering request from another user's process";
    if (bd_steer_ours(peer))
        return "a steering request from one of the run's own processes";
    return NULL;
}

static void bd_steer_error(bd_conductor *c, bd_request *req, int code, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", 0);
    cJSON_AddNumberToObject(o, "code", code);
    cJSON_AddStringToObject(o, "error", msg);
    bd_answer_json(c, req, BD_MSG_STEER, o);
    cJSON_Delete(o);
}

/* The round the phase's brains last reported (-1: none yet). */
static double bd_steer_round(const bd_conductor *c)
{
    double r = -1;
    for (int i = 0; i < c->nagents; i++)
        if (c->agents[i].last_update) {
            double x = bd_num(c->agents[i].last_update, "round", -1);
            r = x > r ? x : r;
        }
    return r;
}

/* The changes of list (strings "AGENT.KEY=VALUE"), checked together on copies, then kept
 * for the brains: BD_OK, or the first problem (nothing kept). */
static int bd_steer_set(bd_conductor *c, const cJSON *list)
{
    const int n = cJSON_GetArraySize(list);
    if (n < 1 || n > BD_STEER_MAX_ITEMS)
        return bd_seterr(BD_EINVAL, "give 1 to %d changes, got %d", BD_STEER_MAX_ITEMS, n);
    bd_phase_plan plan = *c->plan; /* its caps change on the copy */
    bd_steer *next = calloc((size_t)c->nagents + 1, sizeof *next);
    cJSON **news = calloc((size_t)c->nagents + 1, sizeof *news);
    int rc = next && news ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
    for (int a = 0; rc == BD_OK && a < c->nagents; a++)
        if (c->agents[a].steer.params && !(next[a].params = bd_node_clone(c->agents[a].steer.params)))
            rc = bd_seterr(BD_ENOMEM, "out of memory");
    const cJSON *x;
    cJSON_ArrayForEach(x, list) {
        if (rc != BD_OK)
            break;
        char agent[BD_STEER_MAX_TEXT], key[BD_STEER_MAX_TEXT];
        const char *value;
        int index = 0;
        void *params = NULL;
        if (!cJSON_IsString(x))
            rc = bd_seterr(BD_EINVAL, "a change that is not text");
        else if ((rc = bd_steer_split(x->valuestring, agent, key, &value)) == BD_OK
                 && (rc = bd_steer_target(&plan, agent, key, &index)) == BD_OK)
            rc = bd_steer_apply(index < 0 ? NULL : &next[index], &plan, index, key, value, &params);
        if (rc != BD_OK && cJSON_IsString(x)) {
            char msg[2048];
            snprintf(msg, sizeof msg, "%s", bd_lasterr());
            rc = bd_seterr(rc, "%s: %s", x->valuestring, msg);
        }
        if (params && plan.agents[index].brain->free_params)
            plan.agents[index].brain->free_params(params);
        /* the news for the brains: a cap for every agent's, a param for its own */
        for (int a = 0; rc == BD_OK && a < c->nagents; a++) {
            if (index >= 0 && a != index)
                continue;
            if (!news[a] && !(news[a] = cJSON_CreateObject()))
                rc = bd_seterr(BD_ENOMEM, "out of memory");
            char name[BD_STEER_MAX_TEXT + 8];
            snprintf(name, sizeof name, "%s%s", index < 0 ? BD_STEER_PHASE "." : "", key);
            cJSON_DeleteItemFromObjectCaseSensitive(news[a], name);
            if (rc == BD_OK && !cJSON_AddStringToObject(news[a], name, value))
                rc = bd_seterr(BD_ENOMEM, "out of memory");
        }
    }
    for (int a = 0; a < c->nagents; a++) {
        if (rc == BD_OK && news && news[a]) { /* kept: the brains hear them in order */
            bd_agent_state *s = &c->agents[a];
            if (!s->steer_news) {
                s->steer_news = news[a];
            } else {
                cJSON *y;
                while ((y = news[a]->child)) {
                    cJSON_DetachItemViaPointer(news[a], y);
                    cJSON_DeleteItemFromObjectCaseSensitive(s->steer_news, y->string);
                    cJSON_AddItemToObject(s->steer_news, y->string, y);
                }
                cJSON_Delete(news[a]);
            }
            news[a] = NULL;
        }
        if (rc == BD_OK && next && next[a].params) {
            bd_steer_fini(&c->agents[a].steer);
            c->agents[a].steer = next[a];
            next[a].params = NULL;
        }
        if (news)
            cJSON_Delete(news[a]);
        if (next)
            bd_steer_fini(&next[a]);
    }
    if (rc == BD_OK) {
        c->plan->max_agent_steps = plan.max_agent_steps;
        c->plan->episodes_target = plan.episodes_target;
    }
    free(next);
    free(news);
    return rc;
}

/* A request taken: ev (its kind's fields added) goes to log.jsonl with the phase and the
 * round it came in, and the client hears ok with the same. */
static void bd_steer_taken(bd_conductor *c, bd_request *req, cJSON *ev)
{
    cJSON_AddStringToObject(ev, "phase", c->phase);
    cJSON_AddNumberToObject(ev, "round", bd_steer_round(c));
    bd_log(c, ev);
    cJSON_Delete(ev);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddBoolToObject(a, "ok", 1);
    cJSON_AddStringToObject(a, "phase", c->phase);
    cJSON_AddNumberToObject(a, "round", bd_steer_round(c));
    bd_answer_json(c, req, BD_MSG_STEER, a);
    cJSON_Delete(a);
}

void bd_handle_steer(bd_conductor *c, bd_request *req)
{
    const char *no = bd_steer_refusal(c, req);
    if (no) {
        bd_refuse(c, req, no);
        return;
    }
    if (req->h.payload_len > BD_STEER_MAX_BYTES) {
        char msg[128];
        snprintf(msg, sizeof msg, "a request of %llu bytes (at most %zu)", (unsigned long long)req->h.payload_len,
                 BD_STEER_MAX_BYTES);
        bd_steer_error(c, req, 2, msg);
        return;
    }
    cJSON *o = cJSON_ParseWithLength((const char *)req->payload, (size_t)req->h.payload_len);
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "set");
    const cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
    char sfx[16];
    /* a NUL inside a JSON string (\u0000) would cut its value short where C reads it */
    const int nul = memmem(req->payload, (size_t)req->h.payload_len, "\\u0000", 6) != NULL;
    if (!cJSON_IsObject(o) || (!cJSON_IsArray(set) && !cJSON_IsString(stop)) || (set && stop) || nul) {
        bd_steer_error(c, req, 2, nul ? "a NUL character in the request"
                                      : "expected {\"set\": [\"AGENT.KEY=VALUE\", ...]} or {\"stop\": \"phase\"|\"run\"}, "
                                        "one of them");
    } else if (cJSON_IsArray(set) && bd_rank_suffix(sfx, sizeof sfx)[0]) {
        /* a stop is every rank's: the ranks' brains agree on it every round (brain.c) */
        bd_steer_error(c, req, 2, "this is one rank of a run of many: every rank would have to change alike, which "
                                  "bodhi set cannot do yet (bodhi stop can, on any rank)");
    } else if (!c->plan || c->stopping || c->run_over) {
        bd_steer_error(c, req, 1, c->run_over ? "the run is ending" : "no phase is running now (one is ending)");
    } else if (cJSON_IsString(stop)) {
        const int run = strcmp(stop->valuestring, "run") == 0;
        if (!run && strcmp(stop->valuestring, "phase") != 0) {
            bd_steer_error(c, req, 2, "stop what? \"phase\" or \"run\"");
        } else {
            c->stop_asked = c->stop_asked == BD_STEER_STOP_RUN || run ? BD_STEER_STOP_RUN : BD_STEER_STOP_PHASE;
            cJSON *ev = bd_ev("stop_asked");
            cJSON_AddStringToObject(ev, "stop", run ? "run" : "phase");
            bd_steer_taken(c, req, ev);
        }
    } else if (bd_steer_set(c, set) != BD_OK) {
        bd_steer_error(c, req, 2, bd_lasterr());
    } else {
        cJSON *ev = bd_ev("set_asked");
        cJSON_AddItemToObject(ev, "set", cJSON_Duplicate(set, 1));
        bd_steer_taken(c, req, ev);
    }
    cJSON_Delete(o);
}

cJSON *bd_steer_answer(bd_conductor *c, int i, cJSON *answer)
{
    bd_agent_state *a = &c->agents[i];
    if (!a->steer_news || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "stop")))
        return answer; /* the phase ends in this round: nothing more is learnt in it */
    cJSON *mine = cJSON_Duplicate(answer, 1);
    if (!mine)
        return answer; /* heard with the next round's */
    cJSON_AddItemToObject(mine, "set", a->steer_news);
    a->steer_news = NULL;
    return mine;
}
