/* plan.h: a phase of a validated run file resolved against the registries: which env
 * and how many worlds, the device, each agent's sensor and actuator columns, brain and
 * muscle kinds, the seeds, the stop conditions, and how worlds split across muscles. The
 * conductor builds it to check a run file (`bodhi check`); brains and muscles build the
 * same plan from run.yml, so every process agrees on columns, shards and seeds. */
#ifndef BODHI_CONFIG_PLAN_H
#define BODHI_CONFIG_PLAN_H

#include <stdint.h>

#include "bodhi/env.h"
#include "config/registry.h"
#include "config/runfile.h"

typedef struct bd_agent_plan {
    const bd_agent_cfg *cfg;
    int index;               /* position in the phase's agent list */
    int nsens, nact;
    int *sens_cols;          /* (nsens) env obs columns this agent sees, in order */
    int *act_cols;           /* (nact) env actuator columns it sets */
    char **sensor_ids;       /* (nsens) "<uid>.<name>" */
    char **actuator_ids;     /* (nact) */
    int discrete;            /* how many of its actuators are discrete */
    int continuous;          /* 1: every actuator is a Box (Gaussian policy of nact dims) */
    int n_actions;           /* one discrete actuator: its values; else 0 */
    float *act_low, *act_high; /* (nact) bounds of its actuators */
    const bd_kind *brain;    /* its brain's and muscle's kinds (from the registry) */
    const bd_kind *muscle;
    int random;              /* a netless brain and muscle: uniform actions, no learning */
    uint64_t seed;           /* this agent's seed (policy init, sampling) */
    /* the checkpoint it starts from (NULL load_phase: none): the run file's load, where
     * the default skips phases in which the agent learnt nothing (a netless brain) */
    const char *load_run;    /* an earlier run's directory, or NULL for this run */
    const char *load_phase;
    const char *load_agent;
} bd_agent_plan;

typedef struct bd_phase_plan {
    const bd_runfile *rf;
    const bd_registry *reg;
    const bd_phase_cfg *ph;
    int phase_index;
    const bd_env_desc *env;
    const char *env_uid;
    char *env_params_json;
    long long worlds;        /* total over all muscles */
    int max_steps;           /* env time limit */
    int worker;              /* muscles the conductor starts (phase_config.worker) */
    int remote;              /* muscles that join over TCP (phase_config.remote_worker) */
    int muscles;             /* worker + remote: muscle k < worker is local, the rest remote */
    bd_device device;        /* resolved (auto -> cuda when a GPU and a kernel exist) */
    bd_agent_plan *agents;
    int nagents;
    uint64_t env_seed;       /* seed of this phase's env draws */
    /* stop conditions */
    long long max_agent_steps;   /* max_steps condition (0 = none) */
    double objective_threshold;  /* objective_average (NaN = none) */
    int objective_window;
    long long episodes_target;   /* phase_config.episodes (0 = none): each agent's brain counts
                                    that many episodes, split over its worlds (brain/stats.h) */
    int gate;                    /* made with BD_PLAN_GATE */
} bd_phase_plan;

/* Resolves phase `phase_index` against the registry (borrowed; it outlives the plan).
 * device_override (NULL or "cpu"/"cuda"/"auto") replaces the run file's device. Errors
 * name the run file position (BD_EINVAL, BD_ENOTFOUND), or BD_ENODEV when cuda is asked
 * for and absent. */
int bd_phase_plan_make(const bd_runfile *rf, int phase_index, const bd_registry *reg,
                       const char *device_override, bd_phase_plan *out);

/* Same, recording every problem in d (config/diag.h) instead of stopping at the first;
 * returns the first problem's code. Call bd_phase_plan_fini either way. */
int bd_phase_plan_check(const bd_runfile *rf, int phase_index, const bd_registry *reg,
                        const char *device_override, int flags, bd_diags *d, bd_phase_plan *out);
/* flags: the gate before a run (config/check.c) also looks at files the plan names
 * (checkpoints to load); the processes of the run, which may be on other machines, do not. */
#define BD_PLAN_GATE 1

/* Worlds one phase may hold: every per-world index in bodhi is a 32-bit int. */
#define BD_MAX_WORLDS (1 << 30)
void bd_phase_plan_fini(bd_phase_plan *p);

/* Worlds of muscle k of `workers` (all muscles, local and remote): the first
 * worlds % workers muscles hold one more. */
void bd_shard(long long worlds, int workers, int k, int *n, uint32_t *world0);

/* A seed derived from a run seed and two small integers (splitmix64 mixing). */
uint64_t bd_seed_mix(uint64_t seed, uint64_t a, uint64_t b);

#endif
