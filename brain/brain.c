/* brain.c: the learner process (see brain.h).
 *
 * Muscles greet (HELLO) and are answered with the current weights at once; the round
 * (wire/round.h) then holds one ROLLOUT from every admitted muscle. Each round the brain
 * records the batch in its memory (HDF5), updates its episode statistics, and reports the
 * round to the conductor, which answers every brain's report of a round together: whether
 * the phase goes on, and which newly greeted (restarted) muscles take part from the next
 * round on. So every brain of a phase counts the same muscles in the same rounds and stops
 * at the same round. Then it learns (train phases) and answers every muscle with the new
 * weights or STOP. A muscle that dies drops out of the round (its rollout of that round, if
 * one came, is dropped: its columns hold NaN in the trace) until its replacement greets
 * and is admitted.
 *
 * SIGTERM is looked at every 200 ms while waiting, and between minibatches while learning:
 * the brain then saves the last whole update, drains its memory and exits 143.
 * Batch layout: world columns in global order, muscle k's shard at [world0_k, +N_k). */
#include "brain/brain.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>

#include "brain/brain_impl.h"
#include "common/proc.h"
#include "common/launch.h"
#include "common/util.h"
#include "config/plan.h"
#include "memory/memory.h"
#include "wire/addr.h"
#include "wire/events.h"
#include "wire/round.h"
#include "wire/stop.h"
#include "wire/wire.h"

static void bd_event(bd_brain *b, cJSON *o)
{
    int rc = b->ev ? bd_events_send(b->ev, o, NULL) : BD_OK;
    if (rc != BD_OK) {
        if (rc != BD_EINTR) /* a stop is the user's: nothing to say */
            fprintf(stderr, "bodhi brain %s: %s\n", b->ap ? b->ap->cfg->name : "?", bd_lasterr());
        if (b->stopping) { /* a conductor that does not answer a stopping brain is gone */
            bd_events_close(b->ev);
            b->ev = NULL;
        }
    }
    cJSON_Delete(o);
}

static cJSON *bd_event_new(bd_brain *b, const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", kind);
    cJSON_AddStringToObject(o, "phase", b->plan.ph->name);
    cJSON_AddStringToObject(o, "agent", b->ap->cfg->name);
    return o;
}

/* A WEIGHTS message with the current policy (flags: BD_WEIGHTS_STOP). */
int bd_brain_weights(bd_brain *b, uint32_t flags, nng_msg **out)
{
    bd_policy_out po;
    b->lops->weights_out(b->learner, &po);
    po.h.version = b->lops->version(b->learner);
    po.h.flags = flags;
    uint8_t *payload;
    size_t size = bd_weights_size(&po.h);
    if (size == 0)
        return bd_seterr(BD_EINVAL, "agent %s: a network of %llu parameters does not fit in a message",
                         b->ap->cfg->name, (unsigned long long)po.h.nparams);
    int rc = bd_wire_msg_alloc(out, BD_MSG_WEIGHTS, BD_SENDER_BRAIN + (uint32_t)b->ap->index,
                               (uint32_t)po.h.version, size, &payload);
    if (rc == BD_OK)
        bd_weights_encode(&po.h, po.floats, payload);
    return rc;
}

/* Muscles the conductor declared lost (a remote muscle gone silent) leave the round, and
 * their grants are taken back: a newer muscle in the slot (a newer grant) is spared. */
static void bd_brain_tick(void *ctx)
{
    bd_brain *b = ctx;
    for (int k = b->plan.worker; k < b->M; k++) {
        pthread_mutex_lock(&b->news_mu); /* the heartbeat thread's (bd_brain_heard) */
        const uint32_t back = b->taken_back[k];
        pthread_mutex_unlock(&b->news_mu);
        if (back <= b->revoked[k])
            continue;
        b->revoked[k] = back;
        /* its holder's connection, when it greeted with that grant (or an older one) and
         * is still in the round */
        const int close = b->hello[k].epoch <= back && bd_round_state(b->round, k) != BD_PEER_ABSENT;
        if (close)
            bd_round_lose(b->round, k);
        fprintf(stderr, "bodhi brain %s: the conductor took back remote muscle %d's grant %u (it was lost)%s\n",
                b->ap->cfg->name, k, back, close ? "; its connection is closed" : "");
    }
}

static cJSON *bd_brain_beat(void *ctx)
{
    bd_brain *b = ctx;
    /* This thread beats whatever the brain computes, so a step of a greedy evaluation's
     * envs that never returns (a plugin's or a Python env's loop) would hide behind the
     * beats for ever: one longer than the phase's heartbeat_timeout is a hang, as in a
     * muscle. The brain says so and ends; the run fails (the conductor repairs its trace;
     * nothing is checkpointed: the main thread is inside the env). */
    const double since = b->greedy && b->eval ? b->greedy->stepping_since(b->eval) : 0;
    const double stuck = since > 0 ? b->plan.ph->heartbeat_timeout : 0; /* an evaluation: its setup was whole */
    if (since > 0 && bd_now() - since > stuck) {
        char err[256];
        snprintf(err, sizeof err, "hung: one step of its greedy evaluation's envs has not returned after %.0f s (more "
                 "than the phase's heartbeat_timeout, %g s)", bd_now() - since, stuck);
        fprintf(stderr, "bodhi brain %s: %s\n", b->ap->cfg->name, err);
        cJSON *o = bd_event_new(b, "error"); /* the conductor's reason for this brain's end */
        cJSON_AddStringToObject(o, "error", err);
        if (b->ev)
            bd_events_send(b->ev, o, NULL);
        cJSON_Delete(o);
        _exit(1);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "beat");
    cJSON_AddNumberToObject(o, "round", (double)b->round_no);
    return o;
}

/* The conductor's answer to a heartbeat names each remote slot's newest grant it took back
 * (its muscle lost): [[id, grant], ...], every time (the grant's number tells the lost one
 * from a newer muscle in the same slot). */
static void bd_brain_heard(void *ctx, const cJSON *answer)
{
    bd_brain *b = ctx;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(answer, "revoked"), *x;
    if (!b->taken_back) /* its setup failed: it is on its way out */
        return;
    pthread_mutex_lock(&b->news_mu);
    cJSON_ArrayForEach(x, list) {
        const cJSON *k = cJSON_GetArrayItem(x, 0);
        uint32_t e;
        if (cJSON_IsNumber(k) && k->valueint >= b->plan.worker && k->valueint < b->M
            && bd_events_grant_number(cJSON_GetArrayItem(x, 1), &e) && e > b->taken_back[k->valueint])
            b->taken_back[k->valueint] = e;
    }
    pthread_mutex_unlock(&b->news_mu);
}

/* Why the phase is over for this agent ("<words>: <detail>", the words of a code of
 * wire/stop.h: objective reached, episodes done, step cap, diverged), into buf; NULL while
 * it goes on. */
