/* test_sweep.c: `bodhi sweep` (cli/sweep.c, config/setpath.c) and `bodhi replay` of a sweep
 * (replay/sweep.c) through the bodhi binary: the expansion into checked run files and
 * folders, the refusal of a bad --set with nothing written, the Slurm array script (one
 * task run by hand with bash), runs here with Ctrl-C keeping the finished ones, and the
 * replay's numbers against each run's own episodes. Tiny CartPole runs (16 worlds). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "config/runfile.h"
#include "config/setpath.h"
#include "slow.h"

static const char *RUN_FILE =
    "uid: sweepy\n"
    "seed: 5\n"
    "schedule:\n"
    "  - train:\n"
    "      environments:\n"
    "        - environment: {name: cartpole, uid: pole, params: {worlds: 16}}\n"
    "      agents:\n"
    "        - name: balancer\n"
    "          brain: {name: ppo, params: {rollout_steps: 32, hidden: 16}}\n"
    "          muscle: {name: ppo, params: {}}\n"
    "          objective: {name: reward, params: {}}\n"
    "          sensors: [pole.*]\n"
    "          actuators: [pole.push]\n"
    "      simulation:\n"
    "        conditions:\n"
    "          - {name: max_steps, params: {steps: 3072}}\n"
    "      phase_config: {mode: train, worker: 1}\n";

/* /tmp/bd-test-sweep-<pid>-<tag>/ with the run file in it; the caller removes it. */
static char *make_dir(const char *tag, char **file)
{
    char *dir = bd_strfmt("/tmp/bd-test-sweep-%d-%s", (int)getpid(), tag);
    char *cmd = bd_strfmt("rm -rf %s && mkdir -p %s", dir, dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    *file = bd_strfmt("%s/exp.yml", dir);
    cr_assert_eq(bd_write_file(*file, RUN_FILE, strlen(RUN_FILE)), BD_OK);
    return dir;
}

static void remove_dir(char *dir)
{
    char *cmd = bd_strfmt("rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(dir);
}

/* Runs `bodhi ARGS` (a shell line after the binary) with stdout and stderr into *text;
 * its exit code. */
static int bodhi(char **text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bodhi(char **text, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *args = NULL;
    cr_assert(vasprintf(&args, fmt, ap) >= 0);
    va_end(ap);
    char *log = bd_strfmt("/tmp/bd-test-sweep-%d.log", (int)getpid());
    char *cmd = bd_strfmt("'%s' %s >%s 2>&1", BODHI_BINARY, args, log);
    int st = system(cmd);
    size_t len;
    *text = NULL;
    cr_assert_eq(bd_read_file(log, text, &len), BD_OK);
    unlink(log);
    free(cmd);
    free(log);
    free(args);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *read_json(const char *path)
{
    char *text = NULL;
    size_t len;
    cr_assert_eq(bd_read_file(path, &text, &len), BD_OK, "%s", path);
    cJSON *j = cJSON_Parse(text);
    cr_assert_not_null(j, "%s: %s", path, text);
    free(text);
    return j;
}

/* No entry of folder dir starts with prefix. */
static int none_named(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int none = 1;
    for (struct dirent *e; (e = readdir(d));)
        none &= strncmp(e->d_name, prefix, strlen(prefix)) != 0;
    closedir(d);
    return none;
}

Test(sweep, expands_into_checked_runs_and_a_slurm_array, .timeout = 240 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("expand", &file), *text;
    char *out = bd_strfmt("%s/sw", dir);
    int rc = bodhi(&text, "sweep %s --seeds 3..4 --set brain.params.learning_rate=1e-3,3e-3 "
                          "--set pole.params.worlds=16,32 --slurm --out %s", file, out);
    cr_assert_eq(rc, 0, "%s", text);
    cr_assert(strstr(text, "sbatch "), "says how to submit: %s", text);
    free(text);
    /* sweep.json: 4 points (first --set slowest) x 2 seeds, tasks in order */
    char *js = bd_strfmt("%s/sweep.json", out);
    cJSON *j = read_json(js);
    const char *want[4] = {"learning_rate=1e-3,worlds=16", "learning_rate=1e-3,worlds=32",
                           "learning_rate=3e-3,worlds=16", "learning_rate=3e-3,worlds=32"};
    const char *lr[4] = {"1e-3", "1e-3", "3e-3", "3e-3"}, *worlds[4] = {"16", "32", "16", "32"};
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "points")), 4);
    int task = 0;
    for (int p = 0; p < 4; p++) {
        cJSON *pt = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "points"), p);
        cr_assert_str_eq(cJSON_GetObjectItem(pt, "name")->valuestring, want[p]);
        cJSON *runs = cJSON_GetObjectItem(pt, "runs");
        cr_assert_eq(cJSON_GetArraySize(runs), 2);
        for (int s = 0; s < 2; s++, task++) {
            cJSON *r = cJSON_GetArrayItem(runs, s);
            cr_assert_eq(cJSON_GetObjectItem(r, "seed")->valueint, 3 + s);
            cr_assert_eq(cJSON_GetObjectItem(r, "task")->valueint, task);
            cr_assert(cJSON_IsNull(cJSON_GetObjectItem(r, "exit")));
            char *rel = bd_strfmt("%s/seed-%d", want[p], 3 + s);
            cr_assert_str_eq(cJSON_GetObjectItem(r, "dir")->valuestring, rel);
            /* its run file reads back with the point's values and the seed, the rest as FILE */
            char *yml = bd_strfmt("%s/%s.yml", out, rel);
            bd_runfile *rf = NULL;
            cr_assert_eq(bd_runfile_load(yml, &rf), BD_OK, "%s: %s", yml, bd_lasterr());
            cr_assert_eq(rf->seed, (uint64_t)(3 + s));
            const bd_agent_cfg *a = &rf->phases[0].agents[0];
            cr_assert_str_eq(bd_node_get(a->brain.params, "learning_rate")->text, lr[p]);
            cr_assert_str_eq(bd_node_get(a->brain.params, "rollout_steps")->text, "32");
            cr_assert_str_eq(bd_node_get(rf->phases[0].envs[0].env.params, "worlds")->text, worlds[p]);
            bd_runfile_destroy(rf);
            free(yml);
            free(rel);
        }
    }
    cJSON_Delete(j);
    free(js);
    /* the script: one array task per run, each running its own run file into its folder */
    char *sb = bd_strfmt("%s/sweep.sbatch", out), *script = NULL;
    size_t len;
    cr_assert_eq(bd_read_file(sb, &script, &len), BD_OK);
    cr_assert(strstr(script, "#SBATCH --array=0-7\n"), "%s", script);
    char real[PATH_MAX];
    cr_assert_not_null(realpath(BODHI_BINARY, real));
    char *exec_line = bd_strfmt("exec '%s' run \"$sweep/$run.yml\" --out \"$sweep/$run\"", real);
    cr_assert(strstr(script, exec_line), "%s", script);
    for (int t = 0; t < 8; t++) {
        char *line = bd_strfmt("/seed-%d' # task %d\n", 3 + t % 2, t);
        cr_assert(strstr(script, line), "task %d: %s", t, script);
        free(line);
    }
    free(exec_line);
    free(script);
    char *cmd = bd_strfmt("bash -n %s", sb);
    cr_assert_eq(system(cmd), 0, "bash -n");
    free(cmd);
    /* task 5 by hand, as Slurm would start it: run learning_rate=3e-3,worlds=16 seed 4 */
    cmd = bd_strfmt("SLURM_ARRAY_TASK_ID=5 bash %s 2>/dev/null", sb);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "task 5");
    free(cmd);
    char *sum = bd_strfmt("%s/learning_rate=3e-3,worlds=16/seed-4/summary.json", out);
    j = read_json(sum);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "done");
    cJSON_Delete(j);
    free(sum);
    char *ryml = bd_strfmt("%s/learning_rate=3e-3,worlds=16/seed-4/run.yml", out);
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_load(ryml, &rf), BD_OK);
    cr_assert_eq(rf->seed, 4u);
    cr_assert_eq(rf->phases[0].envs[0].env.params ? 1 : 0, 1);
    cr_assert_str_eq(bd_node_get(rf->phases[0].agents[0].brain.params, "learning_rate")->text, "3e-3");
    bd_runfile_destroy(rf);
    free(ryml);
    /* a task past the array is refused */
    cmd = bd_strfmt("SLURM_ARRAY_TASK_ID=8 bash %s 2>/dev/null", sb);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "task 8");
    free(cmd);
    free(sb);
    /* the sweep again: the earlier one is moved aside, not overwritten */
    rc = bodhi(&text, "sweep %s --seeds 1 --slurm --out %s", file, out);
    cr_assert_eq(rc, 0, "%s", text);
    cr_assert(strstr(text, "was moved to"), "%s", text);
    free(text);
    cr_assert(!none_named(dir, "sw.prev-"), "the earlier sweep is kept beside it");
    /* a task of the earlier sweep's script, still pending in Slurm, runs nothing of the new one */
    cmd = bd_strfmt("SLURM_ARRAY_TASK_ID=0 bash %s/sw.prev-*/sweep.sbatch 2>&1 | grep -q 'holds another sweep now'"
                    " && exit 7", dir);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7, "the old script's task refuses");
    free(cmd);
    cr_assert(!bd_exists(out) || none_named(out, "learning_rate"), "no run of the old sweep in the new");
    /* a folder of other things is refused, untouched */
    char *other = bd_strfmt("%s/other", dir), *keep = bd_strfmt("%s/other/keep.txt", dir);
    cr_assert_eq(bd_mkdirs(other), BD_OK);
    cr_assert_eq(bd_write_file(keep, "x", 1), BD_OK);
    rc = bodhi(&text, "sweep %s --slurm --out %s", file, other);
    cr_assert_eq(rc, 2, "%s", text);
    cr_assert(strstr(text, "holds no bodhi sweep"), "%s", text);
    cr_assert(bd_exists(keep));
    free(text);
    free(other);
    free(keep);
    free(out);
    free(file);
    remove_dir(dir);
}

