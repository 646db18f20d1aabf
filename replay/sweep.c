/* sweep.c: `bodhi replay SWEEP_DIR`: the runs of a sweep compared across their seeds (see
 * replay.h). A sweep is what `bodhi sweep` wrote (sweep.json names its points, seeds and run
 * folders), or any folder of runs (subfolders, and theirs, holding log.jsonl, as `bodhi
 * serve` finds them) grouped as `bodhi serve` groups them: runs whose run.yml are the same
 * but for the seed are one point's seeds (bd_serve_sweep_key).
 *
 * A run's final return, per phase and agent, is the mean return of its last
 * SWEEP_LAST episodes by the env step they ended at (all of them when it has fewer), the
 * window bodhi run's own summary line uses (of a phase with an episodes target, of the
 * episodes it counted toward it). A point's row gives their mean, standard deviation
 * (n - 1), min and max over its seeds. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"
#include "config/runfile.h"
#include "memory/memory.h"
#include "replay/replay.h"
#include "replay/serve.h"

#define SWEEP_LAST 100
#define SWEEP_MAX_RUNS SERVE_MAX_RUNS

typedef struct {
    char *dir;   /* the run folder */
    char *rel;   /* as sweep.json or the scan names it */
    char seed[32];
    int point;
} sw_run;

typedef struct {
    char *name;
    int *runs, nruns; /* indices into the runs */
} sw_point;

typedef struct {
    sw_run *runs;
    int nruns;
    sw_point *points;
    int npoints;
} sw_sweep;

/* One run's returns of one trace. */
typedef struct {
    int64_t episodes;
    double final, mean;
} sw_result;

static int cmp_end(const void *a, const void *b)
{
    const bd_episode *x = a, *y = b;
    int64_t ex = x->start_step + x->length, ey = y->start_step + y->length;
    return (ex > ey) - (ex < ey) ? (ex > ey) - (ex < ey) : (x->world > y->world) - (x->world < y->world);
}

/* run.yml's top-level seed into out ("?" when there is none). */
static void run_seed(const char *dir, char *out, size_t n)
{
    char *p = bd_strfmt("%s/run.yml", dir), *text = NULL;
    size_t len;
    snprintf(out, n, "?");
    if (p && bd_read_file_max(p, 16 << 20, &text, &len) == BD_OK)
        for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
            if (strncmp(line, "seed:", 5) == 0) {
                line += 5 + strspn(line + 5, " ");
                snprintf(out, n, "%.*s", (int)strcspn(line, " \n#"), line);
                break;
            }
    free(text);
    free(p);
}

static int add_point(sw_sweep *s, const char *name)
{
    sw_point *p = realloc(s->points, sizeof *p * (size_t)(s->npoints + 1));
    if (!p)
        return -1;
    s->points = p;
    p[s->npoints] = (sw_point){.name = bd_strdup(name)};
    return p[s->npoints].name ? s->npoints++ : -1;
}

static int add_run(sw_sweep *s, int point, const char *dir, const char *rel, const char *seed)
{
    sw_run *r = realloc(s->runs, sizeof *r * (size_t)(s->nruns + 1));
    int *pr = realloc(s->points[point].runs, sizeof *pr * (size_t)(s->points[point].nruns + 1));
    if (r)
        s->runs = r;
    if (pr)
        s->points[point].runs = pr;
    if (!r || !pr)
        return bd_seterr(BD_ENOMEM, "out of memory");
    r[s->nruns] = (sw_run){.dir = bd_strdup(dir), .rel = bd_strdup(rel), .point = point};
    snprintf(r[s->nruns].seed, sizeof r[s->nruns].seed, "%s", seed);
    pr[s->points[point].nruns++] = s->nruns++;
    return r[s->nruns - 1].dir && r[s->nruns - 1].rel ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
}