static const char *bd_brain_done(bd_brain *b, char *buf, size_t len)
{
    const bd_phase_plan *p = &b->plan;
    const char *me = b->ap->cfg->name;
    if (b->diverged[0]) {
        snprintf(buf, len, "%s: %s", bd_stop_words(BD_STOP_DIVERGED), b->diverged);
        return buf;
    }
    /* a condition given an agent watches that agent alone */
    int objective = !isnan(p->objective_threshold) && (!p->objective_agent || strcmp(p->objective_agent, me) == 0);
    long long cap = !p->max_steps_agent || strcmp(p->max_steps_agent, me) == 0 ? p->max_agent_steps : 0;
    /* several ranks: the group's returns, each rank's last `window` together, once every
     * rank has `window` (the same on every rank, so every rank meets the objective in the
     * same round; a test phase's `episodes` still counts each rank's own) */
    const double episodes = b->group_stats ? b->group_fewest : (double)b->stats.episodes;
    double mean = episodes >= p->objective_window
                      ? (b->group_stats ? b->group_mean_w : bd_stats_mean_recent(&b->stats, p->objective_window))
                      : NAN;
    if (p->episodes_target > 0 && b->stats.episodes >= p->episodes_target) {
        snprintf(buf, len, "%s: %lld episodes", bd_stop_words(BD_STOP_EPISODES), (long long)b->stats.episodes);
        return buf;
    }
    if (b->eval && b->eval_round == b->round_no && b->eval_mean >= p->greedy_threshold) {
        const long long n = (long long)p->greedy_episodes * b->ap->members;
        snprintf(buf, len, "%s: greedy mean return %.4g over %lld episode%s of weights version %llu >= %g, "
                 "evaluated every %lld agent-steps", bd_stop_words(BD_STOP_OBJECTIVE), b->eval_mean, n,
                 n == 1 ? "" : "s", (unsigned long long)b->eval_version, p->greedy_threshold, p->greedy_every);
        return buf;
    }
    if (objective && mean >= p->objective_threshold) {
        /* checked once a rollout: the steps said are that rollout's end, not the episode's */
        snprintf(buf, len, "%s: mean return %.4g over the last %d episodes%s >= %g, checked at the end of each "
                 "rollout (every %lld agent-steps)", bd_stop_words(BD_STOP_OBJECTIVE), mean, p->objective_window,
                 b->group_stats ? " of every rank" : "", p->objective_threshold, (long long)b->T * (long long)b->N);
        return buf;
    }
    if (cap > 0 && b->steps >= cap) {
        if (objective && episodes < p->objective_window)
            snprintf(buf, len, "%s: %lld agent-steps, objective not reached (fewer than %d episodes%s)",
                     bd_stop_words(BD_STOP_STEP_CAP), (long long)b->steps, p->objective_window,
                     b->group_stats ? " on a rank" : "");
        else if (objective)
            snprintf(buf, len, "%s: %lld agent-steps, objective not reached (mean return %.4g%s < %g)",
                     bd_stop_words(BD_STOP_STEP_CAP), (long long)b->steps, mean, b->group_stats ? " of every rank" : "",
                     p->objective_threshold);
        else
            snprintf(buf, len, "%s: %lld agent-steps", bd_stop_words(BD_STOP_STEP_CAP), (long long)b->steps);
        return buf;
    }
    return NULL;
}

static int bd_brain_alloc_batch(bd_brain *b)
{
    size_t tn = (size_t)b->T * (size_t)b->N;
    b->obs = malloc(sizeof(float) * tn * (size_t)b->S);
    b->act = malloc(sizeof(float) * tn * (size_t)b->U);
    b->logp = malloc(sizeof(float) * tn);
    b->val = malloc(sizeof(float) * tn);
    b->rew = malloc(sizeof(float) * tn);
    b->fval = malloc(sizeof(float) * tn);
    b->lastv = malloc(sizeof(float) * (size_t)b->N);
    b->term = malloc(tn);
    b->trunc = malloc(tn);
    b->valid = malloc((size_t)b->N);
    b->fobs = malloc(sizeof(float) * tn * (size_t)b->S);
    b->efin = malloc(sizeof(float) * tn * (size_t)b->S);
    b->wver = malloc(sizeof(uint64_t) * tn);
    if (!b->obs || !b->act || !b->logp || !b->val || !b->rew || !b->fval || !b->lastv || !b->term
        || !b->trunc || !b->valid || !b->fobs || !b->efin || !b->wver)
        return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", b->T, b->N);
    return BD_OK;
}

/* BD_EINTR for a brain told to stop by a signal (bd_term_requested), saying which; why: what
 * it was doing, or NULL. */
static int bd_brain_signalled(const char *why)
{
    const char *what = bd_term_requested == 2 ? "stopped by SIGUSR2: its conductor's run failed" : "stopped by SIGTERM";
    return why ? bd_seterr(BD_EINTR, "%s (%s)", what, why) : bd_seterr(BD_EINTR, "%s", what);
}

/* Several ranks: every rank learns from this round or none does. A conductor's word to
 * stop is its own (a Ctrl-C reaches each rank's conductor at its own moment, and a
 * conductor that took it says stop a round before another), so the ranks agree on it: any
 * rank's stop is every rank's, and no learner waits in a collective the others skip. What
 * the weightiest stop was travels with it (wire/stop.h's bd_stop_weight), and whether the
 * run ends with it on any rank: a rank whose conductor was interrupted (Ctrl-C, or killed:
 * its brain's death signal) interrupts the others' phases too, one whose run failed fails
 * theirs, and one whose run ends with the phase (`bodhi stop` of the run) ends theirs, so
 * that no rank goes on to a phase the others never start. A signal to stop (SIGTERM, or the
 * conductor's SIGUSR2 for a run that failed) stops this rank here even when its conductor
 * said go on, and the brain then ends as interrupted (BD_EINTR), as it would alone: a
 * brain that took a signal its conductor did not send (a kill of the brain alone) makes its
 * conductor stop the rest of the rank, which a brain that ended "done" left waiting on its
 * muscles. */
static int bd_brain_agree_go_on(bd_brain *b, int *stop)
{
    if (b->ranks.world < 2)
        return BD_OK;
    const int signalled = bd_term_requested;
    if (!*stop && signalled) {
        *stop = 1;
        snprintf(b->why, sizeof b->why, "%s",
                 bd_stop_words(bd_term_requested == 2 ? BD_STOP_FAILED : BD_STOP_INTERRUPTED));
    }
    int code = BD_STOP_NONE, ends_run = 0, from = 0;
    if (*stop) {
        code = bd_stop_read(b->why);
        code = code == BD_STOP_NONE ? BD_STOP_OTHER : code;
        ends_run = b->ends_run || code == BD_STOP_INTERRUPTED || code == BD_STOP_FAILED;
    }
    const int mine = code;
    int rc = bd_ranks_agree_stop(&b->ranks, &code, &ends_run, &from);
    if (rc != BD_OK)
        return signalled ? bd_brain_signalled(bd_lasterr()) : rc;
    if (code == BD_STOP_NONE)
        return signalled ? bd_brain_signalled(NULL) : BD_OK; /* not reached: a signal proposes a stop */
    b->ends_run |= ends_run; /* its conductor hears it with the result (bd_brain_result) */
    if (from != b->ranks.rank && (!*stop || code != mine)) {
        *stop = 1;
        snprintf(b->why, sizeof b->why, "%s: on rank %d", bd_stop_words((bd_stop)code), from);
        b->stop_rank = from;
    }
    return signalled ? bd_brain_signalled(NULL) : BD_OK;
}

/* Several ranks: this rank cannot go on (rc: its conductor did not answer, or answered
 * nonsense): it says so in the round's agreement, so that the others stop with it rather
 * than fail on a connection closed in their next collective. Interrupted when it was told
 * to stop by SIGTERM or its conductor is gone (killed: a conductor's sockets close before
 * the kernel reparents this brain and sends the death signal, so up to half a second for
 * either to show); failed otherwise (its conductor's SIGUSR2 included). Returns what the
 * brain ends with: BD_EINTR when interrupted (it saves and reports as after a signal), rc
 * (with its message) when failed. */
