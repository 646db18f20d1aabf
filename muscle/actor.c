/* actor.c: one agent's inference and action selection in a muscle (see actor.h). The
 * per-world work is muscle/act.h's; here it runs as loops on the CPU or as the kernels of
 * kernels/muscle.cu on CUDA. */
#include "muscle/actor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/devmem.h"
#ifdef BODHI_HAVE_CUDA
#include "kernels/muscle_launch.h"
#endif

#ifdef BODHI_HAVE_CUDA
#define BD_ON_CUDA(mp) ((mp)->dev == BD_DEVICE_CUDA)
#else
#define BD_ON_CUDA(mp) 0
#endif

int bd_actor_init(bd_actor *mp, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev,
                    bd_act_mode mode)
{
    memset(mp, 0, sizeof *mp);
    mp->ap = ap;
    mp->dev = dev;
    mp->n = b->n;
    bd_act_args *a = &mp->args;
    a->n = b->n;
    a->S = ap->nsens;
    a->U = ap->nact;
    a->A = ap->continuous ? ap->nact : ap->n_actions;
    a->D = b->obs_dim;
    a->AD = b->act_dim;
    a->continuous = ap->continuous;
    a->mode = ap->random ? BD_ACT_UNIFORM : mode;
    a->seed = ap->seed;
    a->world0 = b->world0;
    if (a->A > BD_ACT_MAX || a->U > BD_MAX_ACTUATORS)
        return bd_seterr(BD_EINVAL, "agent %s: %d outputs and %d actuators, at most %d and %d",
                         ap->cfg->name, a->A, a->U, BD_ACT_MAX, BD_MAX_ACTUATORS);
    for (int d = 0; d < a->U; d++) {
        a->act_cols[d] = ap->act_cols[d];
        a->low[d] = ap->act_low[d];
        a->high[d] = ap->act_high[d];
    }
    const size_t n = (size_t)b->n, S = (size_t)a->S;
    int rc = bd_dev_alloc(dev, sizeof(int) * S, (void **)&mp->cols);
    if (rc == BD_OK)
        rc = bd_dev_from_host(dev, mp->cols, ap->sens_cols, sizeof(int) * S);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * 2 * S, (void **)&mp->norm);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n * (size_t)a->A, (void **)&mp->out);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n * S, (void **)&mp->nobs);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n * S, (void **)&mp->fobs);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n, (void **)&mp->fv);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(int), (void **)&mp->any);
    if (rc == BD_OK && !(mp->fidx = malloc(sizeof(int) * n)))
        rc = bd_seterr(BD_ENOMEM, "muscle: out of memory");
    if (rc != BD_OK)
        return rc;
    a->cols = mp->cols;
    a->mean = mp->norm;
    a->inv = mp->norm + S;
    return BD_OK;
}

int bd_actor_set_net(bd_actor *mp, int hidden, int layers)
{
    bd_act_args *a = &mp->args;
    if (a->mode == BD_ACT_UNIFORM || mp->net)
        return bd_seterr(BD_ESTATE, "agent %s: %s", mp->ap->cfg->name,
                         mp->net ? "the network exists already" : "the random muscle has no network");
    bdt_policy_config pc = {
        .obs_dim = a->S, .act_kind = a->continuous ? BDT_CONTINUOUS : BDT_DISCRETE,
        .act_dim = a->A, .hidden = hidden, .layers = layers,
        .device = mp->dev == BD_DEVICE_CUDA ? BDT_CUDA : BDT_CPU, .seed = mp->ap->seed,
    };
    int rc = bdt_policy_create(&pc, &mp->net);
    if (rc == BD_OK && a->continuous)
        rc = bdt_policy_logstd(mp->net, a->logstd, a->A);
    return rc;
}

void bd_actor_fini(bd_actor *mp)
{
    bdt_policy_destroy(mp->net);
    bd_dev_free(mp->dev, mp->cols);
    bd_dev_free(mp->dev, mp->norm);
    bd_dev_free(mp->dev, mp->out);
    bd_dev_free(mp->dev, mp->nobs);
    bd_dev_free(mp->dev, mp->fobs);
    bd_dev_free(mp->dev, mp->fv);
    bd_dev_free(mp->dev, mp->any);
    free(mp->fidx);
    memset(mp, 0, sizeof *mp);
}

int bd_actor_set_params(bd_actor *mp, const float *params, size_t n)
{
    if (!mp->net)
        return BD_OK;
    int rc = bdt_policy_set_params(mp->net, params, n);
    if (rc == BD_OK && mp->args.continuous)
        rc = bdt_policy_logstd(mp->net, mp->args.logstd, mp->args.A);
    return rc;
}

