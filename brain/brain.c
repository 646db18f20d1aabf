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
#include <unistd.h>

#include <nng/nng.h>

#include "brain/learner.h"
#include "brain/ppo.h"
#include "brain/stats.h"
#include "common/proc.h"
#include "common/util.h"
#include "config/plan.h"
#include "memory/memory.h"
#include "torch/bd_torch.h"
#include "wire/addr.h"
#include "wire/events.h"
#include "wire/round.h"
#include "wire/stop.h"
#include "wire/wire.h"

const bd_kind bd_brain_kinds[] = {
    {"ppo", "ppo", 0, bd_ppo_check, bd_ppo_rollout_steps, bd_ppo_weights_floats},
    {"random", "random", 1, bd_random_brain_check, bd_ppo_rollout_steps, NULL},
    /* drives a rule-based muscle (fsm): records and counts, learns nothing */
    {"none", "rules", 1, bd_random_brain_check, bd_ppo_rollout_steps, NULL},
};
const int bd_brain_nkinds = (int)(sizeof bd_brain_kinds / sizeof bd_brain_kinds[0]);

typedef struct {
    /* config */
    const char *run_dir;
    const char *run_digest;   /* run.yml's SHA-256 from the conductor (NULL: none) */
    char *sockdir;
    bd_runfile *rf;
    bd_phase_plan plan;
    bd_agent_plan *ap;
    bd_ppo_params pp;
    int train;                /* learn in this phase */
    /* sockets */
    bd_round *round;          /* the M muscles */
    int M;
    bd_events *ev;
    /* muscles, by id */
    bd_hello *hello;          /* (M) what each said when it last greeted */
    /* the round's batch (T, N, ...) over all muscles */
    int T, N, S, U;
    float *obs, *act, *logp, *val, *rew, *fval, *lastv;
    uint8_t *term, *trunc, *valid;
    float *fobs;              /* (T, N, S) final observations, where an episode ended */
    float *efin;              /* (<= T N, S) those of the round's finished episodes, in order */
    /* recording: every K-th env step of the first Nr worlds (record in the run file),
     * which the trace writer keeps of the batches it is given */
    int rec_every, rec_nr;
    long long round_no;
    int port;                 /* the TCP port muscles on other machines dial (0: none) */
    bd_tls *tls;              /* the run's server credential for that port */
    bd_learner learner;
    bd_stats stats;
    bd_trace_writer *mem;
    char *mem_path;
    long long steps;
    double t0;
    double rate_t;            /* when the last round was reported (0: none yet) */
    long long rate_steps;     /* ... and the steps then */
    char why[192];            /* why the phase ended, from the conductor */
    int stopping;             /* interrupted: the last events are best effort */
    cJSON *learned;           /* the last update's losses, for the next round's report */
    int learn_failed;         /* an update failed (not cancelled): no checkpoint of it */
    int kl_streak;            /* updates in a row whose KL was above diverge_kl */
    char diverged[256];       /* why learning diverged (its update undone), or "" */
    long long refused_rollouts; /* rollouts whose data failed bd_rollout_check: not learned from */
    char refused_why[256];    /* the last one's reason */
    /* news from the conductor's answers to heartbeats */
    cJSON *startup;           /* start-up stamps (common/proc.h), sent with "ready" */
    pthread_mutex_t news_mu;
    int *lost;                /* (M) muscles the conductor says are lost */
    uint32_t *lost_pid;       /* (M) ... and the pid each had */
    int nlost;
} bd_brain;

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
static int bd_brain_weights(bd_brain *b, uint32_t flags, nng_msg **out)
{
    const bd_learner *l = &b->learner;
    const int net = l->net != NULL;
    bd_weights_hdr h = {
        .version = l->version, .nparams = net ? l->nparams : 0, .flags = flags,
        .rollout_steps = (uint32_t)b->pp.rollout_steps, .hidden = net ? (uint32_t)b->pp.hidden : 0,
        .layers = net ? (uint32_t)b->pp.layers : 0, .norm_dims = net && l->use_norm ? (uint32_t)b->S : 0,
    };
    uint8_t *payload;
    size_t size = bd_weights_size(&h);
    if (size == 0)
        return bd_seterr(BD_EINVAL, "agent %s: a network of %zu parameters does not fit in a message",
                         b->ap->cfg->name, l->nparams);
    int rc = bd_wire_msg_alloc(out, BD_MSG_WEIGHTS, BD_SENDER_BRAIN + (uint32_t)b->ap->index, (uint32_t)l->version,
                               size, &payload);
    if (rc == BD_OK)
        bd_weights_encode(&h, l->params, payload);
    return rc;
}

