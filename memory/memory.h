/* memory.h: an agent's memory: the HDF5 trace of what its muscles saw and did.
 *
 * Layout (docs/trace-format.md), in the file a writer creates:
 *   /<phase>/<agent>/sensors     (T, N, S) float32
 *                   /actuators   (T, N, U) float32   (a discrete action as its index)
 *                   /rewards     (T, N)    float32
 *                   /terminated  (T, N)    uint8
 *                   /truncated   (T, N)    uint8
 *                   /weights_version (T, N) uint64: the version (updates so far) of the
 *                                 weights that chose the action (0 without a network)
 *                   /episodes    (E,) compound {world i32, start_step i64, length i32,
 *                                               return f32, terminated u8, truncated u8}
 *                   /final_sensors (E, S) float32: what the world saw as episode e ended
 *                                 (the sensors row of the next step holds the reset)
 *   attributes on /<phase>/<agent>: sensor_ids, actuator_ids (string arrays, column
 *   order), env (name), env_params (JSON text), seed (u64), worlds (all of the phase's),
 *   record_every (K: row r is env step r K) and record_worlds (N: the first N worlds;
 *   0 rows when steps are not recorded), compression (text).
 * start_step counts env steps (rows only when every step is recorded).
 * Datasets are chunked along T with chunks below the 1 MiB chunk cache and grow as rows
 * are appended. Appends copy the caller's rows into a queue and return; a background
 * thread writes them in hyperslabs and flushes the file after each batch, so a crash
 * loses at most the batches still queued. The file is in HDF5 1.10 format and written in
 * SWMR mode: readable with h5py while being written (after each flush) and after a crash
 * with h5py.File(path, "r", swmr=True), and with a plain open once the writer has closed
 * it. The readers below handle all three cases themselves.
 *
 * The run's master file runs/<uid>/run.h5 holds the run file text and seed as root
 * attributes and one external link per phase and agent to the file that agent's brain
 * writes (each brain is its own process, and HDF5 files have one writer).
 */
#ifndef BODHI_MEMORY_MEMORY_H
#define BODHI_MEMORY_MEMORY_H

#include <stdint.h>
#include <stdio.h>

#include "bodhi/bodhi.h"

typedef struct {
    int32_t world;       /* global world (column) index */
    int64_t start_step;  /* row of the episode's first step */
    int32_t length;      /* steps */
    float ret;           /* sum of rewards */
    uint8_t terminated;  /* ended by the env's termination */
    uint8_t truncated;   /* ended by the time limit */
} bd_episode;

/* Filters for the step datasets. Blosc (LZ4 inside, byte shuffle) and LZ4 are HDF5
 * filter plugins (Debian: hdf5-filter-plugin, hdf5-filter-plugin-blosc-serial) that h5py
 * finds by itself; deflate is in every HDF5. */
typedef enum { BD_COMPRESS_NONE, BD_COMPRESS_BLOSC, BD_COMPRESS_LZ4, BD_COMPRESS_DEFLATE } bd_compression;

/* "none", "blosc", "lz4", "deflate" <-> bd_compression; -1 for another name. */
int bd_compression_parse(const char *name);
const char *bd_compression_name(bd_compression c);

/* BD_OK when HDF5 here can write with c (its plugin loads); else BD_ENOTFOUND saying
 * which package provides it. */
int bd_compression_available(bd_compression c);

/* What a trace is written with when the run file names no compression: LZ4 when HDF5
 * here loads its plugin (a laptop's disk survives a long run; the training cost is
 * measured in bench/results/record-*.json), else none. */
bd_compression bd_compression_default(void);

typedef struct {
    const char *path;               /* file to create (truncated if it exists) */
    const char *phase;              /* group names */
    const char *agent;
    int n;                          /* N: columns (worlds) recorded: the first N of worlds */
    int s;                          /* S: sensors per column */
    int u;                          /* U: actuators per column */
    const char *const *sensor_ids;  /* S names */
    const char *const *actuator_ids;/* U names */
    const char *env_name;
    const char *env_params_json;    /* may be NULL ("{}") */
    const char *env_uid;            /* the env's uid in the run file (NULL: env_name) */
    const char *group;              /* the agent group it drives (NULL: none, "") */
    int members;                    /* columns per world: members of that group (0: 1) */
    uint64_t seed;
    int worlds;                     /* all its columns in the phase, worlds x members (0: n):
                                       the columns of the rows appended, >= n */
    int every;                      /* a row is every K-th env step appended (0: 1) */
    uint32_t world0;                /* the global id of its first world (rank k of a run of
                                       many ranks: k x the env's worlds; 0 alone) */
    int no_steps;                   /* 1: no step rows are written (the episodes are) */
    bd_compression compression;     /* of the step datasets */
} bd_trace_spec;

