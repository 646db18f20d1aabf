/* ppo.h: the PPO brain kind: its hyper-parameters (run-file `brain.params`, CleanRL's
 * defaults), generalised advantage estimation, the per-epoch sample order, and its learner
 * (brain/ppo_learner.c, behind brain/learner.h's ops table). The gradient step itself is
 * in the torch shim (bdt_ppo_update). Only the ppo kind's files use what is declared here
 * (tests/test_layers.c). */
#ifndef BODHI_BRAIN_PPO_H
#define BODHI_BRAIN_PPO_H

#include <stdint.h>
#include <stdlib.h>

#include "brain/learner.h"
#include "config/plan.h"
#include "config/yamltree.h"
#include "torch/bd_torch.h"

typedef struct {
    double learning_rate;   /* 1e-3: Adam's step size at the start */
    int anneal_lr;          /* 0; 1: linear decay to 0 over total_steps */
    double kl_threshold;    /* 0.01: the learning rate adapts so that an update moves the
                               policy about this far (approx. KL), as rl_games's adaptive
                               schedule; 0: it does not */
    long long total_steps;  /* agent-steps the annealing spans (default: the max_steps condition) */
    double gamma;           /* 0.99 */
    double gae_lambda;      /* 0.95 */
    int rollout_steps;      /* T per muscle between updates (bd_ppo_auto_rollout of the worlds) */
    int hidden;             /* 64 */
    int layers;             /* 2 */
    int norm_obs;           /* 0: running observation normalisation (brain/obsnorm.h) */
    double diverge_kl;      /* BD_PPO_DIVERGE_KL: an update whose approx. KL is above it ... */
    int diverge_updates;    /* ... this many times in a row (1) ends the phase as diverged */
    bdt_ppo_config opt;     /* clip_coef 0.2, vf_coef 0.5, ent_coef 0, max_grad_norm 0.5,
                               clip_vloss 0, norm_adv 1, update_epochs 4, minibatch_size
                               BD_PPO_MINIBATCH_SIZE (num_minibatches: a fixed count instead) */
} bd_ppo_params;

/* The defaults that hold from 16 to 65536 worlds (bench/results/train-scaling-*.json):
 * an update takes about BD_PPO_AUTO_BATCH samples (rollout_steps = that / worlds, kept
 * within [BD_PPO_AUTO_T_MIN, BD_PPO_AUTO_T_MAX]) and learns from minibatches of a fixed
 * size, so a bigger batch means more gradient steps, not bigger ones. */
#define BD_PPO_AUTO_BATCH BD_BRAIN_AUTO_BATCH
#define BD_PPO_AUTO_T_MIN BD_BRAIN_AUTO_T_MIN
#define BD_PPO_AUTO_T_MAX BD_BRAIN_AUTO_T_MAX
#define BD_PPO_MINIBATCH_SIZE 1024
#define BD_PPO_KL_THRESHOLD 0.01
/* Divergence: an update that moved the policy 10 nats on average (1000 times the KL an
 * update aims at) has thrown the policy away; learning_rate 1000 on CartPole moved it 8733
 * nats in its first update, after which its entropy was 0 and no update moved it again, so
 * one such update is enough by default. A loss that is not finite always is. */
#define BD_PPO_DIVERGE_KL 10.0

/* The adaptive learning rate (kl_threshold > 0): after an update whose approximate KL was
 * above twice the threshold the rate is divided by BD_PPO_KL_STEP, below half of it
 * multiplied, within [min(BD_PPO_LR_MIN, learning_rate), max(BD_PPO_LR_MAX, learning_rate)]. */
#define BD_PPO_KL_STEP 1.5
#define BD_PPO_LR_MIN 1e-6
#define BD_PPO_LR_MAX 1e-2

/* The next update's base learning rate from this one's (lr) and its approximate KL. */
double bd_ppo_adapt_lr(const bd_ppo_params *pp, double lr, double approx_kl);

/* Reads params (a map or NULL) with defaults; unknown keys and bad values are errors
 * naming the position. total_steps defaults to default_total; rollout_steps to
 * bd_brain_auto_rollout(columns). */
int bd_ppo_params_parse(const bd_node *params, long long default_total, long long columns, bd_ppo_params *out);

/* The policy network agent ap builds with params pp on device. */
void bd_ppo_policy_config(const bd_agent_plan *ap, const bd_ppo_params *pp, bd_device device,
                          bdt_policy_config *out);

/* The ppo kind's hooks for the registry (config/registry.h): its params read once into a
 * bd_ppo_params (total_steps defaulting to bd_brain_total_steps); its check (that the
 * agent's sensors fit the observation normaliser, that the rollouts fit their messages
 * and the learner, and the network this machine, and that what it loads fits it); the
 * rollout length; the most floats of its WEIGHTS. */
int bd_ppo_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out);
int bd_ppo_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d);
long long bd_ppo_kind_rollout(const void *value);
unsigned long long bd_ppo_kind_weights_floats(const void *value, const bd_agent_plan *ap);

/* What its brain holds (bd_kind.memory_bytes). */
double bd_ppo_kind_memory(const void *value, const bd_agent_plan *ap);

/* The ppo learner (brain/ppo_learner.c). */
extern const bd_learner_ops bd_ppo_learner;

/* The registry's entry of a ppo brain kind. */
#define BD_PPO_KIND(name, family)                                                                         \
    {(name), (family), 0, bd_ppo_kind_parse, free, bd_ppo_check, bd_ppo_kind_rollout,                     \
     bd_ppo_kind_weights_floats, &bd_ppo_learner, bd_ppo_kind_memory}

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
