/* dqn.h: the dqn brain kind (double DQN over a replay buffer, discrete actions): its
 * hyper-parameters (run-file `brain.params`; defaults measured on CartPole at 16 and 256
 * worlds, bench/results/train-dqn-*.json),
 * the exploration schedule it sends its muscles, and its learner (brain/dqn_learner.c,
 * behind brain/learner.h's ops table). The gradient steps are the torch shim's
 * (bdt_dqn_update); the transitions brain/replay.h's. */
#ifndef BODHI_BRAIN_DQN_H
#define BODHI_BRAIN_DQN_H

#include <stdint.h>
#include <stdlib.h>

#include "brain/learner.h"
#include "config/plan.h"
#include "config/yamltree.h"
#include "torch/bd_torch.h"

typedef struct {
    double learning_rate;      /* Adam's step size */
    double gamma;              /* discount */
    long long buffer_size;     /* replay capacity in transitions */
    long long learning_starts; /* transitions in the buffer before the first gradient step */
    int batch_size;            /* transitions per gradient step */
    double utd_ratio;          /* gradient steps per collected transition */
    int target_update_interval; /* gradient steps between target updates */
    double tau;                /* a target update: tau online + (1 - tau) target (1: a copy) */
    double max_grad_norm;      /* 0: no clip */
    int double_q;              /* 1: double DQN's targets */
    double eps_initial, eps_final; /* epsilon-greedy: from eps_initial ... */
    long long exploration_steps;   /* ... to eps_final over this many agent-steps, linearly */
    int hidden, layers;        /* the Q-network's ReLU layers */
    int rollout_steps;         /* T per muscle between updates (bd_dqn_auto_rollout) */
    int save_buffer;           /* 1: the checkpoint keeps the replay buffer */
} bd_dqn_params;

/* A round's steps when rollout_steps is not given: rollout_steps = BD_DQN_AUTO_BATCH /
 * columns, within [BD_DQN_AUTO_T_MIN, BD_DQN_AUTO_T_MAX]: a round brings about 256
 * transitions up to 16 worlds, and 16 steps of every world past them. Columns are every
 * rank's (brain/ranks.h). */
#define BD_DQN_AUTO_BATCH 256
#define BD_DQN_AUTO_T_MIN 16
#define BD_DQN_AUTO_T_MAX 64
long long bd_dqn_auto_rollout(long long columns);

/* utd_ratio when it is not given: BD_DQN_AUTO_UTD gradient steps per transition up to
 * BD_DQN_AUTO_STEPS_PER_ROUND_STEP / BD_DQN_AUTO_UTD (32) columns, then
 * BD_DQN_AUTO_STEPS_PER_ROUND_STEP per step of all of them together: past 32 worlds, more
 * worlds bring more data for each gradient step, not more gradient steps for each step
 * of the episodes (measured on CartPole at 16 and 256 worlds, docs/run-file.md). Columns
 * are the agent's own (not the phase's most, as the rollout's) on this rank: K ranks take
 * the gradient steps one process of a rank's worlds takes, each averaged over K batches. */
#define BD_DQN_AUTO_UTD 0.25
#define BD_DQN_AUTO_STEPS_PER_ROUND_STEP 8.0
double bd_dqn_auto_utd(long long columns);

/* learning_rate when it is not given: BD_DQN_AUTO_LR_FEW where each transition earns the
 * whole BD_DQN_AUTO_UTD gradient steps (up to 32 columns, bd_dqn_auto_utd), BD_DQN_AUTO_LR
 * past them, where each earns fewer. With few worlds a round holds the steps of few
 * episodes: at 5e-4 CartPole diverged at 1 world (seed 1 of 3) and stood at 214 after 600k
 * agent-steps at 8 (seed 1). At 16 and 32 worlds 5e-4 reached 475 but left greedy tests of
 * 118-258 on 5 seeds of 17 (the weights had drifted since the window's episodes began) and
 * took 22.8 s on one; 2.5e-4 left none below 496 (docs/run-file.md). Past 32 it is the
 * other way: at 64 worlds 2.5e-4 was slower on 4 seeds of 4, and at 256 it left 2 of 6
 * short of 475 within 3M agent-steps. Columns as utd_ratio's: the agent's own on this
 * rank; 5e-4 when they are not known. */
#define BD_DQN_AUTO_LR 5e-4
#define BD_DQN_AUTO_LR_FEW 2.5e-4
double bd_dqn_auto_lr(long long columns);

/* Epsilon after `steps` agent-steps: linear from eps_initial to eps_final over
 * exploration_steps, eps_final after. */
double bd_dqn_epsilon(const bd_dqn_params *dp, long long steps);

/* Gradient steps a round that brought `added` transitions earns at utd_ratio, with the
 * fraction left over carried in *carry (in [0, 1)); none before the buffer holds
 * learning_starts. */
long long bd_dqn_grad_steps(const bd_dqn_params *dp, long long added, long long buffered, double *carry);

/* The Bellman target of one transition from the next state's Q-values of the online and
 * target networks (A each): r + gamma (1 - term) Q_target(s', a'), a' the argmax of the
 * online values (double DQN) or of the target's. What bdt_dqn_targets computes in batches. */
float bd_dqn_target(float r, int term, float gamma, const float *q_online, const float *q_target, int A,
                    int double_q);

/* Reads params (a map or NULL) with defaults; unknown keys and bad values are errors
 * naming the position. */
int bd_dqn_params_parse(const bd_node *params, long long columns, bd_dqn_params *out);

/* The Q-network agent ap builds with dp on device. */
void bd_dqn_net_config(const bd_agent_plan *ap, const bd_dqn_params *dp, bd_device device, bdt_policy_config *out);

/* Registry hooks (config/registry.h), as ppo.h's. */
int bd_dqn_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out);
int bd_dqn_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d);
long long bd_dqn_kind_rollout(const void *value);
unsigned long long bd_dqn_kind_weights_floats(const void *value, const bd_agent_plan *ap);

extern const bd_learner_ops bd_dqn_learner;

/* What its brain holds: the round's batch and the replay buffer (bd_kind.memory_bytes). */
double bd_dqn_kind_memory(const void *value, const bd_agent_plan *ap);

#define BD_DQN_KIND(name, family)                                                                         \
    {(name), (family), 0, bd_dqn_kind_parse, free, bd_dqn_check, bd_dqn_kind_rollout,                     \
     bd_dqn_kind_weights_floats, &bd_dqn_learner, bd_dqn_kind_memory}

#endif
