/* test_torch.c: Criterion suite for the libtorch shim (torch/bd_torch.h).
 *
 * Covers: seeded init (determinism, orthogonality, zero biases/log std), flat parameter
 * get/set, forward shapes, PPO update (value regression, policy improvement, stats, lr,
 * argument checks), continuous policies, checkpoints (round trip, optimiser resume,
 * architecture mismatch, corrupt and missing files) and the CUDA device checks.
 * Limits: small networks and batches so the suite runs in seconds on one thread; the CUDA
 * functional test is skipped where libtorch sees no GPU. Criterion runs tests in separate
 * processes, so temp files carry the pid.
 */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "common/util.h"
#include "torch/bd_torch.h"
#include "torch/cpunet.h"
#include "tests/tolerance.h"

static void setup(void)
{
    bdt_set_threads(1);
}

TestSuite(torch, .init = setup, .timeout = 120);

/* ---- helpers ----------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* uniform in [-1, 1), deterministic */
static float urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

static bdt_policy_config pcfg(int obs, bdt_act_kind kind, int act, uint64_t seed)
{
    bdt_policy_config c = {.obs_dim = obs, .act_kind = kind, .act_dim = act, .hidden = 64,
                           .layers = 2, .device = BDT_CPU, .seed = seed};
    return c;
}

static bdt_policy *mkpol(bdt_policy_config c)
{
    bdt_policy *p = NULL;
    int rc = bdt_policy_create(&c, &p);
    cr_assert_eq(rc, BD_OK, "bdt_policy_create: %s", bd_lasterr());
    cr_assert_not_null(p);
    return p;
}

static bdt_ppo_config ocfg(void)
{
    bdt_ppo_config c = {.lr = 2.5e-4f, .clip_coef = 0.2f, .vf_coef = 0.5f, .ent_coef = 0.01f,
                        .max_grad_norm = 0.5f, .clip_vloss = 1, .norm_adv = 1, .epochs = 4,
                        .minibatches = 4};
    return c;
}

static bdt_ppo *mkppo(bdt_policy *p, bdt_ppo_config c)
{
    bdt_ppo *o = NULL;
    int rc = bdt_ppo_create(p, &c, &o);
    cr_assert_eq(rc, BD_OK, "bdt_ppo_create: %s", bd_lasterr());
    return o;
}

static float *getp(bdt_policy *p)
{
    size_t n = bdt_policy_param_count(p);
    float *v = malloc(n * sizeof *v);
    cr_assert_not_null(v);
    cr_assert_eq(bdt_policy_get_params(p, v, n), BD_OK, "%s", bd_lasterr());
    return v;
}

static void tmpname(char *buf, size_t n, const char *tag)
{
    snprintf(buf, n, "/tmp/bdt_test_%ld_%s.pt", (long)getpid(), tag);
}

/* identity permutation repeated for every epoch: perm (epochs * n) */
static int64_t *ident_perm(int epochs, int n)
{
    int64_t *perm = malloc((size_t)epochs * n * sizeof *perm);
    cr_assert_not_null(perm);
    for (int e = 0; e < epochs; e++)
        for (int i = 0; i < n; i++)
            perm[e * n + i] = i;
    return perm;
}

/* A seeded shuffle, as a caller would draw it: perm (epochs * n) */
static int64_t *shuffled_perm(int epochs, int n)
{
    int64_t *perm = ident_perm(epochs, n);
    for (int e = 0; e < epochs; e++)
        for (int i = n - 1; i > 0; i--) {
            int j = (int)((urand() + 1.0f) * 0.5f * (float)(i + 1));
            if (j > i)
                j = i;
            int64_t t = perm[e * n + i];
            perm[e * n + i] = perm[e * n + j];
            perm[e * n + j] = t;
        }
    return perm;
}

/* Discrete log-probs of `act` under the policy's current logits. obs (n, obs), act (n). */
static void discrete_logp(bdt_policy *p, const float *obs, const float *act, int n, int na, float *logp,
                          float *val)
{
    float *logits = malloc((size_t)n * na * sizeof *logits);
    cr_assert_not_null(logits);
    cr_assert_eq(bdt_policy_forward(p, obs, n, logits, val), BD_OK, "%s", bd_lasterr());
    for (int i = 0; i < n; i++) {
        const float *l = logits + (size_t)i * na;
        float m = l[0];
        for (int k = 1; k < na; k++)
            m = l[k] > m ? l[k] : m;
        double s = 0;
        for (int k = 0; k < na; k++)
            s += exp((double)(l[k] - m));
        logp[i] = (float)((double)(l[(int)act[i]] - m) - log(s));
    }
    free(logits);
}

/* ---- init ------------------------------------------------------------------------- */

Test(torch, same_seed_same_params)
{
    bdt_policy *a = mkpol(pcfg(4, BDT_DISCRETE, 2, 7));
    bdt_policy *b = mkpol(pcfg(4, BDT_DISCRETE, 2, 7));
    bdt_policy *c = mkpol(pcfg(4, BDT_DISCRETE, 2, 8));
    size_t n = bdt_policy_param_count(a);
    /* critic 4*64+64 + 64*64+64 + 64+1, actor the same but 2 outputs */
    size_t want = (4 * 64 + 64 + 64 * 64 + 64 + 64 + 1) + (4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2);
    cr_assert_eq(n, want, "param_count %zu, want %zu", n, want);
    float *pa = getp(a), *pb = getp(b), *pc = getp(c);
    cr_assert(memcmp(pa, pb, n * sizeof *pa) == 0, "same seed gave different weights");
    cr_assert(memcmp(pa, pc, n * sizeof *pa) != 0, "different seeds gave the same weights");
    free(pa);
    free(pb);
    free(pc);
    bdt_policy_destroy(a);
    bdt_policy_destroy(b);
    bdt_policy_destroy(c);
}

Test(torch, orthogonal_init_and_zero_biases)
{
    /* discrete: critic.0.weight (64, 4) is first; its columns are orthogonal with norm^2 2 */
    bdt_policy *p = mkpol(pcfg(4, BDT_DISCRETE, 3, 1));
    float *v = getp(p);
    const float *w = v; /* (64, 4) */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double d = 0;
            for (int r = 0; r < 64; r++)
                d += (double)w[r * 4 + i] * w[r * 4 + j];
            /* a Householder QR of a (64, 4) matrix is orthogonal to m * n rounding errors,
             * scaled by the gain^2 of 2 */
            cr_assert(bd_close_sum(d, i == j ? 2.0 : 0.0, 64 * 4, 2.0), "W^T W [%d][%d] = %.9g", i, j, d);
        }
    const float *b0 = v + 64 * 4; /* critic.0.bias (64) */
    for (int r = 0; r < 64; r++)
        cr_assert_eq(b0[r], 0.0f);
    /* actor head (3, 64) has gain 0.01: rows orthonormal times 0.01; it ends 3 + 192 from the end */
    size_t n = bdt_policy_param_count(p);
    const float *ah = v + n - 3 - 3 * 64;
    for (int i = 0; i < 3; i++) {
        double d = 0;
        for (int k = 0; k < 64; k++)
            d += (double)ah[i * 64 + k] * ah[i * 64 + k];
        cr_assert(bd_close_sum(d, 1e-4, 64 * 3, 1e-4), "actor head row %d norm^2 %.9g", i, d);
    }
    free(v);
    bdt_policy_destroy(p);

    /* continuous: actor_logstd (1, act) comes first and is 0 */
    p = mkpol(pcfg(3, BDT_CONTINUOUS, 2, 1));
    float ls[2] = {1, 1};
    cr_assert_eq(bdt_policy_logstd(p, ls, 2), BD_OK, "%s", bd_lasterr());
    cr_assert(ls[0] == 0.0f && ls[1] == 0.0f);
    v = getp(p);
    cr_assert(v[0] == 0.0f && v[1] == 0.0f);
    free(v);
    cr_assert_eq(bdt_policy_logstd(p, ls, 3), BD_EINVAL);
    bdt_policy_destroy(p);
}

Test(torch, bad_configs)
{
    bdt_policy *p = (bdt_policy *)1;
    bdt_policy_config c = pcfg(0, BDT_DISCRETE, 2, 1);
    cr_assert_eq(bdt_policy_create(&c, &p), BD_EINVAL);
    cr_assert_null(p);
    c = pcfg(4, (bdt_act_kind)7, 2, 1);
    cr_assert_eq(bdt_policy_create(&c, &p), BD_EINVAL);
    cr_assert_eq(bdt_policy_create(NULL, &p), BD_EINVAL);
    c = pcfg(4, BDT_DISCRETE, 2, 1);
    c.layers = 0; /* a linear policy is allowed */
    cr_assert_eq(bdt_policy_create(&c, &p), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_policy_param_count(p), (size_t)(4 + 1 + 4 * 2 + 2));
    bdt_policy_destroy(p);
    bdt_policy_destroy(NULL);
    bdt_ppo_destroy(NULL);
    cr_assert_eq(bdt_policy_param_count(NULL), (size_t)0);
}

/* ---- params and forward ------------------------------------------------------------ */

Test(torch, get_set_round_trip)
{
    bdt_policy *p = mkpol(pcfg(5, BDT_DISCRETE, 3, 3));
    size_t n = bdt_policy_param_count(p);
    float *v = malloc(n * sizeof *v), *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++)
        v[i] = urand();
    cr_assert_eq(bdt_policy_set_params(p, v, n), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_policy_get_params(p, w, n), BD_OK, "%s", bd_lasterr());
    cr_assert(memcmp(v, w, n * sizeof *v) == 0);
    cr_assert_eq(bdt_policy_set_params(p, v, n - 1), BD_EINVAL);
    cr_assert_eq(bdt_policy_get_params(p, w, n + 1), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "parameters") != NULL, "%s", bd_lasterr());
    free(v);
    free(w);
    bdt_policy_destroy(p);
}

Test(torch, forward_shapes_and_set_params_changes_output)
{
    enum { N = 6, OBS = 4, ACT = 3 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_DISCRETE, ACT, 11));
    float obs[N * OBS], out[N * ACT + 1], val[N + 1], out2[N * ACT], val2[N];
    for (int i = 0; i < N * OBS; i++)
        obs[i] = urand();
    out[N * ACT] = 12345.0f; /* sentinels: nothing is written past the shapes */
    val[N] = 12345.0f;
    cr_assert_eq(bdt_policy_forward(p, obs, N, out, val), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(out[N * ACT], 12345.0f);
    cr_assert_eq(val[N], 12345.0f);
    for (int i = 0; i < N * ACT; i++)
        cr_assert(isfinite(out[i]) && fabsf(out[i]) < 0.2f, "logit %d = %g (head gain 0.01)", i, out[i]);
    for (int i = 0; i < N; i++)
        cr_assert(isfinite(val[i]));
    /* each row alone gives the same as in the batch */
    float o1[ACT], v1;
    cr_assert_eq(bdt_policy_forward(p, obs + 2 * OBS, 1, o1, &v1), BD_OK);
    /* the same maths in another kernel (GEMV, not GEMM): within the rounding of the sums
     * (4 -> 64 -> 64 -> out), scaled by the largest output of the batch */
    double omax = 0, vmax = 0;
    for (int i = 0; i < N * ACT; i++)
        omax = fmax(omax, fabs(out[i]));
    for (int i = 0; i < N; i++)
        vmax = fmax(vmax, fabs(val[i]));
    for (int k = 0; k < ACT; k++)
        cr_assert(bd_close_sum(o1[k], out[2 * ACT + k], OBS + 64 + 64, omax), "logit %d: %.9g vs %.9g", k, o1[k],
                  out[2 * ACT + k]);
    cr_assert(bd_close_sum(v1, val[2], OBS + 64 + 64, vmax), "value %.9g vs %.9g", v1, val[2]);
    /* NULL outputs and n = 0 are fine */
    cr_assert_eq(bdt_policy_forward(p, obs, N, NULL, val2), BD_OK);
    cr_assert(memcmp(val, val2, sizeof val2) == 0);
    cr_assert_eq(bdt_policy_forward(p, obs, 0, out2, val2), BD_OK);
    cr_assert_eq(bdt_policy_forward(p, obs, -1, out2, val2), BD_EINVAL);

    float *v = getp(p);
    size_t n = bdt_policy_param_count(p);
    for (size_t i = 0; i < n; i++)
        v[i] *= 3.0f;
    cr_assert_eq(bdt_policy_set_params(p, v, n), BD_OK);
    cr_assert_eq(bdt_policy_forward(p, obs, N, out2, val2), BD_OK);
    cr_assert(memcmp(out, out2, sizeof out2) != 0, "set_params did not change the logits");
    cr_assert(memcmp(val, val2, sizeof val2) != 0, "set_params did not change the values");
    free(v);
    bdt_policy_destroy(p);
}

/* ---- PPO --------------------------------------------------------------------------- */

Test(torch, value_regression_learns)
{
    enum { N = 64, OBS = 2, EP = 1 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_DISCRETE, 2, 5));
    bdt_ppo_config oc = ocfg();
    oc.lr = 1e-2f;
    oc.ent_coef = 0.0f;
    oc.clip_vloss = 0;
    oc.epochs = EP;
    oc.minibatches = 2;
    bdt_ppo *o = mkppo(p, oc);
    float obs[N * OBS], act[N], logp[N], adv[N], ret[N], val[N];
    for (int i = 0; i < N; i++) {
        obs[i * OBS] = urand();
        obs[i * OBS + 1] = urand();
        ret[i] = 2.0f * obs[i * OBS] - obs[i * OBS + 1];
        act[i] = (float)(i % 2);
        adv[i] = 0.0f;
    }
    int64_t *perm = shuffled_perm(EP, N);
    double mse0 = 0, mse1 = 0;
    bdt_ppo_stats st;
    for (int it = 0; it < 200; it++) {
        discrete_logp(p, obs, act, N, 2, logp, val);
        if (it == 0)
            for (int i = 0; i < N; i++)
                mse0 += (double)(val[i] - ret[i]) * (val[i] - ret[i]) / N;
        cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK, "%s",
                     bd_lasterr());
        cr_assert_eq(st.policy_loss, 0.0f);
    }
    cr_assert_eq(bdt_policy_forward(p, obs, N, NULL, val), BD_OK);
    for (int i = 0; i < N; i++)
        mse1 += (double)(val[i] - ret[i]) * (val[i] - ret[i]) / N;
    cr_log_info("value MSE %g -> %g\n", mse0, mse1);
    cr_assert(mse1 * 10.0 <= mse0, "value MSE %g -> %g: not a 10x fall", mse0, mse1);
    free(perm);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

Test(torch, policy_learns_preferred_action)
{
    enum { N = 64, OBS = 3, EP = 4 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_DISCRETE, 2, 9));
    bdt_ppo_config oc = ocfg();
    oc.lr = 3e-3f;
    oc.epochs = EP;
    bdt_ppo *o = mkppo(p, oc);
    float obs[N * OBS], act[N], logp[N], adv[N], ret[N], val[N];
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < OBS; k++)
            obs[i * OBS + k] = urand();
        act[i] = (float)(i % 2);
        adv[i] = i % 2 ? -1.0f : 1.0f;
        ret[i] = 0.0f;
    }
    int64_t *perm = shuffled_perm(EP, N);
    bdt_ppo_stats st;
    for (int it = 0; it < 30; it++) {
        discrete_logp(p, obs, act, N, 2, logp, val);
        cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK, "%s",
                     bd_lasterr());
        cr_assert(isfinite(st.approx_kl) && st.clip_frac >= 0.0f && st.clip_frac <= 1.0f);
        cr_assert(st.entropy > 0.0f && st.entropy <= logf(2.0f) + 1e-5f, "entropy %g", st.entropy);
    }
    float logits[N * 2];
    cr_assert_eq(bdt_policy_forward(p, obs, N, logits, NULL), BD_OK);
    double pmean = 0;
    for (int i = 0; i < N; i++)
        pmean += 1.0 / (1.0 + exp((double)(logits[2 * i + 1] - logits[2 * i]))) / N;
    cr_log_info("mean p(action 0) = %g\n", pmean);
    cr_assert(pmean > 0.9, "mean p(action 0) = %g", pmean);
    free(perm);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

/* This process's threads (/proc/self/task). */
static int task_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* task_count once it reads want, or after 1 s what it reads then: a joined thread can
 * stay listed for a moment after pthread_join returns. */
static int task_count_settled(int want)
{
    int n = task_count();
    for (int i = 0; i < 100 && n != want; i++) {
        struct timespec ms10 = {0, 10000000};
        nanosleep(&ms10, NULL);
        n = task_count();
    }
    return n;
}

/* A gradient hook that changes the gradient (halves it), as an all-reduce would. */
static int halve_grad(void *ctx, float *grad, size_t n)
{
    ++*(int *)ctx;
    for (size_t i = 0; i < n; i++)
        grad[i] *= 0.5f;
    return BD_OK;
}

/* The critic on a thread of its own (bdt_ppo_set_split) changes nothing: after updates of
 * the same batches, a split learner's parameters and stats equal a one-thread learner's
 * bit for bit, for both heads, both value losses, with and without advantage
 * normalisation and a gradient hook. Its minibatches are large enough (512 rows) for the
 * two threads to overlap for real, and the split learner must have made its thread. */
