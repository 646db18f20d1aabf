/* net.h: the torch shim's networks and heads (torch/policy.cpp, torch/heads.cpp): the
 * actor-critic MLP a brain learns and a muscle runs, and the heads that turn its output
 * into actions (categorical, Gaussian). Part of bd_torch.h, which every caller includes. */
#ifndef BODHI_TORCH_NET_H
#define BODHI_TORCH_NET_H

#include <stddef.h>
#include <stdint.h>

#include "bodhi/bodhi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The shim is built with hidden visibility: only this C API leaves libbodhi_torch.so. */
#pragma GCC visibility push(default)

typedef enum { BDT_CPU = 0, BDT_CUDA = 1 } bdt_device;

/* The policy's head: how its actor's output becomes actions. A Q-network (BDT_Q) is one
 * trunk of `layers` ReLU layers with act_dim outputs, the Q-value of each discrete action;
 * its "value" (bdt_policy_forward) is the largest of them. */
typedef enum {
    BDT_DISCRETE = 0,     /* categorical over act_dim logits */
    BDT_CONTINUOUS = 1,   /* diagonal Gaussian: act_dim means and a state-independent log std */
    BDT_SQUASHED = 2,     /* SAC's actor: tanh of a Gaussian whose mean and log std the actor
                             outputs (2 act_dim: means, then raw log stds; no critic trunk,
                             ReLU layers; BDT_LOGSTD_MIN/MAX) */
    BDT_Q = 3,            /* Q-values per discrete action (torch/dqn_algo.h learns them) */
} bdt_act_kind;
typedef struct {
    int obs_dim;
    bdt_act_kind act_kind;
    int act_dim;         /* discrete: number of actions; continuous: action dimensions */
    int hidden;          /* units per hidden layer (64) */
    int layers;          /* hidden layers per trunk (2) */
    bdt_device device;
    uint64_t seed;       /* initial weights are a function of the seed alone */
} bdt_policy_config;

typedef struct bdt_policy bdt_policy;

int bdt_policy_create(const bdt_policy_config *cfg, bdt_policy **out);
/* The same network starting from params (n = its parameter count, flat order) instead of
 * the init (torch/cpunet.h's bdt_policy_init_params), which is then not drawn. */
int bdt_policy_create_from(const bdt_policy_config *cfg, const float *params, size_t n, bdt_policy **out);
void bdt_policy_destroy(bdt_policy *p); /* NULL-safe */

/* Number of float32 parameters (all of actor, critic and log std). */
size_t bdt_policy_param_count(const bdt_policy *p);

/* The same for a network not built yet, from its config alone (0 when a dimension is < 1
 * or the count would pass 2^40): what a muscle checks a brain's WEIGHTS against before it
 * builds anything. Arithmetic alone, here, so that checking a run file loads no libtorch. */
static inline uint64_t bdt_policy_param_count_of(const bdt_policy_config *c)
{
    if (!c || c->obs_dim < 1 || c->act_dim < 1 || c->hidden < 1 || c->layers < 1)
        return 0;
    const uint64_t S = (uint64_t)c->obs_dim, A = (uint64_t)c->act_dim, h = (uint64_t)c->hidden;
    const uint64_t L = (uint64_t)c->layers;
    if (S > (1u << 24) || A > (1u << 24) || h > (1u << 20) || L > 1024)
        return 0;
    /* each trunk: Linear(S, h), then L - 1 of Linear(h, h), then its head Linear(h, out) */
    const uint64_t body = S * h + h + (L - 1) * (h * h + h);
    if (c->act_kind == BDT_Q)
        return body + (h * A + A); /* one trunk, no critic */
    if (c->act_kind == BDT_SQUASHED)
        return body + (h * 2 * A + 2 * A); /* one trunk of means and log stds, no critic */
    const uint64_t n = 2 * body + (h + 1) + (h * A + A) + (c->act_kind == BDT_CONTINUOUS ? A : 0);
    return n > ((uint64_t)1 << 40) ? 0 : n;
}

/* The actor's outputs per observation: 2 act_dim for a squashed Gaussian (means, then raw
 * log stds), act_dim otherwise. */
static inline int bdt_policy_out_dim(const bdt_policy_config *c)
{
    return c->act_kind == BDT_SQUASHED ? 2 * c->act_dim : c->act_dim;
}

/* A squashed Gaussian's log std from the actor's raw output r: squeezed into
 * [BDT_LOGSTD_MIN, BDT_LOGSTD_MAX] by tanh (CleanRL's SAC), so that the policy can neither
 * collapse nor explode. Written once for the learner's tensors and the muscle's loops
 * (muscle/act.h). */
#define BDT_LOGSTD_MIN (-5.0)
#define BDT_LOGSTD_MAX 2.0

/* Flat copy of all parameters in a fixed order (host). n must equal param_count. */
int bdt_policy_get_params(bdt_policy *p, float *dst, size_t n);
int bdt_policy_set_params(bdt_policy *p, const float *src, size_t n);

/* Inference without gradients. obs (n, obs_dim). Outputs (each may be NULL):
 * out (n, bdt_policy_out_dim): logits (discrete), action mean (continuous), means and raw
 * log stds (squashed); value (n) (0 for a squashed policy, which has no critic). */
int bdt_policy_forward(bdt_policy *p, const float *obs, int n, float *out, float *value);

/* The same with obs, out and value in the policy's device memory (device pointers on CUDA,
 * host pointers on CPU): nothing crosses to the host. On CUDA the work is queued on the
 * default stream, in order with bodhi's own kernels there. */
int bdt_policy_forward_on_device(bdt_policy *p, const float *obs, int n, float *out,
                                 float *value);

/* A learner's gradient hook (bdt_ppo_set_grad_hook, bdt_dqn_set_grad_hook,
 * bdt_sac_set_grad_hook): called between a backward pass and its optimiser step (before
 * the gradient-norm clip) with that optimiser's whole gradient on the host (PPO, DQN: the
 * policy's, n = bdt_policy_param_count floats in bdt_policy_get_params' order; SAC: the
 * critics', the actor's, the temperature's in turn); what it leaves there is what the
 * step uses. This is where gradients of several learners are all-reduced. */
typedef int (*bdt_grad_hook)(void *ctx, float *grad, size_t n);

/* Continuous policies: the current log std (act_dim floats). */
int bdt_policy_logstd(bdt_policy *p, float *dst, int act_dim);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
