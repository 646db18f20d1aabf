/* test_brain.c: the learner's arithmetic without processes: GAE worked out by hand
 * (termination, truncation with bootstrapping, rollout end), episode statistics,
 * minibatch shuffles, the PPO params' validation and the observation normaliser; and one
 * short `bodhi run` whose brain must not fault its memory in again at every update. */
#define _GNU_SOURCE
#include <sched.h>

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brain/obsnorm.h"
#include "brain/ppo.h"
#include "brain/ranks.h"
#include "brain/sac.h"
#include "brain/stats.h"
#include "common/util.h"

Test(gae, by_hand_one_world)
{
    /* T=3, N=1, gamma 0.5, lambda 0.5. rewards 1,1,1; values 0.1,0.2,0.3; last value 0.4.
     * No episode end: delta_t = r + 0.5 v_{t+1} - v_t:
     *   d2 = 1 + 0.2 - 0.3 = 0.9; d1 = 1 + 0.15 - 0.2 = 0.95; d0 = 1 + 0.1 - 0.1 = 1.0
     *   A2 = 0.9; A1 = 0.95 + 0.25*0.9 = 1.175; A0 = 1.0 + 0.25*1.175 = 1.29375 */
    float r[3] = {1, 1, 1}, v[3] = {0.1f, 0.2f, 0.3f}, fv[3] = {0}, last[1] = {0.4f}, adv[3], ret[3];
    uint8_t te[3] = {0}, tr[3] = {0};
    bd_gae(3, 1, r, v, fv, last, te, tr, 0.5f, 0.5f, adv, ret);
    cr_assert_float_eq(adv[2], 0.9f, 1e-6);
    cr_assert_float_eq(adv[1], 1.175f, 1e-6);
    cr_assert_float_eq(adv[0], 1.29375f, 1e-6);
    cr_assert_float_eq(ret[0], 1.29375f + 0.1f, 1e-6);
}

Test(gae, termination_and_truncation)
{
    /* Two worlds, T=2. World 0 terminates at t=0: no bootstrap, and A0 does not see t=1.
     * World 1 is truncated at t=0 with final value 5: bootstrap 0.5*5, chain cut. */
    float r[4] = {1, 1, 1, 1}, v[4] = {0.5f, 0.5f, 0.5f, 0.5f}, fv[4] = {0, 5, 0, 0};
    float last[2] = {2, 2}, adv[4], ret[4];
    uint8_t te[4] = {1, 0, 0, 0}, tr[4] = {0, 1, 0, 0};
    bd_gae(2, 2, r, v, fv, last, te, tr, 0.5f, 1.0f, adv, ret);
    cr_assert_float_eq(adv[0], 1 - 0.5f, 1e-6, "terminated: r - v");
    cr_assert_float_eq(adv[1], 1 + 0.5f * 5 - 0.5f, 1e-6, "truncated: bootstrap from the final obs");
    cr_assert_float_eq(adv[2], 1 + 0.5f * 2 - 0.5f, 1e-6, "t=1 bootstraps from last value");
}

Test(stats, episodes_and_window)
{
    bd_stats s;
    cr_assert_eq(bd_stats_init(&s, 2, 2), BD_OK);
    float r[6] = {1, 2, 1, 2, 1, 2};
    uint8_t te[6] = {0, 0, 1, 0, 0, 1}, tr[6] = {0};
    cr_assert_eq(bd_stats_add(&s, 3, r, te, tr, NULL), BD_OK);
    cr_assert_eq(s.done_n, 2);
    cr_assert_eq(s.done[0].world, 0);
    cr_assert_eq(s.done[0].length, 2);
    cr_assert_float_eq(s.done[0].ret, 2.0f, 1e-6);
    cr_assert_eq(s.done[1].world, 1);
    cr_assert_eq(s.done[1].length, 3);
    cr_assert_float_eq(s.done[1].ret, 6.0f, 1e-6);
    float r2[2] = {7, 0};
    uint8_t te2[2] = {0, 0}, tr2[2] = {1, 0};
    cr_assert_eq(bd_stats_add(&s, 1, r2, te2, tr2, NULL), BD_OK);
    cr_assert_eq(s.done_n, 1);
    cr_assert_eq(s.done[0].start_step, 2, "world 0's second episode began at row 2");
    cr_assert_eq(s.done[0].length, 2);
    cr_assert_eq(s.done[0].truncated, 1);
    cr_assert_float_eq(s.done[0].ret, 8.0f, 1e-6);
    cr_assert_eq(s.episodes, 3);
    cr_assert_float_eq(bd_stats_mean_recent(&s, 2), 7.0, 1e-9, "window of 2: (6 + 8) / 2");
    cr_assert_float_eq(s.max_return, 8.0, 1e-9);
    bd_stats_fini(&s);
}

Test(stats, episode_quota_splits_over_worlds)
{
    /* 3 worlds, 7 episodes: worlds 0, 1, 2 count floor((7 + i) / 3) = 2, 2, 3 of theirs.
     * World 0 ends an episode every step (return 1), world 1 every 2nd, world 2 every 3rd. */
    bd_stats s;
    cr_assert_eq(bd_stats_init(&s, 3, 100), BD_OK);
    cr_assert_eq(bd_stats_set_quota(&s, 7, 1), BD_OK);
    cr_assert_eq(bd_stats_set_quota(&s, 0, 1), BD_EINVAL);
    cr_assert_eq(bd_stats_set_quota(&s, 7, 1), BD_OK);
    int seen = 0;
    for (int t = 0; t < 12; t++) {
        float r[3] = {1, 1, 1};
        uint8_t te[3] = {1, (uint8_t)(t % 2 == 1), (uint8_t)(t % 3 == 2)}, tr[3] = {0};
        cr_assert_eq(bd_stats_add(&s, 1, r, te, tr, NULL), BD_OK);
        seen += s.done_n;
        if (t == 5) /* world 0 is past its share, world 1 has 3 (counts 2), world 2 has 2 */
            cr_assert_eq(s.episodes, 2 + 2 + 2);
    }
    cr_assert_eq(seen, 12 + 6 + 4, "every episode is still reported for the trace");
    cr_assert_eq(s.episodes, 7, "exactly the quota counts");
    /* counted: world 0 two of length 1, world 1 two of length 2, world 2 three of length 3 */
    cr_assert_float_eq(bd_stats_mean_recent(&s, 100), (2 * 1 + 2 * 2 + 3 * 3) / 7.0, 1e-9);
    cr_assert_float_eq(s.max_return, 3.0, 1e-9);
    bd_stats_fini(&s);
}

