/* test_conductor.c: `bodhi` as a user runs it, with real processes and sockets: a short
 * run (conductor, one brain, two muscle processes over NNG, HDF5 memory) and the run
 * directory it leaves; bad input (exit 2 with FILE:LINE:COL); Ctrl-C and SIGTERM (130,
 * 143, memory kept); a killed or stopped muscle restarted, a killed brain failing the run,
 * a killed conductor's children gone; the run directory's ownership; long paths; a remote
 * muscle over TCP with garbage on every socket; kill -9 of everything leaving readable
 * traces. Run dirs are unique per test (pid). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "brain/ppo.h"
#include "brain/replay.h"
#include "brain/steer.h"
#include "common/util.h"
#include "port.h"
#include "slow.h"
#include "conductor/builtins.h"
#include "conductor/rundir.h"
#include "config/check.h"
#include "memory/memory.h"
#include "torch/bd_torch.h"
#include "wire/addr.h"
#include "wire/wire.h"

static const char *SHORT_RUN =
    "uid: short\n"
    "seed: 5\n"
    "schedule:\n"
    "  - train:\n"
    "      environments:\n"
    "        - environment: {name: cartpole, uid: pole, params: {worlds: 6}}\n"
    "      agents:\n"
    "        - name: balancer\n"
    "          brain: {name: ppo, params: {rollout_steps: 32, hidden: 16}}\n"
    "          muscle: {name: ppo, params: {}}\n"
    "          objective: {name: reward, params: {}}\n"
    "          sensors: [pole.*]\n"
    "          actuators: [pole.push]\n"
    "      simulation:\n"
    "        conditions:\n"
    "          - {name: max_steps, params: {steps: %d}}\n"
    "      phase_config: {mode: train, worker: 2}\n"
    "  - test:\n"
    "      phase_config: {mode: test, worker: 2, episodes: 3}\n";

static char *write_run(const char *tag, int steps)
{
    char *path = bd_strfmt("/tmp/bd-test-run-%d-%s.yml", (int)getpid(), tag);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, SHORT_RUN, steps);
    fclose(f);
    return path;
}

static int run_cmd(const char *fmt, const char *a, const char *b)
{
    char *cmd = bd_strfmt(fmt, BODHI_BINARY, a, b);
    int st = system(cmd);
    free(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts `bodhi run file --out out --quiet` in a process group of its own (so a test can
 * kill the whole group), which dies with the test process. An earlier test process of
 * this pid (pids wrap around in a long suite) may have left its run at out: the new run
 * would move it aside, but the test's waits would see its files first and return at once,
 * so it goes first. */
static pid_t start_bodhi(const char *file, const char *out)
{
    if (strncmp(out, "/tmp/bd-run-", 12) == 0 && !strchr(out, '\'')) {
        char *rm = bd_strfmt("rm -rf '%s' '%s'.prev-*", out, out);
        cr_assert_eq(system(rm), 0);
        free(rm);
    }
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", 1);
        dup2(null, 2);
        execl(BODHI_BINARY, "bodhi", "run", file, "--out", out, "--quiet", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void wait_for(const char *path, double seconds);
static char *slurp(const char *path);

/* Starts a run that would train for ever (tag names its files) and returns once its brain
 * is recording; *file and *out are the caller's to free. */
static int count_lines_with(const char *path, const char *needle);

static pid_t start_long_run(const char *tag, char **file, char **out)
{
    *file = write_run(tag, 50000000);
    *out = bd_strfmt("/tmp/bd-run-%d-%s", (int)getpid(), tag);
    pid_t pid = start_bodhi(*file, *out);
    char *mem = bd_strfmt("%s/memory/train.balancer.h5", *out);
    wait_for(mem, 60);
    free(mem);
    /* something learnt: the brain's second round report, after its first update (a stop
     * before it has nothing to keep, and on a loaded machine libtorch may still be loading
     * then: the first report, update 0, comes before the first update, and a suite run
     * here once stopped the brain inside that load, past the stop grace) */
    char *log = bd_strfmt("%s/log.jsonl", *out);
    for (double t0 = bd_now(); count_lines_with(log, "\"event\":\"update\"") < 2 && bd_now() - t0 < 60 * BD_TEST_SLOW;)
        usleep(50000);
    free(log);
    return pid;
}

/* Two runs' traces (a and b, run directories) hold the same bytes in every recorded
 * sensor, actuator, reward and flag dataset, `datasets` of them in all (5 per phase and
 * agent), none empty; `check` (may be empty) is one more line of Python run on each run's
 * run.h5, open as f (a test's own assertion). */
static void assert_same_trace_bytes(const char *a, const char *b, int datasets, const char *check)
{
    char *py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                         "import h5py, hashlib\n"
                         "def digest(d):\n"
                         "    f = h5py.File(d + '/run.h5', 'r')\n"
                         "    out = {}\n"
                         "    for ph in f:\n"
                         "        for ag in f[ph]:\n"
                         "            for ds in ('sensors', 'actuators', 'rewards', 'terminated', 'truncated'):\n"
                         "                x = f[ph][ag][ds][:]\n"
                         "                assert x.shape[0] > 0\n"
                         "                out[ph, ag, ds] = hashlib.sha256(x.tobytes()).hexdigest()\n"
                         "    return out\n"
                         "da, db = digest('%s'), digest('%s')\n"
                         "assert len(da) == %d and da == db, (da, db)\n"
                         "for d in ('%s', '%s'):\n"
                         "    f = h5py.File(d + '/run.h5', 'r')\n"
                         "    %s\n"
                         "\"",
                         a, b, datasets, a, b, *check ? check : "pass");
    cr_assert_eq(system(py), 0, "two runs with one seed recorded the same bytes (%s, %s)", a, b);
    free(py);
}

static int count_lines_with(const char *path, const char *needle)
{
    char *text;
    if (bd_read_file(path, &text, NULL) != BD_OK)
        return -1;
    int n = 0;
    for (char *p = text; (p = strstr(p, needle)); p++)
        n++;
    free(text);
    return n;
}

/* The run's summary.json, as text (the caller frees it). */
static char *read_summary(const char *out)
{
    char *p = bd_strfmt("%s/summary.json", out), *text = NULL;
    cr_assert_eq(bd_read_file(p, &text, NULL), BD_OK, "%s: %s", p, bd_lasterr());
    free(p);
    return text;
}

Test(conductor, short_run_end_to_end, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run("e2e", 4096);
    char *out = bd_strfmt("/tmp/bd-run-%d-e2e", (int)getpid());
    int code = run_cmd("%s run %s --out %s --quiet", file, out);
    cr_assert_eq(code, 0, "bodhi run exit code");
    char *p;
    const char *files[] = {"run.yml", "run.h5", "summary.json", "log.jsonl",
                           "checkpoints/train/balancer.pt", "memory/train.balancer.h5",
                           "memory/test.balancer.h5"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        p = bd_strfmt("%s/%s", out, files[i]);
        cr_assert(bd_exists(p), "%s missing", p);
        free(p);
    }
    char *text = read_summary(out);
    cJSON *s = cJSON_Parse(text);
    cr_assert_not_null(s);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "done");
    cr_assert_eq(cJSON_GetObjectItem(s, "seed")->valueint, 5);
    cJSON *phases = cJSON_GetObjectItem(s, "phases");
    cr_assert_eq(cJSON_GetArraySize(phases), 2);
    cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(phases, 0), "agents"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(a0, "name")->valuestring, "balancer");
    cr_assert(cJSON_GetObjectItem(a0, "steps")->valuedouble >= 4096);
    cJSON *a1 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(phases, 1), "agents"), 0);
    cr_assert_eq(cJSON_GetObjectItem(a1, "episodes")->valuedouble, 3, "the test phase counts exactly its episodes");
    cJSON_Delete(s);
    free(text);
    /* every process was spawned and exited: per phase one brain and two muscles */
    p = bd_strfmt("%s/log.jsonl", out);
    cr_assert_eq(count_lines_with(p, "\"event\":\"spawned\""), 6);
    cr_assert_eq(count_lines_with(p, "\"event\":\"exited\""), 6);
    cr_assert_eq(count_lines_with(p, "\"code\":0"), 6);
    cr_assert(count_lines_with(p, "\"event\":\"update\"") > 0);
    cr_assert_eq(count_lines_with(p, "\"event\":\"checkpoint\""), 1);
    free(p);
    /* the trace is consistent: every episode's return is the sum of its rewards */
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0);
    /* ... and h5py, as a user reads it, from another working directory */
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        char *py = bd_strfmt(
            "cd / && /usr/bin/python3 -c \""
            "import h5py, numpy as np\n"
            "f = h5py.File('%s/run.h5', 'r')\n"
            "assert int(f.attrs['seed']) == 5\n"
            "for ph in ('train', 'test'):\n"
            "    g = f[ph + '/balancer']\n"
            "    r = g['rewards'][:]; ep = g['episodes'][:]\n"
            "    assert g['sensors'].shape[1:] == (6, 4) and r.shape[1] == 6, g['sensors'].shape\n"
            "    assert list(g.attrs['sensor_ids']) == ['pole.x', 'pole.x_dot', 'pole.theta', 'pole.theta_dot']\n"
            "    assert len(ep) > 0\n"
            "    for e in ep:\n"
            "        s = r[e['start_step']:e['start_step'] + e['length'], e['world']].astype(np.float64).sum()\n"
            "        assert abs(s - e['return']) < 1e-3, (ph, e, s)\n"
            "\"",
            out);
        cr_assert_eq(system(py), 0, "h5py reads run.h5 and episode returns equal summed rewards");
        free(py);
    }
    free(out);
    free(file);
}

Test(conductor, same_seed_same_trajectories, .timeout = 300 * BD_TEST_SLOW)
{
    /* the largest seed there is, end to end: run.yml, summary.json and run.h5 keep it exact */
    char *file = write_run("det", 2048);
    char *a = bd_strfmt("/tmp/bd-run-%d-da", (int)getpid()), *b = bd_strfmt("/tmp/bd-run-%d-db", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --seed 18446744073709551615 --out %s --quiet", file, a), 0);
    cr_assert_eq(run_cmd("%s run %s --seed 18446744073709551615 --out %s --quiet", file, b), 0);
    char *ca = bd_strfmt("%s/a.csv", a), *cb = bd_strfmt("%s/b.csv", b);
    cr_assert_eq(run_cmd("%s replay %s --csv %s > /dev/null", a, ca), 0);
    cr_assert_eq(run_cmd("%s replay %s --csv %s > /dev/null", b, cb), 0);
    char *ta, *tb;
    cr_assert_eq(bd_read_file(ca, &ta, NULL), BD_OK);
    cr_assert_eq(bd_read_file(cb, &tb, NULL), BD_OK);
    cr_assert(strlen(ta) > 100);
    cr_assert_str_eq(ta, tb, "two runs with one seed recorded the same episodes");
    free(ta); free(tb);
    char *sum = read_summary(a), *yml = bd_strfmt("%s/run.yml", a), *ytext = NULL;
    cr_assert(strstr(sum, "\"seed\":\t18446744073709551615,"), "%s", sum);
    cr_assert_eq(bd_read_file(yml, &ytext, NULL), BD_OK);
    cr_assert(strstr(ytext, "seed: 18446744073709551615\n"), "%s", ytext);
    free(sum); free(yml); free(ytext);
    /* every recorded sensor, actuator, reward and flag, byte for byte */
    assert_same_trace_bytes(a, b, 10, "assert int(f.attrs['seed']) == 18446744073709551615");
    free(ca); free(cb); free(a); free(b); free(file);
}

/* A sac run: two muscles (a shard split), learning from the buffer within the phase, then
 * a test phase that loads the checkpoint and acts greedily. Twice with one seed: the same
 * bytes of every sensor, actuator, reward and flag, train and test. */
Test(conductor, sac_same_seed_same_trajectories, .timeout = 300)
{
    char *path = bd_strfmt("/tmp/bd-test-run-%d-sac.yml", (int)getpid());
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "uid: sac-det\nseed: 3\nversion: 1\nschedule:\n"
               "  - train:\n"
               "      environments:\n"
               "        - environment: {name: pendulum, uid: pend, params: {worlds: 6}}\n"
               "      agents:\n"
               "        - name: swinger\n"
               "          brain: {name: sac, params: {rollout_steps: 16, learning_starts: 200, batch_size: 32,\n"
               "                                      hidden: 16, update_ratio: 0.25, save_buffer: true}}\n"
               "          muscle: {name: sac}\n"
               "          sensors: [pend.*]\n"
               "          actuators: [pend.torque]\n"
               "      simulation:\n"
               "        conditions:\n"
               "          - {name: max_steps, params: {steps: 3000}}\n"
               "      phase_config: {mode: train, worker: 2}\n"
               "  - test:\n"
               "      phase_config: {mode: test, worker: 2, episodes: 6}\n");
    fclose(f);
    char *a = bd_strfmt("/tmp/bd-run-%d-sa", (int)getpid()), *b = bd_strfmt("/tmp/bd-run-%d-sb", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", path, a), 0);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", path, b), 0);
    char *log = bd_strfmt("%s/log.jsonl", a);
    cr_assert(count_lines_with(log, "\"gradient_steps\"") > 0, "the sac brain took gradient steps");
    free(log);
    char *buf = bd_strfmt("%s/checkpoints/train/swinger.pt.replay", a);
    cr_assert(bd_exists(buf), "save_buffer: %s", buf);
    free(buf);
    /* and the test phase acts greedily: tanh of the mean, within the torque bounds */
    assert_same_trace_bytes(a, b, 10, "x = f['test/swinger/actuators'][:]; assert (abs(x) <= 2.0).all(), x.max()");
    free(a); free(b); free(path);
}

/* Groups of two learner kinds in one world: SAC taggers chasing PPO runners in Tag, two
 * muscles each holding both groups' columns, then a test phase that loads both
 * checkpoints. Both brains learn (sac's update events carry gradient steps and alpha,
 * ppo's its KL), and two runs with one seed record the same bytes, train and test. */
Test(conductor, sac_taggers_against_ppo_runners_learn_and_repeat, .timeout = 300 * BD_TEST_SLOW)
{
    char *path = bd_strfmt("/tmp/bd-test-run-%d-sacppo.yml", (int)getpid());
    const char *yml = "uid: sac-ppo\nseed: 5\nversion: 1\nschedule:\n"
                      "  - train:\n"
                      "      environments:\n"
                      "        - environment: {name: tag, uid: tag, params: {worlds: 4, runners: 3, taggers: 2,\n"
                      "                                                      arena: 10, max_steps: 50}}\n"
                      "      agents:\n"
                      "        - name: taggers\n"
                      "          brain: {name: sac, params: {learning_starts: 128, batch_size: 32, hidden: 16}}\n"
                      "          muscle: {name: sac}\n"
                      "          sensors: [tag.tagger.*]\n"
                      "          actuators: [tag.tagger.*]\n"
                      "        - name: runners\n"
                      "          brain: {name: ppo, params: {hidden: 16}}\n"
                      "          muscle: {name: ppo}\n"
                      "          sensors: [tag.runner.*]\n"
                      "          actuators: [tag.runner.*]\n"
                      "      simulation:\n"
                      "        conditions:\n"
                      "          - {name: max_steps, params: {steps: 6000, agent: taggers}}\n"
                      "      phase_config: {mode: train, worker: 2}\n"
                      "  - test:\n"
                      "      phase_config: {mode: test, worker: 2, episodes: 4}\n";
    cr_assert_eq(bd_write_file(path, yml, strlen(yml)), BD_OK);
    char *a = bd_strfmt("/tmp/bd-run-%d-spa", (int)getpid()), *b = bd_strfmt("/tmp/bd-run-%d-spb", (int)getpid());
    char *rm = bd_strfmt("rm -rf %s %s %s.prev-* %s.prev-*", a, b, a, b); /* an earlier test process of this pid's */
    cr_assert_eq(system(rm), 0);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", path, a), 0);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", path, b), 0);
    char *py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                         "import json\n"
                         "ev = [json.loads(l) for l in open('%s/log.jsonl')]\n"
                         "up = [e for e in ev if e.get('event') == 'update' and e.get('phase') == 'train']\n"
                         "assert any(e['agent'] == 'taggers' and e.get('gradient_steps', 0) > 0 and 'alpha' in e "
                         "for e in up), 'no sac update'\n"
                         "assert any(e['agent'] == 'runners' and 'approx_kl' in e for e in up), 'no ppo update'\n"
                         "\"",
                         a);
    cr_assert_eq(system(py), 0, "sac taggers and ppo runners both learnt");
    free(py);
    assert_same_trace_bytes(a, b, 20, "");
    cr_assert_eq(system(rm), 0);
    free(rm);
    free(a); free(b); free(path);
}

