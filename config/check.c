/* check.c: the gate (see check.h). */
#define _GNU_SOURCE
#include "config/check.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "common/util.h"
#include "config/plan.h"

char *bd_config_run_dir(const bd_check_opts *o, const bd_runfile *rf)
{
    return o->out ? strdup(o->out) : bd_strfmt("runs/%s", rf->uid);
}

#define BD_RUN_FILE_MAX (16 << 20) /* bytes: a run file is text a person writes */

/* The longest path bodhi writes under a run directory: checkpoints/<phase>/<agent>.pt and
 * memory/<phase>.<agent>.h5, with names of BD_NAME_MAX, and a little room. */
#define BD_RUN_DIR_MAX (PATH_MAX - 2 * BD_NAME_MAX - 64)

/* The name of a kernel file system (proc, sysfs, ...) that holds no user files, or NULL. */
static const char *bd_kernel_fs(long type)
{
    switch (type) {
    case PROC_SUPER_MAGIC: return "proc";
    case SYSFS_MAGIC: return "sysfs";
    case DEVPTS_SUPER_MAGIC: return "devpts";
    case CGROUP_SUPER_MAGIC: case CGROUP2_SUPER_MAGIC: return "cgroup";
    case DEBUGFS_MAGIC: return "debugfs";
    case SECURITYFS_MAGIC: return "securityfs";
    default: return NULL;
    }
}

/* --out (or runs/<uid>): a path every file of the run fits under, and not the directory
 * a load.experiment_run reads from (claiming it moves that run aside). */
static void bd_check_run_dir(const bd_check_opts *o, const bd_runfile *rf, bd_diags *d)
{
    char *dir = bd_config_run_dir(o, rf);
    if (!dir) {
        bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
        return;
    }
    const char *what = o->out ? "--out" : "the run directory";
    size_t len = strlen(dir);
    if (len == 0)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: must not be empty", what));
    else if (len > BD_RUN_DIR_MAX)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: the path is %zu bytes; at most %d fit, so that every file of "
                             "the run stays within the system's %d-byte path limit", what, len, BD_RUN_DIR_MAX,
                             PATH_MAX));
    for (const char *p = dir; *p;) { /* each part of the path is a file name */
        size_t part = strcspn(p, "/");
        if (part > NAME_MAX) {
            bd_diag(d, bd_seterr(BD_EINVAL, "%s: a part of the path is %zu bytes; the system's limit is %d",
                                 what, part, NAME_MAX));
            break;
        }
        p += part + (p[part] == '/');
    }
    /* the nearest part of the path that exists is a folder this user may write in */
    char *up = strdup(dir);
    struct stat st;
    while (up && up[0] && lstat(up, &st) != 0) {
        char *slash = strrchr(up, '/');
        if (!slash)
            up[0] = '\0';
        else
            *(slash == up ? slash + 1 : slash) = '\0';
    }
    if (up && !up[0])
        strcpy(up, ".");
    struct statfs fs;
    if (up && strcmp(up, dir) != 0 && stat(up, &st) == 0 && !S_ISDIR(st.st_mode))
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: %s is a file, so %s cannot be made", what, up, dir));
    else if (up && strcmp(up, dir) != 0 && access(up, W_OK | X_OK) != 0)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: %s cannot be made: %s: %s", what, dir, up, strerror(errno)));
    else if (up && statfs(up, &fs) == 0 && bd_kernel_fs(fs.f_type)) /* root may "write" there, but not files */
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: %s is on the kernel's %s file system, where no run directory can be "
                             "made", what, dir, bd_kernel_fs(fs.f_type)));
    else if (o->out_check && o->out_check(dir) != BD_OK) { /* a file, a foreign folder, a live run */
        char why[1024];
        snprintf(why, sizeof why, "%s", bd_lasterr());
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: %s", what, why));
    }
    free(up);
    /* a folder someone else may write in, or move away, could swap run.yml under the run */
    if (bd_dir_private(dir) != BD_OK)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: %s", what, bd_lasterr()));
    char *real = realpath(dir, NULL);
    for (int i = 0; real && i < rf->nphases; i++)
        for (int k = 0; k < rf->phases[i].nagents; k++) {
            const bd_agent_cfg *a = &rf->phases[i].agents[k];
            if (a->load_run && strcmp(a->load_run, real) == 0) {
                const bd_node *ld = bd_node_get(a->node, "load");
                char w[256];
                bd_diag(d, bd_seterr(BD_EINVAL, "%s: load.experiment_run names %s, the directory this run "
                                     "writes (it would be moved aside); give this run another --out",
                                     bd_node_where(ld ? ld : a->node, w, sizeof w), real));
            }
        }
    free(real);
    free(dir);
}

