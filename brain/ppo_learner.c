/* ppo_learner.c: the ppo brain kind's learner (brain/learner.h's ops, see ppo.h): the
 * agent's policy network, the PPO optimiser, the running observation normaliser, and the
 * checkpoint they are saved to and loaded from. */
#include "brain/ppo.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "brain/obsnorm.h"
#include "brain/ranks.h"
#include "common/util.h"

typedef struct {
    const bd_agent_plan *ap;
    bd_ppo_params pp;
    int train;                /* learns in this phase */
    bdt_policy *net;          /* libtorch's network: made on first need (bd_ppo_net) */
    bdt_ppo *ppo;             /* train phases, with it */
    bdt_policy_config pc;     /* what it is made of */
    const volatile sig_atomic_t *cancel;
    bd_grad_hook grad_hook;
    void *grad_ctx;
    int use_norm;
    bd_obsnorm norm;
    float *params;            /* the policy's parameters, then the normaliser (2 S) with use_norm */
    size_t nparams;           /* policy parameters */
    uint64_t version;         /* updates so far */
    double lr;                /* the base learning rate, adapted to kl_threshold (before annealing) */
    long long max_rows;       /* T * N: the most samples a batch holds */
    const bd_batch *batch;    /* the round's (collect) */
    /* the last update's figures (have_stats: it completed) */
    int have_stats;
    double stat_lr, evar, learn_s;
    bdt_ppo_stats st;
    int kl_streak;            /* updates in a row whose KL was above diverge_kl */
    bd_sum_hook sum_hook;     /* data-parallel learners (learner.h); NULL alone */
    void *sum_ctx;
    int learners;
    int split;                /* the critic on a thread of its own (bd_ppo_threads) */
    double *sums;             /* 1 + 2 S: the normaliser's sums for sum_hook */
    /* work buffers (max_rows each; obs/nobs * S, act * U) */
    float *adv, *ret, *nobs;
    int64_t *perm;
    float *c_obs, *c_act, *c_logp, *c_val, *c_rew, *c_fval, *c_lastv; /* compacted batch */
    uint8_t *c_term, *c_trunc;
} bd_ppo_state;


/* The learner's threads, and what it does with them.
 *  - With a second core on the CPU, each minibatch's critic runs on a thread of its own
 *    beside the actor (bdt_ppo_set_split; the same update, bit for bit). The muscles wait
 *    for the update's weights meanwhile, so the core is free: the default update (16384
 *    samples, minibatches of 1024) took 0.087-0.090 s against 0.132-0.143 s on one thread,
 *    minibatches of 4096 0.26-0.29 s against 0.47 s (bodhi-ppobench, 2-core EPYC). A
 *    waiting thread sleeps instead of spinning, so a busy second core costs little. Whether
 *    there is a second core to take: bd_ranks_split.
 *  - libtorch's intra-op threads: one below minibatches of 4096 samples, where parallel
 *    regions do not pay and their spinning workers starve anything else that wants the
 *    cores (on 2 cores beside one busy process the CartPole train phase took 8.2-9.8 s
 *    with 2 threads and 3.9-4.0 s with 1); from 4096 up, the cores the split leaves.
 * Decided with the network (bd_ppo_net), for a batch of tn samples. */
static void bd_ppo_threads(const bd_ppo_params *pp, long long tn, bdt_device dev, int *threads, int *split)
{
    const long cores = bd_ranks_cores();
    long long mb = tn / bdt_ppo_minibatch_count(&pp->opt, tn); /* as the shim cuts the batch */
    *split = bd_ranks_split(dev == BDT_CPU);
    long per = *split ? cores / 2 : cores;
    *threads = mb < 4096 || per < 2 ? 1 : (int)per;
}

static void bd_ppo_destroy(void *self);

