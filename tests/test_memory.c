/* test_memory.c: Criterion suite for memory/ (writer.c, master.c, reader.c, recover.c).
 *
 * Writes traces with known contents (values computed from row, world and column, so every
 * element is checked; tests/trace_fixture.c), reads them back through the readers, a master
 * file with external links, and h5py (skipped when /usr/bin/python3 has no h5py); feeds the
 * readers truncated, foreign and missing files, and files whose writer died, and repairs
 * those. (bodhi replay's statistics, CSV and --verify are test_cli.c's.) Files go to /tmp with the pid and test name in their names (Criterion
 * runs tests in parallel processes).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "memory/memory.h"
#include "tests/trace_fixture.h"

/* ---- helpers ----------------------------------------------------------------------- */

/* The text an HDF5 attribute holds (vlen string scalar or element i of an array). */
static char *read_str_attr(hid_t obj, const char *name, int i)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    cr_assert(a >= 0, "attribute %s", name);
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    cr_assert(H5Tis_variable_str(ft) > 0, "%s is not a variable-length string", name);
    cr_assert_eq(H5Tget_cset(ft), H5T_CSET_UTF8, "%s is not UTF-8", name);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    char **v = calloc((size_t)n, sizeof *v);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5T_CSET_UTF8);
    cr_assert(H5Aread(a, mt, v) >= 0);
    char *s = strdup(v[i]);
    H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
    free(v);
    H5Tclose(mt);
    H5Sclose(sp);
    H5Tclose(ft);
    H5Aclose(a);
    return s;
}

static hssize_t attr_len(hid_t obj, const char *name)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT), sp = H5Aget_space(a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Aclose(a);
    return n;
}

static int has_h5py(void)
{
    return system("/usr/bin/python3 -c 'import h5py' >/dev/null 2>&1") == 0;
}

/* Runs a Python snippet with /usr/bin/python3 from cwd "/"; returns its exit status. */
static int run_python(const char *tag, const char *code, const char *arg)
{
    char script[256], cmd[1024];
    tmp_path(script, sizeof script, tag);
    strcat(script, ".py");
    cr_assert_eq(bd_write_file(script, code, strlen(code)), BD_OK);
    snprintf(cmd, sizeof cmd, "cd / && /usr/bin/python3 '%s' '%s'", script, arg);
    int st = system(cmd);
    unlink(script);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* ---- writer and readers ------------------------------------------------------------- */

Test(memory, round_trip)
{
    char path[256];
    tmp_path(path, sizeof path, "round_trip.h5");
    const int N = 300, S = 4, U = 2;  /* sensors rows are 4800 B: 109 rows per chunk */
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    const int Ts[] = {1, 50, 109, 200, 37, 3};
    int64_t t0 = 0;
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        append_rows(w, t0, Ts[i], N, S, U);
        t0 += Ts[i];
        cr_assert_eq(bd_trace_writer_rows(w), t0);
    }
    bd_episode e1[] = {ep(0, 0, 10, 3.5f, 1), ep(299, 5, 100, -2.0f, 0)};
    bd_episode e2[] = {ep(7, 17, 300, 1e6f, 0)};
    cr_assert_eq(bd_trace_writer_episodes(w, e1, 2, NULL), BD_OK);
    cr_assert_eq(bd_trace_writer_episodes(w, e2, 1, NULL), BD_OK);
    cr_assert_eq(bd_trace_writer_append(w, 0, NULL, NULL, NULL, NULL, NULL), BD_OK);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());

    check_rows(path, "train", "balancer", t0, N, S, U);
    bd_episode all[] = {e1[0], e1[1], e2[0]};
    check_episodes(path, "train", "balancer", all, 3);

    /* attributes, maxdims and chunk sizes, straight from HDF5 */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    hid_t g = H5Gopen2(f, "/train/balancer", H5P_DEFAULT);
    cr_assert(g >= 0);
    cr_assert_eq(attr_len(g, "sensor_ids"), S);
    cr_assert_eq(attr_len(g, "actuator_ids"), U);
    for (int k = 0; k < S; k++) {
        char *s = read_str_attr(g, "sensor_ids", k);
        cr_assert_str_eq(s, SENSOR_IDS[k]);
        free(s);
    }
    char *s = read_str_attr(g, "actuator_ids", 1);
    cr_assert_str_eq(s, "pole.nudge");
    free(s);
    s = read_str_attr(g, "env", 0);
    cr_assert_str_eq(s, "cartpole");
    free(s);
    s = read_str_attr(g, "env_params", 0);
    cr_assert_str_eq(s, "{\"worlds\": 2048}");
    free(s);
    uint64_t seed = 0;
    int32_t worlds = 0;
    hid_t a = H5Aopen(g, "seed", H5P_DEFAULT);
    cr_assert(H5Aread(a, H5T_NATIVE_UINT64, &seed) >= 0);
    H5Aclose(a);
    a = H5Aopen(g, "worlds", H5P_DEFAULT);
    cr_assert(H5Aread(a, H5T_NATIVE_INT32, &worlds) >= 0);
    H5Aclose(a);
    cr_assert_eq(seed, 42);
    cr_assert_eq(worlds, N);
    const char *names[] = {"sensors", "actuators", "rewards", "terminated", "truncated", "episodes"};
    for (int d = 0; d < 6; d++) {
        hid_t ds = H5Dopen2(g, names[d], H5P_DEFAULT);
        hid_t dcpl = H5Dget_create_plist(ds), sp = H5Dget_space(ds), t = H5Dget_type(ds);
        hsize_t chunk[3] = {0}, maxd[3] = {0};
        int rank = H5Pget_chunk(dcpl, 3, chunk);
        H5Sget_simple_extent_dims(sp, NULL, maxd);
        size_t bytes = H5Tget_size(t);
        for (int i = 0; i < rank; i++)
            bytes *= chunk[i];
        cr_assert(rank >= 1, "%s is not chunked", names[d]);
        cr_assert(chunk[0] >= 1);
        cr_assert(bytes <= 512 * 1024, "%s chunk is %zu bytes", names[d], bytes);
        cr_assert_eq(maxd[0], H5S_UNLIMITED, "%s cannot grow", names[d]);
        H5Tclose(t);
        H5Sclose(sp);
        H5Pclose(dcpl);
        H5Dclose(ds);
    }
    H5Gclose(g);
    H5Fclose(f);
    unlink(path);
}

/* record: {every: K, worlds: N}: the writer keeps every K-th step appended (counting
 * across appends of any size, so a step kept does not depend on how rounds cut the steps)
 * and the first N of the W columns it is given, and says so in its attributes. */