Test(stats, a_restarted_column_drops_its_running_episode)
{
    /* 2 columns; column 1's muscle dies mid-episode, misses a row, restarts */
    bd_stats s;
    cr_assert_eq(bd_stats_init(&s, 2, 10), BD_OK);
    float r[2] = {1, 5};
    uint8_t no[2] = {0, 0}, v01[2] = {1, 0};
    cr_assert_eq(bd_stats_add(&s, 1, r, no, no, NULL), BD_OK);   /* row 0 */
    cr_assert_eq(bd_stats_add(&s, 1, r, no, no, v01), BD_OK);    /* row 1: column 1 empty */
    bd_stats_restart(&s, 1, 1);
    cr_assert_eq(bd_stats_add(&s, 1, r, no, no, v01), BD_OK);    /* row 2: still empty */
    uint8_t end[2] = {1, 1};
    cr_assert_eq(bd_stats_add(&s, 1, r, end, no, NULL), BD_OK);  /* row 3: both end */
    cr_assert_eq(s.done_n, 2);
    cr_assert_eq(s.done[0].start_step, 0);
    cr_assert_eq(s.done[0].length, 4);
    cr_assert_float_eq(s.done[0].ret, 4.0f, 1e-6);
    cr_assert_eq(s.done[1].start_step, 3, "the restarted column's episode starts at its next data");
    cr_assert_eq(s.done[1].length, 1);
    cr_assert_float_eq(s.done[1].ret, 5.0f, 1e-6, "the cut episode's rewards are gone");
    bd_stats_fini(&s);
}

Test(stats, a_cut_column_does_not_count_the_episode_that_lost_rows)
{
    /* 2 columns; column 1's rollout is refused for a row while its world goes on: the
     * episode that lost the row is not counted (its return would miss that row's reward),
     * the next one is, from its first row */
    bd_stats s;
    cr_assert_eq(bd_stats_init(&s, 2, 10), BD_OK);
    float r[2] = {1, 5};
    uint8_t no[2] = {0, 0}, v01[2] = {1, 0}, end1[2] = {0, 1}, end[2] = {1, 1};
    cr_assert_eq(bd_stats_add(&s, 1, r, no, no, NULL), BD_OK);   /* row 0 */
    bd_stats_cut(&s, 1, 1);
    cr_assert_eq(bd_stats_add(&s, 1, r, no, no, v01), BD_OK);    /* row 1: column 1 refused */
    cr_assert_eq(bd_stats_add(&s, 1, r, no, end1, NULL), BD_OK); /* row 2: column 1's cut episode ends */
    cr_assert_eq(s.done_n, 0, "the cut episode is not counted");
    cr_assert_eq(bd_stats_add(&s, 1, r, end, no, NULL), BD_OK);  /* row 3: both end */
    cr_assert_eq(s.done_n, 2);
    cr_assert_eq(s.done[0].length, 4);
    cr_assert_eq(s.done[1].start_step, 3, "column 1's next episode counts, from its first row");
    cr_assert_eq(s.done[1].length, 1);
    cr_assert_float_eq(s.done[1].ret, 5.0f, 1e-6);
    cr_assert_eq(s.episodes, 2);
    bd_stats_fini(&s);
}

Test(ppo, shuffles_are_permutations_and_reproducible)
{
    enum { N = 1000, E = 3 };
    static int64_t p[N * E], q[N * E];
    bd_ppo_perm(p, N, E, 42, 7);
    bd_ppo_perm(q, N, E, 42, 7);
    cr_assert_eq(memcmp(p, q, sizeof p), 0);
    for (int e = 0; e < E; e++) {
        static char seen[N];
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < N; i++) {
            cr_assert(p[e * N + i] >= 0 && p[e * N + i] < N);
            seen[p[e * N + i]]++;
        }
        for (int i = 0; i < N; i++)
            cr_assert_eq(seen[i], 1);
    }
    cr_assert_neq(memcmp(p, p + N, N * sizeof *p), 0, "epochs shuffle differently");
    bd_ppo_perm(q, N, E, 42, 8);
    cr_assert_neq(memcmp(p, q, sizeof p), 0, "updates shuffle differently");
}

Test(ppo, shuffles_reach_every_index_of_batches_past_2_to_the_24)
{
    /* a float draw has 24 bits: picks among 2^31 - 1 samples would be multiples of 128.
     * The 64-bit pick reaches all of them: its low bits vary, and its extremes are hit */
    const uint64_t m = (1ull << 31) - 1;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    static char low[256];
    int distinct = 0;
    for (int k = 0; k < 4096; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t j = bd_ppo_pick(x, m);
        cr_assert(j >= 0 && (uint64_t)j < m);
        distinct += !low[j & 255]++;
    }
    cr_assert_gt(distinct, 240, "low bits of the picks take %d of 256 values", distinct);
    cr_assert_eq(bd_ppo_pick(0, m), 0);
    cr_assert_eq(bd_ppo_pick(UINT64_MAX, m), (int64_t)m - 1);
    /* a batch of 2^24 + 3 samples shuffles into a permutation that moves its last ones */
    const int n = (1 << 24) + 3;
    int64_t *p = malloc(sizeof *p * (size_t)n);
    char *seen = calloc((size_t)n, 1);
    cr_assert(p && seen);
    bd_ppo_perm(p, n, 1, 5, 1);
    for (int i = 0; i < n; i++) {
        cr_assert(p[i] >= 0 && p[i] < n && !seen[p[i]]);
        seen[p[i]] = 1;
    }
    cr_assert(p[n - 1] != n - 1 || p[n - 2] != n - 2, "the last samples moved");
    free(p);
    free(seen);
}

