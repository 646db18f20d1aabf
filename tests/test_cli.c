/* test_cli.c: `bodhi replay`'s report (replay/replay.c) over traces with known contents:
 * the table, the CSV, --verify finding a return that is not the sum of its rewards, and
 * hostile traces written with h5py refused without a crash. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/util.h"
#include "memory/memory.h"
#include "replay/replay.h"
#include "tests/atexit_files.h"
#include "tests/port.h"
#include "tests/slow.h"
#include "tests/trace_fixture.h"

/* ---- replay ------------------------------------------------------------------------- */

static char *slurp(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static int count_lines(const char *path)
{
    char *s = NULL;
    cr_assert_eq(bd_read_file(path, &s, NULL), BD_OK);
    int n = 0;
    for (char *p = s; *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}

Test(replay, replay_verify_ok)
{
    char dir[256], master[300], file[320], csv[300];
    tmp_path(dir, sizeof dir, "replay_ok");
    rm_rf(dir);
    snprintf(master, sizeof master, "%s/run.h5", dir);
    snprintf(file, sizeof file, "%s/memory/train.balancer.h5", dir);
    snprintf(csv, sizeof csv, "%s/episodes.csv", dir);
    const int batches[] = {100, 250, 7, 243, 1};  /* episodes span batches */
    int64_t rows = 0;
    int64_t n = write_consistent(file, "train", "balancer", 16, batches, 5, 0, &rows);
    cr_assert(n > 100, "only %lld episodes", (long long)n);
    cr_assert_eq(bd_trace_master_create(master, "uid: r\n", 1), BD_OK);
    cr_assert_eq(bd_trace_master_link(master, "train", "balancer", "memory/train.balancer.h5"), BD_OK);

    FILE *out = tmpfile();
    int rc = bd_replay(dir, out, &(bd_replay_opts){.csv = csv, .verify = 1});  /* a run folder means its run.h5 */
    char *text = slurp(out);
    cr_assert_eq(rc, BD_OK, "%s\n%s", bd_lasterr(), text);
    cr_assert(strstr(text, "train/balancer"), "%s", text);
    cr_assert(strstr(text, "verify train/balancer: returns and end flags ok"), "%s", text);
    char want[64];
    snprintf(want, sizeof want, " %lld ", (long long)n);
    cr_assert(strstr(text, want), "episode count %lld missing:\n%s", (long long)n, text);
    snprintf(want, sizeof want, " %lld ", (long long)rows);
    cr_assert(strstr(text, want), "steps %lld missing:\n%s", (long long)rows, text);
    free(text);
    fclose(out);
    cr_assert_eq(count_lines(csv), n + 1);
    char *c = NULL;
    cr_assert_eq(bd_read_file(csv, &c, NULL), BD_OK);
    const char *head = "phase,agent,world,start_step,length,return,terminated,truncated\ntrain,balancer,";
    cr_assert(!strncmp(c, head, strlen(head)), "%.200s", c);
    free(c);

    out = tmpfile();
    cr_assert_eq(bd_replay(file, out, &(bd_replay_opts){.verify = 1}), BD_OK, "%s", bd_lasterr());  /* the agent's file */
    fclose(out);
    rm_rf(dir);
}

/* --verify: a world whose weights version goes back from one row to the next is a
 * mismatch (a muscle never acts with older weights than it had); rising is fine. */
Test(replay, replay_verify_checks_weights_versions)
{
    char path[256];
    tmp_path(path, sizeof path, "replay_versions.h5");
    enum { T = 4, N = 3 };
    bd_trace_spec spec = make_spec(path, "train", "balancer", N, 1, 1);
    for (int back = 0; back < 2; back++) {
        bd_trace_writer *w = NULL;
        cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
        float sens[T * N] = {0}, act[T * N] = {0}, rew[T * N] = {0};
        uint8_t term[T * N] = {0}, trunc[T * N] = {0};
        uint64_t ver[T * N];
        for (int t = 0; t < T; t++)
            for (int c = 0; c < N; c++)
                ver[t * N + c] = (uint64_t)(t / 2 + c); /* 0 0 1 1 (+ c) */
        ver[2 * N + 2] = 0; /* world 2's rollout lost at row 2 (the brain writes 0): passed over */
        if (back)
            ver[3 * N + 1] = 1; /* world 1 at row 3: back from 2 to 1 */
        term[1 * N + 0] = 1;
        cr_assert_eq(bd_trace_writer_append_versions(w, T, sens, act, rew, term, trunc, ver), BD_OK, "%s",
                     bd_lasterr());
        bd_episode e = ep(0, 0, 2, 0.0f, 1);
        cr_assert_eq(bd_trace_writer_episodes(w, &e, 1, NULL), BD_OK);
        cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
        FILE *out = tmpfile();
        int rc = bd_replay(path, out, &(bd_replay_opts){.verify = 1});
        char *text = slurp(out);
        if (!back) {
            cr_assert_eq(rc, BD_OK, "%s\n%s", bd_lasterr(), text);
            cr_assert(strstr(text, "weights versions ok (0 to 3"), "%s", text);
        } else {
            cr_assert_eq(rc, BD_EINVAL, "%s", text);
            cr_assert(strstr(text, "world 1 acts with weights version 1 at row 3 after 2"), "%s", text);
            cr_assert(strstr(bd_lasterr(), "1 world(s) whose weights version goes back"), "%s", bd_lasterr());
        }
        free(text);
        fclose(out);
    }
    unlink(path);
}

Test(replay, replay_verify_fails_on_bad_episode)
{
    char path[256];
    tmp_path(path, sizeof path, "replay_bad.h5");
    const int batches[] = {64, 64, 64};
    int64_t n = write_consistent(path, "train", "balancer", 8, batches, 3, 5.0f, NULL);
    cr_assert(n > 10);
    FILE *out = tmpfile();
    int rc = bd_replay(path, out, &(bd_replay_opts){.verify = 1});
    char *text = slurp(out);
    cr_assert_eq(rc, BD_EINVAL, "rc %d\n%s", rc, text);
    cr_assert(strstr(text, "verify train/balancer: episode"), "%s", text);
    cr_assert(strstr(bd_lasterr(), "1 episode"), "%s", bd_lasterr());
    free(text);
    fclose(out);
    out = tmpfile();
    cr_assert_eq(bd_replay(path, out, NULL), BD_OK);  /* without --verify it is a table */
    fclose(out);

    /* an episode reaching past the rows recorded is a mismatch too */
    char path2[256];
    tmp_path(path2, sizeof path2, "replay_range.h5");
    bd_trace_spec spec = make_spec(path2, "train", "balancer", 2, 4, 1);
    bd_trace_writer *w = NULL;
    cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK);
    append_rows(w, 0, 10, 2, 4, 1);
    bd_episode e[2] = {ep(1, 0, 2, reward_val(0, 1) + reward_val(1, 1), 1), ep(0, 8, 5, 0, 1)};
    cr_assert_eq(bd_trace_writer_episodes(w, e, 2, NULL), BD_OK);
    cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
    out = tmpfile();
    rc = bd_replay(path2, out, &(bd_replay_opts){.verify = 1});
    text = slurp(out);
    cr_assert_eq(rc, BD_EINVAL, "%s", text);
    cr_assert(strstr(text, "outside the rewards rows"), "%s", text);
    free(text);
    fclose(out);
    unlink(path);
    unlink(path2);
}

/* --verify checks each episode against the step flags, not its return alone: with every
 * reward 1 (CartPole's) an episode row moved to other steps of the same length, or given
 * the other flag, sums to its return all the same. One world, 6 rows, terminated at rows
 * 2 and 5: episodes [0, 3) and [3, 6). */
Test(replay, replay_verify_checks_the_episodes_flags)
{
    char path[256];
    tmp_path(path, sizeof path, "replay_flags.h5");
    enum { T = 6 };
    const struct {
        bd_episode second;
        const char *says;
    } cases[] = {
        {ep(0, 3, 3, 3.0f, 1), NULL},
        {ep(0, 2, 3, 3.0f, 1), "no episode of its world ended at the step before"},
        {ep(0, 1, 5, 5.0f, 1), "no episode of its world ended at the step before"},
        {ep(0, 3, 3, 3.0f, 0), "says terminated 0, truncated 1; its last step's flags are 1, 0"},
        {ep(0, 3, 2, 2.0f, 1), "says terminated 1, truncated 0; its last step's flags are 0, 0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        unlink(path);
        bd_trace_spec spec = make_spec(path, "train", "balancer", 1, 1, 1);
        bd_trace_writer *w = NULL;
        cr_assert_eq(bd_trace_writer_create(&spec, &w), BD_OK, "%s", bd_lasterr());
        float sens[T] = {0}, act[T] = {0}, rew[T] = {1, 1, 1, 1, 1, 1};
        uint8_t term[T] = {0, 0, 1, 0, 0, 1}, trunc[T] = {0};
        cr_assert_eq(bd_trace_writer_append(w, T, sens, act, rew, term, trunc), BD_OK, "%s", bd_lasterr());
        bd_episode e[2] = {ep(0, 0, 3, 3.0f, 1), cases[k].second};
        cr_assert_eq(bd_trace_writer_episodes(w, e, 2, NULL), BD_OK);
        cr_assert_eq(bd_trace_writer_destroy(w), BD_OK);
        FILE *out = tmpfile();
        int rc = bd_replay(path, out, &(bd_replay_opts){.verify = 1});
        char *text = slurp(out);
        if (!cases[k].says) {
            cr_assert_eq(rc, BD_OK, "%s\n%s", bd_lasterr(), text);
            cr_assert(strstr(text, "returns and end flags ok (2 episodes)"), "%s", text);
        } else {
            cr_assert_eq(rc, BD_EINVAL, "case %zu passed:\n%s", k, text);
            cr_assert(strstr(text, "episode 1 (world 0") && strstr(text, cases[k].says), "case %zu:\n%s", k, text);
            cr_assert(strstr(bd_lasterr(), "1 episode(s) or world(s) that do not match"), "%s", bd_lasterr());
        }
        free(text);
        fclose(out);
    }
    unlink(path);
}

Test(replay, replay_refuses_hostile_traces)
{
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0)
        cr_skip("/usr/bin/python3 has no h5py");
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/bd-test-hostile-%d", (int)getpid());
    char *py = bd_strfmt(
        "/usr/bin/python3 -c \""
        "import h5py, numpy as np, os\n"
        "d = '%s'; os.makedirs(d, exist_ok=True)\n"
        "full = np.dtype([('world','<i4'),('start_step','<i8'),('length','<i4'),('return','<f4'),('terminated','u1'),('truncated','u1')])\n"
        "nolen = np.dtype([('world','<i4'),('start_step','<i8'),('return','<f4'),('terminated','u1'),('truncated','u1')])\n"
        "def make(name, rewards, eps):\n"
        "    with h5py.File(d + '/' + name + '.h5', 'w') as f:\n"
        "        g = f.create_group('train/a'); g['rewards'] = rewards; g['episodes'] = eps\n"
        "make('u8', np.ones((4, 1), np.uint8), np.array([(0, 0, 4, 4.0, 1, 0)], full))\n"
        "make('nolen', np.ones((4, 1), np.float32), np.array([(0, 0, 4.0, 1, 0)], nolen))\n"
        "make('bigstart', np.ones((1, 1), np.float32), np.array([(0, 2**63 - 1, 1, 1.0, 1, 0)], full))\n"
        "make('garbage', np.ones((4, 2), np.float32), np.array([(1, 0, 4, 4.0, 1, 0), (1094795585, -5, 0, 1.0, 65, 0)], full))\n"
        "make('whole', np.ones((4, 2), np.float32), np.array([(1, 0, 4, 4.0, 1, 0), (0, 0, 0, 0.0, 0, 0)], full))\n"
        "make('past', np.ones((4, 1), np.float32), np.array([(0, 0, 2, 2.0, 1, 0), (0, 2, 3, 3.0, 1, 0)], full))\n"
        "make('nanret', np.ones((4, 1), np.float32), np.array([(0, 0, 4, np.nan, 1, 0)], full))\n"
        "for kind, t in (('u64flags', np.uint64), ('boolflags', np.bool_)):\n"
        "    make(kind, np.ones((4, 1), np.float32), np.array([(0, 0, 4, 4.0, 1, 0)], full))\n"
        "    with h5py.File(d + '/' + kind + '.h5', 'r+') as f:\n"
        "        f['train/a/terminated'] = np.array([[0], [0], [0], [1]], t)\n"
        "        f['train/a/truncated'] = np.zeros((4, 1), t)\n"
        "\"",
        dir);
    cr_assert_eq(system(py), 0);
    free(py);
    FILE *devnull = fopen("/dev/null", "w");
    char path[256];
    snprintf(path, sizeof path, "%s/u8.h5", dir);
    cr_assert_eq(bd_replay(path, devnull, &(bd_replay_opts){.verify = 1}), BD_EHDF5, "uint8 rewards are refused");
    cr_assert(strstr(bd_lasterr(), "float32"), "%s", bd_lasterr());
    snprintf(path, sizeof path, "%s/nolen.h5", dir);
    cr_assert_eq(bd_replay(path, devnull, NULL), BD_EHDF5, "a table missing a field is refused");
    cr_assert(strstr(bd_lasterr(), "'length'"), "%s", bd_lasterr());
    snprintf(path, sizeof path, "%s/bigstart.h5", dir);
    cr_assert_eq(bd_replay(path, devnull, &(bd_replay_opts){.verify = 1}), BD_EINVAL,
                 "an episode starting at 2^63-1 is a mismatch, not an overflow");
    /* an episodes table with rows no writer makes (overwritten): plain replay says so and
     * fails, where it printed figures made of them; a whole one of the same shape passes,
     * with a row all zero (room a killed writer made and did not fill) */
    snprintf(path, sizeof path, "%s/garbage.h5", dir);
    char *said = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&said, &len);
    cr_assert_eq(bd_replay(path, m, NULL), BD_EINVAL, "a damaged episodes table passed");
    fclose(m);
    cr_assert(strstr(said, "train/a: the episodes table is damaged: 1 of its 2 rows cannot be (row 1: world "
                           "1094795585 of 2, start step -5, length 0, return 1, flags 65/0)"), "%s", said);
    cr_assert(strstr(bd_lasterr(), "1 trace(s) whose episodes table is damaged"), "%s", bd_lasterr());
    free(said);
    /* an episode ending past the steps recorded (its length overwritten), or whose return
     * is NaN: the table's figures would be made of it (a mean length past the rows, a
     * median the NaN moves) */
    const char *cut[] = {"past", "nanret"};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s.h5", dir, cut[k]);
        cr_assert_eq(bd_replay(path, devnull, NULL), BD_EINVAL, "%s passed", cut[k]);
        cr_assert(strstr(bd_lasterr(), "1 trace(s) whose episodes table is damaged"), "%s", bd_lasterr());
    }
    /* flags another program stored as uint64 are read as bodhi's uint8 (they filled 8
     * bytes a cell of a buffer of 1), and h5py's bool (an enum) leaves the returns alone */
    const char *flagged[] = {"u64flags", "returns and end flags ok (1 episodes)",
                             "boolflags", "returns ok (1 episodes)"};
    for (int k = 0; k < 4; k += 2) {
        snprintf(path, sizeof path, "%s/%s.h5", dir, flagged[k]);
        char *said2 = NULL;
        size_t len2 = 0;
        FILE *m2 = open_memstream(&said2, &len2);
        cr_assert_eq(bd_replay(path, m2, &(bd_replay_opts){.verify = 1}), BD_OK, "%s: %s", flagged[k], bd_lasterr());
        fclose(m2);
        cr_assert(strstr(said2, flagged[k + 1]), "%s", said2);
        free(said2);
    }
    snprintf(path, sizeof path, "%s/whole.h5", dir);
    cr_assert_eq(bd_replay(path, devnull, NULL), BD_OK, "%s", bd_lasterr());
    fclose(devnull);
}

/* ---- whole runs: `bodhi run` then `bodhi replay`/`check` as a user types them ---------- */

