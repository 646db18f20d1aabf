/* sac_learner.c: the sac brain kind's learner (brain/learner.h's ops, see sac.h): the
 * squashed Gaussian actor the muscles run, the shim's SAC (critics, targets, alpha), and
 * the replay buffer every round's transitions go into.
 *
 * A round's update: its transitions into the buffer; once the buffer holds learning_starts
 * of them (and a batch), bd_sac_steps_due gradient steps, each on a batch drawn uniformly
 * from the buffer by Philox keyed by (agent seed, step number) and the actor's draws keyed
 * the same way, so a run repeats bit for bit per seed. version counts gradient steps: the
 * WEIGHTS a muscle acts with, and so the transitions it sends, carry the count of steps
 * behind them. The muscles wait for the round's weights (rounds are synchronous), so
 * every transition comes from a policy at most one round old. */
#include "brain/sac.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brain/replay.h"
#include "common/util.h"

typedef struct {
    const bd_agent_plan *ap;
    bd_sac_params sp;
    int train;
    const volatile sig_atomic_t *cancel;
    bdt_policy_config pc;     /* the actor's shape */
    bdt_policy *actor;        /* libtorch's actor and learner: made on first need (bd_sac_net) */
    bdt_sac *sac;
    bd_grad_hook grad_hook;   /* several ranks: the gradient all-reduce (bd_learner_spec's) */
    void *grad_ctx;
    float *params;            /* the actor's parameters as the muscles get them */
    size_t nparams;
    uint64_t version;         /* gradient steps so far */
    double carry;             /* bd_sac_steps_due's fraction */
    bd_sum_hook sum_hook;     /* several ranks: the gradient steps agreed; NULL alone */
    void *sum_ctx;
    uint64_t key_off;         /* added to the draws' keys: rank k's are its own (k << 40) */
    long long added;          /* transitions the last collect brought */
    int have_buf;             /* train phases: buf is initialised */
    bd_replay buf;
    /* a sampled batch (batch_size) */
    int64_t *idx;
    float *obs, *act, *rew, *nobs, *done;
    /* the last update's figures (have_stats: it took a gradient step) */
    int have_stats;
    long long steps_done;
    bdt_sac_stats st;
    double learn_s;
} bd_sac_state;

static void bd_sac_destroy(void *self)
{
    bd_sac_state *l = self;
    if (!l)
        return;
    bdt_sac_destroy(l->sac);
    bdt_policy_destroy(l->actor);
    bd_replay_fini(&l->buf);
    free(l->params);
    free(l->idx);
    free(l->obs);
    free(l->act);
    free(l->rew);
    free(l->nobs);
    free(l->done);
    free(l);
}

/* libtorch's actor and the SAC learner (critics, targets, optimisers, temperature) from
 * the parameters the learner has (l->params), on first need: the learner starts from
 * torch/cpunet.c's initial actor without libtorch, so that the muscles act while it loads
 * (bdt_preload) and the buffer fills to learning_starts. The critics start from libtorch's
 * draw of the agent's seed, whenever they are made. */
static int bd_sac_net(bd_sac_state *l)
{
    if (l->actor)
        return BD_OK;
    const bd_agent_plan *ap = l->ap;
    bdt_sac_config sc = {.lr_actor = (float)l->sp.policy_lr, .lr_critic = (float)l->sp.q_lr,
                         .lr_alpha = (float)l->sp.alpha_lr, .gamma = (float)l->sp.gamma, .tau = (float)l->sp.tau,
                         .alpha = (float)l->sp.alpha, .autotune = l->sp.autotune,
                         .target_entropy = (float)l->sp.target_entropy};
    for (int d = 0; d < ap->nact && d < BDT_SAC_MAX_ACT; d++) {
        sc.low[d] = ap->act_low[d];
        sc.high[d] = ap->act_high[d];
    }
    int rc = bdt_policy_create_from(&l->pc, l->params, l->nparams, &l->actor);
    if (rc == BD_OK)
        bdt_set_threads(1); /* batches of hundreds: parallel regions do not pay (ppo_learner.c) */
    if (rc == BD_OK)
        rc = bdt_sac_create(l->actor, &sc, &l->sac);
    /* several ranks (docs/architecture.md "Many machines"): every optimiser's gradient
     * averaged each step, the step count agreed, and each rank's own draws */
    if (rc == BD_OK && l->grad_hook)
        bdt_sac_set_grad_hook(l->sac, (bdt_grad_hook)l->grad_hook, l->grad_ctx);
    if (rc != BD_OK) {
        bdt_sac_destroy(l->sac);
        bdt_policy_destroy(l->actor);
        l->sac = NULL;
        l->actor = NULL;
    }
    return rc;
}

