/* run.c: `bodhi run FILE [--out RUN_DIR] [--device D] [--seed N] [--listen HOST:PORT
 * [--credential FILE]] [--rank R --world-size K [--rendezvous HOST:PORT]] [--quiet]`
 * and `bodhi check FILE` with the same options (it checks what that run would do). */
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brain/ranks.h"
#include "cli/cli.h"
#include "common/launch.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "conductor/conductor.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "config/yamltree.h"
#include "memory/memory.h"

/* An id of this launch for the rendezvous store's name: the job's (Slurm, torchrun, Open
 * MPI), else the rendezvous port's, else "run". */
static void bd_launch_id(const bd_launch *l, char *buf, size_t len)
{
    const char *vars[] = {"SLURM_JOB_ID", "TORCHELASTIC_RUN_ID", "OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE"};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++) {
        const char *v = getenv(vars[k]);
        if (v && *v && strlen(v) < 64 && !strchr(v, '/')) {
            snprintf(buf, len, "%s", v);
            return;
        }
    }
    if (l->port)
        snprintf(buf, len, "port%d", l->port);
    else
        snprintf(buf, len, "run");
}

/* The learner groups' store folder of a run of many ranks ("" alone): rank 0 removes it
 * when the run is over and it is empty (rank 0 removes each group's store file once the
 * group has formed; what a launch that failed leaves, its store files and the words of
 * ranks that left (brain/ranks.h), is harmless to the next launch, whose keys are its own
 * (torch/dist.h) and which obeys no earlier word, and a run that ends well removes it). */
static char ranks_dir[PATH_MAX];
static int ranks_rank;

/* Ranks (brain/ranks.h, docs/architecture.md "Many machines"): which rank this process is
 * (common/launch.h), and for K > 1 what its conductor's children inherit: rank, size, the
 * learner groups' FileStore in a folder of this user's (<out>.ranks/, mode 0700), the
 * collective timeout and, on loopback, Gloo's address. Rank 0 owns --out; rank k > 0 runs
 * in <out>.r<k> beside it. 0, or a usage error's exit code. */
static int bd_run_ranks(const char *cmd, const bd_launch_opts *lo, bd_run_opts *o)
{
    bd_launch l;
    if (bd_launch_from_env(lo, &l) != BD_OK) {
        fprintf(stderr, "bodhi %s: %s\n", cmd, bd_lasterr());
        return 2;
    }
    if (l.world == 1) { /* alone: nothing a shell left exported reaches the children */
        static const char *const stale[] = {"BODHI_RANK",        "BODHI_WORLD_SIZE", "BODHI_LOCAL_SIZE",
                                            "BODHI_LOCAL_RANK",  "BODHI_GROUP_STORE", "BODHI_GROUP_LEFT",
                                            "BODHI_LAUNCH_T",    NULL};
        for (int i = 0; stale[i]; i++)
            unsetenv(stale[i]);
        return 0;
    }
    char num[32];
    snprintf(num, sizeof num, "%d", l.world);
    setenv("BODHI_WORLD_SIZE", num, 1); /* check plans what run will: the rollout counts every rank's worlds */
    if (!o->out) {
        fprintf(stderr, "bodhi %s: rank %d of %d (%s) needs --out, the run directory every rank shares\n", cmd,
                l.rank, l.world, bd_launcher_name(l.by));
        return 2;
    }
    int timeout;
    if (bd_ranks_timeout(&timeout) != BD_OK) {
        fprintf(stderr, "bodhi %s: %s\n", cmd, bd_lasterr());
        return 2;
    }
    char tnum[16];
    snprintf(tnum, sizeof tnum, "%d", timeout);
    if (strcmp(cmd, "run") != 0) /* check writes nothing */
        return 0;
    static char out[PATH_MAX], store[PATH_MAX + 96], left[PATH_MAX + 96];
    char id[80];
    size_t n = strlen(o->out);
    while (n > 1 && o->out[n - 1] == '/')
        n--;
    if (n + 32 >= sizeof ranks_dir) {
        fprintf(stderr, "bodhi %s: --out is too long\n", cmd);
        return 2;
    }
    char *dir = ranks_dir;
    /* the folder the run directories go in, made as a run of one rank makes its own */
    size_t cut = n;
    while (cut > 0 && o->out[cut - 1] != '/')
        cut--;
    if (cut > 1) { /* the part before the last '/' (none, or the root: nothing to make) */
        snprintf(dir, sizeof ranks_dir, "%.*s", (int)(cut - 1), o->out);
        if (bd_mkdirs(dir) != BD_OK) {
            fprintf(stderr, "bodhi %s: --out %s: %s\n", cmd, o->out, bd_lasterr());
            return 2;
        }
    }
    snprintf(dir, sizeof ranks_dir, "%.*s.ranks", (int)n, o->out);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "bodhi %s: cannot make %s: %s\n", cmd, dir, strerror(errno));
        return 2;
    }
    struct stat st;
    if (bd_dir_private(dir) != BD_OK || stat(dir, &st) != 0 || (st.st_mode & 077)) {
        fprintf(stderr, "bodhi %s: %s must be a folder of this user that no one else may enter (mode 0700): %s\n",
                cmd, dir, bd_lasterr());
        return 2;
    }
    bd_launch_id(&l, id, sizeof id);
    snprintf(store, sizeof store, "%s/store-%s", dir, id);
    snprintf(left, sizeof left, "%s/left-%s.", dir, id);
    if (l.rank > 0) {
        snprintf(out, sizeof out, "%.*s.r%d", (int)n, o->out, l.rank);
        o->out = out;
    }
    ranks_rank = l.rank;
    snprintf(num, sizeof num, "%d", l.rank);
    setenv("BODHI_RANK", num, 1);
    snprintf(num, sizeof num, "%d", l.local_size);
    setenv("BODHI_LOCAL_SIZE", num, 1); /* the learners share this machine's cores */
    snprintf(num, sizeof num, "%d", l.local_rank);
    if (l.local_rank < l.local_size)
        setenv("BODHI_LOCAL_RANK", num, 1); /* ... each its own share (brain/ranks.h) */
    else
        unsetenv("BODHI_LOCAL_RANK"); /* a launcher's count that disagrees: no share is taken */
    setenv("BODHI_GROUP_STORE", store, 1);
    setenv("BODHI_GROUP_LEFT", left, 1); /* where a rank that left before its groups formed says so */
    /* the launch's start, wall clock: a word that a rank left, written before it, is an
     * earlier launch's (brain/ranks.h) */
    char lt[48];
    snprintf(lt, sizeof lt, "%.3f", bd_wall());
    setenv("BODHI_LAUNCH_T", lt, 1);
    setenv("BODHI_GROUP_TIMEOUT", tnum, 1);
    if (strcmp(l.host, "127.0.0.1") == 0 || strcmp(l.host, "localhost") == 0 || strcmp(l.host, "::1") == 0)
        setenv("BODHI_GROUP_HOST", "127.0.0.1", 0);
    if (!o->quiet)
        fprintf(stderr, "bodhi %s: rank %d of %d (%s), run directory %s\n", cmd, l.rank, l.world,
                bd_launcher_name(l.by), o->out);
    return 0;
}