static int bd_brain_leave_ranks(bd_brain *b, int rc, int *stop)
{
    char err[256];
    snprintf(err, sizeof err, "%s", bd_lasterr());
    for (int i = 0; i < 50 && !bd_term_requested && !bd_parent_gone(); i++)
        nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
    const int term = bd_term_requested == 1 || (bd_term_requested != 2 && bd_parent_gone());
    *stop = 1;
    snprintf(b->why, sizeof b->why, "%s", bd_stop_words(term ? BD_STOP_INTERRUPTED : BD_STOP_FAILED));
    int arc = bd_brain_agree_go_on(b, stop);
    if (arc != BD_OK && arc != BD_EINTR)
        return arc;
    return term ? bd_seterr(BD_EINTR, "stopped: %s", err) : bd_seterr(rc, "%s", err);
}

/* Several ranks, once joined: the group's episode statistics (episodes in all and of the
 * rank with fewest, the mean of every rank's last `window` returns and last 100, the
 * highest return), summed over the ranks
 * each round, so that every rank reports the same and meets the objective in the same
 * round (each rank's own window used to decide alone: the first rank over the threshold
 * ended the phase while the others' stood below it). */
static int bd_brain_group_stats(bd_brain *b)
{
    const int w = b->plan.objective_window; /* 1 to 4096 (config/plan.c) */
    const double nw = (double)(b->stats.recent_n < w ? b->stats.recent_n : w);
    const double n100 = (double)(b->stats.recent_n < 100 ? b->stats.recent_n : 100);
    double x[5] = {(double)b->stats.episodes, nw, bd_stats_mean_recent(&b->stats, w) * nw, n100,
                   bd_stats_mean_recent(&b->stats, 100) * n100};
    /* minima: the fewest episodes, the highest return as the least of its negation, and
     * the fewest steps (greedy_average's clock) */
    double lo[3] = {(double)b->stats.episodes, b->stats.episodes ? -b->stats.max_return : INFINITY,
                    (double)b->steps};
    int rc = bd_ranks_sum(&b->ranks, x, 5, 0);
    if (rc == BD_OK)
        rc = bd_ranks_sum(&b->ranks, lo, 3, 1);
    if (rc != BD_OK)
        return rc;
    b->group_stats = 1;
    b->group_episodes = x[0];
    b->group_mean_w = x[1] > 0 ? x[2] / x[1] : 0;
    b->group_mean_100 = x[3] > 0 ? x[4] / x[3] : 0;
    b->group_fewest = lo[0];
    b->group_max = -lo[1];
    b->group_steps = (long long)lo[2];
    return BD_OK;
}

/* The mean of the last 100 returns and the highest into ev: the group's with several ranks
 * (as its last round summed them: the same on every rank, with group_episodes), else this
 * brain's. Only once there are episodes, unless `always` (then 0 for none). */
static void bd_brain_returns(const bd_brain *b, cJSON *ev, int always)
{
    if (b->group_stats && (always || b->group_episodes > 0)) {
        cJSON_AddNumberToObject(ev, "mean_return", b->group_mean_100);
        cJSON_AddNumberToObject(ev, "max_return", b->group_episodes > 0 ? b->group_max : 0);
        cJSON_AddNumberToObject(ev, "group_episodes", b->group_episodes);
    } else if (always || b->stats.episodes) {
        cJSON_AddNumberToObject(ev, "mean_return", bd_stats_mean_recent(&b->stats, 100));
        cJSON_AddNumberToObject(ev, "max_return", b->stats.episodes ? b->stats.max_return : 0);
    }
}

/* greedy_average: once the agent's steps reach the next multiple of `every`, its current
 * weights (those a stop now would save) play their greedy episodes; the round's report
 * says how they did. Weights already evaluated are not played again. */
static int bd_brain_evaluate(bd_brain *b, cJSON *ev)
{
    /* several ranks: the fewest steps of any rank, so that every rank evaluates in the same
     * round (one that lost a muscle counts fewer) */
    const long long steps = b->group_stats ? b->group_steps : b->steps;
    if (!b->eval || steps < b->eval_next)
        return BD_OK;
    const long long every = b->plan.greedy_every;
    b->eval_next = (steps / every + 1) * every;
    const uint64_t version = b->lops->version(b->learner);
    if (b->eval_count > 0 && version == b->eval_version)
        return BD_OK;
    bd_policy_out pol;
    b->lops->weights_out(b->learner, &pol);
    double t = bd_now(), mean;
    long long played;
    int rc = b->greedy->play(b->eval, &pol.h, pol.floats, (uint64_t)b->eval_count, &mean, &played, &bd_term_requested);
    if (rc != BD_OK)
        return rc;
    b->eval_count++;
    b->eval_version = version;
    b->eval_mean = mean;
    b->eval_round = b->round_no;
    cJSON_AddNumberToObject(ev, "greedy_return", mean);
    cJSON_AddNumberToObject(ev, "greedy_episodes", (double)b->plan.greedy_episodes * b->ap->members);
    cJSON_AddNumberToObject(ev, "greedy_steps", (double)played);
    cJSON_AddNumberToObject(ev, "greedy_s", bd_now() - t);
    return BD_OK;
}

/* Reports round r to the conductor and waits for its word: *stop (with the reason in
 * b->why) and the muscles to admit. */
