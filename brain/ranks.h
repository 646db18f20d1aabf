/* ranks.h: a brain's place among the ranks of a run launched on many processes (srun,
 * mpirun, torchrun's variables or `bodhi run --rank R --world-size K`): the brains of one
 * agent on every rank form a learner group (torch/dist.h, c10d's ProcessGroupGloo) that
 * broadcasts rank 0's parameters at the start (and after a load), averages gradients at
 * the learner's gradient hook, sums what must agree (learner.h's bd_sum_hook) and agrees
 * on when the phase ends, so every rank's weights stay identical and every rank stops in
 * the same round.
 *
 * The conductor of each rank hands its brains the group through the environment
 * (conductor/ranks.c sets it): BODHI_RANK, BODHI_WORLD_SIZE, BODHI_GROUP_STORE (the
 * FileStore path), BODHI_GROUP_TIMEOUT (seconds) and BODHI_GROUP_HOST (the address Gloo
 * binds; unset: this machine's hostname). Without BODHI_WORLD_SIZE > 1 a brain is alone and
 * nothing here does anything. */
#ifndef BODHI_BRAIN_RANKS_H
#define BODHI_BRAIN_RANKS_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "brain/learner.h"
#include "torch/bd_torch.h"

typedef struct {
    int rank, world;          /* 0 of 1 alone */
    bdt_group *g;             /* NULL alone, and until bd_ranks_join */
    float *buf;               /* the weights broadcast */
    char *store, *agent, *phase; /* the group's FileStore, the agent's and phase's names (several ranks) */
    int timeout;              /* the join's, in seconds */
    int tried;                /* the join began */
    int heard;                /* ... and ended on another rank's word that it left */
    double join_s;            /* how long the join took */
    int learners;             /* a brain that learns: the phase's brains that do (bd_ranks_spin); else 0 */
    int spin;                 /* whether this learner's gradient all-reduces spin (set at the join) */
    const char *run_digest;   /* run.yml's SHA-256 (NULL: none), which every rank's must equal */
    /* told before the join begins (a brain logs it: a "group_join" event) */
    void (*joining)(void *ctx);
    void *joining_ctx;
} bd_ranks;

/* The brain's share of this machine's cores, taken before it starts any thread (every
 * thread it makes then inherits it): with BODHI_LOCAL_SIZE = L > 1 ranks on this machine
 * (cli/run.c sets it and BODHI_LOCAL_RANK from the launcher) sharing one affinity mask of
 * C >= L cores, local rank r keeps cores [r C / L, (r + 1) C / L) of the mask, counted in
 * package, core, CPU order (a core's hardware threads stay in one share). Ranks meet at
 * every minibatch's all-reduce: unbound, the threads of one rank's all-reduce were woken
 * on the core the other rank's learner held and waited for it (a median all-reduce of
 * 1.3-1.9 ms after 2 ms of work through c10d, 0.18-0.21 ms bound; bodhi-allreducebench
 * --work-us 2000). Only the brain is bound; its muscles keep the whole mask. Nothing is
 * done alone, with fewer cores than ranks, with BODHI_BRAIN_PIN=0, or when the launcher
 * bound this rank already (a process above its conductor has a wider mask: mpirun's and
 * srun's binding, numactl, taskset); then the learner divides the mask's cores among the
 * ranks estimated to share it (the ranks here x the mask / the widest mask above, rounded
 * up: 1 for mpirun's core each, 2 for 4 ranks bound to the 2 packages of a node). */
void bd_ranks_place(void);
/* What it did: 0 nothing, 1 took its share, 2 kept the launcher's binding. */
int bd_ranks_place_state(void);

/* Whether the waits of this learner's gradient all-reduces spin (bdt_group_spin): when
 * bd_ranks_place gave it a share of whole cores of its own (no hardware thread of them in
 * another rank's share, which a spinning thread would slow) and it is the only one of
 * `learners` brains of its rank that learn in the phase (the brains of one rank share its
 * share: two spinning learners would take time from each other). BODHI_GROUP_SPIN=1 or 0
 * says so instead (a rank alone on a machine it does not share). On 2 ranks of 4096
 * CartPole worlds sharing 2 cores the spin cut each update's time by 7-12%. */