/* The points and runs sweep.json names. */
static int from_json(const char *dir, const char *text, sw_sweep *s)
{
    cJSON *j = cJSON_Parse(text);
    const cJSON *p, *r;
    int rc = j ? BD_OK : bd_seterr(BD_EINVAL, "%s/sweep.json: not JSON", dir);
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "points"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(p, "name");
        int k = rc == BD_OK && cJSON_IsString(name) ? add_point(s, name->valuestring) : -1;
        if (rc == BD_OK && k < 0)
            rc = bd_seterr(BD_EINVAL, "%s/sweep.json: a point without a name", dir);
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(p, "runs"))
        {
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(r, "dir"), *seed = cJSON_GetObjectItemCaseSensitive(r, "seed");
            if (rc != BD_OK)
                break;
            if (!cJSON_IsString(d) || strstr(d->valuestring, "..") || d->valuestring[0] == '/') {
                rc = bd_seterr(BD_EINVAL, "%s/sweep.json: a run of point %s without its folder", dir, name->valuestring);
                break;
            }
            char num[32], *path = bd_strfmt("%s/%s", dir, d->valuestring);
            char *raw = cJSON_IsNumber(seed) || cJSON_IsRaw(seed) ? cJSON_PrintUnformatted(seed) : NULL;
            snprintf(num, sizeof num, "%s", raw ? raw : "?");
            rc = path ? add_run(s, k, path, d->valuestring, num) : bd_seterr(BD_ENOMEM, "out of memory");
            free(raw);
            free(path);
        }
    }
    cJSON_Delete(j);
    return rc;
}

/* The runs under dir grouped by their sweep key; a point is named by its runs' common
 * folder when they have one of their own, else by its first run. */
static int from_scan(const char *dir, sw_sweep *s)
{
    run_ref *refs = calloc(SWEEP_MAX_RUNS, sizeof *refs);
    if (!refs)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int n = bd_serve_scan_dir(dir, 0, refs, SWEEP_MAX_RUNS), rc = BD_OK;
    char (*keys)[17] = calloc((size_t)(n ? n : 1), sizeof *keys);
    int *of = calloc((size_t)(n ? n : 1), sizeof *of);
    if (!keys || !of)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; rc == BD_OK && i < n; i++)
        bd_serve_sweep_key(refs[i].path, keys[i]);
    for (int i = 0; rc == BD_OK && i < n; i++) {
        of[i] = -1;
        for (int j = 0; j < i && of[i] < 0; j++)
            if (keys[i][0] && strcmp(keys[i], keys[j]) == 0)
                of[i] = of[j];
        const char *rel = refs[i].id + 2; /* past "0/" */
        if (of[i] < 0) {
            char name[PATH_MAX];
            const char *slash = strrchr(rel, '/');
            int shared = slash != NULL; /* the folder above the run, when no other point's runs are in it */
            for (int j = i + 1; shared && j < n; j++)
                if (strcmp(keys[i], keys[j]) != 0 && !strncmp(refs[j].id + 2, rel, (size_t)(slash - rel) + 1))
                    shared = 0;
            snprintf(name, sizeof name, "%.*s", shared ? (int)(slash - rel) : (int)strlen(rel), rel);
            if ((of[i] = add_point(s, name)) < 0)
                rc = bd_seterr(BD_ENOMEM, "out of memory");
        }
        char seed[32];
        run_seed(refs[i].path, seed, sizeof seed);
        if (rc == BD_OK)
            rc = add_run(s, of[i], refs[i].path, rel, seed);
    }
    free(keys);
    free(of);
    free(refs);
    return rc;
}

/* 1 when dir is a folder that holds no run itself but a sweep.json or runs below it. */
int bd_replay_is_sweep(const char *dir)
{
    struct stat st;
    char *json = bd_strfmt("%s/sweep.json", dir), *h5 = bd_strfmt("%s/run.h5", dir);
    int yes = 0;
    if (json && h5 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && stat(h5, &st) != 0) {
        run_ref one;
        yes = stat(json, &st) == 0 || (!bd_serve_is_run(dir) && bd_serve_scan_dir(dir, 0, &one, 1) > 0);
    }
    free(json);
    free(h5);
    return yes;
}

/* The episodes target of run dir's phase (phase_config.episodes, after the merge of the
 * phases before it), 0 when it has none or run.yml cannot be read. */
static long long phase_quota(const char *dir, const char *phase)
{
    char *yml = bd_strfmt("%s/run.yml", dir);
    bd_runfile *rf = NULL;
    long long e = 0;
    if (yml && bd_runfile_load(yml, &rf) == BD_OK)
        for (int i = 0; i < rf->nphases; i++)
            if (strcmp(rf->phases[i].name, phase) == 0)
                e = rf->phases[i].episodes;
    bd_runfile_destroy(rf);
    free(yml);
    return e;
}

