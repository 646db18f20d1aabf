/* status.c: `bodhi status RUN_DIR [--json]`: a running conductor's answer (its processes
 * with pid, restarts and last heartbeat, and the agents' progress), or summary.json. */
#include <stddef.h>

#include "cli/cli.h"
#include "conductor/conductor.h"

int bd_cmd_status(int argc, char **argv)
{
    const char *dir = NULL, *json = NULL;
    bd_opt spec[] = {{"json", &json}, {0}};
    int rc = bd_parse_opts("status", argc, argv, spec, &dir, 1, 1);
    return rc ? BD_OPTS_EXIT(rc) : bd_conductor_status(dir, json != NULL);
}