Test(sweep, refuses_a_bad_set_with_nothing_written, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("bad", &file), *text;
    char *out = bd_strfmt("%s/sw", dir);
    struct {
        const char *args, *says[3];
    } cases[] = {
        {"--set brain.params.learning_rate=1e-3,abc", {"learning_rate: expected a number, got 'abc'",
                                                       "learning_rate=abc/seed-1.yml:", "nothing was written"}},
        {"--set brain.params.learnin_rate=1e-3", {"unknown key 'learnin_rate'", "did you mean 'learning_rate'",
                                                  "nothing was written"}},
        {"--set pole.params.worlds=2.5", {"worlds: expected an integer", "--set pole.params.worlds=2.5",
                                          "nothing was written"}},
        {"--set nobody.brain.params.learning_rate=1", {"'nobody' is no agent (balancer)", "environment uid (pole)",
                                                       "nothing was written"}},
        {"--set brain.params=1", {"brain.params: ", "is a map; --set gives one value", "nothing was written"}},
        {"--set test:brain.params.learning_rate=1", {"the run file has no phase 'test'", "nothing was written", ""}},
        {"--set seed=1,2", {"--seeds", "nothing was written", ""}},
        {"--set brain.params.learning_rate", {"write PATH=VALUE", "", ""}},
        {"--seeds 4..2", {"--seeds must be A..B (A <= B)", "", ""}},
        {"--seeds 1,2,1", {"seed 1 twice", "", ""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* an option given twice is refused: the cases that give --seeds give it alone */
        const char *seeds = strstr(cases[i].args, "--seeds ") ? "" : "--seeds 1..2";
        int rc = bodhi(&text, "sweep %s %s %s --out %s", file, seeds, cases[i].args, out);
        cr_assert_eq(rc, 2, "%s: exit %d: %s", cases[i].args, rc, text);
        for (int k = 0; k < 3; k++)
            cr_assert(strstr(text, cases[i].says[k]), "%s: wants '%s' in: %s", cases[i].args, cases[i].says[k], text);
        cr_assert(none_named(dir, "sw"), "%s: nothing written beside the run file", cases[i].args);
        free(text);
    }
    free(out);
    free(file);
    remove_dir(dir);
}

/* Two --set whose paths end in the same key (a phase's worker, once per phase) name their
 * points by the whole paths: "worker=1,worker=2" did not say which phase had which. The
 * --out that bodhi check refuses is named as the cause, not the run file. */
Test(sweep, points_of_keys_that_read_alike_are_named_by_their_paths, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("alike", &file), *text;
    FILE *f = fopen(file, "a");
    cr_assert_not_null(f);
    fputs("  - test:\n      phase_config: {mode: test, worker: 1, episodes: 2}\n", f);
    fclose(f);
    char *out = bd_strfmt("%s/sw", dir);
    int rc = bodhi(&text, "sweep %s --seeds 1..1 --set train:phase_config.worker=1,2 "
                          "--set test:phase_config.worker=1,2 --slurm --out %s", file, out);
    cr_assert_eq(rc, 0, "%s", text);
    free(text);
    char *p = bd_strfmt("%s/train_phase_config.worker=2,test_phase_config.worker=1", out);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0, "no folder %s", p);
    free(p);
    rc = bodhi(&text, "sweep %s --seeds 1..1 --out /proc/bodhi-sweep", file);
    cr_assert_eq(rc, 2, "%s", text);
    cr_assert(strstr(text, "with --out /proc/bodhi-sweep does not pass bodhi check"), "%s", text);
    free(text);
    free(out);
    free(file);
    remove_dir(dir);
}

/* The paths of config/setpath.h in a tree with two agents and two phases. */
/* Under a launcher's variables (or with them left exported) each run of a sweep here would
 * be one rank waiting alone for the others: refused (exit 2) before anything is written,
 * naming them; --slurm only writes the script, which they do not touch. */
Test(sweep, a_rank_of_several_is_refused_without_slurm, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("rank", &file), *text;
    char *out = bd_strfmt("%s/sw", dir);
    static const char *const env[][4] = {{"RANK", "0", "WORLD_SIZE", "2"},
                                         {"OMPI_COMM_WORLD_RANK", "1", "OMPI_COMM_WORLD_SIZE", "4"},
                                         {"SLURM_PROCID", "0", "SLURM_NTASKS", "3"}};
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        setenv(env[i][0], env[i][1], 1);
        setenv(env[i][2], env[i][3], 1);
        int rc = bodhi(&text, "sweep %s --seeds 1..2 --out %s", file, out);
        cr_assert_eq(rc, 2, "%s: exit %d: %s", env[i][0], rc, text);
        char *a = bd_strfmt("%s=%s", env[i][0], env[i][1]), *b = bd_strfmt("%s=%s", env[i][2], env[i][3]);
        cr_assert(strstr(text, a) && strstr(text, b) && strstr(text, "without a launcher") &&
                      strstr(text, "--slurm") && strstr(text, "nothing was written"),
                  "%s", text);
        cr_assert(none_named(dir, "sw"), "%s: a refused sweep wrote %s", env[i][0], out);
        free(a);
        free(b);
        free(text);
        /* --slurm: the script is written, whatever this shell's variables */
        rc = bodhi(&text, "sweep %s --seeds 1..2 --slurm --out %s", file, out);
        cr_assert_eq(rc, 0, "%s --slurm: %s", env[i][0], text);
        free(text);
        cr_assert(!none_named(out, "sweep.sbatch"));
        char *cmd = bd_strfmt("rm -rf %s", out);
        cr_assert_eq(system(cmd), 0);
        free(cmd);
        unsetenv(env[i][0]);
        unsetenv(env[i][2]);
    }
    /* a variable without its pair would fail every run too */
    setenv("WORLD_SIZE", "2", 1);
    int rc = bodhi(&text, "sweep %s --seeds 1 --out %s", file, out);
    cr_assert_eq(rc, 2, "%s", text);
    cr_assert(strstr(text, "WORLD_SIZE is set but RANK is not") && strstr(text, "--slurm"), "%s", text);
    cr_assert(none_named(dir, "sw"));
    free(text);
    unsetenv("WORLD_SIZE");
    free(out);
    free(file);
    remove_dir(dir);
}