/* A muscle greets: check that it is who the plan says, start its columns over if it
 * restarted, and answer with the current weights. */
static int bd_brain_greet(void *ctx, int k, bd_request *req, int again)
{
    bd_brain *b = ctx;
    bd_hello h;
    int rc = bd_hello_decode(req->payload, (size_t)req->h.payload_len, &h);
    int n;
    uint32_t w0;
    bd_agent_shard(b->ap, b->M, k, &n, &w0);
    /* who may greet as muscle k: a local muscle is a process the conductor started (the
     * kernel names the process at the other end of an ipc connection); a remote one comes
     * over TCP. A greeting as a local muscle over TCP, or from any other process, is refused. */
    const int peer = bd_pipe_peer_pid(req->pipe);
    if (rc == BD_OK && k < b->plan.worker
        && (peer <= 0 || h.pid != (uint32_t)peer || bd_proc_parent((pid_t)peer) != getppid()))
        rc = bd_seterr(BD_EPROTO, "a HELLO as local muscle %d from %s, not a muscle this run started", k,
                       peer > 0 ? "another process" : "a TCP connection");
    else if (rc == BD_OK && k >= b->plan.worker && peer > 0)
        rc = bd_seterr(BD_EPROTO, "a HELLO as remote muscle %d over ipc", k);
    if (rc == BD_OK && (h.muscle != (uint32_t)k || h.worlds != (uint32_t)n || h.world0 != w0))
        rc = bd_seterr(BD_EPROTO, "HELLO from muscle %u says it holds columns [%u, +%u); muscle %d of %d "
                       "holds [%u, +%d)", h.muscle, h.world0, h.worlds, k, b->M, w0, n);
    else if (rc == BD_OK && (h.obs_dim != (uint32_t)b->S || h.act_dim != (uint32_t)b->U))
        rc = bd_seterr(BD_EPROTO, "muscle %u sends %u sensors / %u actuators, agent has %d / %d",
                       h.muscle, h.obs_dim, h.act_dim, b->S, b->U);
    nng_msg *m = NULL;
    if (rc == BD_OK)
        rc = bd_brain_weights(b, 0, &m);
    if (rc == BD_OK && (rc = bd_round_reply(b->round, req, m)) != BD_OK)
        nng_msg_free(m);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi brain %s: %s\n", b->ap->cfg->name, bd_lasterr());
        return rc;
    }
    if (again)
        bd_stats_restart(&b->stats, (int)w0, n);
    b->hello[k] = h;
    return BD_OK;
}

/* Muscles the conductor declared lost (a remote muscle gone silent) leave the round. */
static void bd_brain_tick(void *ctx)
{
    bd_brain *b = ctx;
    pthread_mutex_lock(&b->news_mu);
    for (int i = 0; i < b->nlost; i++)
        if (b->hello[b->lost[i]].pid == b->lost_pid[i])
            bd_round_lose(b->round, b->lost[i]);
    b->nlost = 0;
    pthread_mutex_unlock(&b->news_mu);
}

static cJSON *bd_brain_beat(void *ctx)
{
    bd_brain *b = ctx;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "beat");
    cJSON_AddNumberToObject(o, "round", (double)b->round_no);
    return o;
}

/* The conductor's answer to a heartbeat may name muscles it lost: [[id, pid], ...] (the pid
 * tells the lost one from a newer muscle in the same slot). */
static void bd_brain_heard(void *ctx, const cJSON *answer)
{
    bd_brain *b = ctx;
    const cJSON *lost = cJSON_GetObjectItemCaseSensitive(answer, "lost"), *x;
    pthread_mutex_lock(&b->news_mu);
    cJSON_ArrayForEach(x, lost) {
        const cJSON *k = cJSON_GetArrayItem(x, 0), *pid = cJSON_GetArrayItem(x, 1);
        if (cJSON_IsNumber(k) && cJSON_IsNumber(pid) && k->valueint >= 0 && k->valueint < b->M
            && b->nlost < b->M) {
            b->lost[b->nlost] = k->valueint;
            b->lost_pid[b->nlost++] = (uint32_t)pid->valuedouble;
        }
    }
    pthread_mutex_unlock(&b->news_mu);
}

