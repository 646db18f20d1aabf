/* brain.h: the learner process (`bodhi brain`). One per agent and phase. It listens at
 * ipc://<run dir>/<agent>.brain, greets each muscle with the initial weights, then per
 * round gathers one rollout from every muscle, records it in the agent's memory (HDF5),
 * updates its episode statistics and stop conditions, learns (train phases: its kind's
 * learner, brain/learner.h, which the process drives without knowing the algorithm), and
 * answers every muscle with the new weights or STOP. It reports to the conductor over the
 * events socket and saves a checkpoint at the end of a train phase. */
#ifndef BODHI_BRAIN_BRAIN_H
#define BODHI_BRAIN_BRAIN_H

#include "config/registry.h"

/* The brains a run file can name ("ppo", "random", "none"), for the registry (kinds.c). */
extern const bd_kind bd_brain_kinds[];
extern const int bd_brain_nkinds;

/* Runs the brain of `agent` in `phase` of run_dir/run.yml, resolving the run file against
 * reg. tcp (NULL, or tls+tcp://HOST:0) also listens there, through mutual TLS with the
 * server certificate the conductor left in the socket folder (server.pem), for muscles on
 * other machines, which alone greet there; the port the system chose goes to the conductor
 * in the "ready" event. Returns the process
 * exit code: 0 done, 1 failed (message on stderr), 143 stopped by SIGTERM (memory
 * flushed). run_digest (NULL: none): run.yml's SHA-256 as the conductor wrote it; another
 * run.yml is refused. */
int bd_brain_main(const char *run_dir, const char *phase, const char *agent,
                  const bd_registry *reg, const char *device_override, const char *tcp,
                  const char *run_digest);

#endif
