/* trace_fixture.c: traces with known contents for the memory and cli suites (see
 * trace_fixture.h). */
#define _GNU_SOURCE
#include "tests/trace_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

/* /tmp/bd_mem_<pid>_<tag> into buf. */
const char *tmp_path(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/bd_mem_%d_%s", (int)getpid(), tag);
    return buf;
}

void rm_rf(const char *path)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    cr_assert_eq(system(cmd), 0);
}

const char *const SENSOR_IDS[4] = {"pole.x", "pole.x_dot", "pole.theta", "pole.theta_dot"};
const char *const ACTUATOR_IDS[2] = {"pole.push", "pole.nudge"};

bd_trace_spec make_spec(const char *path, const char *phase, const char *agent, int n,
                               int s, int u)
{
    bd_trace_spec spec = {
        .path = path, .phase = phase, .agent = agent, .n = n, .s = s, .u = u,
        .sensor_ids = SENSOR_IDS, .actuator_ids = ACTUATOR_IDS, .env_name = "cartpole",
        .env_params_json = "{\"worlds\": 2048}", .seed = 42,
    };
    return spec;
}

/* Element values: exact in float32 for the sizes used here. */
float sensor_val(int64_t t, int w, int k) { return (float)t * 1000.0f + (float)w + 0.25f * (float)k; }
float actuator_val(int64_t t, int w, int k) { return (float)(t % 7) + 0.5f * (float)k - (float)w; }
float reward_val(int64_t t, int w) { return (float)((t * 31 + w * 17) % 13) * 0.25f - 1.0f; }
uint8_t term_val(int64_t t, int w) { return (uint8_t)((t + w) % 5 == 0); }
uint8_t trunc_val(int64_t t, int w) { return (uint8_t)((t * 3 + w) % 11 == 0); }

/* Rows [t0, t0+T) for N worlds: sensors (T,N,S), actuators (T,N,U), rest (T,N). */
rows_buf make_rows(int64_t t0, int T, int N, int S, int U)
{
    rows_buf b = {
        malloc(sizeof(float) * (size_t)T * N * S + 1), malloc(sizeof(float) * (size_t)T * N * U + 1),
        malloc(sizeof(float) * (size_t)T * N + 1), malloc((size_t)T * N + 1), malloc((size_t)T * N + 1),
    };
    cr_assert(b.sen && b.act && b.rew && b.term && b.trunc);
    for (int t = 0; t < T; t++)
        for (int w = 0; w < N; w++) {
            size_t c = (size_t)t * N + w;
            for (int k = 0; k < S; k++)
                b.sen[c * S + k] = sensor_val(t0 + t, w, k);
            for (int k = 0; k < U; k++)
                b.act[c * U + k] = actuator_val(t0 + t, w, k);
            b.rew[c] = reward_val(t0 + t, w);
            b.term[c] = term_val(t0 + t, w);
            b.trunc[c] = trunc_val(t0 + t, w);
        }
    return b;
}

void free_rows(rows_buf *b)
{
    free(b->sen);
    free(b->act);
    free(b->rew);
    free(b->term);
    free(b->trunc);
}

void append_rows(bd_trace_writer *w, int64_t t0, int T, int N, int S, int U)
{
    rows_buf b = make_rows(t0, T, N, S, U);
    int rc = bd_trace_writer_append(w, T, b.sen, b.act, b.rew, b.term, b.trunc);
    cr_assert_eq(rc, BD_OK, "append: %s", bd_lasterr());
    free_rows(&b);
}

/* Reads every dataset of /phase/agent in path and compares it with make_rows(0, T, ...). */
void check_rows(const char *path, const char *phase, const char *agent, int64_t T, int N,
                       int S, int U)
{
    rows_buf want = make_rows(0, (int)T, N, S, U);
    const char *names[5] = {"sensors", "actuators", "rewards", "terminated", "truncated"};
    const void *bufs[5] = {want.sen, want.act, want.rew, want.term, want.trunc};
    const int ranks[5] = {3, 3, 2, 2, 2}, ks[5] = {S, U, 1, 1, 1};
    const size_t es[5] = {4, 4, 4, 1, 1};
    for (int d = 0; d < 5; d++) {
        void *got = NULL;
        int64_t dims[3];
        int rank = 0;
        int rc = bd_trace_read_dataset(path, phase, agent, names[d], &got, dims, &rank);
        cr_assert_eq(rc, BD_OK, "%s: %s", names[d], bd_lasterr());
        cr_assert_eq(rank, ranks[d], "%s rank %d", names[d], rank);
        cr_assert_eq(dims[0], T, "%s has %lld rows, want %lld", names[d], (long long)dims[0], (long long)T);
        cr_assert_eq(dims[1], N);
        cr_assert_eq(dims[2], ks[d]);
        cr_assert(memcmp(got, bufs[d], (size_t)T * N * ks[d] * es[d]) == 0, "%s differs", names[d]);
        free(got);
    }
    free_rows(&want);
}

