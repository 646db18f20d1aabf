/* ppo.h: the PPO brain's hyper-parameters (run-file `brain.params`, CleanRL's defaults),
 * generalised advantage estimation, and the per-epoch sample order. The gradient step
 * itself is in the torch shim (bdt_ppo_update). */
#ifndef BODHI_BRAIN_PPO_H
#define BODHI_BRAIN_PPO_H

#include <stdint.h>

#include "config/plan.h"
#include "config/yamltree.h"
#include "torch/bd_torch.h"

typedef struct {
    double learning_rate;   /* 2.5e-4 */
    int anneal_lr;          /* 1: linear decay to 0 over total_steps */
    long long total_steps;  /* agent-steps the annealing spans (default: the max_steps condition) */
    double gamma;           /* 0.99 */
    double gae_lambda;      /* 0.95 */
    int rollout_steps;      /* T per muscle between updates (128) */
    int hidden;             /* 64 */
    int layers;             /* 2 */
    int norm_obs;           /* 0: running observation normalisation (brain/obsnorm.h) */
    bdt_ppo_config opt;     /* clip_coef 0.2, vf_coef 0.5, ent_coef 0.01, max_grad_norm 0.5,
                               clip_vloss 1, norm_adv 1, update_epochs 4, num_minibatches 4 */
} bd_ppo_params;

/* Reads params (a map or NULL) with defaults; unknown keys and bad values are errors
 * naming the position. total_steps defaults to default_total. */
int bd_ppo_params_parse(const bd_node *params, long long default_total, bd_ppo_params *out);

/* The policy network agent ap builds with params pp on device. */
void bd_ppo_policy_config(const bd_agent_plan *ap, const bd_ppo_params *pp, bd_device device,
                          bdt_policy_config *out);

/* The ppo brain's check for the registry (config/registry.h): its params; that the
 * agent's sensors fit the observation normaliser; that the rollouts fit their messages
 * and the learner, and the network this machine; and that what it loads fits it. */
int bd_ppo_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d);

/* The random brain's check: the params it reads (rollout_steps; the ppo keys are taken). */
int bd_random_brain_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d);

/* GAE over a (T, N) batch. done = terminated|truncated; the bootstrap of step t is
 * 0 when terminated, final_values[t] when truncated, values[t+1] otherwise
 * (last_values (N) after the last step). Writes adv and ret (= adv + values), (T, N). */
void bd_gae(int T, int N, const float *rewards, const float *values, const float *final_values,
            const float *last_values, const uint8_t *terminated, const uint8_t *truncated,
            float gamma, float lambda, float *adv, float *ret);

/* perm (epochs * n): independent uniform shuffles of 0..n-1, a function of
 * (seed, update) alone. */
void bd_ppo_perm(int64_t *perm, int n, int epochs, uint64_t seed, uint64_t update);

/* A uniform pick in 0..m-1 from a 64-bit random draw: floor(draw m / 2^64). */
static inline int64_t bd_ppo_pick(uint64_t draw, uint64_t m)
{
    return (int64_t)(((unsigned __int128)draw * (unsigned __int128)m) >> 64);
}

#endif
