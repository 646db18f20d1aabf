/* test_classic.c: Pendulum-v1, MountainCar-v0 and Acrobot-v1 against Gymnasium's published
 * equations: for each, transitions worked out by hand, an independent float64
 * implementation on thousands of random states and actions, termination and truncation
 * limits, rewards, auto-reset ranges and counters, seeding and shard independence, and CPU
 * vs CUDA bit identity over 1000 steps (skipped without a GPU). Also the angle wrapping
 * added to env/mathf.h.
 * Tolerances: our physics runs in float32 (unit roundoff u = 2^-24 = 6e-8, bd_sinf/bd_cosf
 * within about 1 ulp) against float64 references fed the same float32 inputs, so every
 * difference is float32 rounding; each bound below is a few ulp of the largest magnitude
 * that flows through the formula, with the reasoning next to it. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bodhi/env.h"
#include "common/devmem.h"
#include "env/acrobot.h"
#include "env/mathf.h"
#include "env/mountaincar.h"
#include "env/pendulum.h"

/* ---- helpers ------------------------------------------------------------------------ */

static bd_env *make(const char *name, int n, uint32_t world0, uint64_t seed, int max_steps)
{
    bd_env *e = NULL;
    const bd_env_desc *d = bd_env_find(name);
    cr_assert_not_null(d, "env %s is registered", name);
    cr_assert_eq(bd_env_create(d, n, world0, seed, BD_DEVICE_CPU, max_steps, NULL, &e), BD_OK, "%s",
                 bd_lasterr());
    return e;
}

/* splitmix64: the test's own random numbers, independent of the env's Philox. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A float uniform in [lo, hi). */
static float uni(uint64_t *s, double lo, double hi)
{
    return (float)(lo + (hi - lo) * (double)(mix(s) >> 11) * 0x1p-53);
}

/* The action of world i at step t: a deterministic hash, a discrete index in 0..n-1 or,
 * for n == 0, a torque in [-3, 3) (beyond Pendulum's [-2, 2], so clipping is exercised). */
static float action_of(int t, int i, int n)
{
    uint32_t h = (uint32_t)t * 2654435761u ^ (uint32_t)i * 40503u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    if (n > 0)
        return (float)(h % (uint32_t)n);
    return (float)(h >> 8) * (1.0f / 16777216.0f) * 6.0f - 3.0f;
}

/* |a - b| as angles: the difference reduced into [-pi, pi]. */
static double angle_diff(double a, double b)
{
    double d = fmod(a - b, 2.0 * M_PI);
    if (d > M_PI)
        d -= 2.0 * M_PI;
    if (d < -M_PI)
        d += 2.0 * M_PI;
    return fabs(d);
}

/* A whole-batch [0,8) equals shards [0,4) and [4,8) stepped with the same actions, for
 * `steps` steps (episodes end and reset along the way); another seed differs. */
static void check_shards(const char *name, int steps)
{
    bd_env *whole = make(name, 8, 0, 99, 0), *lo = make(name, 4, 0, 99, 0),
           *hi = make(name, 4, 4, 99, 0), *other = make(name, 8, 0, 100, 0);
    bd_env_batch *w = bd_env_batch_of(whole), *l = bd_env_batch_of(lo), *h = bd_env_batch_of(hi),
                 *o = bd_env_batch_of(other);
    int od = w->obs_dim, n = bd_env_desc_of(whole)->actuators[0].n;
    cr_assert_neq(memcmp(w->obs, o->obs, sizeof(float) * 8 * od), 0, "another seed, other resets");
    int ends = 0;
    for (int t = 0; t < steps; t++) {
        for (int i = 0; i < 8; i++)
            w->actions[i] = action_of(t, i, n);
        memcpy(l->actions, w->actions, 4 * sizeof(float));
        memcpy(h->actions, w->actions + 4, 4 * sizeof(float));
        cr_assert_eq(bd_env_step(whole), BD_OK);
        cr_assert_eq(bd_env_step(lo), BD_OK);
        cr_assert_eq(bd_env_step(hi), BD_OK);
        cr_assert_eq(memcmp(w->obs, l->obs, sizeof(float) * 4 * od), 0, "%s step %d", name, t);
        cr_assert_eq(memcmp(w->obs + 4 * od, h->obs, sizeof(float) * 4 * od), 0, "%s step %d", name, t);
        cr_assert_eq(memcmp(w->rewards, l->rewards, 4 * sizeof(float)), 0);
        cr_assert_eq(memcmp(w->rewards + 4, h->rewards, 4 * sizeof(float)), 0);
        cr_assert_eq(memcmp(w->terminated, l->terminated, 4), 0);
        cr_assert_eq(memcmp(w->terminated + 4, h->terminated, 4), 0);
        cr_assert_eq(memcmp(w->truncated, l->truncated, 4), 0);
        cr_assert_eq(memcmp(w->truncated + 4, h->truncated, 4), 0);
        for (int i = 0; i < 8; i++) {
            if (!w->terminated[i] && !w->truncated[i])
                continue;
            ends++;
            const float *f = i < 4 ? l->final_obs + i * od : h->final_obs + (i - 4) * od;
            cr_assert_eq(memcmp(w->final_obs + i * od, f, sizeof(float) * od), 0);
        }
        if (w->state)
            cr_assert_eq(memcmp(w->state + 4 * w->state_dim, h->state, sizeof(float) * 4 * w->state_dim),
                         0);
    }
    cr_assert(ends > 0, "%s: some episodes ended in %d steps", name, steps);
    bd_env_destroy(whole);
    bd_env_destroy(lo);
    bd_env_destroy(hi);
    bd_env_destroy(other);
}