static int bd_brain_report(bd_brain *b, cJSON *ev, int *stop)
{
    char dbuf[320], eval_err[1024] = "";
    int erc = BD_OK;
    const char *done = NULL;
    if (b->ranks.world < 2) {
        if ((erc = bd_brain_evaluate(b, ev)) != BD_OK)
            return erc == BD_EINTR ? bd_brain_signalled(bd_lasterr()) : erc;
        done = bd_brain_done(b, dbuf, sizeof dbuf);
    }
    if (b->ranks.world > 1) { /* every rank ends the phase in the same round */
        const int joining = !b->ranks.g;
        int rc = bd_ranks_join(&b->ranks, b->lops, b->learner); /* the first round's end: bd_ranks_join */
        if (rc != BD_OK && bd_term_requested) /* stopped, and another rank with it */
            return bd_brain_signalled(bd_lasterr());
        if (rc != BD_OK)
            return rc;
        if (joining) {
            cJSON_AddNumberToObject(ev, "group_join_s", b->ranks.join_s);
            cJSON_AddBoolToObject(ev, "group_spin", b->ranks.spin); /* its gradients' waits (bd_ranks_spin) */
            /* the launch this trace belongs to: replay tells a rank's trace of another
             * launch (a later run into the same folders) from this one's by it */
            const char *gid = bdt_group_id(b->ranks.g);
            cJSON_AddStringToObject(ev, "group_id", gid);
            if (b->mem && (rc = bd_trace_writer_group(b->mem, gid)) != BD_OK)
                return rc;
        }
        if ((rc = bd_brain_group_stats(b)) != BD_OK)
            return rc;
        /* greedy_average, once the group has joined (its first round makes every rank's
         * weights rank 0's) and agrees on the steps that call for it. The round's
         * collectives stay paired: one cut short by a signal says nothing (the round's
         * agreement then stops every rank as interrupted); after one that failed, this
         * rank leaves the group as failed, as when its conductor cannot be reached, once
         * the stop agreement below is through. */
        if ((erc = bd_brain_evaluate(b, ev)) == BD_EINTR)
            erc = BD_OK;
        if (erc != BD_OK) {
            snprintf(eval_err, sizeof eval_err, "%s", bd_lasterr());
            fprintf(stderr, "bodhi brain %s: %s\n", b->ap->cfg->name, eval_err);
        }
        done = bd_brain_done(b, dbuf, sizeof dbuf);
        int code = done ? (int)bd_stop_parse(done) : BD_STOP_NONE, mine = code, ends_run = 0, from = 0;
        rc = bd_ranks_agree_stop(&b->ranks, &code, &ends_run, &from);
        if (rc != BD_OK)
            return rc;
        if (code != BD_STOP_NONE && mine == BD_STOP_NONE) {
            snprintf(dbuf, sizeof dbuf, "%s: on rank %d", bd_stop_words((bd_stop)code), from);
            done = dbuf;
        }
        bd_ranks_describe(&b->ranks, b->lops, b->learner, ev);
        if (erc != BD_OK) { /* the others fail with it in the go-on agreement (bd_brain_leave_ranks) */
            bd_seterr(erc, "%s", eval_err);
            return bd_brain_leave_ranks(b, erc, stop);
        }
    }
    cJSON_AddNumberToObject(ev, "round", (double)b->round_no);
    cJSON_AddNumberToObject(ev, "update", (double)b->lops->version(b->learner));
    cJSON_AddNumberToObject(ev, "steps", (double)b->steps);
    /* the rate since the last report: a round and the update after it. The first round
     * has no update before it, so its rate would flatter: none is given. */
    const double now = bd_now();
    if (b->rate_t > 0 && now > b->rate_t)
        cJSON_AddNumberToObject(ev, "steps_per_s", (double)(b->steps - b->rate_steps) / (now - b->rate_t));
    b->rate_t = now;
    b->rate_steps = b->steps;
    cJSON_AddNumberToObject(ev, "episodes", (double)b->stats.episodes);
    bd_brain_returns(b, ev, 0);
    if (done)
        cJSON_AddStringToObject(ev, "done", done);
    cJSON *ready = cJSON_AddArrayToObject(ev, "ready");
    for (int k = 0; k < b->M; k++)
        if (bd_round_state(b->round, k) == BD_PEER_READY)
            cJSON_AddItemToArray(ready, cJSON_CreateNumber(k));
    cJSON *answer = NULL;
    int rc = b->ev ? bd_events_send(b->ev, ev, &answer)
                   : bd_seterr(BD_ECLOSED, "no connection to the conductor");
    if (rc != BD_OK && b->ranks.world > 1) /* this rank stops; the others with it */
        return bd_brain_leave_ranks(b, rc, stop);
    if (rc != BD_OK)
        return bd_term_requested ? bd_brain_signalled(NULL) : rc;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(answer, "stop");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(answer, "why");
    if (!cJSON_IsBool(s)) {
        cJSON_Delete(answer);
        rc = bd_seterr(BD_EPROTO, "the conductor's answer to round %lld says neither go on nor stop", b->round_no);
        return b->ranks.world > 1 ? bd_brain_leave_ranks(b, rc, stop) : rc;
    }
    *stop = cJSON_IsTrue(s);
    snprintf(b->why, sizeof b->why, "%s", cJSON_IsString(why) ? why->valuestring : "");
    b->ends_run = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "ends_run"));
    /* the muscles to admit, handed to the caller in ev: they are admitted after this
     * round's answers, and count from the next round */
    cJSON *admit = cJSON_DetachItemFromObjectCaseSensitive(answer, "admit");
    cJSON *set = cJSON_DetachItemFromObjectCaseSensitive(answer, "set"); /* `bodhi set` (bd_brain_steer) */
    cJSON_Delete(answer);
    cJSON_AddItemToObject(ev, "admit", admit ? admit : cJSON_CreateArray());
    if (cJSON_IsObject(set))
        cJSON_AddItemToObject(ev, "set", set);
    else
        cJSON_Delete(set);
    return bd_brain_agree_go_on(b, stop);
}

/* `bodhi set`'s changes the conductor's answer carried, {"KEY": "VALUE", ...} ("phase.KEY"
 * for a cap of the phase), which it checked by the same rules: taken now, before this
 * round's update, and said in a "set" event with the first update that uses them. */
static void bd_brain_steer(bd_brain *b, const cJSON *set)
{
    const char *keys[BD_STEER_MAX_ITEMS + 1];
    int nk = 0, rc = BD_OK;
    char err[512] = "";
    const int me = b->ap->index;
    const size_t pre = strlen(BD_STEER_PHASE) + 1;
    const cJSON *x;
    cJSON_ArrayForEach(x, set) {
        if (!cJSON_IsString(x) || !x->string)
            continue;
        const int cap = strncmp(x->string, BD_STEER_PHASE ".", pre) == 0;
        const char *key = cap ? x->string + pre : x->string;
        void *params = NULL;
        rc = bd_steer_apply(cap ? NULL : &b->steer, &b->plan, cap ? -1 : me, key, x->valuestring, &params);
        if (params && b->ap->brain->free_params)
            b->ap->brain->free_params(params);
        if (rc == BD_OK && cap && strcmp(key, "episodes") == 0 && b->plan.episodes_target > 0) /* the worlds' shares */
            rc = bd_stats_set_quota(&b->stats, b->plan.episodes_target, b->ap->members);
        if (rc != BD_OK)
            snprintf(err, sizeof err, "%s: %s", x->string, bd_lasterr());
        else if (!cap && nk < BD_STEER_MAX_ITEMS)
            keys[nk++] = key;
    }
    keys[nk] = NULL;
    if (b->train && b->lops->steer) { /* a cap may move a default (ppo's total_steps is the step cap's) */
        void *params = NULL;
        rc = bd_steer_params(&b->steer, &b->plan, me, &params);
        if (rc == BD_OK)
            rc = b->lops->steer(b->learner, params, keys);
        if (rc != BD_OK)
            snprintf(err, sizeof err, "%s", bd_lasterr());
        if (params && b->ap->brain->free_params)
            b->ap->brain->free_params(params);
    }
    cJSON *o = bd_event_new(b, "set");
    cJSON_AddItemToObject(o, "set", cJSON_Duplicate(set, 1));
    cJSON_AddNumberToObject(o, "round", (double)b->round_no);
    cJSON_AddNumberToObject(o, "update", (double)b->lops->version(b->learner) + 1); /* the first to use them */
    cJSON_AddNumberToObject(o, "steps", (double)b->steps);
    if (err[0]) /* not "error": that names a failing process */
        cJSON_AddStringToObject(o, "not_taken", err);
    bd_event(b, o);
}

