/* sweep.c: `bodhi sweep FILE [--seeds A..B|A,B,...] [--set PATH=V1,V2,...]... [--out SWEEP_DIR]
 * [--slurm] [--quiet]`: the runs of a run file over seeds and values (docs/run-file.md,
 * "Sweeps"). Every run file is made from FILE's effective tree (config/setpath.h) and
 * checked as `bodhi run` would check it before anything is written; then SWEEP_DIR holds
 *   sweep.json              the points, seeds, files, folders and each run's exit status
 *   <point>/seed-<k>.yml    the run file of each run
 *   <point>/seed-<k>/       its run folder (bodhi run --out)
 *   sweep.sbatch            with --slurm: a Slurm array script, one task per run
 * and without --slurm the runs go one after another here, each a `bodhi run` child. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "conductor/rundir.h"
#include "config/check.h"
#include "config/setpath.h"

#define SWEEP_MAX_RUNS 100000
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
} sweep;

/* --seeds A..B or A,B,C: distinct seeds in order. 0, or 2 after saying why. */
static int parse_seeds(const char *s, sweep *w)
{
    const char *dots = strstr(s, "..");
    if (dots) {
        char a[32], b[32];
        uint64_t lo, hi;
        if ((size_t)(dots - s) >= sizeof a || strlen(dots + 2) >= sizeof b)
            goto bad;
        snprintf(a, sizeof a, "%.*s", (int)(dots - s), s);
        snprintf(b, sizeof b, "%s", dots + 2);
        if (!bd_text_u64(a, &lo) || !bd_text_u64(b, &hi) || hi < lo)
            goto bad;
        if (hi - lo >= SWEEP_MAX_RUNS) {
            fprintf(stderr, "bodhi sweep: --seeds %s: at most %d seeds\n", s, SWEEP_MAX_RUNS);
            return 2;
        }
        w->nseeds = (int)(hi - lo + 1);
        w->seeds = calloc((size_t)w->nseeds, sizeof *w->seeds);
        for (int i = 0; w->seeds && i < w->nseeds; i++)
            w->seeds[i] = lo + (uint64_t)i;
        return w->seeds ? 0 : 2;
    }
    char *copy = strdup(s), *save = NULL;
    int n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    w->seeds = calloc((size_t)n, sizeof *w->seeds);
    if (!copy || !w->seeds || n > SWEEP_MAX_RUNS) {
        free(copy);
        goto bad;
    }
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (!bd_text_u64(t, &v)) {
            free(copy);
            goto bad;
        }
        for (int i = 0; i < w->nseeds; i++)
            if (w->seeds[i] == v) {
                fprintf(stderr, "bodhi sweep: --seeds %s: seed %llu twice\n", s, (unsigned long long)v);
                free(copy);
                return 2;
            }
        w->seeds[w->nseeds++] = v;
    }
    free(copy);
    if (w->nseeds == n)
        return 0;
bad:
    fprintf(stderr, "bodhi sweep: --seeds must be A..B (A <= B) or a list A,B,C of seeds, each an integer from 0 to "
                    "18446744073709551615 (got '%s')\n", s);
    return 2;
}

/* --set PATH=V1,V2,...: 0, or 2 after saying why. */
static int parse_set(const char *arg, sweep_set *s)
{
    const char *eq = strchr(arg, '=');
    s->arg = arg;
    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "bodhi sweep: --set %s: write PATH=VALUE or PATH=V1,V2,... (e.g. --set "
                        "balancer.brain.params.learning_rate=1e-3,3e-3)\n", arg);
        return 2;
    }
    s->path = strndup(arg, (size_t)(eq - arg));
    int n = 1;
    for (const char *p = eq + 1; *p; p++)
        n += *p == ',';
    s->values = calloc((size_t)n, sizeof *s->values);
    if (!s->path || !s->values)
        return 2;
    const char *p = eq + 1;
    for (int i = 0; i < n; i++) {
        size_t k = strcspn(p, ",");
        if (k == 0) {
            fprintf(stderr, "bodhi sweep: --set %s: an empty value\n", arg);
            return 2;
        }
        s->values[i] = strndup(p, k);
        for (int j = 0; j < i; j++)
            if (s->values[i] && strcmp(s->values[i], s->values[j]) == 0) {
                fprintf(stderr, "bodhi sweep: --set %s: value '%s' twice\n", arg, s->values[i]);
                return 2;
            }
        s->nvalues++;
        p += k + 1;
    }
    return 0;
}

