/* test_config.c: Criterion suite for config/ (yamltree.c, yamlparse.c, yamlvalue.c, runfile.c,
 * runfile_phase.c).
 *
 * Uses the run file of docs/run-file.md as the good case and variants of it that parse.
 * A run file broken one way (or several) is a file under tests/runfiles/bad/ ending with
 * the problems, FILE:LINE:COL: message, that `bodhi check` must name (test_conductor.c
 * checks every one); the YAML tree's own refusals (alias bombs, merge keys) stay here.
 * Files go to /tmp with the pid and test name in their names (tests run in parallel).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "config/runfile.h"
#include "config/yamltree.h"

/* The good case: the run file of docs/run-file.md. */
static const char *EXAMPLE =
    "uid: cartpole-ppo\n"                                                            /* 1 */
    "seed: 42\n"                                                                     /* 2 */
    "version: 1\n"                                                                   /* 3 */
    "schedule:\n"                                                                    /* 4 */
    "  - train:\n"                                                                   /* 5 */
    "      environments:\n"                                                          /* 6 */
    "        - environment: {name: cartpole, uid: pole, params: {worlds: 2048}}\n"   /* 7 */
    "      agents:\n"                                                                /* 8 */
    "        - name: balancer\n"                                                     /* 9 */
    "          brain: {name: ppo, params: {learning_rate: 2.5e-4}}\n"                /* 10 */
    "          muscle: {name: ppo, params: {}}\n"                                    /* 11 */
    "          objective: {name: reward, params: {}}\n"                              /* 12 */
    "          sensors: [pole.*]            # pole.x, pole.x_dot, ...\n"             /* 13 */
    "          actuators: [pole.push]       # Discrete(2)\n"                         /* 14 */
    "      simulation:\n"                                                            /* 15 */
    "        name: vanilla\n"                                                        /* 16 */
    "        conditions:\n"                                                          /* 17 */
    "          - {name: objective_average, params: {window: 100, threshold: 475}}\n" /* 18 */
    "          - {name: max_steps, params: {steps: 2000000}}\n"                      /* 19 */
    "      phase_config: {mode: train, worker: 2, device: auto}\n"                   /* 20 */
    "  - test:                              # deep-merged onto the phase before it\n" /* 21 */
    "      phase_config: {mode: test, worker: 2, episodes: 100}\n"                   /* 22 */
    "run_config:\n"                                                                  /* 23 */
    "  condition: {name: all_phases, params: {}}\n";                                 /* 24 */

/* A copy of text with the first `from` replaced by `to` (the test fails if absent). */
static char *subst(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    cr_assert_not_null(p, "subst: '%s' not in the text", from);
    size_t a = (size_t)(p - text), lf = strlen(from), lt = strlen(to), lr = strlen(p + lf);
    char *s = malloc(a + lt + lr + 1);
    cr_assert_not_null(s);
    memcpy(s, text, a);
    memcpy(s + a, to, lt);
    memcpy(s + a + lt, p + lf, lr + 1);
    return s;
}

/* /tmp/bodhi_test_runfile_<pid>_<tag>.yml into buf. */
static const char *tmp_path(char *buf, size_t len, const char *tag)
{
    snprintf(buf, len, "/tmp/bodhi_test_runfile_%d_%s.yml", (int)getpid(), tag);
    return buf;
}

/* Parses a text expected to fail; returns the code, copies the message into msg. */
static int parse_bad(const char *text, char *msg, size_t len)
{
    bd_runfile *rf = NULL;
    int rc = bd_runfile_parse(text, "bad.yml", &rf);
    cr_assert_null(rf);
    snprintf(msg, len, "%s", bd_lasterr());
    return rc;
}

#define assert_has(msg, part) cr_assert(strstr((msg), (part)) != NULL, "'%s' lacks '%s'", (msg), (part))

