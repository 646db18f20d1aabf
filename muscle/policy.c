/* policy.c: inference and action selection for one agent in a muscle (see policy.h). */
#include "muscle/policy.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "env/rng.h"

int bd_categorical(const float *logits, int A, float u, int greedy, float *logp)
{
    float mx = logits[0];
    int arg = 0;
    for (int a = 1; a < A; a++)
        if (logits[a] > mx) {
            mx = logits[a];
            arg = a;
        }
    double z = 0;
    for (int a = 0; a < A; a++)
        z += exp((double)(logits[a] - mx));
    double lse = (double)mx + log(z);
    int pick = arg;
    if (!greedy) {
        double target = (double)u * z, acc = 0;
        pick = A - 1;
        for (int a = 0; a < A; a++) {
            acc += exp((double)(logits[a] - mx));
            if (target < acc) {
                pick = a;
                break;
            }
        }
    }
    *logp = (float)((double)logits[pick] - lse);
    return pick;
}

float bd_gaussian(const float *mean, const float *logstd, int A, const float *z, int greedy, float *a)
{
    double lp = 0;
    for (int d = 0; d < A; d++) {
        double zd = greedy ? 0.0 : z[d];
        a[d] = (float)(mean[d] + exp(logstd[d]) * zd);
        lp += -0.5 * zd * zd - logstd[d] - 0.91893853320467274178; /* 0.5 * log(2 pi) */
    }
    return (float)lp;
}

void bd_normals(uint64_t seed, uint32_t world, uint64_t step, int A, float *z)
{
    for (int d = 0; d < A; d += 2) {
        float u[4];
        bd_rng_uniform4(seed, world, step * 16 + (uint64_t)(d / 2), BD_STREAM_ACTION, u);
        double r = sqrt(-2.0 * log(1.0 - (double)u[0])), th = 6.283185307179586 * u[1];
        z[d] = (float)(r * cos(th));
        if (d + 1 < A)
            z[d + 1] = (float)(r * sin(th));
    }
}

int bd_mpolicy_init(bd_mpolicy *mp, const bd_agent_plan *ap, int n, int obs_dim, int hidden,
                    int layers, bd_act_mode mode, const bd_obsnorm *norm, bdt_device device)
{
    memset(mp, 0, sizeof *mp);
    mp->ap = ap;
    mp->n = n;
    mp->S = obs_dim;
    mp->A = ap->continuous ? ap->nact : ap->n_actions;
    mp->mode = ap->random ? BD_ACT_UNIFORM : mode;
    mp->norm = norm;
    if (mp->A > 32)
        return bd_seterr(BD_EINVAL, "agent %s: %d action dims, at most 32", ap->cfg->name, mp->A);
    mp->out = malloc(sizeof(float) * (size_t)n * (size_t)mp->A);
    mp->nobs = malloc(sizeof(float) * (size_t)n * (size_t)obs_dim);
    if (!mp->out || !mp->nobs)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    if (mp->mode == BD_ACT_UNIFORM)
        return BD_OK;
    bdt_policy_config pc = {
        .obs_dim = obs_dim, .act_kind = ap->continuous ? BDT_CONTINUOUS : BDT_DISCRETE,
        .act_dim = mp->A, .hidden = hidden, .layers = layers, .device = device, .seed = ap->seed,
    };
    return bdt_policy_create(&pc, &mp->net);
}

void bd_mpolicy_fini(bd_mpolicy *mp)
{
    bdt_policy_destroy(mp->net);
    free(mp->out);
    free(mp->nobs);
    memset(mp, 0, sizeof *mp);
}

/* The observations the network sees: normalised when a normaliser is set. */
static const float *bd_mpolicy_input(bd_mpolicy *mp, const float *obs, int m)
{
    if (!mp->norm)
        return obs;
    bd_obsnorm_apply(mp->norm, obs, mp->nobs, (size_t)m);
    return mp->nobs;
}

static void bd_uniform_actions(bd_mpolicy *mp, uint32_t world0, uint64_t step, float *actions,
                               float *logp, float *values)
{
    const bd_agent_plan *ap = mp->ap;
    const int U = ap->nact;
    for (int i = 0; i < mp->n; i++) {
        double lp = 0;
        for (int d = 0; d < U; d++) {
            float u[4];
            bd_rng_uniform4(ap->seed, world0 + (uint32_t)i, step * 16 + (uint64_t)d, BD_STREAM_ACTION, u);
            if (!ap->continuous) {
                int a = (int)(u[0] * (float)mp->A);
                actions[i] = (float)(a < mp->A ? a : mp->A - 1);
                lp = -log((double)mp->A);
            } else {
                float lo = ap->act_low[d], hi = ap->act_high[d];
                actions[(size_t)i * U + d] = lo + u[0] * (hi - lo);
                lp -= log((double)hi - (double)lo);
            }
        }
        logp[i] = (float)lp;
        values[i] = 0;
    }
}

int bd_mpolicy_act(bd_mpolicy *mp, const float *obs, uint32_t world0, uint64_t step,
                   float *actions, float *logp, float *values)
{
    const int A = mp->A;
    if (mp->mode == BD_ACT_UNIFORM) {
        bd_uniform_actions(mp, world0, step, actions, logp, values);
        return BD_OK;
    }
    int rc = bdt_policy_forward(mp->net, bd_mpolicy_input(mp, obs, mp->n), mp->n, mp->out, values);
    if (rc != BD_OK)
        return rc;
    const int greedy = mp->mode == BD_ACT_GREEDY;
    if (mp->ap->continuous) {
        float logstd[32], z[32] = {0};
        if ((rc = bdt_policy_logstd(mp->net, logstd, A)) != BD_OK)
            return rc;
        for (int i = 0; i < mp->n; i++) {
            if (!greedy)
                bd_normals(mp->ap->seed, world0 + (uint32_t)i, step, A, z);
            logp[i] = bd_gaussian(mp->out + (size_t)i * A, logstd, A, z, greedy, actions + (size_t)i * A);
        }
        return BD_OK;
    }
    for (int i = 0; i < mp->n; i++) {
        float u[4] = {0};
        if (!greedy)
            bd_rng_uniform4(mp->ap->seed, world0 + (uint32_t)i, step, BD_STREAM_ACTION, u);
        actions[i] = (float)bd_categorical(mp->out + (size_t)i * A, A, u[0], greedy, &logp[i]);
    }
    return BD_OK;
}

int bd_mpolicy_values(bd_mpolicy *mp, const float *obs, int m, float *values)
{
    if (m == 0)
        return BD_OK;
    if (!mp->net) {
        memset(values, 0, sizeof(float) * (size_t)m);
        return BD_OK;
    }
    return bdt_policy_forward(mp->net, bd_mpolicy_input(mp, obs, m), m, NULL, values);
}
