/* brain.c: the learner process (see brain.h).
 *
 * Rounds (wire/round.h): one request from every muscle is held at once and all are
 * answered together after learning (synchronous PPO). A gather looks at SIGTERM's flag
 * every 200 ms; the memory is flushed before exit.
 * Batch layout: world columns in global order, muscle k's shard at [world0_k, +N_k). */
#include "brain/brain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "brain/obsnorm.h"
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
#include "wire/wire.h"

const bd_kind bd_brain_kinds[] = {
    {"ppo", "ppo", bd_ppo_check},
    {"random", "random", NULL},
};
const int bd_brain_nkinds = (int)(sizeof bd_brain_kinds / sizeof bd_brain_kinds[0]);

typedef struct {
    /* config */
    const char *run_dir;
    bd_runfile *rf;
    bd_phase_plan plan;
    bd_agent_plan *ap;
    bd_ppo_params pp;
    int train;                /* learn in this phase */
    /* sockets */
    bd_round *round;          /* one request from each of the W muscles */
    int W;
    bd_events *ev;
    /* muscles, by id */
    bd_hello *hello;
    /* batch (T, N, ...) over all muscles */
    int T, N, S, U;
    float *obs, *act, *logp, *val, *rew, *fval, *lastv, *adv, *ret;
    uint8_t *term, *trunc;
    int64_t *perm;
    /* learning */
    bdt_policy *policy;
    bdt_ppo *ppo;
    float *params;            /* policy parameters, then the normaliser (2 S) with norm_obs */
    size_t nparams;           /* policy parameters */
    int use_norm;
    bd_obsnorm norm;
    float *nobs;              /* (T, N, S) normalised batch for the learner */
    uint64_t version;
    bd_stats stats;
    bd_trace_writer *mem;
    char *mem_path;
    long long steps;
    double t0;
} bd_brain;

