/* test_env.c: CartPole-v1 against Gymnasium's published equations: a transition worked
 * out by hand, an independent float64 implementation on many random states, termination
 * and truncation limits, rewards, auto-reset with final observations, seeding and shard
 * independence, the shared sin/cos, and CPU vs CUDA bit identity (skipped without a GPU). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bodhi/env.h"
#include "common/devmem.h"
#include "common/util.h"
#include "env/cartpole.h"
#include "env/mathf.h"

static bd_env *make(int n, uint32_t world0, uint64_t seed, int max_steps)
{
    bd_env *e = NULL;
    cr_assert_eq(bd_env_create(bd_env_find("cartpole"), n, world0, seed, BD_DEVICE_CPU, max_steps, NULL, &e),
                 BD_OK, "%s", bd_lasterr());
    return e;
}

/* Gymnasium CartPoleEnv.step in float64, written out from the published equations. */
static void reference_step(double s[4], int action)
{
    const double g = 9.8, mc = 1.0, mp = 0.1, tm = mp + mc, l = 0.5, pml = mp * l, f = 10.0, tau = 0.02;
    double x = s[0], xd = s[1], th = s[2], thd = s[3];
    double force = action == 1 ? f : -f;
    double c = cos(th), si = sin(th);
    double temp = (force + pml * thd * thd * si) / tm;
    double thacc = (g * si - c * temp) / (l * (4.0 / 3.0 - mp * c * c / tm));
    double xacc = temp - pml * thacc * c / tm;
    s[0] = x + tau * xd;
    s[1] = xd + tau * xacc;
    s[2] = th + tau * thd;
    s[3] = thd + tau * thacc;
}

Test(cartpole, hand_computed_transition)
{
    /* From rest, push right: temp = 10/1.1 = 9.090909; thetaacc = -9.090909 /
     * (0.5 * (4/3 - 0.1/1.1)) = -14.634146; xacc = 9.090909 + 0.05*14.634146/1.1 = 9.756098.
     * Euler: x_dot = 0.02*9.756098 = 0.19512196, theta_dot = 0.02*-14.634146 = -0.29268293. */
    float s[4] = {0, 0, 0, 0};
    int term = bd_cartpole_dynamics(s, 1.0f);
    cr_assert_eq(term, 0);
    cr_assert_float_eq(s[0], 0.0f, 1e-9);
    cr_assert_float_eq(s[1], 0.19512196f, 1e-6);
    cr_assert_float_eq(s[2], 0.0f, 1e-9);
    cr_assert_float_eq(s[3], -0.29268293f, 1e-6);
    /* push left is the mirror image */
    float t[4] = {0, 0, 0, 0};
    bd_cartpole_dynamics(t, 0.0f);
    cr_assert_float_eq(t[1], -0.19512196f, 1e-6);
    cr_assert_float_eq(t[3], 0.29268293f, 1e-6);
}

Test(cartpole, matches_float64_reference_on_random_states)
{
    unsigned seed = 12345;
    for (int k = 0; k < 5000; k++) {
        float s[4];
        double d[4];
        for (int j = 0; j < 4; j++) {
            seed = seed * 1103515245u + 12345u;
            float u = (float)((seed >> 8) & 0xFFFF) / 65536.0f;
            float range = j == 2 ? 0.2f : j == 0 ? 2.3f : 2.0f;
            s[j] = (u * 2.0f - 1.0f) * range;
            d[j] = s[j];
        }
        int a = k & 1;
        bd_cartpole_dynamics(s, (float)a);
        reference_step(d, a);
        for (int j = 0; j < 4; j++)
            cr_assert(fabs(s[j] - d[j]) <= 1e-5 * (1 + fabs(d[j])), "state %d var %d: %.9g vs %.9g", k,
                      j, s[j], d[j]);
    }
}

