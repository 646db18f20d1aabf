/* test_muscle.c: a muscle's per-agent work (muscle/act.h, muscle/actor.c): categorical
 * and Gaussian sampling, Philox normals, and one agent's step against its parts on the
 * CPU, and against the CPU on a GPU (skipped without one). */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/devmem.h"
#include "brain/obsnorm.h"
#include "muscle/actor.h"
#include "tests/tolerance.h"

Test(actor, categorical_sampling)
{
    float logits[3] = {0.0f, logf(2.0f), logf(1.0f)}; /* p = 1/4, 1/2, 1/4 */
    float lp;
    cr_assert_eq(bd_categorical(logits, 3, 0.10f, 0, &lp), 0);
    cr_assert_float_eq(lp, logf(0.25f), 1e-6);
    cr_assert_eq(bd_categorical(logits, 3, 0.30f, 0, &lp), 1);
    cr_assert_float_eq(lp, logf(0.5f), 1e-6);
    cr_assert_eq(bd_categorical(logits, 3, 0.80f, 0, &lp), 2);
    cr_assert_eq(bd_categorical(logits, 3, 0.99f, 1, &lp), 1, "greedy ignores u");
}

Test(actor, gaussian_log_probability)
{
    float mean[2] = {0.5f, -1.0f}, logstd[2] = {0.0f, logf(2.0f)}, z[2] = {1.0f, -0.5f}, a[2];
    float lp = bd_gaussian(mean, logstd, 2, z, 0, a);
    cr_assert_float_eq(a[0], 1.5f, 1e-6);
    cr_assert_float_eq(a[1], -2.0f, 1e-6, "mean + std * z");
    /* log N(1.5; 0.5, 1) + log N(-2; -1, 2) */
    double want = (-0.5 * 1.0 - 0.0 - 0.9189385332) + (-0.5 * 0.25 - log(2.0) - 0.9189385332);
    cr_assert_float_eq(lp, (float)want, 1e-5);
    lp = bd_gaussian(mean, logstd, 2, z, 1, a);
    cr_assert_eq(a[0], 0.5f, "greedy takes the mean");
    cr_assert_float_eq(lp, (float)(-2 * 0.9189385332 - log(2.0)), 1e-5);
}

/* The muscle's squashed Gaussian (muscle/act.h, in double) against the learner's
 * (bdt_sac_act, float tensors) on the same network output and draws: the same actions
 * within the bounds and the same log-densities, to float rounding of a dozen operations. */
Test(actor, squashed_gaussian_matches_the_learner)
{
    enum { N = 64, S = 3, A = 2 };
    bdt_policy_config pc = {.obs_dim = S, .act_kind = BDT_SQUASHED, .act_dim = A, .hidden = 16, .layers = 2,
                            .device = BDT_CPU, .seed = 4};
    bdt_policy *p = NULL;
    cr_assert_eq(bdt_policy_create(&pc, &p), BD_OK, "%s", bd_lasterr());
    /* a spread of means and log stds: scale the head up */
    size_t np = bdt_policy_param_count(p);
    float *w = malloc(sizeof(float) * np);
    bdt_policy_get_params(p, w, np);
    for (size_t i = np - 2 * A - 2 * A * 16; i < np; i++)
        w[i] *= 200.0f;
    bdt_policy_set_params(p, w, np);
    free(w);
    float obs[N * S], out[N * 2 * A], z[N * A], ta[N * A], tl[N], ma[A];
    for (int i = 0; i < N * S; i++)
        obs[i] = sinf(0.37f * (float)i) * 2.0f;
    for (int i = 0; i < N; i++)
        bd_normals(9, (uint32_t)i, 5, A, z + i * A);
    const float low[A] = {-2.0f, 0.0f}, high[A] = {2.0f, 1.0f};
    cr_assert_eq(bdt_policy_forward(p, obs, N, out, NULL), BD_OK, "%s", bd_lasterr());
    for (int greedy = 0; greedy < 2; greedy++) {
        cr_assert_eq(bdt_sac_act(p, obs, N, greedy ? NULL : z, low, high, ta, tl), BD_OK, "%s", bd_lasterr());
        for (int i = 0; i < N; i++) {
            float lp = bd_squashed(out + i * 2 * A, A, z + i * A, greedy, low, high, ma);
            for (int d = 0; d < A; d++) {
                cr_assert(ma[d] >= low[d] && ma[d] <= high[d], "action %g out of bounds", ma[d]);
                cr_expect(fabsf(ma[d] - ta[i * A + d]) <= 16 * FLT_EPSILON * (high[d] - low[d]),
                          "column %d dim %d: muscle %.9g, learner %.9g", i, d, ma[d], ta[i * A + d]);
            }
            cr_expect(fabsf(lp - tl[i]) <= 64 * FLT_EPSILON * (1 + fabsf(lp)),
                      "column %d: log-densities %.9g and %.9g", i, lp, tl[i]);
        }
    }
    bdt_policy_destroy(p);
}

Test(actor, normal_draws_are_standard_and_reproducible)
{
    double s = 0, s2 = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        float z[3], w[3];
        bd_normals(7, (uint32_t)i, 3, 3, z);
        bd_normals(7, (uint32_t)i, 3, 3, w);
        cr_assert_eq(memcmp(z, w, sizeof z), 0);
        for (int d = 0; d < 3; d++) {
            s += z[d];
            s2 += (double)z[d] * z[d];
        }
    }
    double m = s / (3 * n), v = s2 / (3 * n) - m * m;
    cr_assert(fabs(m) < 0.03 && fabs(v - 1) < 0.05, "mean %g var %g", m, v);
}

