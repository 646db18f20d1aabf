/* replay.c: `bodhi replay RUN_DIR|SWEEP_DIR|FILE.h5 [--csv F] [--verify] [--plot F] [--minari DIR]
 * [--metrics F.csv] [--tensorboard DIR]`:
 * the options, then replay/'s report (replay/replay.h) with the built-in kinds for
 * --verify's re-simulation. */
#include <stdio.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"
#include "conductor/builtins.h"
#include "replay/replay.h"

int bd_cmd_replay(int argc, char **argv)
{
    const char *target = NULL, *csv = NULL, *verify = NULL, *plot = NULL, *minari = NULL, *metrics = NULL,
               *tb = NULL;
    bd_opt spec[] = {{"csv=", &csv},         {"verify", &verify},    {"plot=", &plot}, {"minari=", &minari},
                     {"metrics=", &metrics}, {"tensorboard=", &tb}, {0}};
    int rc = bd_parse_opts("replay", argc, argv, spec, &target, 1, 1);
    if (rc)
        return BD_OPTS_EXIT(rc);
    if (metrics || tb) { /* from log.jsonl: before the traces, which a live run may still write */
        if ((metrics && !metrics[0]) || (tb && !tb[0])) {
            fprintf(stderr, "bodhi replay: --metrics/--tensorboard: an empty path\n");
            return 2;
        }
        if ((rc = bd_replay_metrics(target, metrics, tb, stdout)) != BD_OK) {
            fprintf(stderr, "bodhi replay: %s\n", bd_lasterr());
            return 2;
        }
    }
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