Test(cartpole, limits_reward_and_auto_reset)
{
    bd_env *e = make(3, 0, 7, 0);
    bd_env_batch *b = bd_env_batch_of(e);
    cr_assert_eq(b->max_steps, 500, "CartPole-v1 truncates at 500");
    /* world 0 just past x = 2.4 after this step, world 1 past 12 degrees, world 2 inside */
    float init[3][4] = {{2.399f, 1.0f, 0, 0}, {0, 0, 0.2094f, 1.0f}, {0, 0, 0, 0}};
    memcpy(b->obs, init, sizeof init);
    for (int i = 0; i < 3; i++)
        b->actions[i] = 1.0f;
    cr_assert_eq(bd_env_step(e), BD_OK);
    cr_assert_eq(b->terminated[0], 1, "|x| > 2.4 terminates");
    cr_assert_eq(b->terminated[1], 1, "|theta| > 12 degrees terminates");
    cr_assert_eq(b->terminated[2], 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(b->rewards[i], 1.0f, "reward 1 on every step, the terminating one too");
        cr_assert_eq(b->truncated[i], 0);
    }
    cr_assert(b->final_obs[0] > 2.4f, "final obs keeps the terminal state");
    for (int j = 0; j < 4; j++)
        cr_assert(fabsf(b->obs[j]) <= 0.05f, "world 0 was reset into U(-0.05, 0.05)");
    cr_assert_eq(b->elapsed[0], 0);
    cr_assert_eq(b->elapsed[2], 1);
    bd_env_destroy(e);
}

Test(cartpole, truncation_at_the_time_limit)
{
    bd_env *e = make(2, 0, 3, 5);
    bd_env_batch *b = bd_env_batch_of(e);
    for (int t = 1; t <= 5; t++) {
        for (int i = 0; i < 2; i++)
            b->actions[i] = (float)(t & 1); /* alternate: stays upright for 5 steps */
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(b->terminated[i], 0);
            cr_assert_eq(b->truncated[i], t == 5, "step %d", t);
        }
    }
    cr_assert_eq(b->elapsed[0], 0, "truncation resets too");
    bd_env_destroy(e);
}

Test(cartpole, seeding_and_shard_independence)
{
    bd_env *whole = make(8, 0, 99, 0), *lo = make(4, 0, 99, 0), *hi = make(4, 4, 99, 0),
           *other = make(8, 0, 100, 0);
    bd_env_batch *w = bd_env_batch_of(whole), *l = bd_env_batch_of(lo), *h = bd_env_batch_of(hi),
                 *o = bd_env_batch_of(other);
    cr_assert_neq(memcmp(w->obs, o->obs, 32 * sizeof(float)), 0, "another seed, other resets");
    for (int t = 0; t < 300; t++) {
        for (int i = 0; i < 8; i++)
            w->actions[i] = (float)((t * 7 + i * 3) % 5 < 2);
        memcpy(l->actions, w->actions, 4 * sizeof(float));
        memcpy(h->actions, w->actions + 4, 4 * sizeof(float));
        bd_env_step(whole);
        bd_env_step(lo);
        bd_env_step(hi);
        cr_assert_eq(memcmp(w->obs, l->obs, 16 * sizeof(float)), 0, "step %d", t);
        cr_assert_eq(memcmp(w->obs + 16, h->obs, 16 * sizeof(float)), 0, "step %d", t);
        cr_assert_eq(memcmp(w->terminated + 4, h->terminated, 4), 0);
    }
    bd_env_destroy(whole);
    bd_env_destroy(lo);
    bd_env_destroy(hi);
    bd_env_destroy(other);
}

Test(mathf, sin_cos_close_to_libm)
{
    for (int k = -20000; k <= 20000; k++) {
        float x = (float)k * 0.0005f * 3.14159265f;
        cr_assert(fabs(bd_sinf(x) - sin((double)x)) < 3e-7, "sin(%g)", x);
        cr_assert(fabs(bd_cosf(x) - cos((double)x)) < 3e-7, "cos(%g)", x);
    }
}

