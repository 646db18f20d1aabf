/* replay.c: `bodhi replay`'s report (see replay.h): a table of episode statistics per
 * phase and agent, an optional CSV of every episode, an optional check that each episode's
 * return equals the sum of its rewards and that the steps re-simulate (replay/resim.c),
 * learning curves (replay/plot.c) and Minari datasets (replay/minari.c)
 * (docs/trace-format.md).
 *
 * Reads through memory/'s public readers only, so it works on a run's master file
 * (external links) and on one agent's file alike. --verify streams rewards (T, N) in blocks
 * of rows (at most ~64 MiB each) and sums each episode in float64 in row order, so memory
 * grows with the episode count, not with T * N.
 * Limits: the whole episodes table of one agent is held in memory (24 B per episode).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/util.h"
#include "memory/memory.h"
#include "replay/replay.h"

#define REPLAY_BLOCK_BYTES ((size_t)64 << 20)  /* rewards read per block in --verify */
#define REPLAY_MAX_REPORTS 20                  /* mismatches printed per agent */
#define REPLAY_REL_TOL 1e-3                    /* |sum - return| <= tol * max(|sum|, |return|) */
#define REPLAY_ABS_TOL 1e-6                    /* ... + this, so zero returns compare */

typedef struct {
    int64_t episodes, steps, worlds;
    double mean_ret, median_ret, min_ret, max_ret, mean_len, median_len;
} agent_stats;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, int64_t n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int stats_of(const bd_episode *eps, int64_t n, agent_stats *st)
{
    st->episodes = n;
    if (n == 0)
        return BD_OK;
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return bd_seterr(BD_ENOMEM, "out of memory for %lld episodes", (long long)n);
    double sr = 0, sl = 0;
    st->min_ret = st->max_ret = eps[0].ret;
    for (int64_t i = 0; i < n; i++) {
        sr += eps[i].ret;
        sl += eps[i].length;
        st->min_ret = fmin(st->min_ret, eps[i].ret);
        st->max_ret = fmax(st->max_ret, eps[i].ret);
        v[i] = eps[i].ret;
    }
    st->mean_ret = sr / (double)n;
    st->mean_len = sl / (double)n;
    st->median_ret = median(v, n);
    for (int64_t i = 0; i < n; i++)
        v[i] = eps[i].length;
    st->median_len = median(v, n);
    free(v);
    return BD_OK;
}

/* phase and agent from "phase/agent" (heap copies in *phase; *agent points into it). */
static int split_name(const char *name, char **phase, const char **agent)
{
    char *p = bd_strdup(name);
    if (!p)
        return bd_seterr(BD_ENOMEM, "out of memory");
    char *slash = strchr(p, '/');
    if (!slash) {
        free(p);
        return bd_seterr(BD_EINVAL, "bad trace name '%s'", name);
    }
    *slash = '\0';
    *phase = p;
    *agent = slash + 1;
    return BD_OK;
}

/* One CSV field, quoted when it holds a comma, quote or newline. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int cmp_start(const void *a, const void *b, void *ctx)
{
    const bd_episode *eps = ctx;
    int64_t x = eps[*(const int64_t *)a].start_step, y = eps[*(const int64_t *)b].start_step;
    return (x > y) - (x < y);
}

static void mismatch(FILE *out, const char *name, int64_t i, const bd_episode *e, double sum,
                     const char *why, int64_t *bad)
{
    if (++*bad <= REPLAY_MAX_REPORTS) {
        if (why)
            fprintf(out, "verify %s: episode %lld (world %d, start %lld, length %d): %s\n", name,
                    (long long)i, e->world, (long long)e->start_step, e->length, why);
        else
            fprintf(out,
                    "verify %s: episode %lld (world %d, start %lld, length %d): return %.9g, "
                    "rewards sum %.9g\n",
                    name, (long long)i, e->world, (long long)e->start_step, e->length,
                    (double)e->ret, sum);
    }
}

static int close_enough(double sum, double ret)
{
    return fabs(sum - ret) <= REPLAY_REL_TOL * fmax(fabs(sum), fabs(ret)) + REPLAY_ABS_TOL;
}

/* Checks every episode of one agent against rewards (T, N) and the step flags, streamed in
 * blocks of rows: its return is the sum of its world's rewards over its steps; its last
 * step is flagged as its terminated and truncated say, no earlier step of it is flagged,
 * and the step before its first ended an episode of its world or is a lost round's NaN
 * (or it starts at step 0); a trace without the flags (another program's) has its returns
 * checked alone (*flags_checked 0). *bad counts mismatches (printed to out, the first
 * REPLAY_MAX_REPORTS of them). */
