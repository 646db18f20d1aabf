/* test_common.c: what every folder builds on: error codes and the thread-local detail,
 * files and folders, the child-process set-up (in real child processes), device memory on
 * the CPU (and on CUDA where a GPU answers), and Philox draws (Random123's published
 * known answer, and the properties the env and muscle code relies on), and TensorBoard
 * event records (CRC32C against RFC 3720's vectors, the framing). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/devmem.h"
#include "common/launch.h"
#include "common/proc.h"
#include "common/rng.h"
#include "common/tfevents.h"
#include "common/util.h"

static void *set_other_error(void *arg)
{
    bd_seterr(BD_ENOMEM, "other thread");
    *(int *)arg = strcmp(bd_lasterr(), "other thread") == 0;
    return NULL;
}

Test(error, every_code_has_a_text_and_details_are_per_thread)
{
    for (int e = 0; e < BD_ERR_COUNT; e++)
        cr_assert(bd_strerror(e) && *bd_strerror(e) && strcmp(bd_strerror(e), "unknown error") != 0,
                  "code %d", e);
    cr_assert_str_eq(bd_strerror(-1), "unknown error");
    cr_assert_str_eq(bd_strerror(BD_ERR_COUNT), "unknown error");
    cr_assert_eq(bd_seterr(BD_EIO, "disk %d is %s", 3, "gone"), BD_EIO);
    cr_assert_str_eq(bd_lasterr(), "disk 3 is gone");
    /* another thread's detail does not touch this one */
    pthread_t t;
    int other_ok = 0;
    pthread_create(&t, NULL, set_other_error, &other_ok);
    pthread_join(t, NULL);
    cr_assert(other_ok, "the other thread sees its own detail");
    cr_assert_str_eq(bd_lasterr(), "disk 3 is gone");
    char long_text[3000];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    bd_seterr(BD_EINVAL, "%s", long_text); /* cut, never overflowed */
    cr_assert(strlen(bd_lasterr()) < sizeof long_text && strlen(bd_lasterr()) > 500);
    cr_assert(bd_version() && strchr(bd_version(), '.'));
}

/* A caller that wraps the last error passes bd_lasterr() as an argument of the new one:
 * the result is the prefix and the old text whole, as often as it is wrapped. */
Test(error, wrapping_the_last_error_keeps_it_whole)
{
    bd_seterr(BD_ETIMEDOUT, "the group's rendezvous found no 0/rank_0 within %d s", 60);
    bd_seterr(BD_ETORCH, "join: %s", bd_lasterr());
    bd_seterr(BD_ETORCH, "rank %d of %d: %s", 1, 2, bd_lasterr());
    cr_assert_str_eq(bd_lasterr(), "rank 1 of 2: join: the group's rendezvous found no 0/rank_0 within 60 s");
    bd_seterr(BD_EINVAL, "%s and again %s", bd_lasterr(), bd_lasterr());
    cr_assert_str_eq(bd_lasterr(), "rank 1 of 2: join: the group's rendezvous found no 0/rank_0 within 60 s and "
                                   "again rank 1 of 2: join: the group's rendezvous found no 0/rank_0 within 60 s");
}