/* A short CartPole run file: 6 worlds, `steps` env steps in all, `record` (YAML, may be
 * empty) for its agent, `env` (NULL: cartpole) for its env's name, and `tail` (may be
 * empty) appended (a test phase). */
static char *short_run(const char *tag, int steps, const char *record, const char *env, const char *tail)
{
    char *path = bd_strfmt("/tmp/bd-cli-%d-%s.yml", (int)getpid(), tag);
    bd_test_remove_at_exit(path);
    char *text = bd_strfmt(
        "uid: %s\nseed: 5\nschedule:\n  - train:\n"
        "      environments:\n"
        "        - environment: {name: '%s', uid: pole, params: {worlds: 6}}\n"
        "      agents:\n"
        "        - name: balancer\n"
        "          brain: {name: %s, params: {rollout_steps: 32}}\n"
        "          muscle: {name: %s}\n"
        "          sensors: [pole.*]\n"
        "          actuators: [pole.%s]\n"
        "%s%s%s"
        "      simulation: {conditions: [{name: max_steps, params: {steps: %d}}]}\n"
        "      phase_config: {mode: train, worker: 2}\n%s",
        tag, env ? env : "cartpole", env ? "random" : "ppo", env ? "random" : "ppo", env ? "move_x" : "push",
        *record ? "          record: " : "", record, *record ? "\n" : "", steps, tail);
    cr_assert_eq(bd_write_file(path, text, strlen(text)), BD_OK);
    free(text);
    return path;
}

/* Runs a shell command (BODHI stands for the binary); returns its exit status and, in
 * *out (may be NULL; caller frees), its stdout and stderr. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    cr_assert(vasprintf(&cmd, fmt, ap) >= 0);
    va_end(ap);
    char log[128];
    snprintf(log, sizeof log, "/tmp/bd-cli-%d.log", (int)getpid());
    char *full = bd_strfmt("BODHI=%s; (%s) > %s 2>&1", BODHI_BINARY, cmd, log);
    int st = system(full);
    free(full);
    free(cmd);
    if (out) {
        *out = NULL;
        cr_assert_eq(bd_read_file(log, out, NULL), BD_OK);
    }
    unlink(log);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A stopped run's missing trace is forgiven only where its phase may not have begun
 * writing: the last phase's. The trace of a phase that ran to its end (a later phase began,
 * log.jsonl says) was written, so its loss fails --verify however the run ended; it used
 * to pass in silence once summary.json said anything but done. */
Test(replay, a_stopped_runs_lost_trace_of_a_finished_phase_fails_verify, .timeout = 120)
{
    char *out = bd_strfmt("/tmp/bd-cli-%d-lostphase", (int)getpid()), *t = NULL;
    char *yml = short_run("lostphase", 2400, "", NULL, "  - test:\n      phase_config: {mode: test, worker: 1, episodes: 4}\n");
    rm_rf(out);
    cr_assert_eq(sh(NULL, "$BODHI run %s --out %s --quiet", yml, out), 0);
    /* as if it had been stopped in its test phase */
    cr_assert_eq(sh(NULL, "sed -i 's/\"status\":[[:space:]]*\"done\"/\"status\": \"stopped\"/' %s/summary.json && "
                          "grep -q '\"stopped\"' %s/summary.json", out, out), 0);
    cr_assert_eq(sh(NULL, "rm %s/memory/test.balancer.h5", out), 0);
    int rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 0, "the last phase's trace may never have been written: %s", t);
    cr_assert(strstr(t, "test/balancer: missing:") && strstr(t, "not yet written by a live run"), "%s", t);
    free(t);
    cr_assert_eq(sh(NULL, "rm %s/memory/train.balancer.h5", out), 0);
    rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 1, "%s", t);
    cr_assert(strstr(t, "train/balancer: missing:") && strstr(t, "lost (its phase ran to its end; a later phase began)")
                  && strstr(t, "1 trace(s) it links to are missing"), "%s", t);
    free(t);
    rm_rf(out);
    free(out);
    free(yml);
}

/* Issue 20, item 8: `replay --verify` and `--minari` exit 1, saying why, when they could
 * check or export nothing; a sampled recording is checked at the rows it has (the end
 * flags at the recorded steps; the recorded worlds re-simulated when every step is kept). */
Test(replay, item08_verify_and_minari_fail_when_nothing_is_done, .timeout = 120)
{
    char *out = bd_strfmt("/tmp/bd-cli-%d-sampled", (int)getpid()), *t = NULL;
    char *yml = short_run("sampled", 4800, "{every: 10, worlds: 4}", NULL, "");
    rm_rf(out);
    cr_assert_eq(sh(NULL, "$BODHI run %s --out %s --quiet", yml, out), 0);
    int rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 0, "%s", t);
    cr_assert(strstr(t, "end flags of the") && strstr(t, "recorded columns match"), "%s", t);
    free(t);
    rc = sh(&t, "$BODHI replay %s --minari %s/m", out, out);
    cr_assert_eq(rc, 1, "--minari of a sampled run exports nothing: %s", t);
    cr_assert(strstr(t, "nothing exported"), "%s", t);
    free(t);
    /* a recorded end of episode taken away: the sampled check finds it */
    char *py = bd_strfmt("cd / && /usr/bin/python3 -c \"import h5py, numpy as np\n"
                         "f = h5py.File('%s/memory/train.balancer.h5', 'r+')\n"
                         "g = f['train/balancer']\nt = g['terminated'][:]; u = g['truncated'][:]\n"
                         "r, c = np.argwhere((t | u) != 0)[0]\nt[r, c] = 0; u[r, c] = 0\n"
                         "g['terminated'][:] = t; g['truncated'][:] = u\n\"", out);
    cr_assert_eq(system(py), 0);
    free(py);
    rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 1, "%s", t);
    cr_assert(strstr(t, "has no such flag"), "%s", t);
    free(t);
    free(yml);

    /* the first 4 worlds, every step: those worlds are re-simulated */
    yml = short_run("firstworlds", 2400, "{worlds: 4}", NULL, "");
    rm_rf(out);
    cr_assert_eq(sh(NULL, "$BODHI run %s --out %s --quiet", yml, out), 0);
    rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 0, "%s", t);
    cr_assert(strstr(t, "of the 4 recorded worlds (of 6) of pole from seed and setpoints: every recorded"), "%s", t);
    free(t);
    free(yml);

    /* nothing recorded: nothing to check */
    yml = short_run("norecord", 2400, "false", NULL, "");
    rm_rf(out);
    cr_assert_eq(sh(NULL, "$BODHI run %s --out %s --quiet", yml, out), 0);
    rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 1, "%s", t);
    cr_assert(strstr(t, "nothing could be checked"), "%s", t);
    free(t);
    free(yml);

    /* a trace of steps but no finished episode (MountainCar's first 64 steps): its weights
     * versions are checked, so --verify of its run.h5 alone (no re-simulation) passes */
    char *mc = bd_strfmt("/tmp/bd-cli-%d-mc.yml", (int)getpid());
    const char *mc_text = "uid: mc\nseed: 1\nschedule:\n  - train:\n"
                          "      environments: [{environment: {name: mountaincar, uid: car, params: {worlds: 4}}}]\n"
                          "      agents: [{name: driver, brain: {name: ppo, params: {rollout_steps: 32}}, "
                          "muscle: {name: ppo}, sensors: [car.*], actuators: [car.*]}]\n"
                          "      simulation: {conditions: [{name: max_steps, params: {steps: 256}}]}\n"
                          "      phase_config: {mode: train, worker: 1}\n";
    cr_assert_eq(bd_write_file(mc, mc_text, strlen(mc_text)), BD_OK);
    rm_rf(out);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", mc, out), 0, "%s", t);
    free(t);
    rc = sh(&t, "$BODHI replay %s/run.h5 --verify", out);
    cr_assert_eq(rc, 0, "%s", t);
    cr_assert(strstr(t, "returns not checked: no episode ended") && strstr(t, "weights versions ok"), "%s", t);
    free(t);
    unlink(mc);
    free(mc);

    /* a trace with no episode: nothing to plot (an empty plot used to be drawn, exit 0);
     * then a run.h5 that links no trace (a run stopped while it started): nothing to
     * check, export or plot (each used to exit 0), while the plain table says so, exit 0 */
    yml = short_run("notraces", 2400, "", NULL, "");
    rm_rf(out);
    cr_assert_eq(sh(NULL, "$BODHI run %s --out %s --quiet", yml, out), 0);
    py = bd_strfmt("cd / && /usr/bin/python3 -c \"import h5py\n"
                   "f = h5py.File('%s/memory/train.balancer.h5', 'r+')\n"
                   "f['train/balancer/episodes'].resize((0,))\n\"", out);
    cr_assert_eq(system(py), 0);
    free(py);
    rc = sh(&t, "$BODHI replay %s --plot %s.png", out, out);
    cr_assert_eq(rc, 1, "%s", t);
    cr_assert(strstr(t, "--plot: nothing to plot: no trace of") && strstr(t, "holds an episode"), "%s", t);
    free(t);
    py = bd_strfmt("cd / && /usr/bin/python3 -c \"import h5py\n"
                   "f = h5py.File('%s/run.h5', 'r+')\n"
                   "del f['train/balancer']\n\"", out);
    cr_assert_eq(system(py), 0);
    free(py);
    const char *what[3][2] = {{"--verify", "--verify: nothing could be checked: "},
                              {"--minari", "--minari: nothing exported: "},
                              {"--plot", "--plot: nothing to plot: "}};
    for (int k = 0; k < 3; k++) {
        rc = sh(&t, "$BODHI replay %s %s%s", out, what[k][0], k == 0 ? "" : k == 1 ? " /tmp/bd-cli-m" : " x.png");
        cr_assert_eq(rc, 1, "%s: %s", what[k][0], t);
        cr_assert(strstr(t, what[k][1]) && strstr(t, "holds no traces"), "%s", t);
        free(t);
    }
    rc = sh(&t, "$BODHI replay %s", out);
    cr_assert_eq(rc, 0, "%s", t);
    cr_assert(strstr(t, "no traces"), "%s", t);
    free(t);
    free(yml);

    /* an env plugin that is gone: its phase cannot be re-simulated, and --verify says so */
    char *so = bd_strfmt("/tmp/bd-cli-%d-target.so", (int)getpid());
    cr_assert_eq(sh(NULL, "cp %s %s", BODHI_TARGET_PLUGIN, so), 0);
    char *env = bd_strfmt("%s:bd_target_env", so);
    yml = short_run("plugin", 600, "", env, "");
    rm_rf(out);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    cr_assert_eq(sh(NULL, "$BODHI replay %s --verify", out), 0, "with its plugin in place");
    unlink(so);
    rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 1, "%s", t);
    cr_assert(strstr(t, "could not be re-simulated"), "%s", t);
    free(t);
    rm_rf(out);
    free(env);
    free(so);
    free(yml);
    free(out);
}

/* Issue 20, item 11: every Python example of docs/trace-format.md (but the live-run loop
 * and Minari's) runs as written on a fresh run with fewer rows than the old pandas slice
 * (1000..1100) reached, and h5py's walk goes through the phases in run order (train, then
 * test: by name test would come first), from run.h5's `phases` attribute. */
Test(replay, item11_trace_format_examples_run_on_a_real_run, .timeout = 120)
{
    if (system("/usr/bin/python3 -c 'import h5py, pandas' 2>/dev/null") != 0)
        cr_skip("/usr/bin/python3 has no h5py or pandas");
    char *out = bd_strfmt("/tmp/bd-cli-%d-docs", (int)getpid()), *t = NULL;
    char *yml = short_run("docs", 3600, "", NULL, "  - test:\n      phase_config: {mode: test, worker: 2, episodes: 3}\n");
    rm_rf(out);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    char *doc = NULL, *docpath = bd_strfmt("%s/docs/trace-format.md", BODHI_SOURCE_DIR);
    cr_assert_eq(bd_read_file(docpath, &doc, NULL), BD_OK);
    int ran = 0;
    for (char *p = doc; (p = strstr(p, "```python\n"));) {
        p += strlen("```python\n");
        char *end = strstr(p, "```\n");
        cr_assert_not_null(end);
        *end = '\0';
        if (!strstr(p, "while True") && !strstr(p, "minari")) {
            char *script = bd_strfmt("%s/example%d.py", out, ran), *log = bd_strfmt("%s/example%d.txt", out, ran);
            FILE *f = fopen(script, "w");
            cr_assert_not_null(f);
            for (const char *q = p; *q;) { /* the docs' run folder is this run's */
                const char *hit = strstr(q, "runs/cartpole-ppo");
                size_t k = hit ? (size_t)(hit - q) : strlen(q);
                fwrite(q, 1, k, f);
                if (!hit)
                    break;
                fputs(out, f);
                q = hit + strlen("runs/cartpole-ppo");
            }
            fclose(f);
            int rc = sh(&t, "cd / && /usr/bin/python3 %s", script);
            cr_assert_eq(rc, 0, "docs/trace-format.md's example %d fails:\n%s\n%s", ran, p, t);
            if (strstr(p, "for phase in") && strstr(p, "print(phase, agent")) {
                char *tr = strstr(t, "\ntrain balancer"), *te = strstr(t, "\ntest balancer");
                cr_assert(tr && te && tr < te, "phases not in run order:\n%s", t);
            }
            free(t);
            free(script);
            free(log);
            ran++;
        }
        p = end + 4;
    }
    cr_assert(ran >= 4, "only %d examples found", ran);
    int rows = sh(&t, "cd / && /usr/bin/python3 -c \"import h5py; f = h5py.File('%s/run.h5', 'r'); "
                      "assert list(f.attrs['phases']) == ['train', 'test'], f.attrs['phases']; "
                      "assert f['train/balancer/rewards'].shape[0] < 1000\"", out);
    cr_assert_eq(rows, 0, "%s", t);
    free(t);
    free(doc);
    free(docpath);
    rm_rf(out);
    free(yml);
    free(out);
}

/* Issue 20, item 14: `bodhi check` says every problem at once: an unknown env name hides
 * neither its worlds range nor its agent's brain params, a bad FSM `to:` hides neither the
 * transition's condition nor its probability, and a misspelt FSM sensor gets a did-you-mean.
 * tests/runfiles/bad/item14_*.yml end with what `bodhi check` must print, in order. */
Test(check, item14_check_reports_every_problem_at_once, .timeout = 60)
{
    const char *files[] = {"item14_unknown_env_hides_nothing", "item14_fsm_every_problem"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = bd_strfmt("tests/runfiles/bad/%s.yml", files[i]), *text = NULL, *t = NULL;
        char *full = bd_strfmt("%s/%s", BODHI_SOURCE_DIR, path);
        cr_assert_eq(bd_read_file(full, &text, NULL), BD_OK);
        int rc = sh(&t, "cd %s && $BODHI check %s", BODHI_SOURCE_DIR, path);
        cr_assert_eq(rc, 2, "%s: exit %d\n%s", path, rc, t);
        int want = 0;
        for (char *p = text; (p = strstr(p, "# expect: ")); want++) {
            p += strlen("# expect: ");
            size_t n = strcspn(p, "\n");
            char *line = bd_strfmt("\n%s:%.*s\n", path, (int)n, p);
            char *got = bd_strfmt("\n%s", t);
            cr_assert(strstr(got, line), "%s: missing%s in:\n%s", path, line, t);
            free(got);
            free(line);
        }
        char *count = bd_strfmt("%s: %d problems", path, want);
        cr_assert(want >= 4 && strstr(t, count), "%s: want %d problems:\n%s", path, want, t);
        free(count);
        free(t);
        free(text);
        free(full);
        free(path);
    }
}

/* A run file from a named pipe is read once: `bodhi check` passes it and prints its
 * traces' sizes (it opened the pipe a second time for them and hung there, no writer
 * left), as `bodhi run` reads it. */