bd_episode ep(int world, int64_t start, int len, float ret, int term)
{
    bd_episode e = {.world = world, .start_step = start, .length = len, .ret = ret,
                    .terminated = (uint8_t)term, .truncated = (uint8_t)!term};
    return e;
}

void check_episodes(const char *path, const char *phase, const char *agent,
                           const bd_episode *want, int64_t n)
{
    bd_episode *got = NULL;
    int64_t count = -1;
    int rc = bd_trace_read_episodes(path, phase, agent, &got, &count);
    cr_assert_eq(rc, BD_OK, "read_episodes: %s", bd_lasterr());
    cr_assert_eq(count, n, "%lld episodes, want %lld", (long long)count, (long long)n);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(got[i].world, want[i].world, "episode %lld", (long long)i);
        cr_assert_eq(got[i].start_step, want[i].start_step, "episode %lld", (long long)i);
        cr_assert_eq(got[i].length, want[i].length, "episode %lld", (long long)i);
        cr_assert_eq(got[i].ret, want[i].ret, "episode %lld", (long long)i);
        cr_assert_eq(got[i].terminated, want[i].terminated, "episode %lld", (long long)i);
        cr_assert_eq(got[i].truncated, want[i].truncated, "episode %lld", (long long)i);
    }
    free(got);
}

/* A consistent trace: rewards as above, episodes of varying length per world whose return is
 * the float sum of their rewards, reported (like a muscle would) after the batch they end in.
 * corrupt > 0 adds that much to one episode's return. Returns the episode count. */
int64_t write_consistent(const char *path, const char *phase, const char *agent, int N,
                                const int *batches, int nb, float corrupt, int64_t *rows)
{
    bd_trace_spec spec = make_spec(path, phase, agent, N, 4, 1);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    int64_t *start = calloc((size_t)N, sizeof *start);
    int *target = calloc((size_t)N, sizeof *target), *k = calloc((size_t)N, sizeof *k);
    float *acc = calloc((size_t)N, sizeof *acc);
    cr_assert(start && target && k && acc);
    for (int wd = 0; wd < N; wd++)
        target[wd] = 3 + (wd * 7) % 41;
    int64_t t0 = 0, total = 0;
    int corrupted = 0;
    for (int b = 0; b < nb; b++) {
        int T = batches[b];
        rows_buf rb = make_rows(t0, T, N, 4, 1);
        bd_episode *eps = malloc(sizeof *eps * ((size_t)T * N + 1));
        int ne = 0;
        for (int t = 0; t < T; t++)
            for (int wd = 0; wd < N; wd++) {
                size_t c = (size_t)t * N + wd;
                int64_t g = t0 + t;
                acc[wd] += rb.rew[c];
                rb.term[c] = rb.trunc[c] = 0;
                if (g - start[wd] + 1 == target[wd]) {
                    int term = k[wd] % 3 != 0;
                    eps[ne] = ep(wd, start[wd], target[wd], acc[wd], term);
                    if (corrupt != 0 && !corrupted && b == nb - 1) {
                        eps[ne].ret += corrupt;
                        corrupted = 1;
                    }
                    ne++;
                    rb.term[c] = (uint8_t)term;
                    rb.trunc[c] = (uint8_t)!term;
                    start[wd] = g + 1;
                    acc[wd] = 0;
                    k[wd]++;
                    target[wd] = 3 + (wd * 7 + k[wd] * 13) % 41;
                }
            }
        cr_assert_eq(bd_trace_writer_append(w, T, rb.sen, rb.act, rb.rew, rb.term, rb.trunc), BD_OK);
        cr_assert_eq(bd_trace_writer_episodes(w, eps, ne, NULL), BD_OK);
        total += ne;
        t0 += T;
        free(eps);
        free_rows(&rb);
    }
    cr_assert_eq(bd_trace_writer_rows(w), t0);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    free(start);
    free(target);
    free(k);
    free(acc);
    if (rows)
        *rows = t0;
    return total;
}

/* Copies the first half of src to dst. */
void copy_half(const char *src, const char *dst)
{
    char *data = NULL;
    size_t len = 0;
    cr_assert_eq(bd_read_file(src, &data, &len), BD_OK);
    cr_assert(len > 1000, "source file is only %zu bytes", len);
    cr_assert_eq(bd_write_file(dst, data, len / 2), BD_OK);
    free(data);
}