Test(ppo, params_defaults_and_errors)
{
    bd_ppo_params p;
    cr_assert_eq(bd_ppo_params_parse(NULL, 1000, 16, &p), BD_OK);
    cr_assert_float_eq(p.learning_rate, 1e-3, 1e-12);
    cr_assert(!p.anneal_lr && !p.opt.clip_vloss && p.opt.ent_coef == 0);
    cr_assert_eq(p.rollout_steps, BD_PPO_AUTO_T_MAX, "16 worlds: the longest automatic rollout");
    cr_assert_eq(p.opt.epochs, 4);
    cr_assert_eq(p.opt.minibatches, 0, "a minibatch size, not a count, by default");
    cr_assert_eq(p.opt.minibatch_size, BD_PPO_MINIBATCH_SIZE);
    cr_assert_eq(bd_ppo_params_parse(NULL, 1000, 1 << 20, &p), BD_OK);
    cr_assert_eq(p.rollout_steps, BD_PPO_AUTO_T_MIN, "a million worlds: the shortest automatic rollout");
    cr_assert_eq(p.total_steps, 1000);
    bd_node *n;
    const char *bad = "lr: 0.1\n";
    cr_assert_eq(bd_yaml_parse(bad, strlen(bad), "b.yml", &n), BD_OK);
    cr_assert_eq(bd_ppo_params_parse(n, 1, 16, &p), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "b.yml:1:1") && strstr(bd_lasterr(), "'lr'"), "%s", bd_lasterr());
    bd_node_destroy(n);
    const char *both = "num_minibatches: 8\nminibatch_size: 256\n";
    cr_assert_eq(bd_yaml_parse(both, strlen(both), "d.yml", &n), BD_OK);
    cr_assert_eq(bd_ppo_params_parse(n, 1, 16, &p), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "d.yml:1:") && strstr(bd_lasterr(), "give one of them"), "%s", bd_lasterr());
    bd_node_destroy(n);
    const char *range = "rollout_steps: 0\n";
    cr_assert_eq(bd_yaml_parse(range, strlen(range), "c.yml", &n), BD_OK);
    cr_assert_eq(bd_ppo_params_parse(n, 1, 16, &p), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "c.yml:1:"), "%s", bd_lasterr());
    bd_node_destroy(n);
}

/* SAC's defaults follow the agent: one gradient step per step of all its columns, a
 * target entropy of minus its action dimensions; the fraction of a step carries over. */
Test(sac, params_defaults_and_gradient_steps_per_round)
{
    bd_sac_params p;
    bd_diags d = BD_DIAGS_INIT;
    cr_assert_eq(bd_sac_params_read(NULL, 64, 2, &p, &d), BD_OK);
    bd_diags_fini(&d);
    cr_assert_float_eq(p.update_ratio, 1.0 / 64, 1e-15);
    cr_assert_eq(bd_sac_params_read(NULL, 16, 2, &p, &d), BD_OK);
    cr_assert_float_eq(p.update_ratio, 1.0 / 16, 1e-15, "one gradient step per step of 16 worlds");
    cr_assert_eq(bd_sac_params_read(NULL, 4096, 2, &p, &d), BD_OK);
    cr_assert_float_eq(p.update_ratio, 1.0 / BD_SAC_RATIO_COLUMNS, 1e-15, "at least one per 64 transitions");
    cr_assert_eq(bd_sac_params_read(NULL, 64, 2, &p, &d), BD_OK);
    cr_assert_float_eq(p.target_entropy, -2.0, 1e-15);
    cr_assert(p.autotune && p.batch_size == 256 && p.buffer_size == 1000000 && !p.save_buffer);
    cr_assert_eq(p.rollout_steps, (int)bd_brain_auto_rollout(64));
    double carry = 0;
    long long total = 0;
    for (int r = 0; r < 10; r++) { /* rounds of 16 steps x 64 columns: 16 gradient steps each */
        long long k = bd_sac_steps_due(&p, 16 * 64, &carry);
        cr_assert_eq(k, 16);
        total += k;
    }
    p.update_ratio = 0.3; /* 3 steps a round of 10 transitions, none lost to rounding */
    carry = 0;
    total = 0;
    for (int r = 0; r < 10; r++)
        total += bd_sac_steps_due(&p, 10, &carry);
    cr_assert(total == 30 || total == 29, "%lld gradient steps for 100 transitions at 0.3", total);
    cr_assert(carry < 1.0);
    bd_node *n;
    const char *bad = "update_ratio: 0\nhiden: 8\n";
    cr_assert_eq(bd_yaml_parse(bad, strlen(bad), "s.yml", &n), BD_OK);
    d = (bd_diags)BD_DIAGS_INIT;
    cr_assert_eq(bd_sac_params_read(n, 16, 1, &p, &d), BD_EINVAL);
    cr_assert_eq(d.n, 2, "every problem: %d", d.n);
    cr_assert(strstr(d.msg[0], "s.yml:2:1") && strstr(d.msg[0], "'hidden'"), "%s", d.msg[0]);
    cr_assert(strstr(d.msg[1], "s.yml:1:15") && strstr(d.msg[1], "update_ratio"), "%s", d.msg[1]);
    bd_diags_fini(&d);
    bd_node_destroy(n);
}

Test(ppo, learning_rate_follows_the_kl_of_each_update)
{
    bd_ppo_params p;
    cr_assert_eq(bd_ppo_params_parse(NULL, 1000, 16, &p), BD_OK);
    cr_assert_float_eq(p.kl_threshold, BD_PPO_KL_THRESHOLD, 1e-12);
    const double lr = p.learning_rate, t = p.kl_threshold;
    cr_assert_float_eq(bd_ppo_adapt_lr(&p, lr, 3 * t), lr / BD_PPO_KL_STEP, 1e-15, "too far: slower");
    cr_assert_float_eq(bd_ppo_adapt_lr(&p, lr, 0.1 * t), lr * BD_PPO_KL_STEP, 1e-15, "too timid: faster");
    cr_assert_float_eq(bd_ppo_adapt_lr(&p, lr, t), lr, 1e-15, "on target: kept");
    cr_assert_float_eq(bd_ppo_adapt_lr(&p, lr, NAN), lr, 1e-15, "no KL: kept");
    double r = lr;
    for (int k = 0; k < 100; k++)
        r = bd_ppo_adapt_lr(&p, r, 0);
    cr_assert_float_eq(r, BD_PPO_LR_MAX, 1e-15, "bounded above");
    for (int k = 0; k < 100; k++)
        r = bd_ppo_adapt_lr(&p, r, 1);
    cr_assert_float_eq(r, BD_PPO_LR_MIN, 1e-18, "bounded below");
    p.learning_rate = 0.05; /* a rate above the bound is the bound */
    cr_assert_float_eq(bd_ppo_adapt_lr(&p, 0.05, 0), 0.05, 1e-15);
    p.kl_threshold = 0;
    cr_assert_float_eq(bd_ppo_adapt_lr(&p, lr, 1), lr, 1e-15, "kl_threshold 0: fixed");
}

