/* ppo_algo.h: the torch shim's PPO algorithm (torch/ppo.cpp): Adam over a policy's
 * parameters, CleanRL's clipped update over epochs of minibatches, the gradient hook
 * between backward and the optimiser step, undo and cancel. Part of bd_torch.h. A second
 * algorithm gets a header of its own beside this one. */
#ifndef BODHI_TORCH_PPO_ALGO_H
#define BODHI_TORCH_PPO_ALGO_H

#include "torch/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The shim is built with hidden visibility: only this C API leaves libbodhi_torch.so. */
#pragma GCC visibility push(default)

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
/* The minibatch count of the updates to come, in place of the config's (0: max(1, n /
 * minibatch_size) of each update). Data-parallel learners set the count their group agreed on. */
int bdt_ppo_set_minibatches(bdt_ppo *o, int count);
/* The loss's coefficients of cfg (clip_coef, vf_coef, ent_coef, max_grad_norm) from the
 * next update on; the rest of cfg (sizes, epochs, the learning rate) is not read. */
int bdt_ppo_set_coefs(bdt_ppo *o, const bdt_ppo_config *cfg);

/* A flag (a signal handler's; may be NULL) that bdt_ppo_update looks at between
 * minibatches: once it is set, the update puts the policy's parameters and the
 * optimiser's state back as they were before the update and returns BD_EINTR, so what is
 * saved afterwards is the last whole update. The flag's type is sig_atomic_t's (int). */
void bdt_ppo_set_cancel(bdt_ppo *o, const volatile int *flag);

/* Called between the backward pass and the optimiser step of every minibatch (before the
 * gradient-norm clip; bdt_grad_hook, torch/net.h). A code other than BD_OK ends the
 * update as a cancel does (parameters and optimiser as before it) with that code. */
void bdt_ppo_set_grad_hook(bdt_ppo *o, bdt_grad_hook hook, void *ctx); /* hook NULL: none */

/* 1: each minibatch's critic (its forward and backward pass) runs on a second thread of
 * the learner's own beside the actor's on the calling thread, for a learner that has a
 * second core to itself; that thread takes libtorch's intra-op threads from the process's
 * setting (bdt_set_threads). The gradients, and so the updates, are bitwise the same as
 * with 0 (the caller's thread alone, the default) at the same intra-op thread count. CPU
 * policies only: on CUDA the request is kept and ignored. Where no thread can be made,
 * updates run on the caller's thread. */
int bdt_ppo_set_split(bdt_ppo *o, int on);

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

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
