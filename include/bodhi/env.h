/* bodhi/env.h: the env engine API: find an environment (a built-in or a plugin), set
 * its params by name with their ranges checked, create shards of N worlds on a device,
 * step them, reset them with a seed, and read their buffers. What an env itself declares
 * (the plugin ABI: bd_env_desc, bd_env_batch) is bodhi/env_abi.h, included here. The
 * engine is the static library bd_env inside bodhi and the shared libbodhi_env.so, which
 * exports the functions marked BD_API below and nothing else.
 *
 * CUDA shards hold device buffers, with host mirrors filled by bd_env_download.
 */
#ifndef BODHI_ENV_H
#define BODHI_ENV_H

#include <stdint.h>

#include "bodhi/env_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct bd_env bd_env;

/* The built-in environments, in a fixed order; *count set. */
BD_API const bd_env_desc *const *bd_env_registry(int *count);

/* Looks up a built-in by name ("cartpole") or Gymnasium id ("CartPole-v1"); NULL if none. */
BD_API const bd_env_desc *bd_env_find(const char *name);

/* The Gymnasium id a built-in follows ("CartPole-v1"), or NULL (plugins). */
BD_API const char *bd_env_gym_id(const bd_env_desc *d);

/* Resolves a run file's environment name: a built-in ("cartpole"), or a plugin
 * "path/to/lib.so:symbol" whose symbol is a `const bd_env_desc` (path relative to the
 * working directory). The shared object stays loaded for the life of the process.
 * Errors name the file and symbol (BD_ENOTFOUND) or what is wrong with the descriptor
 * (BD_EINVAL: ABI version, dims, missing functions). */
BD_API int bd_env_load(const char *name, const bd_env_desc **out);

/* The env's default params (desc->nparams of them) into param. */
BD_API void bd_env_param_defaults(const bd_env_desc *d, float *param);

/* The index of d's param `name` in its declared order (bd_env_batch.param), or -1 when d
 * declares none of that name (worlds and max_steps are not params of the env's own). */
BD_API int bd_env_param_index(const bd_env_desc *d, const char *name);

/* Checks value v for param k of d: a finite number in [min, max], whole for an integer
 * param, compared as the float the env gets. BD_EINVAL with "NAME: expected a number from
 * MIN to MAX (HELP), got V" (the run file's checks prefix where it was written);
 * BD_ENOTFOUND when d has no param k. */
BD_API int bd_env_param_check(const bd_env_desc *d, int k, double v);

/* Sets d's param `name` to v in `param` (d->nparams floats, e.g. filled by
 * bd_env_param_defaults, then given to bd_env_create), after bd_env_param_check.
 * BD_ENOTFOUND when d declares no such param (the error lists those it does), BD_EINVAL
 * when v is out of range; `param` is unchanged on error. Params that size the env (Tag's
 * runners, taggers, neighbours) are checked by bd_env_shape_of and bd_env_create too. */
BD_API int bd_env_param_set(const bd_env_desc *d, float *param, const char *name, double v);

/* The layout of d for params `param` (NULL: the defaults). BD_EINVAL when a count is out
 * of range or the sizes overflow. */
BD_API int bd_env_shape_of(const bd_env_desc *d, const float *param, bd_env_shape *out);

/* Creates a shard of n worlds starting at global world `world0`, on `device`, and resets
 * every world (step counter 0). max_steps <= 0 takes the env's default; param NULL the
 * default params. Fails with BD_ENODEV when the device is CUDA and no GPU answers or the
 * env has no kernel. */
BD_API int bd_env_create(const bd_env_desc *desc, int n, uint32_t world0, uint64_t seed,
                         bd_device device, int max_steps, const float *param, bd_env **out);
BD_API void bd_env_destroy(bd_env *e); /* NULL-safe */

/* The shard's buffers (device pointers on CUDA). */
BD_API bd_env_batch *bd_env_batch_of(bd_env *e);
BD_API const bd_env_desc *bd_env_desc_of(const bd_env *e);
BD_API bd_device bd_env_device(const bd_env *e);

/* The shard's layout. */
BD_API const bd_env_shape *bd_env_shape_get(const bd_env *e);

/* Copies host actions (R, act_dim) in (a no-op copy on CPU when already in place). */
BD_API int bd_env_upload_actions(bd_env *e, const float *actions);

/* Starts every world of the shard over with seed `seed`: the buffers cleared, the step
 * counter 0 and every world a fresh episode drawn at (seed, world, 0), exactly as
 * bd_env_create with that seed makes them (params, device and threads are kept). On CUDA
 * the host mirrors are filled too. */
BD_API int bd_env_reset(bd_env *e, uint64_t seed);

/* Steps every world once with the actions in the batch. */
BD_API int bd_env_step(bd_env *e);

/* Host view after a step: on CPU the batch itself, on CUDA host mirrors filled by a
 * copy of obs, rewards, terminated, truncated and final_obs. */
BD_API int bd_env_download(bd_env *e, bd_env_batch *host);

/* Worker threads for the CPU loops: 1 runs on the calling thread, 0 means one per core.
 * No effect on CUDA shards. Results do not depend on the thread count. */
BD_API int bd_env_set_threads(bd_env *e, int threads);

/* Fills the batch's actions with uniform random ones, drawn on the shard's device at
 * (seed, world, counter): Discrete(n) an index, Box U(low, high). For benchmarks and
 * random policies. */
BD_API int bd_env_random_actions(bd_env *e, uint64_t counter);

/* Benchmarks' loop: `steps` rounds of random actions (bd_env_random_actions at counters
 * *counter, *counter + 1, ...; *counter advances) and a step, finished on the device
 * before it returns. */
BD_API int bd_env_random_steps(bd_env *e, long long steps, uint64_t *counter);

/* Bytes one world's step reads and writes in the batch buffers (obs, actions, rewards,
 * flags, episode clock, env state), for bandwidth arithmetic. */
BD_API double bd_env_bytes_per_world_step(const bd_env_desc *d);

/* Measured copy bandwidth (bytes read + written per second) of the shard's device over a
 * working set of `bytes`, using the shard's threads on the CPU. */
BD_API int bd_env_copy_bandwidth(bd_env *e, size_t bytes, double *bytes_per_s);

#ifdef __cplusplus
}
#endif
#endif
