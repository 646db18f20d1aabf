/* sweep.c: `bodhi sweep FILE [--seeds A..B|A,B,...] [--set PATH=V1,V2,...]... [--out SWEEP_DIR]
 * [--slurm] [--quiet]`: the runs of a run file over seeds and values (docs/run-file.md,
 * "Sweeps"). Every run file is made from FILE's effective tree (config/setpath.h) and
 * checked as `bodhi run` would check it before anything is written; then SWEEP_DIR holds
 *   sweep.json              the points, seeds, files, folders and each run's exit status
 *   <point>/seed-<k>.yml    the run file of each run
 *   <point>/seed-<k>/       its run folder (bodhi run --out)
 *   sweep.sbatch            with --slurm: a Slurm array script, one task per run
 * and without --slurm the runs go one after another here, each a `bodhi run` child
 * (cli/sweep_dir.c writes the folder and runs them). */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sweep.h"
#include "common/launch.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "conductor/rundir.h"
#include "config/check.h"
#include "config/setpath.h"

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

int bd_sweep_value_of(const sweep *w, int pi, int k)
{
    int stride = 1;
    for (int j = w->nsets - 1; j > k; j--)
        stride *= w->sets[j].nvalues;
    return (pi / stride) % w->sets[k].nvalues;
}

/* The last key of --set k's path. */
static const char *short_key(const sweep *w, int k)
{
    const char *dot = strrchr(w->sets[k].path, '.');
    return dot ? dot + 1 : w->sets[k].path;
}

/* A folder name: KEY=VALUE of each --set (KEY: the path's last key), joined by ',';
 * characters other than letters, digits and _.=,+- become '_'. "base" without --set. */