/* CPU and CUDA from the same seed and actions agree bit for bit for 1000 steps. */
static void check_cuda(const char *name)
{
    if (!bd_cuda_available())
        cr_skip_test("no CUDA GPU answers here");
    const int n = 4096;
    bd_env *c = make(name, n, 0, 2024, 0), *g;
    cr_assert_eq(bd_env_create(bd_env_find(name), n, 0, 2024, BD_DEVICE_CUDA, 0, NULL, &g), BD_OK, "%s",
                 bd_lasterr());
    bd_env_batch *cb = bd_env_batch_of(c), hb;
    int od = cb->obs_dim, na = bd_env_desc_of(c)->actuators[0].n;
    cr_assert_eq(bd_env_download(g, &hb), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(memcmp(cb->obs, hb.obs, sizeof(float) * od * n), 0, "%s: first resets differ", name);
    float *acts = malloc(sizeof(float) * n);
    cr_assert_not_null(acts);
    long ends = 0;
    for (int t = 0; t < 1000; t++) {
        for (int i = 0; i < n; i++)
            acts[i] = action_of(t, i, na);
        cr_assert_eq(bd_env_upload_actions(c, acts), BD_OK);
        cr_assert_eq(bd_env_upload_actions(g, acts), BD_OK);
        cr_assert_eq(bd_env_step(c), BD_OK);
        cr_assert_eq(bd_env_step(g), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_env_download(g, &hb), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(memcmp(cb->obs, hb.obs, sizeof(float) * od * n), 0, "%s: obs differ at step %d",
                     name, t);
        cr_assert_eq(memcmp(cb->rewards, hb.rewards, sizeof(float) * n), 0,
                     "%s: rewards differ at step %d", name, t);
        cr_assert_eq(memcmp(cb->terminated, hb.terminated, n), 0, "%s: terminated differ at step %d",
                     name, t);
        cr_assert_eq(memcmp(cb->truncated, hb.truncated, n), 0, "%s: truncated differ at step %d",
                     name, t);
        cr_assert_eq(memcmp(cb->final_obs, hb.final_obs, sizeof(float) * od * n), 0,
                     "%s: final obs differ at step %d", name, t);
        cr_assert_eq(memcmp(cb->elapsed, hb.elapsed, sizeof(int32_t) * n), 0);
        for (int i = 0; i < n; i++)
            ends += cb->terminated[i] || cb->truncated[i];
    }
    cr_assert(ends > 0, "%s: episodes ended during the comparison", name);
    free(acts);
    bd_env_destroy(c);
    bd_env_destroy(g);
}

Test(classic, registry_shapes_and_defaults)
{
    struct {
        const char *name;
        int obs, state, discrete, max_steps, n;
        const char *act, *sensors[6];
    } want[3] = {
        {"pendulum", 3, 2, 0, 200, 0, "torque", {"cos_theta", "sin_theta", "theta_dot"}},
        {"mountaincar", 2, 0, 1, 200, 3, "push", {"position", "velocity"}},
        {"acrobot", 6, 4, 1, 500, 3, "torque",
         {"cos_theta1", "sin_theta1", "cos_theta2", "sin_theta2", "theta1_dot", "theta2_dot"}},
    };
    for (int k = 0; k < 3; k++) {
        const bd_env_desc *d = bd_env_find(want[k].name);
        cr_assert_not_null(d, "%s", want[k].name);
        cr_assert_eq(d->obs_dim, want[k].obs);
        cr_assert_eq(d->act_dim, 1);
        cr_assert_eq(d->state_dim, want[k].state);
        cr_assert_eq(d->discrete, want[k].discrete);
        cr_assert_eq(d->default_max_steps, want[k].max_steps, "%s time limit", want[k].name);
        cr_assert_str_eq(d->actuators[0].name, want[k].act);
        cr_assert_eq(d->actuators[0].n, want[k].n);
        for (int j = 0; j < d->obs_dim; j++)
            cr_assert_str_eq(d->sensors[j].name, want[k].sensors[j]);
        cr_assert_not_null(d->summary);
    }
    const bd_env_desc *p = bd_env_find("pendulum");
    cr_assert_eq(p->actuators[0].low, -2.0f);
    cr_assert_eq(p->actuators[0].high, 2.0f);
    cr_assert_eq(p->sensors[2].high, 8.0f);
    const bd_env_desc *m = bd_env_find("mountaincar");
    cr_assert_eq(m->sensors[0].low, -1.2f);
    cr_assert_eq(m->sensors[1].high, 0.07f);
    const bd_env_desc *a = bd_env_find("acrobot");
    cr_assert_float_eq(a->sensors[4].high, 4.0 * M_PI, 1e-5);
    cr_assert_float_eq(a->sensors[5].high, 9.0 * M_PI, 1e-5);
}

/* ---- mathf: angle wrapping ------------------------------------------------------------ */

Test(mathf, angle_normalize_matches_python_modulo)
{
    /* Gymnasium: ((x + pi) % (2 pi)) - pi with Python's floored modulo, in float64. */
    for (int k = -200000; k <= 200000; k++) {
        float x = (float)k * 1e-3f * 3.0f;
        double xd = x, r = fmod(xd + M_PI, 2.0 * M_PI);
        if (r < 0)
            r += 2.0 * M_PI;
        r -= M_PI;
        float got = bd_angle_normalize(x);
        cr_assert(got >= -BD_PI_F && got < BD_PI_F, "normalize(%g) = %g out of [-pi, pi)", x, got);
        /* |x| <= 600, k <= 96 turns: k * 6.28125 is exact and the other two parts of 2 pi
         * round by under 1e-8, so the result is within a few 1e-8; we allow
         * 2 ulp(|x|) + 1e-7 (float64's own x + pi rounds by up to ulp(|x|) / 2^29). */
        double tol = 2.0 * fabs(xd) * FLT_EPSILON + 1e-7;
        cr_assert(angle_diff(got, r) <= tol, "normalize(%.9g) = %.9g vs %.9g", x, got, r);
    }
    cr_assert(isnan(bd_angle_normalize(NAN)));
    cr_assert(isnan(bd_angle_normalize(INFINITY)));
}

Test(mathf, wrap_pi_like_gymnasium)
{
    /* inside [-pi, pi]: untouched, bit for bit */
    for (int k = -3141; k <= 3141; k++) {
        float x = (float)k * 1e-3f;
        cr_assert_eq(bd_wrap_pi(x), x);
    }
    cr_assert_eq(bd_wrap_pi(BD_PI_F), BD_PI_F);
    cr_assert_eq(bd_wrap_pi(-BD_PI_F), -BD_PI_F);
    /* outside: Gymnasium's loop (subtract or add 2 pi until inside) in float64 */
    for (int k = -30000; k <= 30000; k++) {
        float x = (float)k * 1e-3f;
        if (x <= BD_PI_F && x >= -BD_PI_F)
            continue;
        double r = x;
        while (r > M_PI)
            r -= 2.0 * M_PI;
        while (r < -M_PI)
            r += 2.0 * M_PI;
        float got = bd_wrap_pi(x);
        cr_assert(got >= -BD_PI_F && got <= BD_PI_F, "wrap(%g) = %g", x, got);
        cr_assert(angle_diff(got, r) <= 2.0 * fabs((double)x) * FLT_EPSILON + 1e-7, "wrap(%.9g) = %.9g vs %.9g",
                  x, got, r);
    }
    /* 5.57698634 - 2 pi = -0.70619897; 8.13572098 - 2 pi = 1.85253567 */
    cr_assert_float_eq(bd_wrap_pi(5.57698634f), -0.70619897f, 1e-6);
    cr_assert_float_eq(bd_wrap_pi(8.13572098f), 1.85253567f, 1e-6);
    cr_assert_float_eq(bd_wrap_pi(-20.0f), -20.0f + 6.0f * (float)M_PI, 4e-6);
}

/* ---- Pendulum-v1 ---------------------------------------------------------------------- */

/* Gymnasium PendulumEnv.step in float64, written out from the published equations:
 * s = (th, thdot) in place, returns the reward. */
static double pendulum_reference(double s[2], double u)
{
    const double g = 10.0, m = 1.0, l = 1.0, dt = 0.05, max_speed = 8.0, max_torque = 2.0;
    double th = s[0], thdot = s[1];
    u = u < -max_torque ? -max_torque : u > max_torque ? max_torque : u;
    double an = fmod(th + M_PI, 2.0 * M_PI);
    if (an < 0)
        an += 2.0 * M_PI;
    an -= M_PI;
    double costs = an * an + 0.1 * (thdot * thdot) + 0.001 * (u * u);
    double newthdot = thdot + (3.0 * g / (2.0 * l) * sin(th) + 3.0 / (m * l * l) * u) * dt;
    newthdot = newthdot < -max_speed ? -max_speed : newthdot > max_speed ? max_speed : newthdot;
    s[0] = th + newthdot * dt;
    s[1] = newthdot;
    return -costs;
}

Test(pendulum, hand_computed_transitions)
{
    /* At rest at the top, full torque u = 2: costs = 0 + 0 + 0.001*4 = 0.004 (reward
     * -0.004, on the state before the step); thdot' = 0 + (15*sin 0 + 3*2)*0.05 = 0.3;
     * th' = 0 + 0.3*0.05 = 0.015; obs = (cos 0.015, sin 0.015, 0.3)
     * = (0.99988750, 0.01499944, 0.3). */
    float s[2] = {0.0f, 0.0f};
    float r = bd_pendulum_dynamics(s, 2.0f);
    cr_assert_float_eq(r, -0.004f, 1e-9);
    cr_assert_float_eq(s[0], 0.015f, 1e-8);
    cr_assert_float_eq(s[1], 0.3f, 1e-7);
    float o[3];
    bd_pendulum_observe(s, o);
    cr_assert_float_eq(o[0], 0.99988750f, 1e-7);
    cr_assert_float_eq(o[1], 0.01499944f, 1e-7);
    cr_assert_eq(o[2], s[1]);

    /* Horizontal, fast, torque 5 clipped to 2: costs = (pi/2)^2 + 0.1*7.9^2 + 0.001*2^2
     * = 2.4674011 + 6.241 + 0.004 = 8.7124011; thdot' = 7.9 + (15*1 + 3*2)*0.05 = 8.95,
     * clipped to 8; th' = pi/2 + 8*0.05 = 1.9707963. */
    float t[2] = {(float)(M_PI / 2), 7.9f};
    r = bd_pendulum_dynamics(t, 5.0f);
    cr_assert_float_eq(r, -8.7124011f, 2e-6);
    cr_assert_eq(t[1], 8.0f, "speed clipped to 8");
    cr_assert_float_eq(t[0], 1.9707963f, 2e-7);

    /* Past pi, the reward uses the normalised angle: th = 4, thdot = -1, u = -1:
     * angle_normalize(4) = 4 - 2 pi = -2.2831853, costs = 5.2129351 + 0.1 + 0.001
     * = 5.3139351; thdot' = -1 + (15 sin 4 - 3)*0.05 = -1 + (-11.3520374 - 3)*0.05
     * = -1.7176019; th' = 4 - 1.7176019*0.05 = 3.9141199 (not wrapped, as in Gymnasium). */
    float v[2] = {4.0f, -1.0f};
    r = bd_pendulum_dynamics(v, -1.0f);
    cr_assert_float_eq(r, -5.3139351f, 2e-6);
    cr_assert_float_eq(v[1], -1.7176019f, 2e-7);
    cr_assert_float_eq(v[0], 3.9141199f, 2e-7);
}

Test(pendulum, matches_float64_reference_on_random_states)
{
    uint64_t rs = 1;
    double worst[4] = {0, 0, 0, 0};
    for (int k = 0; k < 20000; k++) {
        /* |th| up to 50 rad: Gymnasium never wraps th, and 200 steps of at most 0.4 rad
         * reach about 83 from a start in [-pi, pi]; speeds over the whole [-8, 8]. */
        float s[2] = {uni(&rs, -50, 50), uni(&rs, -8, 8)};
        float u = uni(&rs, -3, 3);
        double d[2] = {s[0], s[1]};
        float r = bd_pendulum_dynamics(s, u);
        double rd = pendulum_reference(d, u);
        float o[3];
        bd_pendulum_observe(s, o);
        /* thdot': sin within ~1 ulp (1.2e-7) times 15, plus roundings of terms up to 21
         * (ulp 1.9e-6) times dt and of the sum with thdot (|.| <= 8, half ulp 4.8e-7): under
         * 2e-6. th': that times dt (1e-7) plus the rounding of th + dt thdot' (half an ulp
         * of |th'| <= 50.4): within 2e-7 + 2 FLT_EPSILON |th'|. */
        double e_thdot = fabs(s[1] - d[1]), e_th = fabs(s[0] - d[0]);
        cr_assert(e_thdot <= 2e-6, "state %d: thdot %.9g vs %.9g", k, s[1], d[1]);
        cr_assert(e_th <= 2e-7 + 2.0 * FLT_EPSILON * fabs(d[0]), "state %d: th %.9g vs %.9g", k, s[0],
                  d[0]);
        /* reward: costs up to pi^2 + 6.4 + 0.004 = 16.3 (ulp 1.9e-6); angle_normalize of
         * |th| <= 50 is within ~ulp(50) = 3.8e-6, times 2|an| <= 2 pi in an^2: under 3e-5. */
        double e_r = fabs(r - rd);
        cr_assert(e_r <= 3e-5, "state %d: reward %.9g vs %.9g", k, r, rd);
        cr_assert(r <= 0.0f && r >= -16.2736044f - 1e-5f, "reward %g in [-16.27, 0]", r);
        /* obs: cos/sin of th' (error e_th, slope <= 1) plus ~1 ulp of [-1, 1] */
        double e_o = fmax(fabs(o[0] - cos(d[0])), fabs(o[1] - sin(d[0])));
        cr_assert(e_o <= e_th + 2e-7, "state %d: obs cos/sin", k);
        cr_assert_eq(o[2], s[1]);
        worst[0] = fmax(worst[0], e_th);
        worst[1] = fmax(worst[1], e_thdot);
        worst[2] = fmax(worst[2], e_r);
        worst[3] = fmax(worst[3], e_o);
    }
    cr_log_info("pendulum worst |float32 - float64|: th %.3g thdot %.3g reward %.3g obs %.3g", worst[0],
                worst[1], worst[2], worst[3]);
}

Test(pendulum, never_terminates_truncates_at_200_and_resets)
{
    const int n = 64;
    bd_env *e = make("pendulum", n, 5, 42, 0);
    bd_env_batch *b = bd_env_batch_of(e);
    cr_assert_eq(b->max_steps, 200, "Pendulum-v1 truncates at 200");
    cr_assert_not_null(b->state);
    /* the first reset: draws at counter 0, th in [-pi, pi), thdot in [-1, 1) */
    for (int i = 0; i < n; i++) {
        float s[2], o[3];
        bd_pendulum_reset_one(s, o, 42, 5 + (uint32_t)i, 0);
        cr_assert_eq(memcmp(s, b->state + 2 * i, sizeof s), 0);
        cr_assert_eq(memcmp(o, b->obs + 3 * i, sizeof o), 0);
        cr_assert(s[0] >= -BD_PI_F && s[0] < BD_PI_F);
        cr_assert(s[1] >= -1.0f && s[1] < 1.0f);
    }
    for (int t = 1; t <= 200; t++) {
        for (int i = 0; i < n; i++)
            b->actions[i] = action_of(t, i, 0);
        float th = b->state[0], thdot = b->state[1], u = b->actions[0];
        cr_assert_eq(bd_env_step(e), BD_OK);
        /* world 0's reward is Gymnasium's, on the pre-step state and the clipped torque */
        float s[2] = {th, thdot};
        cr_assert_eq(b->rewards[0], bd_pendulum_dynamics(s, u));
        for (int i = 0; i < n; i++) {
            cr_assert_eq(b->terminated[i], 0, "Pendulum never terminates");
            cr_assert_eq(b->truncated[i], t == 200, "step %d", t);
            cr_assert(b->rewards[i] <= 0.0f && b->rewards[i] >= -16.2736044f - 1e-5f);
        }
        if (t < 200) {
            cr_assert_eq(b->elapsed[0], t);
            cr_assert_eq(memcmp(s, b->state, sizeof s), 0);
        }
    }
    /* after the 200th step (batch step 199): final_obs holds the stepped obs, and each world
     * was reset from draws at counter 199 + 1 = 200 */
    for (int i = 0; i < n; i++) {
        float s[2], o[3];
        bd_pendulum_reset_one(s, o, 42, 5 + (uint32_t)i, 200);
        cr_assert_eq(memcmp(s, b->state + 2 * i, sizeof s), 0, "world %d reset at counter 200", i);
        cr_assert_eq(memcmp(o, b->obs + 3 * i, sizeof o), 0);
        cr_assert(s[0] >= -BD_PI_F && s[0] < BD_PI_F && s[1] >= -1.0f && s[1] < 1.0f);
        cr_assert_eq(b->elapsed[i], 0);
        float c = b->final_obs[3 * i], sn = b->final_obs[3 * i + 1];
        cr_assert_float_eq(c * c + sn * sn, 1.0f, 1e-6, "final obs is a real (cos, sin)");
        cr_assert(fabsf(b->final_obs[3 * i + 2]) <= 8.0f);
        cr_assert_neq(memcmp(b->final_obs + 3 * i, b->obs + 3 * i, 3 * sizeof(float)), 0);
    }
    bd_env_destroy(e);
}

Test(pendulum, final_obs_is_the_stepped_state)
{
    bd_env *e = make("pendulum", 2, 0, 7, 1); /* time limit 1: every step ends */
    bd_env_batch *b = bd_env_batch_of(e);
    b->state[0] = 0.0f;
    b->state[1] = 0.0f;
    b->state[2] = (float)(M_PI / 2);
    b->state[3] = 7.9f;
    b->actions[0] = 2.0f;
    b->actions[1] = 5.0f;
    cr_assert_eq(bd_env_step(e), BD_OK);
    cr_assert_eq(b->truncated[0], 1);
    cr_assert_eq(b->terminated[0], 0);
    cr_assert_float_eq(b->final_obs[0], 0.99988750f, 1e-7);
    cr_assert_float_eq(b->final_obs[1], 0.01499944f, 1e-7);
    cr_assert_float_eq(b->final_obs[2], 0.3f, 1e-7);
    cr_assert_eq(b->final_obs[5], 8.0f);
    cr_assert_float_eq(b->rewards[1], -8.7124011f, 2e-6);
    bd_env_destroy(e);
}

Test(pendulum, seeding_and_shard_independence)
{
    check_shards("pendulum", 450);
}

Test(pendulum, cuda_matches_cpu_bit_for_bit)
{
    check_cuda("pendulum");
}

/* ---- MountainCar-v0 ------------------------------------------------------------------- */

/* Gymnasium MountainCarEnv.step in float64: s = (position, velocity) in place; returns
 * terminated. */
static int mountaincar_reference(double s[2], int action)
{
    const double min_position = -1.2, max_position = 0.6, max_speed = 0.07, goal_position = 0.5;
    const double force = 0.001, gravity = 0.0025;
    double position = s[0], velocity = s[1];
    velocity += (action - 1) * force + cos(3 * position) * (-gravity);
    velocity = velocity < -max_speed ? -max_speed : velocity > max_speed ? max_speed : velocity;
    position += velocity;
    position = position < min_position ? min_position : position > max_position ? max_position : position;
    if (position == min_position && velocity < 0)
        velocity = 0;
    s[0] = position;
    s[1] = velocity;
    return position >= goal_position && velocity >= 0.0;
}

Test(mountaincar, hand_computed_transitions)
{
    /* From -0.5 at rest, push right (2): v' = 0 + (1*0.001 + cos(-1.5)*(-0.0025))
     * = 0.001 - 0.0707372*0.0025 = 0.00082315700; p' = -0.5 + 0.000823157 = -0.49917684. */
    float s[2] = {-0.5f, 0.0f};
    cr_assert_eq(bd_mountaincar_dynamics(s, 2.0f), 0);
    cr_assert_float_eq(s[1], 0.00082315700f, 1e-10);
    cr_assert_float_eq(s[0], -0.49917684f, 1e-7);
    /* no push (1): v' = -0.0707372*0.0025 = -0.00017684300, p' = -0.50017684 */
    float s1[2] = {-0.5f, 0.0f};
    bd_mountaincar_dynamics(s1, 1.0f);
    cr_assert_float_eq(s1[1], -0.00017684300f, 1e-10);
    cr_assert_float_eq(s1[0], -0.50017684f, 1e-7);

    /* The left wall: p = -1.19, v = -0.05, push left (0): v' = -0.05 + (-0.001 +
     * cos(-3.57)*(-0.0025)) = -0.05 - 0.001 + 0.0022741 = -0.0487259; p' = -1.2387 is
     * clipped to -1.2 and the leftward velocity becomes 0. */
    float w[2] = {-1.19f, -0.05f};
    cr_assert_eq(bd_mountaincar_dynamics(w, 0.0f), 0);
    cr_assert_eq(w[0], -1.2f);
    cr_assert_eq(w[1], 0.0f, "inelastic wall");

    /* The goal: p = 0.49, v = 0.02, push right: v' = 0.02 + 0.001 - cos(1.47)*0.0025
     * = 0.021 - 0.00025156434 = 0.020748436; p' = 0.51074844 >= 0.5 with v' >= 0:
     * terminated. */
    float gl[2] = {0.49f, 0.02f};
    cr_assert_eq(bd_mountaincar_dynamics(gl, 2.0f), 1);
    cr_assert_float_eq(gl[1], 0.020748436f, 5e-9);
    cr_assert_float_eq(gl[0], 0.51074844f, 1e-7);

    /* Past the goal line but moving left does not count: p = 0.6, v = -0.03, push left:
     * v' = -0.03 - 0.001 - cos(1.8)*0.0025 = -0.031 + 0.00056800 = -0.030432;
     * p' = 0.569568 >= 0.5 but v' < 0. */
    float back[2] = {0.6f, -0.03f};
    cr_assert_eq(bd_mountaincar_dynamics(back, 0.0f), 0);
    cr_assert_float_eq(back[1], -0.030432f, 1e-8);
    cr_assert_float_eq(back[0], 0.569568f, 1e-7);

    /* Speed clip: v = 0.0695 pushing right on the left slope gains more than 0.0005 */
    float fast[2] = {-0.9f, 0.0695f};
    bd_mountaincar_dynamics(fast, 2.0f);
    cr_assert_eq(fast[1], 0.07f, "speed clipped to 0.07");
}

Test(mountaincar, matches_float64_reference_on_random_states)
{
    uint64_t rs = 2;
    double worst[2] = {0, 0};
    int compared_flags = 0, skipped = 0;
    for (int k = 0; k < 50000; k++) {
        float s[2] = {uni(&rs, -1.2, 0.6), uni(&rs, -0.07, 0.07)};
        int a = (int)(mix(&rs) % 3);
        double d[2] = {s[0], s[1]};
        /* The wall's velocity reset and the goal test are discontinuous: where the float64
         * pre-clip position lies within 1e-6 of -1.2, float32 rounding may take the other
         * branch of the wall test (those few states are compared on position only); where
         * the new position is within 1e-6 of 0.5, or the new speed within 1e-8 of 0, it may
         * take the other branch of the goal test (compared on the state only). */
        double v_pre = d[1] + ((a - 1) * 0.001 + cos(3 * d[0]) * (-0.0025));
        v_pre = fmin(fmax(v_pre, -0.07), 0.07);
        int near_wall = fabs(d[0] + v_pre + 1.2) < 1e-6;
        int term = bd_mountaincar_dynamics(s, (float)a);
        int term_d = mountaincar_reference(d, a);
        /* position: |p| <= 1.2 (ulp 1.2e-7), one add and a clip: within 2e-7 (plus the
         * clip bounds' own float rounding, -1.2f and 0.6f differ from -1.2, 0.6 by < 5e-8) */
        double e_p = fabs(s[0] - d[0]);
        cr_assert(e_p <= 2.5e-7, "state %d: position %.9g vs %.9g", k, s[0], d[0]);
        worst[0] = fmax(worst[0], e_p);
        if (near_wall) {
            skipped++;
            continue;
        }
        /* velocity: terms <= 0.07 (ulp 7.5e-9), cos(3p) error 1.2e-7 * 0.0025: within 1.5e-8 */
        double e_v = fabs(s[1] - d[1]);
        cr_assert(e_v <= 1.5e-8, "state %d: velocity %.9g vs %.9g", k, s[1], d[1]);
        worst[1] = fmax(worst[1], e_v);
        if (fabs(d[0] - 0.5) < 1e-6 || (d[0] >= 0.5 && fabs(d[1]) < 1e-8)) {
            skipped++;
            continue;
        }
        cr_assert_eq(term, term_d, "state %d: terminated", k);
        compared_flags += term;
    }
    cr_assert(compared_flags > 100, "the goal was reached in some of the samples");
    cr_assert(skipped < 100, "only a handful sit on a discontinuity (%d)", skipped);
    cr_log_info("mountaincar worst |float32 - float64|: position %.3g velocity %.3g (%d skipped)",
                worst[0], worst[1], skipped);
}

Test(mountaincar, limits_reward_and_auto_reset)
{
    bd_env *e = make("mountaincar", 3, 10, 7, 0);
    bd_env_batch *b = bd_env_batch_of(e);
    cr_assert_eq(b->max_steps, 200, "MountainCar-v0 truncates at 200");
    cr_assert_null(b->state, "obs is the whole state");
    for (int i = 0; i < 3; i++) {
        float s[2];
        bd_mountaincar_reset_one(s, 7, 10 + (uint32_t)i, 0);
        cr_assert_eq(memcmp(s, b->obs + 2 * i, sizeof s), 0, "first reset at counter 0");
    }
    /* world 0 reaches the goal, world 1 is past the line moving left, world 2 idles */
    float init[3][2] = {{0.49f, 0.02f}, {0.6f, -0.03f}, {-0.5f, 0.0f}};
    memcpy(b->obs, init, sizeof init);
    float acts[3] = {2.0f, 0.0f, 1.0f};
    cr_assert_eq(bd_env_upload_actions(e, acts), BD_OK);
    cr_assert_eq(bd_env_step(e), BD_OK);
    cr_assert_eq(b->terminated[0], 1, "position >= 0.5 and velocity >= 0 terminates");
    cr_assert_eq(b->terminated[1], 0, "moving left at the goal does not");
    cr_assert_eq(b->terminated[2], 0);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(b->rewards[i], -1.0f, "reward -1 on every step, the terminating one too");
        cr_assert_eq(b->truncated[i], 0);
    }
    cr_assert_float_eq(b->final_obs[0], 0.51074844f, 1e-7, "final obs keeps the terminal state");
    cr_assert_float_eq(b->final_obs[1], 0.020748436f, 5e-9);
    float s[2];
    bd_mountaincar_reset_one(s, 7, 10, 1); /* batch step 0: the reset draws at counter 1 */
    cr_assert_eq(memcmp(s, b->obs, sizeof s), 0);
    cr_assert(b->obs[0] >= -0.6f && b->obs[0] <= -0.4f, "reset position in U(-0.6, -0.4)");
    cr_assert_eq(b->obs[1], 0.0f, "reset velocity 0");
    cr_assert_eq(b->elapsed[0], 0);
    cr_assert_eq(b->elapsed[1], 1);
    bd_env_destroy(e);
}

Test(mountaincar, truncation_at_200_and_reset_range)
{
    const int n = 256;
    bd_env *e = make("mountaincar", n, 0, 3, 0);
    bd_env_batch *b = bd_env_batch_of(e);
    for (int i = 0; i < n; i++) {
        cr_assert(b->obs[2 * i] >= -0.6f && b->obs[2 * i] <= -0.4f);
        cr_assert_eq(b->obs[2 * i + 1], 0.0f);
    }
    /* no push: the car only rocks in the valley (it starts at rest below the goal), so
     * every episode runs into the time limit */
    for (int t = 1; t <= 200; t++) {
        for (int i = 0; i < n; i++)
            b->actions[i] = 1.0f;
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(b->terminated[i], 0);
            cr_assert_eq(b->truncated[i], t == 200, "step %d", t);
            cr_assert_eq(b->rewards[i], -1.0f);
        }
    }
    for (int i = 0; i < n; i++) {
        float s[2];
        bd_mountaincar_reset_one(s, 3, (uint32_t)i, 200);
        cr_assert_eq(memcmp(s, b->obs + 2 * i, sizeof s), 0, "reset at counter 200");
        cr_assert_eq(b->elapsed[i], 0);
        cr_assert(b->final_obs[2 * i] >= -1.2f && b->final_obs[2 * i] < 0.5f);
    }
    bd_env_destroy(e);
}

