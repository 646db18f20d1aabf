/* status.c: `bodhi status RUN_DIR`: a running conductor's answer, or summary.json. */
#include <stddef.h>

#include "cli/cli.h"
#include "conductor/conductor.h"

int bd_cmd_status(int argc, char **argv)
{
    const char *dir = NULL;
    int rc = bd_parse_opts("status", argc, argv, NULL, &dir, 1, 1);
    return rc ? rc : bd_conductor_status(dir);
}