Test(torch, a_split_update_is_bitwise_the_one_thread_update)
{
    enum { N = 2048, OBS = 5, EP = 2 };
    for (int kind = 0; kind < 2; kind++)
        for (int variant = 0; variant < 2; variant++) {
            const bdt_act_kind k = kind ? BDT_CONTINUOUS : BDT_DISCRETE;
            const int A = kind ? 3 : 4;
            bdt_policy *p[2] = {mkpol(pcfg(OBS, k, A, 31)), mkpol(pcfg(OBS, k, A, 31))};
            bdt_ppo_config oc = ocfg();
            oc.clip_vloss = variant;
            oc.norm_adv = !variant;
            oc.epochs = EP;
            oc.minibatches = 4;
            bdt_ppo *o[2] = {mkppo(p[0], oc), mkppo(p[1], oc)};
            int hooked[2] = {0, 0};
            if (variant)
                for (int j = 0; j < 2; j++)
                    bdt_ppo_set_grad_hook(o[j], halve_grad, &hooked[j]);
            const int tasks = task_count();
            cr_assert_eq(bdt_ppo_set_split(o[1], 1), BD_OK, "%s", bd_lasterr());
            float *obs = malloc(sizeof(float) * N * OBS), *act = malloc(sizeof(float) * N * A);
            float *logp = malloc(sizeof(float) * N), *adv = malloc(sizeof(float) * N);
            float *ret = malloc(sizeof(float) * N), *val = malloc(sizeof(float) * N);
            cr_assert(obs && act && logp && adv && ret && val);
            for (int i = 0; i < N * OBS; i++)
                obs[i] = urand();
            for (int i = 0; i < N; i++) {
                if (kind)
                    for (int j = 0; j < A; j++)
                        act[i * A + j] = urand();
                else
                    act[i] = (float)(i % A);
                logp[i] = -1.0f + 0.1f * urand();
                adv[i] = urand();
                ret[i] = 2.0f * urand();
                val[i] = urand();
            }
            int64_t *perm = shuffled_perm(EP, N);
            bdt_ppo_stats st[2];
            for (int it = 0; it < 3; it++)
                for (int j = 0; j < 2; j++) {
                    cr_assert_eq(bdt_ppo_update(o[j], obs, act, logp, adv, ret, val, N, perm, &st[j]), BD_OK,
                                 "%s", bd_lasterr());
                    if (it == 0 && j == 1)
                        cr_assert_eq(task_count(), tasks + 1, "the split learner made no thread of its own");
                }
            cr_assert_eq(hooked[0], variant ? 3 * EP * 4 : 0);
            cr_assert_eq(hooked[1], hooked[0]);
            cr_assert(memcmp(&st[0], &st[1], sizeof st[0]) == 0, "kind %d variant %d: stats differ", kind,
                      variant);
            size_t n = bdt_policy_param_count(p[0]);
            float *w0 = malloc(sizeof(float) * n), *w1 = malloc(sizeof(float) * n), *w00 = NULL;
            cr_assert(w0 && w1);
            cr_assert_eq(bdt_policy_get_params(p[0], w0, n), BD_OK);
            cr_assert_eq(bdt_policy_get_params(p[1], w1, n), BD_OK);
            for (size_t i = 0; i < n; i++)
                cr_assert(memcmp(&w0[i], &w1[i], sizeof(float)) == 0,
                          "kind %d variant %d: parameter %zu is %a split, %a on one thread", kind, variant, i,
                          (double)w1[i], (double)w0[i]);
            /* and the updates did move them (a test of equal nothing is no test) */
            bdt_policy *fresh = mkpol(pcfg(OBS, k, A, 31));
            cr_assert((w00 = malloc(sizeof(float) * n)) != NULL);
            cr_assert_eq(bdt_policy_get_params(fresh, w00, n), BD_OK);
            cr_assert(memcmp(w00, w0, sizeof(float) * n) != 0);
            free(w00);
            bdt_policy_destroy(fresh);
            free(w0);
            free(w1);
            free(perm);
            free(obs);
            free(act);
            free(logp);
            free(adv);
            free(ret);
            free(val);
            for (int j = 0; j < 2; j++) {
                bdt_ppo_destroy(o[j]);
                bdt_policy_destroy(p[j]);
            }
            cr_assert_eq(task_count_settled(tasks), tasks, "the split learner's thread outlived it");
        }
}

/* m transitions of obs_dim observations and A actions for DQN's steps: observations and
 * rewards from urand, every 7th transition terminated. */
static void dqn_batch(int m, int obs_dim, int A, float *obs, float *next, float *act, float *rew, float *term)
{
    for (int i = 0; i < m * obs_dim; i++) {
        obs[i] = urand();
        next[i] = urand();
    }
    for (int i = 0; i < m; i++) {
        act[i] = (float)(i % A);
        rew[i] = urand();
        term[i] = (float)(i % 7 == 0);
    }
}

/* DQN's Bellman targets on a thread of their own (bdt_dqn_set_split, held between steps,
 * switched off and on between calls)
 * change nothing: after the same gradient steps a split learner's network, target and
 * stats equal a one-thread learner's bit for bit, with double DQN or the target's max,
 * Polyak-averaged targets or copies, and a gradient hook; the split learner made its
 * thread, the steps moved the network, and the thread goes with the handle. */
Test(torch, a_split_dqn_step_is_bitwise_the_one_thread_step)
{
    enum { B = 96, K = 6, OBS = 5, A = 3 };
    for (int variant = 0; variant < 2; variant++) {
        bdt_policy *p[2] = {mkpol(pcfg(OBS, BDT_Q, A, 41)), mkpol(pcfg(OBS, BDT_Q, A, 41))};
        bdt_dqn_config c = {.lr = 1e-3f, .gamma = 0.99f, .max_grad_norm = variant ? 0.5f : 0, .double_q = !variant,
                            .target_every = variant ? 4 : 1, .tau = variant ? 1.0f : 0.05f};
        bdt_dqn *o[2] = {NULL, NULL};
        int hooked[2] = {0, 0};
        for (int j = 0; j < 2; j++) {
            cr_assert_eq(bdt_dqn_create(p[j], &c, &o[j]), BD_OK, "%s", bd_lasterr());
            if (variant)
                bdt_dqn_set_grad_hook(o[j], halve_grad, &hooked[j]);
        }
        const int tasks = task_count();
        cr_assert_eq(bdt_dqn_set_split(o[1], 1), BD_OK, "%s", bd_lasterr());
        float *obs = malloc(sizeof(float) * B * K * OBS), *next = malloc(sizeof(float) * B * K * OBS);
        float act[B * K], rew[B * K], term[B * K];
        cr_assert(obs && next);
        dqn_batch(B * K, OBS, A, obs, next, act, rew, term);
        bdt_dqn_stats st[2];
        /* the split learner's mode changes between calls, as a brain's measured choice
         * makes it (on, off, on, on): its thread, once made, stays while it is off */
        for (int it = 0; it < 4; it++) {
            cr_assert_eq(bdt_dqn_set_split(o[1], it != 1), BD_OK, "%s", bd_lasterr());
            for (int j = 0; j < 2; j++) {
                cr_assert_eq(bdt_dqn_update(o[j], obs, act, rew, next, term, B, K, NULL, &st[j]), BD_OK, "%s",
                             bd_lasterr());
                if (j == 1)
                    cr_assert_eq(task_count(), tasks + 1,
                                 "call %d: the split learner has no thread of its own, or more than one", it);
            }
            cr_assert(st[0].split == 0 && st[1].split == (it != 1), "call %d: split %d and %d", it, st[0].split,
                      st[1].split);
        }

        cr_assert_eq(hooked[0], variant ? 4 * K : 0);
        cr_assert_eq(hooked[1], hooked[0]);
        cr_assert(memcmp(&st[0].loss, &st[1].loss, sizeof(float)) == 0
                      && memcmp(&st[0].q_mean, &st[1].q_mean, sizeof(float)) == 0 && st[0].steps == st[1].steps,
                  "variant %d: stats differ", variant);
        const size_t n = bdt_policy_param_count(p[0]);
        float *w[2] = {malloc(sizeof(float) * n), malloc(sizeof(float) * n)};
        float *t[2] = {malloc(sizeof(float) * n), malloc(sizeof(float) * n)};
        float *w00 = malloc(sizeof(float) * n);
        cr_assert(w[0] && w[1] && t[0] && t[1] && w00);
        for (int j = 0; j < 2; j++) {
            cr_assert_eq(bdt_policy_get_params(p[j], w[j], n), BD_OK);
            cr_assert_eq(bdt_dqn_target_params(o[j], t[j], n), BD_OK);
        }
        for (size_t i = 0; i < n; i++) {
            cr_assert(memcmp(&w[0][i], &w[1][i], sizeof(float)) == 0,
                      "variant %d: parameter %zu is %a split, %a on one thread", variant, i, (double)w[1][i],
                      (double)w[0][i]);
            cr_assert(memcmp(&t[0][i], &t[1][i], sizeof(float)) == 0,
                      "variant %d: target parameter %zu is %a split, %a on one thread", variant, i,
                      (double)t[1][i], (double)t[0][i]);
        }
        bdt_policy *fresh = mkpol(pcfg(OBS, BDT_Q, A, 41));
        cr_assert_eq(bdt_policy_get_params(fresh, w00, n), BD_OK);
        cr_assert(memcmp(w00, w[0], sizeof(float) * n) != 0, "the steps did not move the network");
        cr_assert(memcmp(w00, t[0], sizeof(float) * n) != 0, "the steps did not move the target");
        bdt_policy_destroy(fresh);
        for (int j = 0; j < 2; j++) {
            free(w[j]);
            free(t[j]);
            bdt_dqn_destroy(o[j]);
            bdt_policy_destroy(p[j]);
        }
        free(w00);
        free(obs);
        free(next);
        cr_assert_eq(task_count_settled(tasks), tasks, "the split learner's thread outlived it");
    }
}

/* A gradient hook that keeps a copy of every gradient it sees, one after another. */
typedef struct {
    float *g;
    size_t n;
    int seen, cap;
} grad_log;
static int keep_grad(void *ctx, float *grad, size_t n)
{
    grad_log *l = ctx;
    if (n != l->n || l->seen >= l->cap)
        return bd_seterr(BD_EINVAL, "keep_grad: %zu floats (%zu expected), call %d of %d", n, l->n, l->seen + 1,
                         l->cap);
    memcpy(l->g + (size_t)l->seen++ * n, grad, sizeof(float) * n);
    return BD_OK;
}

/* A DQN gradient step is the global gradient-norm clip of torch.nn.utils.clip_grad_norm_
 * (coefficient max_norm / (norm + 1e-6), applied when below 1) and then torch.optim.Adam
 * (betas 0.9, 0.999, eps 1e-8, bias-corrected), written out here in double from the
 * gradients the hook saw: the flat optimiser of the shim must give the same parameters.
 * With no clip, and with a clip so small that every step clips. Each step's float
 * rounding is a few ulps of the parameter plus a few ulps of lr (Adam's step is at most
 * about lr / (1 - beta1) in size), so K steps may differ by K times that. */
Test(torch, a_dqn_step_is_the_clip_and_adam_by_hand)
{
    enum { B = 64, K = 5, OBS = 5, A = 3 };
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int variant = 0; variant < 2; variant++) {
        /* 0: no clip; 1e-6: clipped gradients near eps, where Adam's step feels their scale */
        const double max_norm = variant ? 1e-6 : 0;
        bdt_policy *p = mkpol(pcfg(OBS, BDT_Q, A, 43));
        bdt_dqn_config c = {.lr = (float)lr, .gamma = 0.99f, .max_grad_norm = (float)max_norm, .double_q = 1,
                            .target_every = 2, .tau = 0.5f};
        bdt_dqn *o = NULL;
        cr_assert_eq(bdt_dqn_create(p, &c, &o), BD_OK, "%s", bd_lasterr());
        const size_t n = bdt_policy_param_count(p);
        grad_log gl = {.g = malloc(sizeof(float) * n * K), .n = n, .cap = K};
        float *w0 = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
        double *ref = malloc(sizeof(double) * n), *m = calloc(n, sizeof(double)), *v = calloc(n, sizeof(double));
        float *obs = malloc(sizeof(float) * B * K * OBS), *next = malloc(sizeof(float) * B * K * OBS);
        float act[B * K], rew[B * K], term[B * K];
        cr_assert(gl.g && w0 && w && ref && m && v && obs && next);
        bdt_dqn_set_grad_hook(o, keep_grad, &gl);
        dqn_batch(B * K, OBS, A, obs, next, act, rew, term);
        cr_assert_eq(bdt_policy_get_params(p, w0, n), BD_OK);
        bdt_dqn_stats st;
        cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, K, NULL, &st), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(gl.seen, K);
        cr_assert_eq(bdt_policy_get_params(p, w, n), BD_OK);

        double maxp = 0;
        for (size_t i = 0; i < n; i++) {
            ref[i] = w0[i];
            maxp = fmax(maxp, fabs(w0[i]));
        }
        int clipped = 0;
        for (int t = 1; t <= K; t++) {
            const float *g = gl.g + (size_t)(t - 1) * n;
            double norm = 0;
            for (size_t i = 0; i < n; i++)
                norm += (double)g[i] * g[i];
            norm = sqrt(norm);
            double coef = max_norm > 0 ? max_norm / (norm + 1e-6) : 1;
            if (coef < 1)
                clipped++;
            else
                coef = 1;
            const double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
            for (size_t i = 0; i < n; i++) {
                const double gi = coef * g[i];
                m[i] = b1 * m[i] + (1 - b1) * gi;
                v[i] = b2 * v[i] + (1 - b2) * gi * gi;
                ref[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
            }
        }
        cr_assert_eq(clipped, variant ? K : 0, "variant %d: %d of %d steps clipped", variant, clipped, K);
        const double ulp = ldexp(1.0, -23); /* float's spacing at 1 */
        const double tol = K * (8 * ulp * (maxp + K * lr) + 8 * ulp * lr / (1 - b1));
        size_t moved = 0;
        for (size_t i = 0; i < n; i++) {
            cr_assert(fabs((double)w[i] - ref[i]) <= tol,
                      "variant %d: parameter %zu is %.9g, by hand %.9g (tolerance %.3g)", variant, i, (double)w[i],
                      ref[i], tol);
            moved += fabs(ref[i] - w0[i]) > 100 * tol;
        }
        cr_assert(moved > n / 2, "variant %d: only %zu of %zu parameters moved past the tolerance", variant, moved,
                  n);
        bdt_dqn_destroy(o);
        bdt_policy_destroy(p);
        free(gl.g);
        free(w0);
        free(w);
        free(ref);
        free(m);
        free(v);
        free(obs);
        free(next);
    }
}

/* The Q-network of flat parameters w (q.0.weight, q.0.bias, ..., the last layer's, as
 * named_parameters gives them) at x, in double: each layer's ReLU output into h (L x H per
 * sample), the Q-values into q. */
static int q_near_kink; /* hidden pre-activations q_by_hand saw within 1e-5 of ReLU's kink */
static void q_by_hand(const float *w, int S, int H, int L, int A, const double *x, double *h, double *q)
{
    const float *p = w;
    const double *in = x;
    int width = S;
    for (int l = 0; l <= L; l++) {
        const int out = l < L ? H : A;
        double *dst = l < L ? h + (size_t)l * H : q;
        const float *bias = p + (size_t)out * width;
        for (int j = 0; j < out; j++) {
            double z = bias[j];
            for (int k = 0; k < width; k++)
                z += (double)p[(size_t)j * width + k] * in[k];
            q_near_kink += l < L && fabs(z) < 1e-5;
            dst[j] = l < L && z < 0 ? 0 : z;
        }
        p = bias + out;
        in = dst;
        width = out;
    }
}

/* A DQN gradient step's gradient (the hook sees it before the clip) is the Huber loss's
 * (delta 1, the batch's mean) through the Q-network, written out here in double: double
 * DQN's target from the network's greedy action at s' valued by the target, no bootstrap
 * where terminated; the gradient through Q(s, a) only. Two steps: at the first the target
 * is the network itself, at the second (tau 0.5) it is half way between the two, so the
 * greedy action must come from the network and its value from the target. The shim runs
 * the passes by hand, not through autograd (the network at s and s' in one pass): this
 * says they are the loss's gradient. Samples whose error sits within 1e-3 of the Huber
 * loss's kink, whose greedy action at s' is a near tie, or with a hidden unit within 1e-5
 * of ReLU's kink, would let float and double part ways; the batches have none (asserted).
 * Tolerance: float sums of at most S + H terms a layer, each product within 2^-24 of its
 * value, through L + 1 layers forward and back: 64 (S + H) units of 2^-24 relative to the
 * largest gradient. */