Test(conductor, bad_input_exits_2_with_position)
{
    char *path = bd_strfmt("/tmp/bd-test-run-%d-bad.yml", (int)getpid());
    FILE *f = fopen(path, "w");
    fprintf(f, "uid: x\nschedule:\n  - train:\n      phase_config: {worker: two}\n");
    fclose(f);
    char *err = bd_strfmt("/tmp/bd-test-run-%d-bad.err", (int)getpid());
    char *cmd = bd_strfmt("%s run %s 2> %s", BODHI_BINARY, path, err);
    int st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2);
    char *text;
    cr_assert_eq(bd_read_file(err, &text, NULL), BD_OK);
    char *want = bd_strfmt("%s:", path);
    cr_assert(strstr(text, want), "error names the file: %s", text);
    free(text);
    free(want);
    free(cmd);
    cmd = bd_strfmt("%s run /tmp/bd-no-such-file-%d.yml 2> /dev/null", BODHI_BINARY, (int)getpid());
    st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2, "missing file");
    free(cmd);
    cmd = bd_strfmt("%s run %s --device tpu 2> /dev/null", BODHI_BINARY, path);
    st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2, "bad device");
    free(cmd);
    /* a typo inside a brain's params is caught before any process starts */
    f = fopen(path, "w");
    fprintf(f, SHORT_RUN, 100);
    fclose(f);
    char *text2;
    cmd = bd_strfmt("sed -i 's/rollout_steps: 32/rollout_step: 32/' %s && %s check %s 2> %s", path,
                    BODHI_BINARY, path, err);
    st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2, "typo in brain params");
    cr_assert_eq(bd_read_file(err, &text2, NULL), BD_OK);
    cr_assert(strstr(text2, "rollout_step") && strstr(text2, ":9:"), "%s", text2);
    free(text2);
    free(cmd);
    cmd = bd_strfmt("%s frobnicate 2> /dev/null", BODHI_BINARY);
    st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2, "unknown command");
    free(cmd);
    free(err);
    free(path);
}

static void wait_for(const char *path, double seconds)
{
    seconds *= BD_TEST_SLOW;
    double t0 = bd_now();
    while (!bd_exists(path) && bd_now() - t0 < seconds)
        usleep(20000);
}

Test(conductor, ctrl_c_keeps_what_was_written, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("int", &file, &out);
    sleep(1);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st));
    cr_assert_eq(WEXITSTATUS(st), 130, "Ctrl-C exit code");
    char *text = read_summary(out);
    cr_assert(strstr(text, "\"interrupted\""), "%s", text);
    free(text);
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0,
                 "the memory written before Ctrl-C is readable and consistent");
    char *p = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert(bd_exists(p), "the brain saved what it had learnt");
    free(p);
    free(out);
    free(file);
}

/* A run file like SHORT_RUN whose train phase's phase_config gets `extra` (", key: v"). */
static char *write_run_with(const char *tag, int steps, const char *extra)
{
    char *path = write_run(tag, steps);
    char *cmd = bd_strfmt("sed -i '0,/phase_config: {mode: train, worker: 2}/s//phase_config: {mode: train, "
                          "worker: 2%s}/' %s", extra, path);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    return path;
}

/* Waits until path (a log) holds needle, up to seconds. */
static void wait_for_text(const char *path, const char *needle, double seconds)
{
    seconds *= BD_TEST_SLOW;
    double t0 = bd_now();
    while (count_lines_with(path, needle) < 1 && bd_now() - t0 < seconds)
        usleep(50000);
}

/* The run's summary.json as JSON; the caller deletes it. */
/* `bodhi replay OUT --verify` (stdout and stderr), which must exit with rc: its output
 * (caller frees). */
static char *verify_run(const char *out, int rc)
{
    char *log = bd_strfmt("%s/verify.txt", out), *text = NULL;
    char *cmd = bd_strfmt("%s replay %s --verify > %s 2>&1", BODHI_BINARY, out, log);
    int got = WEXITSTATUS(system(cmd));
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cr_assert_eq(got, rc, "replay --verify exited %d, not %d:\n%s", got, rc, text);
    free(cmd);
    free(log);
    return text;
}

static cJSON *summary_json(const char *out)
{
    char *text = read_summary(out);
    cJSON *s = cJSON_Parse(text);
    cr_assert_not_null(s, "%s", text);
    free(text);
    return s;
}

/* Runs file into out and kill -9s train muscle `id` at the first update; the run must
 * complete (exit 0) with that one restart in log.jsonl, whose path it returns (caller
 * frees). */
static char *run_killing_muscle(const char *file, const char *out, int id)
{
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    char *cmd = bd_strfmt("pkill -KILL -f '[m]uscle --run-dir %s --phase train --id %d'", out, id);
    cr_assert_eq(system(cmd), 0, "muscle %d was running", id);
    free(cmd);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run completes (status %d)", st);
    cr_assert_eq(count_lines_with(log, "\"event\":\"restarted\""), 1, "log.jsonl records the restart");
    return log;
}

Test(conductor, killed_muscle_is_restarted_and_the_run_completes, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run("kmuscle", 150000);
    char *out = bd_strfmt("/tmp/bd-run-%d-kmuscle", (int)getpid());
    char *log = run_killing_muscle(file, out, 1);
    cr_assert(count_lines_with(log, "was killed by signal 9 (Killed)") >= 1, "with its reason");
    cJSON *s = summary_json(out);
    cJSON *ph = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 0);
    cr_assert_eq(cJSON_GetObjectItem(ph, "restarts")->valueint, 1);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "done");
    cJSON_Delete(s);
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0, "the trace is consistent");
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        char *py = bd_strfmt("/usr/bin/python3 -c \"import h5py; f = h5py.File('%s/run.h5', 'r'); "
                             "print(f['train/balancer/rewards'].shape)\" > /dev/null", out);
        cr_assert_eq(system(py), 0, "h5py opens run.h5");
        free(py);
    }
    free(log);
    free(out);
    free(file);
}

/* The only muscle killed (worker: 1): the round that came without any rollout is a round of
 * NaN in the trace, so that the restarted muscle's fresh worlds do not continue the lost
 * ones' rows as if they were the same episodes (they did, unmarked: --verify found every
 * world's recorded steps not re-simulated from the splice on). */
Test(conductor, the_only_muscle_killed_leaves_a_marked_gap, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run("konly", 150000);
    char *sed = bd_strfmt("sed -i 's/{mode: train, worker: 2}/{mode: train, worker: 1}/' %s", file);
    cr_assert_eq(system(sed), 0);
    char *out = bd_strfmt("/tmp/bd-run-%d-konly", (int)getpid());
    char *log = run_killing_muscle(file, out, 0);
    char *v = verify_run(out, 0);
    cr_assert(strstr(v, "returns and end flags ok"), "%s", v);
    cr_assert(strstr(v, "world(s) not checked past a row of NaN"), "no gap marked:\n%s", v);
    free(v);
    free(log);
    free(out);
    free(sed);
    free(file);
}

Test(conductor, stopped_muscle_is_noticed_and_replaced, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run_with("smuscle", 150000, ", heartbeat_timeout: 2");
    char *out = bd_strfmt("/tmp/bd-run-%d-smuscle", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    char *cmd = bd_strfmt("pkill -STOP -f '[m]uscle --run-dir %s --phase train --id 0'", out);
    cr_assert_eq(system(cmd), 0, "muscle 0 was running");
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run completes (status %d)", st);
    cr_assert_eq(count_lines_with(log, "\"event\":\"restarted\""), 1);
    cr_assert(count_lines_with(log, "hung: no heartbeat") >= 1, "it was taken for hung");
    free(cmd);
    free(log);
    free(out);
    free(file);
}

Test(conductor, past_the_restart_budget_the_run_fails_naming_the_muscle, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run_with("budget", 50000000, ", restarts: 0");
    char *out = bd_strfmt("/tmp/bd-run-%d-budget", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    char *cmd = bd_strfmt("pkill -KILL -f '[m]uscle --run-dir %s --phase train --id 1'", out);
    cr_assert_eq(system(cmd), 0);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status %d", st);
    char *text = read_summary(out);
    cr_assert(strstr(text, "\"failed\"") && strstr(text, "muscle 1 was killed by signal 9 (Killed)")
                  && strstr(text, "phase_config.restarts is 0"),
              "%s", text);
    free(text);
    free(cmd);
    free(log);
    free(out);
    free(file);
}

Test(conductor, sigint_during_a_long_update_stops_within_seconds, .timeout = 300 * BD_TEST_SLOW)
{
    /* an update of 200 epochs of 64 minibatches takes many seconds here */
    char *file = write_run("longupd", 50000000);
    char *cmd = bd_strfmt("sed -i 's/rollout_steps: 32, hidden: 16/rollout_steps: 256, hidden: 64, "
                          "update_epochs: 200, num_minibatches: 64/' %s", file);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    char *out = bd_strfmt("/tmp/bd-run-%d-longupd", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60); /* the first round reported: it learns now */
    usleep(500000);
    double t0 = bd_now();
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    double took = bd_now() - t0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
    cr_assert(took < 5.0, "stopped in %.1f s", took);
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert(bd_exists(ck), "the last whole update is kept");
    cr_assert_eq(run_cmd("%s replay %s > /dev/null%s", out, ""), 0, "run.h5 readable");
    free(ck);
    free(log);
    free(out);
    free(file);
}

Test(conductor, a_long_run_directory_path_works, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out0;
    /* 150 characters: deep folders, as results often live */
    char *out = bd_strfmt("/tmp/bd-run-%d-long/experiments/a-project-with-a-long-name/runs/"
                          "a-sweep-over-learning-rates-and-seeds/seed-0000000001/attempt", (int)getpid());
    while (strlen(out) < 150) {
        char *longer = bd_strfmt("%sX", out);
        free(out);
        out = longer;
    }
    cr_assert_eq(strlen(out), 150);
    file = write_run("longpath", 50000000);
    out0 = out;
    pid_t pid = start_bodhi(file, out);
    char *mem = bd_strfmt("%s/memory/train.balancer.h5", out);
    wait_for(mem, 60);
    sleep(1);
    char *txt = bd_strfmt("/tmp/bd-test-run-%d-longpath.txt", (int)getpid());
    cr_assert_eq(run_cmd("%s status %s --json > %s", out, txt), 0, "bodhi status answers for a long path");
    char *text = slurp(txt);
    cr_assert(text && strstr(text, "\"running\""), "%s", text ? text : "");
    free(text);
    cr_assert_eq(run_cmd("%s status %s > %s", out, txt), 0);
    text = slurp(txt);
    cr_assert(text && strstr(text, "brain") && strstr(text, "muscle") && strstr(text, "last beat"), "%s",
              text ? text : "");
    free(text);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 143);
    free(txt);
    free(mem);
    free(out0);
    free(file);
}

Test(conductor, plugin_env_with_two_random_agents, .timeout = 120 * BD_TEST_SLOW)
{
    char *file = bd_strfmt("/tmp/bd-test-run-%d-plugin.yml", (int)getpid());
    FILE *f = fopen(file, "w");
    fprintf(f,
            "uid: plugin\n"
            "schedule:\n"
            "  - explore:\n"
            "      environments:\n"
            "        - environment: {name: '%s:bd_target_env', uid: line, params: {worlds: 4}}\n"
            "      agents:\n"
            "        - name: walker\n"
            "          brain: {name: random, params: {rollout_steps: 50}}\n"
            "          muscle: {name: random}\n"
            "          sensors: [line.*]\n"
            "          actuators: [line.move_x]\n"
            "        - name: climber\n"
            "          brain: {name: random, params: {rollout_steps: 50}}\n"
            "          muscle: {name: random}\n"
            "          sensors: [line.y, line.target_y]\n"
            "          actuators: [line.move_y]\n"
            "      simulation:\n"
            "        conditions: [{name: max_steps, params: {steps: 2000}}]\n"
            "      phase_config: {mode: train, worker: 2}\n",
            BODHI_TARGET_PLUGIN);
    fclose(f);
    /* the agents of a phase step together: a brain left on the automatic rollout length
     * (128 for 4 worlds) beside one asking for 50 is refused before anything runs */
    char *cmd = bd_strfmt("sed '0,/rollout_steps: 50/s/brain: {name: random, params: {rollout_steps: 50}}/brain: {name: random}/' %s "
                          "> %s.auto.yml", file, file);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    char *autof = bd_strfmt("%s.auto.yml", file), *err = bd_strfmt("%s.err", file);
    cr_assert_eq(run_cmd("%s check %s 2> %s", autof, err), 2);
    char *msg = NULL;
    cr_assert_eq(bd_read_file(err, &msg, NULL), BD_OK);
    cr_assert(strstr(msg, "agent 'climber' collects rollouts of 50 steps (rollout_steps), agent 'walker' of 128 "
                          "(automatic for these worlds)"), "%s", msg);
    free(msg);
    free(err);
    free(autof);
    char *out = bd_strfmt("/tmp/bd-run-%d-plugin", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", file, out), 0);
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0);
    char *text = read_summary(out);
    cr_assert(strstr(text, "\"walker\"") && strstr(text, "\"climber\"") && strstr(text, "\"done\""),
              "%s", text);
    free(text);
    free(out);
    free(file);
}

Test(conductor, continuous_pendulum_with_obs_norm_and_resume, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = bd_strfmt("/tmp/bd-test-run-%d-pend.yml", (int)getpid());
    FILE *f = fopen(file, "w");
    fprintf(f,
            "uid: pend\n"
            "seed: 3\n"
            "schedule:\n"
            "  - warmup:\n"
            "      environments:\n"
            "        - environment: {name: pendulum, uid: p, params: {worlds: 4}}\n"
            "      agents:\n"
            "        - name: swinger\n"
            "          brain: {name: ppo, params: {rollout_steps: 64, hidden: 16, norm_obs: true}}\n"
            "          muscle: {name: ppo}\n"
            "          sensors: [p.*]\n"
            "          actuators: [p.torque]\n"
            "      simulation:\n"
            "        conditions: [{name: max_steps, params: {steps: 1024}}]\n"
            "      phase_config: {mode: train, worker: 2}\n"
            "  - more:\n"
            "      agents:\n"
            "        - name: swinger\n"
            "          brain: {name: ppo, params: {rollout_steps: 64, hidden: 16, norm_obs: true}}\n"
            "          muscle: {name: ppo}\n"
            "          sensors: [p.*]\n"
            "          actuators: [p.torque]\n"
            "          load: {agent: swinger, phase: warmup}\n"
            "  - test:\n"
            "      phase_config: {mode: test, worker: 1, episodes: 4}\n");
    fclose(f);
    char *out = bd_strfmt("/tmp/bd-run-%d-pend", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", file, out), 0);
    char *p = bd_strfmt("%s/checkpoints/more/swinger.pt.obsnorm.json", out);
    cr_assert(bd_exists(p), "the normaliser is saved beside the checkpoint");
    free(p);
    p = bd_strfmt("%s/log.jsonl", out);
    cr_assert_eq(count_lines_with(p, "\"event\":\"checkpoint\""), 2, "two train phases");
    free(p);
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0);
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        /* actions are continuous torques; the env got them clipped to [-2, 2] */
        char *py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                             "import h5py, numpy as np\n"
                             "f = h5py.File('%s/run.h5', 'r')\n"
                             "a = f['warmup/swinger/actuators'][:]\n"
                             "assert a.shape[1:] == (4, 1) and len(np.unique(a)) > 100\n"
                             "t = f['test/swinger/episodes'][:]\n"
                             "assert len(t) >= 4 and (t['length'] == 200).all()\n"
                             "\"",
                             out);
        cr_assert_eq(system(py), 0);
        free(py);
    }
    free(out);
    free(file);
}

Test(conductor, status_of_a_live_and_a_finished_run, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("status", &file, &out);
    char *log = bd_strfmt("/tmp/bd-test-run-%d-status.txt", (int)getpid());
    cr_assert_eq(run_cmd("%s status %s --json > %s", out, log), 0, "the live conductor answers");
    char *text;
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cJSON *s = cJSON_Parse(text);
    cr_assert_not_null(s, "status is JSON: %s", text);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "running");
    cr_assert_str_eq(cJSON_GetObjectItem(s, "phase")->valuestring, "train");
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "processes")), 3, "a brain and two muscles");
    cJSON_Delete(s);
    free(text);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 143, "SIGTERM exit code");
    cr_assert_eq(run_cmd("%s status %s --json > %s", out, log), 0, "a finished run answers from summary.json");
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cr_assert(strstr(text, "\"interrupted\""), "%s", text);
    free(text);
    cr_assert_eq(run_cmd("%s status %s/nothing-here 2> /dev/null%s", out, ""), 2, "not a run: bad input");
    /* a damaged summary.json (cut short): said to be, with how log.jsonl's end event says
     * the run ended; not printed as if it were the summary */
    char *sum = bd_strfmt("%s/summary.json", out);
    FILE *sf = fopen(sum, "w");
    cr_assert_not_null(sf);
    fputs("{\n\t\"uid\":\t\"status\",\n\t\"seed\":", sf);
    fclose(sf);
    cr_assert_eq(run_cmd("%s status %s --json > %s 2>&1", out, log), 1, "a damaged summary.json fails");
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cr_assert(strstr(text, "summary.json is damaged") && strstr(text, "the run ended 'interrupted' (log.jsonl's end"),
              "%s", text);
    free(text);
    /* none at all (a full disk let the end event through and not summary.json) */
    cr_assert_eq(unlink(sum), 0);
    free(sum);
    cr_assert_eq(run_cmd("%s status %s 2> %s", out, log), 1);
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cr_assert(strstr(text, "the run ended 'interrupted' (log.jsonl's end event; it left no summary.json)"), "%s",
              text);
    free(text);
    /* a run killed before its summary and its end event (as kill -9 leaves it): a run
     * that failed, said so */
    char *sed = bd_strfmt("sed -i '/^{\"event\":\"end\",/d' %s/log.jsonl", out);
    cr_assert_eq(system(sed), 0);
    free(sed);
    cr_assert_eq(run_cmd("%s status %s 2> %s", out, log), 1);
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cr_assert(strstr(text, "the run was killed or crashed") && strstr(text, "repairs and reads"), "%s", text);
    free(text);
    free(log);
    free(out);
    free(file);
}