Test(obsnorm, running_moments_match_the_whole_batch)
{
    bd_obsnorm o;
    bd_obsnorm_init(&o, 2);
    float a[6] = {1, 10, 2, 20, 3, 30}, b[4] = {4, 40, 5, 50};
    bd_obsnorm_update(&o, a, 3);
    bd_obsnorm_update(&o, b, 2);
    /* all five: mean (3, 30), population variance (2, 200); the prior (count 1e-4, mean 0,
     * var 1) shifts the variance by about 1e-4 * mean^2 / n: 0.04 on the second sensor */
    cr_assert_float_eq(o.mean[0], 3.0, 1e-3);
    cr_assert_float_eq(o.mean[1], 30.0, 1e-3);
    cr_assert_float_eq(o.var[0], 2.0, 1e-3);
    cr_assert_float_eq(o.var[1], 200.0, 0.1);
    float x[2] = {3 + 1.41421356f, 30}, y[2];
    bd_obsnorm_apply(&o, x, y, 1);
    cr_assert_float_eq(y[0], 1.0f, 1e-3);
    cr_assert_float_eq(y[1], 0.0f, 1e-3);
    float far[2] = {1e6f, -1e6f};
    bd_obsnorm_apply(&o, far, y, 1);
    cr_assert_eq(y[0], 10.0f, "clipped to +-10");
    cr_assert_eq(y[1], -10.0f);
    char path[128];
    snprintf(path, sizeof path, "/tmp/bd-obsnorm-%d.json", (int)getpid());
    cr_assert_eq(bd_obsnorm_save(&o, path), BD_OK);
    bd_obsnorm back;
    bd_obsnorm_init(&back, 2);
    cr_assert_eq(bd_obsnorm_load(&back, path), BD_OK);
    cr_assert_float_eq(back.var[1], o.var[1], 1e-9);
    bd_obsnorm_init(&back, 3);
    cr_assert_eq(bd_obsnorm_load(&back, path), BD_EINVAL, "sensor count mismatch");
    unlink(path);
}

Test(stats, a_groups_quota_goes_round_the_worlds_first)
{
    /* 4 worlds of 3 members, columns world-major; 5 episodes: the shares floor((5 + k) / 12)
     * are 1 for k = m W + w >= 7, that is member 1 of world 3 and member 2 of every world:
     * four worlds, not the last world's members */
    bd_stats s;
    cr_assert_eq(bd_stats_init(&s, 12, 100), BD_OK);
    cr_assert_eq(bd_stats_set_quota(&s, 5, 3), BD_OK);
    long long total = 0;
    for (int i = 0; i < 12; i++) {
        int w = i / 3, m = i % 3;
        int want = m * 4 + w >= 7;
        cr_assert_eq(s.quota_left[i], want, "column %d (world %d, member %d)", i, w, m);
        total += s.quota_left[i];
    }
    cr_assert_eq(total, 5);
    cr_assert_eq(bd_stats_set_quota(&s, 5, 5), BD_EINVAL, "12 columns are not worlds of 5");
    bd_stats_fini(&s);
}

/* A brain reuses what it allocated: once its buffers are warm, an update faults (almost)
 * no page in again. The brain's update events carry its minor page faults so far; over
 * updates 10 to 20 of a short CartPole run (16384 samples an update) the faults per update
 * must stay under one per 128 samples. The update's own arrays alone (the batch, GAE, the
 * shuffles, the learner's copies: over 60 bytes a sample) span more than a page per 64
 * samples, and libtorch's per-minibatch tensors many times that, so a brain whose
 * allocator handed them back to the kernel (glibc's dynamic mmap threshold: 20k faults an
 * update at 1024 worlds) fails by far, while a warm one faults a few pages now and then
 * (its event JSON, the trace writer's queue). Counts, not times: load does not matter. */
