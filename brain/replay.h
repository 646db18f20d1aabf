/* replay.h: the off-policy learners' replay buffer (brain/replay.c): a ring of
 * `capacity` transitions (obs, action, reward, next obs, terminated, the weights version
 * that acted), filled from each round's batch (brain/learner.h's bd_batch) and sampled
 * uniformly from Philox draws, so that a run's samples are a function of its seed.
 *
 * Transitions from a round's (T, N) batch, column by column:
 *   - step t < T-1 that did not end: next obs = obs[t+1]
 *   - a step that ended (terminated or truncated): next obs = the batch's final
 *     observation fobs[t] (what the world saw as its episode ended); `term` is the
 *     terminated flag alone: a truncated transition bootstraps from its final observation,
 *     a terminated one does not
 *   - the last step T-1 that did not end waits (bd_replay_pending) for the next round's
 *     first observation of its column; a column missing from a round (its muscle died or
 *     its rollout was refused) drops what waited, since its worlds start over.
 * Indices are 64-bit throughout: row = added mod capacity, and a draw picks a row in
 * [0, size) by multiply-shift, exact for any size under 2^63 (bd_replay_pick).
 * Not thread-safe; one buffer per learner. */
#ifndef BODHI_BRAIN_REPLAY_H
#define BODHI_BRAIN_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "brain/learner.h"
#include "config/plan.h"
#include "config/yamltree.h"

typedef struct {
    int64_t capacity;      /* rows */
    int S, U;              /* observation and action widths (discrete: U = 1, the index) */
    int64_t size;          /* filled rows (<= capacity) */
    uint64_t added;        /* transitions ever added; the next one goes to row added % capacity */
    float *obs, *next_obs; /* (capacity, S) */
    float *act;            /* (capacity, U) */
    float *rew;            /* (capacity) */
    uint8_t *term;         /* (capacity) 1: terminated, no bootstrap */
    uint64_t *version;     /* (capacity) the weights version that chose the action */
    /* the last step of each column, waiting for its next observation (N columns) */
    int N;
    uint8_t *pending;      /* (N) 1: a transition waits */
    float *p_obs, *p_act, *p_rew; /* (N, S), (N, U), (N) */
    uint64_t *p_version;   /* (N) */
} bd_replay;

/* Bytes a buffer of capacity rows of S and U floats holds (for N columns waiting). */
double bd_replay_bytes(int64_t capacity, int S, int U, int N);

/* An empty buffer; BD_ENOMEM (nothing kept) when its memory is not there. */
int bd_replay_init(bd_replay *r, int64_t capacity, int S, int U, int N);
void bd_replay_fini(bd_replay *r); /* NULL-safe, idempotent */

/* The row the transition added as number k (0-based, counted over the buffer's life) lands in. */
static inline int64_t bd_replay_row(uint64_t k, int64_t capacity)
{
    return (int64_t)(k % (uint64_t)capacity);
}

/* A uniform pick in [0, m) from a 64-bit draw: floor(draw m / 2^64). */
static inline int64_t bd_replay_pick(uint64_t draw, uint64_t m)
{
    return (int64_t)(((unsigned __int128)draw * (unsigned __int128)m) >> 64);
}

/* One transition into the next row (the oldest is overwritten once full). */
void bd_replay_add(bd_replay *r, const float *obs, const float *act, float rew, const float *next_obs, int term,
                   uint64_t version);

/* A round's batch b (its valid columns) into the buffer, each action marked with the
 * weights version b->wver gives (NULL: `version`, for all); completes the transitions
 * waiting from the last round first.
 * Returns the transitions added. */
long long bd_replay_collect(bd_replay *r, const bd_batch *b, uint64_t version);

/* Columns [c0, c0 + n) start over (a restarted muscle's fresh worlds): the last step of each
 * that waits for its next observation is dropped, not completed with another episode's. */
void bd_replay_restart(bd_replay *r, int c0, int n);

/* n row indices in [0, size) (size > 0), uniform, a function of (seed, draw, n) alone:
 * draw counts the sample batches of a run (the learner's gradient steps). */
void bd_replay_sample(uint64_t seed, uint64_t draw, int64_t size, int n, int64_t *idx);

/* Rows idx (n) into obs, next_obs (n, S), act (n, U), rew (n), term (n, as 0/1 floats);
 * version (may be NULL) (n). */
void bd_replay_gather(const bd_replay *r, const int64_t *idx, int n, float *obs, float *act, float *rew,
                      float *next_obs, float *term, uint64_t *version);

/* The buffer's rows and counters to path (path.tmp, then renamed; a small header, then the
 * arrays, then an FNV-1a checksum), and back: load refuses a file of other widths or a
 * damaged one, and keeps the newest min(capacity, size) rows. */
int bd_replay_save(const bd_replay *r, const char *path);
int bd_replay_load(bd_replay *r, const char *path);

/* The same beside a checkpoint (<checkpoint>.replay, save_buffer): saved, and resumed by a
 * train phase that loads the checkpoint (loaded when there; said on stderr when not, and the
 * buffer starts empty). */
int bd_replay_save_beside(const bd_replay *r, const char *checkpoint);
int bd_replay_resume(bd_replay *r, const char *checkpoint);

/* An off-policy brain's sizes against its buffer's capacity, each refused at its key of
 * params: a batch_size above it, and learning_starts above it (learning would never
 * start). */
int bd_replay_sizes_check(const bd_node *params, long long learning_starts, long long batch_size,
                          long long capacity, bd_diags *d);

/* What an off-policy brain of agent ap holds (bd_kind.memory_bytes): a buffer of capacity
 * transitions and the round's batch at rollout_steps T. */
double bd_replay_brain_bytes(const bd_agent_plan *ap, long long capacity, long long T);

/* The memory check of an off-policy brain before the run (as bd_brain_batch_check for
 * PPO's batch): buffer_size rows of agent ap (and the round's batch) fit this machine, and
 * the rollouts fit their messages; problems at the buffer_size key (or the params). */
int bd_replay_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, long long T,
                    long long capacity, bd_diags *d);

/* The buffer a train phase of agent ap would resume from an earlier run's checkpoint
 * (<load_run>/checkpoints/<phase>/<agent>.pt.replay, saved with save_buffer): refused at
 * the agent's load key when it is not a buffer file, is of other widths, or its size is
 * not its header's (cut short, a full disk); the checksum over its rows is checked when
 * the brain loads it. BD_OK without one: the buffer starts empty (the brain says so). */
int bd_replay_load_check(const bd_agent_plan *ap, bd_diags *d);

#endif
