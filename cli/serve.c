/* serve.c: `bodhi serve [DIR...] [--listen HOST:PORT]`: the options, then replay/'s web
 * page over the runs under the folders (replay/serve.c). */
#include <stdio.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"
#include "replay/replay.h"

#define SERVE_DIRS_MAX 16

int bd_cmd_serve(int argc, char **argv)
{
    const char *dirs[SERVE_DIRS_MAX] = {0}, *listen = NULL;
    bd_opt spec[] = {{"listen=", &listen}, {0}};
    int rc = bd_parse_opts("serve", argc, argv, spec, dirs, SERVE_DIRS_MAX, 0);
    if (rc)
        return BD_OPTS_EXIT(rc);
    int n = 0;
    while (n < SERVE_DIRS_MAX && dirs[n])
        n++;
    if (n == 0)
        dirs[n++] = "runs";
    if (bd_serve_runs(dirs, n, listen ? listen : "127.0.0.1:8642", stdout) != BD_OK) {
        fprintf(stderr, "bodhi serve: %s\n", bd_lasterr());
        return 2;
    }
    return 0;
}
