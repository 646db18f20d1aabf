/* hosted.h: environments whose code a loader runs in a host it started (a Python class in
 * an embedded interpreter, env/python/), not a plugin's C functions over ranges of worlds.
 * Their bd_env_desc heads a bd_env_hosted, marked by abi_version BD_ENV_HOSTED (never a
 * plugin's: bd_env_load refuses it); bd_env_create, bd_env_reset, bd_env_step and
 * bd_env_destroy (env/env.c) call these instead of reset_cpu/step_cpu, over the whole
 * shard, on the calling thread, and pass their errors on. CPU only (no CUDA launchers).
 * What the host does with the batch is the engine's contract (include/bodhi/env_abi.h):
 * auto-reset inside the step, final observations, the episode clock, truncation. */
#ifndef BODHI_ENV_HOSTED_H
#define BODHI_ENV_HOSTED_H

#include "bodhi/env.h"

#define BD_ENV_HOSTED 0x48535444 /* "HSTD": not an ABI version a plugin can declare */

typedef struct bd_env_hosted {
    bd_env_desc desc; /* abi_version BD_ENV_HOSTED; reset_cpu, step_cpu and the CUDA ones NULL */
    /* Makes the host's state for shard b (its buffers, params, seed and first world set,
     * cleared) in *state; BD_OK or an error (bd_seterr). The engine then calls reset. */
    int (*open)(const struct bd_env_hosted *h, bd_env_batch *b, void **state);
    /* Starts every world of b over (episode clocks 0, draws at counter b->step). */
    int (*reset)(void *state, bd_env_batch *b);
    /* Steps every world of b once with b->actions; the engine counts b->step after. */
    int (*step)(void *state, bd_env_batch *b);
    void (*close)(void *state); /* NULL-safe on state */
} bd_env_hosted;

/* d's bd_env_hosted, or NULL when d is a built-in's or a plugin's. */
static inline const bd_env_hosted *bd_env_hosted_of(const bd_env_desc *d)
{
    return d && d->abi_version == BD_ENV_HOSTED ? (const bd_env_hosted *)d : NULL;
}

#endif