/* The latest train phase of rf that has agent `name`, or NULL. */
static const char *bd_last_train(const bd_runfile *rf, const char *name)
{
    for (int k = rf->nphases - 1; k >= 0; k--)
        if (rf->phases[k].mode == BD_MODE_TRAIN && bd_phase_agent(&rf->phases[k], name))
            return rf->phases[k].name;
    return NULL;
}

/* load.experiment_run of agent a: the earlier run's directory (a path, or runs/<uid>) has
 * a checkpoint for (phase, agent). Writes its absolute path, and the phase, into the run
 * file's tree (run.yml), where a->load_run and a->load_phase then point. */
static int bd_resolve_load_run(bd_agent_cfg *a)
{
    bd_node *ld = (bd_node *)bd_node_get(a->node, "load");
    const bd_node *rn = bd_node_get(ld, "experiment_run");
    char w[256];
    bd_node_where(rn, w, sizeof w);
    const char *run = a->load_run;
    struct stat st;
    /* a path, or the uid of a run under runs/ (a folder of that name that holds no run
     * does not hide it) */
    char *own = bd_strfmt("%s/run.yml", run);
    int as_path = strchr(run, '/') || (own && stat(own, &st) == 0);
    free(own);
    char *dir = as_path ? strdup(run) : bd_strfmt("runs/%s", run);
    char *yml = dir ? bd_strfmt("%s/run.yml", dir) : NULL;
    if (!yml) {
        free(dir);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    int rc = BD_OK;
    bd_runfile *prev = NULL;
    if (stat(yml, &st) != 0)
        rc = bd_seterr(BD_ENOTFOUND, "%s: load.experiment_run: '%s' is not a bodhi run directory (no %s); name a "
                       "run directory or the uid of a run under runs/", w, run, yml);
    else if (bd_runfile_load(yml, &prev) != BD_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", bd_lasterr());
        rc = bd_seterr(BD_EINVAL, "%s: load.experiment_run: %s does not read back: %.900s", w, yml, why);
    }
    const char *phase = a->load_phase;
    if (rc == BD_OK && !phase && !(phase = bd_last_train(prev, a->load_agent)))
        rc = bd_seterr(BD_EINVAL, "%s: load.experiment_run: no train phase of %s has agent '%s'", w, dir,
                       a->load_agent);
    int from = rc == BD_OK ? bd_runfile_phase_index(prev, phase) : -1;
    const bd_node *pn = bd_node_get(ld, "phase"), *an = bd_node_get(ld, "agent");
    if (rc == BD_OK && from < 0)
        rc = bd_seterr(BD_EINVAL, "%s: load.phase: run %s has no phase '%s'", bd_node_where(pn ? pn : ld, w, sizeof w),
                       dir, phase);
    else if (rc == BD_OK && !bd_phase_agent(&prev->phases[from], a->load_agent))
        rc = bd_seterr(BD_EINVAL, "%s: load.agent: phase '%s' of run %s has no agent '%s'",
                       bd_node_where(an ? an : ld, w, sizeof w), phase, dir, a->load_agent);
    else if (rc == BD_OK && prev->phases[from].mode != BD_MODE_TRAIN)
        rc = bd_seterr(BD_EINVAL, "%s: load.phase: phase '%s' of run %s is a test phase and wrote no checkpoint",
                       bd_node_where(pn ? pn : ld, w, sizeof w), phase, dir);
    char *ckpt = rc == BD_OK ? bd_strfmt("%s/checkpoints/%s/%s.pt", dir, phase, a->load_agent) : NULL;
    if (rc == BD_OK && ckpt && stat(ckpt, &st) != 0) {
        /* summary.json comes at a run's end: without it the run is still going (its
         * checkpoints come as its phases end) or was killed before it ended */
        char *sum = bd_strfmt("%s/summary.json", dir);
        const int ended = sum && stat(sum, &st) == 0;
        free(sum);
        rc = ended ? bd_seterr(BD_ENOTFOUND, "%s: load.experiment_run: %s has no checkpoint (did that phase end "
                               "before its first update?)", w, ckpt)
                   : bd_seterr(BD_ENOTFOUND, "%s: load.experiment_run: %s has no checkpoint, and %s has no "
                               "summary.json: that run is still going (a phase's checkpoint comes when the phase "
                               "ends) or was killed before it ended", w, ckpt, dir);
    }
    char *abs = rc == BD_OK ? realpath(dir, NULL) : NULL;
    if (rc == BD_OK && !abs)
        rc = bd_seterr(BD_EIO, "%s: load.experiment_run: %s: %s", w, dir, strerror(errno));
    char *ph = rc == BD_OK ? strdup(phase) : NULL;
    /* run.yml says where the checkpoint came from, wherever the next reader runs */
    if (rc == BD_OK && (!ph || bd_node_set_scalar(ld, "experiment_run", abs, 1) || bd_node_set_scalar(ld, "phase", ph, 1)))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK) {
        a->load_run = bd_node_get(ld, "experiment_run")->text;
        a->load_phase = bd_node_get(ld, "phase")->text;
    }
    free(ph);
    free(abs);
    free(ckpt);
    bd_runfile_destroy(prev);
    free(yml);
    free(dir);
    return rc;
}

