/* ppo.c: PPO hyper-parameters, GAE and minibatch order (see ppo.h). */
#include "brain/ppo.h"

#include <string.h>

#include "brain/obsnorm.h"
#include "common/rng.h"

static const char *const bd_ppo_keys[] = {
    "learning_rate", "anneal_lr", "total_steps", "gamma", "gae_lambda", "rollout_steps",
    "hidden", "layers", "clip_coef", "vf_coef", "ent_coef", "max_grad_norm", "clip_vloss",
    "norm_adv", "update_epochs", "num_minibatches", "norm_obs", NULL,
};

int bd_ppo_params_parse(const bd_node *p, long long default_total, bd_ppo_params *o)
{
    char where[256];
    int rc = bd_node_check_keys(p, bd_ppo_keys, "the ppo brain's params");
    if (rc != BD_OK)
        return rc;
    double d;
    long long i;
    int b;
#define GETD(key, def, dst)                                                                  \
    if ((rc = bd_node_double(p, key, def, &d)) != BD_OK) return rc;                          \
    dst = d;
#define GETI(key, def, lo, hi, dst)                                                          \
    if ((rc = bd_node_int(p, key, def, &i)) != BD_OK) return rc;                             \
    if (i < (lo) || i > (hi))                                                                \
        return bd_seterr(BD_EINVAL, "%s: ppo param %s = %lld is outside [%lld, %lld]",     \
                         bd_node_where(bd_node_get(p, key), where, sizeof where), key, i,  \
                         (long long)(lo), (long long)(hi));                                  \
    dst = i;
#define GETB(key, def, dst)                                                                  \
    if ((rc = bd_node_bool(p, key, def, &b)) != BD_OK) return rc;                            \
    dst = b;
    GETD("learning_rate", 2.5e-4, o->learning_rate);
    GETB("anneal_lr", 1, o->anneal_lr);
    GETI("total_steps", default_total, 0, (long long)1 << 50, o->total_steps);
    GETD("gamma", 0.99, o->gamma);
    GETD("gae_lambda", 0.95, o->gae_lambda);
    GETI("rollout_steps", 128, 1, 1 << 20, o->rollout_steps);
    GETI("hidden", 64, 1, 1 << 16, o->hidden);
    GETI("layers", 2, 1, 16, o->layers);
    GETB("norm_obs", 0, o->norm_obs);
    GETD("clip_coef", 0.2, o->opt.clip_coef);
    GETD("vf_coef", 0.5, o->opt.vf_coef);
    GETD("ent_coef", 0.01, o->opt.ent_coef);
    GETD("max_grad_norm", 0.5, o->opt.max_grad_norm);
    GETB("clip_vloss", 1, o->opt.clip_vloss);
    GETB("norm_adv", 1, o->opt.norm_adv);
    GETI("update_epochs", 4, 1, 1000, o->opt.epochs);
    GETI("num_minibatches", 4, 1, 1 << 20, o->opt.minibatches);
#undef GETD
#undef GETI
#undef GETB
    if (!(o->learning_rate > 0) || !(o->gamma >= 0 && o->gamma <= 1)
        || !(o->gae_lambda >= 0 && o->gae_lambda <= 1))
        return bd_seterr(BD_EINVAL, "%s: ppo params need learning_rate > 0 and gamma, gae_lambda in [0, 1]",
                         p ? bd_node_where(p, where, sizeof where) : "brain params");
    o->opt.lr = (float)o->learning_rate;
    return BD_OK;
}

int bd_ppo_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap)
{
    char w[256];
    (void)p;
    if (ap->nsens > BD_OBSNORM_MAX)
        return bd_seterr(BD_EINVAL, "%s: agent '%s' has %d sensors, the ppo brain takes at most %d",
                         bd_node_where(ap->cfg->node, w, sizeof w), ap->cfg->name, ap->nsens,
                         BD_OBSNORM_MAX);
    bd_ppo_params pp;
    return bd_ppo_params_parse(params, 1, &pp);
}

int bd_random_brain_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap)
{
    (void)p;
    (void)ap;
    bd_ppo_params pp;
    return bd_ppo_params_parse(params, 1, &pp);
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
    for (int e = 0; e < epochs; e++) {
        int64_t *p = perm + (size_t)e * (size_t)n;
        for (int i = 0; i < n; i++)
            p[i] = i;
        float u[4];
        for (int i = n - 1; i > 0; i--) {
            int r = (n - 1 - i) & 3;
            if (r == 0)
                bd_rng_uniform4(seed, (uint32_t)e, (update << 24) + (uint64_t)(n - 1 - i) / 4,
                                BD_STREAM_SHUFFLE, u);
            int j = (int)(u[r] * (float)(i + 1));
            if (j > i)
                j = i;
            int64_t tmp = p[i];
            p[i] = p[j];
            p[j] = tmp;
        }
    }
}