/* The work buffers of a train phase's batches of T x N. */
static int bd_ppo_buffers(bd_ppo_state *l, int T, int N)
{
    const int S = l->ap->nsens, U = l->ap->nact;
    const size_t tn = (size_t)T * (size_t)N;
    l->max_rows = (long long)tn;
    struct {
        void **p;
        size_t bytes;
    } bufs[] = {
        {(void **)&l->adv, sizeof(float) * tn},        {(void **)&l->ret, sizeof(float) * tn},
        {(void **)&l->perm, sizeof(int64_t) * tn * (size_t)l->pp.opt.epochs},
        {(void **)&l->c_obs, sizeof(float) * tn * (size_t)S},
        {(void **)&l->c_act, sizeof(float) * tn * (size_t)U},
        {(void **)&l->c_logp, sizeof(float) * tn}, {(void **)&l->c_val, sizeof(float) * tn},
        {(void **)&l->c_rew, sizeof(float) * tn},  {(void **)&l->c_fval, sizeof(float) * tn},
        {(void **)&l->c_lastv, sizeof(float) * (size_t)N},
        {(void **)&l->c_term, tn},                 {(void **)&l->c_trunc, tn},
    };
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
        if (!(*bufs[k].p = malloc(bufs[k].bytes ? bufs[k].bytes : 1)))
            return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", T, N);
    if (l->use_norm && !(l->nobs = malloc(sizeof(float) * tn * (size_t)S)))
        return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", T, N);
    return BD_OK;
}

/* libtorch's network (and, in a train phase, the optimiser) from the parameters the
 * learner has (l->params), on first need: a learner starts from torch/cpunet.c's initial
 * weights without libtorch, so that the muscles have their first weights while libtorch
 * loads (bdt_preload) and the first rollout is collected. */
static int bd_ppo_net(bd_ppo_state *l)
{
    if (l->net)
        return BD_OK;
    int rc = bdt_policy_create(&l->pc, &l->net);
    if (rc == BD_OK) { /* libtorch is loaded now */
        int threads = 1; /* a test phase's network only loads and saves */
        if (l->train)
            bd_ppo_threads(&l->pp, l->max_rows, l->pc.device, &threads, &l->split);
        bdt_set_threads(threads);
    }
    if (rc == BD_OK)
        rc = bdt_policy_set_params(l->net, l->params, l->nparams);
    if (rc == BD_OK && l->train)
        rc = bdt_ppo_create(l->net, &l->pp.opt, &l->ppo);
    if (rc == BD_OK && l->ppo) {
        /* several ranks: no cancel inside an update (a rank that stopped at its own
         * minibatch would leave the others in an all-reduce that never pairs, and they
         * failed without a checkpoint): the update is finished, then the run stops */
        bdt_ppo_set_cancel(l->ppo, l->sum_hook ? NULL : (const volatile int *)l->cancel);
        rc = bdt_ppo_set_split(l->ppo, l->split);
        if (l->grad_hook)
            bdt_ppo_set_grad_hook(l->ppo, (bdt_grad_hook)l->grad_hook, l->grad_ctx);
    }
    if (rc != BD_OK) {
        bdt_ppo_destroy(l->ppo);
        bdt_policy_destroy(l->net);
        l->ppo = NULL;
        l->net = NULL;
    }
    return rc;
}

/* The agent's learner: its initial parameters (torch/cpunet.c's, those libtorch's network
 * will start from), the normaliser, the work buffers of a train phase. libtorch starts
 * loading in the background; the network itself comes with bd_ppo_net. */
