/* sweep_dir.c: `bodhi sweep`'s folder (cli/sweep.h): sweep.json, the Slurm array script,
 * an earlier sweep moved aside, the folder made whole and renamed into place; and the runs
 * one after another here, each a `bodhi run` child. */
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
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/sweep.h"
#include "common/util.h"
#include "conductor/rundir.h"

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

char *bd_sweep_sh_word(const char *s)
{
    /* a path of these alone reads back as itself; anything else (a space, $, ;, a quote,
     * a glob, ~) is quoted */
    if (*s && s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./,+=:@-")] == '\0')
        return strdup(s);
    return sh_quote(s);
}

/* sweep.json (written whole, then renamed over the last one). */
int bd_sweep_write_json(const sweep *w)
{
    cJSON *j = cJSON_CreateObject();
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    char *file = realpath(w->file, NULL);
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "id", w->id);
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
            cJSON_AddStringToObject(set, w->sets[k].path, w->sets[k].values[bd_sweep_value_of(w, p, k)]);
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
    char *qpath = path ? bd_sweep_sh_word(path) : NULL;
    char *file = realpath(w->file, NULL);
    for (char *c = file; c && *c; c++)
        *c = (unsigned char)*c < ' ' ? '?' : *c; /* a comment line */
    FILE *f = qdir && qexe && path && qpath ? fopen(path, "w") : NULL;
    if (f) {
        fprintf(f, "#!/bin/bash\n"
                   "#SBATCH --job-name=bodhi-sweep\n"
                   "#SBATCH --array=0-%d\n"
                   "#SBATCH --ntasks=1\n"
                   "#SBATCH --output=%s/slurm-%%A_%%a.out\n"
                   "# Written by bodhi sweep from %s: %d run(s), one array task each (sweep.json's \"task\").\n"
                   "# Add the lines your cluster wants (--partition, --time, --cpus-per-task, --gres) above.\n"
                   "# Submit: sbatch %s\n"
                   "set -eu\n"
                   "sweep=%s\n"
                   "runs=(\n",
                w->nruns - 1, w->dir, file ? file : "?", w->nruns, qpath, qdir);
        for (int i = 0; i < w->nruns; i++) {
            char *q = sh_quote(w->runs[i].rel);
            fprintf(f, "  %s # task %d\n", q ? q : "''", i);
            free(q);
        }
        fprintf(f, ")\n"
                   ": \"${SLURM_ARRAY_TASK_ID:?submit this script with sbatch (it is a Slurm array job)}\"\n"
                   /* digits alone, no leading 0: bash would read "abc" as a variable, "0x1"
                    * as hex and "010" as octal, and [ ] takes " 1" */
                   "if ! [[ $SLURM_ARRAY_TASK_ID =~ ^(0|[1-9][0-9]{0,8})$ ]] || "
                   "[ \"$SLURM_ARRAY_TASK_ID\" -ge %d ]; then\n"
                   "  echo \"bodhi sweep: no task '$SLURM_ARRAY_TASK_ID' (SLURM_ARRAY_TASK_ID must be a task number "
                   "from 0 to %d)\" >&2\n"
                   "  exit 2\n"
                   "fi\n"
                   "if ! grep -qF '\"%s\"' \"$sweep/sweep.json\"; then\n"
                   "  echo \"bodhi sweep: $sweep holds another sweep now (this script's, id %s, was moved aside or "
                   "removed); nothing run\" >&2\n"
                   "  exit 2\n"
                   "fi\n"
                   "run=\"${runs[$SLURM_ARRAY_TASK_ID]}\"\n"
                   "exec %s run \"$sweep/$run.yml\" --out \"$sweep/$run\" --quiet\n",
                w->nruns, w->nruns - 1, w->id, w->id, qexe);
    }
    int rc = f && fclose(f) == 0 && chmod(path, 0755) == 0 ? 0 : 1;
    if (rc)
        fprintf(stderr, "bodhi sweep: cannot write %s: %s\n", path ? path : "sweep.sbatch", strerror(errno));
    else if (w->nruns > 1000)
        fprintf(stderr, "bodhi sweep: %d tasks in one array: Slurm's default MaxArraySize (1001) allows 1000; ask your "
                        "cluster's limit (scontrol show config | grep MaxArraySize)\n", w->nruns);
    free(qdir);
    free(qexe);
    free(path);
    free(qpath);
    free(file);
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
int bd_sweep_write(sweep *w)
{
    char *stage = bd_strfmt("%s.new-XXXXXX", w->dir);
    int rc = stage ? 0 : 1;
    unsigned char rnd[16];
    if (!rc && getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        fprintf(stderr, "bodhi sweep: getrandom: %s\n", strerror(errno));
        rc = 1;
    }
    for (int k = 0; !rc && k < 16; k++)
        snprintf(w->id + 2 * k, 3, "%02x", rnd[k]);
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
        rc = bd_sweep_write_json(w) || (w->slurm && write_sbatch(w)) ? 1 : 0;
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

int bd_sweep_run_here(sweep *w)
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
        if (bd_sweep_write_json(w))
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