static void bd_event(bd_brain *b, cJSON *o)
{
    if (b->ev && bd_events_send(b->ev, o) != BD_OK)
        fprintf(stderr, "bodhi brain %s: %s\n", b->ap->cfg->name, bd_lasterr());
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

/* Answers every muscle with the current weights (flags: BD_WEIGHTS_STOP). */
static int bd_brain_reply(bd_brain *b, uint32_t flags)
{
    int rc = BD_OK;
    const int net = !b->ap->random;
    bd_weights_hdr h = {
        .version = b->version, .nparams = net ? b->nparams : 0, .flags = flags,
        .rollout_steps = (uint32_t)b->pp.rollout_steps, .hidden = net ? (uint32_t)b->pp.hidden : 0,
        .layers = net ? (uint32_t)b->pp.layers : 0, .norm_dims = net && b->use_norm ? (uint32_t)b->S : 0,
    };
    for (int i = 0; i < b->W; i++) {
        nng_msg *m;
        uint8_t *payload;
        int r = bd_wire_msg_alloc(&m, BD_MSG_WEIGHTS, 1000u + (uint32_t)b->ap->index,
                                  (uint32_t)b->version, bd_weights_size(&h), &payload);
        if (r == BD_OK) {
            bd_weights_encode(&h, b->params, payload);
            if ((r = bd_round_answer(b->round, i, m)) != BD_OK)
                nng_msg_free(m);
        }
        if (r != BD_OK && rc == BD_OK)
            rc = r;
    }
    return rc;
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
    b->adv = malloc(sizeof(float) * tn);
    b->ret = malloc(sizeof(float) * tn);
    b->lastv = malloc(sizeof(float) * (size_t)b->N);
    b->term = malloc(tn);
    b->trunc = malloc(tn);
    b->perm = b->train ? malloc(sizeof(int64_t) * tn * (size_t)b->pp.opt.epochs) : NULL;
    if (b->use_norm && b->train && !(b->nobs = malloc(sizeof(float) * tn * (size_t)b->S)))
        return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", b->T, b->N);
    if (!b->obs || !b->act || !b->logp || !b->val || !b->rew || !b->fval || !b->adv || !b->ret
        || !b->lastv || !b->term || !b->trunc || (b->train && !b->perm))
        return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", b->T, b->N);
    return BD_OK;
}

/* HELLO round: learns which muscle holds which worlds, answers with the initial weights. */
static int bd_brain_greet(bd_brain *b)
{
    int rc = bd_round_gather(b->round, &bd_term_requested);
    long long total = 0;
    for (int i = 0; i < b->W && rc == BD_OK; i++) {
        bd_wire_header h;
        const uint8_t *p;
        bd_hello hello;
        rc = bd_wire_msg_decode(bd_round_request(b->round, i), BD_MSG_HELLO, &h, &p);
        if (rc == BD_OK)
            rc = bd_hello_decode(p, (size_t)h.payload_len, &hello);
        if (rc != BD_OK)
            break;
        if (hello.muscle >= (uint32_t)b->W || b->hello[hello.muscle].worlds)
            rc = bd_seterr(BD_EPROTO, "HELLO from muscle %u: unknown or duplicate id (W=%d)",
                           hello.muscle, b->W);
        else if (hello.obs_dim != (uint32_t)b->S || hello.act_dim != (uint32_t)b->U)
            rc = bd_seterr(BD_EPROTO, "muscle %u sends %u sensors / %u actuators, agent has %d / %d",
                           hello.muscle, hello.obs_dim, hello.act_dim, b->S, b->U);
        else if (hello.worlds == 0 || (long long)hello.world0 + hello.worlds > b->plan.worlds)
            rc = bd_seterr(BD_EPROTO, "muscle %u holds worlds [%u, +%u) outside 0..%lld", hello.muscle,
                           hello.world0, hello.worlds, b->plan.worlds);
        else
            b->hello[hello.muscle] = hello;
        total += hello.worlds;
    }
    if (rc == BD_OK && total != b->plan.worlds)
        rc = bd_seterr(BD_EPROTO, "muscles hold %lld worlds, the phase has %lld", total, b->plan.worlds);
    if (rc == BD_OK)
        rc = bd_brain_reply(b, 0);
    bd_round_release(b->round);
    return rc;
}

/* Copies every slot's rollout into the (T, N) batch. */
static int bd_brain_collect(bd_brain *b)
{
    for (int i = 0; i < b->W; i++) {
        bd_wire_header h;
        const uint8_t *p;
        bd_rollout_hdr r;
        int rc = bd_wire_msg_decode(bd_round_request(b->round, i), BD_MSG_ROLLOUT, &h, &p);
        if (rc == BD_OK)
            rc = bd_rollout_decode(p, (size_t)h.payload_len, &r);
        if (rc != BD_OK)
            return rc;
        if (r.muscle >= (uint32_t)b->W || r.N != b->hello[r.muscle].worlds
            || r.world0 != b->hello[r.muscle].world0 || r.T != (uint32_t)b->T
            || r.S != (uint32_t)b->S || r.U != (uint32_t)b->U)
            return bd_seterr(BD_EPROTO, "rollout from muscle %u has dims T=%u N=%u S=%u U=%u world0=%u "
                                        "that disagree with its HELLO / the agent",
                             r.muscle, r.T, r.N, r.S, r.U, r.world0);
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
    }
    return BD_OK;
}

static double bd_explained_variance(const float *val, const float *ret, size_t n)
{
    double my = 0, md = 0;
    for (size_t k = 0; k < n; k++) {
        my += ret[k];
        md += ret[k] - val[k];
    }
    my /= (double)n;
    md /= (double)n;
    double vy = 0, vd = 0;
    for (size_t k = 0; k < n; k++) {
        double y = ret[k] - my, d = ret[k] - val[k] - md;
        vy += y * y;
        vd += d * d;
    }
    return vy == 0 ? NAN : 1.0 - vd / vy;
}

static int bd_brain_learn(bd_brain *b, cJSON *ev)
{
    int tn = b->T * b->N;
    bd_gae(b->T, b->N, b->rew, b->val, b->fval, b->lastv, b->term, b->trunc, (float)b->pp.gamma,
           (float)b->pp.gae_lambda, b->adv, b->ret);
    bd_ppo_perm(b->perm, tn, b->pp.opt.epochs, b->ap->seed, b->version);
    if (b->pp.anneal_lr && b->pp.total_steps > 0) {
        double frac = 1.0 - (double)b->steps / (double)b->pp.total_steps;
        if (frac < 0.01)
            frac = 0.01;
        bdt_ppo_set_lr(b->ppo, (float)(frac * b->pp.learning_rate));
    }
    bdt_ppo_stats st;
    double t0 = bd_now();
    /* The learner sees what the muscles' policy saw: the batch normalised with the
     * statistics in force while it was collected; only then do they take it in. */
    const float *x = b->obs;
    if (b->use_norm) {
        bd_obsnorm_apply(&b->norm, b->obs, b->nobs, (size_t)tn);
        x = b->nobs;
    }
    int rc = bdt_ppo_update(b->ppo, x, b->act, b->logp, b->adv, b->ret, b->val, tn, b->perm, &st);
    if (rc == BD_OK)
        rc = bdt_policy_get_params(b->policy, b->params, b->nparams);
    if (rc != BD_OK)
        return rc;
    if (b->use_norm) {
        bd_obsnorm_update(&b->norm, b->obs, (size_t)tn);
        bd_obsnorm_pack(&b->norm, b->params + b->nparams);
    }
    b->version++;
    cJSON_AddNumberToObject(ev, "policy_loss", st.policy_loss);
    cJSON_AddNumberToObject(ev, "value_loss", st.value_loss);
    cJSON_AddNumberToObject(ev, "entropy", st.entropy);
    cJSON_AddNumberToObject(ev, "approx_kl", st.approx_kl);
    cJSON_AddNumberToObject(ev, "clip_frac", st.clip_frac);
    double evar = bd_explained_variance(b->val, b->ret, (size_t)tn);
    if (!isnan(evar))
        cJSON_AddNumberToObject(ev, "explained_variance", evar);
    cJSON_AddNumberToObject(ev, "learn_s", bd_now() - t0);
    return BD_OK;
}

/* 1 when the phase's stop conditions hold. */
static int bd_brain_done(bd_brain *b)
{
    const bd_phase_plan *p = &b->plan;
    if (p->max_agent_steps > 0 && b->steps >= p->max_agent_steps)
        return 1;
    if (p->episodes_target > 0 && b->stats.episodes >= p->episodes_target)
        return 1;
    if (!isnan(p->objective_threshold) && b->stats.episodes >= p->objective_window
        && bd_stats_mean_recent(&b->stats, p->objective_window) >= p->objective_threshold)
        return 1;
    return 0;
}

static int bd_brain_setup_policy(bd_brain *b)
{
    if (b->ap->random)
        return BD_OK;
    bdt_policy_config pc = {
        .obs_dim = b->S, .act_kind = b->ap->continuous ? BDT_CONTINUOUS : BDT_DISCRETE,
        .act_dim = b->ap->continuous ? b->ap->nact : b->ap->n_actions,
        .hidden = b->pp.hidden, .layers = b->pp.layers,
        .device = b->plan.device == BD_DEVICE_CUDA && bdt_cuda_available() ? BDT_CUDA : BDT_CPU,
        .seed = b->ap->seed,
    };
    int rc = bdt_policy_create(&pc, &b->policy);
    if (rc == BD_OK && b->train)
        rc = bdt_ppo_create(b->policy, &b->pp.opt, &b->ppo);
    if (rc != BD_OK)
        return rc;
    /* Checkpoint to start from: `load: {agent, phase}`, or the latest earlier train phase
     * (config/runfile.c; a test phase without one is refused by config/plan.c). */
    const bd_agent_cfg *a = b->ap->cfg;
    const char *lphase = a->load_phase;
    if (!lphase && !b->train)
        return bd_seterr(BD_EINVAL, "test phase '%s': agent '%s' has no checkpoint to load",
                         b->plan.ph->name, a->name);
    b->use_norm = b->pp.norm_obs;
    bd_obsnorm_init(&b->norm, b->S);
    if (lphase) {
        /* A train phase resumes: weights and the optimiser's state; a test phase only
         * needs the weights. */
        char *path = bd_strfmt("%s/checkpoints/%s/%s.pt", b->run_dir, lphase,
                               a->load_agent ? a->load_agent : a->name);
        rc = path ? bdt_load(b->policy, b->train ? b->ppo : NULL, path) : BD_ENOMEM;
        if (rc == BD_OK && b->use_norm) {
            char *np = bd_strfmt("%s.obsnorm.json", path);
            rc = np ? bd_obsnorm_load(&b->norm, np) : BD_ENOMEM;
            free(np);
        }
        free(path);
        if (rc != BD_OK)
            return rc;
    }
    b->nparams = bdt_policy_param_count(b->policy);
    b->params = malloc(sizeof(float) * (b->nparams + (b->use_norm ? 2 * (size_t)b->S : 0)));
    if (!b->params)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if (b->use_norm)
        bd_obsnorm_pack(&b->norm, b->params + b->nparams);
    return bdt_policy_get_params(b->policy, b->params, b->nparams);
}

static int bd_brain_setup(bd_brain *b, const char *phase, const char *agent, const bd_registry *reg,
                          const char *device)
{
    char *path = bd_strfmt("%s/run.yml", b->run_dir);
    int rc = path ? bd_runfile_load(path, &b->rf) : BD_ENOMEM;
    free(path);
    if (rc != BD_OK)
        return rc;
    int pi = bd_runfile_phase_index(b->rf, phase);
    if (pi < 0)
        return bd_seterr(BD_ENOTFOUND, "run file has no phase '%s'", phase);
    if ((rc = bd_phase_plan_make(b->rf, pi, reg, device, &b->plan)) != BD_OK)
        return rc;
    for (int i = 0; i < b->plan.nagents; i++)
        if (strcmp(b->plan.agents[i].cfg->name, agent) == 0)
            b->ap = &b->plan.agents[i];
    if (!b->ap)
        return bd_seterr(BD_ENOTFOUND, "phase '%s' has no agent '%s'", phase, agent);
    b->train = b->plan.ph->mode == BD_MODE_TRAIN && !b->ap->random;
    long long total = b->plan.max_agent_steps > 0 ? b->plan.max_agent_steps : 1000000;
    if ((rc = bd_ppo_params_parse(b->ap->cfg->brain.params, total, &b->pp)) != BD_OK)
        return rc;
    b->W = b->plan.worker;
    b->N = (int)b->plan.worlds;
    b->T = b->pp.rollout_steps;
    b->S = b->ap->nsens;
    b->U = b->ap->nact;
    b->hello = calloc((size_t)b->W, sizeof *b->hello);
    if (!b->hello)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if ((rc = bd_stats_init(&b->stats, b->N, b->plan.objective_window > 100 ? b->plan.objective_window : 100)) != BD_OK)
        return rc;
    if (b->plan.episodes_target > 0 && (rc = bd_stats_set_quota(&b->stats, b->plan.episodes_target)) != BD_OK)
        return rc;
    if ((rc = bd_brain_setup_policy(b)) != BD_OK)
        return rc;
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
        .env_name = b->plan.env->name, .env_params_json = b->plan.env_params_json,
        .seed = b->rf->seed,
    };
    if ((rc = bd_trace_writer_create(&spec, &b->mem)) != BD_OK)
        return rc;
    /* the muscles' socket */
    char *url = bd_url_brain(b->run_dir, agent);
    rc = url ? bd_round_listen(url, b->W, &b->round) : bd_seterr(BD_ENOMEM, "out of memory");
    free(url);
    return rc;
}