/* The agent's learner: its initial actor (torch/cpunet.c's, which libtorch's will start
 * from), the replay buffer and batch of a train phase. libtorch starts loading in the
 * background; the rest comes with bd_sac_net. */
static int bd_sac_create(const bd_learner_spec *s, void **out)
{
    bd_sac_state *l = calloc(1, sizeof *l);
    if (!l)
        return bd_seterr(BD_ENOMEM, "out of memory");
    const bd_agent_plan *ap = s->ap;
    l->ap = ap;
    l->sp = *(const bd_sac_params *)s->params;
    l->train = s->train;
    l->cancel = s->cancel;
    l->grad_hook = s->grad_hook;
    l->grad_ctx = s->grad_ctx;
    bd_sac_policy_config(ap, &l->sp, s->device, &l->pc);
    bdt_preload();
    l->sum_hook = s->sum_hook;
    l->sum_ctx = s->sum_ctx;
    l->key_off = (uint64_t)s->rank << 40;
    int rc = bd_learner_params(ap, &l->pc, "actor", 0, &l->params, &l->nparams);
    const size_t B = (size_t)l->sp.batch_size, S = (size_t)ap->nsens, U = (size_t)ap->nact;
    if (rc == BD_OK && s->train) {
        rc = bd_replay_init(&l->buf, l->sp.buffer_size, ap->nsens, ap->nact, s->N);
        l->have_buf = rc == BD_OK;
        l->idx = malloc(sizeof(int64_t) * B);
        l->obs = malloc(sizeof(float) * B * S);
        l->nobs = malloc(sizeof(float) * B * S);
        l->act = malloc(sizeof(float) * B * U);
        l->rew = malloc(sizeof(float) * B);
        l->done = malloc(sizeof(float) * B);
        if (rc == BD_OK && (!l->idx || !l->obs || !l->nobs || !l->act || !l->rew || !l->done))
            rc = bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %zu transitions", B);
    }
    if (rc != BD_OK) {
        bd_sac_destroy(l);
        return rc;
    }
    *out = l;
    return BD_OK;
}

static int bd_sac_load(void *self, const char *path)
{
    bd_sac_state *l = self;
    int rc = bd_sac_net(l);
    if (rc == BD_OK)
        rc = bdt_sac_load(l->sac, path);
    if (rc == BD_OK)
        rc = bdt_policy_get_params(l->actor, l->params, l->nparams);
    if (rc == BD_OK && l->have_buf) /* a run saved with save_buffer: resume with its buffer */
        rc = bd_replay_resume(&l->buf, path);
    return rc;
}

static int bd_sac_collect(void *self, const bd_batch *b)
{
    bd_sac_state *l = self;
    l->added = l->have_buf ? bd_replay_collect(&l->buf, b, l->version) : 0;
    return BD_OK;
}

/* The gradient steps due after the round (none before learning_starts), each on a fresh
 * uniform batch; between steps a cancel ends the update with the steps taken so far. */