Test(check, a_run_file_from_a_pipe_is_checked_whole, .timeout = 60)
{
    char *fifo = bd_strfmt("/tmp/bd-cli-%d-fifo", (int)getpid()), *t = NULL;
    char *yml = short_run("fromfifo", 2400, "", NULL, "");
    unlink(fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    int rc = sh(&t, "cat %s > %s & timeout 20 $BODHI check %s", yml, fifo, fifo);
    cr_assert_eq(rc, 0, "exit %d:\n%s", rc, t);
    cr_assert(strstr(t, ": ok (uid fromfifo") && strstr(t, "phase train: traces of up to "), "%s", t);
    free(t);
    unlink(fifo);
    unlink(yml);
    free(yml);
    free(fifo);
}

/* Issue 20, item 15: a default recording is compressed (LZ4, where HDF5 here loads it);
 * `bodhi check` prints each phase's trace size, which bounds what the run then writes; a
 * run moved aside is said with its size, and with what the earlier copies hold. */
Test(check, item15_traces_compressed_sized_and_moved_aside_loudly, .timeout = 120)
{
    char *out = bd_strfmt("/tmp/bd-cli-%d-disk", (int)getpid()), *t = NULL;
    char *yml = short_run("disk", 3600, "", NULL, "");
    cr_assert_eq(sh(&t, "rm -rf %s %s.prev-*; $BODHI check %s", out, out, yml), 0, "%s", t);
    const char *est = strstr(t, "phase train: traces of up to ");
    cr_assert_not_null(est, "%s", t);
    double mb = 0;
    char unit[8] = "";
    cr_assert_eq(sscanf(est + strlen("phase train: traces of up to "), "%lf %7s", &mb, unit), 2, "%s", t);
    double bound = mb * (strcmp(unit, "MB") == 0 ? 1e6 : strcmp(unit, "kB") == 0 ? 1e3 : 1);
    int lz4 = bd_compression_available(BD_COMPRESS_LZ4) == BD_OK;
    cr_assert(strstr(est, lz4 ? "written through lz4" : "written uncompressed"), "%s", t);
    free(t);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    /* the step rows' bytes as written, against the estimate; as stored, against them */
    char *py = bd_strfmt("cd / && /usr/bin/python3 -c \"import h5py, os\n"
                         "p = '%s/memory/train.balancer.h5'\n"
                         "g = h5py.File(p, 'r')['train/balancer']\n"
                         "raw = sum(g[d].size * g[d].dtype.itemsize for d in ('sensors', 'actuators', 'rewards', "
                         "'terminated', 'truncated'))\n"
                         "assert %g / 2 < raw <= %g, (raw, %g)\n"
                         "assert g.attrs['compression'] == '%s', g.attrs['compression']\n"
                         "st = sum(g[d].id.get_storage_size() for d in ('sensors', 'actuators', 'rewards', "
                         "'terminated', 'truncated'))\n"
                         "assert %d == 0 or st < raw, (st, raw)\n\"",
                         out, bound, bound * 1.005, bound, lz4 ? "lz4" : "none", lz4);
    cr_assert_eq(sh(&t, "%s", py), 0, "%s", t);
    free(t);
    free(py);
    /* run again twice into the same folder: the first one moved aside, said with its size */
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    cr_assert(strstr(t, "was moved to") && strstr(t, ".prev-") && strstr(t, "B)"), "%s", t);
    free(t);
    sleep(1); /* another second: another .prev- name */
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    cr_assert(strstr(t, "with 1 earlier copy beside it") && strstr(t, "hold"), "%s", t);
    free(t);
    cr_assert_eq(sh(NULL, "rm -rf %s %s.prev-*", out, out), 0);
    free(yml);
    free(out);
}

/* Issue 20, item 20: `bodhi check` of Tag names an agent's 41 sensors by the pattern given
 * (no line of 1,500 characters); `bodhi bench` tells a cache rate from memory's and takes
 * its floor from memory's; a phase ended by its objective says the objective is checked
 * once a rollout, and how many agent-steps that is (summary.json's steps are such a
 * rollout's end). */
Test(check, item20_check_bench_and_objective_say_what_they_measure, .timeout = 240)
{
    char *t = NULL;
    cr_assert_eq(sh(&t, "cd %s && $BODHI check experiments/tag_fsm.yml", BODHI_SOURCE_DIR), 0, "%s", t);
    cr_assert(strstr(t, "41 sensors (tag.tagger.*)"), "%s", t);
    for (char *p = t; *p;) {
        size_t n = strcspn(p, "\n");
        cr_assert(n < 200, "a line of %zu characters: %.200s...", n, p);
        p += n + (p[n] == '\n');
    }
    free(t);

    cr_assert_eq(sh(&t, "$BODHI bench cartpole --steps 20 --json"), 0, "%s", t);
    cJSON *o = cJSON_Parse(t);
    cr_assert_not_null(o, "%s", t);
    double ws = cJSON_GetObjectItem(o, "working_set_bytes")->valuedouble;
    double mws = cJSON_GetObjectItem(o, "memory_working_set_bytes")->valuedouble;
    double llc = cJSON_GetObjectItem(o, "llc_bytes")->valuedouble;
    double mbw = cJSON_GetObjectItem(o, "memory_copy_bytes_per_s")->valuedouble;
    double bps = cJSON_GetObjectItem(o, "bytes_per_step")->valuedouble;
    double fl = cJSON_GetObjectItem(o, "floor_agent_steps_per_s")->valuedouble;
    cr_assert(mws >= 256.0 * (1 << 20) && mws >= ws, "memory's working set %g (llc %g, working set %g)", mws, llc,
              ws);
    cr_assert(fabs(fl - mbw / bps) <= 1e-9 * fl, "floor %g is not memory's copy rate %g / %g B", fl, mbw, bps);
    cJSON_Delete(o);
    free(t);
    cr_assert_eq(sh(&t, "$BODHI bench cartpole --steps 20"), 0, "%s", t);
    cr_assert(strstr(t, "(in cache)") && strstr(t, "from memory"), "%s", t);
    free(t);
    /* Tag steps whole worlds of 25 agents: a count it rounds up is said */
    cr_assert_eq(sh(&t, "$BODHI bench tag --agents 10 --steps 5"), 0, "%s", t);
    cr_assert(strstr(t, "tag: 10 agents asked, 25 stepped (1 world(s) of 25 agents)") && strstr(t, "25 agents x"),
              "%s", t);
    free(t);

    char *out = bd_strfmt("/tmp/bd-cli-%d-objective", (int)getpid());
    char *yml = short_run("objective", 60000, "false", NULL, "");
    cr_assert_eq(sh(NULL, "sed -i 's/conditions: \\[{name: max_steps/conditions: [{name: objective_average, params: "
                          "{window: 5, threshold: 15}}, {name: max_steps/' %s", yml), 0);
    rm_rf(out);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    char *sum = NULL, *path = bd_strfmt("%s/summary.json", out);
    cr_assert_eq(bd_read_file(path, &sum, NULL), BD_OK);
    cr_assert(strstr(sum, "objective reached") && strstr(sum, "checked at the end of each rollout (every 192 "
                                                             "agent-steps)"), "%s", sum);
    free(sum);
    free(path);
    rm_rf(out);
    free(yml);
    free(out);
}

/* Issue 20, item 18: an env plugin builds with the command docs/run-file.md gives, from
 * bodhi's public headers alone (no -I for the source tree: env/plugins/target.c no longer
 * includes common/rng.h); run.yml keeps the plugin's path absolute, so replay --verify
 * from another folder loads it. */
Test(replay, item18_plugin_builds_from_the_docs_and_replays_anywhere, .timeout = 180)
{
    char *doc = NULL, *docpath = bd_strfmt("%s/docs/run-file.md", BODHI_SOURCE_DIR);
    cr_assert_eq(bd_read_file(docpath, &doc, NULL), BD_OK);
    const char *cc = strstr(doc, "\ncc ");
    cr_assert_not_null(cc, "docs/run-file.md gives no compile command");
    char *cmd = bd_strfmt("%.*s", (int)strcspn(cc + 1, "\n"), cc + 1);
    char *dir = bd_strfmt("/tmp/bd-cli-%d-plugin", (int)getpid()), *t = NULL;
    rm_rf(dir);
    cr_assert_eq(bd_mkdirs(dir), BD_OK);
    /* the docs' command, with the example as myenv.c, in a folder holding only bodhi's include/ */
    cr_assert_eq(sh(&t, "cp -r %s/include %s/ && cp %s/env/plugins/target.c %s/myenv.c && cd %s && %s", BODHI_SOURCE_DIR,
                    dir, BODHI_SOURCE_DIR, dir, dir, cmd), 0, "%s: %s", cmd, t);
    free(t);
    char *yml = short_run("relplugin", 600, "", "libmyenv.so:bd_target_env", "");
    cr_assert_eq(sh(&t, "cd %s && $BODHI run %s --out run --quiet", dir, yml), 0, "%s", t);
    free(t);
    char *runyml = bd_strfmt("%s/run/run.yml", dir), *text = NULL;
    cr_assert_eq(bd_read_file(runyml, &text, NULL), BD_OK);
    char *abs = bd_strfmt("%s/libmyenv.so:bd_target_env", dir);
    cr_assert(strstr(text, abs), "run.yml does not name %s:\n%s", abs, text);
    free(text);
    cr_assert_eq(sh(&t, "cd / && $BODHI replay %s/run --verify", dir), 0, "%s", t);
    cr_assert(strstr(t, "re-simulated"), "%s", t);
    free(t);
    rm_rf(dir);
    free(abs);
    free(runyml);
    free(yml);
    free(dir);
    free(cmd);
    free(doc);
    free(docpath);
}

/* Issue 20, item 19: the tools the docs use (h5ls, h5clear) come with `make`: their
 * Debian package is in the Makefile's DEBS. */
Test(check, item19_docs_tools_are_installed_by_make)
{
    char *mk = NULL, *path = bd_strfmt("%s/Makefile", BODHI_SOURCE_DIR);
    cr_assert_eq(bd_read_file(path, &mk, NULL), BD_OK);
    const char *debs = strstr(mk, "\nDEBS = ");
    cr_assert_not_null(debs);
    size_t n = 0; /* DEBS runs to the first line not ending in a backslash */
    while (debs[n + 1] && !(debs[n + 1] == '\n' && debs[n] != '\\'))
        n++;
    char *list = bd_strfmt("%.*s ", (int)n + 1, debs);
    const char *docs[] = {"docs/trace-format.md", "docs/architecture.md", "README.md"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        char *p = bd_strfmt("%s/%s", BODHI_SOURCE_DIR, docs[i]), *text = NULL;
        cr_assert_eq(bd_read_file(p, &text, NULL), BD_OK);
        if (strstr(text, "h5ls") || strstr(text, "h5clear"))
            cr_assert(strstr(list, " hdf5-tools ") || strstr(list, " hdf5-tools\\"), "%s uses h5ls/h5clear, DEBS lacks "
                      "hdf5-tools:%s", docs[i], list);
        free(text);
        free(p);
    }
    free(list);
    free(mk);
    free(path);
}

/* Issue 20, item 6: determinism as docs/architecture.md states it. The same run file, seed
 * and worker count: every dataset of the traces is equal. Another worker count: the
 * worlds start the same (sensors row 0), the trajectories need not stay the same. */
Test(replay, item06_same_workers_same_data, .timeout = 240)
{
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") != 0)
        cr_skip("/usr/bin/python3 has no h5py");
    char *yml = short_run("det", 2400, "", NULL, "  - test:\n      phase_config: {mode: test, worker: 2, episodes: 6}\n");
    char *one = bd_strfmt("/tmp/bd-cli-%d-det1.yml", (int)getpid()), *t = NULL;
    cr_assert_eq(sh(NULL, "sed 's/worker: 2/worker: 1/g' %s > %s", yml, one), 0);
    char *a = bd_strfmt("/tmp/bd-cli-%d-detA", (int)getpid()), *b = bd_strfmt("/tmp/bd-cli-%d-detB", (int)getpid());
    char *c = bd_strfmt("/tmp/bd-cli-%d-detC", (int)getpid());
    cr_assert_eq(sh(&t, "rm -rf %s %s %s && $BODHI run %s --out %s --quiet && $BODHI run %s --out %s --quiet && "
                        "$BODHI run %s --out %s --quiet", a, b, c, yml, a, yml, b, one, c), 0, "%s", t);
    free(t);
    char *py = bd_strfmt(
        "cd / && /usr/bin/python3 -c \"import h5py, numpy as np\n"
        "A, B, C = (h5py.File(d + '/run.h5', 'r') for d in ('%s', '%s', '%s'))\n"
        "assert list(A.attrs['phases']) == ['train', 'test']\n"
        "for ph in A.attrs['phases']:\n"
        "    for name in ('sensors', 'actuators', 'rewards', 'terminated', 'truncated', 'episodes', 'final_sensors'):\n"
        "        x, y = A[ph + '/balancer/' + name][:], B[ph + '/balancer/' + name][:]\n"
        "        assert x.shape == y.shape and x.tobytes() == y.tobytes(), (ph, name, 'same workers differ')\n"
        "    assert A[ph + '/balancer/sensors'].shape[0] > 0\n"
        "x, z = A['train/balancer/sensors'][0], C['train/balancer/sensors'][0]\n"
        "assert x.tobytes() == z.tobytes(), 'the worlds start differently with another worker count'\n"
        "\"", a, b, c);
    int rc = sh(&t, "%s", py);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    free(py);
    rm_rf(a);
    rm_rf(b);
    rm_rf(c);
    unlink(one);
    free(a);
    free(b);
    free(c);
    free(one);
    free(yml);
}

/* Issue 20, item 9: `replay --plot` of a run with two agents draws one panel per agent
 * (the picture grows by a panel per agent), each with its legend beside its frame, in a
 * column the data never reaches. (The axis titles, the window and the phase markers are
 * drawn text: look at the PNG.) */
Test(replay, item09_plot_has_a_panel_per_agent, .timeout = 180)
{
    if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        cr_skip("/usr/bin/python3 has no numpy");
    char *yml = bd_strfmt("/tmp/bd-cli-%d-plot.yml", (int)getpid());
    char *text = bd_strfmt(
        "uid: plot\nseed: 3\nschedule:\n  - train:\n"
        "      environments:\n"
        "        - environment: {name: '%s:bd_target_env', uid: p, params: {worlds: 6, max_steps: 20}}\n"
        "      agents:\n"
        "        - {name: east_west, brain: {name: random, params: {rollout_steps: 25}}, muscle: {name: random},"
        " sensors: [p.*], actuators: [p.move_x]}\n"
        "        - {name: north_south, brain: {name: random, params: {rollout_steps: 25}}, muscle: {name: random},"
        " sensors: [p.*], actuators: [p.move_y]}\n"
        "      simulation: {conditions: [{name: max_steps, params: {steps: 1200}}]}\n"
        "      phase_config: {worker: 2}\n"
        "  - test:\n      phase_config: {mode: test, episodes: 12}\n",
        BODHI_TARGET_PLUGIN);
    cr_assert_eq(bd_write_file(yml, text, strlen(text)), BD_OK);
    free(text);
    char *out = bd_strfmt("/tmp/bd-cli-%d-plot", (int)getpid()), *t = NULL;
    rm_rf(out);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet && $BODHI replay %s --plot %s/two.png && "
                        "$BODHI replay %s/memory/train.east_west.h5 --plot %s/one.png", yml, out, out, out, out, out),
                 0, "%s", t);
    free(t);
    /* heights, and the legend column (right of the last x the frames reach) per panel */
    char *py = bd_strfmt(
        "cd / && /usr/bin/python3 -c \"import struct, zlib, numpy as np\n"
        "def png(p):\n"
        "    b = open(p, 'rb').read(); w, h = struct.unpack('>II', b[16:24]); i = 8; data = b''\n"
        "    px = {6: 4, 2: 3}[b[25]]  # RGBA or RGB, 8 bits\n"
        "    while i < len(b):\n"
        "        n, = struct.unpack('>I', b[i:i + 4]); k = b[i + 4:i + 8]\n"
        "        if k == b'IDAT': data += b[i + 8:i + 8 + n]\n"
        "        i += 12 + n\n"
        "    raw = zlib.decompress(data); s = w * px + 1; rows = []; prev = bytearray(w * px)\n"
        "    for y in range(h):\n"
        "        f = raw[y * s]; line = bytearray(raw[y * s + 1:(y + 1) * s])\n"
        "        for x in range(len(line)):\n"
        "            a = line[x - px] if x >= px else 0; u = prev[x]; c = prev[x - px] if x >= px else 0\n"
        "            if f == 1: line[x] = (line[x] + a) & 255\n"
        "            elif f == 2: line[x] = (line[x] + u) & 255\n"
        "            elif f == 3: line[x] = (line[x] + (a + u) // 2) & 255\n"
        "            elif f == 4:\n"
        "                pa, pb, pc = abs(u - c), abs(a - c), abs(a + u - 2 * c)\n"
        "                line[x] = (line[x] + (a if pa <= pb and pa <= pc else u if pb <= pc else c)) & 255\n"
        "        rows.append(bytes(line)); prev = line\n"
        "    return np.frombuffer(b''.join(rows), np.uint8).reshape(h, w, px)\n"
        "one, two = png('%s/one.png'), png('%s/two.png')\n"
        "h1, h2 = one.shape[0], two.shape[0]\n"
        "assert h2 > h1 and one.shape[1] == two.shape[1], (h1, h2)\n"
        "panel = h2 - h1; top = h1 - panel\n"
        "ink = (two[:, :, :3] < 200).any(axis=2)\n"
        "right = max(np.nonzero(ink[top + 180])[0])  # the first frame's right edge, below its legend\n"
        "for p in range(2):\n"
        "    band = ink[top + p * panel: top + (p + 1) * panel]\n"
        "    assert right < two.shape[1] - 100 and band[:, right + 10:].any(), ('no legend beside panel', p)\n"
        "\"", out, out);
    int rc = sh(&t, "%s", py);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    free(py);
    rm_rf(out);
    free(out);
    free(yml);
}