Test(files, folders_and_whole_files)
{
    char base[128], deep[256], file[300];
    snprintf(base, sizeof base, "/tmp/bd-test-common-%d", (int)getpid());
    snprintf(deep, sizeof deep, "%s/a/b/c", base);
    cr_assert_eq(bd_mkdirs(deep), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_mkdirs(deep), BD_OK, "again: already there");
    snprintf(file, sizeof file, "%s/f.txt", deep);
    const char data[] = "line 1\nline 2\0after a NUL";
    cr_assert_eq(bd_write_file(file, data, sizeof data), BD_OK);
    char *back = NULL;
    size_t len = 0;
    cr_assert_eq(bd_read_file(file, &back, &len), BD_OK);
    cr_assert_eq(len, sizeof data);
    cr_assert_eq(memcmp(back, data, len), 0, "binary-safe");
    cr_assert_eq(back[len], '\0', "NUL-terminated");
    free(back);
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    cr_assert(!bd_exists(tmp), "written through a temporary that is renamed");
    /* a file where a folder should be, and a missing file */
    cr_assert_eq(bd_mkdirs(file), BD_EIO);
    cr_assert(strstr(bd_lasterr(), "f.txt"), "%s", bd_lasterr());
    snprintf(tmp, sizeof tmp, "%s/missing", base);
    cr_assert_eq(bd_read_file(tmp, &back, NULL), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "missing"), "%s", bd_lasterr());
    cr_assert_eq(bd_mkdirs(""), BD_EINVAL);
    char *s = bd_strfmt("%s-%d", "x", 42);
    cr_assert_str_eq(s, "x-42");
    free(s);
    cr_assert_null(bd_strdup(NULL));
    double t0 = bd_now();
    usleep(2000);
    cr_assert(bd_now() - t0 >= 0.0015, "monotonic clock moves");
    cr_assert(bd_wall() > 1.7e9, "wall clock is epoch seconds");
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    cr_assert_eq(system(cmd), 0);
}

/* A child that runs bd_child_init and reports through its exit code. */
static int child_init_status(pid_t expect_parent, int catch_term, int send_term)
{
    pid_t pid = fork();
    if (pid == 0) {
        int rc = bd_child_init(expect_parent, catch_term, SIGTERM);
        if (rc != BD_OK)
            _exit(10 + rc);
        if (send_term == 2) { /* the conductor's word that its run failed: 2, kept past a SIGTERM */
            raise(SIGUSR2);
            raise(SIGTERM);
            _exit(bd_term_requested == 2 ? 5 : 6);
        }
        if (send_term) {
            raise(SIGTERM);
            _exit(bd_term_requested == 1 ? 3 : 4);
        }
        raise(SIGINT); /* ignored: Ctrl-C is the conductor's */
        _exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st);
}

Test(proc, child_set_up)
{
    cr_assert_eq(child_init_status(getpid(), 0, 0), 0, "SIGINT ignored");
    cr_assert_eq(child_init_status(getpid(), 1, 1), 3, "SIGTERM becomes a flag");
    cr_assert_eq(child_init_status(getpid(), 1, 2), 5, "SIGUSR2 becomes the flag's failed value, and stays it");
    cr_assert_eq(child_init_status(getpid(), 0, 1), 100 + SIGTERM, "SIGTERM kills without catch_term");
    cr_assert_eq(child_init_status(1, 0, 0), 10 + BD_ECLOSED, "a parent that is not ours is gone");
}

static void devmem_round_trip(bd_device dev)
{
    float *d = NULL, in[1000], out[1000];
    cr_assert_eq(bd_dev_alloc(dev, sizeof in, (void **)&d), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_dev_to_host(dev, out, d, sizeof out), BD_OK);
    for (int i = 0; i < 1000; i++) {
        cr_assert_eq(out[i], 0.0f, "zero-filled");
        in[i] = (float)i * 0.5f;
    }
    cr_assert_eq(bd_dev_from_host(dev, d, in, sizeof in), BD_OK);
    cr_assert_eq(bd_dev_sync(dev), BD_OK);
    cr_assert_eq(bd_dev_to_host(dev, out, d, sizeof out), BD_OK);
    cr_assert_eq(memcmp(in, out, sizeof in), 0);
    bd_dev_free(dev, d);
    bd_dev_free(dev, NULL);
    void *z = NULL;
    cr_assert_eq(bd_dev_alloc(dev, 0, &z), BD_OK, "zero bytes is a valid buffer");
    bd_dev_free(dev, z);
}

Test(devmem, cpu_round_trip)
{
    devmem_round_trip(BD_DEVICE_CPU);
}