static int bd_ppo_create(const bd_learner_spec *s, void **out)
{
    bd_ppo_state *l = calloc(1, sizeof *l);
    if (!l)
        return bd_seterr(BD_ENOMEM, "out of memory");
    const bd_agent_plan *ap = s->ap;
    l->ap = ap;
    l->pp = *(const bd_ppo_params *)s->params;
    l->train = s->train;
    l->lr = l->pp.learning_rate;
    l->cancel = s->cancel;
    l->grad_hook = s->grad_hook;
    l->grad_ctx = s->grad_ctx;
    const int S = ap->nsens;
    bd_obsnorm_init(&l->norm, S);
    bd_ppo_policy_config(ap, &l->pp, s->device, &l->pc);
    bdt_preload();
    l->sum_hook = s->sum_hook;
    l->sum_ctx = s->sum_ctx;
    l->learners = s->learners > 1 ? s->learners : 1;
    l->use_norm = l->pp.norm_obs;
    int rc = bd_learner_params(ap, &l->pc, "network", l->use_norm ? 2 * (size_t)S : 0, &l->params, &l->nparams);
    if (rc == BD_OK && l->sum_hook && !(l->sums = malloc(sizeof(double) * (1 + 2 * (size_t)S))))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK && l->use_norm)
        bd_obsnorm_pack(&l->norm, l->params + l->nparams);
    if (rc == BD_OK && s->train)
        rc = bd_ppo_buffers(l, s->T, s->N);
    if (rc != BD_OK) {
        bd_ppo_destroy(l);
        return rc;
    }
    *out = l;
    return BD_OK;
}

/* A train phase resumes: weights and the optimiser's state; a test phase only needs the
 * weights. The normaliser beside them with norm_obs. */
static int bd_ppo_load(void *self, const char *path)
{
    bd_ppo_state *l = self;
    int rc = bd_ppo_net(l);
    if (rc == BD_OK)
        rc = bdt_load(l->net, l->ppo, path);
    if (rc == BD_OK && l->use_norm) {
        char *np = bd_strfmt("%s.obsnorm.json", path);
        rc = np ? bd_obsnorm_load(&l->norm, np) : bd_seterr(BD_ENOMEM, "out of memory");
        free(np);
    }
    if (rc == BD_OK && l->use_norm)
        bd_obsnorm_pack(&l->norm, l->params + l->nparams);
    return rc == BD_OK ? bdt_policy_get_params(l->net, l->params, l->nparams) : rc;
}

static void bd_ppo_destroy(void *self)
{
    bd_ppo_state *l = self;
    if (!l)
        return;
    bdt_ppo_destroy(l->ppo);
    bdt_policy_destroy(l->net);
    free(l->params);
    free(l->sums);
    free(l->adv);
    free(l->ret);
    free(l->nobs);
    free(l->perm);
    free(l->c_obs);
    free(l->c_act);
    free(l->c_logp);
    free(l->c_val);
    free(l->c_rew);
    free(l->c_fval);
    free(l->c_lastv);
    free(l->c_term);
    free(l->c_trunc);
    free(l);
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

/* cols (count of them) of a (T, N, K) array of esize-byte elements into dst (T, n, K). */
static void bd_compact(const void *src, void *dst, int T, int N, size_t K, size_t esize, const int *cols, int n)
{
    const char *s = src;
    char *d = dst;
    const size_t row = K * esize;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++)
            memcpy(d + ((size_t)t * (size_t)n + (size_t)j) * row, s + ((size_t)t * (size_t)N + (size_t)cols[j]) * row, row);
}

/* The batch with only its valid columns (the batch itself when all are). */
static int bd_ppo_view(bd_ppo_state *l, const bd_batch *b, bd_batch *v)
{
    *v = *b;
    v->valid = NULL;
    if (!b->valid)
        return BD_OK;
    int *cols = malloc(sizeof(int) * (size_t)b->N), n = 0;
    if (!cols)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; i < b->N; i++)
        if (b->valid[i])
            cols[n++] = i;
    if (n < b->N) {
        bd_compact(b->obs, l->c_obs, b->T, b->N, (size_t)b->S, 4, cols, n);
        bd_compact(b->act, l->c_act, b->T, b->N, (size_t)b->U, 4, cols, n);
        bd_compact(b->logp, l->c_logp, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->val, l->c_val, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->rew, l->c_rew, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->fval, l->c_fval, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->lastv, l->c_lastv, 1, b->N, 1, 4, cols, n);
        bd_compact(b->term, l->c_term, b->T, b->N, 1, 1, cols, n);
        bd_compact(b->trunc, l->c_trunc, b->T, b->N, 1, 1, cols, n);
        *v = (bd_batch){b->T, n, b->S, b->U, l->c_obs, l->c_act, l->c_logp, l->c_val, l->c_rew,
                        l->c_fval, l->c_lastv, l->c_term, l->c_trunc, NULL, NULL, NULL};
    }
    free(cols);
    return BD_OK;
}

