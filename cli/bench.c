/* bench.c: `bodhi bench [ENV] [--device cpu|cuda] [--agents N] [--steps T] [--threads K]
 * [--json]`: steps N agents of each environment (N worlds, or N / 25 Tag worlds of its
 * default 25 agents) T times under a uniform
 * random policy drawn on the same device, and reports agent-steps per second, the bytes
 * one agent-step moves, the measured copy bandwidth over the same working set (which may
 * fit in the CPU's last-level cache: then it is a cache rate, and said so), the copy
 * bandwidth of memory (a working set of 256 MiB at least, beyond the last-level cache of
 * the CPUs it was measured on), and the floor: the rate at which just moving each agent-step's bytes through
 * memory would run.
 * JSON (one object per line): env, device, device_name, agents, steps, threads, seconds,
 * agent_steps_per_s, bytes_per_step (per agent-step), working_set_bytes, llc_bytes (0:
 * unknown), copy_bytes_per_s (over the working set), memory_copy_bytes_per_s,
 * memory_working_set_bytes, floor_agent_steps_per_s (from memory's rate),
 * fraction_of_floor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "bodhi/env.h"
#include "cli/cli.h"
#include "common/devmem.h"
#include "common/util.h"

/* The CPU's last-level cache in bytes (the largest cache sysfs lists for cpu0), 0 when
 * unknown. */
static size_t bd_llc_bytes(void)
{
    size_t best = 0;
    for (int i = 0; i < 8; i++) {
        char path[96], text[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char unit = 0;
        unsigned long long v = 0;
        if (fgets(text, sizeof text, f) && sscanf(text, "%llu%c", &v, &unit) >= 1) {
            size_t b = (size_t)v * (unit == 'K' ? 1024 : unit == 'M' ? 1 << 20 : 1);
            best = b > best ? b : best;
        }
        fclose(f);
    }
    if (best == 0) {
        long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
        best = l3 > 0 ? (size_t)l3 : 0;
    }
    return best;
}

static int bd_parse_count(const char *what, const char *s, long long lo, long long hi, long long *out)
{
    if (bd_parse_ll(s, lo, hi, out) == BD_OK)
        return 0;
    fprintf(stderr, "bodhi bench: %s must be an integer in [%lld, %lld] (got '%s')\n", what, lo, hi, s);
    return 2;
}

static int bd_bench_one(const bd_env_desc *d, bd_device dev, long long agents, long long T, int threads,
                        int json)
{
    bd_env *e = NULL;
    bd_env_shape sh;
    int rc = bd_env_shape_of(d, NULL, &sh);
    /* agents: worlds of the env's default size (a Tag world holds 25), at least one */
    long long worlds = rc == BD_OK ? (agents + sh.members - 1) / sh.members : 1, n = worlds * sh.members;
    if (rc == BD_OK)
        rc = bd_env_create(d, (int)worlds, 0, 12345, dev, 0, NULL, &e);
    if (rc == BD_OK)
        rc = bd_env_set_threads(e, threads);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi bench %s: %s\n", d->name, bd_lasterr());
        bd_env_destroy(e);
        return 1;
    }
    uint64_t counter = 0;
    rc = bd_env_random_steps(e, 20, &counter); /* warm-up */
    double t0 = bd_now();
    if (rc == BD_OK)
        rc = bd_env_random_steps(e, T, &counter);
    double secs = bd_now() - t0;
    double bps = bd_env_bytes_per_world_step(d) / sh.members, bw = 0, mbw = 0; /* per agent-step */
    /* the same working set (maybe all in cache), and one that memory must serve */
    size_t ws = (size_t)(bps * (double)n / 2), llc = bd_llc_bytes();
    size_t mws = ws > ((size_t)256 << 20) ? ws : (size_t)256 << 20;
    if (rc == BD_OK)
        rc = bd_env_copy_bandwidth(e, ws, &bw);
    if (rc == BD_OK)
        rc = mws == ws ? (mbw = bw, BD_OK) : bd_env_copy_bandwidth(e, mws, &mbw);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi bench %s: %s\n", d->name, bd_lasterr());
        bd_env_destroy(e);
        return 1;
    }
    double rate = (double)n * (double)T / secs, floor_rate = mbw / bps;
    int in_cache = dev == BD_DEVICE_CPU && (llc == 0 || ws <= llc);
    char name[256] = "";
    if (dev == BD_DEVICE_CUDA)
        bd_cuda_device_name(name, sizeof name);
    int used_threads = dev == BD_DEVICE_CPU ? (threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN)) : 0;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "env", d->name);
        cJSON_AddStringToObject(o, "device", dev == BD_DEVICE_CUDA ? "cuda" : "cpu");
        if (name[0])
            cJSON_AddStringToObject(o, "device_name", name);
        cJSON_AddNumberToObject(o, "agents", (double)n);
        cJSON_AddNumberToObject(o, "steps", (double)T);
        cJSON_AddNumberToObject(o, "threads", used_threads);
        cJSON_AddNumberToObject(o, "seconds", secs);
        cJSON_AddNumberToObject(o, "agent_steps_per_s", rate);
        cJSON_AddNumberToObject(o, "bytes_per_step", bps);
        cJSON_AddNumberToObject(o, "working_set_bytes", (double)ws);
        cJSON_AddNumberToObject(o, "llc_bytes", (double)llc);
        cJSON_AddNumberToObject(o, "copy_bytes_per_s", bw);
        cJSON_AddNumberToObject(o, "memory_copy_bytes_per_s", mbw);
        cJSON_AddNumberToObject(o, "memory_working_set_bytes", (double)mws);
        cJSON_AddNumberToObject(o, "floor_agent_steps_per_s", floor_rate);
        cJSON_AddNumberToObject(o, "fraction_of_floor", rate / floor_rate);
        char *s = cJSON_PrintUnformatted(o);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(o);
    } else {
        char b1[32], b2[32];
        printf("%-12s %-4s %10lld agents x %6lld steps: %8.3f s  %10.3g agent-steps/s  "
               "%.0f B/agent-step  copy %.3g GB/s over its %s%s  memory %.3g GB/s over %s  "
               "floor %.3g/s from memory  (%.0f%% of floor)\n",
               d->name, dev == BD_DEVICE_CUDA ? "cuda" : "cpu", n, T, secs, rate, bps, bw / 1e9,
               bd_bytes_text((double)ws, b1, sizeof b1), in_cache ? " (in cache)" : "", mbw / 1e9,
               bd_bytes_text((double)mws, b2, sizeof b2), floor_rate, 100 * rate / floor_rate);
    }
    if (n != agents) /* said, on stderr: the tables and JSON lines stay as they were */
        fprintf(stderr, "bodhi bench: %s: %lld agents asked, %lld stepped (%lld world(s) of %d agents)\n", d->name,
                agents, n, worlds, sh.members);
    fflush(stdout);
    bd_env_destroy(e);
    return 0;
}