/* ---- a muscle's per-agent step (muscle/actor.c) -------------------------------------- */

/* A shard of 64 worlds of a made-up env (5 observation columns, 3 actuators) and one
 * continuous agent that sees columns 3, 0, 4 and sets actuators 2 and 0 in [-1, 1]. */
#define MP_N 64
#define MP_D 5
#define MP_AD 3
typedef struct {
    bd_agent_cfg cfg;
    bd_agent_plan ap;
    bd_env_plan envp;
    int sens[3], act[2];
    float lo[2], hi[2];
    bd_env_batch b;
    float obs[MP_N * MP_D], fin[MP_N * MP_D], acts[MP_N * MP_AD], rew[MP_N];
    uint8_t term[MP_N], trunc[MP_N];
    float mean[3], inv[3]; /* the brain's normaliser as a WEIGHTS message carries it */
} mp_fixture;

/* What the actor must compute from the normaliser: clip((x - mean) * inv, -10, 10) with
 * inv = 1 / sqrt(var + 1e-8) rounded to float once. */
static void mp_normalise(const mp_fixture *f, const float *x, float *y, int n)
{
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 3; s++) {
            float v = (x[i * 3 + s] - f->mean[s]) * f->inv[s];
            y[i * 3 + s] = v < -10.0f ? -10.0f : v > 10.0f ? 10.0f : v;
        }
}

static void mp_setup(mp_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->cfg.name = "walker";
    f->sens[0] = 3, f->sens[1] = 0, f->sens[2] = 4;
    f->act[0] = 2, f->act[1] = 0;
    f->lo[0] = f->lo[1] = -1;
    f->hi[0] = f->hi[1] = 1;
    f->envp.shape.members = f->envp.shape.count[0] = 1; /* one agent per world */
    f->ap = (bd_agent_plan){.cfg = &f->cfg, .env = &f->envp, .members = 1, .nsens = 3, .nact = 2, .sens_cols = f->sens,
                            .act_cols = f->act, .continuous = 1, .act_low = f->lo,
                            .act_high = f->hi, .seed = 99};
    for (int i = 0; i < MP_N * MP_D; i++) {
        f->obs[i] = 3.0f * sinf(0.37f * (float)i) + 1.0f;
        f->fin[i] = 2.0f * cosf(0.91f * (float)i) - 0.5f;
    }
    for (int i = 0; i < MP_N * MP_AD; i++)
        f->acts[i] = 7.0f; /* untouched columns keep this */
    for (int i = 0; i < MP_N; i++) {
        f->rew[i] = (float)i;
        f->term[i] = i % 5 == 0;
        f->trunc[i] = i % 3 == 0; /* i % 15 == 0: both, no bootstrap */
    }
    f->b = (bd_env_batch){.n = MP_N, .members = 1, .obs_dim = MP_D, .act_dim = MP_AD, .obs = f->obs,
                          .actions = f->acts, .rewards = f->rew, .terminated = f->term,
                          .truncated = f->trunc, .final_obs = f->fin, .world0 = 1000};
    for (int s = 0; s < 3; s++) { /* any statistics will do; one clips */
        f->mean[s] = 0.3f * (float)s - 0.2f;
        f->inv[s] = s == 2 ? 31.6f : 1.0f / (1.7f + (float)s);
    }
}

/* The actor's network as libtorch builds it (the reference the actor's own is held to),
 * its weights scaled so its outputs are far from the init's near-zero means, and those
 * weights handed to the actor. */
static bdt_policy *mp_spread(bd_actor *mp, int hidden, int layers)
{
    bdt_policy_config pc = {.obs_dim = mp->args.S, .act_kind = BDT_CONTINUOUS, .act_dim = mp->args.A,
                            .hidden = hidden, .layers = layers, .device = BDT_CPU, .seed = 99};
    bdt_policy *ref = NULL;
    cr_assert_eq(bdt_policy_create(&pc, &ref), BD_OK, "%s", bd_lasterr());
    size_t np = bdt_policy_param_count(ref);
    float *p = malloc(sizeof(float) * np);
    cr_assert_eq(bdt_policy_get_params(ref, p, np), BD_OK);
    for (size_t k = 0; k < np; k++)
        p[k] = p[k] * 30.0f + 0.01f * (float)(k % 7);
    cr_assert_eq(bdt_policy_set_params(ref, p, np), BD_OK);
    cr_assert_eq(bd_actor_set_params(mp, p, np), BD_OK, "%s", bd_lasterr());
    free(p);
    return ref;
}

/* item 1 of issue 20: an AVX-512 EPYC's batched GEMM summed the value of world 57 in
 * another order than the one-row forward (23.2790375 vs 23.2790565): values are compared
 * within the rounding of the network's sums (tests/tolerance.h), not a fixed 1e-5. */