/* The options run and check share into o: 0, -1 after --help, or a usage error's exit code. */
static int bd_run_options(const char *cmd, int argc, char **argv, bd_run_opts *o)
{
    const char *file = NULL, *out = NULL, *device = NULL, *seed = NULL, *quiet = NULL, *listen = NULL;
    const char *credential = NULL;
    bd_launch_opts lo = {0};
    bd_opt spec[] = {{"out=", &out}, {"device=", &device}, {"seed=", &seed}, {"quiet", &quiet},
                     {"listen=", &listen}, {"credential=", &credential}, {"rank=", &lo.rank},
                     {"world-size=", &lo.world_size}, {"rendezvous=", &lo.rendezvous}, {0}};
    int rc = bd_parse_opts(cmd, argc, argv, spec, &file, 1, 1);
    if (rc)
        return BD_OPTS_EXIT(rc) ? BD_OPTS_EXIT(rc) : -1;
    static char tls[300];
    if (listen) { /* HOST:PORT, an address the user names: nothing listens beyond loopback unasked;
                   * tcp:// or tls+tcp:// may come first, and the door is TLS either way */
        const char *h = strncmp(listen, "tls+tcp://", 10) == 0 ? listen + 10
                        : strncmp(listen, "tcp://", 6) == 0    ? listen + 6
                                                               : listen;
        const char *colon = strrchr(h, ':');
        char *end = NULL;
        long port = colon ? strtol(colon + 1, &end, 10) : -1;
        if (!colon || colon == h || !end || *end || port < 1 || port > 65535 || strstr(h, "://")
            || strlen(h) > 250) {
            fprintf(stderr, "bodhi %s: --listen must be HOST:PORT (tcp:// or tls+tcp:// may come first) with a port "
                            "in 1..65535 (got '%s')\n", cmd, listen);
            return 2;
        }
        snprintf(tls, sizeof tls, "tls+tcp://%s", h);
        listen = tls;
    }
    if (credential && !listen) {
        fprintf(stderr, "bodhi %s: --credential goes with --listen (it is the remote muscles' credential)\n", cmd);
        return 2;
    }
    *o = (bd_run_opts){.path = file, .out = out, .device = device, .listen = listen, .credential = credential,
                        .quiet = quiet != NULL};
    if (seed) {
        uint64_t v;
        if (!bd_text_u64(seed, &v)) { /* the run file's rule for seeds (config/yamltree.h) */
            fprintf(stderr, "bodhi %s: --seed must be an integer from 0 to 18446744073709551615 (got '%s')\n", cmd,
                    seed);
            return 2;
        }
        o->has_seed = 1;
        o->seed = v;
    }
    return bd_run_ranks(cmd, &lo, o);
}

