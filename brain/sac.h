/* sac.h: the SAC brain kind (`brain: {name: sac}` with `muscle: {name: sac}`, continuous
 * actuators): its hyper-parameters (run-file `brain.params`), and its learner
 * (brain/sac_learner.c, behind brain/learner.h's ops table) over the brain's replay buffer.
 * The gradient step itself is the torch shim's (bdt_sac_update). docs/run-file.md lists
 * the params with their defaults and ranges. */
#ifndef BODHI_BRAIN_SAC_H
#define BODHI_BRAIN_SAC_H

#include <stdint.h>
#include <stdlib.h>

#include "brain/learner.h"
#include "config/plan.h"
#include "config/yamltree.h"
#include "torch/bd_torch.h"

typedef struct {
    double policy_lr;          /* 3e-4: Adam's step size for the actor ... */
    double q_lr;               /* 1e-3: ... the critics ... */
    double alpha_lr;           /* 1e-3: ... and log alpha */
    double gamma;              /* 0.99 */
    double tau;                /* 0.005: Polyak step of the targets per gradient step */
    double alpha;              /* 0.2: the entropy coefficient at the start */
    int autotune;              /* 1: alpha learns toward target_entropy */
    double target_entropy;     /* -(action dimensions) */
    int batch_size;            /* 256 transitions per gradient step */
    long long buffer_size;     /* 1000000 transitions (every column's) */
    long long learning_starts; /* 1000 transitions in the buffer before the first step */
    double update_ratio;       /* gradient steps per collected transition (the default:
                                  1 / min(columns, BD_SAC_RATIO_COLUMNS)) */
    int rollout_steps;         /* T per muscle between updates (bd_brain_auto_rollout) */
    int hidden;                /* 64 units ... */
    int layers;                /* ... in 2 ReLU layers, actor and each critic */
    int save_buffer;           /* 0: 1 saves the replay buffer beside the checkpoint */
} bd_sac_params;

/* The default update_ratio: one gradient step per step of all the agent's columns (as SB3
 * steps a vectorised SAC), but at least one per this many transitions. More columns then
 * mean more varied data for the same gradient steps per env step, up to this many; past
 * it the updates keep pace with the data: on Pendulum at 256 worlds, one step per 256
 * transitions reached a training mean of -200 in 7-8 s but left greedy tests of -196 to
 * -245, one per 64 reached it in 14 s with greedy tests of -145 to -159
 * (bench/results/train-sac-cpu-epyc-2core.json). */
#define BD_SAC_RATIO_COLUMNS 64

/* Reads params (a map) for an agent of `columns` columns and `act_dim` action dimensions;
 * unknown keys and bad values are errors naming the position (every one into d). */
int bd_sac_params_read(const bd_node *params, long long columns, int act_dim, bd_sac_params *out, bd_diags *d);

/* The actor network agent ap builds with params sp on device. */
void bd_sac_policy_config(const bd_agent_plan *ap, const bd_sac_params *sp, bd_device device,
                          bdt_policy_config *out);

/* Gradient steps after a round that brought `added` transitions, with `carry` the fraction
 * left over from earlier rounds (updated): floor(carry + added x update_ratio). */
long long bd_sac_steps_due(const bd_sac_params *sp, long long added, double *carry);

/* The registry's hooks (config/registry.h): params read once; check (continuous actuators
 * only, the rollouts fit their messages, the buffer and the networks this machine); the
 * rollout length; the most floats of its WEIGHTS. */
int bd_sac_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out);
int bd_sac_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d);
long long bd_sac_kind_rollout(const void *value);
unsigned long long bd_sac_kind_weights_floats(const void *value, const bd_agent_plan *ap);

/* What its brain holds (bd_kind.memory_bytes). */
double bd_sac_kind_memory(const void *value, const bd_agent_plan *ap);

extern const bd_learner_ops bd_sac_learner;

#define BD_SAC_KIND(name, family)                                                                         \
    {(name), (family), 0, bd_sac_kind_parse, free, bd_sac_check, bd_sac_kind_rollout,                     \
     bd_sac_kind_weights_floats, &bd_sac_learner, bd_sac_kind_memory}

#endif