/* A file's text, or NULL; the caller frees. */
static char *slurp(const char *path)
{
    char *text = NULL;
    return bd_read_file(path, &text, NULL) == BD_OK ? text : NULL;
}

Test(conductor, a_run_directory_belongs_to_one_run, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("owner", &file, &out);
    /* a second run onto the live run's directory is refused and touches nothing */
    char *err = bd_strfmt("/tmp/bd-test-run-%d-owner.err", (int)getpid());
    char *full = bd_strfmt("%s run %s --out %s --quiet 2> %s", BODHI_BINARY, file, out, err);
    int st = system(full);
    cr_assert_eq(WEXITSTATUS(st), 2, "a second run onto a live run's directory");
    char *text = slurp(err);
    char *want = bd_strfmt("a run is in progress in %s (pid %d)", out, (int)pid);
    cr_assert(text && strstr(text, want), "%s", text ? text : "(no stderr)");
    free(want);
    free(text);
    char *prev = bd_strfmt("ls -d %s.prev-* > /dev/null 2>&1", out);
    cr_assert_neq(system(prev), 0, "nothing was moved aside");
    char *lock = bd_strfmt("%s/run.lock", out);
    cr_assert(bd_exists(lock));
    /* the first run goes on and finishes in its own directory */
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    cr_assert_eq(WEXITSTATUS(st), 143);
    text = read_summary(out);
    cr_assert(strstr(text, "\"interrupted\""), "%s", text);
    free(text);
    /* a finished run is moved aside by the next */
    char *shortf = write_run("owner2", 256);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", shortf, out), 0);
    free(shortf);
    cr_assert_eq(system(prev), 0, "the finished run was moved aside");
    free(prev);
    free(lock);
    free(full);
    free(err);
    free(out);
    free(file);
}

Test(conductor, out_onto_a_file_or_a_foreign_folder_is_refused, .timeout = 120 * BD_TEST_SLOW)
{
    char *file = write_run("foreign", 256);
    char *dir = bd_strfmt("/tmp/bd-run-%d-foreign", (int)getpid());
    char *note = bd_strfmt("%s/notes.txt", dir);
    cr_assert_eq(bd_mkdirs(dir), BD_OK);
    cr_assert_eq(bd_write_file(note, "mine\n", 5), BD_OK);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", file, dir), 2, "a folder of other things");
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", file, note), 2, "a file");
    char *text = slurp(note);
    cr_assert(text && strcmp(text, "mine\n") == 0, "the file is untouched");
    free(text);
    char *ls = bd_strfmt("test \"$(ls -A %s)\" = notes.txt && ! ls -d %s.prev-* %s.prev-* 2>/dev/null", dir,
                         dir, note);
    cr_assert_eq(system(ls), 0, "nothing was created or moved");
    free(ls);
    /* an empty folder is used as it is */
    char *empty = bd_strfmt("%s/run", dir);
    cr_assert_eq(bd_mkdirs(empty), BD_OK);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", file, empty), 0, "an empty folder");
    free(empty);
    free(note);
    free(dir);
    free(file);
}

Test(conductor, episodes_alone_end_a_phase, .timeout = 300 * BD_TEST_SLOW)
{
    /* A test phase with no condition but phase_config.episodes (it once ran for ever and
     * filled the disk): it ends after exactly 25 episodes, split over 7 worlds. */
    char *file = bd_strfmt("/tmp/bd-test-run-%d-eps.yml", (int)getpid());
    FILE *f = fopen(file, "w");
    fprintf(f, SHORT_RUN, 1024);
    fprintf(f, "  - again:\n"
               "      environments:\n"
               "        - environment: {name: cartpole, uid: pole, params: {worlds: 7}}\n"
               "      simulation: {conditions: []}\n"
               "      phase_config: {mode: test, worker: 3, episodes: 25}\n");
    fclose(f);
    char *out = bd_strfmt("/tmp/bd-run-%d-eps", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", file, out), 0);
    char *text = read_summary(out);
    cJSON *s = cJSON_Parse(text);
    cJSON *ph = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(ph, "name")->valuestring, "again");
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(ph, "agents"), 0);
    cr_assert_eq(cJSON_GetObjectItem(a, "episodes")->valuedouble, 25, "%s", text);
    cJSON_Delete(s);
    free(text);
    /* the trace holds every step: each world's share of episodes, and maybe more */
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0);
    /* episodes: 0 is refused */
    f = fopen(file, "w");
    fprintf(f, SHORT_RUN, 1024);
    fclose(f);
    char *cmd = bd_strfmt("sed -i 's/episodes: 3/episodes: 0/' %s && %s check %s 2> /dev/null", file,
                          BODHI_BINARY, file);
    int st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2, "episodes: 0");
    free(cmd);
    free(out);
    free(file);
}

Test(conductor, a_test_phase_needs_something_to_load)
{
    char *file = bd_strfmt("/tmp/bd-test-run-%d-noload.yml", (int)getpid());
    char *err = bd_strfmt("/tmp/bd-test-run-%d-noload.err", (int)getpid());
    FILE *f = fopen(file, "w");
    fprintf(f, SHORT_RUN, 1024);
    fclose(f);
    /* drop the train phase: the test phase is first and has no checkpoint to load */
    char *cmd = bd_strfmt("sed -i '4,17d; s/^  - test:/  - test:\\n      environments:\\n        - environment: "
                          "{name: cartpole, uid: pole, params: {worlds: 4}}\\n      agents:\\n        - name: balancer\\n          "
                          "brain: {name: ppo}\\n          muscle: {name: ppo}\\n          sensors: [pole.*]\\n"
                          "          actuators: [pole.push]/' %s && %s check %s 2> %s",
                          file, BODHI_BINARY, file, err);
    int st = system(cmd);
    cr_assert_eq(WEXITSTATUS(st), 2);
    char *text = slurp(err);
    cr_assert(text && strstr(text, "has nothing to load") && strstr(text, file), "%s", text ? text : "");
    free(text);
    free(cmd);
    free(err);
    free(file);
}

Test(conductor, kill_9_of_the_whole_group_leaves_readable_traces, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("k9", &file, &out);
    /* every process of the run at once: the conductor and its children (each in a group
     * of its own) */
    char *all = bd_strfmt("pkill -KILL -f -- '[-]-run-dir %s '; kill -KILL %d", out, (int)pid);
    cr_assert_eq(system(all), 0);
    free(all);
    int st;
    waitpid(pid, &st, 0);
    usleep(200000);
    char *log = bd_strfmt("/tmp/bd-test-run-%d-k9.txt", (int)getpid());
    cr_assert_eq(run_cmd("%s replay %s > %s", out, log), 0, "bodhi replay reads a killed run");
    char *text = slurp(log);
    cr_assert(text && strstr(text, "no summary.json") && strstr(text, "repaired"), "%s", text ? text : "");
    free(text);
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        char *py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                             "import h5py\n"
                             "f = h5py.File('%s/run.h5', 'r')\n"
                             "g = f['train/balancer']\n"
                             "assert g['rewards'].shape[0] > 0 and g['sensors'].shape[0] == g['rewards'].shape[0]\n"
                             "\"", out);
        cr_assert_eq(system(py), 0, "plain h5py, as the README shows it, reads the killed run");
        free(py);
    }
    free(log);
    free(out);
    free(file);
}

Test(conductor, killed_brain_fails_the_run_and_its_memory_is_repaired, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("kbrain", &file, &out);
    char *cmd = bd_strfmt("pkill -KILL -f '[b]rain --run-dir %s --phase train --agent balancer'", out);
    cr_assert_eq(system(cmd), 0, "the brain was running");
    double t0 = bd_now();
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit 1 (status %d)", st);
    cr_assert(bd_now() - t0 < 5, "the run ended within 5 s (%.1f s)", bd_now() - t0);
    char *text = read_summary(out);
    cr_assert(strstr(text, "\"failed\"") && strstr(text, "brain balancer was killed by signal 9 (Killed)"), "%s", text);
    free(text);
    char *left = bd_strfmt("pgrep -f -- '[-]-run-dir %s ' > /dev/null", out);
    cr_assert_neq(system(left), 0, "no bodhi process of the run is left");
    free(left);
    text = NULL;
    free(text);
    char *log = bd_strfmt("%s/log.jsonl", out);
    cr_assert_eq(count_lines_with(log, "\"event\":\"repaired\""), 1, "the conductor repaired the brain's memory");
    free(log);
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        char *py = bd_strfmt("/usr/bin/python3 -c \"import h5py; h5py.File('%s/memory/train.balancer.h5', 'r')\"", out);
        cr_assert_eq(system(py), 0, "plain h5py opens the dead brain's file");
        free(py);
    }
    free(cmd);
    free(out);
    free(file);
}

/* Several processes claim one folder at once (an old run in it): exactly one wins, and its
 * lock is the one at DIR/run.lock. 60 rounds. */
Test(conductor, concurrent_claims_of_one_folder_have_one_winner, .timeout = 120 * BD_TEST_SLOW)
{
    char *dir = bd_strfmt("/tmp/bd-claim-%d/run", (int)getpid());
    for (int round = 0; round < 60; round++) {
        char *cmd = bd_strfmt("rm -rf /tmp/bd-claim-%d && mkdir -p %s && touch %s/run.yml %s/log.jsonl",
                              (int)getpid(), dir, dir, dir);
        cr_assert_eq(system(cmd), 0);
        free(cmd);
        enum { N = 12 };
        int pipes[N][2], release[2];
        pid_t kids[N];
        cr_assert_eq(pipe(release), 0);
        for (int i = 0; i < N; i++) {
            cr_assert_eq(pipe(pipes[i]), 0);
            kids[i] = fork();
            if (kids[i] == 0) {
                close(release[1]);
                bd_rundir rd;
                int rc = bd_rundir_claim(dir, &rd);
                char c = rc == BD_OK ? 'w' : 'l';
                if (write(pipes[i][1], &c, 1) != 1)
                    _exit(3);
                /* hold it until every claimer has answered (a run that ends frees the
                 * folder for the next one, which is not what this test is about) */
                char x;
                while (read(release[0], &x, 1) > 0)
                    ;
                _exit(rc == BD_OK ? 0 : 1);
            }
        }
        close(release[0]);
        int winners = 0;
        for (int i = 0; i < N; i++) {
            char c = 0;
            cr_assert_eq(read(pipes[i][0], &c, 1), 1);
            winners += c == 'w';
        }
        /* while the winner holds it, its lock is the file at dir/run.lock */
        char *lock = bd_strfmt("%s/run.lock", dir);
        int fd = open(lock, O_RDONLY);
        cr_assert(fd >= 0, "round %d: no run.lock", round);
        cr_assert_neq(flock(fd, LOCK_EX | LOCK_NB), 0, "round %d: the folder's lock is held", round);
        close(fd);
        free(lock);
        close(release[1]);
        for (int i = 0; i < N; i++) {
            int st;
            waitpid(kids[i], &st, 0);
            close(pipes[i][0]);
            close(pipes[i][1]);
        }
        cr_assert_eq(winners, 1, "round %d: %d processes claimed the folder", round, winners);
    }
    char *cmd = bd_strfmt("rm -rf /tmp/bd-claim-%d", (int)getpid());
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(dir);
}

Test(conductor, out_onto_dot_slash_or_a_symlink_is_refused)
{
    char *file = write_run("dots", 256);
    cr_assert_eq(run_cmd("cd /tmp && %s run %s --out . --quiet 2> /dev/null", file, ""), 2, "--out .");
    cr_assert_eq(run_cmd("%s run %s --out / --quiet 2> /dev/null%s", file, ""), 2, "--out /");
    char *dir = bd_strfmt("/tmp/bd-run-%d-dots", (int)getpid()), *link = bd_strfmt("%s-link", dir);
    cr_assert_eq(bd_mkdirs(dir), BD_OK);
    unlink(link);
    cr_assert_eq(symlink(dir, link), 0);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", file, link), 2, "a symlink");
    /* a trailing slash is the same folder: a second run moves the first aside */
    char *slash = bd_strfmt("%s/run/", dir);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", file, slash), 0);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", file, slash), 0, "again, with the slash");
    char *prev = bd_strfmt("ls -d %s/run.prev-* > /dev/null", dir);
    cr_assert_eq(system(prev), 0);
    free(prev);
    free(slash);
    free(link);
    free(dir);
    free(file);
}

Test(conductor, no_child_outlives_a_killed_conductor, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("k9cond", &file, &out);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    double t0 = bd_now();
    char *left = bd_strfmt("pgrep -f -- '[-]-run-dir %s ' > /dev/null", out);
    while (system(left) == 0 && bd_now() - t0 < 10)
        usleep(50000);
    double took = bd_now() - t0;
    /* What is asserted is that none outlives it; the bound is loose (here they go in
     * about 0.1 s) because a loaded CI machine took 2.2 s while the brain saved its
     * checkpoint, and speed is for benchmarks, not for unit tests. */
    cr_assert(took < 8, "children gone %.2f s after the conductor", took);
    /* the brain saved what it learnt on its way out */
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert(bd_exists(ck));
    free(ck);
    /* the killed conductor could not remove its socket folder; the next run at the same
     * --out, which moves the dead run aside, does */
    char *link = bd_strfmt("%s/sockets", out), sock[4096];
    ssize_t n = readlink(link, sock, sizeof sock - 1);
    cr_assert(n > 0, "%s", link);
    sock[n] = '\0';
    cr_assert(bd_exists(sock), "the dead run's socket folder %s", sock);
    char *again = write_run("k9cond2", 600);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", again, out), 0);
    cr_assert(!bd_exists(sock), "the dead run's socket folder %s is still there", sock);
    free(again);
    free(link);
    free(left);
    free(out);
    free(file);
}

/* A dead run's directory made by hand at /tmp/bd-run-<pid>-<tag> (run.yml, log.jsonl, a
 * run.lock nobody holds) whose `sockets` link points at sock, then a short run at it, which
 * moves the dead run aside (exit 0). Returns the directory (the caller's; remove it with
 * its .prev-* copies). */
static char *run_over_dead_run_linked_to(const char *tag, const char *sock)
{
    char *out = bd_strfmt("/tmp/bd-run-%d-%s", (int)getpid(), tag);
    char *cmd = bd_strfmt("rm -rf %s %s.prev-* && mkdir -p %s && touch %s/run.yml %s/log.jsonl %s/run.lock && "
                          "ln -s %s %s/sockets",
                          out, out, out, out, out, out, sock, out);
    cr_assert_eq(system(cmd), 0);
    char *file = write_run(tag, 600);
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet 2> /dev/null", file, out), 0);
    free(cmd);
    free(file);
    return out;
}

/* A dead run's `sockets` link may point at a live run's socket folder (a copy of a live
 * run's directory keeps the link): its sockets answer, so the next run at the copy leaves
 * the folder alone and the live run goes on answering. */
