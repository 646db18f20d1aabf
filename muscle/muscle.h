/* muscle.h: the inference worker process (`bodhi muscle`). One per phase_config.worker.
 * It holds its shard of the phase's worlds on its device, runs every agent's policy on
 * it, steps the environment, and sends each agent's brain a rollout of T steps; then it
 * waits for new weights (or STOP) from every brain. */
#ifndef BODHI_MUSCLE_MUSCLE_H
#define BODHI_MUSCLE_MUSCLE_H

/* Runs muscle `id` of `phase` in run_dir/run.yml. Returns the process exit code:
 * 0 when every brain said STOP, 1 on failure (message on stderr). */
int bd_muscle_main(const char *run_dir, const char *phase, int id, const char *device_override);

#endif