/* Of eps (n, in the order they ended), those bodhi run counted toward an episodes target
 * E over columns columns of `members` a world, moved to the front in order: each column's
 * first bd_episode_share; their count. */
static int64_t counted_first(bd_episode *eps, int64_t n, long long E, int columns, int members)
{
    if (columns < 1 || members < 1 || columns % members)
        return n;
    int64_t *taken = calloc((size_t)columns, sizeof *taken), m = 0;
    if (!taken)
        return n;
    for (int64_t e = 0; e < n; e++) {
        const int i = eps[e].world;
        if (i < 0 || i >= columns || taken[i] >= bd_episode_share(E, columns, members, i))
            continue;
        taken[i]++;
        eps[m++] = eps[e];
    }
    free(taken);
    return m;
}

/* One run's trace phase/agent: its episodes, final and mean return (of a phase with an
 * episodes target, only the episodes bodhi run counted toward it, as its summary does).
 * BD_ENOTFOUND when the run has no such trace. */
static int run_result(const char *dir, const char *master, const char *phase, const char *agent, sw_result *r)
{
    bd_episode *eps = NULL;
    int64_t n = 0;
    *r = (sw_result){0};
    bd_trace_info info = {0};
    int rc = bd_trace_read_episodes(master, phase, agent, &eps, &n);
    if (rc == BD_OK && (rc = bd_trace_read_info(master, phase, agent, &info)) == BD_OK) {
        int64_t first;
        const int64_t wrong = bd_episodes_wrong(eps, n, info.worlds, info.rows * info.every, &first);
        if (wrong) /* its figures would mean nothing */
            rc = bd_seterr(BD_EINVAL, "/%s/%s: the episodes table is damaged: %lld of its %lld rows cannot be "
                                      "(row %lld first); not counted", phase, agent, (long long)wrong, (long long)n,
                           (long long)first);
    }
    const int columns = info.worlds, members = info.members;
    bd_trace_info_free(&info);
    if (rc != BD_OK) {
        free(eps);
        return rc;
    }
    qsort(eps, (size_t)n, sizeof *eps, cmp_end);
    const long long quota = phase_quota(dir, phase);
    if (quota > 0)
        n = counted_first(eps, n, quota, columns, members);
    double all = 0, last = 0;
    int64_t from = n > SWEEP_LAST ? n - SWEEP_LAST : 0;
    for (int64_t e = 0; e < n; e++) {
        all += eps[e].ret;
        if (e >= from)
            last += eps[e].ret;
    }
    r->episodes = n;
    r->final = n ? last / (double)(n - from) : NAN;
    r->mean = n ? all / (double)n : NAN;
    free(eps);
    return BD_OK;
}

/* The trace names (phase/agent) of every run, each once, in order of first sight. */
static int all_traces(const sw_sweep *s, char ***names, int *count, FILE *out)
{
    *names = NULL;
    *count = 0;
    for (int i = 0; i < s->nruns; i++) {
        char *master = bd_strfmt("%s/run.h5", s->runs[i].dir), **tn = NULL;
        int tc = 0;
        struct stat st;
        if (!master)
            return bd_seterr(BD_ENOMEM, "out of memory");
        if (stat(master, &st) != 0) {
            char status[64];
            bd_serve_status(s->runs[i].dir, status, sizeof status);
            fprintf(out, "%s (seed %s): no run.h5 (%s)\n", s->runs[i].rel, s->runs[i].seed,
                    status[0] ? status : "not run, or still starting");
        } else {
            char status[64];
            bd_serve_status(s->runs[i].dir, status, sizeof status);
            if (strcmp(status, "done") != 0) /* counted all the same: what it recorded until it ended */
                fprintf(out, "%s (seed %s): %s\n", s->runs[i].rel, s->runs[i].seed,
                        status[0] ? status : "no summary.json (still running, or killed)");
            bd_trace_recover_run(master, NULL, NULL); /* a killed run's files read again (as bodhi replay) */
            if (bd_trace_list(master, &tn, &tc) != BD_OK)
                fprintf(out, "%s (seed %s): %s\n", s->runs[i].rel, s->runs[i].seed, bd_lasterr());
        }
        for (int t = 0; t < tc; t++) {
            int seen = 0;
            for (int k = 0; k < *count && !seen; k++)
                seen = strcmp((*names)[k], tn[t]) == 0;
            char **more = seen ? *names : realloc(*names, sizeof **names * (size_t)(*count + 1));
            if (!seen && more) {
                *names = more;
                (*names)[(*count)++] = tn[t];
            } else {
                free(tn[t]);
            }
        }
        free(tn);
        free(master);
    }
    return BD_OK;
}