Test(conductor, a_dead_runs_socket_link_to_a_live_run_is_left_alone, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("livesock", &file, &out);
    char *link = bd_strfmt("%s/sockets", out), sock[4096];
    ssize_t n = readlink(link, sock, sizeof sock - 1);
    cr_assert(n > 0, "%s", link);
    sock[n] = '\0';
    char *copy = run_over_dead_run_linked_to("livecopy", sock);
    cr_assert(bd_exists(sock), "the live run's socket folder %s was removed", sock);
    /* it answers (a loaded machine may keep a status request waiting past its deadline:
     * asked again) */
    int answered = 0;
    for (double t0 = bd_now(); !answered && bd_now() - t0 < 20 * BD_TEST_SLOW;)
        answered = run_cmd("%s status %s > /dev/null 2>&1%s", out, "") == 0 || (usleep(200000), 0);
    cr_assert(answered, "the live run still answers");
    kill(-pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    char *cmd = bd_strfmt("rm -rf %s %s.prev-*", copy, copy);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(copy);
    free(link);
    free(out);
    free(file);
}

/* A dead run's `sockets` link is followed only to a folder bodhi could have made and holding
 * sockets alone: a link to a folder of the user's files (here one named as bodhi names
 * its socket folders, holding a file) is left as it is when the next run moves the dead
 * run aside. */
Test(conductor, a_dead_runs_socket_link_to_other_files_is_left_alone, .timeout = 60 * BD_TEST_SLOW)
{
    char tmpl[] = "/tmp/bodhi-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    char *keep = bd_strfmt("%s/notes.txt", tmpl);
    cr_assert_eq(bd_write_file(keep, "mine\n", 5), BD_OK);
    char *out = run_over_dead_run_linked_to("deadsock", tmpl);
    cr_assert(bd_exists(keep), "%s was removed", keep);
    char *cmd = bd_strfmt("rm -rf %s %s %s.prev-*", tmpl, out, out);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(out);
    free(keep);
}

/* Garbage into a socket: an NNG REQ sending bytes that are no bodhi message (and a bodhi
 * header that lies), and, on TCP, a raw connection writing bytes that are not NNG at all.
 * Neither may change the run. (Raw bytes into an ipc socket stop its listener in Debian
 * 12's NNG 1.5.2, nanomsg/nng#1518; bodhi's ipc sockets are in a 0700 folder.) */
static void throw_garbage(const char *url)
{
    nng_socket s;
    if (nng_req0_open(&s) == 0) {
        nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 500);
        if (nng_dial(s, url, NULL, 0) == 0) {
            nng_send(s, "not a bodhi message", 19, 0);
            uint8_t lie[40] = {0x42, 0x44, 0x48, 0x49, 2, 0, 3, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
            nng_socket s2;
            if (nng_req0_open(&s2) == 0) {
                nng_socket_set_ms(s2, NNG_OPT_SENDTIMEO, 500);
                if (nng_dial(s2, url, NULL, 0) == 0)
                    nng_send(s2, lie, sizeof lie, 0);
                usleep(100000);
                nng_close(s2);
            }
        }
        usleep(100000);
        nng_close(s);
    }
    /* raw bytes, below NNG's handshake; and a connection that closes at once */
    if (strncmp(url, "tcp://", 6) == 0) {
        char *scan = bd_strfmt("python3 -c \"import socket; h, p = '%s'[6:].rsplit(':', 1); "
                               "socket.create_connection((h, int(p))).close()\" 2> /dev/null", url);
        if (system(scan) != 0) {}
        free(scan);
        char *cmd = bd_strfmt("python3 -c \"import socket; h, p = '%s'[6:].rsplit(':', 1); s = socket.create_connection((h, int(p))); "
                              "s.sendall(bytes(range(256)) * 2); s.close()\" 2> /dev/null", url);
        if (system(cmd) != 0) {}
        free(cmd);
    }
}

Test(conductor, a_remote_muscle_completes_a_run_and_garbage_changes_nothing, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run_with("remote", 30000, ", remote_worker: 1");
    int port = bd_test_port();
    char *listen = bd_strfmt("tcp://127.0.0.1:%d", port);
    char *out = bd_strfmt("/tmp/bd-run-%d-remote", (int)getpid());
    pid_t run = fork();
    if (run == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", 1);
        dup2(null, 2);
        execl(BODHI_BINARY, "bodhi", "run", file, "--out", out, "--quiet", "--listen", listen, (char *)NULL);
        _exit(127);
    }
    /* garbage before the muscle joins, and while the phase runs */
    char *key = bd_strfmt("%s/remote.key", out);
    wait_for(key, 30);
    free(key);
    throw_garbage(listen);
    char *merr = bd_strfmt("%s.muscle-stderr", out); /* beside the run: what the muscle said */
    pid_t mus = fork();
    if (mus == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int errfd = open(merr, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(errfd, 2);
        char *key = bd_strfmt("%s/remote.key", out); /* the run's credential (mutual TLS) */
        execl(BODHI_BINARY, "bodhi", "muscle", "--connect", listen, "--credential", key, "--wait", "60", (char *)NULL);
        _exit(127);
    }
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    char *sockdir = NULL;
    cr_assert_eq(bd_sockdir_find(out, &sockdir), BD_OK);
    char *ctl = bd_strfmt("ipc://%s/control", sockdir), *brain = bd_strfmt("ipc://%s/p0-b0", sockdir);
    throw_garbage(ctl);
    throw_garbage(brain);
    throw_garbage(listen);
    int st;
    waitpid(run, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run completes (status %d)", st);
    waitpid(mus, &st, 0);
    char *said = slurp(merr);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the remote muscle ends with the run (status %d); it said: %s",
              st, said ? said : "(nothing)");
    free(said);
    unlink(merr);
    free(merr);
    cr_assert(count_lines_with(log, "\"event\":\"joined\"") >= 1 && count_lines_with(log, "\"event\":\"left\"") >= 1,
              "log.jsonl records the remote muscle joining and leaving");
    cr_assert_eq(count_lines_with(log, "\"event\":\"restarted\""), 0);
    cJSON *s = summary_json(out);
    cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 0), "agents"), 0);
    cr_assert(cJSON_GetObjectItem(a0, "steps")->valuedouble >= 30000);
    cJSON_Delete(s);
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0, "the trace holds both muscles' worlds");
    if (system("/usr/bin/python3 -c 'import h5py' 2>/dev/null") == 0) {
        char *py = bd_strfmt("/usr/bin/python3 -c \"import h5py, numpy as np; f = h5py.File('%s/run.h5', 'r'); "
                             "x = f['train/balancer/sensors'][:]; assert not np.isnan(x).any(), 'a muscle missed a round'\"",
                             out);
        cr_assert_eq(system(py), 0, "every world of both muscles in every round");
        free(py);
    }
    free(ctl);
    free(brain);
    free(sockdir);
    free(log);
    free(out);
    free(listen);
    free(file);
}

/* ---- the run-file gate: broken files, every problem at once, nothing written -------- */

/* The "# expect: LINE:COL: message" lines at the end of a broken run file. */
static int read_expectations(const char *text, char lines[][512], int max)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, "# expect: ")) && n < max; p++) {
        p += strlen("# expect: ");
        size_t len = strcspn(p, "\n");
        cr_assert_lt(len, 512);
        memcpy(lines[n], p, len);
        lines[n][len] = '\0';
        n++;
    }
    return n;
}

Test(conductor, every_broken_run_file_is_refused_with_all_its_problems, .timeout = 300 * BD_TEST_SLOW)
{
    /* tests/runfiles/bad/: each file ends with the problems `bodhi check` must name, in
     * file order, as FILE:LINE:COL: message; none more, none fewer */
    cr_assert_eq(chdir(BODHI_SOURCE_DIR), 0);
    FILE *ls = popen("ls tests/runfiles/bad/*.yml", "r");
    cr_assert_not_null(ls);
    char path[512];
    int files = 0;
    while (fgets(path, sizeof path, ls)) {
        path[strcspn(path, "\n")] = '\0';
        char *text = NULL;
        cr_assert_eq(bd_read_file(path, &text, NULL), BD_OK);
        static char want[16][512];
        int nwant = read_expectations(text, want, 16);
        free(text);
        cr_assert_gt(nwant, 0, "%s has no '# expect:' line", path);
        /* bodhi check's own code path, its output captured */
        bd_diags d = BD_DIAGS_INIT;
        bd_runfile *rf = NULL;
        bd_check_opts co = {.path = path};
        int rc = bd_config_check(&co, bd_registry_builtin(), &d, &rf);
        cr_assert_neq(rc, BD_OK, "%s passed the check", path);
        cr_assert_null(rf);
        char *got = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&got, &len);
        bd_diags_print(&d, m, 0);
        fclose(m);
        cr_assert_eq(d.n, nwant, "%s: %d problems found, %d expected:\n%s", path, d.n, nwant, got);
        char *line = got;
        for (int k = 0; k < nwant; k++) {
            char *expect = bd_strfmt("%s:%s", path, want[k]);
            size_t el = strlen(expect);
            cr_assert(strncmp(line, expect, el) == 0 && line[el] == '\n', "%s: problem %d:\n got %.*s\nwant %s", path,
                      k + 1, (int)strcspn(line, "\n"), line, expect);
            line += el + 1;
            free(expect);
        }
        free(got);
        bd_diags_fini(&d);
        files++;
    }
    pclose(ls);
    cr_assert_geq(files, 40, "only %d broken run files", files);
}

Test(conductor, a_broken_run_file_exits_2_and_touches_nothing, .timeout = 120 * BD_TEST_SLOW)
{
    /* an earlier run's folder stays where it is, and a new folder is not made */
    char *old = bd_strfmt("/tmp/bd-run-%d-untouched", (int)getpid());
    char *marker = bd_strfmt("%s/run.yml", old);
    char *fresh = bd_strfmt("/tmp/bd-run-%d-never-made", (int)getpid());
    cr_assert_eq(bd_mkdirs(old), BD_OK);
    cr_assert_eq(bd_write_file(marker, "uid: earlier\n", 13), BD_OK);
    const char *files[] = {"many_problems", "worlds_2_31", "seed_2_64", "test_first_nothing_to_load",
                           "minibatches_over_batch", "yaml_tab"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *f = bd_strfmt("%s/tests/runfiles/bad/%s.yml", BODHI_SOURCE_DIR, files[i]);
        cr_assert_eq(run_cmd("%s run %s --out %s 2> /dev/null", f, old), 2, "%s", files[i]);
        cr_assert_eq(run_cmd("%s run %s --out %s 2> /dev/null", f, fresh), 2, "%s", files[i]);
        cr_assert_eq(run_cmd("%s check %s%s > /dev/null 2>&1", f, ""), 2, "%s", files[i]);
        free(f);
    }
    struct stat st;
    cr_assert_eq(stat(marker, &st), 0, "the earlier run was moved");
    cr_assert_neq(stat(fresh, &st), 0, "a folder was made for a run that cannot run");
    /* --seed goes through the run file's rules, before the folder is touched */
    char *good = write_run("seedcheck", 64);
    cr_assert_eq(run_cmd("%s run %s --seed -1 --out %s 2> /dev/null", good, old), 2);
    cr_assert_eq(run_cmd("%s run %s --seed 18446744073709551616 --out %s 2> /dev/null", good, old), 2);
    cr_assert_eq(run_cmd("%s run %s --device tpu --out %s 2> /dev/null", good, old), 2);
    cr_assert_eq(stat(marker, &st), 0, "the earlier run was moved");
    /* --out under a file, checked by bodhi check as bodhi run would be */
    char *under = bd_strfmt("%s/sub", marker);
    cr_assert_eq(run_cmd("%s check %s --out %s > /dev/null 2>&1", good, under), 2);
    cr_assert_eq(run_cmd("%s run %s --out %s 2> /dev/null", good, under), 2);
    free(under);
    /* a NUL byte, and --seed on a file that is not a map */
    char *odd = bd_strfmt("/tmp/bd-test-run-%d-odd.yml", (int)getpid());
    FILE *f = fopen(odd, "w");
    fprintf(f, SHORT_RUN, 64);
    fputc('\0', f);
    fputs("garbage: [\n", f);
    fclose(f);
    char *err = bd_strfmt("/tmp/bd-test-run-%d-odd.err", (int)getpid()), *text = NULL;
    cr_assert_eq(run_cmd("%s check %s 2> %s", odd, err), 2);
    cr_assert_eq(bd_read_file(err, &text, NULL), BD_OK);
    cr_assert(strstr(text, "holds a NUL byte"), "%s", text);
    free(text);
    f = fopen(odd, "w");
    fputs("- a\n- b\n", f);
    fclose(f);
    cr_assert_eq(run_cmd("%s run %s --seed 3 2> %s", odd, err), 2);
    cr_assert_eq(bd_read_file(err, &text, NULL), BD_OK);
    cr_assert(strstr(text, ":1:1: a run file must be a map"), "%s", text);
    free(text);
    unlink(odd);
    unlink(err);
    free(odd);
    free(err);
    char *cmd = bd_strfmt("rm -rf %s", old);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(good);
    free(old);
    free(marker);
    free(fresh);
}

Test(conductor, a_test_only_run_file_evaluates_an_earlier_runs_checkpoint, .timeout = 300 * BD_TEST_SLOW)
{
    /* train in runs/short of a fresh working directory, as a user would */
    char *cwd = bd_strfmt("/tmp/bd-run-%d-xrun", (int)getpid());
    char *cmd = bd_strfmt("rm -rf %s && mkdir -p %s", cwd, cwd);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    char *train = write_run("xtrain", 512);
    cmd = bd_strfmt("cd %s && %s run %s --quiet 2> /dev/null", cwd, BODHI_BINARY, train);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 0);
    free(cmd);
    const char *eval =
        "uid: evaluate\n"
        "seed: 11\n"
        "schedule:\n"
        "  - evaluate:\n"
        "      environments:\n"
        "        - environment: {name: CartPole-v1, uid: pole, params: {worlds: 4}}\n"
        "      agents:\n"
        "        - name: judge\n"
        "          brain: {name: ppo, params: {rollout_steps: 32, hidden: %d}}\n"
        "          muscle: {name: ppo}\n"
        "          sensors: [pole.*]\n"
        "          actuators: [pole.push]\n"
        "          load: {experiment_run: %s, agent: balancer}\n"
        "      phase_config: {mode: test, episodes: 5}\n";
    char *file = bd_strfmt("%s/eval.yml", cwd);
    char *rundir = bd_strfmt("%s/runs/short", cwd);
    const char *runs[] = {"short", rundir}; /* a uid under runs/, and a path */
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(file, "w");
        fprintf(f, eval, 16, runs[k]);
        fclose(f);
        cmd = bd_strfmt("cd %s && %s check eval.yml > /dev/null 2>&1", cwd, BODHI_BINARY);
        cr_assert_eq(WEXITSTATUS(system(cmd)), 0, "%s", runs[k]);
        free(cmd);
        cmd = bd_strfmt("cd %s && %s run eval.yml --out ev%d --quiet 2> /dev/null", cwd, BODHI_BINARY, k);
        cr_assert_eq(WEXITSTATUS(system(cmd)), 0, "%s", runs[k]);
        free(cmd);
        /* run.yml names the checkpoint's run by its absolute path */
        char *yml = bd_strfmt("%s/ev%d/run.yml", cwd, k), *text = NULL;
        cr_assert_eq(bd_read_file(yml, &text, NULL), BD_OK);
        char *want = bd_strfmt("experiment_run: \"%s\"", rundir);
        cr_assert(strstr(text, want), "%s", text);
        free(want);
        free(text);
        free(yml);
        char *out = bd_strfmt("%s/ev%d", cwd, k);
        cJSON *s = summary_json(out);
        cJSON *ph = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 0);
        cr_assert_str_eq(cJSON_GetObjectItem(ph, "reason")->valuestring, "episodes_done");
        cJSON_Delete(s);
        free(out);
    }
    /* a network of another shape is refused by the check, before anything is written */
    FILE *f = fopen(file, "w");
    fprintf(f, eval, 32, "short");
    fclose(f);
    char *err = bd_strfmt("%s/err.txt", cwd);
    cmd = bd_strfmt("cd %s && %s run eval.yml --out ev9 2> %s", cwd, BODHI_BINARY, err);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
    free(cmd);
    char *text = NULL;
    cr_assert_eq(bd_read_file(err, &text, NULL), BD_OK);
    cr_assert(strstr(text, "eval.yml:13:17: load: agent 'judge' cannot start from") && strstr(text, "mismatch"),
              "%s", text);
    free(text);
    struct stat st;
    char *ev9 = bd_strfmt("%s/ev9", cwd);
    cr_assert_neq(stat(ev9, &st), 0);
    free(ev9);
    /* nor may a run write into the run it loads from */
    f = fopen(file, "w");
    fprintf(f, eval, 16, "short");
    fclose(f);
    cmd = bd_strfmt("cd %s && %s run eval.yml --out runs/short 2> /dev/null", cwd, BODHI_BINARY);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 2);
    free(cmd);
    char *ckpt = bd_strfmt("%s/checkpoints/train/balancer.pt", rundir);
    cr_assert_eq(stat(ckpt, &st), 0, "the earlier run stays where it was");
    free(ckpt);
    cmd = bd_strfmt("rm -rf %s", cwd);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(err);
    free(file);
    free(rundir);
    free(train);
    free(cwd);
}

/* A sac agent that loads an earlier run's checkpoint: `bodhi check` reads it in sac's own
 * format, so one of another shape, or another kind's, is refused naming the load: line
 * before anything is written, and one that fits passes and runs. */
Test(conductor, a_sac_load_from_an_earlier_run_is_checked, .timeout = 300 * BD_TEST_SLOW)
{
    char *cwd = bd_strfmt("/tmp/bd-run-%d-sacrun", (int)getpid());
    char *cmd = bd_strfmt("rm -rf %s && mkdir -p %s", cwd, cwd);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    const char *yml =
        "uid: %s\n"
        "schedule:\n"
        "  - %s:\n"
        "      environments:\n"
        "        - environment: {name: Pendulum-v1, uid: pend, params: {worlds: 4}}\n"
        "      agents:\n"
        "        - name: %s\n"
        "          brain: {name: %s, params: {rollout_steps: 16, hidden: %d%s}}\n"
        "          muscle: {name: %s}\n"
        "          sensors: [pend.*]\n"
        "          actuators: [pend.torque]\n"
        "%s"
        "      phase_config: {mode: %s, worker: 1%s}\n"
        "      simulation: {name: vanilla, conditions: [{name: max_steps, params: {steps: 512}}]}\n";
    char *file = bd_strfmt("%s/sac.yml", cwd);
    FILE *f = fopen(file, "w");
    fprintf(f, yml, "sactrain", "train", "swinger", "sac", 16, ", learning_starts: 64, batch_size: 32", "sac", "",
            "train", "");
    fclose(f);
    cmd = bd_strfmt("cd %s && %s run sac.yml --quiet 2> /dev/null", cwd, BODHI_BINARY);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 0);
    free(cmd);
    char *err = bd_strfmt("%s/err.txt", cwd);
    struct {
        const char *kind;
        int hidden, rc;
        const char *says;
    } cases[] = {{"sac", 16, 0, NULL},
                 {"sac", 32, 2, "architecture mismatch"},
                 {"ppo", 16, 2, "cannot start from"}};
    for (int k = 0; k < 3; k++) {
        f = fopen(file, "w");
        fprintf(f, yml, "saceval", "evaluate", "judge", cases[k].kind, cases[k].hidden, "", cases[k].kind,
                "          load: {experiment_run: sactrain, agent: swinger}\n", "test", ", episodes: 2");
        fclose(f);
        cmd = bd_strfmt("cd %s && %s run sac.yml --out ev%d --quiet 2> %s", cwd, BODHI_BINARY, k, err);
        cr_assert_eq(WEXITSTATUS(system(cmd)), cases[k].rc, "%s hidden %d", cases[k].kind, cases[k].hidden);
        free(cmd);
        char *text = NULL, *ev = bd_strfmt("%s/ev%d", cwd, k);
        cr_assert_eq(bd_read_file(err, &text, NULL), BD_OK);
        struct stat st;
        if (cases[k].says) {
            cr_assert(strstr(text, "sac.yml:12:17: load: agent 'judge' cannot start from") &&
                          strstr(text, cases[k].says), "%s", text);
            cr_assert_neq(stat(ev, &st), 0, "a refused run wrote %s", ev);
        }
        free(text);
        free(ev);
    }
    cmd = bd_strfmt("rm -rf %s", cwd);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(err);
    free(file);
    free(cwd);
}

