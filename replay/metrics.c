/* metrics.c: `bodhi replay RUN_DIR --metrics FILE.csv --tensorboard DIR`: the learner's
 * metrics of every `update` event in the run's log.jsonl (returns, episode lengths, losses,
 * KL, entropy, learning rate, steps/s ...), per phase and agent, against the agent's env
 * steps (the event's `steps`), as one CSV and as TensorBoard event files
 * (DIR/<phase>/<agent>/events.out.tfevents.*, common/tfevents.h).
 * A line that does not parse (the last line of a killed run) is skipped and counted. */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/tfevents.h"
#include "common/util.h"
#include "replay/replay.h"

#define METRICS_LINE_MAX ((size_t)1 << 20) /* a longer log line is no event of ours */

/* A phase or agent name fit to be a folder name under the export. */
static int plain_name(const char *s)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0; /* no control characters in a folder name or a CSV field */
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 128;
}

/* One CSV field (RFC 4180): quoted when it holds a comma, quote or line end, and kept
 * from being read as a formula by a spreadsheet (a leading = + - @ gets a '). */
static void csv_field(FILE *f, const char *s)
{
    const int formula = strchr("=+-@", s[0]) && s[0];
    if (!formula && !strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    if (formula)
        fputc('\'', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

typedef struct {
    char *key; /* "phase/agent" */
    bd_tfevents *w;
} tb_entry;

typedef struct {
    const char *dir;
    tb_entry *e;
    int n, cap;
} tb_set;

static int tb_writer(tb_set *s, const char *phase, const char *agent, double t, bd_tfevents **w)
{
    char key[300];
    snprintf(key, sizeof key, "%s/%s", phase, agent);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->e[i].key, key) == 0) {
            *w = s->e[i].w;
            return BD_OK;
        }
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        tb_entry *e = realloc(s->e, (size_t)cap * sizeof *e);
        if (!e)
            return bd_seterr(BD_ENOMEM, "out of memory");
        s->e = e;
        s->cap = cap;
    }
    char *dir = bd_strfmt("%s/%s", s->dir, key);
    if (!dir)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int rc = bd_tfevents_open(dir, t, w);
    free(dir);
    if (rc)
        return rc;
    s->e[s->n].key = bd_strdup(key);
    s->e[s->n++].w = *w;
    return BD_OK;
}

static int tb_close_all(tb_set *s, FILE *out)
{
    int rc = BD_OK;
    for (int i = 0; i < s->n; i++) {
        if (out)
            fprintf(out, "tensorboard: %s\n", bd_tfevents_path(s->e[i].w));
        int c = bd_tfevents_close(s->e[i].w);
        rc = rc ? rc : c;
        free(s->e[i].key);
    }
    free(s->e);
    return rc;
}

/* Whether o (a parsed log line) is an agent's update the export writes: an `update` event
 * with a phase and agent fit for folder names and a step count an integer holds; its
 * phase and agent into *phase and *agent (each_update asks it for every walk of the log). */
static int update_of(const cJSON *o, const cJSON **phase, const cJSON **agent)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(o, "steps"), *u = cJSON_GetObjectItemCaseSensitive(o, "update");
    *phase = cJSON_GetObjectItemCaseSensitive(o, "phase");
    *agent = cJSON_GetObjectItemCaseSensitive(o, "agent");
    return cJSON_IsString(ev) && strcmp(ev->valuestring, "update") == 0 && cJSON_IsString(*phase)
           && cJSON_IsString(*agent) && cJSON_IsNumber(steps) && plain_name((*phase)->valuestring)
           && plain_name((*agent)->valuestring) && fabs(steps->valuedouble) < 9e18
           && (!cJSON_IsNumber(u) || fabs(u->valuedouble) < 9e18);
}

/* Calls fn(o, phase, agent, ctx) for each agent's update of log f (update_of), in order,
 * reading no more than `limit` bytes (< 0: to its end); stops at fn's first error and
 * returns it. *bad counts the lines that are no JSON event (a killed run's last line),
 * *read the bytes read. tb_fresh and the export both walk the log with it. */
