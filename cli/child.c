/* child.c: `bodhi brain` and `bodhi muscle`: the processes the conductor starts. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bodhi/bodhi.h"
#include "brain/brain.h"
#include "cli/cli.h"
#include "common/proc.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "muscle/muscle.h"

static int bd_child_start(const char *cmd, const char *parent, int catch_term, int deathsig)
{
    pid_t ppid = parent ? (pid_t)atoi(parent) : 0;
    /* a file-size limit is a write error (HDF5 says so, the brain reports it and keeps
     * what it wrote), not a signal that kills the process mid-record */
    signal(SIGXFSZ, SIG_IGN);
    /* a connection whose peer is gone (Gloo's, when another rank died) is a write error
     * the caller reports, not a signal that kills the process first */
    signal(SIGPIPE, SIG_IGN);
    if (bd_child_init(ppid, catch_term, deathsig) != BD_OK) {
        fprintf(stderr, "bodhi %s: %s\n", cmd, bd_lasterr());
        return 1;
    }
    return 0;
}

/* A small non-negative integer option, or -1 (with a message). */
static int bd_small_int(const char *cmd, const char *what, const char *s)
{
    long long v;
    if (bd_parse_ll(s, 0, 1000000, &v) != BD_OK) {
        fprintf(stderr, "bodhi %s: --%s must be an integer in [0, 1000000] (got '%s')\n", cmd, what,
                s ? s : "");
        return -1;
    }
    return (int)v;
}

int bd_cmd_brain(int argc, char **argv)
{
    const char *dir = NULL, *phase = NULL, *agent = NULL, *parent = NULL, *device = NULL, *tcp = NULL;
    const char *digest = NULL;
    bd_opt spec[] = {{"run-dir=", &dir}, {"phase=", &phase}, {"agent=", &agent}, {"parent=", &parent},
                     {"device=", &device}, {"tcp=", &tcp}, {"run-digest=", &digest}, {0}};
    int rc = bd_parse_opts("brain", argc, argv, spec, NULL, 0, 0);
    if (rc)
        return BD_OPTS_EXIT(rc);
    if (!dir || !phase || !agent) {
        fprintf(stderr, "bodhi brain: --run-dir, --phase and --agent are required (the conductor starts brains)\n");
        return 2;
    }
    /* a brain saves what it learnt when its conductor goes */
    if (bd_child_start("brain", parent, 1, SIGTERM))
        return 1;
    return bd_brain_main(dir, phase, agent, bd_registry_builtin(), device, tcp, digest);
}

int bd_cmd_muscle(int argc, char **argv)
{
    const char *dir = NULL, *phase = NULL, *id = NULL, *parent = NULL, *device = NULL, *restart = "0";
    const char *connect = NULL, *wait = "600", *digest = NULL, *credential = NULL, *plugins = NULL;
    bd_opt spec[] = {{"run-dir=", &dir}, {"phase=", &phase}, {"id=", &id}, {"restart=", &restart},
                     {"parent=", &parent}, {"device=", &device}, {"connect=", &connect}, {"wait=", &wait},
                     {"run-digest=", &digest}, {"credential=", &credential}, {"allow-plugins", &plugins}, {0}};
    int rc = bd_parse_opts("muscle", argc, argv, spec, NULL, 0, 0);
    if (rc)
        return BD_OPTS_EXIT(rc);
    if (connect) { /* a muscle on another machine */
        int w = bd_small_int("muscle", "wait", wait);
        if (w < 0)
            return 2;
        if (dir || phase || id) {
            fprintf(stderr, "bodhi muscle: --connect takes no --run-dir, --phase or --id (the conductor "
                            "gives them)\n");
            return 2;
        }
        /* the environment the conductor gives its own muscles (conductor/children.c) */
        char **again = calloc((size_t)argc + 2, sizeof *again);
        if (again) {
            again[0] = "bodhi";
            memcpy(again + 1, argv, (size_t)argc * sizeof *argv);
            bd_thread_env_reexec(again);
            free(again); /* not started again: go on as it is */
        }
        bd_remote_opts ro = {.url = connect, .credential = credential, .device = device, .wait_s = (double)w,
                             .allow_plugins = plugins != NULL};
        return bd_muscle_remote(&ro, bd_registry_builtin());
    }
    if (credential || plugins) {
        fprintf(stderr, "bodhi muscle: --credential and --allow-plugins go with --connect\n");
        return 2;
    }
    if (!dir || !phase || !id) {
        fprintf(stderr, "bodhi muscle: give --connect HOST:PORT --credential FILE (a muscle on another machine), or "
                        "--run-dir, --phase and --id (the conductor starts local muscles so)\n");
        return 2;
    }
    int k = bd_small_int("muscle", "id", id), r = bd_small_int("muscle", "restart", restart);
    if (k < 0 || r < 0)
        return 2;
    /* a muscle holds nothing that outlives its conductor */
    if (bd_child_start("muscle", parent, 0, SIGKILL))
        return 1;
    bd_muscle_opts o = {.run_dir = dir, .phase = phase, .id = k, .restart = r, .device = device,
                        .reg = bd_registry_builtin(), .run_digest = digest};
    return bd_muscle_main(&o);
}
