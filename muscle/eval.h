/* eval.h: greedy episodes of an agent's policy, played outside the rounds on worlds of
 * their own: the brain's greedy_average condition (config/plan.h, docs/run-file.md), which
 * the brain reaches through the registry's bd_muscle_greedy (config/registry.h). The
 * worlds are a CPU shard of the agent's env, the actor (muscle/actor.h) acts as its
 * muscle would in a test phase (argmax, the Gaussian's mean, SAC's squashed mean) through
 * the C network of torch/cpunet.h (a CUDA phase's muscles run libtorch on the GPU, whose
 * floats may differ in the last bits), and each of the agent's columns counts its first
 * episode. Evaluation k starts its worlds from draws of their
 * own (bd_env_reset with a seed of (the env's seed, k)), apart from every training world,
 * so the same weights give the same returns in every run of the seed, and on every rank of
 * a group on one kind of CPU. */
#ifndef BODHI_MUSCLE_EVAL_H
#define BODHI_MUSCLE_EVAL_H

#include <signal.h>
#include <stdint.h>

#include "bodhi/env.h"
#include "config/plan.h"
#include "muscle/actor.h"
#include "wire/wire.h"

typedef struct {
    const bd_agent_plan *ap;
    bd_env *env;
    bd_actor actor;
    int has_net;
    int n;                /* columns: worlds x the agent's members */
    float *obs, *act, *logp, *val, *rew, *fval, *fobs;
    uint8_t *term, *trunc, *done;
    double *ret;
    double step_since;    /* when the env step under way began, 0 between steps (atomic) */
} bd_eval;

/* Worlds for `episodes` greedy episodes of agent ap (one a world; an agent of several
 * members a world plays one episode a member), on the CPU. */
int bd_eval_init(bd_eval *e, const bd_agent_plan *ap, int episodes);
void bd_eval_fini(bd_eval *e); /* safe on a zeroed e */

/* The seed evaluation k of agent ap starts its worlds from (bd_env_reset). */
uint64_t bd_eval_seed(const bd_agent_plan *ap, uint64_t k);

/* Evaluation k: every world plays its first episode greedily with the policy of w and
 * floats (a WEIGHTS message's, host and aligned); *mean their mean return, *steps the
 * agent-steps played (each column's steps until its episode ended). BD_EINVAL when w is
 * not the agent's network; BD_EINTR once *cancel (NULL: none) is set, between steps; an
 * env's error as it is. */
int bd_eval_play(bd_eval *e, const bd_weights_hdr *w, const float *floats, uint64_t k, double *mean,
                 long long *steps, const volatile sig_atomic_t *cancel);

/* bd_eval_init, bd_eval_play and bd_eval_fini as the registry's table. */
extern const bd_greedy_ops bd_muscle_greedy;

#endif
