/* dqn_learner.c: the dqn brain kind's learner (brain/learner.h's ops, see dqn.h): the
 * Q-network, its target and optimiser (torch shim, bdt_dqn), the replay buffer
 * (brain/replay.h), and the exploration rate it sends the muscles with the weights.
 *
 * A round: the batch's transitions go into the buffer, each marked with the weights
 * version its muscle acted with (its rollout says; the trace's weights_version); then
 * the round earns utd_ratio gradient steps per transition (none before
 * learning_starts), each on batch_size transitions drawn uniformly by Philox from (the
 * agent's seed, the count of batches drawn). */
#include "brain/dqn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "brain/ranks.h"
#include "brain/replay.h"
#include "common/proc.h"
#include "common/util.h"

#define BD_DQN_CHUNK 256 /* gradient steps per shim call (their batches drawn together) */

typedef struct {
    const bd_agent_plan *ap;
    bd_dqn_params dp;
    int train;
    const volatile sig_atomic_t *cancel;
    bdt_policy_config pc;      /* the Q-network's shape */
    bdt_policy *net;           /* libtorch's network: made on first need (bd_dqn_net) */
    bdt_dqn *dqn;              /* train phases, with the network */
    bd_grad_hook grad_hook;    /* several ranks: the gradient all-reduce (bd_learner_spec's) */
    void *grad_ctx;
    float *params;             /* the network's parameters, then epsilon (the WEIGHTS floats) */
    size_t nparams;
    uint64_t version;          /* updates (rounds with gradient steps) so far */
    double carry;              /* gradient steps owed, below one */
    uint64_t draws;            /* sample batches drawn (rank k's from k << 40 on) */
    bd_sum_hook sum_hook;      /* several ranks: the gradient steps agreed; NULL alone */
    void *sum_ctx;
    bd_replay rb;
    bd_split_pick pick;        /* the targets on a second thread, update by update */
    const bd_batch *batch;
    float *s_obs, *s_act, *s_rew, *s_next, *s_term; /* a chunk's samples */
    int64_t *s_idx;
    uint64_t *s_ver;
    /* the last update's figures */
    int have_stats;
    bdt_dqn_stats st;
    long long grad_steps, added;
    double learn_s, lag;
    double reward_max;         /* the largest |reward| of every transition so far, every rank's (bd_dqn_q_bound) */
    double q_start;            /* |mean Q(s, a)| of the network as this phase found it (its first update's first batch) */
    int have_q_start;
} bd_dqn_state;

/* How far the mean Q(s, a) of a gradient step's batch may go before learning has diverged:
 * BD_DQN_Q_SLACK times the largest discounted return the rewards seen so far (on every rank)
 * can add up to, max |r| / (1 - gamma), and never less than BD_DQN_Q_SLACK times the mean
 * |Q| of the network as the phase found it (a network loaded from a run of other rewards or
 * another gamma, or one whose first outputs on large observations dwarf small rewards). A
 * Q-network that runs away (the 1-world CartPole run of docs/run-file.md's dqn section: 2e11
 * at 2.9M agent-steps, every action the same, a return of 9) never comes back below it; 0
 * (no bound) before any reward other than 0 was seen or with gamma 1. */
#define BD_DQN_Q_SLACK 10.0
static double bd_dqn_q_bound(const bd_dqn_state *l)
{
    if (!(l->reward_max > 0) || !(l->dp.gamma < 1))
        return 0;
    const double by_rewards = BD_DQN_Q_SLACK * l->reward_max / (1.0 - l->dp.gamma);
    const double by_start = BD_DQN_Q_SLACK * l->q_start;
    return by_rewards > by_start ? by_rewards : by_start;
}

static void bd_dqn_destroy(void *self)
{
    bd_dqn_state *l = self;
    if (!l)
        return;
    bdt_dqn_destroy(l->dqn);
    bdt_policy_destroy(l->net);
    bd_replay_fini(&l->rb);
    free(l->params);
    free(l->s_obs);
    free(l->s_act);
    free(l->s_rew);
    free(l->s_next);
    free(l->s_term);
    free(l->s_idx);
    free(l->s_ver);
    free(l);
}

