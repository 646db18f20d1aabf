/* runfile.h: the experiment run file (YAML, palaestrAI-shaped; docs/run-file.md).
 *
 *   uid, seed, version, schedule: [ {<phase name>: {environments, agents, simulation,
 *   phase_config}} ... ], run_config
 *
 * Each phase is deep-merged onto the one before it (phase cascading), then validated.
 * bd_runfile_load reads and validates; errors are "FILE:LINE:COL: message" (bd_lasterr)
 * with BD_EPARSE (YAML syntax) or BD_EINVAL (shape, types, names, ranges).
 * All strings and nodes are owned by the bd_runfile.
 */
#ifndef BODHI_CONFIG_RUNFILE_H
#define BODHI_CONFIG_RUNFILE_H

#include <stdint.h>

#include "config/diag.h"
#include "config/yamltree.h"

/* Names that become folders, file names and HDF5 groups (uid, phases, agents, env uids):
 * [A-Za-z0-9_.-], 1 to BD_NAME_MAX characters. */
#define BD_NAME_MAX 64
#define BD_STR_(x) #x
#define BD_STR(x) BD_STR_(x)

typedef struct {
    const char *name;       /* e.g. "ppo", "random", "cartpole", "reward", or "lib.so:symbol" */
    const bd_node *params;  /* a map (possibly empty); never NULL after validation */
    const bd_node *node;    /* where it was written, for errors */
} bd_named;

/* The ranges of the phase's caps, as the run file and `bodhi set` read them: a max_steps
 * condition's steps and phase_config.episodes. */
#define BD_CAP_STEPS_MAX (1ll << 50)
#define BD_CAP_STEPS_WHAT "1 to 2^50 agent-steps"
#define BD_CAP_EPISODES_MAX (1ll << 40)
#define BD_CAP_EPISODES_WHAT "1 to 2^40 episodes to end the phase after"

typedef struct {
    bd_named env;           /* environment: {name, uid, params} */
    const char *uid;        /* sensor/actuator id prefix, e.g. "pole" */
} bd_env_cfg;

typedef struct {
    const char *name;
    bd_named brain, muscle, objective;
    const char **sensors;   /* as written: "pole.theta" or "pole.*" */
    int nsensors;
    const char **actuators;
    int nactuators;
    const char *load_agent; /* whose checkpoint to start from (default: this agent) */
    const char *load_phase; /* ... from which phase (default: the latest earlier train phase
                               with this agent; NULL when there is none) */
    int load_phase_given;   /* load.phase was written (else load_phase is the default) */
    const char *load_run;   /* ... of which run: an earlier run's directory as written
                               (load.experiment_run; run.yml holds its absolute path, and
                               load_phase is then set: config/check.c resolves both), or
                               NULL for this run */
    /* record: false | {every, worlds, compression} (memory/memory.h) */
    int record_steps;       /* 1: step rows go to the trace (default); 0: episodes only */
    int record_every;       /* every K-th env step (1) */
    long long record_worlds;/* the first N worlds (0: all) */
    const char *record_compression; /* "none", "blosc", "lz4", "deflate"; NULL: the default
                                       (lz4 where HDF5 loads it, else none) */
    const bd_node *node;
} bd_agent_cfg;

typedef enum { BD_MODE_TRAIN = 0, BD_MODE_TEST = 1 } bd_mode;

typedef struct {
    const char *name;       /* the schedule key, e.g. "train" */
    bd_mode mode;           /* phase_config.mode (default train) */
    int worker;             /* phase_config.worker: muscle processes (default 1, >= 1) */
    const char *device;     /* phase_config.device: "auto" (default), "cpu" or "cuda" */
    long long episodes;     /* phase_config.episodes: the phase ends after this many (0 = unset) */
    int remote_worker;      /* phase_config.remote_worker: muscles that join over TCP (0) */
    int restarts;           /* phase_config.restarts: restarts of crashed or hung muscles (3) */
    double heartbeat_timeout; /* phase_config.heartbeat_timeout: seconds without a heartbeat
                                 after which a process is taken for hung (60) */
    double join_timeout;    /* phase_config.join_timeout: seconds to wait for remote muscles (300) */
    bd_env_cfg *envs;
    int nenvs;
    bd_agent_cfg *agents;
    int nagents;
    const char *sim_name;   /* simulation.name (default "vanilla") */
    bd_named *conditions;   /* simulation.conditions */
    int nconditions;
    const bd_node *node;    /* the merged phase map (what run.yml shows) */
    int invalid;            /* bd_runfile_parse_all found problems in this phase */
} bd_phase_cfg;

typedef struct {
    char *path;             /* file name used in errors */
    char *text;             /* the file as read */
    const char *uid;        /* NULL (only while it has problems) when it cannot name a folder */
    uint64_t seed;
    int version;            /* run file format version (1) */
    bd_phase_cfg *phases;
    int nphases;
    bd_node *root;          /* the document as written */
    bd_node *effective;     /* root with each schedule entry replaced by its merged phase */
    void *priv;             /* implementation's storage */
} bd_runfile;

/* Reads and validates `path`. *out is owned by the caller (bd_runfile_destroy). */
int bd_runfile_load(const char *path, bd_runfile **out);

/* bd_runfile_load, refusing (BD_EINVAL, naming both digests) a file whose SHA-256 is not
 * sha256_hex (NULL: any file): a run's children read the very run.yml its conductor wrote
 * and checked, not one swapped in after. */
int bd_runfile_load_checked(const char *path, const char *sha256_hex, bd_runfile **out);

/* Same from text already in memory; `name` is used in errors. */
int bd_runfile_parse(const char *text, const char *name, bd_runfile **out);

/* What the command line replaces in a run file before it is checked. */
typedef struct {
    int has_seed;
    uint64_t seed;          /* --seed */
} bd_runfile_overrides;

/* Like bd_runfile_parse, but records every problem in d (config/diag.h) and, unless the
 * text is not YAML at all, returns the run file in *out even when it has problems (phases
 * with problems are marked invalid) so that later checks can look at the rest. Returns
 * d's first error code, or BD_OK. */
int bd_runfile_parse_all(const char *text, const char *name, const bd_runfile_overrides *ov,
                         bd_diags *d, bd_runfile **out);

void bd_runfile_destroy(bd_runfile *rf); /* NULL-safe */

/* Writes the effective run file (after phase cascading) as YAML to path. */
int bd_runfile_write_effective(const bd_runfile *rf, const char *path);

/* Lookups: NULL / -1 when absent. */
const bd_phase_cfg *bd_runfile_phase(const bd_runfile *rf, const char *name);
int bd_runfile_phase_index(const bd_runfile *rf, const char *name);
const bd_agent_cfg *bd_phase_agent(const bd_phase_cfg *ph, const char *name);

#endif