Test(env, registry_and_bad_arguments)
{
    cr_assert_not_null(bd_env_find("cartpole"));
    cr_assert_null(bd_env_find("nope"));
    bd_env *e;
    cr_assert_eq(bd_env_create(bd_env_find("cartpole"), 0, 0, 1, BD_DEVICE_CPU, 0, NULL, &e), BD_EINVAL);
    if (!bd_cuda_available()) {
        cr_assert_eq(bd_env_create(bd_env_find("cartpole"), 4, 0, 1, BD_DEVICE_CUDA, 0, NULL, &e), BD_ENODEV);
        cr_assert(strstr(bd_lasterr(), "cuda"));
    }
}

Test(env, cuda_matches_cpu_bit_for_bit)
{
    if (!bd_cuda_available())
        cr_skip_test("no CUDA GPU answers here");
    const int n = 4096;
    bd_env *c = make(n, 0, 2024, 0), *g;
    cr_assert_eq(bd_env_create(bd_env_find("cartpole"), n, 0, 2024, BD_DEVICE_CUDA, 0, NULL, &g), BD_OK, "%s",
                 bd_lasterr());
    bd_env_batch *cb = bd_env_batch_of(c), hb;
    float *acts = malloc(sizeof(float) * n);
    for (int t = 0; t < 1000; t++) {
        for (int i = 0; i < n; i++)
            acts[i] = (float)(((unsigned)(t * 2654435761u) ^ (unsigned)(i * 40503u)) >> 7 & 1);
        cr_assert_eq(bd_env_upload_actions(c, acts), BD_OK);
        cr_assert_eq(bd_env_upload_actions(g, acts), BD_OK);
        cr_assert_eq(bd_env_step(c), BD_OK);
        cr_assert_eq(bd_env_step(g), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_env_download(g, &hb), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(memcmp(cb->obs, hb.obs, sizeof(float) * 4 * n), 0, "obs differ at step %d", t);
        cr_assert_eq(memcmp(cb->rewards, hb.rewards, sizeof(float) * n), 0);
        cr_assert_eq(memcmp(cb->terminated, hb.terminated, n), 0, "terminated differ at step %d", t);
        cr_assert_eq(memcmp(cb->truncated, hb.truncated, n), 0);
    }
    free(acts);
    bd_env_destroy(c);
    bd_env_destroy(g);
}

/* The example plugin: where the build put it, or $BODHI_TARGET_PLUGIN (bench/gpu/run.sh). */
static const char *plugin_name(const char *symbol)
{
    static char buf[4096];
    const char *path = getenv("BODHI_TARGET_PLUGIN");
    snprintf(buf, sizeof buf, "%s:%s", path ? path : BODHI_TARGET_PLUGIN, symbol);
    return buf;
}

Test(plugin, example_plugin_loads_and_steps)
{
    const bd_env_desc *d;
    cr_assert_eq(bd_env_load(plugin_name("bd_target_env"), &d), BD_OK, "%s", bd_lasterr());
    cr_assert_str_eq(d->name, "target");
    cr_assert_eq(d->obs_dim, 4);
    cr_assert_eq(d->act_dim, 2);
    bd_env *e;
    cr_assert_eq(bd_env_create(d, 32, 0, 3, BD_DEVICE_CPU, 0, NULL, &e), BD_OK, "%s", bd_lasterr());
    bd_env_batch *b = bd_env_batch_of(e);
    int ended = 0;
    for (int t = 0; t < 300; t++) {
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK);
        for (int i = 0; i < 64; i++)
            cr_assert(b->actions[i] == 0 || b->actions[i] == 1 || b->actions[i] == 2);
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < 32; i++) {
            ended += b->terminated[i] | b->truncated[i];
            cr_assert(b->rewards[i] <= 0);
        }
    }
    cr_assert(ended >= 32 * 2, "every world ended at least twice in 300 steps (limit 100)");
    bd_env_destroy(e);
    cr_assert_eq(bd_env_load("cartpole", &d), BD_OK, "built-ins resolve too");
}