Test(mountaincar, seeding_and_shard_independence)
{
    check_shards("mountaincar", 450);
}

Test(mountaincar, cuda_matches_cpu_bit_for_bit)
{
    check_cuda("mountaincar");
}

/* ---- Acrobot-v1 ----------------------------------------------------------------------- */

/* Gymnasium AcrobotEnv._dsdt ("book") in float64, literally (cos(x - pi/2) included). */
static void acrobot_dsdt_reference(const double *s, double a, double *ds)
{
    const double m1 = 1.0, m2 = 1.0, l1 = 1.0, lc1 = 0.5, lc2 = 0.5, I1 = 1.0, I2 = 1.0, g = 9.8;
    double theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
    double d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2 * l1 * lc2 * cos(theta2)) + I1 + I2;
    double d2 = m2 * (lc2 * lc2 + l1 * lc2 * cos(theta2)) + I2;
    double phi2 = m2 * lc2 * g * cos(theta1 + theta2 - M_PI / 2.0);
    double phi1 = -m2 * l1 * lc2 * dtheta2 * dtheta2 * sin(theta2)
                  - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin(theta2)
                  + (m1 * lc1 + m2 * l1) * g * cos(theta1 - M_PI / 2) + phi2;
    double ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1 * dtheta1 * sin(theta2) - phi2)
                      / (m2 * lc2 * lc2 + I2 - d2 * d2 / d1);
    double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    ds[0] = dtheta1;
    ds[1] = dtheta2;
    ds[2] = ddtheta1;
    ds[3] = ddtheta2;
}