/* The Slurm script takes a plain task number alone (bash would read "abc" as a variable,
 * "0x1" as 1, " 1" as 1), and the printed sbatch command quotes a path a shell would read
 * otherwise. */
Test(sweep, the_slurm_script_takes_task_numbers_alone, .timeout = 120 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("task", &file), *text;
    char *out = bd_strfmt("%s/s$x;w&(y)*", dir);
    int rc = bodhi(&text, "sweep %s --seeds 1..2 --slurm --out '%s'", file, out);
    cr_assert_eq(rc, 0, "%s", text);
    /* the command as printed, run by a shell, names the script */
    const char *line = strstr(text, "submit them with: sbatch ");
    cr_assert_not_null(line, "%s", text);
    line += strlen("submit them with: sbatch ");
    char *word = bd_strfmt("%.*s", (int)strcspn(line, "\n"), line);
    char *sb = bd_strfmt("%s/sweep.sbatch", out);
    char *cmd = bd_strfmt("sh -c 'for a in \"$@\"; do printf %%s \"$a\"; done' sh %s > %s/word", word, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    free(cmd);
    char *wpath = bd_strfmt("%s/word", dir), *got = NULL;
    cr_assert_eq(bd_read_file(wpath, &got, NULL), BD_OK);
    cr_assert_str_eq(got, sb, "printed: %s", word);
    free(got);
    free(wpath);
    free(word);
    free(text);
    /* a task that is no plain number is refused before anything runs (a plain folder) */
    char *plain = bd_strfmt("%s/sw", dir);
    rc = bodhi(&text, "sweep %s --seeds 1..2 --slurm --out %s", file, plain);
    cr_assert_eq(rc, 0, "%s", text);
    free(text);
    static const char *const bad[] = {"abc", "0x1", "' 1'", "01", "-1", "2", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *log = bd_strfmt("%s/task.log", dir);
        cmd = bd_strfmt("SLURM_ARRAY_TASK_ID=%s bash %s/sweep.sbatch > %s 2>&1", bad[i], plain, log);
        int st = system(cmd);
        char *said = NULL;
        cr_assert_eq(bd_read_file(log, &said, NULL), BD_OK);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "task %s: %s", bad[i], said);
        cr_assert(strstr(said, "must be a task number from 0 to 1"), "task %s: %s", bad[i], said);
        free(said);
        free(cmd);
        free(log);
    }
    char *run1 = bd_strfmt("%s/base/seed-1", plain), *run2 = bd_strfmt("%s/base/seed-2", plain);
    cr_assert(!bd_exists(run1) && !bd_exists(run2), "nothing ran");
    free(run1);
    free(run2);
    free(plain);
    free(sb);
    free(out);
    free(file);
    remove_dir(dir);
}