static int verify_agent(const char *path, const char *phase, const char *agent,
                        const char *name, const bd_episode *eps, int64_t n, FILE *out,
                        int64_t *bad, int *flags_checked)
{
    int64_t dims[3];
    int rank, f32;
    int rc = bd_trace_dataset_shape(path, phase, agent, "rewards", dims, &rank, &f32);
    if (rc)
        return rc;
    if (rank != 2 || !f32)
        return bd_seterr(BD_EHDF5, "'%s': /%s/%s/rewards is not a (T, N) float32 dataset", path,
                         phase, agent);
    int64_t T = dims[0], N = dims[1];
    if (N < 1 || (uint64_t)N > SIZE_MAX / sizeof(float) / 2)
        return bd_seterr(BD_EHDF5, "'%s': /%s/%s/rewards has %lld columns", path, phase, agent,
                         (long long)N);
    *bad = 0;
    /* the step flags, when the trace has them (a file another program wrote may not) */
    int flags = 1;
    for (int k = 0; k < 2 && flags; k++) {
        int64_t fd[3];
        int frank;
        int f32 = 0;
        int frc = bd_trace_dataset_shape(path, phase, agent, k ? "truncated" : "terminated", fd, &frank, &f32);
        if (frc == BD_ENOTFOUND || frc == BD_EINVAL || (frc == BD_OK && f32))
            flags = 0; /* none, or not bodhi's integer flags (h5py's bool is an enum): the returns alone */
        else if (frc != BD_OK)
            return frc;
        else if (frank != 2 || fd[0] < T || fd[1] != N) /* a live trace's may have grown since */
            return bd_seterr(BD_EHDF5, "'%s': /%s/%s/%s is not (%lld, %lld), as the rewards are", path, phase, agent,
                             k ? "truncated" : "terminated", (long long)T, (long long)N);
    }
    if (flags_checked)
        *flags_checked = flags;

    /* Episodes in range, ordered by start row; the rest are mismatches already. */
    int64_t *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    int64_t *active = malloc((size_t)(n ? n : 1) * sizeof *active);
    int64_t *left = malloc((size_t)(n ? n : 1) * sizeof *left);
    double *acc = calloc((size_t)(n ? n : 1), sizeof *acc);
    size_t row_bytes = (size_t)N * (sizeof(float) + 2);
    int64_t block = row_bytes ? (int64_t)(REPLAY_BLOCK_BYTES / row_bytes) : 1;
    if (block < 1)
        block = 1;
    if (T < block)
        block = T > 0 ? T : 1;
    float *rows = malloc((size_t)block * (size_t)N * sizeof(float) + 1);
    uint8_t *term = malloc((size_t)block * (size_t)N + 1), *trunc = malloc((size_t)block * (size_t)N + 1);
    uint8_t *edge = malloc((size_t)N); /* by world: an episode may start at the next row */
    uint8_t *wrong = calloc((size_t)(n ? n : 1), 1); /* by episode: said already (counted once) */
    if (!order || !active || !left || !acc || !rows || !term || !trunc || !edge || !wrong) {
        rc = bd_seterr(BD_ENOMEM, "out of memory verifying %s", name);
        goto done;
    }
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++) {
        const bd_episode *e = &eps[i];
        if (e->world < 0 || e->world >= N || e->start_step < 0 || e->length < 0 ||
            e->start_step > T || e->length > T - e->start_step) /* no overflow on file values */
            mismatch(out, name, i, e, 0, "outside the rewards rows recorded", bad);
        else if (e->length == 0 && !close_enough(0, e->ret))
            mismatch(out, name, i, e, 0, NULL, bad);
        else if (e->length > 0)
            order[m++] = i;
    }
    qsort_r(order, (size_t)m, sizeof *order, cmp_start, (void *)eps);

    int64_t next = 0, nactive = 0;
    int64_t first = m ? eps[order[0]].start_step : T;  /* rows before it hold no episode */
    memset(edge, 1, (size_t)N);
    if (!flags) { /* nothing flagged: no flag to compare */
        memset(term, 0, (size_t)block * (size_t)N);
        memset(trunc, 0, (size_t)block * (size_t)N);
    }
    if (first > 0)
        first--; /* the row before the first episode: whether it ended one */
    for (int64_t r0 = first; r0 < T && (next < m || nactive > 0); r0 += block) {
        int64_t nr = T - r0 < block ? T - r0 : block;
        if ((rc = bd_trace_read_rows(path, phase, agent, "rewards", r0, nr, N, 0, rows))
            || (flags && (rc = bd_trace_read_rows(path, phase, agent, "terminated", r0, nr, N, 0, term)))
            || (flags && (rc = bd_trace_read_rows(path, phase, agent, "truncated", r0, nr, N, 0, trunc))))
            goto done;
        for (int64_t r = r0; r < r0 + nr; r++) {
            const size_t base = (size_t)(r - r0) * (size_t)N;
            const float *row = rows + base;  // row is (N,)
            while (next < m && eps[order[next]].start_step == r) {
                int64_t i = order[next++];
                acc[i] = 0;
                left[i] = eps[i].length;
                active[nactive++] = i;
                if (flags && !edge[eps[i].world]) {
                    wrong[i] = 1; /* said once: its later steps are not said again */
                    mismatch(out, name, i, &eps[i], 0, "no episode of its world ended at the step before", bad);
                }
            }
            for (int64_t a = 0; a < nactive;) {
                int64_t i = active[a];
                const int w = eps[i].world;
                const int ft = term[base + (size_t)w] != 0, fc = trunc[base + (size_t)w] != 0;
                acc[i] += (double)row[w];
                if (--left[i] > 0) {
                    if ((ft || fc) && !wrong[i]) {
                        wrong[i] = 1;
                        char why[96];
                        snprintf(why, sizeof why, "step %lld, before its last, is flagged %s", (long long)r,
                                 ft ? "terminated" : "truncated");
                        mismatch(out, name, i, &eps[i], 0, why, bad);
                    }
                    a++;
                    continue;
                }
                if (wrong[i]) {
                    /* said at its first step, or at a step of it before its last */
                } else if (flags && (ft != (eps[i].terminated != 0) || fc != (eps[i].truncated != 0))) {
                    char why[160];
                    snprintf(why, sizeof why, "says terminated %d, truncated %d; its last step's flags are %d, %d",
                             eps[i].terminated != 0, eps[i].truncated != 0, ft, fc);
                    mismatch(out, name, i, &eps[i], 0, why, bad);
                } else if (!close_enough(acc[i], eps[i].ret)) {
                    mismatch(out, name, i, &eps[i], acc[i], NULL, bad);
                }
                active[a] = active[--nactive];
            }
            for (int64_t w = 0; w < N; w++)
                edge[w] = term[base + (size_t)w] || trunc[base + (size_t)w] || isnan(row[w]);
        }
    }
    if (*bad > REPLAY_MAX_REPORTS)
        fprintf(out, "verify %s: ... %lld mismatches in all\n", name, (long long)*bad);