/* A point's row of the table and its CSV rows for trace name. */
static void point_rows(const sw_sweep *s, int p, const char *name, int wp, int wt, FILE *out, FILE *csv)
{
    const sw_point *pt = &s->points[p];
    char *phase = strndup(name, strcspn(name, "/"));
    const char *agent = strchr(name, '/') ? strchr(name, '/') + 1 : "";
    double sum = 0, sq = 0, lo = INFINITY, hi = -INFINITY, msum = 0;
    int64_t episodes = 0;
    int seeds = 0;
    double *finals = calloc((size_t)pt->nruns + 1, sizeof *finals);
    for (int k = 0; phase && finals && k < pt->nruns; k++) {
        const sw_run *r = &s->runs[pt->runs[k]];
        char *master = bd_strfmt("%s/run.h5", r->dir);
        sw_result res;
        struct stat st;
        int rrc = master && stat(master, &st) == 0 ? run_result(r->dir, master, phase, agent, &res) : BD_ENOTFOUND;
        if (rrc != BD_OK && rrc != BD_ENOTFOUND) /* a trace it has but cannot count: said, not silently left out */
            fprintf(out, "%s (seed %s): %s\n", r->rel, r->seed, bd_lasterr());
        if (rrc == BD_OK && res.episodes > 0) {
            finals[seeds++] = res.final;
            sum += res.final;
            msum += res.mean;
            lo = fmin(lo, res.final);
            hi = fmax(hi, res.final);
            episodes += res.episodes;
            if (csv)
                fprintf(csv, "%s,%s,%s,%s,%s,%lld,%.9g,%.9g,1,,%.9g,%.9g\n", pt->name, phase, agent, r->seed, r->rel,
                        (long long)res.episodes, res.final, res.mean, res.final, res.final);
        }
        free(master);
    }
    double mean = seeds ? sum / seeds : NAN;
    for (int k = 0; k < seeds; k++)
        sq += (finals[k] - mean) * (finals[k] - mean);
    double sd = seeds > 1 ? sqrt(sq / (seeds - 1)) : NAN;
    if (seeds == 0)
        fprintf(out, "%-*s %-*s %5d %9s %11s %11s %11s %11s\n", wp, pt->name, wt, name, 0, "-", "-", "-", "-", "-");
    else if (seeds == 1)
        fprintf(out, "%-*s %-*s %5d %9lld %11.6g %11s %11.6g %11.6g\n", wp, pt->name, wt, name, seeds,
                (long long)episodes, mean, "-", lo, hi);
    else
        fprintf(out, "%-*s %-*s %5d %9lld %11.6g %11.6g %11.6g %11.6g\n", wp, pt->name, wt, name, seeds,
                (long long)episodes, mean, sd, lo, hi);
    if (csv && seeds > 0) {
        fprintf(csv, "%s,%s,%s,all,,%lld,%.9g,%.9g,%d,", pt->name, phase, agent, (long long)episodes, mean,
                msum / seeds, seeds);
        if (seeds > 1)
            fprintf(csv, "%.9g", sd);
        fprintf(csv, ",%.9g,%.9g\n", lo, hi);
    }
    free(finals);
    free(phase);
}

static void sweep_free(sw_sweep *s)
{
    for (int i = 0; i < s->nruns; i++) {
        free(s->runs[i].dir);
        free(s->runs[i].rel);
    }
    for (int p = 0; p < s->npoints; p++) {
        free(s->points[p].name);
        free(s->points[p].runs);
    }
    free(s->runs);
    free(s->points);
}