/* Gymnasium's rk4(_dsdt, s + [a], [0, 0.2]) in float64: one RK4 step of s in place. */
static void acrobot_rk4_reference(double s[4], double a)
{
    const double dt = 0.2, dt2 = dt / 2.0;
    double k1[4], k2[4], k3[4], k4[4], y[4];
    acrobot_dsdt_reference(s, a, k1);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt2 * k1[j];
    acrobot_dsdt_reference(y, a, k2);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt2 * k2[j];
    acrobot_dsdt_reference(y, a, k3);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt * k3[j];
    acrobot_dsdt_reference(y, a, k4);
    for (int j = 0; j < 4; j++)
        s[j] = s[j] + dt / 6.0 * (k1[j] + 2 * k2[j] + 2 * k3[j] + k4[j]);
}

/* Gymnasium AcrobotEnv.step in float64: the RK4 step, wrap() loops, bound(); s in place,
 * returns terminated. */
static int acrobot_reference(double s[4], int action)
{
    const double avail[3] = {-1.0, 0.0, 1.0};
    acrobot_rk4_reference(s, avail[action]);
    for (int j = 0; j < 2; j++) {
        while (s[j] > M_PI)
            s[j] -= 2 * M_PI;
        while (s[j] < -M_PI)
            s[j] += 2 * M_PI;
    }
    s[2] = fmin(fmax(s[2], -4 * M_PI), 4 * M_PI);
    s[3] = fmin(fmax(s[3], -9 * M_PI), 9 * M_PI);
    return -cos(s[0]) - cos(s[1] + s[0]) > 1.0;
}