static int bd_ppo_collect(void *self, const bd_batch *b)
{
    ((bd_ppo_state *)self)->batch = b;
    return BD_OK;
}

/* Data-parallel learners: the update's losses and KL as their means over the group, so
 * that every rank adapts its learning rate and judges divergence alike. */
static int bd_ppo_group_stats(bd_ppo_state *l)
{
    if (!l->sum_hook)
        return BD_OK;
    double x[5] = {l->st.policy_loss, l->st.value_loss, l->st.entropy, l->st.approx_kl, l->st.clip_frac};
    int rc = l->sum_hook(l->sum_ctx, x, 5, 0);
    if (rc != BD_OK)
        return rc;
    float *f[5] = {&l->st.policy_loss, &l->st.value_loss, &l->st.entropy, &l->st.approx_kl, &l->st.clip_frac};
    for (int k = 0; k < 5; k++)
        *f[k] = (float)(x[k] / l->learners);
    return BD_OK;
}

/* The normaliser takes in the batch's n observations: alone directly, in a group the
 * sums of every rank's (obsnorm.h), so that every rank's normaliser stays the same. */
static int bd_ppo_norm_update(bd_ppo_state *l, const float *obs, size_t n)
{
    if (!l->sum_hook) {
        bd_obsnorm_update(&l->norm, obs, n);
        return BD_OK;
    }
    bd_obsnorm_sums(&l->norm, obs, n, l->sums);
    int rc = l->sum_hook(l->sum_ctx, l->sums, 1 + 2 * (size_t)l->norm.s, 0);
    if (rc == BD_OK)
        bd_obsnorm_update_sums(&l->norm, l->sums);
    return rc;
}

/* Data-parallel learners cut their batches into as many minibatches as each other, or
 * their gradient all-reduces would not pair up (a rank whose muscle died this round has
 * fewer samples): the least count of any rank, and no more than any rank's samples, so
 * that every rank's minibatches hold at least one sample. *count 0: some rank has no
 * sample this round, and no rank learns from it. Alone: *count is this batch's own count
 * (at most its samples). minibatch_size counts one rank's samples, as a data-parallel
 * trainer's batch per device does: K ranks' gradient steps average K minibatches. Counting
 * every rank's (one learner of all their worlds) cut a rank's minibatches to 1024 / K
 * samples, and the all-reduces per update grew with K: at 2 ranks of 4096 CartPole worlds
 * each update took 1.25x the compute and twice the all-reduces, and the ranks trained at
 * 1.1x one rank's agent-steps/s instead of 1.7x. */
static int bd_ppo_agree_minibatches(bd_ppo_state *l, int tn, int *count)
{
    *count = tn > 0 ? (int)bdt_ppo_minibatch_count(&l->pp.opt, tn) : 0;
    if (*count > tn) /* a fixed num_minibatches above this round's samples (a muscle died) */
        *count = tn;
    if (!l->sum_hook)
        return BD_OK;
    double x[2] = {(double)tn, (double)*count};
    int rc = l->sum_hook(l->sum_ctx, x, 2, 1);
    if (rc != BD_OK)
        return rc;
    *count = x[0] >= 1 ? (int)x[1] : 0; /* each rank's count is at most its samples: so is the least */
    return BD_OK;
}

