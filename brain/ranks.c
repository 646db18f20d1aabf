/* ranks.c: a brain's learner group across ranks (brain/ranks.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_*, RTLD_DEFAULT */
#include "brain/ranks.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/proc.h"
#include "common/util.h"
#include "wire/stop.h"

static int ranks_env_int(const char *name, long long lo, long long hi, int *v)
{
    const char *s = getenv(name);
    long long x;
    if (!s || bd_parse_ll(s, lo, hi, &x) != BD_OK)
        return bd_seterr(BD_EINVAL, "%s must be an integer from %lld to %lld (got '%s')", name, lo, hi,
                         s ? s : "(unset)");
    *v = (int)x;
    return BD_OK;
}

/* What bd_ranks_place found: 0 nothing done (alone, told not to, too few cores, or never
 * called), 1 it took its share, 2 the launcher had bound this rank already. */
static int ranks_place_state;

/* A CPU's place in the order shares are cut from: package, core, then number, so that a
 * core's hardware threads (often numbered i and i + N/2) fall in one share, not two. */
typedef struct {
    int pkg, core, cpu;
} ranks_cpu;

static int ranks_topology(int cpu, const char *what)
{
    char path[96];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, what);
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static int ranks_cpu_cmp(const void *a, const void *b)
{
    const ranks_cpu *x = a, *y = b;
    if (x->pkg != y->pkg)
        return x->pkg < y->pkg ? -1 : 1;
    if (x->core != y->core)
        return x->core < y->core ? -1 : 1;
    return (x->cpu > y->cpu) - (x->cpu < y->cpu);
}

/* Whoever started this rank bound it (mpirun's default, srun's --cpu-bind, numactl or
 * taskset in front of it): some process above this brain (its conductor's parents up to
 * init) has a mask that strictly contains the conductor's, which this brain inherited.
 * Then *widest is the widest such mask. A launch that binds nothing (torchrun,
 * bench/train.py, `bodhi run --rank` from a shell) leaves every mask above equal. */
static int ranks_launcher_bound(const cpu_set_t *mine, cpu_set_t *widest)
{
    int bound = 0;
    pid_t p = getppid();
    for (int depth = 0; depth < 64; depth++) {
        p = bd_proc_parent(p);
        cpu_set_t theirs, both;
        if (p <= 1 || sched_getaffinity(p, sizeof theirs, &theirs) != 0)
            break;
        CPU_AND(&both, mine, &theirs);
        if (CPU_EQUAL(&both, mine) && !CPU_EQUAL(mine, &theirs)
            && (!bound || CPU_COUNT(&theirs) > CPU_COUNT(widest))) {
            *widest = theirs;
            bound = 1;
        }
    }
    return bound;
}

static long ranks_sharing = 1; /* ranks estimated to share a launcher's binding of this one */
static int ranks_whole_cores;  /* the share taken (state 1) holds no hardware thread of another's core */

/* The ranks on this machine (BODHI_LOCAL_SIZE, cli/run.c): 1 when unset or not a number. */
static long long ranks_local(void)
{
    const char *ls = getenv("BODHI_LOCAL_SIZE");
    long long local;
    return ls && bd_parse_ll(ls, 1, 65536, &local) == BD_OK ? local : 1;
}

