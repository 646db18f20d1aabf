/* ppo.c: PPO hyper-parameters, GAE and minibatch order (see ppo.h). */
#include "brain/ppo.h"
#include "brain/params_get.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "brain/obsnorm.h"
#include "common/rng.h"
#include "common/util.h"
#include "config/diag.h"
#include "wire/wire.h"

static const char *const bd_ppo_keys[] = {
    "learning_rate", "anneal_lr", "total_steps", "gamma", "gae_lambda", "rollout_steps",
    "hidden", "layers", "clip_coef", "vf_coef", "ent_coef", "max_grad_norm", "clip_vloss",
    "norm_adv", "update_epochs", "num_minibatches", "minibatch_size", "norm_obs", "kl_threshold",
    "diverge_kl", "diverge_updates", NULL,
};

/* Every problem of the map into *dp (config/diag.h); the first one's code. */
static int bd_ppo_params_read(const bd_node *p, long long default_total, long long columns, bd_ppo_params *o,
                              bd_diags *dp)
{
    bd_diags d = BD_DIAGS_INIT;
    char where[256];
    bd_node_check_keys(p, bd_ppo_keys, "the ppo brain's params", &d);
    double dv;
    long long i;
    int b;
#define GETD(key, def, dst) BD_GETD_IN(key, def, -INFINITY, INFINITY, 0, dst)
#define GETI BD_GETI
#define GETB BD_GETB
    GETD("learning_rate", 1e-3, o->learning_rate);
    GETB("anneal_lr", 0, o->anneal_lr);
    GETI("total_steps", default_total, 0, (long long)1 << 50, o->total_steps);
    GETD("kl_threshold", BD_PPO_KL_THRESHOLD, o->kl_threshold);
    GETD("gamma", 0.99, o->gamma);
    GETD("gae_lambda", 0.95, o->gae_lambda);
    o->rollout_steps = (int)bd_brain_auto_rollout(columns);
    GETI("rollout_steps", o->rollout_steps, 1, 1 << 20, o->rollout_steps);
    GETI("hidden", 64, 1, 1 << 16, o->hidden);
    GETI("layers", 2, 1, 16, o->layers);
    GETB("norm_obs", 0, o->norm_obs);
    GETD("diverge_kl", BD_PPO_DIVERGE_KL, o->diverge_kl);
    GETI("diverge_updates", 1, 1, 1000000, o->diverge_updates);
    GETD("clip_coef", 0.2, o->opt.clip_coef);
    GETD("vf_coef", 0.5, o->opt.vf_coef);
    GETD("ent_coef", 0.0, o->opt.ent_coef);
    GETD("max_grad_norm", 0.5, o->opt.max_grad_norm);
    GETB("clip_vloss", 0, o->opt.clip_vloss);
    GETB("norm_adv", 1, o->opt.norm_adv);
    GETI("update_epochs", 4, 1, 1000, o->opt.epochs);
    o->opt.minibatches = 0; /* absent: minibatch_size decides */
    if (bd_node_get(p, "num_minibatches")) {
        GETI("num_minibatches", 0, 1, 1 << 20, o->opt.minibatches);
    }
    GETI("minibatch_size", BD_PPO_MINIBATCH_SIZE, 1, 1 << 30, o->opt.minibatch_size);
    if (bd_node_get(p, "num_minibatches") && bd_node_get(p, "minibatch_size"))
        bd_diag(&d, bd_seterr(BD_EINVAL, "%s: num_minibatches and minibatch_size: give one of them (a count per "
                              "epoch, or a size that keeps the count growing with the batch)",
                              bd_node_where(bd_node_get(p, "num_minibatches"), where, sizeof where)));
#undef GETD
#undef GETI
#undef GETB
    /* each range at its key */
    static const struct {
        const char *key;
        double lo, hi;
        int open_lo;
    } ranges[] = {
        {"learning_rate", 0, 1e3, 1}, {"gamma", 0, 1, 0},         {"gae_lambda", 0, 1, 0},
        {"clip_coef", 0, 1e3, 0},     {"vf_coef", 0, 1e6, 0},     {"ent_coef", 0, 1e6, 0},
        {"max_grad_norm", 0, 1e9, 1}, {"kl_threshold", 0, 1e3, 0},
        {"diverge_kl", 0, 1e9, 1},
    };
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        const bd_node *n = bd_node_get(p, ranges[k].key);
        double v;
        if (!n || bd_node_as_double(n, &v) != BD_OK)
            continue; /* absent (the default is in range) or noted above */
        if (!(ranges[k].open_lo ? v > ranges[k].lo : v >= ranges[k].lo) || !(v <= ranges[k].hi))
            bd_diag(&d, bd_seterr(BD_EINVAL, "%s: %s: expected %s%g to %g, got %g", bd_node_where(n, where, sizeof where),
                                  ranges[k].key, ranges[k].open_lo ? "more than " : "", ranges[k].lo,
                                  ranges[k].hi, v));
    }
    o->opt.lr = (float)o->learning_rate;
    return bd_diags_move(&d, dp); /* to the caller's list, each on its own */
}