/* Copies muscle k's rollout into the (T, N) batch and marks its columns valid. BD_EINVAL
 * (nothing copied) when its data is not fit to learn from (bd_rollout_check); another
 * error when it does not fit the muscle's HELLO. */
static int bd_brain_collect(bd_brain *b, int k, const bd_request *req)
{
    bd_rollout_hdr r;
    const uint8_t *p = req->payload;
    int rc = bd_rollout_decode(p, (size_t)req->h.payload_len, &r);
    if (rc != BD_OK)
        return rc;
    const bd_hello *hi = &b->hello[k];
    if (r.muscle != (uint32_t)k || r.N != hi->worlds || r.world0 != hi->world0 || r.T != (uint32_t)b->T
        || r.S != (uint32_t)b->S || r.U != (uint32_t)b->U)
        return bd_seterr(BD_EPROTO, "rollout from muscle %d has dims T=%u N=%u S=%u U=%u world0=%u "
                                    "that disagree with its HELLO / the agent",
                         k, r.T, r.N, r.S, r.U, r.world0);
    if (bd_rollout_check(p, (size_t)req->h.payload_len, &r, b->ap->continuous ? 0 : (uint32_t)b->ap->n_actions)
        != BD_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", bd_lasterr());
        return bd_seterr(BD_EINVAL, "muscle %d: %s", k, why);
    }
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    bd_rollout_layout(&r, off, size);
    size_t n = r.N, N = (size_t)b->N, w0 = r.world0;
    for (int t = 0; t < b->T; t++) {
        size_t src = (size_t)t * n, dst = (size_t)t * N + w0;
        memcpy(b->obs + dst * b->S, p + off[BD_RO_OBS] + 4 * src * b->S, 4 * n * b->S);
        memcpy(b->act + dst * b->U, p + off[BD_RO_ACTIONS] + 4 * src * b->U, 4 * n * b->U);
        memcpy(b->logp + dst, p + off[BD_RO_LOGP] + 4 * src, 4 * n);
        memcpy(b->val + dst, p + off[BD_RO_VALUES] + 4 * src, 4 * n);
        memcpy(b->rew + dst, p + off[BD_RO_REWARDS] + 4 * src, 4 * n);
        memcpy(b->fval + dst, p + off[BD_RO_FINAL_VALUES] + 4 * src, 4 * n);
        memcpy(b->term + dst, p + off[BD_RO_TERMINATED] + src, n);
        memcpy(b->trunc + dst, p + off[BD_RO_TRUNCATED] + src, n);
    }
    memcpy(b->lastv + w0, p + off[BD_RO_LAST_VALUES], 4 * n);
    /* the ended episodes' final observations, in (t, world) order */
    const uint8_t *fo = p + off[BD_RO_FINAL_OBS];
    const size_t S = (size_t)b->S;
    for (size_t t = 0; t < (size_t)b->T; t++)
        for (size_t i = 0; i < n; i++)
            if (p[off[BD_RO_TERMINATED] + t * n + i] | p[off[BD_RO_TRUNCATED] + t * n + i]) {
                memcpy(b->fobs + ((t * N + w0 + i) * S), fo, 4 * S);
                fo += 4 * S;
            }
    memset(b->valid + w0, 1, n);
    return BD_OK;
}

/* The final observations of the episodes bd_stats_add just finished, in its order
 * ((t, world) among the valid columns), into b->efin. */
static int bd_brain_final_rows(bd_brain *b)
{
    const size_t N = (size_t)b->N, S = (size_t)b->S;
    int k = 0;
    for (size_t t = 0; t < (size_t)b->T; t++)
        for (size_t i = 0; i < N; i++) {
            size_t c = t * N + i;
            if (!b->valid[i] || !(b->term[c] | b->trunc[c]))
                continue;
            if (k >= b->stats.done_n)
                return bd_seterr(BD_ESTATE, "brain: more ended episodes than finished ones");
            memcpy(b->efin + (size_t)k * S, b->fobs + c * S, sizeof(float) * S);
            k++;
        }
    return k == b->stats.done_n ? BD_OK : bd_seterr(BD_ESTATE, "brain: %d final observations for %d episodes", k,
                                                    b->stats.done_n);
}