Test(sweep, set_paths_address_agents_envs_and_phases)
{
    const char *two =
        "uid: two\n"
        "schedule:\n"
        "  - train:\n"
        "      environments: [{environment: {name: cartpole, uid: pole, params: {worlds: 4}}}]\n"
        "      agents:\n"
        "        - {name: a.b, brain: {name: ppo}, muscle: {name: ppo}, sensors: [pole.*], actuators: [pole.push]}\n"
        "        - {name: a, brain: {name: random}, muscle: {name: random}, sensors: [pole.*], actuators: []}\n"
        "      simulation: {conditions: [{name: max_steps, params: {steps: 100}}]}\n"
        "  - test:\n"
        "      phase_config: {mode: test}\n";
    bd_node *t = NULL;
    cr_assert_eq(bd_yaml_parse(two, strlen(two), "two.yml", &t), BD_OK);
    int phases = 0;
    /* the longest agent name that fits: a.b, not a; params made where none were written */
    cr_assert_eq(bd_setpath(t, "a.b.brain.params.ent_coef", "0.01", &phases), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(phases, 1, "only train writes agents here");
    const bd_node *sched = bd_node_get(t, "schedule");
    const bd_node *train = bd_node_get(sched->items[0], "train");
    const bd_node *ab = bd_node_get(train, "agents")->items[0];
    cr_assert_str_eq(bd_node_get(bd_node_get(bd_node_get(ab, "brain"), "params"), "ent_coef")->text, "0.01");
    cr_assert_eq(bd_setpath(t, "brain.params.x", "1", NULL), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "several agents (a.b, a)"), "%s", bd_lasterr());
    cr_assert_eq(bd_setpath(t, "simulation.conditions.max_steps.params.steps", "200", NULL), BD_OK, "%s",
                 bd_lasterr());
    cr_assert_eq(bd_setpath(t, "simulation.conditions.nope.params.steps", "200", NULL), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "no item named 'nope'") && strstr(bd_lasterr(), "max_steps"), "%s", bd_lasterr());
    cr_assert_eq(bd_setpath(t, "pole.params.worlds", "8", &phases), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_setpath(t, "test:phase_config.worker", "2", &phases), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(phases, 1);
    const bd_node *test = bd_node_get(sched->items[1], "test");
    cr_assert_str_eq(bd_node_get(bd_node_get(test, "phase_config"), "worker")->text, "2");
    cr_assert_eq(bd_setpath(t, "pole.params", "8", NULL), BD_EINVAL, "a map is not one value");
    cr_assert_eq(bd_setpath(t, "pole.params.worlds.x", "8", NULL), BD_EINVAL, "a number is not a map");
    cr_assert(strstr(bd_lasterr(), "not a map"), "%s", bd_lasterr());
    bd_node_destroy(t);
}