int bd_ranks_spin(int learners);

/* The cores this process's learner may use: its affinity mask's (a cgroup's, taskset's,
 * its share after bd_ranks_place, or the launcher's binding), divided among the ranks on
 * this machine when the mask is shared with them (2 ranks on 2 cores learn with one core
 * each, not two that fight), and at most BODHI_LEARNER_CORES (a user who keeps cores for
 * other work; benchmarks of one thread). */
long bd_ranks_cores(void);

/* Whether a learner on dev may run work on a second thread of its own beside the caller's
 * (bdt_ppo_set_split, bdt_dqn_set_split): a CPU learner with two cores or more
 * (bd_ranks_cores), unless OpenBLAS runs threads of its own (a user's
 * OPENBLAS_NUM_THREADS above 1: two callers fighting over its pool made PPO's update
 * 1.4-5x slower than one thread). Ask it once libtorch is loaded: dlsym takes the dynamic
 * loader's lock, which libtorch's background load holds for its 0.5-0.6 s (a brain that
 * asked during it sent its first weights only after the load), and before the load a
 * process that does not link OpenBLAS itself finds none to ask. */
int bd_ranks_split(int cpu);

/* Whether the learner's split pays here and now, measured rather than assumed, for a
 * learner of many short updates (dqn's): the split is the same update bit for bit, so
 * switching it between updates changes no result. Of every BD_SPLIT_CYCLE updates the
 * first runs in the mode chosen so far (at first `prefer`'s: the phase's first update's
 * one-time costs stay out of the figures; a helper thread first made in a probe is timed
 * there, which the median of three absorbs), the next 2 x BD_SPLIT_PROBES take split and
 * one thread in turn (split, one, one, split, split, one; every other cycle the reverse),
 * timed, and the rest run in the mode whose median time per unit of work was lower. With
 * several ranks a time includes the gradient all-reduces' waits for the others, which
 * blurs the choice but changes no result. So a second
 * core that another process keeps busy, or BLAS kernels fast enough that the hand-over
 * does not pay, turn the split off, and it comes back when it pays again. allowed 0
 * (bd_ranks_split said no): never split. */
#define BD_SPLIT_PROBES 3
#define BD_SPLIT_CYCLE 200
typedef struct {
    int allowed, chosen, mode; /* mode: the update in hand's */
    long long n;               /* updates timed or run so far */
    double t[2][BD_SPLIT_PROBES];
    int k[2];
} bd_split_pick;
void bd_split_pick_init(bd_split_pick *p, int allowed, int prefer);
/* The mode (1: split) of the next update. */
int bd_split_pick_next(bd_split_pick *p);
/* That update took secs_per_unit (wall seconds per gradient step); < 0: it did not finish
 * (not counted). */
void bd_split_pick_took(bd_split_pick *p, double secs_per_unit);

/* The learner groups' collective and join timeout, BODHI_GROUP_TIMEOUT's seconds (1 to
 * 86400; 60 unset): BD_OK, or an error naming the variable (`bodhi run` says it before
 * it starts anything). */
int bd_ranks_timeout(int *seconds);
/* A rank's word that it left before its learner groups of `phase` formed (NULL: of any
 * phase): a brain's (bd_ranks_abandon), or its conductor's for a brain killed by a signal
 * or a run that failed before its brains started. "<wall>|<rank>|<phase or *>|rank R left
 * before the group formed: why", the file BODHI_GROUP_LEFT + "r<rank>" (cli/run.c sets that
 * prefix, "<out>.ranks/left-<launch>.", for a rank of several; written whole, through a
 * temporary of the writing process's own; a rank's first word of a launch stays, and only
 * an earlier launch's gives way), which every other rank's join polls
 * (bdt_group_join's `left`) and fails on at once rather than at its timeout. A plain file,
 * not a key of the group's store: rank 0 removes the store once its group has formed, and
 * a key written then would be lost (c10d's FileStore also used to delete its file once as
 * many stores as ranks had been closed on it). Nothing without BODHI_GROUP_LEFT. */