/* Two dqn agents of one phase whose replay buffers each fit this machine (0.45 of its
 * memory, under the 0.8 one brain may ask) and together do not: `bodhi check` refuses the
 * phase, naming both and the sum, before anything is written; either agent alone passes. */
Test(conductor, brains_that_fit_alone_but_not_together_are_refused)
{
    const double phys = bd_phys_bytes();
    const double row = bd_replay_bytes(1000000, 4, 1, 4) / 1e6; /* bytes a transition, CartPole's */
    const long long cap = (long long)(0.45 * phys / row);
    char *file = bd_strfmt("/tmp/bd-test-%d-twoq.yml", (int)getpid()), *err = bd_strfmt("%s.err", file);
    const char *agent = "        - name: q%c\n"
                        "          brain: {name: dqn, params: {buffer_size: %lld}}\n"
                        "          muscle: {name: dqn}\n"
                        "          sensors: [%c.*]\n"
                        "          actuators: [%c.push]\n";
    for (int both = 0; both < 2; both++) {
        FILE *f = fopen(file, "w");
        cr_assert_not_null(f);
        fprintf(f, "uid: twoq\nschedule:\n  - train:\n      environments:\n"
                   "        - environment: {name: CartPole-v1, uid: a, params: {worlds: 4}}\n"
                   "        - environment: {name: CartPole-v1, uid: b, params: {worlds: 4}}\n      agents:\n");
        fprintf(f, agent, 'a', cap, 'a', 'a');
        if (both)
            fprintf(f, agent, 'b', cap, 'b', 'b');
        fprintf(f, "      phase_config: {mode: train, worker: 1}\n"
                   "      simulation: {name: vanilla, conditions: [{name: max_steps, params: {steps: 1000}}]}\n");
        fclose(f);
        int rc = run_cmd("%s check %s > /dev/null 2> %s", file, err);
        char *text = NULL;
        cr_assert_eq(bd_read_file(err, &text, NULL), BD_OK);
        cr_assert_eq(rc, both ? 2 : 0, "%s", text);
        if (both)
            cr_assert(strstr(text, ":4:7: phase 'train': its brains need about") && strstr(text, "'qa'") &&
                          strstr(text, "'qb'") && strstr(text, "together"),
                      "%s", text);
        free(text);
    }
    unlink(file);
    unlink(err);
    free(file);
    free(err);
}

Test(conductor, every_experiment_passes_the_check_and_runs, .timeout = 600 * BD_TEST_SLOW)
{
    /* every run file in experiments/, as a user starts it, from a working directory where the example
     * plugin is build/libbodhi_target.so; each runs a few seconds, then Ctrl-C */
    char *cwd = bd_strfmt("/tmp/bd-run-%d-exp", (int)getpid());
    char *cmd = bd_strfmt("rm -rf %s && mkdir -p %s/build && ln -s %s %s/build/libbodhi_target.so", cwd, cwd,
                          BODHI_TARGET_PLUGIN, cwd);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    cmd = bd_strfmt("ls %s/experiments/*.yml", BODHI_SOURCE_DIR);
    FILE *ls = popen(cmd, "r");
    free(cmd);
    char path[1024];
    int files = 0;
    while (fgets(path, sizeof path, ls)) {
        path[strcspn(path, "\n")] = '\0';
        cmd = bd_strfmt("cd %s && %s check %s > /dev/null", cwd, BODHI_BINARY, path);
        cr_assert_eq(WEXITSTATUS(system(cmd)), 0, "bodhi check %s", path);
        free(cmd);
        cmd = bd_strfmt("cd %s && timeout --preserve-status -s INT 6 %s run %s --out run%d --quiet 2> /dev/null", cwd, BODHI_BINARY,
                        path, files);
        int st = WEXITSTATUS(system(cmd));
        free(cmd);
        cr_assert(st == 0 || st == 130, "bodhi run %s exited %d", path, st);
        /* whatever it recorded reads back (a run stopped before its first round, which a
         * loaded machine's 6 s may be for 65536 worlds, recorded nothing to check: exit 1) */
        char *vlog = bd_strfmt("%s/verify%d.txt", cwd, files), *vtext = NULL;
        cmd = bd_strfmt("cd %s && %s replay run%d --verify > %s 2>&1", cwd, BODHI_BINARY, files, vlog);
        const int vrc = WEXITSTATUS(system(cmd));
        cr_assert_eq(bd_read_file(vlog, &vtext, NULL), BD_OK);
        cr_assert(vrc == 0 || (vrc == 1 && strstr(vtext, "--verify: nothing could be checked")),
                  "bodhi replay of %s exited %d:\n%s", path, vrc, vtext);
        free(vtext);
        free(vlog);
        free(cmd);
        files++;
    }
    pclose(ls);
    cr_assert_geq(files, 6);
    cmd = bd_strfmt("rm -rf %s", cwd);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(cwd);
}

/* ---- traces: recording options, final observations, replay's checks, plots, Minari ---- */

/* A copy of text with every `from` replaced by `to`. */
static char *subst_all(const char *text, const char *from, const char *to)
{
    size_t lf = strlen(from), lt = strlen(to), n = 0;
    for (const char *p = text; (p = strstr(p, from)); p += lf)
        n++;
    char *out = malloc(strlen(text) + n * lt + 1), *d = out;
    for (const char *p = text;;) {
        const char *q = strstr(p, from);
        size_t k = q ? (size_t)(q - p) : strlen(p);
        memcpy(d, p, k);
        d += k;
        if (!q)
            break;
        memcpy(d, to, lt);
        d += lt;
        p = q + lf;
    }
    *d = '\0';
    return out;
}

Test(conductor, replay_verifies_plots_and_exports_a_run, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run("replay", 7200); /* 1200 rows of 6 worlds: the docs example reads rows 1000..1100 */
    char *out = bd_strfmt("/tmp/bd-run-%d-replay", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", file, out), 0);
    /* --verify: returns against rewards, and every step re-simulated from seed and setpoints */
    char *log = bd_strfmt("%s/replay.txt", out), *text = NULL;
    char *png = bd_strfmt("%s/curves.png", out), *svg = bd_strfmt("%s/curves.svg", out);
    char *mroot = bd_strfmt("%s/minari", out);
    char *cmd = bd_strfmt("%s replay %s --verify --plot %s --minari %s > %s", BODHI_BINARY, out, png, mroot, log);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 0);
    free(cmd);
    cr_assert_eq(bd_read_file(log, &text, NULL), BD_OK);
    cr_assert(strstr(text, "verify train: re-simulated") && strstr(text, "verify test: re-simulated"), "%s", text);
    cr_assert(strstr(text, "every recorded sensor, reward and flag matches") && !strstr(text, "differ"), "%s", text);
    free(text);
    cr_assert_eq(run_cmd("%s replay %s --plot %s > /dev/null", out, svg), 0);
    /* outputs never land on the run's own files, nor over a dataset already exported */
    char *h5 = bd_strfmt("%s/run.h5", out);
    struct stat before, after;
    cr_assert_eq(stat(h5, &before), 0);
    cr_assert_eq(run_cmd("%s replay %s --csv %s 2> /dev/null", out, h5), 2, "--csv onto run.h5");
    char *mem = bd_strfmt("%s/memory/train.balancer.h5", out), *alias = bd_strfmt("%s-alias.h5", out);
    unlink(alias);
    cr_assert_eq(link(mem, alias), 0);
    cr_assert_eq(run_cmd("%s replay %s --plot %s 2> /dev/null", out, alias), 2, "--plot onto a trace, by a hard link");
    unlink(alias);
    cr_assert_eq(stat(h5, &after), 0);
    cr_assert(after.st_size == before.st_size && after.st_mtime == before.st_mtime, "run.h5 untouched");
    cr_assert_eq(run_cmd("%s replay %s --minari %s > /dev/null 2>&1", out, mroot), 2, "an existing dataset");
    cr_assert_eq(run_cmd("%s replay %s --minari ''%s 2> /dev/null", out, ""), 2, "an empty folder");
    free(mem);
    free(alias);
    free(h5);
    /* the images are whole: a PNG's signature and size, an SVG's text */
    char *img = NULL;
    size_t len = 0;
    cr_assert_eq(bd_read_file(png, &img, &len), BD_OK);
    cr_assert(len > 10000 && memcmp(img, "\x89PNG\r\n\x1a\n", 8) == 0, "%zu bytes", len);
    free(img);
    cr_assert_eq(bd_read_file(svg, &img, &len), BD_OK);
    cr_assert(strstr(img, "<svg") && strstr(img, "</svg>"), "not an SVG");
    free(img);
    /* final observations, the Minari layout, and the docs' pandas example, with h5py */
    char *py = bd_strfmt(
        "cd / && /usr/bin/python3 -c \""
        "import h5py, json, numpy as np\n"
        "f = h5py.File('%s/run.h5', 'r')\n"
        "for ph in ('train', 'test'):\n"
        "    g = f[ph + '/balancer']; ep = g['episodes'][:]; fin = g['final_sensors'][:]; s = g['sensors'][:]\n"
        "    assert fin.shape == (len(ep), 4) and len(ep) > 0\n"
        "    for e, x in zip(ep, fin):\n"
        "        if e['terminated']:\n"
        "            assert abs(x[0]) > 2.4 or abs(x[2]) > 0.20943951, (e, x)\n"
        "        last = s[e['start_step'] + e['length'] - 1, e['world']]\n"
        "        assert np.all(np.abs(x - last) < 1.0), (e, x, last)  # one step after the last row\n"
        "    d = '%s/minari/bd-run-%d-replay/' + ph + '-balancer-v0/data/'\n"
        "    m = json.load(open(d + 'metadata.json'))\n"
        "    assert m['dataset_id'] == 'bd-run-%d-replay/' + ph + '-balancer-v0' and m['data_format'] == 'hdf5'\n"
        "    assert json.loads(m['action_space']) == {'type': 'Discrete', 'dtype': 'int64', 'start': 0, 'n': 2}\n"
        "    box = json.loads(m['observation_space']); assert box['type'] == 'Box' and box['shape'] == [4]\n"
        "    h = h5py.File(d + 'main_data.hdf5', 'r')\n"
        "    assert m['total_episodes'] == len(h) > 0\n"
        "    steps = 0\n"
        "    for k in range(len(h)):\n"
        "        e = h['episode_%%d' %% k]; T = int(e.attrs['total_steps']); steps += T\n"
        "        assert e['observations'].shape == (T + 1, 4) and e['actions'].shape == (T,)\n"
        "        assert e['actions'].dtype == np.int64 and e['rewards'].dtype == np.float64\n"
        "        t, u = e['terminations'][:], e['truncations'][:]\n"
        "        assert t.dtype == bool and u.dtype == bool and (t[-1] or u[-1]) and not (t[:-1].any() or u[:-1].any())\n"
        "        assert 'infos' in e and int(e.attrs['id']) == k\n"
        "    assert steps == m['total_steps']\n"
        "\"", out, out, (int)getpid(), (int)getpid());
    cr_assert_eq(system(py), 0, "final observations and the Minari datasets");
    free(py);
    /* docs/trace-format.md's pandas example, as written there, on this run */
    char *doc = NULL, *docpath = bd_strfmt("%s/docs/trace-format.md", BODHI_SOURCE_DIR);
    cr_assert_eq(bd_read_file(docpath, &doc, NULL), BD_OK);
    char *start = strstr(doc, "### With pandas");
    cr_assert_not_null(start);
    start = strstr(start, "```python\n") + 10;
    char *end = strstr(start, "```\n");
    *end = '\0';
    char *example = subst_all(start, "runs/cartpole-ppo", out);
    char *script = bd_strfmt("%s/pandas_example.py", out);
    cr_assert_eq(bd_write_file(script, example, strlen(example)), BD_OK);
    cmd = bd_strfmt("cd / && /usr/bin/python3 %s > /dev/null", script);
    cr_assert_eq(WEXITSTATUS(system(cmd)), 0, "the docs' pandas example runs");
    free(cmd);
    free(script);
    free(example);
    free(doc);
    free(docpath);
    /* a recorded setpoint changed: the re-simulation finds the step */
    py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                   "import h5py\n"
                   "f = h5py.File('%s/memory/train.balancer.h5', 'r+')\n"
                   "a = f['train/balancer/actuators']; a[100, 3, 0] = 1 - a[100, 3, 0]\n"
                   "\"", out);
    cr_assert_eq(system(py), 0);
    free(py);
    text = verify_run(out, 1);
    cr_assert(strstr(text, "verify train/balancer: world 3 first differs at step 101"), "%s", text);
    free(text);
    /* ... and a recorded end of episode taken away (the setpoint put back) */
    py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                   "import h5py, numpy as np\n"
                   "f = h5py.File('%s/memory/train.balancer.h5', 'r+')\n"
                   "a = f['train/balancer/actuators']; a[100, 3, 0] = 1 - a[100, 3, 0]\n"
                   "t = f['train/balancer/terminated']; x = t[:]; s, w = np.argwhere(x == 1)[0]; x[s, w] = 0; t[...] = x\n"
                   "print(s, w)\n"
                   "\" > %s/flag.txt", out, out);
    cr_assert_eq(system(py), 0);
    free(py);
    char *flag = bd_strfmt("%s/flag.txt", out), *where = NULL;
    cr_assert_eq(bd_read_file(flag, &where, NULL), BD_OK);
    long long fs = 0, fw = 0;
    cr_assert_eq(sscanf(where, "%lld %lld", &fs, &fw), 2);
    text = verify_run(out, 1);
    char *want = bd_strfmt("verify train/balancer: world %lld first differs at step %lld: terminated stored 0, re-simulated 1",
                           fw, fs);
    cr_assert(strstr(text, want), "want %s in\n%s", want, text);
    free(want);
    free(where);
    free(text);
    /* ... and a final observation changed (in the test phase, whose steps are untouched) */
    py = bd_strfmt("cd / && /usr/bin/python3 -c \""
                   "import h5py\n"
                   "f = h5py.File('%s/memory/test.balancer.h5', 'r+')\n"
                   "e = f['test/balancer/episodes'][0]; fs = f['test/balancer/final_sensors']\n"
                   "x = fs[0]; x[1] += 0.5; fs[0] = x\n"
                   "print(e['start_step'] + e['length'] - 1, e['world'])\n"
                   "\" > %s/flag.txt", out, out);
    cr_assert_eq(system(py), 0);
    free(py);
    cr_assert_eq(bd_read_file(flag, &where, NULL), BD_OK);
    cr_assert_eq(sscanf(where, "%lld %lld", &fs, &fw), 2);
    text = verify_run(out, 1);
    want = bd_strfmt("verify test/balancer: world %lld first differs at step %lld: the final pole.x_dot of its episode",
                     fw, fs);
    cr_assert(strstr(text, want), "want %s in\n%s", want, text);
    free(want);
    free(where);
    free(flag);
    free(text);
    /* a finished run whose trace file was lost: said, and --verify fails */
    char *lost = bd_strfmt("%s/memory/test.balancer.h5", out);
    cr_assert_eq(unlink(lost), 0);
    text = verify_run(out, 1);
    cr_assert(strstr(text, "test/balancer: missing:"), "%s", text);
    free(text);
    free(lost);
    free(log);
    free(png);
    free(svg);
    free(mroot);
    free(out);
    free(file);
}