static int bd_dqn_alloc_samples(bd_dqn_state *l)
{
    const size_t rows = (size_t)BD_DQN_CHUNK * (size_t)l->dp.batch_size, S = (size_t)l->ap->nsens;
    l->s_obs = malloc(sizeof(float) * rows * S);
    l->s_next = malloc(sizeof(float) * rows * S);
    l->s_act = malloc(sizeof(float) * rows);
    l->s_rew = malloc(sizeof(float) * rows);
    l->s_term = malloc(sizeof(float) * rows);
    l->s_idx = malloc(sizeof(int64_t) * rows);
    l->s_ver = malloc(sizeof(uint64_t) * rows);
    if (!l->s_obs || !l->s_next || !l->s_act || !l->s_rew || !l->s_term || !l->s_idx || !l->s_ver)
        return bd_seterr(BD_ENOMEM, "dqn: out of memory for %zu sampled transitions", rows);
    return BD_OK;
}

/* libtorch's network (and, in a train phase, DQN's optimiser and target) from the
 * parameters the learner has (l->params), on first need: the learner starts from
 * torch/cpunet.c's initial weights without libtorch, so that the muscles act while it loads
 * (bdt_preload) and the buffer fills to learning_starts. */
static int bd_dqn_net(bd_dqn_state *l)
{
    if (l->net)
        return BD_OK;
    int rc = bdt_policy_create_from(&l->pc, l->params, l->nparams, &l->net);
    if (rc == BD_OK)
        bdt_set_threads(1); /* small batches: parallel regions do not pay (see ppo_learner.c) */
    if (rc == BD_OK && l->train) {
        bdt_dqn_config dc = {.lr = (float)l->dp.learning_rate, .gamma = (float)l->dp.gamma,
                             .max_grad_norm = (float)l->dp.max_grad_norm, .double_q = l->dp.double_q,
                             .target_every = l->dp.target_update_interval, .tau = (float)l->dp.tau};
        rc = bdt_dqn_create(l->net, &dc, &l->dqn); /* the target starts as the network */
    }
    /* several ranks (docs/architecture.md "Many machines"): gradients averaged every step,
     * the step count agreed, and each rank's own draws from its own buffer */
    if (rc == BD_OK && l->dqn && l->grad_hook)
        bdt_dqn_set_grad_hook(l->dqn, (bdt_grad_hook)l->grad_hook, l->grad_ctx);
    /* a second core: each gradient step's targets beside its forward pass, where it pays
     * (bd_split_pick, update by update). With OpenBLAS's AVX2 kernels CartPole reached 475
     * in 28.5 s against 32.8 s on one thread (16 worlds, hidden 256). With its AVX-512
     * ones, whose steps are a third shorter, it did not (a step 0.86 ms against 0.81 ms in
     * bodhi-dqnbench; runs of 23.9 and 27.9 s against 25.8 and 24.3 s): there it starts
     * off. Beside another busy learner it did not pay either; the probes find that. Asked
     * here, with libtorch loaded: OpenBLAS's answers come by dlsym, which would wait for
     * the loader while libtorch loads in the background. */
    if (rc == BD_OK && l->dqn)
        bd_split_pick_init(&l->pick, bd_ranks_split(l->pc.device == BDT_CPU), !bd_blas_avx512());
    if (rc != BD_OK) {
        bdt_dqn_destroy(l->dqn);
        bdt_policy_destroy(l->net);
        l->dqn = NULL;
        l->net = NULL;
    }
    return rc;
}

/* The agent's learner: its initial parameters (torch/cpunet.c's, those libtorch's network
 * will start from) and epsilon, the replay buffer of a train phase. libtorch starts
 * loading in the background; the network comes with bd_dqn_net. */
static int bd_dqn_create(const bd_learner_spec *s, void **out)
{
    bd_dqn_state *l = calloc(1, sizeof *l);
    if (!l)
        return bd_seterr(BD_ENOMEM, "out of memory");
    l->ap = s->ap;
    l->dp = *(const bd_dqn_params *)s->params;
    l->train = s->train;
    l->cancel = s->cancel;
    l->grad_hook = s->grad_hook;
    l->grad_ctx = s->grad_ctx;
    bd_dqn_net_config(s->ap, &l->dp, s->device, &l->pc);
    bdt_preload();
    l->sum_hook = s->sum_hook;
    l->sum_ctx = s->sum_ctx;
    l->draws = (uint64_t)s->rank << 40;
    int rc = bd_learner_params(s->ap, &l->pc, "Q-network", 1, &l->params, &l->nparams); /* then epsilon */
    if (rc == BD_OK)
        l->params[l->nparams] = s->train ? (float)bd_dqn_epsilon(&l->dp, 0) : 0.0f;
    if (rc == BD_OK && s->train)
        rc = bd_replay_init(&l->rb, l->dp.buffer_size, s->ap->nsens, 1, s->N);
    if (rc == BD_OK && s->train)
        rc = bd_dqn_alloc_samples(l);
    if (rc != BD_OK) {
        bd_dqn_destroy(l);
        return rc;
    }
    *out = l;
    return BD_OK;
}

