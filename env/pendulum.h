/* pendulum.h: Pendulum-v1 physics, one world per call, shared by env/pendulum.c (CPU loop)
 * and kernels/pendulum.cu (CUDA). Gymnasium's published dynamics and limits: g 10, mass 1,
 * length 1, dt 0.05, semi-implicit Euler (the new speed, clipped to +-8, moves the angle);
 * the torque is clipped to [-2, 2] inside the step; reward
 * -(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2) on the state before the step; never
 * terminates; truncated at 200 steps; reset th ~ U(-pi, pi), thdot ~ U(-1, 1).
 * Gymnasium computes in float64 and reports float32; we compute in float32 so CPU and GPU
 * agree bit for bit. The angle th is not wrapped (as in Gymnasium), so it drifts by at most
 * 0.4 rad a step; bd_sinf/bd_cosf stay within about 1 ulp far beyond that.
 * State = (th, thdot) in b->state (N,2); obs = (cos th, sin th, thdot) (N,3); the action is
 * the torque u (N,1), a float. */
#ifndef BODHI_ENV_PENDULUM_H
#define BODHI_ENV_PENDULUM_H

#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "env/mathf.h"
#include "common/rng.h"

#define BD_PENDULUM_OBS 3
#define BD_PENDULUM_STATE 2
#define BD_PENDULUM_G 10.0f
#define BD_PENDULUM_M 1.0f
#define BD_PENDULUM_L 1.0f
#define BD_PENDULUM_DT 0.05f
#define BD_PENDULUM_MAX_SPEED 8.0f
#define BD_PENDULUM_MAX_TORQUE 2.0f
#define BD_PENDULUM_MAX_STEPS 200

/* o (3): the observation of state s (2). */
BD_HOSTDEV static inline void bd_pendulum_observe(const float *s, float *o)
{
    float sn, cs;
    bd_sincosf(s[0], &sn, &cs);
    o[0] = cs;
    o[1] = sn;
    o[2] = s[1];
}

/* s (2): a fresh state th ~ U(-pi, pi), thdot ~ U(-1, 1) drawn at (seed, world, counter);
 * o (3) its observation. */
BD_HOSTDEV static inline void bd_pendulum_reset_one(float *s, float *o, uint64_t seed,
                                                    uint32_t world, uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(seed, world, counter, BD_STREAM_RESET, u);
    s[0] = u[0] * (2.0f * BD_PI_F) - BD_PI_F;
    s[1] = u[1] * 2.0f - 1.0f;
    bd_pendulum_observe(s, o);
}

/* One step of s (2) under torque `action` (clipped to [-2, 2]; NaN stays NaN, as with
 * np.clip); returns the reward, computed on the state before the step. */
BD_HOSTDEV static inline float bd_pendulum_dynamics(float *s, float action)
{
    float th = s[0], thdot = s[1];
    float u = action < -BD_PENDULUM_MAX_TORQUE ? -BD_PENDULUM_MAX_TORQUE
              : action > BD_PENDULUM_MAX_TORQUE ? BD_PENDULUM_MAX_TORQUE
                                                : action;
    float an = bd_angle_normalize(th);
    float costs = an * an + 0.1f * (thdot * thdot) + 0.001f * (u * u);
    float newthdot = thdot
                     + (3.0f * BD_PENDULUM_G / (2.0f * BD_PENDULUM_L) * bd_sinf(th)
                        + 3.0f / (BD_PENDULUM_M * BD_PENDULUM_L * BD_PENDULUM_L) * u)
                           * BD_PENDULUM_DT;
    newthdot = newthdot < -BD_PENDULUM_MAX_SPEED ? -BD_PENDULUM_MAX_SPEED
               : newthdot > BD_PENDULUM_MAX_SPEED ? BD_PENDULUM_MAX_SPEED
                                                  : newthdot;
    s[0] = th + newthdot * BD_PENDULUM_DT;
    s[1] = newthdot;
    return -costs;
}

/* World i, first half of a step, without branches on the outcome (the CPU loop over it
 * vectorises): dynamics, reward, flags and episode clock. state (N,2), obs (N,3),
 * actions/rewards/flags/elapsed (N). A world that ended still holds its last state and obs
 * until env/loops.h's finish. */
BD_HOSTDEV static inline void bd_pendulum_advance(int i, float *state, float *obs,
                                                        const float *actions, float *rewards,
                                                        uint8_t *terminated, uint8_t *truncated,
                                                        int32_t *elapsed, int max_steps)
{
    float s[BD_PENDULUM_STATE] = {state[i * 2], state[i * 2 + 1]};
    float r = bd_pendulum_dynamics(s, actions[i]);
    int t = elapsed[i] + 1;
    state[i * 2] = s[0];
    state[i * 2 + 1] = s[1];
    bd_pendulum_observe(s, obs + i * BD_PENDULUM_OBS);
    rewards[i] = r;
    terminated[i] = 0;
    truncated[i] = (uint8_t)(t >= max_steps);
    elapsed[i] = t;
}

/* The per-world reset of env/loops.h. */
BD_HOSTDEV static inline void bd_pendulum_reset(int i, const bd_env_batch *b, uint64_t counter)
{
    bd_pendulum_reset_one(b->state + BD_PENDULUM_STATE * i, b->obs + BD_PENDULUM_OBS * i, b->seed,
                          b->world0 + (uint32_t)i, counter);
    b->elapsed[i] = 0;
}

#endif
