/* actor.h: one agent acting inside a muscle, on the shard's device: its policy network's
 * inference (on the CPU the C network of torch/cpunet.h, which computes libtorch's bits
 * without loading it; on CUDA the torch shim) and the per-world work of muscle/act.h,
 * looped on the CPU or launched as CUDA kernels (kernels/muscle.cu). On CUDA every buffer here and every pointer passed in
 * is device memory beside the env's buffers: observations, network input and output,
 * actions and rollout rows never cross to the host during a round.
 * Modes: sample (train), greedy (test: argmax, or the Gaussian's mean), uniform (the
 * random muscle). Discrete agents have one actuator (categorical over its values);
 * continuous agents a diagonal Gaussian over their Box actuators, or (args.squashed, the
 * sac muscle) SAC's squashed Gaussian scaled to their bounds. */
#ifndef BODHI_MUSCLE_ACTOR_H
#define BODHI_MUSCLE_ACTOR_H

#include <stddef.h>
#include <stdint.h>

#include "config/plan.h"
#include "muscle/act.h"
#include "torch/bd_torch.h"
#include "torch/cpunet.h"
#include "wire/wire.h"

typedef struct {
    const bd_agent_plan *ap;
    bdt_policy *net;     /* CUDA: the shim's network (NULL for a netless muscle) */
    bdt_cpunet cnet;     /* CPU: the C network (zeroed for a netless muscle) */
    float *cparams;      /* CPU: its parameters (host) */
    bd_device dev;
    bd_act_args args;    /* its pointers are on dev */
    int n;
    /* on dev */
    int *cols;           /* (S) */
    float *norm;         /* (2 S) mean, inv */
    float *out;          /* (n, A) logits or means; continuous: room for (n, 2 A) */
    float *nobs;         /* (n, S) the network's input */
    float *fobs;         /* (n, S) final observations (CPU: packed; CUDA: by world) */
    float *fv;           /* (n) their values */
    bd_fsm *fsm;         /* the fsm muscle's machine (dev) */
    int *fsm_state;      /* (n) its columns' states (dev) */
    int *any;            /* CUDA: 1 when some world needs a final value */
    int *fidx;           /* CPU: (n) the worlds of the packed rows */
} bd_actor;

/* For the shard b of the agent's env (b->n worlds from b->world0; its buffers' device is
 * dev): the agent's n = b->n x members columns. The network comes with bd_actor_set_net;
 * netless muscles have none. fsm (host, copied): the machine of mode BD_ACT_FSM. */
int bd_actor_init(bd_actor *ac, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev,
                  bd_act_mode mode, const bd_fsm *fsm);
void bd_actor_fini(bd_actor *ac);

/* Builds the policy network the brain describes (hidden units, hidden layers): a
 * Q-network (BDT_Q) when args.qhead is set (set it first), else the actor-critic. */
int bd_actor_has_net(const bd_actor *ac);
int bd_actor_set_net(bd_actor *ac, int hidden, int layers);

/* The network a brain's WEIGHTS header w describes, built as this actor's (its head sets
 * args.qhead and args.squashed, then bd_actor_set_net with w's hidden units and layers).
 * The caller checked that w's policy fits the agent (muscle.c does for a brain's message). */
int bd_actor_net_of(bd_actor *ac, const bd_weights_hdr *w);

/* A WEIGHTS message's floats (host, aligned: bd_weights_floats(w) of them) into the network
 * bd_actor_net_of built: its parameters, the normaliser when w has one, and a Q head's
 * exploration rate. */
int bd_actor_take(bd_actor *ac, const bd_weights_hdr *w, const float *floats);

/* Parameters (host, bdt_policy_param_count of them) from a WEIGHTS message. */
int bd_actor_set_params(bd_actor *ac, const float *params, size_t n);

/* Normalise observations from now on with the brain's float coefficients (S means and S
 * inverse standard deviations, host; brain/obsnorm.h), used as they are so that muscle
 * and learner compute the same bits; mean NULL: as they are. */
int bd_actor_set_norm(bd_actor *ac, const float *mean, const float *inv);

/* One step's choice for every column at env step `step`, from env_obs (R, D): the agent's
 * raw observations into obs (n, S), actions (n, U), logp (n), values (n), and the clipped
 * setpoints into its rows of the env's action buffer env_act (R, AD). */
int bd_actor_act(bd_actor *ac, const float *env_obs, uint64_t step, float *obs, float *act,
                   float *logp, float *values, float *env_act);

/* After the env stepped (b's buffers): rewards and flags into rew, term, trunc (n), into
 * fval (n) the value of the final observation of every world truncated (not terminated)
 * by the step, 0 elsewhere, and into fobs (n, S) the agent's sensors of the final
 * observation of every world whose episode ended (on CUDA, of every world; only the
 * ended ones mean anything). */
int bd_actor_record(bd_actor *ac, const bd_env_batch *b, float *rew, uint8_t *term,
                      uint8_t *trunc, float *fval, float *fobs);

/* values (n) of env_obs (n, D) (0 for the random muscle). */
int bd_actor_values(bd_actor *ac, const float *env_obs, float *values);

#endif