typedef int (*update_fn)(const cJSON *o, const cJSON *phase, const cJSON *agent, void *ctx);
static int each_update(FILE *f, long long limit, update_fn fn, void *ctx, long long *bad, long long *read)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = BD_OK;
    *bad = *read = 0;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        if (limit >= 0 && *read + len > limit)
            break; /* written since the limit was taken (a live run) */
        *read += len;
        if ((size_t)len > METRICS_LINE_MAX || !strstr(line, "\"update\"")) {
            *bad += (size_t)len > METRICS_LINE_MAX;
            continue;
        }
        cJSON *o = cJSON_ParseWithLength(line, (size_t)len);
        const cJSON *phase, *agent;
        if (!o)
            ++*bad;
        else if (update_of(o, &phase, &agent))
            rc = fn(o, phase, agent, ctx);
        cJSON_Delete(o);
    }
    free(line);
    return rc;
}

typedef struct {
    FILE *csv;     /* NULL: no --metrics */
    tb_set *tb;    /* NULL: no --tensorboard */
    long long rows;
} metrics_out;

/* One update event: its row(s) in the CSV and its event in the TensorBoard file. */
static int metrics_event(const cJSON *o, const cJSON *phase, const cJSON *agent, void *ctx)
{
    metrics_out *m = ctx;
    FILE *csv = m->csv;
    tb_set *tb = m->tb;
    const cJSON *steps = cJSON_GetObjectItemCaseSensitive(o, "steps");
    const char *tag[BD_UPDATE_METRICS_MAX];
    double value[BD_UPDATE_METRICS_MAX];
    int n = bd_update_metrics(o, tag, value, BD_UPDATE_METRICS_MAX);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "t"), *u = cJSON_GetObjectItemCaseSensitive(o, "update");
    double wall = cJSON_IsNumber(t) ? t->valuedouble : 0;
    long long step = (long long)steps->valuedouble, update = cJSON_IsNumber(u) ? (long long)u->valuedouble : -1;
    for (int i = 0; csv && i < n; i++) {
        csv_field(csv, phase->valuestring);
        fputc(',', csv);
        csv_field(csv, agent->valuestring);
        fprintf(csv, ",%lld,%lld,%.17g,", update, step, wall);
        csv_field(csv, tag[i]);
        fprintf(csv, ",%.17g\n", value[i]);
        m->rows++;
    }
    bd_tfevents *w;
    int rc = BD_OK;
    if (tb && n > 0 && (rc = tb_writer(tb, phase->valuestring, agent->valuestring, wall, &w)) == BD_OK)
        rc = bd_tfevents_update(w, o);
    return rc;
}

/* Whether s has a ".." part. */
static int has_dotdot(const char *s)
{
    for (const char *p = s; (p = strstr(p, "..")); p += 2)
        if ((p == s || p[-1] == '/') && (p[2] == '/' || p[2] == '\0'))
            return 1;
    return 0;
}

/* Whether path, or a folder above it, is the file st names; path is cut short on the way
 * up. */
static int at_or_above(char *path, const struct stat *st)
{
    for (;;) {
        struct stat at;
        if (stat(path, &at) == 0 && at.st_dev == st->st_dev && at.st_ino == st->st_ino)
            return 1;
        char *slash = strrchr(path, '/');
        if (!slash || strcmp(path, "/") == 0)
            return 0;
        *(slash == path ? slash + 1 : slash) = '\0';
    }
}

/* BD_OK when tb_dir (made or not) is outside the run's folder run_dir, which holds its own
 * event files in tb/, and does not hold it: curves written in the folder (RUN_DIR/train/<agent>/
 * beside tb/), in tb/ or below either, TensorBoard pointed at the run shows twice, and the
 * run's folder gets files no run wrote; written into a folder above the run's (runs/ for
 * runs/x) when the run has its own tb/, TensorBoard pointed at that folder shows them twice. */