static int bd_sac_update(void *self, long long steps, char *diverged, size_t len)
{
    bd_sac_state *l = self;
    (void)steps;
    l->have_stats = 0;
    l->steps_done = 0;
    diverged[0] = '\0';
    if (!l->have_buf)
        return BD_OK;
    const long long have = l->buf.size;
    long long due = bd_sac_steps_due(&l->sp, l->added, &l->carry);
    if (have < l->sp.learning_starts || have < 1) {
        l->carry = 0; /* learning starts afresh once the buffer is full enough */
        due = 0;
    }
    int rc = bd_learners_fewest(l->sum_hook, l->sum_ctx, &due);
    if (rc != BD_OK || due <= 0)
        return rc;
    if ((rc = bd_sac_net(l)) != BD_OK) /* the first gradient step: libtorch, loaded meanwhile */
        return rc;
    if ((rc = bdt_sac_mark(l->sac)) != BD_OK) /* the whole learner, should this round diverge */
        return rc;
    double t0 = bd_now();
    const int B = l->sp.batch_size;
    /* several ranks: every rank takes the agreed steps (a rank that stopped early would
     * leave the others waiting in an all-reduce), and decides on a loss that is not
     * finite together, after them */
    int bad = 0;
    char bad_why[256] = "";
    for (long long k = 0; k < due && rc == BD_OK; k++) {
        if (!l->sum_hook && l->cancel && *l->cancel) {
            rc = bd_seterr(BD_EINTR, "sac: update cancelled after %lld of %lld gradient steps", k, due);
            break;
        }
        bd_replay_sample(l->ap->seed, l->version + l->key_off, have, B, l->idx);
        bd_replay_gather(&l->buf, l->idx, B, l->obs, l->act, l->rew, l->nobs, l->done, NULL);
        rc = bdt_sac_update(l->sac, l->obs, l->act, l->rew, l->nobs, l->done, B, l->ap->seed,
                            l->version + l->key_off, &l->st);
        if (rc != BD_OK)
            break;
        l->version++;
        l->steps_done++;
        if (!bad && (!isfinite(l->st.q_loss) || !isfinite(l->st.actor_loss) || !isfinite(l->st.alpha))) {
            bad = 1;
            snprintf(bad_why, sizeof bad_why, "a loss is not finite after gradient step %llu (q_loss %g, "
                     "actor_loss %g, alpha %g)", (unsigned long long)l->version, l->st.q_loss, l->st.actor_loss,
                     l->st.alpha);
            if (!l->sum_hook)
                break;
        }
    }
    if (rc == BD_OK && l->sum_hook) { /* diverged on any rank: on every rank */
        double x = bad;
        if ((rc = l->sum_hook(l->sum_ctx, &x, 1, 0)) == BD_OK && x > 0 && !bad) {
            bad = 1;
            snprintf(bad_why, sizeof bad_why, "a loss is not finite on another rank");
        }
    }
    if (rc == BD_OK && bad) {
        snprintf(diverged, len, "%s; the learner (actor, critics, targets, temperature, optimisers) is "
                 "kept as it was before this round", bad_why);
        l->have_stats = 1;
        l->learn_s = bd_now() - t0;
        l->version -= (uint64_t)l->steps_done; /* the steps undone: the weights' version is the kept one's */
        int rrc = bdt_sac_restore(l->sac);
        return rrc == BD_OK ? bdt_policy_get_params(l->actor, l->params, l->nparams) : rrc;
    }
    l->have_stats = l->steps_done > 0;
    l->learn_s = bd_now() - t0;
    int grc = l->steps_done > 0 ? bdt_policy_get_params(l->actor, l->params, l->nparams) : BD_OK;
    return rc != BD_OK ? rc : grc;
}

static void bd_sac_stats(const void *self, cJSON *ev)
{
    const bd_sac_state *l = self;
    if (l->have_buf)
        cJSON_AddNumberToObject(ev, "buffer", (double)l->buf.size);
    if (!l->have_stats)
        return;
    cJSON_AddNumberToObject(ev, "gradient_steps", (double)l->steps_done);
    cJSON_AddNumberToObject(ev, "q_loss", l->st.q_loss);
    cJSON_AddNumberToObject(ev, "actor_loss", l->st.actor_loss);
    cJSON_AddNumberToObject(ev, "alpha", l->st.alpha);
    cJSON_AddNumberToObject(ev, "q_mean", l->st.q_mean);
    cJSON_AddNumberToObject(ev, "entropy", -l->st.logp_mean);
    cJSON_AddNumberToObject(ev, "learn_s", l->learn_s);
}