Test(acrobot, hand_computed_derivative_and_transitions)
{
    /* Hanging still, torque +1: cos th2 = 1, sines 0, so d1 = 0.25 + (1 + 0.25 + 1) + 1 + 1
     * = 4.5, d2 = (0.25 + 0.5) + 1 = 1.75, phi1 = phi2 = 0; ddth2 = 1 / (1.25 - 1.75^2/4.5)
     * = 1 / (41/72) = 72/41 = 1.7560976; ddth1 = -(1.75 * 72/41) / 4.5 = -28/41 = -0.6829268. */
    float z[4] = {0, 0, 0, 0}, ds[4];
    bd_acrobot_dsdt(z, 1.0f, ds);
    cr_assert_eq(ds[0], 0.0f);
    cr_assert_eq(ds[1], 0.0f);
    cr_assert_float_eq(ds[2], -28.0f / 41.0f, 2e-7);
    cr_assert_float_eq(ds[3], 72.0f / 41.0f, 2e-7);
    /* Link 1 horizontal (th1 = pi/2), at rest, no torque: phi2 = 0.5*9.8*cos(0) = 4.9,
     * phi1 = 1.5*9.8*cos(0) + 4.9 = 19.6; ddth2 = (1.75/4.5 * 19.6 - 4.9) / (41/72)
     * = (7.6222222 - 4.9) * 72/41 = 4.7804878; ddth1 = -(1.75*4.7804878 + 19.6)/4.5
     * = -6.2146341. */
    float h[4] = {(float)(M_PI / 2), 0, 0, 0};
    bd_acrobot_dsdt(h, 0.0f, ds);
    cr_assert_float_eq(ds[2], -6.2146341f, 2e-6);
    cr_assert_float_eq(ds[3], 4.7804878f, 2e-6);

    /* One RK4 step from rest with torque +1 (action 2). k1 = (0, 0, -0.68292683, 1.7560976);
     * k2 at s + 0.1 k1 (angles still 0, so the same accelerations) = (-0.068292683,
     * 0.17560976, -0.68292683, 1.7560976); k3 at angles (-0.0068292683, 0.017560976) =
     * (-0.068292683, 0.17560976, -0.62359142, 1.6308893); k4 at s + 0.2 k3 = (-0.12471828,
     * 0.32617786, -0.56389226, 1.5049615); s' = 0.2/6 (k1 + 2 k2 + 2 k3 + k4)
     * = (-0.013262967, 0.034287229, -0.12866185, 0.33450109); height
     * -cos(th1') - cos(th1' + th2') = -1.9996910: not terminal. */
    float s[4] = {0, 0, 0, 0};
    cr_assert_eq(bd_acrobot_dynamics(s, 2.0f), 0);
    const float want[4] = {-0.013262967f, 0.034287229f, -0.12866185f, 0.33450109f};
    for (int j = 0; j < 4; j++)
        cr_assert_float_eq(s[j], want[j], 2e-7, "var %d: %.9g", j, s[j]);
    /* action 1 (no torque) at rest hanging down: an equilibrium, nothing moves */
    float r[4] = {0, 0, 0, 0};
    bd_acrobot_dynamics(r, 1.0f);
    for (int j = 0; j < 4; j++)
        cr_assert_eq(r[j], 0.0f);
    /* action 0 is the mirror image of action 2 */
    float m[4] = {0, 0, 0, 0};
    bd_acrobot_dynamics(m, 0.0f);
    for (int j = 0; j < 4; j++)
        cr_assert_eq(m[j], -s[j]);

    /* Wrap and bound: from (3, 0.5, 4 pi, 9 pi) with torque +1 the RK4 step lands on
     * (8.1357210, 2.6669484, 35.707622, -42.509985) (float64); th1 wraps to
     * 8.1357210 - 2 pi = 1.8525357, th2 stays, dth1 is clipped to 4 pi = 12.566371 and
     * dth2 to -9 pi = -28.274334. */
    float w[4] = {3.0f, 0.5f, (float)(4 * M_PI), (float)(9 * M_PI)};
    bd_acrobot_dynamics(w, 2.0f);
    cr_assert_float_eq(w[0], 1.8525357f, 2e-5);
    cr_assert_float_eq(w[1], 2.6669484f, 2e-5);
    cr_assert_eq(w[2], BD_ACROBOT_MAX_VEL_1);
    cr_assert_eq(w[3], -BD_ACROBOT_MAX_VEL_2);
}