Test(conductor, recording_options_keep_what_they_say, .timeout = 300 * BD_TEST_SLOW)
{
    /* the plugin env's two actuators: one agent every 2nd step of 3 worlds through Blosc,
     * the other no steps at all; both keep every episode with its final observation */
    char *yml = bd_strfmt("/tmp/bd-test-run-%d-rec.yml", (int)getpid());
    char *text = bd_strfmt(
        "uid: rec\nseed: 4\nschedule:\n  - train:\n"
        "      environments:\n"
        "        - environment: {name: '%s:bd_target_env', uid: p, params: {worlds: 6, max_steps: 20}}\n"
        "      agents:\n"
        "        - name: a\n"
        "          brain: {name: random, params: {rollout_steps: 25}}\n"
        "          muscle: {name: random}\n"
        "          sensors: [p.*]\n"
        "          actuators: [p.move_x]\n"
        "          record: {every: 2, worlds: 3, compression: %s}\n"
        "        - name: b\n"
        "          brain: {name: random, params: {rollout_steps: 25}}\n"
        "          muscle: {name: random}\n"
        "          sensors: [p.y]\n"
        "          actuators: [p.move_y]\n"
        "          record: false\n"
        "      simulation: {conditions: [{name: max_steps, params: {steps: 600}}]}\n"
        "      phase_config: {worker: 2}\n",
        BODHI_TARGET_PLUGIN, bd_compression_available(BD_COMPRESS_BLOSC) == BD_OK ? "blosc" : "deflate");
    cr_assert_eq(bd_write_file(yml, text, strlen(text)), BD_OK);
    free(text);
    char *out = bd_strfmt("/tmp/bd-run-%d-rec", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", yml, out), 0);
    char *py = bd_strfmt(
        "cd / && /usr/bin/python3 -c \""
        "import h5py\n"
        "f = h5py.File('%s/run.h5', 'r')\n"
        "a, b = f['train/a'], f['train/b']\n"
        "assert a['sensors'].shape == (50, 3, 4), a['sensors'].shape  # 100 steps, every 2nd, 3 worlds\n"
        "assert a['rewards'].shape == (50, 3) and a.attrs['record_every'] == 2 and a.attrs['record_worlds'] == 3\n"
        "assert a.attrs['worlds'] == 6 and a.attrs['compression'] in ('blosc', 'deflate')\n"
        "assert a['sensors'].compression is not None or a['sensors']._filters, dict(a['sensors']._filters)\n"
        "assert b['sensors'].shape == (0, 6, 1) and b.attrs['record_worlds'] == 0\n"
        "for g in (a, b):\n"
        "    ep = g['episodes'][:]\n"
        "    assert len(ep) >= 6 * 100 // 20 - 6 and set(ep['world']) == set(range(6)), len(ep)\n"
        "    assert g['final_sensors'].shape == (len(ep), g['sensors'].shape[2])\n"
        "\"", out);
    cr_assert_eq(system(py), 0, "recording options");
    free(py);
    char *t = verify_run(out, 0);
    cr_assert(strstr(t, "verify train/a: returns not checked") && strstr(t, "not re-simulated"), "%s", t);
    free(t);
    free(out);
    free(yml);
}

Test(conductor, two_envs_groups_and_rules_run_and_verify, .timeout = 300 * BD_TEST_SLOW)
{
    /* one phase, two environments: Tag with a learning group (taggers, PPO) and a rule-based
     * one (runners: fsm muscle, none brain), and CartPole with a random agent; two muscles
     * split each env's worlds */
    char *yml = bd_strfmt("/tmp/bd-test-run-%d-groups.yml", (int)getpid());
    const char *text =
        "uid: groups\nseed: 3\nschedule:\n  - train:\n"
        "      environments:\n"
        "        - environment: {name: tag, uid: tag, params: {worlds: 5, runners: 6, taggers: 2, arena: 4, max_steps: 30}}\n"
        "        - environment: {name: cartpole, uid: pole, params: {worlds: 3}}\n"
        "      agents:\n"
        "        - name: taggers\n"
        "          brain: {name: ppo, params: {rollout_steps: 20, minibatch_size: 64}}\n"
        "          muscle: {name: ppo}\n"
        "          sensors: [tag.tagger.*]\n"
        "          actuators: [tag.tagger.accel, tag.tagger.turn]\n"
        "        - name: runners\n"
        "          brain: {name: none, params: {rollout_steps: 20}}\n"
        "          muscle:\n"
        "            name: fsm\n"
        "            params:\n"
        "              states:\n"
        "                wander: {action: {accel: 0.3}, transitions: [{to: flee, when: \"n0_tagger == 1 and n0_dist < 0.3\"}]}\n"
        "                flee: {action: {accel: 1}, steer: {away: [n0_dx, n0_dy], turn: turn}, transitions: [{to: wander, when: \"n0_dist > 0.5\", probability: 0.5}]}\n"
        "          sensors: [tag.runner.*]\n"
        "          actuators: [tag.runner.*]\n"
        "        - name: poler\n"
        "          brain: {name: random, params: {rollout_steps: 20}}\n"
        "          muscle: {name: random}\n"
        "          sensors: [pole.*]\n"
        "          actuators: [pole.push]\n"
        "      simulation: {conditions: [{name: max_steps, params: {steps: 1000, agent: taggers}}]}\n"
        "      phase_config: {worker: 2}\n"
        "  - test:\n" /* each agent counts its own episodes: the phase waits for all of them */
        "      simulation: {conditions: []}\n"
        "      phase_config: {mode: test, worker: 2, episodes: 7}\n";
    cr_assert_eq(bd_write_file(yml, text, strlen(text)), BD_OK);
    char *out = bd_strfmt("/tmp/bd-run-%d-groups", (int)getpid());
    cr_assert_eq(run_cmd("%s run %s --out %s --quiet", yml, out), 0);
    char *py = bd_strfmt(
        "cd / && /usr/bin/python3 -c \""
        "import h5py, numpy as np\n"
        "f = h5py.File('%s/run.h5', 'r')\n"
        "t, r, p = f['train/taggers'], f['train/runners'], f['train/poler']\n"
        "T = t['sensors'].shape[0]\n"
        "assert T == 100 and t['sensors'].shape == (T, 10, 41), t['sensors'].shape  # 1000 steps / (5 x 2)\n"
        "assert r['sensors'].shape == (T, 30, 41) and p['sensors'].shape == (T, 3, 4), r['sensors'].shape\n"
        "assert t.attrs['members'] == 2 and r.attrs['members'] == 6 and p.attrs['members'] == 1\n"
        "assert t.attrs['group'] == 'tagger' and r.attrs['group'] == 'runner' and t.attrs['env_uid'] == 'tag'\n"
        "ra = r['actuators'][:]\n"
        "assert ra.min() >= -1 and ra.max() <= 1 and set(np.unique(ra[:, :, 0])) <= {0.3, 1.0} | set(np.float32([0.3]))\n"
        "rt, rr = t['rewards'][:], r['rewards'][:]\n"
        "assert (rt >= 0).all() and (rr <= 0).all() and rt.sum() >= -rr.sum() and rr.sum() < 0, (rt.sum(), rr.sum())\n"
        "ep = r['episodes'][:]\n"
        "assert len(ep) == 30 * 3 and set(ep['length']) == {30} and ep['truncated'].all(), len(ep)  # 100 steps of 30\n"
        "\"", out);
    cr_assert_eq(system(py), 0, "the traces of two envs and two groups");
    free(py);
    cJSON *sum = summary_json(out);
    const cJSON *test = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(sum, "phases"), 1), *ag;
    int agents = 0;
    cJSON_ArrayForEach(ag, cJSON_GetObjectItemCaseSensitive(test, "agents")) {
        cr_assert_eq(cJSON_GetObjectItemCaseSensitive(ag, "episodes")->valueint, 7, "%s",
                     cJSON_GetObjectItemCaseSensitive(ag, "name")->valuestring);
        agents++;
    }
    cr_assert_eq(agents, 3);
    cJSON_Delete(sum);
    char *t = verify_run(out, 0);
    cr_assert(strstr(t, "verify train: re-simulated 100 steps of 5 worlds of tag from seed and setpoints: every recorded"), "%s", t);
    cr_assert(strstr(t, "re-simulated 100 steps of 3 worlds of pole from seed and setpoints: every recorded"), "%s", t);
    free(t);
    free(out);
    free(yml);
}

/* ---- issue 20: nothing lost, nothing misleading ------------------------------------------ */

/* The folder RUN_DIR/sockets points to (the caller frees it). */
static char *socket_folder(const char *out)
{
    char *link = bd_strfmt("%s/sockets", out), target[4096];
    ssize_t n = readlink(link, target, sizeof target - 1);
    cr_assert(n > 0, "%s is not a link", link);
    target[n] = '\0';
    free(link);
    return strdup(target);
}

/* A closed terminal hangs up the whole foreground process group: the run stops as for
 * SIGTERM, with its summary, and leaves no socket folder behind. */
Test(conductor, item03_sighup_stops_the_run_cleanly, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("hup", &file, &out);
    char *socks = socket_folder(out);
    cr_assert(bd_exists(socks));
    kill(-pid, SIGHUP); /* the group, as the terminal does */
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st), "the conductor was killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    cr_assert_eq(WEXITSTATUS(st), 129, "SIGHUP exit code");
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "interrupted");
    cJSON_Delete(s);
    cr_assert(!bd_exists(socks), "%s is removed", socks);
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert(bd_exists(ck), "the brain stopped as for SIGTERM and saved what it had learnt");
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0, "the trace is whole");
    free(ck);
    free(socks);
    free(out);
    free(file);
}

/* Two stop signals at once are one stop: GNU timeout sends its signal to the command and
 * then to its process group, and a closed terminal's SIGHUP can come with a SIGTERM. The
 * conductor took the second for a second Ctrl-C and killed the brains at once, before they
 * saved their checkpoints. Now the brain ends as for one signal (its exit 143, not SIGKILL)
 * with its checkpoint. */
Test(conductor, two_signals_at_once_are_one_stop, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("twosig", &file, &out);
    kill(pid, SIGTERM);
    kill(pid, SIGHUP); /* another signal: never merged with the first by the kernel */
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st), "the conductor was killed by signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    /* the last signal handled: both pending at once are delivered lowest number first */
    cr_assert(WEXITSTATUS(st) == 129 || WEXITSTATUS(st) == 143, "exit %d", WEXITSTATUS(st));
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "interrupted");
    cJSON_Delete(s);
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert(bd_exists(ck), "the brain was killed before it saved what it had learnt");
    char *cmd = bd_strfmt("grep '\"role\":\"brain\"' %s/log.jsonl | grep '\"event\":\"exited\"' | grep -q '\"code\":143'",
                          out);
    cr_assert_eq(system(cmd), 0, "the brain ended on its own (exit 143), not killed: %s", cmd);
    free(cmd);
    free(ck);
    free(out);
    free(file);
}

/* Ctrl-Z then fg, or kill -STOP/-CONT of the conductor for longer than heartbeat_timeout:
 * its children were fine, it was the one not reading their beats. The run completes, no
 * process is taken for hung, and the stop is recorded. */
Test(conductor, item02_paused_conductor_keeps_a_healthy_run, .timeout = 180 * BD_TEST_SLOW)
{
    char *file = write_run_with("pause", 150000, ", heartbeat_timeout: 2");
    char *out = bd_strfmt("/tmp/bd-run-%d-pause", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    kill(pid, SIGSTOP);
    sleep(5); /* 2.5 heartbeat timeouts */
    kill(pid, SIGCONT);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run completes (status %d)", st);
    cr_assert_eq(count_lines_with(log, "hung"), 0, "no process was taken for hung");
    cr_assert_eq(count_lines_with(log, "\"event\":\"restarted\""), 0);
    cr_assert_eq(count_lines_with(log, "\"event\":\"stalled\""), 1, "log.jsonl records the stop");
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "done");
    double stalled = cJSON_GetObjectItem(s, "stalled_s") ? cJSON_GetObjectItem(s, "stalled_s")->valuedouble : 0;
    cr_assert(stalled >= 4.5 && stalled < 30, "summary.json: stalled_s %g", stalled);
    cJSON_Delete(s);
    free(log);
    free(out);
    free(file);
}

/* `bodhi check FILE OPTIONS` exits as `bodhi run FILE OPTIONS` would before writing anything:
 * 2, with the reason, on stderr (the caller frees the text). */
static char *check_says(const char *file, const char *opts, int want)
{
    char *errs = bd_strfmt("/tmp/bd-test-%d-check.txt", (int)getpid());
    char *cmd = bd_strfmt("%s check %s %s > /dev/null 2> %s", BODHI_BINARY, file, opts, errs);
    int st = system(cmd);
    char *text = NULL;
    cr_assert_eq(bd_read_file(errs, &text, NULL), BD_OK);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == want, "bodhi check %s exited %d, not %d:\n%s", opts,
              WEXITSTATUS(st), want, text);
    free(cmd);
    free(errs);
    return text;
}

Test(conductor, item10_check_refuses_what_run_refuses, .timeout = 120 * BD_TEST_SLOW)
{
    char *file = write_run("gate", 2000);
    char *plain = bd_strfmt("/tmp/bd-test-%d-gate-file.txt", (int)getpid());
    cr_assert_eq(bd_write_file(plain, "notes\n", 6), BD_OK);
    struct {
        const char *opts, *says;
    } cases[] = {{"--out %s", "exists and is not a folder"}, /* a file of the user's */
                 {"--out /dev/null", "exists and is not a folder"},
                 {"--out /etc", "does not hold a bodhi run"},
                 {"--out /proc/bodhi-run", "kernel's proc file system"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *opts = bd_strfmt(cases[i].opts, plain);
        char *text = check_says(file, opts, 2);
        cr_assert(strstr(text, cases[i].says), "check %s:\n%s", opts, text);
        free(text);
        /* bodhi run refuses it alike, with exit 2, before writing anything */
        char *cmd = bd_strfmt("%s run %s %s --quiet 2> /dev/null", BODHI_BINARY, file, opts);
        int st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bodhi run %s exited %d", opts, WEXITSTATUS(st));
        free(cmd);
        free(opts);
    }
    char *kept = NULL;
    cr_assert_eq(bd_read_file(plain, &kept, NULL), BD_OK);
    cr_assert_str_eq(kept, "notes\n", "the file is untouched");
    free(kept);
    cr_assert(!bd_exists("/proc/bodhi-run"));

    /* remote muscles need --listen: check says so as run does */
    char *remote = write_run_with("gate-remote", 2000, ", remote_worker: 1");
    char *text = check_says(remote, "", 2);
    cr_assert(strstr(text, "remote muscle(s)") && strstr(text, "--listen"), "%s", text);
    free(text);
    int probe = socket(AF_INET, SOCK_STREAM, 0); /* a port free a moment ago */
    struct sockaddr_in pa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t pl = sizeof pa;
    cr_assert_eq(bind(probe, (struct sockaddr *)&pa, sizeof pa), 0);
    getsockname(probe, (struct sockaddr *)&pa, &pl);
    close(probe);
    char *free_port = bd_strfmt("--listen tcp://127.0.0.1:%d", ntohs(pa.sin_port));
    free(check_says(remote, free_port, 0));
    free(free_port);

    /* --listen on a port in use: refused before the run directory exists */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 1), 0);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    char *busy = bd_strfmt("--listen tcp://127.0.0.1:%d", ntohs(sa.sin_port));
    text = check_says(remote, busy, 2);
    cr_assert(strstr(text, "in use"), "%s", text);
    free(text);
    char *out = bd_strfmt("/tmp/bd-run-%d-gate", (int)getpid());
    char *full = bd_strfmt("%s run %s %s --out %s --quiet 2> /dev/null", BODHI_BINARY, remote, busy, out);
    int st = system(full);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bodhi run %s exited %d", busy, WEXITSTATUS(st));
    cr_assert(!bd_exists(out), "%s was not made", out);
    close(fd);
    free(full);

    /* the folder of a live run */
    char *lfile, *lout;
    pid_t pid = start_long_run("gate-live", &lfile, &lout);
    char *opts = bd_strfmt("--out %s", lout);
    text = check_says(file, opts, 2);
    cr_assert(strstr(text, "a run is in progress"), "%s", text);
    free(text);
    kill(pid, SIGINT);
    waitpid(pid, &st, 0);
    free(check_says(file, opts, 0)); /* once it is over, its folder would be moved aside */
    free(opts);
    free(lfile);
    free(lout);
    free(busy);
    free(out);
    free(remote);
    free(plain);
    free(file);
}

/* What a user reads: a killed process's signal by number and name, a missing run
 * directory named as such, nothing about canceled operations at a normal stop. */
Test(conductor, item13_messages_say_what_happened, .timeout = 180 * BD_TEST_SLOW)
{
    char *errs = bd_strfmt("/tmp/bd-test-%d-status.txt", (int)getpid());
    char *cmd = bd_strfmt("%s status /nonexistent-bodhi-run 2> %s", BODHI_BINARY, errs);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2);
    char *text = slurp(errs);
    cr_assert(strstr(text, "/nonexistent-bodhi-run: no such directory"), "%s", text);
    free(text);
    free(cmd);

    char *file = write_run("msg", 150000);
    char *out = bd_strfmt("/tmp/bd-run-%d-msg", (int)getpid());
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int f = open(errs, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(f, 2);
        execl(BODHI_BINARY, "bodhi", "run", file, "--out", out, (char *)NULL);
        _exit(127);
    }
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    cmd = bd_strfmt("pkill -KILL -f '[m]uscle --run-dir %s --phase train --id 1'", out);
    cr_assert_eq(system(cmd), 0, "muscle 1 was running");
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run completes (status %d)", st);
    text = slurp(errs);
    cr_assert(strstr(text, "muscle 1 was killed by signal 9 (Killed); restarting it"), "%s", text);
    cr_assert_null(strstr(text, "by Killed"), "%s", text);
    cr_assert_null(strstr(text, "canceled"), "%s", text);
    cr_assert_null(strstr(text, "waiting for the brain"), "%s", text);
    free(text);
    free(cmd);
    free(log);
    free(out);
    free(file);
    free(errs);
}