Test(brain, page_faults_per_update_do_not_grow, .timeout = 300)
{
#ifdef __SANITIZE_ADDRESS__
    /* AddressSanitizer's allocator replaces glibc's (bodhi's mallopt policy does not apply,
     * freed memory is quarantined): its faults say nothing of bodhi's */
    cr_skip_test("page faults are glibc malloc's; this build allocates through AddressSanitizer");
#endif
    const int worlds = 256, T = 64, updates = 22;
    char *dir = bd_strfmt("/tmp/bd-test-faults-%d", (int)getpid());
    char *yml = bd_strfmt("%s.yml", dir);
    FILE *f = fopen(yml, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "uid: faults\nseed: 3\nschedule:\n  - train:\n      environments:\n"
            "        - environment: {name: cartpole, uid: pole, params: {worlds: %d}}\n"
            "      agents:\n        - name: balancer\n"
            "          brain: {name: ppo, params: {rollout_steps: %d}}\n"
            "          muscle: {name: ppo, params: {}}\n          objective: {name: reward, params: {}}\n"
            "          sensors: [pole.*]\n          actuators: [pole.push]\n"
            "      simulation:\n        conditions:\n          - {name: max_steps, params: {steps: %d}}\n"
            "      phase_config: {mode: train, worker: 2, device: cpu}\n",
            worlds, T, worlds * T * updates);
    fclose(f);
    char *cmd = bd_strfmt("rm -rf %s && %s run %s --out %s --quiet", dir, BODHI_BINARY, yml, dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bodhi run exited %d", WEXITSTATUS(st));
    char *logp = bd_strfmt("%s/log.jsonl", dir);
    f = fopen(logp, "r");
    cr_assert_not_null(f);
    double minflt[64];
    int n = 0;
    char line[8192];
    while (fgets(line, sizeof line, f) && n < 64) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *ev = cJSON_GetObjectItem(o, "event"), *m = cJSON_GetObjectItem(o, "minflt");
        if (cJSON_IsString(ev) && strcmp(ev->valuestring, "update") == 0) {
            cr_assert(cJSON_IsNumber(m), "an update event without minflt: %s", line);
            minflt[n++] = m->valuedouble;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    cr_assert_geq(n, 21, "the run reported %d rounds, wanted at least 21", n);
    for (int i = 1; i < n; i++)
        cr_assert_geq(minflt[i], minflt[i - 1], "minflt is a running count");
    /* update event k carries the faults up to round k, before its learning: the faults of
     * updates 10..19 are minflt[20] - minflt[10] */
    double per_update = (minflt[20] - minflt[10]) / 10;
    double bound = (double)(worlds * T) / 128;
    cr_assert_lt(per_update, bound,
                 "the brain took %.0f minor page faults per update over updates 10-20 (updates 5-10: %.0f); "
                 "a brain that reuses its memory takes under %.0f", per_update, (minflt[10] - minflt[5]) / 5,
                 bound);
    free(cmd);
    cmd = bd_strfmt("rm -rf %s %s", dir, yml);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(logp);
    free(yml);
    free(dir);
}

/* Issue 21: a brain kind is an ops table (brain/learner.h). bodhi-noop (tests/noop_brain.c)
 * adds "noop", a fixed-policy learner of the test suite's own with no PPO in it, and runs a
 * train phase with the real conductor, brain and muscle processes. Its policy, sent in the
 * WEIGHTS descriptor, has constant logits that make every sampled action the last one: the
 * trace must hold only that action; its update events carry its own figures, counting the
 * rounds and the columns it collected; and it saves no checkpoint. */
Test(brain, a_learner_of_the_tests_runs_a_phase, .timeout = 120)
{
    const int worlds = 8, T = 16, rounds = 5;
    char *dir = bd_strfmt("/tmp/bd-test-noop-%d", (int)getpid());
    char *yml = bd_strfmt("%s.yml", dir);
    FILE *f = fopen(yml, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "uid: noop\nseed: 5\nschedule:\n  - train:\n      environments:\n"
            "        - environment: {name: cartpole, uid: pole, params: {worlds: %d}}\n"
            "      agents:\n        - name: balancer\n"
            "          brain: {name: noop, params: {rollout_steps: %d, hidden: 4}}\n"
            "          muscle: {name: ppo, params: {}}\n          objective: {name: reward, params: {}}\n"
            "          sensors: [pole.*]\n          actuators: [pole.push]\n"
            "      simulation:\n        conditions:\n          - {name: max_steps, params: {steps: %d}}\n"
            "      phase_config: {mode: train, worker: 2, device: cpu}\n",
            worlds, T, worlds * T * rounds);
    fclose(f);
    char *cmd = bd_strfmt("rm -rf %s && %s run %s --out %s --quiet", dir, BODHI_NOOP_BINARY, yml, dir);
    int st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bodhi-noop run exited %d", WEXITSTATUS(st));
    free(cmd);
    /* bodhi itself does not know the kind */
    cmd = bd_strfmt("%s check %s 2>/dev/null", BODHI_BINARY, yml);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 2, "bodhi check of a noop brain exited %d", WEXITSTATUS(st));
    free(cmd);
    char *logp = bd_strfmt("%s/log.jsonl", dir);
    f = fopen(logp, "r");
    cr_assert_not_null(f, "no %s", logp);
    int n = 0;
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *ev = cJSON_GetObjectItem(o, "event");
        if (cJSON_IsString(ev) && strcmp(ev->valuestring, "update") == 0) {
            const cJSON *r = cJSON_GetObjectItem(o, "noop_rounds"), *c = cJSON_GetObjectItem(o, "noop_columns");
            const cJSON *u = cJSON_GetObjectItem(o, "update");
            /* the report of round k comes before its update and carries the last one's
             * figures: k updates so far, none in round 0 */
            cr_assert(n == 0 ? !r && !c : cJSON_IsNumber(r) && cJSON_IsNumber(c), "round %d: %s", n, line);
            cr_assert(cJSON_IsNumber(u), "round %d: %s", n, line);
            if (n == 0) {
                cJSON_Delete(o);
                n++;
                continue;
            }
            cr_assert_eq((int)r->valuedouble, n, "round %d: noop_rounds %g", n, r->valuedouble);
            cr_assert_eq((int)u->valuedouble, n, "round %d: version %g", n, u->valuedouble);
            cr_assert_eq((int)c->valuedouble, n * worlds, "round %d: noop_columns %g", n, c->valuedouble);
            n++;
        }
        cJSON_Delete(o);
    }
    fclose(f);
    cr_assert_eq(n, rounds, "%d rounds reported, wanted %d", n, rounds);
    /* every recorded action is the one the fixed policy's logits make certain (1) */
    cmd = bd_strfmt("/usr/bin/python3 -c \"import h5py,numpy as np,sys; a=h5py.File('%s/run.h5','r')"
                    "['train/balancer/actuators'][()]; sys.exit(0 if a.shape==(%d,%d,1) and (a==1).all() else 1)\"",
                    dir, rounds * T, worlds);
    st = system(cmd);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the trace holds other actions than the policy's (%s)", cmd);
    free(cmd);
    char *ck = bd_strfmt("%s/checkpoints/train/balancer.pt", dir);
    cr_assert_neq(access(ck, F_OK), 0, "a learner with nothing to keep wrote %s", ck);
    free(ck);
    cmd = bd_strfmt("rm -rf %s %s", dir, yml);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(logp);
    free(yml);
    free(dir);
}

/* One case of a_brain_binds_itself_to_its_share_of_the_cores, in a child of its own (the
 * binding lasts): with env set, bd_ranks_place; what it did, the mask after,
 * bd_ranks_cores() and bd_ranks_spin() for one learner and for two go to fd. */
typedef struct {
    int state;
    long cores;
    int spin1, spin2;
    cpu_set_t mask;
} place_seen;

static void place_case(const char *const *env, int fd)
{
    unsetenv("BODHI_GROUP_SPIN");
    for (int i = 0; env[i]; i++)
        putenv((char *)env[i]);
    bd_ranks_place();
    place_seen seen = {.state = bd_ranks_place_state(), .cores = bd_ranks_cores(), .spin1 = bd_ranks_spin(1),
                       .spin2 = bd_ranks_spin(2)};
    if (sched_getaffinity(0, sizeof seen.mask, &seen.mask) != 0)
        _exit(1);
    _exit(write(fd, &seen, sizeof seen) == (ssize_t)sizeof seen ? 0 : 2);
}

