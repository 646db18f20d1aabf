/* tracebench.c: `bodhi-tracebench [--worlds N] [--rows R] [--batch T] [--dir D]`: how fast
 * memory/'s trace writer puts a brain's rows on disk, per compression (none, blosc, lz4,
 * deflate), with rows of CartPole stepped with random actions (the data a run records, so
 * the compression ratios mean something). Each mode writes the same rows through
 * bd_trace_writer_append in batches of T rows, closes the file and fsyncs it; the rate is
 * the rows' bytes over that whole time. Prints one JSON object. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bodhi/env.h"
#include "common/util.h"
#include "memory/memory.h"

static long long opt(int argc, char **argv, const char *name, long long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return atoll(argv[i + 1]);
    return def;
}

static const char *opt_s(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

int main(int argc, char **argv)
{
    const int N = (int)opt(argc, argv, "--worlds", 8192), R = (int)opt(argc, argv, "--rows", 2048),
              T = (int)opt(argc, argv, "--batch", 128);
    const char *dir = opt_s(argc, argv, "--dir", "/tmp");
    if (N < 1 || R < T || T < 1) {
        fprintf(stderr, "usage: bodhi-tracebench [--worlds N] [--rows R >= T] [--batch T] [--dir D]\n");
        return 2;
    }
    const bd_env_desc *d = bd_env_find("cartpole");
    bd_env *env = NULL;
    if (bd_env_create(d, N, 0, 7, BD_DEVICE_CPU, 0, NULL, &env) != BD_OK) {
        fprintf(stderr, "tracebench: %s\n", bd_lasterr());
        return 1;
    }
    const int S = d->obs_dim, U = d->act_dim;
    size_t tn = (size_t)T * (size_t)N;
    float *obs = malloc(sizeof(float) * tn * S), *act = malloc(sizeof(float) * tn * U), *rew = malloc(sizeof(float) * tn);
    uint8_t *te = malloc(tn), *tr = malloc(tn);
    /* one batch of real rows, written R / T times (stepping the env is not what is timed) */
    bd_env_batch *b = bd_env_batch_of(env);
    for (int t = 0; t < T; t++) {
        memcpy(obs + (size_t)t * N * S, b->obs, sizeof(float) * (size_t)N * S);
        bd_env_random_actions(env, (uint64_t)t);
        memcpy(act + (size_t)t * N * U, b->actions, sizeof(float) * (size_t)N * U);
        bd_env_step(env);
        memcpy(rew + (size_t)t * N, b->rewards, sizeof(float) * (size_t)N);
        memcpy(te + (size_t)t * N, b->terminated, (size_t)N);
        memcpy(tr + (size_t)t * N, b->truncated, (size_t)N);
    }
    const char *ids[] = {"pole.x", "pole.x_dot", "pole.theta", "pole.theta_dot"}, *aid[] = {"pole.push"};
    double row_bytes = (double)N * (4.0 * (S + U + 1) + 2);
    printf("{\"bench\": \"trace-write\", \"env\": \"cartpole\", \"worlds\": %d, \"rows\": %d, \"batch\": %d, "
           "\"bytes\": %.0f, \"dir\": \"%s\", \"modes\": [",
           N, R, T, row_bytes * R, dir);
    int first = 1;
    for (int c = BD_COMPRESS_NONE; c <= BD_COMPRESS_DEFLATE; c++) {
        if (bd_compression_available((bd_compression)c) != BD_OK)
            continue;
        char *path = bd_strfmt("%s/bd-tracebench-%d-%s.h5", dir, (int)getpid(), bd_compression_name((bd_compression)c));
        bd_trace_spec spec = {.path = path, .phase = "train", .agent = "bench", .n = N, .s = S, .u = U,
                              .sensor_ids = ids, .actuator_ids = aid, .env_name = "cartpole", .seed = 7,
                              .compression = (bd_compression)c};
        bd_trace_writer *w = NULL;
        double t0 = bd_now();
        int rc = bd_trace_writer_create(&spec, &w);
        for (int r = 0; rc == BD_OK && r < R; r += T)
            rc = bd_trace_writer_append(w, T, obs, act, rew, te, tr);
        int drc = bd_trace_writer_destroy(w);
        rc = rc ? rc : drc;
        int fd = open(path, O_RDONLY);
        if (fd >= 0) {
            fsync(fd);
            close(fd);
        }
        double secs = bd_now() - t0;
        struct stat st;
        double size = stat(path, &st) == 0 ? (double)st.st_size : 0;
        if (rc != BD_OK) {
            fprintf(stderr, "tracebench %s: %s\n", bd_compression_name((bd_compression)c), bd_lasterr());
        } else {
            printf("%s{\"compression\": \"%s\", \"seconds\": %.3f, \"MB_per_s\": %.1f, \"file_bytes\": %.0f, "
                   "\"ratio\": %.2f}",
                   first ? "" : ", ", bd_compression_name((bd_compression)c), secs, row_bytes * R / secs / 1e6, size,
                   size > 0 ? row_bytes * R / size : 0);
            first = 0;
        }
        unlink(path);
        free(path);
    }
    printf("]}\n");
    free(obs);
    free(act);
    free(rew);
    free(te);
    free(tr);
    bd_env_destroy(env);
    return 0;
}
