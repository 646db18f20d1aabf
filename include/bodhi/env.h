/* env.h: the environment interface (public: plugin envs implement a bd_env_desc).
 *
 * An environment is a batch of N independent worlds stepped in one call. Buffers are
 * struct-of-arrays, allocated once per shard; on the CPU path they are host memory, on
 * the CUDA path device memory, with host mirrors filled by bd_env_download. Auto-reset
 * happens inside the step: a world that ends (terminated or truncated) has its last
 * observation copied to final_obs and its obs replaced by a fresh reset, so obs always
 * holds what the agent sees next. All randomness comes from Philox4x32-10 keyed by
 * (seed, global world index, step), so a shard of worlds [w0, w0+N) draws the same
 * numbers on CPU and GPU and whatever the split across muscles.
 */
#ifndef BODHI_ENV_H
#define BODHI_ENV_H

#include <stdint.h>

#include "bodhi/bodhi.h"

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

typedef struct bd_env bd_env;

/* The built-in environments, in a fixed order; *count set. */
const bd_env_desc *const *bd_env_registry(int *count);

/* Looks up a built-in by name ("cartpole") or Gymnasium id ("CartPole-v1"); NULL if none. */
const bd_env_desc *bd_env_find(const char *name);

/* The Gymnasium id a built-in follows ("CartPole-v1"), or NULL (plugins). */
const char *bd_env_gym_id(const bd_env_desc *d);

/* Resolves a run file's environment name: a built-in ("cartpole"), or a plugin
 * "path/to/lib.so:symbol" whose symbol is a `const bd_env_desc` (path relative to the
 * working directory). The shared object stays loaded for the life of the process.
 * Errors name the file and symbol (BD_ENOTFOUND) or what is wrong with the descriptor
 * (BD_EINVAL: ABI version, dims, missing functions). */
int bd_env_load(const char *name, const bd_env_desc **out);

/* The env's default params (desc->nparams of them) into param. */
void bd_env_param_defaults(const bd_env_desc *d, float *param);

/* The layout of d for params `param` (NULL: the defaults). BD_EINVAL when a count is out
 * of range or the sizes overflow. */
int bd_env_shape_of(const bd_env_desc *d, const float *param, bd_env_shape *out);

/* Creates a shard of n worlds starting at global world `world0`, on `device`, and resets
 * every world (step counter 0). max_steps <= 0 takes the env's default; param NULL the
 * default params. Fails with BD_ENODEV when the device is CUDA and no GPU answers or the
 * env has no kernel. */
int bd_env_create(const bd_env_desc *desc, int n, uint32_t world0, uint64_t seed,
                  bd_device device, int max_steps, const float *param, bd_env **out);
void bd_env_destroy(bd_env *e); /* NULL-safe */

/* The shard's buffers (device pointers on CUDA). */
bd_env_batch *bd_env_batch_of(bd_env *e);
const bd_env_desc *bd_env_desc_of(const bd_env *e);
bd_device bd_env_device(const bd_env *e);

/* The shard's layout. */
const bd_env_shape *bd_env_shape_get(const bd_env *e);

/* Copies host actions (R, act_dim) in (a no-op copy on CPU when already in place). */
int bd_env_upload_actions(bd_env *e, const float *actions);

/* Steps every world once with the actions in the batch. */
int bd_env_step(bd_env *e);

/* Host view after a step: on CPU the batch itself, on CUDA host mirrors filled by a
 * copy of obs, rewards, terminated, truncated and final_obs. */
int bd_env_download(bd_env *e, bd_env_batch *host);

/* Worker threads for the CPU loops: 1 runs on the calling thread, 0 means one per core.
 * No effect on CUDA shards. Results do not depend on the thread count. */
int bd_env_set_threads(bd_env *e, int threads);

/* Fills the batch's actions with uniform random ones, drawn on the shard's device at
 * (seed, world, counter): Discrete(n) an index, Box U(low, high). For benchmarks and
 * random policies. */
int bd_env_random_actions(bd_env *e, uint64_t counter);

/* Benchmarks' loop: `steps` rounds of random actions (bd_env_random_actions at counters
 * *counter, *counter + 1, ...; *counter advances) and a step, finished on the device
 * before it returns. */
int bd_env_random_steps(bd_env *e, long long steps, uint64_t *counter);

/* Bytes one world's step reads and writes in the batch buffers (obs, actions, rewards,
 * flags, episode clock, env state), for bandwidth arithmetic. */
double bd_env_bytes_per_world_step(const bd_env_desc *d);

/* Measured copy bandwidth (bytes read + written per second) of the shard's device over a
 * working set of `bytes`, using the shard's threads on the CPU. */
int bd_env_copy_bandwidth(bd_env *e, size_t bytes, double *bytes_per_s);

#ifdef __cplusplus
}
#endif
#endif