/* Point pi's value index of set k (the first --set varies slowest). */
static int value_of(const sweep *w, int pi, int k)
{
    int stride = 1;
    for (int j = w->nsets - 1; j > k; j--)
        stride *= w->sets[j].nvalues;
    return (pi / stride) % w->sets[k].nvalues;
}

/* A folder name: KEY=VALUE of each --set (KEY: the path's last key), joined by ',';
 * characters other than letters, digits and _.=,+- become '_'. "base" without --set. */
static char *point_name(const sweep *w, int pi, int full)
{
    char buf[512] = "";
    for (int k = 0; k < w->nsets; k++) {
        const char *key = w->sets[k].path, *dot = strrchr(key, '.');
        if (!full && dot)
            key = dot + 1;
        size_t u = strlen(buf);
        snprintf(buf + u, sizeof buf - u, "%s%s=%s", k ? "," : "", key, w->sets[k].values[value_of(w, pi, k)]);
    }
    if (!buf[0])
        snprintf(buf, sizeof buf, "base");
    for (char *c = buf; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || strchr("_.=,+-", *c)))
            *c = '_';
    if (buf[0] == '.')
        buf[0] = '_';
    if (strlen(buf) > 120) /* a folder name stays short; the index keeps it unique */
        snprintf(buf + 100, sizeof buf - 100, "...p%d", pi);
    return strdup(buf);
}

/* The points' names: short (last keys) when those are all distinct, else the full paths. */
static int name_points(sweep *w)
{
    w->points = calloc((size_t)w->npoints, sizeof *w->points);
    if (!w->points)
        return 2;
    for (int full = 0; full < 2; full++) {
        int clash = 0;
        for (int i = 0; i < w->npoints; i++) {
            free(w->points[i]);
            if (!(w->points[i] = point_name(w, i, full)))
                return 2;
            for (int j = 0; j < i && !clash; j++)
                clash = strcmp(w->points[i], w->points[j]) == 0;
        }
        if (!clash)
            return 0;
    }
    fprintf(stderr, "bodhi sweep: two points would have one folder name (%s); give values that differ in "
                    "letters or digits\n", w->points[0]);
    return 2;
}

/* The run file of point pi with seed, made from the effective tree eff, as text in *text.
 * 0, or 2 after saying why. */
static int make_text(const sweep *w, const bd_node *eff, int pi, uint64_t seed, char **text)
{
    bd_node *t = bd_node_clone(eff);
    int rc = t ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
    for (int k = 0; rc == BD_OK && k < w->nsets; k++)
        rc = bd_setpath(t, w->sets[k].path, w->sets[k].values[value_of(w, pi, k)], NULL);
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)seed);
    if (rc == BD_OK)
        rc = bd_node_set_scalar(t, "seed", num, 0);
    size_t len = 0;
    FILE *f = rc == BD_OK ? open_memstream(text, &len) : NULL;
    if (rc == BD_OK && (!f || fprintf(f, "# bodhi sweep: %s, point %s, seed %s\n", w->file, w->points[pi], num) < 0
                        || bd_node_emit(t, f) != BD_OK))
        rc = bd_seterr(BD_ENOMEM, "cannot write the run file of point %s", w->points[pi]);
    if (f)
        fclose(f);
    bd_node_destroy(t);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi sweep: %s\n", bd_lasterr());
        return 2;
    }
    return 0;
}

/* bodhi run's check of one run file (text, named path, writing out): 0 or 2 with every
 * problem said. */