Test(acrobot, matches_float64_reference_on_random_states)
{
    uint64_t rs = 3;
    double worst_ratio = 0, worst_err = 0, worst_o = 0;
    int terms = 0, compared = 0;
    for (int k = 0; k < 20000; k++) {
        /* the whole reachable state space: angles in [-pi, pi], speeds up to their bounds */
        float s[4] = {uni(&rs, -M_PI, M_PI), uni(&rs, -M_PI, M_PI), uni(&rs, -4 * M_PI, 4 * M_PI),
                      uni(&rs, -9 * M_PI, 9 * M_PI)};
        int a = (int)(mix(&rs) % 3);
        double d[4] = {s[0], s[1], s[2], s[3]};
        /* How much this step amplifies rounding: cond[j] = sum over inputs m of the change
         * in output j when input m alone moves by one float32 rounding (relative 2^-24), a
         * first-order bound on what rounding the input to float32 does. Fast states are
         * badly conditioned: speeds reach ~40 inside the RK4 stages, the dth^2 terms ~800,
         * and dt times the Jacobian exceeds 1 per stage, so an output can move 1e-3 for a
         * 1e-7 change of an input. Our float32 step rounds at every stage as well as the
         * input, and those roundings go through the same Jacobian: we require its error to
         * stay within 16 cond + 2e-6 (1 + |value|) (over 10^6 states the worst was 6.9 cond). */
        double raw[4], cond[4] = {0, 0, 0, 0};
        memcpy(raw, d, sizeof raw);
        acrobot_rk4_reference(raw, (double)(a - 1));
        for (int m = 0; m < 4; m++) {
            double p[4];
            memcpy(p, d, sizeof p);
            p[m] *= 1.0 + 0x1p-24;
            acrobot_rk4_reference(p, (double)(a - 1));
            for (int j = 0; j < 4; j++)
                cond[j] += fabs(p[j] - raw[j]);
        }
        int term = bd_acrobot_dynamics(s, (float)a);
        int term_d = acrobot_reference(d, a);
        double tol[4];
        for (int j = 0; j < 4; j++) {
            tol[j] = 16.0 * cond[j] + 2e-6 * (1.0 + fabs(raw[j]));
            /* angles compared modulo 2 pi (a value at +-pi may wrap to either side); the
             * clip of the speeds is 1-Lipschitz, so the pre-clip tolerance holds after it */
            double e = j < 2 ? angle_diff(s[j], d[j]) : fabs(s[j] - d[j]);
            cr_assert(e <= tol[j], "state %d var %d: %.9g vs %.9g (tolerance %.3g)", k, j, s[j], d[j],
                      tol[j]);
            worst_ratio = fmax(worst_ratio, e / tol[j]);
            worst_err = fmax(worst_err, e);
        }
        cr_assert(s[0] >= -BD_PI_F && s[0] <= BD_PI_F && s[1] >= -BD_PI_F && s[1] <= BD_PI_F,
                  "angles wrapped into [-pi, pi]");
        cr_assert(fabsf(s[2]) <= BD_ACROBOT_MAX_VEL_1 && fabsf(s[3]) <= BD_ACROBOT_MAX_VEL_2);
        /* the goal test is discontinuous: compare it where the height is farther from the
         * line than the angle tolerances can move it (slope at most 1 per angle, 2 for th1) */
        double height = -cos(d[0]) - cos(d[1] + d[0]);
        if (fabs(height - 1.0) > 2.0 * tol[0] + tol[1] + 1e-6) {
            cr_assert_eq(term, term_d, "state %d: terminated (height %.6f)", k, height);
            terms += term;
            compared++;
        }
        /* obs: cos/sin of the angles (slope <= 1) plus about 1 ulp of [-1, 1] */
        float o[6];
        bd_acrobot_observe(s, o);
        double e_o = fmax(fmax(fabs(o[0] - cos(d[0])), fabs(o[1] - sin(d[0]))),
                          fmax(fabs(o[2] - cos(d[1])), fabs(o[3] - sin(d[1]))));
        cr_assert(e_o <= fmax(tol[0], tol[1]) + 2e-7, "state %d: obs", k);
        cr_assert(o[4] == s[2] && o[5] == s[3]);
        worst_o = fmax(worst_o, e_o);
    }
    cr_assert(terms > 100, "some random states reach the goal");
    cr_assert(compared > 19000, "the goal test was compared on almost every state (%d)", compared);
    cr_log_info("acrobot: worst error / tolerance %.3g, worst |float32 - float64| %.3g, obs %.3g",
                worst_ratio, worst_err, worst_o);
}