Test(memory, writer_keeps_every_kth_step_of_the_first_worlds)
{
    char path[256];
    tmp_path(path, sizeof path, "every.h5");
    const int W = 12, N = 5, S = 3, U = 2, K = 3;
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    spec.worlds = W;
    spec.every = K;
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    const int Ts[] = {1, 1, 4, 2, 7, 16, 5}; /* 36 steps: rows at steps 0, 3, ..., 33 */
    int64_t t0 = 0, kept = 0;
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        append_rows(w, t0, Ts[i], W, S, U);
        for (int64_t t = t0; t < t0 + Ts[i]; t++)
            kept += t % K == 0;
        t0 += Ts[i];
        cr_assert_eq(bd_trace_writer_rows(w), kept, "after %lld steps: %lld rows, want %lld", (long long)t0,
                     (long long)bd_trace_writer_rows(w), (long long)kept);
    }
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(kept, 12);
    /* row r holds step r K of worlds 0..N-1, every element as it was appended */
    const char *names[] = {"sensors", "actuators", "rewards", "terminated", "truncated"};
    for (int d = 0; d < 5; d++) {
        void *got = NULL;
        int64_t dims[3];
        int rank = 0;
        cr_assert_eq(bd_trace_read_dataset(path, "train", "balancer", names[d], &got, dims, &rank), BD_OK, "%s",
                     bd_lasterr());
        const int k = d == 0 ? S : d == 1 ? U : 1;
        cr_assert(dims[0] == kept && dims[1] == N && dims[2] == k, "%s is (%lld, %lld, %lld)", names[d],
                  (long long)dims[0], (long long)dims[1], (long long)dims[2]);
        for (int64_t r = 0; r < kept; r++)
            for (int c = 0; c < N; c++)
                for (int j = 0; j < k; j++) {
                    size_t at = ((size_t)r * N + c) * k + j;
                    int64_t t = r * K;
                    if (d == 0)
                        cr_assert_eq(((float *)got)[at], sensor_val(t, c, j), "sensors[%lld][%d][%d]", (long long)r, c, j);
                    else if (d == 1)
                        cr_assert_eq(((float *)got)[at], actuator_val(t, c, j));
                    else if (d == 2)
                        cr_assert_eq(((float *)got)[at], reward_val(t, c));
                    else
                        cr_assert_eq(((uint8_t *)got)[at], d == 3 ? term_val(t, c) : trunc_val(t, c));
                }
        free(got);
    }
    bd_trace_info info;
    cr_assert_eq(bd_trace_read_info(path, "train", "balancer", &info), BD_OK, "%s", bd_lasterr());
    cr_assert(info.every == K && info.worlds == W && info.recorded_worlds == N && info.rows == kept,
              "every %d, worlds %d, recorded %d, rows %lld", info.every, info.worlds, info.recorded_worlds,
              (long long)info.rows);
    bd_trace_info_free(&info);
    /* fewer columns given than recorded is refused at create */
    spec.worlds = N - 1;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_EINVAL);
    unlink(path);
}

/* Each kept (step, column) keeps the weights version it was appended with; appends that
 * give none read as 0; the rows stay as many as the other datasets'. */
Test(memory, weights_versions_follow_their_steps)
{
    char path[256];
    tmp_path(path, sizeof path, "versions.h5");
    const int W = 6, N = 4, S = 2, U = 1, K = 2, T = 5;
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    spec.worlds = W;
    spec.every = K;
    spec.world0 = 3000000000u; /* rank 3's first world id of 1e9 worlds a rank: past INT32_MAX, read back whole */
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    float sens[T * W * S], act[T * W * U], rew[T * W];
    uint8_t term[T * W], trunc[T * W];
    uint64_t ver[T * W];
    memset(sens, 0, sizeof sens), memset(act, 0, sizeof act), memset(rew, 0, sizeof rew);
    memset(term, 0, sizeof term), memset(trunc, 0, sizeof trunc);
    for (int round = 0; round < 3; round++) { /* steps 0..14: rows at steps 0, 2, ..., 14 */
        for (int t = 0; t < T; t++)
            for (int c = 0; c < W; c++)
                ver[t * W + c] = ((uint64_t)1 << 40) + (uint64_t)(100 * round + 10 * t + c);
        int rc = round == 1 ? bd_trace_writer_append(w, T, sens, act, rew, term, trunc)
                            : bd_trace_writer_append_versions(w, T, sens, act, rew, term, trunc, ver);
        cr_assert_eq(rc, BD_OK, "%s", bd_lasterr());
    }
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    void *got = NULL;
    int64_t dims[3];
    int rank = 0;
    cr_assert_eq(bd_trace_read_dataset(path, "train", "balancer", "weights_version", &got, dims, &rank), BD_OK,
                 "%s", bd_lasterr());
    cr_assert(rank == 2 && dims[0] == 8 && dims[1] == N, "rank %d, (%lld, %lld)", rank, (long long)dims[0],
              (long long)dims[1]);
    for (int r = 0; r < 8; r++)
        for (int c = 0; c < N; c++) {
            const int step = r * K, round = step / T, t = step % T;
            const uint64_t want = round == 1 ? 0 : ((uint64_t)1 << 40) + (uint64_t)(100 * round + 10 * t + c);
            cr_assert_eq(((uint64_t *)got)[r * N + c], want, "row %d column %d", r, c);
        }
    free(got);
    bd_trace_info info;
    cr_assert_eq(bd_trace_read_info(path, "train", "balancer", &info), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(info.rows, 8);
    cr_assert_eq(info.world0, 3000000000, "%lld", (long long)info.world0);
    bd_trace_info_free(&info);
    unlink(path);
}

Test(memory, wide_rows_split_chunks)
{
    /* One sensors row is 3.2 MB: chunks must split along N (one row, 32768 worlds). */
    char path[256];
    tmp_path(path, sizeof path, "wide.h5");
    const int N = 200000, S = 4, U = 1;
    bd_trace_spec spec = make_spec(path, "train", "many", N, S, U);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    append_rows(w, 0, 2, N, S, U);
    append_rows(w, 2, 1, N, S, U);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    check_rows(path, "train", "many", 3, N, S, U);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "/train/many/sensors", H5P_DEFAULT), dcpl = H5Dget_create_plist(ds);
    hsize_t chunk[3];
    cr_assert_eq(H5Pget_chunk(dcpl, 3, chunk), 3);
    cr_assert_eq(chunk[0], 1);
    cr_assert_eq(chunk[1], 32768);
    cr_assert_eq(chunk[2], 4);
    H5Pclose(dcpl);
    H5Dclose(ds);
    H5Fclose(f);
    unlink(path);
}