static int check_text(const char *path, const char *text, const char *out, bd_runfile **rf, const char *what)
{
    bd_check_opts co = {.path = path, .text = text, .out = out, .out_check = bd_rundir_check};
    bd_diags d = BD_DIAGS_INIT;
    int rc = bd_config_check(&co, bd_registry_builtin(), &d, rf);
    if (rc != BD_OK) {
        if (what)
            fprintf(stderr, "bodhi sweep: %s is refused:\n", what);
        bd_diags_print(&d, stderr, 100);
    }
    bd_diags_fini(&d);
    return rc == BD_OK ? 0 : 2;
}

/* Every run's file, made and checked: 0, or 2 after saying why (nothing written). */
static int expand(sweep *w)
{
    bd_runfile *base = NULL;
    char *text = NULL;
    size_t len;
    if (bd_read_file_max(w->file, 16 << 20, &text, &len) != BD_OK) {
        fprintf(stderr, "bodhi sweep: %s\n", bd_lasterr());
        return 2;
    }
    free(text);
    bd_check_opts co = {.path = w->file, .out = w->dir};
    bd_diags d = BD_DIAGS_INIT;
    int rc = bd_config_check(&co, bd_registry_builtin(), &d, &base) == BD_OK ? 0 : 2;
    if (rc) {
        bd_diags_print(&d, stderr, 100);
        fprintf(stderr, "bodhi sweep: %s does not pass bodhi check; nothing was written\n", w->file);
    }
    bd_diags_fini(&d);
    if (rc)
        return rc;
    for (int k = 0; k < w->nsets && !rc; k++) /* the paths, before the values are checked */
        for (int v = 0; v < w->sets[k].nvalues && !rc; v++) {
            bd_node *t = bd_node_clone(base->effective);
            if (!t || bd_setpath(t, w->sets[k].path, w->sets[k].values[v], NULL) != BD_OK) {
                fprintf(stderr, "bodhi sweep: %s; nothing was written\n", t ? bd_lasterr() : "out of memory");
                rc = 2;
            }
            bd_node_destroy(t);
        }
    if (!rc)
        rc = name_points(w);
    w->nruns = w->npoints * w->nseeds;
    w->runs = rc ? NULL : calloc((size_t)w->nruns, sizeof *w->runs);
    if (!rc && !w->runs)
        rc = 2;
    for (int i = 0; !rc && i < w->nruns; i++) {
        sweep_run *r = &w->runs[i];
        r->pi = i / w->nseeds;
        r->point = w->points[r->pi];
        r->seed = w->seeds[i % w->nseeds];
        r->exit = -1;
        r->rel = bd_strfmt("%s/seed-%llu", r->point, (unsigned long long)r->seed);
        if (!r->rel || (rc = make_text(w, base->effective, r->pi, r->seed, &r->text)))
            break;
        char *name = bd_strfmt("%s/%s.yml", w->dir, r->rel), *out = bd_strfmt("%s/%s", w->dir, r->rel);
        char *what = bd_strfmt("the run file of point %s, seed %llu", r->point, (unsigned long long)r->seed);
        bd_runfile *rf = NULL;
        rc = name && out && what ? check_text(name, r->text, out, &rf, what) : 2;
        bd_runfile_destroy(rf);
        if (rc) {
            fprintf(stderr, "bodhi sweep: its values:");
            for (int k = 0; k < w->nsets; k++)
                fprintf(stderr, " --set %s=%s", w->sets[k].path, w->sets[k].values[value_of(w, r->pi, k)]);
            fprintf(stderr, "\nbodhi sweep: nothing was written\n");
        }
        free(name);
        free(out);
        free(what);
    }
    bd_runfile_destroy(base);
    return rc;
}

/* ---- the sweep's folder ------------------------------------------------------------------ */