/* The CSV's numbers checked against each run's own episodes (bodhi replay RUN --csv): the
 * mean of its last 100 episodes by end step (ties by world), and mean, sample standard
 * deviation, min and max of those over a point's seeds. */
static const char *CHECK_PY =
    "import csv, math, statistics, sys\n"
    "sweep, runs = sys.argv[1], sys.argv[2:]\n"
    "rows = list(csv.DictReader(open(sweep)))\n"
    "assert list(rows[0].keys()) == ['point','phase','agent','seed','run','episodes','final_return',\n"
    "    'mean_return','seeds','final_std','final_min','final_max'], rows[0].keys()\n"
    "def close(a, b): return abs(a - b) <= 1e-7 * max(1.0, abs(b))\n"
    "finals = {}\n"
    "for i in range(0, len(runs), 2):\n"
    "    rel, path = runs[i], runs[i + 1]\n"
    "    eps = list(csv.DictReader(open(path)))\n"
    "    eps.sort(key=lambda e: (int(e['start_step']) + int(e['length']), int(e['world'])))\n"
    "    last = [float(e['return']) for e in eps[-100:]]\n"
    "    want = sum(last) / len(last)\n"
    "    mine = [r for r in rows if r['run'] == rel]\n"
    "    assert len(mine) == 1, (rel, mine)\n"
    "    r = mine[0]\n"
    "    assert int(r['episodes']) == len(eps), (rel, r['episodes'], len(eps))\n"
    "    assert close(float(r['final_return']), want), (rel, r['final_return'], want)\n"
    "    assert close(float(r['mean_return']), sum(float(e['return']) for e in eps) / len(eps)), rel\n"
    "    finals.setdefault(r['point'], []).append((want, len(eps)))\n"
    "alls = [r for r in rows if r['seed'] == 'all']\n"
    "assert len(alls) == len(finals) == 2, (alls, finals)\n"
    "for r in alls:\n"
    "    f = [x for x, _ in finals[r['point']]]\n"
    "    assert int(r['seeds']) == len(f) == 3\n"
    "    assert int(r['episodes']) == sum(n for _, n in finals[r['point']])\n"
    "    assert close(float(r['final_return']), statistics.mean(f)), r\n"
    "    assert close(float(r['final_std']), statistics.stdev(f)), r\n"
    "    assert close(float(r['final_min']), min(f)) and close(float(r['final_max']), max(f)), r\n"
    "    print('%s %.6g %.6g' % (r['point'], statistics.mean(f), statistics.stdev(f)))\n";