Test(memory, episodes_in_batches)
{
    char path[256];
    tmp_path(path, sizeof path, "episodes.h5");
    bd_trace_spec spec = make_spec(path, "test", "balancer", 4, 1, 1);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    const int sizes[] = {1, 0, 4095, 3, 5000, 17};  /* crosses the 4096-row chunks */
    int total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += sizes[i];
    bd_episode *all = malloc(sizeof *all * (size_t)total);
    for (int i = 0; i < total; i++)
        all[i] = ep(i % 4, (int64_t)i * 3 + ((int64_t)1 << 40), 1 + i % 500, (float)i * 0.5f, i % 2);
    int off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        cr_assert_eq(bd_trace_writer_episodes(w, all + off, sizes[i], NULL), BD_OK);
        off += sizes[i];
    }
    cr_assert_eq(bd_trace_writer_episodes(w, NULL, -1, NULL), BD_EINVAL);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    check_episodes(path, "test", "balancer", all, total);
    check_rows(path, "test", "balancer", 0, 4, 1, 1);  /* no rows: empty datasets */
    free(all);
    unlink(path);
}

Test(memory, many_small_appends)
{
    char path[256];
    tmp_path(path, sizeof path, "small.h5");
    const int N = 8, S = 3, U = 1, T = 3000;
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    for (int t = 0; t < T; t++) {
        append_rows(w, t, 1, N, S, U);
        if (t % 100 == 0) {
            bd_episode e = ep(t % N, t, 1, reward_val(t, t % N), 1);
            cr_assert_eq(bd_trace_writer_episodes(w, &e, 1, NULL), BD_OK);
        }
    }
    cr_assert_eq(bd_trace_writer_rows(w), T);
    cr_assert_eq(bd_trace_writer_sync(w), BD_OK);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    check_rows(path, "train", "balancer", T, N, S, U);
    bd_episode *got = NULL;
    int64_t n = 0;
    cr_assert_eq(bd_trace_read_episodes(path, "train", "balancer", &got, &n), BD_OK);
    cr_assert_eq(n, T / 100);
    free(got);
    unlink(path);
}

Test(memory, read_rows_and_shape)
{
    char path[256];
    tmp_path(path, sizeof path, "rows.h5");
    const int N = 5, S = 2, U = 1;
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK);
    append_rows(w, 0, 40, N, S, U);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
    int64_t dims[3];
    int rank;
    cr_assert_eq(bd_trace_dataset_shape(path, "train", "balancer", "sensors", dims, &rank, NULL), BD_OK);
    cr_assert(rank == 3 && dims[0] == 40 && dims[1] == N && dims[2] == S);
    float buf[3 * N * S];
    cr_assert_eq(bd_trace_read_rows(path, "train", "balancer", "sensors", 10, 3, N, S, buf), BD_OK);
    for (int t = 0; t < 3; t++)
        for (int wd = 0; wd < N; wd++)
            for (int k = 0; k < S; k++)
                cr_assert_eq(buf[(t * N + wd) * S + k], sensor_val(10 + t, wd, k));
    cr_assert_eq(bd_trace_read_rows(path, "train", "balancer", "sensors", 39, 2, N, S, buf), BD_EINVAL);
    cr_assert_eq(bd_trace_read_rows(path, "train", "balancer", "episodes", 0, 1, N, S, buf), BD_EINVAL);
    /* a caller that sized its buffer for another shape is told, not written past */
    cr_assert_eq(bd_trace_read_rows(path, "train", "balancer", "sensors", 0, 1, N, 1, buf), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "has rows of 5 x 2"), "%s", bd_lasterr());
    cr_assert_eq(bd_trace_read_rows(path, "train", "balancer", "rewards", 0, 1, N, 1, buf), BD_EINVAL);
    cr_assert_eq(bd_trace_read_rows(path, "train", "balancer", "sensors", 0, 1, N - 1, S, buf), BD_EINVAL);
    unlink(path);
}

Test(memory, bad_arguments)
{
    char path[256];
    tmp_path(path, sizeof path, "bad.h5");
    bd_trace_writer *w = (bd_trace_writer *)1;
    bd_trace_spec spec = make_spec(path, "train", "balancer", 0, 4, 1);
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_EINVAL);
    cr_assert_null(w);
    spec = make_spec(path, "train/x", "balancer", 2, 4, 1);
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_EINVAL);
    spec = make_spec(path, "train", "", 2, 4, 1);
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_EINVAL);
    spec = make_spec("/proc/bodhi_no_such_dir/x.h5", "train", "balancer", 2, 4, 1);
    int rc = bd_trace_writer_create(&spec, &w);
    cr_assert(rc == BD_EIO || rc == BD_EHDF5, "rc %d", rc);
    cr_assert(strstr(bd_lasterr(), "/proc/bodhi_no_such_dir"), "%s", bd_lasterr());
    cr_assert_null(w);

    spec = make_spec(path, "train", "balancer", 2, 4, 1);
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK);
    float f[8] = {0};
    uint8_t b[2] = {0};
    cr_assert_eq(bd_trace_writer_append(w, -1, f, f, f, b, b), BD_EINVAL);
    cr_assert_eq(bd_trace_writer_append(w, 1, f, NULL, f, b, b), BD_EINVAL);
    cr_assert_eq(bd_trace_writer_append(NULL, 1, f, f, f, b, b), BD_EINVAL);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
    cr_assert_eq(bd_trace_writer_destroy(NULL), BD_OK);
    cr_assert_eq(bd_trace_writer_rows(NULL), 0);
    unlink(path);
}