done:
    free(wrong);
    free(edge);
    free(trunc);
    free(term);
    free(rows);
    free(acc);
    free(left);
    free(active);
    free(order);
    return rc;
}

/* A sampled trace (row r is env step r K, K > 1) at the rows it has: an episode of a recorded
 * column that ended at a recorded step has its flag (terminated or truncated, as the
 * episodes table says) in that row, and no other recorded cell is flagged. *bad counts
 * mismatches, *checked the episodes checked. */
static int verify_sampled(const char *path, const char *phase, const char *agent, const char *name,
                          const bd_episode *eps, int64_t n, int K, FILE *out, int64_t *bad, int64_t *checked)
{
    void *tb = NULL, *cb = NULL;
    int64_t d[3], d2[3];
    int rank = 0, rank2 = 0;
    int rc = bd_trace_read_dataset(path, phase, agent, "terminated", &tb, d, &rank);
    if (rc == BD_OK)
        rc = bd_trace_read_dataset(path, phase, agent, "truncated", &cb, d2, &rank2);
    if (rc == BD_OK && (rank != 2 || rank2 != 2 || d[0] != d2[0] || d[1] != d2[1]))
        rc = bd_seterr(BD_EHDF5, "'%s': /%s/%s: terminated and truncated differ in shape", path, phase, agent);
    const int64_t T = rc == BD_OK ? d[0] : 0, N = rc == BD_OK ? d[1] : 0;
    uint8_t *term = tb, *trunc = cb, *seen = rc == BD_OK ? calloc((size_t)(T * N) + 1, 1) : NULL;
    if (rc == BD_OK && !seen)
        rc = bd_seterr(BD_ENOMEM, "out of memory verifying %s", name);
    *bad = *checked = 0;
    for (int64_t i = 0; rc == BD_OK && i < n; i++) {
        const bd_episode *e = &eps[i];
        int64_t end = e->start_step + e->length - 1;
        if (e->world < 0 || e->world >= N || e->length < 1 || end % K != 0 || end / K >= T)
            continue;
        size_t cell = (size_t)(end / K * N + e->world);
        seen[cell] = 1;
        (*checked)++;
        if ((e->terminated && !term[cell]) || (e->truncated && !trunc[cell]) || (!term[cell] && !trunc[cell])) {
            if (++*bad <= REPLAY_MAX_REPORTS)
                fprintf(out, "verify %s: episode %lld (world %d) ended at step %lld, but row %lld has no such flag\n",
                        name, (long long)i, e->world, (long long)end, (long long)(end / K));
        }
    }
    for (int64_t c = 0; rc == BD_OK && c < T * N; c++)
        if ((term[c] || trunc[c]) && !seen[c] && ++*bad <= REPLAY_MAX_REPORTS)
            fprintf(out, "verify %s: row %lld (step %lld), world %lld ends an episode the episodes table does not hold\n",
                    name, (long long)(c / N), (long long)(c / N * K), (long long)(c % N));
    free(seen);
    free(tb);
    free(cb);
    return rc;
}