static place_seen place_run(const char *const *env)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fds[0]);
        place_case(env, fds[1]);
    }
    close(fds[1]);
    place_seen seen;
    cr_assert_eq(read(fds[0], &seen, sizeof seen), (ssize_t)sizeof seen);
    close(fds[0]);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return seen;
}

/* CPU cpu's hardware-thread siblings (its core), from sysfs; 0 when it cannot be read. */
static int core_of(int cpu, cpu_set_t *out)
{
    char path[96], list[256];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/thread_siblings_list", cpu);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int ok = fgets(list, sizeof list, f) != NULL;
    fclose(f);
    CPU_ZERO(out);
    for (char *p = list; ok && *p && *p != '\n';) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p)
            return 0;
        if (*end == '-')
            hi = strtol(end + 1, &end, 10);
        for (long c = lo; c <= hi && c < CPU_SETSIZE; c++)
            CPU_SET((int)c, out);
        p = *end == ',' ? end + 1 : end;
    }
    return ok;
}

/* The words of ranks that left before their groups formed (brain/ranks.h): a join obeys
 * another rank's word of its phase or of the whole run, written since its launch began,
 * from a plain file named for the word's rank; of several, the first written. */
Test(ranks, a_join_obeys_only_the_words_meant_for_it)
{
    char dir[] = "/tmp/bd_left_XXXXXX", prefix[64], why[256];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(prefix, sizeof prefix, "%s/left-7.", dir);
    setenv("BODHI_GROUP_LEFT", prefix, 1);
    const double t0 = bd_wall() - 0.01; /* the launch's start (words carry milliseconds) */
    cr_assert_eq(bd_ranks_left_word("train", 0, 8, t0, why, sizeof why), 0); /* none yet */
    /* rank 1's word of phase train: obeyed by train's join on rank 0, not test's, nor rank 1's own */
    cr_assert_eq(bd_ranks_say_left(1, "train", "its brain failed"), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_ranks_left_word("train", 0, 8, t0, why, sizeof why), 1);
    cr_assert_str_eq(why, "rank 1 left before the group formed: its brain failed");
    cr_assert_eq(bd_ranks_left_word("test", 0, 8, t0, why, sizeof why), 0);
    cr_assert_eq(bd_ranks_left_word("trai", 0, 8, t0, why, sizeof why), 0);
    cr_assert_eq(bd_ranks_left_word("train", 1, 8, t0, why, sizeof why), 0);
    /* written before the launch began: an earlier launch's */
    cr_assert_eq(bd_ranks_left_word("train", 0, 8, bd_wall() + 10, why, sizeof why), 0);
    /* the file is this user's alone, and no temporary is left */
    char path[128];
    snprintf(path, sizeof path, "%sr1", prefix);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    int files = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *e; (e = readdir(d));)
        files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 1);
    /* a word of the whole run ("*", a run that failed before its brains started), of rank 2,
     * written later: the first (rank 1's) is still the one obeyed */
    usleep(20000);
    cr_assert_eq(bd_ranks_say_left(2, NULL, "its bodhi run failed before its brains started: x"), BD_OK);
    cr_assert_eq(bd_ranks_left_word("train", 0, 8, t0, why, sizeof why), 1);
    cr_assert_str_eq(why, "rank 1 left before the group formed: its brain failed");
    cr_assert_eq(bd_ranks_left_word("test", 0, 8, t0, why, sizeof why), 1);
    cr_assert_str_eq(why, "rank 2 left before the group formed: its bodhi run failed before its brains started: x");
    /* rank 2 is not of a group of 2 (started with another WORLD_SIZE): not its word */
    cr_assert_eq(bd_ranks_left_word("test", 0, 2, t0, why, sizeof why), 0);
    /* what is not a whole word of its file's rank is read as none: a rank that differs
     * from the name's, a time that is not a number, a pipe (never waited on), a link */
    FILE *f;
    snprintf(path, sizeof path, "%sr3", prefix);
    cr_assert_not_null(f = fopen(path, "w"));
    fprintf(f, "%.3f|4|*|rank 4 left", t0 + 1);
    fclose(f);
    snprintf(path, sizeof path, "%sr5", prefix);
    cr_assert_not_null(f = fopen(path, "w"));
    fprintf(f, "inf|5|*|rank 5 left");
    fclose(f);
    snprintf(path, sizeof path, "%sr6", prefix);
    cr_assert_eq(mkfifo(path, 0600), 0);
    char link[128];
    snprintf(link, sizeof link, "%sr8", prefix);
    snprintf(path, sizeof path, "%sr2", prefix);
    cr_assert_eq(symlink(path, link), 0);
    cr_assert_eq(bd_ranks_left_word("phase9", 0, 8, t0, why, sizeof why), 1); /* only rank 2's "*" */
    cr_assert_str_eq(why, "rank 2 left before the group formed: its bodhi run failed before its brains started: x");
    unlink(link);
    snprintf(path, sizeof path, "%sr2", prefix);
    unlink(path);
    cr_assert_eq(bd_ranks_left_word("phase9", 0, 8, t0, why, sizeof why), 0);
    /* a rank's first word of a launch stays; one of an earlier launch gives way */
    snprintf(path, sizeof path, "%sr3", prefix); /* the one of another rank's content, above */
    unlink(path);
    cr_assert_eq(bd_ranks_say_left(3, "other", "first"), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_ranks_say_left(3, "other", "second"), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_ranks_left_word("other", 0, 8, t0, why, sizeof why), 1);
    cr_assert_str_eq(why, "rank 3 left before the group formed: first");
    char later[32];
    snprintf(later, sizeof later, "%.3f", bd_wall() + 5);
    setenv("BODHI_LAUNCH_T", later, 1);
    cr_assert_eq(bd_ranks_say_left(3, "other", "third"), BD_OK, "%s", bd_lasterr());
    unsetenv("BODHI_LAUNCH_T");
    cr_assert_eq(bd_ranks_left_word("other", 0, 8, t0, why, sizeof why), 1);
    cr_assert_str_eq(why, "rank 3 left before the group formed: third");
    unlink(path);
    /* a name with a leading zero is not a rank's: read as none */
    snprintf(path, sizeof path, "%sr01", prefix);
    cr_assert_not_null(f = fopen(path, "w"));
    fprintf(f, "%.3f|1|*|rank 1 left", t0 + 1);
    fclose(f);
    cr_assert_eq(bd_ranks_left_word("phase9", 0, 8, t0, why, sizeof why), 0);
    unlink(path);
    /* a brain whose join failed on another rank's word passes nothing on; one whose join
     * failed otherwise (stopped, timed out) says so */
    bd_ranks r;
    memset(&r, 0, sizeof r);
    r.world = 2;
    r.rank = 1;
    r.phase = "later";
    r.tried = 1;
    r.heard = 1;
    snprintf(path, sizeof path, "%sr1", prefix); /* rank 1's word of phase train, above */
    unlink(path);
    bd_ranks_abandon(&r, "rank 0 left before the group formed: x");
    cr_assert_eq(bd_ranks_left_word("later", 0, 8, t0, why, sizeof why), 0);
    cr_assert_neq(access(path, F_OK), 0, "a word was passed on");
    r.heard = 0;
    bd_ranks_abandon(&r, "stopped while it waited for the other ranks");
    cr_assert_eq(bd_ranks_left_word("later", 0, 8, t0, why, sizeof why), 1);
    cr_assert_str_eq(why, "rank 1 left before the group formed: stopped while it waited for the other ranks");
    /* the folder gone (rank 0's run ended): nothing to tell, no error */
    char rm[96];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
    cr_assert_eq(bd_ranks_say_left(1, "train", "late"), BD_OK, "%s", bd_lasterr());
    unsetenv("BODHI_GROUP_LEFT");
}