/* The writer thread's first error comes back from later appends and from destroy. */
Test(memory, write_error_is_reported)
{
    char path[256];
    tmp_path(path, sizeof path, "efbig.h5");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* child: a file size limit makes the writer thread's writes fail (EFBIG) */
        const int N = 300, S = 4, U = 2;
        bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
        bd_trace_writer *w = NULL;
        if (bd_trace_writer_create(&spec, &w) != BD_OK)
            _exit(10);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {256 * 1024, 256 * 1024};
        setrlimit(RLIMIT_FSIZE, &rl);
        rows_buf b = make_rows(0, 200, N, S, U);
        int rc = BD_OK;
        for (int i = 0; i < 20 && rc == BD_OK; i++)
            rc = bd_trace_writer_append(w, 200, b.sen, b.act, b.rew, b.term, b.trunc);
        if (rc == BD_OK)
            rc = bd_trace_writer_sync(w);
        int again = bd_trace_writer_append(w, 200, b.sen, b.act, b.rew, b.term, b.trunc);
        int drc = bd_trace_writer_destroy(w);
        int named = strstr(bd_lasterr(), path) != NULL;
        free_rows(&b);
        _exit(rc == BD_EHDF5 && again == BD_EHDF5 && drc == BD_EHDF5 && named ? 0 : 11);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died of signal %d", WTERMSIG(st));
    cr_assert_eq(WEXITSTATUS(st), 0, "child exit %d", WEXITSTATUS(st));
    unlink(path);
}

/* ---- master file, external links, listing -------------------------------------------- */

Test(memory, master_links_and_list)
{
    char dir[256], master[300], file[512];
    tmp_path(dir, sizeof dir, "master");
    rm_rf(dir);
    snprintf(master, sizeof master, "%s/run.h5", dir);
    const char *run_text = "uid: x\nseed: 7\n";
    cr_assert_eq(bd_trace_master_create(master, run_text, 7), BD_OK, "%s", bd_lasterr());

    const char *pairs[3][2] = {{"train", "balancer"}, {"train", "other"}, {"test", "balancer"}};
    const int N = 6, S = 4, U = 1;
    for (int i = 0; i < 3; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "memory/%s.%s.h5", pairs[i][0], pairs[i][1]);
        snprintf(file, sizeof file, "%s/%s", dir, rel);
        bd_trace_spec spec = make_spec(file, pairs[i][0], pairs[i][1], N, S, U);
        bd_trace_writer *w = NULL;
        cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
        append_rows(w, 0, 20 + i, N, S, U);
        bd_episode e = ep(i, 2, 5, (float)i, 1);
        cr_assert_eq(bd_trace_writer_episodes(w, &e, 1, NULL), BD_OK);
        cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
        cr_assert_eq(bd_trace_master_link(master, pairs[i][0], pairs[i][1], rel), BD_OK, "%s",
                     bd_lasterr());
    }
    /* linking again replaces; a link to a file that does not exist is skipped by list */
    cr_assert_eq(bd_trace_master_link(master, "train", "balancer", "memory/train.balancer.h5"), BD_OK);
    cr_assert_eq(bd_trace_master_link(master, "test", "ghost", "memory/test.ghost.h5"), BD_OK);

    for (int i = 0; i < 3; i++) {
        bd_episode e = ep(i, 2, 5, (float)i, 1);
        check_episodes(master, pairs[i][0], pairs[i][1], &e, 1);
        check_rows(master, pairs[i][0], pairs[i][1], 20 + i, N, S, U);
    }
    bd_episode *eps = NULL;
    int64_t n = 0;
    cr_assert_eq(bd_trace_read_episodes(master, "test", "ghost", &eps, &n), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "test.ghost.h5"), "%s", bd_lasterr());
    cr_assert_eq(bd_trace_read_episodes(master, "train", "nobody", &eps, &n), BD_ENOTFOUND);
    cr_assert_eq(bd_trace_read_episodes(master, "valid", "balancer", &eps, &n), BD_ENOTFOUND);

    char **names = NULL;
    int count = 0;
    cr_assert_eq(bd_trace_list(master, &names, &count), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(count, 3);
    cr_assert_str_eq(names[0], "train/balancer");
    cr_assert_str_eq(names[1], "train/other");
    cr_assert_str_eq(names[2], "test/balancer");
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
    snprintf(file, sizeof file, "%s/memory/train.other.h5", dir);
    cr_assert_eq(bd_trace_list(file, &names, &count), BD_OK);
    cr_assert_eq(count, 1);
    cr_assert_str_eq(names[0], "train/other");
    free(names[0]);
    free(names);

    /* root attributes */
    hid_t f = H5Fopen(master, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert(f >= 0);
    char *s = read_str_attr(f, "run_file", 0);
    cr_assert_str_eq(s, run_text);
    free(s);
    s = read_str_attr(f, "bodhi_version", 0);
    cr_assert_str_eq(s, bd_version());
    free(s);
    uint64_t seed = 0;
    hid_t a = H5Aopen(f, "seed", H5P_DEFAULT);
    H5Aread(a, H5T_NATIVE_UINT64, &seed);
    H5Aclose(a);
    cr_assert_eq(seed, 7);
    H5Fclose(f);

    /* the links resolve against the master's folder, whatever the working directory */
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir("/"), 0);
    check_rows(master, "train", "other", 21, N, S, U);
    cr_assert_eq(chdir("/tmp"), 0);
    snprintf(file, sizeof file, "%s/run.h5", dir + strlen("/tmp/"));
    check_rows(file, "test", "balancer", 22, N, S, U);
    cr_assert_eq(chdir(cwd), 0);
    rm_rf(dir);
}

Test(memory, master_errors)
{
    char path[256];
    tmp_path(path, sizeof path, "master_err.h5");
    cr_assert_eq(bd_trace_master_link(path, "train", "a", "x.h5"), BD_ENOTFOUND);
    cr_assert_eq(bd_trace_master_create(path, NULL, 1), BD_OK);
    cr_assert_eq(bd_trace_master_link(path, "tr/ain", "a", "x.h5"), BD_EINVAL);
    cr_assert_eq(bd_trace_master_link(path, "train", "a", ""), BD_EINVAL);
    char **names = NULL;
    int count = -1;
    cr_assert_eq(bd_trace_list(path, &names, &count), BD_OK);
    cr_assert_eq(count, 0);
    free(names);
    unlink(path);
}

/* ---- damaged, foreign and missing files ---------------------------------------------- */

Test(memory, truncated_file)
{
    char path[256], cut[256];
    tmp_path(path, sizeof path, "whole.h5");
    tmp_path(cut, sizeof cut, "cut.h5");
    const int batches[] = {200, 200};
    write_consistent(path, "train", "balancer", 64, batches, 2, 0, NULL);
    copy_half(path, cut);

    bd_episode *eps = NULL;
    int64_t n = 0;
    void *buf = NULL;
    int64_t dims[3];
    int rank;
    char **names = NULL;
    int count = 0;
    cr_assert_eq(bd_trace_read_episodes(cut, "train", "balancer", &eps, &n), BD_EHDF5);
    cr_assert(strstr(bd_lasterr(), cut), "%s", bd_lasterr());
    cr_assert_null(eps);
    cr_assert_eq(bd_trace_read_dataset(cut, "train", "balancer", "rewards", &buf, dims, &rank), BD_EHDF5);
    cr_assert_null(buf);
    cr_assert_eq(bd_trace_list(cut, &names, &count), BD_EHDF5);
    unlink(path);
    unlink(cut);
}