Test(torch, a_dqn_gradient_is_the_huber_losss_by_hand)
{
    enum { B = 32, S = 3, H = 8, L = 2, A = 3 };
    bdt_policy_config pc = pcfg(S, BDT_Q, A, 57);
    pc.hidden = H;
    pc.layers = L;
    bdt_policy *p = mkpol(pc);
    bdt_dqn_config c = {.lr = 1e-3f, .gamma = 0.9f, .max_grad_norm = 0, .double_q = 1, .target_every = 1,
                        .tau = 0.5f};
    bdt_dqn *o = NULL;
    cr_assert_eq(bdt_dqn_create(p, &c, &o), BD_OK, "%s", bd_lasterr());
    const size_t n = bdt_policy_param_count(p);
    float *w = malloc(sizeof(float) * n), *wt = malloc(sizeof(float) * n);
    double *ref = malloc(n * sizeof(double));
    grad_log gl = {.g = malloc(sizeof(float) * n * 2), .n = n, .cap = 2};
    cr_assert(w && wt && ref && gl.g);
    bdt_dqn_set_grad_hook(o, keep_grad, &gl);
    int differ = 0; /* the second step's target is not the network */
    for (int step = 0; step < 2; step++) {
        cr_assert_eq(bdt_policy_get_params(p, w, n), BD_OK);
        cr_assert_eq(bdt_dqn_target_params(o, wt, n), BD_OK);
        for (size_t i = 0; i < n && step; i++)
            differ += w[i] != wt[i];
        float obs[B * S], next[B * S], act[B], rew[B], term[B];
        dqn_batch(B, S, A, obs, next, act, rew, term);
        for (int i = 0; i < B; i++)
            rew[i] *= 3; /* errors on both sides of the kink */
        cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, 1, NULL, NULL), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(gl.seen, step + 1);
        memset(ref, 0, n * sizeof(double));
        int beyond = 0;
        for (int i = 0; i < B; i++) {
            double x[S], nx[S], h[L * H], nh[L * H], q[A], nq[A], tq[A];
            for (int k = 0; k < S; k++)
                x[k] = obs[i * S + k], nx[k] = next[i * S + k];
            q_by_hand(w, S, H, L, A, nx, nh, nq);
            int best = 0;
            for (int a = 1; a < A; a++)
                best = nq[a] > nq[best] ? a : best;
            for (int a = 0; a < A; a++)
                cr_assert(a == best || nq[best] - nq[a] > 1e-4, "step %d, sample %d: a near tie at s'", step, i);
            q_by_hand(wt, S, H, L, A, nx, nh, tq); /* the target values the network's choice */
            const double y = rew[i] + c.gamma * (1 - term[i]) * tq[best];
            q_by_hand(w, S, H, L, A, x, h, q);
            const int ai = (int)act[i];
            const double d = q[ai] - y;
            cr_assert(fabs(fabs(d) - 1) > 1e-3, "step %d, sample %d: error %g at the kink", step, i, d);
            beyond += fabs(d) > 1;
            /* back: dLoss/dq[ai] = clamp(d, -1, 1) / B, then through each layer */
            double dz[H > A ? H : A], dprev[H];
            memset(dz, 0, sizeof dz);
            dz[ai] = (d > 1 ? 1 : d < -1 ? -1 : d) / B;
            size_t off[L + 1];
            int width[L + 2];
            width[0] = S;
            size_t at = 0;
            for (int l = 0; l <= L; l++) {
                width[l + 1] = l < L ? H : A;
                off[l] = at;
                at += (size_t)width[l + 1] * width[l] + width[l + 1];
            }
            for (int l = L; l >= 0; l--) {
                const double *in = l ? h + (size_t)(l - 1) * H : x;
                const int out = width[l + 1], inw = width[l];
                for (int j = 0; j < out; j++) {
                    for (int k = 0; k < inw; k++)
                        ref[off[l] + (size_t)j * inw + k] += dz[j] * in[k];
                    ref[off[l] + (size_t)out * inw + j] += dz[j];
                }
                if (l) {
                    for (int k = 0; k < inw; k++) {
                        double sum = 0;
                        for (int j = 0; j < out; j++)
                            sum += dz[j] * w[off[l] + (size_t)j * inw + k];
                        dprev[k] = in[k] > 0 ? sum : 0;
                    }
                    memcpy(dz, dprev, sizeof(double) * inw);
                }
            }
        }
        cr_assert(beyond > 0 && beyond < B, "step %d: %d of %d errors beyond the kink: both branches wanted", step,
                  beyond, B);
        cr_assert_eq(q_near_kink, 0,
                     "%d hidden units within 1e-5 of ReLU's kink, where float and double may part", q_near_kink);
        double big = 0;
        for (size_t i = 0; i < n; i++)
            big = fmax(big, fabs(ref[i]));
        const double tol = 64.0 * (S + H) * ldexp(1.0, -24) * big;
        const float *g = gl.g + (size_t)step * n;
        for (size_t i = 0; i < n; i++)
            cr_assert(fabs((double)g[i] - ref[i]) <= tol,
                      "step %d: gradient %zu is %.9g, by hand %.9g (tolerance %.3g)", step, i, (double)g[i], ref[i],
                      tol);
    }
    cr_assert(differ > (int)n / 2, "the second step's target differs from the network in %d of %zu", differ, n);
    bdt_dqn_destroy(o);
    bdt_policy_destroy(p);
    free(w);
    free(wt);
    free(ref);
    free(gl.g);
}

/* On the CPU a gradient step runs through torch/cpunet.c's layers; with torch_ops 1 it runs
 * libtorch's operations, as it does on a device. The two give the same gradient (not the
 * same bits: the backward's BLAS arrangement and its bias sums differ) with double DQN and
 * with the target's max, at 1, 2 and 3 hidden layers and two batch sizes: a learner of each
 * from one init, one step on one batch, the gradients the hook saw compared. Tolerance:
 * float sums of at most B + H terms a layer, forward and back through L + 1 layers, 64 (B +
 * H) units of 2^-24 relative to the largest gradient; the forward passes are the same bits
 * (torch::c_network_matches_libtorch*), so the greedy actions at s' are the same. */
Test(torch, the_cpu_layers_step_is_libtorchs_step)
{
    enum { S = 5, H = 16, A = 3, BMAX = 48 };
    int compared = 0;
    for (int dq = 0; dq < 2; dq++)
        for (int L = 1; L <= 3; L++)
            for (int B = 7; B <= BMAX; B += BMAX - 7) {
                bdt_policy_config pc = pcfg(S, BDT_Q, A, (uint64_t)(71 + L));
                pc.hidden = H;
                pc.layers = L;
                bdt_policy *p[2];
                bdt_dqn *o[2];
                size_t n = 0;
                grad_log gl[2];
                for (int v = 0; v < 2; v++) {
                    p[v] = mkpol(pc);
                    n = bdt_policy_param_count(p[v]);
                    bdt_dqn_config c = {.lr = 1e-3f, .gamma = 0.9f, .max_grad_norm = 0, .double_q = dq,
                                        .target_every = 1, .tau = 0.5f, .torch_ops = v};
                    cr_assert_eq(bdt_dqn_create(p[v], &c, &o[v]), BD_OK, "%s", bd_lasterr());
                    gl[v] = (grad_log){.g = malloc(sizeof(float) * n), .n = n, .cap = 1};
                    cr_assert_not_null(gl[v].g);
                    bdt_dqn_set_grad_hook(o[v], keep_grad, &gl[v]);
                }
                float obs[BMAX * S], next[BMAX * S], act[BMAX], rew[BMAX], term[BMAX];
                dqn_batch(B, S, A, obs, next, act, rew, term);
                for (int i = 0; i < B; i++)
                    rew[i] *= 3; /* errors on both sides of the Huber loss's kink */
                for (int v = 0; v < 2; v++) {
                    bdt_dqn_stats st = {.c_layers = -1};
                    cr_assert_eq(bdt_dqn_update(o[v], obs, act, rew, next, term, B, 1, NULL, &st), BD_OK, "%s",
                                 bd_lasterr());
                    cr_assert_eq(st.c_layers, !v, "torch_ops %d: the step ran on the %s path", v,
                                 st.c_layers ? "C layers'" : "libtorch operations'");
                }
                double big = 0;
                for (size_t i = 0; i < n; i++)
                    big = fmax(big, fabs((double)gl[1].g[i]));
                cr_assert(big > 0, "double_q %d, %d layers, batch %d: no gradient", dq, L, B);
                const double tol = 64.0 * (B + H) * ldexp(1.0, -24) * big;
                for (size_t i = 0; i < n; i++)
                    cr_assert(fabs((double)gl[0].g[i] - gl[1].g[i]) <= tol,
                              "double_q %d, %d layers, batch %d: gradient %zu is %.9g through the C layers, %.9g "
                              "through libtorch (tolerance %.3g)",
                              dq, L, B, i, (double)gl[0].g[i], (double)gl[1].g[i], tol);
                compared++;
                for (int v = 0; v < 2; v++) {
                    bdt_dqn_destroy(o[v]);
                    bdt_policy_destroy(p[v]);
                    free(gl[v].g);
                }
            }
    cr_assert_eq(compared, 12);
}

/* An action that is not a whole number from 0 to A - 1 (past the Q-values, negative, a
 * fraction, NaN) is refused, naming the transition, before any step: the network and the
 * step count stay as they were. */
Test(torch, a_dqn_update_refuses_an_action_outside_the_network)
{
    enum { B = 8, K = 2, S = 4, A = 2 };
    const float bad[] = {2.0f, -1.0f, 0.5f, NAN};
    for (int torch_ops = 0; torch_ops < 2; torch_ops++)
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            bdt_policy *p = mkpol(pcfg(S, BDT_Q, A, 5));
            bdt_dqn_config c = {.lr = 1e-2f, .gamma = 0.99f, .max_grad_norm = 10, .double_q = 1, .target_every = 1,
                                .tau = 0.5f, .torch_ops = torch_ops};
            bdt_dqn *o = NULL;
            cr_assert_eq(bdt_dqn_create(p, &c, &o), BD_OK, "%s", bd_lasterr());
            const size_t n = bdt_policy_param_count(p);
            float *w0 = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
            cr_assert(w0 && w);
            cr_assert_eq(bdt_policy_get_params(p, w0, n), BD_OK);
            float obs[B * K * S], next[B * K * S], act[B * K], rew[B * K], term[B * K];
            dqn_batch(B * K, S, A, obs, next, act, rew, term);
            act[B + 3] = bad[k]; /* in the second step's batch */
            bdt_dqn_stats st = {0};
            cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, K, NULL, &st), BD_EINVAL,
                         "action %g was taken", (double)bad[k]);
            cr_assert(strstr(bd_lasterr(), "transition 11's action"), "%s", bd_lasterr());
            cr_assert_eq(bdt_policy_get_params(p, w, n), BD_OK);
            cr_assert_eq(memcmp(w0, w, sizeof(float) * n), 0, "action %g: a step was taken", (double)bad[k]);
            /* the same batch with the action mended learns */
            act[B + 3] = 1.0f;
            cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, K, NULL, &st), BD_OK, "%s", bd_lasterr());
            cr_assert_eq(st.steps, (uint64_t)K);
            free(w0);
            free(w);
            bdt_dqn_destroy(o);
            bdt_policy_destroy(p);
        }
}

/* The process's CPU seconds. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A gradient hook that asks for a cancel once it has seen *ctx steps (a Ctrl-C mid-update). */
static volatile int split_cancel;
static int cancel_after(void *ctx, float *grad, size_t n)
{
    (void)grad;
    (void)n;
    if (--*(int *)ctx == 0)
        split_cancel = 1;
    return BD_OK;
}

/* A split DQN learner's helper does not poll without end: after a call returns, whole or
 * cancelled between steps, the process uses next to no CPU while it sleeps; a cancelled
 * call says BD_EINTR, the next call learns again, and the handle goes with its thread. */
Test(torch, a_split_dqn_learner_idles_between_calls_and_cancels_cleanly)
{
    enum { B = 64, K = 40, OBS = 4, A = 2 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_Q, A, 43));
    bdt_dqn_config c = {.lr = 1e-3f, .gamma = 0.99f, .max_grad_norm = 10, .double_q = 1, .target_every = 1,
                        .tau = 0.05f};
    bdt_dqn *o = NULL;
    cr_assert_eq(bdt_dqn_create(p, &c, &o), BD_OK, "%s", bd_lasterr());
    /* OpenBLAS on one thread, as in a brain (OPENBLAS_NUM_THREADS=1, common/proc.c): its own
     * pool, where a product is large enough to share, spins for a while after each */
    void (*blas_threads)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    if (blas_threads)
        blas_threads(1);
    const int tasks = task_count();
    cr_assert_eq(bdt_dqn_set_split(o, 1), BD_OK);
    float *obs = malloc(sizeof(float) * B * K * OBS), *next = malloc(sizeof(float) * B * K * OBS);
    float act[B * K], rew[B * K], term[B * K];
    cr_assert(obs && next);
    dqn_batch(B * K, OBS, A, obs, next, act, rew, term);
    bdt_dqn_stats st;
    cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, K, NULL, &st), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(task_count(), tasks + 1, "the split learner made no thread of its own");
    for (int round = 0; round < 2; round++) {
        const uint64_t before = st.steps;
        if (round == 1) { /* cancelled after 5 steps' gradients */
            int left = 5;
            split_cancel = 0;
            bdt_dqn_set_grad_hook(o, cancel_after, &left);
            cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, K, &split_cancel, &st), BD_EINTR);
            bdt_dqn_set_grad_hook(o, NULL, NULL);
        }
        /* 0.3 s asleep after a whole call (round 0) or a cancelled one (round 1): a helper
         * that polled without end would burn about as much CPU (the poll is bounded: a
         * hold left on costs its 2 ms, which this cannot tell from none) */
        const double c0 = cpu_s();
        struct timespec nap = {0, 300000000};
        nanosleep(&nap, NULL);
        const double used = cpu_s() - c0;
        cr_assert(used < 0.05, "round %d: %.3f CPU-s used while the caller slept: the helper kept polling", round,
                  used);
        if (round == 1) {
            cr_assert_eq(bdt_dqn_update(o, obs, act, rew, next, term, B, 1, NULL, &st), BD_OK, "%s",
                         bd_lasterr());
            cr_assert_eq(st.steps, before + 5 + 1, "the cancelled call took 5 steps, the next one 1");
        }
    }
    bdt_dqn_destroy(o);
    cr_assert_eq(task_count_settled(tasks), tasks, "the split learner's thread outlived it");
    bdt_policy_destroy(p);
    free(obs);
    free(next);
}

/* CleanRL's PPO loss for one minibatch (the whole batch, in order), computed here in double
 * from the policy's forward outputs: an independent statement of what the update minimises.
 * obs (n, obs); act (n) or (n, act); logp_old, adv, ret, val_old (n). */
static double ref_loss(bdt_policy *p, const bdt_policy_config *pc, const bdt_ppo_config *oc, const float *obs,
                       const float *act, const float *logp_old, const float *adv, const float *ret,
                       const float *val_old, int n)
{
    int na = pc->act_dim;
    float *head = malloc((size_t)n * na * sizeof *head), *v = malloc((size_t)n * sizeof *v);
    float ls[16] = {0};
    cr_assert(head && v && na <= 16);
    cr_assert_eq(bdt_policy_forward(p, obs, n, head, v), BD_OK);
    if (pc->act_kind == BDT_CONTINUOUS)
        cr_assert_eq(bdt_policy_logstd(p, ls, na), BD_OK);
    double am = 0, as = 0;
    for (int i = 0; i < n; i++)
        am += adv[i] / (double)n;
    for (int i = 0; i < n; i++)
        as += (adv[i] - am) * (adv[i] - am) / (double)(n - 1);
    as = sqrt(as);
    double pg = 0, vl = 0, ent = 0, c = oc->clip_coef;
    for (int i = 0; i < n; i++) {
        const float *h = head + (size_t)i * na;
        double lp = 0, en = 0;
        if (pc->act_kind == BDT_DISCRETE) {
            double m = h[0], z = 0;
            for (int k = 1; k < na; k++)
                m = h[k] > m ? h[k] : m;
            for (int k = 0; k < na; k++)
                z += exp(h[k] - m);
            for (int k = 0; k < na; k++) {
                double l = h[k] - m - log(z);
                en -= exp(l) * l;
            }
            lp = h[(int)act[i]] - m - log(z);
        } else {
            for (int k = 0; k < na; k++) {
                double d = ((double)act[i * na + k] - h[k]) / exp(ls[k]);
                lp += -0.5 * d * d - ls[k] - 0.5 * log(2.0 * M_PI);
                en += 0.5 + 0.5 * log(2.0 * M_PI) + ls[k];
            }
        }
        double r = exp(lp - logp_old[i]), a = oc->norm_adv ? (adv[i] - am) / (as + 1e-8) : adv[i];
        double rc = r < 1 - c ? 1 - c : r > 1 + c ? 1 + c : r;
        pg += fmax(-a * r, -a * rc) / n;
        double u = (v[i] - ret[i]) * (double)(v[i] - ret[i]);
        double dv = v[i] - val_old[i];
        dv = dv < -c ? -c : dv > c ? c : dv;
        double w = (val_old[i] + dv - ret[i]) * (val_old[i] + dv - ret[i]);
        vl += 0.5 * (oc->clip_vloss ? fmax(u, w) : u) / n;
        ent += en / n;
    }
    free(head);
    free(v);
    return pg - oc->ent_coef * ent + oc->vf_coef * vl;
}

/* Adam's first step moves each weight by lr * g / (|g| + eps): where the finite-difference
 * gradient of ref_loss is clearly non-zero, the update must move by -lr * sign(g). */
static void check_update_follows_ref_loss(bdt_act_kind kind)
{
    enum { N = 16, OBS = 3, ACT = 3 };
    bdt_policy_config pc = pcfg(OBS, kind, ACT, 17);
    pc.hidden = 8;
    bdt_policy *p = mkpol(pc);
    bdt_ppo_config oc = ocfg();
    oc.lr = 1e-3f;
    oc.ent_coef = 0.5f;
    oc.max_grad_norm = 1e9f; /* Adam's first step does not see a uniform scale anyway */
    oc.epochs = 1;
    oc.minibatches = 1;
    bdt_ppo *o = mkppo(p, oc);
    {
        /* away from the near-uniform initial policy, where the entropy gradient vanishes */
        size_t np = bdt_policy_param_count(p);
        float *t = getp(p);
        for (size_t i = 0; i < np; i++)
            t[i] += 0.3f * urand();
        cr_assert_eq(bdt_policy_set_params(p, t, np), BD_OK);
        free(t);
    }
    float obs[N * OBS], act[N * ACT], logp[N], adv[N], ret[N], val[N], head[N * ACT];
    for (int i = 0; i < N * OBS; i++)
        obs[i] = urand();
    cr_assert_eq(bdt_policy_forward(p, obs, N, head, val), BD_OK);
    for (int i = 0; i < N; i++) {
        if (kind == BDT_DISCRETE)
            act[i] = (float)(i % ACT);
        else
            for (int k = 0; k < ACT; k++)
                act[i * ACT + k] = head[i * ACT + k] + urand();
        adv[i] = 2.0f * urand() + 0.5f;
        ret[i] = val[i] + urand();
        val[i] += 0.3f * urand(); /* old values off the current ones: value clipping acts */
        logp[i] = 0.0f;
    }
    /* old log-probs off the current ones by up to +-0.4: some ratios are clipped */
    {
        float lp[N], vtmp[N];
        if (kind == BDT_DISCRETE)
            discrete_logp(p, obs, act, N, ACT, lp, vtmp);
        else
            for (int i = 0; i < N; i++) {
                lp[i] = 0;
                for (int k = 0; k < ACT; k++) {
                    double d = (double)act[i * ACT + k] - head[i * ACT + k];
                    lp[i] += (float)(-0.5 * d * d - 0.5 * log(2.0 * M_PI));
                }
            }
        for (int i = 0; i < N; i++)
            logp[i] = lp[i] + 0.4f * urand();
    }
    size_t n = bdt_policy_param_count(p);
    float *th = getp(p), *tw = malloc(n * sizeof *tw);
    double *g = malloc(n * sizeof *g);
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        const float up = th[i] + h, dn = th[i] - h;
        memcpy(tw, th, n * sizeof *tw);
        tw[i] = up;
        cr_assert_eq(bdt_policy_set_params(p, tw, n), BD_OK);
        double lp = ref_loss(p, &pc, &oc, obs, act, logp, adv, ret, val, N);
        tw[i] = dn;
        cr_assert_eq(bdt_policy_set_params(p, tw, n), BD_OK);
        double lm = ref_loss(p, &pc, &oc, obs, act, logp, adv, ret, val, N);
        g[i] = (lp - lm) / ((double)up - dn);
    }
    cr_assert_eq(bdt_policy_set_params(p, th, n), BD_OK);
    int64_t perm[N];
    for (int i = 0; i < N; i++)
        perm[i] = i;
    bdt_ppo_stats st;
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK, "%s", bd_lasterr());
    cr_assert(st.clip_frac > 0.0f && st.clip_frac < 1.0f, "clip_frac %g: the test should straddle the clip",
              st.clip_frac);
    float *t1 = getp(p);
    int checked = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(g[i]) < 5e-4)
            continue;
        double step = ((double)t1[i] - th[i]) / oc.lr; /* ~ -sign(g) */
        cr_assert(fabs(step + (g[i] > 0 ? 1.0 : -1.0)) < 0.05, "param %zu: fd grad %g, step/lr %g", i, g[i],
                  step);
        checked++;
    }
    cr_log_info("%s: %d of %zu weights checked, clip_frac %g\n", kind == BDT_DISCRETE ? "discrete" : "continuous",
                checked, n, st.clip_frac);
    cr_assert(checked > (int)n / 4, "only %d of %zu gradients large enough to check", checked, n);
    free(th);
    free(tw);
    free(t1);
    free(g);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

