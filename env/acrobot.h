/* acrobot.h: Acrobot-v1 physics, one world per call, shared by env/acrobot.c (CPU loop) and
 * kernels/acrobot.cu (CUDA). Gymnasium's published dynamics and limits: two links of length
 * 1 m and mass 1 kg, centres of mass at 0.5 m, moments of inertia 1, g 9.8; the "book"
 * equations of motion (Sutton and Barto), integrated by one RK4 step over dt = 0.2 s with
 * the torque held constant; the angles then wrapped into [-pi, pi] and the speeds clipped to
 * +-4 pi and +-9 pi; terminated when -cos(th1) - cos(th2 + th1) > 1; reward -1 per step and
 * 0 on the terminating step; truncated at 500 steps; reset all four state variables from
 * U(-0.1, 0.1); no torque noise (Gymnasium's default torque_noise_max = 0).
 * Gymnasium computes in float64 and reports float32; we compute in float32 so CPU and GPU
 * agree bit for bit (cos(x - pi/2) in its equations is written sin(x), the same function).
 * State = (th1, th2, dth1, dth2) in b->state (N,4); obs = (cos th1, sin th1, cos th2,
 * sin th2, dth1, dth2) (N,6); the action is 0, 1 or 2 (torque -1, 0, +1 N m on the middle
 * joint), stored as a float and rounded to the nearest of the three (NaN: no torque). */
#ifndef BODHI_ENV_ACROBOT_H
#define BODHI_ENV_ACROBOT_H

#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "env/mathf.h"
#include "common/rng.h"

#define BD_ACROBOT_OBS 6
#define BD_ACROBOT_STATE 4
#define BD_ACROBOT_DT 0.2f
#define BD_ACROBOT_L1 1.0f  /* length of link 1 */
#define BD_ACROBOT_M1 1.0f  /* masses */
#define BD_ACROBOT_M2 1.0f
#define BD_ACROBOT_LC1 0.5f /* centres of mass */
#define BD_ACROBOT_LC2 0.5f
#define BD_ACROBOT_I1 1.0f  /* moments of inertia */
#define BD_ACROBOT_I2 1.0f
#define BD_ACROBOT_G 9.8f
#define BD_ACROBOT_MAX_VEL_1 (4.0f * BD_PI_F)
#define BD_ACROBOT_MAX_VEL_2 (9.0f * BD_PI_F)
#define BD_ACROBOT_MAX_STEPS 500

/* o (6): the observation of state s (4). */
BD_HOSTDEV static inline void bd_acrobot_observe(const float *s, float *o)
{
    bd_sincosf(s[0], &o[1], &o[0]);
    bd_sincosf(s[1], &o[3], &o[2]);
    o[4] = s[2];
    o[5] = s[3];
}

/* s (4): a fresh state from U(-0.1, 0.1) drawn at (seed, world, counter); o (6) its obs. */
BD_HOSTDEV static inline void bd_acrobot_reset_one(float *s, float *o, uint64_t seed,
                                                   uint32_t world, uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(seed, world, counter, BD_STREAM_RESET, u);
    for (int k = 0; k < 4; k++)
        s[k] = u[k] * 0.2f - 0.1f;
    bd_acrobot_observe(s, o);
}

/* ds (4): the time derivative of s (4) under torque a, the book equations. */
BD_HOSTDEV static inline void bd_acrobot_dsdt(const float *s, float a, float *ds)
{
    const float m1 = BD_ACROBOT_M1, m2 = BD_ACROBOT_M2, l1 = BD_ACROBOT_L1;
    const float lc1 = BD_ACROBOT_LC1, lc2 = BD_ACROBOT_LC2, I1 = BD_ACROBOT_I1, I2 = BD_ACROBOT_I2;
    const float g = BD_ACROBOT_G;
    float theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
    float sin1 = bd_sinf(theta1), sin12 = bd_sinf(theta1 + theta2), sin2, cos2;
    bd_sincosf(theta2, &sin2, &cos2);
    float d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0f * l1 * lc2 * cos2) + I1 + I2;
    float d2 = m2 * (lc2 * lc2 + l1 * lc2 * cos2) + I2;
    float phi2 = m2 * lc2 * g * sin12;                        /* cos(th1 + th2 - pi/2) */
    float phi1 = -m2 * l1 * lc2 * (dtheta2 * dtheta2) * sin2
                 - 2.0f * m2 * l1 * lc2 * dtheta2 * dtheta1 * sin2
                 + (m1 * lc1 + m2 * l1) * g * sin1             /* cos(th1 - pi/2) */
                 + phi2;
    float ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * (dtheta1 * dtheta1) * sin2 - phi2)
                     / (m2 * lc2 * lc2 + I2 - d2 * d2 / d1);
    float ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    ds[0] = dtheta1;
    ds[1] = dtheta2;
    ds[2] = ddtheta1;
    ds[3] = ddtheta2;
}