Test(memory, damaged_superblock_and_non_files_fail_at_once, .timeout = 60)
{
    /* a SWMR reader would retry a bad checksum with a doubling sleep for ever: one
     * flipped bit in the superblock, or a file cut inside it, must be an error at once */
    char path[256], bad[256];
    tmp_path(path, sizeof path, "sb.h5");
    tmp_path(bad, sizeof bad, "sb-bad.h5");
    const int batches[] = {50};
    write_consistent(path, "train", "balancer", 8, batches, 1, 0, NULL);
    char *whole = NULL;
    size_t len = 0;
    cr_assert_eq(bd_read_file(path, &whole, &len), BD_OK);
    const size_t flips[] = {20, 44};
    for (int k = 0; k < 3; k++) {
        size_t n = k < 2 ? len : 47;
        if (k < 2)
            whole[flips[k]] ^= 1;
        cr_assert_eq(bd_write_file(bad, whole, n), BD_OK);
        if (k < 2)
            whole[flips[k]] ^= 1;
        bd_trace_info info;
        int recovered = 0;
        bd_trace_recover(bad, &recovered); /* it must return (the test's timeout), whatever it says */
        cr_assert_eq(bd_trace_read_info(bad, "train", "balancer", &info), BD_EHDF5, "case %d", k);
        cr_assert(strstr(bd_lasterr(), bad), "%s", bd_lasterr());
    }
    free(whole);
    unlink(bad);
    cr_assert_eq(mkfifo(bad, 0600), 0);
    bd_episode *eps = NULL;
    int64_t n = 0;
    int recovered = 0;
    cr_assert_eq(bd_trace_recover(bad, &recovered), BD_OK, "not ours to repair");
    cr_assert_eq(bd_trace_read_episodes(bad, "train", "balancer", &eps, &n), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "not a regular file"), "%s", bd_lasterr());
    unlink(bad);
    unlink(path);
}

Test(memory, text_file)
{
    char path[256];
    tmp_path(path, sizeof path, "text.h5");
    const char *text = "this is not HDF5\n";
    cr_assert_eq(bd_write_file(path, text, strlen(text)), BD_OK);
    bd_episode *eps = NULL;
    int64_t n = 0;
    char **names = NULL;
    int count = 0;
    cr_assert_eq(bd_trace_read_episodes(path, "train", "balancer", &eps, &n), BD_EHDF5);
    cr_assert(strstr(bd_lasterr(), path), "%s", bd_lasterr());
    cr_assert_eq(bd_trace_list(path, &names, &count), BD_EHDF5);
    cr_assert_eq(bd_trace_master_link(path, "train", "a", "x.h5"), BD_EHDF5);
    unlink(path);
}

Test(memory, missing_file)
{
    char path[256];
    tmp_path(path, sizeof path, "missing.h5");
    bd_episode *eps = NULL;
    int64_t n = 0;
    void *buf = NULL;
    int64_t dims[3];
    int rank;
    char **names = NULL;
    int count = 0;
    cr_assert_eq(bd_trace_read_episodes(path, "train", "balancer", &eps, &n), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), path), "%s", bd_lasterr());
    cr_assert_eq(bd_trace_read_dataset(path, "train", "balancer", "rewards", &buf, dims, &rank), BD_ENOTFOUND);
    cr_assert_eq(bd_trace_list(path, &names, &count), BD_ENOTFOUND);

    /* a file without the group or dataset asked for */
    tmp_path(path, sizeof path, "nogroup.h5");
    bd_trace_spec spec = make_spec(path, "train", "balancer", 2, 4, 1);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
    cr_assert_eq(bd_trace_read_episodes(path, "test", "balancer", &eps, &n), BD_ENOTFOUND);
    cr_assert_eq(bd_trace_read_dataset(path, "train", "balancer", "nothing", &buf, dims, &rank), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "nothing"), "%s", bd_lasterr());
    unlink(path);
}

/* ---- reading while writing, and after the writer died -------------------------------- */

Test(memory, read_while_writing_same_process)
{
    char path[256];
    tmp_path(path, sizeof path, "live.h5");
    const int N = 10, S = 4, U = 1;
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK);
    append_rows(w, 0, 30, N, S, U);
    cr_assert_eq(bd_trace_writer_sync(w), BD_OK);
    check_rows(path, "train", "balancer", 30, N, S, U);
    append_rows(w, 30, 12, N, S, U);
    cr_assert_eq(bd_trace_writer_sync(w), BD_OK);
    check_rows(path, "train", "balancer", 42, N, S, U);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
    check_rows(path, "train", "balancer", 42, N, S, U);
    unlink(path);
}

/* A child process writes, syncs and waits; the parent reads the live file, then the child
 * is killed without closing it (a crash) and the parent reads what was flushed. */
static pid_t start_writer_child(const char *path, int N, int S, int U, int *go_fd)
{
    int ready[2], go[2];
    cr_assert_eq(pipe(ready), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        close(ready[0]);
        close(go[1]);
        bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
        bd_trace_writer *w = NULL;
        if (bd_trace_writer_create(&spec, &w) != BD_OK)
            _exit(10);
        rows_buf b = make_rows(0, 25, N, S, U);
        bd_episode e = ep(1, 3, 4, reward_val(3, 1) + reward_val(4, 1) + reward_val(5, 1) + reward_val(6, 1), 1);
        if (bd_trace_writer_append(w, 25, b.sen, b.act, b.rew, b.term, b.trunc) ||
            bd_trace_writer_episodes(w, &e, 1, NULL) || bd_trace_writer_sync(w))
            _exit(11);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1)
            _exit(12);
        if (read(go[0], &c, 1) != 1)  /* the parent says when to die */
            _exit(13);
        raise(SIGKILL);
        _exit(14);
    }
    close(ready[1]);
    close(go[0]);
    char c = 0;
    cr_assert_eq(read(ready[0], &c, 1), 1, "the writer child failed");
    close(ready[0]);
    *go_fd = go[1];
    return pid;
}

static void kill_writer_child(pid_t pid, int go_fd)
{
    char c = 'k';
    cr_assert_eq(write(go_fd, &c, 1), 1);
    close(go_fd);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "child status %d", st);
}