Test(torch, update_follows_cleanrl_loss_discrete)
{
    check_update_follows_ref_loss(BDT_DISCRETE);
}

Test(torch, update_follows_cleanrl_loss_continuous)
{
    check_update_follows_ref_loss(BDT_CONTINUOUS);
}

Test(torch, first_update_stats_and_lr)
{
    enum { N = 32, OBS = 2 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_DISCRETE, 3, 2));
    bdt_ppo_config oc = ocfg();
    oc.epochs = 1;
    oc.minibatches = 1;
    bdt_ppo *o = mkppo(p, oc);
    float obs[N * OBS], act[N], logp[N], adv[N], ret[N], val[N];
    for (int i = 0; i < N; i++) {
        obs[i * OBS] = urand();
        obs[i * OBS + 1] = urand();
        act[i] = (float)(i % 3);
        adv[i] = urand();
        ret[i] = urand();
    }
    discrete_logp(p, obs, act, N, 3, logp, val);
    int64_t *perm = shuffled_perm(1, N);
    bdt_ppo_stats st;
    /* one epoch, one minibatch, logp from the same weights: ratio 1 everywhere */
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK, "%s", bd_lasterr());
    /* logp here (double, from the logits) and in the update (float log_softmax) differ by
     * the rounding of the forward's sums and of the softmax's, at the scale of the largest
     * |logp|; the KL estimate is a mean of such differences */
    double lmax = 0;
    for (int i = 0; i < N; i++)
        lmax = fmax(lmax, fabs(logp[i]));
    cr_assert(bd_close_sum(st.approx_kl, 0, OBS + 64 + 64 + 3, lmax), "approx_kl %g", st.approx_kl);
    cr_assert_eq(st.clip_frac, 0.0f);
    /* the mean of N normalised advantages (each at most sqrt(N) in magnitude) times ratios
     * within the same rounding of 1 */
    cr_assert(bd_close_sum(st.policy_loss, 0, N + OBS + 64 + 64 + 3, sqrt((double)N)),
              "normalised advantages average 0: %g", st.policy_loss);
    cr_assert(fabsf(st.entropy - logf(3.0f)) < 1e-3f, "entropy %g", st.entropy);
    double vl = 0;
    for (int i = 0; i < N; i++)
        vl += 0.5 * (double)(val[i] - ret[i]) * (val[i] - ret[i]) / N;
    /* a mean of N squares; the values are the same forward's, summed in float */
    cr_assert(bd_close_sum(st.value_loss, vl, N + OBS + 64 + 64, vl), "value_loss %.9g, want %.9g", st.value_loss,
              vl);

    /* lr 0: Adam leaves the weights as they are */
    float *before = getp(p);
    cr_assert_eq(bdt_ppo_set_lr(o, 0.0f), BD_OK);
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK);
    float *after = getp(p);
    cr_assert(memcmp(before, after, bdt_policy_param_count(p) * sizeof(float)) == 0);
    cr_assert_eq(bdt_ppo_set_lr(o, 1e-3f), BD_OK);
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK);
    free(after);
    after = getp(p);
    cr_assert(memcmp(before, after, bdt_policy_param_count(p) * sizeof(float)) != 0);
    cr_assert_eq(bdt_ppo_set_lr(o, -1.0f), BD_EINVAL);
    free(before);
    free(after);
    free(perm);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

Test(torch, update_rejects_bad_input)
{
    enum { N = 8, OBS = 2 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_DISCRETE, 2, 2));
    bdt_ppo_config oc = ocfg();
    oc.epochs = 2;
    oc.minibatches = 2;
    bdt_ppo *o = mkppo(p, oc);
    float obs[N * OBS] = {0}, act[N] = {0}, logp[N] = {0}, adv[N] = {0}, ret[N] = {0}, val[N] = {0};
    int64_t *perm = shuffled_perm(2, N);
    bdt_ppo_stats st;
    perm[N + 3] = N; /* out of range in epoch 1 */
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "perm") != NULL, "%s", bd_lasterr());
    perm[N + 3] = 3;
    act[5] = 2.0f; /* not an action */
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_EINVAL);
    act[5] = 0.5f;
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_EINVAL);
    act[5] = 1.0f;
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, 1, perm, &st), BD_EINVAL);
    cr_assert_eq(bdt_ppo_update(o, NULL, act, logp, adv, ret, val, N, perm, &st), BD_EINVAL);
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, NULL), BD_OK, "%s",
                 bd_lasterr());
    bdt_ppo *o2 = NULL;
    oc.minibatches = 0;
    cr_assert_eq(bdt_ppo_create(p, &oc, &o2), BD_EINVAL);
    cr_assert_null(o2);
    free(perm);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

Test(torch, minibatch_size_sets_the_count_per_update)
{
    /* a cancelled update says how many minibatches it would have made: epochs x
     * max(1, n / minibatch_size) */
    enum { N = 1000, OBS = 2 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_DISCRETE, 2, 3));
    bdt_ppo_config oc = ocfg();
    oc.epochs = 2;
    oc.minibatches = 0;
    oc.minibatch_size = 300;
    bdt_ppo *o = mkppo(p, oc);
    volatile int stop = 1;
    bdt_ppo_set_cancel(o, &stop);
    static float obs[N * OBS], act[N], logp[N], adv[N], ret[N], val[N];
    int64_t *perm = shuffled_perm(2, N);
    bdt_ppo_stats st;
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_EINTR);
    cr_assert(strstr(bd_lasterr(), "after 0 of 6 minibatches"), "%s", bd_lasterr());
    int64_t *small = shuffled_perm(2, 100);
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, 100, small, &st), BD_EINTR);
    cr_assert(strstr(bd_lasterr(), "after 0 of 2 minibatches"), "one minibatch of the whole batch: %s", bd_lasterr());
    stop = 0;
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK, "%s", bd_lasterr());
    free(small);
    free(perm);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

Test(torch, continuous_forward_and_update)
{
    enum { N = 32, OBS = 3, ACT = 2, EP = 2 };
    bdt_policy *p = mkpol(pcfg(OBS, BDT_CONTINUOUS, ACT, 4));
    bdt_ppo_config oc = ocfg();
    oc.lr = 1e-2f;
    oc.epochs = EP;
    oc.minibatches = 2;
    bdt_ppo *o = mkppo(p, oc);
    float obs[N * OBS], mean[N * ACT], act[N * ACT], logp[N], adv[N], ret[N], val[N], ls[ACT];
    for (int i = 0; i < N * OBS; i++)
        obs[i] = urand();
    cr_assert_eq(bdt_policy_forward(p, obs, N, mean, val), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_policy_logstd(p, ls, ACT), BD_OK);
    for (int i = 0; i < N; i++) {
        double lp = 0;
        for (int k = 0; k < ACT; k++) {
            float a = mean[i * ACT + k] + 0.5f * urand(); /* std is exp(0) = 1 */
            act[i * ACT + k] = a;
            double z = (double)a - mean[i * ACT + k];
            lp += -0.5 * z * z - ls[k] - 0.5 * log(2.0 * M_PI);
        }
        logp[i] = (float)lp;
        adv[i] = act[i * ACT] > mean[i * ACT] ? 1.0f : -1.0f;
        ret[i] = urand();
    }
    float *before = getp(p);
    int64_t *perm = shuffled_perm(EP, N);
    bdt_ppo_stats st;
    cr_assert_eq(bdt_ppo_update(o, obs, act, logp, adv, ret, val, N, perm, &st), BD_OK, "%s",
                 bd_lasterr());
    cr_assert(isfinite(st.policy_loss) && isfinite(st.value_loss) && isfinite(st.approx_kl));
    /* the entropy of N(mu, 1) per dimension is 0.5 + 0.5 log(2 pi) ~ 1.419 */
    cr_assert(fabsf(st.entropy - ACT * 1.4189385f) < 0.1f, "entropy %g", st.entropy);
    float *after = getp(p);
    cr_assert(memcmp(before, after, bdt_policy_param_count(p) * sizeof(float)) != 0);
    cr_assert_eq(bdt_policy_logstd(p, ls, ACT), BD_OK);
    cr_assert(ls[0] != 0.0f || ls[1] != 0.0f, "log std did not move");
    free(before);
    free(after);
    free(perm);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

/* ---- checkpoints ------------------------------------------------------------------- */

typedef struct {
    float obs[32 * 4], act[32], logp[32], adv[32], ret[32], val[32];
    int64_t *perm;
} batch;

static void mkbatch(batch *b, bdt_policy *p)
{
    for (int i = 0; i < 32 * 4; i++)
        b->obs[i] = urand();
    for (int i = 0; i < 32; i++) {
        b->act[i] = (float)(i % 2);
        b->adv[i] = urand();
        b->ret[i] = urand();
    }
    discrete_logp(p, b->obs, b->act, 32, 2, b->logp, b->val);
    b->perm = shuffled_perm(ocfg().epochs, 32);
}

static void upd(bdt_ppo *o, batch *b)
{
    int rc = bdt_ppo_update(o, b->obs, b->act, b->logp, b->adv, b->ret, b->val, 32, b->perm, NULL);
    cr_assert_eq(rc, BD_OK, "%s", bd_lasterr());
}

/* item 17 of issue 20: a diverged update is undone, the optimiser's state with it: the
 * next update from the undone state is the same as from a twin that never took it. */
Test(torch, item17_undo_puts_the_last_update_back)
{
    bdt_policy_config c = pcfg(4, BDT_DISCRETE, 2, 21);
    bdt_policy *p = mkpol(c), *twin = mkpol(c);
    bdt_ppo *o = mkppo(p, ocfg()), *ot = mkppo(twin, ocfg());
    cr_assert_eq(bdt_ppo_undo(o), BD_ESTATE, "nothing to undo before an update");
    batch b, bad;
    mkbatch(&b, p);
    mkbatch(&bad, p);
    upd(o, &b);
    upd(ot, &b);
    for (int i = 0; i < 32; i++)
        bad.adv[i] *= 1e6f; /* an update the twin never takes */
    upd(o, &bad);
    cr_assert_eq(bdt_ppo_undo(o), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_ppo_undo(o), BD_ESTATE, "once");
    size_t n = bdt_policy_param_count(p);
    float *a = getp(p), *t = getp(twin);
    cr_assert(memcmp(a, t, n * sizeof(float)) == 0, "the parameters are back");
    upd(o, &b); /* Adam's moments and step count are back too */
    upd(ot, &b);
    free(a);
    free(t);
    a = getp(p);
    t = getp(twin);
    cr_assert(memcmp(a, t, n * sizeof(float)) == 0, "the optimiser's state is back");
    free(a);
    free(t);
    free(b.perm);
    free(bad.perm);
    bdt_ppo_destroy(o);
    bdt_ppo_destroy(ot);
    bdt_policy_destroy(p);
    bdt_policy_destroy(twin);
}

Test(torch, save_load_round_trip_resumes_optimiser)
{
    char path[256];
    tmpname(path, sizeof path, "resume");
    bdt_policy *a = mkpol(pcfg(4, BDT_DISCRETE, 2, 21));
    bdt_ppo *oa = mkppo(a, ocfg());
    batch b1, b2;
    mkbatch(&b1, a);
    mkbatch(&b2, a);
    upd(oa, &b1);
    upd(oa, &b1);
    cr_assert_eq(bdt_save(a, oa, path), BD_OK, "%s", bd_lasterr());
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    cr_assert(access(tmp, F_OK) != 0, "%s left behind", tmp);
    float *pa0 = getp(a);
    upd(oa, &b2);
    float *pa = getp(a);

    /* another seed, loaded: same params, then the same update gives the same params */
    bdt_policy *b = mkpol(pcfg(4, BDT_DISCRETE, 2, 99));
    bdt_ppo *ob = mkppo(b, ocfg());
    cr_assert_eq(bdt_load(b, ob, path), BD_OK, "%s", bd_lasterr());
    float *pb0 = getp(b);
    size_t n = bdt_policy_param_count(a);
    cr_assert(memcmp(pa0, pb0, n * sizeof(float)) == 0, "loaded params differ");
    upd(ob, &b2);
    float *pb = getp(b);
    cr_assert(memcmp(pa, pb, n * sizeof(float)) == 0, "update after load differs");

    /* a fresh optimiser (params only) does not give the same step: the state mattered */
    bdt_policy *c = mkpol(pcfg(4, BDT_DISCRETE, 2, 99));
    cr_assert_eq(bdt_load(c, NULL, path), BD_OK, "%s", bd_lasterr());
    bdt_ppo *oc = mkppo(c, ocfg());
    upd(oc, &b2);
    float *pc = getp(c);
    cr_assert(memcmp(pa, pc, n * sizeof(float)) != 0, "optimiser state made no difference");

    /* a params-only file cannot resume an optimiser */
    cr_assert_eq(bdt_save(c, NULL, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_load(b, ob, path), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), path) != NULL, "%s", bd_lasterr());
    cr_assert_eq(bdt_load(b, NULL, path), BD_OK, "%s", bd_lasterr());

    unlink(path);
    free(pa0);
    free(pa);
    free(pb0);
    free(pb);
    free(pc);
    free(b1.perm);
    free(b2.perm);
    bdt_ppo_destroy(oa);
    bdt_ppo_destroy(ob);
    bdt_ppo_destroy(oc);
    bdt_policy_destroy(a);
    bdt_policy_destroy(b);
    bdt_policy_destroy(c);
}

Test(torch, load_architecture_mismatch)
{
    char path[256];
    tmpname(path, sizeof path, "arch");
    bdt_policy *a = mkpol(pcfg(4, BDT_DISCRETE, 2, 1));
    cr_assert_eq(bdt_save(a, NULL, path), BD_OK, "%s", bd_lasterr());
    bdt_policy_config cs[4] = {pcfg(4, BDT_DISCRETE, 2, 1), pcfg(5, BDT_DISCRETE, 2, 1),
                               pcfg(4, BDT_CONTINUOUS, 2, 1), pcfg(4, BDT_DISCRETE, 3, 1)};
    cs[0].hidden = 32;
    for (int i = 0; i < 4; i++) {
        bdt_policy *b = mkpol(cs[i]);
        float *before = getp(b);
        cr_assert_eq(bdt_load(b, NULL, path), BD_EINVAL, "config %d: %s", i, bd_lasterr());
        cr_log_info("%s\n", bd_lasterr());
        cr_assert(strstr(bd_lasterr(), path) != NULL, "%s", bd_lasterr());
        cr_assert(strstr(bd_lasterr(), "mismatch") != NULL, "%s", bd_lasterr());
        float *after = getp(b);
        cr_assert(memcmp(before, after, bdt_policy_param_count(b) * sizeof(float)) == 0);
        free(before);
        free(after);
        bdt_policy_destroy(b);
    }
    unlink(path);
    bdt_policy_destroy(a);
}