typedef struct bd_trace_writer bd_trace_writer;

/* Creates the file (and its folder), group and datasets and starts the writer thread.
 * Needs N, S, U >= 1; phase and agent are single names (no '/'). */
int bd_trace_writer_create(const bd_trace_spec *spec, bd_trace_writer **out);

/* Queues what the trace keeps of T env steps, the next T after those appended before:
 * the rows of every K-th step (K = spec.every; steps 0, K, 2K, ... of all appended), the
 * first N of their W columns (W = spec.worlds), copied once (the caller keeps its
 * buffers). Shapes: sensors (T,W,S), actuators (T,W,U), rewards/terminated/truncated
 * (T,W). Appends come from one thread. Returns the first error the writer thread met, if
 * any (then nothing more is written). */
int bd_trace_writer_append(bd_trace_writer *w, int T, const float *sensors,
                           const float *actuators, const float *rewards,
                           const uint8_t *terminated, const uint8_t *truncated);
/* The same with the weights version of each (step, column), (T,W) (NULL: all 0);
 * bd_trace_writer_append is this with NULL. */
int bd_trace_writer_append_versions(bd_trace_writer *w, int T, const float *sensors, const float *actuators,
                                    const float *rewards, const uint8_t *terminated, const uint8_t *truncated,
                                    const uint64_t *versions);

/* Queues finished episodes for the episodes table, with their final observations
 * (count x S floats; NULL: NaN), copied. */
int bd_trace_writer_episodes(bd_trace_writer *w, const bd_episode *eps, int count,
                             const float *final_sensors);

/* Records the launch of a run of many ranks this trace belongs to (its learner group's id,
 * torch/dist.h bdt_group_id; at most 39 characters) in the agent's group_id attribute,
 * after the rows queued before it. */
int bd_trace_writer_group(bd_trace_writer *w, const char *id);

/* Rows written or queued so far (the steps kept). */
int64_t bd_trace_writer_rows(const bd_trace_writer *w);

/* Waits until every queued item is written and the file flushed; returns the first
 * write error (BD_OK if none). For checkpoints and tests; appends need not call it. */
int bd_trace_writer_sync(bd_trace_writer *w);

/* Drains the queue, closes the file, frees. Returns the first write error (BD_OK if
 * none). NULL-safe. */
int bd_trace_writer_destroy(bd_trace_writer *w);

/* Master file: creates run_h5 (truncating) with root attributes run_file (text),
 * seed and bodhi_version; bd_trace_master_link adds root attribute phases (the phase
 * names in the order they were first linked: run order). */
int bd_trace_master_create(const char *run_h5, const char *run_file_text, uint64_t seed);

/* Adds /<phase>/<agent> in run_h5 as an external link to <target_file>:/<phase>/<agent>.
 * target_file is relative to run_h5's folder. The same link again is a no-op; a different
 * target replaces the old link (which then lists last). The target need not exist yet. */
int bd_trace_master_link(const char *run_h5, const char *phase, const char *agent,
                         const char *target_file);

/* The same under another name: /<phase>/<name> links to <target_file>:/<phase>/<agent> (a
 * rank's trace, /<phase>/<agent>.r<k>, in a run of many ranks). */
int bd_trace_master_link_as(const char *run_h5, const char *phase, const char *name, const char *agent,
                            const char *target_file);

/* Repairing. A writer that dies (kill -9, a crash) leaves its file marked "open for
 * write": HDF5 and h5py then refuse a plain open until the mark is cleared (h5clear -s).
 * bd_trace_recover clears it when no writer holds the file (each writer holds a lock on
 * it for its life), and only then; *recovered says whether it did. Every step flushed
 * before the writer died is kept. A live writer's file, a file that was closed properly,
 * and a file that is not such a trace (not HDF5, truncated) are left alone (BD_OK,
 * *recovered 0); a missing file is BD_ENOTFOUND. */