Test(sweep, runs_here_and_replay_aggregates_seeds, .timeout = 400 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("runs", &file), *text;
    char *out = bd_strfmt("%s/sw", dir);
    int rc = bodhi(&text, "sweep %s --seeds 1..3 --set brain.params.learning_rate=1e-3,3e-3 --out %s --quiet", file,
                   out);
    cr_assert_eq(rc, 0, "%s", text);
    free(text);
    char *js = bd_strfmt("%s/sweep.json", out);
    cJSON *j = read_json(js), *p, *r;
    char *args = strdup("");
    int nruns = 0;
    cJSON_ArrayForEach(p, cJSON_GetObjectItem(j, "points")) cJSON_ArrayForEach(r, cJSON_GetObjectItem(p, "runs"))
    {
        const char *rel = cJSON_GetObjectItem(r, "dir")->valuestring;
        cr_assert_eq(cJSON_GetObjectItem(r, "exit")->valueint, 0, "%s", rel);
        char *csvp = bd_strfmt("%s/episodes-%d.csv", dir, nruns++);
        rc = bodhi(&text, "replay '%s/%s' --csv '%s'", out, rel, csvp);
        cr_assert_eq(rc, 0, "%s", text);
        free(text);
        char *more = bd_strfmt("%s '%s' '%s'", args, rel, csvp);
        free(args);
        args = more;
        free(csvp);
    }
    cJSON_Delete(j);
    free(js);
    cr_assert_eq(nruns, 6);
    /* the sweep's table, CSV and plot */
    char *csv = bd_strfmt("%s/sweep.csv", dir), *png = bd_strfmt("%s/sweep.png", dir);
    rc = bodhi(&text, "replay %s --csv %s --plot %s", out, csv, png);
    cr_assert_eq(rc, 0, "%s", text);
    cr_assert(strstr(text, "last 100 episodes"), "the table says its window: %s", text);
    cr_assert(strstr(text, "learning_rate=1e-3 train/balancer     3"), "%s", text);
    cr_assert(strstr(text, "learning_rate=3e-3 train/balancer     3"), "%s", text);
    struct stat st;
    cr_assert(stat(png, &st) == 0 && st.st_size > 10000, "the plot");
    char *table = text;
    char *cmd = bd_strfmt("/usr/bin/python3 -c \"$(cat <<'EOF'\n%s\nEOF\n)\" %s %s", CHECK_PY, csv, args);
    FILE *py = popen(cmd, "r");
    char got[1024] = "";
    size_t n = fread(got, 1, sizeof got - 1, py);
    got[n] = '\0';
    cr_assert_eq(pclose(py), 0, "the sweep's CSV against the runs' own: %s", got);
    /* the table's numbers are the CSV's: mean and std of each point */
    char pt[64];
    double mean, sd;
    for (char *line = got; sscanf(line, "%63s %lf %lf", pt, &mean, &sd) == 3; line = strchr(line, '\n') + 1) {
        char row[160];
        snprintf(row, sizeof row, "%s train/balancer     3", pt);
        char *at = strstr(table, row);
        cr_assert_not_null(at, "%s in %s", row, table);
        long long eps;
        double tm, tsd;
        cr_assert_eq(sscanf(at + strlen(row), "%lld %lf %lf", &eps, &tm, &tsd), 3);
        cr_assert(fabs(tm - mean) <= 1e-5 * fabs(mean) && fabs(tsd - sd) <= 1e-5 * fabs(sd) + 1e-9, "%s: %g %g / %g %g",
                  pt, tm, tsd, mean, sd);
        if (!strchr(line, '\n'))
            break;
    }
    free(cmd);
    /* a plain folder of the same runs, without sweep.json: grouped by their run.yml as
     * bodhi serve groups them, into the same rows */
    char *moved = bd_strfmt("%s/sweep.json", out), *aside = bd_strfmt("%s/sweep.json.kept", dir);
    cr_assert_eq(rename(moved, aside), 0);
    rc = bodhi(&text, "replay %s", out);
    cr_assert_eq(rc, 0, "%s", text);
    char *said = NULL; /* a sweep's metrics are its runs': one of them is asked for */
    cr_assert_eq(bodhi(&said, "replay %s --metrics %s/m.csv", out, dir), 2, "%s", said);
    cr_assert(strstr(said, "is a sweep: --metrics and --tensorboard take one of its runs"), "%s", said);
    free(said);
    char *plot_line = strstr(table, "plot: ");
    cr_assert_not_null(plot_line);
    *plot_line = '\0'; /* the rest: the same */
    const char *rows1 = strstr(table, "\npoint"), *rows2 = strstr(text, "\npoint");
    cr_assert(rows1 && rows2 && strcmp(rows1, rows2) == 0, "%s\n---\n%s", table, text);
    free(text);
    free(table);
    free(moved);
    free(aside);
    free(args);
    free(csv);
    free(png);
    free(out);
    free(file);
    remove_dir(dir);
}

