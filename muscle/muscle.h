/* muscle.h: the inference worker process (`bodhi muscle`). The conductor starts
 * phase_config.worker of them; phase_config.remote_worker more join from other machines
 * (`bodhi muscle --connect`). Muscle k holds its shard of the phase's worlds on its device,
 * runs every agent's policy on it, steps the environment, and sends each agent's brain a
 * rollout of T steps; then it waits for new weights (or STOP) from every brain. A heartbeat
 * thread tells the conductor it lives. A muscle that restarts (after its predecessor died)
 * starts its worlds over from a reset drawn from the run's seed and its restart count. */
#ifndef BODHI_MUSCLE_MUSCLE_H
#define BODHI_MUSCLE_MUSCLE_H

#include "config/registry.h"
#include "muscle/actor.h"
#include "wire/tls.h"

/* A muscle kind's own table (its bd_kind.ops). */
typedef struct {
    /* Prepares agent ap's actor for the shard b of its env on dev (muscle/actor.h,
     * bd_actor_init), in `mode`: BD_ACT_SAMPLE in a train phase, BD_ACT_GREEDY in a test
     * phase; the kind picks its own (uniform draws, its machine from ap->muscle_params). */
    int (*init)(bd_actor *ac, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev, bd_act_mode mode);
    /* The head (wire/wire.h BD_HEAD_*) the kind runs, which its brain's WEIGHTS must
     * describe; 0: by the agent's actuators (Gaussian for Box ones, else categorical). */
    uint32_t head;
} bd_muscle_ops;

/* The muscles a run file can name ("ppo", "random"), for the registry. */
extern const bd_kind bd_muscle_kinds[];
extern const int bd_muscle_nkinds;

typedef struct {
    const char *run_dir;       /* a local muscle: reads run_dir/run.yml, finds the sockets there */
    const char *run_file;      /* a remote muscle: the effective run file's text instead */
    const char *phase;
    int id;                    /* 0 .. worker + remote_worker - 1 */
    int restart;               /* how many muscles held this id before in this phase */
    const char *device;        /* NULL, or overrides the run file's */
    const bd_registry *reg;
    const char *control_url;   /* the conductor; NULL: the run directory's ipc socket */
    const char *run_digest;    /* a local muscle: run.yml's SHA-256 from the conductor (NULL: none) */
    char *const *brain_urls;   /* one per agent, NULL-terminated (remote muscles); NULL: ipc */
    bd_tls *tls;               /* remote muscles: the run's credential (every TCP door is TLS) */
    uint32_t epoch;            /* remote muscles: the conductor's grant (its JOIN answer), */
    uint8_t grant[BD_TLS_GRANT_SIZE]; /* shown in every HELLO (wire/tls.h, bd_tls_grant) */
} bd_muscle_opts;

/* Runs a muscle. Returns the process exit code: 0 when every brain said STOP, 1 on failure
 * (message on stderr, and in an "error" event to the conductor). */
int bd_muscle_main(const bd_muscle_opts *o);

/* How a remote muscle joins (bd_muscle_remote). */
typedef struct {
    const char *url;           /* the conductor's --listen address: HOST:PORT, tcp:// or tls+tcp:// */
    const char *credential;    /* the run's credential file (RUN_DIR/remote.key or --credential) */
    const char *device;        /* NULL, or overrides the run file's */
    double wait_s;             /* how long to keep asking for a slot */
    int allow_plugins;         /* may load an environment plugin the run file names, if it is here */
} bd_remote_opts;

/* `bodhi muscle --connect HOST:PORT --credential FILE`: asks the conductor there for a slot
 * (JOIN) over mutual TLS, runs the phase it names, and asks again, until the conductor says
 * the run is done or is gone (0), or no slot came for wait_s seconds (1). 2: bad input: a
 * bad url or credential, a conductor that refuses the credential or whose certificate is
 * not of the credential's run, or a run file naming a plugin this muscle may not load. */
int bd_muscle_remote(const bd_remote_opts *o, const bd_registry *reg);

#endif
