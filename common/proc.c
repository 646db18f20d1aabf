/* proc.c: child-process set-up (see proc.h). */
#define _GNU_SOURCE /* RTLD_DEFAULT, strcasestr */
#include "common/proc.h"

#include <dlfcn.h>

#include <limits.h>
#include <math.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bodhi/bodhi.h"
#include "common/util.h"

volatile sig_atomic_t bd_term_requested = 0;

static void bd_on_term(int sig)
{
    bd_term_requested = sig == SIGUSR2 || bd_term_requested == 2 ? 2 : 1;
}

static pid_t bd_parent = 0;

double bd_main_t = 0;

/* CLOCK_MONOTONIC time of this process's exec: its start time in /proc/self/stat (clock
 * ticks since boot) against CLOCK_BOOTTIME now; NAN where unreadable. */
static double bd_exec_time(void)
{
    FILE *f = fopen("/proc/self/stat", "re");
    char buf[1024];
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long start = 0;
    int field = 2;
    for (; p && *p && field < 22; p++)
        if (*p == ' ')
            field++;
    if (!p || sscanf(p, "%llu", &start) != 1)
        return NAN;
    struct timespec bt;
    clock_gettime(CLOCK_BOOTTIME, &bt);
    double boot_now = (double)bt.tv_sec + 1e-9 * (double)bt.tv_nsec;
    return bd_now() - (boot_now - (double)start / (double)sysconf(_SC_CLK_TCK));
}

cJSON *bd_startup_new(const char *role)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "event", "startup");
    cJSON_AddStringToObject(o, "role", role);
    double ex = bd_exec_time();
    if (!isnan(ex))
        cJSON_AddNumberToObject(o, "exec", ex);
    cJSON_AddNumberToObject(o, "main", bd_main_t);
    return o;
}

void bd_startup_mark(cJSON *o, const char *stage)
{
    if (o)
        cJSON_AddNumberToObject(o, stage, bd_now());
}

void bd_alloc_policy(void)
{
    /* Setting either also turns off glibc's moving mmap threshold, the cause of the bimodal
     * run times: a freed mmapped block raises it, so whether an update's large buffers
     * live in the heap or in fresh mappings depended on the order of the first frees. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

/* setenv(name, value) where name is unset or empty (OpenBLAS reads an empty
 * OPENBLAS_NUM_THREADS as every core): 1 when it set it */
static int bd_env_default(const char *name, const char *value)
{
    const char *v = getenv(name);
    return !(v && *v) && setenv(name, value, 1) == 0;
}

int bd_blas_env(void)
{
    int set = bd_env_default("OPENBLAS_NUM_THREADS", "1");
    set |= bd_env_default("OMP_WAIT_POLICY", "passive");
    return set;
}

int bd_blas_avx512(void)
{
    char *(*corename)(void) = (char *(*)(void))dlsym(RTLD_DEFAULT, "openblas_get_corename");
    const char *n = corename ? corename() : NULL;
    return n && (strcasestr(n, "skylakex") || strcasestr(n, "cooperlake") || strcasestr(n, "sapphirerapids"));
}

void bd_thread_env_reexec(char *const *argv)
{
    if (bd_blas_env())
        execv("/proc/self/exe", argv);
}

void bd_nofile_raise(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int bd_parent_gone(void)
{
    return bd_parent > 0 && getppid() != bd_parent;
}

int bd_child_init(pid_t parent, int catch_term, int deathsig)
{
    prctl(PR_SET_PDEATHSIG, deathsig);
    bd_parent = parent;
    if (parent > 0 && getppid() != parent)
        return bd_seterr(BD_ECLOSED, "parent %d is gone", (int)parent);
    /* Ctrl-C and a closed terminal reach the whole process group: the conductor stops
     * its children itself, in order */
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (catch_term) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = bd_on_term;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGUSR2, &sa, NULL);
    }
    return BD_OK;
}

pid_t bd_proc_parent(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "re") : NULL;
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so after the last ')' */
    const char *close = strrchr(buf, ')');
    char state;
    int ppid;
    if (!close || sscanf(close + 1, " %c %d", &state, &ppid) != 2 || ppid <= 0)
        return 0;
    return (pid_t)ppid;
}
