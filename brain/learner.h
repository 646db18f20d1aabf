/* learner.h: what a brain kind is. A kind is a config/registry.h bd_kind whose params are
 * read once into the agent plan (bd_kind.parse: ap->brain_params) and whose `ops` is a
 * bd_learner_ops: the learner the brain process (brain.c) creates, hands each round's
 * batch, asks to learn, and whose policy it sends to the muscles as a WEIGHTS message.
 * The process knows nothing of any algorithm: PPO is brain/ppo_learner.c, the netless
 * brains (random, none) brain/netless.c. docs/architecture.md, "a new brain". */
#ifndef BODHI_BRAIN_LEARNER_H
#define BODHI_BRAIN_LEARNER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "config/plan.h"
#include "config/registry.h"
#include "torch/net.h"
#include "wire/wire.h"

/* A round's batch (T, N, ...) over every world of the agent; columns whose muscle sent
 * nothing this round have valid[i] = 0 (valid NULL: all have data). fobs (T, N, S): the
 * final observation of every step whose episode ended (terminated or truncated; other rows
 * mean nothing), which off-policy learners take as that step's next observation (it may be
 * NULL for learners that do not read it). wver: the version (updates so far) of the
 * weights each muscle acted with, as its rollout says (the trace's weights_version). */
typedef struct {
    int T, N, S, U;
    const float *obs, *act, *logp, *val, *rew, *fval, *lastv; /* (T,N,S) (T,N,U) (T,N)... lastv (N) */
    const uint8_t *term, *trunc;                              /* (T, N) */
    const uint8_t *valid;                                     /* (N) or NULL */
    const float *fobs;                                        /* (T, N, S), see above */
    const uint64_t *wver; /* (T, N) the weights version that chose each action (NULL: not known) */
} bd_batch;

/* Called by a learner between the backward pass and the optimiser step of every gradient
 * step, with the gradient of every parameter (n floats, in the order of the policy's
 * parameters), which it may change in place (an all-reduce over learners, a clipping
 * policy, logging). A code other than BD_OK fails the update. */
typedef int (*bd_grad_hook)(void *ctx, float *grad, size_t n);

/* Data-parallel learners (one per rank, docs/architecture.md "Many machines"): x (n
 * doubles) := its sum over every learner of the group, for what must agree across ranks
 * so that their parameters stay identical: the observation normaliser's moments, the
 * update's losses and KL (the adaptive learning rate and the divergence check read them).
 * Every learner of the group calls it the same number of times with the same n. min 1:
 * the minimum over the group instead of the sum (what the group agrees on, e.g. an
 * update's minibatch count, which must be the same on every rank). */
typedef int (*bd_sum_hook)(void *ctx, double *x, size_t n, int min);

/* What a learner is created for. */
typedef struct {
    const bd_phase_plan *plan;
    const bd_agent_plan *ap;
    const void *params;       /* ap->brain_params: the kind's own parse of its params */
    int train;                /* learns in this phase */
    bd_device device;
    int T, N;                 /* the rounds' batch: rollout_steps x the agent's columns */
    const volatile sig_atomic_t *cancel; /* NULL, or a flag that interrupts an update */
    bd_grad_hook grad_hook;   /* NULL: none */
    void *grad_ctx;
    bd_sum_hook sum_hook;     /* NULL: a learner alone */
    void *sum_ctx;
    int learners;             /* the group's size (1 alone) */
    int rank;                 /* this learner's place in it (0 alone) */
} bd_learner_spec;

/* The policy a learner sends its muscles: the WEIGHTS header (every field but version and
 * flags: policy kind, head, sizes, rollout length, normaliser) and its floats. */
typedef struct {
    bd_weights_hdr h;
    const float *floats;      /* bd_weights_floats(&h) of them (NULL when that is 0) */
} bd_policy_out;

typedef struct bd_learner_ops {
    /* A learner for s (its network, optimiser, buffers), or an error (nothing kept). */
    int (*create)(const bd_learner_spec *s, void **out);
    void (*destroy)(void *self);                    /* NULL-safe */
    /* Starts from the checkpoint at path (weights and, in a train phase, what the
     * optimiser keeps). */
    int (*load)(void *self, const char *path);
    /* Takes in a round's batch (it stays valid until the next call of collect). */
    int (*collect)(void *self, const bd_batch *b);
    /* Learns from what it collected, `steps` agent-steps into the phase. When learning
     * diverged, undoes the update and writes why into `diverged` (len bytes): the phase
     * then ends. BD_EINTR when cancelled (the parameters stay those of the last whole
     * update). */
    int (*update)(void *self, long long steps, char *diverged, size_t len);
    /* The last update's figures (losses, learning rate, timings) into ev. */
    void (*stats)(const void *self, cJSON *ev);
    /* Weights out: the policy the muscles run, as it is now. */
    void (*weights_out)(const void *self, bd_policy_out *out);
    /* Weights in: replaces the policy's parameters (and normaliser) with those of a WEIGHTS
     * message of the same shape (BD_EINVAL otherwise). */
    int (*weights_in)(void *self, const bd_weights_hdr *h, const float *floats);
    /* Saves what load reads to path; *saved 0 when the learner has nothing to keep. */
    int (*save)(const void *self, const char *path, int *saved);
    /* Updates so far. */
    uint64_t (*version)(const void *self);
    /* `bodhi set` (docs/run-file.md, "Steering a live run"): the keys of the kind's params
     * that may change while the learner learns, NULL-terminated (NULL: none), and what
     * takes them: params is the kind's parse of its params with the changes made so far in
     * this phase (brain/steer.h), keys (NULL-terminated) those changed now; the next update
     * uses them. NULL when steer_keys is. */
    const char *const *steer_keys;
    int (*steer)(void *self, const void *params, const char *const *keys);
    /* Columns [c0, c0 + n) start over (a muscle restarted with fresh worlds): what the
     * learner keeps of their last steps across rounds is dropped. NULL: it keeps nothing. */
    void (*restart)(void *self, int c0, int n);
} bd_learner_ops;