/* Single-quoted for sh. Caller frees. */
static char *sh_quote(const char *s)
{
    size_t n = 3;
    for (const char *p = s; *p; p++)
        n += *p == '\'' ? 4 : 1;
    char *q = malloc(n), *o = q;
    if (!q)
        return NULL;
    *o++ = '\'';
    for (const char *p = s; *p; p++) {
        if (*p == '\'') {
            memcpy(o, "'\\''", 4);
            o += 4;
        } else {
            *o++ = *p;
        }
    }
    *o++ = '\'';
    *o = '\0';
    return q;
}

/* sweep.json (written whole, then renamed over the last one). */
static int write_json(const sweep *w)
{
    cJSON *j = cJSON_CreateObject();
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *file = realpath(w->file, NULL);
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "file", file ? file : w->file);
    free(file);
    cJSON_AddStringToObject(j, "bodhi", exe);
    cJSON_AddStringToObject(j, "mode", w->slurm ? "slurm" : "local");
    cJSON *seeds = cJSON_AddArrayToObject(j, "seeds");
    for (int i = 0; i < w->nseeds; i++) {
        char num[32];
        snprintf(num, sizeof num, "%llu", (unsigned long long)w->seeds[i]);
        cJSON_AddItemToArray(seeds, w->seeds[i] < (1ull << 53) ? cJSON_CreateNumber((double)w->seeds[i])
                                                              : cJSON_CreateRaw(num));
    }
    cJSON *sets = cJSON_AddArrayToObject(j, "sets");
    for (int k = 0; k < w->nsets; k++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "path", w->sets[k].path);
        cJSON_AddItemToObject(s, "values", cJSON_CreateStringArray((const char *const *)w->sets[k].values,
                                                                   w->sets[k].nvalues));
        cJSON_AddItemToArray(sets, s);
    }
    cJSON *pts = cJSON_AddArrayToObject(j, "points");
    for (int p = 0; p < w->npoints; p++) {
        cJSON *o = cJSON_CreateObject(), *set = cJSON_AddObjectToObject(o, "set");
        cJSON_AddStringToObject(o, "name", w->points[p]);
        for (int k = 0; k < w->nsets; k++)
            cJSON_AddStringToObject(set, w->sets[k].path, w->sets[k].values[value_of(w, p, k)]);
        cJSON *runs = cJSON_AddArrayToObject(o, "runs");
        for (int i = 0; i < w->nruns; i++) {
            const sweep_run *r = &w->runs[i];
            if (r->pi != p)
                continue;
            cJSON *ro = cJSON_CreateObject();
            char num[32], *yml = bd_strfmt("%s.yml", r->rel);
            snprintf(num, sizeof num, "%llu", (unsigned long long)r->seed);
            cJSON_AddItemToObject(ro, "seed", r->seed < (1ull << 53) ? cJSON_CreateNumber((double)r->seed)
                                                                     : cJSON_CreateRaw(num));
            cJSON_AddNumberToObject(ro, "task", i);
            cJSON_AddStringToObject(ro, "file", yml ? yml : "");
            cJSON_AddStringToObject(ro, "dir", r->rel);
            if (r->exit >= 0)
                cJSON_AddNumberToObject(ro, "exit", r->exit);
            else
                cJSON_AddNullToObject(ro, "exit");
            free(yml);
            cJSON_AddItemToArray(runs, ro);
        }
        cJSON_AddItemToArray(pts, o);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char *tmp = bd_strfmt("%s/sweep.json.new", w->dir), *to = bd_strfmt("%s/sweep.json", w->dir);
    int rc = text && tmp && to && bd_write_file(tmp, text, strlen(text)) == BD_OK && rename(tmp, to) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "bodhi sweep: cannot write %s/sweep.json: %s\n", w->dir, bd_lasterr());
    free(text);
    free(tmp);
    free(to);
    return rc;
}