/* A brain killed mid-phase sends no result: summary.json and `bodhi status` report what its
 * trace holds (repaired), not zeros. */
Test(conductor, item07_a_killed_brains_run_reports_what_was_recorded, .timeout = 180 * BD_TEST_SLOW)
{
    char *file = write_run("counts", 50000000);
    char *out = bd_strfmt("/tmp/bd-run-%d-counts", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"update\":3,", 60); /* a few updates in */
    char *cmd = bd_strfmt("pkill -KILL -f '[b]rain --run-dir %s --phase train --agent balancer'", out);
    cr_assert_eq(system(cmd), 0, "the brain was running");
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit 1 (status %d)", st);
    cJSON *s = summary_json(out);
    cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 0), "agents"), 0);
    double steps = cJSON_GetObjectItem(a0, "steps")->valuedouble;
    double episodes = cJSON_GetObjectItem(a0, "episodes")->valuedouble;
    const char *from = cJSON_GetObjectItem(a0, "counted_from")->valuestring;
    /* the trace's own counts: rows x 6 worlds, and its episodes table (the writer may be
     * behind the last round the brain reported, never ahead) */
    char *mem = bd_strfmt("%s/memory/train.balancer.h5", out);
    int64_t dims[3];
    int rank;
    cr_assert_eq(bd_trace_dataset_shape(mem, "train", "balancer", "rewards", dims, &rank, NULL), BD_OK, "%s",
                 bd_lasterr());
    bd_episode *eps = NULL;
    int64_t ne = 0;
    cr_assert_eq(bd_trace_read_episodes(mem, "train", "balancer", &eps, &ne), BD_OK);
    cr_assert(steps >= 3 * 32 * 6, "steps %g after 3 updates of 32 x 6", steps);
    cr_assert(steps >= (double)(dims[0] * 6) && episodes >= (double)ne, "steps %g episodes %g, the trace %lld rows, %lld episodes",
              steps, episodes, (long long)dims[0], (long long)ne);
    if (strcmp(from, "trace") == 0)
        cr_assert(steps == (double)(dims[0] * 6) && episodes == (double)ne);
    else
        cr_assert_str_eq(from, "last update");
    double best = 0;
    for (int64_t k = 0; k < ne; k++)
        best = eps[k].ret > best ? eps[k].ret : best;
    cr_assert(episodes > 0 && cJSON_GetObjectItem(a0, "max_return")->valuedouble >= best,
              "max_return %g, the trace's best %g", cJSON_GetObjectItem(a0, "max_return")->valuedouble, best);
    free(eps);
    cJSON_Delete(s);
    /* bodhi status reads the same */
    char *errs = bd_strfmt("%s/status.txt", out);
    char *st_cmd = bd_strfmt("%s status %s > %s", BODHI_BINARY, out, errs);
    cr_assert_eq(system(st_cmd), 0);
    char *text = slurp(errs), *want = bd_strfmt("steps %.0f", steps);
    cr_assert(strstr(text, want), "%s", text);
    free(want);
    free(text);
    free(st_cmd);
    free(errs);
    free(mem);
    free(cmd);
    free(log);
    free(out);
    free(file);
}

/* Ctrl-C while the processes still start (libtorch loading, no round yet): an honest
 * "interrupted during start-up", exit 130 and a summary, no "trace file not found". */
Test(conductor, item12_ctrl_c_during_start_up_says_so, .timeout = 120 * BD_TEST_SLOW)
{
    char *file = write_run("early", 50000000);
    char *out = bd_strfmt("/tmp/bd-run-%d-early", (int)getpid());
    char *errs = bd_strfmt("/tmp/bd-test-%d-early.txt", (int)getpid());
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int f = open(errs, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(f, 2);
        execl(BODHI_BINARY, "bodhi", "run", file, "--out", out, (char *)NULL);
        _exit(127);
    }
    char *log = bd_strfmt("%s/log.jsonl", out);
    /* the brain is spawned: its first round needs libtorch, which it loads in the
     * background after its first weights went out (a few tenths of a second here) */
    wait_for_text(log, "\"role\":\"brain\"", 30);
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
    cr_assert_eq(count_lines_with(log, "\"event\":\"update\""), 0, "the test stopped it before any round");
    char *text = slurp(errs);
    cr_assert(strstr(text, "bodhi: phase train ended: interrupted during start-up"), "%s", text);
    cr_assert_null(strstr(text, "not found"), "%s", text);
    free(text);
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "interrupted");
    cJSON *ph = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(ph, "ended")->valuestring, "interrupted during start-up");
    cr_assert_str_eq(cJSON_GetObjectItem(ph, "reason")->valuestring, "interrupted");
    cJSON_Delete(s);
    free(log);
    free(errs);
    free(out);
    free(file);
}

/* bodhi run's console: --quiet keeps the result line; each progress line once; no rate
 * for a first round (it has no update before it, so it would flatter); the window of the
 * mean return as it is. */
Test(conductor, item16_progress_lines_say_what_they_measure, .timeout = 180 * BD_TEST_SLOW)
{
    char *file = write_run("progress", 4096);
    char *out = bd_strfmt("/tmp/bd-run-%d-progress", (int)getpid());
    char *errs = bd_strfmt("/tmp/bd-test-%d-progress.txt", (int)getpid());
    char *cmd = bd_strfmt("%s run %s --out %s --quiet 2> %s", BODHI_BINARY, file, out, errs);
    cr_assert_eq(system(cmd), 0);
    char *text = slurp(errs), *want = bd_strfmt("bodhi: run short done in ");
    cr_assert(strstr(text, want) && strstr(text, out), "--quiet keeps the result line:\n%s", text);
    cr_assert(!strstr(text, "[train]") && !strstr(text, "phase"), "--quiet shows nothing else:\n%s", text);
    free(want);
    free(text);
    free(cmd);
    cmd = bd_strfmt("%s run %s --out %s 2> %s", BODHI_BINARY, file, out, errs);
    cr_assert_eq(system(cmd), 0);
    text = slurp(errs);
    /* progress lines: "[phase] agent  T s  steps N  R steps/s ..." */
    char seen[64][64];
    int n = 0, firsts = 0;
    char last_phase[32] = "";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char phase[32], agent[64];
        double t, steps;
        if (sscanf(line, "[%31[^]]] %63s %lfs steps %lf", phase, agent, &t, &steps) != 4) {
            cr_assert_null(strstr(line, "(last 100)"), "fewer than 100 episodes: %s", line);
            continue;
        }
        char key[64];
        snprintf(key, sizeof key, "%s %.0f", phase, steps);
        for (int k = 0; k < n; k++)
            cr_assert_str_neq(seen[k], key, "printed twice: %s", line);
        if (n < 64)
            snprintf(seen[n++], sizeof seen[0], "%s", key);
        if (strcmp(phase, last_phase) != 0) { /* a phase's first line: its first round */
            cr_assert(strstr(line, " - steps/s"), "no rate for a first round: %s", line);
            firsts++;
            snprintf(last_phase, sizeof last_phase, "%s", phase);
        } else {
            cr_assert_null(strstr(line, " - steps/s"), "%s", line);
        }
    }
    cr_assert_eq(firsts, 2, "two phases' progress");
    free(text);
    text = slurp(errs);
    cr_assert(strstr(text, "agent balancer: 3 episodes, mean return ") && strstr(text, "(last 3)"),
              "the test phase's 3 episodes:\n%s", text);
    free(text);
    free(cmd);
    free(errs);
    free(out);
    free(file);
}

/* learning_rate 1000 throws the policy away in one update (KL in the thousands, then an
 * entropy of 0): the phase ends as diverged, said in summary.json and on the console, exit
 * 1, and the checkpoint holds the parameters from before that update, not the diverged
 * ones (Adam's first step of 1000 per parameter). */
Test(conductor, item17_divergence_ends_the_phase_and_keeps_the_good_checkpoint, .timeout = 180 * BD_TEST_SLOW)
{
    char *file = write_run("diverge", 200000);
    char *cmd = bd_strfmt("sed -i 's/rollout_steps: 32, hidden: 16/rollout_steps: 32, hidden: 16, learning_rate: 1000/' %s",
                          file);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    char *out = bd_strfmt("/tmp/bd-run-%d-diverge", (int)getpid());
    char *errs = bd_strfmt("/tmp/bd-test-%d-diverge.txt", (int)getpid());
    cmd = bd_strfmt("%s run %s --out %s 2> %s", BODHI_BINARY, file, out, errs);
    int st = system(cmd);
    char *text = slurp(errs);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit %d:\n%s", WEXITSTATUS(st), text);
    cr_assert(strstr(text, "bodhi: phase train ended: diverged: approx_kl") && strstr(text, "bodhi: run diverged: "),
              "%s", text);
    free(text);
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "diverged");
    cJSON *phases = cJSON_GetObjectItem(s, "phases");
    cr_assert_eq(cJSON_GetArraySize(phases), 1, "the test phase does not run");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(phases, 0), "reason")->valuestring, "diverged");
    cJSON_Delete(s);
    /* the checkpoint: the parameters before the diverged update, every one finite and of
     * an initialisation's size */
    bdt_policy_config pc = {.obs_dim = 4, .act_kind = BDT_DISCRETE, .act_dim = 2, .hidden = 16, .layers = 2,
                            .device = BDT_CPU, .seed = 1};
    bdt_policy *p = NULL;
    cr_assert_eq(bdt_policy_create(&pc, &p), BD_OK, "%s", bd_lasterr());
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert_eq(bdt_load(p, NULL, ck), BD_OK, "%s", bd_lasterr());
    size_t n = bdt_policy_param_count(p);
    float *w = malloc(n * sizeof *w);
    cr_assert_eq(bdt_policy_get_params(p, w, n), BD_OK);
    float most = 0;
    for (size_t k = 0; k < n; k++) {
        cr_assert(isfinite(w[k]), "parameter %zu is %g", k, w[k]);
        most = fabsf(w[k]) > most ? fabsf(w[k]) : most;
    }
    cr_assert(most < 50, "the largest parameter is %g: the diverged update was kept", most);
    free(w);
    bdt_policy_destroy(p);
    free(ck);
    free(errs);
    free(cmd);
    free(out);
    free(file);
}

/* NNG 1.5.2's ipc listener stops accepting after a connection that closes during its
 * handshake (nanomsg/nng#1518): a bare connect() to <sockets>/control, and one that sends
 * garbage. The conductor notices (it dials itself now and then), listens again and says
 * so in log.jsonl; bodhi status answers and a killed muscle is restarted as usual. (The
 * relisten itself is seen only when the close fell inside the handshake.) */
Test(conductor, item05_a_bare_connect_to_the_control_socket_changes_nothing, .timeout = 180 * BD_TEST_SLOW)
{
    bd_test_nng_stuck_leaks(); /* the connections it cuts short: tests/slow.h */
    /* long enough never to end by itself while the test plays (a fast machine did 250000
     * steps before the probe noticed); Ctrl-C ends it once the restarted muscle works */
    char *file = write_run_with("bare", 50000000, ", heartbeat_timeout: 10");
    char *out = bd_strfmt("/tmp/bd-run-%d-bare", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out);
    wait_for_text(log, "\"event\":\"update\"", 60);
    char *socks = socket_folder(out);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/control", socks);
    for (int k = 0; k < 2; k++) { /* a bare connect, then one with garbage */
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", sa.sun_path);
        if (k == 1)
            cr_assert_eq(write(fd, "GARBAGE!", 8), 8);
        close(fd); /* at once: during NNG's handshake */
        usleep(300000);
    }
    /* Whether NNG's listener died depends on when the close falls in its handshake (on a
     * loaded machine it may fall after): either the conductor said it listens again, or
     * it never stopped. Either way `bodhi status` answers, within the guard's probe
     * period (a probe every 2 s, given 5 s) when the listener had to be replaced. */
    char *cmd = bd_strfmt("%s status %s > /dev/null 2>&1", BODHI_BINARY, out);
    int answered = 0;
    for (double t0 = bd_now(); !answered && bd_now() - t0 < 30 * BD_TEST_SLOW;)
        if (!(answered = system(cmd) == 0))
            usleep(500000);
    cr_assert(answered, "bodhi status answers (relistened %d time(s))", count_lines_with(log, "\"event\":\"relistened\""));
    free(cmd);
    cmd = bd_strfmt("pkill -KILL -f '[m]uscle --run-dir %s --phase train --id 1'", out);
    cr_assert_eq(system(cmd), 0, "muscle 1 was running");
    wait_for_text(log, "\"event\":\"restarted\"", 30);
    /* two more rounds: both muscles, the restarted one among them, fed the brain */
    int rounds = count_lines_with(log, "\"event\":\"update\"");
    double t0 = bd_now();
    while (count_lines_with(log, "\"event\":\"update\"") < rounds + 2 && bd_now() - t0 < 60 * BD_TEST_SLOW)
        usleep(50000);
    cr_assert(count_lines_with(log, "\"event\":\"update\"") >= rounds + 2, "the run goes on after the restart");
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "the run stops on Ctrl-C (status %d)", st);
    cr_assert_eq(count_lines_with(log, "\"event\":\"restarted\""), 1, "one restart, for the kill");
    cr_assert_eq(count_lines_with(log, "hung"), 0, "the restarted muscle reached the conductor");
    free(cmd);
    cmd = bd_strfmt("rm -rf %s", out);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(socks);
    free(log);
    free(out);
    free(file);
}

/* ---- bodhi set and bodhi stop ---------------------------------------------------------- */

/* The first event of log.jsonl of kind `event` whose number `key` is at least `min` (key
 * NULL: any), or NULL; the caller deletes it. */
static cJSON *find_event(const char *log, const char *event, const char *key, double min)
{
    char *text = slurp(log);
    cJSON *found = NULL;
    for (char *line = text, *next; line && *line && !found; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        cJSON *o = cJSON_Parse(line);
        const cJSON *e = cJSON_GetObjectItem(o, "event"), *v = key ? cJSON_GetObjectItem(o, key) : NULL;
        if (cJSON_IsString(e) && strcmp(e->valuestring, event) == 0 && (!key || (cJSON_IsNumber(v) && v->valuedouble >= min)))
            found = o;
        else
            cJSON_Delete(o);
    }
    free(text);
    return found;
}

/* Waits (up to seconds) for find_event's event; the caller deletes it. */
static cJSON *wait_event(const char *log, const char *event, const char *key, double min, double seconds)
{
    double t0 = bd_now();
    cJSON *o;
    while (!(o = find_event(log, event, key, min)) && bd_now() - t0 < seconds * BD_TEST_SLOW)
        usleep(100000);
    cr_assert_not_null(o, "no '%s' event with %s >= %g in %s", event, key ? key : "-", min, log);
    return o;
}

/* `bodhi CMD ARGS` with its stderr into *err (the caller frees): the exit code. */
static int bodhi_says(const char *args, char **err)
{
    char *path = bd_strfmt("/tmp/bd-test-run-%d-says.txt", (int)getpid());
    char *cmd = bd_strfmt("%s %s > /dev/null 2> %s", BODHI_BINARY, args, path);
    int st = system(cmd);
    *err = slurp(path);
    unlink(path);
    free(cmd);
    free(path);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A STEER request as a run's process would send it (a muscle's sender id): refused and
 * counted, never answered. */
static void forge_steer(const char *out)
{
    char *socks = socket_folder(out);
    char *url = bd_strfmt("ipc://%s/control", socks);
    nng_socket s;
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 1500);
    cr_assert_eq(nng_dial(s, url, NULL, 0), 0, "%s", url);
    const char *req = "{\"stop\":\"run\"}";
    nng_msg *m;
    uint8_t *p;
    cr_assert_eq(bd_wire_msg_alloc(&m, BD_MSG_STEER, 0, 1, strlen(req), &p), BD_OK);
    memcpy(p, req, strlen(req));
    cr_assert_eq(nng_sendmsg(s, m, 0), 0);
    cr_assert_eq(nng_recvmsg(s, &m, 0), NNG_ETIMEDOUT, "a steering request in a muscle's name is not answered");
    nng_close(s);
    /* a user's request past the bound is refused before it is parsed */
    cr_assert_eq(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
    cr_assert_eq(nng_dial(s, url, NULL, 0), 0, "%s", url);
    const size_t big = 48 << 10;
    cr_assert_eq(bd_wire_msg_alloc(&m, BD_MSG_STEER, BD_SENDER_CONTROL, 1, big, &p), BD_OK);
    memset(p, ' ', big);
    cr_assert_eq(nng_sendmsg(s, m, 0), 0);
    cr_assert_eq(nng_recvmsg(s, &m, 0), 0, "a user's request is answered");
    bd_wire_header h;
    const uint8_t *answer;
    cr_assert_eq(bd_wire_msg_decode(m, BD_MSG_STEER, &h, &answer), BD_OK);
    char *text = bd_strfmt("%.*s", (int)h.payload_len, (const char *)answer);
    cr_assert(strstr(text, "\"ok\":false") && strstr(text, "at most"), "%s", text);
    free(text);
    nng_msg_free(m);
    nng_close(s);
    free(url);
    free(socks);
}

