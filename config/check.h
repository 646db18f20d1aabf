/* check.h: the one gate a run file passes before anything is written.
 *
 * `bodhi check` and `bodhi run` call bd_config_check with the run file and the command
 * line's options. It reads the file, parses it (config/runfile.h), resolves every phase
 * against the registry (config/plan.h: envs, brains and muscles with their own params,
 * objectives, conditions, ids, devices, load targets) and checks the command line's
 * --seed, --device and --out by the same rules; every problem goes into d, each as
 * "FILE:LINE:COL: message" where it has a place in the file. */
#ifndef BODHI_CONFIG_CHECK_H
#define BODHI_CONFIG_CHECK_H

#include <stdint.h>

#include "config/diag.h"
#include "config/registry.h"
#include "config/runfile.h"

typedef struct {
    const char *path;    /* the run file */
    const char *text;    /* NULL, or the run file's text (NUL-terminated) made in memory
                            (bodhi sweep): then path only names it in messages, and
                            relative plugin paths in it resolve from the working folder */
    const char *device;  /* --device (NULL: each phase's own) */
    int has_seed;
    uint64_t seed;       /* --seed */
    const char *out;     /* --out (NULL: runs/<uid>), the directory the run will write */
    int listen;          /* --listen was given: remote muscles can join */
    const char *listen_url; /* --listen's address (NULL: none) */
    /* The rules of the layers above, handed down (NULL: not checked): whether the run
     * directory can be claimed (conductor/rundir.h), whether the --listen address is free
     * (wire/addr.h). Each returns BD_OK or an error with its message, and writes nothing. */
    int (*out_check)(const char *dir);
    int (*listen_check)(const char *url);
} bd_check_opts;

/* BD_OK and *out (caller destroys) when the run file can run; else the first problem's
 * code with every problem in d, and *out NULL. */
int bd_config_check(const bd_check_opts *o, const bd_registry *reg, bd_diags *d, bd_runfile **out);

/* The run directory a run of rf writes: o->out, or runs/<uid>. Caller frees. */
char *bd_config_run_dir(const bd_check_opts *o, const bd_runfile *rf);

#endif
