/* launch.h: which rank of how many this process is, from the variables the launchers people
 * already run set (torchrun, Slurm's srun, Open MPI's mpirun) or from bodhi's own options
 * (--rank R --world-size K --rendezvous HOST:PORT). Pure parsing: the environment comes in
 * as a lookup function, so the rules are tested without touching the process's own.
 *
 * Precedence (a launcher may run inside another's allocation: mpirun in an sbatch job sets
 * both Open MPI's and Slurm's variables, torchrun's children inherit SLURM_PROCID of the
 * torchrun process): options, then torchrun's RANK/WORLD_SIZE, then OMPI_COMM_WORLD_*, then
 * SLURM_PROCID/SLURM_NTASKS. Within the source chosen every variable must be present, an
 * integer, and consistent (0 <= rank < world, 0 <= local rank <= rank); anything else is an
 * error naming the variable and its value. None of them: one rank of one. */
#ifndef BODHI_COMMON_LAUNCH_H
#define BODHI_COMMON_LAUNCH_H

#include <stddef.h>

typedef enum { BD_LAUNCH_SINGLE, BD_LAUNCH_OPTIONS, BD_LAUNCH_TORCHRUN, BD_LAUNCH_OMPI, BD_LAUNCH_SLURM } bd_launcher;

#define BD_LAUNCH_DEFAULT_PORT 29500 /* torchrun's MASTER_PORT default */

typedef struct {
    bd_launcher by;
    int rank, world;
    int local_rank; /* this rank's place among those on this machine (the launcher's
                       LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID; the rank
                       itself when every rank is on this machine; else 0) */
    int local_size; /* ranks on this machine (LOCAL_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_SIZE,
                       SLURM_NTASKS_PER_NODE; every rank with a loopback or no rendezvous);
                       1 when the launcher does not say */
    char host[256]; /* rendezvous host ("" when the launcher names none: Open MPI) */
    int port;       /* rendezvous port, 0 when none */
} bd_launch;

/* The options of `bodhi run`, NULL each when not given. */
typedef struct {
    const char *rank, *world_size, *rendezvous;
} bd_launch_opts;

typedef const char *(*bd_getenv_fn)(void *ctx, const char *name);

/* Fills *out; BD_OK, or BD_EINVAL with bd_lasterr() naming the variable or option, its
 * value and the rule it breaks. */
int bd_launch_detect(const bd_launch_opts *opts, bd_getenv_fn get, void *ctx, bd_launch *out);

/* The same over the process's environment (getenv). */
int bd_launch_from_env(const bd_launch_opts *opts, bd_launch *out);

/* The first host of a Slurm node list ("node[03-05,9],gpu1" -> "node03", "a,b" -> "a",
 * "x-[001-2]" -> "x-001"): BD_OK, or BD_EINVAL for an empty or malformed list or a name
 * that does not fit len. */
int bd_slurm_first_host(const char *nodelist, char *out, size_t len);

/* The number of ranks of this run, as the conductor tells its children (BODHI_WORLD_SIZE,
 * cli/run.c): 1 alone, unset or not a number from 1 to 65536. */
long long bd_rank_world(void);

/* The suffix of this rank's trace names, ".r<k>" in a run of many ranks (the conductor
 * sets BODHI_RANK and BODHI_WORLD_SIZE for its children), "" alone: memory/<phase>.<agent>
 * <suffix>.h5. Returns buf. */
const char *bd_rank_suffix(char *buf, size_t len);

/* "torchrun variables", "Open MPI (mpirun)", "Slurm (srun)", "--rank/--world-size", "single". */
/* A launcher's rank and size variables ({"RANK", "WORLD_SIZE"} for torchrun's), NULL for
 * one that has none (options, a single run). */
const char *const *bd_launcher_vars(bd_launcher by);
const char *bd_launcher_name(bd_launcher by);

#endif