Test(devmem, cuda_round_trip_or_clear_refusal)
{
    char name[128];
    bd_cuda_device_name(name, sizeof name);
    if (!bd_cuda_available()) {
        cr_assert_str_eq(name, "", "no GPU, no name");
        void *p = (void *)1;
        int rc = bd_dev_alloc(BD_DEVICE_CUDA, 16, &p);
        cr_assert_neq(rc, BD_OK, "no GPU: refused");
        cr_assert_null(p);
        cr_skip_test("no CUDA GPU answers here (the refusal was checked)");
    }
    cr_assert(name[0], "a GPU has a name");
    devmem_round_trip(BD_DEVICE_CUDA);
}

Test(rng, philox_known_answer_and_properties)
{
    /* Random123's known answer for Philox4x32-10, counter 0 and key 0 (kat_vectors):
     * 6627e8d5 e169c58d bc57ac4c 9b00dbd8; a draw keeps each word's top 24 bits. */
    const uint32_t kat[4] = {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u};
    float u[4], v[4];
    bd_rng_uniform4(0, 0, 0, 0, u);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(u[i], (float)(kat[i] >> 8) / 16777216.0f, "word %d", i);
    /* a pure function of (seed, world, counter, stream); each argument changes it */
    bd_rng_uniform4(42, 7, 1000, BD_STREAM_ACTION, u);
    bd_rng_uniform4(42, 7, 1000, BD_STREAM_ACTION, v);
    cr_assert_eq(memcmp(u, v, sizeof u), 0);
    const uint64_t args[4][4] = {{43, 7, 1000, BD_STREAM_ACTION}, {42, 8, 1000, BD_STREAM_ACTION},
                                 {42, 7, 1001, BD_STREAM_ACTION}, {42, 7, 1000, BD_STREAM_RESET}};
    for (int k = 0; k < 4; k++) {
        bd_rng_uniform4(args[k][0], (uint32_t)args[k][1], args[k][2], (uint32_t)args[k][3], v);
        cr_assert_neq(memcmp(u, v, sizeof u), 0, "argument %d", k);
    }
    /* the counter's high word counts too (long runs) */
    bd_rng_uniform4(42, 7, 1000 + (1ull << 32), BD_STREAM_ACTION, v);
    cr_assert_neq(memcmp(u, v, sizeof u), 0);
    /* uniform on [0, 1): mean 1/2, variance 1/12 */
    double s = 0, s2 = 0;
    const int n = 100000;
    for (int c = 0; c < n; c++) {
        bd_rng_uniform4(1, 2, (uint64_t)c, 3, u);
        for (int i = 0; i < 4; i++) {
            cr_assert(u[i] >= 0.0f && u[i] < 1.0f);
            s += u[i];
            s2 += (double)u[i] * u[i];
        }
    }
    double m = s / (4.0 * n), var = s2 / (4.0 * n) - m * m;
    cr_assert(m > 0.498 && m < 0.502 && var > 0.0825 && var < 0.0842, "mean %g var %g", m, var);
}

/* ---- tfevents: CRC32C and TensorBoard's record framing (common/tfevents.c) ---------------- */