Test(torch, load_corrupt_and_missing)
{
    char path[256];
    tmpname(path, sizeof path, "corrupt");
    bdt_policy *p = mkpol(pcfg(4, BDT_DISCRETE, 2, 1));
    bdt_ppo *o = mkppo(p, ocfg());

    /* missing */
    cr_assert_eq(bdt_load(p, o, path), BD_ENOTFOUND);
    cr_assert(strstr(bd_lasterr(), path) != NULL, "%s", bd_lasterr());

    /* garbage bytes */
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 4096; i++)
        fputc((int)(urand() * 127.0f) & 0xff, f);
    fclose(f);
    int rc = bdt_load(p, o, path);
    cr_log_info("garbage: %s\n", bd_lasterr());
    cr_assert_eq(rc, BD_ETORCH, "garbage: rc %d: %s", rc, bd_lasterr());
    cr_assert(strstr(bd_lasterr(), path) != NULL, "%s", bd_lasterr());

    /* empty */
    f = fopen(path, "wb");
    fclose(f);
    rc = bdt_load(p, o, path);
    cr_assert(rc != BD_OK, "empty file loaded");

    /* a real checkpoint cut in half, and one with bytes flipped in the middle */
    cr_assert_eq(bdt_save(p, o, path), BD_OK, "%s", bd_lasterr());
    f = fopen(path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len);
    cr_assert_eq(fread(buf, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    f = fopen(path, "wb");
    fwrite(buf, 1, (size_t)len / 2, f);
    fclose(f);
    rc = bdt_load(p, o, path);
    cr_assert(rc != BD_OK, "truncated file loaded");
    cr_assert_eq(rc, BD_ETORCH, "truncated: rc %d: %s", rc, bd_lasterr());
    for (long i = len / 3; i < len / 3 + 64; i++)
        buf[i] ^= 0x5a;
    f = fopen(path, "wb");
    fwrite(buf, 1, (size_t)len, f);
    fclose(f);
    rc = bdt_load(p, o, path);
    cr_log_info("flipped bytes: rc %d (%s)\n", rc, bd_lasterr());
    cr_assert_eq(rc, BD_ETORCH, "flipped: rc %d: %s", rc, bd_lasterr());

    /* a directory */
    cr_assert(bdt_load(p, o, "/tmp") != BD_OK);
    /* an unwritable destination */
    cr_assert_eq(bdt_save(p, o, "/nonexistent-dir/x.pt"), BD_EIO);
    cr_assert(strstr(bd_lasterr(), "/nonexistent-dir/x.pt.tmp") != NULL, "%s", bd_lasterr());

    unlink(path);
    free(buf);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
}

/* ---- devices ----------------------------------------------------------------------- */

Test(torch, cuda_unavailable_is_enodev)
{
    if (bdt_cuda_available())
        cr_skip_test("CUDA is available here");
    bdt_policy_config c = pcfg(4, BDT_DISCRETE, 2, 1);
    c.device = BDT_CUDA;
    bdt_policy *p = NULL;
    cr_assert_eq(bdt_policy_create(&c, &p), BD_ENODEV);
    cr_assert_null(p);
    cr_assert(strstr(bd_lasterr(), "cuda") != NULL, "%s", bd_lasterr());
}

Test(torch, cuda_policy_matches_cpu)
{
    if (!bdt_cuda_available())
        cr_skip_test("no CUDA device");
    enum { N = 32, OBS = 4 };
    bdt_policy_config c = pcfg(OBS, BDT_DISCRETE, 2, 13);
    bdt_policy *cpu = mkpol(c);
    c.device = BDT_CUDA;
    bdt_policy *gpu = mkpol(c);
    size_t n = bdt_policy_param_count(cpu);
    float *pc = getp(cpu), *pg = getp(gpu);
    cr_assert(memcmp(pc, pg, n * sizeof(float)) == 0, "init differs between devices");
    batch b;
    mkbatch(&b, cpu);
    float lc[N * 2], lg[N * 2], vc[N], vg[N];
    cr_assert_eq(bdt_policy_forward(cpu, b.obs, N, lc, vc), BD_OK);
    cr_assert_eq(bdt_policy_forward(gpu, b.obs, N, lg, vg), BD_OK, "%s", bd_lasterr());
    for (int i = 0; i < N; i++)
        cr_assert(fabsf(vc[i] - vg[i]) < 1e-3f && fabsf(lc[2 * i] - lg[2 * i]) < 1e-3f);
    bdt_ppo *oc = mkppo(cpu, ocfg()), *og = mkppo(gpu, ocfg());
    for (int it = 0; it < 3; it++) {
        upd(oc, &b);
        upd(og, &b);
    }
    free(pc);
    free(pg);
    pc = getp(cpu);
    pg = getp(gpu);
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(pc[i] - pg[i]) < 1e-3f, "param %zu: cpu %g cuda %g", i, pc[i], pg[i]);
    char path[256];
    tmpname(path, sizeof path, "cuda");
    cr_assert_eq(bdt_save(gpu, og, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_load(cpu, NULL, path), BD_OK, "%s", bd_lasterr()); /* cuda file into cpu */
    free(pc);
    pc = getp(cpu);
    cr_assert(memcmp(pc, pg, n * sizeof(float)) == 0);
    unlink(path);
    free(pc);
    free(pg);
    free(b.perm);
    bdt_ppo_destroy(oc);
    bdt_ppo_destroy(og);
    bdt_policy_destroy(cpu);
    bdt_policy_destroy(gpu);
}

/* ---- the gradient hook (issue 21) -------------------------------------------------- */

typedef struct {
    int calls, fail_at, zero;
    size_t n;
    int finite, nonzero;
} hook_log;

static int grad_hook(void *ctx, float *g, size_t n)
{
    hook_log *h = ctx;
    h->calls++;
    h->n = n;
    for (size_t i = 0; i < n; i++) {
        h->finite &= isfinite(g[i]) != 0;
        h->nonzero |= g[i] != 0.0f;
        if (h->zero)
            g[i] = 0.0f;
    }
    return h->fail_at && h->calls == h->fail_at ? bd_seterr(BD_EIO, "the hook refused") : BD_OK;
}

/* Between backward and the optimiser step, once a minibatch, with every parameter's
 * gradient: handing them back unchanged leaves the update as it is without the hook (bit
 * for bit); zeroing them leaves Adam nothing to step by (its first step is m / sqrt(v),
 * both 0); a hook that fails ends the update with its code and the parameters as before. */
Test(torch, grad_hook_sees_and_sets_every_gradient)
{
    bdt_policy_config c = pcfg(4, BDT_DISCRETE, 2, 33);
    bdt_policy *p = mkpol(c), *twin = mkpol(c);
    bdt_ppo *o = mkppo(p, ocfg()), *ot = mkppo(twin, ocfg());
    batch b;
    mkbatch(&b, p);
    hook_log h = {.finite = 1};
    bdt_ppo_set_grad_hook(o, grad_hook, &h);
    upd(o, &b);
    upd(ot, &b);
    const size_t n = bdt_policy_param_count(p);
    cr_assert_eq(h.calls, ocfg().epochs * ocfg().minibatches, "once per minibatch: %d calls", h.calls);
    cr_assert_eq(h.n, n, "every parameter's gradient: %zu of %zu", h.n, n);
    cr_assert(h.finite && h.nonzero, "real gradients");
    float *a = getp(p), *t = getp(twin);
    cr_assert(memcmp(a, t, n * sizeof(float)) == 0, "an identity hook changes nothing");
    h = (hook_log){.finite = 1, .zero = 1};
    bdt_policy *z = mkpol(c);
    bdt_ppo *oz = mkppo(z, ocfg());
    bdt_ppo_set_grad_hook(oz, grad_hook, &h);
    float *z0 = getp(z);
    upd(oz, &b);
    float *z1 = getp(z);
    cr_assert(memcmp(z0, z1, n * sizeof(float)) == 0, "zero gradients: Adam does not move");
    h = (hook_log){.finite = 1, .fail_at = 3};
    bdt_ppo_set_grad_hook(o, grad_hook, &h);
    cr_assert_eq(bdt_ppo_update(o, b.obs, b.act, b.logp, b.adv, b.ret, b.val, 32, b.perm, NULL), BD_EIO);
    cr_assert(strstr(bd_lasterr(), "the hook refused"), "%s", bd_lasterr());
    free(t);
    t = getp(p);
    cr_assert(memcmp(a, t, n * sizeof(float)) == 0, "a failed hook leaves the parameters as before the update");
    bdt_ppo_set_grad_hook(o, NULL, NULL);
    upd(o, &b);
    cr_assert_eq(h.calls, 3, "no hook: not called");
    free(a);
    free(t);
    free(z0);
    free(z1);
    free(b.perm);
    bdt_ppo_destroy(o);
    bdt_ppo_destroy(ot);
    bdt_ppo_destroy(oz);
    bdt_policy_destroy(p);
    bdt_policy_destroy(twin);
    bdt_policy_destroy(z);
}

/* ---- SAC (torch/sac_algo.h) ---------------------------------------------------------- */

static bdt_sac_config sac_cfg(int A, float lo, float hi)
{
    bdt_sac_config c = {.lr_actor = 3e-4f, .lr_critic = 1e-3f, .lr_alpha = 1e-3f, .gamma = 0.99f,
                        .tau = 0.005f, .alpha = 0.2f, .autotune = 1, .target_entropy = -(float)A};
    for (int d = 0; d < A; d++) {
        c.low[d] = lo;
        c.high[d] = hi;
    }
    return c;
}

static bdt_policy *mksquashed(int obs, int act, int hidden, uint64_t seed)
{
    bdt_policy_config c = pcfg(obs, BDT_SQUASHED, act, seed);
    c.hidden = hidden;
    return mkpol(c);
}

/* The actor's output made a constant (mean, raw log std) per dimension: every weight 0,
 * the head's biases (its last 2 A parameters) set. */
static void squashed_constant(bdt_policy *p, int A, const float *mean, const float *raw)
{
    size_t n = bdt_policy_param_count(p);
    float *w = calloc(n, sizeof(float));
    for (int d = 0; d < A; d++) {
        w[n - 2 * (size_t)A + (size_t)d] = mean[d];
        w[n - (size_t)A + (size_t)d] = raw[d];
    }
    cr_assert_eq(bdt_policy_set_params(p, w, n), BD_OK, "%s", bd_lasterr());
    free(w);
}

Test(torch, squashed_policy_shape_and_count)
{
    bdt_policy_config c = pcfg(5, BDT_SQUASHED, 3, 1);
    bdt_policy *p = mkpol(c);
    cr_assert_eq(bdt_policy_out_dim(&c), 6);
    cr_assert_eq((uint64_t)bdt_policy_param_count(p), bdt_policy_param_count_of(&c));
    float obs[2 * 5] = {0}, out[2 * 6], val[2] = {1, 1};
    cr_assert_eq(bdt_policy_forward(p, obs, 2, out, val), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(val[0], 0.0f, "a squashed policy has no critic: value 0");
    float ls[3];
    cr_assert_neq(bdt_policy_logstd(p, ls, 3), BD_OK, "its log std is an output, not a parameter");
    bdt_policy_destroy(p);
}

/* The density of a = tanh(u), u ~ N(mean, std), integrates to 1 over (-1, 1) (midpoint
 * rule over a grid of a), and agrees with the naive change of variables
 * log N(u) - log(1 - tanh(u)^2) where that is well-conditioned. */
Test(torch, squashed_logp_integrates_to_one)
{
    const float means[] = {0.0f, 0.6f, 1.2f, -2.0f}, raws[] = {0.0f, -0.5f, 0.3f, -0.8f};
    const int K = 400000; /* grid cells over (-1, 1) */
    float *obs = calloc((size_t)K * 2, sizeof(float)), *z = malloc(sizeof(float) * (size_t)K);
    float *act = malloc(sizeof(float) * (size_t)K), *lp = malloc(sizeof(float) * (size_t)K);
    const float lo = -1, hi = 1;
    for (int c = 0; c < 4; c++) {
        bdt_policy *p = mksquashed(2, 1, 8, 7);
        squashed_constant(p, 1, &means[c], &raws[c]);
        const double ls = BDT_LOGSTD_MIN + 0.5 * (BDT_LOGSTD_MAX - BDT_LOGSTD_MIN) * (tanh(raws[c]) + 1.0);
        const double sd = exp(ls);
        for (int k = 0; k < K; k++) {
            double a = -1.0 + (k + 0.5) * 2.0 / K;
            z[k] = (float)((atanh(a) - means[c]) / sd);
        }
        cr_assert_eq(bdt_sac_act(p, obs, K, z, &lo, &hi, act, lp), BD_OK, "%s", bd_lasterr());
        double mass = 0, worst = 0;
        for (int k = 0; k < K; k++) {
            mass += exp((double)lp[k]) * 2.0 / K;
            double u = means[c] + sd * (double)z[k], t = tanh(u);
            if (fabs(t) < 0.99) { /* the naive form, away from the saturation */
                double naive = -0.5 * z[k] * (double)z[k] - ls - 0.5 * log(2 * M_PI) - log(1 - t * t);
                double e = fabs(naive - lp[k]) / (1 + fabs(naive));
                worst = e > worst ? e : worst;
            }
        }
        /* midpoint error: the density's curvature over cells of 5e-6 is far below 1e-4 of
         * its mass for these std (>= e^-1.5); float log-densities add ~1e-7 relative each */
        cr_expect(fabs(mass - 1.0) < 1e-4, "mean %g raw log std %g: the density integrates to %.8f", means[c],
                  raws[c], mass);
        cr_expect(worst < 64 * FLT_EPSILON, "mean %g: stable and naive log-densities differ by %g (relative)",
                  means[c], worst);
        bdt_policy_destroy(p);
    }
    free(obs);
    free(z);
    free(act);
    free(lp);
}

/* The change of variables against a histogram: actions drawn through the sampler land in
 * bins with the frequency the density gives them (scaled bounds [-2, 2]). */
Test(torch, squashed_sampling_matches_density_histogram)
{
    const int n = 200000, B = 20;
    const float mean = 0.4f, raw = 0.2f, lo = -2, hi = 2;
    bdt_policy *p = mksquashed(1, 1, 4, 3);
    squashed_constant(p, 1, &mean, &raw);
    float *obs = calloc((size_t)n, sizeof(float)), *z = malloc(sizeof(float) * (size_t)n);
    float *act = malloc(sizeof(float) * (size_t)n), *lp = malloc(sizeof(float) * (size_t)n);
    for (int k = 0; k < n; k += 2) { /* Box-Muller on the suite's generator */
        double u1 = (urand() + 1.0) / 2.0, u2 = (urand() + 1.0) / 2.0;
        double r = sqrt(-2 * log(1 - u1));
        z[k] = (float)(r * cos(2 * M_PI * u2));
        z[k + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    cr_assert_eq(bdt_sac_act(p, obs, n, z, &lo, &hi, act, lp), BD_OK, "%s", bd_lasterr());
    int count[20] = {0};
    for (int k = 0; k < n; k++) {
        cr_assert(act[k] >= lo && act[k] <= hi, "action %g out of [-2, 2]", act[k]);
        int b = (int)((act[k] - lo) / (hi - lo) * B);
        count[b < B ? b : B - 1]++;
    }
    /* each bin's probability from the density (midpoint rule over 2000 points per bin) */
    float g[2000], ga[2000], gl[2000], go[2000] = {0};
    const double ls = BDT_LOGSTD_MIN + 0.5 * (BDT_LOGSTD_MAX - BDT_LOGSTD_MIN) * (tanh(raw) + 1.0);
    for (int b = 0; b < B; b++) {
        double w = (hi - lo) / (double)B / 2000, prob = 0;
        for (int k = 0; k < 2000; k++) {
            double a = lo + b * (hi - lo) / (double)B + (k + 0.5) * w;
            g[k] = (float)((atanh(a / 2.0) - mean) / exp(ls));
        }
        cr_assert_eq(bdt_sac_act(p, go, 2000, g, &lo, &hi, ga, gl), BD_OK, "%s", bd_lasterr());
        for (int k = 0; k < 2000; k++)
            prob += exp((double)gl[k]) * w;
        /* a binomial count: 5 standard deviations */
        double sdv = sqrt(n * prob * (1 - prob)) + 1;
        cr_expect(fabs(count[b] - n * prob) < 5 * sdv, "bin %d: %d draws, the density gives %.1f", b, count[b],
                  n * prob);
    }
    free(obs);
    free(z);
    free(act);
    free(lp);
    bdt_policy_destroy(p);
}

/* Targets move by tau toward the critics each update: with the critics' learning rate 0
 * the critics stay put, and tau = 1/4 makes the hand computation exact in float. */
Test(torch, sac_polyak_update_by_hand)
{
    bdt_policy *p = mksquashed(3, 2, 16, 5);
    bdt_sac_config c = sac_cfg(2, -1, 1);
    c.lr_critic = 0;
    c.tau = 0.25f;
    bdt_sac *s = NULL;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_OK, "%s", bd_lasterr());
    size_t n = bdt_sac_param_count(s, BDT_SAC_CRITICS);
    cr_assert_eq(n, bdt_sac_param_count(s, BDT_SAC_TARGETS));
    cr_assert_eq(n, 2 * (size_t)((3 + 2) * 16 + 16 + 16 * 16 + 16 + 16 + 1));
    float *q = malloc(sizeof(float) * n), *t = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
    cr_assert_eq(bdt_sac_get_params(s, BDT_SAC_TARGETS, t, n), BD_OK);
    cr_assert_eq(bdt_sac_get_params(s, BDT_SAC_CRITICS, q, n), BD_OK);
    cr_assert_eq(memcmp(q, t, sizeof(float) * n), 0, "targets start as the critics");
    for (size_t i = 0; i < n; i++)
        t[i] = urand();
    cr_assert_eq(bdt_sac_set_params(s, BDT_SAC_TARGETS, t, n), BD_OK);
    float obs[4 * 3], act[4 * 2], rew[4], nobs[4 * 3];
    float done[4] = {0, 1, 0, 1};
    for (int i = 0; i < 12; i++)
        obs[i] = urand(), nobs[i] = urand();
    for (int i = 0; i < 8; i++)
        act[i] = urand();
    for (int i = 0; i < 4; i++)
        rew[i] = urand();
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, 4, 1, (uint64_t)k, NULL), BD_OK, "%s",
                     bd_lasterr());
        for (size_t i = 0; i < n; i++)
            t[i] = t[i] * 0.75f + q[i] * 0.25f;
        cr_assert_eq(bdt_sac_get_params(s, BDT_SAC_TARGETS, got, n), BD_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(got[i], t[i], "update %d, target %zu: %.9g, by hand %.9g", k, i, got[i], t[i]);
    }
    cr_assert_eq(bdt_sac_get_params(s, BDT_SAC_CRITICS, got, n), BD_OK);
    cr_assert_eq(memcmp(got, q, sizeof(float) * n), 0, "critics at learning rate 0 stay put");
    free(q);
    free(t);
    free(got);
    bdt_sac_destroy(s);
    bdt_policy_destroy(p);
}

/* A one-step problem (every transition terminates): reward -(a - 0.3)^2 on [-1, 1].
 * SAC's critics learn the reward and the actor's greedy action moves to 0.3. */
Test(torch, sac_learns_a_one_step_optimum)
{
    bdt_policy *p = mksquashed(1, 1, 32, 11);
    bdt_sac_config c = sac_cfg(1, -1, 1);
    c.lr_actor = 3e-3f;
    c.lr_critic = 3e-3f;
    bdt_sac *s = NULL;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_OK, "%s", bd_lasterr());
    enum { B = 64 };
    float obs[B] = {0}, act[B], rew[B], done[B];
    bdt_sac_stats st;
    for (int k = 0; k < 1500; k++) {
        for (int i = 0; i < B; i++) {
            act[i] = urand();
            rew[i] = -(act[i] - 0.3f) * (act[i] - 0.3f);
            done[i] = 1;
        }
        cr_assert_eq(bdt_sac_update(s, obs, act, rew, obs, done, B, 2, (uint64_t)k, &st), BD_OK, "%s",
                     bd_lasterr());
    }
    const float lo = -1, hi = 1;
    float a, lp;
    cr_assert_eq(bdt_sac_act(p, obs, 1, NULL, &lo, &hi, &a, &lp), BD_OK);
    cr_expect(fabsf(a - 0.3f) < 0.1f, "greedy action %g, the optimum is 0.3 (alpha %g)", a, st.alpha);
    cr_expect(isfinite(st.q_loss) && st.q_loss < 0.01f, "critics' loss %g", st.q_loss);
    bdt_sac_destroy(s);
    bdt_policy_destroy(p);
}

