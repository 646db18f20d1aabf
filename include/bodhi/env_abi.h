/* bodhi/env_abi.h: the env plugin ABI: what an environment declares (bd_env_desc, its
 * channels, params and agent groups) and the batch of buffers its loops step
 * (bd_env_batch). A plugin env includes this (with bodhi/rng.h for its draws) and exports
 * a `const bd_env_desc`; the engine that creates, steps and resets shards of an env is
 * bodhi/env.h.
 *
 * An environment is a batch of N independent worlds stepped in one call. Buffers are
 * struct-of-arrays, allocated once per shard; on the CPU path they are host memory, on
 * the CUDA path device memory. Auto-reset happens inside the step: a world that ends
 * (terminated or truncated) has its last observation copied to final_obs and its obs
 * replaced by a fresh reset, so obs always holds what the agent sees next. All randomness
 * comes from Philox4x32-10 keyed by (seed, global world index, step), so a shard of worlds
 * [w0, w0+N) draws the same numbers on CPU and GPU and whatever the split across muscles.
 */
#ifndef BODHI_ENV_ABI_H
#define BODHI_ENV_ABI_H

#include <stdint.h>

#include "bodhi/bodhi.h"

#ifndef BD_HOSTDEV /* bodhi's own code gets it from common/hostdev.h */
#ifdef __CUDACC__
#define BD_HOSTDEV __host__ __device__
#else
#define BD_HOSTDEV
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The most actuator columns an env may declare. */
#define BD_MAX_ACTUATORS 16
/* The most sensors a group (or an env without groups) may declare. */
#define BD_MAX_CHANNELS 256
/* The most params (beside worlds and max_steps) and agent groups an env may declare. */
#define BD_ENV_MAX_PARAMS 16
#define BD_ENV_MAX_GROUPS 4

/* One sensor or actuator column: its name (the id is "<env uid>.<name>") and bounds.
 * A discrete actuator has n > 0 values 0..n-1 (stored as a float index). */
typedef struct {
    const char *name;
    float low, high;
    int n;
} bd_channel;

/* A number an env takes from its run-file params (beside worlds and max_steps), with its
 * default and range; integer ones must be whole. */
typedef struct {
    const char *name;
    float def, min, max;
    int integer;
    const char *help;      /* one line for errors and `bodhi envs` */
} bd_env_param;

/* An agent group: `count_param` (an index into the env's params) members in every world,
 * each a row of the batch with the group's sensors and actuators; ids are
 * "<env uid>.<group>.<channel>". A group lists the most sensors it can have; the env's
 * shape hook may keep fewer (a prefix) for the params given. */
typedef struct {
    const char *name;
    int count_param;
    int obs_dim, act_dim;
    const bd_channel *sensors, *actuators;
} bd_env_group;

/* The layout of an env for one set of params (bd_env_shape_of). Rows of a world: group 0's
 * members first, then group 1's, ...; an env without groups has one group of one, whose
 * channels are the desc's. */
typedef struct {
    int groups;
    int members;                        /* rows per world (sum of counts) */
    int count[BD_ENV_MAX_GROUPS];       /* members of group g per world */
    int first[BD_ENV_MAX_GROUPS];       /* its first row within a world */
    int obs_dim[BD_ENV_MAX_GROUPS];     /* sensors its rows show */
    int act_dim[BD_ENV_MAX_GROUPS];     /* actuators its rows take */
    int obs_stride, act_stride;         /* the batch's columns: the most over the groups */
    int state_dim;                      /* env-private floats per world */
    int scratch_dim;                    /* env-private ints per world (e.g. a neighbour grid) */
} bd_env_shape;

/* The bytes of a shard's nine buffers for n worlds of shape s, in the order obs, actions,
 * rewards, terminated, truncated, final_obs, state, scratch, elapsed (bd_env_batch). */
