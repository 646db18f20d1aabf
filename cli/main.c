/* main.c: `bodhi <command>`: dispatch to the subcommands in cli/. */
#include <stdio.h>
#include <string.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"
#include "common/proc.h"
#include "common/util.h"

int main(int argc, char **argv)
{
    bd_main_t = bd_now(); /* start-up timing (common/proc.h) */
    bd_alloc_policy();    /* before anything large is allocated */
    bd_nofile_raise();    /* a TCP door's strangers cannot take every descriptor */
    if (argc < 2) {
        bd_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int (*fn)(int, char **) = bd_command(cmd); /* the one command table: cli/usage.c */
    if (fn)
        return fn(argc - 1, argv + 1);
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
