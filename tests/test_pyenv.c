/* test_pyenv.c: envs written in Python (env/python/, docs/python.md) through the bodhi
 * binary: a python:module:Class env found beside its run file trains, replays with
 * --verify and gives the same trace for the same seed; bodhi check refuses a missing
 * module, a missing class, ill-formed spaces, a class without step, a constructor that
 * does not take a declared param and an unknown param,
 * each at the run file's line and column; a step that raises ends the run as a muscle
 * failure naming module:Class and the exception; the SugarScape-like experiment trains
 * briefly and passes replay --verify. Python envs come from tests/pyenv/lineworld.py and
 * experiments/sugarscape.py. Each test removes its files on pass. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "slow.h"

static const char *LINE_RUN = "uid: line\n"
                              "seed: %d\n"
                              "schedule:\n"
                              "  - train:\n"
                              "      environments:\n"
                              "        - environment: {name: '%s', uid: line, params: {worlds: 6, speed: 0.2}}\n"
                              "      agents:\n"
                              "        - name: walker\n"
                              "          brain: {name: ppo, params: {rollout_steps: 32, hidden: 16}}\n"
                              "          muscle: {name: ppo}\n"
                              "          sensors: [line.*]\n"
                              "          actuators: [line.move]\n"
                              "      simulation:\n"
                              "        conditions: [{name: max_steps, params: {steps: 3000}}]\n"
                              "      phase_config: {mode: train, worker: 2, restarts: 0}\n";

/* A fresh folder for this test's files, with tests/pyenv/lineworld.py copied into it. */
static char *test_dir(const char *tag)
{
    char *dir = bd_strfmt("/tmp/bd-test-pyenv-%d-%s", (int)getpid(), tag);
    char *cmd = bd_strfmt("rm -rf %s && mkdir -p %s/sub && cp %s/tests/pyenv/lineworld.py %s/ && "
                          "cp %s/tests/pyenv/lineworld.py %s/sub/",
                          dir, dir, BODHI_SOURCE_DIR, dir, BODHI_SOURCE_DIR, dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    return dir;
}

static void remove_dir(char *dir)
{
    char *cmd = bd_strfmt("rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(dir);
}

/* dir/NAME.yml: the Line run file naming env `env` with `seed`. */
static char *write_line_run(const char *dir, const char *name, const char *env, int seed)
{
    char *path = bd_strfmt("%s/%s.yml", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, LINE_RUN, seed, env);
    fclose(f);
    return path;
}

/* Runs `bodhi ARGS` from / (so that nothing is found through the working directory), its
 * stdout and stderr into dir/out.txt; returns its exit status and *text what it wrote. */
static int bodhi(const char *dir, char **text, const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out = bd_strfmt("%s/out.txt", dir);
    char *cmd = bd_strfmt("cd / && %s %s > %s 2>&1", BODHI_BINARY, args, out);
    int st = system(cmd);
    if (text) {
        *text = NULL;
        cr_assert_eq(bd_read_file(out, text, NULL), BD_OK);
    }
    free(cmd);
    free(out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(pyenv, a_python_env_beside_its_run_file_trains_and_replays, .timeout = 300 * BD_TEST_SLOW)
{
    char *dir = test_dir("run"), *text;
    char *file = write_line_run(dir, "line", "python:lineworld:Line", 5);
    cr_assert_eq(bodhi(dir, &text, "check %s", file), 0, "%s", text);
    cr_assert(strstr(text, "line x 6 worlds") && strstr(text, "line.x line.goal"), "%s", text);
    free(text);
    for (int k = 0; k < 2; k++) { /* the same seed twice: the same trace */
        cr_assert_eq(bodhi(dir, &text, "run %s --out %s/run%d --quiet", file, dir, k), 0, "%s", text);
        free(text);
        cr_assert_eq(bodhi(dir, &text, "replay %s/run%d --verify --csv %s/episodes%d.csv", dir, k, dir, k), 0, "%s",
                     text);
        cr_assert(strstr(text, "every recorded sensor, reward and flag matches"), "%s", text);
        free(text);
    }
    char *a = bd_strfmt("%s/episodes0.csv", dir), *b = bd_strfmt("%s/episodes1.csv", dir), *ta, *tb;
    cr_assert_eq(bd_read_file(a, &ta, NULL), BD_OK);
    cr_assert_eq(bd_read_file(b, &tb, NULL), BD_OK);
    cr_assert(strlen(ta) > 200 && strcmp(ta, tb) == 0, "the same seed gave other episodes:\n%s\n---\n%s", ta, tb);
    free(ta);
    free(tb);
    free(a);
    free(b);
    /* run.yml names the module's folder: the run replays from anywhere */
    char *yml = bd_strfmt("%s/run0/run.yml", dir), *want = bd_strfmt("python:%s/lineworld:Line", dir);
    cr_assert_eq(bd_read_file(yml, &text, NULL), BD_OK);
    cr_assert(strstr(text, want), "run.yml names %s:\n%s", want, text);
    free(text);
    free(want);
    free(yml);
    free(file);
    remove_dir(dir);
}

/* `bodhi check` of dir/bad.yml naming env `env` (with an extra param when `extra`):
 * exit 2 and a message holding `want` at the name's line and column. */
static void refused(const char *dir, const char *env, const char *extra, const char *want)
{
    char *file = write_line_run(dir, "bad", env, 5), *text;
    if (extra) {
        char *cmd = bd_strfmt("sed -i 's/speed: 0.2/speed: 0.2, %s/' %s", extra, file);
        cr_assert_eq(system(cmd), 0);
        free(cmd);
    }
    cr_assert_eq(bodhi(dir, &text, "check %s", file), 2, "%s", text);
    char *where = bd_strfmt("%s:6:%d: ", file, extra ? 99 : 24);
    cr_assert(strstr(text, where) && strstr(text, want), "expected %s... %s, got:\n%s", where, want, text);
    free(where);
    free(text);
    free(file);
}

Test(pyenv, check_refuses_what_cannot_be_loaded, .timeout = 120 * BD_TEST_SLOW)
{
    char *dir = test_dir("check");
    refused(dir, "python:nosuchmodule:Line",
            NULL, "python:nosuchmodule:Line: importing 'nosuchmodule' (searched ");
    refused(dir, "python:nosuchmodule:Line", NULL, "raised ModuleNotFoundError: No module named 'nosuchmodule'");
    refused(dir, "python:lineworld:Nope", NULL, "python:lineworld:Nope: module 'lineworld' (");
    refused(dir, "python:lineworld:Nope", NULL, "lineworld.py) has no class 'Nope'");
    refused(dir, "python:lineworld:BadSpaces", NULL,
            "python:lineworld:BadSpaces: sensors[0]: expected a name, or (name, low, high) with low <= high, "
            "got ('x', 1.0, -1.0)");
    refused(dir, "python:lineworld:BadActuator", NULL,
            "python:lineworld:BadActuator: actuators[0]: expected (name, n) for Discrete(n) with n >= 2");
    refused(dir, "python:lineworld:NoStep", NULL, "python:lineworld:NoStep: the class has no method step");
    refused(dir, "python:lineworld:NoParam", NULL, "python:lineworld:NoParam: its constructor takes no 'speed'");
    refused(dir, "python:lineworld", NULL, "expected python:MODULE:Class or python:FOLDER/MODULE:Class");
    refused(dir, "python:lineworld:Line", "sped: 3", "unknown key 'sped' in environment params; did you mean 'speed'?");
    /* a folder named in the env is the run file's, and no other: sub/ holds the module */
    char *file = write_line_run(dir, "sub", "python:sub/lineworld:Line", 5), *text;
    cr_assert_eq(bodhi(dir, &text, "check %s", file), 0, "%s", text);
    free(text);
    free(file);
    refused(dir, "python:nosuchdir/lineworld:Line", NULL, "importing 'lineworld'");
    /* one module name from two folders: Python holds one module per name, so the second
     * phase would get the first folder's class; refused, naming both */
    file = write_line_run(dir, "two", "python:lineworld:Line", 5);
    FILE *f = fopen(file, "a");
    cr_assert_not_null(f);
    fprintf(f, "  - again:\n      environments:\n        - environment: {name: 'python:sub/lineworld:Line', uid: line, "
               "params: {worlds: 6, speed: 0.2}}\n");
    fclose(f);
    cr_assert_eq(bodhi(dir, &text, "check %s", file), 2, "%s", text);
    cr_assert(strstr(text, "a module named 'lineworld' is loaded already") && strstr(text, "/sub"), "%s", text);
    free(text);
    free(file);
    remove_dir(dir);
}

/* `bodhi run FILE` into dir/run fails (exit 1) within a minute, saying `want` and `also`
 * (NULL: nothing more) on the terminal and in summary.json, as a failed run; returns what
 * it wrote on the terminal (the caller frees it). */
static char *failed_run(const char *dir, const char *file, const char *want, const char *also)
{
    char *text, *sum;
    const double t0 = bd_now();
    cr_assert_eq(bodhi(dir, &text, "run %s --out %s/run", file, dir), 1, "%s", text);
    cr_assert_lt(bd_now() - t0, 60, "it ended within a minute, not an hour");
    cr_assert(strstr(text, want) && (!also || strstr(text, also)), "%s", text);
    char *summary = bd_strfmt("%s/run/summary.json", dir);
    cr_assert_eq(bd_read_file(summary, &sum, NULL), BD_OK);
    cr_assert(strstr(sum, "\"failed\"") && strstr(sum, want) && (!also || strstr(sum, also)), "%s", sum);
    free(sum);
    free(summary);
    return text;
}

Test(pyenv, a_step_that_raises_fails_the_run_with_its_exception, .timeout = 300 * BD_TEST_SLOW)
{
    char *dir = test_dir("raise"), *text;
    char *file = write_line_run(dir, "raise", "python:lineworld:Raising", 5);
    text = failed_run(dir, file, "python:lineworld:Raising: step raised ValueError: the sugar ran out at call 30 (",
                      NULL);
    cr_assert(strstr(text, "lineworld.py:46)"), "%s", text);
    cr_assert(strstr(text, "Traceback (most recent call last)"), "the muscle prints the traceback:\n%s", text);
    free(text);
    free(file);
    remove_dir(dir);
}

/* A step that never returns: the muscle's heartbeats come from a thread of their own, so
 * without a watch on the step itself the run waited for ever. A step longer than the
 * phase's heartbeat_timeout ends the muscle as hung; with no restarts left the run fails,
 * naming it, within seconds. */
Test(pyenv, a_step_that_never_returns_is_a_hung_muscle, .timeout = 300 * BD_TEST_SLOW)
{
    char *dir = test_dir("hang");
    char *file = write_line_run(dir, "hang", "python:lineworld:Hanging", 5);
    char *sed = bd_strfmt("sed -i 's/restarts: 0}/restarts: 0, heartbeat_timeout: 2}/' %s", file);
    cr_assert_eq(system(sed), 0);
    free(sed);
    free(failed_run(dir, file, "hung: one step of its envs has not returned after ", "heartbeat_timeout, 2 s)"));
    free(file);
    remove_dir(dir);
}

/* A Python env that fails only in a greedy_average evaluation (a shard of 5 worlds, where
 * the muscles hold 3): a step that raises fails the run with the env's error, one that never
 * returns ends the brain as hung after the phase's heartbeat_timeout, the brain's reason in
 * summary.json, within seconds. */
static void greedy_fails(const char *tag, const char *cls, const char *want)
{
    char *dir = test_dir(tag);
    char *env = bd_strfmt("python:lineworld:%s", cls);
    char *file = write_line_run(dir, tag, env, 5);
    char *sed = bd_strfmt("sed -i -e 's/restarts: 0}/restarts: 0, heartbeat_timeout: 2}/' -e 's/conditions: "
                          "\\[{name: max_steps, params: {steps: 3000}}\\]/conditions: [{name: max_steps, params: "
                          "{steps: 3000}}, {name: greedy_average, params: {threshold: 100, episodes: 5, every: 600}}]/' "
                          "%s && grep -q greedy_average %s",
                          file, file);
    cr_assert_eq(system(sed), 0);
    free(sed);
    free(failed_run(dir, file, want, NULL));
    free(file);
    free(env);
    remove_dir(dir);
}

Test(pyenv, a_greedy_evaluation_that_raises_fails_the_run, .timeout = 300 * BD_TEST_SLOW)
{
    greedy_fails("greedyraise", "FailsInFive", "no greedy walk today");
}

Test(pyenv, a_greedy_evaluation_that_never_returns_is_a_hung_brain, .timeout = 300 * BD_TEST_SLOW)
{
    greedy_fails("greedyhang", "HangsInFive",
                 "hung: one step of its greedy evaluation's envs has not returned after ");
}

Test(pyenv, sugarscape_trains_and_replays, .timeout = 600 * BD_TEST_SLOW)
{
    char *dir = test_dir("sugar"), *text;
    /* the experiment, shortened, naming its module by the experiments/ folder */
    char *file = bd_strfmt("%s/sugarscape.yml", dir);
    char *cmd = bd_strfmt("sed -e 's/steps: 2000000/steps: 60000/' -e 's/episodes: 512/episodes: 16/' "
                          "-e 's#python:sugarscape:SugarScape#python:%s/experiments/sugarscape:SugarScape#' "
                          "%s/experiments/sugarscape.yml > %s",
                          BODHI_SOURCE_DIR, BODHI_SOURCE_DIR, file);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    cr_assert_eq(bodhi(dir, &text, "run %s --out %s/run --quiet", file, dir), 0, "%s", text);
    free(text);
    cr_assert_eq(bodhi(dir, &text, "replay %s/run --verify", dir), 0, "%s", text);
    cr_assert(strstr(text, "verify train: re-simulated") && strstr(text, "verify test: re-simulated"), "%s", text);
    cr_assert(strstr(text, "of 64 worlds of sugar"), "%s", text);
    free(text);
    char *summary = bd_strfmt("%s/run/summary.json", dir);
    cr_assert_eq(bd_read_file(summary, &text, NULL), BD_OK);
    cr_assert(strstr(text, "\"done\"") && strstr(text, "\"foragers\""), "%s", text);
    free(text);
    free(summary);
    free(file);
    remove_dir(dir);
}