/* The weights versions (T, N) of a trace, streamed: in each column a version never goes
 * back from one recorded row to the next (a muscle acts with the newest weights its brain
 * sent it); 0, which the brain writes for the columns of a rollout lost or refused that
 * round, is passed over. *bad counts the columns where one does; *vmax is the newest version seen. A
 * trace written before weights_version: *present 0, nothing checked. */
static int verify_versions(const char *path, const char *phase, const char *agent, const char *name, FILE *out,
                           int *present, int64_t *bad, uint64_t *vmax)
{
    int64_t d[3];
    int rank;
    *present = 0;
    *bad = 0;
    *vmax = 0;
    int rc = bd_trace_dataset_shape(path, phase, agent, "weights_version", d, &rank, NULL);
    if (rc == BD_ENOTFOUND)
        return BD_OK;
    if (rc == BD_OK && rank != 2)
        rc = bd_seterr(BD_EHDF5, "'%s': /%s/%s/weights_version is not a (T, N) dataset", path, phase, agent);
    if (rc != BD_OK)
        return rc;
    *present = 1;
    const int64_t T = d[0], N = d[1];
    int64_t block = N > 0 ? (int64_t)(REPLAY_BLOCK_BYTES / sizeof(uint64_t) / (size_t)N) : 1;
    block = block < 1 ? 1 : block;
    uint64_t *rows = malloc(sizeof(uint64_t) * (size_t)(block < T ? block : T > 0 ? T : 1) * (size_t)(N ? N : 1));
    uint64_t *last = calloc((size_t)(N ? N : 1), sizeof *last);
    uint8_t *back = calloc((size_t)(N ? N : 1), 1);
    if (!rows || !last || !back)
        rc = bd_seterr(BD_ENOMEM, "out of memory verifying %s", name);
    for (int64_t r0 = 0; rc == BD_OK && r0 < T; r0 += block) {
        const int64_t nr = T - r0 < block ? T - r0 : block;
        if ((rc = bd_trace_read_rows(path, phase, agent, "weights_version", r0, nr, N, 0, rows)) != BD_OK)
            break;
        for (int64_t r = 0; r < nr; r++)
            for (int64_t i = 0; i < N; i++) {
                const uint64_t v = rows[r * N + i];
                if (v == 0) /* a column lost or refused that round (the brain writes 0): no claim */
                    continue;
                if (v < last[i] && !back[i]) {
                    back[i] = 1;
                    if (++*bad <= REPLAY_MAX_REPORTS)
                        fprintf(out, "verify %s: world %lld acts with weights version %llu at row %lld after %llu\n",
                                name, (long long)i, (unsigned long long)v, (long long)(r0 + r),
                                (unsigned long long)last[i]);
                }
                last[i] = v;
                *vmax = v > *vmax ? v : *vmax;
            }
    }
    free(rows);
    free(last);
    free(back);
    return rc;
}

/* A run folder means its run.h5; anything else is used as given. Caller frees *file. */
static int resolve_path(const char *path, char **file)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        *file = bd_strfmt("%s/run.h5", path);
        if (!*file)
            return bd_seterr(BD_ENOMEM, "out of memory");
        if (!bd_exists(*file)) {
            int rc = bd_seterr(BD_ENOTFOUND, "'%s' holds no run.h5", path);
            free(*file);
            *file = NULL;
            return rc;
        }
        return BD_OK;
    }
    *file = bd_strdup(path);
    return *file ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
}

static void say_repaired(void *ctx, const char *path)
{
    fprintf(ctx, "repaired %s: its writer died; it holds every step up to its last flush\n", path);
}

/* What a run directory says of how its run ended (nothing for a plain file). */
/* Says how a run directory's run ended when it did not finish; 1 when it finished (or
 * path is a trace file, which says nothing of the kind). */
static int say_how_it_ended(const char *path, FILE *out)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 1;
    bd_run_end e;
    bd_run_end_read(path, &e);
    const int done = strcmp(e.status, "done") == 0;
    if (bd_run_end_say(&e, path, out))
        ; /* summary.json damaged, or log.jsonl's end event in its stead */
    else if (e.summary > 0 && !done)
        fprintf(out, "%s: the run ended '%s' (summary.json); its traces end where it stopped\n", path, e.status);
    else if (e.summary == 0)
        fprintf(out, "%s: the run has no summary.json: it is still running, or it was killed; its "
                     "traces end at their last flush\n", path);
    return done;
}

/* 1 when a run's log.jsonl text shows a phase begun after phase `phase` began: then `phase`
 * ran to its end (a phase starts only after the one before it ended), and its traces were
 * written, however the run ended later. */