static int bd_dqn_load(void *self, const char *path)
{
    bd_dqn_state *l = self;
    int rc = bd_dqn_net(l);
    if (rc == BD_OK)
        rc = l->dqn ? bdt_dqn_load(l->dqn, path) : bdt_load(l->net, NULL, path);
    if (rc == BD_OK && l->dqn && l->dp.save_buffer)
        rc = bd_replay_resume(&l->rb, path);
    return rc == BD_OK ? bdt_policy_get_params(l->net, l->params, l->nparams) : rc;
}

static int bd_dqn_collect(void *self, const bd_batch *b)
{
    ((bd_dqn_state *)self)->batch = b;
    return BD_OK;
}

/* k gradient steps, BD_DQN_CHUNK at a time, on batches drawn from the buffer. */
static int bd_dqn_steps(bd_dqn_state *l, long long k)
{
    const int B = l->dp.batch_size;
    double lag = 0;
    long long seen = 0;
    float q_first = NAN; /* the update's first batch's, before its step: the first chunk's */
    for (long long done = 0; done < k;) {
        const int c = (int)(k - done < BD_DQN_CHUNK ? k - done : BD_DQN_CHUNK);
        for (int j = 0; j < c; j++)
            bd_replay_sample(l->ap->seed, l->draws++, l->rb.size, B, l->s_idx + (size_t)j * (size_t)B);
        bd_replay_gather(&l->rb, l->s_idx, c * B, l->s_obs, l->s_act, l->s_rew, l->s_next, l->s_term, l->s_ver);
        for (int j = 0; j < c * B; j++, seen++)
            lag += (double)(l->version - l->s_ver[j]);
        /* several ranks: no cancel inside (a rank that stopped early would leave the others
         * waiting in an all-reduce): the agreed steps are taken, and the stop comes after */
        int rc = bdt_dqn_update(l->dqn, l->s_obs, l->s_act, l->s_rew, l->s_next, l->s_term, B, c,
                                l->sum_hook ? NULL : (const volatile int *)l->cancel, &l->st);
        if (rc != BD_OK)
            return rc;
        if (done == 0)
            q_first = l->st.q_first;
        done += c;
    }
    l->st.q_first = q_first;
    l->lag = seen ? lag / (double)seen : 0;
    return BD_OK;
}