/* One PPO update on the collected batch's valid columns (GAE, normalisation with the
 * statistics the muscles used, then the normaliser takes the batch in), with the learning
 * rate annealed for `steps` agent-steps so far. */
static int bd_ppo_learn(bd_ppo_state *l, long long steps)
{
    bd_batch vb;
    l->have_stats = 0;
    if (!l->batch)
        return bd_seterr(BD_ESTATE, "ppo: an update with no batch collected");
    int rc = bd_ppo_view(l, l->batch, &vb);
    if (rc != BD_OK)
        return rc;
    const bd_batch *b = &vb;
    const int tn = b->T * b->N;
    int nmb = 0;
    if ((rc = bd_ppo_agree_minibatches(l, tn, &nmb)) != BD_OK || nmb == 0)
        return rc;
    bd_gae(b->T, b->N, b->rew, b->val, b->fval, b->lastv, b->term, b->trunc, (float)l->pp.gamma,
           (float)l->pp.gae_lambda, l->adv, l->ret);
    bd_ppo_perm(l->perm, tn, l->pp.opt.epochs, l->ap->seed, l->version);
    double lr = l->lr;
    if (l->pp.anneal_lr && l->pp.total_steps > 0) {
        double frac = 1.0 - (double)steps / (double)l->pp.total_steps;
        if (frac < 0.01)
            frac = 0.01;
        lr *= frac;
    }
    if ((rc = bd_ppo_net(l)) != BD_OK || (rc = bdt_ppo_set_lr(l->ppo, (float)lr)) != BD_OK
        || (rc = bdt_ppo_set_minibatches(l->ppo, nmb)) != BD_OK)
        return rc;
    double t0 = bd_now();
    /* The learner sees what the muscles' policy saw: the batch normalised with the
     * statistics in force while it was collected; only then do they take it in. */
    const float *x = b->obs;
    if (l->use_norm) {
        bd_obsnorm_apply(&l->norm, b->obs, l->nobs, (size_t)tn);
        x = l->nobs;
    }
    rc = bdt_ppo_update(l->ppo, x, b->act, b->logp, l->adv, l->ret, b->val, tn, l->perm, &l->st);
    if (rc == BD_OK)
        rc = bdt_policy_get_params(l->net, l->params, l->nparams);
    if (rc == BD_OK)
        rc = bd_ppo_group_stats(l);
    if (rc != BD_OK)
        return rc;
    if (l->use_norm) {
        if ((rc = bd_ppo_norm_update(l, b->obs, (size_t)tn)) != BD_OK)
            return rc;
        bd_obsnorm_pack(&l->norm, l->params + l->nparams);
    }
    l->version++;
    l->lr = bd_ppo_adapt_lr(&l->pp, l->lr, l->st.approx_kl);
    l->stat_lr = lr;
    l->evar = bd_explained_variance(b->val, l->ret, (size_t)tn);
    l->learn_s = bd_now() - t0;
    l->have_stats = 1;
    return BD_OK;
}

/* Undoes the last update (bdt_ppo_undo): the network and the optimiser as they were before
 * it, and the parameters the muscles get with them. The normaliser keeps the batch it took
 * in (observations, not what the update learnt). */
static int bd_ppo_undo(bd_ppo_state *l)
{
    int rc = l->ppo ? bdt_ppo_undo(l->ppo) : bd_seterr(BD_ESTATE, "no learner to undo");
    return rc == BD_OK ? bdt_policy_get_params(l->net, l->params, l->nparams) : rc;
}

/* After an update: a loss that is not finite, or a KL above diverge_kl in diverge_updates
 * updates in a row, is divergence. The update is undone, so the muscles and the checkpoint
 * get the parameters from before it. */