int bd_ranks_say_left(int rank, const char *phase, const char *why);
/* Removes what earlier launches left in the store folder (BODHI_GROUP_LEFT's): the store
 * files of launches that failed and the words of bd_ranks_say_left, last written before
 * this launch began (BODHI_LAUNCH_T; nothing without it). Rank 0's `bodhi run` at the end
 * of a run that ended well (every rank joined every group of it), so that the folder goes. */
void bd_ranks_left_sweep(void);
/* The word a join of `phase` on rank `me` of `world` obeys (bdt_group_join's `left`,
 * brain/ranks.c's callback): another rank's of the group (numbered below `world`: a rank
 * started past it, with a larger WORLD_SIZE, is told so by its own join and fails alone),
 * of this phase or the whole run ("*"), written at or after `since` (the launch's start, BODHI_LAUNCH_T), in a plain file of BODHI_GROUP_LEFT's whose
 * name's rank is the word's; of several, the first written. 1 with its text in why (at
 * most n bytes), else 0. An earlier word is an earlier launch's that no rank heard (a rank
 * stopped, and the run started again at once, failed on it); a rank of this launch that
 * left before another was even started is then waited for, as without its word, until the
 * timeout. Across machines this compares two clocks: they must agree (NTP) to better than
 * the time between one launch's end and the next one's start. */
int bd_ranks_left_word(const char *phase, int me, int world, double since, char *why, size_t n);

/* The brain's place among the ranks, as the environment says (alone without one), for
 * agent's group in phase: rank and world set, the group not yet joined. BD_OK, or an
 * error naming the variable. */
int bd_ranks_plan(bd_ranks *r, const char *phase, const char *agent);
/* The group joined (once; nothing alone), then rank 0's weights taken (bd_ranks_sync).
 * A brain joins at its first collective, the end of its first round, not before its
 * first weights: the join waits for libtorch (loaded in the background) and for every
 * rank, and the first rollout runs meanwhile. Every rank's learner starts from the same
 * weights anyway (the agent's seed draws them, or every rank loads the same checkpoint),
 * so the broadcast changes nothing in a run that starts right; where it does, the first
 * rollout was the behaviour policy of its round, as a muscle's stale weights are. A join
 * that fails within BODHI_GROUP_TIMEOUT says which rank, agent and why. */
int bd_ranks_join(bd_ranks *r, const bd_learner_ops *ops, void *learner);
/* A brain that leaves before its group formed (a failure, a signal in its first round, a
 * load that fails, a join that failed or was stopped) tells the other ranks
 * (bd_ranks_say_left), so that their joins fail at once, naming it and why, rather than at
 * their timeout. Nothing alone, nor once joined; nor after a join that failed on another
 * rank's word (it would pass that word on as its own, naming itself for the other's cause,
 * cut short), nor when its conductor is gone (its word could come after a new launch
 * began). (A brain killed by a signal, in its join or before, its conductor speaks for.) */
void bd_ranks_abandon(bd_ranks *r, const char *why);
void bd_ranks_leave(bd_ranks *r);

/* The learner hooks (ctx: the bd_ranks): gradient mean, sums (or minima). */
int bd_ranks_grad(void *ctx, float *grad, size_t n);
int bd_ranks_sum(void *ctx, double *x, size_t n, int min);

/* Every rank's learner takes rank 0's policy (weights and normaliser). */
int bd_ranks_sync(bd_ranks *r, const bd_learner_ops *ops, void *learner);

/* The phase's end agreed: *code (a wire/stop.h code, 0 going on) := the weightiest of
 * every rank's (bd_stop_weight, then the highest code) and *from := the rank that said it
 * (the lowest of those that did); *ends_run := whether the run ends with the phase on any
 * rank (an interruption, a failure, `bodhi stop` of the run), whatever its code. */
int bd_ranks_agree_stop(bd_ranks *r, int *code, int *ends_run, int *from);

/* "rank" and "param_digest" (SHA-256 of the policy's floats) into an update event. */
void bd_ranks_describe(const bd_ranks *r, const bd_learner_ops *ops, const void *learner, cJSON *ev);

#endif