static void check_example(const bd_runfile *rf)
{
    cr_assert_str_eq(rf->uid, "cartpole-ppo");
    cr_assert_eq(rf->seed, 42);
    cr_assert_eq(rf->version, 1);
    cr_assert_eq(rf->nphases, 2);

    const bd_phase_cfg *tr = &rf->phases[0];
    cr_assert_str_eq(tr->name, "train");
    cr_assert_eq(tr->mode, BD_MODE_TRAIN);
    cr_assert_eq(tr->worker, 2);
    cr_assert_str_eq(tr->device, "auto");
    cr_assert_eq(tr->episodes, 0);
    cr_assert_eq(tr->nenvs, 1);
    cr_assert_str_eq(tr->envs[0].env.name, "cartpole");
    cr_assert_str_eq(tr->envs[0].uid, "pole");
    long long worlds = 0;
    cr_assert_eq(bd_node_int(tr->envs[0].env.params, "worlds", 1, &worlds), BD_OK);
    cr_assert_eq(worlds, 2048);
    cr_assert_eq(tr->nagents, 1);
    const bd_agent_cfg *a = &tr->agents[0];
    cr_assert_str_eq(a->name, "balancer");
    cr_assert_str_eq(a->brain.name, "ppo");
    double lr = 0;
    cr_assert_eq(bd_node_double(a->brain.params, "learning_rate", 1.0, &lr), BD_OK);
    cr_assert_float_eq(lr, 2.5e-4, 1e-12);
    cr_assert_str_eq(a->muscle.name, "ppo");
    cr_assert_not_null(a->muscle.params);
    cr_assert_eq(a->muscle.params->kind, BD_NODE_MAP);
    cr_assert_str_eq(a->objective.name, "reward");
    cr_assert_eq(a->nsensors, 1);
    cr_assert_str_eq(a->sensors[0], "pole.*");
    cr_assert_eq(a->nactuators, 1);
    cr_assert_str_eq(a->actuators[0], "pole.push");
    cr_assert_str_eq(a->load_agent, "balancer");
    cr_assert_null(a->load_phase);
    cr_assert_str_eq(tr->sim_name, "vanilla");
    cr_assert_eq(tr->nconditions, 2);
    cr_assert_str_eq(tr->conditions[0].name, "objective_average");
    cr_assert_str_eq(tr->conditions[1].name, "max_steps");
    long long steps = 0;
    cr_assert_eq(bd_node_int(tr->conditions[1].params, "steps", 0, &steps), BD_OK);
    cr_assert_eq(steps, 2000000);

    /* the test phase inherits environments, agents and simulation from train */
    const bd_phase_cfg *te = bd_runfile_phase(rf, "test");
    cr_assert_eq(te, &rf->phases[1]);
    cr_assert_eq(bd_runfile_phase_index(rf, "test"), 1);
    cr_assert_eq(bd_runfile_phase_index(rf, "nope"), -1);
    cr_assert_eq(te->mode, BD_MODE_TEST);
    cr_assert_eq(te->worker, 2);
    cr_assert_eq(te->episodes, 100);
    cr_assert_str_eq(te->device, "auto");
    cr_assert_eq(te->nenvs, 1);
    cr_assert_str_eq(te->envs[0].uid, "pole");
    cr_assert_eq(te->nagents, 1);
    const bd_agent_cfg *b = bd_phase_agent(te, "balancer");
    cr_assert_not_null(b);
    cr_assert_null(bd_phase_agent(te, "nobody"));
    cr_assert_str_eq(b->brain.name, "ppo");
    cr_assert_str_eq(b->load_agent, "balancer");
    cr_assert_str_eq(b->load_phase, "train");
    cr_assert_eq(te->nconditions, 2);
}

Test(runfile, example_parses)
{
    bd_runfile *rf = NULL;
    int rc = bd_runfile_parse(EXAMPLE, "good.yml", &rf);
    cr_assert_eq(rc, BD_OK, "%s", bd_lasterr());
    check_example(rf);
    cr_assert_str_eq(rf->path, "good.yml");
    cr_assert_not_null(bd_node_get(rf->root, "run_config"));
    /* the merged test phase is positioned where it was written, inherited parts where theirs were */
    const bd_phase_cfg *te = &rf->phases[1];
    cr_assert_eq(bd_node_get(te->node, "phase_config")->line, 22);
    cr_assert_eq(bd_node_get(te->node, "environments")->line, 7);
    bd_runfile_destroy(rf);
    bd_runfile_destroy(NULL);
}

