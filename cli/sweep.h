/* sweep.h: what cli/sweep.c (the options, the run files made and checked) and
 * cli/sweep_dir.c (the sweep's folder, its Slurm script, the runs here) share: one
 * `bodhi sweep`. Nothing outside cli/sweep*.c includes it. */
#ifndef BODHI_CLI_SWEEP_H
#define BODHI_CLI_SWEEP_H

#include <limits.h>
#include <stdint.h>

#define SWEEP_MAX_RUNS 100000 /* runs, points, seeds */
#define SWEEP_MAX_SETS 16

typedef struct {
    const char *arg;   /* PATH=V1,V2 as given */
    char *path;
    char **values;
    int nvalues;
} sweep_set;

typedef struct {
    char *point;       /* the point's folder name */
    int pi;            /* its index */
    uint64_t seed;
    char *rel;         /* <point>/seed-<k> */
    char *text;        /* its run file */
    int exit;          /* -1: not run */
} sweep_run;

typedef struct {
    const char *file, *out;
    int slurm, quiet;
    uint64_t *seeds;
    int nseeds;
    sweep_set sets[SWEEP_MAX_SETS];
    int nsets;
    int npoints;
    char **points;     /* names */
    sweep_run *runs;
    int nruns;
    char dir[PATH_MAX];/* SWEEP_DIR, absolute once made */
    char id[40];       /* this sweep's, random: sweep.json's "id", which its Slurm tasks look for */
} sweep;

/* Point pi's value index of set k (the first --set varies slowest). */
int bd_sweep_value_of(const sweep *w, int pi, int k);

/* SWEEP_DIR made whole beside its place (an earlier sweep moved aside) and renamed into it,
 * with sweep.json and, for --slurm, sweep.sbatch; w->dir becomes absolute. 0, or 1/2 after
 * saying why. */
int bd_sweep_write(sweep *w);

/* s as one word for sh: itself when it holds nothing a shell would interpret, else
 * single-quoted. Caller frees (NULL: out of memory). */
char *bd_sweep_sh_word(const char *s);

/* sweep.json, written whole and renamed over the last one: 0, or 1 after saying why. */
int bd_sweep_write_json(const sweep *w);

/* The runs one after another here, each `bodhi run` in a process group of its own, their
 * exit codes into sweep.json; a signal stops the running one and the sweep. The exit code. */
int bd_sweep_run_here(sweep *w);

#endif