/* Columns no muscle filled this round: NaN data, no episode flags. */
static void bd_brain_blank(bd_brain *b)
{
    const size_t N = (size_t)b->N;
    for (size_t i = 0; i < N; i++) {
        if (b->valid[i])
            continue;
        for (int t = 0; t < b->T; t++) {
            size_t c = (size_t)t * N + i;
            for (int s = 0; s < b->S; s++)
                b->obs[c * (size_t)b->S + (size_t)s] = NAN;
            for (int u = 0; u < b->U; u++)
                b->act[c * (size_t)b->U + (size_t)u] = NAN;
            b->logp[c] = b->val[c] = b->rew[c] = b->fval[c] = NAN;
            b->term[c] = b->trunc[c] = 0;
        }
        b->lastv[i] = NAN;
    }
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
    double mean = b->stats.episodes >= p->objective_window ? bd_stats_mean_recent(&b->stats, p->objective_window)
                                                           : NAN;
    if (p->episodes_target > 0 && b->stats.episodes >= p->episodes_target) {
        snprintf(buf, len, "%s: %lld episodes", bd_stop_words(BD_STOP_EPISODES), (long long)b->stats.episodes);
        return buf;
    }
    if (objective && mean >= p->objective_threshold) {
        /* checked once a rollout: the steps said are that rollout's end, not the episode's */
        snprintf(buf, len, "%s: mean return %.4g over the last %d episodes >= %g, checked at the end of each rollout "
                 "(every %lld agent-steps)", bd_stop_words(BD_STOP_OBJECTIVE), mean, p->objective_window,
                 p->objective_threshold,
                 (long long)b->T * (long long)b->N);
        return buf;
    }
    if (cap > 0 && b->steps >= cap) {
        if (objective && isnan(mean))
            snprintf(buf, len, "%s: %lld agent-steps, objective not reached (fewer than %d episodes)",
                     bd_stop_words(BD_STOP_STEP_CAP), (long long)b->steps, p->objective_window);
        else if (objective)
            snprintf(buf, len, "%s: %lld agent-steps, objective not reached (mean return %.4g < %g)",
                     bd_stop_words(BD_STOP_STEP_CAP), (long long)b->steps, mean, p->objective_threshold);
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
    if (!b->obs || !b->act || !b->logp || !b->val || !b->rew || !b->fval || !b->lastv || !b->term
        || !b->trunc || !b->valid || !b->fobs || !b->efin)
        return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", b->T, b->N);
    return BD_OK;
}

/* Reports round r to the conductor and waits for its word: *stop (with the reason in
 * b->why) and the muscles to admit. */
static int bd_brain_report(bd_brain *b, cJSON *ev, int *stop)
{
    char dbuf[320];
    const char *done = bd_brain_done(b, dbuf, sizeof dbuf);
    cJSON_AddNumberToObject(ev, "round", (double)b->round_no);
    cJSON_AddNumberToObject(ev, "update", (double)b->learner.version);
    cJSON_AddNumberToObject(ev, "steps", (double)b->steps);
    /* the rate since the last report: a round and the update after it. The first round
     * has no update before it, so its rate would flatter: none is given. */
    const double now = bd_now();
    if (b->rate_t > 0 && now > b->rate_t)
        cJSON_AddNumberToObject(ev, "steps_per_s", (double)(b->steps - b->rate_steps) / (now - b->rate_t));
    b->rate_t = now;
    b->rate_steps = b->steps;
    cJSON_AddNumberToObject(ev, "episodes", (double)b->stats.episodes);
    if (b->stats.episodes) {
        cJSON_AddNumberToObject(ev, "mean_return", bd_stats_mean_recent(&b->stats, 100));
        cJSON_AddNumberToObject(ev, "max_return", b->stats.max_return);
    }
    if (done)
        cJSON_AddStringToObject(ev, "done", done);
    cJSON *ready = cJSON_AddArrayToObject(ev, "ready");
    for (int k = 0; k < b->M; k++)
        if (bd_round_state(b->round, k) == BD_PEER_READY)
            cJSON_AddItemToArray(ready, cJSON_CreateNumber(k));
    cJSON *answer = NULL;
    int rc = b->ev ? bd_events_send(b->ev, ev, &answer)
                   : bd_seterr(BD_ECLOSED, "no connection to the conductor");
    if (rc != BD_OK)
        return bd_term_requested ? bd_seterr(BD_EINTR, "stopped by SIGTERM") : rc;
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(answer, "stop");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(answer, "why");
    if (!cJSON_IsBool(s)) {
        cJSON_Delete(answer);
        return bd_seterr(BD_EPROTO, "the conductor's answer to round %lld says neither go on nor stop",
                         b->round_no);
    }
    *stop = cJSON_IsTrue(s);
    snprintf(b->why, sizeof b->why, "%s", cJSON_IsString(why) ? why->valuestring : "");
    /* the muscles to admit, handed to the caller in ev: they are admitted after this
     * round's answers, and count from the next round */
    cJSON *admit = cJSON_DetachItemFromObjectCaseSensitive(answer, "admit");
    cJSON_Delete(answer);
    cJSON_AddItemToObject(ev, "admit", admit ? admit : cJSON_CreateArray());
    return BD_OK;
}

/* After an update: a loss that is not finite, or a KL above diverge_kl in diverge_updates
 * updates in a row, is divergence. The update is undone, so the muscles and the checkpoint
 * get the parameters from before it, and the next report ends the phase (bd_brain_done). */
static int bd_brain_check_divergence(bd_brain *b)
{
    static const char *const keys[] = {"policy_loss", "value_loss", "entropy", "approx_kl"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0] && !b->diverged[0]; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(b->learned, keys[k]);
        if (cJSON_IsNumber(v) && !isfinite(v->valuedouble))
            snprintf(b->diverged, sizeof b->diverged, "%s is %g after update %lld", keys[k], v->valuedouble,
                     (long long)b->learner.version);
    }
    const cJSON *kl = cJSON_GetObjectItemCaseSensitive(b->learned, "approx_kl");
    b->kl_streak = cJSON_IsNumber(kl) && kl->valuedouble > b->pp.diverge_kl ? b->kl_streak + 1 : 0;
    if (!b->diverged[0] && b->kl_streak > 0 && b->kl_streak >= b->pp.diverge_updates)
        snprintf(b->diverged, sizeof b->diverged, "approx_kl %.4g above diverge_kl %g in %d update(s) in a row "
                 "(update %lld)", kl->valuedouble, b->pp.diverge_kl, b->kl_streak, (long long)b->learner.version);
    if (!b->diverged[0])
        return BD_OK;
    size_t l = strlen(b->diverged);
    snprintf(b->diverged + l, sizeof b->diverged - l, "; the checkpoint keeps the parameters before it");
    return bd_learner_undo(&b->learner);
}