static int bd_ppo_divergence(bd_ppo_state *l, char *why, size_t len)
{
    const struct {
        const char *key;
        double v;
    } loss[] = {{"policy_loss", l->st.policy_loss}, {"value_loss", l->st.value_loss},
                {"entropy", l->st.entropy},         {"approx_kl", l->st.approx_kl}};
    why[0] = '\0';
    for (size_t k = 0; k < sizeof loss / sizeof loss[0] && !why[0]; k++)
        if (!isfinite(loss[k].v))
            snprintf(why, len, "%s is %g after update %lld", loss[k].key, loss[k].v, (long long)l->version);
    const double kl = l->st.approx_kl;
    l->kl_streak = kl > l->pp.diverge_kl ? l->kl_streak + 1 : 0;
    if (!why[0] && l->kl_streak > 0 && l->kl_streak >= l->pp.diverge_updates)
        snprintf(why, len, "approx_kl %.4g above diverge_kl %g in %d update(s) in a row (update %lld)", kl,
                 l->pp.diverge_kl, l->kl_streak, (long long)l->version);
    if (!why[0])
        return BD_OK;
    size_t n = strlen(why);
    snprintf(why + n, len - n, "; the checkpoint keeps the parameters before it");
    return bd_ppo_undo(l);
}

static int bd_ppo_update(void *self, long long steps, char *diverged, size_t len)
{
    bd_ppo_state *l = self;
    int rc = bd_ppo_learn(l, steps);
    if (rc == BD_OK && !l->have_stats)
        l->kl_streak = 0; /* an empty batch: no KL, no streak */
    return rc == BD_OK && l->have_stats ? bd_ppo_divergence(l, diverged, len) : rc;
}

static void bd_ppo_stats(const void *self, cJSON *ev)
{
    const bd_ppo_state *l = self;
    if (!l->have_stats)
        return;
    cJSON_AddNumberToObject(ev, "learning_rate", l->stat_lr);
    cJSON_AddNumberToObject(ev, "policy_loss", l->st.policy_loss);
    cJSON_AddNumberToObject(ev, "value_loss", l->st.value_loss);
    cJSON_AddNumberToObject(ev, "entropy", l->st.entropy);
    cJSON_AddNumberToObject(ev, "approx_kl", l->st.approx_kl);
    cJSON_AddNumberToObject(ev, "clip_frac", l->st.clip_frac);
    if (!isnan(l->evar))
        cJSON_AddNumberToObject(ev, "explained_variance", l->evar);
    cJSON_AddNumberToObject(ev, "learn_s", l->learn_s);
}

static void bd_ppo_weights_out(const void *self, bd_policy_out *out)
{
    const bd_ppo_state *l = self;
    const bd_agent_plan *ap = l->ap;
    memset(out, 0, sizeof *out);
    out->h = (bd_weights_hdr){
        .version = l->version, .nparams = l->nparams, .rollout_steps = (uint32_t)l->pp.rollout_steps,
        .hidden = (uint32_t)l->pp.hidden, .layers = (uint32_t)l->pp.layers,
        .norm_dims = l->use_norm ? (uint32_t)ap->nsens : 0, .policy = BD_POLICY_MLP,
        .head = ap->continuous ? BD_HEAD_GAUSSIAN : BD_HEAD_CATEGORICAL, .obs_dim = (uint32_t)ap->nsens,
        .act_dim = (uint32_t)(ap->continuous ? ap->nact : ap->n_actions),
    };
    out->floats = l->params;
}

/* The network's parameters of a WEIGHTS message of this learner's own shape. The
 * normaliser's statistics are not in a message (only its coefficients): a message with
 * another normaliser than this learner's own is refused. */
