/* replay.h: reading a finished (or stopped) run: `bodhi replay`'s work, which cli/replay.c
 * calls (docs/trace-format.md, "`bodhi replay`").
 *   replay.c  the table of episode statistics per phase and agent, the CSV of every
 *             episode, --verify's returns check, and what the run's outputs may not touch
 *   resim.c   --verify's re-simulation of the recorded steps from the seed and setpoints
 *   plot.c    --plot: learning curves (cairo)
 *   sweep.c   a sweep's folder: its points compared across their seeds
 *   minari.c  --minari: each trace as a Minari dataset
 *   serve.c   `bodhi serve`: a web page of the runs under some folders, live curves
 *   page.c    its two pages (HTML and the script that draws the charts)
 *   metrics.c --metrics/--tensorboard: the learner's metrics of log.jsonl as CSV and
 *             TensorBoard event files
 * Reads traces through memory/'s public readers only, so it works on a run's master file
 * (external links) and on one agent's file alike. It stands beside conductor/ (neither
 * includes the other): the kinds a run file names come down as a registry
 * (config/registry.h) from the caller. Each call returns a bd_error code with its message
 * (bd_lasterr); what it finds goes to the caller's stream. */
#ifndef BODHI_REPLAY_REPLAY_H
#define BODHI_REPLAY_REPLAY_H

#include <stdint.h>
#include <stdio.h>

#include "config/registry.h"

/* What `bodhi replay` is asked for beside the table. */
typedef struct {
    const char *csv;      /* --csv FILE: one row per episode:
                             phase,agent,world,start_step,length,return,terminated,truncated */
    int verify;           /* --verify: each finished episode's return against the sum of its
                             rewards rows, and (for a run directory) the steps re-simulated
                             from the seed and the recorded setpoints (replay/resim.c) */
    const char *plot;     /* --plot FILE.svg|.png: learning curves (replay/plot.c) */
    const char *minari;   /* --minari DIR: each trace as a Minari dataset (replay/minari.c) */
    int64_t *mismatches;  /* may be NULL: set to the episodes and worlds verify found wrong, so
                             that a caller tells a failed check from a run it could not read;
                             also 1 or more when --verify or --minari could do nothing (all
                             skipped): that too is a failed check */
    const bd_registry *registry; /* the kinds run.yml may name, for the re-simulation of a run
                                    directory's steps (conductor/builtins.h); NULL: --verify of
                                    a run directory with a run.yml is refused (BD_EINVAL) */
} bd_replay_opts;

/* Prints, per phase and agent, episodes, mean/median/max/min return and mean/median
 * length (and steps recorded) to out, then does what o asks (o may be NULL). path is a
 * run directory (its run.h5) or an HDF5 file. Mismatches found by verify: BD_EINVAL. */
int bd_replay(const char *path, FILE *out, const bd_replay_opts *o);

/* The steps of every phase of the run in run_dir re-simulated, its run.yml planned against
 * reg; *bad counts the worlds whose recorded sensors differ, *checked the envs
 * re-simulated, *unmade the phases whose envs could not be made here (an env plugin that
 * is not where run.yml says). */
int bd_replay_resim(const char *run_dir, const char *master, const bd_registry *reg, FILE *out, int64_t *bad,
                    int *checked, int *unmade);

/* A sweep's folder (replay/sweep.c): 1 when dir holds no run itself but a sweep.json
 * (bodhi sweep) or runs in its subfolders. */
int bd_replay_is_sweep(const char *dir);

/* bd_replay of a sweep's folder: per point (the runs of one run file but for the seed) and
 * trace, its seeds, episodes, and the mean, standard deviation, min and max over its seeds
 * of each run's final return (the mean of its last 100 episodes); o->csv: one row per run
 * and trace, and one "all" row per point and trace:
 * point,phase,agent,seed,run,episodes,final_return,mean_return,seeds,final_std,final_min,final_max;
 * o->plot: bd_replay_plot_sweep. --verify and --minari are refused (BD_EINVAL). */
int bd_replay_sweep(const char *dir, FILE *out, const bd_replay_opts *o);

/* Each point's learning curve over its seeds: the mean of its runs' moving averages, with a
 * band of one standard deviation, per agent; files[p] holds point p's nfiles[p] run.h5. */
int bd_replay_plot_sweep(const char *title, const char *const *points, const char *const *const *files,
                         const int *nfiles, int npoints, const char *out_path);

/* Learning curves of the traces in file, drawn into out_path (.svg or .png). */
int bd_replay_plot(const char *file, const char *title, const char *out_path);

/* Each trace of master as a Minari dataset under root (root/<run>/<phase>-<agent>-v0);
 * *exported counts the datasets written (a sampled trace is skipped, said on out). */
int bd_replay_minari(const char *master, const char *run_name, const char *root, FILE *out, int *exported);

/* BD_OK when out_path (the output of option opt) is no file of the run at target (a run
 * folder, or a trace file and the folder beside it): an existing file there is refused. */
int bd_replay_output_ok(const char *target, const char *opt, const char *out_path);

/* --metrics FILE.csv (rows phase,agent,update,steps,wall_time,metric,value) and/or
 * --tensorboard DIR (DIR/<phase>/<agent>/events.out.tfevents.*; either may be NULL) from
 * run_dir/log.jsonl's update events; what was written is said on out. */
int bd_replay_metrics(const char *run_dir, const char *csv_path, const char *tb_dir, FILE *out);

/* `bodhi serve`: answers HTTP on listen (HOST:PORT, a loopback address; port 0: any) over
 * the runs under dirs until SIGINT or SIGTERM; says its address on out. */
int bd_serve_runs(const char *const *dirs, int ndirs, const char *listen, FILE *out);

/* The HTML of the run list (0) or of the curves of one run or several (1). */
const char *bd_serve_page(int run_page);

#endif