Test(actor, item01_muscle_step_on_cpu_matches_its_parts_on_any_cpu)
{
    static mp_fixture f;
    mp_setup(&f);
    bd_actor mp;
    cr_assert_eq(bd_actor_init(&mp, &f.ap, &f.b, BD_DEVICE_CPU, BD_ACT_SAMPLE, NULL), BD_OK, "%s",
                 bd_lasterr());
    cr_assert_eq(bd_actor_set_net(&mp, 16, 2), BD_OK, "%s", bd_lasterr());
    cr_assert_null(mp.net, "a CPU muscle runs the C network, not libtorch's");
    bdt_policy *ref = mp_spread(&mp, 16, 2);
    cr_assert_eq(bd_actor_set_norm(&mp, f.mean, f.inv), BD_OK);
    float obs[MP_N * 3], act[MP_N * 2], logp[MP_N], val[MP_N];
    cr_assert_eq(bd_actor_act(&mp, f.obs, 12, obs, act, logp, val, f.acts), BD_OK, "%s",
                 bd_lasterr());
    /* the same by hand: gather, normalise, forward, sample */
    float nobs[MP_N * 3], mean[MP_N * 2], v[MP_N], logstd[2];
    for (int i = 0; i < MP_N; i++)
        for (int s = 0; s < 3; s++)
            cr_assert_eq(obs[i * 3 + s], f.obs[i * MP_D + f.sens[s]], "raw sensors in order");
    mp_normalise(&f, obs, nobs, MP_N);
    cr_assert_eq(bdt_policy_forward(ref, nobs, MP_N, mean, v), BD_OK);
    cr_assert_eq(bdt_policy_logstd(ref, logstd, 2), BD_OK);
    int spread = 0;
    double vmax = 0;
    for (int i = 0; i < MP_N; i++)
        vmax = fmax(vmax, fabs(v[i]));
    for (int i = 0; i < MP_N; i++) {
        float z[2], a[2];
        bd_normals(99, 1000u + (uint32_t)i, 12, 2, z);
        float lp = bd_gaussian(mean + i * 2, logstd, 2, z, 0, a);
        cr_assert_eq(val[i], v[i], "world %d: value of the normalised observation", i);
        cr_assert_eq(act[i * 2], a[0]);
        cr_assert_eq(act[i * 2 + 1], a[1]);
        cr_assert_eq(logp[i], lp);
        float c0 = a[0] < -1 ? -1 : a[0] > 1 ? 1 : a[0], c1 = a[1] < -1 ? -1 : a[1] > 1 ? 1 : a[1];
        cr_assert_eq(f.acts[i * MP_AD + 2], c0, "actuator 0 -> env column 2, clipped");
        cr_assert_eq(f.acts[i * MP_AD + 0], c1, "actuator 1 -> env column 0, clipped");
        cr_assert_eq(f.acts[i * MP_AD + 1], 7.0f, "a column the agent does not own");
        spread += fabsf(a[0]) > 1;
    }
    cr_assert(spread > 0, "some setpoints were clipped (the test would not see clipping)");

    /* record: flags and rewards copied, final values only where truncated, not terminated */
    float rew[MP_N], fval[MP_N];
    uint8_t te[MP_N], tr[MP_N];
    float raw_final[MP_N * 3];
    memset(fval, 0xff, sizeof fval);
    memset(raw_final, 0xff, sizeof raw_final);
    cr_assert_eq(bd_actor_record(&mp, &f.b, rew, te, tr, fval, raw_final), BD_OK, "%s", bd_lasterr());
    float fobs[3], nf[3], fv;
    int ended = 0;
    for (int i = 0; i < MP_N; i++) {
        cr_assert(rew[i] == f.rew[i] && te[i] == f.term[i] && tr[i] == f.trunc[i]);
        /* an ended world's final observation, as it is, for the trace */
        for (int s = 0; (f.term[i] || f.trunc[i]) && s < 3; s++)
            cr_assert_eq(raw_final[i * 3 + s], f.fin[i * MP_D + f.sens[s]], "world %d final sensor %d", i, s);
        ended += f.term[i] || f.trunc[i];
        if (!(f.trunc[i] && !f.term[i])) {
            cr_assert_eq(fval[i], 0.0f, "world %d needs no final value", i);
            continue;
        }
        for (int s = 0; s < 3; s++)
            fobs[s] = f.fin[i * MP_D + f.sens[s]];
        mp_normalise(&f, fobs, nf, 1);
        cr_assert_eq(bdt_policy_forward(ref, nf, 1, NULL, &fv), BD_OK);
        /* 3 -> 16 -> 16 -> 1: the sums' terms; their scale the largest value of the batch */
        cr_assert(bd_close_sum(fval[i], fv, 3 + 16 + 16, vmax), "world %d: value of its final observation: %.9g vs %.9g (tolerance %.3g)",
                  i, fval[i], fv, bd_tol_sum(3 + 16 + 16, vmax));
    }
    cr_assert(ended > 0, "some world ended (the test would not see final observations)");
    /* values of the current observations (the rollout's last values) */
    float lastv[MP_N];
    cr_assert_eq(bd_actor_values(&mp, f.obs, lastv), BD_OK);
    for (int i = 0; i < MP_N; i++)
        cr_assert_eq(lastv[i], v[i]);
    bd_actor_fini(&mp);
    bdt_policy_destroy(ref);
}