static inline void bd_env_buffer_sizes(const bd_env_shape *s, double n, double sizes[9])
{
    const double rows = n * s->members;
    sizes[0] = 4.0 * rows * s->obs_stride;
    sizes[1] = 4.0 * rows * s->act_stride;
    sizes[2] = 4.0 * rows;
    sizes[3] = rows;
    sizes[4] = rows;
    sizes[5] = 4.0 * rows * s->obs_stride;
    sizes[6] = 4.0 * n * s->state_dim;
    sizes[7] = 4.0 * n * s->scratch_dim;
    sizes[8] = 4.0 * n;
}

/* The row of an env's batch that column c of an agent is. An agent bound to a group with
 * `count` members per world, the group's first row in a world being `first`, of worlds of
 * `members` rows each, has its columns world-major: column c is member c % count of world
 * c / count. Columns and rows count from the same first world (a shard's or the env's). */
BD_HOSTDEV static inline int64_t bd_env_row(int64_t c, int count, int first, int members)
{
    return c / count * members + first + c % count;
}

/* The buffers of one shard. Shapes in comments; pointers are device pointers on CUDA.
 * A row is one agent: R = n x members rows, world i's rows are [i M, i M + M). */
typedef struct bd_env_batch {
    int n;                 /* worlds in this shard */
    int members;           /* M: rows (agents) per world; 1 without groups */
    int obs_dim, act_dim;  /* columns per row */
    int state_dim;         /* env-private floats per world (0 if obs is the whole state) */
    int scratch_dim;       /* env-private ints per world */
    float *obs;            /* (R, obs_dim) what each agent sees now (after any reset) */
    float *actions;        /* (R, act_dim) the caller writes these before a step */
    float *rewards;        /* (R) reward of the last step */
    uint8_t *terminated;   /* (R) the last step ended the episode by the env's rules */
    uint8_t *truncated;    /* (R) the last step hit the time limit */
    float *final_obs;      /* (R, obs_dim) last obs of rows whose episode ended (valid there) */
    float *state;          /* (N, state_dim) or NULL */
    int32_t *scratch;      /* (N, scratch_dim) or NULL */
    int32_t *elapsed;      /* (N) steps taken in the current episode */
    float param[BD_ENV_MAX_PARAMS]; /* the env's params, in its declared order */
    uint64_t seed;         /* run seed (mixed with the phase by the caller) */
    uint32_t world0;       /* global index of this shard's first world */
    uint64_t step;         /* steps taken by this batch so far (the RNG counter) */
    int max_steps;         /* time limit (truncation) */
} bd_env_batch;

/* The env ABI a plugin's bd_env_desc declares in abi_version. */
#define BD_ENV_ABI 2

typedef struct bd_env_desc {
    int abi_version;           /* BD_ENV_ABI (checked for plugins) */
    const char *name;          /* registry name, e.g. "cartpole" */
    const char *summary;       /* one line for `bodhi envs` */
    int obs_dim, act_dim, state_dim;
    const bd_channel *sensors;   /* obs_dim columns */
    const bd_channel *actuators; /* act_dim columns */
    int discrete;              /* 1: every actuator is discrete */
    int default_max_steps;
    /* CPU: reset or step worlds [i0, i1) of the batch (host pointers). */
    void (*reset_cpu)(bd_env_batch *b, int i0, int i1);
    void (*step_cpu)(bd_env_batch *b, int i0, int i1);
    /* CUDA: whole batch (device pointers); NULL when the env has no kernel. */
    int (*reset_cuda)(bd_env_batch *b);
    int (*step_cuda)(bd_env_batch *b);
    /* Params beside worlds and max_steps (may be 0 of them), and agent groups (0: one
     * group of one with the sensors and actuators above; else the groups' own, and
     * obs_dim/act_dim/sensors/actuators above are unused). */
    const bd_env_param *params;
    int nparams;
    const bd_env_group *groups;
    int ngroups;
    /* Adjusts a shape filled from the declarations (groups' counts from the params,
     * state_dim, scratch 0) for the params `param`: fewer sensors, state and scratch per
     * world. NULL: as declared. */
    void (*shape)(const float *param, bd_env_shape *s);
} bd_env_desc;

#ifdef __cplusplus
}
#endif
#endif