/* One step of s (4) under `action`: RK4 over dt, wrap, clip; returns 1 when the new state
 * is terminal (the free end above the target height). */
BD_HOSTDEV static inline int bd_acrobot_dynamics(float *s, float action)
{
    const float dt = BD_ACROBOT_DT, dt2 = BD_ACROBOT_DT / 2.0f;
    float torque = action >= 1.5f ? 1.0f : action < 0.5f ? -1.0f : 0.0f;
    float k1[4], k2[4], k3[4], k4[4], y[4];
    bd_acrobot_dsdt(s, torque, k1);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt2 * k1[j];
    bd_acrobot_dsdt(y, torque, k2);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt2 * k2[j];
    bd_acrobot_dsdt(y, torque, k3);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt * k3[j];
    bd_acrobot_dsdt(y, torque, k4);
    for (int j = 0; j < 4; j++)
        y[j] = s[j] + dt / 6.0f * (k1[j] + 2.0f * k2[j] + 2.0f * k3[j] + k4[j]);
    float v1 = y[2], v2 = y[3];
    s[0] = bd_wrap_pi(y[0]);
    s[1] = bd_wrap_pi(y[1]);
    s[2] = v1 < -BD_ACROBOT_MAX_VEL_1 ? -BD_ACROBOT_MAX_VEL_1 : v1 > BD_ACROBOT_MAX_VEL_1 ? BD_ACROBOT_MAX_VEL_1 : v1;
    s[3] = v2 < -BD_ACROBOT_MAX_VEL_2 ? -BD_ACROBOT_MAX_VEL_2 : v2 > BD_ACROBOT_MAX_VEL_2 ? BD_ACROBOT_MAX_VEL_2 : v2;
    return -bd_cosf(s[0]) - bd_cosf(s[1] + s[0]) > 1.0f;
}

/* World i, first half of a step, without branches on the outcome (the CPU loop over it
 * vectorises): dynamics, reward, flags and episode clock. state (N,4), obs (N,6),
 * actions/rewards/flags/elapsed (N). A world that ended still holds its last state and obs
 * until env/loops.h's finish. */
BD_HOSTDEV static inline void bd_acrobot_advance(int i, float *state, float *obs,
                                                       const float *actions, float *rewards,
                                                       uint8_t *terminated, uint8_t *truncated,
                                                       int32_t *elapsed, int max_steps)
{
    float s[BD_ACROBOT_STATE];
    for (int k = 0; k < BD_ACROBOT_STATE; k++)
        s[k] = state[i * BD_ACROBOT_STATE + k];
    int term = bd_acrobot_dynamics(s, actions[i]);
    int t = elapsed[i] + 1;
    for (int k = 0; k < BD_ACROBOT_STATE; k++)
        state[i * BD_ACROBOT_STATE + k] = s[k];
    bd_acrobot_observe(s, obs + i * BD_ACROBOT_OBS);
    rewards[i] = term ? 0.0f : -1.0f;
    terminated[i] = (uint8_t)term;
    truncated[i] = (uint8_t)(t >= max_steps);
    elapsed[i] = t;
}

/* The per-world reset of env/loops.h. */
BD_HOSTDEV static inline void bd_acrobot_reset(int i, const bd_env_batch *b, uint64_t counter)
{
    bd_acrobot_reset_one(b->state + BD_ACROBOT_STATE * i, b->obs + BD_ACROBOT_OBS * i, b->seed,
                          b->world0 + (uint32_t)i, counter);
    b->elapsed[i] = 0;
}

#endif