Test(actor, random_muscle_needs_no_network)
{
    static mp_fixture f;
    mp_setup(&f);
    f.ap.random = 1;
    bd_actor mp;
    cr_assert_eq(bd_actor_init(&mp, &f.ap, &f.b, BD_DEVICE_CPU, BD_ACT_SAMPLE, NULL), BD_OK);
    cr_assert_neq(bd_actor_set_net(&mp, 16, 2), BD_OK, "the random muscle builds no network");
    cr_assert_null(mp.net);
    float obs[MP_N * 3], act[MP_N * 2], logp[MP_N], val[MP_N], fval[MP_N], rew[MP_N];
    uint8_t te[MP_N], tr[MP_N];
    cr_assert_eq(bd_actor_act(&mp, f.obs, 3, obs, act, logp, val, f.acts), BD_OK);
    float fin[MP_N * 3];
    cr_assert_eq(bd_actor_record(&mp, &f.b, rew, te, tr, fval, fin), BD_OK);
    for (int i = 0; i < MP_N; i++) {
        cr_assert(act[i * 2] >= -1 && act[i * 2] < 1 && val[i] == 0 && fval[i] == 0);
        cr_assert_float_eq(logp[i], (float)(-2 * log(2.0)), 1e-6, "uniform on [-1, 1]^2");
    }
    bd_actor_fini(&mp);
}

/* The same step on the GPU (device buffers beside a CUDA policy) agrees with the CPU:
 * the network's floats differ in the last bits between devices, so values, actions and
 * setpoints agree to 1e-4 and log-probabilities to 1e-3, relative. */
Test(actor, muscle_step_cuda_matches_cpu)
{
    if (!bd_cuda_available() || !bdt_cuda_available())
        cr_skip_test("needs a CUDA GPU and a CUDA libtorch");
    static mp_fixture f;
    mp_setup(&f);
    bd_actor cpu, gpu;
    cr_assert_eq(bd_actor_init(&cpu, &f.ap, &f.b, BD_DEVICE_CPU, BD_ACT_SAMPLE, NULL), BD_OK);
    cr_assert_eq(bd_actor_set_net(&cpu, 16, 2), BD_OK);
    bdt_policy *ref = mp_spread(&cpu, 16, 2);
    size_t np = bdt_policy_param_count(ref);
    float *p = malloc(sizeof(float) * np);
    cr_assert_eq(bdt_policy_get_params(ref, p, np), BD_OK);
    bdt_policy_destroy(ref);
    cr_assert_eq(bd_actor_set_norm(&cpu, f.mean, f.inv), BD_OK);
    /* the shard's buffers on the device */
    bd_env_batch db = f.b;
    void *d[7];
    const size_t of = sizeof f.obs, oa = sizeof f.acts;
    const void *src[7] = {f.obs, f.fin, f.acts, f.rew, f.term, f.trunc, NULL};
    size_t bytes[7] = {of, of, oa, sizeof f.rew, MP_N, MP_N, 0};
    for (int k = 0; k < 6; k++) {
        cr_assert_eq(bd_dev_alloc(BD_DEVICE_CUDA, bytes[k], &d[k]), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_dev_from_host(BD_DEVICE_CUDA, d[k], src[k], bytes[k]), BD_OK);
    }
    db.obs = d[0], db.final_obs = d[1], db.actions = d[2], db.rewards = d[3];
    db.terminated = d[4], db.truncated = d[5];
    cr_assert_eq(bd_actor_init(&gpu, &f.ap, &db, BD_DEVICE_CUDA, BD_ACT_SAMPLE, NULL), BD_OK,
                 "%s", bd_lasterr());
    cr_assert_eq(bd_actor_set_net(&gpu, 16, 2), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_actor_set_params(&gpu, p, np), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_actor_set_norm(&gpu, f.mean, f.inv), BD_OK);
    /* outputs on the device: obs, act, logp, val, rew, fval, flags */
    float *go, *ga, *gl, *gv, *gr, *gf, *glast;
    uint8_t *gte, *gtr;
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N * 3, (void **)&go);
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N * 2, (void **)&ga);
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N, (void **)&gl);
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N, (void **)&gv);
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N, (void **)&gr);
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N, (void **)&gf);
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof(float) * MP_N, (void **)&glast);
    bd_dev_alloc(BD_DEVICE_CUDA, MP_N, (void **)&gte);
    bd_dev_alloc(BD_DEVICE_CUDA, MP_N, (void **)&gtr);
    float obs[MP_N * 3], act[MP_N * 2], logp[MP_N], val[MP_N], rew[MP_N], fval[MP_N], last[MP_N];
    uint8_t te[MP_N], tr[MP_N];
    cr_assert_eq(bd_actor_act(&cpu, f.obs, 12, obs, act, logp, val, f.acts), BD_OK);
    float fin[MP_N * 3], *gfin = NULL;
    bd_dev_alloc(BD_DEVICE_CUDA, sizeof fin, (void **)&gfin);
    cr_assert_eq(bd_actor_record(&cpu, &f.b, rew, te, tr, fval, fin), BD_OK);
    cr_assert_eq(bd_actor_values(&cpu, f.obs, last), BD_OK);
    cr_assert_eq(bd_actor_act(&gpu, db.obs, 12, go, ga, gl, gv, db.actions), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_actor_record(&gpu, &db, gr, gte, gtr, gf, gfin), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_actor_values(&gpu, db.obs, glast), BD_OK, "%s", bd_lasterr());
    float h_o[MP_N * 3], h_a[MP_N * 2], h_l[MP_N], h_v[MP_N], h_r[MP_N], h_f[MP_N], h_last[MP_N];
    float h_env[MP_N * MP_AD];
    uint8_t h_te[MP_N], h_tr[MP_N];
    cr_assert_eq(bd_dev_to_host(BD_DEVICE_CUDA, h_o, go, sizeof h_o), BD_OK, "%s", bd_lasterr());
    bd_dev_to_host(BD_DEVICE_CUDA, h_a, ga, sizeof h_a);
    bd_dev_to_host(BD_DEVICE_CUDA, h_l, gl, sizeof h_l);
    bd_dev_to_host(BD_DEVICE_CUDA, h_v, gv, sizeof h_v);
    bd_dev_to_host(BD_DEVICE_CUDA, h_r, gr, sizeof h_r);
    bd_dev_to_host(BD_DEVICE_CUDA, h_f, gf, sizeof h_f);
    bd_dev_to_host(BD_DEVICE_CUDA, h_last, glast, sizeof h_last);
    bd_dev_to_host(BD_DEVICE_CUDA, h_te, gte, sizeof h_te);
    bd_dev_to_host(BD_DEVICE_CUDA, h_tr, gtr, sizeof h_tr);
    bd_dev_to_host(BD_DEVICE_CUDA, h_env, db.actions, sizeof h_env);
    cr_assert_eq(memcmp(h_o, obs, sizeof obs), 0, "gathered observations");
    float h_fin[MP_N * 3];
    bd_dev_to_host(BD_DEVICE_CUDA, h_fin, gfin, sizeof h_fin);
    for (int i = 0; i < MP_N; i++)
        if (te[i] || tr[i])
            cr_assert_eq(memcmp(h_fin + 3 * i, fin + 3 * i, 3 * sizeof(float)), 0, "world %d final observation", i);
    cr_assert_eq(memcmp(h_te, te, sizeof te), 0);
    cr_assert_eq(memcmp(h_tr, tr, sizeof tr), 0);
    cr_assert_eq(memcmp(h_r, rew, sizeof rew), 0);