static int bd_ppo_weights_in(void *self, const bd_weights_hdr *h, const float *floats)
{
    bd_ppo_state *l = self;
    bd_policy_out mine;
    bd_ppo_weights_out(l, &mine);
    if (h->policy != mine.h.policy || h->head != mine.h.head || h->nparams != mine.h.nparams
        || h->hidden != mine.h.hidden || h->layers != mine.h.layers || h->obs_dim != mine.h.obs_dim
        || h->act_dim != mine.h.act_dim)
        return bd_seterr(BD_EINVAL, "ppo: weights of another network (%llu parameters, %u x %u) for one of "
                         "%zu parameters, %d x %d", (unsigned long long)h->nparams, h->layers, h->hidden,
                         l->nparams, l->pp.layers, l->pp.hidden);
    /* A normaliser's statistics are not in the message, only its means and scales: weights
     * that carry this learner's own (rank 0's at a group's start: both empty, or loaded
     * from the same checkpoint) are taken; another's cannot be. */
    if (h->norm_dims
        && (!l->use_norm || h->norm_dims != (uint32_t)l->ap->nsens
            || memcmp(floats + l->nparams, l->params + l->nparams, sizeof(float) * 2 * (size_t)h->norm_dims) != 0))
        return bd_seterr(BD_EINVAL, "ppo: weights with another observation normaliser cannot be taken in (its "
                         "statistics are not in the message)");
    return bd_learner_take_params(l->net, l->params, l->nparams, floats);
}

/* The network (and optimiser, in a train phase) to path, the normaliser beside it. */
static int bd_ppo_save(const void *self, const char *path, int *saved)
{
    bd_ppo_state *l = (bd_ppo_state *)self; /* a learner is never const itself: the network may come now */
    int rc = bd_ppo_net(l);
    if (rc == BD_OK)
        rc = bdt_save(l->net, l->ppo, path);
    if (rc == BD_OK && l->use_norm) {
        char *np = bd_strfmt("%s.obsnorm.json", path);
        rc = np ? bd_obsnorm_save(&l->norm, np) : bd_seterr(BD_ENOMEM, "out of memory");
        free(np);
    }
    *saved = rc == BD_OK;
    return rc;
}

static uint64_t bd_ppo_version(const void *self)
{
    return ((const bd_ppo_state *)self)->version;
}

/* What `bodhi set` may change while PPO learns: the learning rate (the adaptive rate starts
 * again from it, and its bounds widen to hold it as the run file's would), the adaptive
 * rate's target KL, the span of the annealing, and the loss's coefficients. */
static const char *const bd_ppo_steer_keys[] = {
    "learning_rate", "kl_threshold", "total_steps", "ent_coef", "clip_coef", "vf_coef", "max_grad_norm", NULL,
};

static int bd_ppo_steer(void *self, const void *params, const char *const *keys)
{
    bd_ppo_state *l = self;
    const bd_ppo_params *np = params;
    for (const char *const *k = keys; *k; k++)
        if (strcmp(*k, "learning_rate") == 0)
            l->lr = np->learning_rate;
    l->pp.learning_rate = np->learning_rate;
    l->pp.kl_threshold = np->kl_threshold;
    l->pp.total_steps = np->total_steps;
    l->pp.opt.lr = np->opt.lr;
    l->pp.opt.ent_coef = np->opt.ent_coef;
    l->pp.opt.clip_coef = np->opt.clip_coef;
    l->pp.opt.vf_coef = np->opt.vf_coef;
    l->pp.opt.max_grad_norm = np->opt.max_grad_norm;
    /* without libtorch's optimiser yet, bd_ppo_net makes it from l->pp.opt */
    return l->ppo ? bdt_ppo_set_coefs(l->ppo, &l->pp.opt) : BD_OK;
}

const bd_learner_ops bd_ppo_learner = {
    bd_ppo_create, bd_ppo_destroy, bd_ppo_load,        bd_ppo_collect,     bd_ppo_update,
    bd_ppo_stats,  bd_ppo_weights_out, bd_ppo_weights_in, bd_ppo_save,     bd_ppo_version,
    bd_ppo_steer_keys, bd_ppo_steer, NULL, /* a round's batch stands alone */
};