/* bdt_load_actor (bodhi.load_policy): a ppo policy's and a dqn Q-network's checkpoint give
 * back the network in the shape the file holds, with its parameters; what is not a
 * checkpoint is refused, a missing file as not found. (A sac learner's actor:
 * sac_checkpoint_round_trip.) */
Test(torch, load_actor_reads_a_checkpoints_network_in_its_shape)
{
    char path[256];
    tmpname(path, sizeof path, "actor");
    bdt_policy_config kinds[2] = {pcfg(5, BDT_CONTINUOUS, 3, 7), pcfg(4, BDT_Q, 3, 8)};
    kinds[1].hidden = 24;
    kinds[1].layers = 3;
    for (int k = 0; k < 2; k++) {
        bdt_policy *p = mkpol(kinds[k]);
        cr_assert_eq(bdt_save(p, NULL, path), BD_OK, "%s", bd_lasterr());
        bdt_policy_config got;
        bdt_policy *q = NULL;
        cr_assert_eq(bdt_load_actor(path, &got, &q), BD_OK, "%s", bd_lasterr());
        cr_assert(got.obs_dim == kinds[k].obs_dim && got.act_kind == kinds[k].act_kind &&
                  got.act_dim == kinds[k].act_dim && got.hidden == kinds[k].hidden && got.layers == kinds[k].layers);
        float *a = getp(p), *b = getp(q);
        cr_assert_eq(memcmp(a, b, sizeof(float) * bdt_policy_param_count(p)), 0, "kind %d: parameters differ", k);
        free(a);
        free(b);
        bdt_policy_destroy(p);
        bdt_policy_destroy(q);
    }
    /* cut short, not a checkpoint, absent */
    FILE *f = fopen(path, "r+");
    cr_assert_not_null(f);
    cr_assert_eq(ftruncate(fileno(f), 100), 0);
    fclose(f);
    bdt_policy_config got;
    bdt_policy *q = (bdt_policy *)&got;
    cr_assert_eq(bdt_load_actor(path, &got, &q), BD_ETORCH);
    cr_assert_null(q);
    cr_assert(strstr(bd_lasterr(), "not a bodhi checkpoint"), "%s", bd_lasterr());
    unlink(path);
    cr_assert_eq(bdt_load_actor(path, &got, &q), BD_ENOTFOUND, "%s", bd_lasterr());
    cr_assert_eq(bdt_load_actor(NULL, &got, &q), BD_EINVAL);
}

/* Save, load into a learner of another seed: the same greedy actions, critics, targets
 * and alpha, and the next update the same bits (optimisers restored). */
Test(torch, sac_checkpoint_round_trip)
{
    char path[128];
    snprintf(path, sizeof path, "/tmp/bd_sac_ckpt_%d.pt", (int)getpid());
    bdt_policy *p = mksquashed(3, 2, 16, 21), *p2 = mksquashed(3, 2, 16, 99);
    bdt_sac_config c = sac_cfg(2, -2, 2);
    bdt_sac *s = NULL, *s2 = NULL;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_sac_create(p2, &c, &s2), BD_OK, "%s", bd_lasterr());
    enum { B = 16 };
    float obs[B * 3], act[B * 2], rew[B], nobs[B * 3], done[B];
    for (int i = 0; i < B * 3; i++)
        obs[i] = urand(), nobs[i] = urand();
    for (int i = 0; i < B * 2; i++)
        act[i] = 2 * urand();
    for (int i = 0; i < B; i++)
        rew[i] = urand(), done[i] = i % 5 == 0 ? 1.0f : 0.0f;
    for (int k = 0; k < 5; k++)
        cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, B, 1, (uint64_t)k, NULL), BD_OK);
    cr_assert_eq(bdt_sac_save(s, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_sac_load(s2, path), BD_OK, "%s", bd_lasterr());
    const float lo[2] = {-2, -2}, hi[2] = {2, 2};
    float a1[B * 2], a2[B * 2];
    cr_assert_eq(bdt_sac_act(p, obs, B, NULL, lo, hi, a1, NULL), BD_OK);
    cr_assert_eq(bdt_sac_act(p2, obs, B, NULL, lo, hi, a2, NULL), BD_OK);
    cr_assert_eq(memcmp(a1, a2, sizeof a1), 0, "greedy actions differ after the round trip");
    cr_assert_eq(bdt_sac_alpha(s), bdt_sac_alpha(s2));
    size_t n = bdt_sac_param_count(s, BDT_SAC_TARGETS);
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (int which = 0; which < 2; which++) {
        bdt_sac_get_params(s, which, x, n);
        bdt_sac_get_params(s2, which, y, n);
        cr_assert_eq(memcmp(x, y, sizeof(float) * n), 0, "%s differ", which ? "targets" : "critics");
    }
    cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, B, 1, 5, NULL), BD_OK);
    cr_assert_eq(bdt_sac_update(s2, obs, act, rew, nobs, done, B, 1, 5, NULL), BD_OK);
    size_t m = bdt_policy_param_count(p);
    float *u = malloc(sizeof(float) * m), *v = malloc(sizeof(float) * m);
    bdt_policy_get_params(p, u, m);
    bdt_policy_get_params(p2, v, m);
    cr_assert_eq(memcmp(u, v, sizeof(float) * m), 0, "the update after the load differs (optimiser state)");
    bdt_sac_get_params(s, BDT_SAC_CRITICS, x, n);
    bdt_sac_get_params(s2, BDT_SAC_CRITICS, y, n);
    cr_assert_eq(memcmp(x, y, sizeof(float) * n), 0, "critics differ after the next update");
    /* another shape is refused, and leaves the learner as it was */
    bdt_policy *p3 = mksquashed(4, 2, 16, 1);
    bdt_sac *s3 = NULL;
    cr_assert_eq(bdt_sac_create(p3, &c, &s3), BD_OK);
    cr_assert_eq(bdt_sac_load(s3, path), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "architecture mismatch"), "%s", bd_lasterr());
    /* a PPO checkpoint is not a SAC one */
    cr_assert_neq(bdt_load(p3, NULL, path), BD_OK);
    /* `bodhi check`'s reading of it: the same verdicts, nothing kept */
    bdt_policy_config fits = pcfg(3, BDT_SQUASHED, 2, 5), wider = pcfg(3, BDT_SQUASHED, 2, 5);
    fits.hidden = 16;
    wider.hidden = 32;
    cr_assert_eq(bdt_sac_check_file(&fits, path), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_sac_check_file(&wider, path), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "architecture mismatch"), "%s", bd_lasterr());
    char ppo_path[160];
    snprintf(ppo_path, sizeof ppo_path, "%s.policy.pt", path);
    cr_assert_eq(bdt_save(p, NULL, ppo_path), BD_OK, "%s", bd_lasterr());
    cr_assert_neq(bdt_sac_check_file(&fits, ppo_path), BD_OK, "a policy checkpoint passed as a sac one");
    unlink(ppo_path);
    /* the actor alone, in the file's shape (bodhi.load_policy): the same greedy actions */
    bdt_policy_config got;
    bdt_policy *alone = NULL;
    cr_assert_eq(bdt_load_actor(path, &got, &alone), BD_OK, "%s", bd_lasterr());
    cr_assert(got.obs_dim == 3 && got.act_kind == BDT_SQUASHED && got.act_dim == 2 && got.hidden == 16 &&
              got.layers == 2 && got.device == BDT_CPU);
    cr_assert_eq(bdt_sac_act(alone, obs, B, NULL, lo, hi, a2, NULL), BD_OK);
    cr_assert_eq(memcmp(a1, a2, sizeof a1), 0, "the actor read alone acts otherwise");
    bdt_policy_destroy(alone);
    bdt_sac_destroy(s3);
    bdt_policy_destroy(p3);
    unlink(path);
    free(x);
    free(y);
    free(u);
    free(v);
    bdt_sac_destroy(s);
    bdt_sac_destroy(s2);
    bdt_policy_destroy(p);
    bdt_policy_destroy(p2);
}

/* A round that diverges is undone whole: after bdt_sac_restore the actor, critics,
 * targets and temperature are bit for bit what bdt_sac_mark kept, and the next update
 * equals that of a twin learner that never saw the round (the optimisers' moments and
 * step counts came back too). */
Test(torch, sac_restore_undoes_a_diverged_round_whole)
{
    bdt_policy *p = mksquashed(3, 2, 16, 21), *p2 = mksquashed(3, 2, 16, 21);
    bdt_sac_config c = sac_cfg(2, -2, 2);
    bdt_sac *s = NULL, *s2 = NULL;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_sac_create(p2, &c, &s2), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_sac_restore(s), BD_ESTATE, "a restore with nothing kept");
    enum { B = 16 };
    float obs[B * 3], act[B * 2], rew[B], bad[B], nobs[B * 3], done[B];
    for (int i = 0; i < B * 3; i++)
        obs[i] = urand(), nobs[i] = urand();
    for (int i = 0; i < B * 2; i++)
        act[i] = 2 * urand();
    for (int i = 0; i < B; i++)
        rew[i] = urand(), bad[i] = NAN, done[i] = i % 5 == 0 ? 1.0f : 0.0f;
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, B, 1, (uint64_t)k, NULL), BD_OK);
        cr_assert_eq(bdt_sac_update(s2, obs, act, rew, nobs, done, B, 1, (uint64_t)k, NULL), BD_OK);
    }
    const size_t m = bdt_policy_param_count(p), n = bdt_sac_param_count(s, BDT_SAC_CRITICS);
    float *a0 = malloc(sizeof(float) * m), *a1 = malloc(sizeof(float) * m);
    float *q0 = malloc(sizeof(float) * n), *q1 = malloc(sizeof(float) * n);
    float *t0 = malloc(sizeof(float) * n), *t1 = malloc(sizeof(float) * n);
    cr_assert(a0 && a1 && q0 && q1 && t0 && t1);
    bdt_policy_get_params(p, a0, m);
    bdt_sac_get_params(s, BDT_SAC_CRITICS, q0, n);
    bdt_sac_get_params(s, BDT_SAC_TARGETS, t0, n);
    const float alpha0 = bdt_sac_alpha(s);
    cr_assert_eq(bdt_sac_mark(s), BD_OK, "%s", bd_lasterr());
    bdt_sac_stats st;
    for (int k = 3; k < 5; k++) /* rewards that are not numbers: the critics go NaN */
        cr_assert_eq(bdt_sac_update(s, obs, act, bad, nobs, done, B, 1, (uint64_t)k, &st), BD_OK);
    bdt_sac_get_params(s, BDT_SAC_CRITICS, q1, n);
    int nonfinite = 0;
    for (size_t i = 0; i < n; i++)
        nonfinite += !isfinite(q1[i]);
    cr_assert(nonfinite > 0 && !isfinite(st.q_loss), "the round did not diverge (q_loss %g)", st.q_loss);
    cr_assert_eq(bdt_sac_restore(s), BD_OK, "%s", bd_lasterr());
    bdt_policy_get_params(p, a1, m);
    cr_assert_eq(memcmp(a0, a1, sizeof(float) * m), 0, "the actor is not the kept one");
    bdt_sac_get_params(s, BDT_SAC_CRITICS, q1, n);
    cr_assert_eq(memcmp(q0, q1, sizeof(float) * n), 0, "the critics are not the kept ones");
    bdt_sac_get_params(s, BDT_SAC_TARGETS, t1, n);
    cr_assert_eq(memcmp(t0, t1, sizeof(float) * n), 0, "the targets are not the kept ones");
    cr_assert_eq(bdt_sac_alpha(s), alpha0);
    cr_assert_eq(bdt_sac_restore(s), BD_ESTATE, "a second restore of one mark");
    /* the next update: as the twin's, which never saw the diverged round */
    cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, B, 1, 9, NULL), BD_OK);
    cr_assert_eq(bdt_sac_update(s2, obs, act, rew, nobs, done, B, 1, 9, NULL), BD_OK);
    bdt_policy_get_params(p, a0, m);
    bdt_policy_get_params(p2, a1, m);
    cr_assert_eq(memcmp(a0, a1, sizeof(float) * m), 0, "the next update's actor differs from the twin's");
    bdt_sac_get_params(s, BDT_SAC_CRITICS, q0, n);
    bdt_sac_get_params(s2, BDT_SAC_CRITICS, q1, n);
    cr_assert_eq(memcmp(q0, q1, sizeof(float) * n), 0, "the next update's critics differ from the twin's");
    cr_assert_eq(bdt_sac_alpha(s), bdt_sac_alpha(s2));
    free(a0);
    free(a1);
    free(q0);
    free(q1);
    free(t0);
    free(t1);
    bdt_sac_destroy(s);
    bdt_sac_destroy(s2);
    bdt_policy_destroy(p);
    bdt_policy_destroy(p2);
}

Test(torch, sac_refuses_bad_configs)
{
    bdt_policy *g = mkpol(pcfg(3, BDT_CONTINUOUS, 2, 1));
    bdt_sac_config c = sac_cfg(2, -1, 1);
    bdt_sac *s = NULL;
    cr_assert_eq(bdt_sac_create(g, &c, &s), BD_EINVAL, "a Gaussian actor is not SAC's");
    cr_assert_null(s);
    bdt_policy *p = mksquashed(3, 2, 16, 1);
    c.high[1] = -1;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_EINVAL, "empty bounds");
    c = sac_cfg(2, -1, 1);
    c.tau = 2;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_EINVAL, "tau > 1");
    bdt_policy_destroy(g);
    bdt_policy_destroy(p);
}

/* ---- learner groups (torch/dist.h): two real processes over Gloo on loopback ---------- */

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* A fresh store path in a private temporary folder, named as the suite's other /tmp files
 * (bd-<kind>-<pid>-...), so that the suite's sweep (tests/tmp_sweep.sh) removes it: named
 * bd_group_XXXXXX, nine were left in /tmp by every run of this suite. */
static void group_store(char *path, size_t len)
{
    char dir[40]; /* /tmp/bd-test-group-, a pid of up to 10 digits, -XXXXXX */
    snprintf(dir, sizeof dir, "/tmp/bd-test-group-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(dir));
    cr_assert((size_t)snprintf(path, len, "%s/store", dir) < len);
}

/* Rank 1's side of group_collectives_agree: exits 0 when what it saw is right. */
static int group_rank1(const char *store)
{
    bdt_group *g;
    if (bdt_group_join(store, "t", 1, 2, "127.0.0.1", 30.0, NULL, NULL, NULL, 0, &g) != BD_OK)
        return 10;
    float x[3] = {1.0f, -2.0f, 10.0f};
    if (bdt_group_allreduce_mean(g, x, 3) != BD_OK || x[0] != 2.0f || x[1] != 0.0f || x[2] != 5.0f)
        return 11;
    double d[2] = {0.25, 7.0};
    if (bdt_group_allreduce_f64(g, d, 2, 1) != BD_OK || d[0] != 0.5 || d[1] != 7.0)
        return 12;
    float p[4] = {0};
    if (bdt_group_broadcast(g, p, 4, 0) != BD_OK || p[0] != 1.5f || p[3] != -4.0f)
        return 13;
    bdt_group_leave(g);
    return 0;
}

Test(torch, group_collectives_agree)
{
    char store[64];
    group_store(store, sizeof store);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0)
        _exit(group_rank1(store));
    bdt_group *g;
    cr_assert_eq(bdt_group_join(store, "t", 0, 2, "127.0.0.1", 30.0, NULL, NULL, NULL, 0, &g), BD_OK,
                 "%s", bd_lasterr());
    cr_assert_eq(bdt_group_rank(g), 0);
    cr_assert_eq(bdt_group_size(g), 2);
    float x[3] = {3.0f, 2.0f, 0.0f};
    cr_assert_eq(bdt_group_allreduce_mean(g, x, 3), BD_OK, "%s", bd_lasterr());
    /* exact: sums of small integers and a halving */
    cr_assert(x[0] == 2.0f && x[1] == 0.0f && x[2] == 5.0f);
    double d[2] = {0.5, -1.0};
    cr_assert_eq(bdt_group_allreduce_f64(g, d, 2, 1), BD_OK);
    cr_assert(d[0] == 0.5 && d[1] == 7.0);
    float p[4] = {1.5f, 2.0f, 3.0f, -4.0f};
    cr_assert_eq(bdt_group_broadcast(g, p, 4, 0), BD_OK);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank 1 saw wrong results (status %d)", st);
    bdt_group_leave(g);
}

/* Rank r's gradient: values of every sign and of magnitudes 1e-3 to 1e3, so that sums round. */
static void group_grad(float *x, size_t n, int r, int salt)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(sin(0.37 * (double)i + r + 0.1 * salt) * pow(10.0, (double)(i % 7) - 3.0));
}

/* The sizes group_means_are_the_same_bits_on_every_rank all-reduces: one chunk on the
 * caller's path (9155 floats), several chunks (100003 floats, 391 KiB; 2^20 floats, 4 MiB,
 * whose unchunked messages of 1-2 MiB hang partners that write at once where the kernel
 * caps socket buffers at its default), through c10d (2^22 + 1 floats, past 16 MiB), and
 * the first size again with other values. */
static const size_t group_sizes[5] = {9155, 100003, (size_t)1 << 20, ((size_t)1 << 22) + 1, 9155};
enum { GROUP_CASES = 5, GROUP_BIGGEST = 3 };

/* One rank of group_means_are_the_same_bits_on_every_rank: each case's mean written to
 * DIR/r<rank>.<case>; then a sum and a minimum of doubles (the statistics' all-reduces)
 * over 3 ranks, checked here. Returns 0, or a code naming what failed. */
