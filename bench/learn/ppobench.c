/* ppobench.c: `bodhi-ppobench [--samples N] [--minibatch M] [--epochs E] [--obs S]
 * [--actions A] [--hidden H] [--layers L] [--threads K] [--split 0|1] [--repeats R]`: bodhi's PPO update
 * (the torch shim's bdt_ppo_update, as a brain calls it: with its cancel flag set) against
 * a plain libtorch PPO update (torch/ref/plain.cpp) for the same network (the ppo brain's
 * default MLP of S observations and A discrete actions), batch of N samples, minibatches
 * of M and E epochs, in one sitting: the two alternate R times (shim, plain, shim, plain,
 * ...) after a warm-up pair, so that a change in the machine's load touches both alike.
 * Prints one JSON object: each side's best and median update time, wall and CPU (the
 * process's: one thread without --split, and far steadier than wall time on a loaded
 * machine), and the
 * ratios plain_time / shim_time (1: the shim is as fast as plain libtorch). Threads as a
 * brain sets them (K, default 1: what brain.c picks for minibatches under 4096 samples);
 * --split 1 runs the shim's critic on a second thread beside its actor (bdt_ppo_set_split,
 * as a brain with a second core does): compare the wall times then, not the CPU times.
 * It runs with a brain's thread environment (OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=
 * passive, where unset: it starts itself again with them) and allocator policy.
 * The inputs' values do not matter to the time: a fixed xorshift stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/learn/benchutil.h"
#include "brain/ppo.h"
#include "common/proc.h"
#include "common/util.h"
#include "torch/bd_torch.h"
#include "torch/ref/plain.h"

int main(int argc, char **argv)
{
    (void)argc;
    bd_thread_env_reexec(argv); /* a brain's threads (conductor/children.c) */
    bd_alloc_policy();          /* and allocator (cli/main.c) */
    bd_ppo_params pp;
    if (bd_ppo_params_parse(NULL, 1, 1, &pp) != BD_OK) {
        fprintf(stderr, "ppobench: %s\n", bd_lasterr());
        return 1;
    }
    const int N = (int)bench_opt(argc, argv, "--samples", BD_PPO_AUTO_BATCH),
              M = (int)bench_opt(argc, argv, "--minibatch", BD_PPO_MINIBATCH_SIZE),
              E = (int)bench_opt(argc, argv, "--epochs", pp.opt.epochs), S = (int)bench_opt(argc, argv, "--obs", 4),
              A = (int)bench_opt(argc, argv, "--actions", 2), H = (int)bench_opt(argc, argv, "--hidden", pp.hidden),
              L = (int)bench_opt(argc, argv, "--layers", pp.layers), K = (int)bench_opt(argc, argv, "--threads", 1),
              R = (int)bench_opt(argc, argv, "--repeats", 7), SP = (int)bench_opt(argc, argv, "--split", 0);
    if (N < 2 || M < 2 || M > N || E < 1 || S < 1 || A < 2 || H < 1 || L < 1 || K < 1 || R < 1 || R > 1000 || SP < 0
        || SP > 1) {
        fprintf(stderr, "usage: bodhi-ppobench [--samples N] [--minibatch 2..N] [--epochs E] [--obs S] "
                        "[--actions A >= 2] [--hidden H] [--layers L] [--threads K] [--split 0|1] [--repeats 1..1000]\n");
        return 2;
    }
    bdt_set_threads(K);
    bdt_ref_setup(K);
    float *obs = malloc(sizeof(float) * (size_t)N * S), *act = malloc(sizeof(float) * (size_t)N),
          *logp = malloc(sizeof(float) * (size_t)N), *adv = malloc(sizeof(float) * (size_t)N),
          *ret = malloc(sizeof(float) * (size_t)N), *val = malloc(sizeof(float) * (size_t)N);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)N * E);
    double *t = malloc(sizeof(double) * 4 * (size_t)R); /* wall shim, wall plain, cpu shim, cpu plain */
    if (!obs || !act || !logp || !adv || !ret || !val || !perm || !t) {
        fprintf(stderr, "ppobench: out of memory\n");
        return 1;
    }
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < (size_t)N * S; i++)
        obs[i] = bench_noise(&x);
    for (int i = 0; i < N; i++) {
        act[i] = (float)(i % A);
        logp[i] = -0.69f;
        adv[i] = bench_noise(&x);
        ret[i] = adv[i];
        val[i] = 0;
    }
    bd_ppo_perm(perm, N, E, 7, 0);
    bdt_policy_config pc = {S, BDT_DISCRETE, A, H, L, BDT_CPU, 1};
    bdt_ppo_config oc = pp.opt;
    oc.epochs = E;
    oc.minibatches = 0;
    oc.minibatch_size = M;
    bdt_policy *p = NULL;
    bdt_ppo *o = NULL;
    bdt_ref *ref = NULL;
    if (bdt_policy_create(&pc, &p) != BD_OK || bdt_ppo_create(p, &oc, &o) != BD_OK
        || bdt_ref_create(S, A, H, L, oc.lr, &ref) != BD_OK) {
        fprintf(stderr, "ppobench: %s\n", bd_lasterr());
        return 1;
    }
    static volatile int cancel = 0; /* as a brain: an update can be cancelled between minibatches */
    bdt_ppo_set_cancel(o, &cancel);
    if (bdt_ppo_set_split(o, SP) != BD_OK) {
        fprintf(stderr, "ppobench: %s\n", bd_lasterr());
        return 1;
    }
    const int mb = (int)(N / bdt_ppo_minibatch_count(&oc, N));
    for (int r = 0; r <= R; r++) { /* r = 0 warms both up */
        bdt_ppo_stats st;
        double c0 = bench_cpu_now(), t0 = bd_now();
        int rc = bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st);
        double t1 = bd_now(), c1 = bench_cpu_now();
        if (rc == BD_OK)
            rc = bdt_ref_update(ref, obs, act, logp, adv, ret, N, perm, E, mb, &oc);
        double c2 = bench_cpu_now(), t2 = bd_now();
        if (rc != BD_OK) {
            fprintf(stderr, "ppobench: %s\n", bd_lasterr());
            return 1;
        }
        if (r > 0) {
            t[r - 1] = t1 - t0;
            t[R + r - 1] = t2 - t1;
            t[2 * R + r - 1] = c1 - c0;
            t[3 * R + r - 1] = c2 - c1;
        }
    }
    double best[4], med[4];
    for (int k = 0; k < 4; k++) {
        best[k] = bench_least(t + (size_t)k * R, R);
        med[k] = bench_median(t + (size_t)k * R, R);
    }
    char load[64];
    bench_loadavg(load, sizeof load);
    printf("{\"what\": \"bodhi's PPO update (torch shim) against a plain libtorch PPO update, alternating\", "
           "\"samples\": %d, \"minibatch\": %d, \"epochs\": %d, \"obs\": %d, \"actions\": %d, \"hidden\": %d, "
           "\"layers\": %d, \"threads\": %d, \"split\": %d, \"repeats\": %d, \"loadavg\": \"%s\", "
           "\"shim\": {\"best_s\": %.5f, \"median_s\": %.5f, \"cpu_best_s\": %.5f, \"cpu_median_s\": %.5f, "
           "\"samples_per_cpu_s\": %.0f}, "
           "\"plain\": {\"best_s\": %.5f, \"median_s\": %.5f, \"cpu_best_s\": %.5f, \"cpu_median_s\": %.5f, "
           "\"samples_per_cpu_s\": %.0f}, "
           "\"ratio_wall_best\": %.3f, \"ratio_wall_median\": %.3f, \"ratio_cpu_best\": %.3f, "
           "\"ratio_cpu_median\": %.3f}\n",
           N, mb, E, S, A, H, L, K, SP, R, load, best[0], med[0], best[2], med[2], N / best[2], best[1], med[1],
           best[3], med[3], N / best[3], best[1] / best[0], med[1] / med[0], best[3] / best[2], med[3] / med[2]);
    bdt_ref_destroy(ref);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
    free(obs);
    free(act);
    free(logp);
    free(adv);
    free(ret);
    free(val);
    free(perm);
    free(t);
    return 0;
}