/* |x - y| relative to the size of y: outputs of the scaled network run into the tens */
#define MP_CLOSE(x, y, tol) (fabsf((x) - (y)) <= (tol) * (1.0f + fabsf(y)))
    for (int i = 0; i < MP_N; i++) {
        cr_assert(MP_CLOSE(h_v[i], val[i], 1e-4f), "world %d value %g %g", i, h_v[i], val[i]);
        cr_assert(MP_CLOSE(h_l[i], logp[i], 1e-3f), "world %d logp %g %g", i, h_l[i], logp[i]);
        cr_assert(MP_CLOSE(h_f[i], fval[i], 1e-4f), "world %d final value", i);
        cr_assert(MP_CLOSE(h_last[i], last[i], 1e-4f), "world %d last value", i);
        for (int u = 0; u < 2; u++)
            cr_assert(MP_CLOSE(h_a[i * 2 + u], act[i * 2 + u], 1e-4f), "world %d action %d", i, u);
        for (int c = 0; c < MP_AD; c++)
            cr_assert(MP_CLOSE(h_env[i * MP_AD + c], f.acts[i * MP_AD + c], 1e-4f), "world %d col %d", i, c);
    }
    void *outs[] = {go, ga, gl, gv, gr, gf, glast, gte, gtr, gfin};
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++)
        bd_dev_free(BD_DEVICE_CUDA, outs[k]);
    for (int k = 0; k < 6; k++)
        bd_dev_free(BD_DEVICE_CUDA, d[k]);
    bd_actor_fini(&gpu);
    bd_actor_fini(&cpu);
    free(p);
}

Test(actor, muscles_normalise_bit_for_bit_as_the_learner)
{
    /* the brain's running statistics after odd batches, sent as a WEIGHTS message carries
     * them; the muscle's normalised observations equal bd_obsnorm_apply's exactly */
    static mp_fixture f;
    mp_setup(&f);
    bd_obsnorm norm;
    bd_obsnorm_init(&norm, 3);
    float batch[3 * 1000];
    uint64_t x = 88172645463325252ull;
    for (int r = 0; r < 5; r++) {
        for (int k = 0; k < 3 * 1000; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            batch[k] = (float)((double)(x >> 11) / 9007199254740992.0 * (r + 1) * 7.3 - 2.9 * (k % 3));
        }
        bd_obsnorm_update(&norm, batch, 1000);
    }
    float packed[6];
    bd_obsnorm_pack(&norm, packed);
    bd_actor mp;
    cr_assert_eq(bd_actor_init(&mp, &f.ap, &f.b, BD_DEVICE_CPU, BD_ACT_SAMPLE, NULL), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_actor_set_net(&mp, 8, 1), BD_OK);
    cr_assert_eq(bd_actor_set_norm(&mp, packed, packed + 3), BD_OK);
    float raw[MP_N * 3], net[MP_N * 3], want[MP_N * 3];
    for (int i = 0; i < MP_N; i++)
        bd_act_gather(i, &mp.args, f.obs, raw, net);
    bd_obsnorm_apply(&norm, raw, want, MP_N);
    cr_assert_eq(memcmp(net, want, sizeof want), 0, "the muscle's normalised observations differ from the learner's");
    bd_actor_fini(&mp);
}

/* ---- the rule-based muscle (muscle/fsm.{h,c}) --------------------------------------- */

#include "muscle/fsm_parse.h"

/* An agent of 4 sensors (a.d, a.x, a.y, a.tag) and 2 Box actuators (a.speed, a.turn). */
typedef struct {
    bd_agent_cfg cfg;
    bd_agent_plan ap;
    char *sens[4], *acts[2];
    bd_node *root;
    /* fsm_as_group: the env's layout and the agent's columns */
    bd_env_plan envp;
    int sc[4], acols[2];
    float lo[2], hi[2];
} fsm_fixture;

