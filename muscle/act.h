/* act.h: a muscle's per-world work for one agent, written once for the CPU loops
 * (muscle/actor.c) and the CUDA kernels (kernels/muscle.cu), like the env physics:
 *   bd_act_gather  the agent's sensor columns of the env's observations, raw and as the
 *                  network sees them (running normalisation)
 *   bd_act_select  the action from the network's output (categorical, Gaussian, SAC's
 *                  squashed Gaussian, epsilon-greedy over Q-values for a Q head; uniform for
 *                  the random muscle), its log-probability, and the clipped setpoint into
 *                  the env's action buffer (bd_act_put, which replay/resim.c replays traces with)
 *   bd_act_record  reward and episode flags of the step into the rollout; says whether
 *                  the world was truncated (not terminated), so its final observation
 *                  needs a value to bootstrap from
 * An agent's columns are (world, member) pairs of its group, world-major: column i of the
 * shard is row bd_act_row(a, i) of the env's batch (the row itself for one-agent worlds).
 * Sampling draws from Philox keyed by (agent seed, global column, step), so on one device
 * a trajectory is a function of the run seed alone, whatever the shard split. (Across
 * devices libtorch's floats differ in the last bits, so CPU and GPU runs drift apart.)
 * The pointers are all on one device (host memory on CPU). */
#ifndef BODHI_MUSCLE_ACT_H
#define BODHI_MUSCLE_ACT_H

#include <math.h>
#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "common/rng.h"
#include "muscle/fsm.h"
#include "torch/net.h" /* the squashed Gaussian's log std bounds */

#define BD_ACT_MAX 32 /* discrete actions or continuous dims per agent */

typedef enum { BD_ACT_SAMPLE, BD_ACT_GREEDY, BD_ACT_UNIFORM, BD_ACT_FSM } bd_act_mode;

/* Everything the per-column functions read, passed to kernels by value. */
typedef struct {
    int n, S, U, A;       /* columns, sensors, actuators, outputs (discrete: actions) */
    int D, AD;            /* env observation and actuator columns */
    int M, first, count;  /* the env's rows per world; the agent's first row in a world, and
                             its rows (members) per world */
    int continuous;       /* 1: diagonal Gaussian over U = A Box actuators */
    int qhead;            /* 1: the network's outputs are Q-values: epsilon-greedy argmax */
    float epsilon;        /* qhead: the exploration rate the brain sent (sampling mode) */
    int squashed;         /* with continuous: SAC's squashed Gaussian (out holds 2 A per column) */
    int mode;             /* bd_act_mode */
    int norm;             /* 1: the network sees clip((x - mean) * inv, -10, 10) */
    uint64_t seed;        /* the agent's seed */
    uint32_t world0;      /* global index of the shard's first column */
    const int *cols;      /* (S) env observation column of each sensor (device) */
    const float *mean;    /* (S) normaliser, with inv (S), when norm (device) */
    const float *inv;
    int act_cols[BD_MAX_ACTUATORS];          /* env actuator column of each actuator */
    float low[BD_MAX_ACTUATORS], high[BD_MAX_ACTUATORS];
    float logstd[BD_ACT_MAX];                /* continuous: the policy's log std */
    const bd_fsm *fsm;    /* BD_ACT_FSM: the machine (device) */
    int *fsm_state;       /* BD_ACT_FSM: (n) each column's state (device) */
} bd_act_args;

/* The env row of column i (bd_env_row). */
BD_HOSTDEV static inline int64_t bd_act_row(const bd_act_args *a, int i)
{
    return bd_env_row(i, a->count, a->first, a->M);
}

/* Categorical choice from logits (A): returns the index, *logp its log-probability.
 * u in [0, 1) selects by inverse CDF; greedy takes the argmax (first on ties). */
BD_HOSTDEV static inline int bd_categorical(const float *logits, int A, float u, int greedy,
                                            float *logp)
{
    float mx = logits[0];
    int arg = 0;
    for (int a = 1; a < A; a++)
        if (logits[a] > mx) {
            mx = logits[a];
            arg = a;
        }
    double z = 0;
    for (int a = 0; a < A; a++)
        z += exp((double)(logits[a] - mx));
    double lse = (double)mx + log(z);
    int pick = arg;
    if (!greedy) {
        double target = (double)u * z, acc = 0;
        pick = A - 1;
        for (int a = 0; a < A; a++) {
            acc += exp((double)(logits[a] - mx));
            if (target < acc) {
                pick = a;
                break;
            }
        }
    }
    *logp = (float)((double)logits[pick] - lse);
    return pick;
}

/* Epsilon-greedy over Q-values q (A): the argmax (first on ties), or with probability
 * epsilon (u0 < epsilon) the uniform pick floor(u1 A); *logp the log-probability of the
 * choice under that mixture (0 when greedy: epsilon < 0 means no exploration). */