static void bd_brain_teardown(bd_brain *b, int stopped)
{
    if (b->round && stopped)
        bd_round_wait_hangup(b->round, 30.0, &bd_term_requested);
    bd_round_close(b->round);
    bdt_ppo_destroy(b->ppo);
    bdt_policy_destroy(b->policy);
    bd_stats_fini(&b->stats);
    free(b->hello);
    free(b->obs); free(b->act); free(b->logp); free(b->val); free(b->rew); free(b->fval);
    free(b->adv); free(b->ret); free(b->lastv); free(b->term); free(b->trunc); free(b->perm);
    free(b->params);
    free(b->nobs);
    free(b->mem_path);
    bd_phase_plan_fini(&b->plan);
    bd_runfile_destroy(b->rf);
}

/* The rounds: gather, record, learn, answer, until a stop condition or SIGTERM. */
static int bd_brain_loop(bd_brain *b)
{
    int rc = bd_brain_greet(b);
    while (rc == BD_OK) {
        if ((rc = bd_round_gather(b->round, &bd_term_requested)) != BD_OK)
            break;
        rc = bd_brain_collect(b);
        if (rc == BD_OK)
            rc = bd_trace_writer_append(b->mem, b->T, b->obs, b->act, b->rew, b->term, b->trunc);
        if (rc == BD_OK)
            rc = bd_stats_add(&b->stats, b->T, b->rew, b->term, b->trunc);
        if (rc == BD_OK && b->stats.done_n)
            rc = bd_trace_writer_episodes(b->mem, b->stats.done, b->stats.done_n);
        if (rc != BD_OK)
            break;
        b->steps += (long long)b->T * b->N;
        int done = bd_brain_done(b);
        cJSON *ev = bd_event_new(b, "update");
        if (b->train && !done)
            rc = bd_brain_learn(b, ev);
        if (rc == BD_OK)
            rc = bd_brain_reply(b, done ? BD_WEIGHTS_STOP : 0);
        bd_round_release(b->round);
        double el = bd_now() - b->t0;
        cJSON_AddNumberToObject(ev, "update", (double)b->version);
        cJSON_AddNumberToObject(ev, "steps", (double)b->steps);
        cJSON_AddNumberToObject(ev, "steps_per_s", el > 0 ? b->steps / el : 0);
        cJSON_AddNumberToObject(ev, "episodes", (double)b->stats.episodes);
        if (b->stats.episodes)
            cJSON_AddNumberToObject(ev, "mean_return", bd_stats_mean_recent(&b->stats, 100));
        bd_event(b, ev);
        if (done)
            break;
    }
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
    int mbs = b->pp.opt.minibatches > 0 ? b->pp.opt.minibatches : 1;
    long long mb = (long long)b->T * b->N / mbs;
    return mb < 4096 || cores < 2 ? 1 : (int)cores;
}