/* Issue 21: one command table (cli/usage.c) holds each command's function and its help:
 * every command `bodhi --help` lists runs through it, and says its own usage line. */
Test(check, every_listed_command_is_one_table_entry, .timeout = 60)
{
    char *help = NULL;
    cr_assert_eq(sh(&help, "$BODHI --help"), 0);
    int n = 0;
    for (char *line = strtok(help, "\n"); line; line = strtok(NULL, "\n")) {
        char name[32];
        if (sscanf(line, "  bodhi %31[a-z]", name) != 1)
            continue;
        cr_assert_not_null(bd_command(name), "'%s' is listed but runs nothing", name);
        n++;
    }
    cr_assert_geq(n, 8, "bodhi --help lists %d commands", n);
    char *out = NULL;
    cr_assert_eq(sh(&out, "$BODHI status --help"), 0);
    cr_assert(strstr(out, "usage: bodhi status RUN_DIR"), "%s", out);
    cr_assert_null(bd_command("nope"));
    cr_assert_eq(sh(NULL, "$BODHI nope"), 2);
    free(out);
    /* an option given twice is refused (the second replaced the first in silence) */
    cr_assert_eq(sh(&out, "$BODHI replay /nonexistent --csv a.csv --csv b.csv"), 2);
    cr_assert(strstr(out, "option '--csv' given twice"), "%s", out);
    free(out);
    /* '-' is no output file (it wrote a file named '-' where stdout was meant) */
    cr_assert_eq(sh(&out, "cd /tmp && $BODHI replay /nonexistent --csv -"), 2);
    cr_assert(strstr(out, "--csv -: give a file"), "%s", out);
    free(out);
    free(help);
}

/* A trace whose text attribute's stored size is damaged (the global heap object that holds
 * its sensor_ids says 0x01ffc80b bytes): libhdf5 1.10 trusts it and crashes in its own
 * memcpy, h5py as well. bodhi replay says the file is damaged and exits 2, in every mode
 * (its report runs in a child that names each file it opens). Under AddressSanitizer the
 * child's read is reported and it exits 1 instead: not run there. */
Test(replay, a_trace_that_crashes_libhdf5_is_said_damaged, .timeout = 120)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_skip("libhdf5's own overflow on the damaged file is reported by AddressSanitizer");
#endif
    char *out = bd_strfmt("/tmp/bd-cli-%d-gcol", (int)getpid()), *t = NULL;
    char *yml = short_run("gcol", 240, "", NULL, "");
    rm_rf(out);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    cr_assert_eq(sh(&t, "/usr/bin/python3 -c \"import struct\n"
                        "p = '%s/memory/train.balancer.h5'\n"
                        "b = bytearray(open(p, 'rb').read())\n"
                        "i = b.find(b'GCOL')\n"
                        "assert i > 0, 'no global heap'\n"
                        "struct.pack_into('<Q', b, i + 24, 0x01ffc80b)\n"
                        "open(p, 'wb').write(b)\"", out), 0, "%s", t);
    free(t);
    const char *modes[] = {"", "--verify", "--csv /dev/null"};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(sh(&t, "$BODHI replay %s %s", out, modes[k]), 2, "'%s': %s", modes[k], t);
        cr_assert(strstr(t, "/memory/train.balancer.h5' crashed the HDF5 library (Segmentation fault): the file is "
                            "damaged"),
                  "'%s': %s", modes[k], t);
        free(t);
    }
    rm_rf(out);
    free(out);
    free(yml);
}

/* Issue 25: the learner's metrics as TensorBoard scalars, written during the run
 * (RUN_DIR/tb/) and by `replay --tensorboard`, read back by a reader written in
 * tests/tfevents_check.py from the record format (CRCs checked, Event decoded by
 * python3-protobuf) and equal to log.jsonl's; `replay --metrics` has one row per scalar;
 * an output onto the run's own log is refused and the log is left whole. */