void bd_ranks_place(void)
{
    ranks_place_state = 0; /* what this call finds (a benchmark places itself more than once) */
    ranks_sharing = 1;
    ranks_whole_cores = 0;
    const long long local = ranks_local();
    long long lr = 0;
    const char *lrs = getenv("BODHI_LOCAL_RANK"), *pin = getenv("BODHI_BRAIN_PIN");
    if (local < 2 || !lrs || bd_parse_ll(lrs, 0, local - 1, &lr) != BD_OK || (pin && strcmp(pin, "0") == 0))
        return;
    cpu_set_t set, mine;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    cpu_set_t widest;
    if (ranks_launcher_bound(&set, &widest)) {
        /* the mask is this rank's, or shared with others bound alike (mpirun's binding to
         * a package above 2 ranks): as many as the ranks here fill of the widest mask above,
         * spread evenly; the learner divides its cores among them, binding nothing more */
        long share = (long)((local * CPU_COUNT(&set) + CPU_COUNT(&widest) - 1) / CPU_COUNT(&widest));
        ranks_sharing = share > 1 ? share : 1;
        ranks_place_state = 2;
        return;
    }
    const int c = CPU_COUNT(&set);
    if (c < local) /* more ranks than cores: no share is a core */
        return;
    ranks_cpu *cpus = malloc(sizeof *cpus * (size_t)c);
    if (!cpus)
        return;
    int n = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && n < c; cpu++)
        if (CPU_ISSET(cpu, &set))
            cpus[n++] = (ranks_cpu){ranks_topology(cpu, "physical_package_id"), ranks_topology(cpu, "core_id"), cpu};
    qsort(cpus, (size_t)n, sizeof *cpus, ranks_cpu_cmp);
    const int lo = (int)(lr * n / local), hi = (int)((lr + 1) * n / local);
    CPU_ZERO(&mine);
    for (int k = lo; k < hi; k++)
        CPU_SET(cpus[k].cpu, &mine);
    /* a core's threads are neighbours in this order: the share's ends cut none (a core
     * unknown to sysfs counts as whole) */
#define RANKS_SAME_CORE(a, b) ((a).core >= 0 && (a).pkg == (b).pkg && (a).core == (b).core)
    const int whole = (lo == 0 || !RANKS_SAME_CORE(cpus[lo - 1], cpus[lo])) &&
                      (hi == n || !RANKS_SAME_CORE(cpus[hi - 1], cpus[hi]));
#undef RANKS_SAME_CORE
    free(cpus);
    if (sched_setaffinity(0, sizeof mine, &mine) == 0) {
        ranks_place_state = 1;
        ranks_whole_cores = whole;
    }
}

int bd_ranks_place_state(void)
{
    return ranks_place_state;
}

int bd_ranks_spin(int learners)
{
    const char *spin = getenv("BODHI_GROUP_SPIN");
    if (spin && *spin)
        return strcmp(spin, "0") != 0;
    return ranks_place_state == 1 && ranks_whole_cores && learners == 1;
}

long bd_ranks_cores(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        cores = CPU_COUNT(&set);
    /* the ranks that share this mask: none (its own share), those a launcher's binding holds,
     * or, unbound, every rank on this machine */
    const long long share = ranks_place_state == 1 ? 1 : ranks_place_state == 2 ? ranks_sharing : ranks_local();
    cores = cores / share > 0 ? cores / share : 1;
    const char *cap = getenv("BODHI_LEARNER_CORES");
    long long most;
    if (cap && bd_parse_ll(cap, 1, 65536, &most) == BD_OK && most < cores)
        cores = (long)most;
    return cores > 0 ? cores : 1;
}

int bd_ranks_split(int cpu)
{
    if (!cpu || bd_ranks_cores() < 2)
        return 0;
    int (*blas)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_num_threads");
    return (blas ? blas() : 1) <= 1;
}

void bd_split_pick_init(bd_split_pick *p, int allowed, int prefer)
{
    memset(p, 0, sizeof *p);
    p->allowed = allowed != 0;
    p->chosen = p->mode = p->allowed && prefer;
}

int bd_split_pick_next(bd_split_pick *p)
{
    if (!p->allowed)
        return p->mode = 0;
    const long long pos = p->n % BD_SPLIT_CYCLE;
    if (pos == 0)
        p->k[0] = p->k[1] = 0;
    /* probes at 1 .. 2P in the order split, one, one, split, split, one, ... (ABBA: a
     * trend across the probes, a learner warming up or a buffer filling, falls on both
     * modes alike), every other cycle the other way round */
    if (pos >= 1 && pos <= 2 * BD_SPLIT_PROBES) {
        const int abba = (int)(pos / 2 % 2 == 0); /* 1, 0, 0, 1, 1, 0 */
        p->mode = (p->n / BD_SPLIT_CYCLE) % 2 ? !abba : abba;
    } else {
        p->mode = p->chosen;
    }
    return p->mode;
}