static int phase_was_followed(const char *log, const char *phase)
{
    static const char head[] = "{\"event\":\"phase\",";
    int seen = 0;
    for (const char *line = log; line && *line;) {
        const char *nl = strchr(line, '\n');
        const size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (len >= sizeof head - 1 && strncmp(line, head, sizeof head - 1) == 0) {
            cJSON *e = cJSON_ParseWithLength(line, len);
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "phase");
            const int here = cJSON_IsString(n) ? strcmp(n->valuestring, phase) == 0 : -1;
            cJSON_Delete(e);
            if (here == 1)
                seen = 1;
            else if (here == 0 && seen)
                return 1;
        }
        line = nl ? nl + 1 : NULL;
    }
    return 0;
}

/* ---- outputs never land on what they are made from ---------------------------------- */

static dev_t bd_out_dev;
static ino_t bd_out_ino;
static int bd_out_hit;

static int bd_out_visit(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)p;
    (void)flag;
    (void)ftw;
    if (st->st_dev == bd_out_dev && st->st_ino == bd_out_ino)
        bd_out_hit = 1;
    return bd_out_hit;
}

/* BD_OK when the output `out_path` (of option `opt`) would not overwrite a file of the run
 * at target (a run folder, or a trace file and the memory/ beside it): an existing file
 * there, under any name or link, is refused. */
int bd_replay_output_ok(const char *target, const char *opt, const char *out_path)
{
    if (!out_path[0])
        return bd_seterr(BD_EINVAL, "%s: an empty path", opt);
    struct stat os, ts;
    if (stat(out_path, &os) != 0)
        return BD_OK; /* a new file takes nothing from anyone */
    if (S_ISDIR(os.st_mode))
        return bd_seterr(BD_EINVAL, "%s '%s' is a folder; give a file's path", opt, out_path);
    if (stat(target, &ts) != 0)
        return BD_OK; /* the run's own problem, said by what reads it */
    bd_out_dev = os.st_dev;
    bd_out_ino = os.st_ino;
    bd_out_hit = 0;
    char *copy = bd_strdup(target);
    if (!copy)
        return bd_seterr(BD_ENOMEM, "out of memory");
    const char *root = S_ISDIR(ts.st_mode) ? copy : dirname(copy);
    nftw(root, bd_out_visit, 16, FTW_PHYS);
    free(copy);
    return bd_out_hit ? bd_seterr(BD_EINVAL, "%s '%s' is a file of the run itself; write it elsewhere", opt,
                                  out_path)
                      : BD_OK;
}

/* What --verify found over the traces of a run so far. */
typedef struct {
    int64_t bad;    /* episodes (and worlds) found wrong */
    int64_t vbad;   /* worlds whose weights version goes back */
    int checked;    /* traces and envs checked */
    int unmade;     /* phases whose envs could not be made here */
    int damaged;    /* traces whose episodes table holds rows that cannot be */
    int64_t episodes; /* in every trace's episodes table */
} replay_tally;

/* --verify of one trace: its returns against its rewards when it records every step, its
 * end flags at the steps it keeps when it records every K-th. */
static int replay_verify_trace(const char *file, const char *phase, const char *agent, const char *name,
                               const bd_episode *eps, int64_t n, const bd_trace_info *info, FILE *out,
                               replay_tally *t)
{
    int rc = BD_OK;
    if (info->recorded_worlds < 1) {
        fprintf(out, "verify %s: returns not checked: no steps recorded\n", name);
    } else if (info->every != 1) {
        /* the returns need every step; the flags can be checked at the steps kept */
        int64_t bad = 0, nck = 0;
        rc = verify_sampled(file, phase, agent, name, eps, n, info->every, out, &bad, &nck);
        if (!rc)
            fprintf(out, "verify %s: returns not checked (it records every %d steps); the end flags of the %lld "
                         "episode(s) that ended at a recorded step of its %d recorded columns %s\n", name,
                    info->every, (long long)nck, info->recorded_worlds, bad ? "do not all match" : "match");
        t->checked += nck > 0 || bad > 0;
        t->bad += bad;
    } else {
        /* the episodes of the recorded columns (all of them, or the first record.worlds) */
        int64_t m = 0, bad = 0;
        int flags = 0;
        bd_episode *mine = malloc(sizeof *mine * (size_t)(n ? n : 1));
        if (!mine)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
        for (int64_t e = 0; mine && e < n; e++)
            if (eps[e].world < info->recorded_worlds || info->recorded_worlds == info->worlds)
                mine[m++] = eps[e];
        if (!rc)
            rc = verify_agent(file, phase, agent, name, mine, m, out, &bad, &flags);
        if (!rc && bad == 0 && m == 0)
            fprintf(out, "verify %s: returns not checked: no episode ended in its recorded columns\n", name);
        else if (!rc && bad == 0)
            fprintf(out, "verify %s: returns %sok (%lld episodes%s)\n", name, flags ? "and end flags " : "",
                    (long long)m, m < n ? " of its recorded columns" : "");
        free(mine);
        t->checked += m > 0 || bad > 0; /* no episode: its returns checked nothing */
        t->bad += bad;
    }
    int present = 0;
    int64_t vbad = 0;
    uint64_t vmax = 0;
    if (rc == BD_OK && info->recorded_worlds >= 1)
        rc = verify_versions(file, phase, agent, name, out, &present, &vbad, &vmax);
    t->checked += rc == BD_OK && present && info->rows > 0; /* every row's version: a check of its own */
    if (rc == BD_OK && present && vbad == 0)
        fprintf(out, "verify %s: weights versions ok (0 to %llu, never going back in a world)\n", name,
                (unsigned long long)vmax);
    else if (rc == BD_OK && !present && info->recorded_worlds >= 1)
        fprintf(out, "verify %s: weights versions not recorded (a trace written before weights_version)\n", name);
    t->vbad += vbad;
    return rc;
}

