/* run.c: `bodhi run FILE [--out RUN_DIR] [--device D] [--seed N] [--quiet]` and
 * `bodhi check FILE [--device D]`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "conductor/conductor.h"

static int bd_device_ok(const char *cmd, const char *d)
{
    if (!d || strcmp(d, "cpu") == 0 || strcmp(d, "cuda") == 0 || strcmp(d, "auto") == 0)
        return 1;
    fprintf(stderr, "bodhi %s: --device must be cpu, cuda or auto (got '%s')\n", cmd, d);
    return 0;
}

int bd_cmd_run(int argc, char **argv)
{
    const char *file = NULL, *out = NULL, *device = NULL, *seed = NULL, *quiet = NULL, *listen = NULL;
    bd_opt spec[] = {{"out=", &out}, {"device=", &device}, {"seed=", &seed}, {"quiet", &quiet},
                     {"listen=", &listen}, {0}};
    int rc = bd_parse_opts("run", argc, argv, spec, &file, 1, 1);
    if (rc)
        return rc;
    if (!bd_device_ok("run", device))
        return 2;
    if (listen) { /* tcp://HOST:PORT, an address the user names: nothing listens beyond loopback unasked */
        const char *colon = strrchr(listen, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (strncmp(listen, "tcp://", 6) != 0 || !colon || colon <= listen + 6 || !end || *end || port < 1
            || port > 65535) {
            fprintf(stderr, "bodhi run: --listen must be tcp://HOST:PORT with a port in 1..65535 (got '%s')\n",
                    listen);
            return 2;
        }
    }
    bd_run_opts o = {.path = file, .out = out, .device = device, .listen = listen, .quiet = quiet != NULL};
    if (seed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(seed, &end, 10);
        if (errno || *end || seed[0] == '-' || !seed[0]) {
            fprintf(stderr, "bodhi run: --seed must be a non-negative integer (got '%s')\n", seed);
            return 2;
        }
        o.has_seed = 1;
        o.seed = v;
    }
    return bd_conductor_run(&o);
}

int bd_cmd_check(int argc, char **argv)
{
    const char *file = NULL, *device = NULL;
    bd_opt spec[] = {{"device=", &device}, {0}};
    int rc = bd_parse_opts("check", argc, argv, spec, &file, 1, 1);
    if (rc)
        return rc;
    if (!bd_device_ok("check", device))
        return 2;
    return bd_conductor_check(file, device);
}