int bd_trace_recover(const char *path, int *recovered);

/* bd_trace_recover of a master file and of every file its /<phase>/<agent> links point to
 * (links to missing files are skipped); fn (may be NULL) hears of each file repaired. */
typedef void (*bd_trace_recovered_fn)(void *ctx, const char *path);
int bd_trace_recover_run(const char *master, bd_trace_recovered_fn fn, void *ctx);

/* Reading. An agent's episodes table: *out (caller frees), *count. path may be the
 * master file or the agent's own file. Errors name the file and group; a truncated or
 * non-HDF5 file gives BD_EHDF5, not a crash. */
int bd_trace_read_episodes(const char *path, const char *phase, const char *agent,
                           bd_episode **out, int64_t *count);

/* The rows of an episodes table (n of them) that no writer makes, for an agent of
 * `columns` columns (0: not known) whose trace's step rows cover `steps` env steps (rows x
 * record.every; 0: no rows, or not known): a world outside them, a length below 1, a start
 * before step 0, an end past those steps, a return that is NaN, a flag that is not 0 or 1
 * (a table overwritten or damaged, whose figures mean nothing). A row all zero is not
 * counted: a killed writer's room for rows it did not write. How many, and the first in
 * *first (-1: none). */
int64_t bd_episodes_wrong(const bd_episode *eps, int64_t n, int columns, int64_t steps, int64_t *first);

/* From now on each HDF5 file memory/'s readers open, to read or to repair, is named in buf
 * (len bytes, the caller's: a page shared with a parent process) while memory/'s HDF5 calls
 * on it run, and buf is "" between them, so that a crash inside libhdf5 on a damaged file
 * (HDF5 1.10 trusts some sizes a file states) can be said by the file's name, and a crash
 * elsewhere is not blamed on a file. buf NULL or len 0: none. */
void bd_trace_note_files(char *buf, size_t len);

/* How the run in folder run_dir ended, for the readers of a finished run (bodhi status,
 * bodhi replay): summary.json's "status" and "error"; where summary.json is missing or
 * damaged, those of the last "end" event of its log.jsonl, which the conductor writes
 * first (a run on a full disk may write that line and fail to write summary.json). */
typedef struct {
    int summary;     /* 1: summary.json says; 0: there is none; -1: it is damaged (not JSON, no status) */
    int logged;      /* 1: status and error are log.jsonl's end event's */
    char status[32]; /* "done", "failed", ...; "" when neither says */
    char error[512];
} bd_run_end;
void bd_run_end_read(const char *run_dir, bd_run_end *e);
/* Says on f, each line led by lead, what e holds beside a readable summary.json: that
 * summary.json is damaged, and how log.jsonl's end event says the run ended. Returns 1
 * when it said anything. */
int bd_run_end_say(const bd_run_end *e, const char *lead, FILE *f);

/* Column c's share of an episodes target of `episodes` over `columns` columns of `members`
 * a world (world-major: c = world x members + member), as Stable-Baselines3's
 * evaluate_policy splits it: floor((episodes + k) / columns), k = member x worlds + world,
 * so the shares go round the worlds before a world's members and sum to `episodes`. The
 * first that many episodes of a column are the ones a phase counts (brain/stats.c; replay
 * of a sweep). */
int64_t bd_episode_share(long long episodes, int columns, int members, int c);

/* Reads a whole (T, N) float32, uint8 or uint64 dataset ("rewards", "terminated",
 * "weights_version", ...) into a
 * heap buffer (caller frees) with its shape. For (T,N,K) datasets dims[2] is K (1 for
 * (T,N)). Missing file, group or dataset: BD_ENOTFOUND. */
int bd_trace_read_dataset(const char *path, const char *phase, const char *agent,
                          const char *name, void **out, int64_t dims[3], int *rank);

/* A dataset's shape without reading it: dims[0..rank-1], unused dims set to 1;
 * *float32 (may be NULL) is 1 for float32 data, 0 for uint8. */
int bd_trace_dataset_shape(const char *path, const char *phase, const char *agent,
                           const char *name, int64_t dims[3], int *rank, int *float32);