/* One round: gather, record, report, learn, answer. *stop when the phase ends. */
static int bd_brain_round(bd_brain *b, int *stop)
{
    bd_round_hooks hooks = {bd_brain_greet, bd_brain_tick, b};
    int rc = bd_round_gather(b->round, &hooks, &bd_term_requested);
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
            snprintf(b->refused_why, sizeof b->refused_why, "%s", bd_lasterr());
            fprintf(stderr, "bodhi brain %s: round %lld: refused the rollout of %s\n", b->ap->cfg->name, b->round_no,
                    bd_lasterr());
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
        have++;
    }
    long long cols = 0;
    for (int i = 0; i < b->N; i++)
        cols += b->valid[i];
    if (have) {
        if (cols < b->N)
            bd_brain_blank(b);
        rc = b->ap->cfg->record_steps ? bd_trace_writer_append(b->mem, b->T, b->obs, b->act, b->rew, b->term, b->trunc)
                                      : BD_OK;
        if (rc == BD_OK)
            rc = bd_stats_add(&b->stats, b->T, b->rew, b->term, b->trunc, cols < b->N ? b->valid : NULL);
        if (rc == BD_OK && b->stats.done_n && (rc = bd_brain_final_rows(b)) == BD_OK)
            rc = bd_trace_writer_episodes(b->mem, b->stats.done, b->stats.done_n, b->efin);
        if (rc != BD_OK)
            return rc;
        b->steps += (long long)b->T * cols;
    }
    cJSON *ev = bd_event_new(b, "update");
    cJSON_AddNumberToObject(ev, "muscles", have);
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
    if (have && b->train && !*stop) {
        bd_batch batch = {b->T, b->N, b->S, b->U, b->obs, b->act, b->logp, b->val, b->rew, b->fval,
                          b->lastv, b->term, b->trunc, cols < b->N ? b->valid : NULL};
        cJSON_Delete(b->learned);
        b->learned = cJSON_CreateObject();
        rc = bd_learner_update(&b->learner, &batch, b->steps, b->learned);
        if (rc == BD_OK)
            rc = bd_brain_check_divergence(b);
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
    /* total_steps' default: the step cap, in this agent's steps when the cap counts another
     * agent's (the agents step together: steps scale with their columns) */
    long long total = b->plan.max_agent_steps > 0 ? b->plan.max_agent_steps : 1000000;
    for (int i = 0; b->plan.max_agent_steps > 0 && b->plan.max_steps_agent && i < b->plan.nagents; i++)
        if (strcmp(b->plan.agents[i].cfg->name, b->plan.max_steps_agent) == 0 && b->plan.agents[i].columns > 0)
            total = (long long)((double)b->plan.max_agent_steps * (double)b->ap->columns
                                / (double)b->plan.agents[i].columns);
    if ((rc = bd_ppo_params_parse(b->ap->cfg->brain.params, total, b->plan.max_columns, &b->pp)) != BD_OK)
        return rc;
    b->M = b->plan.muscles;
    b->N = (int)b->ap->columns;
    b->T = b->pp.rollout_steps;
    b->S = b->ap->nsens;
    b->U = b->ap->nact;
    b->hello = calloc((size_t)b->M, sizeof *b->hello);
    b->lost = calloc((size_t)b->M, sizeof *b->lost);
    b->lost_pid = calloc((size_t)b->M, sizeof *b->lost_pid);
    if (!b->hello || !b->lost || !b->lost_pid)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if ((rc = bd_stats_init(&b->stats, b->N, b->plan.objective_window > 100 ? b->plan.objective_window : 100)) != BD_OK)
        return rc;
    if (b->plan.episodes_target > 0 && (rc = bd_stats_set_quota(&b->stats, b->plan.episodes_target, b->ap->members)) != BD_OK)
        return rc;
    /* The checkpoint to start from: `load: {experiment_run, phase, agent}`, or the latest
     * earlier train phase (config/runfile.c; a test phase without one is refused by
     * config/plan.c). */
    const bd_agent_plan *ap = b->ap;
    const bd_agent_cfg *a = ap->cfg;
    char *load = NULL;
    if (!ap->random && ap->load_phase
        && !(load = bd_strfmt("%s/checkpoints/%s/%s.pt", ap->load_run ? ap->load_run : b->run_dir, ap->load_phase,
                              ap->load_agent)))
        return bd_seterr(BD_ENOMEM, "out of memory");
    if (!b->ap->random && !load && !b->train)
        return bd_seterr(BD_EINVAL, "test phase '%s': agent '%s' has no checkpoint to load",
                         b->plan.ph->name, a->name);
    rc = bd_learner_init(&b->learner, b->ap, &b->pp, b->train, b->plan.device, b->T, b->N, load,
                         &bd_term_requested);
    free(load);
    if (rc != BD_OK)
        return rc;
    bd_startup_mark(b->startup, "network"); /* the first weights */
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
    b->mem_path = bd_strfmt("%s/memory/%s.%s.h5", b->run_dir, phase, agent);
    bd_trace_spec spec = {
        .path = b->mem_path, .phase = phase, .agent = agent, .n = b->N, .s = b->S, .u = b->U,
        .sensor_ids = (const char *const *)b->ap->sensor_ids,
        .actuator_ids = (const char *const *)b->ap->actuator_ids,
        .env_name = b->ap->env->desc->name, .env_params_json = b->ap->env->params_json,
        .env_uid = b->ap->env->uid, .members = b->ap->members,
        .group = b->ap->env->desc->ngroups ? b->ap->env->desc->groups[b->ap->group].name : NULL,
        .seed = b->rf->seed, .worlds = b->N, .every = b->rec_every, .no_steps = !a->record_steps,
        .compression = a->record_compression ? (bd_compression)bd_compression_parse(a->record_compression)
                                             : bd_compression_default(),
    };
    spec.n = b->rec_nr;
    if ((rc = bd_trace_writer_create(&spec, &b->mem)) != BD_OK)
        return rc;
    bd_startup_mark(b->startup, "trace");
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
    bd_startup_mark(b->startup, "sockets");
    return rc;
}