/* One trace, "phase/agent": its row of the table (name padded to wname), its episodes in
 * csv (may be NULL), and --verify's checks when verify. */
static int replay_trace(const char *file, const char *name, int wname, FILE *csv, int verify, FILE *out,
                        replay_tally *t)
{
    char *phase = NULL;
    const char *agent = NULL;
    bd_episode *eps = NULL;
    int64_t n = 0;
    agent_stats st = {0};
    bd_trace_info info = {0};
    int rc;
    if ((rc = split_name(name, &phase, &agent)) || (rc = bd_trace_read_episodes(file, phase, agent, &eps, &n)) ||
        (rc = bd_trace_read_info(file, phase, agent, &info)) || (rc = stats_of(eps, n, &st)))
        goto done;
    st.steps = bd_trace_span(&info); /* env steps the recorded rows span */
    st.worlds = info.worlds;
    t->episodes += n;
    int64_t first;
    /* a table no writer makes */
    const int64_t wrong = bd_episodes_wrong(eps, n, info.worlds, info.rows * info.every, &first);
    fprintf(out, "%-*s %8lld %10lld %10lld", wname, name, (long long)st.worlds, (long long)st.steps,
            (long long)st.episodes);
    if (wrong) {
        const bd_episode *x = &eps[first];
        fprintf(out, " %11s %11s %11s %11s %10s %10s\n", "-", "-", "-", "-", "-", "-");
        char cols[24] = "?";
        if (info.worlds > 0)
            snprintf(cols, sizeof cols, "%d", info.worlds);
        fprintf(out, "%s: the episodes table is damaged: %lld of its %lld rows cannot be (row %lld: world %d of "
                     "%s, start step %lld, length %d, return %g, flags %u/%u); no figures from it\n",
                name, (long long)wrong, (long long)n, (long long)first, x->world, cols,
                (long long)x->start_step, x->length, (double)x->ret, (unsigned)x->terminated,
                (unsigned)x->truncated);
        t->damaged++;
        csv = NULL; /* nor rows */
    } else if (n > 0)
        fprintf(out, " %11.6g %11.6g %11.6g %11.6g %10.6g %10.6g\n", st.mean_ret, st.median_ret, st.min_ret,
                st.max_ret, st.mean_len, st.median_len);
    else
        fprintf(out, " %11s %11s %11s %11s %10s %10s\n", "-", "-", "-", "-", "-", "-");
    if (info.write_error[0]) /* a full disk: the trace ends where the writer stopped */
        fprintf(out, "%s: its writer stopped early: %s\n", name, info.write_error);
    for (int64_t e = 0; csv && e < n; e++) {
        csv_field(csv, phase);
        fputc(',', csv);
        csv_field(csv, agent);
        fprintf(csv, ",%d,%lld,%d,%.9g,%u,%u\n", eps[e].world, (long long)eps[e].start_step, eps[e].length,
                (double)eps[e].ret, eps[e].terminated, eps[e].truncated);
    }
    if (verify)
        rc = replay_verify_trace(file, phase, agent, name, eps, n, &info, out, t);
done:
    bd_trace_info_free(&info);
    free(eps);
    free(phase);
    return rc;
}

/* Says each link of the master whose trace file is missing, or is another launch's (and
 * frees the list): how many are another launch's; *lost: how many missing ones belong to a
 * phase that a later phase followed in run folder path's log (written, then lost, however
 * the run ended; NULL path: none counted). */