/* One round: gather, record, report, learn, answer. *stop when the phase ends. */
static int bd_brain_round(bd_brain *b, int *stop)
{
    bd_round_hooks hooks = {bd_brain_greet, bd_brain_tick, b, NULL, bd_brain_supersedes};
    int rc = bd_round_gather(b->round, &hooks, &bd_term_requested);
    if (rc == BD_EINTR && b->ranks.world > 1)
        rc = BD_OK; /* several ranks: a signal stops this rank in the round's agreement, with the others */
    if (rc != BD_OK)
        return rc;
    memset(b->valid, 0, (size_t)b->N);
    int have = 0;
    for (int k = 0; k < b->M; k++) {
        bd_request *req = bd_round_request(b->round, k);
        if (!req)
            continue;
        int crc = bd_brain_collect(b, k, req);
        if (crc == BD_EINVAL) { /* refused: its columns are missing this round, as for a muscle that died */
            b->refused_rollouts++;
            bd_brain_lost_rows(b, k, 0); /* its worlds went on without this round's steps */
            snprintf(b->refused_why, sizeof b->refused_why, "%s", bd_lasterr());
            fprintf(stderr, "bodhi brain %s: round %lld: refused the rollout of %s\n", b->ap->cfg->name, b->round_no,
                    bd_lasterr());
            if (++b->refused_row[k] >= BD_BRAIN_REFUSED_MAX) /* its env's data is never fit: nothing to wait for */
                return bd_seterr(BD_EINVAL, "%d rollouts in a row refused, the last: %s. Its env gives data that no "
                                             "learner can take (a value that is NaN or infinite, a flag other than 0 "
                                             "or 1), and its worlds would never count a step", BD_BRAIN_REFUSED_MAX,
                                 b->refused_why);
            continue;
        }
        if (crc != BD_OK) { /* a muscle that sends nonsense leaves */
            cJSON *o = bd_event_new(b, "dropped");
            cJSON_AddNumberToObject(o, "muscle", k);
            cJSON_AddStringToObject(o, "error", bd_lasterr());
            bd_event(b, o);
            bd_round_lose(b->round, k);
            continue;
        }
        b->refused_row[k] = 0;
        have++;
    }
    long long cols = 0;
    for (int i = 0; i < b->N; i++)
        cols += b->valid[i];
    /* No rollout at all this round (the only muscle died) after some were recorded: one
     * round of NaN, so that the columns' next rows (a restarted muscle's fresh worlds) do
     * not continue their last ones in the trace as if nothing happened between */
    const int gap = !have && b->steps > 0 && !b->gap_marked;
    if (have || gap) {
        if (cols < b->N)
            bd_brain_blank(b);
        b->gap_marked = gap;
        rc = b->ap->cfg->record_steps ? bd_trace_writer_append_versions(b->mem, b->T, b->obs, b->act, b->rew, b->term,
                                                                        b->trunc, b->wver)
                                      : BD_OK;
        if (rc == BD_OK && gap) /* no column valid: its T rows counted, so that episodes' starts stay rows */
            rc = bd_stats_add(&b->stats, b->T, b->rew, b->term, b->trunc, b->valid);
        if (rc != BD_OK)
            return rc;
    }
    if (have) {
        rc = bd_stats_add(&b->stats, b->T, b->rew, b->term, b->trunc, cols < b->N ? b->valid : NULL);
        if (rc == BD_OK && b->stats.done_n && (rc = bd_brain_final_rows(b)) == BD_OK)
            rc = bd_trace_writer_episodes(b->mem, b->stats.done, b->stats.done_n, b->efin);
        if (rc != BD_OK)
            return rc;
        b->steps += (long long)b->T * cols;
    }
    cJSON *ev = bd_event_new(b, "update");
    cJSON_AddNumberToObject(ev, "muscles", have);
    if (have && b->stats.done_n) { /* the episodes that ended this round: their mean length */
        double len = 0;
        for (int i = 0; i < b->stats.done_n; i++)
            len += b->stats.done[i].length;
        cJSON_AddNumberToObject(ev, "mean_length", len / b->stats.done_n);
    }
    /* the brain's minor page faults so far: flat once its buffers are warm (bench/steady) */
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        cJSON_AddNumberToObject(ev, "minflt", (double)ru.ru_minflt);
    if (b->refused_rollouts) {
        cJSON_AddNumberToObject(ev, "refused_rollouts", (double)b->refused_rollouts);
        cJSON_AddStringToObject(ev, "last_refused_rollout", b->refused_why);
    }
    for (cJSON *x = b->learned ? b->learned->child : NULL; x; x = x->next) /* the last update's */
        cJSON_AddItemToObject(ev, x->string, cJSON_Duplicate(x, 1));
    if ((rc = bd_brain_report(b, ev, stop)) != BD_OK) {
        cJSON_Delete(ev);
        return rc;
    }
    cJSON *admit = cJSON_DetachItemFromObject(ev, "admit");
    cJSON *set = cJSON_DetachItemFromObject(ev, "set");
    if (set && !*stop)
        bd_brain_steer(b, set);
    cJSON_Delete(set);
    /* Several ranks: the learner is called every round, with no columns when no rollout
     * came, so that its collectives pair up with the other ranks' (they agree that no
     * rank learns from a round some rank has nothing of). Skipping them would pair this
     * rank's next stop agreement with another rank's minibatch agreement. */
    if ((have || b->ranks.world > 1) && b->train && !*stop) {
        bd_batch batch = {b->T, b->N, b->S, b->U, b->obs, b->act, b->logp, b->val, b->rew, b->fval,
                          b->lastv, b->term, b->trunc, cols < b->N ? b->valid : NULL, b->fobs, b->wver};
        cJSON_Delete(b->learned);
        b->learned = cJSON_CreateObject();
        rc = b->lops->collect(b->learner, &batch);
        if (rc == BD_OK)
            rc = b->lops->update(b->learner, b->steps, b->diverged, sizeof b->diverged);
        b->lops->stats(b->learner, b->learned);
        if (rc != BD_OK && rc != BD_EINTR)
            b->learn_failed = 1; /* the parameters may be half-updated: not worth keeping */
    }
    for (int k = 0; k < b->M && rc == BD_OK; k++) {
        if (!bd_round_request(b->round, k))
            continue;
        nng_msg *m;
        rc = bd_brain_weights(b, *stop ? BD_WEIGHTS_STOP : 0, &m);
        if (rc == BD_OK && bd_round_answer(b->round, k, m) != BD_OK) {
            nng_msg_free(m); /* it died meanwhile: it will greet again, or not */
        }
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, admit)
        if (cJSON_IsNumber(x))
            bd_round_admit(b->round, x->valueint);
    cJSON_Delete(admit);
    cJSON_Delete(ev); /* the report carried it (the conductor logs the reports) */
    b->round_no++;
    return rc;
}

/* The muscles' socket: ipc for local muscles, and for remote ones, with tcp, a TLS door. */
static int bd_brain_open_sockets(bd_brain *b, const char *tcp)
{
    int rc;
    /* the muscles' socket */
    char *url = bd_url_brain(b->sockdir, b->plan.phase_index, b->ap->index);
    rc = url ? bd_round_open(b->M, BD_MSG_HELLO, BD_MSG_ROLLOUT, &b->round) : bd_seterr(BD_ENOMEM, "out of memory");
    /* the longest message a muscle sends: the rollout of the widest shard with every
     * (step, world) ending (a final observation each); NNG refuses longer ones unread */
    size_t most = BD_WIRE_SP_SLACK + BD_WIRE_HEADER_SIZE + BD_HELLO_SIZE;
    for (int k = 0; k < b->M; k++) {
        int n;
        uint32_t w0;
        bd_agent_shard(b->ap, b->M, k, &n, &w0);
        bd_rollout_hdr h = {(uint32_t)k, (uint32_t)b->T, (uint32_t)n, (uint32_t)b->S, (uint32_t)b->U, w0, 0,
                            (uint64_t)b->T * (uint64_t)n};
        size_t off[BD_RO_COUNT], size[BD_RO_COUNT], bytes = bd_rollout_layout(&h, off, size);
        if (bytes && BD_WIRE_SP_SLACK + BD_WIRE_HEADER_SIZE + bytes > most)
            most = BD_WIRE_SP_SLACK + BD_WIRE_HEADER_SIZE + bytes;
    }
    if (rc == BD_OK)
        rc = bd_round_set_recvmax(b->round, most);
    /* local muscles greet on ipc, remote ones through their own TLS door (wire/round.h),
     * with the server certificate the conductor left in the socket folder (wire/tls.h) */
    int local = b->plan.worker, remote = b->M - b->plan.worker;
    if (rc == BD_OK)
        rc = tcp && local > 0 ? bd_round_listen_for(b->round, url, 0, local, NULL) : bd_round_listen(b->round, url, NULL);
    free(url);
    if (rc == BD_OK && tcp && remote > 0) {
        char *cred = bd_strfmt("%s/server.pem", b->sockdir);
        rc = cred ? bd_tls_load(cred, &b->tls) : bd_seterr(BD_ENOMEM, "out of memory");
        free(cred);
        bd_listen_opts lo = {.tls = b->tls, .cap = BD_TLS_DOOR_CAP(remote), .bound = &b->port};
        if (rc == BD_OK)
            rc = bd_round_listen_for(b->round, tcp, local, remote, &lo);
    }
    return rc;
}