static void fsm_setup(fsm_fixture *f, const char *yaml)
{
    memset(f, 0, sizeof *f);
    static const char *const s[] = {"a.d", "a.x", "a.y", "a.tag"}, *const u[] = {"a.speed", "a.turn"};
    for (int k = 0; k < 4; k++)
        f->sens[k] = (char *)s[k];
    for (int k = 0; k < 2; k++)
        f->acts[k] = (char *)u[k];
    f->cfg.name = "rules";
    cr_assert_eq(bd_yaml_parse(yaml, strlen(yaml), "fsm.yml", &f->root), BD_OK, "%s", bd_lasterr());
    f->cfg.node = f->root;
    f->ap = (bd_agent_plan){.cfg = &f->cfg, .nsens = 4, .nact = 2, .sensor_ids = f->sens, .actuator_ids = f->acts};
}

/* The agent drives group 1 of an env of M rows per world: 2 members from row `first`,
 * every sensor and both actuators (Box [-1, 1]) of their rows. */
static void fsm_as_group(fsm_fixture *f, int M, int first)
{
    f->envp.shape.members = M;
    f->envp.shape.first[1] = first;
    for (int k = 0; k < 4; k++)
        f->sc[k] = k;
    for (int k = 0; k < 2; k++) {
        f->acols[k] = k;
        f->lo[k] = -1;
        f->hi[k] = 1;
    }
    f->ap.env = &f->envp;
    f->ap.group = 1;
    f->ap.members = 2;
    f->ap.sens_cols = f->sc;
    f->ap.act_cols = f->acols;
    f->ap.continuous = 1;
    f->ap.act_low = f->lo;
    f->ap.act_high = f->hi;
    f->ap.random = 1;
}

static int fsm_read(fsm_fixture *f, bd_fsm *m, char *err, size_t len)
{
    bd_diags d = BD_DIAGS_INIT;
    int rc = bd_fsm_parse(f->root, &f->ap, &d, m);
    int drc = bd_diags_finish(&d);
    snprintf(err, len, "%s", drc ? bd_lasterr() : "");
    return rc ? rc : drc;
}

static const char *const fsm_ok =
    "start: calm\n"
    "states:\n"
    "  calm:\n"
    "    action: {a.speed: 0.25, turn: 0.1}\n"
    "    transitions:\n"
    "      - {to: flee, when: \"tag == 1 and d < 0.5 or d < 0.1\"}\n"
    "      - {to: dither, when: \"d >= 2\", probability: 0.5}\n"
    "  flee:\n"
    "    action: {speed: 1}\n"
    "    steer: {away: [x, y], turn: turn, gain: 0.5}\n"
    "    transitions:\n"
    "      - {to: calm, when: \"d > 1\"}\n"
    "  dither:\n"
    "    steer: {toward: [a.x, a.y], turn: a.turn}\n";

Test(fsm, transitions_follow_and_before_or)
{
    fsm_fixture f;
    fsm_setup(&f, fsm_ok);
    bd_fsm m;
    char err[1024];
    cr_assert_eq(fsm_read(&f, &m, err, sizeof err), BD_OK, "%s", err);
    cr_assert_eq(m.nstates, 3);
    cr_assert_eq(m.start, 0);
    const float lo[2] = {-1, -1}, hi[2] = {1, 1};
    float act[2];
    /* d tag: (0.3, 1) -> flee (the and-clause); (0.3, 0) stays; (0.05, 0) -> flee (the or) */
    const float cases[][2] = {{0.3f, 1}, {0.3f, 0}, {0.05f, 0}, {0.7f, 1}};
    const int want[] = {1, 0, 1, 0};
    for (int c = 0; c < 4; c++) {
        float obs[4] = {cases[c][0], 0.0f, 1.0f, cases[c][1]};
        int s = bd_fsm_step(&m, 0, obs, 5, 0, 0, 2, lo, hi, act);
        cr_assert_eq(s, want[c], "case %d: state %d", c, s);
    }
    /* calm's setpoints; flee steers away from (0, 1): bearing -pi/2, times gain 0.5 */
    float obs[4] = {0.7f, 0.0f, 1.0f, 0.0f};
    cr_assert_eq(bd_fsm_step(&m, 0, obs, 5, 0, 0, 2, lo, hi, act), 0);
    cr_assert(act[0] == 0.25f && act[1] == 0.1f, "%g %g", act[0], act[1]);
    cr_assert_eq(bd_fsm_step(&m, 1, obs, 5, 0, 0, 2, lo, hi, act), 1);
    cr_assert_eq(act[0], 1.0f);
    cr_assert_float_eq(act[1], (float)(-0.5 * M_PI / 2), 1e-6);
    /* toward (0, 1) with the default gain 2: pi clipped to the actuator's 1 */
    cr_assert_eq(bd_fsm_step(&m, 2, obs, 5, 0, 0, 2, lo, hi, act), 2);
    cr_assert_eq(act[1], 1.0f);
    bd_node_destroy(f.root);
}

Test(fsm, probabilities_are_drawn_per_column_and_repeat)
{
    fsm_fixture f;
    fsm_setup(&f, fsm_ok);
    bd_fsm m;
    char err[1024];
    cr_assert_eq(fsm_read(&f, &m, err, sizeof err), BD_OK, "%s", err);
    const float lo[2] = {-1, -1}, hi[2] = {1, 1};
    float act[2], obs[4] = {3.0f, 0, 0, 0}; /* d >= 2: calm -> dither with probability 0.5 */
    int moved = 0;
    for (uint32_t col = 0; col < 4000; col++) {
        int s = bd_fsm_step(&m, 0, obs, 9, col, 17, 2, lo, hi, act);
        cr_assert_eq(s, bd_fsm_step(&m, 0, obs, 9, col, 17, 2, lo, hi, act), "the same draw twice");
        moved += s == 2;
    }
    cr_assert(moved > 1800 && moved < 2200, "%d of 4000 moved", moved);
    bd_node_destroy(f.root);
}