/* A Python env's "python:[FOLDER/]MODULE:Class" (env/python/pyenv.h) with its folder made
 * absolute: the run file's own folder, or FOLDER from there; NULL when it is absolute
 * already, the name is not one, or the folder does not resolve (the plan says why). */
static char *bd_absolute_python(const char *name, const char *runfile)
{
    const char *rest = name + 7, *colon = strrchr(rest, ':');
    if (strncmp(name, "python:", 7) != 0 || !colon || rest[0] == '/')
        return NULL;
    const char *slash = memrchr(rest, '/', (size_t)(colon - rest));
    char *rf = realpath(runfile, NULL), *dir = rf ? strrchr(rf, '/') : NULL;
    if (dir)
        *dir = '\0';
    char *sub = dir ? bd_strfmt("%s/%.*s", rf, slash ? (int)(slash - rest) : 0, rest) : NULL;
    char *abs = sub ? realpath(sub, NULL) : NULL;
    char *full = abs ? bd_strfmt("python:%s/%s", abs, slash ? slash + 1 : rest) : NULL;
    free(abs);
    free(sub);
    free(rf);
    return full;
}

/* An env plugin's "path/lib.so:symbol" with its path made absolute in the run file's tree
 * (run.yml then names the file loaded, wherever replay or a remote muscle starts), and a
 * Python env's folder (bd_absolute_python); a path that does not resolve is left as
 * written (the plan says why it cannot be loaded). */
static int bd_absolute_plugins(bd_runfile *rf, const char *runfile)
{
    for (int i = 0; i < rf->nphases; i++)
        for (int k = 0; k < rf->phases[i].nenvs; k++) {
            bd_env_cfg *ec = &rf->phases[i].envs[k];
            const char *name = ec->env.name, *colon = name ? strrchr(name, ':') : NULL;
            int python = name && strncmp(name, "python:", 7) == 0;
            if (!colon || name[0] == '/' || !ec->env.node || (python && name[7] == '/'))
                continue;
            char *path = python ? NULL : bd_strfmt("%.*s", (int)(colon - name), name);
            char *abs = path ? realpath(path, NULL) : NULL;
            char *full = python ? bd_absolute_python(name, runfile) : abs ? bd_strfmt("%s%s", abs, colon) : NULL;
            int rc = full && bd_node_set_scalar((bd_node *)ec->env.node, "name", full, 1) == BD_OK ? BD_OK : BD_ENOMEM;
            if (rc == BD_OK)
                ec->env.name = bd_node_get(ec->env.node, "name")->text;
            int lost = rc != BD_OK && (abs || full); /* out of memory, not a path that does not resolve */
            free(full);
            free(abs);
            free(path);
            if (lost)
                return bd_seterr(BD_ENOMEM, "out of memory");
        }
    return BD_OK;
}

/* Two (phase, agent) pairs whose files would be one: memory/<phase>.<agent>.h5 when names
 * hold dots ("a.b" + "c" and "a" + "b.c"). */
