/* test_brain.c: the learner's arithmetic without processes: GAE worked out by hand
 * (termination, truncation with bootstrapping, rollout end), episode statistics,
 * minibatch shuffles, categorical sampling, the PPO params' validation, and a muscle's
 * per-agent step (gather, normalise, infer, sample, clip, record) against its parts, on
 * the CPU and, where a GPU and a CUDA libtorch answer, on CUDA. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "brain/obsnorm.h"
#include "brain/ppo.h"
#include "brain/stats.h"
#include "common/devmem.h"
#include "muscle/policy.h"

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
    cr_assert_eq(bd_stats_add(&s, 3, r, te, tr), BD_OK);
    cr_assert_eq(s.done_n, 2);
    cr_assert_eq(s.done[0].world, 0);
    cr_assert_eq(s.done[0].length, 2);
    cr_assert_float_eq(s.done[0].ret, 2.0f, 1e-6);
    cr_assert_eq(s.done[1].world, 1);
    cr_assert_eq(s.done[1].length, 3);
    cr_assert_float_eq(s.done[1].ret, 6.0f, 1e-6);
    float r2[2] = {7, 0};
    uint8_t te2[2] = {0, 0}, tr2[2] = {1, 0};
    cr_assert_eq(bd_stats_add(&s, 1, r2, te2, tr2), BD_OK);
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

Test(policy, categorical_sampling)
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

Test(ppo, params_defaults_and_errors)
{
    bd_ppo_params p;
    cr_assert_eq(bd_ppo_params_parse(NULL, 1000, &p), BD_OK);
    cr_assert_float_eq(p.learning_rate, 2.5e-4, 1e-12);
    cr_assert_eq(p.rollout_steps, 128);
    cr_assert_eq(p.opt.epochs, 4);
    cr_assert_eq(p.opt.minibatches, 4);
    cr_assert_eq(p.total_steps, 1000);
    bd_node *n;
    const char *bad = "lr: 0.1\n";
    cr_assert_eq(bd_yaml_parse(bad, strlen(bad), "b.yml", &n), BD_OK);
    cr_assert_eq(bd_ppo_params_parse(n, 1, &p), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "b.yml:1:1") && strstr(bd_lasterr(), "'lr'"), "%s", bd_lasterr());
    bd_node_destroy(n);
    const char *range = "rollout_steps: 0\n";
    cr_assert_eq(bd_yaml_parse(range, strlen(range), "c.yml", &n), BD_OK);
    cr_assert_eq(bd_ppo_params_parse(n, 1, &p), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "c.yml:1:"), "%s", bd_lasterr());
    bd_node_destroy(n);
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

Test(policy, gaussian_log_probability)
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

Test(policy, normal_draws_are_standard_and_reproducible)
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

/* ---- a muscle's per-agent step (muscle/policy.c) -------------------------------------- */

/* A shard of 64 worlds of a made-up env (5 observation columns, 3 actuators) and one
 * continuous agent that sees columns 3, 0, 4 and sets actuators 2 and 0 in [-1, 1]. */
#define MP_N 64
#define MP_D 5
#define MP_AD 3
typedef struct {
    bd_agent_cfg cfg;
    bd_agent_plan ap;
    int sens[3], act[2];
    float lo[2], hi[2];
    bd_env_batch b;
    float obs[MP_N * MP_D], fin[MP_N * MP_D], acts[MP_N * MP_AD], rew[MP_N];
    uint8_t term[MP_N], trunc[MP_N];
    bd_obsnorm norm;
} mp_fixture;