Test(acrobot, limits_reward_and_auto_reset)
{
    bd_env *e = make("acrobot", 2, 3, 11, 0);
    bd_env_batch *b = bd_env_batch_of(e);
    cr_assert_eq(b->max_steps, 500, "Acrobot-v1 truncates at 500");
    cr_assert_not_null(b->state);
    for (int i = 0; i < 2; i++) {
        float s[4], o[6];
        bd_acrobot_reset_one(s, o, 11, 3 + (uint32_t)i, 0);
        cr_assert_eq(memcmp(s, b->state + 4 * i, sizeof s), 0, "first reset at counter 0");
        cr_assert_eq(memcmp(o, b->obs + 6 * i, sizeof o), 0);
    }
    /* world 0 balanced upside down (height -cos(pi) - cos(pi) = 2 > 1): terminal after the
     * step; world 1 hanging still: not */
    const float up[4] = {(float)M_PI, 0, 0, 0}, down[4] = {0, 0, 0, 0};
    memcpy(b->state, up, sizeof up);
    memcpy(b->state + 4, down, sizeof down);
    b->actions[0] = 1.0f;
    b->actions[1] = 2.0f;
    cr_assert_eq(bd_env_step(e), BD_OK);
    cr_assert_eq(b->terminated[0], 1, "free end above the line terminates");
    cr_assert_eq(b->rewards[0], 0.0f, "reward 0 on the terminating step");
    cr_assert_eq(b->terminated[1], 0);
    cr_assert_eq(b->rewards[1], -1.0f, "reward -1 otherwise");
    cr_assert_eq(b->truncated[0], 0);
    /* final obs: (cos th1, sin th1, cos th2, sin th2, dth1, dth2) of the stepped state, up */
    cr_assert(b->final_obs[0] < -0.99f, "cos th1 near -1");
    cr_assert(b->final_obs[2] > 0.99f, "cos th2 near 1");
    float s[4], o[6];
    bd_acrobot_reset_one(s, o, 11, 3, 1); /* batch step 0: the reset draws at counter 1 */
    cr_assert_eq(memcmp(s, b->state, sizeof s), 0);
    cr_assert_eq(memcmp(o, b->obs, sizeof o), 0);
    for (int j = 0; j < 4; j++)
        cr_assert(b->state[j] >= -0.1f && b->state[j] < 0.1f, "reset from U(-0.1, 0.1)");
    cr_assert_eq(b->elapsed[0], 0);
    cr_assert_eq(b->elapsed[1], 1);
    /* world 1 carries on from the hand-computed step */
    cr_assert_float_eq(b->state[4 + 3], 0.33450109f, 2e-7);
    cr_assert_float_eq(b->obs[6 + 5], 0.33450109f, 2e-7);
    bd_env_destroy(e);
}

