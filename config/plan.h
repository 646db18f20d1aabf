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

/* One environment of a phase: its own uid, worlds, params and draws. */
typedef struct bd_env_plan {
    int index;               /* position in the phase's environments */
    const bd_env_desc *desc;
    const char *uid;         /* ids are "<uid>.<name>", or "<uid>.<group>.<name>" */
    char *params_json;       /* its params as written (for traces) */
    long long worlds;        /* total over all muscles (0 when its params have problems) */
    int max_steps;           /* time limit */
    float param[BD_ENV_MAX_PARAMS]; /* the env's own params, in its declared order */
    bd_env_shape shape;      /* its layout for those params */
    uint64_t seed;           /* seed of its draws */
} bd_env_plan;

typedef struct bd_agent_plan {
    const bd_agent_cfg *cfg;
    int index;               /* position in the phase's agent list */
    /* what it drives: members of one group of one env in every world; its columns (the
     * N of its rollouts and trace) are (world, member) pairs, world-major */
    const bd_env_plan *env;
    int group;               /* the group's index in env->shape */
    int members;             /* env->shape.count[group] */
    long long columns;       /* env->worlds x members */
    int nsens, nact;
    int *sens_cols;          /* (nsens) columns of its group's rows this agent sees, in order */
    int *act_cols;           /* (nact) actuator columns of those rows it sets */
    char **sensor_ids;       /* (nsens) "<uid>.<name>" or "<uid>.<group>.<name>" */
    char **actuator_ids;     /* (nact) */
    int discrete;            /* how many of its actuators are discrete */
    int continuous;          /* 1: every actuator is a Box (Gaussian policy of nact dims) */
    int n_actions;           /* one discrete actuator: its values; else 0 */
    float *act_low, *act_high; /* (nact) bounds of its actuators */
    const bd_kind *brain;    /* its brain's and muscle's kinds (from the registry) */
    const bd_kind *muscle;
    void *brain_params;      /* its brain's params as the kind read them once (bd_kind.parse) */
    void *muscle_params;     /* its muscle's */
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
    bd_env_plan *envs;       /* its environments, stepped together */
    int nenvs;
    long long max_columns;   /* the most columns of any agent: automatic rollout lengths are
                                computed from it, so that the agents agree (0: unknown) */
    int worker;              /* muscles the conductor starts (phase_config.worker) */
    int remote;              /* muscles that join over TCP (phase_config.remote_worker) */
    int muscles;             /* worker + remote: muscle k < worker is local, the rest remote */
    bd_device device;        /* resolved (auto -> cuda when a GPU and a kernel exist) */
    bd_agent_plan *agents;
    int nagents;
    /* stop conditions */
    long long max_agent_steps;   /* max_steps condition (0 = none) */
    const char *max_steps_agent; /* max_steps' agent: only its steps count (NULL: any agent's) */
    double objective_threshold;  /* objective_average (NaN = none) */
    int objective_window;
    const char *objective_agent; /* objective_average's agent: only its mean counts (NULL: any) */
    /* greedy_average (NaN threshold = none): every `greedy_every` agent-steps the brain plays
     * greedy_episodes greedy episodes of its current weights on worlds of its own (one each,
     * muscle/eval.h); the phase ends when their mean return reaches the threshold */
    double greedy_threshold;
    int greedy_episodes;
    long long greedy_every;
    const char *greedy_agent;    /* NULL: every agent of the phase is evaluated */
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

/* `bodhi set` of a phase's cap (docs/run-file.md, "Steering a live run"): map[key] (a
 * map the caller made with the user's text), key "max_steps" (the max_steps condition's
 * steps: every agent's count when the phase had no such condition) or "episodes"
 * (phase_config.episodes), read and checked as the run file's, into p. BD_EINVAL ("WHERE:
 * KEY: expected ..., got V") leaves p as it was. */
int bd_plan_set_cap(bd_phase_plan *p, const bd_node *map, const char *key);

/* greedy_average's defaults: episodes per evaluation, agent-steps between evaluations */
#define BD_GREEDY_EPISODES 100
#define BD_GREEDY_EVERY 50000

/* Worlds one phase may hold: every per-world index in bodhi is a 32-bit int. */
#define BD_MAX_WORLDS (1 << 30)
void bd_phase_plan_fini(bd_phase_plan *p);

/* "cartpole x 256 worlds" or "tag x 16 worlds of 25 agents, ...", for messages (heap). */
char *bd_phase_envs_text(const bd_phase_plan *p);

/* The env plan whose uid is `uid`, or NULL. */
const bd_env_plan *bd_phase_env(const bd_phase_plan *p, const char *uid);

/* Worlds of muscle k of `workers` (all muscles, local and remote): the first
 * worlds % workers muscles hold one more. */
void bd_shard(long long worlds, int workers, int k, int *n, uint32_t *world0);

/* The row of its env's batch (of all the env's worlds) that column c of agent ap is
 * (bd_env_row). */
static inline int64_t bd_agent_row(const bd_agent_plan *ap, int64_t c)
{
    return bd_env_row(c, ap->members, ap->env->shape.first[ap->group], ap->env->shape.members);
}

/* Columns of agent ap that muscle k of `muscles` holds: [col0, col0 + n), its env's
 * worlds of bd_shard times the agent's members. */
void bd_agent_shard(const bd_agent_plan *ap, int muscles, int k, int *n, uint32_t *col0);

/* A seed derived from a run seed and two small integers (splitmix64 mixing). */
uint64_t bd_seed_mix(uint64_t seed, uint64_t a, uint64_t b);

#endif
