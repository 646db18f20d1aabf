/* dqnbench.c: `bodhi-dqnbench [--batch B] [--steps K] [--obs S] [--actions A] [--hidden H]
 * [--layers L] [--repeats R]`: the dqn brain's gradient steps (the torch shim's
 * bdt_dqn_update, as brain/dqn_learner.c calls it: K steps of B transitions a call, with
 * its cancel flag) on one thread and with the Bellman targets on a second one
 * (bdt_dqn_set_split, as a brain with a second core runs them), in one sitting: two
 * Q-networks made from the same seed alternate R times (one thread, two threads, ...)
 * after a warm-up pair, on the same batches, so that a change in the machine's load
 * touches both alike. Prints one JSON object: each side's best and median time per
 * gradient step (wall; CPU for the process), the ratio one thread / two (above 1: the
 * split is faster), and whether the two networks' parameters are the same bits after
 * every call (the split must not change a step). Defaults: the dqn brain's network and
 * batch (brain/dqn.h) for CartPole's 4 observations and 2 actions, and the 64 steps of a
 * 16-world round. It runs with a brain's thread environment and allocator policy.
 * The inputs' values do not matter to the time: a fixed xorshift stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/learn/benchutil.h"
#include "brain/dqn.h"
#include "common/proc.h"
#include "common/util.h"
#include "torch/bd_torch.h"

int main(int argc, char **argv)
{
    bd_thread_env_reexec(argv); /* a brain's threads (conductor/children.c) */
    bd_alloc_policy();          /* and allocator (cli/main.c) */
    bd_dqn_params dp;
    if (bd_dqn_params_parse(NULL, 16, &dp) != BD_OK) {
        fprintf(stderr, "dqnbench: %s\n", bd_lasterr());
        return 1;
    }
    const int B = (int)bench_opt(argc, argv, "--batch", dp.batch_size), K = (int)bench_opt(argc, argv, "--steps", 64),
              S = (int)bench_opt(argc, argv, "--obs", 4), A = (int)bench_opt(argc, argv, "--actions", 2),
              H = (int)bench_opt(argc, argv, "--hidden", dp.hidden),
              L = (int)bench_opt(argc, argv, "--layers", dp.layers), R = (int)bench_opt(argc, argv, "--repeats", 7);
    if (B < 1 || B > 65536 || K < 1 || K > 4096 || (long long)B * K > (1 << 22) || S < 1 || S > 4096 || A < 2
        || A > 4096 || H < 1 || H > 65536 || L < 1 || L > 16 || R < 1 || R > 1000) {
        fprintf(stderr, "usage: bodhi-dqnbench [--batch 1..65536] [--steps 1..4096] (batch x steps <= 2^22) "
                        "[--obs S] [--actions A >= 2] [--hidden H] [--layers 1..16] [--repeats 1..1000]\n");
        return 2;
    }
    bdt_set_threads(1); /* as brain/dqn_learner.c */
    const size_t m = (size_t)B * (size_t)K;
    float *obs = malloc(sizeof(float) * m * S), *next = malloc(sizeof(float) * m * S),
          *act = malloc(sizeof(float) * m), *rew = malloc(sizeof(float) * m), *term = malloc(sizeof(float) * m);
    double *t = malloc(sizeof(double) * 4 * (size_t)R); /* wall 1, wall 2, cpu 1, cpu 2 */
    if (!obs || !next || !act || !rew || !term || !t) {
        fprintf(stderr, "dqnbench: out of memory\n");
        return 1;
    }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < m * S; i++) {
        obs[i] = bench_noise(&x);
        next[i] = bench_noise(&x);
    }
    for (size_t i = 0; i < m; i++) {
        act[i] = (float)(i % (size_t)A);
        rew[i] = 1;
        term[i] = i % 50 == 0;
    }
    bdt_policy_config pc = {S, BDT_Q, A, H, L, BDT_CPU, 1};
    bdt_dqn_config dc = {.lr = (float)dp.learning_rate, .gamma = (float)dp.gamma,
                         .max_grad_norm = (float)dp.max_grad_norm, .double_q = dp.double_q,
                         .target_every = dp.target_update_interval, .tau = (float)dp.tau};
    bdt_policy *p[2] = {NULL, NULL};
    bdt_dqn *o[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++)
        if (bdt_policy_create(&pc, &p[k]) != BD_OK || bdt_dqn_create(p[k], &dc, &o[k]) != BD_OK
            || bdt_dqn_set_split(o[k], k) != BD_OK) {
            fprintf(stderr, "dqnbench: %s\n", bd_lasterr());
            return 1;
        }
    const size_t np = bdt_policy_param_count(p[0]);
    float *w[2] = {malloc(sizeof(float) * np), malloc(sizeof(float) * np)};
    if (!w[0] || !w[1]) {
        fprintf(stderr, "dqnbench: out of memory\n");
        return 1;
    }
    static volatile int cancel = 0; /* as a brain: a call can be cancelled between steps */
    int same = 1;
    for (int r = 0; r <= R; r++) { /* r = 0 warms both up */
        for (int k = 0; k < 2; k++) {
            bdt_dqn_stats st;
            double c0 = bench_cpu_now(), t0 = bd_now();
            int rc = bdt_dqn_update(o[k], obs, act, rew, next, term, B, K, &cancel, &st);
            double t1 = bd_now(), c1 = bench_cpu_now();
            if (rc == BD_OK)
                rc = bdt_policy_get_params(p[k], w[k], np);
            if (rc != BD_OK) {
                fprintf(stderr, "dqnbench: %s\n", bd_lasterr());
                return 1;
            }
            if (r > 0) {
                t[(size_t)k * R + r - 1] = (t1 - t0) / K;
                t[(size_t)(2 + k) * R + r - 1] = (c1 - c0) / K;
            }
        }
        same = same && memcmp(w[0], w[1], sizeof(float) * np) == 0;
    }
    double best[4], med[4];
    for (int k = 0; k < 4; k++) {
        best[k] = bench_least(t + (size_t)k * R, R);
        med[k] = bench_median(t + (size_t)k * R, R);
    }
    char load[64];
    bench_loadavg(load, sizeof load);
    printf("{\"what\": \"the dqn brain's gradient steps (torch shim) on one thread and with the targets on a "
           "second, alternating; seconds per gradient step\", \"batch\": %d, \"steps_per_call\": %d, \"obs\": %d, "
           "\"actions\": %d, \"hidden\": %d, \"layers\": %d, \"repeats\": %d, \"loadavg\": \"%s\", "
           "\"one_thread\": {\"best_s\": %.7f, \"median_s\": %.7f, \"cpu_best_s\": %.7f, \"cpu_median_s\": %.7f}, "
           "\"split\": {\"best_s\": %.7f, \"median_s\": %.7f, \"cpu_best_s\": %.7f, \"cpu_median_s\": %.7f}, "
           "\"ratio_wall_best\": %.3f, \"ratio_wall_median\": %.3f, \"same_parameters\": %s}\n",
           B, K, S, A, H, L, R, load, best[0], med[0], best[2], med[2], best[1], med[1], best[3], med[3],
           best[0] / best[1], med[0] / med[1], same ? "true" : "false");
    for (int k = 0; k < 2; k++) {
        bdt_dqn_destroy(o[k]);
        bdt_policy_destroy(p[k]);
        free(w[k]);
    }
    free(obs);
    free(next);
    free(act);
    free(rew);
    free(term);
    free(t);
    return same ? 0 : 1;
}
