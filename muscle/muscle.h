/* muscle.h: the inference worker process (`bodhi muscle`). One per phase_config.worker.
 * It holds its shard of the phase's worlds on its device, runs every agent's policy on
 * it, steps the environment, and sends each agent's brain a rollout of T steps; then it
 * waits for new weights (or STOP) from every brain. */
#ifndef BODHI_MUSCLE_MUSCLE_H
#define BODHI_MUSCLE_MUSCLE_H

#include "config/registry.h"

/* The muscles a run file can name ("ppo", "random"), for the registry. */
extern const bd_kind bd_muscle_kinds[];
extern const int bd_muscle_nkinds;

/* Runs muscle `id` of `phase` in run_dir/run.yml, resolving the run file against reg.
 * Returns the process exit code: 0 when every brain said STOP, 1 on failure (message on
 * stderr). */
int bd_muscle_main(const char *run_dir, const char *phase, int id, const bd_registry *reg,
                   const char *device_override);

#endif