static int bd_dqn_update(void *self, long long steps, char *diverged, size_t len)
{
    bd_dqn_state *l = self;
    l->have_stats = 0;
    diverged[0] = '\0';
    if (!l->batch || !l->train)
        return bd_seterr(BD_ESTATE, "dqn: an update with no batch collected");
    double t0 = bd_now();
    const bd_batch *b = l->batch;
    for (int t = 0; t < b->T; t++)
        for (int i = 0; i < b->N; i++)
            if (!b->valid || b->valid[i]) {
                const double r = fabs((double)b->rew[(size_t)t * (size_t)b->N + (size_t)i]);
                if (r > l->reward_max && isfinite(r))
                    l->reward_max = r;
            }
    l->added = bd_replay_collect(&l->rb, l->batch, l->version);
    l->grad_steps = bd_dqn_grad_steps(&l->dp, l->added, l->rb.size, &l->carry);
    int rc = bd_learners_fewest(l->sum_hook, l->sum_ctx, &l->grad_steps);
    if (rc == BD_OK && l->grad_steps > 0) /* the first gradient step: libtorch, loaded meanwhile */
        rc = bd_dqn_net(l);
    int marked = 0;
    if (rc == BD_OK && l->grad_steps > 0) /* the whole learner, should this round diverge or be cancelled */
        marked = (rc = bdt_dqn_mark(l->dqn)) == BD_OK;
    if (rc == BD_OK && l->grad_steps > 0)
        rc = bdt_dqn_set_split(l->dqn, bd_split_pick_next(&l->pick));
    if (rc == BD_OK && l->grad_steps > 0) {
        const double s0 = bd_now();
        rc = bd_dqn_steps(l, l->grad_steps);
        bd_split_pick_took(&l->pick, rc == BD_OK ? (bd_now() - s0) / (double)l->grad_steps : -1);
    }
    if (rc == BD_EINTR && marked) { /* cancelled (alone): the last whole update is kept, as ppo's */
        int rrc = bdt_dqn_restore(l->dqn);
        if (rrc == BD_OK)
            rrc = bdt_policy_get_params(l->net, l->params, l->nparams);
        rc = rrc == BD_OK ? bd_seterr(BD_EINTR, "dqn: update cancelled; the last whole update is kept") : rrc;
    }
    if (rc == BD_OK && l->grad_steps > 0)
        rc = bdt_policy_get_params(l->net, l->params, l->nparams);
    if (rc == BD_OK && l->grad_steps > 0) {
        /* a loss or a parameter that is not finite, on any rank (several ranks decide
         * together, after the agreed steps): the round is undone, so the muscles and the
         * checkpoint keep the learner from before it, and the phase ends */
        /* the bound is every rank's: their networks are one, their rewards their own */
        double mx[2] = {-l->reward_max, -(isfinite(l->st.q_first) ? fabs((double)l->st.q_first) : 0)};
        if (l->sum_hook)
            rc = l->sum_hook(l->sum_ctx, mx, 2, 1); /* minima of the negatives: the largest */
        l->reward_max = -mx[0];
        if (!l->have_q_start) {
            l->q_start = -mx[1];
            l->have_q_start = 1;
        }
        int mine = !isfinite(l->st.loss);
        for (size_t i = 0; i < l->nparams && !mine; i++)
            mine = !isfinite(l->params[i]);
        const double bound = rc == BD_OK ? bd_dqn_q_bound(l) : 0;
        const int runaway = !mine && bound > 0 && fabs((double)l->st.q_mean) > bound;
        mine |= runaway;
        double bad = mine;
        if (rc == BD_OK && l->sum_hook)
            rc = l->sum_hook(l->sum_ctx, &bad, 1, 0);
        if (rc == BD_OK && bad > 0) {
            rc = bdt_dqn_restore(l->dqn);
            if (rc == BD_OK)
                rc = bdt_policy_get_params(l->net, l->params, l->nparams);
            char what[256];
            if (runaway && bound > BD_DQN_Q_SLACK * l->q_start)
                snprintf(what, sizeof what, "mean Q %.4g ran past %.4g (%g max|r| / (1 - gamma), max|r| %.4g)",
                         (double)l->st.q_mean, bound, BD_DQN_Q_SLACK, l->reward_max);
            else if (runaway)
                snprintf(what, sizeof what, "mean Q %.4g ran past %.4g (%g times the %.4g it started from)",
                         (double)l->st.q_mean, bound, BD_DQN_Q_SLACK, l->q_start);
            else
                snprintf(what, sizeof what, "%s", !mine ? "the Q-network diverged on another rank"
                         : isfinite(l->st.loss) ? "a Q-network parameter is not finite" : "the Q loss is not finite");
            if (rc == BD_OK)
                snprintf(diverged, len, "%s after update %llu; the learner is kept as it was before this round", what,
                         (unsigned long long)l->version + 1);
        } else if (rc == BD_OK) {
            l->version++;
        }
    }
    l->params[l->nparams] = (float)bd_dqn_epsilon(&l->dp, steps);
    l->learn_s = bd_now() - t0;
    l->have_stats = rc == BD_OK;
    return rc;
}

static void bd_dqn_stats(const void *self, cJSON *ev)
{
    const bd_dqn_state *l = self;
    if (!l->have_stats)
        return;
    cJSON_AddNumberToObject(ev, "epsilon", l->params[l->nparams]);
    cJSON_AddNumberToObject(ev, "replay_size", (double)l->rb.size);
    cJSON_AddNumberToObject(ev, "gradient_steps", (double)l->grad_steps);
    if (l->grad_steps > 0) {
        cJSON_AddNumberToObject(ev, "learning_rate", l->dp.learning_rate);
        cJSON_AddNumberToObject(ev, "q_loss", l->st.loss);
        cJSON_AddNumberToObject(ev, "q_mean", l->st.q_mean);
        cJSON_AddNumberToObject(ev, "sample_version_lag", l->lag);
        cJSON_AddBoolToObject(ev, "split", l->st.split); /* what ran (no thread to be had: one) */
    }
    cJSON_AddNumberToObject(ev, "learn_s", l->learn_s);
}