Test(memory, read_live_and_crashed_writer)
{
    char path[256];
    tmp_path(path, sizeof path, "crash.h5");
    const int N = 10, S = 4, U = 1;
    int go = -1;
    pid_t pid = start_writer_child(path, N, S, U, &go);
    check_rows(path, "train", "balancer", 25, N, S, U);  /* while the child holds it open */
    kill_writer_child(pid, go);
    check_rows(path, "train", "balancer", 25, N, S, U);  /* after it died mid-run */
    bd_episode *eps = NULL;
    int64_t n = 0;
    cr_assert_eq(bd_trace_read_episodes(path, "train", "balancer", &eps, &n), BD_OK, "%s", bd_lasterr());
    free(eps);

    /* such a file cut short: HDF5's own size check is off for SWMR reads, ours is not */
    char cut[256];
    tmp_path(cut, sizeof cut, "crash_cut.h5");
    copy_half(path, cut);
    void *buf = NULL;
    int64_t dims[3];
    int rank;
    cr_assert_eq(bd_trace_read_dataset(cut, "train", "balancer", "rewards", &buf, dims, &rank), BD_EHDF5);
    cr_assert(strstr(bd_lasterr(), "truncated"), "%s", bd_lasterr());
    unlink(cut);

    /* a restarted writer starts the file anew */
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    append_rows(w, 0, 3, N, S, U);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
    check_rows(path, "train", "balancer", 3, N, S, U);
    unlink(path);
}

/* ---- h5py ------------------------------------------------------------------------------ */

static const char *H5PY_CHECK =
    "import sys, h5py, numpy as np\n"
    "f = h5py.File(sys.argv[1], 'r')\n"
    "r = f['train/balancer/rewards']\n"
    "assert r.shape == (601, 16), r.shape\n"
    "assert r.dtype == np.float32, r.dtype\n"
    "assert f['train/balancer/sensors'].shape == (601, 16, 4)\n"
    "assert f['train/balancer/actuators'].shape == (601, 16, 1)\n"
    "assert f['train/balancer/terminated'].dtype == np.uint8\n"
    "g = f['train/balancer']\n"
    "ids = [x.decode() if isinstance(x, bytes) else x for x in g.attrs['sensor_ids']]\n"
    "assert ids == ['pole.x', 'pole.x_dot', 'pole.theta', 'pole.theta_dot'], ids\n"
    "assert g.attrs['env'] in ('cartpole', b'cartpole')\n"
    "assert int(g.attrs['seed']) == 42 and int(g.attrs['worlds']) == 16\n"
    "assert int(f.attrs['seed']) == 9\n"
    "ep = f['train/balancer/episodes'][:]\n"
    "assert len(ep) > 100 and ep.dtype.names == ('world', 'start_step', 'length', 'return', "
    "'terminated', 'truncated'), ep.dtype\n"
    "rw = r[:]\n"
    "for e in ep:\n"
    "    s = rw[e['start_step']:e['start_step'] + e['length'], e['world']].astype(np.float64).sum()\n"
    "    assert abs(s - e['return']) <= 1e-3 * max(abs(s), 1.0), (e, s)\n"
    "    assert e['terminated'] + e['truncated'] == 1\n"
    "print('h5py ok', len(ep))\n";

Test(memory, h5py_reads_master_from_another_cwd)
{
    if (!has_h5py())
        cr_skip("/usr/bin/python3 has no h5py");
    char dir[256], master[300], file[512];
    tmp_path(dir, sizeof dir, "h5py");
    rm_rf(dir);
    snprintf(master, sizeof master, "%s/run.h5", dir);
    snprintf(file, sizeof file, "%s/memory/train.balancer.h5", dir);
    const int batches[] = {100, 250, 7, 243, 1};
    write_consistent(file, "train", "balancer", 16, batches, 5, 0, NULL);
    cr_assert_eq(bd_trace_master_create(master, "uid: p\n", 9), BD_OK);
    cr_assert_eq(bd_trace_master_link(master, "train", "balancer", "memory/train.balancer.h5"), BD_OK);
    cr_assert_eq(run_python("h5py_check", H5PY_CHECK, master), 0);
    rm_rf(dir);
}

static const char *H5PY_LIVE =
    "import sys, h5py\n"
    "f = h5py.File(sys.argv[1], 'r', swmr=True)\n"
    "assert f['train/balancer/rewards'].shape == (25, 10)\n"
    "assert len(f['train/balancer/episodes']) == 1\n";

/* After bd_trace_recover: a plain open, every flushed step. */
static const char *H5PY_REPAIRED =
    "import sys, h5py\n"
    "f = h5py.File(sys.argv[1], 'r')\n"
    "assert f['train/balancer/rewards'].shape == (25, 10)\n"
    "assert len(f['train/balancer/episodes']) == 1\n";

static const char *H5PY_CRASHED =
    "import sys, h5py\n"
    "try:\n"
    "    h5py.File(sys.argv[1], 'r')\n"
    "    sys.exit(3)  # the docs say a plain open fails on a file whose writer died\n"
    "except OSError:\n"
    "    pass\n"
    "f = h5py.File(sys.argv[1], 'r', swmr=True)\n"
    "assert f['train/balancer/rewards'].shape == (25, 10)\n"
    "assert len(f['train/balancer/episodes']) == 1\n";

Test(memory, h5py_reads_live_and_crashed_file_with_swmr)
{
    if (!has_h5py())
        cr_skip("/usr/bin/python3 has no h5py");
    char path[256];
    tmp_path(path, sizeof path, "h5py_crash.h5");
    int go = -1;
    pid_t pid = start_writer_child(path, 10, 4, 1, &go);
    int live = run_python("h5py_live", H5PY_LIVE, path);
    kill_writer_child(pid, go);
    cr_assert_eq(live, 0, "h5py could not read the live file with swmr=True");
    cr_assert_eq(run_python("h5py_crash", H5PY_CRASHED, path), 0);
    int recovered = 0;
    cr_assert_eq(bd_trace_recover(path, &recovered), BD_OK, "%s", bd_lasterr());
    cr_assert(recovered);
    cr_assert_eq(run_python("h5py_repaired", H5PY_REPAIRED, path), 0, "plain h5py after the repair");
    unlink(path);
}