static void bd_brain_teardown(bd_brain *b, int stopped)
{
    if (b->round && stopped)
        bd_round_wait_hangup(b->round, 30.0, &bd_term_requested);
    bd_round_close(b->round);
    bd_tls_destroy(b->tls);
    bd_learner_fini(&b->learner);
    bd_stats_fini(&b->stats);
    free(b->hello);
    free(b->lost);
    free(b->lost_pid);
    free(b->obs); free(b->act); free(b->logp); free(b->val); free(b->rew); free(b->fval);
    free(b->lastv); free(b->term); free(b->trunc); free(b->valid); free(b->fobs); free(b->efin);
    free(b->mem_path);
    free(b->sockdir);
    cJSON_Delete(b->learned);
    bd_phase_plan_fini(&b->plan);
    bd_runfile_destroy(b->rf);
}

/* Every muscle greets, then the rounds run until the conductor says stop (or SIGTERM). */
static int bd_brain_loop(bd_brain *b)
{
    bd_round_hooks hooks = {bd_brain_greet, bd_brain_tick, b};
    int rc = bd_round_await_all(b->round, &hooks, &bd_term_requested);
    for (int k = 0; k < b->M && rc == BD_OK; k++)
        bd_round_admit(b->round, k);
    int stop = 0;
    while (rc == BD_OK && !stop)
        rc = bd_brain_round(b, &stop);
    return rc;
}

