/* benchutil.h: what the learner benches (learnbench.c, ppobench.c, dqnbench.c) share:
 * their inputs' values (which do not matter to the time), options, CPU clock, the best and
 * median of their repeats, and the machine's load. */
#ifndef BODHI_BENCH_LEARN_BENCHUTIL_H
#define BODHI_BENCH_LEARN_BENCHUTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* a fixed xorshift stream in [-1, 1) */
static inline float bench_noise(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (float)(*x >> 40) / (float)(1 << 24) * 2 - 1;
}

/* the value after `name` on the command line, or def */
static inline long long bench_opt(int argc, char **argv, const char *name, long long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return atoll(argv[i + 1]);
    return def;
}

/* the process's CPU seconds */
static inline double bench_cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* the median of v[0..n) (sorts v) */
static inline double bench_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static inline double bench_least(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

/* /proc/loadavg's line into load ("?" where it cannot be read) */
static inline void bench_loadavg(char *load, size_t len)
{
    snprintf(load, len, "?");
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    if (!fgets(load, (int)len, f))
        snprintf(load, len, "?");
    fclose(f);
    load[strcspn(load, "\n")] = 0;
}

#endif