Test(fsm, problems_are_named_where_they_are)
{
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"states: {a: {transitions: [{to: b}]}}\n", "fsm.yml:1:33: to: no state 'b'"},
        {"states: {a: {transitions: [{to: a, when: \"d <\"}]}}\n", "ends in the middle of a comparison"},
        {"states: {a: {transitions: [{to: a, when: \"d < 1 nand x > 2\"}]}}\n", "expected 'and' or 'or'"},
        {"states: {a: {transitions: [{to: a, when: \"q < 1\"}]}}\n", "'q' is not a sensor of agent 'rules'"},
        {"states: {a: {transitions: [{to: a, when: \"d =< 1\"}]}}\n", "'=<' is not a comparison"},
        {"states: {a: {transitions: [{to: a, when: \"d < one\"}]}}\n", "'one' is not a number"},
        {"states: {a: {transitions: [{to: a, probability: 0}]}}\n", "probability: expected more than 0"},
        {"states: {a: {action: {push: 1}}}\n", "'push' is not an actuator of agent 'rules'"},
        {"states: {a: {steer: {away: [x], turn: turn}}}\n", "expected two sensors [X, Y]"},
        {"states: {a: {steer: {away: [x, y], toward: [x, y], turn: turn}}}\n", "give one of toward or away"},
        {"start: b\nstates: {a: {}}\n", "start: no state 'b'"},
        {"states: []\n", "needs params.states"},
        {"states: {a: {acton: {}}}\n", "unknown key 'acton' in a state; did you mean 'action'?"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        fsm_fixture f;
        fsm_setup(&f, bad[k].yaml);
        bd_fsm m;
        char err[1024];
        cr_assert_neq(fsm_read(&f, &m, err, sizeof err), BD_OK, "%s is refused", bad[k].yaml);
        cr_assert(strstr(err, bad[k].want), "%s: want '%s' in: %s", bad[k].yaml, bad[k].want, err);
        bd_node_destroy(f.root);
    }
}

/* An agent of a group drives its own rows of each world: 3 worlds of 4 rows (members 1
 * and 2 of each are the group's), and the state machine starts over where an episode
 * ended. */