/* libtorch's intra-op threads for the learner. A minibatch under 4096 samples is too small
 * for parallel regions to pay, and their spinning workers starve anything else that wants
 * the cores: on 2 cores beside one busy process the CartPole train phase (minibatches of
 * 256) took 8.2-9.8 s with 2 threads and 3.9-4.0 s with 1 (quiet: 3.6-4.0 s either way).
 * Larger minibatches use every core: 65536-sample minibatches learned 1.6x faster with
 * 2 threads than with 1 (7.6 s against 12.1 s per 1M-sample update). */
static int bd_learner_threads(const bd_brain *b)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long long tn = (long long)b->T * b->N;
    long long mb = tn / bdt_ppo_minibatch_count(&b->pp.opt, tn); /* as the shim cuts the batch */
    return mb < 4096 || cores < 2 ? 1 : (int)cores;
}

int bd_brain_main(const char *run_dir, const char *phase, const char *agent, const bd_registry *reg,
                  const char *device, const char *tcp, const char *run_digest)
{
    bd_brain b;
    memset(&b, 0, sizeof b);
    b.run_dir = run_dir;
    b.run_digest = run_digest;
    pthread_mutex_init(&b.news_mu, NULL);
    b.t0 = bd_now();
    b.startup = bd_startup_new("brain");
    int rc = bd_sockdir_find(run_dir, &b.sockdir);
    if (rc == BD_OK)
        rc = bd_brain_setup(&b, phase, agent, reg, device, tcp);
    if (rc == BD_OK)
        bdt_set_threads(bd_learner_threads(&b));
    char *curl = b.sockdir ? bd_url_control(b.sockdir) : NULL;
    if (curl && bd_events_dial(curl, BD_SENDER_BRAIN + (uint32_t)(b.ap ? b.ap->index : 0), &b.ev) == BD_OK) {
        bd_events_set_stop(b.ev, &bd_term_requested);
        bd_events_set_recvmax(b.ev, BD_EVENTS_CHILD_RECVMAX);
        bd_events_beat(b.ev, 500, bd_brain_beat, bd_brain_heard, &b);
    }
    free(curl);
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
    /* A conductor that is gone hears nothing more: the events below would only wait. */
    if (bd_parent_gone() && b.ev) {
        bd_events_close(b.ev);
        b.ev = NULL;
    }
    /* Checkpoint at the end of a train phase, also when interrupted or when the phase
     * failed around the learner (muscles lost, a conductor killed): the parameters are
     * those of the last whole update, and what was learnt is the user's. Not after an
     * update itself failed. */
    char *ckpt = NULL;
    if (b.train && b.learner.net && !b.learn_failed
        && (rc == BD_OK || rc == BD_EINTR || b.learner.version > 0)) {
        char *dir = bd_strfmt("%s/checkpoints/%s", run_dir, phase);
        ckpt = bd_strfmt("%s/%s.pt", dir, agent);
        int crc = dir && ckpt ? bd_mkdirs(dir) : bd_seterr(BD_ENOMEM, "out of memory");
        if (crc == BD_OK)
            crc = bd_learner_save(&b.learner, ckpt);
        free(dir);
        if (crc != BD_OK) {
            fprintf(stderr, "bodhi brain %s: checkpoint: %s\n", agent, bd_lasterr());
            if (rc == BD_OK) {
                rc = crc;
                snprintf(err, sizeof err, "checkpoint: %s", bd_lasterr());
            }
            free(ckpt);
            ckpt = NULL;
        } else if (b.ap) {
            cJSON *ev = bd_event_new(&b, "checkpoint");
            cJSON_AddStringToObject(ev, "path", ckpt);
            bd_event(&b, ev);
        }
    }
    int mrc = bd_trace_writer_destroy(b.mem);
    if (mrc != BD_OK && rc == BD_OK) {
        rc = mrc;
        snprintf(err, sizeof err, "memory: %s", bd_lasterr());
    }
    if (b.ap) {
        double el = bd_now() - b.t0;
        cJSON *ev = bd_event_new(&b, "result");
        cJSON_AddStringToObject(ev, "status", rc == BD_OK ? (b.diverged[0] ? "diverged" : "done")
                                              : rc == BD_EINTR ? "interrupted" : "failed");
        if (rc == BD_OK && b.why[0])
            cJSON_AddStringToObject(ev, "why", b.why);
        cJSON_AddNumberToObject(ev, "episodes", (double)b.stats.episodes);
        cJSON_AddNumberToObject(ev, "mean_return", bd_stats_mean_recent(&b.stats, 100));
        cJSON_AddNumberToObject(ev, "max_return", b.stats.episodes ? b.stats.max_return : 0);
        cJSON_AddNumberToObject(ev, "steps", (double)b.steps);
        cJSON_AddNumberToObject(ev, "steps_per_s", el > 0 ? b.steps / el : 0);
        cJSON_AddNumberToObject(ev, "wall_s", el);
        cJSON_AddNumberToObject(ev, "updates", (double)b.learner.version);
        char why[256];
        uint64_t dropped = b.round ? bd_round_dropped(b.round, why, sizeof why) : 0;
        if (dropped) {
            cJSON_AddNumberToObject(ev, "dropped_messages", (double)dropped);
            cJSON_AddStringToObject(ev, "last_dropped", why);
        }
        if (b.refused_rollouts) { /* data not fit to learn from (bd_rollout_check) */
            cJSON_AddNumberToObject(ev, "refused_rollouts", (double)b.refused_rollouts);
            cJSON_AddStringToObject(ev, "last_refused_rollout", b.refused_why);
        }
        uint64_t refused = b.round ? bd_round_refused(b.round, why, sizeof why) : 0;
        if (refused) { /* another's sender id: a stranger's, or an impostor's */
            cJSON_AddNumberToObject(ev, "refused_messages", (double)refused);
            cJSON_AddStringToObject(ev, "last_refused", why);
        }
        if (ckpt)
            cJSON_AddStringToObject(ev, "checkpoint", ckpt);
        if (b.mem_path)
            cJSON_AddStringToObject(ev, "memory", b.mem_path);
        if (rc != BD_OK)
            cJSON_AddStringToObject(ev, "error", err);
        bd_event(&b, ev);
    }
    free(ckpt);
    bd_events_close(b.ev);
    cJSON_Delete(b.startup);
    bd_brain_teardown(&b, rc == BD_OK);
    pthread_mutex_destroy(&b.news_mu);
    if (rc == BD_EINTR)
        return 143;
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi brain %s (phase %s): %s\n", agent, phase, err);
        return 1;
    }
    return 0;
}