static int tb_outside(const char *run_dir, const char *tb_dir)
{
    struct stat rs, st;
    if (stat(run_dir, &rs) != 0)
        return BD_OK; /* said where the run is read */
    char *own = bd_strfmt("%s/tb", run_dir); /* the run's own curves (a run made before them has none) */
    struct stat own_st;
    const int has_own = own && stat(own, &own_st) == 0 && S_ISDIR(own_st.st_mode);
    free(own);
    char *up = bd_strdup(tb_dir), *real = NULL;
    size_t there = up ? strlen(up) : 0; /* tb_dir's first `there` bytes: its nearest part that is there */
    while (up && !(real = realpath(up, NULL))) {
        char *slash = strrchr(up, '/');
        if (!slash || slash == up) {
            strcpy(up, slash ? "/" : ".");
            there = slash ? 1 : 0;
            real = realpath(up, NULL);
            break;
        }
        *slash = '\0';
        there = strlen(up);
    }
    free(up);
    /* the part to be made is resolved when made: a ".." in it is not known now
     * (nothing/../RUN/tb is RUN/tb) */
    if (real && has_dotdot(tb_dir + there)) {
        free(real);
        return bd_seterr(BD_EINVAL, "--tensorboard '%s': '..' in the part of the path not made yet; give the "
                                    "folder without it", tb_dir);
    }
    int rc = real ? BD_OK : bd_seterr(BD_EINVAL, "--tensorboard '%s': %s", tb_dir, strerror(errno));
    if (rc == BD_OK && at_or_above(real, &rs)) /* it, or a folder above it, is the run's */
        rc = has_own ? bd_seterr(BD_EINVAL, "--tensorboard '%s' is in the run's folder %s, whose tb/ holds its own "
                                            "curves (TensorBoard would show each twice): point TensorBoard at "
                                            "%s/tb, or write beside the run", tb_dir, run_dir, run_dir)
                     : bd_seterr(BD_EINVAL, "--tensorboard '%s' is in the run's folder %s, which holds only what "
                                            "the run wrote: write beside the run", tb_dir, run_dir);
    free(real);
    /* nor a folder the run's is in, when the run wrote its own curves: TensorBoard pointed
     * there finds both. The folders above the run's as found (its real path) and as named
     * (through a link: links/x for runs/x; TensorBoard follows links) */
    if (rc != BD_OK || !has_own || stat(tb_dir, &st) != 0)
        return rc;
    /* the name made absolute: leading ".." parts taken off the working folder's real path
     * (which has no link in it); none with a later ".." (a/b/.. less its last part, a/b, is
     * not above it) */
    const char *rest = run_dir[0] == '/' ? run_dir + 1 : run_dir;
    char *named = run_dir[0] == '/' ? bd_strdup("") : getcwd(NULL, 0);
    while (named && run_dir[0] != '/' && strncmp(rest, "..", 2) == 0 && (rest[2] == '/' || rest[2] == '\0')) {
        char *slash = strrchr(named, '/');
        if (slash)
            *(slash == named ? slash + 1 : slash) = '\0';
        rest += rest[2] ? 3 : 2;
    }
    char *whole = named && !has_dotdot(rest) ? bd_strfmt("%s/%s", named, rest) : NULL;
    free(named);
    char *paths[2] = {realpath(run_dir, NULL), whole};
    for (int k = 0; k < 2 && rc == BD_OK; k++)
        if (paths[k] && at_or_above(paths[k], &st)) /* the run's folder is not tb_dir (above): one above it is */
            rc = bd_seterr(BD_EINVAL, "--tensorboard '%s' holds the run's folder %s, whose tb/ holds its own curves "
                                      "(TensorBoard pointed at '%s' would show each twice): point TensorBoard at "
                                      "%s/tb, or write beside the run", tb_dir, run_dir, tb_dir, run_dir);
    free(paths[0]);
    free(paths[1]);
    return rc;
}

/* Whether folder dir holds a TensorBoard event file (any name with "tfevents" in it, as
 * TensorBoard reads them): BD_EINVAL naming it, BD_OK for none or no such folder, BD_EIO
 * when it cannot be read. */
static int tb_folder_fresh(const char *dir, const char *tb_dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR
                   ? BD_OK
                   : bd_seterr(BD_EIO, "--tensorboard: cannot read '%s': %s", dir, strerror(errno));
    int rc = BD_OK;
    const struct dirent *e;
    while (!rc && (e = readdir(d)))
        if (strstr(e->d_name, "tfevents"))
            rc = bd_seterr(BD_EINVAL, "--tensorboard: %s holds TensorBoard event files already (%s): TensorBoard "
                           "reads a folder's files as one run, so this export and that one would be one curve, "
                           "each point twice; give each export a folder of its own (%s/<run>), or remove them",
                           dir, e->d_name, tb_dir);
    closedir(d);
    return rc;
}

typedef struct {
    const char *tb_dir;
    char **seen; /* "phase/agent" of the updates so far */
    int n, room;
} tb_check;