static int replay_say_missing(const char *file, const char *path, char **missing, int nmissing, FILE *out,
                              int *lost)
{
    int foreign = 0;
    *lost = 0;
    char *log = NULL; /* the run's log.jsonl, read once when a missing trace asks */
    int log_read = 0;
    for (int i = 0; i < nmissing; i++) {
        char *sp = strchr(missing[i], ' '), *why = strchr(missing[i], '\n');
        if (sp)
            *sp = '\0';
        if (why) /* there, but not this run's (bd_trace_list_all) */
            *why = '\0';
        foreign += why != NULL;
        char *slash = why ? NULL : strchr(missing[i], '/');
        int followed = 0;
        if (slash && path) {
            if (!log_read) {
                char *lp = bd_strfmt("%s/log.jsonl", path);
                if (!lp || bd_read_file(lp, &log, NULL) != BD_OK)
                    log = NULL;
                free(lp);
                log_read = 1;
            }
            *slash = '\0';
            followed = log && phase_was_followed(log, missing[i]);
            *slash = '/';
        }
        *lost += followed;
        if (why)
            fprintf(out, "%s: not this run's: %s links it to '%s', and %s\n", missing[i], file, sp ? sp + 1 : "?",
                    why + 1);
        else if (followed)
            fprintf(out, "%s: missing: %s links it to '%s', which is not there: lost (its phase ran to its end; a "
                         "later phase began)\n", missing[i], file, sp ? sp + 1 : "?");
        else
            fprintf(out, "%s: missing: %s links it to '%s', which is not there (lost, or not yet written by a live "
                         "run)\n", missing[i], file, sp ? sp + 1 : "?");
        free(missing[i]);
    }
    free(missing);
    free(log);
    return foreign;
}

/* The traces --verify fails for when they are gone: another launch's, and of the missing
 * ones every one for a run that ended done, else those of a phase another followed. */
static int replay_gone(int nmissing, int nforeign, int nlost, int finished)
{
    return nforeign + (finished ? nmissing - nforeign : nlost);
}

/* The run's name for titles and datasets: its folder, or the file's name without .h5 (as
 * resolved: "." or "run/" name the folder), into title (len bytes). */
static void replay_title(const char *path, int is_dir, char *title, size_t len)
{
    char *real = realpath(path, NULL);
    const char *rp = real ? real : path;
    const char *base = strrchr(rp, '/') && strrchr(rp, '/')[1] ? strrchr(rp, '/') + 1 : rp;
    snprintf(title, len, "%.*s", (int)(is_dir || !strstr(base, ".h5") ? strlen(base) : (size_t)(strstr(base, ".h5") - base)),
             base);
    free(real);
}

/* After the table (rc: how reading it went): the re-simulation (a run folder), the plot
 * and the Minari datasets when it went well, then the verdict: rc, the error recorded,
 * and *o->mismatches. count traces were listed, nmissing links lead nowhere; finished: the
 * run ended done (or path is a file). */
static int replay_outputs(const char *path, const char *file, const bd_replay_opts *o, FILE *out, int count,
                          int nmissing, int nforeign, int nlost, int finished, replay_tally *t, int rc)
{
    const int verify = o->verify;
    struct stat dst;
    int is_dir = stat(path, &dst) == 0 && S_ISDIR(dst.st_mode);
    if (!rc && verify && is_dir) { /* the steps themselves, from the seed and the setpoints */
        int64_t bad = 0;
        int envs = 0;
        rc = bd_replay_resim(path, file, o->registry, out, &bad, &envs, &t->unmade);
        t->checked += envs;
        if (!rc && bad)
            rc = bd_seterr(BD_EINVAL, "'%s': %lld world(s) whose recorded steps the re-simulation does not "
                                      "reproduce", path, (long long)bad);
        t->bad += bad;
    }
    if (!rc && t->damaged > 0) /* nothing is plotted or exported from it */
        rc = bd_seterr(BD_EINVAL, "'%s': %d trace(s) whose episodes table is damaged (see above)", file, t->damaged);
    char title[256];
    replay_title(path, is_dir, title, sizeof title);
    int exported = 0, nothing = 0; /* a check, an export or a plot that did nothing has failed (exit 1) */
    if (!rc && o->plot && t->episodes == 0) {
        rc = bd_seterr(BD_EINVAL, "--plot: nothing to plot: no trace of '%s' holds an episode (see above)", file);
        nothing = 1;
    }
    if (!rc && o->plot && (rc = bd_replay_plot(file, title, o->plot)) == BD_OK)
        fprintf(out, "plot: %s\n", o->plot);
    if (!rc && o->minari && (rc = bd_replay_minari(file, title, o->minari, out, &exported)) == BD_OK && exported == 0) {
        rc = bd_seterr(BD_EINVAL, "--minari: nothing exported: no trace of '%s' holds whole episodes (see above)", file);
        nothing = 1;
    } else if (!rc && verify && count > 0 && t->checked == 0) {
        rc = bd_seterr(BD_EINVAL, "--verify: nothing could be checked in '%s' (see above)", file);
        nothing = 1;
    } else if (!rc && verify && t->unmade > 0) {
        rc = bd_seterr(BD_EINVAL, "--verify: %d phase(s) of '%s' could not be re-simulated (see above)", t->unmade, path);
        nothing = 1;
    }
    /* said above; a stopped run's last phase may not have begun writing, but a phase that
     * another followed had */
    nmissing = replay_gone(nmissing, nforeign, nlost, finished) - nforeign;
    if (o->mismatches)
        *o->mismatches = t->bad + t->vbad + t->damaged + (verify ? nforeign + nmissing : 0) + nothing;
    if (!rc && verify && nforeign > 0) /* another launch's data, however the run ended */
        rc = bd_seterr(BD_EINVAL, "'%s': %d trace(s) it links to are another launch's (see above)", file, nforeign);
    else if (!rc && verify && nmissing > 0) /* --verify: a lost trace fails the check */
        rc = bd_seterr(BD_EINVAL, "'%s': %d trace(s) it links to are missing", file, nmissing);
    else if (!rc && t->bad > 0)
        rc = bd_seterr(BD_EINVAL, "'%s': %lld episode(s) or world(s) that do not match what the run recorded "
                                  "(see above)",
                       file, (long long)t->bad);
    else if (!rc && t->vbad > 0)
        rc = bd_seterr(BD_EINVAL, "'%s': %lld world(s) whose weights version goes back", file, (long long)t->vbad);
    return rc;
}