static int bd_brain_setup(bd_brain *b, const char *phase, const char *agent, const bd_registry *reg,
                          const char *device, const char *tcp)
{
    char *path = bd_strfmt("%s/run.yml", b->run_dir);
    int rc = path ? bd_runfile_load_checked(path, b->run_digest, &b->rf) : BD_ENOMEM;
    free(path);
    if (rc != BD_OK)
        return rc;
    int pi = bd_runfile_phase_index(b->rf, phase);
    if (pi < 0)
        return bd_seterr(BD_ENOTFOUND, "run file has no phase '%s'", phase);
    if ((rc = bd_phase_plan_make(b->rf, pi, reg, device, &b->plan)) != BD_OK)
        return rc;
    bd_startup_mark(b->startup, "plan");
    for (int i = 0; i < b->plan.nagents; i++)
        if (strcmp(b->plan.agents[i].cfg->name, agent) == 0)
            b->ap = &b->plan.agents[i];
    if (!b->ap)
        return bd_seterr(BD_ENOTFOUND, "phase '%s' has no agent '%s'", phase, agent);
    b->train = b->plan.ph->mode == BD_MODE_TRAIN && !b->ap->random;
    for (int i = 0; b->train && i < b->plan.nagents; i++) /* a learner alone in its rank spins: bd_ranks_spin */
        b->ranks.learners += !b->plan.agents[i].random;
    /* the plan read the brain's params (bd_kind.parse); the kind's learner uses them */
    b->lops = bd_learner_of(b->ap->brain);
    if (!b->lops || !b->ap->brain->rollout_steps || !b->ap->brain_params)
        return bd_seterr(BD_EINVAL, "brain '%s' of agent '%s' has no learner", b->ap->brain->name, agent);
    b->M = b->plan.muscles;
    b->N = (int)b->ap->columns;
    b->T = (int)b->ap->brain->rollout_steps(b->ap->brain_params);
    b->S = b->ap->nsens;
    b->U = b->ap->nact;
    b->hello = calloc((size_t)b->M, sizeof *b->hello);
    b->taken_back = calloc((size_t)b->M, sizeof *b->taken_back);
    b->revoked = calloc((size_t)b->M, sizeof *b->revoked);
    b->newest = calloc((size_t)b->M, sizeof *b->newest);
    b->refused_row = calloc((size_t)b->M, sizeof *b->refused_row);
    if (!b->hello || !b->taken_back || !b->revoked || !b->newest || !b->refused_row)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if ((rc = bd_stats_init(&b->stats, b->N, b->plan.objective_window > 100 ? b->plan.objective_window : 100)) != BD_OK)
        return rc;
    if (b->plan.episodes_target > 0 && (rc = bd_stats_set_quota(&b->stats, b->plan.episodes_target, b->ap->members)) != BD_OK)
        return rc;
    b->eval_round = -1;
    if (b->train && !isnan(b->plan.greedy_threshold) && (!b->plan.greedy_agent || strcmp(b->plan.greedy_agent, agent) == 0)) {
        if (!reg->greedy)
            return bd_seterr(BD_EINVAL, "agent '%s': greedy_average: this program cannot play greedy episodes", agent);
        if ((rc = reg->greedy->create(b->ap, b->plan.greedy_episodes, &b->eval)) != BD_OK)
            return rc;
        b->greedy = reg->greedy; /* with its worlds: the heartbeats read both (bd_brain_beat) */
        b->eval_next = b->plan.greedy_every;
    }
    /* The checkpoint to start from: `load: {experiment_run, phase, agent}`, or the latest
     * earlier train phase (config/runfile.c; a test phase without one is refused by
     * config/plan.c). */
    const bd_agent_plan *ap = b->ap;
    const bd_agent_cfg *a = ap->cfg;
    if (!b->ap->random && !ap->load_phase && !b->train)
        return bd_seterr(BD_EINVAL, "test phase '%s': agent '%s' has no checkpoint to load",
                         b->plan.ph->name, a->name);
    b->rec_every = a->record_every > 0 ? a->record_every : 1;
    /* record.worlds counts worlds: every member of the agent's group in each */
    long long rec_cols = a->record_worlds * b->ap->members;
    b->rec_nr = rec_cols > 0 && rec_cols < b->N ? (int)rec_cols : b->N;
    if ((rc = bd_brain_alloc_batch(b)) != BD_OK)
        return rc;
    /* memory */
    char *dir = bd_strfmt("%s/memory", b->run_dir);
    rc = dir ? bd_mkdirs(dir) : BD_ENOMEM;
    free(dir);
    if (rc != BD_OK)
        return rc;
    char sfx[16];
    b->mem_path = bd_strfmt("%s/memory/%s.%s%s.h5", b->run_dir, phase, agent, bd_rank_suffix(sfx, sizeof sfx));
    bd_trace_spec spec = {
        .path = b->mem_path, .phase = phase, .agent = agent, .n = b->N, .s = b->S, .u = b->U,
        .sensor_ids = (const char *const *)b->ap->sensor_ids,
        .actuator_ids = (const char *const *)b->ap->actuator_ids,
        .env_name = b->ap->env->desc->name, .env_params_json = b->ap->env->params_json,
        .env_uid = b->ap->env->uid, .members = b->ap->members,
        .group = b->ap->env->desc->ngroups ? b->ap->env->desc->groups[b->ap->group].name : NULL,
        .seed = b->rf->seed, .worlds = b->N, .every = b->rec_every, .no_steps = !a->record_steps,
        /* world ids are global: rank k's start at k x worlds (muscle/muscle.c), so that
         * bodhi replay --verify re-simulates this rank's own worlds */
        .world0 = (uint32_t)((long long)b->ranks.rank * b->ap->env->worlds),
        .compression = a->record_compression ? (bd_compression)bd_compression_parse(a->record_compression)
                                             : bd_compression_default(),
    };
    spec.n = b->rec_nr;
    if ((rc = bd_trace_writer_create(&spec, &b->mem)) != BD_OK)
        return rc;
    bd_startup_mark(b->startup, "trace");
    if ((rc = bd_brain_open_sockets(b, tcp)) != BD_OK)
        return rc;
    bd_startup_mark(b->startup, "sockets");
    return rc;
}

/* The agent's learner (and the checkpoint it starts from), once the brain's sockets are
 * open and its events flow: a learner that loads libtorch in the background holds the
 * dynamic loader's locks for that long, and HDF5 loads its filter plugins through them and
 * NNG starts its threads (their TLS) under them; heartbeats cover a load that waits for it. */