int bd_cmd_bench(int argc, char **argv)
{
    const char *env = NULL, *device = NULL, *agents = NULL, *steps = NULL, *threads = NULL, *json = NULL;
    bd_opt spec[] = {{"device=", &device}, {"agents=", &agents}, {"steps=", &steps},
                     {"threads=", &threads}, {"json", &json}, {0}};
    int rc = bd_parse_opts("bench", argc, argv, spec, &env, 1, 0);
    if (rc)
        return BD_OPTS_EXIT(rc);
    bd_device dev = BD_DEVICE_CPU;
    if (device && strcmp(device, "cuda") == 0)
        dev = BD_DEVICE_CUDA;
    else if (device && strcmp(device, "auto") == 0)
        dev = bd_cuda_available() ? BD_DEVICE_CUDA : BD_DEVICE_CPU;
    else if (device && strcmp(device, "cpu") != 0) {
        fprintf(stderr, "bodhi bench: --device must be cpu, cuda or auto (got '%s')\n", device);
        return 2;
    }
    if (dev == BD_DEVICE_CUDA && !bd_cuda_available()) {
        fprintf(stderr, "bodhi bench: --device cuda, but no CUDA GPU answers here\n");
        return 2;
    }
    long long n = dev == BD_DEVICE_CUDA ? 16 << 20 : 65536, T = dev == BD_DEVICE_CUDA ? 1000 : 2000, th = 0;
    if (agents && (rc = bd_parse_count("--agents", agents, 1, 1ll << 31, &n)))
        return rc;
    if (steps && (rc = bd_parse_count("--steps", steps, 1, 1ll << 40, &T)))
        return rc;
    if (threads && (rc = bd_parse_count("--threads", threads, 0, 4096, &th)))
        return rc;
    int count;
    const bd_env_desc *const *reg = bd_env_registry(&count);
    const bd_env_desc *only = env ? bd_env_find(env) : NULL; /* a name or a Gymnasium id */
    int found = 0, fails = 0;
    for (int i = 0; i < count; i++) {
        if (env && reg[i] != only)
            continue;
        found = 1;
        fails += bd_bench_one(reg[i], dev, n, T, (int)th, json != NULL);
    }
    if (!found) {
        fprintf(stderr, "bodhi bench: unknown environment '%s' (see bodhi envs)\n", env);
        return 2;
    }
    return fails ? 1 : 0;
}