int bd_ppo_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out)
{
    bd_ppo_params *pp = malloc(sizeof *pp);
    if (!pp)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    int rc = bd_ppo_params_read(params, bd_brain_total_steps(p, ap), p->max_columns, pp, d);
    if (rc != BD_OK) {
        free(pp);
        return rc;
    }
    *out = pp;
    return BD_OK;
}

double bd_ppo_kind_memory(const void *value, const bd_agent_plan *ap)
{
    const bd_ppo_params *pp = value;
    return bd_brain_batch_bytes(ap, pp->rollout_steps, pp->opt.epochs);
}

long long bd_ppo_kind_rollout(const void *value)
{
    return ((const bd_ppo_params *)value)->rollout_steps;
}

unsigned long long bd_ppo_kind_weights_floats(const void *value, const bd_agent_plan *ap)
{
    bdt_policy_config cfg;
    bd_ppo_policy_config(ap, value, BD_DEVICE_CPU, &cfg);
    return (unsigned long long)bdt_policy_param_count_of(&cfg) + 2ull * (unsigned long long)ap->nsens;
}

int bd_ppo_params_parse(const bd_node *p, long long default_total, long long columns, bd_ppo_params *o)
{
    bd_diags d = BD_DIAGS_INIT;
    bd_ppo_params_read(p, default_total, columns, o, &d);
    return bd_diags_finish(&d);
}

void bd_ppo_policy_config(const bd_agent_plan *ap, const bd_ppo_params *pp, bd_device device,
                          bdt_policy_config *out)
{
    bd_brain_net_config(ap, ap->continuous ? BDT_CONTINUOUS : BDT_DISCRETE, ap->continuous ? ap->nact : ap->n_actions,
                        pp->hidden, pp->layers, device, out);
}

/* A ppo agent's network, for bd_brain_load_check. */
static void bd_ppo_net_of(const bd_agent_plan *src, bdt_policy_config *out)
{
    bd_ppo_policy_config(src, src->brain_params, BD_DEVICE_CPU, out);
}

/* What the agent loads fits the network it builds (bd_brain_load_check), and its
 * normaliser: a checkpoint learnt without norm_obs has none to load. */
static int bd_ppo_load_check(const bd_phase_plan *p, const bd_agent_plan *ap, const bd_ppo_params *pp,
                             const bdt_policy_config *mine)
{
    bd_phase_plan src;
    const bd_agent_plan *sap = NULL;
    int rc = bd_brain_load_check(p, ap, mine, NULL, bd_ppo_net_of, &src, &sap);
    if (rc != BD_OK || !pp->norm_obs || !bd_brain_load_looks(p, ap)) {
        if (sap)
            bd_phase_plan_fini(&src);
        return rc;
    }
    char w[256];
    const bd_node *ld = bd_node_get(ap->cfg->node, "load");
    bd_node_where(ld ? ld : ap->cfg->node, w, sizeof w);
    if (sap) { /* an earlier phase of this run */
        const bd_ppo_params *sp = sap->brain_params;
        if (!sp->norm_obs)
            rc = bd_seterr(BD_EINVAL, "%s: load: agent '%s' has norm_obs, but agent '%s' of phase '%s' learns "
                           "without it", w, ap->cfg->name, ap->load_agent, ap->load_phase);
        bd_phase_plan_fini(&src);
        return rc;
    }
    if (!ap->load_run)
        return BD_OK;
    char *path = bd_strfmt("%s/checkpoints/%s/%s.pt", ap->load_run, ap->load_phase, ap->load_agent);
    char *np = path ? bd_strfmt("%s.obsnorm.json", path) : NULL;
    struct stat st;
    if (!np)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    else if (stat(np, &st) != 0)
        rc = bd_seterr(BD_EINVAL, "%s: load: agent '%s' has norm_obs, but %s was trained without it (no %s)", w,
                       ap->cfg->name, path, np);
    free(np);
    free(path);
    return rc;
}

