/* sac_algo.h: the torch shim's SAC algorithm (torch/sac.cpp): soft actor-critic with a
 * squashed Gaussian actor (a bdt_policy of kind BDT_SQUASHED, which the muscles run), twin
 * Q critics with Polyak-averaged targets, and automatic entropy tuning (CleanRL's
 * sac_continuous_action.py, the actor updated every step). Part of bd_torch.h.
 *
 * Actions are in the actuators' own units: a = tanh(u) * scale + bias with scale, bias
 * from each actuator's [low, high]; the critics take them as they are, and the
 * log-densities include the change of variables through tanh and the scale. */
#ifndef BODHI_TORCH_SAC_ALGO_H
#define BODHI_TORCH_SAC_ALGO_H

#include "torch/net.h"

#ifdef __cplusplus
extern "C" {
#endif

#pragma GCC visibility push(default)

#define BDT_SAC_MAX_ACT 32

typedef struct {
    /* (the sac brain's defaults are in brain/sac.h) */
    float lr_actor;       /* Adam step sizes of the actor, the critics and log alpha */
    float lr_critic;
    float lr_alpha;
    float gamma;          /* discount */
    float tau;            /* Polyak: target = tau * critic + (1 - tau) * target, every update */
    float alpha;          /* the entropy coefficient at the start */
    int autotune;         /* 1: log alpha learns toward target_entropy */
    float target_entropy; /* the entropy autotune aims at (SAC's -act_dim) */
    float low[BDT_SAC_MAX_ACT], high[BDT_SAC_MAX_ACT]; /* each action dimension's bounds */
} bdt_sac_config;

typedef struct {
    float q_loss;         /* mean of both critics' squared Bellman errors */
    float actor_loss;
    float alpha;          /* the entropy coefficient used by this update */
    float alpha_loss;     /* 0 without autotune */
    float q_mean;         /* mean of the first critic's values of the batch */
    float logp_mean;      /* mean log-density of the actor's fresh actions (minus the entropy) */
} bdt_sac_stats;

typedef struct bdt_sac bdt_sac;

/* SAC around actor (BDT_SQUASHED; it must outlive the handle): critics of the actor's
 * hidden x layers (ReLU) drawn from the actor's seed, targets equal to them. */
int bdt_sac_create(bdt_policy *actor, const bdt_sac_config *cfg, bdt_sac **out);
void bdt_sac_destroy(bdt_sac *s); /* NULL-safe; does not destroy the actor */

/* One gradient step of critics, actor and (autotune) alpha on a batch of n transitions,
 * then the Polyak step of the targets:
 *   obs, next_obs (n, obs_dim); act (n, act_dim) in the actuators' units; rew (n);
 *   done (n): 1 (as a float) where the episode terminated at the transition (no
 *   bootstrap), else 0; a truncated one passes 0 and its final observation as next_obs.
 * The actor's Gaussian draws come from a generator seeded with (seed, key): the same
 * inputs and key give the same step. */
int bdt_sac_update(bdt_sac *s, const float *obs, const float *act, const float *rew, const float *next_obs,
                   const float *done, int n, uint64_t seed, uint64_t key, bdt_sac_stats *stats);

/* From the next update on: cfg's learning rates (lr_actor, lr_critic, lr_alpha), tau and
 * target_entropy; alpha, when above 0, replaces the entropy coefficient (autotune learns
 * on from it; 0 leaves it as it is). The rest of cfg is not read. */
int bdt_sac_set_rates(bdt_sac *s, const bdt_sac_config *cfg);

/* Called in every gradient step between each backward pass (critics, actor, temperature)
 * and its optimiser step, with that optimiser's whole gradient (bdt_grad_hook,
 * torch/net.h): the learners of several ranks average their gradients there. A code other
 * than BD_OK ends the update with it. hook NULL: none. */
void bdt_sac_set_grad_hook(bdt_sac *s, bdt_grad_hook hook, void *ctx);

/* The critics' (which 0) or the targets' (which 1) parameters, flat: the first critic's
 * Linear weights (out, in) and biases in order, then the second's. */
enum { BDT_SAC_CRITICS = 0, BDT_SAC_TARGETS = 1 };
size_t bdt_sac_param_count(const bdt_sac *s, int which);
int bdt_sac_get_params(bdt_sac *s, int which, float *dst, size_t n);
int bdt_sac_set_params(bdt_sac *s, int which, const float *src, size_t n);
/* The current entropy coefficient. */
float bdt_sac_alpha(const bdt_sac *s);

/* bdt_sac_mark keeps the learner's whole state as it is now: the actor, the critics,
 * their targets, the temperature and the three optimisers' moments and step counts.
 * bdt_sac_restore puts all of it back (a round whose losses were not finite: what is saved
 * after it must not hold a diverged critic), once per mark: BD_ESTATE without one. */
int bdt_sac_mark(bdt_sac *s);
int bdt_sac_restore(bdt_sac *s);

/* The squashed Gaussian of policy p (BDT_SQUASHED) at obs (n, obs_dim) and standard normal
 * draws noise (n, act_dim; NULL: greedy, tanh of the mean): actions (n, act_dim) within
 * [low, high] of each dimension, and their log-densities logp (n; may be NULL). What the
 * learner computes; the muscles compute it as muscle/act.h's bd_squashed. */
int bdt_sac_act(bdt_policy *p, const float *obs, int n, const float *noise, const float *low, const float *high,
                float *act, float *logp);

/* Checkpoint (through path.tmp + rename, checked as bdt_save's): actor, critics, targets,
 * the three optimisers and log alpha. load checks the networks' shapes match. */
int bdt_sac_save(bdt_sac *s, const char *path);
int bdt_sac_load(bdt_sac *s, const char *path);
/* Whether the checkpoint at path is one bdt_sac_load takes into a learner whose actor is
 * actor (on the CPU): the format, the architecture and the actor's tensors, read and
 * nothing kept (`bodhi check` of a load from an earlier run). BD_OK or why not. */
int bdt_sac_check_file(const bdt_policy_config *actor, const char *path);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