static int bd_brain_learner(bd_brain *b)
{
    const bd_agent_plan *ap = b->ap;
    char *load = NULL;
    if (!ap->random && ap->load_phase
        && !(load = bd_strfmt("%s/checkpoints/%s/%s.pt", ap->load_run ? ap->load_run : b->run_dir, ap->load_phase,
                              ap->load_agent)))
        return bd_seterr(BD_ENOMEM, "out of memory");
    /* the agent's place among the ranks (bd_brain_main's bd_ranks_plan); its group is
     * joined at the end of the first round (bd_ranks_join), with the first rollout under way */
    int rc;
    bd_learner_spec ls = {.plan = &b->plan, .ap = b->ap, .params = b->ap->brain_params, .train = b->train,
                          .device = b->plan.device, .T = b->T, .N = b->N, .cancel = &bd_term_requested,
                          .learners = b->ranks.world, .rank = b->ranks.rank};
    if (b->ranks.world > 1) { /* data-parallel: gradients averaged, statistics summed over the ranks */
        ls.grad_hook = bd_ranks_grad;
        ls.grad_ctx = &b->ranks;
        ls.sum_hook = bd_ranks_sum;
        ls.sum_ctx = &b->ranks;
    }
    rc = b->lops->create(&ls, &b->learner);
    if (rc == BD_OK && load)
        rc = b->lops->load(b->learner, load);
    free(load);
    if (rc != BD_OK)
        return rc;
    bd_startup_mark(b->startup, "network"); /* the first weights */
    return rc;
}

/* After the last round: a muscle's request gets STOP with the current weights. */
static int bd_brain_last(void *ctx, int k, nng_msg **out)
{
    (void)k;
    return bd_brain_weights(ctx, BD_WEIGHTS_STOP, out);
}

/* Every muscle hears STOP before the socket closes: one that greeted again in the last
 * round (ready, not yet admitted) holds a request the last round did not answer, and one
 * whose connection broke late greets again now; each waits for its answer with the
 * connection open. Answered, they leave, and the brain with them. The heartbeats still go
 * out meanwhile (the events connection closes after): a brain that waits here for its
 * muscles to hang up is not taken for hung, and what stays open is said. */
static void bd_brain_drain(bd_brain *b, int stopped)
{
    if (!b->round || !stopped || !b->learner)
        return;
    b->ended = 1;
    bd_round_hooks last = {bd_brain_greet, NULL, b, bd_brain_last, bd_brain_supersedes};
    const double t0 = bd_now();
    int open = bd_round_drain(b->round, &last, 30.0, &bd_term_requested);
    if (open > 0) {
        fprintf(stderr, "bodhi brain %s: %d connection(s) still open %.1f s after the phase's end; closing them\n",
                b->ap ? b->ap->cfg->name : "?", open, bd_now() - t0);
        if (b->ev) {
            cJSON *o = bd_event_new(b, "drained");
            cJSON_AddNumberToObject(o, "open", open);
            cJSON_AddNumberToObject(o, "waited_s", bd_now() - t0);
            bd_event(b, o);
        }
    }
}

static void bd_brain_teardown(bd_brain *b)
{
    /* after the events connection closed: a step slow enough to outlast the conductor's
     * heartbeat deadline is said on stderr (the brain's log), step by step */
    double t[4];
    t[0] = bd_now();
    bd_round_close(b->round);
    bd_tls_destroy(b->tls);
    t[1] = bd_now();
    if (b->learner)
        b->lops->destroy(b->learner);
    t[2] = bd_now();
    bd_ranks_leave(&b->ranks);
    t[3] = bd_now();
    if (t[3] - t[0] > 5.0)
        fprintf(stderr, "bodhi brain %s: closing took %.1f s (connections %.1f s, learner %.1f s, ranks' group %.1f s)\n",
                b->ap ? b->ap->cfg->name : "?", t[3] - t[0], t[1] - t[0], t[2] - t[1], t[3] - t[2]);
    bd_stats_fini(&b->stats);
    if (b->greedy)
        b->greedy->destroy(b->eval);
    free(b->hello);
    free(b->taken_back);
    free(b->revoked);
    free(b->newest);
    free(b->refused_row);
    free(b->obs); free(b->act); free(b->logp); free(b->val); free(b->rew); free(b->fval);
    free(b->lastv); free(b->term); free(b->trunc); free(b->valid); free(b->fobs); free(b->efin); free(b->wver);
    free(b->mem_path);
    free(b->sockdir);
    cJSON_Delete(b->learned);
    bd_steer_fini(&b->steer);
    bd_phase_plan_fini(&b->plan);
    bd_runfile_destroy(b->rf);
}

/* Every muscle greets, then the rounds run until the conductor says stop (or SIGTERM). */
static int bd_brain_loop(bd_brain *b)
{
    bd_round_hooks hooks = {bd_brain_greet, bd_brain_tick, b, NULL, bd_brain_supersedes};
    int rc = bd_round_await_all(b->round, &hooks, &bd_term_requested);
    for (int k = 0; k < b->M && rc == BD_OK; k++)
        bd_round_admit(b->round, k);
    int stop = 0;
    while (rc == BD_OK && !stop)
        rc = bd_brain_round(b, &stop);
    return rc;
}

/* Checkpoint at the end of a train phase, also when interrupted or when the phase failed
 * around the learner (muscles lost, a conductor killed): the parameters are those of the
 * last whole update, and what was learnt is the user's. Not after an update itself failed.
 * Its path (heap), or NULL: none saved (a failure to save becomes *rc and err when *rc was
 * BD_OK). */
static char *bd_brain_checkpoint(bd_brain *b, const char *run_dir, const char *phase, const char *agent, int *rc,
                                 char *err, size_t errlen)
{
    const uint64_t updates = b->learner ? b->lops->version(b->learner) : 0;
    if (!b->train || !b->learner || b->learn_failed || !(*rc == BD_OK || *rc == BD_EINTR || updates > 0))
        return NULL;
    char *dir = bd_strfmt("%s/checkpoints/%s", run_dir, phase);
    char *ckpt = bd_strfmt("%s/%s.pt", dir, agent);
    int crc = dir && ckpt ? bd_mkdirs(dir) : bd_seterr(BD_ENOMEM, "out of memory");
    int saved = 0;
    if (crc == BD_OK)
        crc = b->lops->save(b->learner, ckpt, &saved);
    free(dir);
    if (crc == BD_OK && !saved) { /* a learner with nothing to keep */
        free(ckpt);
        return NULL;
    }
    if (crc != BD_OK) {
        fprintf(stderr, "bodhi brain %s: checkpoint: %s\n", agent, bd_lasterr());
        if (*rc == BD_OK) {
            *rc = crc;
            snprintf(err, errlen, "checkpoint: %s", bd_lasterr());
        }
        free(ckpt);
        return NULL;
    }
    if (b->ap) {
        cJSON *ev = bd_event_new(b, "checkpoint");
        cJSON_AddStringToObject(ev, "path", ckpt);
        bd_event(b, ev);
    }
    return ckpt;
}