int bd_ppo_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d)
{
    char w[256];
    int rc = BD_OK;
    if (ap->nsens > BD_OBSNORM_MAX)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s' has %d sensors, the ppo brain takes at most %d",
                                  bd_node_where(ap->cfg->node, w, sizeof w), ap->cfg->name, ap->nsens,
                                  BD_OBSNORM_MAX));
    const bd_ppo_params *pp = ap->brain_params; /* read (bd_ppo_kind_parse) */
    if (!pp || !ap->env)
        return rc; /* what follows would judge defaults in place of what was meant, or needs the env */
    int brc = bd_brain_batch_check(params, p, ap, pp->rollout_steps, pp->opt.minibatches,
                                   p->ph && p->ph->mode == BD_MODE_TRAIN ? pp->opt.epochs : 0, d);
    rc = rc ? rc : brc;
    /* the network, its gradients and Adam's two moments must fit this machine */
    bdt_policy_config cfg;
    bd_ppo_policy_config(ap, pp, BD_DEVICE_CPU, &cfg);
    uint64_t n = bdt_policy_param_count_of(&cfg);
    double need = (double)n * 16, have = bd_phys_bytes();
    if (n == 0 || (have > 0 && need > have)) {
        const bd_node *hn = bd_node_get(params, "hidden");
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: hidden %d x layers %d makes a network of %.3g parameters, %.3g "
                                    "GiB with its optimiser; this machine has %.3g GiB",
                                    bd_node_where(hn ? hn : params, w, sizeof w), pp->hidden, pp->layers, (double)n,
                                    need / (1 << 30), have / (1 << 30)));
    }
    int lrc = bd_diag(d, bd_ppo_load_check(p, ap, pp, &cfg));
    return rc ? rc : lrc;
}

double bd_ppo_adapt_lr(const bd_ppo_params *pp, double lr, double kl)
{
    if (!(pp->kl_threshold > 0) || !isfinite(kl))
        return lr;
    double hi = pp->learning_rate > BD_PPO_LR_MAX ? pp->learning_rate : BD_PPO_LR_MAX;
    double lo = pp->learning_rate < BD_PPO_LR_MIN ? pp->learning_rate : BD_PPO_LR_MIN;
    if (kl > 2 * pp->kl_threshold)
        lr /= BD_PPO_KL_STEP;
    else if (kl < 0.5 * pp->kl_threshold)
        lr *= BD_PPO_KL_STEP;
    return lr < lo ? lo : lr > hi ? hi : lr;
}

void bd_gae(int T, int N, const float *rewards, const float *values, const float *final_values,
            const float *last_values, const uint8_t *terminated, const uint8_t *truncated,
            float gamma, float lambda, float *adv, float *ret)
{
    for (int i = 0; i < N; i++) {
        float next_adv = 0;
        for (int t = T - 1; t >= 0; t--) {
            size_t k = (size_t)t * (size_t)N + (size_t)i;
            float next_value = t == T - 1 ? last_values[i] : values[k + (size_t)N];
            float boot = terminated[k] ? 0.0f : truncated[k] ? final_values[k] : next_value;
            int done = terminated[k] || truncated[k];
            float delta = rewards[k] + gamma * boot - values[k];
            next_adv = delta + (done ? 0.0f : gamma * lambda * next_adv);
            adv[k] = next_adv;
            ret[k] = next_adv + values[k];
        }
    }
}

void bd_ppo_perm(int64_t *perm, int n, int epochs, uint64_t seed, uint64_t update)
{
    /* Fisher-Yates with j = floor(r (i + 1) / 2^64) for a 64-bit draw r: every j in 0..i
     * reachable for any n (a float draw has 24 bits and stops short of 2^24), bias below
     * (i + 1) / 2^64. Draw k of an epoch is counter (update << 32) + k / 2, so no two
     * updates share a counter while a batch has under 2^33 samples. */
    for (int e = 0; e < epochs; e++) {
        int64_t *p = perm + (size_t)e * (size_t)n;
        for (int i = 0; i < n; i++)
            p[i] = i;
        uint32_t r[4] = {0, 0, 0, 0};
        for (int i = n - 1; i > 0; i--) {
            uint64_t k = (uint64_t)(n - 1 - i);
            if ((k & 1) == 0)
                bd_rng_u32x4(seed, (uint32_t)e, (update << 32) + k / 2, BD_STREAM_SHUFFLE, r);
            uint64_t draw = ((uint64_t)r[2 * (k & 1)] << 32) | r[2 * (k & 1) + 1];
            int64_t j = bd_ppo_pick(draw, (uint64_t)i + 1);
            int64_t tmp = p[i];
            p[i] = p[j];
            p[j] = tmp;
        }
    }
}