Test(memory, recover_repairs_only_a_dead_writers_file)
{
    char path[256], text[256], missing[256];
    tmp_path(path, sizeof path, "recover.h5");
    const int N = 10, S = 4, U = 1;
    int go = -1, recovered = -1;
    pid_t pid = start_writer_child(path, N, S, U, &go);
    /* a live writer's file is left alone */
    cr_assert_eq(bd_trace_recover(path, &recovered), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(recovered, 0, "the writer lives");
    check_rows(path, "train", "balancer", 25, N, S, U);
    kill_writer_child(pid, go);
    /* HDF5 itself refuses a plain open of the dead writer's file */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    cr_assert(f < 0, "a plain open of a dead SWMR writer's file fails before the repair");
    cr_assert_eq(bd_trace_recover(path, &recovered), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(recovered, 1);
    f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    cr_assert(f >= 0, "a plain open works after it");
    H5Fclose(f);
    H5Pclose(fapl);
    check_rows(path, "train", "balancer", 25, N, S, U);
    cr_assert_eq(bd_trace_recover(path, &recovered), BD_OK);
    cr_assert_eq(recovered, 0, "nothing left to repair");
    /* not a trace, and no file: left alone, or not found */
    tmp_path(text, sizeof text, "recover.txt");
    cr_assert_eq(bd_write_file(text, "not HDF5\n", 9), BD_OK);
    cr_assert_eq(bd_trace_recover(text, &recovered), BD_OK);
    cr_assert_eq(recovered, 0);
    tmp_path(missing, sizeof missing, "recover-missing.h5");
    cr_assert_eq(bd_trace_recover(missing, &recovered), BD_ENOTFOUND);
    /* a second writer on a file its first writer holds is refused before truncating it */
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w1 = NULL, *w2 = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w1), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_trace_writer_create(&spec, &w2), BD_EIO);
    cr_assert(strstr(bd_lasterr(), "another process writes"), "%s", bd_lasterr());
    cr_assert_eq(bd_trace_writer_destroy(w1), BD_OK);
    unlink(path);
    unlink(text);
}

/* Hostile traces made with h5py: each is refused with a message, never read wrongly. */

/* ---- recording options ------------------------------------------------------------- */

/* The filter ids of /train/balancer/<name>'s dataset creation list (0 when none). */
static int first_filter(const char *path, const char *name)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char obj[64];
    snprintf(obj, sizeof obj, "/train/balancer/%s", name);
    hid_t d = H5Dopen2(f, obj, H5P_DEFAULT), p = H5Dget_create_plist(d);
    int n = H5Pget_nfilters(p), id = 0;
    for (int k = 0; k < n; k++) {
        unsigned flags, cd[8];
        size_t ncd = 8;
        char fname[64];
        H5Z_filter_t fid = H5Pget_filter2(p, (unsigned)k, &flags, &ncd, cd, sizeof fname, fname, NULL);
        if (fid != H5Z_FILTER_SHUFFLE)
            id = (int)fid;
    }
    H5Pclose(p);
    H5Dclose(d);
    H5Fclose(f);
    return id;
}

Test(memory, compressed_traces_read_back_the_same)
{
    /* each filter (the plugins when this HDF5 has them), every element checked */
    const int expect[] = {0, 32001, 32004, 1};
    for (int c = BD_COMPRESS_NONE; c <= BD_COMPRESS_DEFLATE; c++) {
        if (bd_compression_available((bd_compression)c) != BD_OK) {
            cr_log_warn("compression %s not available here: %s", bd_compression_name((bd_compression)c),
                        bd_lasterr());
            continue;
        }
        char path[256], tag[64];
        snprintf(tag, sizeof tag, "comp_%s.h5", bd_compression_name((bd_compression)c));
        tmp_path(path, sizeof path, tag);
        const int N = 64, S = 4, U = 1;
        bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
        spec.compression = (bd_compression)c;
        bd_trace_writer *w = NULL;
        cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
        append_rows(w, 0, 300, N, S, U);
        append_rows(w, 300, 77, N, S, U);
        cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
        check_rows(path, "train", "balancer", 377, N, S, U);
        cr_assert_eq(first_filter(path, "sensors"), expect[c], "%s", tag);
        cr_assert_eq(bd_compression_parse(bd_compression_name((bd_compression)c)), c);
        unlink(path);
    }
    cr_assert_eq(bd_compression_parse("zstd"), -1);
}

Test(memory, final_observations_stand_beside_their_episodes)
{
    char path[256];
    tmp_path(path, sizeof path, "final.h5");
    const int N = 8, S = 3, U = 1;
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    spec.no_steps = 1; /* record: false: the episodes, with their final observations, still */
    spec.worlds = 8;
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_trace_writer_append(w, 1, (float[24]){0}, (float[8]){0}, (float[8]){0}, (uint8_t[8]){0},
                                        (uint8_t[8]){0}), BD_ESTATE, "no step rows in this trace");
    bd_episode e[3] = {ep(1, 0, 10, 1.0f, 1), ep(2, 3, 7, 2.0f, 0), ep(5, 9, 1, 3.0f, 1)};
    float fin[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cr_assert_eq(bd_trace_writer_episodes(w, e, 2, fin), BD_OK);
    cr_assert_eq(bd_trace_writer_episodes(w, e + 2, 1, NULL), BD_OK);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK, "%s", bd_lasterr());
    check_episodes(path, "train", "balancer", e, 3);
    void *buf = NULL;
    int64_t dims[3];
    int rank;
    cr_assert_eq(bd_trace_read_dataset(path, "train", "balancer", "final_sensors", &buf, dims, &rank), BD_OK,
                 "%s", bd_lasterr());
    cr_assert(dims[0] == 3 && dims[1] == 3, "final_sensors is (E, S)");
    const float *x = buf;
    for (int k = 0; k < 6; k++)
        cr_assert_eq(x[k], fin[k]);
    for (int k = 6; k < 9; k++)
        cr_assert(isnan(x[k]), "an episode given without its final observation reads NaN");
    free(buf);
    int64_t sd[3];
    cr_assert_eq(bd_trace_dataset_shape(path, "train", "balancer", "sensors", sd, &rank, NULL), BD_OK);
    cr_assert_eq(sd[0], 0, "no step rows");
    unlink(path);
}

/* Writes rows of known contents to path in batches of T until the writer fails, with
 * stderr sent to errpath, and exits the process as a bodhi process would: 0 when the
 * write error came back from the appends and from destroy. */