/* Reads rows [row0, row0 + nrows) of a (T, N) or (T, N, K) float32, uint8 or uint64 dataset into
 * the caller's buf (nrows * N * K elements of the dataset's type), where N and K (0: a
 * (T, N) dataset) are the row shape the caller sized buf for: a dataset of another shape
 * is an error naming it, never a write past buf. For streaming readers (replay --verify)
 * that must not hold a whole dataset in memory. */
int bd_trace_read_rows(const char *path, const char *phase, const char *agent,
                       const char *name, int64_t row0, int64_t nrows, int64_t N, int64_t K, void *buf);
/* (A step dataset, by its name, is read as bodhi writes it, float32, uint8 or uint64,
 * whatever type the file holds it in: buf is sized for that.) */

/* What a trace says of itself (its group's attributes and shapes). Traces written
 * before the recording options read as every step of every world. */
typedef struct {
    int s, u;                 /* sensors and actuators per world */
    char **sensor_ids;        /* (s) */
    char **actuator_ids;      /* (u) */
    char *env, *env_params;   /* env name as the run file's plan resolved it; params JSON */
    uint64_t seed;            /* the run's seed */
    int worlds;               /* the phase's worlds (of an agent of several members: its columns) */
    int members;              /* columns per world (1 when the trace does not say) */
    int every;                /* row r is env step r * every */
    int recorded_worlds;      /* the first recorded_worlds worlds have step rows */
    int64_t world0;           /* the global id of its first world; -1: a trace written
                                 before the world0 attribute */
    int64_t rows;             /* step rows */
    int64_t episodes;         /* rows of the episodes table */
    int has_final;            /* a final_sensors dataset beside the episodes */
    char *compression;        /* "none" when the trace does not say */
    char write_error[256];    /* why its writer stopped early (a full disk), "" when it did not */
} bd_trace_info;

int bd_trace_read_info(const char *path, const char *phase, const char *agent, bd_trace_info *out);
/* The env steps a trace's recorded rows span: (rows - 1) x every + 1 (0 without rows); a
 * phase recorded every K steps may have run up to K - 1 more. */
int64_t bd_trace_span(const bd_trace_info *info);
void bd_trace_info_free(bd_trace_info *info); /* NULL-safe; zeroes it */

/* Minari (offline RL) datasets: main_data.hdf5 of episodes in Minari's layout
 * (memory/minari.c; docs/trace-format.md); the caller writes metadata.json beside it. */
typedef struct bd_minari_writer bd_minari_writer;

typedef struct {
    int64_t id;                 /* episode_<id> */
    int steps;                  /* T >= 1 */
    int s, u;                   /* observation and action widths */
    int discrete;               /* actions are one Discrete index each (u == 1) */
    const float *observations;  /* (T + 1, s): the reset's, ..., the final one */
    const float *actions;       /* (T, u) */
    const float *rewards;       /* (T) */
    int terminated, truncated;  /* how the last step ended */
} bd_minari_ep;

int bd_minari_create(const char *path, bd_minari_writer **out);
int bd_minari_episode(bd_minari_writer *w, const bd_minari_ep *e);
int bd_minari_close(bd_minari_writer *w); /* NULL-safe */

/* Lists "<phase>/<agent>" groups in file order: *names is a heap array of heap
 * strings (free each, then the array). Links to files that do not exist are skipped, and
 * so is a rank's trace of another launch (bd_trace_list_all). */
int bd_trace_list(const char *path, char ***names, int *count);

/* The same, and (missing may be NULL) the links whose trace file is missing, as
 * "<phase>/<agent> <file>" strings in *missing (a run whose memory file was deleted or
 * lost, or whose brain has not created it yet), from one walk of the file. With missing,
 * a rank's trace ("<agent>.r<k>") whose group_id is not rank 0's trace's (another launch's,
 * now in this run's rank folder) is not listed in *names but in *missing, as
 * "<phase>/<agent> <file>\n<why>". */
int bd_trace_list_all(const char *path, char ***names, int *count, char ***missing, int *nmissing);

/* k when trace name `name` ends in ".r<k>" (1 <= k <= 65535, no leading zero: the name rank
 * 0's run.h5 gives rank k's trace of an agent), *base the length of the name before it;
 * else 0 and *base its whole length. */
int bd_trace_rank_suffix(const char *name, size_t *base);

#endif
