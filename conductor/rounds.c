/* rounds.c: the round barrier and the stop decision (see run.h). Each brain reports every
 * round and waits; once every brain has reported it, all hear together whether the phase
 * goes on and which restarted muscles take part from the next round. Why the phase ends is
 * a code (wire/stop.h), read once from a brain's "done" text. */
#include <stdio.h>
#include <string.h>

#include "conductor/run.h"
#include "wire/wire.h"

/* When every brain has reported the current round: the phase's word for all of them. */
void bd_barrier(bd_conductor *c)
{
    for (int i = 0; i < c->nagents; i++)
        if (!c->agents[i].held)
            return;
    char why[256] = "", quota[256] = "";
    bd_stop stop = BD_STOP_NONE; /* why's code */
    cJSON *admit = NULL;
    int all_quotas = 1; /* phase_config.episodes: every agent has counted its episodes */
    for (int i = 0; i < c->nagents; i++) {
        const cJSON *u = c->agents[i].last_update;
        const cJSON *done = cJSON_GetObjectItemCaseSensitive(u, "done");
        const bd_stop said = bd_stop_parse(cJSON_IsString(done) ? done->valuestring : NULL);
        const int is_quota = said == BD_STOP_EPISODES;
        all_quotas &= is_quota;
        if (is_quota && !quota[0]) {
            snprintf(quota, sizeof quota, "%.180s (%.64s)", done->valuestring, c->agents[i].name);
        } else if (said != BD_STOP_NONE && !is_quota && !stop) { /* any agent's condition ends the phase */
            snprintf(why, sizeof why, "%.180s (%.64s)", done->valuestring, c->agents[i].name);
            stop = said;
        }
        /* muscles every brain has greeted: the intersection of the ready lists */
        const cJSON *ready = cJSON_GetObjectItemCaseSensitive(u, "ready");
        if (!admit) {
            admit = ready ? cJSON_Duplicate(ready, 1) : cJSON_CreateArray();
            continue;
        }
        for (cJSON *x = admit->child; x;) {
            cJSON *next = x->next;
            int in = 0;
            const cJSON *y;
            cJSON_ArrayForEach(y, ready)
                in |= cJSON_IsNumber(y) && y->valueint == x->valueint;
            if (!in)
                cJSON_Delete(cJSON_DetachItemViaPointer(admit, x));
            x = next;
        }
    }
    if (!stop && all_quotas && c->nagents > 0) {
        snprintf(why, sizeof why, "%s", quota);
        stop = BD_STOP_EPISODES;
    }
    if (c->stop_asked) { /* `bodhi stop`: this round is the phase's last */
        if (!stop) {
            snprintf(why, sizeof why, "%s: by bodhi stop%s", bd_stop_words(BD_STOP_STOPPED),
                     c->stop_asked == BD_STEER_STOP_RUN ? ", with the run" : "");
            stop = BD_STOP_STOPPED;
        }
        c->run_stopped |= c->stop_asked == BD_STEER_STOP_RUN;
        c->stop_asked = 0;
    }
    cJSON *answer = cJSON_CreateObject();
    cJSON_AddBoolToObject(answer, "stop", stop != BD_STOP_NONE);
    if (stop)
        cJSON_AddStringToObject(answer, "why", why);
    if (stop && c->run_stopped) /* no later phase: several ranks agree on that too (brain.c) */
        cJSON_AddBoolToObject(answer, "ends_run", 1);
    cJSON_AddItemToObject(answer, "admit", admit ? admit : cJSON_CreateArray());
    bd_server *from = c->from;
    c->from = c->hub; /* brains report on the control socket */
    for (int i = 0; i < c->nagents; i++) {
        cJSON *mine = bd_steer_answer(c, i, answer); /* with the `bodhi set` changes it has not heard */
        bd_answer_json(c, c->agents[i].held, BD_MSG_EVENT, mine);
        if (mine != answer)
            cJSON_Delete(mine);
        c->agents[i].held = NULL;
    }
    c->from = from;
    if (cJSON_GetArraySize(admit) > 0) {
        cJSON *o = bd_ev("admitted");
        cJSON_AddStringToObject(o, "phase", c->phase);
        cJSON_AddItemToObject(o, "muscles", cJSON_Duplicate(admit, 1));
        bd_log(c, o);
        cJSON_Delete(o);
    }
    cJSON_Delete(answer);
    if (stop && !c->stopping) {
        c->stopping = 1;
        c->ended_code = stop;
        snprintf(c->ended, sizeof c->ended, "%s", why);
    }
}

void bd_rank_stop(bd_conductor *c, const bd_agent_state *a)
{
    const cJSON *r = a->result, *from = cJSON_GetObjectItemCaseSensitive(r, "stop_rank");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(r, "why");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ends_run"))) {
        c->run_stopped = 1;
        c->stopping = 1;
    }
    if (!cJSON_IsNumber(from) || !cJSON_IsString(why))
        return;
    c->stopping = 1; /* a `bodhi stop` from now on is too late for this phase, as after bd_barrier's stop */
    const bd_stop code = bd_stop_read(why->valuestring);
    if (code == BD_STOP_NONE || bd_stop_weight(code) <= bd_stop_weight(c->ended_code))
        return;
    c->ended_code = code;
    snprintf(c->ended, sizeof c->ended, "%.180s (%.64s)", why->valuestring, a->name);
    if (code == BD_STOP_FAILED)
        bd_fail(c, "phase %s ended: %s", c->phase, c->ended);
}

bd_stop bd_phase_outcome(bd_conductor *c, int sig, int started, const char **ended)
{
    if (!sig && !c->failed && c->ended_code == BD_STOP_DIVERGED) { /* the run fails, as it says */
        bd_fail(c, "%s", c->ended);
        c->diverged = 1;
    }
    if (sig) {
        *ended = started ? "interrupted" : "interrupted during start-up";
        return BD_STOP_INTERRUPTED;
    }
    if (c->diverged) {
        *ended = c->ended;
        return BD_STOP_DIVERGED;
    }
    if (c->failed) {
        *ended = bd_stop_words(BD_STOP_FAILED);
        return BD_STOP_FAILED;
    }
    if (c->ended_code != BD_STOP_NONE) {
        *ended = c->ended;
        return c->ended_code;
    }
    *ended = bd_stop_words(BD_STOP_DONE);
    return BD_STOP_DONE;
}