/* One update for tb_fresh: a phase and agent not seen before have their folder checked. */
static int tb_fresh_update(const cJSON *o, const cJSON *phase, const cJSON *agent, void *ctx)
{
    (void)o;
    tb_check *c = ctx;
    char *key = bd_strfmt("%s/%s", phase->valuestring, agent->valuestring);
    if (!key)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = c->n - 1; i >= 0; i--) /* a phase's updates come together: the last first */
        if (strcmp(c->seen[i], key) == 0) {
            free(key);
            return BD_OK;
        }
    if (c->n == c->room) {
        int room = c->room ? 2 * c->room : 8;
        char **more = realloc(c->seen, sizeof *more * (size_t)room);
        if (!more) {
            free(key);
            return bd_seterr(BD_ENOMEM, "out of memory");
        }
        c->seen = more;
        c->room = room;
    }
    c->seen[c->n++] = key;
    char *dir = bd_strfmt("%s/%s", c->tb_dir, key);
    int rc = dir ? tb_folder_fresh(dir, c->tb_dir) : bd_seterr(BD_ENOMEM, "out of memory");
    free(dir);
    return rc;
}

/* The folders an export of log f would write into, DIR/<phase>/<agent>, must hold no event
 * files yet: TensorBoard reads every event file of a folder as one run, so a second export
 * there (of this run, or another's with the same phase and agent names) would draw both as
 * one curve, each point twice. BD_EINVAL naming such a folder and one of its files, before
 * anything is written. *scanned: the bytes of f read (f is rewound), which the export then
 * reads no further than (a live run's log grows, and its later phases were not looked at). */
static int tb_fresh(FILE *f, const char *tb_dir, long long *scanned)
{
    tb_check c = {.tb_dir = tb_dir};
    long long bad;
    int rc = each_update(f, -1, tb_fresh_update, &c, &bad, scanned);
    if (!rc && ferror(f))
        rc = bd_seterr(BD_EIO, "--tensorboard: cannot read the run's log.jsonl: %s", strerror(errno));
    for (int i = 0; i < c.n; i++)
        free(c.seen[i]);
    free(c.seen);
    rewind(f);
    return rc;
}

int bd_replay_metrics(const char *run_dir, const char *csv_path, const char *tb_dir, FILE *out)
{
    if (bd_replay_is_sweep(run_dir)) /* its runs' logs are in its points' folders */
        return bd_seterr(BD_EINVAL, "%s is a sweep: --metrics and --tensorboard take one of its runs (bodhi replay "
                                    "%s/POINT/seed-K --metrics F.csv)", run_dir, run_dir);
    int rc = csv_path ? bd_replay_output_ok(run_dir, "--metrics", csv_path) : BD_OK;
    if (!rc && tb_dir)
        rc = tb_outside(run_dir, tb_dir);
    if (rc)
        return rc;
    char *log = bd_strfmt("%s/log.jsonl", run_dir);
    FILE *f = log ? fopen(log, "r") : NULL;
    if (!f) {
        rc = bd_seterr(BD_ENOTFOUND, "--metrics/--tensorboard: cannot read '%s': %s (a run folder's log)",
                           log ? log : run_dir, strerror(errno));
        free(log);
        return rc;
    }
    long long scanned = -1; /* with --tensorboard: the log as its check saw it */
    if (tb_dir && (rc = tb_fresh(f, tb_dir, &scanned)) != BD_OK) {
        fclose(f);
        free(log);
        return rc;
    }
    FILE *csv = NULL;
    if (csv_path && !(csv = fopen(csv_path, "w")))
        rc = bd_seterr(BD_EIO, "cannot write '%s': %s", csv_path, strerror(errno));
    if (csv)
        fputs("phase,agent,update,steps,wall_time,metric,value\n", csv);
    tb_set tb = {.dir = tb_dir};
    metrics_out m = {csv, tb_dir ? &tb : NULL, 0};
    long long bad = 0, read;
    if (!rc) /* a live run's lines written since the check are not exported: it did not see them */
        rc = each_update(f, scanned, metrics_event, &m, &bad, &read);
    fclose(f);
    if (bad)
        fprintf(out, "%s: %lld line(s) skipped that are no JSON event (a killed run's last line?)\n", log, bad);
    if (csv && fclose(csv) != 0 && !rc)
        rc = bd_seterr(BD_EIO, "cannot write '%s': %s", csv_path, strerror(errno));
    if (csv_path && !rc)
        fprintf(out, "metrics: %s (%lld rows)\n", csv_path, m.rows);
    int trc = tb_close_all(&tb, out);
    free(log);
    return rc ? rc : trc;
}