/* sweep.sbatch: a Slurm array, task i runs run i (the order of sweep.json's "task"). */
static int write_sbatch(const sweep *w)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *qdir = sh_quote(w->dir), *qexe = sh_quote(exe), *path = bd_strfmt("%s/sweep.sbatch", w->dir);
    FILE *f = qdir && qexe && path ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "#!/bin/bash\n"
                   "#SBATCH --job-name=bodhi-sweep\n"
                   "#SBATCH --array=0-%d\n"
                   "#SBATCH --ntasks=1\n"
                   "#SBATCH --output=%s/slurm-%%A_%%a.out\n"
                   "# Written by bodhi sweep from %s: %d run(s), one array task each (sweep.json's \"task\").\n"
                   "# Add the lines your cluster wants (--partition, --time, --cpus-per-task, --gres) above.\n"
                   "# Submit: sbatch %s/sweep.sbatch\n"
                   "set -eu\n"
                   "sweep=%s\n"
                   "runs=(\n",
                w->nruns - 1, w->dir, w->file, w->nruns, w->dir, qdir);
        for (int i = 0; i < w->nruns; i++) {
            char *q = sh_quote(w->runs[i].rel);
            fprintf(f, "  %s # task %d\n", q ? q : "''", i);
            free(q);
        }
        fprintf(f, ")\n"
                   ": \"${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (it is a Slurm array job)}\"\n"
                   "if [ \"$SLURM_ARRAY_TASK_ID\" -lt 0 ] || [ \"$SLURM_ARRAY_TASK_ID\" -ge %d ]; then\n"
                   "  echo \"bodhi sweep: no task $SLURM_ARRAY_TASK_ID (0 to %d)\" >&2\n"
                   "  exit 2\n"
                   "fi\n"
                   "run=\"${runs[$SLURM_ARRAY_TASK_ID]}\"\n"
                   "exec %s run \"$sweep/$run.yml\" --out \"$sweep/$run\" --quiet\n",
                w->nruns, w->nruns - 1, qexe);
    }
    int rc = f && fclose(f) == 0 && chmod(path, 0755) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "bodhi sweep: cannot write %s: %s\n", path ? path : "sweep.sbatch", strerror(errno));
    free(qdir);
    free(qexe);
    free(path);
    return rc;
}

/* An earlier sweep at w->dir is moved aside (a live run in it refuses); an empty folder
 * goes; anything else refuses. 0, or 2 after saying why. */
static int clear_place(sweep *w)
{
    struct stat st;
    if (lstat(w->dir, &st) != 0)
        return errno == ENOENT ? 0 : (fprintf(stderr, "bodhi sweep: %s: %s\n", w->dir, strerror(errno)), 2);
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bodhi sweep: %s exists and is not a folder; nothing was touched (choose another --out)\n",
                w->dir);
        return 2;
    }
    if (rmdir(w->dir) == 0)
        return 0;
    char *json = bd_strfmt("%s/sweep.json", w->dir), *text = NULL;
    size_t len;
    cJSON *j = json && bd_read_file_max(json, 64 << 20, &text, &len) == BD_OK ? cJSON_Parse(text) : NULL;
    free(json);
    free(text);
    if (!j) {
        fprintf(stderr, "bodhi sweep: %s is a folder that holds no bodhi sweep (no sweep.json); nothing was touched "
                        "(choose another --out)\n", w->dir);
        return 2;
    }
    int rc = 0;
    char *lock = bd_strfmt("%s/sweep.lock", w->dir);
    int fd = lock ? open(lock, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0 && flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        fprintf(stderr, "bodhi sweep: a bodhi sweep is running in %s; nothing was touched (wait for it, stop it, or "
                        "choose another --out)\n", w->dir);
        rc = 2;
    }
    if (fd >= 0)
        close(fd);
    free(lock);
    const cJSON *p, *r;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(j, "points"))
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(p, "runs"))
    {
        const cJSON *dir = cJSON_GetObjectItemCaseSensitive(r, "dir");
        char *run = cJSON_IsString(dir) ? bd_strfmt("%s/%s", w->dir, dir->valuestring) : NULL;
        if (!rc && run && bd_rundir_check(run) != BD_OK) {
            fprintf(stderr, "bodhi sweep: the earlier sweep in %s still runs: %s\n", w->dir, bd_lasterr());
            rc = 2;
        }
        free(run);
    }
    cJSON_Delete(j);
    char *to = NULL;
    if (!rc && bd_move_aside_as_prev(w->dir, "sweep", &to) != BD_OK) {
        fprintf(stderr, "bodhi sweep: %s\n", bd_lasterr());
        rc = 2;
    } else if (!rc) {
        fprintf(stderr, "bodhi sweep: the earlier sweep in %s was moved to %s\n", w->dir, to);
    }
    free(to);
    return rc;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)f;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

