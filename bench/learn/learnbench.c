/* learnbench.c: `bodhi-learnbench [--samples N] [--epochs E] [--obs S] [--actions A]
 * [--hidden H] [--layers L] [--threads K] [--minibatch M ...]`: what libtorch (with its
 * BLAS) can learn on this machine, with nothing else in the way: the PPO update of the
 * torch shim (forward and backward through the policy and value nets, the losses, Adam)
 * over a batch of N samples already in memory, E epochs, for each minibatch size M, with
 * the ppo brain's default params otherwise (brain/ppo.h). Run it with the environment the
 * conductor gives a brain (OPENBLAS_NUM_THREADS=1, OMP_WAIT_POLICY=passive).
 * A discrete policy of S observations and A actions (CartPole's 4 and 2 by default), the
 * default network. Prints one JSON object: per size, fwd+bwd samples/s (E N over the
 * update's time) and the agent-steps/s a training loop could reach if the update were all
 * it did (N over the update's time): the ceiling bench/train.py's figures are held to. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/learn/benchutil.h"
#include "brain/ppo.h"
#include "common/util.h"
#include "torch/bd_torch.h"

int main(int argc, char **argv)
{
    bd_ppo_params pp;
    if (bd_ppo_params_parse(NULL, 1, 1, &pp) != BD_OK) {
        fprintf(stderr, "learnbench: %s\n", bd_lasterr());
        return 1;
    }
    const int N = (int)bench_opt(argc, argv, "--samples", 262144),
              E = (int)bench_opt(argc, argv, "--epochs", pp.opt.epochs), S = (int)bench_opt(argc, argv, "--obs", 4),
              A = (int)bench_opt(argc, argv, "--actions", 2), H = (int)bench_opt(argc, argv, "--hidden", pp.hidden),
              L = (int)bench_opt(argc, argv, "--layers", pp.layers), K = (int)bench_opt(argc, argv, "--threads", 0);
    int sizes[32], ns = 0;
    for (int i = 1; i < argc && ns < 32; i++)
        if (strcmp(argv[i], "--minibatch") == 0)
            while (i + 1 < argc && argv[i + 1][0] != '-' && ns < 32)
                sizes[ns++] = atoi(argv[++i]);
    if (ns == 0) {
        static const int def[] = {128, 512, 2048, 8192, 32768};
        for (ns = 0; ns < 5; ns++)
            sizes[ns] = def[ns];
    }
    if (N < 1 || E < 1 || S < 1 || A < 2 || H < 1 || L < 1) {
        fprintf(stderr, "usage: bodhi-learnbench [--samples N] [--epochs E] [--obs S] [--actions A >= 2] "
                        "[--hidden H] [--layers L] [--threads K] [--minibatch M ...]\n");
        return 2;
    }
    if (K > 0)
        bdt_set_threads(K);
    float *obs = malloc(sizeof(float) * (size_t)N * S), *act = malloc(sizeof(float) * (size_t)N),
          *logp = malloc(sizeof(float) * (size_t)N), *adv = malloc(sizeof(float) * (size_t)N),
          *ret = malloc(sizeof(float) * (size_t)N), *val = malloc(sizeof(float) * (size_t)N);
    int64_t *perm = malloc(sizeof(int64_t) * (size_t)N * E);
    if (!obs || !act || !logp || !adv || !ret || !val || !perm) {
        fprintf(stderr, "learnbench: out of memory\n");
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
    for (int e = 0; e < E; e++)
        for (int i = 0; i < N; i++)
            perm[(size_t)e * N + i] = (int64_t)((i * 7919LL + e) % N);
    printf("{\"what\": \"the torch shim's PPO update alone (forward, backward, Adam) over a batch in memory\", "
           "\"samples\": %d, \"epochs\": %d, \"obs\": %d, \"actions\": %d, \"hidden\": %d, \"layers\": %d, "
           "\"threads\": %d, \"by_minibatch\": [", N, E, S, A, H, L, K);
    for (int k = 0; k < ns; k++) {
        bdt_policy_config pc = {S, BDT_DISCRETE, A, H, L, BDT_CPU, 1};
        bdt_ppo_config oc = pp.opt; /* the defaults, with this minibatch size */
        oc.epochs = E;
        oc.minibatches = 0;
        oc.minibatch_size = sizes[k];
        bdt_policy *p = NULL;
        bdt_ppo *o = NULL;
        if (bdt_policy_create(&pc, &p) != BD_OK || bdt_ppo_create(p, &oc, &o) != BD_OK) {
            fprintf(stderr, "learnbench: %s\n", bd_lasterr());
            return 1;
        }
        bdt_ppo_stats st;
        double best = 1e30;
        for (int rep = 0; rep < 5; rep++) { /* the best of five: what the machine can do */
            double t0 = bd_now();
            if (bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st) != BD_OK) {
                fprintf(stderr, "learnbench: %s\n", bd_lasterr());
                return 1;
            }
            double t = bd_now() - t0;
            best = t < best ? t : best;
        }
        printf("%s{\"minibatch\": %d, \"update_s\": %.4f, \"fwd_bwd_samples_per_s\": %.0f, "
               "\"agent_steps_per_s_ceiling\": %.0f}", k ? ", " : "", sizes[k], best, (double)E * N / best,
               (double)N / best);
        fflush(stdout);
        bdt_ppo_destroy(o);
        bdt_policy_destroy(p);
    }
    printf("]}\n");
    free(obs);
    free(act);
    free(logp);
    free(adv);
    free(ret);
    free(val);
    free(perm);
    return 0;
}