Test(acrobot, truncation_at_500_and_reset_range)
{
    const int n = 128;
    bd_env *e = make("acrobot", n, 0, 5, 0);
    bd_env_batch *b = bd_env_batch_of(e);
    for (int i = 0; i < 4 * n; i++)
        cr_assert(b->state[i] >= -0.1f && b->state[i] < 0.1f);
    /* no torque from near rest at the bottom: the chain only swings a little, so every
     * episode runs into the time limit */
    for (int t = 1; t <= 500; t++) {
        for (int i = 0; i < n; i++)
            b->actions[i] = 1.0f;
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(b->terminated[i], 0);
            cr_assert_eq(b->truncated[i], t == 500, "step %d", t);
            cr_assert_eq(b->rewards[i], -1.0f);
        }
    }
    for (int i = 0; i < n; i++) {
        float s[4], o[6];
        bd_acrobot_reset_one(s, o, 5, (uint32_t)i, 500);
        cr_assert_eq(memcmp(s, b->state + 4 * i, sizeof s), 0, "reset at counter 500");
        cr_assert_eq(b->elapsed[i], 0);
        cr_assert(b->final_obs[6 * i] > 0.9f, "still hanging down at the time limit");
    }
    bd_env_destroy(e);
}

Test(acrobot, seeding_and_shard_independence)
{
    check_shards("acrobot", 1100);
}

Test(acrobot, cuda_matches_cpu_bit_for_bit)
{
    check_cuda("acrobot");
}

Test(mathf, atan2_from_arithmetic_alone)
{
    /* every quadrant, the axes and the diagonals, against libm's double atan2 */
    double worst = 0;
    for (int i = -200; i <= 200; i++)
        for (int j = -200; j <= 200; j++) {
            float y = (float)i * 0.37f, x = (float)j * 0.53f;
            float got = bd_atan2f(y, x);
            double want = i == 0 && j == 0 ? 0.0 : atan2((double)y, (double)x);
            double err = fabs((double)got - want);
            worst = err > worst ? err : worst;
        }
    cr_assert_lt(worst, 2e-6, "worst error %g rad", worst);
    cr_assert_eq(bd_atan2f(1.0f, 0.0f), 1.57079632679489661923f);
    cr_assert_eq(bd_atan2f(-1.0f, 0.0f), -1.57079632679489661923f);
    cr_assert_eq(bd_atan2f(0.0f, -1.0f), BD_PI_F);
    cr_assert(isnan(bd_atan2f(NAN, 1.0f)));
}
