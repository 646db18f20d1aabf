/* learner.h: what a brain learns with: the agent's policy network, the PPO optimiser, the
 * running observation normaliser, and the checkpoint they are saved to and loaded from.
 * The brain process (brain.c) hands it each round's batch and sends its parameters to the
 * muscles. A random brain has a learner with no network (net NULL). */
#ifndef BODHI_BRAIN_LEARNER_H
#define BODHI_BRAIN_LEARNER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "brain/obsnorm.h"
#include "brain/ppo.h"
#include "config/plan.h"
#include "torch/bd_torch.h"

/* A round's batch (T, N, ...) over every world of the agent; columns whose muscle sent
 * nothing this round have valid[i] = 0 (valid NULL: all have data). */
typedef struct {
    int T, N, S, U;
    const float *obs, *act, *logp, *val, *rew, *fval, *lastv; /* (T,N,S) (T,N,U) (T,N)... lastv (N) */
    const uint8_t *term, *trunc;                              /* (T, N) */
    const uint8_t *valid;                                     /* (N) or NULL */
} bd_batch;

typedef struct {
    const bd_agent_plan *ap;
    bd_ppo_params pp;
    int train;                /* learns in this phase */
    bdt_policy *net;          /* NULL for a random brain */
    bdt_ppo *ppo;             /* train phases */
    int use_norm;
    bd_obsnorm norm;
    float *params;            /* the policy's parameters, then the normaliser (2 S) with use_norm */
    size_t nparams;           /* policy parameters */
    uint64_t version;         /* updates so far */
    double lr;                /* the base learning rate, adapted to kl_threshold (before annealing) */
    long long max_rows;       /* T * N: the most samples a batch holds */
    /* work buffers (max_rows each; obs/nobs * S, act * U) */
    float *adv, *ret, *nobs;
    int64_t *perm;
    float *c_obs, *c_act, *c_logp, *c_val, *c_rew, *c_fval, *c_lastv; /* compacted batch */
    uint8_t *c_term, *c_trunc;
} bd_learner;

/* For agent ap with its brain's params pp, on device: builds the network (none for a
 * random brain) and, in a train phase, the optimiser; loads the checkpoint at `load` (may be
 * NULL: start afresh) and, with norm_obs, its normaliser beside it. cancel (may be NULL)
 * interrupts an update between minibatches (bdt_ppo_set_cancel). */
int bd_learner_init(bd_learner *l, const bd_agent_plan *ap, const bd_ppo_params *pp, int train,
                    bd_device device, int T, int N, const char *load, const volatile sig_atomic_t *cancel);
void bd_learner_fini(bd_learner *l);

/* One PPO update on the batch's valid columns (GAE, normalisation with the statistics the
 * muscles used, then the normaliser takes the batch in), with the learning rate annealed
 * for `steps` agent-steps so far; adds losses, KL and timings to ev. BD_EINTR when
 * cancelled: the parameters stay those of the last whole update. */
int bd_learner_update(bd_learner *l, const bd_batch *b, long long steps, cJSON *ev);

/* Undoes the last update (bdt_ppo_undo): the network and the optimiser as they were before
 * it, and the parameters the muscles get with them. The normaliser keeps the batch it took
 * in (observations, not what the update learnt). BD_ESTATE when there is none to undo. */
int bd_learner_undo(bd_learner *l);

/* Saves the network (and optimiser, in a train phase) to path, the normaliser beside it. */
int bd_learner_save(const bd_learner *l, const char *path);

#endif