Test(plugin, missing_file_symbol_and_name)
{
    const bd_env_desc *d;
    cr_assert_eq(bd_env_load("/tmp/bd-no-such-plugin.so:x", &d), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "/tmp/bd-no-such-plugin.so"), "%s", bd_lasterr());
    cr_assert_eq(bd_env_load(plugin_name("no_such_symbol"), &d), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "no_such_symbol"), "%s", bd_lasterr());
    cr_assert_eq(bd_env_load("nope", &d), BD_ENOTFOUND);
    /* a named pipe (dlopen waited for a writer: bodhi check hung) and a folder: not files */
    char fifo[64];
    snprintf(fifo, sizeof fifo, "/tmp/bd-plugin-fifo-%d", (int)getpid());
    unlink(fifo);
    cr_assert_eq(mkfifo(fifo, 0600), 0);
    char *name = bd_strfmt("%s:x", fifo);
    cr_assert_eq(bd_env_load(name, &d), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "it is not a file"), "%s", bd_lasterr());
    free(name);
    unlink(fifo);
    cr_assert_eq(bd_env_load("/tmp:x", &d), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "/tmp cannot be loaded: it is not a file"), "%s", bd_lasterr());
}

Test(env, random_actions_in_range_and_shard_independent)
{
    bd_env *whole = make(10, 0, 77, 0), *lo = make(3, 0, 77, 0), *hi = make(7, 3, 77, 0);
    bd_env_batch *w = bd_env_batch_of(whole), *l = bd_env_batch_of(lo), *h = bd_env_batch_of(hi);
    int ones = 0;
    for (uint64_t c = 0; c < 200; c++) {
        bd_env_random_actions(whole, c);
        bd_env_random_actions(lo, c);
        bd_env_random_actions(hi, c);
        cr_assert_eq(memcmp(w->actions, l->actions, 3 * sizeof(float)), 0);
        cr_assert_eq(memcmp(w->actions + 3, h->actions, 7 * sizeof(float)), 0);
        for (int i = 0; i < 10; i++) {
            cr_assert(w->actions[i] == 0.0f || w->actions[i] == 1.0f);
            ones += w->actions[i] == 1.0f;
        }
    }
    cr_assert(ones > 900 && ones < 1100, "Discrete(2) is fair: %d of 2000", ones);
    bd_env_destroy(whole);
    bd_env_destroy(lo);
    bd_env_destroy(hi);
}

Test(env, threads_do_not_change_results)
{
    const int n = 5000; /* not a multiple of the 64-world ranges */
    bd_env *one = make(n, 0, 9, 0), *two = make(n, 0, 9, 0);
    cr_assert_eq(bd_env_set_threads(two, 3), BD_OK);
    bd_env_batch *a = bd_env_batch_of(one), *b = bd_env_batch_of(two);
    for (uint64_t t = 0; t < 300; t++) {
        bd_env_random_actions(one, t);
        bd_env_random_actions(two, t);
        cr_assert_eq(memcmp(a->actions, b->actions, sizeof(float) * n), 0);
        bd_env_step(one);
        bd_env_step(two);
        cr_assert_eq(memcmp(a->obs, b->obs, sizeof(float) * 4 * n), 0, "step %lu", (unsigned long)t);
        cr_assert_eq(memcmp(a->terminated, b->terminated, n), 0);
        cr_assert_eq(memcmp(a->final_obs, b->final_obs, sizeof(float) * 4 * n), 0);
    }
    bd_env_destroy(one);
    bd_env_destroy(two);
}

