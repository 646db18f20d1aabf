/* mountaincar.h: MountainCar-v0 physics, one world per call, shared by env/mountaincar.c
 * (CPU loop) and kernels/mountaincar.cu (CUDA). Gymnasium's published dynamics and limits:
 * velocity += (action - 1) * 0.001 + cos(3 position) * (-0.0025), clipped to +-0.07;
 * position += velocity, clipped to [-1.2, 0.6]; at the left wall a leftward velocity becomes
 * 0 (inelastic); terminated when position >= 0.5 and velocity >= 0; reward -1 on every step
 * (the terminating one too); truncated at 200 steps; reset position ~ U(-0.6, -0.4),
 * velocity 0. Gymnasium computes in float64 and reports float32; we compute in float32 so
 * CPU and GPU agree bit for bit (the clip bounds are then the floats nearest -1.2, 0.6, 0.07).
 * State = obs = (position, velocity) (N,2); the action is 0 (push left), 1 (none) or 2
 * (push right), stored as a float and rounded to the nearest of the three (NaN: no push). */
#ifndef BODHI_ENV_MOUNTAINCAR_H
#define BODHI_ENV_MOUNTAINCAR_H

#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "env/mathf.h"
#include "common/rng.h"

#define BD_MOUNTAINCAR_OBS 2
#define BD_MOUNTAINCAR_MIN_POSITION (-1.2f)
#define BD_MOUNTAINCAR_MAX_POSITION 0.6f
#define BD_MOUNTAINCAR_MAX_SPEED 0.07f
#define BD_MOUNTAINCAR_GOAL_POSITION 0.5f
#define BD_MOUNTAINCAR_GOAL_VELOCITY 0.0f
#define BD_MOUNTAINCAR_FORCE 0.001f
#define BD_MOUNTAINCAR_GRAVITY 0.0025f
#define BD_MOUNTAINCAR_MAX_STEPS 200

/* s (2): a fresh state, position ~ U(-0.6, -0.4) drawn at (seed, world, counter), velocity 0. */
BD_HOSTDEV static inline void bd_mountaincar_reset_one(float *s, uint64_t seed, uint32_t world,
                                                       uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(seed, world, counter, BD_STREAM_RESET, u);
    s[0] = u[0] * 0.2f - 0.6f;
    s[1] = 0.0f;
}

/* One step of s (2) under `action`; returns 1 when the new state is at the goal. */
BD_HOSTDEV static inline int bd_mountaincar_dynamics(float *s, float action)
{
    float position = s[0], velocity = s[1];
    float push = (float)(action >= 1.5f) - (float)(action < 0.5f); /* action - 1 (NaN: 0) */
    velocity = velocity
               + (push * BD_MOUNTAINCAR_FORCE + bd_cosf(3.0f * position) * (-BD_MOUNTAINCAR_GRAVITY));
    /* clips as two-way selects: gcc cannot if-convert merges of many outcomes, and
     * this loop must vectorise */
    velocity = velocity < -BD_MOUNTAINCAR_MAX_SPEED ? -BD_MOUNTAINCAR_MAX_SPEED : velocity;
    velocity = velocity > BD_MOUNTAINCAR_MAX_SPEED ? BD_MOUNTAINCAR_MAX_SPEED : velocity;
    position = position + velocity;
    position = position < BD_MOUNTAINCAR_MIN_POSITION ? BD_MOUNTAINCAR_MIN_POSITION : position;
    position = position > BD_MOUNTAINCAR_MAX_POSITION ? BD_MOUNTAINCAR_MAX_POSITION : position;
    /* bitwise &, not &&: no branches, so loops over worlds vectorise */
    velocity = ((position == BD_MOUNTAINCAR_MIN_POSITION) & (velocity < 0.0f)) ? 0.0f : velocity;
    s[0] = position;
    s[1] = velocity;
    return (position >= BD_MOUNTAINCAR_GOAL_POSITION) & (velocity >= BD_MOUNTAINCAR_GOAL_VELOCITY);
}

/* World i, first half of a step, without branches on the outcome (the CPU loop over it
 * vectorises): dynamics, reward, flags and episode clock. obs (N,2),
 * actions/rewards/flags/elapsed (N). A world that ended still holds its terminal state in
 * obs until env/loops.h's finish. Its observation is its whole state: `state` is unused. */
BD_HOSTDEV static inline void bd_mountaincar_advance(int i, float *state, float *obs,
                                                     const float *actions, float *rewards,
                                                     uint8_t *terminated, uint8_t *truncated,
                                                     int32_t *elapsed, int max_steps)
{
    (void)state;
    float s[BD_MOUNTAINCAR_OBS] = {obs[i * 2], obs[i * 2 + 1]};
    int term = bd_mountaincar_dynamics(s, actions[i]);
    int t = elapsed[i] + 1;
    obs[i * 2] = s[0];
    obs[i * 2 + 1] = s[1];
    rewards[i] = -1.0f;
    terminated[i] = (uint8_t)term;
    truncated[i] = (uint8_t)(t >= max_steps);
    elapsed[i] = t;
}

/* The per-world reset of env/loops.h. */
BD_HOSTDEV static inline void bd_mountaincar_reset(int i, const bd_env_batch *b, uint64_t counter)
{
    bd_mountaincar_reset_one(b->obs + BD_MOUNTAINCAR_OBS * i, b->seed, b->world0 + (uint32_t)i, counter);
    b->elapsed[i] = 0;
}

#endif