static void write_until_full(const char *path, const char *errpath, int fsize_limit, int N, int S, int U, int T)
{
    if (!freopen(errpath, "w", stderr))
        _exit(9);
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, S, U);
    bd_trace_writer *w = NULL;
    if (bd_trace_writer_create(&spec, &w) != BD_OK)
        _exit(10);
    if (fsize_limit) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {(rlim_t)fsize_limit, (rlim_t)fsize_limit};
        setrlimit(RLIMIT_FSIZE, &rl);
    }
    int rc = BD_OK;
    for (int64_t t0 = 0; t0 < 1000 * T && rc == BD_OK; t0 += T) {
        rows_buf b = make_rows(t0, T, N, S, U);
        rc = bd_trace_writer_append(w, T, b.sen, b.act, b.rew, b.term, b.trunc);
        free_rows(&b);
        if (rc == BD_OK)
            rc = bd_trace_writer_sync(w);
    }
    int drc = bd_trace_writer_destroy(w);
    fprintf(stderr, "bodhi: %s\n", bd_lasterr());
    fflush(stderr);
    exit(rc == BD_EHDF5 && drc == BD_EHDF5 ? 0 : 11); /* exit: HDF5's own exit handler runs */
}

/* Issue 20, item 4: a disk that fills up mid-run leaves a trace whose step datasets all
 * stop at the last whole row the writer flushed, never rows of zeros (a chunk that never
 * reached the disk reads as zeros); the file says why it stopped (write_error), and the
 * process prints one line, no HDF5 error stack. The disk is a real 3 MB tmpfs in a private
 * mount namespace (the parent reads it through /proc/<pid>/root); where mounting is not
 * allowed (CI without CAP_SYS_ADMIN) a file size limit (EFBIG) stands in, after which HDF5
 * may refuse the file as truncated (it cannot extend it to its end) but must never show
 * zeros. */
Test(memory, item04_full_disk_leaves_no_zero_rows, .timeout = 60)
{
    char dir[256], errpath[256], path[512];
    tmp_path(dir, sizeof dir, "fulldisk");
    tmp_path(errpath, sizeof errpath, "full.stderr");
    const int N = 64, S = 4, U = 2, T = 96;
    int up[2], go[2];
    cr_assert_eq(pipe(up), 0);
    cr_assert_eq(pipe(go), 0);
    pid_t ns = fork();
    cr_assert(ns >= 0);
    if (ns == 0) { /* holds the mount namespace until the parent has read the file */
        close(up[0]);
        close(go[1]);
        char ok = 'n', c;
        if (unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
            mkdir(dir, 0700) == 0 && mount("tmpfs", dir, "tmpfs", 0, "size=3m") == 0) {
            char p[512];
            snprintf(p, sizeof p, "%s/full.h5", dir);
            pid_t wr = fork();
            if (wr == 0)
                write_until_full(p, errpath, 0, N, S, U, T);
            int st = 0;
            waitpid(wr, &st, 0);
            ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 'y' : 'f';
        }
        if (write(up[1], &ok, 1) != 1 || read(go[0], &c, 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(up[1]);
    close(go[0]);
    char ok = 0;
    cr_assert_eq(read(up[0], &ok, 1), 1);
    cr_assert_neq(ok, 'f', "the writer on the full tmpfs did not report the error");
    int tmpfs = ok == 'y';
    if (tmpfs) {
        snprintf(path, sizeof path, "/proc/%d/root%s/full.h5", (int)ns, dir);
    } else {
        cr_log_info("no tmpfs (mount not permitted): a file size limit stands in for the full disk");
        snprintf(path, sizeof path, "%s.h5", dir);
        pid_t wr = fork();
        cr_assert(wr >= 0);
        if (wr == 0)
            write_until_full(path, errpath, 1536 * 1024, N, S, U, T);
        int st = 0;
        cr_assert_eq(waitpid(wr, &st, 0), wr);
        cr_assert(WIFEXITED(st), "writer died of signal %d", WTERMSIG(st));
        cr_assert_eq(WEXITSTATUS(st), 0, "writer exit %d", WEXITSTATUS(st));
    }

    size_t len = 0;
    char *err = NULL;
    cr_assert_eq(bd_read_file(errpath, &err, &len), BD_OK);
    cr_assert(strstr(err, "HDF5-DIAG") == NULL && strstr(err, "infinite loop") == NULL,
              "HDF5's own messages on stderr:\n%s", err);
    int lines = 0; /* a sanitizer's own lines ("==PID==...", make asan) are not the writer's */
    for (const char *p = err; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        lines += strncmp(p, "==", 2) != 0;
    cr_assert_eq(lines, 1, "one line on stderr, got:\n%s", err);
    cr_assert(strstr(err, tmpfs ? "No space left on device" : "File too large"), "%s", err);
    free(err);
    unlink(errpath);

    int64_t dims[3];
    int rank = 0;
    int rc = bd_trace_dataset_shape(path, "train", "balancer", "rewards", dims, &rank, NULL);
    if (tmpfs || rc == BD_OK) {
        cr_assert_eq(rc, BD_OK, "%s", bd_lasterr());
        int64_t rows = dims[0];
        cr_assert(rows > 0 && rows < 1000 * T, "%lld rows", (long long)rows);
        cr_assert_eq(rows % T, 0, "%lld rows: not whole appends", (long long)rows);
        check_rows(path, "train", "balancer", rows, N, S, U); /* every dataset: these rows, no zeros */
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        cr_assert(f >= 0);
        hid_t g = H5Gopen2(f, "/train/balancer", H5P_DEFAULT), a = H5Aopen(g, "write_error", H5P_DEFAULT);
        cr_assert(a >= 0);
        char why[256] = "";
        hid_t t = H5Aget_type(a);
        cr_assert(H5Aread(a, t, why) >= 0);
        char want[64];
        snprintf(want, sizeof want, "stopped after row %lld: ", (long long)rows);
        cr_assert(strncmp(why, want, strlen(want)) == 0 && strstr(why, "full.h5"), "write_error: %s", why);
        H5Tclose(t);
        H5Aclose(a);
        H5Gclose(g);
        H5Fclose(f);
        bd_trace_info info;
        cr_assert_eq(bd_trace_read_info(path, "train", "balancer", &info), BD_OK, "%s", bd_lasterr());
        cr_assert_str_eq(info.write_error, why, "the reader says why (bodhi replay prints it)");
        bd_trace_info_free(&info);
    } else {
        cr_assert_eq(rc, BD_EHDF5, "%s", bd_lasterr());
    }
    char c = 'g';
    cr_assert_eq(write(go[1], &c, 1), 1);
    int st = 0;
    cr_assert_eq(waitpid(ns, &st, 0), ns);
    close(go[1]);
    close(up[0]);
    if (!tmpfs)
        unlink(path);
}