Test(runfile, load_and_effective_roundtrip)
{
    char in[256], eff[256];
    tmp_path(in, sizeof in, "roundtrip_in");
    tmp_path(eff, sizeof eff, "roundtrip_eff");
    cr_assert_eq(bd_write_file(in, EXAMPLE, strlen(EXAMPLE)), BD_OK);

    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_load(in, &rf), BD_OK, "%s", bd_lasterr());
    check_example(rf);
    cr_assert_eq(bd_runfile_write_effective(rf, eff), BD_OK, "%s", bd_lasterr());

    /* the effective file spells out the test phase in full */
    char *text = NULL;
    cr_assert_eq(bd_read_file(eff, &text, NULL), BD_OK);
    bd_node *doc = NULL;
    cr_assert_eq(bd_yaml_parse(text, strlen(text), eff, &doc), BD_OK, "%s", bd_lasterr());
    const bd_node *sched = bd_node_get(doc, "schedule");
    cr_assert_not_null(sched);
    cr_assert_eq(sched->n, 2);
    const bd_node *test = bd_node_get(sched->items[1], "test");
    cr_assert_not_null(bd_node_get(test, "environments"));
    cr_assert_not_null(bd_node_get(test, "agents"));
    bd_node_destroy(doc);
    free(text);

    bd_runfile *rf2 = NULL;
    cr_assert_eq(bd_runfile_load(eff, &rf2), BD_OK, "%s", bd_lasterr());
    check_example(rf2);
    for (int i = 0; i < rf->nphases; i++) {
        char *j1 = bd_node_to_json(rf->phases[i].node);
        char *j2 = bd_node_to_json(rf2->phases[i].node);
        cr_assert_not_null(j1);
        cr_assert_not_null(j2);
        cr_assert_str_eq(j1, j2);
        free(j1);
        free(j2);
    }
    char *r1 = bd_node_to_json(bd_node_get(rf->root, "run_config"));
    char *r2 = bd_node_to_json(bd_node_get(rf2->root, "run_config"));
    cr_assert_str_eq(r1, r2);
    free(r1);
    free(r2);
    bd_runfile_destroy(rf);
    bd_runfile_destroy(rf2);
    unlink(in);
    unlink(eff);
}

Test(runfile, missing_file_is_notfound)
{
    char p[256];
    bd_runfile *rf = (bd_runfile *)1;
    tmp_path(p, sizeof p, "does_not_exist");
    cr_assert_eq(bd_runfile_load(p, &rf), BD_ENOTFOUND);
    cr_assert_null(rf);
    assert_has(bd_lasterr(), p);
}

Test(runfile, yaml_syntax_error_in_file)
{
    char p[256];
    tmp_path(p, sizeof p, "syntax");
    const char *text = "uid: x\nseed: 1\nschedule:\n  - train: {a: b\n  - test: {}\n";
    cr_assert_eq(bd_write_file(p, text, strlen(text)), BD_OK);
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_load(p, &rf), BD_EPARSE);
    cr_assert_null(rf);
    char want[300];
    snprintf(want, sizeof want, "%s:", p);
    cr_assert(strncmp(bd_lasterr(), want, strlen(want)) == 0, "%s", bd_lasterr());
    unlink(p);
}

