/* bd_torch.h: the C shim over libtorch — the only C++ in bodhi (the .cpp files of torch/).
 *
 * Opaque handles, BD_OK/bd_err return codes (libtorch exceptions are caught and become
 * BD_ETORCH with the message in bd_lasterr()). All array arguments are host float32
 * arrays in row-major order unless stated; the shim copies them to the policy's device.
 *
 * The policy is CleanRL's actor-critic MLP: separate actor and critic trunks of
 * `layers` hidden layers of `hidden` units with tanh, orthogonal init (gain sqrt(2),
 * actor head 0.01, critic head 1.0), zero biases. Discrete policies output `act_dim`
 * logits; continuous ones a mean of `act_dim` and a state-independent log std parameter.
 */
#ifndef BODHI_TORCH_BD_TORCH_H
#define BODHI_TORCH_BD_TORCH_H

#include <stddef.h>
#include <stdint.h>

#include "bodhi/bodhi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The shim is built with hidden visibility: only this C API leaves libbodhi_torch.so. */
#pragma GCC visibility push(default)

typedef enum { BDT_DISCRETE = 0, BDT_CONTINUOUS = 1 } bdt_act_kind;
typedef enum { BDT_CPU = 0, BDT_CUDA = 1 } bdt_device;

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
    const uint64_t n = 2 * body + (h + 1) + (h * A + A) + (c->act_kind == BDT_CONTINUOUS ? A : 0);
    return n > ((uint64_t)1 << 40) ? 0 : n;
}

/* Flat copy of all parameters in a fixed order (host). n must equal param_count. */
int bdt_policy_get_params(bdt_policy *p, float *dst, size_t n);
int bdt_policy_set_params(bdt_policy *p, const float *src, size_t n);

/* Inference without gradients. obs (n, obs_dim). Outputs (each may be NULL):
 * out (n, act_dim): logits (discrete) or action mean (continuous); value (n). */
int bdt_policy_forward(bdt_policy *p, const float *obs, int n, float *out, float *value);

/* The same with obs, out and value in the policy's device memory (device pointers on CUDA,
 * host pointers on CPU): nothing crosses to the host. On CUDA the work is queued on the
 * default stream, in order with bodhi's own kernels there. */
int bdt_policy_forward_on_device(bdt_policy *p, const float *obs, int n, float *out,
                                 float *value);

/* Continuous policies: the current log std (act_dim floats). */
int bdt_policy_logstd(bdt_policy *p, float *dst, int act_dim);

typedef struct {
    /* (the ppo brain's defaults are in brain/ppo.h) */
    float lr;            /* Adam learning rate, eps 1e-5 as CleanRL */
    float clip_coef;     /* PPO ratio clip (and the value clip) */
    float vf_coef;
    float ent_coef;
    float max_grad_norm; /* global gradient-norm clip; 0: none */
    int clip_vloss;      /* 1: CleanRL's clipped value loss */
    int norm_adv;        /* 1: normalise advantages per minibatch */
    int epochs;
    int minibatches;     /* a fixed count per epoch; 0: n / minibatch_size of each update */
    int minibatch_size;  /* samples per minibatch when minibatches is 0 (at least one minibatch) */
} bdt_ppo_config;

/* Minibatches per epoch for an update of n samples: the config's count, or
 * max(1, n / minibatch_size). Each holds n / that many samples (bdt_ppo_update). */
static inline long long bdt_ppo_minibatch_count(const bdt_ppo_config *c, long long n)
{
    long long k = c->minibatches > 0 ? c->minibatches : n / (c->minibatch_size > 0 ? c->minibatch_size : 1);
    return k > 0 ? k : 1;
}

typedef struct {
    float policy_loss, value_loss, entropy, approx_kl, clip_frac; /* last epoch's means */
} bdt_ppo_stats;

typedef struct bdt_ppo bdt_ppo;

int bdt_ppo_create(bdt_policy *p, const bdt_ppo_config *cfg, bdt_ppo **out);
void bdt_ppo_destroy(bdt_ppo *o); /* NULL-safe; does not destroy the policy */
int bdt_ppo_set_lr(bdt_ppo *o, float lr);

/* A flag (a signal handler's; may be NULL) that bdt_ppo_update looks at between
 * minibatches: once it is set, the update puts the policy's parameters and the
 * optimiser's state back as they were before the update and returns BD_EINTR, so what is
 * saved afterwards is the last whole update. The flag's type is sig_atomic_t's (int). */
void bdt_ppo_set_cancel(bdt_ppo *o, const volatile int *flag);

/* Puts the policy's parameters and the optimiser's state back as they were before the
 * last whole bdt_ppo_update (a diverged update: its losses were not finite, or it moved the
 * policy too far), once: BD_ESTATE when there is no update to undo. */
int bdt_ppo_undo(bdt_ppo *o);

/* One PPO update over a batch of n samples:
 *   obs (n, obs_dim); actions (n, act_dim for continuous, n for discrete as the index
 *   in float); logp, adv, ret, val (n): old log-prob, advantages (raw), returns, old
 *   values. perm (epochs * n): the sample order of each epoch (minibatch b of epoch e is
 *   perm[e*n + b*mb .. +mb), mb = n / k for k minibatches: the config's count, or
 *   max(1, n / minibatch_size); the remainder is dropped).
 * The caller draws perm so runs are reproducible. */
int bdt_ppo_update(bdt_ppo *o, const float *obs, const float *actions, const float *logp,
                   const float *adv, const float *ret, const float *val, int n,
                   const int64_t *perm, bdt_ppo_stats *stats);

/* Checkpoint: model parameters and, when o is non-NULL, the optimiser state.
 * Written through path.tmp + rename. load checks the architecture matches. */
int bdt_save(bdt_policy *p, bdt_ppo *o, const char *path);
int bdt_load(bdt_policy *p, bdt_ppo *o, const char *path);

/* Intra-op threads for this process. */
void bdt_set_threads(int n);

/* 1 when libtorch was built with CUDA and a device answers. */
int bdt_cuda_available(void);

/* Starts loading libtorch in a background thread, so that a process that will build a
 * network soon (a muscle waiting for its brain's first weights) has it loaded by then;
 * the first call that needs it waits for that load. Provided by torch/lazy.c, through
 * which bodhi's processes reach the shim (not by libbodhi_torch.so itself). */
void bdt_preload(void);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif
#endif