int bd_replay(const char *path, FILE *out, const bd_replay_opts *o)
{
    if (!path || !out)
        return bd_seterr(BD_EINVAL, "bd_replay: NULL argument");
    bd_replay_opts none = {0};
    if (!o)
        o = &none;
    if (bd_replay_is_sweep(path))
        return bd_replay_sweep(path, out, o);
    const char *csv_path = o->csv;
    int orc;
    if ((csv_path && (orc = bd_replay_output_ok(path, "--csv", csv_path)))
        || (o->plot && (orc = bd_replay_output_ok(path, "--plot", o->plot))))
        return orc;
    if (o->minari && !o->minari[0])
        return bd_seterr(BD_EINVAL, "--minari: an empty folder name");
    char *file = NULL, **names = NULL;
    int count = 0, nmissing = 0;
    FILE *csv = NULL;
    int rc = resolve_path(path, &file);
    if (rc)
        return rc;
    /* a run stopped before a phase's brain wrote its file leaves a link to nothing; a
     * finished run must have every trace it links to */
    const int finished = say_how_it_ended(path, out);
    /* a killed run's files open plainly again (for h5py too) once repaired */
    if ((rc = bd_trace_recover_run(file, say_repaired, out)) && rc != BD_ENOTFOUND)
        goto done;
    rc = BD_OK;
    /* a trace the master links to but whose file is gone is said, not skipped in silence */
    char **missing = NULL;
    if ((rc = bd_trace_list_all(file, &names, &count, &missing, &nmissing)))
        goto done;
    int nlost = 0;
    struct stat pst;
    const int nforeign = replay_say_missing(file, stat(path, &pst) == 0 && S_ISDIR(pst.st_mode) ? path : NULL,
                                            missing, nmissing, out, &nlost);
    if (csv_path) {
        if (!(csv = fopen(csv_path, "w"))) {
            rc = bd_seterr(BD_EIO, "cannot write '%s': %s", csv_path, strerror(errno));
            goto done;
        }
        fputs("phase,agent,world,start_step,length,return,terminated,truncated\n", csv);
    }
    if (count == 0) {
        fprintf(out, "%s: no traces (no /<phase>/<agent> group holds rewards)\n", file);
        /* --verify: lost or foreign traces fail it here too (replay_outputs' rule) */
        const int gone = replay_gone(nmissing, nforeign, nlost, finished);
        if (o->verify && gone > 0) {
            rc = bd_seterr(BD_EINVAL, "'%s': %d trace(s) it links to are missing or another launch's", file, gone);
            if (o->mismatches)
                *o->mismatches = gone;
        } else if (o->verify || o->minari || o->plot) { /* a check, export or plot of nothing has failed */
            rc = bd_seterr(BD_EINVAL, "%s: '%s' holds no traces (see above)",
                           o->verify ? "--verify: nothing could be checked"
                                     : o->minari ? "--minari: nothing exported" : "--plot: nothing to plot",
                           file);
            if (o->mismatches)
                *o->mismatches = 1;
        }
        goto done;
    }

    int wname = 5;  /* "trace" */
    for (int i = 0; i < count; i++)
        if ((int)strlen(names[i]) > wname)
            wname = (int)strlen(names[i]);
    fprintf(out, "%s\n", file);
    fprintf(out, "%-*s %8s %10s %10s %11s %11s %11s %11s %10s %10s\n", wname, "trace", "worlds",
            "steps", "episodes", "mean_ret", "median_ret", "min_ret", "max_ret", "mean_len",
            "median_len");
    replay_tally t = {0};
    for (int i = 0; i < count && !rc; i++)
        rc = replay_trace(file, names[i], wname, csv, o->verify, out, &t);
    rc = replay_outputs(path, file, o, out, count, nmissing, nforeign, nlost, finished, &t, rc);
done:
    if (csv && fclose(csv) != 0 && !rc)
        rc = bd_seterr(BD_EIO, "cannot write '%s': %s", csv_path, strerror(errno));
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
    free(file);
    return rc;
}