Test(runfile, anchors_aliases_and_merge_keys)
{
    /* one set of brain params written once and reused, one overridden key */
    const char *text =
        "uid: anchors\n"
        "schedule:\n"
        "  - train:\n"
        "      environments:\n"
        "        - environment: {name: cartpole, uid: pole, params: {worlds: 8}}\n"
        "      agents:\n"
        "        - name: a\n"
        "          brain: {name: ppo, params: &ppo {rollout_steps: 16, hidden: 32}}\n"
        "          muscle: {name: ppo}\n"
        "          sensors: &sens [pole.*]\n"
        "          actuators: [pole.push]\n"
        "        - name: b\n"
        "          brain: {name: ppo, params: {<<: *ppo, hidden: 8}}\n"
        "          muscle: {name: ppo}\n"
        "          sensors: *sens\n"
        "          actuators: [pole.x]\n"
        "      simulation: {conditions: [{name: max_steps, params: {steps: 100}}]}\n";
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_parse(text, "anchors.yml", &rf), BD_OK, "%s", bd_lasterr());
    const bd_agent_cfg *b = &rf->phases[0].agents[1];
    long long v;
    cr_assert_eq(bd_node_int(b->brain.params, "rollout_steps", 0, &v), BD_OK);
    cr_assert_eq(v, 16, "merged from the anchor");
    cr_assert_eq(bd_node_int(b->brain.params, "hidden", 0, &v), BD_OK);
    cr_assert_eq(v, 8, "the map's own key wins over the merged one");
    cr_assert_eq(b->nsensors, 1);
    cr_assert_str_eq(b->sensors[0], "pole.*");
    /* a value from an alias keeps the position it was written at, for errors */
    char w[64];
    bd_node_where(bd_node_get(b->brain.params, "rollout_steps"), w, sizeof w);
    cr_assert_str_eq(w, "anchors.yml:8:59");
    bd_runfile_destroy(rf);
}

Test(yamltree, alias_bombs_loops_and_strangers_are_refused)
{
    char msg[1024];
    /* 10^6 values from 60 bytes */
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n";
    cr_assert_eq(parse_bad(bomb, msg, sizeof msg), BD_EPARSE);
    assert_has(msg, "alias bomb");
    /* the same with merge keys */
    const char *mbomb = "a: &a {k0: [x, x, x, x, x, x, x, x, x, x], k1: 1}\n"
                        "b: &b {b0: *a, b1: *a, b2: *a, b3: *a, b4: *a, b5: *a, b6: *a, b7: *a, b8: *a, b9: *a}\n"
                        "c: &c {c0: *b, c1: *b, c2: *b, c3: *b, c4: *b, c5: *b, c6: *b, c7: *b, c8: *b, c9: *b}\n"
                        "d: &d {d0: *c, d1: *c, d2: *c, d3: *c, d4: *c, d5: *c, d6: *c, d7: *c, d8: *c, d9: *c}\n"
                        "e: {<<: [*d], x: 1}\n"
                        "f: {<<: [*d], x: 1}\n"
                        "g: {<<: [*d], x: 1}\n"
                        "h: {<<: [*d], x: 1}\n";
    cr_assert_eq(parse_bad(mbomb, msg, sizeof msg), BD_EPARSE);
    assert_has(msg, "alias bomb");
    /* an alias inside the node its anchor names */
    cr_assert_eq(parse_bad("a: &a\n  b: *a\n", msg, sizeof msg), BD_EPARSE);
    assert_has(msg, "bad.yml:2:6: alias *a names no anchor &a before it");
    cr_assert_eq(parse_bad("a: *nowhere\n", msg, sizeof msg), BD_EPARSE);
    assert_has(msg, "bad.yml:1:4:");
    /* merging a list of plain values */
    cr_assert_eq(parse_bad("a: &a [1, 2]\nb: {<<: *a}\n", msg, sizeof msg), BD_EPARSE);
    assert_has(msg, "bad.yml:2:5: '<<' merges maps");
    /* a sequence used as a key */
    cr_assert_eq(parse_bad("a: &a [1]\n? *a\n: 2\n", msg, sizeof msg), BD_EPARSE);
    assert_has(msg, "map keys must be plain text");
    /* an anchored key can be used again */
    bd_node *root = NULL;
    const char *keyed = "&k name: 1\nother: {*k : 2}\n";
    cr_assert_eq(bd_yaml_parse(keyed, strlen(keyed), "k.yml", &root), BD_OK, "%s", bd_lasterr());
    long long v;
    cr_assert_eq(bd_node_int(bd_node_get(root, "other"), "name", 0, &v), BD_OK);
    cr_assert_eq(v, 2);
    bd_node_destroy(root);
}