/* Params by name (env/params.c): the one range check the run file's checks use too. */
Test(env, params_by_name_with_their_ranges)
{
    const bd_env_desc *tag = bd_env_find("tag"), *pole = bd_env_find("cartpole");
    float p[BD_ENV_MAX_PARAMS], before[BD_ENV_MAX_PARAMS];
    bd_env_param_defaults(tag, p);
    int k = bd_env_param_index(tag, "tag_radius");
    cr_assert(k >= 0 && k < tag->nparams);
    cr_assert_eq(bd_env_param_index(tag, "radius"), -1);
    cr_assert_eq(bd_env_param_set(tag, p, "tag_radius", 2.5), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(p[k], 2.5f);
    memcpy(before, p, sizeof p);
    cr_assert_eq(bd_env_param_set(tag, p, "tag_radius", 0), BD_EINVAL);
    cr_assert_str_eq(bd_lasterr(), "tag_radius: expected a number from 0.001 to 10000 (a tagger tags the runners "
                                   "this close), got 0");
    cr_assert_eq(bd_env_param_set(tag, p, "neighbours", 2.5), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "neighbours: expected a whole number from 1 to 8"), "%s", bd_lasterr());
    cr_assert_eq(bd_env_param_set(tag, p, "arena", NAN), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "arena: expected a number"), "%s", bd_lasterr());
    cr_assert_eq(bd_env_param_set(tag, p, "radius", 1), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "env tag has no param 'radius' (its params: runners, taggers, arena,"),
              "%s", bd_lasterr());
    cr_assert_eq(memcmp(before, p, sizeof p), 0, "a refused value leaves the params as they were");
    cr_assert_eq(bd_env_param_set(pole, p, "x", 1), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), "env cartpole has no param 'x' (it takes none"), "%s", bd_lasterr());
    cr_assert_eq(bd_env_param_check(tag, tag->nparams, 1), BD_ENOTFOUND);
    /* the value set by name is what the shard's worlds get */
    bd_env *e = NULL;
    cr_assert_eq(bd_env_create(tag, 2, 0, 1, BD_DEVICE_CPU, 0, p, &e), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_env_batch_of(e)->param[k], 2.5f);
    bd_env_destroy(e);
}

/* bd_env_reset(e, seed) makes the shard bd_env_create with that seed makes, and it steps
 * the same afterwards: CartPole (no state beside obs) and Tag (state and grid scratch). */
static void reset_matches_fresh(const char *name, int n)
{
    const bd_env_desc *d = bd_env_find(name);
    bd_env *used = NULL, *fresh = NULL;
    cr_assert_eq(bd_env_create(d, n, 5, 1, BD_DEVICE_CPU, 0, NULL, &used), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_env_create(d, n, 5, 2, BD_DEVICE_CPU, 0, NULL, &fresh), BD_OK, "%s", bd_lasterr());
    uint64_t c = 100;
    cr_assert_eq(bd_env_random_steps(used, 37, &c), BD_OK);
    bd_env_batch *u = bd_env_batch_of(used), *f = bd_env_batch_of(fresh);
    const size_t R = (size_t)n * (size_t)u->members, od = (size_t)u->obs_dim;
    cr_assert_neq(memcmp(u->obs, f->obs, sizeof(float) * R * od), 0, "another seed, other worlds");
    cr_assert_eq(bd_env_reset(used, 2), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(u->step, 0);
    for (int t = 0; t < 60; t++) {
        cr_assert_eq(memcmp(u->obs, f->obs, sizeof(float) * R * od), 0, "%s step %d", name, t);
        cr_assert_eq(memcmp(u->elapsed, f->elapsed, sizeof(int32_t) * (size_t)n), 0);
        if (u->state_dim)
            cr_assert_eq(memcmp(u->state, f->state, sizeof(float) * (size_t)n * (size_t)u->state_dim), 0);
        if (t > 0) {
            cr_assert_eq(memcmp(u->rewards, f->rewards, sizeof(float) * R), 0);
            cr_assert_eq(memcmp(u->terminated, f->terminated, R), 0);
            cr_assert_eq(memcmp(u->truncated, f->truncated, R), 0);
        }
        cr_assert_eq(bd_env_random_actions(used, (uint64_t)t), BD_OK);
        cr_assert_eq(bd_env_random_actions(fresh, (uint64_t)t), BD_OK);
        cr_assert_eq(bd_env_step(used), BD_OK);
        cr_assert_eq(bd_env_step(fresh), BD_OK);
    }
    bd_env_destroy(used);
    bd_env_destroy(fresh);
}

Test(env, reset_with_seed_is_a_fresh_shard)
{
    reset_matches_fresh("cartpole", 300);
    reset_matches_fresh("tag", 4);
}
