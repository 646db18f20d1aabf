/* fsm.h: the rule-based muscle (`muscle: {name: fsm, params: ...}`): a finite-state
 * machine per column, after the agent models of Mealy and Moore (see docs/run-file.md).
 * Each step, from its state, the first transition whose condition holds on the agent's
 * raw sensors (comparisons joined by and/or; and binds tighter) and whose probability
 * draw passes moves it to another state; then the state's action sets the actuators:
 * constants, and optionally a steering rule that turns toward (or away from) a point
 * given by two sensors in the agent's own frame (turn = gain x its bearing, clipped).
 * Draws come from Philox keyed by (agent seed, global column, step), so runs repeat.
 * A column whose episode ends starts over in the start state.
 * bd_fsm_step is BD_HOSTDEV: the CPU loop and the CUDA kernel of muscle/act.h run it.
 * Parsing and checking (muscle/fsm.c) name the run file's line for every problem. */
#ifndef BODHI_MUSCLE_FSM_H
#define BODHI_MUSCLE_FSM_H

#include <math.h>
#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "common/rng.h"
#include "env/mathf.h"

#define BD_FSM_STATES 16
#define BD_FSM_TRANS 64
#define BD_FSM_CMPS 128

enum { BD_FSM_LT, BD_FSM_LE, BD_FSM_GT, BD_FSM_GE, BD_FSM_EQ, BD_FSM_NE };

typedef struct {
    int sensor;          /* the agent's sensor index */
    int op;              /* BD_FSM_LT ... */
    float value;
    int ends_clause;     /* 1: an `or` (or the end) follows this comparison */
} bd_fsm_cmp;

typedef struct {
    int from, to;
    float prob;          /* fires with this probability when its condition holds (1: always) */
    int first, count;    /* its comparisons in cmps (count 0: always holds) */
} bd_fsm_trans;

typedef struct {
    float set[BD_MAX_ACTUATORS]; /* setpoints of the agent's actuators (0 unless given) */
    int steer;           /* 0 none, 1 toward, -1 away */
    int sx, sy;          /* the sensors of the point's x and y in the agent's frame */
    int turn;            /* the actuator that turns */
    float gain;          /* turn = gain x bearing (radians) */
} bd_fsm_state;

typedef struct bd_fsm {
    int nstates, ntrans, ncmps;
    int start;
    bd_fsm_state states[BD_FSM_STATES];
    bd_fsm_trans trans[BD_FSM_TRANS];   /* in the order written, grouped by nothing */
    bd_fsm_cmp cmps[BD_FSM_CMPS];
} bd_fsm;

BD_HOSTDEV static inline int bd_fsm_compare(float x, int op, float v)
{
    switch (op) {
    case BD_FSM_LT: return x < v;
    case BD_FSM_LE: return x <= v;
    case BD_FSM_GT: return x > v;
    case BD_FSM_GE: return x >= v;
    case BD_FSM_EQ: return x == v;
    default: return x != v;
    }
}

/* Whether transition t's condition holds on sensors obs (S). */
BD_HOSTDEV static inline int bd_fsm_holds(const bd_fsm *f, const bd_fsm_trans *t, const float *obs)
{
    if (t->count == 0)
        return 1;
    int any = 0, clause = 1;
    for (int c = t->first; c < t->first + t->count; c++) {
        const bd_fsm_cmp *m = &f->cmps[c];
        clause &= bd_fsm_compare(obs[m->sensor], m->op, m->value);
        if (m->ends_clause) {
            any |= clause;
            clause = 1;
        }
    }
    return any;
}

/* One step of a column in state `state` seeing obs (S): the next state, and the setpoints
 * (U, clipped to low/high) into act. Transition k draws word k & 3 of Philox number
 * step * 16 + k / 4 at (seed, column). */
BD_HOSTDEV static inline int bd_fsm_step(const bd_fsm *f, int state, const float *obs, uint64_t seed,
                                         uint32_t column, uint64_t step, int U, const float *low,
                                         const float *high, float *act)
{
    float u[4] = {0, 0, 0, 0};
    int drawn = -1;
    for (int k = 0; k < f->ntrans; k++) {
        const bd_fsm_trans *t = &f->trans[k];
        if (t->from != state || !bd_fsm_holds(f, t, obs))
            continue;
        if (t->prob < 1.0f) {
            if (drawn != k / 4) {
                drawn = k / 4;
                bd_rng_uniform4(seed, column, step * 16 + (uint64_t)drawn, BD_STREAM_ACTION, u);
            }
            if (!(u[k & 3] < t->prob))
                continue;
        }
        state = t->to;
        break;
    }
    const bd_fsm_state *s = &f->states[state];
    for (int d = 0; d < U; d++)
        act[d] = s->set[d];
    if (s->steer) {
        /* the bearing of the point (toward) or of its opposite (away); 0 at the origin.
         * env/mathf.h's atan2: the same bits on the CPU and the GPU */
        float sg = (float)s->steer;
        act[s->turn] = s->gain * bd_atan2f(sg * obs[s->sy], sg * obs[s->sx]);
    }
    for (int d = 0; d < U; d++) /* NaN (inf gain times a zero bearing) goes to low */
        act[d] = !(act[d] >= low[d]) ? low[d] : act[d] > high[d] ? high[d] : act[d];
    return state;
}

#endif
