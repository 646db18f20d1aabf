/* cartpole.h: CartPole-v1 physics, one world per call, shared by env/cartpole.c (CPU loop)
 * and kernels/cartpole.cu (CUDA). Gymnasium's published dynamics and limits: explicit
 * Euler with tau 0.02, force 10 N, cart 1 kg, pole 0.1 kg and half-length 0.5 m, g 9.8;
 * terminated when |x| > 2.4 or |theta| > 12 degrees; truncated at 500 steps; reward 1 for
 * every step (the terminating one too); reset draws all four state variables from
 * U(-0.05, 0.05). Gymnasium computes in float64 and reports float32; we compute in
 * float32 so CPU and GPU agree bit for bit.
 * State = obs = (x, x_dot, theta, theta_dot); the action is 0 (push left) or 1 (right). */
#ifndef BODHI_ENV_CARTPOLE_H
#define BODHI_ENV_CARTPOLE_H

#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "env/mathf.h"
#include "common/rng.h"

#define BD_CARTPOLE_OBS 4
#define BD_CARTPOLE_GRAVITY 9.8f
#define BD_CARTPOLE_MASSCART 1.0f
#define BD_CARTPOLE_MASSPOLE 0.1f
#define BD_CARTPOLE_TOTAL_MASS (BD_CARTPOLE_MASSPOLE + BD_CARTPOLE_MASSCART)
#define BD_CARTPOLE_LENGTH 0.5f
#define BD_CARTPOLE_POLEMASS_LENGTH (BD_CARTPOLE_MASSPOLE * BD_CARTPOLE_LENGTH)
#define BD_CARTPOLE_FORCE 10.0f
#define BD_CARTPOLE_TAU 0.02f
#define BD_CARTPOLE_X_LIMIT 2.4f
#define BD_CARTPOLE_THETA_LIMIT (12.0f * 2.0f * 3.14159265358979f / 360.0f)
#define BD_CARTPOLE_MAX_STEPS 500

/* s (4): a fresh state from U(-0.05, 0.05), drawn at (seed, world, counter). */
BD_HOSTDEV static inline void bd_cartpole_reset_one(float *s, uint64_t seed, uint32_t world,
                                                    uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(seed, world, counter, BD_STREAM_RESET, u);
    for (int k = 0; k < 4; k++)
        s[k] = u[k] * 0.1f - 0.05f;
}

/* One Euler step of s (4) under `action`; returns 1 when the new state is terminal. */
BD_HOSTDEV static inline int bd_cartpole_dynamics(float *s, float action)
{
    float x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
    float force = action >= 0.5f ? BD_CARTPOLE_FORCE : -BD_CARTPOLE_FORCE;
    float costheta = bd_cosf(theta), sintheta = bd_sinf(theta);
    float temp = (force + BD_CARTPOLE_POLEMASS_LENGTH * theta_dot * theta_dot * sintheta)
                 / BD_CARTPOLE_TOTAL_MASS;
    float thetaacc = (BD_CARTPOLE_GRAVITY * sintheta - costheta * temp)
                     / (BD_CARTPOLE_LENGTH * (4.0f / 3.0f - BD_CARTPOLE_MASSPOLE * costheta * costheta
                                                               / BD_CARTPOLE_TOTAL_MASS));
    float xacc = temp - BD_CARTPOLE_POLEMASS_LENGTH * thetaacc * costheta / BD_CARTPOLE_TOTAL_MASS;
    s[0] = x + BD_CARTPOLE_TAU * x_dot;
    s[1] = x_dot + BD_CARTPOLE_TAU * xacc;
    s[2] = theta + BD_CARTPOLE_TAU * theta_dot;
    s[3] = theta_dot + BD_CARTPOLE_TAU * thetaacc;
    /* bitwise |, not ||: no branches, so loops over worlds vectorise */
    return (s[0] < -BD_CARTPOLE_X_LIMIT) | (s[0] > BD_CARTPOLE_X_LIMIT)
           | (s[2] < -BD_CARTPOLE_THETA_LIMIT) | (s[2] > BD_CARTPOLE_THETA_LIMIT);
}

/* World i, first half of a step, without branches (the CPU loop over it vectorises):
 * dynamics, reward, flags and episode clock. obs (N,4), actions/rewards/flags/elapsed (N).
 * A world that ended still holds its terminal state in obs until env/loops.h's finish.
 * CartPole's observation is its whole state: `state` is unused. */
BD_HOSTDEV static inline void bd_cartpole_advance(int i, float *state, float *BD_RESTRICT obs,
                                                  const float *BD_RESTRICT actions,
                                                  float *BD_RESTRICT rewards,
                                                  uint8_t *BD_RESTRICT terminated,
                                                  uint8_t *BD_RESTRICT truncated,
                                                  int32_t *BD_RESTRICT elapsed, int max_steps)
{
    (void)state;
    float s[4];
    for (int k = 0; k < 4; k++)
        s[k] = obs[i * 4 + k];
    int term = bd_cartpole_dynamics(s, actions[i]);
    int t = elapsed[i] + 1;
    for (int k = 0; k < 4; k++)
        obs[i * 4 + k] = s[k];
    rewards[i] = 1.0f;
    terminated[i] = (uint8_t)term;
    truncated[i] = (uint8_t)(t >= max_steps);
    elapsed[i] = t;
}

/* The per-world reset of env/loops.h. */
BD_HOSTDEV static inline void bd_cartpole_reset(int i, const bd_env_batch *b, uint64_t counter)
{
    bd_cartpole_reset_one(b->obs + 4 * i, b->seed, b->world0 + (uint32_t)i, counter);
    b->elapsed[i] = 0;
}

#endif