Test(fsm, a_group_agent_reads_and_writes_its_rows)
{
    fsm_fixture f;
    fsm_setup(&f, "states:\n  go: {action: {speed: 0.5}, transitions: [{to: stop, when: \"d > 0\"}]}\n"
                  "  stop: {action: {speed: -0.5}}\n");
    bd_fsm m;
    char err[1024];
    cr_assert_eq(fsm_read(&f, &m, err, sizeof err), BD_OK, "%s", err);
    enum { W = 3, M = 4, D = 4, AD = 2 };
    float obs[W * M * D] = {0}, actions[W * M * AD], rew[W * M];
    uint8_t term[W * M] = {0}, trunc[W * M] = {0};
    for (int r = 0; r < W * M; r++) {
        obs[r * D + 0] = (float)r; /* d: the row's index */
        rew[r] = (float)r;
        actions[2 * r] = actions[2 * r + 1] = 7.0f;
    }
    fsm_as_group(&f, M, 1);
    bd_env_batch b = {.n = W, .members = M, .obs_dim = D, .act_dim = AD, .obs = obs, .actions = actions,
                      .rewards = rew, .terminated = term, .truncated = trunc, .final_obs = obs, .world0 = 10};
    bd_actor ac;
    cr_assert_eq(bd_actor_init(&ac, &f.ap, &b, BD_DEVICE_CPU, BD_ACT_FSM, &m), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(ac.n, W * 2);
    cr_assert_eq(ac.args.world0, 20, "its first column is world 10's first member");
    float ro[W * 2 * 4], ra[W * 2 * 2], lp[W * 2], val[W * 2];
    cr_assert_eq(bd_actor_act(&ac, obs, 0, ro, ra, lp, val, actions), BD_OK, "%s", bd_lasterr());
    for (int i = 0; i < W * 2; i++) {
        int row = (i / 2) * M + 1 + i % 2;
        cr_assert_eq(ro[i * 4], (float)row, "column %d reads row %d", i, row);
        cr_assert_eq(ra[i * 2], -0.5f, "d > 0 everywhere: stop");
        cr_assert_eq(actions[row * AD], -0.5f);
    }
    for (int w = 0; w < W; w++) /* rows of the other group are left alone */
        cr_assert(actions[(w * M) * AD] == 7.0f && actions[(w * M + 3) * AD] == 7.0f);
    /* world 1 ends: its two columns start over (in "go") */
    term[1 * M + 1] = term[1 * M + 2] = 1;
    float rr[W * 2], fv[W * 2], fo[W * 2 * 4];
    uint8_t rt[W * 2], rc[W * 2];
    cr_assert_eq(bd_actor_record(&ac, &b, rr, rt, rc, fv, fo), BD_OK);
    for (int i = 0; i < W * 2; i++) {
        int row = (i / 2) * M + 1 + i % 2;
        cr_assert_eq(rr[i], (float)row, "the reward of its own row");
        cr_assert_eq(ac.fsm_state[i], i / 2 == 1 ? 0 : 1, "column %d", i);
    }
    bd_actor_fini(&ac);
    bd_node_destroy(f.root);
}

/* The state machine of a group agent on the GPU does what it does on the CPU: the same
 * rows read and written, the same transitions (probabilities drawn from Philox), the same
 * steering (env/mathf.h's atan2), the same start-over where episodes ended. */
Test(fsm, a_group_agent_on_cuda_matches_the_cpu)
{
    if (!bd_cuda_available())
        cr_skip_test("needs a CUDA GPU");
    fsm_fixture f;
    fsm_setup(&f, fsm_ok);
    bd_fsm m;
    char err[1024];
    cr_assert_eq(fsm_read(&f, &m, err, sizeof err), BD_OK, "%s", err);
    enum { W = 40, M = 5, D = 4, AD = 2, R = W * M, C = W * 2 };
    static float obs[R * D], actions[R * AD], rew[R];
    static uint8_t term[R], trunc[R];
    for (int r = 0; r < R; r++) {
        obs[r * D + 0] = 0.05f * (float)(r % 60);         /* d: every transition's range */
        obs[r * D + 1] = sinf(0.7f * (float)r);           /* x, y: a point to steer by */
        obs[r * D + 2] = cosf(1.3f * (float)r);
        obs[r * D + 3] = (float)(r % 3 == 0);             /* tag */
        rew[r] = (float)r;
        term[r] = r % 7 == 0;
        actions[r * AD] = actions[r * AD + 1] = 7.0f;
    }
    fsm_as_group(&f, M, 3); /* the group's rows 3 and 4 of each world */
    f.ap.seed = 77;
    bd_env_batch hb = {.n = W, .members = M, .obs_dim = D, .act_dim = AD, .obs = obs, .actions = actions,
                       .rewards = rew, .terminated = term, .truncated = trunc, .final_obs = obs, .world0 = 6};
    bd_env_batch db = hb;
    void *d[5];
    const void *src[5] = {obs, actions, rew, term, trunc};
    const size_t bytes[5] = {sizeof obs, sizeof actions, sizeof rew, sizeof term, sizeof trunc};
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(bd_dev_alloc(BD_DEVICE_CUDA, bytes[k], &d[k]), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_dev_from_host(BD_DEVICE_CUDA, d[k], src[k], bytes[k]), BD_OK);
    }
    db.obs = db.final_obs = d[0], db.actions = d[1], db.rewards = d[2], db.terminated = d[3], db.truncated = d[4];
    bd_actor cpu, gpu;
    cr_assert_eq(bd_actor_init(&cpu, &f.ap, &hb, BD_DEVICE_CPU, BD_ACT_FSM, &m), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_actor_init(&gpu, &f.ap, &db, BD_DEVICE_CUDA, BD_ACT_FSM, &m), BD_OK, "%s", bd_lasterr());
    /* rollout rows, on each side */
    static float ro[C * 4], ra[C * 2], lp[C], val[C], rr[C], fv[C], fo[C * 4];
    static uint8_t rt[C], rc[C];
    void *g[9];
    const size_t gb[9] = {sizeof ro, sizeof ra, sizeof lp, sizeof val, sizeof rr, sizeof fv, sizeof fo, C, C};
    for (int k = 0; k < 9; k++)
        cr_assert_eq(bd_dev_alloc(BD_DEVICE_CUDA, gb[k], &g[k]), BD_OK, "%s", bd_lasterr());
    for (uint64_t step = 0; step < 3; step++) {
        cr_assert_eq(bd_actor_act(&cpu, obs, step, ro, ra, lp, val, actions), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_actor_act(&gpu, db.obs, step, g[0], g[1], g[2], g[3], db.actions), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_actor_record(&cpu, &hb, rr, rt, rc, fv, fo), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_actor_record(&gpu, &db, g[4], g[7], g[8], g[5], g[6]), BD_OK, "%s", bd_lasterr());
        static float h_a[C * 2], h_env[R * AD], h_r[C];
        static int h_s[C];
        cr_assert_eq(bd_dev_to_host(BD_DEVICE_CUDA, h_a, g[1], sizeof h_a), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_dev_to_host(BD_DEVICE_CUDA, h_env, db.actions, sizeof h_env), BD_OK);
        cr_assert_eq(bd_dev_to_host(BD_DEVICE_CUDA, h_r, g[4], sizeof h_r), BD_OK);
        cr_assert_eq(bd_dev_to_host(BD_DEVICE_CUDA, h_s, gpu.fsm_state, sizeof h_s), BD_OK);
        cr_assert_eq(memcmp(h_a, ra, sizeof h_a), 0, "step %d: the setpoints", (int)step);
        cr_assert_eq(memcmp(h_env, actions, sizeof h_env), 0, "step %d: the env's action rows", (int)step);
        cr_assert_eq(memcmp(h_r, rr, sizeof h_r), 0, "step %d: the rewards of its rows", (int)step);
        cr_assert_eq(memcmp(h_s, cpu.fsm_state, sizeof h_s), 0, "step %d: the states", (int)step);
    }
    for (int k = 0; k < 9; k++)
        bd_dev_free(BD_DEVICE_CUDA, g[k]);
    for (int k = 0; k < 5; k++)
        bd_dev_free(BD_DEVICE_CUDA, d[k]);
    bd_actor_fini(&gpu);
    bd_actor_fini(&cpu);
    bd_node_destroy(f.root);
}