/* The plot: each point's runs' masters, for replay/plot.c. */
static int sweep_plot(const sw_sweep *s, const char *title, const char *path)
{
    const char **names = calloc((size_t)s->npoints + 1, sizeof *names);
    const char ***files = calloc((size_t)s->npoints + 1, sizeof *files);
    int *counts = calloc((size_t)s->npoints + 1, sizeof *counts), rc = BD_OK;
    if (!names || !files || !counts)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int p = 0; rc == BD_OK && p < s->npoints; p++) {
        names[p] = s->points[p].name;
        files[p] = calloc((size_t)s->points[p].nruns + 1, sizeof **files);
        if (!files[p]) {
            rc = bd_seterr(BD_ENOMEM, "out of memory");
            break;
        }
        for (int k = 0; k < s->points[p].nruns; k++) {
            char *m = bd_strfmt("%s/run.h5", s->runs[s->points[p].runs[k]].dir);
            struct stat st;
            if (m && stat(m, &st) == 0)
                files[p][counts[p]++] = m;
            else
                free(m);
        }
    }
    if (rc == BD_OK)
        rc = bd_replay_plot_sweep(title, names, (const char *const *const *)files, counts, s->npoints, path);
    for (int p = 0; files && p < s->npoints; p++) {
        for (int k = 0; files[p] && k < counts[p]; k++)
            free((char *)files[p][k]);
        free(files[p]);
    }
    free(files);
    free(names);
    free(counts);
    return rc;
}

int bd_replay_sweep(const char *dir, FILE *out, const bd_replay_opts *o)
{
    if (o->verify || o->minari)
        return bd_seterr(BD_EINVAL, "%s is a sweep: --verify and --minari take one of its runs (bodhi replay "
                         "%s/POINT/seed-K)", dir, dir);
    int orc;
    if ((o->csv && (orc = bd_replay_output_ok(dir, "--csv", o->csv)))
        || (o->plot && (orc = bd_replay_output_ok(dir, "--plot", o->plot))))
        return orc;
    sw_sweep s = {0};
    char *json = bd_strfmt("%s/sweep.json", dir), *text = NULL;
    size_t len;
    int rc = json && bd_read_file_max(json, 64 << 20, &text, &len) == BD_OK ? from_json(dir, text, &s)
                                                                             : from_scan(dir, &s);
    free(json);
    free(text);
    char **names = NULL;
    int count = 0;
    if (rc == BD_OK && s.nruns == 0)
        rc = bd_seterr(BD_ENOTFOUND, "%s: no runs in the sweep", dir);
    if (rc == BD_OK)
        rc = all_traces(&s, &names, &count, out);
    FILE *csv = NULL;
    if (rc == BD_OK && o->csv && !(csv = fopen(o->csv, "w")))
        rc = bd_seterr(BD_EIO, "cannot write '%s': %s", o->csv, strerror(errno));
    if (csv)
        fputs("point,phase,agent,seed,run,episodes,final_return,mean_return,seeds,final_std,final_min,final_max\n", csv);
    if (rc == BD_OK) {
        int wp = 5, wt = 5;
        for (int p = 0; p < s.npoints; p++)
            wp = (int)strlen(s.points[p].name) > wp ? (int)strlen(s.points[p].name) : wp;
        for (int t = 0; t < count; t++)
            wt = (int)strlen(names[t]) > wt ? (int)strlen(names[t]) : wt;
        fprintf(out, "sweep %s: %d point(s), %d run(s); final = the mean return of a run's last %d episodes (all "
                     "when fewer); mean, std (n-1), min and max over the point's seeds\n",
                dir, s.npoints, s.nruns, SWEEP_LAST);
        fprintf(out, "%-*s %-*s %5s %9s %11s %11s %11s %11s\n", wp, "point", wt, "trace", "seeds", "episodes",
                "final_mean", "final_std", "final_min", "final_max");
        for (int t = 0; t < count; t++)
            for (int p = 0; p < s.npoints; p++)
                point_rows(&s, p, names[t], wp, wt, out, csv);
    }
    if (csv && fclose(csv) != 0 && rc == BD_OK)
        rc = bd_seterr(BD_EIO, "cannot write '%s': %s", o->csv, strerror(errno));
    if (rc == BD_OK && o->plot) {
        char *real = realpath(dir, NULL);
        const char *base = real && strrchr(real, '/') ? strrchr(real, '/') + 1 : dir;
        if ((rc = sweep_plot(&s, base, o->plot)) == BD_OK)
            fprintf(out, "plot: %s\n", o->plot);
        free(real);
    }
    for (int t = 0; t < count; t++)
        free(names[t]);
    free(names);
    sweep_free(&s);
    return rc;
}