/* The folder, made whole beside SWEEP_DIR and renamed to it. 0, or 1/2 after saying why. */
static int write_tree(sweep *w)
{
    char *stage = bd_strfmt("%s.new-XXXXXX", w->dir);
    int rc = stage ? 0 : 1;
    char *slash = stage ? strrchr(w->dir, '/') : NULL;
    if (!rc && slash && slash != w->dir) { /* the folder above it */
        *slash = '\0';
        if (bd_mkdirs(w->dir) != BD_OK) {
            fprintf(stderr, "bodhi sweep: %s; nothing was written\n", bd_lasterr());
            rc = 2;
        }
        *slash = '/';
    }
    if (!rc && (rc = clear_place(w)))
        goto out;
    if (!rc && !mkdtemp(stage)) {
        fprintf(stderr, "bodhi sweep: cannot make %s: %s\n", stage, strerror(errno));
        rc = 2;
    }
    for (int i = 0; !rc && i < w->nruns; i++) {
        char *pd = bd_strfmt("%s/%s", stage, w->runs[i].point), *yml = bd_strfmt("%s/%s.yml", stage, w->runs[i].rel);
        if (!pd || !yml || (mkdir(pd, 0700) != 0 && errno != EEXIST)
            || bd_write_file(yml, w->runs[i].text, strlen(w->runs[i].text)) != BD_OK) {
            fprintf(stderr, "bodhi sweep: cannot write %s: %s\n", yml ? yml : "?", bd_lasterr());
            rc = 1;
        }
        free(pd);
        free(yml);
    }
    if (!rc && rename(stage, w->dir) != 0) {
        fprintf(stderr, "bodhi sweep: cannot rename %s to %s: %s\n", stage, w->dir, strerror(errno));
        rc = 1;
    }
    if (rc && stage && bd_exists(stage) && nftw(stage, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0)
        fprintf(stderr, "bodhi sweep: %s is left behind\n", stage); /* the half-made folder of this process */
    char *real = rc ? NULL : realpath(w->dir, NULL);
    if (real)
        snprintf(w->dir, sizeof w->dir, "%s", real);
    free(real);
    if (!rc)
        rc = write_json(w) || (w->slurm && write_sbatch(w)) ? 1 : 0;
out:
    free(stage);
    return rc;
}

/* ---- running here ------------------------------------------------------------------------ */

static volatile sig_atomic_t g_sig;      /* the first signal that stops the sweep */
static volatile sig_atomic_t g_child = 0;/* the run going on */

static void on_signal(int sig)
{
    if (!g_sig)
        g_sig = sig;
    if (g_child > 0)
        kill((pid_t)g_child, sig); /* its conductor stops it cleanly (a second one kills it) */
}

/* Run i as `bodhi run FILE --out DIR` in a process group of its own (the terminal's Ctrl-C
 * reaches it once, through this process); its exit code. */
static int run_one(const sweep *w, int i, const char *exe)
{
    char *yml = bd_strfmt("%s/%s.yml", w->dir, w->runs[i].rel), *out = bd_strfmt("%s/%s", w->dir, w->runs[i].rel);
    if (!yml || !out) {
        free(yml);
        free(out);
        return 1;
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        if (getppid() == 1)
            _exit(143);
        execl(exe, "bodhi", "run", yml, "--out", out, w->quiet ? "--quiet" : (char *)NULL, (char *)NULL);
        fprintf(stderr, "bodhi sweep: cannot start %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    if (pid > 0) {
        setpgid(pid, pid);
        g_child = pid;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    free(yml);
    free(out);
    if (pid < 0) {
        fprintf(stderr, "bodhi sweep: fork: %s\n", strerror(errno));
        return 1;
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    g_child = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int run_here(sweep *w)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "bodhi sweep: cannot find this program (/proc/self/exe): %s\n", strerror(errno));
        return 1;
    }
    exe[n] = '\0';
    char *lock = bd_strfmt("%s/sweep.lock", w->dir); /* held while the sweep runs here (the kernel drops it) */
    int lfd = lock ? open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600) : -1;
    free(lock);
    if (lfd < 0 || flock(lfd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "bodhi sweep: cannot lock %s/sweep.lock: %s\n", w->dir, strerror(errno));
        if (lfd >= 0)
            close(lfd);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal}, old[3];
    sigemptyset(&sa.sa_mask);
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int k = 0; k < 3; k++)
        sigaction(sigs[k], &sa, &old[k]);
    int failed = 0, done = 0;
    for (int i = 0; i < w->nruns && !g_sig; i++) {
        if (!w->quiet)
            fprintf(stderr, "bodhi sweep: run %d of %d: %s\n", i + 1, w->nruns, w->runs[i].rel);
        w->runs[i].exit = run_one(w, i, exe);
        done++;
        if (w->runs[i].exit != 0 && !g_sig) {
            failed++;
            fprintf(stderr, "bodhi sweep: %s ended with exit %d (see %s/%s/log.jsonl); the sweep goes on\n",
                    w->runs[i].rel, w->runs[i].exit, w->dir, w->runs[i].rel);
        }
        if (write_json(w))
            failed++;
    }
    for (int k = 0; k < 3; k++)
        sigaction(sigs[k], &old[k], NULL);
    close(lfd);
    if (g_sig) {
        fprintf(stderr, "bodhi sweep: stopped by a signal after %d of %d run(s); the finished ones are kept in %s\n",
                done, w->nruns, w->dir);
        return g_sig == SIGINT ? 130 : g_sig == SIGHUP ? 129 : 143;
    }
    printf("bodhi sweep: %d run(s) in %s, %d failed; bodhi replay %s tabulates them\n", w->nruns, w->dir, failed,
           w->dir);
    return failed ? 1 : 0;
}

