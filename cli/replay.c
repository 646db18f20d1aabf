/* replay.c: `bodhi replay RUN_DIR|FILE.h5 [--csv F] [--verify] [--plot F] [--minari DIR]`:
 * the options, then replay/'s report (replay/replay.h) with the built-in kinds for
 * --verify's re-simulation. */
#include <stdio.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"
#include "conductor/builtins.h"
#include "replay/replay.h"

int bd_cmd_replay(int argc, char **argv)
{
    const char *target = NULL, *csv = NULL, *verify = NULL, *plot = NULL, *minari = NULL;
    bd_opt spec[] = {{"csv=", &csv}, {"verify", &verify}, {"plot=", &plot}, {"minari=", &minari}, {0}};
    int rc = bd_parse_opts("replay", argc, argv, spec, &target, 1, 1);
    if (rc)
        return BD_OPTS_EXIT(rc);
    int64_t mismatches = 0;
    bd_replay_opts o = {.csv = csv, .verify = verify != NULL, .plot = plot, .minari = minari,
                        .mismatches = &mismatches, .registry = bd_registry_builtin()};
    rc = bd_replay(target, stdout, &o);
    if (rc != BD_OK)
        fprintf(stderr, "bodhi replay: %s\n", bd_lasterr());
    if (rc == BD_OK)
        return 0;
    /* 1: the check failed, or --verify/--minari could do nothing; 2: the run could not be read */
    return mismatches > 0 ? 1 : 2;
}