int bd_actor_set_norm(bd_actor *mp, const float *mean, const float *var)
{
    const int S = mp->args.S;
    mp->args.norm = 0;
    if (!mean)
        return BD_OK;
    float *h = malloc(sizeof(float) * 2 * (size_t)S);
    if (!h)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    for (int s = 0; s < S; s++) {
        h[s] = mean[s];
        h[S + s] = (float)(1.0 / sqrt((double)var[s] + 1e-8));
    }
    int rc = bd_dev_from_host(mp->dev, mp->norm, h, sizeof(float) * 2 * (size_t)S);
    free(h);
    mp->args.norm = rc == BD_OK;
    return rc;
}

/* raw (may be NULL) and the network's input net from src (n, D). */
static int bd_actor_gather(bd_actor *mp, const float *src, float *raw, float *net)
{
#ifdef BODHI_HAVE_CUDA
    if (BD_ON_CUDA(mp))
        return bd_act_gather_cuda(&mp->args, src, raw, net);
#endif
    for (int i = 0; i < mp->n; i++)
        bd_act_gather(i, &mp->args, src, raw, net);
    return BD_OK;
}

int bd_actor_act(bd_actor *mp, const float *env_obs, uint64_t step, float *obs, float *act,
                   float *logp, float *values, float *env_act)
{
    const bd_act_args *a = &mp->args;
    const int uniform = a->mode == BD_ACT_UNIFORM;
    /* without normalisation the network reads the rollout's rows themselves */
    float *net = a->norm ? mp->nobs : NULL;
    int rc = bd_actor_gather(mp, env_obs, obs, net);
    if (rc == BD_OK && !uniform)
        rc = bdt_policy_forward_on_device(mp->net, net ? net : obs, mp->n, mp->out, values);
    if (rc != BD_OK)
        return rc;
#ifdef BODHI_HAVE_CUDA
    if (BD_ON_CUDA(mp))
        return bd_act_select_cuda(a, step, mp->out, act, logp, values, env_act);
#endif
    for (int i = 0; i < mp->n; i++)
        bd_act_select(i, a, step, mp->out, act, logp, values, env_act);
    return BD_OK;
}

int bd_actor_record(bd_actor *mp, const bd_env_batch *b, float *rew, uint8_t *term,
                      uint8_t *trunc, float *fval)
{
    const bd_act_args *a = &mp->args;
#ifdef BODHI_HAVE_CUDA
    if (BD_ON_CUDA(mp)) {
        /* final observations by world; one forward over all of them when any is needed */
        int any = 0;
        int rc = bd_act_record_cuda(a, b, rew, term, trunc, fval, mp->net ? mp->fobs : NULL, mp->any);
        if (rc == BD_OK && mp->net)
            rc = bd_dev_to_host(mp->dev, &any, mp->any, sizeof any);
        if (rc == BD_OK && any)
            rc = bdt_policy_forward_on_device(mp->net, mp->fobs, mp->n, NULL, mp->fv);
        if (rc == BD_OK && any)
            rc = bd_act_fval_cuda(mp->n, term, trunc, mp->fv, fval);
        return rc;
    }
#endif
    /* CPU: the final observations that need a value, packed, in one forward */
    int m = 0;
    for (int i = 0; i < mp->n; i++)
        if (bd_act_record(i, b->rewards, b->terminated, b->truncated, rew, term, trunc, fval)
            && mp->net) {
            bd_act_gather(i, a, b->final_obs, NULL, mp->nobs);
            memcpy(mp->fobs + (size_t)m * a->S, mp->nobs + (size_t)i * a->S, sizeof(float) * (size_t)a->S);
            mp->fidx[m++] = i;
        }
    if (m == 0)
        return BD_OK;
    int rc = bdt_policy_forward_on_device(mp->net, mp->fobs, m, NULL, mp->fv);
    for (int j = 0; rc == BD_OK && j < m; j++)
        fval[mp->fidx[j]] = mp->fv[j];
    return rc;
}

int bd_actor_values(bd_actor *mp, const float *env_obs, float *values)
{
    if (!mp->net) {
        float *zero = calloc((size_t)mp->n, sizeof(float));
        int rc = zero ? bd_dev_from_host(mp->dev, values, zero, sizeof(float) * (size_t)mp->n)
                      : bd_seterr(BD_ENOMEM, "muscle: out of memory");
        free(zero);
        return rc;
    }
    int rc = bd_actor_gather(mp, env_obs, NULL, mp->nobs);
    if (rc == BD_OK)
        rc = bdt_policy_forward_on_device(mp->net, mp->nobs, mp->n, NULL, values);
    return rc;
}