BD_HOSTDEV static inline int bd_epsilon_greedy(const float *q, int A, float epsilon, float u0, float u1,
                                               float *logp)
{
    int arg = 0;
    for (int a = 1; a < A; a++)
        if (q[a] > q[arg])
            arg = a;
    if (!(epsilon > 0)) {
        *logp = 0;
        return arg;
    }
    int pick = arg;
    if (u0 < epsilon) {
        int k = (int)(u1 * (float)A);
        pick = k < A ? k : A - 1;
    }
    double p = (double)epsilon / A + (pick == arg ? 1.0 - (double)epsilon : 0.0);
    *logp = (float)log(p);
    return pick;
}

/* Diagonal Gaussian over A dims: a = mean + exp(logstd) * z (z = 0 when greedy), and the
 * log-probability of a. z (A) are standard normal draws. */
BD_HOSTDEV static inline float bd_gaussian(const float *mean, const float *logstd, int A,
                                           const float *z, int greedy, float *a)
{
    double lp = 0;
    for (int d = 0; d < A; d++) {
        double zd = greedy ? 0.0 : z[d];
        a[d] = (float)(mean[d] + exp((double)logstd[d]) * zd); /* double on both: nvcc would take expf */
        lp += -0.5 * zd * zd - logstd[d] - 0.91893853320467274178; /* 0.5 * log(2 pi) */
    }
    return (float)lp;
}

/* softplus(x) = log(1 + e^x), without overflow for large x. */
BD_HOSTDEV static inline double bd_softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/* A squashed Gaussian's log std from the actor's raw output (torch/net.h's bounds, as
 * torch/heads.cpp's squashed_logstd). */
BD_HOSTDEV static inline double bd_squashed_logstd(double raw)
{
    return BDT_LOGSTD_MIN + 0.5 * (BDT_LOGSTD_MAX - BDT_LOGSTD_MIN) * (tanh(raw) + 1.0);
}

/* The log-density of a = tanh(u) scale + bias when u ~ N(mean, e^logstd): the Gaussian's
 * at u less log |da/du| = log scale + log(1 - tanh(u)^2), the latter as
 * 2 (log 2 - u - softplus(-2 u)), finite where tanh(u) rounds to +-1. */
BD_HOSTDEV static inline double bd_squashed_logp(double mean, double logstd, double u, double scale)
{
    const double z = (u - mean) * exp(-logstd);
    return -0.5 * z * z - logstd - 0.91893853320467274178 - log(scale)
           - 2.0 * (0.69314718055994530942 - u - bd_softplus(-2.0 * u));
}

/* SAC's squashed Gaussian over A dims from the actor's output out (2 A: means, then raw
 * log stds): a = tanh(mean + std z) scale + bias into [low, high] of each dim (z = 0 when
 * greedy), and the log-density of a. z (A) are standard normal draws. */
BD_HOSTDEV static inline float bd_squashed(const float *out, int A, const float *z, int greedy, const float *low,
                                           const float *high, float *a)
{
    double lp = 0;
    for (int d = 0; d < A; d++) {
        const double ls = bd_squashed_logstd(out[A + d]), zd = greedy ? 0.0 : z[d];
        const double u = out[d] + exp(ls) * zd;
        const double scale = 0.5 * ((double)high[d] - (double)low[d]), bias = 0.5 * ((double)high[d] + (double)low[d]);
        a[d] = (float)(tanh(u) * scale + bias);
        lp += bd_squashed_logp(out[d], ls, u, scale);
    }
    return (float)lp;
}

/* Standard normal draws for world `world` at `step`: z (A), Box-Muller on Philox. */
BD_HOSTDEV static inline void bd_normals(uint64_t seed, uint32_t world, uint64_t step, int A,
                                         float *z)
{
    for (int d = 0; d < A; d += 2) {
        float u[4];
        bd_rng_uniform4(seed, world, step * 16 + (uint64_t)(d / 2), BD_STREAM_ACTION, u);
        double r = sqrt(-2.0 * log(1.0 - (double)u[0])), th = 6.283185307179586 * u[1];
        z[d] = (float)(r * cos(th));
        if (d + 1 < A)
            z[d + 1] = (float)(r * sin(th));
    }
}

/* Column i: sensor columns of its row of src (R, D) into raw (n, S) as they are (raw may
 * be NULL) and into net (n, S) as the network sees them (net may be NULL). */
BD_HOSTDEV static inline void bd_act_gather(int i, const bd_act_args *a, const float *src,
                                            float *raw, float *net)
{
    const int S = a->S;
    const int64_t r = bd_act_row(a, i);
    for (int s = 0; s < S; s++) {
        float x = src[r * a->D + a->cols[s]];
        if (raw)
            raw[(int64_t)i * S + s] = x;
        if (net) {
            float y = x;
            if (a->norm) {
                y = (x - a->mean[s]) * a->inv[s];
                y = y < -10.0f ? -10.0f : y > 10.0f ? 10.0f : y;
            }
            net[(int64_t)i * S + s] = y;
        }
    }
}