static double split_median(double *t, int n)
{
    for (int i = 1; i < n; i++) /* insertion sort of at most BD_SPLIT_PROBES */
        for (int j = i; j > 0 && t[j - 1] > t[j]; j--) {
            double x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

void bd_split_pick_took(bd_split_pick *p, double secs_per_unit)
{
    if (!p->allowed)
        return;
    const long long pos = p->n++ % BD_SPLIT_CYCLE;
    if (pos < 1 || pos > 2 * BD_SPLIT_PROBES)
        return;
    if (secs_per_unit >= 0 && p->k[p->mode] < BD_SPLIT_PROBES)
        p->t[p->mode][p->k[p->mode]++] = secs_per_unit;
    if (pos == 2 * BD_SPLIT_PROBES && p->k[0] > 0 && p->k[1] > 0)
        p->chosen = split_median(p->t[1], p->k[1]) <= split_median(p->t[0], p->k[0]);
}

int bd_ranks_timeout(int *seconds)
{
    *seconds = 60;
    return getenv("BODHI_GROUP_TIMEOUT") ? ranks_env_int("BODHI_GROUP_TIMEOUT", 1, 86400, seconds) : BD_OK;
}

/* The launch's start (BODHI_LAUNCH_T, wall seconds), or `otherwise` when it is not a number. */
static double launch_t(double otherwise)
{
    const char *lt = getenv("BODHI_LAUNCH_T");
    char *end;
    const double t = lt ? strtod(lt, &end) : 0;
    return lt && end != lt && !*end && isfinite(t) ? t : otherwise;
}

/* A word's file read into word (n bytes): its length, or -1 when it is not a plain file of
 * its own (not through a link, and never waiting on a pipe) or is empty. */
static ssize_t left_read(const char *path, char *word, size_t n)
{
    const int fd = path ? open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC) : -1;
    struct stat st;
    ssize_t got = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? read(fd, word, n - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (got <= 0)
        return -1;
    word[got] = '\0';
    return got;
}

/* The store folder of BODHI_GROUP_LEFT (caller frees) and, in *base, the words' name
 * prefix in it; NULL without one. */
static char *left_folder(const char **base)
{
    const char *left = getenv("BODHI_GROUP_LEFT");
    const char *slash = left ? strrchr(left, '/') : NULL;
    *base = slash ? slash + 1 : "";
    return slash ? bd_strfmt("%.*s", (int)(slash - left), left) : NULL;
}

/* A word's fields, "<wall>|<rank>|<phase or *>|why": 1 when they read whole (a finite
 * time, a rank number). Phase names hold [A-Za-z0-9_.-] only (config/runfile.c), so no
 * '|' or '*'. */
static int left_parse(const char *word, double *at, int *rank, const char **phase, size_t *nphase, const char **why)
{
    char *end;
    *at = strtod(word, &end);
    if (end == word || *end != '|' || !isfinite(*at))
        return 0;
    const char *r = end + 1;
    errno = 0;
    long k = strtol(r, &end, 10);
    if (end == r || *end != '|' || errno || k < 0 || k > 65535)
        return 0;
    *rank = (int)k;
    *phase = end + 1;
    const char *bar = strchr(*phase, '|');
    if (!bar)
        return 0;
    *nphase = (size_t)(bar - *phase);
    *why = bar + 1;
    return 1;
}

int bd_ranks_say_left(int rank, const char *phase, const char *why)
{
    const char *left = getenv("BODHI_GROUP_LEFT");
    if (!left || !*left)
        return BD_OK;
    /* a temporary of this process's own (a rank's brains and its conductor may write at
     * once), published whole: the others read it as it comes */
    char *path = bd_strfmt("%sr%d", left, rank), *tmp = bd_strfmt("%sr%d.tmp.%d", left, rank, (int)getpid());
    char *text = bd_strfmt("%.3f|%d|%s|rank %d left before the group formed: %s", bd_wall(), rank,
                           phase ? phase : "*", rank, why && *why ? why : "(no reason given)");
    int rc = path && tmp && text ? BD_OK : bd_seterr(BD_ENOMEM, "out of memory");
    const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = rc == BD_OK ? open(tmp, flags, 0600) : -1;
    if (fd < 0 && rc == BD_OK && errno == EEXIST && unlink(tmp) == 0) /* an earlier process's of this pid */
        fd = open(tmp, flags, 0600);
    if (rc == BD_OK && fd < 0 && errno == ENOENT) { /* the folder is gone: rank 0's run ended, nobody joins */
        free(path);
        free(tmp);
        free(text);
        return BD_OK;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (fd >= 0 && !f)
        close(fd);
    if (rc == BD_OK && !f)
        rc = bd_seterr(BD_EIO, "%s: %s", tmp, strerror(errno));
    if (f) {
        int bad = fputs(text, f) == EOF;
        if (fclose(f) != 0)
            bad = 1;
        if (bad)
            rc = bd_seterr(BD_EIO, "%s: %s", tmp, strerror(errno));
    }
    /* The rank's first word of this launch stays (a brain stopped after its conductor said
     * why the run failed would put "stopped" in its place, and later): a link that fails on
     * an existing word, which only an earlier launch's (written before this one began;
     * without BODHI_LAUNCH_T, none) gives way to. */
    if (rc == BD_OK && link(tmp, path) != 0) {
        if (errno != EEXIST)
            rc = bd_seterr(BD_EIO, "%s: %s", path, strerror(errno));
        else {
            char word[1024];
            double at = 0;
            int r;
            const char *wp, *wt;
            size_t np;
            const int stale = left_read(path, word, sizeof word) < 0 || !left_parse(word, &at, &r, &wp, &np, &wt)
                              || at < launch_t(-HUGE_VAL);
            if (stale && rename(tmp, path) != 0)
                rc = bd_seterr(BD_EIO, "%s: %s", path, strerror(errno));
        }
    }
    if (fd >= 0)
        unlink(tmp); /* published (linked or renamed), or not to be */
    free(path);
    free(tmp);
    free(text);
    return rc;
}

void bd_ranks_left_sweep(void)
{
    const double before = launch_t(-HUGE_VAL); /* without a launch time, nothing is older */
    const char *base;
    char *dir = left_folder(&base);
    DIR *d = dir ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strncmp(e->d_name, "store-", 6) != 0 && strncmp(e->d_name, "left-", 5) != 0)
            continue;
        char *path = bd_strfmt("%s/%s", dir, e->d_name);
        struct stat st;
        if (path && lstat(path, &st) == 0 && S_ISREG(st.st_mode)
            && (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec < before)
            unlink(path);
        free(path);
    }
    if (d)
        closedir(d);
    free(dir);
}

int bd_ranks_left_word(const char *phase, int me, int world, double since, char *why, size_t n)
{
    const char *base;
    char *dir = phase ? left_folder(&base) : NULL;
    DIR *d = dir ? opendir(dir) : NULL;
    const size_t nb = strlen(dir ? base : "");
    double first = 0;
    int found = 0, first_rank = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        /* <prefix>r<k>: k a rank's number as it writes it (no sign, no leading zero) */
        const char *k = e->d_name + nb;
        if (strncmp(e->d_name, base, nb) != 0 || k[0] != 'r' || !k[1] || (k[1] == '0' && k[2])
            || strspn(k + 1, "0123456789") != strlen(k + 1) || strlen(k + 1) > 5)
            continue;
        char *path = bd_strfmt("%s/%s", dir, e->d_name), word[1024];
        const ssize_t got = left_read(path, word, sizeof word);
        free(path);
        double at;
        int rank;
        const char *wp, *text;
        size_t np;
        if (got < 0 || !left_parse(word, &at, &rank, &wp, &np, &text) || rank != atoi(k + 1) || rank == me
            || rank >= world || at < since)
            continue;
        if (!(np == 1 && wp[0] == '*') && !(np == strlen(phase) && strncmp(wp, phase, np) == 0))
            continue;
        /* the first rank that left (the others may have left for it); a tie, the lowest rank */
        if (!found || at < first || (at == first && rank < first_rank)) {
            first = at;
            first_rank = rank;
            found = 1;
            snprintf(why, n, "%s", text);
        }
    }
    if (d)
        closedir(d);
    free(dir);
    return found;
}

/* The join under way in this process (a brain joins one group at a time): bdt_left_fn
 * has no context. */
static const char *join_phase = "";
static int join_rank, join_world;
static double join_since;
static int join_heard; /* the join ended on another rank's word */

static int ranks_left(char *why, size_t n)
{
    return join_heard = bd_ranks_left_word(join_phase, join_rank, join_world, join_since, why, n);
}

int bd_ranks_plan(bd_ranks *r, const char *phase, const char *agent)
{
    memset(r, 0, sizeof *r);
    r->world = 1;
    const char *ws = getenv("BODHI_WORLD_SIZE");
    if (!ws || strcmp(ws, "1") == 0)
        return BD_OK;
    int world = 1, rank = 0, timeout = 60;
    if (ranks_env_int("BODHI_WORLD_SIZE", 1, 65536, &world) != BD_OK
        || ranks_env_int("BODHI_RANK", 0, world - 1, &rank) != BD_OK
        || bd_ranks_timeout(&timeout) != BD_OK)
        return bd_seterr(BD_EINVAL, "brain: %s", bd_lasterr()); /* bd_ranks_timeout's words are `bodhi run`'s too */
    const char *store = getenv("BODHI_GROUP_STORE");
    if (!store || !*store)
        return bd_seterr(BD_EINVAL, "brain: rank %d of %d has no BODHI_GROUP_STORE", rank, world);
    /* one store file a phase and agent: rank 0 removes it once that group has formed, so
     * groups must not share one */
    r->store = bd_strfmt("%s.%s.%s", store, phase, agent);
    r->agent = bd_strfmt("%s", agent);
    r->phase = bd_strfmt("%s", phase);
    if (!r->store || !r->agent || !r->phase) {
        bd_ranks_leave(r);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    r->rank = rank;
    r->world = world;
    r->timeout = timeout;
    return BD_OK;
}

int bd_ranks_join(bd_ranks *r, const bd_learner_ops *ops, void *learner)
{
    if (r->world < 2 || r->g)
        return BD_OK;
    if (r->joining)
        r->joining(r->joining_ctx);
    const double t0 = bd_now();
    r->tried = 1;
    char meta[96];
    snprintf(meta, sizeof meta, "run=%s", r->run_digest ? r->run_digest : "-");
    /* a Ctrl-C (the conductor's SIGTERM) ends a join still waiting for the other ranks, and
     * so does another rank's word that it left */
    join_phase = r->phase;
    join_rank = r->rank;
    join_world = r->world;
    join_since = launch_t(bd_wall());
    join_heard = 0;
    int rc = bdt_group_join(r->store, "bodhi", r->rank, r->world, getenv("BODHI_GROUP_HOST"), (double)r->timeout,
                            meta, (const volatile int *)&bd_term_requested, ranks_left, join_since, &r->g);
    join_phase = "";
    r->heard = join_heard;
    if (rc != BD_OK)
        return bd_seterr(rc, "rank %d of %d: the learner group of agent '%s' did not form: %s", r->rank, r->world,
                         r->agent, bd_lasterr());
    r->join_s = bd_now() - t0;
    r->spin = bd_ranks_spin(r->learners);
    bdt_group_spin(r->g, r->spin);
    if ((rc = bd_ranks_sync(r, ops, learner)) != BD_OK)
        return bd_seterr(rc, "rank %d of %d: rank 0's weights of agent '%s': %s", r->rank, r->world, r->agent,
                         bd_lasterr());
    return BD_OK;
}

void bd_ranks_abandon(bd_ranks *r, const char *why)
{
    /* a join that failed on another rank's word passes nothing on (it would name itself
     * for that rank's cause, cut short); a brain whose conductor is gone says nothing
     * (its word could come after a new launch began) */
    if (r->world < 2 || r->g || (r->tried && (r->heard || bd_parent_gone())))
        return;
    if (bd_ranks_say_left(r->rank, r->phase, why) != BD_OK)
        fprintf(stderr, "bodhi brain %s: rank %d of %d could not tell the others it left: %s\n", r->agent, r->rank,
                r->world, bd_lasterr());
}

void bd_ranks_leave(bd_ranks *r)
{
    bdt_group_leave(r->g);
    free(r->buf);
    free(r->store);
    free(r->agent);
    free(r->phase);
    memset(r, 0, sizeof *r);
    r->world = 1;
}

int bd_ranks_grad(void *ctx, float *grad, size_t n)
{
    bd_ranks *r = ctx;
    return bdt_group_allreduce_mean(r->g, grad, n);
}

int bd_ranks_sum(void *ctx, double *x, size_t n, int min)
{
    bd_ranks *r = ctx;
    return bdt_group_allreduce_f64(r->g, x, n, min ? 2 : 0);
}

int bd_ranks_sync(bd_ranks *r, const bd_learner_ops *ops, void *learner)
{
    if (!r->g)
        return r->world > 1 ? bd_seterr(BD_ESTATE, "rank %d of %d: rank 0's weights asked for before the group "
                                         "formed", r->rank, r->world)
                            : BD_OK;
    bd_policy_out po;
    ops->weights_out(learner, &po);
    size_t n = bd_weights_floats(&po.h);
    if (n == 0)
        return BD_OK;
    float *buf = realloc(r->buf, n * sizeof(float));
    if (!buf)
        return bd_seterr(BD_ENOMEM, "out of memory");
    r->buf = buf;
    memcpy(buf, po.floats, n * sizeof(float));
    int rc = bdt_group_broadcast(r->g, buf, n, 0);
    if (rc == BD_OK && r->rank != 0)
        rc = ops->weights_in(learner, &po.h, buf);
    return rc;
}

int bd_ranks_agree_stop(bd_ranks *r, int *code, int *ends_run, int *from)
{
    if (!r->g)
        return r->world > 1 ? bd_seterr(BD_ESTATE, "rank %d of %d: the phase's end agreed before the group formed",
                                         r->rank, r->world)
                            : BD_OK;
    /* one maximum of two numbers: the weight, the code and the lowest rank in one, exactly
     * (below 2^53; world <= 65536, common/launch.c), and whether the run ends on any rank */
    const double span = 65536.0;
    const int c = *code > BD_STOP_NONE && *code < BD_STOP_COUNT ? *code : *code ? BD_STOP_OTHER : BD_STOP_NONE;
    double x[2] = {((double)bd_stop_weight((bd_stop)c) * BD_STOP_COUNT + c) * span + (span - 1 - r->rank),
                   *ends_run ? 1.0 : 0.0};
    int rc = bdt_group_allreduce_f64(r->g, x, 2, 1);
    if (rc != BD_OK)
        return rc;
    const double key = floor(x[0] / span);
    *from = (int)(span - 1 - (x[0] - key * span));
    *code = (int)fmod(key, BD_STOP_COUNT);
    *ends_run = x[1] > 0;
    return BD_OK;
}

void bd_ranks_describe(const bd_ranks *r, const bd_learner_ops *ops, const void *learner, cJSON *ev)
{
    if (!r->g)
        return;
    cJSON_AddNumberToObject(ev, "rank", r->rank);
    bd_policy_out po;
    ops->weights_out(learner, &po);
    char hex[65];
    bd_sha256_hex(po.floats, bd_weights_floats(&po.h) * sizeof(float), hex);
    cJSON_AddStringToObject(ev, "param_digest", hex);
}
