/* main.c: `bodhi <command>`: dispatch to the subcommands in cli/. */
#include <stdio.h>
#include <string.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"

static void bd_usage(FILE *f)
{
    fprintf(f,
            "bodhi %s: Brain/Muscle reinforcement-learning experiments\n"
            "usage:\n"
            "  bodhi run FILE [--out RUN_DIR] [--device cpu|cuda|auto] [--seed N] [--quiet]\n"
            "  bodhi check FILE [--device D]\n"
            "  bodhi replay RUN_DIR|FILE.h5 [--csv F] [--verify]\n"
            "  bodhi envs\n"
            "  bodhi status RUN_DIR\n"
            "  bodhi bench [ENV] [--device cpu|cuda|auto] [--agents N] [--steps T] [--threads K] [--json]\n"
            "internal (started by the conductor):\n"
            "  bodhi brain --run-dir D --phase P --agent A [--parent PID] [--device D]\n"
            "  bodhi muscle --run-dir D --phase P --id K [--parent PID] [--device D]\n"
            "exit codes: 0 done, 1 the run failed, 2 bad input or usage, 130 interrupted, 143 terminated\n",
            bd_version());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        bd_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", bd_cmd_run},       {"check", bd_cmd_check},   {"replay", bd_cmd_replay},
        {"envs", bd_cmd_envs},     {"status", bd_cmd_status}, {"brain", bd_cmd_brain},
        {"muscle", bd_cmd_muscle}, {"bench", bd_cmd_bench},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            return cmds[i].fn(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        bd_usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("bodhi %s\n", bd_version());
        return 0;
    }
    fprintf(stderr, "bodhi: unknown command '%s'\n", cmd);
    bd_usage(stderr);
    return 2;
}