int bd_brain_main(const char *run_dir, const char *phase, const char *agent, const bd_registry *reg,
                  const char *device)
{
    bd_brain b;
    memset(&b, 0, sizeof b);
    b.run_dir = run_dir;
    b.t0 = bd_now();
    int rc = bd_brain_setup(&b, phase, agent, reg, device);
    if (rc == BD_OK)
        bdt_set_threads(bd_learner_threads(&b));
    char *eurl = bd_url_events(run_dir);
    if (eurl && bd_events_dial(eurl, 1000u + (uint32_t)(b.ap ? b.ap->index : 0), &b.ev) != BD_OK)
        fprintf(stderr, "bodhi brain %s: %s\n", agent, bd_lasterr());
    free(eurl);
    if (rc == BD_OK) {
        bd_event(&b, bd_event_new(&b, "ready"));
        b.t0 = bd_now();
        rc = bd_brain_loop(&b);
    }
    char err[1024];
    snprintf(err, sizeof err, "%s", rc == BD_OK ? "" : bd_lasterr());
    /* Checkpoint at the end of a train phase (also when interrupted: what was learnt is kept). */
    char *ckpt = NULL;
    if (b.train && b.policy && (rc == BD_OK || rc == BD_EINTR)) {
        char *dir = bd_strfmt("%s/checkpoints/%s", run_dir, phase);
        ckpt = bd_strfmt("%s/%s.pt", dir, agent);
        int crc = bd_mkdirs(dir);
        if (crc == BD_OK)
            crc = bdt_save(b.policy, b.ppo, ckpt);
        if (crc == BD_OK && b.use_norm) {
            char *np = bd_strfmt("%s.obsnorm.json", ckpt);
            crc = np ? bd_obsnorm_save(&b.norm, np) : BD_ENOMEM;
            free(np);
        }
        free(dir);
        if (crc != BD_OK) {
            fprintf(stderr, "bodhi brain %s: checkpoint: %s\n", agent, bd_lasterr());
            if (rc == BD_OK) {
                rc = crc;
                snprintf(err, sizeof err, "%s", bd_lasterr());
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
        cJSON_AddStringToObject(ev, "status", rc == BD_OK ? "done" : rc == BD_EINTR ? "interrupted" : "failed");
        cJSON_AddNumberToObject(ev, "episodes", (double)b.stats.episodes);
        cJSON_AddNumberToObject(ev, "mean_return", bd_stats_mean_recent(&b.stats, 100));
        cJSON_AddNumberToObject(ev, "max_return", b.stats.episodes ? b.stats.max_return : 0);
        cJSON_AddNumberToObject(ev, "steps", (double)b.steps);
        cJSON_AddNumberToObject(ev, "steps_per_s", el > 0 ? b.steps / el : 0);
        cJSON_AddNumberToObject(ev, "wall_s", el);
        cJSON_AddNumberToObject(ev, "updates", (double)b.version);
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
    bd_brain_teardown(&b, rc == BD_OK);
    if (rc == BD_EINTR)
        return 143;
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi brain %s (phase %s): %s\n", agent, phase, err);
        return 1;
    }
    return 0;
}