/* A continuous setpoint clipped into its actuator's bounds [lo, hi]; a NaN (a diverged
 * policy) goes to lo. */
BD_HOSTDEV static inline float bd_act_clip(float x, float lo, float hi)
{
    return !(x >= lo) ? lo : x > hi ? hi : x;
}

/* Column i's setpoints row (U) into its row of env_act (R, AD): a continuous one clipped
 * (bd_act_clip), a discrete one as its index. replay/resim.c replays a trace with it. */
BD_HOSTDEV static inline void bd_act_put(int i, const bd_act_args *a, const float *row, float *env_act)
{
    const int64_t r = bd_act_row(a, i);
    for (int d = 0; d < a->U; d++) {
        float x = row[d];
        if (a->continuous)
            x = bd_act_clip(x, a->low[d], a->high[d]);
        env_act[r * a->AD + a->act_cols[d]] = x;
    }
}

/* Column i at env step `step`: action (n, U) (discrete: the index as a float), logp (n)
 * and, for netless muscles, value (n) = 0, from out (n, A) (logits or means; (n, 2 A) for a
 * squashed Gaussian; unused when
 * uniform or a state machine, which reads the raw sensors obs (n, S)); the setpoint,
 * clipped to the actuator's bounds, into its row of env_act (R, AD). The rollout keeps the
 * unclipped action, whose log-probability the learner needs. */
BD_HOSTDEV static inline void bd_act_select(int i, const bd_act_args *a, uint64_t step,
                                            const float *out, const float *obs, float *act,
                                            float *logp, float *value, float *env_act)
{
    const int U = a->U, A = a->A;
    const uint32_t world = a->world0 + (uint32_t)i;
    float *row = act + (int64_t)i * U;
    if (a->mode == BD_ACT_FSM) {
        a->fsm_state[i] = bd_fsm_step(a->fsm, a->fsm_state[i], obs + (int64_t)i * a->S, a->seed, world, step,
                                      U, a->low, a->high, row);
        logp[i] = 0;
        value[i] = 0;
    } else if (a->mode == BD_ACT_UNIFORM) {
        double lp = 0;
        for (int d = 0; d < U; d++) {
            float u[4];
            bd_rng_uniform4(a->seed, world, step * 16 + (uint64_t)d, BD_STREAM_ACTION, u);
            if (!a->continuous) {
                int k = (int)(u[0] * (float)A);
                row[0] = (float)(k < A ? k : A - 1);
                lp = -log((double)A);
            } else {
                float lo = a->low[d], hi = a->high[d];
                row[d] = lo + u[0] * (hi - lo);
                lp -= log((double)hi - (double)lo);
            }
        }
        logp[i] = (float)lp;
        value[i] = 0;
    } else if (a->qhead) {
        float u[4] = {0, 0, 0, 0};
        if (a->mode == BD_ACT_SAMPLE)
            bd_rng_uniform4(a->seed, world, step, BD_STREAM_EXPLORE, u);
        row[0] = (float)bd_epsilon_greedy(out + (int64_t)i * A, A, a->mode == BD_ACT_SAMPLE ? a->epsilon : -1.0f,
                                          u[0], u[1], &logp[i]);
    } else if (a->continuous) {
        float z[BD_ACT_MAX] = {0};
        if (a->mode == BD_ACT_SAMPLE)
            bd_normals(a->seed, world, step, A, z);
        if (a->squashed)
            logp[i] = bd_squashed(out + (int64_t)i * 2 * A, A, z, a->mode == BD_ACT_GREEDY, a->low, a->high, row);
        else
            logp[i] = bd_gaussian(out + (int64_t)i * A, a->logstd, A, z, a->mode == BD_ACT_GREEDY, row);
    } else {
        float u[4] = {0, 0, 0, 0};
        if (a->mode == BD_ACT_SAMPLE)
            bd_rng_uniform4(a->seed, world, step, BD_STREAM_ACTION, u);
        row[0] = (float)bd_categorical(out + (int64_t)i * A, A, u[0], a->mode == BD_ACT_GREEDY, &logp[i]);
    }
    bd_act_put(i, a, row, env_act);
}

/* Column i after a step: its row's reward and flags (R) into the rollout rows (n), fval
 * (n) zeroed; a state machine whose episode ended starts over. Returns 1 when the episode
 * was truncated and not terminated: its final observation needs a value. */
BD_HOSTDEV static inline int bd_act_record(int i, const bd_act_args *a, const float *rewards,
                                           const uint8_t *term, const uint8_t *trunc, float *rew,
                                           uint8_t *rterm, uint8_t *rtrunc, float *fval)
{
    const int64_t r = bd_act_row(a, i);
    rew[i] = rewards[r];
    rterm[i] = term[r];
    rtrunc[i] = trunc[r];
    fval[i] = 0;
    if (a->mode == BD_ACT_FSM && (term[r] || trunc[r]))
        a->fsm_state[i] = a->fsm->start;
    return trunc[r] && !term[r];
}

#endif