int bd_cmd_run(int argc, char **argv)
{
    bd_run_opts o;
    int rc = bd_run_options("run", argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    rc = bd_conductor_run(&o);
    if (ranks_dir[0] && ranks_rank == 0) {
        if (rc == 0)
            bd_ranks_left_sweep();
        rmdir(ranks_dir); /* only when empty: a store another rank still uses stays */
    }
    return rc;
}

/* Each phase's trace size, before it runs: a step row of an agent is its recorded columns x
 * (4 bytes a sensor, actuator and reward, 1 a flag), one row every record.every env steps,
 * for as many env steps as max_steps (or the episodes asked for, at the env's time limit)
 * allow, rounded up to whole rollouts; uncompressed (a compression's gain depends on the
 * data). */
static void bd_print_trace_estimates(const bd_run_opts *o, bd_runfile *rf)
{
    bd_compression def = bd_compression_default();
    for (int i = 0; i < rf->nphases; i++) {
        bd_phase_plan p;
        if (bd_phase_plan_make(rf, i, bd_registry_builtin(), o->device, &p) != BD_OK) {
            bd_phase_plan_fini(&p);
            continue;
        }
        double total = 0, per_step = 0;
        int bounded = 1;
        for (int k = 0; k < p.nagents; k++) {
            const bd_agent_plan *ap = &p.agents[k];
            const bd_agent_cfg *a = ap->cfg;
            if (!a->record_steps || !ap->env)
                continue;
            long long cols = a->record_worlds > 0 && a->record_worlds * ap->members < ap->columns
                                 ? a->record_worlds * ap->members : ap->columns;
            double row = (double)cols * (4.0 * (ap->nsens + ap->nact + 1) + 2);
            /* env steps of this phase: max_steps counts agent-steps of one agent (or the first
             * to get there: the one with the most columns) */
            double env_steps = -1;
            if (p.max_agent_steps > 0) {
                long long c = p.max_columns;
                for (int j = 0; p.max_steps_agent && j < p.nagents; j++)
                    if (strcmp(p.agents[j].cfg->name, p.max_steps_agent) == 0)
                        c = p.agents[j].columns;
                env_steps = c > 0 ? (double)p.max_agent_steps / (double)c : -1;
            }
            if (p.episodes_target > 0 && ap->columns > 0) {
                double ep = ((double)p.episodes_target / (double)ap->columns + 1) * ap->env->max_steps;
                env_steps = env_steps < 0 || ep < env_steps ? ep : env_steps;
            }
            /* the phase stops at the end of a rollout */
            long long T = ap->brain && ap->brain->rollout_steps && ap->brain_params
                              ? ap->brain->rollout_steps(ap->brain_params) : 0;
            if (env_steps > 0 && T > 0)
                env_steps = ceil(env_steps / (double)T) * (double)T;
            per_step += row / a->record_every / (double)(ap->columns ? ap->columns : 1);
            if (env_steps < 0)
                bounded = 0;
            else
                total += row * ceil(env_steps / a->record_every);
        }
        char b1[32], b2[32];
        const char *comp = "";
        for (int k = 0; k < p.nagents; k++)
            if (p.agents[k].cfg->record_steps)
                comp = p.agents[k].cfg->record_compression ? p.agents[k].cfg->record_compression
                                                           : bd_compression_name(def);
        if (per_step == 0)
            printf("  phase %s: no step rows recorded (episodes only)\n", p.ph->name);
        else if (bounded)
            printf("  phase %s: traces of up to %s uncompressed (%s a recorded agent-step), written %s%s\n",
                   p.ph->name, bd_bytes_text(total, b1, sizeof b1), bd_bytes_text(per_step, b2, sizeof b2),
                   strcmp(comp, "none") == 0 ? "uncompressed" : "through ", strcmp(comp, "none") == 0 ? "" : comp);
        else
            printf("  phase %s: traces of %s a recorded agent-step uncompressed (no max_steps bounds the phase), "
                   "written %s%s\n", p.ph->name, bd_bytes_text(per_step, b2, sizeof b2),
                   strcmp(comp, "none") == 0 ? "uncompressed" : "through ", strcmp(comp, "none") == 0 ? "" : comp);
        bd_phase_plan_fini(&p);
    }
}

int bd_cmd_check(int argc, char **argv)
{
    bd_run_opts o;
    int rc = bd_run_options("check", argc, argv, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    bd_runfile *rf = NULL; /* the file read once (a pipe cannot be read twice) */
    rc = bd_conductor_check(&o, &rf);
    if (rc == 0)
        bd_print_trace_estimates(&o, rf);
    bd_runfile_destroy(rf);
    return rc;
}
