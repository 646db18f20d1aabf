/* run.c: `bodhi run FILE [--out RUN_DIR] [--device D] [--seed N] [--listen HOST:PORT
 * [--credential FILE]] [--quiet]`
 * and `bodhi check FILE` with the same options (it checks what that run would do). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conductor/conductor.h"
#include "config/yamltree.h"

/* The options run and check share into o: 0, -1 after --help, or a usage error's exit code. */
static int bd_run_options(const char *cmd, int argc, char **argv, bd_run_opts *o)
{
    const char *file = NULL, *out = NULL, *device = NULL, *seed = NULL, *quiet = NULL, *listen = NULL;
    const char *credential = NULL;
    bd_opt spec[] = {{"out=", &out}, {"device=", &device}, {"seed=", &seed}, {"quiet", &quiet},
                     {"listen=", &listen}, {"credential=", &credential}, {0}};
    int rc = bd_parse_opts(cmd, argc, argv, spec, &file, 1, 1);
    if (rc)
        return BD_OPTS_EXIT(rc) ? BD_OPTS_EXIT(rc) : -1;
    static char tls[300];
    if (listen) { /* HOST:PORT, an address the user names: nothing listens beyond loopback unasked;
                   * tcp:// or tls+tcp:// may come first, and the door is TLS either way */
        const char *h = strncmp(listen, "tls+tcp://", 10) == 0 ? listen + 10
                        : strncmp(listen, "tcp://", 6) == 0    ? listen + 6
                                                               : listen;
        const char *colon = strrchr(h, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == h || !end || *end || port < 1 || port > 65535 || strstr(h, "://")
            || strlen(h) > 250) {
            fprintf(stderr, "bodhi %s: --listen must be HOST:PORT (tcp:// or tls+tcp:// may come first) with a port "
                            "in 1..65535 (got '%s')\n", cmd, listen);
            return 2;
        }
        snprintf(tls, sizeof tls, "tls+tcp://%s", h);
        listen = tls;
    }
    if (credential && !listen) {
        fprintf(stderr, "bodhi %s: --credential goes with --listen (it is the remote muscles' credential)\n", cmd);
        return 2;
    }
    *o = (bd_run_opts){.path = file, .out = out, .device = device, .listen = listen, .credential = credential,
                        .quiet = quiet != NULL};
    if (seed) {
        uint64_t v;
        if (!bd_text_u64(seed, &v)) { /* the run file's rule for seeds (config/yamltree.h) */
            fprintf(stderr, "bodhi %s: --seed must be an integer from 0 to 18446744073709551615 (got '%s')\n", cmd,
                    seed);
            return 2;
        }
        o->has_seed = 1;
        o->seed = v;
    }
    return 0;
}

int bd_cmd_run(int argc, char **argv)
{
    bd_run_opts o;
    int rc = bd_run_options("run", argc, argv, &o);
    return rc ? (rc < 0 ? 0 : rc) : bd_conductor_run(&o);
}

int bd_cmd_check(int argc, char **argv)
{
    bd_run_opts o;
    int rc = bd_run_options("check", argc, argv, &o);
    return rc ? (rc < 0 ? 0 : rc) : bd_conductor_check(&o);
}