/* The phase's result for the conductor: status, episode figures, what was refused. */
static void bd_brain_result(bd_brain *b, int rc, uint64_t updates, const char *ckpt, const char *err)
{
    double el = bd_now() - b->t0;
    cJSON *ev = bd_event_new(b, "result");
    /* stopped by its conductor's SIGUSR2: the run failed (conductor/children.c) */
    cJSON_AddStringToObject(ev, "status", rc == BD_OK ? (b->diverged[0] ? "diverged" : "done")
                                          : rc == BD_EINTR && bd_term_requested != 2 ? "interrupted" : "failed");
    if (rc == BD_OK && b->why[0])
        cJSON_AddStringToObject(ev, "why", b->why);
    /* several ranks: another rank's stop that ended the phase here, and whether the run ends
     * with it on any rank; the conductor takes them (conductor/rounds.c, bd_rank_stop) */
    if (rc == BD_OK && b->stop_rank >= 0)
        cJSON_AddNumberToObject(ev, "stop_rank", b->stop_rank);
    if (b->ranks.world > 1 && b->ends_run)
        cJSON_AddBoolToObject(ev, "ends_run", 1);
    cJSON_AddNumberToObject(ev, "episodes", (double)b->stats.episodes);
    bd_brain_returns(b, ev, 1);
    cJSON_AddNumberToObject(ev, "steps", (double)b->steps);
    cJSON_AddNumberToObject(ev, "steps_per_s", el > 0 ? b->steps / el : 0);
    cJSON_AddNumberToObject(ev, "wall_s", el);
    cJSON_AddNumberToObject(ev, "updates", (double)updates);
    char why[256];
    uint64_t dropped = b->round ? bd_round_dropped(b->round, why, sizeof why) : 0;
    if (dropped) {
        cJSON_AddNumberToObject(ev, "dropped_messages", (double)dropped);
        cJSON_AddStringToObject(ev, "last_dropped", why);
    }
    if (b->refused_rollouts) { /* data not fit to learn from (bd_rollout_check) */
        cJSON_AddNumberToObject(ev, "refused_rollouts", (double)b->refused_rollouts);
        cJSON_AddStringToObject(ev, "last_refused_rollout", b->refused_why);
    }
    uint64_t refused = b->round ? bd_round_refused(b->round, why, sizeof why) : 0;
    if (refused) { /* another's sender id: a stranger's, or an impostor's */
        cJSON_AddNumberToObject(ev, "refused_messages", (double)refused);
        cJSON_AddStringToObject(ev, "last_refused", why);
    }
    uint64_t relistened = b->round ? bd_round_relistened(b->round, why, sizeof why) : 0;
    if (relistened) { /* NNG stopped handing a door's connections over (wire/serve.h) */
        cJSON_AddNumberToObject(ev, "relistened", (double)relistened);
        cJSON_AddStringToObject(ev, "last_relistened", why);
    }
    if (ckpt)
        cJSON_AddStringToObject(ev, "checkpoint", ckpt);
    if (b->mem_path)
        cJSON_AddStringToObject(ev, "memory", b->mem_path);
    if (rc != BD_OK)
        cJSON_AddStringToObject(ev, "error", err);
    bd_event(b, ev);
}

/* Several ranks: the log says when this brain begins to join its learner group. */
static void bd_brain_joining(void *ctx)
{
    bd_brain *b = ctx;
    if (!b->ev || !b->ap)
        return;
    bd_event(b, bd_event_new(b, "group_join"));
}

int bd_brain_main(const char *run_dir, const char *phase, const char *agent, const bd_registry *reg,
                  const char *device, const char *tcp, const char *run_digest)
{
    bd_ranks_place(); /* before any thread: each inherits the share */
    bd_brain b;
    memset(&b, 0, sizeof b);
    b.run_dir = run_dir;
    b.run_digest = run_digest;
    pthread_mutex_init(&b.news_mu, NULL);
    b.t0 = bd_now();
    b.stop_rank = -1;
    b.startup = bd_startup_new("brain");
    /* its place among the ranks first: a rank that fails from here on tells the others. A
     * place the environment gets wrong is this brain's failure, said to the conductor once
     * its events connection is up (below), as every other one is. */
    char place_err[512] = "";
    const int place_rc = bd_ranks_plan(&b.ranks, phase, agent);
    if (place_rc != BD_OK)
        snprintf(place_err, sizeof place_err, "%s", bd_lasterr());
    b.ranks.joining = bd_brain_joining;
    b.ranks.joining_ctx = &b;
    b.ranks.run_digest = run_digest; /* every rank's must be rank 0's (bdt_group_join) */
    int rc = bd_sockdir_find(run_dir, &b.sockdir);
    if (rc == BD_OK)
        rc = bd_brain_setup(&b, phase, agent, reg, device, tcp);
    char *curl = b.sockdir ? bd_url_control(b.sockdir) : NULL;
    if (curl && bd_events_dial(curl, BD_SENDER_BRAIN + (uint32_t)(b.ap ? b.ap->index : 0), &b.ev) == BD_OK) {
        bd_events_set_stop(b.ev, &bd_term_requested);
        bd_events_set_recvmax(b.ev, BD_EVENTS_CHILD_RECVMAX);
        bd_events_beat(b.ev, 500, bd_brain_beat, bd_brain_heard, &b);
    }
    free(curl);
    if (rc == BD_OK && place_rc != BD_OK)
        rc = bd_seterr(place_rc, "%s", place_err);
    if (rc == BD_OK)
        rc = bd_brain_learner(&b);
    if (rc == BD_OK && b.ev) {
        cJSON *ready = bd_event_new(&b, "ready");
        if (b.port)
            cJSON_AddNumberToObject(ready, "port", b.port);
        bd_event(&b, ready);
        if (b.startup) {
            bd_startup_mark(b.startup, "ready");
            cJSON_AddStringToObject(b.startup, "phase", phase);
            cJSON_AddStringToObject(b.startup, "agent", agent);
            bd_event(&b, b.startup); /* sends and frees it */
            b.startup = NULL;
        }
        b.t0 = bd_now();
        bd_events_set_timeout(b.ev, -1); /* a round's report waits for every brain's */
        rc = bd_brain_loop(&b);
        /* The last events (checkpoint, result) go out even after SIGTERM, briefly: the
         * conductor gives a stopping brain a few seconds and answers at once; a conductor
         * that was killed answers nothing (its death may not show in getppid() yet when
         * the death signal arrives, while its other threads die). */
        bd_events_set_stop(b.ev, NULL);
        b.stopping = rc == BD_EINTR;
        bd_events_set_timeout(b.ev, b.stopping ? 400 : 2000);
    }
    char err[1024];
    snprintf(err, sizeof err, "%s", rc == BD_OK ? "" : bd_lasterr());
    bd_ranks_abandon(&b.ranks, rc == BD_OK ? "its brain ended before its first round did" : err);
    /* A conductor that is gone hears nothing more: the events below would only wait. */
    if (bd_parent_gone() && b.ev) {
        bd_events_close(b.ev);
        b.ev = NULL;
    }
    const uint64_t updates = b.learner ? b.lops->version(b.learner) : 0;
    char *ckpt = bd_brain_checkpoint(&b, run_dir, phase, agent, &rc, err, sizeof err);
    int mrc = bd_trace_writer_destroy(b.mem);
    if (mrc != BD_OK && rc == BD_OK) {
        rc = mrc;
        snprintf(err, sizeof err, "memory: %s", bd_lasterr());
    }
    if (b.ap)
        bd_brain_result(&b, rc, updates, ckpt, err);
    free(ckpt);
    bd_brain_drain(&b, rc == BD_OK);
    bd_events_close(b.ev);
    cJSON_Delete(b.startup);
    bd_brain_teardown(&b);
    pthread_mutex_destroy(&b.news_mu);
    if (rc == BD_EINTR)
        return 143;
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi brain %s (phase %s): %s\n", agent, phase, err);
        return 1;
    }
    return 0;
}
