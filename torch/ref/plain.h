/* plain.h: a plain libtorch PPO update, the yardstick of bench/learn/ppobench.c (not part of
 * bodhi's shim, not linked by bodhi): CleanRL's update written as libtorch would have it,
 * for the shim's network (separate actor and critic MLPs of `layers` x `hidden` tanh units,
 * discrete actions), to time bdt_ppo_update against on the same batch. */
#ifndef BODHI_TORCH_REF_PLAIN_H
#define BODHI_TORCH_REF_PLAIN_H

#include <stdint.h>

#include "torch/bd_torch.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bdt_ref bdt_ref;

/* Threads for libtorch (as a brain sets them) and flush-to-zero for this thread (as the
 * shim runs its calls), before any update. */
void bdt_ref_setup(int threads);

/* A network of S observations, A discrete actions, with Adam (lr, eps 1e-5). BD_OK or
 * BD_ETORCH / BD_EINVAL; *out is NULL on failure. */
int bdt_ref_create(int S, int A, int hidden, int layers, float lr, bdt_ref **out);
void bdt_ref_destroy(bdt_ref *r); /* NULL-safe */

/* One update: epochs x (n / mb) minibatches of mb samples, epoch e's order perm[e n ..]:
 * each epoch's batch gathered once in that order and cut into slices, gradients set to
 * none, clip_grad_norm_, Adam. c gives clip_coef, ent_coef, vf_coef and max_grad_norm. */
int bdt_ref_update(bdt_ref *r, const float *obs, const float *actions, const float *logp, const float *adv,
                   const float *ret, int n, const int64_t *perm, int epochs, int mb, const bdt_ppo_config *c);

#ifdef __cplusplus
}
#endif
#endif
