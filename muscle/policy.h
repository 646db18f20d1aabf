/* policy.h: a muscle's view of one agent's policy: inference through the torch shim and
 * action selection. Sampling draws from Philox keyed by (agent seed, global world, step),
 * so a trajectory is a function of the run seed alone, whatever the shard split.
 * Modes: sample (train), greedy (test: argmax, or the Gaussian's mean), uniform (the
 * random muscle). Discrete agents have one actuator (categorical over its values);
 * continuous agents a diagonal Gaussian over their Box actuators. */
#ifndef BODHI_MUSCLE_POLICY_H
#define BODHI_MUSCLE_POLICY_H

#include <stdint.h>

#include "brain/obsnorm.h"
#include "conductor/plan.h"
#include "torch/bd_torch.h"

typedef enum { BD_ACT_SAMPLE, BD_ACT_GREEDY, BD_ACT_UNIFORM } bd_act_mode;

typedef struct {
    const bd_agent_plan *ap;
    bdt_policy *net;     /* NULL for the random muscle */
    bd_act_mode mode;
    int n;               /* worlds */
    int S;               /* sensors */
    int A;               /* discrete: actions; continuous: action dims */
    float *out;          /* (n, A) logits or means */
    float *nobs;         /* (n, S) normalised observations */
    const bd_obsnorm *norm; /* NULL: observations go in as they are */
} bd_mpolicy;

/* hidden/layers: the brain's architecture. norm (may be NULL) is read at every call. */
int bd_mpolicy_init(bd_mpolicy *mp, const bd_agent_plan *ap, int n, int obs_dim, int hidden,
                    int layers, bd_act_mode mode, const bd_obsnorm *norm, bdt_device device);
void bd_mpolicy_fini(bd_mpolicy *mp);

/* obs (n, S) -> actions (n, U) (discrete: the index as a float), logp (n), values (n),
 * for worlds world0..world0+n-1 at `step`. */
int bd_mpolicy_act(bd_mpolicy *mp, const float *obs, uint32_t world0, uint64_t step,
                   float *actions, float *logp, float *values);

/* values (m) of m observations (m, S), m <= n (0 for the random muscle). */
int bd_mpolicy_values(bd_mpolicy *mp, const float *obs, int m, float *values);

/* Categorical choice from logits (A): returns the index, *logp its log-probability.
 * u in [0, 1) selects by inverse CDF; greedy takes the argmax (first on ties). */
int bd_categorical(const float *logits, int A, float u, int greedy, float *logp);

/* Diagonal Gaussian over A dims: a = mean + exp(logstd) * z (z = 0 when greedy), and the
 * log-probability of a. z (A) are standard normal draws. */
float bd_gaussian(const float *mean, const float *logstd, int A, const float *z, int greedy,
                  float *a);

/* Standard normal draws for world `world` at `step`: z (A), Box-Muller on Philox. */
void bd_normals(uint64_t seed, uint32_t world, uint64_t step, int A, float *z);

#endif
