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

int bd_mpolicy_init(bd_mpolicy *mp, const bd_agent_plan *ap, int n, int obs_dim, int hidden,
                    int layers, bd_act_mode mode)
{
    memset(mp, 0, sizeof *mp);
    mp->ap = ap;
    mp->n = n;
    mp->A = ap->n_actions;
    mp->mode = ap->random ? BD_ACT_UNIFORM : mode;
    mp->logits = malloc(sizeof(float) * (size_t)n * (size_t)mp->A);
    if (!mp->logits)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    if (mp->mode == BD_ACT_UNIFORM)
        return BD_OK;
    bdt_policy_config pc = {
        .obs_dim = obs_dim, .act_kind = BDT_DISCRETE, .act_dim = mp->A, .hidden = hidden,
        .layers = layers, .device = BDT_CPU, .seed = ap->seed,
    };
    return bdt_policy_create(&pc, &mp->net);
}

void bd_mpolicy_fini(bd_mpolicy *mp)
{
    bdt_policy_destroy(mp->net);
    free(mp->logits);
    memset(mp, 0, sizeof *mp);
}

int bd_mpolicy_act(bd_mpolicy *mp, const float *obs, uint32_t world0, uint64_t step,
                   float *actions, float *logp, float *values)
{
    const int A = mp->A;
    if (mp->mode == BD_ACT_UNIFORM) {
        for (int i = 0; i < mp->n; i++) {
            float u[4];
            bd_rng_uniform4(mp->ap->seed, world0 + (uint32_t)i, step, BD_STREAM_ACTION, u);
            int a = (int)(u[0] * (float)A);
            actions[i] = (float)(a < A ? a : A - 1);
            logp[i] = -logf((float)A);
            values[i] = 0;
        }
        return BD_OK;
    }
    int rc = bdt_policy_forward(mp->net, obs, mp->n, mp->logits, values);
    if (rc != BD_OK)
        return rc;
    for (int i = 0; i < mp->n; i++) {
        float u[4] = {0};
        if (mp->mode == BD_ACT_SAMPLE)
            bd_rng_uniform4(mp->ap->seed, world0 + (uint32_t)i, step, BD_STREAM_ACTION, u);
        actions[i] = (float)bd_categorical(mp->logits + (size_t)i * A, A, u[0],
                                           mp->mode == BD_ACT_GREEDY, &logp[i]);
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
    return bdt_policy_forward(mp->net, obs, m, NULL, values);
}
