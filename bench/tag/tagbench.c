/* tagbench.c: `bodhi-tagbench [--agents LIST] [--worlds N] [--seconds S] [--threads T]
 * [--brute] [--brute-max M] [--density D] [--device cpu|cuda] [--json]`: how many
 * agent-steps per second the Tag environment (env/tag.h) runs, by agents per world, with
 * the grid neighbour search and (--brute) the O(M^2) brute force it is checked against.
 * Each point: M agents per world (80% runners, at least one tagger), the other params at
 * their defaults (tag radius 0.5, K 5 neighbours, respawn), and the arena scaled so that the
 * density stays D agents per unit area (default 1: arena = sqrt(M / D)), so a bigger world
 * is a larger arena, not a more crowded one. W worlds per call (default: about 1e6
 * agent-steps per call, at least one world), random actions (bd_env_random_actions) drawn
 * before every step and timed with it, a few warm-up steps, then steps until S seconds
 * have passed. Brute force is measured only up to --brute-max agents per world (default
 * 2000). Multi-threaded CPU runs split worlds in blocks of 64 (env/pool.h): with fewer
 * worlds, one thread does the work.
 * JSON (one object per line): env, device, agents_per_world, runners, taggers, arena,
 * worlds, search (grid or brute), threads, steps, seconds, agent_steps_per_s,
 * ns_per_agent_step. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bodhi/env.h"
#include "common/devmem.h"
#include "common/util.h"

static int parse_ll(const char *what, const char *s, long long lo, long long hi, long long *out)
{
    if (bd_parse_ll(s, lo, hi, out) == BD_OK)
        return 0;
    fprintf(stderr, "bodhi-tagbench: %s must be an integer in [%lld, %lld] (got '%s')\n", what, lo, hi, s);
    return 2;
}

static int parse_d(const char *what, const char *s, double lo, double hi, double *out)
{
    if (bd_parse_double(s, lo, hi, out) == BD_OK)
        return 0;
    fprintf(stderr, "bodhi-tagbench: %s must be a number in [%g, %g] (got '%s')\n", what, lo, hi, s);
    return 2;
}

/* One point: M agents per world, brute or grid search. */
static int bench_one(bd_device dev, int M, long long worlds, double seconds, int threads, int brute,
                     double density, int json)
{
    const bd_env_desc *d = bd_env_find("tag");
    float p[BD_ENV_MAX_PARAMS];
    bd_env_param_defaults(d, p);
    int runners = (int)lround(0.8 * M);
    runners = runners < 1 ? 1 : runners > M - 1 ? M - 1 : runners;
    double arena = sqrt((double)M / density);
    arena = arena < 1 ? 1 : arena > 1e4 ? 1e4 : arena;
    int rc = bd_env_param_set(d, p, "runners", runners);
    if (rc == BD_OK)
        rc = bd_env_param_set(d, p, "taggers", M - runners);
    if (rc == BD_OK)
        rc = bd_env_param_set(d, p, "arena", arena);
    if (rc == BD_OK)
        rc = bd_env_param_set(d, p, "brute_force", brute);
    int W = (int)(worlds > 0 ? worlds : (1000000 + M - 1) / M);
    bd_env *e = NULL;
    if (rc == BD_OK)
        rc = bd_env_create(d, W, 0, 12345, dev, 0, p, &e);
    if (rc == BD_OK)
        rc = bd_env_set_threads(e, threads);
    uint64_t counter = 0;
    if (rc == BD_OK)
        rc = bd_env_random_steps(e, 3, &counter); /* warm-up */
    long steps = 0;
    double t0 = bd_now(), secs = 0;
    while (rc == BD_OK && (secs < seconds || steps < 2)) {
        rc = bd_env_random_steps(e, 1, &counter);
        steps++;
        secs = bd_now() - t0;
    }
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi-tagbench: %d agents per world: %s\n", M, bd_lasterr());
        bd_env_destroy(e);
        return 1;
    }
    double agent_steps = (double)M * (double)W * (double)steps, rate = agent_steps / secs;
    int used = dev == BD_DEVICE_CPU ? (threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN)) : 0;
    const char *dn = dev == BD_DEVICE_CUDA ? "cuda" : "cpu", *search = brute ? "brute" : "grid";
    if (json)
        printf("{\"env\":\"tag\",\"device\":\"%s\",\"agents_per_world\":%d,\"runners\":%d,\"taggers\":%d,"
               "\"arena\":%.6g,\"worlds\":%d,\"search\":\"%s\",\"threads\":%d,\"steps\":%ld,\"seconds\":%.4g,"
               "\"agent_steps_per_s\":%.6g,\"ns_per_agent_step\":%.5g}\n",
               dn, M, runners, M - runners, arena, W, search, used, steps, secs, rate, 1e9 / rate);
    else
        printf("tag %-4s %-5s %6d agents/world x %7d worlds, arena %7.2f: %6ld steps in %6.2f s  %10.4g "
               "agent-steps/s  %8.2f ns/agent-step\n",
               dn, search, M, W, arena, steps, secs, rate, 1e9 / rate);
    fflush(stdout);
    bd_env_destroy(e);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bodhi-tagbench [--agents LIST] [--worlds N] [--seconds S] [--threads T] [--brute]\n"
                    "                      [--brute-max M] [--density D] [--device cpu|cuda] [--json]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *agents = "100,300,1000,3000,10000";
    long long worlds = 0, threads = 1, brute_max = 2000;
    double seconds = 2, density = 1;
    int brute = 0, json = 0, rc;
    bd_device dev = BD_DEVICE_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--brute") == 0) {
            brute = 1;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (!v) {
            return usage();
        } else if (strcmp(a, "--agents") == 0) {
            agents = v, i++;
        } else if (strcmp(a, "--worlds") == 0) {
            if ((rc = parse_ll("--worlds", v, 1, 1 << 30, &worlds)))
                return rc;
            i++;
        } else if (strcmp(a, "--threads") == 0) {
            if ((rc = parse_ll("--threads", v, 0, 4096, &threads)))
                return rc;
            i++;
        } else if (strcmp(a, "--brute-max") == 0) {
            if ((rc = parse_ll("--brute-max", v, 2, 1 << 20, &brute_max)))
                return rc;
            i++;
        } else if (strcmp(a, "--seconds") == 0) {
            if ((rc = parse_d("--seconds", v, 0, 1e6, &seconds)))
                return rc;
            i++;
        } else if (strcmp(a, "--density") == 0) {
            if ((rc = parse_d("--density", v, 1e-6, 1e6, &density)))
                return rc;
            i++;
        } else if (strcmp(a, "--device") == 0) {
            if (strcmp(v, "cuda") == 0)
                dev = BD_DEVICE_CUDA;
            else if (strcmp(v, "cpu") != 0)
                return usage();
            i++;
        } else {
            return usage();
        }
    }
    if (dev == BD_DEVICE_CUDA && !bd_cuda_available()) {
        fprintf(stderr, "bodhi-tagbench: --device cuda, but no CUDA GPU answers here\n");
        return 2;
    }
    int fails = 0;
    char list[1024];
    snprintf(list, sizeof list, "%s", agents);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        long long M;
        if ((rc = parse_ll("--agents", tok, 2, 131072, &M)))
            return rc;
        fails += bench_one(dev, (int)M, worlds, seconds, (int)threads, 0, density, json);
        if (brute && M <= brute_max)
            fails += bench_one(dev, (int)M, worlds, seconds, (int)threads, 1, density, json);
    }
    return fails ? 1 : 0;
}