Test(runfile, seeds_are_unsigned_64_bit)
{
    char *t = subst(EXAMPLE, "seed: 42\n", "seed: 18446744073709551615\n");
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_parse(t, "seed.yml", &rf), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(rf->seed, UINT64_MAX);
    /* it survives the effective run file (what every process reads back) */
    char path[256];
    tmp_path(path, sizeof path, "seed");
    cr_assert_eq(bd_runfile_write_effective(rf, path), BD_OK);
    bd_runfile *back = NULL;
    cr_assert_eq(bd_runfile_load(path, &back), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(back->seed, UINT64_MAX);
    bd_runfile_destroy(back);
    bd_runfile_destroy(rf);
    unlink(path);
    free(t);
    uint64_t v;
    cr_assert(bd_text_u64("18446744073709551615", &v) && v == UINT64_MAX);
    cr_assert(!bd_text_u64("18446744073709551616", &v));
    cr_assert(!bd_text_u64("-1", &v));
    cr_assert(!bd_text_u64("1e3", &v));
    cr_assert(!bd_text_u64("", &v));
    cr_assert(!bd_text_u64(" 1", &v));
}

Test(runfile, load_and_overrides)
{
    /* the test phase replaces the agent list and loads from a named phase and agent */
    const char *extra = "  - test:\n"
                        "      agents:\n"
                        "        - name: tester\n"
                        "          brain: {name: ppo}\n"
                        "          muscle: {name: ppo}\n"
                        "          sensors: [pole.*]\n"
                        "          actuators: [pole.push]\n"
                        "          load: {agent: balancer, phase: train}";
    char *t = subst(EXAMPLE, "  - test:", extra);
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_parse(t, "good.yml", &rf), BD_OK, "%s", bd_lasterr());
    const bd_phase_cfg *te = &rf->phases[1];
    cr_assert_eq(te->nagents, 1);
    cr_assert_str_eq(te->agents[0].name, "tester");
    cr_assert_str_eq(te->agents[0].load_agent, "balancer");
    cr_assert_str_eq(te->agents[0].load_phase, "train");
    cr_assert_str_eq(te->agents[0].objective.name, "reward");
    cr_assert_eq(te->agents[0].brain.params->kind, BD_NODE_MAP);
    cr_assert_eq(te->agents[0].brain.params->n, 0);
    cr_assert_eq(te->mode, BD_MODE_TEST);
    bd_runfile_destroy(rf);
    free(t);
    /* a load from a phase that is not there: tests/runfiles/bad/load_phase_unknown.yml */
}

Test(runfile, default_load_is_the_latest_train_phase)
{
    /* train, test, test: both test phases load train's checkpoint; a test phase's own is
     * not a thing (test phases write none) */
    char *t = subst(EXAMPLE, "run_config:", "  - test2:\n      phase_config: {episodes: 5}\nrun_config:");
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_parse(t, "good.yml", &rf), BD_OK, "%s", bd_lasterr());
    cr_assert_null(rf->phases[0].agents[0].load_phase, "the first phase has nothing to load");
    cr_assert_str_eq(rf->phases[1].agents[0].load_phase, "train");
    cr_assert_str_eq(rf->phases[2].agents[0].load_phase, "train");
    bd_runfile_destroy(rf);
    free(t);
    /* a load from a test phase: tests/runfiles/bad/load_from_test_phase.yml */
}