static int group_mean_rank(const char *store, const char *dir, int rank)
{
    bdt_group *g;
    if (bdt_group_join(store, "t", rank, 3, "127.0.0.1", 60.0, NULL, NULL, NULL, 0, &g) != BD_OK)
        return 10;
    if (!bdt_group_fast(g))
        return 11;
    float *x = malloc(sizeof(float) * group_sizes[GROUP_BIGGEST]);
    bdt_group_spin(g, rank == 1); /* a wait's spin is each rank's own: the last case all spin */
    for (int c = 0; c < GROUP_CASES && x; c++) {
        if (c == GROUP_CASES - 1)
            bdt_group_spin(g, 1);
        group_grad(x, group_sizes[c], rank, c);
        if (bdt_group_allreduce_mean(g, x, group_sizes[c]) != BD_OK)
            return 20 + c;
        char path[128];
        snprintf(path, sizeof path, "%s/r%d.%d", dir, rank, c);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(x, sizeof(float), group_sizes[c], f) != group_sizes[c] || fclose(f) != 0)
            return 30 + c;
    }
    free(x);
    /* sums of small integers are exact; the minimum is rank 0's */
    double d[3] = {(double)rank, 1.0, -(double)rank};
    if (bdt_group_allreduce_f64(g, d, 3, 0) != BD_OK || d[0] != 3.0 || d[1] != 3.0 || d[2] != -3.0)
        return 40;
    double m[2] = {(double)rank + 0.5, 10.0 - rank};
    if (bdt_group_allreduce_f64(g, m, 2, 2) != BD_OK || m[0] != 0.5 || m[1] != 8.0)
        return 41;
    bdt_group_leave(g);
    return 0;
}

/* The gradient mean every rank takes: the same bits on all three ranks (a rank whose
 * weights drift from the others' learns a different policy), within rounding of the exact
 * mean, in one chunk and in several on the caller's own path, on c10d's, and after the
 * size changes, with one rank's waits spinning, then every rank's (bdt_group_spin); and
 * the statistics' sums and minima. */
Test(torch, group_means_are_the_same_bits_on_every_rank, .timeout = 180)
{
    char store[64], dir[64];
    group_store(store, sizeof store);
    snprintf(dir, sizeof dir, "%s", store);
    *strrchr(dir, '/') = '\0';
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        cr_assert_neq(kids[k], -1);
        if (kids[k] == 0)
            _exit(group_mean_rank(store, dir, k + 1));
    }
    int rc0 = group_mean_rank(store, dir, 0);
    for (int k = 0; k < 2; k++) {
        int st;
        cr_assert_eq(waitpid(kids[k], &st, 0), kids[k]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d failed (status %d)", k + 1, st);
    }
    cr_assert_eq(rc0, 0, "rank 0 failed (%d): %s", rc0, bd_lasterr());
    float *got[3], *in[3];
    for (int r = 0; r < 3; r++)
        in[r] = malloc(sizeof(float) * group_sizes[GROUP_BIGGEST]);
    for (int c = 0; c < GROUP_CASES; c++) {
        size_t n = group_sizes[c];
        for (int r = 0; r < 3; r++) {
            char path[128];
            snprintf(path, sizeof path, "%s/r%d.%d", dir, r, c);
            got[r] = malloc(sizeof(float) * n);
            FILE *f = fopen(path, "rb");
            cr_assert_not_null(f);
            cr_assert_eq(fread(got[r], sizeof(float), n, f), n);
            fclose(f);
            unlink(path);
            group_grad(in[r], n, r, c);
        }
        cr_assert_eq(memcmp(got[0], got[1], sizeof(float) * n), 0, "case %d: ranks 0 and 1 differ", c);
        cr_assert_eq(memcmp(got[0], got[2], sizeof(float) * n), 0, "case %d: ranks 0 and 2 differ", c);
        /* two float additions and a division, each within half an ulp of its result:
         * |error| <= 2 eps (|a| + |b| + |c|) / 3 + eps |mean| */
        for (size_t i = 0; i < n; i++) {
            const double exact = ((double)in[0][i] + in[1][i] + in[2][i]) / 3;
            const double mag = fabs(in[0][i]) + fabs(in[1][i]) + fabs(in[2][i]);
            const double bound = 2 * FLT_EPSILON * mag / 3 + FLT_EPSILON * fabs(exact);
            cr_assert(fabs(got[0][i] - exact) <= bound, "case %d, float %zu: %.9g against %.9g", c, i, got[0][i],
                      exact);
        }
        for (int r = 0; r < 3; r++)
            free(got[r]);
    }
    for (int r = 0; r < 3; r++)
        free(in[r]);
    unlink(store);
    rmdir(dir);
}

/* Rank 1 of a group of 2 at store, joined with timeout_s, then raises sig (SIGKILL: it
 * dies, SIGSTOP: it hangs) with the group formed, after `means` all-reduces of 1000 floats;
 * rank 0, this process, joins too. Returns rank 1's pid and rank 0's group. */
static pid_t group_faulty_peer(const char *store, double timeout_s, int sig, int means, bdt_group **g)
{
    signal(SIGPIPE, SIG_IGN); /* as bodhi's brain does (cli/child.c): Gloo writes to the dead rank */
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        bdt_group *peer;
        if (bdt_group_join(store, "t", 1, 2, "127.0.0.1", timeout_s, NULL, NULL, NULL, 0, &peer) != BD_OK)
            _exit(10);
        float y[1000] = {0};
        for (int i = 0; i < means; i++)
            if (bdt_group_allreduce_mean(peer, y, 1000) != BD_OK)
                _exit(11);
        raise(sig);
        _exit(0);
    }
    cr_assert_eq(bdt_group_join(store, "t", 0, 2, "127.0.0.1", timeout_s, NULL, NULL, NULL, 0, g), BD_OK, "%s",
                 bd_lasterr());
    return pid;
}

Test(torch, group_fails_fast_when_a_rank_dies)
{
    char store[64];
    bdt_group *g;
    int st;
    double t0;
    for (int spin = 0; spin < 2; spin++) { /* the waits sleep, then spin */
        group_store(store, sizeof store);
        pid_t pid = group_faulty_peer(store, 5.0, SIGKILL, 0, &g);
        bdt_group_spin(g, spin);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert(WIFSIGNALED(st));
        float x[1000] = {0};
        t0 = (double)time(NULL);
        cr_assert_neq(bdt_group_allreduce_mean(g, x, 1000), BD_OK);
        cr_assert((double)time(NULL) - t0 <= 7.0, "the error came after the 5 s timeout (spin %d)", spin);
        cr_assert(strstr(bd_lasterr(), "all-reduce of the learners' gradients: rank 1's learner is gone"),
                  "spin %d: %s", spin, bd_lasterr());
        bdt_group_leave(g);
    }
    /* a lone rank waiting for a peer that never comes: an error within the timeout */
    group_store(store, sizeof store);
    t0 = (double)time(NULL);
    cr_assert_neq(bdt_group_join(store, "t", 0, 2, "127.0.0.1", 2.0, NULL, NULL, NULL, 0, &g), BD_OK);
    cr_assert((double)time(NULL) - t0 <= 5.0);
    cr_assert(strstr(bd_lasterr(), "found no rank 1 (key "), "the error names the rank not there: %s", bd_lasterr());
}

/* A word that a rank left, which the caller keeps (bodhi's: files beside the store), ends a
 * join waiting for that rank at its next ask (every 100 ms), with the word, not at the
 * join's timeout (30 s here). */
static int left_after_asks;
static int left_word_after_3(char *why, size_t n)
{
    if (++left_after_asks < 3)
        return 0;
    snprintf(why, n, "rank 1 left before the group formed: a test");
    return 1;
}

Test(torch, a_join_ends_on_a_word_that_a_rank_left, .timeout = 60)
{
    char store[64];
    group_store(store, sizeof store);
    bdt_group *g = NULL;
    double t0 = bd_now();
    cr_assert_neq(bdt_group_join(store, "t", 0, 2, "127.0.0.1", 30.0, NULL, NULL, left_word_after_3, 0, &g), BD_OK);
    const double took = bd_now() - t0;
    cr_assert(took < 5.0, "the join ended after %.2f s", took);
    cr_assert(strstr(bd_lasterr(), "rank 1 left before the group formed: a test"), "%s", bd_lasterr());
    cr_assert_eq(left_after_asks, 3);
}

/* A rank started as rank 2 of 3 beside a rank 0 started as one of 2, which never answers it:
 * it fails once that rank 0 begins to join after its launch, naming both sizes, not at its
 * timeout (30 s). A size in the store from before its launch (an earlier launch's rank 0,
 * here the same one) is named only at the deadline, as a hint. */
Test(torch, a_rank_past_rank_0s_size_is_told_at_once, .timeout = 90)
{
    char store[64];
    group_store(store, sizeof store);
    const double launched = bd_wall();
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) { /* rank 0 of 2, whose rank 1 never comes */
        bdt_group *g0;
        _exit(bdt_group_join(store, "t", 0, 2, "127.0.0.1", 20.0, NULL, NULL, NULL, 0, &g0) == BD_OK ? 1 : 0);
    }
    bdt_group *g = NULL;
    double t0 = bd_now();
    int rc = bdt_group_join(store, "t", 2, 3, "127.0.0.1", 30.0, NULL, NULL, NULL, launched, &g);
    const double took = bd_now() - t0;
    cr_assert_neq(rc, BD_OK);
    cr_assert(took < 10.0, "the join ended after %.2f s", took);
    cr_assert(strstr(bd_lasterr(), "rank 0 was started as one of 2 ranks (0 to 1), this rank as rank 2 of 3 "
                                   "(WORLD_SIZE, SLURM_NTASKS or mpirun -n must be the same for every rank)"),
              "%s", bd_lasterr());
    cr_assert_null(strstr(bd_lasterr(), "found no rank 0"), "%s", bd_lasterr());
    /* rank 0's size is older than a launch that began later: a hint at the deadline only */
    t0 = bd_now();
    rc = bdt_group_join(store, "t", 2, 3, "127.0.0.1", 2.0, NULL, NULL, NULL, bd_wall() + 3600, &g);
    cr_assert_neq(rc, BD_OK);
    cr_assert(bd_now() - t0 >= 1.9, "it did not wait for its deadline: %s", bd_lasterr());
    cr_assert(strstr(bd_lasterr(), "found no rank 0 (its answer, key answer/2) within the join's 2 s"), "%s",
              bd_lasterr());
    cr_assert(strstr(bd_lasterr(), "; the store's rank 0, this launch's or an earlier one's, says: rank 0 was "
                                   "started as one of 2 ranks (0 to 1)"),
              "%s", bd_lasterr());
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    unlink(store);
    /* ranks 0 and 1 of 2 form their group (half a second after this rank's entry) while a
     * size in the store proves nothing (the launch "began" later): the store they remove
     * tells this rank at once that their group formed without it */
    pid_t two[2];
    for (int r = 0; r < 2; r++) {
        cr_assert_neq(two[r] = fork(), -1);
        if (two[r] == 0) {
            usleep(500000);
            bdt_group *gr;
            const int ok = bdt_group_join(store, "t", r, 2, "127.0.0.1", 20.0, NULL, NULL, NULL, 0, &gr) == BD_OK;
            if (ok)
                bdt_group_leave(gr);
            _exit(ok ? 0 : 1);
        }
    }
    t0 = bd_now();
    rc = bdt_group_join(store, "t", 2, 3, "127.0.0.1", 30.0, NULL, NULL, NULL, bd_wall() + 3600, &g);
    cr_assert_neq(rc, BD_OK);
    cr_assert(bd_now() - t0 < 10.0, "the join ended after %.2f s: %s", bd_now() - t0, bd_lasterr());
    cr_assert(strstr(bd_lasterr(), "rank 0's group formed without this rank (rank 0 removes the group's store once "
                                   "its ranks have joined): rank 0 was started as one of 2 ranks (0 to 1), this "
                                   "rank as rank 2 of 3"),
              "%s", bd_lasterr());
    for (int r = 0; r < 2; r++) {
        int st;
        cr_assert_eq(waitpid(two[r], &st, 0), two[r]);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank %d of the group of 2 did not join", r);
    }
    cr_assert_neq(access(store, F_OK), 0, "the store is left behind");
    *strrchr(store, '/') = '\0';
    rmdir(store);
}

static double thread_cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The calling thread's voluntary context switches so far: each time it slept in the
 * kernel. */
static long thread_sleeps(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nvcsw : -1;
}

/* A rank that hangs (stopped, its sockets open) fails the others' all-reduce on the
 * caller's own path within the group's timeout (its sockets' receive timeout; Gloo's busy
 * poll keeps the same deadline when the waits spin): a gradient mean whose wait sleeps
 * (case 0: it sleeps in the kernel, next to no CPU time) or spins (case 1: it never sleeps,
 * and takes more CPU time than a sleeping wait may), and, after a spinning mean the peer
 * took part in, a statistics all-reduce, whose wait sleeps again (case 2). A spinning
 * wait's share of the CPU is the machine's to give: under `ctest -j2` on 2 cores one took
 * 1.39 s of a 3 s wait, so what tells a spin is that it never slept. */
Test(torch, group_fails_within_the_timeout_when_a_rank_hangs, .timeout = 90)
{
    for (int c = 0; c < 3; c++) {
        char store[64];
        group_store(store, sizeof store);
        bdt_group *g;
        pid_t pid = group_faulty_peer(store, 3.0, SIGSTOP, c == 2, &g);
        cr_assert(bdt_group_fast(g));
        bdt_group_spin(g, c > 0);
        float x[1000] = {0};
        double d[4] = {0};
        if (c == 2)
            cr_assert_eq(bdt_group_allreduce_mean(g, x, 1000), BD_OK, "%s", bd_lasterr());
        const long sleeps0 = thread_sleeps();
        double t0 = bd_now(), cpu0 = thread_cpu_s();
        int rc = c == 2 ? bdt_group_allreduce_f64(g, d, 4, 0) : bdt_group_allreduce_mean(g, x, 1000);
        double took = bd_now() - t0, cpu = thread_cpu_s() - cpu0;
        const long sleeps = thread_sleeps() - sleeps0;
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert_neq(rc, BD_OK, "an all-reduce with a stopped rank succeeded (case %d)", c);
        cr_assert(took >= 2.5 && took <= 6.0, "the error came after %.2f s, not at the 3 s timeout (case %d)", took,
                  c);
        cr_assert(strstr(bd_lasterr(), "rank 1's learner did not answer within the group's timeout (3 s"),
                  "case %d: %s", c, bd_lasterr());
        if (c == 1)
            cr_assert(sleeps == 0 && cpu >= 0.3, "a spinning wait of %.2f s slept %ld time(s), took %.2f s of CPU",
                      took, sleeps, cpu);
        else
            cr_assert(sleeps > 0 && cpu < 0.3, "a sleeping wait of %.2f s slept %ld time(s), took %.2f s of CPU "
                      "(case %d)", took, sleeps, cpu, c);
        bdt_group_leave(g);
    }
}

/* Of three ranks, one dies: the others' errors say a learner is gone, and name it where
 * Gloo's error does (the far end of the pair that failed, on the side that connected; the
 * join records each rank's end), never a rank still there: rank 1, forked, exits 0 when
 * its error names rank 2 or none (rank 0 stays until its own all-reduce has failed). */
Test(torch, a_dead_rank_of_three_is_named_by_the_others, .timeout = 60)
{
    char store[64];
    group_store(store, sizeof store);
    signal(SIGPIPE, SIG_IGN);
    pid_t pid[3] = {0};
    for (int r = 1; r <= 2; r++) {
        pid[r] = fork();
        cr_assert_neq(pid[r], -1);
        if (pid[r] == 0) {
            bdt_group *peer;
            if (bdt_group_join(store, "t", r, 3, "127.0.0.1", 10.0, NULL, NULL, NULL, 0, &peer) != BD_OK)
                _exit(10);
            if (r == 2)
                raise(SIGKILL);
            usleep(200000); /* rank 2 is dead by now */
            float x[1000] = {0};
            if (bdt_group_allreduce_mean(peer, x, 1000) == BD_OK)
                _exit(11);
            const char *e = bd_lasterr();
            if (!strstr(e, "rank 2's learner is gone") && !strstr(e, "another rank's learner is gone")) {
                fprintf(stderr, "rank 1: %s\n", e);
                _exit(12);
            }
            _exit(0);
        }
    }
    bdt_group *g;
    cr_assert_eq(bdt_group_join(store, "t", 0, 3, "127.0.0.1", 10.0, NULL, NULL, NULL, 0, &g), BD_OK,
                 "%s", bd_lasterr());
    int st;
    cr_assert_eq(waitpid(pid[2], &st, 0), pid[2]);
    cr_assert(WIFSIGNALED(st));
    float x[1000] = {0};
    cr_assert_neq(bdt_group_allreduce_mean(g, x, 1000), BD_OK);
    const char *e = bd_lasterr();
    cr_assert(strstr(e, "rank 2's learner is gone") || strstr(e, "rank 1's learner is gone") ||
                  strstr(e, "another rank's learner is gone"),
              "%s", e);
    bdt_group_leave(g);
    cr_assert_eq(waitpid(pid[1], &st, 0), pid[1]);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "rank 1's error did not name rank 2 (status %d)", st);
}

/* The seconds this process's join of a fresh 2-rank group (as rank `mine`, timeout T)
 * takes to fail while its peer, forked, waits delay_s and joins as the other rank, making
 * c10d's group only (slow: BODHI_GROUP_SLOW on it alone) or all of it, then waits to be
 * killed. *peer_status: the peer's wait status (signalled: it was still in its join or
 * past it when killed); peer_err (size n): the peer's error if its join failed first. */
