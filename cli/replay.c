/* replay.c: `bodhi replay RUN_DIR|FILE.h5 [--csv F] [--verify]`: per phase and agent,
 * episodes and return/length statistics from the recorded memory. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "common/util.h"
#include "memory/memory.h"

int bd_cmd_replay(int argc, char **argv)
{
    const char *target = NULL, *csv = NULL, *verify = NULL;
    bd_opt spec[] = {{"csv=", &csv}, {"verify", &verify}, {0}};
    int rc = bd_parse_opts("replay", argc, argv, spec, &target, 1, 1);
    if (rc)
        return rc;
    struct stat st;
    char *path = NULL;
    if (stat(target, &st) == 0 && S_ISDIR(st.st_mode))
        path = bd_strfmt("%s/run.h5", target);
    else
        path = bd_strfmt("%s", target);
    rc = bd_replay(path, stdout, csv, verify != NULL);
    if (rc != BD_OK)
        fprintf(stderr, "bodhi replay: %s\n", bd_lasterr());
    free(path);
    if (rc == BD_OK)
        return 0;
    return rc == BD_EINVAL && verify ? 1 : 2;
}
