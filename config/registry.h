/* registry.h: what config/ checks a run file's names against. Environments, brains,
 * muscles and objectives are defined in folders above config/ (env/, brain/, muscle/);
 * the program that starts a process hands their tables down as one bd_registry
 * (conductor/builtins.c builds bodhi's), so config/ never includes those folders. */
#ifndef BODHI_CONFIG_REGISTRY_H
#define BODHI_CONFIG_REGISTRY_H

#include <signal.h>
#include <stdint.h>

#include "bodhi/env.h"
#include "config/yamltree.h"

struct bd_phase_plan;
struct bd_agent_plan;

/* Greedy episodes of an agent's policy on worlds of their own, for the brain's
 * greedy_average condition (config/plan.h): muscle/eval.c plays them with the muscle's own
 * actor, and the registry hands them to the brain, since brain/ and muscle/ never include
 * each other. */
typedef struct bd_greedy_ops {
    /* Worlds for `episodes` greedy episodes of agent ap (kept by the plan), on the CPU. */
    int (*create)(const struct bd_agent_plan *ap, int episodes, void **out);
    /* Evaluation k (its worlds' draws: the env's seed and k) with the policy a WEIGHTS
     * header w (wire/wire.h's bd_weights_hdr, which config/ does not include) and its floats
     * (host, aligned) describe: *mean the mean return of each world's first episode,
     * *steps the agent-steps played. BD_EINTR once *cancel (NULL: none) is set. */
    int (*play)(void *self, const void *w, const float *floats, uint64_t k, double *mean, long long *steps,
                const volatile sig_atomic_t *cancel);
    /* When the env step under way in play began (CLOCK_MONOTONIC seconds, bd_now), 0
     * between steps: read from another thread (the brain's heartbeats), which takes a step
     * longer than the phase's heartbeat_timeout for a hang, as a muscle does. */
    double (*stepping_since)(const void *self);
    void (*destroy)(void *self); /* NULL-safe */
} bd_greedy_ops;

/* A kind of brain or muscle, as a run file names it. */
typedef struct {
    const char *name;    /* "ppo", "random" */
    const char *family;  /* a brain and a muscle belong together when their families match */
    int netless;         /* acts without a policy network (the brain sends none, learns nothing) */
    /* Reads `params` (a map, never NULL) once for agent ap of phase p (its env and columns
     * resolved as for check) into the kind's own value, which the plan keeps
     * (ap->brain_params, ap->muscle_params) for check, the plan and the processes, and frees
     * with free_params. Records every problem in d and returns the first one's code (*out
     * stays NULL then). NULL: the kind keeps no params (its value is NULL). */
    int (*parse)(const bd_node *params, const struct bd_phase_plan *p, const struct bd_agent_plan *ap,
                 bd_diags *d, void **out);
    void (*free_params)(void *value);
    /* Checks what else the kind asks of agent ap of phase p, after parse (whose value is
     * NULL in ap when it failed: check only what does not need it; for a brain, ap->env is
     * NULL when the env is unknown: check what the params alone show): records every problem in d
     * ("FILE:LINE:COL: ..."), returns the first one's code or BD_OK. NULL: nothing more. */
    int (*check)(const bd_node *params, const struct bd_phase_plan *p,
                 const struct bd_agent_plan *ap, bd_diags *d);
    /* Brains: the rollout length T the parsed params ask of the muscles. The agents of a
     * phase step together, so config/plan.c refuses a phase whose agents ask for different
     * T. NULL: the kind asks for none. */
    long long (*rollout_steps)(const void *value);
    /* Brains: the most floats one WEIGHTS message to agent ap's muscles carries (its
     * network's parameters and normaliser), so that a muscle refuses a longer message
     * before it is received. NULL: the brain sends no network. */
    unsigned long long (*weights_floats)(const void *value, const struct bd_agent_plan *ap);
    /* The kind's own table, which config/ never reads: a brain's learner
     * (brain/learner.h, bd_learner_ops), a muscle's (muscle/muscle.h, bd_muscle_ops). */
    const void *ops;
    /* Brains: about how many bytes the parsed params ask the brain of agent ap to hold (its
     * round's batch, a replay buffer), for config/plan.c's sum over the phase's brains,
     * which all run on this machine. NULL: too little to count. */
    double (*memory_bytes)(const void *value, const struct bd_agent_plan *ap);
} bd_kind;

typedef struct {
    /* An env by run-file name: a built-in or "path/lib.so:symbol" (bd_env_load). */
    int (*env_load)(const char *name, const bd_env_desc **out);
    /* The built-in envs, for suggestions in errors. */
    const bd_env_desc *const *(*env_builtins)(int *count);
    /* An env's layout for its params (bd_env_shape_of). */
    int (*env_shape)(const bd_env_desc *d, const float *param, bd_env_shape *out);
    /* Checks a value for an env's param k (bd_env_param_check): BD_EINVAL with
     * "NAME: expected ..., got V" when out of its range. */
    int (*env_param_check)(const bd_env_desc *d, int k, double v);
    /* A built-in's Gymnasium id ("CartPole-v1"; env_load takes it too), or NULL. */
    const char *(*env_gym_id)(const bd_env_desc *d);
    const bd_kind *brains;
    int nbrains;
    const bd_kind *muscles;
    int nmuscles;
    const char *const *objectives; /* NULL-terminated */
    /* 1 when the learner and the muscles' inference can run on CUDA (a CUDA libtorch). */
    int (*learner_cuda)(void);
    /* BD_OK when traces can be written with compression `name` here; else an error
     * saying why (an unknown name, a missing filter). NULL: every name is taken. */
    int (*compression_ok)(const char *name);
    /* greedy_average's episodes (above). NULL: a program that cannot play them, whose
     * brains refuse the condition. */
    const bd_greedy_ops *greedy;
} bd_registry;

/* The kind named `name` among kinds (count of them), or NULL. */
const bd_kind *bd_kind_find(const bd_kind *kinds, int count, const char *name);

#endif
