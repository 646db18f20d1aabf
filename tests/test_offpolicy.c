/* test_offpolicy.c: Criterion suite for the off-policy learners' parts: the replay buffer
 * (brain/replay.h: transitions from rounds, wrap-around, 64-bit index math and sampling
 * bounds past 2^24 without allocating such a buffer, save and load), the dqn brain's
 * Bellman targets against hand-computed values (terminated vs truncated), its epsilon
 * schedule and gradient-step budget, the shim's targets against the formula, a checkpoint
 * round trip, a dqn run twice with one seed giving byte-identical traces, and
 * greedy_average's episodes (muscle/eval.h) against a loop of their own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "brain/dqn.h"
#include "brain/replay.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "muscle/eval.h"
#include "tests/atexit_files.h"
#include "torch/bd_torch.h"
#include "torch/cpunet.h"

TestSuite(offpolicy, .timeout = 300);

/* A batch of T = 3 steps over N = 2 columns, S = 2, U = 1: column 0 terminates at t = 1,
 * column 1 is truncated at t = 0; obs[t][i] = (10 t + i, -(10 t + i)), fobs = 100 + ... */
typedef struct {
    float obs[3 * 2 * 2], act[3 * 2], rew[3 * 2], fobs[3 * 2 * 2];
    uint8_t term[3 * 2], trunc[3 * 2], valid[2];
    bd_batch b;
} batch3;

static void batch3_make(batch3 *x, float base)
{
    memset(x, 0, sizeof *x);
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 2; i++) {
            int c = t * 2 + i;
            x->obs[2 * c] = base + (float)(10 * t + i);
            x->obs[2 * c + 1] = -(base + (float)(10 * t + i));
            x->fobs[2 * c] = 100 + base + (float)(10 * t + i);
            x->fobs[2 * c + 1] = 0;
            x->act[c] = (float)((t + i) % 2);
            x->rew[c] = (float)c;
        }
    x->term[1 * 2 + 0] = 1; /* column 0, t = 1 */
    x->trunc[0 * 2 + 1] = 1; /* column 1, t = 0 */
    x->valid[0] = x->valid[1] = 1;
    x->b = (bd_batch){.T = 3, .N = 2, .S = 2, .U = 1, .obs = x->obs, .act = x->act, .rew = x->rew,
                      .term = x->term, .trunc = x->trunc, .valid = NULL, .fobs = x->fobs};
}

/* the row holding a transition whose obs[0] is o (-1: none) */
static int64_t find_row(const bd_replay *r, float o)
{
    for (int64_t k = 0; k < r->size; k++)
        if (r->obs[k * r->S] == o)
            return k;
    return -1;
}

Test(offpolicy, next_observations_come_from_the_right_step)
{
    bd_replay r;
    cr_assert_eq(bd_replay_init(&r, 64, 2, 1, 2), BD_OK, "%s", bd_lasterr());
    batch3 x;
    batch3_make(&x, 0);
    /* per column 3 steps; the last of each (t = 2, not ended) waits for the next round */
    cr_assert_eq(bd_replay_collect(&r, &x.b, 7), 4);
    cr_assert_eq(r.size, 4);
    /* column 0, t = 0: next obs = obs[1][0] = 10 */
    int64_t k = find_row(&r, 0);
    cr_assert(k >= 0);
    cr_assert_eq(r.next_obs[k * 2], 10.0f);
    cr_assert_eq(r.term[k], 0);
    cr_assert_eq(r.version[k], 7u);
    /* column 0, t = 1 terminated: next obs = its final observation, no bootstrap */
    k = find_row(&r, 10);
    cr_assert_eq(r.next_obs[k * 2], 110.0f);
    cr_assert_eq(r.term[k], 1);
    /* column 1, t = 0 truncated: next obs = the final observation, bootstrap (term 0) */
    k = find_row(&r, 1);
    cr_assert_eq(r.next_obs[k * 2], 101.0f);
    cr_assert_eq(r.term[k], 0);
    cr_assert_eq(r.rew[k], 1.0f);
    /* next round: the waiting t = 2 steps complete with its first observations, with the
     * version they were chosen by */
    batch3 y;
    batch3_make(&y, 1000);
    cr_assert_eq(bd_replay_collect(&r, &y.b, 8), 6);
    k = find_row(&r, 20);
    cr_assert(k >= 0);
    cr_assert_eq(r.next_obs[k * 2], 1000.0f);
    cr_assert_eq(r.version[k], 7u);
    k = find_row(&r, 21);
    cr_assert_eq(r.next_obs[k * 2], 1001.0f);
    /* a column missing from a round drops what waited for it */
    batch3 z;
    batch3_make(&z, 2000);
    z.valid[1] = 0;
    z.b.valid = z.valid;
    long long before = r.size;
    cr_assert_eq(bd_replay_collect(&r, &z.b, 9), 1 + 2); /* column 0's waiting step and its two */
    cr_assert_eq(r.size, before + 3);
    cr_assert_eq(find_row(&r, 1021), -1, "column 1's waiting step was dropped");
    /* a column whose muscle restarted (a round with no rollout at all between, which the
     * buffer never sees): its waiting step is dropped, not completed with the fresh
     * world's first observation */
    batch3 w;
    batch3_make(&w, 3000);
    before = r.size;
    bd_replay_restart(&r, 0, 1);
    cr_assert_eq(bd_replay_collect(&r, &w.b, 10), 4, "only this round's own transitions");
    cr_assert_eq(r.size, before + 4);
    cr_assert_eq(find_row(&r, 2020), -1, "column 0's waiting step was dropped");
    bd_replay_restart(&r, 1, 5); /* past the columns: nothing else touched */
    cr_assert_eq(r.pending[0], 1);
    cr_assert_eq(r.pending[1], 0);
    bd_replay_fini(&r);
}

/* Each transition keeps the version of the weights its rollout says chose its action,
 * the one waiting for the next round too; without them, the version the caller gives. */
Test(offpolicy, transitions_keep_their_rollouts_versions)
{
    bd_replay r;
    cr_assert_eq(bd_replay_init(&r, 64, 2, 1, 2), BD_OK, "%s", bd_lasterr());
    batch3 x;
    batch3_make(&x, 0);
    uint64_t wver[3 * 2] = {5, 4, 5, 4, 5, 4}; /* column 0 acted with version 5, column 1 with 4 */
    x.b.wver = wver;
    cr_assert_eq(bd_replay_collect(&r, &x.b, 99), 4);
    for (int64_t k = 0; k < r.size; k++)
        cr_assert_eq(r.version[k], (uint64_t)(((int)r.obs[k * 2] % 10) == 0 ? 5 : 4), "row %lld (obs %g): %llu",
                     (long long)k, (double)r.obs[k * 2], (unsigned long long)r.version[k]);
    batch3 y;
    batch3_make(&y, 1000);
    cr_assert_eq(bd_replay_collect(&r, &y.b, 6), 6);
    cr_assert_eq(r.version[find_row(&r, 20)], 5u, "the waiting step of column 0 keeps its version");
    cr_assert_eq(r.version[find_row(&r, 21)], 4u);
    cr_assert_eq(r.version[find_row(&r, 1000)], 6u, "no versions given: the caller's");
    bd_replay_fini(&r);
}