static void mp_setup(mp_fixture *f)
{
    memset(f, 0, sizeof *f);
    f->cfg.name = "walker";
    f->sens[0] = 3, f->sens[1] = 0, f->sens[2] = 4;
    f->act[0] = 2, f->act[1] = 0;
    f->lo[0] = f->lo[1] = -1;
    f->hi[0] = f->hi[1] = 1;
    f->ap = (bd_agent_plan){.cfg = &f->cfg, .nsens = 3, .nact = 2, .sens_cols = f->sens,
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
    f->b = (bd_env_batch){.n = MP_N, .obs_dim = MP_D, .act_dim = MP_AD, .obs = f->obs,
                          .actions = f->acts, .rewards = f->rew, .terminated = f->term,
                          .truncated = f->trunc, .final_obs = f->fin, .world0 = 1000};
    bd_obsnorm_init(&f->norm, 3);
    bd_obsnorm_update(&f->norm, f->obs, MP_N * MP_D / 3); /* any statistics will do */
}

/* Scales the policy's weights so its outputs are far from the init's near-zero means. */
static void mp_spread(bd_mpolicy *mp)
{
    size_t np = bdt_policy_param_count(mp->net);
    float *p = malloc(sizeof(float) * np);
    cr_assert_eq(bdt_policy_get_params(mp->net, p, np), BD_OK);
    for (size_t k = 0; k < np; k++)
        p[k] = p[k] * 30.0f + 0.01f * (float)(k % 7);
    cr_assert_eq(bd_mpolicy_set_params(mp, p, np), BD_OK, "%s", bd_lasterr());
    free(p);
}

Test(policy, muscle_step_on_cpu_matches_its_parts)
{
    static mp_fixture f;
    mp_setup(&f);
    bd_mpolicy mp;
    cr_assert_eq(bd_mpolicy_init(&mp, &f.ap, &f.b, BD_DEVICE_CPU, 16, 2, BD_ACT_SAMPLE), BD_OK, "%s",
                 bd_lasterr());
    mp_spread(&mp);
    cr_assert_eq(bd_mpolicy_set_norm(&mp, &f.norm), BD_OK);
    float obs[MP_N * 3], act[MP_N * 2], logp[MP_N], val[MP_N];
    cr_assert_eq(bd_mpolicy_act(&mp, f.obs, 12, obs, act, logp, val, f.acts), BD_OK, "%s",
                 bd_lasterr());
    /* the same by hand: gather, normalise, forward, sample */
    float nobs[MP_N * 3], mean[MP_N * 2], v[MP_N], logstd[2];
    for (int i = 0; i < MP_N; i++)
        for (int s = 0; s < 3; s++)
            cr_assert_eq(obs[i * 3 + s], f.obs[i * MP_D + f.sens[s]], "raw sensors in order");
    bd_obsnorm_apply(&f.norm, obs, nobs, MP_N);
    cr_assert_eq(bdt_policy_forward(mp.net, nobs, MP_N, mean, v), BD_OK);
    cr_assert_eq(bdt_policy_logstd(mp.net, logstd, 2), BD_OK);
    int spread = 0;
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
    memset(fval, 0xff, sizeof fval);
    cr_assert_eq(bd_mpolicy_record(&mp, &f.b, rew, te, tr, fval), BD_OK, "%s", bd_lasterr());
    float fobs[3], nf[3], fv;
    for (int i = 0; i < MP_N; i++) {
        cr_assert(rew[i] == f.rew[i] && te[i] == f.term[i] && tr[i] == f.trunc[i]);
        if (!(f.trunc[i] && !f.term[i])) {
            cr_assert_eq(fval[i], 0.0f, "world %d needs no final value", i);
            continue;
        }
        for (int s = 0; s < 3; s++)
            fobs[s] = f.fin[i * MP_D + f.sens[s]];
        bd_obsnorm_apply(&f.norm, fobs, nf, 1);
        cr_assert_eq(bdt_policy_forward(mp.net, nf, 1, NULL, &fv), BD_OK);
        cr_assert_float_eq(fval[i], fv, 1e-5, "world %d: value of its final observation", i);
    }
    /* values of the current observations (the rollout's last values) */
    float lastv[MP_N];
    cr_assert_eq(bd_mpolicy_values(&mp, f.obs, lastv), BD_OK);
    for (int i = 0; i < MP_N; i++)
        cr_assert_eq(lastv[i], v[i]);
    bd_mpolicy_fini(&mp);
}

Test(policy, random_muscle_needs_no_network)
{
    static mp_fixture f;
    mp_setup(&f);
    f.ap.random = 1;
    bd_mpolicy mp;
    cr_assert_eq(bd_mpolicy_init(&mp, &f.ap, &f.b, BD_DEVICE_CPU, 16, 2, BD_ACT_SAMPLE), BD_OK);
    cr_assert_null(mp.net);
    float obs[MP_N * 3], act[MP_N * 2], logp[MP_N], val[MP_N], fval[MP_N], rew[MP_N];
    uint8_t te[MP_N], tr[MP_N];
    cr_assert_eq(bd_mpolicy_act(&mp, f.obs, 3, obs, act, logp, val, f.acts), BD_OK);
    cr_assert_eq(bd_mpolicy_record(&mp, &f.b, rew, te, tr, fval), BD_OK);
    for (int i = 0; i < MP_N; i++) {
        cr_assert(act[i * 2] >= -1 && act[i * 2] < 1 && val[i] == 0 && fval[i] == 0);
        cr_assert_float_eq(logp[i], (float)(-2 * log(2.0)), 1e-6, "uniform on [-1, 1]^2");
    }
    bd_mpolicy_fini(&mp);
}

/* The same step on the GPU (device buffers beside a CUDA policy) agrees with the CPU:
 * the network's floats differ in the last bits between devices, so values, actions and
 * setpoints agree to 1e-4 and log-probabilities to 1e-3, relative. */
Test(policy, muscle_step_cuda_matches_cpu)
{
    if (!bd_cuda_available() || !bdt_cuda_available())
        cr_skip_test("needs a CUDA GPU and a CUDA libtorch");
    static mp_fixture f;
    mp_setup(&f);
    bd_mpolicy cpu, gpu;
    cr_assert_eq(bd_mpolicy_init(&cpu, &f.ap, &f.b, BD_DEVICE_CPU, 16, 2, BD_ACT_SAMPLE), BD_OK);
    mp_spread(&cpu);
    size_t np = bdt_policy_param_count(cpu.net);
    float *p = malloc(sizeof(float) * np);
    cr_assert_eq(bdt_policy_get_params(cpu.net, p, np), BD_OK);
    cr_assert_eq(bd_mpolicy_set_norm(&cpu, &f.norm), BD_OK);
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
    cr_assert_eq(bd_mpolicy_init(&gpu, &f.ap, &db, BD_DEVICE_CUDA, 16, 2, BD_ACT_SAMPLE), BD_OK,
                 "%s", bd_lasterr());
    cr_assert_eq(bd_mpolicy_set_params(&gpu, p, np), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_mpolicy_set_norm(&gpu, &f.norm), BD_OK);
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
    cr_assert_eq(bd_mpolicy_act(&cpu, f.obs, 12, obs, act, logp, val, f.acts), BD_OK);
    cr_assert_eq(bd_mpolicy_record(&cpu, &f.b, rew, te, tr, fval), BD_OK);
    cr_assert_eq(bd_mpolicy_values(&cpu, f.obs, last), BD_OK);
    cr_assert_eq(bd_mpolicy_act(&gpu, db.obs, 12, go, ga, gl, gv, db.actions), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_mpolicy_record(&gpu, &db, gr, gte, gtr, gf), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_mpolicy_values(&gpu, db.obs, glast), BD_OK, "%s", bd_lasterr());
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
    void *outs[] = {go, ga, gl, gv, gr, gf, glast, gte, gtr};
    for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++)
        bd_dev_free(BD_DEVICE_CUDA, outs[k]);
    for (int k = 0; k < 6; k++)
        bd_dev_free(BD_DEVICE_CUDA, d[k]);
    bd_mpolicy_fini(&gpu);
    bd_mpolicy_fini(&cpu);
    free(p);
}
