/* cli.h: the subcommands of `bodhi` (one file each in cli/) and the shared option parser.
 * Each returns the process exit code (docs/architecture.md, "Exit codes"): 0 done,
 * 1 failed, 2 bad input or usage, 130/143 interrupted. */
#ifndef BODHI_CLI_CLI_H
#define BODHI_CLI_CLI_H

#include <stdint.h>
#include <stdio.h>

int bd_cmd_run(int argc, char **argv);
int bd_cmd_check(int argc, char **argv);
int bd_cmd_replay(int argc, char **argv);
int bd_cmd_envs(int argc, char **argv);
int bd_cmd_status(int argc, char **argv);
int bd_cmd_set(int argc, char **argv);
int bd_cmd_stop(int argc, char **argv);
int bd_cmd_serve(int argc, char **argv);
int bd_cmd_sweep(int argc, char **argv);
int bd_cmd_bench(int argc, char **argv);
int bd_cmd_brain(int argc, char **argv);
int bd_cmd_muscle(int argc, char **argv);

/* Options: argv[1..] holds "--name value" pairs, "--flag"s and positionals.
 * spec lists the accepted names; a name ending in '=' takes a value. Unknown options,
 * missing values and extra positionals print an error and give 2. */
typedef struct {
    const char *name;  /* without "--"; "out=" takes a value */
    const char **value;/* where the value (or "1" for a flag) goes */
} bd_opt;

int bd_parse_opts(const char *cmd, int argc, char **argv, const bd_opt *spec,
                  const char **positional, int npos, int min_pos);
/* What bd_parse_opts returns after printing CMD's help for --help or -h: the command
 * exits 0. */
#define BD_OPTS_HELP (-1)
#define BD_OPTS_EXIT(rc) ((rc) == BD_OPTS_HELP ? 0 : (rc))

/* `bodhi --help` (every command's usage line) and `bodhi CMD --help` (cli/usage.c). */
void bd_usage(FILE *f);
void bd_cmd_usage(const char *cmd, FILE *f, int detail);

/* The function of command name, from the one command table (cli/usage.c, with its help);
 * NULL when there is none. A new subcommand is one entry there. */
int (*bd_command(const char *name))(int argc, char **argv);

#endif