/* Vectors of RFC 3720, B.4 (iSCSI's CRC32C) and the usual check string. */
Test(tfevents, crc32c_known_vectors)
{
    unsigned char b[32];
    cr_assert_eq(bd_crc32c("123456789", 9), 0xE3069283u);
    memset(b, 0, sizeof b);
    cr_assert_eq(bd_crc32c(b, 32), 0x8A9136AAu);
    memset(b, 0xFF, sizeof b);
    cr_assert_eq(bd_crc32c(b, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)i;
    cr_assert_eq(bd_crc32c(b, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        b[i] = (unsigned char)(31 - i);
    cr_assert_eq(bd_crc32c(b, 32), 0x113FDB5Cu);
    cr_assert_eq(bd_crc32c("", 0), 0u);
    uint32_t c = bd_crc32c("123456789", 9);
    cr_assert_eq(bd_crc32c_masked("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

/* Each record is length, masked CRC of it, data, masked CRC of the data; the first holds
 * the file version. */
Test(tfevents, records_are_framed_and_checksummed)
{
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/bd-common-%d-tb/a/b", (int)getpid());
    bd_tfevents *w = NULL;
    cr_assert_eq(bd_tfevents_open(dir, 1000.5, &w), BD_OK, "%s", bd_lasterr());
    const char *tag[2] = {"loss", "kl"};
    double v[2] = {0.25, 1e-3};
    cr_assert_eq(bd_tfevents_scalars(w, 1001, 4096, 2, tag, v), BD_OK);
    char *path = bd_strdup(bd_tfevents_path(w));
    cr_assert_eq(bd_tfevents_close(w), BD_OK);
    char *data = NULL;
    size_t len = 0;
    cr_assert_eq(bd_read_file(path, &data, &len), BD_OK);
    size_t at = 0;
    int records = 0;
    while (at < len) {
        cr_assert_geq(len - at, 16);
        uint64_t n = 0;
        uint32_t hc = 0, dc = 0;
        memcpy(&n, data + at, 8); /* little-endian, as this machine */
        memcpy(&hc, data + at + 8, 4);
        cr_assert_eq(hc, bd_crc32c_masked(data + at, 8));
        cr_assert_leq(n, len - at - 16);
        memcpy(&dc, data + at + 12 + n, 4);
        cr_assert_eq(dc, bd_crc32c_masked(data + at + 12, n));
        if (records == 0)
            cr_assert(memmem(data + at + 12, n, "brain.Event:2", 13), "the first record names the version");
        else
            cr_assert(memmem(data + at + 12, n, "loss", 4) && memmem(data + at + 12, n, "kl", 2));
        at += 16 + n;
        records++;
    }
    cr_assert_eq(records, 2);
    free(data);
    free(path);
}

/* ---- launch variables (common/launch.h) ---------------------------------------------- */

/* An environment of NAME=VALUE strings, NULL-terminated. */
static const char *env_of(void *ctx, const char *name)
{
    size_t n = strlen(name);
    for (const char *const *e = ctx; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return NULL;
}

static int detect(const bd_launch_opts *o, const char *const *env, bd_launch *out)
{
    return bd_launch_detect(o, env_of, (void *)env, out);
}

Test(launch, none_is_one_rank_of_one)
{
    const char *env[] = {"HOME=/x", NULL};
    bd_launch l;
    cr_assert_eq(detect(NULL, env, &l), BD_OK);
    cr_assert(l.by == BD_LAUNCH_SINGLE && l.rank == 0 && l.world == 1 && l.port == 0);
}

Test(launch, torchrun_variables)
{
    const char *env[] = {"RANK=1", "WORLD_SIZE=2", "LOCAL_RANK=1", "MASTER_ADDR=10.0.0.7", "MASTER_PORT=4242", NULL};
    bd_launch l;
    cr_assert_eq(detect(NULL, env, &l), BD_OK, "%s", bd_lasterr());
    cr_assert(l.by == BD_LAUNCH_TORCHRUN && l.rank == 1 && l.world == 2 && l.local_rank == 1);
    cr_assert_str_eq(l.host, "10.0.0.7");
    cr_assert_eq(l.port, 4242);
    const char *noport[] = {"RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=h", NULL};
    cr_assert_eq(detect(NULL, noport, &l), BD_OK);
    cr_assert_eq(l.port, BD_LAUNCH_DEFAULT_PORT);
}

Test(launch, inconsistent_variables_are_named)
{
    bd_launch l = {.rank = 77};
    struct {
        const char *env[6];
        const char *says;
    } bad[] = {
        {{"RANK=2", "WORLD_SIZE=2", NULL}, "RANK=2 is not below WORLD_SIZE=2"},
        {{"RANK=0", NULL}, "RANK is set but WORLD_SIZE is not"},
        {{"WORLD_SIZE=3", NULL}, "WORLD_SIZE is set but RANK is not"},
        {{"RANK=x", "WORLD_SIZE=2", NULL}, "RANK must be an integer"},
        {{"RANK=0", "WORLD_SIZE=0", NULL}, "WORLD_SIZE must be an integer from 1"},
        {{"RANK=0", "WORLD_SIZE=2", "MASTER_PORT=99999", "MASTER_ADDR=h", NULL}, "MASTER_PORT must be"},
        {{"RANK=0", "WORLD_SIZE=2", "MASTER_PORT=1", NULL}, "MASTER_ADDR is not"},
        {{"RANK=0", "WORLD_SIZE=2", "LOCAL_RANK=1", NULL}, "local rank 1 is above the rank 0"},
        {{"OMPI_COMM_WORLD_RANK=3", "OMPI_COMM_WORLD_SIZE=2", NULL}, "OMPI_COMM_WORLD_RANK=3 is not below"},
        {{"SLURM_PROCID=0", NULL}, "SLURM_PROCID is set but SLURM_NTASKS is not"},
        {{"SLURM_PROCID=0", "SLURM_NTASKS=2", "SLURM_JOB_NODELIST=[1-2]", NULL}, "SLURM_JOB_NODELIST"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(detect(NULL, bad[i].env, &l), BD_EINVAL, "case %zu", i);
        cr_assert(strstr(bd_lasterr(), bad[i].says), "case %zu: %s", i, bd_lasterr());
    }
    cr_assert_eq(l.rank, 77, "nothing written on an error");
}

Test(launch, open_mpi_and_slurm)
{
    const char *om[] = {"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_LOCAL_RANK=1", NULL};
    bd_launch l;
    cr_assert_eq(detect(NULL, om, &l), BD_OK, "%s", bd_lasterr());
    cr_assert(l.by == BD_LAUNCH_OMPI && l.rank == 1 && l.world == 4 && l.local_rank == 1 && l.port == 0);
    const char *sl[] = {"SLURM_PROCID=3", "SLURM_NTASKS=4", "SLURM_LOCALID=1", "SLURM_JOB_NODELIST=cn[07-08]", NULL};
    cr_assert_eq(detect(NULL, sl, &l), BD_OK, "%s", bd_lasterr());
    cr_assert(l.by == BD_LAUNCH_SLURM && l.rank == 3 && l.world == 4 && l.local_rank == 1);
    cr_assert_str_eq(l.host, "cn07");
    cr_assert_eq(l.port, BD_LAUNCH_DEFAULT_PORT);
    /* mpirun inside an sbatch allocation: Open MPI's variables win over Slurm's */
    const char *both[] = {"SLURM_PROCID=0", "SLURM_NTASKS=1", "OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2",
                          NULL};
    cr_assert_eq(detect(NULL, both, &l), BD_OK);
    cr_assert(l.by == BD_LAUNCH_OMPI && l.rank == 1 && l.world == 2);
}

/* How many ranks share this machine (their learners divide its cores): as the launcher
 * says, or every rank when the rendezvous is loopback (or none), else 1. */
Test(launch, ranks_on_this_machine)
{
    struct {
        const char *env[6];
        int local, local_rank;
    } cases[] = {
        {{"HOME=/x", NULL}, 1, 0},
        {{"RANK=1", "WORLD_SIZE=4", "MASTER_ADDR=10.0.0.7", NULL}, 1, 0},
        {{"RANK=1", "WORLD_SIZE=4", "MASTER_ADDR=10.0.0.7", "LOCAL_WORLD_SIZE=2", NULL}, 2, 0},
        {{"RANK=3", "WORLD_SIZE=4", "MASTER_ADDR=10.0.0.7", "LOCAL_WORLD_SIZE=2", "LOCAL_RANK=1", NULL}, 2, 1},
        /* every rank on this machine: the local rank is the rank */
        {{"RANK=1", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", NULL}, 2, 1},
        {{"RANK=2", "WORLD_SIZE=3", NULL}, 3, 2},
        {{"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=4", "OMPI_COMM_WORLD_LOCAL_SIZE=2", NULL}, 2, 0},
        {{"SLURM_PROCID=3", "SLURM_NTASKS=4", "SLURM_NTASKS_PER_NODE=4", NULL}, 4, 3},
        {{"SLURM_PROCID=3", "SLURM_NTASKS=4", NULL}, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bd_launch l;
        cr_assert_eq(detect(NULL, cases[i].env, &l), BD_OK, "case %zu: %s", i, bd_lasterr());
        cr_assert_eq(l.local_size, cases[i].local, "case %zu: %d ranks here", i, l.local_size);
        cr_assert_eq(l.local_rank, cases[i].local_rank, "case %zu: local rank %d", i, l.local_rank);
    }
    bd_launch l;
    /* only a hint: one that does not parse is left out (loopback: every rank here) */
    const char *bad[] = {"RANK=0", "WORLD_SIZE=2", "LOCAL_WORLD_SIZE=0", NULL};
    cr_assert_eq(detect(NULL, bad, &l), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(l.local_size, 2);
    const char *badslurm[] = {"SLURM_PROCID=0", "SLURM_NTASKS=2", "SLURM_NTASKS_PER_NODE=2(x3)", NULL};
    cr_assert_eq(detect(NULL, badslurm, &l), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(l.local_size, 1);
    bd_launch_opts lo = {.rank = "1", .world_size = "2", .rendezvous = "127.0.0.1:5000"};
    cr_assert_eq(detect(&lo, cases[0].env, &l), BD_OK);
    cr_assert_eq(l.local_size, 2);
    lo.rendezvous = "node7:5000";
    cr_assert_eq(detect(&lo, cases[0].env, &l), BD_OK);
    cr_assert_eq(l.local_size, 1);
}

Test(launch, options_win_and_are_checked)
{
    const char *env[] = {"RANK=0", "WORLD_SIZE=2", NULL};
    bd_launch l;
    bd_launch_opts o = {.rank = "2", .world_size = "3", .rendezvous = "[::1]:7000"};
    cr_assert_eq(detect(&o, env, &l), BD_OK, "%s", bd_lasterr());
    cr_assert(l.by == BD_LAUNCH_OPTIONS && l.rank == 2 && l.world == 3 && l.port == 7000);
    cr_assert_str_eq(l.host, "::1");
    bd_launch_opts only = {.rank = "1"};
    cr_assert_eq(detect(&only, env, &l), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "--rank and --world-size go together"), "%s", bd_lasterr());
    bd_launch_opts port = {.rank = "0", .world_size = "2", .rendezvous = "host"};
    cr_assert_eq(detect(&port, env, &l), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "--rendezvous must be HOST:PORT"), "%s", bd_lasterr());
    /* the options name themselves; `bodhi run: ` is its caller's prefix, said once */
    bd_launch_opts over = {.rank = "2", .world_size = "2"};
    cr_assert_eq(detect(&over, env, &l), BD_EINVAL);
    cr_assert_str_eq(bd_lasterr(), "--rank=2 is not below --world-size=2");
    bd_launch_opts zero = {.rank = "0", .world_size = "2", .rendezvous = "127.0.0.1:0"};
    cr_assert_eq(detect(&zero, env, &l), BD_EINVAL);
    cr_assert_str_eq(bd_lasterr(), "the port of --rendezvous must be an integer from 1 to 65535 (got '0')");
}

Test(launch, slurm_node_lists)
{
    struct {
        const char *in, *first;
    } ok[] = {{"node1", "node1"}, {"a,b", "a"}, {"node[03-05,9],gpu1", "node03"}, {"x-[001-2]", "x-001"},
              {"n[7]", "n7"}, {"n[1-2]-ib,m", "n1-ib"}, {"n[4,6]", "n4"}};
    char h[64];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(bd_slurm_first_host(ok[i].in, h, sizeof h), BD_OK, "%s: %s", ok[i].in, bd_lasterr());
        cr_assert_str_eq(h, ok[i].first, "%s", ok[i].in);
    }
    const char *bad[] = {"", ",a", "[1-2]", "n[", "n[x]", "n[1-2"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(bd_slurm_first_host(bad[i], h, sizeof h), BD_EINVAL, "'%s'", bad[i]);
    cr_assert_eq(bd_slurm_first_host("verylongname", h, 5), BD_EINVAL);
}

/* The BLAS environment of bodhi's children: what is unset (or set empty) is set, what the
 * user set stays, and a second call has nothing to do (so a re-exec cannot loop). Each
 * case runs in a child of its own, so the test's environment stays as it was. */
Test(proc, blas_env_sets_only_what_the_user_left_unset)
{
    for (int c = 0; c < 4; c++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            unsetenv("OPENBLAS_NUM_THREADS");
            unsetenv("OMP_WAIT_POLICY");
            if (c == 1)
                setenv("OPENBLAS_NUM_THREADS", "3", 1); /* the user's: kept */
            if (c == 2)
                setenv("OMP_WAIT_POLICY", "", 1); /* empty: set */
            if (c == 3) { /* an empty thread count (every core, to OpenBLAS) is all there is to set */
                setenv("OPENBLAS_NUM_THREADS", "", 1);
                setenv("OMP_WAIT_POLICY", "passive", 1);
            }
            int first = bd_blas_env(), second = bd_blas_env();
            const char *t = getenv("OPENBLAS_NUM_THREADS"), *w = getenv("OMP_WAIT_POLICY");
            int ok = first == 1 && second == 0 && t && w && strcmp(t, c == 1 ? "3" : "1") == 0
                     && strcmp(w, "passive") == 0;
            _exit(ok ? 0 : 1);
        }
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "case %d: bd_blas_env set the wrong variables", c);
    }
    /* both set by the user: nothing to do */
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        setenv("OPENBLAS_NUM_THREADS", "2", 1);
        setenv("OMP_WAIT_POLICY", "active", 1);
        int r = bd_blas_env();
        _exit(r == 0 && strcmp(getenv("OPENBLAS_NUM_THREADS"), "2") == 0
                      && strcmp(getenv("OMP_WAIT_POLICY"), "active") == 0
                  ? 0
                  : 1);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the user's settings changed");
}

/* A peer's text printed on the terminal: no control byte of it survives. */
Test(files, a_peers_text_is_made_printable)
{
    /* ESC, LF, CR, DEL, a lone 8-bit CSI; é and € whole; OSC as UTF-8's C1 (C2 9D); a no-break
     * space (C2 A0) whole; € cut short; an emoji whole */
    char s[] = "host\x1b[2J\nbodhi: done\r\x7f\x9b ok \xc3\xa9 \xe2\x82\xac \xc2\x9d"
               "0;x \xc2\xa0 \xe2\x82 \xf0\x9f\x98\x80";
    cr_assert_str_eq(bd_text_printable(s), "host?[2J?bodhi: done??? ok \xc3\xa9 \xe2\x82\xac ??0;x \xc2\xa0 ?? "
                                           "\xf0\x9f\x98\x80");
    cr_assert_null(bd_text_printable(NULL));
}

/* Hex both ways: a round trip of every byte value; a text that is not exactly 2n hex
 * digits is refused whole, and leaves nothing behind. */
Test(files, hex_is_written_and_read_back_exactly)
{
    uint8_t all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char text[513];
    bd_hex(all, sizeof all, text);
    cr_assert_eq(strlen(text), 512);
    cr_assert_eq(strncmp(text, "000102", 6), 0);
    cr_assert_str_eq(text + 506, "fdfeff");
    cr_assert(bd_unhex(text, back, sizeof back));
    cr_assert_eq(memcmp(all, back, sizeof all), 0);
    uint8_t two[2];
    cr_assert(bd_unhex("aBcD", two, 2), "either case");
    cr_assert(two[0] == 0xab && two[1] == 0xcd);
    const char *bad[] = {"abc", "abcde", "0xab", " abc", "+abc", "-abc", "abc ", "abgd", "", "ab\ncd"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        two[0] = two[1] = 7;
        cr_assert(!bd_unhex(bad[i], two, 2), "'%s' was read", bad[i]);
        cr_assert(two[0] == 0 && two[1] == 0, "'%s' left bytes behind", bad[i]);
    }
    cr_assert(!bd_unhex(NULL, two, 2));
}