static void bd_check_file_names(const bd_runfile *rf, bd_diags *d)
{
    for (int i = 0; i < rf->nphases; i++)
        for (int k = 0; k < rf->phases[i].nagents; k++) {
            const bd_agent_cfg *a = &rf->phases[i].agents[k];
            char *mine = bd_strfmt("%s.%s", rf->phases[i].name, a->name);
            for (int j = 0; mine && j <= i; j++)
                for (int m = 0; m < (j == i ? k : rf->phases[j].nagents); m++) {
                    char *theirs = bd_strfmt("%s.%s", rf->phases[j].name, rf->phases[j].agents[m].name);
                    if (theirs && strcmp(mine, theirs) == 0) {
                        char w[256];
                        bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s' of phase '%s' and agent '%s' of phase '%s' "
                                             "would record into the same file, memory/%s.h5; rename one",
                                             bd_node_where(a->node, w, sizeof w), a->name, rf->phases[i].name,
                                             rf->phases[j].agents[m].name, rf->phases[j].name, mine));
                    }
                    free(theirs);
                }
            free(mine);
        }
}

int bd_config_check(const bd_check_opts *o, const bd_registry *reg, bd_diags *d, bd_runfile **out)
{
    *out = NULL;
    const char *device = o->device;
    if (device && strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "auto")) {
        bd_diag(d, bd_seterr(BD_EINVAL, "--device must be cpu, cuda or auto (got '%s')", device));
        device = NULL; /* the file is checked with its own devices */
    }
    struct stat st;
    if (!o->text && stat(o->path, &st) == 0 && S_ISDIR(st.st_mode))
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: is a directory, not a run file", o->path));
    if (!o->text && stat(o->path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: is not a regular file", o->path));
    char *text = NULL;
    size_t len = 0;
    int rc = BD_OK;
    if (o->text) { /* made in memory (bodhi sweep): path only names it */
        len = strlen(o->text);
        if (len > BD_RUN_FILE_MAX)
            rc = BD_EINVAL;
        else if (!(text = strdup(o->text)))
            rc = bd_seterr(BD_ENOMEM, "out of memory");
    } else {
        rc = bd_read_file_max(o->path, BD_RUN_FILE_MAX, &text, &len);
    }
    if (rc == BD_EINVAL)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: a run file may have at most %d bytes", o->path, BD_RUN_FILE_MAX));
    if (rc != BD_OK)
        return bd_diag(d, rc);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        size_t at = (size_t)(nul - text);
        free(text);
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: holds a NUL byte (at byte %zu); a run file is text", o->path, at));
    }
    bd_runfile_overrides ov = {.has_seed = o->has_seed, .seed = o->seed};
    bd_runfile *rf = NULL;
    bd_runfile_parse_all(text, o->path, &ov, d, &rf);
    free(text);
    if (!rf)
        return d->rc;
    if ((rc = bd_absolute_plugins(rf, o->path)) != BD_OK) {
        bd_runfile_destroy(rf);
        return bd_diag(d, rc);
    }
    /* loads from earlier runs first: the plans compare their checkpoints */
    for (int i = 0; i < rf->nphases; i++)
        for (int k = 0; k < rf->phases[i].nagents; k++)
            if (rf->phases[i].agents[k].load_run && bd_diag(d, bd_resolve_load_run(&rf->phases[i].agents[k])))
                rf->phases[i].invalid = 1;
    for (int i = 0; i < rf->nphases; i++) {
        /* a phase with problems is planned too, for the problems of its other parts
         * (config/plan.c skips what would only repeat them) */
        bd_phase_plan p;
        int prc = bd_phase_plan_check(rf, i, reg, device, BD_PLAN_GATE, d, &p);
        if (prc == BD_OK && p.remote > 0 && !o->listen) {
            char w[256];
            bd_diag(d, bd_seterr(BD_EINVAL, "%s: phase '%s' waits for %d remote muscle(s): run it with "
                                 "bodhi run --listen HOST:PORT", bd_node_where(p.ph->node, w, sizeof w),
                                 p.ph->name, p.remote));
        }
        bd_phase_plan_fini(&p);
    }
    bd_check_file_names(rf, d);
    if (o->listen_url && o->listen_check && o->listen_check(o->listen_url) != BD_OK) {
        char why[1024];
        snprintf(why, sizeof why, "%s", bd_lasterr());
        bd_diag(d, bd_seterr(BD_EINVAL, "--listen %s: %s", o->listen_url, why));
    }
    /* the run directory: --out, or runs/<uid> when the uid is one */
    if (o->out || rf->uid)
        bd_check_run_dir(o, rf, d);
    if (d->rc != BD_OK) {
        bd_runfile_destroy(rf);
        return d->rc;
    }
    *out = rf;
    return BD_OK;
}
