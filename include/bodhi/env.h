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

/* One sensor or actuator column: its name (the id is "<env uid>.<name>") and bounds.
 * A discrete actuator has n > 0 values 0..n-1 (stored as a float index). */
typedef struct {
    const char *name;
    float low, high;
    int n;
} bd_channel;

/* The buffers of one shard. Shapes in comments; pointers are device pointers on CUDA. */
typedef struct bd_env_batch {
    int n;                 /* worlds in this shard */
    int obs_dim, act_dim;  /* columns per world */
    int state_dim;         /* env-private floats per world (0 if obs is the whole state) */
    float *obs;            /* (N, obs_dim) what each world shows now (after any reset) */
    float *actions;        /* (N, act_dim) the caller writes these before a step */
    float *rewards;        /* (N) reward of the last step */
    uint8_t *terminated;   /* (N) the last step ended the episode by the env's rules */
    uint8_t *truncated;    /* (N) the last step hit the time limit */
    float *final_obs;      /* (N, obs_dim) last obs of worlds that ended (valid where ended) */
    float *state;          /* (N, state_dim) or NULL */
    int32_t *elapsed;      /* (N) steps taken in the current episode */
    uint64_t seed;         /* run seed (mixed with the phase by the caller) */
    uint32_t world0;       /* global index of this shard's first world */
    uint64_t step;         /* steps taken by this batch so far (the RNG counter) */
    int max_steps;         /* time limit (truncation) */
} bd_env_batch;

/* The env ABI a plugin's bd_env_desc declares in abi_version. */
#define BD_ENV_ABI 1

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

/* Creates a shard of n worlds starting at global world `world0`, on `device`, and resets
 * every world (step counter 0). max_steps <= 0 takes the env's default. Fails with
 * BD_ENODEV when the device is CUDA and no GPU answers or the env has no kernel. */
int bd_env_create(const bd_env_desc *desc, int n, uint32_t world0, uint64_t seed,
                  bd_device device, int max_steps, bd_env **out);
void bd_env_destroy(bd_env *e); /* NULL-safe */

/* The shard's buffers (device pointers on CUDA). */
bd_env_batch *bd_env_batch_of(bd_env *e);
const bd_env_desc *bd_env_desc_of(const bd_env *e);
bd_device bd_env_device(const bd_env *e);

/* Copies host actions (N, act_dim) in (a no-op copy on CPU when already in place). */
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
