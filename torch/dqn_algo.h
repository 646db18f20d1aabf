/* dqn_algo.h: the torch shim's DQN algorithm (torch/dqn.cpp): a Q-network (a bdt_policy of
 * act_kind BDT_Q), its target network, Adam, and double DQN's gradient steps with the Huber
 * loss on batches the caller samples (brain/replay.h). Part of bd_torch.h. */
#ifndef BODHI_TORCH_DQN_ALGO_H
#define BODHI_TORCH_DQN_ALGO_H

#include "torch/net.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

typedef struct {
    /* (the dqn brain's defaults are in brain/dqn.h) */
    float lr;            /* Adam's step size (eps 1e-8, torch's default, as SB3 and CleanRL) */
    float gamma;         /* discount */
    float max_grad_norm; /* global gradient-norm clip; 0: none */
    int double_q;        /* 1: the online network picks the next action, the target values it */
    int target_every;    /* gradient steps between target updates (>= 1) */
    float tau;           /* a target update: target = tau online + (1 - tau) target (1: a copy) */
    int torch_ops;       /* 0 (the brain's): on the CPU a step's passes are torch/cpunet.c's
                            layers; 1: libtorch's operations, as on a device (the tests
                            compare the two) */
} bdt_dqn_config;

typedef struct {
    float loss;          /* the last gradient step's Huber loss */
    float q_mean;        /* ... and its mean Q(s, a) */
    float q_first;       /* the call's first batch's mean Q(s, a), before its step: the network's as it came */
    uint64_t steps;      /* gradient steps so far */
    int split;           /* the call's target passes ran on the second thread (bdt_dqn_set_split) */
    int c_layers;        /* the call's steps ran through torch/cpunet.c's layers (the CPU's
                            path, torch_ops 0), not libtorch's operations */
} bdt_dqn_stats;

typedef struct bdt_dqn bdt_dqn;

/* DQN over Q-network q (BDT_Q; it must outlive the handle): its target starts as a copy. */
int bdt_dqn_create(bdt_policy *q, const bdt_dqn_config *cfg, bdt_dqn **out);
void bdt_dqn_destroy(bdt_dqn *o); /* NULL-safe; does not destroy q */
int bdt_dqn_set_lr(bdt_dqn *o, float lr);

/* The Bellman targets of n transitions (rew, term (n, 0/1 floats), next_obs (n, obs_dim)):
 * y = rew + gamma (1 - term) Q_target(next_obs, a'), a' = argmax Q_online(next_obs) with
 * double_q, else argmax Q_target(next_obs). Into y (n). */
int bdt_dqn_targets(bdt_dqn *o, const float *rew, const float *next_obs, const float *term, int n, float *y);

/* `steps` gradient steps, step k on rows [k n, (k + 1) n) of obs, next_obs (steps n,
 * obs_dim), act (steps n: the action index as a float), rew, term (steps n): the Huber
 * loss between Q(obs, act) and bdt_dqn_targets, clipped gradient, Adam; the target network
 * is updated after every target_every-th gradient step (counted over the handle's life).
 * cancel (may be NULL) is looked at between steps: once set, BD_EINTR, the steps done kept.
 * An action that is not a whole number from 0 to act_dim - 1 is BD_EINVAL before any step. */
int bdt_dqn_update(bdt_dqn *o, const float *obs, const float *act, const float *rew, const float *next_obs,
                   const float *term, int n, int steps, const volatile int *cancel, bdt_dqn_stats *stats);

/* A round that diverges is undone whole: bdt_dqn_mark keeps the network, its target,
 * Adam's moments and step counts and the gradient-step count; bdt_dqn_restore puts them
 * back (BD_ESTATE with nothing kept; a mark is restored once). */
int bdt_dqn_mark(bdt_dqn *o);
int bdt_dqn_restore(bdt_dqn *o);

/* on != 0: each gradient step runs the target's forward pass at s' (double DQN; without
 * it, the whole Bellman targets) on a thread of the handle's own beside the caller's pass
 * of the network (at s and s' at once with double DQN, at s without),
 * as bdt_ppo_set_split does the critic: the same step, bit for bit, in less wall time
 * where a second core is free (the muscles wait for the update's weights meanwhile).
 * CPU only (ignored on CUDA); off by default. It may change between calls of
 * bdt_dqn_update (the thread, once made, sleeps while off). */
int bdt_dqn_set_split(bdt_dqn *o, int on);

/* Called every gradient step between backward and the clip (bdt_grad_hook, torch/net.h):
 * the learners of several ranks average their gradients there. A code other than BD_OK
 * ends the update with it (the steps before it taken). hook NULL: none. */
void bdt_dqn_set_grad_hook(bdt_dqn *o, bdt_grad_hook hook, void *ctx);

/* The target network's parameters (n = bdt_policy_param_count(q)), out and in. */
int bdt_dqn_target_params(bdt_dqn *o, float *dst, size_t n);

/* Checkpoint: the Q-network with Adam's state to path (bdt_save's format: bdt_load(q,
 * NULL, path) reads the network alone, as a test phase does), its target to
 * path.target.pt. load reads both back (a file without a target: the target becomes a copy
 * of the network), with the gradient-step count (the target's schedule goes on); a load
 * that fails anywhere leaves the learner as it was. */
int bdt_dqn_save(bdt_dqn *o, const char *path);
int bdt_dqn_load(bdt_dqn *o, const char *path);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