Test(replay, item25_metrics_csv_and_tensorboard_equal_the_log, .timeout = 120)
{
    if (system("/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null") != 0)
        cr_skip("/usr/bin/python3 has no google.protobuf (Debian python3-protobuf)");
    char *out = bd_strfmt("/tmp/bd-cli-%d-tb", (int)getpid()), *t = NULL;
    char *yml = short_run("tb", 2400, "", NULL, "  - test:\n      phase_config: {mode: test, worker: 2, episodes: 3}\n");
    rm_rf(out);
    char *exp0 = bd_strfmt("%s-export", out);
    rm_rf(exp0);
    free(exp0);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    const char *check = BODHI_SOURCE_DIR "/tests/tfevents_check.py";
    int rc = sh(&t, "/usr/bin/python3 %s %s %s/tb", check, out, out);
    cr_assert_eq(rc, 0, "the run's own event files: %s", t);
    cr_assert(strstr(t, "ok: 2 file(s)"), "one file per phase and agent: %s", t);
    free(t);
    /* not into the run's own tb/, nor anywhere in the run's folder (the folder itself put
     * train/<agent>/ beside tb/): TensorBoard would show every curve twice */
    const char *inside[] = {"/tb/again", "", "/", "/export", "/memory/.."};
    for (size_t k = 0; k < sizeof inside / sizeof inside[0]; k++) {
        rc = sh(&t, "$BODHI replay %s --tensorboard %s%s", out, out, inside[k]);
        cr_assert_eq(rc, 2, "RUN%s: %s", inside[k], t);
        cr_assert(strstr(t, "is in the run's folder") && strstr(t, "whose tb/ holds its own curves"), "%s", t);
        free(t);
    }
    /* nor into a folder the run's is in (the run copied into a folder of the test's own), nor
     * into the folder of a link to the run: TensorBoard pointed there would find both */
    char *up = bd_strfmt("%s-up", out), *upname = strrchr(up, '/') + 1;
    rm_rf(up);
    cr_assert_eq(sh(&t, "mkdir -p %s/links && cp -r %s %s/run && ln -s ../run %s/links/run", up, out, up, up), 0,
                 "%s", t);
    free(t);
    const char *above[][2] = {
        {"/run", ""}, {"/run", "/"}, {"/run", "/../"}, {"/run", "/run/.."}, {"/links/run", "/links"},
    };
    for (size_t k = 0; k < sizeof above / sizeof above[0]; k++) {
        rc = sh(&t, "$BODHI replay %s%s --tensorboard %s%s%s", up, above[k][0], up, above[k][1],
                k == 2 ? upname : "");
        cr_assert_eq(rc, 2, "%s%s: %s", above[k][1], k == 2 ? upname : "", t);
        cr_assert(strstr(t, "holds the run's folder") && strstr(t, "would show each twice"), "%s", t);
        free(t);
    }
    /* the same named from the working folder: a link's folder, and through leading ".." */
    const char *from[][3] = {{"", "links/run", "links"}, {"/links", "../links/run", "."}};
    for (size_t k = 0; k < sizeof from / sizeof from[0]; k++) {
        rc = sh(&t, "cd %s%s && $BODHI replay %s --tensorboard %s", up, from[k][0], from[k][1], from[k][2]);
        cr_assert_eq(rc, 2, "in %s%s: %s --tensorboard %s: %s", up, from[k][0], from[k][1], from[k][2], t);
        cr_assert(strstr(t, "holds the run's folder"), "%s", t);
        free(t);
    }
    cr_assert_eq(sh(&t, "ls %s; ls %s/links", up, up), 0, "%s", t);
    cr_assert(!strstr(t, "train") && !strstr(t, "test"), "a refused --tensorboard wrote: %s", t);
    free(t);
    rm_rf(up);
    free(up);
    /* a run without its own curves (made before them) may be exported into its parent */
    rc = sh(&t, "d=%s-old; rm -rf $d && mkdir $d && cp -r %s $d/run && rm -r $d/run/tb && "
                "$BODHI replay $d/run --tensorboard $d && test -d $d/train && rm -r $d", out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rc = sh(&t, "$BODHI replay %s --tensorboard %s/not-made/../tb", out, out);
    cr_assert_eq(rc, 2, "%s", t);
    cr_assert(strstr(t, "'..' in the part of the path not made yet"), "%s", t);
    free(t);
    rc = sh(&t, "/usr/bin/python3 %s %s %s/tb", check, out, out);
    cr_assert_eq(rc, 0, "the run's own event files, untouched: %s", t);
    cr_assert(strstr(t, "ok: 2 file(s)"), "%s", t);
    free(t);
    rc = sh(&t, "$BODHI replay %s --metrics %s/m.csv --tensorboard %s-export", out, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rc = sh(&t, "/usr/bin/python3 %s %s %s-export", check, out, out);
    cr_assert_eq(rc, 0, "the exported event files: %s", t);
    long long scalars = 0;
    cr_assert_eq(sscanf(t, "ok: 2 file(s), %lld scalars", &scalars), 1, "%s", t);
    free(t);
    /* a second export into the same folder would make each curve twice: refused (exit 2)
     * before anything is written, the CSV beside it included */
    rc = sh(&t, "rm -f %s-again.csv; $BODHI replay %s --metrics %s-again.csv --tensorboard %s-export; r=$?; "
                "! test -e %s-again.csv || echo 'the CSV was written'; rm -f %s-again.csv; exit $r",
            out, out, out, out, out, out);
    cr_assert_eq(rc, 2, "%s", t);
    cr_assert(strstr(t, "-export/train/balancer holds TensorBoard event files already (events.out.tfevents.")
                  && !strstr(t, "the CSV was written"), "%s", t);
    free(t);
    rc = sh(&t, "/usr/bin/python3 %s %s %s-export", check, out, out);
    cr_assert(rc == 0 && strstr(t, "ok: 2 file(s)"), "the refused export wrote event files: %s", t);
    free(t);
    /* a folder named with pattern characters is that folder: x[12] is refused for its own
     * files, and its sibling x1's files do not count against it */
    rc = sh(&t, "d=%s-pat; rm -rf $d && mkdir -p $d && $BODHI replay %s --tensorboard $d/x1 && "
                "$BODHI replay %s --tensorboard \"$d/x[12]\"",
            out, out, out);
    cr_assert_eq(rc, 0, "x1's files counted against x[12]: %s", t);
    free(t);
    rc = sh(&t, "d=%s-pat; $BODHI replay %s --tensorboard \"$d/x[12]\"; r=$?; rm -rf $d; exit $r", out, out);
    cr_assert_eq(rc, 2, "%s", t);
    cr_assert(strstr(t, "-pat/x[12]/train/balancer holds TensorBoard event files already"), "%s", t);
    free(t);
    /* the CSV: a header, then one row per scalar, with learning_rate and losses among them */
    char *csv = NULL, *path = bd_strfmt("%s/m.csv", out);
    cr_assert_eq(bd_read_file(path, &csv, NULL), BD_OK);
    long long rows = -1;
    for (char *p = csv; (p = strchr(p, '\n')); p++)
        rows++;
    cr_assert_eq(rows, scalars, "%lld CSV rows, %lld scalars", rows, scalars);
    cr_assert(strncmp(csv, "phase,agent,update,steps,wall_time,metric,value\n", 48) == 0, "%.80s", csv);
    cr_assert(strstr(csv, ",learning_rate,") && strstr(csv, ",policy_loss,") && strstr(csv, ",approx_kl,")
                  && strstr(csv, ",entropy,") && strstr(csv, ",mean_length,") && strstr(csv, ",steps_per_s,"),
              "metrics missing from the CSV");
    free(csv);
    free(path);
    /* an output onto the run's own log is refused (exit 2), and the log stays as it was */
    char *log = bd_strfmt("%s/log.jsonl", out), *before = NULL, *after = NULL;
    cr_assert_eq(bd_read_file(log, &before, NULL), BD_OK);
    rc = sh(&t, "$BODHI replay %s --metrics %s", out, log);
    cr_assert_eq(rc, 2, "%s", t);
    cr_assert(strstr(t, "file of the run itself"), "%s", t);
    free(t);
    cr_assert_eq(bd_read_file(log, &after, NULL), BD_OK);
    cr_assert_str_eq(before, after);
    rc = sh(&t, "$BODHI replay %s/nowhere --metrics %s/x.csv", out, out);
    cr_assert_eq(rc, 2, "a folder without log.jsonl: %s", t);
    cr_assert(strstr(t, "log.jsonl"), "%s", t);
    free(t);
    free(before);
    free(after);
    free(log);
    rm_rf(out);
    char *exported = bd_strfmt("%s-export", out);
    rm_rf(exported);
    free(exported);
    free(out);
    free(yml);
}

/* Starts `bodhi serve DIR` on a free loopback port in the background (for 10 minutes at
 * most): its URL into url, its pid returned. */
static int start_serve(const char *dir, char *url, size_t len)
{
    /* timeout: a failed test's server still ends (timeout hands SIGTERM on to it) */
    char *outf = bd_strfmt("%s.serve", dir),
         *cmd = bd_strfmt("timeout 600 %s serve %s --listen 127.0.0.1:0 > %s 2>&1 & echo $! > %s.pid", BODHI_BINARY, dir,
                          outf, outf);
    cr_assert_eq(system(cmd), 0);
    url[0] = '\0';
    for (int i = 0; i < 100 && !url[0]; i++) {
        char *t = NULL;
        if (bd_read_file(outf, &t, NULL) == BD_OK) {
            const char *h = strstr(t, "http://");
            if (h)
                sscanf(h, "%255s", url);
        }
        free(t);
        if (!url[0])
            usleep(50000);
    }
    cr_assert(url[0], "bodhi serve said no address");
    char *pidf = bd_strfmt("%s.pid", outf), *pt = NULL;
    cr_assert_eq(bd_read_file(pidf, &pt, NULL), BD_OK);
    int pid = atoi(pt);
    free(pt);
    free(pidf);
    free(cmd);
    free(outf);
    (void)len;
    return pid;
}

/* Ends a `bodhi serve` of start_serve's (SIGTERM; at most 10 s) and removes its files. */
static void stop_serve(int pid, const char *dir)
{
    kill(pid, SIGTERM);
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
        usleep(100000);
    char *outf = bd_strfmt("%s.serve", dir), *pidf = bd_strfmt("%s.serve.pid", dir);
    unlink(outf);
    unlink(pidf);
    free(outf);
    free(pidf);
}

/* `bodhi run YML --out OUT` in the background (for 10 minutes at most); returns its pid
 * once log.jsonl holds two updates. The run's step cap must be far beyond what the test
 * needs: it is stopped by SIGINT (stop_live_run), never raced to its end. */
static int start_live_run(const char *yml, const char *out)
{
    char *pidf = bd_strfmt("%s.runpid", out), *pt = NULL;
    /* timeout: a failed test's run still ends (timeout hands SIGINT on to it) */
    char *cmd = bd_strfmt("timeout -s INT 600 %s run %s --out %s --quiet > /dev/null 2>&1 & echo $! > %s", BODHI_BINARY, yml,
                          out, pidf);
    cr_assert_eq(system(cmd), 0);
    cr_assert_eq(bd_read_file(pidf, &pt, NULL), BD_OK);
    int pid = atoi(pt);
    char *logp = bd_strfmt("%s/log.jsonl", out);
    int ups = 0;
    for (int i = 0; i < 1200 && ups < 2 && kill(pid, 0) == 0; i++) {
        char *l = NULL;
        ups = 0;
        if (bd_read_file(logp, &l, NULL) == BD_OK)
            for (char *p = l; (p = strstr(p, "\"event\":\"update\"")); p++)
                ups++;
        free(l);
        if (ups < 2)
            usleep(100000);
    }
    cr_assert_geq(ups, 2, "the run wrote no updates within 2 minutes");
    unlink(pidf);
    free(logp);
    free(pt);
    free(pidf);
    free(cmd);
    return pid;
}

/* SIGINT to a run started by start_live_run; waits (at most 60 s) for it to end. */
static void stop_live_run(int pid)
{
    kill(pid, SIGINT);
    for (int i = 0; i < 600 && kill(pid, 0) == 0; i++)
        usleep(100000);
}

/* Issue 25: `bodhi serve` over a finished run and over a live one (tests/serve_check.py):
 * the run and its agent's curve are listed, the updates served equal log.jsonl's and grow
 * while the run trains; hostile HTTP (no HTTP, a POST, paths outside the runs, 1000
 * connections, a slow client) is refused and the server lives on; off-loopback is refused
 * with exit 2 naming the SSH tunnel. */
Test(serve, item25_page_over_finished_and_live_runs, .timeout = 240)
{
    char *out = bd_strfmt("/tmp/bd-cli-%d-serve", (int)getpid()), *live = bd_strfmt("%s-live", out), *t = NULL;
    char *yml = short_run("serve", 2400, "", NULL, "");
    char *longer = short_run("servelive", 50000000, "false", NULL, "");
    rm_rf(out);
    rm_rf(live);
    cr_assert_eq(sh(&t, "$BODHI run %s --out %s --quiet", yml, out), 0, "%s", t);
    free(t);
    char url[256];
    int pid = start_serve(out, url, sizeof url);
    const char *check = BODHI_SOURCE_DIR "/tests/serve_check.py";
    int rc = sh(&t, "/usr/bin/python3 %s %s %s", check, url, out);
    cr_assert_eq(kill(pid, 0), 0, "bodhi serve died: %s", t);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    stop_serve(pid, out);
    /* a live run: served while it trains */
    int run = start_live_run(longer, live);
    pid = start_serve(live, url, sizeof url);
    rc = sh(&t, "/usr/bin/python3 %s %s %s live", check, url, live);
    stop_serve(pid, live);
    cr_assert_eq(kill(run, 0), 0, "the run ended before the check did (its step cap is too low)");
    stop_live_run(run);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rc = sh(&t, "$BODHI serve %s --listen 0.0.0.0:8642", out);
    cr_assert_eq(rc, 2, "%s", t);
    cr_assert(strstr(t, "not a loopback address") && strstr(t, "ssh -L"), "%s", t);
    free(t);
    rm_rf(out);
    rm_rf(live);
    free(out);
    free(live);
    unlink(yml);
    unlink(longer);
    free(yml);
    free(longer);
}

/* A run folder of the page test's own: run.yml (text) and one update per step in steps,
 * each with mean_return and policy_loss. */
static void fake_run(const char *dir, const char *yml, const int *steps, int n)
{
    cr_assert_eq(bd_mkdirs(dir), BD_OK);
    char *p = bd_strfmt("%s/run.yml", dir), *log = bd_strdup("{\"event\":\"phase\",\"phase\":\"train\"}\n");
    cr_assert_eq(bd_write_file(p, yml, strlen(yml)), BD_OK);
    for (int i = 0; i < n; i++) {
        char *l = bd_strfmt("%s{\"event\":\"update\",\"phase\":\"train\",\"agent\":\"balancer\",\"steps\":%d,\"t\":%d,"
                            "\"mean_return\":%d.5,\"policy_loss\":0.25}\n",
                            log, steps[i], i + 1, 10 * i);
        free(log);
        log = l;
    }
    free(p);
    p = bd_strfmt("%s/log.jsonl", dir);
    cr_assert_eq(bd_write_file(p, log, strlen(log)), BD_OK);
    free(p);
    free(log);
}

/* Issue 25: a sweep's seeds are runs whose run.yml are the same but for the top-level
 * `seed:` line: /api/runs gives them one sweep key; another uid, a seed deeper in the file
 * or another value elsewhere makes another key; a run without run.yml has none. */
Test(serve, item25_sweep_key_is_run_yml_but_its_seed, .timeout = 60)
{
    char *dir = bd_strfmt("/tmp/bd-cli-%d-sweep", (int)getpid()), *t = NULL;
    rm_rf(dir);
    const int steps[] = {192};
    const char *ymls[] = {"uid: s\nseed: 1\nx: 1\n", "uid: s\nseed: 22\nx: 1\n", "uid: t\nseed: 1\nx: 1\n",
                          "uid: s\nseed: 1\nx: 1\n  seed: 3\n", "uid: s\nseed: 1\nx: 2\n"};
    for (int i = 0; i < 5; i++) {
        char *d = bd_strfmt("%s/r%d", dir, i);
        fake_run(d, ymls[i], steps, 1);
        free(d);
    }
    char *bare = bd_strfmt("%s/r5", dir), *yml = bd_strfmt("%s/r5/run.yml", dir);
    fake_run(bare, "", steps, 1);
    unlink(yml);
    char url[256];
    int pid = start_serve(dir, url, sizeof url);
    int rc = sh(&t,
                "/usr/bin/python3 -c \"import json,sys,urllib.request as u; "
                "k={r['id']:r['sweep'] for r in json.load(u.urlopen(sys.argv[1]+'api/runs'))}; print(k); "
                "sys.exit(not (k['0/r0']==k['0/r1']!='' and len({k['0/r0'],k['0/r2'],k['0/r3'],k['0/r4']})==4 and k['0/r5']==''))\" %s",
                url);
    stop_serve(pid, dir);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rm_rf(dir);
    free(bare);
    free(yml);
    free(dir);
}

/* Issue 25: the pages as a browser draws them: Debian's headless Chromium, driven over the
 * DevTools protocol (tests/page_check.py), loads `bodhi serve`'s list and a live run's
 * page; the run and its agent's mean_return curve appear and the curve grows while the
 * run trains (it is still training after the check); two runs whose run.yml differ only
 * in seed are one sweep, drawn as their mean at the steps both reached, a third run beside
 * them stays its own line; nothing is fetched from elsewhere. The screenshots stay in
 * build/artefacts/serve-{list,run,sweep}.png. */
Test(serve, item25_page_in_chromium_grows_while_the_run_trains, .timeout = 400)
{
    if (access("/usr/bin/chromium", X_OK) != 0)
        cr_skip("no /usr/bin/chromium (Debian's chromium, in the Makefile's DEBS)");
    char *dir = bd_strfmt("/tmp/bd-cli-%d-page", (int)getpid()), *live = bd_strfmt("%s/live", dir), *t = NULL;
    char *yml = short_run("pagelive", 50000000, "false", NULL, "");
    rm_rf(dir);
    const int a[] = {192, 384, 576}, b[] = {192, 384, 576, 768}, c[] = {192, 384};
    char *sa = bd_strfmt("%s/seed1", dir), *sb = bd_strfmt("%s/seed2", dir), *sc = bd_strfmt("%s/other", dir);
    fake_run(sa, "uid: sweep\nseed: 1\nschedule: []\n", a, 3);
    fake_run(sb, "uid: sweep\nseed: 2\nschedule: []\n", b, 4);
    fake_run(sc, "uid: other\nseed: 1\nschedule: []\n", c, 2);
    int run = start_live_run(yml, live);
    char url[256], *art = BODHI_BUILD_DIR "/artefacts";
    cr_assert_eq(bd_mkdirs(art), BD_OK);
    int pid = start_serve(dir, url, sizeof url);
    /* a change the page lists once the brain has taken it */
    int rc = sh(&t, "$BODHI set %s balancer.learning_rate=0.00042", live);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    /* seed1 and seed2 share 3 steps; other's 2 updates are drawn as they are; overlaid 3+4+2 */
    rc = sh(&t, "timeout 300 /usr/bin/python3 %s/tests/page_check.py %s 0/live 0/seed1 0/seed2 0/other 3 2 9 %s "
                "learning_rate=0.00042", BODHI_SOURCE_DIR, url, art);
    int serving = kill(pid, 0) == 0, training = kill(run, 0) == 0;
    stop_serve(pid, dir);
    stop_live_run(run);
    cr_assert(serving, "bodhi serve died: %s", t);
    cr_assert_eq(rc, 0, "%s", t);
    cr_assert(strstr(t, "ok: the curve grew"), "%s", t);
    cr_assert(training, "the run had ended by the end of the check: its curve grew as it was read, not as it trained");
    free(t);
    for (int i = 0; i < 3; i++) {
        const char *names[] = {"list", "run", "sweep"};
        char *png = bd_strfmt("%s/serve-%s.png", art, names[i]), *data = NULL;
        size_t len = 0;
        cr_assert_eq(bd_read_file(png, &data, &len), BD_OK, "no screenshot %s", png);
        cr_assert(len > 1000 && memcmp(data, "\x89PNG", 4) == 0, "%s is no PNG", png);
        free(data);
        free(png);
    }
    rm_rf(dir);
    free(sa);
    free(sb);
    free(sc);
    unlink(yml);
    free(yml);
    free(live);
    free(dir);
}

/* ---- ranks: one conductor per rank, the learners a c10d Gloo group (brain/ranks.h) ----- */

/* Both ranks of the run in out (rank 1's in out.r1) carry "rank" and "param_digest" in
 * every round's report, the digests agree for every update, the parameters change between
 * updates, and each rank's trace is where the docs say. */
/* The run folders of a ranks test, named after tag and emptied: rank 0's (out), rank 1's
 * beside it (out.r1) and the ranks' store folder (out.ranks). */
static void ranks_dirs(const char *tag, char **out, char **r1, char **rd)
{
    *out = bd_strfmt("/tmp/bd-cli-%d-%s", (int)getpid(), tag);
    *r1 = bd_strfmt("%s.r1", *out);
    *rd = bd_strfmt("%s.ranks", *out);
    rm_rf(*out);
    rm_rf(*r1);
    rm_rf(*rd);
}

/* A ranks test's run file: short run `tag` of `steps` agent-steps with `workers` muscles a
 * rank and a heartbeat timeout of 300 s (on a loaded 2-core machine a brain of each rank
 * takes up to a minute to start), then the sed script `more` ("" for none). */
static char *ranks_file(const char *tag, int steps, int workers, const char *more)
{
    char *yml = short_run(tag, steps, "", NULL, "");
    cr_assert_eq(sh(NULL, "sed -i 's/worker: 2}/worker: %d, heartbeat_timeout: 300}/' %s", workers, yml), 0);
    if (*more)
        cr_assert_eq(sh(NULL, "sed -i \"%s\" %s", more, yml), 0);
    return yml;
}

/* Two ranks by torchrun's variables on loopback (a shell's prefix; its %d: the port). */
#define RANKS_TORCHRUN "export MASTER_ADDR=127.0.0.1 MASTER_PORT=%d WORLD_SIZE=2 BODHI_GROUP_TIMEOUT=240; "

/* Two ranks by torchrun's variables on loopback, both of run file yml given --out out:
 * both exit 0. */
static void two_ranks_run(const char *yml, const char *out)
{
    char *t = NULL;
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=1 $BODHI run %s --out %s --quiet & p=$!; RANK=0 $BODHI run %s --out %s --quiet; r0=$?; "
                "wait $p; r1=$?; echo \"rc=$r0,$r1\"; test $r0 = 0 && test $r1 = 0",
                bd_test_port(), yml, out, yml, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
}

/* A passing ranks test leaves nothing behind: its folders, and any a later run into the
 * same --out moved aside (DIR.prev-T, DIR.r1.prev-T); its run file goes with its process. */
static void ranks_done(char *out, char *r1, char *rd, char *yml)
{
    rm_rf(out);
    rm_rf(r1);
    rm_rf(rd);
    cr_assert_eq(sh(NULL, "rm -rf %s.prev-* %s.prev-*", out, r1), 0);
    free(out);
    free(r1);
    free(rd);
    free(yml);
}

static void ranks_agree(const char *out)
{
    char *t = NULL;
    int rc = sh(&t,
            "/usr/bin/python3 - %s <<'PY'\n"
            "import json, sys, h5py\n"
            "out = sys.argv[1]\n"
            "def digests(d, rank):\n"
            "    got = {}\n"
            "    for line in open(d + '/log.jsonl'):\n"
            "        e = json.loads(line)\n"
            "        if 'param_digest' in e:\n"
            "            assert e['rank'] == rank, e\n"
            "            got[e['update']] = e['param_digest']\n"
            "    return got\n"
            "a, b = digests(out, 0), digests(out + '.r1', 1)\n"
            "assert len(a) >= 4 and a == b, (a, b)\n"
            "assert len(set(a.values())) >= 3, 'the parameters change between updates'\n"
            "h5py.File(out + '/memory/train.balancer.r0.h5', 'r').close()\n"
            "h5py.File(out + '.r1/memory/train.balancer.r1.h5', 'r').close()\n"
            "with h5py.File(out + '/run.h5', 'r') as f:\n"
            "    f['train/balancer']\n"
            "    r1 = f['train/balancer.r1']['rewards'][()]\n"
            "with h5py.File(out + '.r1/memory/train.balancer.r1.h5', 'r') as g:\n"
            "    assert (g['train/balancer/rewards'][()] == r1).all(), 'rank 1 linked from rank 0'\n"
            "s = json.load(open(out + '.r1/summary.json'))\n"
            "assert s['rank'] == 1 and s['world_size'] == 2, s\n"
            "def spins(d):\n"
            "    return [e['group_spin'] for e in map(json.loads, open(d + '/log.jsonl'))\n"
            "            if 'group_spin' in e and e.get('phase') == 'train']\n"
            "s0, s1 = spins(out), spins(out + '.r1')\n"
            "assert len(s0) == 1 and isinstance(s0[0], bool) and s0 == s1, ('group_spin once a rank', s0, s1)\n"
            "print('updates', len(a))\n"
            "PY\n",
            out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    /* bodhi replay of rank 0's folder tabulates both ranks' traces */
    rc = sh(&t, "$BODHI replay %s", out);
    cr_assert_eq(rc, 0, "%s", t);
    cr_assert(strstr(t, "train/balancer ") && strstr(t, "train/balancer.r1 "), "%s", t);
    free(t);
}

/* Two ranks by torchrun's variables on loopback, both given the same --out, of the short
 * run tag (steps agent-steps) changed by the sed script more: both exit 0, and they agree
 * (ranks_agree). */
static void two_ranks_agree(const char *tag, int steps, const char *more, int nested)
{
    char *out, *r1, *rd, *parent = NULL;
    ranks_dirs(tag, &out, &r1, &rd);
    if (nested) { /* --out in folders not made yet, as a run of one rank may be given */
        parent = bd_strfmt("%s-new", out);
        rm_rf(parent);
        free(out);
        free(r1);
        free(rd);
        out = bd_strfmt("%s/a/%s", parent, tag);
        r1 = bd_strfmt("%s.r1", out);
        rd = bd_strfmt("%s.ranks", out);
    }
    char *yml = ranks_file(tag, steps, 2, more);
    if (*more) /* the sed script changed the file */
        cr_assert_eq(sh(NULL, "! grep -q 'params: {rollout_steps: 32}}' %s", yml), 0, "%s: the change did not take",
                     more);
    two_ranks_run(yml, out);
    ranks_agree(out);
    ranks_done(out, r1, rd, yml);
    if (parent)
        rm_rf(parent);
    free(parent);
}

/* A group timeout that is no number of seconds is `bodhi run`'s usage error (exit 2),
 * naming the variable, before anything is written: not a brain's failure mid-run. */
Test(ranks, a_bad_group_timeout_is_refused_before_anything_is_written)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rbadt", &out, &r1, &rd);
    char *yml = ranks_file("rbadt", 6 * 32, 2, "");
    for (int k = 0; k < 2; k++) {
        int rc = sh(&t, "MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 WORLD_SIZE=2 RANK=0 BODHI_GROUP_TIMEOUT=%s "
                        "$BODHI run %s --out %s --quiet; echo \"rc=$?\"; ls -d %s %s 2>/dev/null; true",
                    k ? "0" : "ten", yml, out, out, rd);
        cr_assert_eq(rc, 0, "%s", t);
        /* the words the brain shares, without its "brain: " */
        cr_assert(strstr(t, "bodhi run: BODHI_GROUP_TIMEOUT must be an integer from 1 to 86400") && strstr(t, "rc=2"),
                  "%s", t);
        cr_assert(!strstr(t, out), "a refused run wrote its folders: %s", t);
        free(t);
    }
    ranks_done(out, r1, rd, yml);
}

/* With norm_obs: the first weights every rank sends carry its normaliser, and rank 0's,
 * broadcast at the group's start, are taken in beside rank 1's own (every ranks run of a
 * run file with norm_obs failed there once); the digests cover the normaliser too. */
Test(ranks, two_ranks_by_torchrun_variables_agree, .timeout = 300)
{
    two_ranks_agree("ranks", 6 * 32 * 5,
                    "s/brain: {name: ppo, params: {rollout_steps: 32}}/brain: {name: ppo, params: "
                    "{rollout_steps: 32, norm_obs: true}}/",
                    0);
}

/* A torch shim that was found and did not load (a GPU machine's rebuilt one that misses a
 * symbol) is named as the reason the brain could not learn, not passed over for the build
 * tree's shim beside the binary, which would learn on the CPU without a word. */
Test(run, a_torch_shim_that_does_not_load_is_named_not_replaced, .timeout = 120)
{
    char *out = bd_strfmt("/tmp/bd-cli-%d-badshim", (int)getpid()), *t = NULL;
    char *yml = short_run("badshim", 2400, "", NULL, "");
    rm_rf(out);
    int rc = sh(&t, "LD_LIBRARY_PATH=%s $BODHI run %s --out %s --quiet", BODHI_BROKEN_SHIM_DIR, yml, out);
    cr_assert_neq(rc, 0, "%s", t);
    char *want = bd_strfmt("%s/libbodhi_torch.so: undefined symbol: bdt_nothing_defines_this", BODHI_BROKEN_SHIM_DIR);
    cr_assert(strstr(t, want), "the output names the shim and its missing symbol:\n%s", t);
    free(want);
    free(t);
    rm_rf(out);
    free(out);
    free(yml);
}

/* A shim built from other sources (a GPU machine's rebuilt one left on LD_LIBRARY_PATH after
 * an update, whose structs may be laid out otherwise) is refused by its interface hash
 * (torch/abi.cmake), naming it, before anything of it is called: here the build's own
 * shim with one letter of its hash changed. */
Test(run, a_torch_shim_of_other_sources_is_refused, .timeout = 120)
{
    char *dir = bd_strfmt("/tmp/bd-cli-%d-othershim", (int)getpid());
    char *out = bd_strfmt("%s/run", dir), *so = bd_strfmt("%s/libbodhi_torch.so", dir), *t = NULL;
    rm_rf(dir);
    cr_assert_eq(mkdir(dir, 0700), 0);
    size_t n = 0;
    char *bytes = NULL;
    cr_assert_eq(bd_read_file(BODHI_SHIM, &bytes, &n), BD_OK, "%s", bd_lasterr());
    char *at = memmem(bytes, n, BDT_ABI_HASH, strlen(BDT_ABI_HASH));
    cr_assert_not_null(at, "the shim holds its interface hash");
    const char other = BDT_ABI_HASH[0] == '0' ? '1' : '0';
    at[0] = other;
    cr_assert_eq(bd_write_file(so, bytes, n), BD_OK, "%s", bd_lasterr());
    free(bytes);
    char *yml = short_run("othershim", 2400, "", NULL, "");
    int rc = sh(&t, "LD_LIBRARY_PATH=%s $BODHI run %s --out %s --quiet", dir, yml, out);
    cr_assert_neq(rc, 0, "%s", t);
    char *want = bd_strfmt("%s was built from other sources than this bodhi (its interface %c%.11s, this bodhi's "
                           "%.12s)", so, other, BDT_ABI_HASH + 1, BDT_ABI_HASH);
    cr_assert(strstr(t, want), "the output names the shim and both interfaces (%s):\n%s", want, t);
    free(want);
    free(t);
    rm_rf(dir);
    free(dir);
    free(out);
    free(so);
    free(yml);
}

/* DQN across two ranks: every gradient step's gradient averaged, the steps agreed, each
 * rank drawing from its own buffer: the Q-networks stay the same on both ranks (the same
 * digests after every update) and change as they learn. Its --out is in folders not made
 * yet, which the ranks make (they failed on the store's folder, `<out>.ranks`). */
Test(ranks, two_dqn_ranks_agree, .timeout = 300)
{
    two_ranks_agree("rdqn", 6 * 32 * 6,
                    "s/brain: {name: ppo, params: {rollout_steps: 32}}/brain: {name: dqn, params: "
                    "{rollout_steps: 32, learning_starts: 64, batch_size: 32}}/; "
                    "s/muscle: {name: ppo}/muscle: {name: dqn}/",
                    1);
}

/* greedy_average across two ranks: both evaluate in the same rounds, with the same weights
 * on the same worlds, so they say the same returns; one run never reaches its threshold
 * (the step cap ends it, after several evaluations), the other stops on its first
 * evaluation, on both ranks in the same round. */
static void greedy_ranks(const char *tag, const char *threshold, int stops)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs(tag, &out, &r1, &rd);
    char *more = bd_strfmt("s/conditions: \\[{name: max_steps, params: {steps: [0-9]*}}\\]/conditions: [{name: "
                           "max_steps, params: {steps: 2304}}, {name: greedy_average, params: {threshold: %s, "
                           "episodes: 4, every: 576}}]/",
                           threshold);
    char *yml = ranks_file(tag, 2304, 2, more);
    free(more);
    cr_assert_eq(sh(NULL, "grep -q greedy_average %s", yml), 0, "the condition was not added");
    two_ranks_run(yml, out);
    int rc = sh(&t,
            "/usr/bin/python3 - %s %d <<'PY'\n"
            "import json, sys\n"
            "out, stops = sys.argv[1], int(sys.argv[2])\n"
            "def evals(d):\n"
            "    ev = [json.loads(l) for l in open(d + '/log.jsonl')]\n"
            "    return [(e['round'], e['update'], e['greedy_return'], e['greedy_steps']) for e in ev\n"
            "            if e.get('event') == 'update' and 'greedy_return' in e]\n"
            "a, b = evals(out), evals(out + '.r1')\n"
            "assert a and a == b, (a, b)\n"
            "assert len(a) == (1 if stops else 4), a\n"
            "p = [json.load(open(d + '/summary.json'))['phases'][0] for d in (out, out + '.r1')]\n"
            "want = 'objective_reached' if stops else 'step_cap'\n"
            "assert p[0]['reason'] == want and p[1]['reason'] == want, p\n"
            "assert ('greedy mean return' in p[0]['ended']) == bool(stops), p[0]['ended']\n"
            "PY\n",
            out, stops);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

Test(ranks, greedy_average_evaluates_alike_on_every_rank, .timeout = 300)
{
    greedy_ranks("rgreedy", "1000000", 0);
}

Test(ranks, greedy_average_stops_every_rank_in_one_round, .timeout = 300)
{
    greedy_ranks("rgreedy0", "0", 1);
}

/* SAC across two ranks: the critics', actor's and temperature's gradients averaged every
 * step, the steps agreed, each rank's own draws: the actors stay the same on both ranks. */
Test(ranks, two_sac_ranks_agree, .timeout = 300)
{
    two_ranks_agree("rsac", 6 * 32 * 6,
                    "s/name: 'cartpole'/name: 'pendulum'/; s/pole.push/pole.torque/; "
                    "s/brain: {name: ppo, params: {rollout_steps: 32}}/brain: {name: sac, params: "
                    "{rollout_steps: 32, learning_starts: 64, batch_size: 32, hidden: 16}}/; "
                    "s/muscle: {name: ppo}/muscle: {name: sac}/",
                    0);
}

/* `bodhi replay --verify` re-simulates each rank's trace from its own global world ids
 * (rank k's from k x worlds): rank 1's folder alone, and from rank 0's folder every rank it
 * links, so a sensor changed in rank 1's trace fails rank 0's check. A trace without its
 * world0 attribute (written before it) takes the rank from summary.json or from the link. */
Test(ranks, replay_verify_re_simulates_every_rank, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rverify", &out, &r1, &rd);
    char *yml = ranks_file("rverify", 6 * 32 * 3, 2, "");
    two_ranks_run(yml, out);
    int rc;
    for (int old = 0; old < 2; old++) {
        rc = sh(&t, "$BODHI replay %s --verify", r1);
        cr_assert_eq(rc, 0, "%s", t);
        cr_assert(strstr(t, "of pole of rank 1 (world ids 6 to 11) from seed and setpoints: every recorded sensor"),
                  "%s", t);
        free(t);
        rc = sh(&t, "$BODHI replay %s --verify", out);
        cr_assert_eq(rc, 0, "%s", t);
        cr_assert(strstr(t, "of pole of rank 0 (world ids 0 to 5) from seed and setpoints: every recorded sensor")
                      && strstr(t, "of pole of rank 1 (world ids 6 to 11) from seed and setpoints: every recorded "
                                   "sensor"),
                  "%s", t);
        free(t);
        if (!old) { /* rank 1's trace as one written before world0 */
            rc = sh(&t, "/usr/bin/python3 -c \"import h5py; f = h5py.File('%s/memory/train.balancer.r1.h5', 'r+'); "
                        "del f['train/balancer'].attrs['world0']; f.close()\"", r1);
            cr_assert_eq(rc, 0, "%s", t);
            free(t);
        }
    }
    /* one recorded sensor of rank 1 changed: rank 0's folder's check finds it */
    rc = sh(&t, "/usr/bin/python3 -c \"import h5py; f = h5py.File('%s/memory/train.balancer.r1.h5', 'r+'); "
                "d = f['train/balancer/sensors']; d[3, 2, 0] = d[3, 2, 0] + 0.5; f.close()\"", r1);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rc = sh(&t, "$BODHI replay %s --verify", out);
    cr_assert_eq(rc, 1, "%s", t);
    cr_assert(strstr(t, "verify train/balancer.r1: world 2 first differs at step 3"), "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* Kills muscle `victim` of rank 1 once rank 1 has reported an update, waits for its
 * restart and for three more updates of rank 1, stops both ranks, and checks that every
 * update both ranks report has the same parameters on both. `workers` muscles per rank;
 * expect_empty: rank 1 must have had a round with no rollout at all. */
static void rank_muscle_killed(const char *tag, int workers, int victim, int expect_empty)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs(tag, &out, &r1, &rd);
    char *yml = ranks_file(tag, 100000000, workers, "s/rollout_steps: 32}/rollout_steps: 32, minibatch_size: 16}/");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=0 $BODHI run %s --out %s --quiet & p0=$!; RANK=1 $BODHI run %s --out %s --quiet & p1=$!; "
                /* the distinct updates rank 1 reported (a round with nothing to learn from repeats one) */
                "ups() { grep param_digest $1/log.jsonl 2>/dev/null | grep -o '\"update\":[0-9]*' | sort -u | wc -l; }; "
                "for i in $(seq 2400); do test $(ups %s.r1) -ge 1 && break; sleep 0.1; done; "
                "pkill -KILL -f -- '[m]uscle --run-dir %s.r1 --phase train --id %d' || echo no muscle %d of rank 1; "
                "for i in $(seq 600); do grep -q '\"event\":\"restarted\"' %s.r1/log.jsonl && break; sleep 0.1; done; "
                "n=$(ups %s.r1); for i in $(seq 600); do test $(ups %s.r1) -ge $((n + 3)) && break; sleep 0.1; done; "
                "echo \"updates of rank 1: $n at the restart, $(ups %s.r1) then\"; "
                "kill -INT $p0 $p1; wait $p0; wait $p1; test $(ups %s.r1) -ge $((n + 3))",
                bd_test_port(), yml, out, yml, out, out, out, victim, victim, out, out, out,
                out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rc = sh(&t,
            "/usr/bin/python3 - %s <<'PY'\n"
            "import json, sys\n"
            "out = sys.argv[1]\n"
            "def digests(d):\n"
            "    got = {}\n"
            "    for line in open(d + '/log.jsonl'):\n"
            "        e = json.loads(line)\n"
            "        if 'param_digest' in e:\n"
            "            got[e['update']] = e['param_digest']\n"
            "    return got\n"
            "a, b = digests(out), digests(out + '.r1')\n"
            "both = sorted(set(a) & set(b))\n"
            "assert len(both) >= 4, (a, b)\n"
            "assert all(a[u] == b[u] for u in both), [(u, a[u], b[u]) for u in both if a[u] != b[u]]\n"
            "empty = sum(1 for line in open(out + '.r1/log.jsonl')\n"
            "            if '\"event\":\"update\"' in line and json.loads(line).get('muscles') == 0)\n"
            "assert empty or not %d, 'rank 1 had no round without a rollout'\n"
            "print('updates in step', len(both), 'rounds of rank 1 without a rollout', empty)\n"
            "PY\n",
            out, expect_empty);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* A muscle of rank 1 killed mid-run: rank 1's next rounds hold fewer samples than rank
 * 0's, so each rank alone would cut its batch into a different number of minibatches
 * (12 against 6 here) and the gradient all-reduces would not pair up (a hang until the
 * group's timeout). The ranks agree on the count: the updates go on, and every update's
 * parameters are the same on both ranks. */
Test(ranks, a_rank_with_fewer_samples_keeps_in_step, .timeout = 300)
{
    rank_muscle_killed("rfew", 2, 1, 0);
}

/* Rank 1's only muscle killed mid-run: a round of rank 1 may bring no rollout at all. Its
 * learner still takes part in the round's collectives (it has nothing, so no rank learns
 * from that round); a rank that skipped them would put every later collective of the
 * group out of step (a stop agreement paired with a minibatch agreement). */
Test(ranks, a_rank_with_no_rollout_keeps_in_step, .timeout = 300)
{
    rank_muscle_killed("rnone", 1, 0, 1);
}

/* Ctrl-C for ranks: `both` sends SIGINT to both conductors one second into the first update
 * (rollout_steps of 6 worlds in minibatches of 16), else to rank 0's alone. Both ranks
 * must end within 180 s (short of BODHI_GROUP_TIMEOUT's 240, where a rank left waiting in
 * a collective would fail) with the same exit code, each interrupted or stopped with its
 * final checkpoint and no failure, and their last digests must agree. `grace`: the
 * brains must have needed the conductor's grace for ranks (its message on stderr). */
static void ranks_ctrl_c(const char *tag, int rollout, int both, int grace)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs(tag, &out, &r1, &rd);
    char more[96];
    snprintf(more, sizeof more, "s/rollout_steps: 32}/rollout_steps: %d, minibatch_size: 16}/", rollout);
    char *yml = ranks_file(tag, 100000000, 2, more);
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=0 $BODHI run %s --out %s & p0=$!; RANK=1 $BODHI run %s --out %s & p1=$!; "
                /* round 0's report comes before the first update: then both ranks learn */
                "for i in $(seq 1200); do grep -q '\"round\":0' %s.r1/log.jsonl 2>/dev/null && "
                "grep -q '\"round\":0' %s/log.jsonl 2>/dev/null && break; sleep 0.1; done; sleep 1; "
                "t0=$(date +%%s); kill -INT $p0 %s; wait $p0; s0=$?; wait $p1; s1=$?; t1=$(date +%%s); "
                "echo \"exit $s0 $s1 after $((t1 - t0)) s\"; "
                "test $((t1 - t0)) -lt 180 && test $s0 = $s1",
                bd_test_port(), yml, out, yml, out, out, out, both ? "$p1" : "");
    cr_assert_eq(rc, 0, "%s", t);
    if (grace)
        cr_assert(strstr(t, "the brains finish the update they are in"), "the update ended within 4 s: %s", t);
    free(t);
    rc = sh(&t,
            "/usr/bin/python3 - %s <<'PY'\n"
            "import json, os, sys\n"
            "out = sys.argv[1]\n"
            "status = set()\n"
            "for d in (out, out + '.r1'):\n"
            "    s = json.load(open(d + '/summary.json'))\n"
            "    assert s['status'] in ('interrupted', 'done'), (d, s['status'])\n"
            "    status.add(s['status'])\n"
            "    assert os.path.exists(d + '/checkpoints/train/balancer.pt'), d + ': no checkpoint'\n"
            "    res = [json.loads(l) for l in open(d + '/log.jsonl') if '\"event\":\"result\"' in l]\n"
            "    assert res and all(r['status'] in ('interrupted', 'done') and r.get('checkpoint') for r in res), (d, res)\n"
            "    assert all(r['updates'] >= 1 for r in res), (d, 'the update in progress was not finished', res)\n"
            "def last(d):\n"
            "    got = [json.loads(l) for l in open(d + '/log.jsonl') if 'param_digest' in l]\n"
            "    return got[-1]['update'], got[-1]['param_digest']\n"
            "assert len(status) == 1, ('the ranks ended differently', status)\n"
            "assert last(out) == last(out + '.r1'), (last(out), last(out + '.r1'))\n"
            "print('both ended at update', last(out)[0])\n"
            "PY\n",
            out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* Ctrl-C reaches both ranks inside a long update (6000 minibatches, each with its gradient
 * all-reduce, about 5 s alone here and up to 72 s beside the rest of the suite, where
 * 15000 took 116 s; 2400 under AddressSanitizer, where 6000 took 65 s). A rank that cut
 * its update short at its own minibatch left the other waiting in an all-reduce that never
 * paired (it failed, without its checkpoint), and the conductor's 4 s grace killed brains
 * mid-update. */
Test(ranks, ctrl_c_inside_an_update_ends_both_ranks_cleanly, .timeout = 300)
{
    ranks_ctrl_c("rint", BD_TEST_SLOW > 1 ? 1600 : 4000, 1, 1);
}

/* Ctrl-C reaches rank 0 alone, between short rounds: its conductor says stop, rank 1's says
 * go on. The ranks agree on the stop after their conductors' words, so neither learns
 * alone (rank 1 used to wait in a collective rank 0 never entered, and fail), and rank 1
 * ends as interrupted too, with the same exit code (it used to end "done", exit 0, and go
 * on to any later phase alone). */
Test(ranks, a_stop_on_one_rank_stops_every_rank, .timeout = 300)
{
    ranks_ctrl_c("rone", 32, 0, 0);
}

/* The same by Open MPI: `mpirun -n 2` starts both ranks, which find each other through
 * OMPI_COMM_WORLD_RANK/SIZE and the FileStore beside --out. */
Test(ranks, two_ranks_by_mpirun_agree, .timeout = 300)
{
    if (system("command -v mpirun > /dev/null 2>&1") != 0)
        cr_skip_test("mpirun is not installed (openmpi-bin, in the Makefile's packages)");
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("mpi", &out, &r1, &rd);
    char *yml = ranks_file("mpi", 6 * 32 * 5, 2, "");
    /* plm isolated: both ranks on this machine, started without an ssh client (a bare
     * Debian has none, and Open MPI's default launcher refuses to start then) */
    int rc = sh(&t, "BODHI_GROUP_TIMEOUT=240 timeout 280 mpirun -n 2 --allow-run-as-root --oversubscribe "
                    "--mca plm isolated -x BODHI_GROUP_TIMEOUT $BODHI run %s --out %s --quiet",
                yml, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_agree(out);
    ranks_done(out, r1, rd, yml);
}

/* The same by Slurm: `srun -n 2` starts both ranks, which find each other through
 * SLURM_PROCID/SLURM_NTASKS, the first host of SLURM_JOB_NODELIST and the FileStore
 * beside --out. Needs a Slurm that answers (BODHI_TEST_SLURM=1 asks for it: Debian's
 * slurm-wlm and munge on one host do); skipped otherwise. */
Test(ranks, two_ranks_by_srun_agree, .timeout = 300)
{
    const char *want = getenv("BODHI_TEST_SLURM");
    if (!want || strcmp(want, "1") != 0 || system("sinfo > /dev/null 2>&1") != 0)
        cr_skip_test("no Slurm asked for (BODHI_TEST_SLURM=1) or none answers (sinfo)");
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("srun", &out, &r1, &rd);
    char *yml = ranks_file("srun", 6 * 32 * 5, 2, "");
    int rc = sh(&t, "BODHI_GROUP_TIMEOUT=240 timeout 280 srun -n 2 $BODHI run %s --out %s --quiet", yml, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_agree(out);
    ranks_done(out, r1, rd, yml);
}

/* kill -9 of rank 1's brain before its group formed (one muscle of rank 1 stopped; its
 * brain may have begun its join with the other's rollout, which on a loaded machine it
 * did, and its conductor then said nothing: rank 0 waited out its timeout): rank 1's
 * conductor tells the others it left, so rank 0's join fails at once, not at its timeout
 * (240 s here), naming rank 1 and why; both ranks exit non-zero and no process of the run
 * is left (what a failed launch leaves in the store folder, the next good one removes:
 * a_launch_after_a_lone_rank_gave_up_runs). The 150 s bound holds rank 0's start-up on a
 * loaded machine too (its brain's first round comes before its join). On a loaded machine
 * the group can also have formed by the kill (rank 1's brain joins with its other muscle's
 * rollout, then waits for the stopped one's): rank 0 then fails at once in its first
 * all-reduce (of gradients or statistics), naming rank 1 as gone, which passes too (seen
 * twice under ctest -j2). */
Test(ranks, a_rank_killed_before_its_group_formed_fails_the_others_at_once, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rearly", &out, &r1, &rd);
    char *yml = ranks_file("rearly", 100000000, 2, "");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=1 $BODHI run %s --out %s --quiet 2>/dev/null & p1=$!; "
                "for i in $(seq 3000); do m=$(pgrep -f -- '[m]uscle [-]-run-dir %s.r1 ' | head -1); "
                "test -n \"$m\" && break; sleep 0.01; done; test -n \"$m\" || { echo no muscle of rank 1; exit 7; }; "
                "kill -STOP $m; trap 'kill -CONT $m 2>/dev/null; kill $p0 $p1 2>/dev/null' EXIT; "
                "RANK=0 $BODHI run %s --out %s --quiet 2>%s.err0 & p0=$!; "
                "for i in $(seq 3000); do b=$(pgrep -f -- '[b]rain [-]-run-dir %s.r1 ' | head -1); test -n \"$b\" && break; "
                "sleep 0.01; done; test -n \"$b\" || { echo no brain of rank 1; exit 7; }; "
                "for i in $(seq 3000); do grep -q '\"role\":\"brain\"' %s/log.jsonl 2>/dev/null && break; sleep 0.01; done; "
                "sleep 1; kill -9 $b; s=$(date +%%s); wait $p0; r0=$?; wait $p1; r1=$?; e=$(( $(date +%%s) - s )); "
                "kill -CONT $m 2>/dev/null; echo \"rc=$r0,$r1 after ${e}s\"; "
                "for i in $(seq 100); do left=$(pgrep -f -- '[-]-run-dir %s' | wc -l); test $left = 0 && break; "
                "sleep 0.1; done; echo \"left=$left\"; ls %s; cat %s.err0; "
                "test $r0 != 0 && test $r1 != 0 && test $e -le 150 && test $left = 0 "
                "&& grep -Eq 'rank 1 left before the group formed: its brain balancer was killed by signal 9|"
                "all-reduce of the learners. [a-z]+: rank 1.s learner is gone' %s.err0",
                bd_test_port(), yml, out, out, yml, out, out, out, out, out, rd, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    char *err0 = bd_strfmt("%s.err0", out);
    unlink(err0);
    free(err0);
    ranks_done(out, r1, rd, yml);
}

/* A rank whose run fails before it starts its brains (here its run directory, DIR.r1, is
 * a file: bad input, exit 2) has no brain to say it left: its conductor says so, and rank
 * 0's join fails at once naming it and why, not at the end of its timeout (240 s here; it
 * took all of it before, with "found no rank 1"). */
Test(ranks, a_rank_that_fails_before_its_brains_start_fails_the_others_at_once, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rfirst", &out, &r1, &rd);
    char *yml = ranks_file("rfirst", 100000000, 1, "");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "touch %s; s=$(date +%%s); RANK=0 $BODHI run %s --out %s --quiet 2>%s.err0 & p=$!; sleep 0.5; "
                "RANK=1 $BODHI run %s --out %s --quiet 2>&1; r1=$?; wait $p; r0=$?; e=$(( $(date +%%s) - s )); "
                "echo \"rc=$r0,$r1 after ${e}s\"; cat %s.err0; left=$(pgrep -f -- '[-]-run-dir %s' | wc -l); "
                "test $r0 = 1 && test $r1 = 2 && test $e -le 60 && test $left = 0 "
                "&& grep -q \"rank 1 left before the group formed: its bodhi run failed before its brains started: "
                "--out: .* is not a folder\" %s.err0",
                bd_test_port(), r1, yml, out, out, yml, out, out, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    sh(NULL, "rm -f %s.err0", out);
    ranks_done(out, r1, rd, yml);
}

/* Ranks started with different run files (here another --seed) fail at the join, each
 * naming the difference, with nothing left running: before, they formed one group (a seed)
 * or one rank's brain aborted in Gloo's check of a message's size (another network). */
Test(ranks, ranks_started_differently_fail_naming_the_difference, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rdiff", &out, &r1, &rd);
    char *yml = ranks_file("rdiff", 100000000, 1, "");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=1 $BODHI run %s --seed 9 --out %s --quiet 2>%s.err1 & p=$!; "
                "RANK=0 $BODHI run %s --out %s --quiet 2>%s.err0; r0=$?; wait $p; r1=$?; echo \"rc=$r0,$r1\"; "
                "cat %s.err0 %s.err1; left=$(pgrep -f -- '[-]-run-dir %s' | wc -l); echo \"left=$left\"; "
                "test $r0 = 1 && test $r1 = 1 && test $left = 0 "
                "&& grep -q \"rank 1's effective run file (run.yml, SHA-256 .*) is not rank 0's\" %s.err0 "
                "&& grep -q \"rank 0's effective run file (run.yml, SHA-256 .*) is not rank 1's\" %s.err1",
                bd_test_port(), yml, out, out, yml, out, out, out, out, out, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    sh(NULL, "rm -f %s.err0 %s.err1", out, out);
    ranks_done(out, r1, rd, yml);
}

/* A rank that gave up waiting for the others (alone, at its timeout) leaves nothing the
 * next launch into the same --out and port trips on: that launch runs. Before, the store
 * it left held its address, which the next launch's rank 1 read and connected to
 * ("Connection refused"), and two relaunches failed. A launch whose group formed leaves no
 * store (nor its folder). */
Test(ranks, a_launch_after_a_lone_rank_gave_up_runs, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rlone", &out, &r1, &rd);
    char *yml = ranks_file("rlone", 4000, 1, "");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "BODHI_GROUP_TIMEOUT=3 RANK=0 $BODHI run %s --out %s --quiet 2>&1; r=$?; echo \"alone: $r\"; "
                "test $r = 1 || exit 5; ls %s | grep -q store || exit 6; "
                "RANK=1 $BODHI run %s --out %s --quiet & p=$!; RANK=0 $BODHI run %s --out %s --quiet; r0=$?; "
                "wait $p; r1=$?; echo \"rc=$r0,$r1\"; ls -d %s 2>&1; test $r0 = 0 && test $r1 = 0 && ! test -e %s",
                bd_test_port(), yml, out, rd, yml, out, yml, out, rd, rd);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* A Ctrl-C of a rank still waiting for the others to join stops it at once (exit 130), not
 * at the end of the join's timeout (240 s here; it took the whole timeout before): rank 0
 * alone, and rank 1 alone (which waited inside c10d's store for a file rank 0 had not made
 * yet, deaf to the stop, after the first fix). */
Test(ranks, ctrl_c_of_a_rank_waiting_for_the_others_stops_it_at_once, .timeout = 300)
{
    for (int rank = 0; rank < 2; rank++) {
        char *out, *r1, *rd, *t = NULL;
        ranks_dirs("rwait", &out, &r1, &rd);
        char *yml = ranks_file("rwait", 100000000, 1, "");
        const char *dir = rank ? r1 : out;
        int rc = sh(&t,
                    RANKS_TORCHRUN
                    "RANK=%d $BODHI run %s --out %s --quiet & p=$!; "
                    "for i in $(seq 3000); do grep -q '\"group_join\"' %s/log.jsonl 2>/dev/null && break; "
                    "sleep 0.01; done; "
                    "sleep 1; s=$(date +%%s); kill -INT $p; wait $p; r=$?; e=$(( $(date +%%s) - s )); "
                    "echo \"rc=$r after ${e}s\"; grep -o '\"status\": *\"[a-z]*\"' %s/summary.json; "
                    "test $r = 130 && test $e -le 30",
                    bd_test_port(), rank, yml, out, dir, dir);
        cr_assert_eq(rc, 0, "rank %d: %s", rank, t);
        free(t);
        ranks_done(out, r1, rd, yml);
    }
}

/* A second run into the same --out moves the first one's folders aside (DIR.prev-T and
 * DIR.r1.prev-T'), but the first's run.h5 still links ../DIR.r1: the second run's rank 1.
 * Replay of the first says that trace is not its own (their group ids differ) and reads
 * none of it, in its table or its re-simulation; --verify fails; replay of the second shows
 * both of its ranks. Before, the first run's table showed the second run's rank 1, and
 * --verify passed. Both runs have one seed: the same data, still not the first's trace. */
Test(ranks, replay_of_an_earlier_run_reads_no_later_runs_rank, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rlater", &out, &r1, &rd);
    char *yml = ranks_file("rlater", 4000, 1, "");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "for k in 1 2; do RANK=1 $BODHI run %s --out %s --quiet 2>/dev/null & p=$!; "
                "RANK=0 $BODHI run %s --out %s --quiet 2>/dev/null || exit 5; wait $p || exit 6; done; "
                "prev=$(ls -d %s.prev-* | head -1); test -n \"$prev\" || exit 7; "
                "$BODHI replay $prev > %s.replay 2>&1; r=$?; cat %s.replay; test $r = 0 || exit 8; "
                "grep -q \"train/balancer.r1: not this run's: \" %s.replay || exit 9; "
                "grep -q '^train/balancer\\.r1 ' %s.replay && exit 10; "
                "$BODHI replay $prev --verify > %s.replay 2>&1; r=$?; cat %s.replay; test $r = 1 || exit 11; "
                "grep -q 'of rank 1' %s.replay && exit 12; grep -q \"are another launch's\" %s.replay || exit 13; "
                "$BODHI replay %s --verify > %s.replay 2>&1 || exit 14; grep -q '^train/balancer\\.r1 ' %s.replay "
                "|| exit 15; exit 0",
                bd_test_port(), yml, out, yml, out, out, out, out, out, out, out, out, out,
                out, out, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    sh(NULL, "rm -rf %s.prev-* %s.r1.prev-* %s.replay", out, out, out);
    ranks_done(out, r1, rd, yml);
}

/* An agent of rank 0 whose own name ends like a rank's trace ("balancer.r1") is rank 0's,
 * not rank 1's copy of "balancer": replay reads it and --verify re-simulates it (the check
 * of another launch's rank trace took it for one, their group ids differing, and dropped
 * it, failing --verify). */
Test(ranks, an_agent_named_like_a_rank_trace_is_rank_0s_own, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rname", &out, &r1, &rd);
    char *yml = bd_strfmt("/tmp/bd-cli-%d-rname.yml", (int)getpid());
    const char *agent = "        - name: %s\n"
                        "          brain: {name: ppo, params: {rollout_steps: 32}}\n"
                        "          muscle: {name: ppo}\n"
                        "          sensors: [%s.*]\n"
                        "          actuators: [%s.push]\n";
    char *a1 = bd_strfmt(agent, "balancer", "pole", "pole"), *a2 = bd_strfmt(agent, "balancer.r1", "pole2", "pole2");
    char *text = bd_strfmt("uid: rname\nseed: 5\nschedule:\n  - train:\n      environments:\n"
                           "        - environment: {name: cartpole, uid: pole, params: {worlds: 6}}\n"
                           "        - environment: {name: cartpole, uid: pole2, params: {worlds: 6}}\n"
                           "      agents:\n%s%s"
                           "      simulation: {conditions: [{name: max_steps, params: {steps: 2000}}]}\n"
                           "      phase_config: {mode: train, worker: 1, heartbeat_timeout: 300}\n",
                           a1, a2);
    cr_assert_eq(bd_write_file(yml, text, strlen(text)), BD_OK);
    free(text);
    free(a1);
    free(a2);
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=1 $BODHI run %s --out %s --quiet & p=$!; RANK=0 $BODHI run %s --out %s --quiet || exit 5; "
                "wait $p || exit 6; $BODHI replay %s --verify > %s.replay 2>&1; r=$?; cat %s.replay; test $r = 0 "
                "|| exit 7; grep -q \"not this run's\" %s.replay && exit 8; "
                "grep -q '^train/balancer\\.r1 ' %s.replay || exit 9; "
                "grep -q 'pole2 of rank 0 (world ids 0 to 5)' %s.replay || exit 10; exit 0",
                bd_test_port(), yml, out, yml, out, out, out, out, out, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    sh(NULL, "rm -f %s.replay", out);
    ranks_done(out, r1, rd, yml);
}

/* A ranks test's run file (ranks_file) with a test phase after its train phase. */
static char *ranks_two_phases(const char *tag, const char *more)
{
    char *yml = ranks_file(tag, 100000000, 2, more);
    cr_assert_eq(sh(NULL, "printf '  - test:\\n      phase_config: {mode: test, worker: 2, episodes: 4}\\n' >> %s", yml),
                 0);
    return yml;
}

/* `bodhi stop` of one rank's run folder stops every rank: the ranks agree on the stop every
 * round, and on whether the run ends with the phase. `bodhi stop` of rank 1 ends both runs
 * "stopped" (exit 0, no test phase); `--phase` of rank 0 ends the train phase on both and
 * both run the test phase. It used to be refused on any rank. `bodhi set` still is. */
static void ranks_stop(const char *tag, const char *which, const char *how, const char *also, const char *status,
                       int phases)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs(tag, &out, &r1, &rd);
    char *yml = ranks_two_phases(tag, "");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=0 $BODHI run %s --out %s --quiet & p0=$!; RANK=1 $BODHI run %s --out %s --quiet & p1=$!; "
                "trap 'kill $p0 $p1 2>/dev/null' EXIT; "
                "for i in $(seq 2400); do grep -q param_digest %s.r1/log.jsonl 2>/dev/null && "
                "grep -q param_digest %s/log.jsonl && break; sleep 0.1; done; "
                "$BODHI set %s%s balancer.learning_rate=1e-4; test $? = 2 || { echo bodhi set was not refused; exit 7; }; "
                "$BODHI stop %s%s %s || exit 8; %s%s%s; wait $p0; r0=$?; wait $p1; r1=$?; echo \"rc=$r0,$r1\"; "
                "test $r0 = 0 && test $r1 = 0 && test -z \"$(ls %s)\"",
                bd_test_port(), yml, out, yml, out, out, out, out, which, out, which, how,
                *also ? "$BODHI stop " : "true", *also ? out : "", also, rd);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    rc = sh(&t,
            "/usr/bin/python3 - %s '%s' %d <<'PY'\n"
            "import json, sys\n"
            "out, status, phases = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
            "for d in (out, out + '.r1'):\n"
            "    s = json.load(open(d + '/summary.json'))\n"
            "    assert s['status'] == status, (d, s['status'], status)\n"
            "    assert len(s['phases']) == phases, (d, s['phases'])\n"
            "    assert s['phases'][0]['reason'] == 'stopped', (d, s['phases'][0])\n"
            "    print(d, s['phases'][0]['ended'])\n"
            "PY\n",
            out, status, phases);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

Test(ranks, bodhi_stop_of_one_rank_stops_every_rank, .timeout = 300)
{
    ranks_stop("rstop", ".r1", "", "", "stopped", 1);
}

Test(ranks, bodhi_stop_of_a_phase_on_one_rank_moves_every_rank_on, .timeout = 300)
{
    ranks_stop("rstopp", "", "--phase", "", "done", 2);
}

/* The run stopped on rank 0 and the phase alone on rank 1, likely in the same round: the
 * run ends on both (the run's end is agreed apart from the reason; rank 1 used to start the
 * test phase alone and fail at its join). */
Test(ranks, a_run_stopped_on_one_rank_and_a_phase_on_another_ends_both, .timeout = 300)
{
    ranks_stop("rstopb", "", "", ".r1 --phase", "stopped", 1);
}

/* The ranks' episode statistics are the group's: every rank's last `window` returns
 * together, once every rank has that many, the same on every rank. Both ranks meet the
 * objective in the same round, for the same reason and mean (neither "on rank K"), and
 * report the same mean_return. Before, each rank's own window decided: the first rank over
 * the threshold ended the phase while the other's mean stood below it. */
Test(ranks, ranks_meet_the_objective_together, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("robj", &out, &r1, &rd);
    char *yml = ranks_file("robj", 100000000, 1,
                           "s/conditions: \\[/conditions: [{name: objective_average, params: {window: 20, "
                           "threshold: 40}}, /");
    int rc = sh(&t,
                RANKS_TORCHRUN
                "RANK=1 $BODHI run %s --out %s --quiet & p=$!; RANK=0 $BODHI run %s --out %s --quiet; r0=$?; "
                "wait $p; r1=$?; echo \"rc=$r0,$r1\"; test $r0 = 0 && test $r1 = 0 || exit 5; "
                "/usr/bin/python3 - %s <<'PY'\n"
                "import json, sys\n"
                "out = sys.argv[1]\n"
                "def last(d):\n"
                "    s = json.load(open(d + '/summary.json'))['phases'][0]\n"
                "    u = [json.loads(l) for l in open(d + '/log.jsonl')]\n"
                "    u = [e for e in u if e.get('event') == 'update' and 'mean_return' in e][-1]\n"
                "    return (s['ended'], s['agents'][0]['mean_return'], u['mean_return'], u['group_episodes'],\n"
                "            s['agents'][0]['group_episodes'])\n"
                "a, b = last(out), last(out + '.r1')\n"
                "print(a, b)\n"
                "assert a == b, (a, b)\n"
                "assert 'objective reached: mean return' in a[0] and 'of every rank >= 40' in a[0], a\n"
                "assert 'on rank' not in a[0], a\n"
                "assert a[1] == a[2] and a[3] >= 40, a\n"
                "PY\n",
                bd_test_port(), yml, out, yml, out, out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* A second `bodhi run` started as rank 1 of a launch that runs (the same --out and port),
 * refused because rank 1's run directory is in use, changes nothing: both ranks run their
 * train and test phases to the end. It used to say that rank 1 had left, and the test
 * phase's join failed on both ranks. */
Test(ranks, a_second_start_of_a_rank_stops_nothing, .timeout = 300)
{
    char *out, *r1, *rd, *t = NULL;
    ranks_dirs("rdup", &out, &r1, &rd);
    char *yml = ranks_file("rdup", 60000, 2, "");
    cr_assert_eq(sh(NULL, "printf '  - test:\\n      phase_config: {mode: test, worker: 2, episodes: 4}\\n' >> %s",
                    yml), 0);
    int rc = sh(&t,
                "O=%s; " RANKS_TORCHRUN
                "RANK=0 $BODHI run %s --out $O --quiet & p0=$!; RANK=1 $BODHI run %s --out $O --quiet & p1=$!; "
                "trap 'kill $p0 $p1 2>/dev/null' EXIT; "
                "for i in $(seq 2400); do grep -q param_digest $O.r1/log.jsonl 2>/dev/null && break; sleep 0.1; done; "
                "RANK=1 $BODHI run %s --out $O --quiet 2>$O.dup; d=$?; wait $p0; r0=$?; wait $p1; r1=$?; "
                "echo \"rc=$r0,$r1 second=$d\"; cat $O.dup; grep -o '\"status\": *\"[a-z]*\"' $O/summary.json; "
                "test $d = 2 && test $r0 = 0 && test $r1 = 0 && grep -q 'a run is in progress' $O.dup",
                out, bd_test_port(), yml, yml, yml);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    sh(NULL, "rm -f %s.dup", out);
    ranks_done(out, r1, rd, yml);
}

/* A fault on one of two ranks of a train-then-test run (ranks_two_phases, `more` its sed
 * script): once rank 1 has learnt, the shell runs `act` (O: rank 0's --out; p0, p1: the
 * ranks' `bodhi run`s); both are waited for (r0, r1: their exit codes; e: the seconds since
 * `act`); no process of the run may be left within 10 s, and the shell test `expect` (of
 * r0, r1, e, and RD: the ranks' store folder) must hold. The caller reads the summaries in
 * *out and ends with ranks_done. */
static void ranks_fault(const char *tag, const char *more, const char *act, const char *expect, char **out, char **r1,
                        char **rd, char **yml)
{
    char *t = NULL;
    ranks_dirs(tag, out, r1, rd);
    *yml = ranks_two_phases(tag, more);
    int rc = sh(&t,
                "O=%s; RD=%s; " RANKS_TORCHRUN
                "RANK=0 $BODHI run %s --out $O --quiet & p0=$!; RANK=1 $BODHI run %s --out $O --quiet & p1=$!; "
                "trap 'kill $p0 $p1 2>/dev/null' EXIT; "
                "for i in $(seq 2400); do grep -q param_digest $O.r1/log.jsonl 2>/dev/null && break; sleep 0.1; done; "
                "%s; s=$(date +%%s); wait $p0; r0=$?; wait $p1; r1=$?; e=$(( $(date +%%s) - s )); "
                "echo \"rc=$r0,$r1 after ${e}s\"; "
                "for i in $(seq 100); do left=$(pgrep -f -- \"[-]-run-dir $O\" | wc -l); test $left = 0 && break; "
                "sleep 0.1; done; echo \"left=$left\"; pgrep -af -- '[-]-run-dir'; ls $RD; "
                "test $left = 0 && %s",
                *out, *rd, bd_test_port(), *yml, *yml, act, expect);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
}

/* A rank whose run failed (a muscle killed with no restarts allowed) fails every rank's run
 * within a round, saying where: rank 0 ends "failed: on rank 1" and exits 1 (it used to
 * end interrupted, exit 130: its brain took the failing conductor's SIGTERM for a Ctrl-C). */
Test(ranks, a_failed_rank_fails_every_rank, .timeout = 300)
{
    char *out, *r1, *rd, *yml, *t = NULL;
    ranks_fault("rfail", "s/heartbeat_timeout: 300}/heartbeat_timeout: 300, restarts: 0}/",
                "pkill -KILL -f -- \"[m]uscle [-]-run-dir $O.r1 [-]-phase train [-]-id 0 \" || { echo no muscle; exit 7; }",
                "test $r0 = 1 && test $r1 = 1 && test $e -le 60 && test -z \"$(ls $RD)\"", &out, &r1, &rd, &yml);
    int rc = sh(&t,
                "/usr/bin/python3 - %s <<'PY'\n"
                "import json, sys\n"
                "out = sys.argv[1]\n"
                "s = json.load(open(out + '/summary.json'))\n"
                "assert s['status'] == 'failed', s\n"
                "assert [p['name'] for p in s['phases']] == ['train'], s['phases']\n"
                "assert s['phases'][0]['ended'] == 'failed', s['phases'][0]\n"
                "assert 'failed: on rank 1 (balancer)' in s['error'], s['error']\n"
                "PY\n",
                out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* kill -9 of rank 1's conductor in the middle of training: its brain, stopped by its death
 * signal (or finding its conductor gone), stops every rank in the round's agreement, saying
 * why. Rank 0 used to end its train phase "done" ("stopped on another rank") and start the
 * test phase, whose join then failed at the group timeout (240 s here), leaving that
 * phase's store file behind. Now rank 0 ends the phase and the run "interrupted: on rank
 * 1", exits 130 at once with its checkpoint, starts no later phase, and nothing is left. */
Test(ranks, a_killed_conductor_interrupts_every_rank, .timeout = 300)
{
    char *out, *r1, *rd, *yml, *t = NULL;
    ranks_fault("rcond", "", "kill -9 $p1", "test $r0 = 130 && test $e -le 60 && test -z \"$(ls $RD)\"", &out, &r1,
                &rd, &yml);
    int rc = sh(&t,
                "/usr/bin/python3 - %s <<'PY'\n"
                "import json, os, sys\n"
                "out = sys.argv[1]\n"
                "s = json.load(open(out + '/summary.json'))\n"
                "assert s['status'] == 'interrupted', s\n"
                "assert [p['name'] for p in s['phases']] == ['train'], s['phases']\n"
                "assert s['phases'][0]['ended'] == 'interrupted: on rank 1 (balancer)', s['phases'][0]\n"
                "assert s['phases'][0]['reason'] == 'interrupted', s['phases'][0]\n"
                "assert os.path.exists(out + '/checkpoints/train/balancer.pt'), 'no checkpoint'\n"
                "PY\n",
                out);
    cr_assert_eq(rc, 0, "%s", t);
    free(t);
    ranks_done(out, r1, rd, yml);
}

/* A signal to rank 1's brain: both ranks exit non-zero well within the collective timeout
 * (240 s here; a dead peer's closed connection is seen at once), and no process of the run
 * is left. */
static void ranks_kill_brain(const char *tag, const char *sig, const char *r0_says)
{
    char *out, *r1, *rd, *yml, *t = NULL;
    char *act = bd_strfmt("b=$(pgrep -f -- \"[b]rain [-]-run-dir $O.r1 \" | head -1); "
                          "test -n \"$b\" || { echo no brain of rank 1; pgrep -af -- '[b]odhi'; exit 7; }; kill -%s $b",
                          sig);
    ranks_fault(tag, "", act, "test $r0 != 0 && test $r1 != 0 && test $e -le 60", &out, &r1, &rd, &yml);
    free(act);
    sh(&t, "cat %s/summary.json %s.r1/summary.json", out, out);
    cr_assert(strstr(t, "\"rank\""), "%s", t);
    free(t);
    if (r0_says) {
        sh(&t, "cat %s/summary.json", out);
        cr_assert(strstr(t, r0_says), "rank 0's summary.json does not say \"%s\": %s", r0_says, t);
        free(t);
    }
    ranks_done(out, r1, rd, yml);
}

Test(ranks, a_killed_rank_fails_every_rank, .timeout = 300)
{
    /* rank 0's brain fails on the closed connection, and says whose it was */
    ranks_kill_brain("rkill", "9", "rank 1's learner is gone");
}

/* SIGTERM to rank 1's brain alone (not from its conductor): it stops in the round's
 * agreement, and ends as interrupted, as a brain alone would, so its conductor fails the run
 * and stops its muscles. It used to end "done" once the stop was agreed, its muscles never
 * heard STOP, and its conductor waited on them for ever. */
Test(ranks, a_brain_terminated_alone_fails_its_rank_and_stops_the_others, .timeout = 300)
{
    ranks_kill_brain("rterm", "TERM", NULL);
}