/* The learner table of a brain kind (its bd_kind.ops). */
static inline const bd_learner_ops *bd_learner_of(const bd_kind *k)
{
    return (const bd_learner_ops *)k->ops;
}

/* rollout_steps when the run file gives none, over `columns` columns (the phase's plan
 * max_columns: worlds x agents per world of its widest agent): an update takes about
 * BD_BRAIN_AUTO_BATCH samples, within [BD_BRAIN_AUTO_T_MIN, BD_BRAIN_AUTO_T_MAX] steps.
 * With K ranks (brain/ranks.h) the samples of every rank: K x columns. */
#define BD_BRAIN_AUTO_BATCH 16384
#define BD_BRAIN_AUTO_T_MIN 16
#define BD_BRAIN_AUTO_T_MAX 128
long long bd_brain_auto_rollout(long long columns);

/* The default of a learner's total_steps: the phase's step cap, in agent ap's steps when
 * the cap counts another agent's (the agents step together: steps scale with their
 * columns); 1000000 without a cap. */
long long bd_brain_total_steps(const bd_phase_plan *p, const bd_agent_plan *ap);

/* Data-parallel learners agree on how many gradient steps an update takes (each step's
 * all-reduces must pair up on every rank): *steps := the fewest any learner of the group
 * would take. hook NULL (a learner alone): *steps as it is. BD_OK or the hook's code. */
int bd_learners_fewest(bd_sum_hook hook, void *ctx, long long *steps);

/* The network a kind builds for agent ap: its sensors in, act_kind's head of act_dim out,
 * hidden x layers, on CUDA when asked and present (else the CPU), drawn from the agent's
 * seed. */
void bd_brain_net_config(const bd_agent_plan *ap, bdt_act_kind act_kind, int act_dim, int hidden, int layers,
                         bd_device device, bdt_policy_config *out);

/* "4 sensors, discrete actions 2, hidden 64, layers 2" (a kind's network, for messages). */
const char *bd_net_shape_text(const bdt_policy_config *c, char *buf, size_t len);

/* The network of a source agent of the checking kind (an earlier phase's agent ap loads
 * from) as that kind builds it. */
typedef void (*bd_net_of_fn)(const bd_agent_plan *src, bdt_policy_config *out);

/* Whether `bodhi check` looks at what agent ap loads: only the gate (a muscle elsewhere has
 * no such file), not when the phase has problems of its own, and only for a load. */
int bd_brain_load_looks(const bd_phase_plan *p, const bd_agent_plan *ap);

/* How a kind reads an earlier run's checkpoint at path into the network `mine` it
 * builds, keeping nothing: BD_OK, or why it cannot (bdt_sac_check_file is sac's). */
typedef int (*bd_load_file_fn)(const bdt_policy_config *mine, const char *path);

/* What agent ap loads fits the network `mine` it builds (`bodhi check`, where
 * bd_brain_load_looks): an earlier run's checkpoint is read now (checksum and shape) by
 * read_file (NULL: the policy checkpoint bdt_load reads, ppo's and dqn's); one this run
 * writes in an earlier phase must be an agent of the same brain kind, whose network
 * (net_of) is compared. BD_OK, or an error naming the load: line. With *src_phase non-NULL
 * and a load from an earlier phase that fits, *src_agent is that agent in *src_phase,
 * which the caller finishes (bd_phase_plan_fini) for checks of its own; *src_agent is NULL
 * otherwise. */
int bd_brain_load_check(const bd_phase_plan *p, const bd_agent_plan *ap, const bdt_policy_config *mine,
                        bd_load_file_fn read_file, bd_net_of_fn net_of, bd_phase_plan *src_phase, const bd_agent_plan **src_agent);

/* The parameters a learner of agent ap starts from before libtorch is loaded: *n of them
 * (the network pc describes), drawn as libtorch's network starts (torch/cpunet.h's
 * bdt_policy_init_params), in a new buffer of *n + extra floats (the extra the caller's:
 * a normaliser, epsilon). BD_EINVAL naming the agent and `what` ("network", "actor") for
 * a config of no network, BD_ENOMEM. */
int bd_learner_params(const bd_agent_plan *ap, const bdt_policy_config *pc, const char *what, size_t extra,
                      float **out, size_t *n);

/* A WEIGHTS message's n parameters into a learner's: into libtorch's network net when it
 * is made (params then read back as it holds them), else into params, which the network
 * will start from. */
int bd_learner_take_params(bdt_policy *net, float *params, size_t n, const float *floats);

/* About how many bytes the round's batch of agent ap takes in its brain at rollout_steps T
 * (epochs: its shuffles; 0 for a learner without). */
double bd_brain_batch_bytes(const bd_agent_plan *ap, long long T, int epochs);

/* What a brain of rollout_steps T, minibatches mb (0: a minibatch size) and `epochs`
 * passes (0: it does not learn) asks of the phase's sizes: every muscle's rollout fits one
 * message (wire/wire.h), the learner's T x worlds samples fit its int indices and this
 * machine's memory, and each minibatch holds at least one sample. Problems go to d. */
int bd_brain_batch_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap,
                         long long T, long long mb, int epochs, bd_diags *d);

#endif
