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

/* `bodhi replay`'s work, with what the options ask. */
typedef struct {
    const char *csv;      /* --csv FILE: one row per episode:
                             phase,agent,world,start_step,length,return,terminated,truncated */
    int verify;           /* --verify: each finished episode's return against the sum of its
                             rewards rows, and (for a run directory) the steps re-simulated
                             from the seed and the recorded setpoints (cli/resim.c) */
    const char *plot;     /* --plot FILE.svg|.png: learning curves (cli/plot.c) */
    const char *minari;   /* --minari DIR: each trace as a Minari dataset (cli/minari.c) */
    int64_t *mismatches;  /* may be NULL: set to the episodes and worlds verify found wrong, so
                             that a caller tells a failed check from a run it could not read;
                             also 1 or more when --verify or --minari could do nothing (all
                             skipped): that too is a failed check */
} bd_replay_opts;

/* Prints, per phase and agent, episodes, mean/median/max/min return and mean/median
 * length (and steps recorded) to out, then does what o asks (o may be NULL). path is a
 * run directory (its run.h5) or an HDF5 file. Mismatches found by verify: BD_EINVAL. */
int bd_replay(const char *path, FILE *out, const bd_replay_opts *o);

/* The steps of every phase of the run in run_dir re-simulated (cli/resim.c); *bad counts
 * the worlds whose recorded sensors differ, *checked the envs re-simulated, *unmade the
 * phases whose envs could not be made here (an env plugin that is not where run.yml says). */
int bd_replay_resim(const char *run_dir, const char *master, FILE *out, int64_t *bad, int *checked, int *unmade);

/* Learning curves of the traces in file, drawn into out_path (.svg or .png). */
int bd_replay_plot(const char *file, const char *title, const char *out_path);

/* Each trace of master as a Minari dataset under root (root/<run>/<phase>-<agent>-v0);
 * *exported counts the datasets written (a sampled trace is skipped, said on out). */
int bd_replay_minari(const char *master, const char *run_name, const char *root, FILE *out, int *exported);

#endif