/* A phase with an episodes target (a test phase of 10 episodes over 16 worlds) counts, in
 * the sweep's table and CSV, the episodes bodhi run counted (each world's share), and its
 * final return is the one summary.json holds; it took every recorded episode, those past
 * the shares too (53 and a final of 66.9 against 10 and 71.2). */
Test(sweep, a_phase_of_an_episodes_target_counts_what_the_run_counted, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("quota", &file), *text;
    char *full = bd_strfmt("%s  - test:\n      phase_config: {mode: test, worker: 1, episodes: 10}\n", RUN_FILE);
    cr_assert_eq(bd_write_file(file, full, strlen(full)), BD_OK);
    char *out = bd_strfmt("%s/sw", dir), *csv = bd_strfmt("%s/sweep.csv", dir);
    int rc = bodhi(&text, "sweep %s --seeds 1..2 --out %s --quiet", file, out);
    cr_assert_eq(rc, 0, "%s", text);
    free(text);
    rc = bodhi(&text, "replay %s --csv %s", out, csv);
    cr_assert_eq(rc, 0, "%s", text);
    free(text);
    char *cmd = bd_strfmt(
        "/usr/bin/python3 -c \"$(cat <<'EOF'\n"
        "import csv, json, sys\n"
        "rows = [r for r in csv.DictReader(open(sys.argv[1])) if r['phase'] == 'test' and r['seed'] != 'all']\n"
        "assert len(rows) == 2, rows\n"
        "for r in rows:\n"
        "    s = json.load(open(sys.argv[2] + '/' + r['run'] + '/summary.json'))\n"
        "    a = [p for p in s['phases'] if p['name'] == 'test'][0]['agents'][0]\n"
        "    assert int(r['episodes']) == a['episodes'] == 10, (r, a)\n"
        "    f = float(r['final_return'])\n"
        "    assert abs(f - a['mean_return']) <= 1e-6 * abs(a['mean_return']), (r, a)\n"
        "EOF\n)\" %s %s", csv, out);
    cr_assert_eq(system(cmd), 0, "the sweep's test rows against the runs' summary.json");
    free(cmd);
    free(csv);
    free(out);
    free(full);
    free(file);
    remove_dir(dir);
}

