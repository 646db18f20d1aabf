/* child.c: `bodhi brain` and `bodhi muscle`: the processes the conductor starts. They can
 * also be started by hand (without --parent) for debugging. */
#include <stdio.h>
#include <stdlib.h>

#include "bodhi/bodhi.h"
#include "brain/brain.h"
#include "cli/cli.h"
#include "common/proc.h"
#include "conductor/builtins.h"
#include "muscle/muscle.h"

static int bd_child_start(const char *cmd, const char *parent, int catch_term)
{
    pid_t ppid = parent ? (pid_t)atoi(parent) : 0;
    if (bd_child_init(ppid, catch_term) != BD_OK) {
        fprintf(stderr, "bodhi %s: %s\n", cmd, bd_lasterr());
        return 1;
    }
    return 0;
}

int bd_cmd_brain(int argc, char **argv)
{
    const char *dir = NULL, *phase = NULL, *agent = NULL, *parent = NULL, *device = NULL;
    bd_opt spec[] = {{"run-dir=", &dir}, {"phase=", &phase}, {"agent=", &agent},
                     {"parent=", &parent}, {"device=", &device}, {0}};
    int rc = bd_parse_opts("brain", argc, argv, spec, NULL, 0, 0);
    if (rc)
        return rc;
    if (!dir || !phase || !agent) {
        fprintf(stderr, "bodhi brain: --run-dir, --phase and --agent are required\n");
        return 2;
    }
    if (bd_child_start("brain", parent, 1))
        return 1;
    return bd_brain_main(dir, phase, agent, bd_registry_builtin(), device);
}

int bd_cmd_muscle(int argc, char **argv)
{
    const char *dir = NULL, *phase = NULL, *id = NULL, *parent = NULL, *device = NULL;
    bd_opt spec[] = {{"run-dir=", &dir}, {"phase=", &phase}, {"id=", &id},
                     {"parent=", &parent}, {"device=", &device}, {0}};
    int rc = bd_parse_opts("muscle", argc, argv, spec, NULL, 0, 0);
    if (rc)
        return rc;
    if (!dir || !phase || !id) {
        fprintf(stderr, "bodhi muscle: --run-dir, --phase and --id are required\n");
        return 2;
    }
    if (bd_child_start("muscle", parent, 0))
        return 1;
    return bd_muscle_main(dir, phase, atoi(id), bd_registry_builtin(), device);
}
