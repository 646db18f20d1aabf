/* conductor.h: `bodhi run`: the run governor. It validates the run file, claims the run
 * directory (run.yml, run.h5, log.jsonl), and for each phase in order starts one brain per
 * agent and `worker` muscles as child processes of this same executable (and waits for
 * `remote_worker` more to join over TCP), relays their events to log.jsonl and a progress
 * line on stderr, decides for every round whether the phase goes on, restarts muscles that
 * die or stop beating, answers status queries on its control socket, stops everything on
 * Ctrl-C or SIGTERM, and writes summary.json. */
#ifndef BODHI_CONDUCTOR_CONDUCTOR_H
#define BODHI_CONDUCTOR_CONDUCTOR_H

#include <stdint.h>

#include "config/runfile.h"

typedef struct {
    const char *path;      /* the run file */
    const char *out;       /* run directory (NULL: runs/<uid>) */
    const char *device;    /* NULL or cpu|cuda|auto */
    const char *listen;    /* NULL, or tls+tcp://HOST:PORT for remote muscles (mutual TLS) */
    const char *credential;/* NULL: RUN_DIR/remote.key is made; else a credential file to use,
                              made there when it does not exist (wire/tls.h) */
    int has_seed;
    uint64_t seed;         /* replaces the run file's seed when has_seed */
    int quiet;             /* no progress lines */
} bd_run_opts;

/* Runs the experiment. Returns the exit code (docs/architecture.md, "Exit codes"): 0 done,
 * 1 failed, 2 bad input, 130 interrupted (SIGINT), 143 terminated (SIGTERM). */
int bd_conductor_run(const bd_run_opts *o);

/* `bodhi check`: the checks `bodhi run` makes with the same options (config/check.h),
 * without running anything; prints every problem, or what each phase will run. Returns 0
 * or 2; with 0 and checked non-NULL, the run file it checked (the caller destroys it: a
 * pipe's is read once). */
int bd_conductor_check(const bd_run_opts *o, bd_runfile **checked);

/* `bodhi status`: asks a running conductor over its control socket (a table, or its JSON
 * with json set), or reads summary.json of a finished run. Returns 0, or 2 when run_dir
 * holds no run. */
int bd_conductor_status(const char *run_dir, int json);

/* `bodhi set` and `bodhi stop` (cmd: "set" or "stop"): request (JSON: {"set": ["AGENT.KEY=VALUE",
 * ...]} or {"stop": "phase"|"run"}) to the running conductor of run_dir over its control
 * socket; prints what it took, or its refusal. Returns 0 taken, 2 refused (bad input: a key
 * that cannot change, a value out of range) or no run directory, 1 when no conductor
 * answers (the run is over or not started) or no phase is running. */
int bd_conductor_steer(const char *cmd, const char *run_dir, const char *request);

#endif