static double join_fails_after(int mine, double T, double delay_s, int slow, int *peer_status, char *peer_err,
                               size_t n)
{
    char store[64];
    group_store(store, sizeof store);
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        close(fd[0]);
        bdt_group *peer;
        usleep((useconds_t)(delay_s * 1e6));
        if (slow)
            setenv("BODHI_GROUP_SLOW", "1", 1);
        if (bdt_group_join(store, "t", 1 - mine, 2, "127.0.0.1", T, NULL, NULL, NULL, 0, &peer) != BD_OK) {
            const char *e = bd_lasterr();
            if (write(fd[1], e, strlen(e)) < 0)
                _exit(11);
            _exit(10);
        }
        sleep(30); /* killed by the test */
        _exit(0);
    }
    close(fd[1]);
    bdt_group *g = NULL;
    double t0 = bd_now();
    int rc = bdt_group_join(store, "t", mine, 2, "127.0.0.1", T, NULL, NULL, NULL, 0, &g);
    double took = bd_now() - t0;
    kill(pid, SIGKILL);
    waitpid(pid, peer_status, 0);
    ssize_t got = read(fd[0], peer_err, n - 1);
    peer_err[got > 0 ? got : 0] = '\0';
    close(fd[0]);
    cr_assert_neq(rc, BD_OK, "rank %d's join succeeded (peer after %.1f s, slow %d)", mine, delay_s, slow);
    return took;
}

/* A join fails within its timeout whichever rendezvous a rank is missing from or late to:
 * the peer comes to c10d's group late (most of the timeout gone) and never makes the pairs
 * of the caller's own all-reduces (BODHI_GROUP_SLOW on it alone), with this process as
 * rank 0 (its wait for the peer's address) or rank 1 (a get); or the peer comes after the
 * timeout. Before the join's waits shared one deadline the first took a whole second
 * timeout more, and FileStore's whole-second waits ran up to 2 s over. */
Test(torch, a_join_fails_within_its_timeout_when_a_rank_makes_half_of_it, .timeout = 60)
{
    const double T = 3.0;
    int st;
    char peer_err[1024];
    for (int mine = 0; mine < 2; mine++) {
        double took = join_fails_after(mine, T, 2.0, 1, &st, peer_err, sizeof peer_err);
        cr_assert(took >= 2.0 && took <= T + 0.5, "rank %d's join failed after %.2f s, not within its %.0f s timeout",
                  mine, took, T);
        cr_assert(mine || strstr(bd_lasterr(), "rendezvous"), "%s", bd_lasterr());
        /* the peer made c10d's group: it was killed waiting in the join's barrier, or its
         * pair with this rank, which tore down its end of the group on failing, closed
         * first (Gloo's words) */
        cr_assert(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 10 &&
                                      strstr(peer_err, "Connection closed by peer")),
                  "the peer did not join c10d's group (status %d): %s", st, peer_err);
    }
    double took = join_fails_after(0, T, 3.5, 0, &st, peer_err, sizeof peer_err);
    cr_assert(took >= 2.9 && took <= T + 0.5, "the join failed after %.2f s, not within its %.0f s timeout", took, T);
}

/* `bodhi set`'s way into the shim: SAC's step sizes, tau and alpha from the next update
 * on (step sizes of 0 leave every parameter as it was; alpha 0 leaves alpha, above 0
 * replaces it); PPO's loss coefficients, refused when negative. */
Test(torch, live_changes_take_effect_at_the_next_update)
{
    bdt_policy *p = mksquashed(3, 2, 16, 21);
    bdt_sac_config c = sac_cfg(2, -2, 2);
    bdt_sac *s = NULL;
    cr_assert_eq(bdt_sac_create(p, &c, &s), BD_OK, "%s", bd_lasterr());
    enum { B = 16 };
    float obs[B * 3], act[B * 2], rew[B], nobs[B * 3], done[B];
    for (int i = 0; i < B * 3; i++)
        obs[i] = urand(), nobs[i] = urand();
    for (int i = 0; i < B * 2; i++)
        act[i] = 2 * urand();
    for (int i = 0; i < B; i++)
        rew[i] = urand(), done[i] = 0;
    cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, B, 1, 0, NULL), BD_OK);
    bdt_sac_config z = c;
    z.lr_actor = z.lr_critic = z.lr_alpha = 0;
    z.alpha = 0;
    const float alpha = bdt_sac_alpha(s);
    cr_assert_eq(bdt_sac_set_rates(s, &z), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bdt_sac_alpha(s), alpha, "alpha 0 leaves it");
    size_t na = bdt_policy_param_count(p), nq = bdt_sac_param_count(s, BDT_SAC_CRITICS);
    float *a0 = malloc(sizeof(float) * na), *a1 = malloc(sizeof(float) * na);
    float *q0 = malloc(sizeof(float) * nq), *q1 = malloc(sizeof(float) * nq);
    bdt_policy_get_params(p, a0, na);
    bdt_sac_get_params(s, BDT_SAC_CRITICS, q0, nq);
    cr_assert_eq(bdt_sac_update(s, obs, act, rew, nobs, done, B, 1, 1, NULL), BD_OK);
    bdt_policy_get_params(p, a1, na);
    bdt_sac_get_params(s, BDT_SAC_CRITICS, q1, nq);
    cr_assert_eq(memcmp(a0, a1, sizeof(float) * na), 0, "the actor learnt with a step size of 0");
    cr_assert_eq(memcmp(q0, q1, sizeof(float) * nq), 0, "the critics learnt with a step size of 0");
    cr_assert_eq(bdt_sac_alpha(s), alpha, "alpha learnt with a step size of 0");
    z.alpha = 0.5f;
    cr_assert_eq(bdt_sac_set_rates(s, &z), BD_OK);
    /* exp(log(0.5)) in float: within an ulp or two of 0.5 */
    cr_assert(fabsf(bdt_sac_alpha(s) - 0.5f) <= 2 * FLT_EPSILON * 0.5f, "alpha %.9g", bdt_sac_alpha(s));
    z.tau = 2;
    cr_assert_eq(bdt_sac_set_rates(s, &z), BD_EINVAL, "tau above 1");
    free(a0);
    free(a1);
    free(q0);
    free(q1);
    bdt_sac_destroy(s);
    bdt_policy_destroy(p);

    bdt_policy_config pc = {.obs_dim = 3, .act_kind = BDT_DISCRETE, .act_dim = 2, .hidden = 8, .layers = 1,
                            .device = BDT_CPU, .seed = 1};
    bdt_policy *pp = NULL;
    cr_assert_eq(bdt_policy_create(&pc, &pp), BD_OK, "%s", bd_lasterr());
    bdt_ppo_config oc = {.lr = 1e-3f, .clip_coef = 0.2f, .vf_coef = 0.5f, .ent_coef = 0, .max_grad_norm = 0.5f,
                         .norm_adv = 1, .epochs = 1, .minibatch_size = 4};
    bdt_ppo *o = NULL;
    cr_assert_eq(bdt_ppo_create(pp, &oc, &o), BD_OK, "%s", bd_lasterr());
    oc.ent_coef = 0.01f;
    cr_assert_eq(bdt_ppo_set_coefs(o, &oc), BD_OK, "%s", bd_lasterr());
    oc.clip_coef = -0.1f;
    cr_assert_eq(bdt_ppo_set_coefs(o, &oc), BD_EINVAL, "a negative clip");
    bdt_ppo_destroy(o);
    bdt_policy_destroy(pp);
}

/* ---- the C network (torch/cpunet.h) ------------------------------------------------ */

/* The C network gives libtorch's bits for the policy's shapes here (CartPole, Pendulum,
 * Acrobot, Tag-like widths; a hidden width whose tanh has a scalar tail; one and three
 * layers; one row, odd rows, many rows; the actor-critic, Q-networks and squashed
 * Gaussians), for the CPU capability both pick (each test runs
 * in a process of its own: setting ATEN_CPU_CAPABILITY before the first op decides it). */
static void check_c_network(void)
{
    struct {
        int S, A, h, L;
        bdt_act_kind kind;
    } shapes[] = {
        {4, 2, 64, 2, BDT_DISCRETE},  {3, 1, 64, 2, BDT_CONTINUOUS}, {6, 3, 64, 2, BDT_DISCRETE},
        {2, 3, 100, 1, BDT_DISCRETE}, {14, 2, 37, 3, BDT_CONTINUOUS}, {1, 1, 8, 2, BDT_CONTINUOUS},
        {4, 2, 64, 2, BDT_Q},         {6, 3, 256, 2, BDT_Q},         {5, 1, 33, 3, BDT_Q},
        {3, 1, 256, 2, BDT_SQUASHED}, {14, 2, 37, 1, BDT_SQUASHED},
    };
    const int rows[] = {1, 7, 33, 512};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        bdt_policy_config c = pcfg(shapes[s].S, shapes[s].kind, shapes[s].A, 11 + s);
        c.hidden = shapes[s].h;
        c.layers = shapes[s].L;
        bdt_policy *p = mkpol(c);
        float *params = getp(p);
        for (size_t k = 0; k < bdt_policy_param_count(p); k++) { /* not just the init's pattern */
            params[k] += 0.05f * urand();
            if (k % 97 == 5) /* subnormal: flushed, as libtorch runs here */
                params[k] = 3e-39f * urand();
        }
        cr_assert_eq(bdt_policy_set_params(p, params, bdt_policy_param_count(p)), BD_OK);
        bdt_cpunet net;
        cr_assert_eq(bdt_cpunet_init(&net, &c, 512), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(net.count, bdt_policy_param_count(p));
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            const int n = rows[r], S = c.obs_dim, A = bdt_policy_out_dim(&c);
            float *obs = malloc(sizeof(float) * (size_t)n * S);
            float *o1 = malloc(sizeof(float) * (size_t)n * A), *o2 = malloc(sizeof(float) * (size_t)n * A);
            float *v1 = malloc(sizeof(float) * (size_t)n), *v2 = malloc(sizeof(float) * (size_t)n);
            for (int k = 0; k < n * S; k++)
                obs[k] = 3.0f * urand();
            cr_assert_eq(bdt_policy_forward(p, obs, n, o1, v1), BD_OK, "%s", bd_lasterr());
            cr_assert_eq(bdt_cpunet_forward(&net, params, obs, n, o2, v2), BD_OK, "%s", bd_lasterr());
            cr_assert(memcmp(o1, o2, sizeof(float) * (size_t)n * A) == 0,
                      "shape %zu rows %d: the actor's output differs from libtorch's (%.9g vs %.9g)", s, n,
                      o1[0], o2[0]);
            cr_assert(memcmp(v1, v2, sizeof(float) * (size_t)n) == 0,
                      "shape %zu rows %d: the value differs from libtorch's (%.9g vs %.9g)", s, n, v1[0], v2[0]);
            /* one head alone reads the same parameters */
            cr_assert_eq(bdt_cpunet_forward(&net, params, obs, n, NULL, v2), BD_OK);
            cr_assert(memcmp(v1, v2, sizeof(float) * (size_t)n) == 0);
            cr_assert_eq(bdt_cpunet_forward(&net, params, obs, n, o2, NULL), BD_OK);
            cr_assert(memcmp(o1, o2, sizeof(float) * (size_t)n * A) == 0);
            free(obs);
            free(o1);
            free(o2);
            free(v1);
            free(v2);
        }
        if (c.act_kind == BDT_CONTINUOUS) {
            float ls[16];
            cr_assert_eq(bdt_policy_logstd(p, ls, c.act_dim), BD_OK);
            cr_assert(memcmp(ls, bdt_cpunet_logstd(&net, params), sizeof(float) * (size_t)c.act_dim) == 0);
        } else
            cr_assert_null(bdt_cpunet_logstd(&net, params));
        cr_assert_neq(bdt_cpunet_forward(&net, params, params, 513, NULL, NULL), BD_OK, "more rows than made for");
        bdt_cpunet_fini(&net);
        bdt_cpunet_fini(&net); /* twice is safe */
        free(params);
        bdt_policy_destroy(p);
    }
    /* subnormal inputs into zero biases (the init's): libtorch flushes them, so must the C network */
    bdt_policy_config z = pcfg(4, BDT_DISCRETE, 2, 3);
    bdt_policy *zp = mkpol(z);
    float *zparams = getp(zp), tiny[8] = {3e-39f, -2e-39f, 1e-39f, 5e-39f, 4e-39f, 2e-39f, -1e-39f, 3e-39f};
    float zo1[4], zo2[4], zv1[2], zv2[2];
    bdt_cpunet zn;
    cr_assert_eq(bdt_cpunet_init(&zn, &z, 2), BD_OK);
    cr_assert_eq(bdt_policy_forward(zp, tiny, 2, zo1, zv1), BD_OK);
    cr_assert_eq(bdt_cpunet_forward(&zn, zparams, tiny, 2, zo2, zv2), BD_OK);
    cr_assert(memcmp(zo1, zo2, sizeof zo1) == 0 && memcmp(zv1, zv2, sizeof zv1) == 0,
              "subnormal inputs: %g %g vs %g %g", zv1[0], zo1[0], zv2[0], zo2[0]);
    bdt_cpunet_fini(&zn);
    free(zparams);
    bdt_policy_destroy(zp);
    /* a Q-network's value is its greedy action's, NaN first (as torch.max) */
    bdt_policy_config qc = pcfg(2, BDT_Q, 3, 4);
    bdt_policy *qp = mkpol(qc);
    float *qparams = getp(qp), qobs[6] = {0.5f, -1.0f, NAN, 1.0f, 2.0f, 0.25f}, qv1[3], qv2[3];
    bdt_cpunet qn;
    cr_assert_eq(bdt_cpunet_init(&qn, &qc, 3), BD_OK);
    cr_assert_eq(bdt_policy_forward(qp, qobs, 3, NULL, qv1), BD_OK);
    cr_assert_eq(bdt_cpunet_forward(&qn, qparams, qobs, 3, NULL, qv2), BD_OK);
    cr_assert(qv1[1] != qv1[1] && qv2[1] != qv2[1], "a NaN observation's value is NaN");
    cr_assert(memcmp(qv1, qv2, sizeof(float)) == 0 && memcmp(qv1 + 2, qv2 + 2, sizeof(float)) == 0,
              "Q values: %g %g vs %g %g", qv1[0], qv1[2], qv2[0], qv2[2]);
    /* ... and a NaN Q-value after a finite larger one, and an infinite one: the head's row
     * of action 1 (its weights follow the trunk's, (A, h) row-major, then the biases) */
    const size_t hq = (size_t)qc.hidden, head = bdt_policy_param_count(qp) - (size_t)qc.act_dim * (hq + 1);
    const float specials[2] = {NAN, INFINITY};
    for (int k = 0; k < 2; k++) {
        float *sp = getp(qp);
        sp[head + (size_t)qc.act_dim * hq + 1] = specials[k]; /* action 1's bias */
        sp[head + (size_t)qc.act_dim * hq + 0] = 1e6f;        /* action 0's: the largest finite one */
        cr_assert_eq(bdt_policy_set_params(qp, sp, bdt_policy_param_count(qp)), BD_OK);
        float fine[6] = {0.5f, -1.0f, 0.25f, 1.0f, 2.0f, 0.25f};
        cr_assert_eq(bdt_policy_forward(qp, fine, 3, NULL, qv1), BD_OK);
        cr_assert_eq(bdt_cpunet_forward(&qn, sp, fine, 3, NULL, qv2), BD_OK);
        cr_assert(memcmp(qv1, qv2, sizeof qv1) == 0, "special %d: Q values %g %g %g vs %g %g %g", k, qv1[0],
                  qv1[1], qv1[2], qv2[0], qv2[1], qv2[2]);
        cr_assert(k == 0 ? qv2[0] != qv2[0] : qv2[0] == INFINITY, "special %d: %g", k, qv2[0]);
        free(sp);
    }
    bdt_cpunet_fini(&qn);
    free(qparams);
    bdt_policy_destroy(qp);
    bdt_cpunet bad;
    bdt_policy_config q = pcfg(4, BDT_Q, 2, 1);
    q.device = BDT_CUDA;
    cr_assert_eq(bdt_cpunet_init(&bad, &q, 4), BD_EINVAL, "the C network runs on the CPU alone");
    q = pcfg(4, (bdt_act_kind)99, 2, 1);
    cr_assert_eq(bdt_cpunet_init(&bad, &q, 4), BD_EINVAL);
    q = pcfg(0, BDT_DISCRETE, 2, 1);
    cr_assert_eq(bdt_cpunet_init(&bad, &q, 4), BD_EINVAL);
}

Test(torch, c_network_matches_libtorch_bit_for_bit)
{
    check_c_network();
}

Test(torch, c_network_matches_libtorch_without_vector_units)
{
    setenv("ATEN_CPU_CAPABILITY", "default", 1);
    check_c_network();
}

Test(torch, c_network_matches_libtorch_on_avx512)
{
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")
        || !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
        cr_skip_test("this CPU has no AVX-512");
    setenv("ATEN_CPU_CAPABILITY", "avx512", 1);
    check_c_network();
}

/* libtorch's network starts from the C init, bit for bit, for every kind (the
 * actor-critic, a Q-network, a squashed Gaussian), so a brain can send the first weights
 * before it has libtorch; the init is a function of the seed alone. */
Test(torch, c_init_is_the_networks_start)
{
    bdt_policy_config cs[] = {pcfg(4, BDT_DISCRETE, 2, 5), pcfg(3, BDT_CONTINUOUS, 1, 5), pcfg(70, BDT_DISCRETE, 9, 8),
                              pcfg(4, BDT_Q, 2, 5),        pcfg(3, BDT_SQUASHED, 1, 5),   pcfg(6, BDT_Q, 3, 9)};
    cs[2].hidden = 33;
    cs[2].layers = 3;
    cs[5].layers = 0; /* a linear Q-network */
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        bdt_policy *p = mkpol(cs[k]);
        size_t n = bdt_policy_param_count(p);
        float *a = getp(p), *b = malloc(sizeof(float) * n), *c = malloc(sizeof(float) * n);
        cr_assert_eq(bdt_policy_init_params(&cs[k], b, n), BD_OK, "%s", bd_lasterr());
        cr_assert(memcmp(a, b, sizeof(float) * n) == 0, "config %zu: the network does not start from the C init", k);
        bdt_policy_config other = cs[k];
        other.seed++;
        cr_assert_eq(bdt_policy_init_params(&other, c, n), BD_OK);
        cr_assert(memcmp(b, c, sizeof(float) * n) != 0, "another seed, other weights");
        cr_assert_neq(bdt_policy_init_params(&cs[k], b, n - 1), BD_OK, "a wrong count is refused");
        free(a);
        free(b);
        free(c);
        bdt_policy_destroy(p);
    }
}