Test(yamltree, params_to_json)
{
    const char *y = "params: {worlds: 2048, lr: 2.5e-4, name: cart, on: true, off: false,\n"
                    "         none: null, tilde: ~, empty: , s: \"42\", big: 9007199254740993,\n"
                    "         list: [1, two, 3.5], sub: {a: -7}, word: yes}\n";
    bd_node *doc = NULL;
    cr_assert_eq(bd_yaml_parse(y, strlen(y), "j.yml", &doc), BD_OK, "%s", bd_lasterr());
    char *j = bd_node_to_json(bd_node_get(doc, "params"));
    cr_assert_not_null(j);
    cr_assert_str_eq(j, "{\"worlds\":2048,\"lr\":0.00025,\"name\":\"cart\",\"on\":true,\"off\":false,"
                        "\"none\":null,\"tilde\":null,\"empty\":null,\"s\":\"42\","
                        "\"big\":9007199254740993,\"list\":[1,\"two\",3.5],\"sub\":{\"a\":-7},"
                        "\"word\":true}");
    free(j);
    bd_node_destroy(doc);
}

Test(yamltree, typed_getters)
{
    const char *y = "a: 12\nb: 2e6\nc: 2000000.0\nd: 2.5\ne: abc\nf: \"7\"\ng: Yes\nh: off\n"
                    "i: 1e-3\nj: [1]\nk: -3\nl: 99999999999999999999\n";
    bd_node *m = NULL;
    cr_assert_eq(bd_yaml_parse(y, strlen(y), "t.yml", &m), BD_OK, "%s", bd_lasterr());
    long long v = 0;
    cr_assert_eq(bd_node_int(m, "a", 0, &v), BD_OK);
    cr_assert_eq(v, 12);
    cr_assert_eq(bd_node_int(m, "b", 0, &v), BD_OK);
    cr_assert_eq(v, 2000000);
    cr_assert_eq(bd_node_int(m, "c", 0, &v), BD_OK);
    cr_assert_eq(v, 2000000);
    cr_assert_eq(bd_node_int(m, "k", 0, &v), BD_OK);
    cr_assert_eq(v, -3);
    cr_assert_eq(bd_node_int(m, "missing", 5, &v), BD_OK);
    cr_assert_eq(v, 5);
    cr_assert_eq(bd_node_int(m, "d", 0, &v), BD_EINVAL);
    assert_has(bd_lasterr(), "t.yml:4:4: d: expected an integer, got '2.5'");
    cr_assert_eq(bd_node_int(m, "e", 0, &v), BD_EINVAL);
    assert_has(bd_lasterr(), "t.yml:5:4: e: expected an integer, got 'abc'");
    cr_assert_eq(bd_node_int(m, "f", 0, &v), BD_EINVAL);
    cr_assert_eq(bd_node_int(m, "j", 0, &v), BD_EINVAL);
    cr_assert_eq(bd_node_int(m, "l", 0, &v), BD_EINVAL);
    cr_assert_eq(bd_node_as_int(bd_node_get(m, "a"), &v), BD_OK);
    cr_assert_eq(v, 12);

    double d = 0;
    cr_assert_eq(bd_node_double(m, "i", 0, &d), BD_OK);
    cr_assert_float_eq(d, 1e-3, 1e-15);
    cr_assert_eq(bd_node_double(m, "a", 0, &d), BD_OK);
    cr_assert_float_eq(d, 12.0, 0);
    cr_assert_eq(bd_node_double(m, "e", 0, &d), BD_EINVAL);
    cr_assert_eq(bd_node_as_double(bd_node_get(m, "d"), &d), BD_OK);
    cr_assert_float_eq(d, 2.5, 0);

    int b = -1;
    cr_assert_eq(bd_node_bool(m, "g", 0, &b), BD_OK);
    cr_assert_eq(b, 1);
    cr_assert_eq(bd_node_bool(m, "h", 1, &b), BD_OK);
    cr_assert_eq(b, 0);
    cr_assert_eq(bd_node_bool(m, "a", 0, &b), BD_EINVAL);
    assert_has(bd_lasterr(), "t.yml:1:4: a: expected true or false");

    const char *s = NULL;
    cr_assert_eq(bd_node_str(m, "f", NULL, &s), BD_OK);
    cr_assert_str_eq(s, "7");
    cr_assert_eq(bd_node_str(m, "j", NULL, &s), BD_EINVAL);
    cr_assert_eq(bd_node_str(m, "zz", "dflt", &s), BD_OK);
    cr_assert_str_eq(s, "dflt");
    bd_node_destroy(m);
}