/* 1 when a process's command line names needle. */
static int process_names(const char *needle)
{
    DIR *d = opendir("/proc");
    int found = 0;
    for (struct dirent *e; d && (e = readdir(d)) && !found;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char p[300], buf[4096];
        snprintf(p, sizeof p, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(p, "r");
        size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        for (size_t i = 0; i < n; i++)
            buf[i] = buf[i] ? buf[i] : ' ';
        buf[n] = '\0';
        found = strstr(buf, needle) != NULL;
    }
    if (d)
        closedir(d);
    return found;
}

Test(sweep, ctrl_c_stops_cleanly_and_keeps_the_finished_runs, .timeout = 300 * BD_TEST_SLOW)
{
    char *file, *dir = make_dir("int", &file);
    char *out = bd_strfmt("%s/sw", dir);
    /* point 1 ends at its step cap; point 2 would train for ever */
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", 1);
        dup2(null, 1);
        dup2(null, 2);
        execl(BODHI_BINARY, "bodhi", "sweep", file, "--seeds", "7", "--set",
              "simulation.conditions.max_steps.params.steps=2048,50000000", "--out", out, "--quiet", (char *)NULL);
        _exit(127);
    }
    char *trace = bd_strfmt("%s/steps=50000000/seed-7/memory/train.balancer.h5", out);
    for (int i = 0; i < 1200 * BD_TEST_SLOW && !bd_exists(trace); i++)
        usleep(100000);
    cr_assert(bd_exists(trace), "the second run records");
    cr_assert_eq(kill(pid, SIGINT), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 130, "exit %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    cr_assert(!process_names(out), "no process of the sweep is left");
    char *js = bd_strfmt("%s/sweep.json", out);
    cJSON *j = read_json(js);
    cJSON *pts = cJSON_GetObjectItem(j, "points");
    cJSON *r0 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 0), "runs"), 0);
    cJSON *r1 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 1), "runs"), 0);
    cr_assert_eq(cJSON_GetObjectItem(r0, "exit")->valueint, 0);
    cr_assert_eq(cJSON_GetObjectItem(r1, "exit")->valueint, 130);
    cJSON_Delete(j);
    const char *status[2] = {"done", "interrupted"};
    const char *rel[2] = {"steps=2048/seed-7", "steps=50000000/seed-7"};
    for (int k = 0; k < 2; k++) {
        char *sum = bd_strfmt("%s/%s/summary.json", out, rel[k]);
        j = read_json(sum);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, status[k]);
        cJSON_Delete(j);
        free(sum);
    }
    free(js);
    /* the replay names the interrupted run (and counts what it recorded, if anything) */
    char *text;
    int rc = bodhi(&text, "replay %s", out);
    cr_assert_eq(rc, 0, "%s", text);
    cr_assert(strstr(text, "steps=50000000/seed-7 (seed 7): interrupted\n"), "%s", text);
    cr_assert(strstr(text, "steps=2048     train/balancer     1"), "%s", text);
    cr_assert(strstr(text, "steps=50000000 train/balancer "), "%s", text); /* episodes or none, as it was stopped */
    free(text);
    free(trace);
    free(out);
    free(file);
    remove_dir(dir);
}

/* The same Slurm array submitted for real (sbatch --wait), where a Slurm answers and
 * BODHI_TEST_SLURM=1 asks for it (Debian's slurm-wlm and munge on one host do); skipped
 * otherwise, as on CI. */
Test(sweep, slurm_array_runs_under_sbatch, .timeout = 600 * BD_TEST_SLOW)
{
    const char *want = getenv("BODHI_TEST_SLURM");
    if (!want || strcmp(want, "1") != 0 || system("sinfo -h >/dev/null 2>&1") != 0)
        cr_skip("no Slurm asked for (BODHI_TEST_SLURM=1) or none answers (sinfo)");
    char *file, *dir = make_dir("slurm", &file), *text;
    char *out = bd_strfmt("%s/sw", dir);
    int rc = bodhi(&text, "sweep %s --seeds 1..3 --slurm --out %s", file, out);
    cr_assert_eq(rc, 0, "%s", text);
    free(text);
    char *cmd = bd_strfmt("sbatch --wait %s/sweep.sbatch >/dev/null", out);
    cr_assert_eq(system(cmd), 0, "sbatch --wait");
    free(cmd);
    for (int s = 1; s <= 3; s++) {
        char *sum = bd_strfmt("%s/base/seed-%d/summary.json", out, s);
        cJSON *j = read_json(sum);
        cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "done");
        cJSON_Delete(j);
        free(sum);
    }
    rc = bodhi(&text, "replay %s", out);
    cr_assert_eq(rc, 0, "%s", text);
    cr_assert(strstr(text, "base  train/balancer     3"), "%s", text);
    free(text);
    free(out);
    free(file);
    remove_dir(dir);
}
