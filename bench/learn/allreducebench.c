/* allreducebench.c: `bodhi-allreducebench [--ranks K ...] [--floats N ...] [--reps R]`: the
 * time of one mean all-reduce of N floats among K learner processes on this machine, over
 * the same c10d Gloo group the brains of a run of many ranks form (torch/dist.h; loopback,
 * a FileStore in a private temporary folder). For each K, rank 0 forks K - 1 ranks, each
 * does 5 all-reduces to warm up and R timed ones (each after W us of CPU work with
 * --work-us, as a learner computes a minibatch's gradient between two), bound to its share
 * of the cores as a brain binds itself (bd_ranks_place; not with --no-bind; the c10d path
 * with BODHI_GROUP_SLOW=1, torch/dist.h), its waits spinning where a brain's would
 * (bd_ranks_spin: bound, unless BODHI_GROUP_SPIN says otherwise); rank 0 reports the median and the
 * minimum. Prints one JSON object. docs/architecture.md's table of what many ranks cost
 * per update is modelled from these figures. */
#define _GNU_SOURCE /* sched_getaffinity */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brain/ranks.h"
#include "common/util.h"
#include "torch/bd_torch.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Rank `rank` of `world`: joins, warms up, times reps all-reduces of n floats into t. */
static double work_s; /* --work-us: CPU work before each all-reduce, as a learner's minibatch */
static int bind_ranks = 1; /* --no-bind: the ranks are not bound to their share of the cores */
static int spun;           /* whether rank 0's waits spun, as a brain's do (bd_ranks_spin) */

static void spin(double s)
{
    double t0 = bd_now();
    volatile double x = 1.0;
    while (bd_now() - t0 < s)
        for (int i = 0; i < 1000; i++)
            x = x * 1.0000001 + 1e-9;
}

static int one_rank(const char *store, int rank, int world, size_t n, int reps, double *t)
{
    bdt_group *g;
    cpu_set_t was; /* rank 0 is this process: its mask comes back for the next case's ranks */
    const int kept = sched_getaffinity(0, sizeof was, &was) == 0;
    if (bind_ranks) { /* as a brain of rank `rank` of `world` on this machine binds itself */
        char num[32];
        snprintf(num, sizeof num, "%d", world);
        setenv("BODHI_LOCAL_SIZE", num, 1);
        snprintf(num, sizeof num, "%d", rank);
        setenv("BODHI_LOCAL_RANK", num, 1);
        bd_ranks_place();
    }
    if (bdt_group_join(store, "bench", rank, world, "127.0.0.1", 120.0, NULL, NULL, NULL, 0, &g) != BD_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, bd_lasterr());
        return 1;
    }
    spun = bd_ranks_spin(1); /* one learner a rank; unbound, only BODHI_GROUP_SPIN=1 spins */
    bdt_group_spin(g, spun);
    float *x = calloc(n, sizeof *x);
    int rc = x ? 0 : 1;
    for (int i = 0; i < 5 + reps && !rc; i++) {
        if (work_s > 0)
            spin(work_s);
        double t0 = bd_now();
        rc = bdt_group_allreduce_mean(g, x, n) != BD_OK;
        if (i >= 5 && t)
            t[i - 5] = bd_now() - t0;
    }
    if (rc)
        fprintf(stderr, "rank %d: %s\n", rank, bd_lasterr());
    free(x);
    bdt_group_leave(g);
    if (kept)
        sched_setaffinity(0, sizeof was, &was);
    return rc;
}

int main(int argc, char **argv)
{
    int ranks[8] = {2, 3, 4}, nr = 3, reps = 200;
    long long floats[8] = {1, 9218, 262144, 4194304};
    int nf = 4;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--no-bind") == 0) {
            bind_ranks = 0;
        } else if (strcmp(argv[i], "--work-us") == 0 && i + 1 < argc) {
            work_s = atof(argv[++i]) * 1e-6;
        } else if (strcmp(argv[i], "--ranks") == 0) {
            nr = 0;
            while (i + 1 < argc && argv[i + 1][0] != '-' && nr < 8)
                ranks[nr++] = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--floats") == 0) {
            nf = 0;
            while (i + 1 < argc && argv[i + 1][0] != '-' && nf < 8)
                floats[nf++] = atoll(argv[++i]);
        } else {
            fprintf(stderr, "usage: bodhi-allreducebench [--ranks K ...] [--floats N ...] [--reps R] [--work-us W] [--no-bind]\n");
            return 2;
        }
    }
    if (reps < 1 || nr < 1 || nf < 1)
        return 2;
    char dir[] = "/tmp/bd-allreduce-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    double *t = calloc((size_t)reps, sizeof *t);
    printf("{\"what\": \"one mean all-reduce of N floats among K processes on this machine (c10d Gloo, "
           "loopback): median and minimum of %d, after 5 to warm up, each after %.0f us of CPU work, ranks %s\", \"path\": \"%s\", \"cores\": %ld, \"results\": [",
           reps, work_s * 1e6, bind_ranks ? "bound to their share of the cores as brains bind" : "not bound",
           getenv("BODHI_GROUP_SLOW") && strcmp(getenv("BODHI_GROUP_SLOW"), "0") != 0 ? "c10d" : "the caller's own", sysconf(_SC_NPROCESSORS_ONLN));
    int rc = 0, first = 1;
    for (int a = 0; a < nr && !rc; a++)
        for (int b = 0; b < nf && !rc; b++) {
            char store[128];
            snprintf(store, sizeof store, "%s/store-%d-%lld", dir, ranks[a], floats[b]);
            pid_t kids[64];
            int nk = 0;
            for (int k = 1; k < ranks[a] && k < 64; k++) {
                pid_t p = fork();
                if (p == 0)
                    _exit(one_rank(store, k, ranks[a], (size_t)floats[b], reps, NULL));
                kids[nk++] = p;
            }
            rc = one_rank(store, 0, ranks[a], (size_t)floats[b], reps, t);
            for (int k = 0; k < nk; k++) {
                int st;
                waitpid(kids[k], &st, 0);
                rc |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
            }
            unlink(store);
            if (rc)
                break;
            qsort(t, (size_t)reps, sizeof *t, cmp_double);
            printf("%s\n {\"ranks\": %d, \"floats\": %lld, \"bytes\": %lld, \"spin\": %s, \"median_us\": %.1f, "
                   "\"min_us\": %.1f}",
                   first ? "" : ",", ranks[a], floats[b], 4 * floats[b], spun ? "true" : "false", 1e6 * t[reps / 2],
                   1e6 * t[0]);
            first = 0;
            fflush(stdout);
        }
    printf("\n]}\n");
    free(t);
    rmdir(dir);
    return rc;
}