/* Ranks on one machine meet at every minibatch's all-reduce; each brain keeps to its own
 * share of the cores (brain/ranks.h), unless told not to, or already bound tighter. Two
 * ranks' shares are disjoint, cover the mask, hold half of it each, and keep each core's
 * hardware threads together when the halves are whole cores. A learner alone in its rank
 * spins in its gradients' waits (bd_ranks_spin) when its share is whole cores, two
 * learners never, a brain left unbound never; BODHI_GROUP_SPIN says otherwise. */
Test(ranks, a_brain_binds_itself_to_its_share_of_the_cores)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    const int c = CPU_COUNT(&set);
    if (c < 2)
        cr_skip_test("one core: nothing to share");
    const char *r0[] = {"BODHI_LOCAL_SIZE=2", "BODHI_LOCAL_RANK=0", NULL};
    const char *r1[] = {"BODHI_LOCAL_SIZE=2", "BODHI_LOCAL_RANK=1", NULL};
    place_seen a = place_run(r0), b = place_run(r1);
    if (a.state == 2)
        cr_skip_test("this test runs under a launcher's binding (a process above has a wider mask)");
    cr_assert(a.state == 1 && b.state == 1, "states %d %d", a.state, b.state);
    cpu_set_t both, either;
    CPU_AND(&both, &a.mask, &b.mask);
    CPU_OR(&either, &a.mask, &b.mask);
    cr_assert_eq(CPU_COUNT(&both), 0, "the shares overlap");
    cr_assert(CPU_EQUAL(&either, &set), "the shares do not cover the mask");
    cr_assert_eq(CPU_COUNT(&a.mask), c / 2);
    cr_assert_eq(a.cores, c / 2);
    cr_assert_eq(b.cores, c - c / 2);
    int whole = 1; /* rank 0's share holds every thread of its cores (in the mask) */
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        cpu_set_t core, in;
        if (!CPU_ISSET(cpu, &a.mask) || !core_of(cpu, &core))
            continue;
        CPU_AND(&core, &core, &set);
        CPU_AND(&in, &core, &a.mask);
        whole &= CPU_EQUAL(&in, &core);
        if ((c / 2) % CPU_COUNT(&core) == 0)
            cr_assert(CPU_EQUAL(&in, &core), "CPU %d's core is split between the shares", cpu);
    }
    cr_assert_eq(a.spin1, whole, "one learner on a share %s whole cores: spin %d", whole ? "of" : "not of", a.spin1);
    cr_assert(!a.spin2 && !b.spin2, "two learners of a rank spin");
    const char *quiet[] = {"BODHI_LOCAL_SIZE=2", "BODHI_LOCAL_RANK=0", "BODHI_GROUP_SPIN=0", NULL};
    const char *told[] = {"BODHI_GROUP_SPIN=1", NULL};
    place_seen q = place_run(quiet), t = place_run(told);
    cr_assert(q.state == 1 && !q.spin1, "BODHI_GROUP_SPIN=0: spin %d", q.spin1);
    cr_assert(t.state == 0 && t.spin1 && t.spin2, "BODHI_GROUP_SPIN=1 alone: spin %d %d", t.spin1, t.spin2);
    struct {
        const char *env[5];
        long cores;
    } left[] = {
        {{"BODHI_LOCAL_SIZE=2", "BODHI_LOCAL_RANK=1", "BODHI_LEARNER_CORES=1", NULL}, 1},
        /* told not to: the whole mask, divided among the ranks */
        {{"BODHI_LOCAL_SIZE=2", "BODHI_LOCAL_RANK=1", "BODHI_BRAIN_PIN=0", NULL}, c / 2},
        /* a local rank out of range, or more ranks than cores: left alone */
        {{"BODHI_LOCAL_SIZE=2", "BODHI_LOCAL_RANK=2", NULL}, c / 2},
        {{"BODHI_LOCAL_SIZE=4096", "BODHI_LOCAL_RANK=1", NULL}, 1},
        /* alone */
        {{"BODHI_LEARNER_CORES=1", NULL}, 1},
        {{"BODHI_LOCAL_RANK=1", NULL}, c},
    };
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
        place_seen s = place_run(left[i].env);
        if (i == 0) { /* the cap leaves the share as it is */
            cr_assert(s.state == 1 && CPU_EQUAL(&s.mask, &b.mask), "case 0: the share changed");
        } else {
            cr_assert(s.state == 0 && CPU_EQUAL(&s.mask, &set), "case %zu: the mask changed", i);
            cr_assert(!s.spin1, "case %zu: a brain left unbound spins", i);
        }
        cr_assert_eq(s.cores, left[i].cores, "case %zu: %ld cores", i, s.cores);
    }
}