static void bd_sac_weights_out(const void *self, bd_policy_out *out)
{
    const bd_sac_state *l = self;
    memset(out, 0, sizeof *out);
    out->h = (bd_weights_hdr){
        .version = l->version, .nparams = l->nparams, .rollout_steps = (uint32_t)l->sp.rollout_steps,
        .hidden = (uint32_t)l->sp.hidden, .layers = (uint32_t)l->sp.layers, .norm_dims = 0,
        .policy = BD_POLICY_MLP, .head = BD_HEAD_SQUASHED_GAUSSIAN, .obs_dim = (uint32_t)l->ap->nsens,
        .act_dim = (uint32_t)l->ap->nact,
    };
    out->floats = l->params;
}

static int bd_sac_weights_in(void *self, const bd_weights_hdr *h, const float *floats)
{
    bd_sac_state *l = self;
    bd_policy_out mine;
    bd_sac_weights_out(l, &mine);
    if (h->policy != mine.h.policy || h->head != mine.h.head || h->nparams != mine.h.nparams
        || h->hidden != mine.h.hidden || h->layers != mine.h.layers || h->obs_dim != mine.h.obs_dim
        || h->act_dim != mine.h.act_dim || h->norm_dims)
        return bd_seterr(BD_EINVAL, "sac: weights of another network (%llu parameters, %u x %u, head %u) for "
                         "one of %zu parameters, %d x %d", (unsigned long long)h->nparams, h->layers, h->hidden,
                         h->head, l->nparams, l->sp.layers, l->sp.hidden);
    return bd_learner_take_params(l->actor, l->params, l->nparams, floats);
}

/* Actor, critics, targets, optimisers and alpha to path; with save_buffer the buffer
 * beside it (path.replay). */
static int bd_sac_save(const void *self, const char *path, int *saved)
{
    bd_sac_state *l = (bd_sac_state *)self; /* a learner is never const itself: the learner may come now */
    int rc = bd_sac_net(l);
    if (rc == BD_OK)
        rc = bdt_sac_save(l->sac, path);
    if (rc == BD_OK && l->sp.save_buffer && l->have_buf) {
        rc = bd_replay_save_beside(&l->buf, path);
    }
    *saved = rc == BD_OK;
    return rc;
}

static uint64_t bd_sac_version(const void *self)
{
    return ((const bd_sac_state *)self)->version;
}

/* What `bodhi set` may change while SAC learns: the three step sizes, the targets' Polyak
 * step, the entropy autotune's target, and alpha (which starts again from the value given;
 * autotune learns on from there). */
static const char *const bd_sac_steer_keys[] = {
    "policy_lr", "q_lr", "alpha_lr", "tau", "target_entropy", "alpha", NULL,
};

static int bd_sac_steer(void *self, const void *params, const char *const *keys)
{
    bd_sac_state *l = self;
    const bd_sac_params *np = params;
    int alpha = 0;
    for (const char *const *k = keys; *k; k++)
        alpha |= strcmp(*k, "alpha") == 0;
    l->sp.policy_lr = np->policy_lr;
    l->sp.q_lr = np->q_lr;
    l->sp.alpha_lr = np->alpha_lr;
    l->sp.tau = np->tau;
    l->sp.target_entropy = np->target_entropy;
    bdt_sac_config sc = {.lr_actor = (float)l->sp.policy_lr, .lr_critic = (float)l->sp.q_lr,
                         .lr_alpha = (float)l->sp.alpha_lr, .tau = (float)l->sp.tau,
                         .target_entropy = (float)l->sp.target_entropy,
                         .alpha = alpha ? (float)np->alpha : 0.0f}; /* 0: as it is */
    if (alpha)
        l->sp.alpha = np->alpha;
    return l->sac ? bdt_sac_set_rates(l->sac, &sc) : BD_OK;
}

static void bd_sac_restart(void *self, int c0, int n)
{
    bd_replay_restart(&((bd_sac_state *)self)->buf, c0, n);
}

const bd_learner_ops bd_sac_learner = {
    bd_sac_create, bd_sac_destroy, bd_sac_load,       bd_sac_collect,    bd_sac_update,
    bd_sac_stats,  bd_sac_weights_out, bd_sac_weights_in, bd_sac_save,   bd_sac_version,
    bd_sac_steer_keys, bd_sac_steer, bd_sac_restart,
};