static char *point_name(const sweep *w, int pi, int full)
{
    char buf[512] = "";
    for (int k = 0; k < w->nsets; k++) {
        const char *key = full ? w->sets[k].path : short_key(w, k);
        size_t u = strlen(buf);
        snprintf(buf + u, sizeof buf - u, "%s%s=%s", k ? "," : "", key, w->sets[k].values[bd_sweep_value_of(w, pi, k)]);
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

/* The points' names: short (last keys) when those keys and the names are all distinct,
 * else the full paths (train:...worker and test:...worker both read "worker"). */
static int name_points(sweep *w)
{
    w->points = calloc((size_t)w->npoints, sizeof *w->points);
    if (!w->points)
        return 2;
    int same_keys = 0;
    for (int a = 0; a < w->nsets; a++)
        for (int b = 0; b < a; b++)
            same_keys = same_keys || strcmp(short_key(w, a), short_key(w, b)) == 0;
    for (int full = same_keys; full < 2; full++) {
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
        rc = bd_setpath(t, w->sets[k].path, w->sets[k].values[bd_sweep_value_of(w, pi, k)], NULL);
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)seed);
    if (rc == BD_OK)
        rc = bd_node_set_scalar(t, "seed", num, 0);
    size_t len = 0;
    FILE *f = rc == BD_OK ? open_memstream(text, &len) : NULL;
    char from[256];
    snprintf(from, sizeof from, "%s", w->file);
    for (char *c = from; *c; c++)
        *c = (unsigned char)*c < ' ' ? '?' : *c; /* one comment line */
    if (rc == BD_OK && (!f || fprintf(f, "# bodhi sweep: %s, point %s, seed %s\n", from, w->points[pi], num) < 0
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
    bd_check_opts co = {.path = w->file, .out = w->dir};
    bd_diags d = BD_DIAGS_INIT;
    int rc = bd_config_check(&co, bd_registry_builtin(), &d, &base) == BD_OK ? 0 : 2;
    if (rc) {
        bd_diags_print(&d, stderr, 100);
        fprintf(stderr, "bodhi sweep: %s with --out %s does not pass bodhi check (above); nothing was written\n",
                w->file, w->dir);
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
        if (!r->rel || (rc = make_text(w, base->effective, r->pi, r->seed, &r->text))) {
            rc = 2;
            break;
        }
        char *name = bd_strfmt("%s/%s.yml", w->dir, r->rel), *out = bd_strfmt("%s/%s", w->dir, r->rel);
        char *what = bd_strfmt("the run file of point %s, seed %llu", r->point, (unsigned long long)r->seed);
        bd_runfile *rf = NULL;
        rc = name && out && what ? check_text(name, r->text, out, &rf, what) : 2;
        bd_runfile_destroy(rf);
        if (rc && w->nsets) {
            fprintf(stderr, "bodhi sweep: its values:");
            for (int k = 0; k < w->nsets; k++)
                fprintf(stderr, " --set %s=%s", w->sets[k].path, w->sets[k].values[bd_sweep_value_of(w, r->pi, k)]);
            fprintf(stderr, "\n");
        }
        if (rc)
            fprintf(stderr, "bodhi sweep: nothing was written\n");
        free(name);
        free(out);
        free(what);
    }
    bd_runfile_destroy(base);
    return rc;
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
    if (seeds && (rc = parse_seeds(seeds, w))) /* without: the run file's own seed */
        return rc;
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

/* Without --slurm each run is a `bodhi run` child, which takes a launcher's variables
 * (common/launch.h) as its rank among several: under a launcher, or with them left
 * exported, every run would wait alone for ranks that never come. 0, or 2 after saying why. */
static int sweep_not_a_rank(void)
{
    bd_launch l;
    if (bd_launch_from_env(NULL, &l) != BD_OK) {
        fprintf(stderr, "bodhi sweep: %s: each run of the sweep would refuse them; run the sweep without a launcher "
                        "(unset them), or write a Slurm array with --slurm\n", bd_lasterr());
        return 2;
    }
    if (l.world == 1)
        return 0;
    const char *const *vars = bd_launcher_vars(l.by);
    if (!vars) /* (options are not read here) */
        return 0;
    const char *r = vars[0], *n = vars[1];
    fprintf(stderr, "bodhi sweep: the environment makes this process rank %d of %d (%s: %s=%s, %s=%s), and each run "
                    "of the sweep would be that one rank of a run whose other ranks never come; run the sweep without "
                    "a launcher (unset %s and %s), or write a Slurm array with --slurm; nothing was written\n",
            l.rank, l.world, bd_launcher_name(l.by), r, getenv(r), n, getenv(n), r, n);
    return 2;
}

int bd_cmd_sweep(int argc, char **argv)
{
    sweep w = {0};
    int rc = sweep_options(argc, argv, &w);
    if (!rc && !w.slurm) /* with --slurm the script is only written: the variables do not matter */
        rc = sweep_not_a_rank();
    if (rc) {
        sweep_free(&w);
        return rc < 0 ? 0 : rc;
    }
    /* the run file's seed (no --seeds) and uid (no --out); a file that does not load is
     * checked below, which says every problem */
    bd_runfile *rf = NULL;
    int loaded = bd_runfile_load(w.file, &rf) == BD_OK;
    if (!w.seeds && (w.seeds = malloc(sizeof *w.seeds))) {
        w.seeds[0] = loaded ? rf->seed : 0;
        w.nseeds = 1;
    }
    size_t n = w.out ? strlen(w.out) : 0;
    while (n > 1 && w.out[n - 1] == '/')
        n--;
    if (w.out)
        snprintf(w.dir, sizeof w.dir, "%.*s", (int)n, w.out);
    else
        snprintf(w.dir, sizeof w.dir, "sweeps/%s", loaded && rf->uid ? rf->uid : "sweep");
    bd_runfile_destroy(rf);
    if (!w.seeds || (long long)w.npoints * w.nseeds > SWEEP_MAX_RUNS) {
        fprintf(stderr, "bodhi sweep: %lld runs; at most %d\n", (long long)w.npoints * w.nseeds, SWEEP_MAX_RUNS);
        sweep_free(&w);
        return 2;
    }
    const char *base = strrchr(w.dir, '/') ? strrchr(w.dir, '/') + 1 : w.dir;
    if (!w.dir[0] || strcmp(w.dir, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0
        || strlen(w.dir) > PATH_MAX - 512) {
        fprintf(stderr, "bodhi sweep: --out %s cannot be a sweep's folder (name a folder of its own)\n", w.dir);
        sweep_free(&w);
        return 2;
    }
    char cwd[PATH_MAX], abs[PATH_MAX + 8];
    int alen = w.dir[0] != '/' && getcwd(cwd, sizeof cwd) /* the path the Slurm script names */
                   ? snprintf(abs, sizeof abs, "%.*s/%s", (int)(sizeof cwd - 1), cwd, w.dir)
                   : snprintf(abs, sizeof abs, "%s", w.dir);
    if (alen < 0 || (size_t)alen >= sizeof abs) {
        fprintf(stderr, "bodhi sweep: --out %s: its absolute path is longer than %d bytes\n", w.dir, PATH_MAX);
        sweep_free(&w);
        return 2;
    }
    for (const char *c = abs; w.slurm && *c; c++)
        if ((unsigned char)*c <= ' ' || *c == '%' || *c == '\\' || *c == 0x7f) {
            fprintf(stderr, "bodhi sweep: --slurm: the sweep's folder %s holds a space, control character, %% or "
                            "backslash, which sbatch's #SBATCH lines do not take; choose another --out\n", abs);
            sweep_free(&w);
            return 2;
        }
    if ((rc = expand(&w)) || (rc = bd_sweep_write(&w))) {
        sweep_free(&w);
        return rc;
    }
    if (w.slurm) {
        char *sb = bd_strfmt("%s/sweep.sbatch", w.dir), *qsb = sb ? bd_sweep_sh_word(sb) : NULL;
        printf("bodhi sweep: %d run(s) (%d point(s) x %d seed(s)) in %s\nsubmit them with: sbatch %s\n", w.nruns,
               w.npoints, w.nseeds, w.dir, qsb ? qsb : "sweep.sbatch");
        free(sb);
        free(qsb);
        sweep_free(&w);
        return 0;
    }
    if (!w.quiet)
        fprintf(stderr, "bodhi sweep: %d run(s) (%d point(s) x %d seed(s)) in %s\n", w.nruns, w.npoints, w.nseeds,
                w.dir);
    rc = bd_sweep_run_here(&w);
    sweep_free(&w);
    return rc;
}