Test(yamltree, merge_and_emit_roundtrip)
{
    const char *base = "a: {x: 1, y: [1, 2]}\nb: plain\nq: \"007\"\n";
    const char *over = "a: {y: [3], z: \"yes\"}\nc: 'it''s: quoted'\n";
    bd_node *nb = NULL, *no = NULL;
    cr_assert_eq(bd_yaml_parse(base, strlen(base), "base.yml", &nb), BD_OK);
    cr_assert_eq(bd_yaml_parse(over, strlen(over), "over.yml", &no), BD_OK);
    bd_node *m = bd_node_merge(nb, no);
    cr_assert_not_null(m);
    char *j = bd_node_to_json(m);
    cr_assert_str_eq(j, "{\"a\":{\"x\":1,\"y\":[3],\"z\":\"yes\"},\"b\":\"plain\",\"q\":\"007\","
                        "\"c\":\"it's: quoted\"}");
    /* positions: a.x inherited from base, a.y from over */
    const bd_node *a = bd_node_get(m, "a");
    cr_assert_str_eq(bd_node_get(a, "x")->file, "base.yml");
    cr_assert_str_eq(bd_node_get(a, "y")->file, "over.yml");

    char p[256];
    tmp_path(p, sizeof p, "emit");
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    cr_assert_eq(bd_node_emit(m, f), BD_OK, "%s", bd_lasterr());
    fclose(f);
    char *text = NULL;
    cr_assert_eq(bd_read_file(p, &text, NULL), BD_OK);
    bd_node *back = NULL;
    cr_assert_eq(bd_yaml_parse(text, strlen(text), p, &back), BD_OK, "%s\n%s", bd_lasterr(), text);
    char *j2 = bd_node_to_json(back);
    cr_assert_str_eq(j, j2, "emitted:\n%s", text);
    cr_assert(bd_node_get(back, "q")->quoted);
    cr_assert(!bd_node_get(back, "b")->quoted);
    free(j);
    free(j2);
    free(text);
    bd_node_destroy(back);
    bd_node_destroy(m);
    bd_node_destroy(nb);
    bd_node_destroy(no);
    unlink(p);
}

Test(yamltree, nul_in_a_value_is_refused)
{
    const char y[] = "uid: \"a\\0b\"\n";
    bd_node *doc = NULL;
    cr_assert_eq(bd_yaml_parse(y, strlen(y), "nul.yml", &doc), BD_EPARSE);
    cr_assert(strstr(bd_lasterr(), "nul.yml:1:6") && strstr(bd_lasterr(), "NUL"), "%s", bd_lasterr());
    cr_assert_null(doc);
}

Test(yamltree, set_scalar_replaces_or_adds)
{
    const char y[] = "seed: 1\nuid: x\n";
    bd_node *doc = NULL;
    cr_assert_eq(bd_yaml_parse(y, strlen(y), "s.yml", &doc), BD_OK);
    cr_assert_eq(bd_node_set_scalar(doc, "seed", "7", 0), BD_OK);
    cr_assert_eq(bd_node_set_scalar(doc, "version", "1", 0), BD_OK);
    long long v;
    cr_assert_eq(bd_node_int(doc, "seed", 0, &v), BD_OK);
    cr_assert_eq(v, 7);
    cr_assert_eq(bd_node_int(doc, "version", 0, &v), BD_OK);
    cr_assert_eq(v, 1);
    cr_assert_eq(doc->n, 3);
    cr_assert_eq(bd_node_set_scalar(doc->items[1], "a", "b", 0), BD_EINVAL, "uid is not a map");
    bd_node_destroy(doc);
}