static void sweep_free(sweep *w)
{
    for (int k = 0; k < w->nsets; k++) {
        for (int v = 0; v < w->sets[k].nvalues; v++)
            free(w->sets[k].values[v]);
        free(w->sets[k].values);
        free(w->sets[k].path);
    }
    for (int i = 0; w->runs && i < w->nruns; i++) {
        free(w->runs[i].rel);
        free(w->runs[i].text);
    }
    for (int p = 0; w->points && p < w->npoints; p++)
        free(w->points[p]);
    free(w->points);
    free(w->runs);
    free(w->seeds);
}

/* The options into w: 0, -1 after --help, or 2. --set may come several times. */
static int sweep_options(int argc, char **argv, sweep *w)
{
    const char *seeds = NULL, *slurm = NULL, *quiet = NULL, *out = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0, rc = 0;
    if (!rest)
        return 2;
    for (int i = 0; i < argc; i++) { /* --set PATH=V..., as often as asked, before the others */
        if (i > 0 && strcmp(argv[i], "--set") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "bodhi sweep: option '--set' needs a value\n");
                rc = 2;
                break;
            }
            if (w->nsets >= SWEEP_MAX_SETS) {
                fprintf(stderr, "bodhi sweep: at most %d --set options\n", SWEEP_MAX_SETS);
                rc = 2;
                break;
            }
            if ((rc = parse_set(argv[++i], &w->sets[w->nsets++])))
                break;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    bd_opt spec[] = {{"seeds=", &seeds}, {"out=", &out}, {"slurm", &slurm}, {"quiet", &quiet}, {0}};
    if (!rc)
        rc = bd_parse_opts("sweep", nrest, rest, spec, &w->file, 1, 1);
    free(rest);
    if (rc)
        return rc == BD_OPTS_HELP ? -1 : rc;
    w->slurm = slurm != NULL;
    w->quiet = quiet != NULL;
    if ((rc = parse_seeds(seeds ? seeds : "0", w)))
        return rc;
    if (!seeds) { /* the run file's own seed: one run per point */
        free(w->seeds);
        w->seeds = NULL;
        w->nseeds = 0;
    }
    w->npoints = 1;
    for (int k = 0; k < w->nsets; k++) {
        if ((long long)w->npoints * w->sets[k].nvalues > SWEEP_MAX_RUNS) {
            fprintf(stderr, "bodhi sweep: more than %d points\n", SWEEP_MAX_RUNS);
            return 2;
        }
        w->npoints *= w->sets[k].nvalues;
        for (int j = 0; j < k; j++)
            if (strcmp(w->sets[j].path, w->sets[k].path) == 0) {
                fprintf(stderr, "bodhi sweep: --set %s twice\n", w->sets[k].path);
                return 2;
            }
    }
    w->out = out;
    return 0;
}