Test(offpolicy, the_buffer_wraps_and_keeps_the_newest)
{
    bd_replay r;
    cr_assert_eq(bd_replay_init(&r, 5, 1, 1, 1), BD_OK);
    for (int j = 0; j < 12; j++) {
        float o = (float)j, a = 0, no = (float)j + 0.5f;
        bd_replay_add(&r, &o, &a, (float)j, &no, j % 2, (uint64_t)j);
    }
    cr_assert_eq(r.size, 5);
    cr_assert_eq(r.added, 12u);
    for (int j = 7; j < 12; j++) {
        int64_t k = bd_replay_row((uint64_t)j, 5);
        cr_assert_eq(r.obs[k], (float)j);
        cr_assert_eq(r.next_obs[k], (float)j + 0.5f);
        cr_assert_eq(r.term[k], j % 2);
    }
    /* save and load into a smaller buffer keeps the newest rows */
    char *path = bd_strfmt("/tmp/bd-test-replay-%d.bin", (int)getpid());
    cr_assert_eq(bd_replay_save(&r, path), BD_OK, "%s", bd_lasterr());
    bd_replay s;
    cr_assert_eq(bd_replay_init(&s, 3, 1, 1, 1), BD_OK);
    cr_assert_eq(bd_replay_load(&s, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(s.size, 3);
    for (int j = 9; j < 12; j++)
        cr_assert_geq(find_row(&s, (float)j), 0, "row %d kept", j);
    /* a damaged file is refused, the buffer of other widths too */
    FILE *f = fopen(path, "r+b");
    fseek(f, 30, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
    cr_assert_eq(bd_replay_load(&s, path), BD_EINVAL);
    bd_replay w;
    cr_assert_eq(bd_replay_init(&w, 3, 2, 1, 1), BD_OK);
    cr_assert_eq(bd_replay_save(&r, path), BD_OK);
    cr_assert_eq(bd_replay_load(&w, path), BD_EINVAL);
    unlink(path);
    free(path);
    bd_replay_fini(&w);
    bd_replay_fini(&s);
    bd_replay_fini(&r);
}

/* Rows and samples past 2^24 (where float indices or 32-bit products go wrong), from the
 * index math alone. */
Test(offpolicy, index_math_and_samples_hold_past_2_24)
{
    const int64_t cap = ((int64_t)1 << 33) + 3;
    cr_assert_eq(bd_replay_row(((uint64_t)1 << 33) + 5, cap), 2);
    cr_assert_eq(bd_replay_row(((uint64_t)1 << 24) + 1, cap), ((int64_t)1 << 24) + 1);
    cr_assert_eq(bd_replay_row(3 * (uint64_t)cap + 17, cap), 17);
    cr_assert_eq(bd_replay_pick(0, (uint64_t)cap), 0);
    cr_assert_eq(bd_replay_pick(UINT64_MAX, (uint64_t)cap), cap - 1);
    enum { n = 4096 };
    static int64_t idx[n];
    bd_replay_sample(42, 1, cap, n, idx);
    int above = 0;
    for (int j = 0; j < n; j++) {
        cr_assert(idx[j] >= 0 && idx[j] < cap, "sample %d: %lld", j, (long long)idx[j]);
        above += idx[j] >= ((int64_t)1 << 24);
    }
    cr_assert_gt(above, n * 99 / 100, "samples reach past 2^24 (%d of %d)", above, n);
    /* a small buffer: every row drawn, none outside; the same (seed, draw) the same rows */
    static int64_t a[n], b[n];
    bd_replay_sample(7, 3, 5, n, a);
    bd_replay_sample(7, 3, 5, n, b);
    int seen[5] = {0};
    for (int j = 0; j < n; j++) {
        cr_assert(a[j] >= 0 && a[j] < 5);
        cr_assert_eq(a[j], b[j]);
        seen[a[j]]++;
    }
    for (int k = 0; k < 5; k++) /* 4096 / 5 = 819 each; 6 sigma (~ 6 x 25.6) around it */
        cr_assert(seen[k] > 819 - 154 && seen[k] < 819 + 154, "row %d drawn %d times", k, seen[k]);
    bd_replay_sample(7, 4, 5, n, b);
    cr_assert_neq(memcmp(a, b, sizeof a), 0, "another draw number, other rows");
}

/* Hand-computed: r = 1, gamma = 0.5; next state's online Q (1, 3), target Q (10, 4). */
Test(offpolicy, bellman_targets_by_hand)
{
    const float on[2] = {1, 3}, tg[2] = {10, 4};
    /* double DQN: the online net picks action 1, the target values it: 1 + 0.5 x 4 */
    cr_assert_eq(bd_dqn_target(1, 0, 0.5f, on, tg, 2, 1), 3.0f);
    /* plain DQN: max of the target: 1 + 0.5 x 10 */
    cr_assert_eq(bd_dqn_target(1, 0, 0.5f, on, tg, 2, 0), 6.0f);
    /* terminated: no bootstrap */
    cr_assert_eq(bd_dqn_target(1, 1, 0.5f, on, tg, 2, 1), 1.0f);
    /* truncated: the buffer stores term 0 and the final observation as next obs, so it
     * bootstraps from that observation's values (as the untouched step above) */
    bd_replay r;
    batch3 x;
    batch3_make(&x, 0);
    cr_assert_eq(bd_replay_init(&r, 8, 2, 1, 2), BD_OK);
    bd_replay_collect(&r, &x.b, 0);
    int64_t k = find_row(&r, 1); /* column 1, t = 0, truncated */
    cr_assert_eq(bd_dqn_target(r.rew[k], r.term[k], 0.5f, on, tg, 2, 1), 1.0f + 0.5f * 4.0f);
    k = find_row(&r, 10); /* column 0, t = 1, terminated */
    cr_assert_eq(bd_dqn_target(r.rew[k], r.term[k], 0.5f, on, tg, 2, 1), r.rew[k]);
    bd_replay_fini(&r);
}

static bdt_policy *qnet(uint64_t seed)
{
    bdt_policy_config c = {.obs_dim = 3, .act_kind = BDT_Q, .act_dim = 4, .hidden = 16, .layers = 2,
                           .device = BDT_CPU, .seed = seed};
    bdt_policy *p = NULL;
    cr_assert_eq(bdt_policy_create(&c, &p), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_policy_param_count(p), bdt_policy_param_count_of(&c));
    return p;
}

static bdt_dqn_config dcfg(void)
{
    return (bdt_dqn_config){.lr = 1e-3f, .gamma = 0.9f, .max_grad_norm = 10, .double_q = 1, .target_every = 1000,
                            .tau = 1};
}

/* The shim's batched targets are the formula's on the networks' own Q-values. */
Test(offpolicy, shim_targets_follow_the_formula)
{
    bdt_set_threads(1);
    bdt_policy *q = qnet(1);
    bdt_dqn *o = NULL;
    bdt_dqn_config c = dcfg();
    cr_assert_eq(bdt_dqn_create(q, &c, &o), BD_OK, "%s", bd_lasterr());
    /* make online and target differ: a few steps on random data (target_every 1000) */
    enum { n = 32 };
    float obs[n * 3], nobs[n * 3], act[n], rew[n], term[n], y[n];
    for (int j = 0; j < n; j++) {
        for (int s = 0; s < 3; s++) {
            obs[j * 3 + s] = sinf((float)(j * 3 + s));
            nobs[j * 3 + s] = cosf((float)(j * 7 + s));
        }
        act[j] = (float)(j % 4);
        rew[j] = (float)(j % 3);
        term[j] = (float)(j % 5 == 0);
    }
    cr_assert_eq(bdt_dqn_update(o, obs, act, rew, nobs, term, n, 1, NULL, NULL), BD_OK, "%s", bd_lasterr());
    size_t np = bdt_policy_param_count(q);
    float *tp = malloc(sizeof(float) * np), *op = malloc(sizeof(float) * np);
    cr_assert_eq(bdt_dqn_target_params(o, tp, np), BD_OK);
    cr_assert_eq(bdt_policy_get_params(q, op, np), BD_OK);
    cr_assert_neq(memcmp(tp, op, sizeof(float) * np), 0, "one step moved the network, not its target");
    bdt_policy *t = qnet(1);
    cr_assert_eq(bdt_policy_set_params(t, tp, np), BD_OK);
    float qo[n * 4], qt[n * 4];
    cr_assert_eq(bdt_policy_forward(q, nobs, n, qo, NULL), BD_OK);
    cr_assert_eq(bdt_policy_forward(t, nobs, n, qt, NULL), BD_OK);
    cr_assert_eq(bdt_dqn_targets(o, rew, nobs, term, n, y), BD_OK, "%s", bd_lasterr());
    for (int j = 0; j < n; j++) {
        float want = bd_dqn_target(rew[j], term[j] != 0, 0.9f, qo + 4 * j, qt + 4 * j, 4, 1);
        /* one float multiply-add apart at most: a few ulps of the larger term */
        float tol = 4 * 1.2e-7f * (fabsf(rew[j]) + fabsf(want) + 1);
        cr_assert(fabsf(y[j] - want) <= tol, "transition %d: %.9g, by the formula %.9g", j, y[j], want);
    }
    /* a Q-network's value is its greedy action's */
    float v[n];
    cr_assert_eq(bdt_policy_forward(q, nobs, n, NULL, v), BD_OK);
    for (int j = 0; j < n; j++) {
        float mx = fmaxf(fmaxf(qo[4 * j], qo[4 * j + 1]), fmaxf(qo[4 * j + 2], qo[4 * j + 3]));
        cr_assert_eq(v[j], mx);
    }
    free(tp);
    free(op);
    bdt_policy_destroy(t);
    bdt_dqn_destroy(o);
    bdt_policy_destroy(q);
}

Test(offpolicy, epsilon_schedule_and_gradient_budget)
{
    bd_dqn_params dp;
    cr_assert_eq(bd_dqn_params_parse(NULL, 16, &dp), BD_OK, "%s", bd_lasterr());
    dp.eps_initial = 1.0;
    dp.eps_final = 0.04;
    dp.exploration_steps = 10000;
    cr_assert_float_eq(bd_dqn_epsilon(&dp, 0), 1.0, 1e-12);
    cr_assert_float_eq(bd_dqn_epsilon(&dp, 5000), 0.52, 1e-12);
    cr_assert_float_eq(bd_dqn_epsilon(&dp, 10000), 0.04, 1e-12);
    cr_assert_float_eq(bd_dqn_epsilon(&dp, 1 << 30), 0.04, 1e-12);
    dp.exploration_steps = 0;
    cr_assert_float_eq(bd_dqn_epsilon(&dp, 0), 0.04, 1e-12);
    /* utd 0.5 over rounds of 3 transitions: 1, 2, 1, 2 ... steps, none before learning_starts */
    dp.utd_ratio = 0.5;
    dp.learning_starts = 10;
    double carry = 0;
    cr_assert_eq(bd_dqn_grad_steps(&dp, 3, 9, &carry), 0);
    long long total = 0;
    for (int k = 0; k < 100; k++)
        total += bd_dqn_grad_steps(&dp, 3, 100, &carry);
    cr_assert_eq(total, 150);
    /* the automatic rollout: a round of 256 transitions up to 16 worlds, 16 steps of
     * every world past them */
    cr_assert_eq(bd_dqn_auto_rollout(1), BD_DQN_AUTO_T_MAX);
    cr_assert_eq(bd_dqn_auto_rollout(8), 32);
    cr_assert_eq(bd_dqn_auto_rollout(16), 16);
    cr_assert_eq(bd_dqn_auto_rollout(256), 16);
    cr_assert_eq(bd_dqn_auto_rollout(4096), 16);
    /* the automatic update ratio: 0.25 per transition up to 32 worlds, then 8 gradient
     * steps per step of all worlds together (128 a round of 16 steps) */
    cr_assert_float_eq(bd_dqn_auto_utd(1), 0.25, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_utd(32), 0.25, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_utd(256), 1.0 / 32, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_utd(4096) * 4096 * bd_dqn_auto_rollout(4096), 128.0, 1e-9);
    cr_assert_eq(bd_dqn_params_parse(NULL, 256, &dp), BD_OK, "%s", bd_lasterr());
    cr_assert_float_eq(dp.utd_ratio, 1.0 / 32, 1e-15);
    cr_assert_eq(dp.rollout_steps, 16);
    /* with ranks (brain/ranks.h): the rollout from every rank's worlds, the ratio from this
     * rank's, so that each rank takes the gradient steps one process of its worlds takes */
    setenv("BODHI_WORLD_SIZE", "16", 1);
    cr_assert_eq(bd_dqn_auto_rollout(1), 16);
    cr_assert_eq(bd_dqn_auto_rollout(16), 16);
    cr_assert_float_eq(bd_dqn_auto_utd(16), 0.25, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_utd(256), 1.0 / 32, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_lr(1), 2.5e-4, 1e-15); /* this rank's columns, as the ratio */
    unsetenv("BODHI_WORLD_SIZE");
    cr_assert_float_eq(bd_dqn_auto_utd(0), 0.25, 1e-15); /* columns unknown */
    /* the automatic step size: 2.5e-4 up to 32 columns, where each transition earns the
     * whole 0.25 gradient steps, 5e-4 past them (and when unknown) */
    cr_assert_float_eq(bd_dqn_auto_lr(1), 2.5e-4, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_lr(16), 2.5e-4, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_lr(32), 2.5e-4, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_utd(32), 0.25, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_lr(33), 5e-4, 1e-15);
    cr_assert(bd_dqn_auto_utd(33) < 0.25);
    cr_assert_float_eq(bd_dqn_auto_lr(4096), 5e-4, 1e-15);
    cr_assert_float_eq(bd_dqn_auto_lr(0), 5e-4, 1e-15);
    cr_assert_eq(bd_dqn_params_parse(NULL, 8, &dp), BD_OK, "%s", bd_lasterr());
    cr_assert_float_eq(dp.learning_rate, 2.5e-4, 1e-15);
}

/* n transitions of qnet's shape (3 observations, 4 actions): fixed, varied values. */
static void qbatch(int n, float *obs, float *nobs, float *act, float *rew, float *term)
{
    for (int j = 0; j < n; j++) {
        for (int s = 0; s < 3; s++) {
            obs[j * 3 + s] = sinf((float)(j * 5 + s));
            nobs[j * 3 + s] = cosf((float)(j * 11 + s));
        }
        act[j] = (float)((j * 7) % 4);
        rew[j] = (float)(j % 2);
        term[j] = (float)(j % 9 == 0);
    }
}

static void greedy(bdt_policy *p, const float *obs, int n, int *out)
{
    float q[64 * 4];
    cr_assert_eq(bdt_policy_forward(p, obs, n, q, NULL), BD_OK);
    for (int j = 0; j < n; j++) {
        int a = 0;
        for (int k = 1; k < 4; k++)
            if (q[4 * j + k] > q[4 * j + a])
                a = k;
        out[j] = a;
    }
}

/* Saved and loaded: network, target and optimiser; the same greedy actions, and the
 * next gradient step the same as without the round trip. */
Test(offpolicy, checkpoint_round_trip)
{
    bdt_set_threads(1);
    enum { n = 64 };
    float obs[n * 3], nobs[n * 3], act[n], rew[n], term[n];
    qbatch(n, obs, nobs, act, rew, term);
    bdt_policy *q = qnet(3), *q2 = qnet(99);
    bdt_dqn *o = NULL, *o2 = NULL;
    bdt_dqn_config c = dcfg();
    c.target_every = 3;
    cr_assert_eq(bdt_dqn_create(q, &c, &o), BD_OK);
    cr_assert_eq(bdt_dqn_create(q2, &c, &o2), BD_OK);
    cr_assert_eq(bdt_dqn_update(o, obs, act, rew, nobs, term, n / 4, 4, NULL, NULL), BD_OK, "%s", bd_lasterr());
    char *path = bd_strfmt("/tmp/bd-test-dqn-%d.pt", (int)getpid());
    cr_assert_eq(bdt_dqn_save(o, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_dqn_load(o2, path), BD_OK, "%s", bd_lasterr());
    int a1[n], a2[n];
    greedy(q, obs, n, a1);
    greedy(q2, obs, n, a2);
    cr_assert_eq(memcmp(a1, a2, sizeof a1), 0, "the same greedy actions after the round trip");
    int a0[n];
    memcpy(a0, a1, sizeof a0);
    size_t np = bdt_policy_param_count(q);
    float *t1 = malloc(sizeof(float) * np), *t2 = malloc(sizeof(float) * np);
    cr_assert_eq(bdt_dqn_target_params(o, t1, np), BD_OK);
    cr_assert_eq(bdt_dqn_target_params(o2, t2, np), BD_OK);
    cr_assert_eq(memcmp(t1, t2, sizeof(float) * np), 0, "the same target");
    /* the optimiser's moments and the step count came along: the next steps are the same
     * on both, the target's copies (every 3rd step) included */
    bdt_dqn_stats s1, s2;
    cr_assert_eq(bdt_dqn_update(o, obs, act, rew, nobs, term, n / 2, 2, NULL, &s1), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_dqn_update(o2, obs, act, rew, nobs, term, n / 2, 2, NULL, &s2), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(s2.steps, 6, "the loaded learner counts on from the saved one's 4 steps");
    cr_assert_eq(bdt_policy_get_params(q, t1, np), BD_OK);
    cr_assert_eq(bdt_policy_get_params(q2, t2, np), BD_OK);
    cr_assert_eq(memcmp(t1, t2, sizeof(float) * np), 0, "the same step after loading");
    cr_assert_eq(bdt_dqn_target_params(o, t1, np), BD_OK);
    cr_assert_eq(bdt_dqn_target_params(o2, t2, np), BD_OK);
    cr_assert_eq(memcmp(t1, t2, sizeof(float) * np), 0, "the same target schedule after loading");
    /* a damaged target file: the load fails and leaves o2 as it was (its next step the
     * same as o's) */
    char *tpath = bd_strfmt("%s.target.pt", path);
    FILE *tf = fopen(tpath, "r+b");
    cr_assert_not_null(tf);
    fseek(tf, 200, SEEK_SET);
    int byte = fgetc(tf);
    fseek(tf, 200, SEEK_SET);
    fputc(byte ^ 0x5a, tf);
    fclose(tf);
    cr_assert_neq(bdt_dqn_load(o2, path), BD_OK, "a damaged target loaded");
    cr_assert_eq(bdt_dqn_update(o, obs, act, rew, nobs, term, n, 1, NULL, NULL), BD_OK);
    cr_assert_eq(bdt_dqn_update(o2, obs, act, rew, nobs, term, n, 1, NULL, NULL), BD_OK);
    cr_assert_eq(bdt_policy_get_params(q, t1, np), BD_OK);
    cr_assert_eq(bdt_policy_get_params(q2, t2, np), BD_OK);
    cr_assert_eq(memcmp(t1, t2, sizeof(float) * np), 0, "a failed load changed the learner");
    free(tpath);
    /* a learner that never stepped, saved and loaded into one that has: no moments, step 0 */
    bdt_policy *q4 = qnet(7), *q5 = qnet(7);
    bdt_dqn *o4 = NULL, *o5 = NULL;
    cr_assert_eq(bdt_dqn_create(q4, &c, &o4), BD_OK);
    cr_assert_eq(bdt_dqn_create(q5, &c, &o5), BD_OK);
    cr_assert_eq(bdt_dqn_save(o4, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_dqn_load(o2, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_dqn_update(o2, obs, act, rew, nobs, term, n / 2, 2, NULL, &s2), BD_OK);
    cr_assert_eq(bdt_dqn_update(o5, obs, act, rew, nobs, term, n / 2, 2, NULL, &s1), BD_OK);
    cr_assert_eq(s2.steps, 2);
    cr_assert_eq(bdt_policy_get_params(q5, t1, np), BD_OK);
    cr_assert_eq(bdt_policy_get_params(q2, t2, np), BD_OK);
    cr_assert_eq(memcmp(t1, t2, sizeof(float) * np), 0, "a never-stepped learner's load left old moments");
    bdt_dqn_destroy(o4);
    bdt_dqn_destroy(o5);
    bdt_policy_destroy(q4);
    bdt_policy_destroy(q5);
    cr_assert_eq(bdt_dqn_save(o, path), BD_OK, "%s", bd_lasterr());
    greedy(q, obs, n, a0);
    /* a test phase reads the network alone */
    bdt_policy *q3 = qnet(5);
    cr_assert_eq(bdt_load(q3, NULL, path), BD_OK, "%s", bd_lasterr());
    greedy(q3, obs, n, a2);
    cr_assert_eq(memcmp(a0, a2, sizeof a0), 0, "the network alone gives the saved greedy actions");
    /* a ppo network of the same sizes is told whose checkpoint this is */
    bdt_policy_config pc = {.obs_dim = 3, .act_kind = BDT_DISCRETE, .act_dim = 4, .hidden = 16, .layers = 2,
                            .device = BDT_CPU, .seed = 1};
    bdt_policy *pp = NULL;
    cr_assert_eq(bdt_policy_create(&pc, &pp), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_load(pp, NULL, path), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "a checkpoint of a dqn brain (act_kind q); this agent's ppo brain"), "%s",
              bd_lasterr());
    bdt_policy_destroy(pp);
    char *tp = bd_strfmt("%s.target.pt", path);
    unlink(tp);
    unlink(path);
    free(tp);
    free(path);
    free(t1);
    free(t2);
    bdt_policy_destroy(q3);
    bdt_dqn_destroy(o2);
    bdt_dqn_destroy(o);
    bdt_policy_destroy(q2);
    bdt_policy_destroy(q);
}

/* A round that diverges is undone whole: after bdt_dqn_restore the network and its target
 * are bit for bit what bdt_dqn_mark kept, and the next steps equal those of a twin that
 * never saw the round (Adam's moments and step counts, and the target's schedule, came
 * back too). Also from a mark taken before any step (Adam with no state yet). */
Test(offpolicy, dqn_restore_undoes_a_diverged_round_whole)
{
    bdt_set_threads(1);
    enum { n = 32 };
    float obs[n * 3], nobs[n * 3], act[n], rew[n], bad[n], term[n];
    qbatch(n, obs, nobs, act, rew, term);
    for (int j = 0; j < n; j++)
        bad[j] = NAN;
    for (int early = 0; early < 2; early++) {
        bdt_policy *q = qnet(3), *q2 = qnet(3);
        bdt_dqn *o = NULL, *o2 = NULL;
        bdt_dqn_config c = dcfg();
        c.target_every = 3;
        c.tau = 0.5f;
        cr_assert_eq(bdt_dqn_create(q, &c, &o), BD_OK);
        cr_assert_eq(bdt_dqn_create(q2, &c, &o2), BD_OK);
        cr_assert_eq(bdt_dqn_restore(o), BD_ESTATE, "a restore with nothing kept");
        if (!early) { /* some steps first, the twin too */
            cr_assert_eq(bdt_dqn_update(o, obs, act, rew, nobs, term, n / 4, 4, NULL, NULL), BD_OK);
            cr_assert_eq(bdt_dqn_update(o2, obs, act, rew, nobs, term, n / 4, 4, NULL, NULL), BD_OK);
        }
        const size_t np = bdt_policy_param_count(q);
        float *w0 = malloc(sizeof(float) * np), *w1 = malloc(sizeof(float) * np);
        float *t0 = malloc(sizeof(float) * np), *t1 = malloc(sizeof(float) * np);
        cr_assert(w0 && w1 && t0 && t1);
        cr_assert_eq(bdt_policy_get_params(q, w0, np), BD_OK);
        cr_assert_eq(bdt_dqn_target_params(o, t0, np), BD_OK);
        cr_assert_eq(bdt_dqn_mark(o), BD_OK, "%s", bd_lasterr());
        bdt_dqn_stats st;
        cr_assert_eq(bdt_dqn_update(o, obs, act, bad, nobs, term, n / 4, 4, NULL, &st), BD_OK);
        cr_assert(!isfinite(st.loss), "rewards that are not numbers: the loss is %g", st.loss);
        cr_assert_eq(bdt_policy_get_params(q, w1, np), BD_OK);
        int nonfinite = 0;
        for (size_t i = 0; i < np; i++)
            nonfinite += !isfinite(w1[i]);
        cr_assert(nonfinite > 0, "the round did not diverge");
        cr_assert_eq(bdt_dqn_restore(o), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bdt_dqn_restore(o), BD_ESTATE, "a second restore of one mark");
        cr_assert_eq(bdt_policy_get_params(q, w1, np), BD_OK);
        cr_assert_eq(bdt_dqn_target_params(o, t1, np), BD_OK);
        cr_assert_eq(memcmp(w0, w1, sizeof(float) * np), 0, "early %d: the network is not the kept one", early);
        cr_assert_eq(memcmp(t0, t1, sizeof(float) * np), 0, "early %d: the target is not the kept one", early);
        /* the next steps (a target update among them): as the twin's */
        cr_assert_eq(bdt_dqn_update(o, obs, act, rew, nobs, term, n / 4, 4, NULL, &st), BD_OK);
        bdt_dqn_stats st2;
        cr_assert_eq(bdt_dqn_update(o2, obs, act, rew, nobs, term, n / 4, 4, NULL, &st2), BD_OK);
        cr_assert_eq(st.steps, st2.steps, "the step count came back");
        cr_assert_eq(bdt_policy_get_params(q, w0, np), BD_OK);
        cr_assert_eq(bdt_policy_get_params(q2, w1, np), BD_OK);
        cr_assert_eq(memcmp(w0, w1, sizeof(float) * np), 0, "early %d: the next steps differ from the twin's", early);
        cr_assert_eq(bdt_dqn_target_params(o, t0, np), BD_OK);
        cr_assert_eq(bdt_dqn_target_params(o2, t1, np), BD_OK);
        cr_assert_eq(memcmp(t0, t1, sizeof(float) * np), 0, "early %d: the next target differs from the twin's", early);
        free(w0);
        free(w1);
        free(t0);
        free(t1);
        bdt_dqn_destroy(o);
        bdt_dqn_destroy(o2);
        bdt_policy_destroy(q);
        bdt_policy_destroy(q2);
    }
}

/* `bodhi run yml` twice, into base-0 and base-1: both exit 0. */
static void run_twice(const char *base, const char *yml)
{
    for (int k = 0; k < 2; k++) {
        char *cmd = bd_strfmt("rm -rf %s-%d && %s run %s --out %s-%d --quiet", base, k, BODHI_BINARY, yml, base, k);
        int st = system(cmd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bodhi run exited %d: %s", WEXITSTATUS(st), cmd);
        free(cmd);
    }
}

/* A dqn run twice with one seed: byte-identical traces; then a test phase loads it. */
Test(offpolicy, same_seed_same_dqn_trace, .timeout = 600)
{
    char *base = bd_strfmt("/tmp/bd-test-dqnrun-%d", (int)getpid());
    char *yml = bd_strfmt("%s.yml", base);
    FILE *f = fopen(yml, "w");
    cr_assert_not_null(f);
    fprintf(f, "uid: dqn-twice\nseed: 11\nschedule:\n  - train:\n      environments:\n"
               "        - environment: {name: cartpole, uid: pole, params: {worlds: 8}}\n"
               "      agents:\n        - name: balancer\n"
               "          brain: {name: dqn, params: {hidden: 16, learning_starts: 64, batch_size: 16, "
               "exploration_steps: 800, save_buffer: true}}\n"
               "          muscle: {name: dqn, params: {}}\n          objective: {name: reward, params: {}}\n"
               "          sensors: [pole.*]\n          actuators: [pole.push]\n"
               "      simulation:\n        conditions:\n          - {name: max_steps, params: {steps: 2048}}\n"
               "      phase_config: {mode: train, worker: 2, device: cpu}\n"
               "  - test:\n      phase_config: {mode: test, worker: 1, episodes: 8}\n");
    fclose(f);
    run_twice(base, yml);
    char *ck = bd_strfmt("%s-0/checkpoints/train/balancer.pt.replay", base);
    cr_assert_eq(access(ck, F_OK), 0, "save_buffer keeps the buffer beside the checkpoint");
    free(ck);
    char *cmd = bd_strfmt("/usr/bin/python3 -c \"import h5py,sys\n"
                          "a=h5py.File('%s-0/run.h5','r'); b=h5py.File('%s-1/run.h5','r'); n=0\n"
                          "for p in ['train','test']:\n"
                          "  for d in ['sensors','actuators','rewards','terminated','truncated','weights_version']:\n"
                          "    x=a[p+'/balancer/'+d][()]; y=b[p+'/balancer/'+d][()]\n"
                          "    assert x.shape==y.shape and x.tobytes()==y.tobytes(), (p,d); n+=x.size\n"
                          "assert a['train/balancer/sensors'].shape[0]>=2048//8, a['train/balancer/sensors'].shape\n"
                          "v=a['train/balancer/weights_version'][()]; assert v.max()>0 and (v[1:]>=v[:-1]).all(), v.max()\n"
                          "sys.exit(0 if n else 1)\"",
                          base, base);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the two runs' traces differ (%s)", cmd);
    free(cmd);
    /* A train phase that resumes run 0's buffer: one cut short is refused by bodhi check,
     * at the load key, before anything runs; one deleted is said (it used to start empty
     * without a word). */
    cmd = bd_strfmt("sed -e '/brain: {name: dqn/a\\          load: {experiment_run: %s-0, phase: train}' "
                    "-e '/- test:/,$d' %s > %s.resume.yml && grep -q '^          load:' %s.resume.yml "
                    "&& truncate -s -100 %s-0/checkpoints/train/balancer.pt.replay "
                    "&& { %s check %s.resume.yml > %s.out 2>&1; test $? = 2; } && grep -q 'is damaged: .*cut short' %s.out "
                    "&& grep -q 'resume.yml:10:' %s.out "
                    "&& rm %s-0/checkpoints/train/balancer.pt.replay && rm -rf %s-2 "
                    "&& %s run %s.resume.yml --out %s-2 --quiet 2> %s.out && grep -q 'no replay buffer beside' %s.out",
                    base, yml, base, base, base, BODHI_BINARY, base, base, base, base, base, base,
                    BODHI_BINARY, base, base, base, base);
    st = system(cmd);
    char *outp = bd_strfmt("%s.out", base), *text = NULL;
    bd_read_file(outp, &text, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a damaged or missing saved buffer (%s): %s", cmd,
              text ? text : "");
    free(text);
    free(outp);
    free(cmd);
    cmd = bd_strfmt("rm -rf %s-0 %s-1 %s-2 %s %s.resume.yml %s.out", base, base, base, yml, base, base);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(yml);
    free(base);
}

/* A Q-network that runs away ends the phase as diverged: with no target network to speak
 * of (tau 1 at every step), a step size of 0.01 and no useful clip, the mean Q(s, a) of
 * CartPole (a reward of 1 at gamma 0.99: at most 100) passes 10 times that within the first
 * update. The run fails (exit 1, summary.json's reason "diverged", saying by how much) and
 * its checkpoint holds the network from before that update. Before, only a loss or a
 * parameter that was not finite counted, and such a run went on acting on Q-values of
 * 10^11 until its step cap. `more`: further brain params; with utd_ratio 4 the first update
 * runs in 4 calls of 256 steps, and the bound's floor (the Q the phase started from) must
 * come from the first call's first batch, not the last call's (which let a first update of
 * Q 3.8e6 through). */
static void runaway(const char *tag, const char *more)
{
    char *base = bd_strfmt("/tmp/bd-test-dqnaway-%d-%s", (int)getpid(), tag);
    char *yml = bd_strfmt("%s.yml", base);
    FILE *f = fopen(yml, "w");
    cr_assert_not_null(f);
    fprintf(f, "uid: dqn-away\nseed: 42\nschedule:\n  - train:\n      environments:\n"
               "        - environment: {name: cartpole, uid: pole, params: {worlds: 16}}\n"
               "      agents:\n        - name: balancer\n"
               "          brain: {name: dqn, params: {learning_rate: 0.01, tau: 1, target_update_interval: 1, "
               "max_grad_norm: 1000%s}}\n"
               "          muscle: {name: dqn, params: {}}\n          objective: {name: reward, params: {}}\n"
               "          sensors: [pole.*]\n          actuators: [pole.push]\n"
               "      simulation:\n        conditions:\n          - {name: max_steps, params: {steps: 200000}}\n"
               "      phase_config: {mode: train, worker: 1, device: cpu}\n",
            more);
    fclose(f);
    char *cmd = bd_strfmt("rm -rf %s && %s run %s --out %s --quiet 2>/dev/null", base, BODHI_BINARY, yml, base);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "bodhi run exited %d, not 1: %s", WEXITSTATUS(st), cmd);
    free(cmd);
    cmd = bd_strfmt("/usr/bin/python3 -c \"import json\n"
                    "s=json.load(open('%s/summary.json')); p=s['phases'][0]\n"
                    "assert s['status']=='diverged' and p['reason']=='diverged', (s['status'], p)\n"
                    "assert 'ran past 1000 (10 max|r| / (1 - gamma), max|r| 1)' in p['ended'], p['ended']\n"
                    "assert 'before this round (balancer)' in p['ended'], ('cut short', p['ended'])\n"
                    "steps=sum(a['steps'] for a in p['agents'])\n"
                    "assert steps < 100000, steps\"",
                    base);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "not a runaway stop (%s)", cmd);
    free(cmd);
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", base);
    cr_assert_eq(access(ck, F_OK), 0, "the checkpoint from before the runaway update is kept");
    free(ck);
    cmd = bd_strfmt("rm -rf %s %s", base, yml);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(yml);
    free(base);
}

Test(offpolicy, a_runaway_q_network_ends_the_phase_as_diverged, .timeout = 300)
{
    runaway("one", "");
}

Test(offpolicy, a_runaway_first_update_of_several_calls_is_caught, .timeout = 300)
{
    runaway("four", ", utd_ratio: 4");
}

/* One evaluation's worlds stepped by a loop of this test's own: the env at the evaluation's
 * seed, the Q-network run by torch/cpunet.c on the normalised sensors, the argmax (first on
 * ties) as the action; each world's first episode's return. */
static double greedy_by_hand(const bd_agent_plan *ap, const bdt_policy_config *pc, const float *params,
                             const float *mean, const float *inv, int W, uint64_t k, long long *steps)
{
    bd_env *env = NULL;
    const bd_env_plan *ep = ap->env;
    cr_assert_eq(bd_env_create(ep->desc, W, 0, bd_eval_seed(ap, k), BD_DEVICE_CPU, ep->max_steps, ep->param, &env),
                 BD_OK, "%s", bd_lasterr());
    bd_env_batch *b = bd_env_batch_of(env);
    bdt_cpunet net;
    cr_assert_eq(bdt_cpunet_init(&net, pc, W), BD_OK, "%s", bd_lasterr());
    float x[64 * 4], q[64 * 2];
    double ret[64] = {0}, sum = 0;
    int done[64] = {0}, left = W;
    *steps = 0;
    cr_assert(W <= 64 && b->obs_dim == 4 && ap->nsens == 4);
    while (left > 0) {
        for (int w = 0; w < W; w++)
            for (int s = 0; s < 4; s++) {
                float y = mean ? (b->obs[w * 4 + ap->sens_cols[s]] - mean[s]) * inv[s] : b->obs[w * 4 + ap->sens_cols[s]];
                x[w * 4 + s] = y < -10.0f ? -10.0f : y > 10.0f ? 10.0f : y;
            }
        cr_assert_eq(bdt_cpunet_forward(&net, params, x, W, q, NULL), BD_OK);
        for (int w = 0; w < W; w++)
            b->actions[w * b->act_dim + ap->act_cols[0]] = q[w * 2 + 1] > q[w * 2] ? 1.0f : 0.0f;
        cr_assert_eq(bd_env_step(env), BD_OK);
        for (int w = 0; w < W; w++)
            if (!done[w]) {
                ret[w] += b->rewards[w];
                ++*steps;
                if (b->terminated[w] || b->truncated[w])
                    done[w] = 1, left--;
            }
    }
    for (int w = 0; w < W; w++)
        sum += ret[w];
    bdt_cpunet_fini(&net);
    bd_env_destroy(env);
    return sum / W;
}

/* greedy_average's episodes (muscle/eval.h): the same returns as this test's own loop over
 * the same worlds, for a network that always pushes left (every Q-value 0: the first
 * action on ties) and for one of the init's weights seen through a normaliser; a Q head's
 * exploration rate (1 here) is not used; the same evaluation twice gives the same figures
 * and another one other worlds; a network of another shape is refused. */
Test(offpolicy, greedy_episodes_are_the_policys_own)
{
    const char *text = "uid: eval\nseed: 5\nschedule:\n  - train:\n      environments:\n"
                       "        - environment: {name: cartpole, uid: pole, params: {worlds: 4}}\n"
                       "      agents:\n        - name: balancer\n          brain: {name: dqn}\n"
                       "          muscle: {name: dqn}\n          sensors: [pole.*]\n          actuators: [pole.push]\n"
                       "      simulation:\n        conditions:\n          - {name: greedy_average, params: {threshold: 500, "
                       "episodes: 37}}\n      phase_config: {mode: train, worker: 1}\n";
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_parse(text, "eval.yml", &rf), BD_OK, "%s", bd_lasterr());
    bd_phase_plan p;
    cr_assert_eq(bd_phase_plan_make(rf, 0, bd_registry_builtin(), "cpu", &p), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(p.greedy_threshold, 500);
    cr_assert_eq(p.greedy_episodes, 37);
    cr_assert_eq(p.greedy_every, BD_GREEDY_EVERY);
    const bd_agent_plan *ap = &p.agents[0];
    bd_eval e;
    cr_assert_eq(bd_eval_init(&e, ap, p.greedy_episodes), BD_OK, "%s", bd_lasterr());
    bdt_policy_config pc = {.obs_dim = 4, .act_kind = BDT_Q, .act_dim = 2, .hidden = 16, .layers = 2,
                            .device = BDT_CPU, .seed = 3};
    const size_t np = bdt_policy_param_count_of(&pc);
    float *fl = calloc(np + 8 + 1, sizeof(float));
    cr_assert_not_null(fl);
    bd_weights_hdr w = {.nparams = np, .hidden = 16, .layers = 2, .policy = BD_POLICY_Q_MLP, .head = BD_HEAD_Q,
                        .obs_dim = 4, .act_dim = 2};
    fl[np] = 1.0f; /* epsilon 1: a sampling muscle would act at random */
    double mean, want;
    long long steps, want_steps;
    cr_assert_eq(bd_eval_play(&e, &w, fl, 0, &mean, &steps, NULL), BD_OK, "%s", bd_lasterr());
    want = greedy_by_hand(ap, &pc, fl, NULL, NULL, 37, 0, &want_steps);
    cr_assert(mean == want && steps == want_steps, "always left: %.17g over %lld steps, by hand %.17g over %lld",
              mean, steps, want, want_steps);
    cr_assert(mean > 7 && mean < 12, "pushing left ends an episode in about 9 steps, not %g", mean);
    /* the init's weights, through a normaliser */
    cr_assert_eq(bdt_policy_init_params(&pc, fl, np), BD_OK);
    const float nm[4] = {0.1f, -0.2f, 0.01f, 0.3f}, ni[4] = {2.0f, 0.5f, 8.0f, 1.5f};
    memcpy(fl + np, nm, sizeof nm);
    memcpy(fl + np + 4, ni, sizeof ni);
    fl[np + 8] = 1.0f;
    w.norm_dims = 4;
    for (uint64_t k = 1; k <= 2; k++) {
        cr_assert_eq(bd_eval_play(&e, &w, fl, k, &mean, &steps, NULL), BD_OK, "%s", bd_lasterr());
        want = greedy_by_hand(ap, &pc, fl, nm, ni, 37, k, &want_steps);
        cr_assert(mean == want && steps == want_steps, "evaluation %llu: %.17g over %lld steps, by hand %.17g over %lld",
                  (unsigned long long)k, mean, steps, want, want_steps);
    }
    double again;
    long long steps2;
    cr_assert_eq(bd_eval_play(&e, &w, fl, 2, &again, &steps2, NULL), BD_OK);
    cr_assert(again == mean && steps2 == steps, "evaluation 2 twice: %g then %g", mean, again);
    /* evaluations 1 and 2 start from other worlds, and neither from a training world's */
    bd_env *x[3];
    const uint64_t seeds[3] = {bd_eval_seed(ap, 1), bd_eval_seed(ap, 2), ap->env->seed};
    for (int j = 0; j < 3; j++)
        cr_assert_eq(bd_env_create(ap->env->desc, 37, 0, seeds[j], BD_DEVICE_CPU, ap->env->max_steps, ap->env->param,
                                   &x[j]), BD_OK);
    for (int j = 0; j < 3; j++)
        for (int i = j + 1; i < 3; i++)
            cr_assert_neq(memcmp(bd_env_batch_of(x[j])->obs, bd_env_batch_of(x[i])->obs, sizeof(float) * 37 * 4), 0,
                          "seeds %d and %d start the same worlds", j, i);
    for (int j = 0; j < 3; j++)
        bd_env_destroy(x[j]);
    w.obs_dim = 3;
    cr_assert_eq(bd_eval_play(&e, &w, fl, 3, &mean, &steps, NULL), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "3 inputs"), "%s", bd_lasterr());
    free(fl);
    bd_eval_fini(&e);
    bd_phase_plan_fini(&p);
    bd_runfile_destroy(rf);
    /* worlds the brain could not hold (4096 of 131072 agents: 194 GiB) are refused before
     * the run, as a muscle's shard would be */
    text = "uid: big\nseed: 5\nschedule:\n  - train:\n      environments:\n"
           "        - environment: {name: tag, uid: tag, params: {worlds: 1, runners: 65536, taggers: 65536}}\n"
           "      agents:\n        - name: taggers\n          brain: {name: ppo, params: {rollout_steps: 16}}\n"
           "          muscle: {name: ppo}\n          sensors: [tag.tagger.x]\n          actuators: [tag.tagger.*]\n"
           "      simulation:\n        conditions:\n          - {name: greedy_average, params: {threshold: 1, "
           "episodes: 4096}}\n      phase_config: {mode: train, worker: 1}\n";
    cr_assert_eq(bd_runfile_parse(text, "big.yml", &rf), BD_OK, "%s", bd_lasterr());
    int rc = bd_phase_plan_make(rf, 0, bd_registry_builtin(), "cpu", &p);
    if (bd_phys_bytes() < 2 * 194.0 * (1 << 30)) /* a machine of twice that would hold them */
        cr_assert(rc == BD_EINVAL && strstr(bd_lasterr(), "big.yml:15:13: greedy_average: 4096 episodes of environment 'tag' are as many "
                                   "worlds of 131072 agents, "),
                  "%s", bd_lasterr());
    bd_phase_plan_fini(&p);
    bd_runfile_destroy(rf);
}

/* A dqn run that greedy_average ends: twice with one seed, the same evaluations (steps,
 * weights version, return) and the same stop, byte-identical traces; evaluations come once
 * per `every`, and none before the last reached the threshold; the checkpoint the phase
 * saved, played again as that last evaluation, returns what it returned (the weights a
 * stop keeps are the weights it judged). */
Test(offpolicy, greedy_average_ends_a_run_the_same_way_twice, .timeout = 600)
{
    char *base = bd_strfmt("/tmp/bd-test-greedy-%d", (int)getpid());
    char *yml = bd_strfmt("%s.yml", base);
    char *last = bd_strfmt("%s.last", base);
    bd_test_remove_at_exit(yml);
    bd_test_remove_at_exit(last);
    FILE *f = fopen(yml, "w");
    cr_assert_not_null(f);
    fprintf(f, "uid: greedy-twice\nseed: 11\nschedule:\n  - train:\n      environments:\n"
               "        - environment: {name: cartpole, uid: pole, params: {worlds: 16}}\n"
               "      agents:\n        - name: balancer\n          brain: {name: dqn}\n"
               "          muscle: {name: dqn, params: {}}\n          objective: {name: reward, params: {}}\n"
               "          sensors: [pole.*]\n          actuators: [pole.push]\n"
               "      simulation:\n        conditions:\n"
               "          - {name: greedy_average, params: {threshold: 150, episodes: 8, every: 5000}}\n"
               "          - {name: max_steps, params: {steps: 1000000}}\n"
               "      phase_config: {mode: train, worker: 2, device: cpu}\n"
               "  - test:\n      phase_config: {mode: test, worker: 1, episodes: 8}\n");
    fclose(f);
    run_twice(base, yml);
    char *cmd = bd_strfmt("/usr/bin/python3 -c \"import h5py,json,re\n"
                          "def evals(k):\n"
                          "  ev=[json.loads(l) for l in open('%s-%%d/log.jsonl' %% k)]\n"
                          "  return [(e['steps'],e['update'],e['greedy_return'],e['greedy_episodes'],e['greedy_steps'],"
                          "e.get('done')) for e in ev if e.get('event')=='update' and 'greedy_return' in e]\n"
                          "a,b=evals(0),evals(1)\n"
                          "assert a and a==b, (a,b)\n"
                          "assert all(x[3]==8 and x[4]>=8 for x in a), a\n"
                          "assert all(a[i+1][0]//5000>a[i][0]//5000 for i in range(len(a)-1)), [x[0] for x in a]\n"
                          "assert all(x[5] is None and x[2]<150 for x in a[:-1]), a\n"
                          "m=re.search(r'greedy mean return ([0-9.e+]+) over 8 episodes of weights version ([0-9]+) >= 150',"
                          " a[-1][5] or '')\n"
                          "assert m and int(m.group(2))==a[-1][1] and a[-1][2]>=150, a[-1]\n"
                          "open('%s.last','w').write('%%d %%r' %% (len(a)-1, a[-1][2]))\n"
                          "s=[json.load(open('%s-%%d/summary.json' %% k))['phases'][0] for k in (0,1)]\n"
                          "assert s[0]['reason']=='objective_reached' and s[0]['ended']==s[1]['ended'], s\n"
                          "x=h5py.File('%s-0/run.h5','r'); y=h5py.File('%s-1/run.h5','r')\n"
                          "for d in ['sensors','actuators','rewards','terminated','truncated','weights_version']:\n"
                          "  assert x['train/balancer/'+d][()].tobytes()==y['train/balancer/'+d][()].tobytes(), d\n\"",
                          base, base, base, base, base);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the two runs' evaluations or traces differ (%s)", cmd);
    free(cmd);
    /* the checkpoint, played as the last evaluation */
    char *text = NULL;
    cr_assert_eq(bd_read_file(last, &text, NULL), BD_OK);
    unsigned long long k = strtoull(text, NULL, 10);
    const double said = strtod(strchr(text, ' ') + 1, NULL);
    free(text);
    char *runyml = bd_strfmt("%s-0/run.yml", base), *ckpt = bd_strfmt("%s-0/checkpoints/train/balancer.pt", base);
    bd_runfile *rf = NULL;
    cr_assert_eq(bd_runfile_load(runyml, &rf), BD_OK, "%s", bd_lasterr());
    bd_phase_plan p;
    cr_assert_eq(bd_phase_plan_make(rf, 0, bd_registry_builtin(), "cpu", &p), BD_OK, "%s", bd_lasterr());
    bdt_policy_config pc;
    bdt_policy *net = NULL;
    cr_assert_eq(bdt_load_actor(ckpt, &pc, &net), BD_OK, "%s", bd_lasterr());
    const size_t np = bdt_policy_param_count(net);
    float *fl = calloc(np + 1, sizeof(float));
    cr_assert_eq(bdt_policy_get_params(net, fl, np), BD_OK);
    bd_weights_hdr w = {.nparams = np, .hidden = (uint32_t)pc.hidden, .layers = (uint32_t)pc.layers,
                        .policy = BD_POLICY_Q_MLP, .head = BD_HEAD_Q, .obs_dim = 4, .act_dim = 2};
    bd_eval e;
    double mean;
    long long steps;
    cr_assert_eq(bd_eval_init(&e, &p.agents[0], 8), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_eval_play(&e, &w, fl, k, &mean, &steps, NULL), BD_OK, "%s", bd_lasterr());
    cr_assert(fabs(mean - said) <= 1e-9 * fabs(said), "the checkpoint plays evaluation %llu to %.17g, the phase said %.17g",
              k, mean, said);
    bd_eval_fini(&e);
    bdt_policy_destroy(net);
    free(fl);
    bd_phase_plan_fini(&p);
    bd_runfile_destroy(rf);
    free(runyml);
    free(ckpt);
    free(last);
    cmd = bd_strfmt("rm -rf %s-0 %s-1 %s %s.last", base, base, yml, base);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(yml);
    free(base);
}