/* `bodhi set` changes the learning rate of a live run at its next update (the update event
 * of that update shows it, log.jsonl says when), refuses what cannot change with the list
 * of what can, and bad values by the run file's ranges; `bodhi stop --phase` ends the train
 * phase with reason `stopped` and the test phase runs. */
Test(conductor, set_and_stop_steer_a_live_run, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("steer", &file, &out);
    char *log = bd_strfmt("%s/log.jsonl", out), *err, *args;
    cJSON *first = wait_event(log, "update", "update", 1, 60);
    cJSON_Delete(first);
    /* refused: a key that cannot change, a value out of range, not a number, no such agent */
    args = bd_strfmt("set %s balancer.gamma=0.5", out);
    cr_assert_eq(bodhi_says(args, &err), 2, "%s", err);
    cr_assert(strstr(err, "'gamma' of agent 'balancer'") && strstr(err, "balancer.learning_rate")
                  && strstr(err, "balancer.ent_coef") && strstr(err, "balancer.clip_coef")
                  && strstr(err, "balancer.kl_threshold") && strstr(err, "phase.max_steps"),
              "the refusal names what can change: %s", err);
    free(err);
    free(args);
    const char *bad[][2] = {{"balancer.learning_rate=-1", "learning_rate: expected more than 0"},
                            {"balancer.ent_coef=lots", "ent_coef"},
                            {"nobody.learning_rate=1e-4", "no agent 'nobody'"},
                            {"phase.max_steps=0", "steps"},
                            {"balancer.learning_rate", "AGENT.PARAM=VALUE"}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        args = bd_strfmt("set %s '%s'", out, bad[k][0]);
        cr_assert_eq(bodhi_says(args, &err), 2, "%s: %s", bad[k][0], err);
        cr_assert(strstr(err, bad[k][1]), "%s: %s", bad[k][0], err);
        free(err);
        free(args);
    }
    /* nothing of the refused ones reached the brain */
    cr_assert_eq(count_lines_with(log, "\"event\":\"set\""), 0);
    forge_steer(out);
    args = bd_strfmt("set %s balancer.learning_rate=0.00042 balancer.ent_coef=0.001", out);
    cr_assert_eq(bodhi_says(args, &err), 0, "%s", err);
    free(err);
    free(args);
    cJSON *set = wait_event(log, "set", "update", 0, 60);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(set, "t")), "the set event has its time");
    cr_assert_null(cJSON_GetObjectItem(set, "not_taken"), "%s", cJSON_PrintUnformatted(set));
    const double at = cJSON_GetObjectItem(set, "update")->valuedouble;
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(set, "set"), "learning_rate")->valuestring, "0.00042");
    cJSON *before = find_event(log, "update", "update", at - 1);
    cJSON *after = wait_event(log, "update", "update", at, 60);
    cr_assert_eq(cJSON_GetObjectItem(after, "update")->valuedouble, at, "the first update after the change");
    cr_assert_eq(cJSON_GetObjectItem(after, "learning_rate")->valuedouble, 0.00042,
                 "the update the set event names learnt with the new rate: %s", cJSON_PrintUnformatted(after));
    cr_assert_neq(cJSON_GetObjectItem(before, "learning_rate")->valuedouble, 0.00042, "the one before did not");
    cJSON_Delete(before);
    cJSON_Delete(after);
    cJSON_Delete(set);
    /* the phase ends with reason stopped; the test phase runs */
    args = bd_strfmt("stop %s --phase", out);
    cr_assert_eq(bodhi_says(args, &err), 0, "%s", err);
    free(err);
    free(args);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run goes on and ends done (status %d)", st);
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "done");
    cJSON *phases = cJSON_GetObjectItem(s, "phases");
    cr_assert_eq(cJSON_GetArraySize(phases), 2);
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(phases, 0), "reason")->valuestring, "stopped");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(phases, 1), "reason")->valuestring, "episodes_done");
    cr_assert_eq(cJSON_GetObjectItem(s, "refused_messages")->valuedouble, 1, "the forged request was counted");
    cJSON_Delete(s);
    cr_assert(count_lines_with(log, "\"event\":\"stop_asked\"") == 1);
    args = bd_strfmt("set %s balancer.learning_rate=1e-4", out);
    cr_assert_eq(bodhi_says(args, &err), 1, "a run that is over: %s", err);
    cr_assert(strstr(err, "over"), "%s", err);
    free(err);
    free(args);
    args = bd_strfmt("rm -rf %s %s", out, file);
    cr_assert_eq(system(args), 0);
    free(args);
    free(log);
    free(out);
    free(file);
}

/* `bodhi stop` without --phase ends the run cleanly: its phase with reason `stopped`, no
 * later phase, exit 0, status `stopped`. */
Test(conductor, stop_ends_a_live_run, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *out;
    pid_t pid = start_long_run("stoprun", &file, &out);
    char *log = bd_strfmt("%s/log.jsonl", out), *err;
    cJSON *first = wait_event(log, "update", "update", 1, 60);
    cJSON_Delete(first);
    char *args = bd_strfmt("stop %s", out);
    cr_assert_eq(bodhi_says(args, &err), 0, "%s", err);
    free(err);
    free(args);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cJSON *s = summary_json(out);
    cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "stopped");
    cJSON *phases = cJSON_GetObjectItem(s, "phases");
    cr_assert_eq(cJSON_GetArraySize(phases), 1, "the test phase did not run");
    cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(phases, 0), "reason")->valuestring, "stopped");
    cJSON_Delete(s);
    char *p = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
    cr_assert(bd_exists(p), "the brain saved what it had learnt");
    free(p);
    cr_assert_eq(run_cmd("%s replay %s --verify > /dev/null%s", out, ""), 0, "the traces are whole");
    args = bd_strfmt("rm -rf %s %s", out, file);
    cr_assert_eq(system(args), 0);
    free(args);
    free(log);
    free(out);
    free(file);
}

/* `bodhi set RUN phase.episodes=N` raised mid-phase: the worlds' shares of the new cap
 * are dealt again, so the phase ends when N episodes are counted (before, each world kept
 * its share of the old cap and the count stopped there: the phase never ended). */
Test(conductor, a_raised_episode_cap_ends_the_phase_at_the_new_count, .timeout = 300 * BD_TEST_SLOW)
{
    char *file = write_run_with("episet", 50000000, ", episodes: 300");
    char *out = bd_strfmt("/tmp/bd-run-%d-episet", (int)getpid());
    pid_t pid = start_bodhi(file, out);
    char *log = bd_strfmt("%s/log.jsonl", out), *err;
    cJSON *first = wait_event(log, "update", "update", 1, 60);
    cJSON_Delete(first);
    char *args = bd_strfmt("set %s phase.episodes=400", out);
    cr_assert_eq(bodhi_says(args, &err), 0, "%s", err);
    free(err);
    free(args);
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
    cr_assert(count_lines_with(log, "\"event\":\"set\"") >= 1, "the brain took the change");
    cJSON *s = summary_json(out);
    cJSON *ph = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "phases"), 0);
    cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(ph, "agents"), 0);
    cr_assert_eq(cJSON_GetObjectItem(a0, "episodes")->valuedouble, 400, "%s", cJSON_PrintUnformatted(ph));
    cJSON_Delete(s);
    args = bd_strfmt("rm -rf %s %s", out, file);
    cr_assert_eq(system(args), 0);
    free(args);
    free(log);
    free(out);
    free(file);
}

/* bodhi set's changes read by the run file's rules, without a run: the split, what each
 * kind can change (a test phase: the caps alone), ranges and types as the params parsers
 * say, each change read with the ones before it, and a refused one changing nothing. */
Test(conductor, set_changes_are_read_by_the_run_files_rules)
{
    char *file = write_run("steerunit", 1000);
    char *text = slurp(file);
    bd_runfile *rf;
    cr_assert_eq(bd_runfile_parse(text, file, &rf), BD_OK, "%s", bd_lasterr());
    bd_phase_plan p, t;
    cr_assert_eq(bd_phase_plan_make(rf, 0, bd_registry_builtin(), "cpu", &p), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_phase_plan_make(rf, 1, bd_registry_builtin(), "cpu", &t), BD_OK, "%s", bd_lasterr());
    char agent[BD_STEER_MAX_TEXT], key[BD_STEER_MAX_TEXT];
    const char *value;
    cr_assert_eq(bd_steer_split("tag.tagger.learning_rate=3e-4", agent, key, &value), BD_OK);
    cr_assert_str_eq(agent, "tag.tagger");
    cr_assert_str_eq(key, "learning_rate");
    cr_assert_str_eq(value, "3e-4");
    const char *bad[] = {"learning_rate=1", ".lr=1", "a.=1", "a.b", "a.b=", "a.b=1\n2"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++)
        cr_assert_eq(bd_steer_split(bad[k], agent, key, &value), BD_EINVAL, "%s", bad[k]);
    char longer[600];
    memset(longer, 'a', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    longer[10] = '.';
    longer[20] = '=';
    cr_assert_eq(bd_steer_split(longer, agent, key, &value), BD_EINVAL, "bounded");
    int index;
    cr_assert_eq(bd_steer_target(&p, "balancer", "learning_rate", &index), BD_OK);
    cr_assert_eq(index, 0);
    cr_assert_eq(bd_steer_target(&p, "phase", "episodes", &index), BD_OK);
    cr_assert_eq(index, -1);
    cr_assert_eq(bd_steer_target(&p, "balancer", "hidden", &index), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "balancer.max_grad_norm") && strstr(bd_lasterr(), "phase.episodes"), "%s",
              bd_lasterr());
    cr_assert_eq(bd_steer_target(&p, "nobody", "learning_rate", &index), BD_ENOTFOUND);
    cr_assert_eq(bd_steer_target(&t, "balancer", "learning_rate", &index), BD_EINVAL, "a test phase learns nothing");
    cr_assert(strstr(bd_lasterr(), "does not learn") && !strstr(bd_lasterr(), "balancer.learning_rate"), "%s",
              bd_lasterr());
    cr_assert_eq(bd_steer_target(&t, "phase", "max_steps", &index), BD_OK);
    /* values: the ppo parser's ranges, each change with the ones before */
    bd_steer s = {0};
    void *params = NULL;
    const char *refused[][2] = {{"-1", "learning_rate: expected more than 0 to 1000, got -1"},
                                {"fast", "learning_rate"},
                                {"[1, 2]", "learning_rate"},
                                {"1e9", "got 1e+09"}};
    for (size_t k = 0; k < sizeof refused / sizeof refused[0]; k++) {
        cr_assert_eq(bd_steer_apply(&s, &p, 0, "learning_rate", refused[k][0], &params), BD_EINVAL, "%s",
                     refused[k][0]);
        cr_assert(strstr(bd_lasterr(), refused[k][1]) && !strstr(bd_lasterr(), "bodhi set:"), "%s", bd_lasterr());
        cr_assert_null(params);
        cr_assert_null(s.params, "a refused change keeps nothing");
    }
    cr_assert_eq(bd_steer_apply(&s, &p, 0, "learning_rate", "3e-4", &params), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(((bd_ppo_params *)params)->learning_rate, 3e-4);
    free(params);
    cr_assert_eq(bd_steer_apply(&s, &p, 0, "ent_coef", "0.01", &params), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(((bd_ppo_params *)params)->learning_rate, 3e-4, "the earlier change holds");
    cr_assert_eq(((bd_ppo_params *)params)->opt.ent_coef, 0.01f);
    cr_assert_eq(((bd_ppo_params *)params)->hidden, 16, "the run file's other params hold");
    free(params);
    cr_assert_eq(bd_steer_apply(&s, &p, 0, "clip_coef", "-0.1", &params), BD_EINVAL);
    cr_assert_eq(bd_steer_params(&s, &p, 0, &params), BD_OK);
    cr_assert_eq(((bd_ppo_params *)params)->opt.clip_coef, 0.2f, "the refused change left the params");
    free(params);
    /* the caps, by phase_config's and max_steps' ranges */
    cr_assert_eq(bd_steer_apply(NULL, &p, -1, "max_steps", "0", &params), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "max_steps: expected 1 to 2^50 agent-steps, got 0"), "%s", bd_lasterr());
    cr_assert_eq(p.max_agent_steps, 1000);
    cr_assert_eq(bd_steer_apply(NULL, &p, -1, "max_steps", "2500", &params), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(p.max_agent_steps, 2500);
    cr_assert_eq(bd_steer_apply(NULL, &t, -1, "episodes", "2.5", &params), BD_EINVAL, "an integer");
    cr_assert_eq(bd_steer_apply(NULL, &t, -1, "episodes", "2000", &params), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(t.episodes_target, 2000);
    bd_steer_fini(&s);
    bd_phase_plan_fini(&p);
    bd_phase_plan_fini(&t);
    bd_runfile_destroy(rf);
    unlink(file);
    free(text);
    free(file);
    /* sac's and dqn's own keys and ranges */
    const char *kinds[][5] = {
        /* file, a key that changes, a good value, a bad value and its words, a key that does not */
        {"experiments/pendulum_sac.yml", "alpha", "0.05", "0", "batch_size"},
        {"experiments/cartpole_dqn.yml", "exploration_final_eps", "0.01", "1.5", "buffer_size"},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char *path = bd_strfmt("%s/%s", BODHI_SOURCE_DIR, kinds[k][0]);
        text = slurp(path);
        cr_assert_not_null(text, "%s", path);
        cr_assert_eq(bd_runfile_parse(text, path, &rf), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_phase_plan_make(rf, 0, bd_registry_builtin(), "cpu", &p), BD_OK, "%s", bd_lasterr());
        const char *name = p.agents[0].cfg->name;
        cr_assert_eq(bd_steer_target(&p, name, kinds[k][1], &index), BD_OK, "%s: %s", kinds[k][0], bd_lasterr());
        cr_assert_eq(bd_steer_target(&p, name, kinds[k][4], &index), BD_EINVAL, "%s", kinds[k][4]);
        cr_assert(strstr(bd_lasterr(), kinds[k][1]), "the list names %s: %s", kinds[k][1], bd_lasterr());
        bd_steer ks = {0};
        cr_assert_eq(bd_steer_apply(&ks, &p, 0, kinds[k][1], kinds[k][3], &params), BD_EINVAL, "%s=%s",
                     kinds[k][1], kinds[k][3]);
        cr_assert(strstr(bd_lasterr(), kinds[k][1]) && strstr(bd_lasterr(), "expected"), "%s", bd_lasterr());
        cr_assert_eq(bd_steer_apply(&ks, &p, 0, kinds[k][1], kinds[k][2], &params), BD_OK, "%s", bd_lasterr());
        cr_assert_not_null(params);
        p.agents[0].brain->free_params(params);
        bd_steer_fini(&ks);
        bd_phase_plan_fini(&p);
        bd_runfile_destroy(rf);
        free(text);
        free(path);
    }
}

/* A brain stopped (SIGSTOP) after it reported its result: it no longer beats, and is killed
 * as late after heartbeat_timeout. Its checkpoint and trace were written before its result,
 * so the run goes on to its test phase and ends done. (The stop must fall between the
 * result and the brain's exit, a moment of muscles hanging up; a try that misses it is
 * made again.) */
Test(conductor, a_brain_late_to_exit_after_its_result_does_not_fail_the_run, .timeout = 300 * BD_TEST_SLOW)
{
    int caught = 0;
    for (int attempt = 0; attempt < 5 && !caught; attempt++) {
        char *tag = bd_strfmt("late%d", attempt);
        char *file = write_run_with(tag, 2000, ", heartbeat_timeout: 5");
        char *out = bd_strfmt("/tmp/bd-run-%d-%s", (int)getpid(), tag);
        char *log = bd_strfmt("%s/log.jsonl", out);
        pid_t pid = start_bodhi(file, out);
        char *stop = bd_strfmt("pkill -STOP -f '[b]rain --run-dir %s --phase train --agent balancer'", out);
        for (double t0 = bd_now(); bd_now() - t0 < 120;) {
            if (count_lines_with(log, "\"event\":\"result\",\"phase\":\"train\"") > 0) {
                caught = system(stop) == 0;
                break;
            }
            usleep(1000);
        }
        int st;
        waitpid(pid, &st, 0);
        if (caught) {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the run ended 0 (status %d)", st);
            cr_assert(count_lines_with(log, "late: did not exit") > 0, "log.jsonl says why the brain was killed");
            cJSON *s = summary_json(out);
            cr_assert_str_eq(cJSON_GetObjectItem(s, "status")->valuestring, "done");
            cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(s, "phases")), 2, "the test phase ran");
            cJSON_Delete(s);
            char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", out);
            cr_assert(bd_exists(ck), "the checkpoint written before the result is there");
            free(ck);
            char *rm = bd_strfmt("rm -rf '%s'", out);
            cr_assert_eq(system(rm), 0);
            free(rm);
        }
        free(stop);
        free(log);
        free(out);
        free(file);
        free(tag);
    }
    if (!caught)
        cr_skip_test("the brain exited before it could be stopped, 5 times");
}