static void bd_dqn_weights_out(const void *self, bd_policy_out *out)
{
    const bd_dqn_state *l = self;
    const bd_agent_plan *ap = l->ap;
    memset(out, 0, sizeof *out);
    out->h = (bd_weights_hdr){
        .version = l->version, .nparams = l->nparams, .rollout_steps = (uint32_t)l->dp.rollout_steps,
        .hidden = (uint32_t)l->dp.hidden, .layers = (uint32_t)l->dp.layers, .policy = BD_POLICY_Q_MLP,
        .head = BD_HEAD_Q, .obs_dim = (uint32_t)ap->nsens, .act_dim = (uint32_t)ap->n_actions,
    };
    out->floats = l->params;
}

static int bd_dqn_weights_in(void *self, const bd_weights_hdr *h, const float *floats)
{
    bd_dqn_state *l = self;
    bd_policy_out mine;
    bd_dqn_weights_out(l, &mine);
    if (h->policy != mine.h.policy || h->head != mine.h.head || h->nparams != mine.h.nparams
        || h->hidden != mine.h.hidden || h->layers != mine.h.layers || h->obs_dim != mine.h.obs_dim
        || h->act_dim != mine.h.act_dim || h->norm_dims)
        return bd_seterr(BD_EINVAL, "dqn: weights of another network (%llu parameters, %u x %u) for a Q-network "
                         "of %zu parameters, %d x %d", (unsigned long long)h->nparams, h->layers, h->hidden,
                         l->nparams, l->dp.layers, l->dp.hidden);
    return bd_learner_take_params(l->net, l->params, l->nparams, floats);
}

static int bd_dqn_save(const void *self, const char *path, int *saved)
{
    bd_dqn_state *l = (bd_dqn_state *)self; /* a learner is never const itself: the network may come now */
    int rc = bd_dqn_net(l);
    if (rc == BD_OK)
        rc = l->dqn ? bdt_dqn_save(l->dqn, path) : bdt_save(l->net, NULL, path);
    if (rc == BD_OK && l->dqn && l->dp.save_buffer)
        rc = bd_replay_save_beside(&l->rb, path);
    *saved = rc == BD_OK;
    return rc;
}

static uint64_t bd_dqn_version(const void *self)
{
    return ((const bd_dqn_state *)self)->version;
}

/* What `bodhi set` may change while DQN learns: Adam's step size, the gradient steps a
 * transition earns, and the epsilon schedule (the next round's epsilon follows it). */
static const char *const bd_dqn_steer_keys[] = {
    "learning_rate", "utd_ratio", "exploration_initial_eps", "exploration_final_eps", "exploration_steps", NULL,
};

static int bd_dqn_steer(void *self, const void *params, const char *const *keys)
{
    bd_dqn_state *l = self;
    const bd_dqn_params *np = params;
    (void)keys;
    l->dp.learning_rate = np->learning_rate;
    l->dp.utd_ratio = np->utd_ratio;
    l->dp.eps_initial = np->eps_initial;
    l->dp.eps_final = np->eps_final;
    l->dp.exploration_steps = np->exploration_steps;
    return l->dqn ? bdt_dqn_set_lr(l->dqn, (float)l->dp.learning_rate) : BD_OK;
}

static void bd_dqn_restart(void *self, int c0, int n)
{
    bd_replay_restart(&((bd_dqn_state *)self)->rb, c0, n);
}

const bd_learner_ops bd_dqn_learner = {
    bd_dqn_create, bd_dqn_destroy, bd_dqn_load,       bd_dqn_collect,    bd_dqn_update,
    bd_dqn_stats,  bd_dqn_weights_out, bd_dqn_weights_in, bd_dqn_save,   bd_dqn_version,
    bd_dqn_steer_keys, bd_dqn_steer, bd_dqn_restart,
};