int bd_cmd_sweep(int argc, char **argv)
{
    sweep w = {0};
    int rc = sweep_options(argc, argv, &w);
    if (rc) {
        sweep_free(&w);
        return rc < 0 ? 0 : rc;
    }
    if (!w.seeds) { /* no --seeds: the run file's seed */
        bd_runfile *rf = NULL;
        if (bd_runfile_load(w.file, &rf) != BD_OK) {
            fprintf(stderr, "%s\n", bd_lasterr());
            sweep_free(&w);
            return 2;
        }
        w.seeds = malloc(sizeof *w.seeds);
        w.seeds[0] = rf->seed;
        w.nseeds = 1;
        bd_runfile_destroy(rf);
    }
    if ((long long)w.npoints * w.nseeds > SWEEP_MAX_RUNS) {
        fprintf(stderr, "bodhi sweep: %lld runs; at most %d\n", (long long)w.npoints * w.nseeds, SWEEP_MAX_RUNS);
        sweep_free(&w);
        return 2;
    }
    if (w.out) {
        size_t n = strlen(w.out);
        while (n > 1 && w.out[n - 1] == '/')
            n--;
        snprintf(w.dir, sizeof w.dir, "%.*s", (int)n, w.out);
    } else {
        bd_runfile *rf = NULL;
        if (bd_runfile_load(w.file, &rf) != BD_OK) {
            fprintf(stderr, "%s\n", bd_lasterr());
            sweep_free(&w);
            return 2;
        }
        snprintf(w.dir, sizeof w.dir, "sweeps/%s", rf->uid);
        bd_runfile_destroy(rf);
    }
    const char *base = strrchr(w.dir, '/') ? strrchr(w.dir, '/') + 1 : w.dir;
    if (!w.dir[0] || strcmp(w.dir, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0
        || strlen(w.dir) > PATH_MAX - 512) {
        fprintf(stderr, "bodhi sweep: --out %s cannot be a sweep's folder (name a folder of its own)\n", w.dir);
        sweep_free(&w);
        return 2;
    }
    if ((rc = expand(&w)) || (rc = write_tree(&w))) {
        sweep_free(&w);
        return rc;
    }
    if (w.slurm) {
        printf("bodhi sweep: %d run(s) (%d point(s) x %d seed(s)) in %s\nsubmit them with: sbatch %s/sweep.sbatch\n",
               w.nruns, w.npoints, w.nseeds, w.dir, w.dir);
        sweep_free(&w);
        return 0;
    }
    if (!w.quiet)
        fprintf(stderr, "bodhi sweep: %d run(s) (%d point(s) x %d seed(s)) in %s\n", w.nruns, w.npoints, w.nseeds,
                w.dir);
    rc = run_here(&w);
    sweep_free(&w);
    return rc;
}