/* The split's measured choice: the first update of a cycle runs the mode chosen so far,
 * the next six take split and one thread in turn (split, one, one, split, split, one;
 * the reverse every other cycle), and the rest run the faster one by median; a later
 * cycle can turn it the other way; updates that did not finish do not count; a learner
 * that may not split never does. */
static int split_probe_mode(int cycle, int pos)
{
    const int abba[2 * BD_SPLIT_PROBES] = {1, 0, 0, 1, 1, 0};
    return cycle % 2 ? !abba[pos - 1] : abba[pos - 1];
}

Test(ranks, the_split_runs_where_it_measured_faster)
{
    bd_split_pick p;
    bd_split_pick_init(&p, 0, 1);
    for (int i = 0; i < 2 * BD_SPLIT_CYCLE; i++) {
        cr_assert_eq(bd_split_pick_next(&p), 0, "update %d split where it may not", i);
        bd_split_pick_took(&p, 1.0);
    }
    for (int prefer = 0; prefer < 2; prefer++) {
        bd_split_pick_init(&p, 1, prefer);
        /* cycle 0: split at 1.0 (one probe at 9.0: the median ignores it), one thread at 1.5 */
        const double split_t[BD_SPLIT_PROBES] = {1.0, 9.0, 0.9}, one_t[BD_SPLIT_PROBES] = {1.5, 1.6, 1.4};
        int ks = 0, ko = 0;
        for (int i = 0; i < BD_SPLIT_CYCLE; i++) {
            int m = bd_split_pick_next(&p);
            if (i == 0)
                cr_assert_eq(m, prefer, "the first update runs the preferred mode");
            else if (i <= 2 * BD_SPLIT_PROBES)
                cr_assert_eq(m, split_probe_mode(0, i), "probe %d ran mode %d", i, m);
            else
                cr_assert_eq(m, 1, "update %d: one thread after the split measured faster", i);
            bd_split_pick_took(&p, i == 0 ? 50.0 : i <= 2 * BD_SPLIT_PROBES ? (m ? split_t[ks++] : one_t[ko++]) : 7.0);
        }
        /* cycle 1, probes the other way round: one thread faster now; two split probes
         * fail (-1), which would make the split look faster were they counted */
        int fails = 0;
        for (int i = 0; i < BD_SPLIT_CYCLE; i++) {
            int m = bd_split_pick_next(&p);
            if (i == 0)
                cr_assert_eq(m, 1, "a cycle starts in the mode chosen before");
            else if (i <= 2 * BD_SPLIT_PROBES)
                cr_assert_eq(m, split_probe_mode(1, i), "cycle 1, probe %d ran mode %d", i, m);
            else
                cr_assert_eq(m, 0, "update %d: split after one thread measured faster", i);
            bd_split_pick_took(&p, i >= 1 && i <= 2 * BD_SPLIT_PROBES && m && fails < 2 ? (fails++, -1.0)
                                   : m ? 2.0 : 1.0);
        }
        /* cycle 2: every split probe fails: the choice stays */
        for (int i = 0; i < BD_SPLIT_CYCLE; i++) {
            int m = bd_split_pick_next(&p);
            if (i > 2 * BD_SPLIT_PROBES)
                cr_assert_eq(m, 0, "update %d: the choice changed on no figures", i);
            bd_split_pick_took(&p, m ? -1.0 : 5.0);
        }
    }
}

/* K ranks of W worlds take rounds of the length one rank of K x W worlds would: every brain
 * kind of a phase asks for the same length whatever the ranks, and a round brings about as
 * many samples. */
Test(ranks, automatic_rollouts_count_every_ranks_worlds)
{
    unsetenv("BODHI_WORLD_SIZE");
    const long long one_of_1024 = bd_brain_auto_rollout(1024), one_of_64 = bd_brain_auto_rollout(64);
    cr_assert_eq(bd_brain_auto_rollout(512), 32);
    setenv("BODHI_WORLD_SIZE", "2", 1);
    cr_assert_eq(bd_brain_auto_rollout(512), one_of_1024);
    cr_assert_eq(bd_brain_auto_rollout(32), one_of_64);
    setenv("BODHI_WORLD_SIZE", "4096", 1);
    cr_assert_eq(bd_brain_auto_rollout(1), BD_BRAIN_AUTO_T_MIN, "16384 / 4096 = 4, raised to the least");
    setenv("BODHI_WORLD_SIZE", "not a number", 1);
    cr_assert_eq(bd_brain_auto_rollout(512), 32, "alone when the size does not parse");
    unsetenv("BODHI_WORLD_SIZE");
}

/* The launcher bound this rank already (mpirun, srun --cpu-bind): the brain's conductor has
 * a narrower mask than the process that started it. The brain keeps that mask, its own,
 * and its learner counts all of it. The child below plays the bound conductor; its child,
 * the brain. 0, or the check that failed. */
static int launcher_bound_case(void)
{
    cpu_set_t all, half;
    if (sched_getaffinity(0, sizeof all, &all) != 0)
        return 1;
    CPU_ZERO(&half);
    for (int cpu = 0, k = 0, c = CPU_COUNT(&all); cpu < CPU_SETSIZE && k < c / 2; cpu++)
        if (CPU_ISSET(cpu, &all)) {
            CPU_SET(cpu, &half);
            k++;
        }
    if (sched_setaffinity(0, sizeof half, &half) != 0)
        return 2;
    pid_t brain = fork();
    if (brain == 0) {
        putenv("BODHI_LOCAL_SIZE=2");
        putenv("BODHI_LOCAL_RANK=1");
        bd_ranks_place();
        cpu_set_t now;
        if (sched_getaffinity(0, sizeof now, &now) != 0 || !CPU_EQUAL(&now, &half))
            _exit(3);
        _exit(bd_ranks_cores() == CPU_COUNT(&half) ? 0 : 4);
    }
    int st;
    if (brain < 0 || waitpid(brain, &st, 0) != brain)
        return 5;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 6;
}

Test(ranks, a_rank_the_launcher_bound_keeps_its_mask)
{
    cpu_set_t set;
    cr_assert_eq(sched_getaffinity(0, sizeof set, &set), 0);
    if (CPU_COUNT(&set) < 4)
        cr_skip_test("fewer than 4 cores: a launcher's binding of 2 ranks leaves each under 2 cores");
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0)
        _exit(launcher_bound_case());
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "check %d failed", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
