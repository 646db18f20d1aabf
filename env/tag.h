/* tag.h: Tag, many interacting agents per world (after WarpDrive's tag_continuous): runners
 * (group 0, rows [0, R) of a world) flee taggers (group 1, rows [R, M)) in the square
 * arena [0, arena]^2. The physics of one step is written once here, as per-agent functions
 * and one per-world step (bd_tag_world_step) that both env/tag.c (CPU: one world after
 * another, tid 0 of 1 thread) and kernels/tag.cu (CUDA: one block per world, its threads
 * striding over the agents, __syncthreads between phases) run.
 *
 * A step of one world: every active agent turns, speeds up or slows down and moves (clamped
 * to the arena, speed 0 at a wall); an active runner within tag_radius of a tagger is tagged
 * (reward -1; each tagger +1 per runner within its radius, all of them tagged; the taggers
 * search and mark, as they are the fewer); a tagged runner respawns uniformly (respawn 1)
 * or leaves the game until its world resets (respawn 0); the world ends terminated when no
 * active runner is left, truncated at max_steps, all rows together; then every row
 * observes itself and its K nearest other active agents.
 *
 * Neighbours come from a uniform grid of G x G cells at least tag_radius wide (about two
 * agents per cell, so scratch stays O(M)), rebuilt by a counting sort after the moves and
 * again after respawns, or with brute_force 1 from all M agents (the reference). Candidates
 * are ranked by (squared distance, agent index), a total order (one 64-bit integer key),
 * so the answer depends neither on the search nor on the order of agents inside a cell
 * (which differs between the CPU's serial sort and the GPU's atomic scatter): grid and
 * brute force give the same bits. Every result is a count or a per-agent value, never a
 * float sum over agents, so no order of threads changes a bit.
 *
 * Randomness: Philox at (seed, global world, (step << 21) | agent): BD_STREAM_RESET for
 * episode starts (step 0 at create, the batch step + 1 at an auto-reset), BD_STREAM_ENV for
 * respawns (the batch step). Agents per world are at most 2^20 (bd_env_shape_of).
 *
 * Per world, state (9 M floats, blocks of M): x, y, heading, speed, active; cos and sin of
 * the heading (kept from the move, so neighbours' velocities need no trigonometry); and the
 * positions in cell order (the grid's copy, so a search reads them in a row);
 * scratch (2 M + 2 C + 1 + R ints): each agent's cell (-1 inactive), cell starts (C + 1),
 * a cursor per cell, agents sorted by cell, and each runner's tagged flag of this step. */
#ifndef BODHI_ENV_TAG_H
#define BODHI_ENV_TAG_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "common/rng.h"
#include "env/mathf.h"

/* The params, in declared order (bd_env_desc.params). */
enum {
    BD_TAG_RUNNERS,
    BD_TAG_TAGGERS,
    BD_TAG_ARENA,
    BD_TAG_RUNNER_SPEED,
    BD_TAG_TAGGER_SPEED,
    BD_TAG_ACCEL,
    BD_TAG_TURN,
    BD_TAG_RADIUS,
    BD_TAG_NEIGHBOURS,
    BD_TAG_RESPAWN,
    BD_TAG_BRUTE,
    BD_TAG_NPARAMS
};

#define BD_TAG_MAX_K 8
#define BD_TAG_OWN 6                               /* own channels before the neighbours' */
#define BD_TAG_PER_NEIGHBOUR 7
#define BD_TAG_OBS(K) (BD_TAG_OWN + BD_TAG_PER_NEIGHBOUR * (K))
#define BD_TAG_MAX_STEPS 200
#define BD_TAG_AGENT_BITS 21                       /* agent index bits of a draw's counter */
#define BD_TAG_THREADS 256                         /* the most CUDA threads per world */
/* Rounding margins of the grid. A cell index (x * G / arena, truncated) puts a point at
 * most about G * 2^-22 cells (under 2e-4 for G <= 725, which 2^20 agents give) from where
 * exact arithmetic would, and a squared distance rounds by a few 1e-7 of itself; so cells
 * are made at least 1.001 tag radii wide (two agents within the radius are never more than
 * one cell apart), and the K-nearest search treats everything as 1e-3 cell nearer than it
 * computes before it skips a span or stops: neither ever drops a candidate that could
 * rank among the K. */
#define BD_TAG_CELL_MARGIN 1.001f
#define BD_TAG_REACH_MARGIN 1e-3f

/* The barrier between the phases of a world's step: __syncthreads on the GPU, nothing for
 * the CPU's one thread. A host program may define it first, with BD_TAG_HOST_ATOMICS, to
 * run a world on several host threads in lock step as a block does (tests/test_tag.c). */
#ifndef BD_TAG_SYNC
#ifdef __CUDA_ARCH__
#define BD_TAG_SYNC() __syncthreads()
#else
#define BD_TAG_SYNC() ((void)0)
#endif
#endif

/* Everything a step needs from the params, worked out once per call (bd_tag_cfg_of). */
typedef struct {
    int M, R;             /* agents and runners per world (taggers are rows [R, M)) */
    int K;                /* neighbours observed */
    int G, C;             /* grid side and cells (G * G) */
    int respawn, brute;
    float arena, inv_arena;
    float speed[2];       /* top speed of a runner, a tagger */
    float inv_tspeed;     /* 1 / tagger speed (speeds in observations) */
    float accel, turn, r2; /* r2: tag_radius squared */
    float cell, inv_cell; /* cell width and its inverse */
    int obs_dim, state_dim, scratch_dim;
} bd_tag_cfg;

/* One world's views into the batch's state and scratch (see the header comment). */
typedef struct {
    float *x, *y, *h, *s, *on, *c, *sn;
    float *px, *py; /* positions in cell order (beside sorted) */
    int32_t *cell, *start, *cursor, *sorted, *tagged;
} bd_tag_world;

/* What the threads of one world share (CUDA: __shared__; CPU: the caller's stack). */
typedef struct {
    int32_t tagged;               /* some runner was tagged this step */
    int32_t alive;                /* some runner is still active (respawn 0) */
    int32_t part[BD_TAG_THREADS]; /* the cell-count prefix sum, one partial per thread */
} bd_tag_shared;

/* v into [lo, hi]; NaN gives lo. */
BD_HOSTDEV static inline float bd_tag_clampf(float v, float lo, float hi)
{
    return v >= lo ? (v <= hi ? v : hi) : lo;
}

/* The step's numbers from params `param` (bd_env_batch.param) for M agents per world.
 * Params outside their declared ranges are taken at the nearest end. */
BD_HOSTDEV static inline void bd_tag_cfg_of(const float *param, int M, bd_tag_cfg *c)
{
    c->M = M;
    c->R = (int)bd_tag_clampf(param[BD_TAG_RUNNERS], 1.0f, (float)(M - 1));
    c->K = (int)bd_tag_clampf(param[BD_TAG_NEIGHBOURS], 1.0f, (float)BD_TAG_MAX_K);
    c->respawn = param[BD_TAG_RESPAWN] >= 0.5f;
    c->brute = param[BD_TAG_BRUTE] >= 0.5f;
    c->arena = bd_tag_clampf(param[BD_TAG_ARENA], 1.0f, 1e4f);
    c->inv_arena = 1.0f / c->arena;
    c->speed[0] = bd_tag_clampf(param[BD_TAG_RUNNER_SPEED], 0.0f, 1e4f);
    c->speed[1] = bd_tag_clampf(param[BD_TAG_TAGGER_SPEED], 1e-3f, 1e4f);
    c->inv_tspeed = 1.0f / c->speed[1];
    c->accel = bd_tag_clampf(param[BD_TAG_ACCEL], 0.0f, 1e4f);
    c->turn = bd_tag_clampf(param[BD_TAG_TURN], 0.0f, BD_PI_F);
    float radius = bd_tag_clampf(param[BD_TAG_RADIUS], 1e-3f, 1e4f);
    c->r2 = radius * radius;
    /* G = max(1, min(floor(arena / radius), ceil(sqrt(M / 2)))), the radius widened by the
     * margin */
    int gm = 1;
    while (2 * gm * gm < M)
        gm++;
    float fit = c->arena / (radius * BD_TAG_CELL_MARGIN);
    c->G = fit < (float)gm ? (int)fit : gm;
    c->G = c->G > 1 ? c->G : 1;
    c->C = c->G * c->G;
    c->cell = c->arena / (float)c->G;
    c->inv_cell = (float)c->G / c->arena;
    c->obs_dim = BD_TAG_OBS(c->K);
    c->state_dim = 9 * M;
    c->scratch_dim = 2 * M + 2 * c->C + 1 + c->R;
}

/* World i's views. */
BD_HOSTDEV static inline void bd_tag_world_of(const bd_env_batch *b, const bd_tag_cfg *c, int i,
                                              bd_tag_world *w)
{
    const int64_t M = c->M;
    float *st = b->state + (int64_t)i * c->state_dim;
    int32_t *sc = b->scratch + (int64_t)i * c->scratch_dim;
    w->x = st;
    w->y = st + M;
    w->h = st + 2 * M;
    w->s = st + 3 * M;
    w->on = st + 4 * M;
    w->c = st + 5 * M;
    w->sn = st + 6 * M;
    w->px = st + 7 * M;
    w->py = st + 8 * M;
    w->cell = sc;
    w->start = sc + M;
    w->cursor = w->start + c->C + 1;
    w->sorted = w->cursor + c->C;
    w->tagged = w->sorted + M;
}

/* *p += 1, returning the old value (atomically on the GPU). */
BD_HOSTDEV static inline int bd_tag_fetch_inc(int32_t *p)
{
#if defined(__CUDA_ARCH__)
    return atomicAdd((int *)p, 1);
#elif defined(BD_TAG_HOST_ATOMICS)
    return __atomic_fetch_add(p, 1, __ATOMIC_RELAXED);
#else
    return (*p)++;
#endif
}

/* *flag = 1, from any number of threads at once. */
BD_HOSTDEV static inline void bd_tag_raise(int32_t *flag)
{
#if defined(__CUDA_ARCH__)
    atomicExch(flag, 1); /* a plain store from many threads is a race in CUDA's memory model */
#elif defined(BD_TAG_HOST_ATOMICS)
    __atomic_store_n(flag, 1, __ATOMIC_RELAXED);
#else
    *flag = 1;
#endif
}

/* Agent a starts afresh: uniform in the arena, uniform heading in [-pi, pi), speed 0,
 * active; from the draw at (seed, world, (step << 21) | a, stream). */
BD_HOSTDEV static inline void bd_tag_place(const bd_tag_cfg *c, const bd_tag_world *w, int a, uint64_t seed,
                                           uint32_t world, uint64_t step, uint32_t stream)
{
    float u[4];
    bd_rng_uniform4(seed, world, (step << BD_TAG_AGENT_BITS) | (uint64_t)a, stream, u);
    float h = (u[2] * 2.0f - 1.0f) * BD_PI_F;
    w->x[a] = u[0] * c->arena;
    w->y[a] = u[1] * c->arena;
    w->h[a] = h;
    w->s[a] = 0.0f;
    w->on[a] = 1.0f;
    bd_sincosf(h, &w->sn[a], &w->c[a]);
}

/* Active agent a under its actions act (2: accel, turn, each clamped to [-1, 1]; NaN is
 * -1): turn, change speed within [0, its group's top speed], move; a wall stops it. */
BD_HOSTDEV static inline void bd_tag_move(const bd_tag_cfg *c, const bd_tag_world *w, int a, const float *act)
{
    float acc = bd_tag_clampf(act[0], -1.0f, 1.0f), turn = bd_tag_clampf(act[1], -1.0f, 1.0f);
    float h = bd_angle_reduce(w->h[a] + turn * c->turn);
    float s = bd_tag_clampf(w->s[a] + acc * c->accel, 0.0f, c->speed[a >= c->R]);
    float sn, cs;
    bd_sincosf(h, &sn, &cs);
    float x = w->x[a] + s * cs, y = w->y[a] + s * sn;
    int out = (x < 0.0f) | (x > c->arena) | (y < 0.0f) | (y > c->arena);
    w->x[a] = bd_tag_clampf(x, 0.0f, c->arena);
    w->y[a] = bd_tag_clampf(y, 0.0f, c->arena);
    w->h[a] = h;
    w->s[a] = out ? 0.0f : s;
    w->c[a] = cs;
    w->sn[a] = sn;
}

/* The cell of a point in the arena, row-major (cy * G + cx). */
BD_HOSTDEV static inline int bd_tag_cell_of(const bd_tag_cfg *c, float x, float y)
{
    int cx = (int)(x * c->inv_cell), cy = (int)(y * c->inv_cell);
    cx = cx < c->G ? (cx > 0 ? cx : 0) : c->G - 1;
    cy = cy < c->G ? (cy > 0 ? cy : 0) : c->G - 1;
    return cy * c->G + cx;
}

/* Squared distance from (ax, ay) to (bx, by): the one expression every path uses. */
BD_HOSTDEV static inline float bd_tag_d2(float ax, float ay, float bx, float by)
{
    float dx = bx - ax, dy = by - ay;
    return dx * dx + dy * dy;
}

/* Sorts the world's active agents into cells (counting sort: counts, prefix sum, scatter):
 * cell, start (C + 1), sorted and the positions px, py in that order. Threads tid of nth
 * (nth <= BD_TAG_THREADS); the order inside a cell is arbitrary with more than one thread.
 * Ends synchronised. */
BD_HOSTDEV static inline void bd_tag_bin(const bd_tag_cfg *c, const bd_tag_world *w, int tid, int nth,
                                         bd_tag_shared *sh)
{
    const int M = c->M, C = c->C;
    for (int k = tid; k < C; k += nth)
        w->cursor[k] = 0;
    BD_TAG_SYNC();
    for (int a = tid; a < M; a += nth) {
        int k = w->on[a] != 0.0f ? bd_tag_cell_of(c, w->x[a], w->y[a]) : -1;
        w->cell[a] = k;
        if (k >= 0)
            bd_tag_fetch_inc(&w->cursor[k]);
    }
    BD_TAG_SYNC();
    /* prefix sum: each thread a contiguous chunk of cells, thread 0 over the chunk sums */
    const int chunk = (C + nth - 1) / nth, lo = tid * chunk, hi = lo + chunk < C ? lo + chunk : C;
    int run = 0;
    for (int k = lo; k < hi; k++)
        run += w->cursor[k];
    sh->part[tid] = run;
    BD_TAG_SYNC();
    if (tid == 0) {
        int total = 0;
        for (int t = 0; t < nth; t++) {
            int v = sh->part[t];
            sh->part[t] = total;
            total += v;
        }
        w->start[C] = total;
    }
    BD_TAG_SYNC();
    run = sh->part[tid];
    for (int k = lo; k < hi; k++) {
        int n = w->cursor[k];
        w->start[k] = run;
        w->cursor[k] = run;
        run += n;
    }
    BD_TAG_SYNC();
    for (int a = tid; a < M; a += nth) {
        int k = w->cell[a];
        if (k >= 0) {
            int j = bd_tag_fetch_inc(&w->cursor[k]);
            w->sorted[j] = a;
            w->px[j] = w->x[a];
            w->py[j] = w->y[a];
        }
    }
    BD_TAG_SYNC();
}

/* Tagger a's tags: every active runner within tag_radius (squared distance, runner first,
 * at most r2) is marked tagged; returns how many (the tagger's reward). Grid: the 3 x 3
 * cells around a's own, as cells are wider than the radius. Several taggers may mark one
 * runner. */
BD_HOSTDEV static inline float bd_tag_tags(const bd_tag_cfg *c, const bd_tag_world *w, int a)
{
    const float x = w->x[a], y = w->y[a];
    int n = 0;
    if (c->brute) {
        for (int r = 0; r < c->R; r++)
            if (w->on[r] != 0.0f && bd_tag_d2(w->x[r], w->y[r], x, y) <= c->r2) {
                bd_tag_raise(&w->tagged[r]);
                n++;
            }
        return (float)n;
    }
    const int G = c->G, k = w->cell[a], cx = k % G, cy = k / G;
    const int x0 = cx > 0 ? cx - 1 : 0, x1 = cx < G - 1 ? cx + 1 : G - 1;
    const int y0 = cy > 0 ? cy - 1 : 0, y1 = cy < G - 1 ? cy + 1 : G - 1;
    for (int yy = y0; yy <= y1; yy++) {
        const int j1 = w->start[yy * G + x1 + 1];
        for (int j = w->start[yy * G + x0]; j < j1; j++) {
            int r = w->sorted[j]; /* binned agents are active */
            if (r < c->R && bd_tag_d2(w->px[j], w->py[j], x, y) <= c->r2) {
                bd_tag_raise(&w->tagged[r]);
                n++;
            }
        }
    }
    return (float)n;
}

/* A candidate's rank: the bits of its squared distance (a float >= 0, whose bits order as
 * its values do) above its index, so that one integer compare is the total order
 * (squared distance, index). BD_TAG_NONE marks an empty slot. */
#define BD_TAG_NONE (~(uint64_t)0)

BD_HOSTDEV static inline uint64_t bd_tag_key(float q, int o)
{
#ifdef __CUDA_ARCH__
    uint32_t bits = __float_as_uint(q);
#else
    uint32_t bits;
    memcpy(&bits, &q, sizeof bits);
#endif
    return ((uint64_t)bits << 32) | (uint32_t)o;
}

BD_HOSTDEV static inline float bd_tag_key_d2(uint64_t key)
{
    uint32_t bits = (uint32_t)(key >> 32);
#ifdef __CUDA_ARCH__
    return __uint_as_float(bits);
#else
    float q;
    memcpy(&q, &bits, sizeof q);
    return q;
#endif
}

/* best (K, ascending, BD_TAG_NONE where empty) with the candidate `key`: an insertion by
 * selects only (best[m] = max(best[m - 1], min(best[m], key)), from the top down). */
BD_HOSTDEV static inline void bd_tag_keep(int K, uint64_t *best, uint64_t key)
{
    if (key >= best[K - 1])
        return;
    for (int m = K - 1; m > 0; m--) {
        uint64_t lo = best[m] < key ? best[m] : key;
        best[m] = best[m - 1] > lo ? best[m - 1] : lo;
    }
    best[0] = best[0] < key ? best[0] : key;
}

/* Sorted agents [j0, j1) as candidates for agent a at (x, y). */
BD_HOSTDEV static inline void bd_tag_scan(const bd_tag_cfg *c, const bd_tag_world *w, int a, float x, float y,
                                          int j0, int j1, uint64_t *best)
{
    for (int j = j0; j < j1; j++) {
        int o = w->sorted[j];
        if (o != a)
            bd_tag_keep(c->K, best, bd_tag_key(bd_tag_d2(x, y, w->px[j], w->py[j]), o));
    }
}

/* Cells x0..x1 of row `row` (one span of sorted agents) as candidates, unless the span's
 * rectangle, brought nearer by the margin, is farther than a full list's K-th. */
BD_HOSTDEV static inline void bd_tag_span(const bd_tag_cfg *c, const bd_tag_world *w, int a, float x, float y,
                                          int row, int x0, int x1, uint64_t *best)
{
    const float cell = c->cell, margin = BD_TAG_REACH_MARGIN * cell;
    float lo = (float)x0 * cell - x, hi = x - (float)(x1 + 1) * cell;
    float bl = (float)row * cell - y, bh = y - (float)(row + 1) * cell;
    float dx = (lo > hi ? lo : hi) - margin, dy = (bl > bh ? bl : bh) - margin;
    dx = dx > 0.0f ? dx : 0.0f;
    dy = dy > 0.0f ? dy : 0.0f;
    if (bd_tag_key(dx * dx + dy * dy, 0) > best[c->K - 1])
        return;
    const int32_t *start = w->start + row * c->G;
    bd_tag_scan(c, w, a, x, y, start[x0], start[x1 + 1], best);
}

/* The up to K nearest other active agents of active agent a, as keys (bd_tag_key)
 * ascending in best (K; BD_TAG_NONE where there are fewer). Grid: rings of cells around
 * a's cell, r = 0 and 1 (the 3 x 3 cells) then 2, 3, ..., until K are held and the K-th
 * is nearer than the nearest side of the square searched so far (sides on the arena's
 * border do not count), or the rings cover the grid; spans of a ring farther than the
 * K-th are skipped. */
BD_HOSTDEV static inline void bd_tag_nearest(const bd_tag_cfg *c, const bd_tag_world *w, int a,
                                            uint64_t *best)
{
    const float x = w->x[a], y = w->y[a];
    const int K = c->K;
    for (int k = 0; k < K; k++)
        best[k] = BD_TAG_NONE;
    if (c->brute) {
        for (int o = 0; o < c->M; o++)
            if (o != a && w->on[o] != 0.0f)
                bd_tag_keep(K, best, bd_tag_key(bd_tag_d2(x, y, w->x[o], w->y[o]), o));
        return;
    }
    const int G = c->G, k = w->cell[a], cx = k % G, cy = k / G;
    const float cell = c->cell, margin = BD_TAG_REACH_MARGIN * cell;
    /* from a to the sides of its own cell */
    const float left = x - (float)cx * cell, right = (float)(cx + 1) * cell - x;
    const float below = y - (float)cy * cell, above = (float)(cy + 1) * cell - y;
    {   /* rings 0 and 1: the 3 x 3 cells around a's, row by row */
        const int x0 = cx > 0 ? cx - 1 : 0, x1 = cx < G - 1 ? cx + 1 : G - 1;
        const int y0 = cy > 0 ? cy - 1 : 0, y1 = cy < G - 1 ? cy + 1 : G - 1;
        for (int yy = y0; yy <= y1; yy++)
            bd_tag_scan(c, w, a, x, y, w->start[yy * G + x0], w->start[yy * G + x1 + 1], best);
    }
    for (int r = 2;; r++) {
        /* rings 0..r-1 are searched: how far the square they cover reaches */
        const float out = (float)(r - 1) * cell;
        float reach = 3.4028235e38f;
        if (cx - r >= 0)
            reach = left + out < reach ? left + out : reach;
        if (cx + r < G)
            reach = right + out < reach ? right + out : reach;
        if (cy - r >= 0)
            reach = below + out < reach ? below + out : reach;
        if (cy + r < G)
            reach = above + out < reach ? above + out : reach;
        if (reach == 3.4028235e38f)
            break; /* the rings cover the grid */
        reach -= margin;
        if (reach > 0.0f && bd_tag_key(reach * reach, 0) > best[K - 1])
            break; /* K held, the K-th nearer than anything unsearched */
        const int x0 = cx - r > 0 ? cx - r : 0, x1 = cx + r < G - 1 ? cx + r : G - 1;
        if (cy - r >= 0) /* the ring's bottom and top rows */
            bd_tag_span(c, w, a, x, y, cy - r, x0, x1, best);
        if (cy + r < G)
            bd_tag_span(c, w, a, x, y, cy + r, x0, x1, best);
        const int y0 = cy - r + 1 > 0 ? cy - r + 1 : 0, y1 = cy + r - 1 < G - 1 ? cy + r - 1 : G - 1;
        for (int yy = y0; yy <= y1; yy++) { /* its left and right columns */
            if (cx - r >= 0)
                bd_tag_span(c, w, a, x, y, yy, cx - r, cx - r, best);
            if (cx + r < G)
                bd_tag_span(c, w, a, x, y, yy, cx + r, cx + r, best);
        }
    }
}

/* Agent a's observation into row (obs_dim = 6 + 7 K): own x, y (/ arena), cos, sin of its
 * heading, speed (/ tagger speed), tagger flag; then per neighbour k, nearest first, in a's
 * frame (world-frame deltas rotated by -heading): dx, dy, distance (/ arena), relative
 * velocity other - own (/ tagger speed), its tagger flag, present 1; slots without a
 * neighbour and inactive agents' rows are all 0. */
BD_HOSTDEV static inline void bd_tag_observe(const bd_tag_cfg *c, const bd_tag_world *w, int a, float *row)
{
    const int K = c->K;
    if (w->on[a] == 0.0f) {
        for (int k = 0; k < BD_TAG_OBS(K); k++)
            row[k] = 0.0f;
        return;
    }
    const float x = w->x[a], y = w->y[a], cs = w->c[a], sn = w->sn[a], s = w->s[a];
    const float vx = s * cs, vy = s * sn;
    row[0] = x * c->inv_arena;
    row[1] = y * c->inv_arena;
    row[2] = cs;
    row[3] = sn;
    row[4] = s * c->inv_tspeed;
    row[5] = a >= c->R ? 1.0f : 0.0f;
    uint64_t best[BD_TAG_MAX_K];
    bd_tag_nearest(c, w, a, best);
    for (int k = 0; k < K; k++) {
        float *o = row + BD_TAG_OWN + BD_TAG_PER_NEIGHBOUR * k;
        if (best[k] == BD_TAG_NONE) {
            for (int l = 0; l < BD_TAG_PER_NEIGHBOUR; l++)
                o[l] = 0.0f;
            continue;
        }
        const int j = (int)(uint32_t)best[k];
        const float dx = w->x[j] - x, dy = w->y[j] - y;
        const float dvx = w->s[j] * w->c[j] - vx, dvy = w->s[j] * w->sn[j] - vy;
        o[0] = (cs * dx + sn * dy) * c->inv_arena;
        o[1] = (cs * dy - sn * dx) * c->inv_arena;
        o[2] = sqrtf(bd_tag_key_d2(best[k])) * c->inv_arena;
        o[3] = (cs * dvx + sn * dvy) * c->inv_tspeed;
        o[4] = (cs * dvy - sn * dvx) * c->inv_tspeed;
        o[5] = j >= c->R ? 1.0f : 0.0f;
        o[6] = 1.0f;
    }
}

/* A fresh episode in world i from draws at `step` (BD_STREAM_RESET): every agent placed
 * and active, the grid built, every row observed, the episode clock 0. Threads tid of nth. */
BD_HOSTDEV static inline void bd_tag_world_reset(const bd_env_batch *b, const bd_tag_cfg *c, int i, uint64_t step,
                                                 int tid, int nth, bd_tag_shared *sh)
{
    bd_tag_world w;
    bd_tag_world_of(b, c, i, &w);
    const int M = c->M;
    const int64_t row0 = (int64_t)i * M, D = b->obs_dim;
    for (int a = tid; a < M; a += nth)
        bd_tag_place(c, &w, a, b->seed, b->world0 + (uint32_t)i, step, BD_STREAM_RESET);
    BD_TAG_SYNC();
    if (!c->brute)
        bd_tag_bin(c, &w, tid, nth, sh);
    for (int a = tid; a < M; a += nth)
        bd_tag_observe(c, &w, a, b->obs + (row0 + a) * D);
    if (tid == 0)
        b->elapsed[i] = 0;
}

/* One step of world i (see the header comment), threads tid of nth; an ended world has
 * its rows' last observations in final_obs and starts afresh from draws at step + 1. */
BD_HOSTDEV static inline void bd_tag_world_step(const bd_env_batch *b, const bd_tag_cfg *c, int i, int tid,
                                                int nth, bd_tag_shared *sh)
{
    bd_tag_world w;
    bd_tag_world_of(b, c, i, &w);
    const int M = c->M, R = c->R;
    const int64_t row0 = (int64_t)i * M, D = b->obs_dim, A = b->act_dim;
    const int t = b->elapsed[i] + 1; /* read by all before thread 0 writes it */
    for (int a = tid; a < M; a += nth) {
        if (w.on[a] != 0.0f)
            bd_tag_move(c, &w, a, b->actions + (row0 + a) * A);
        if (a < R)
            w.tagged[a] = 0;
    }
    if (tid == 0) {
        sh->tagged = 0;
        sh->alive = 0;
    }
    BD_TAG_SYNC();
    if (tid == 0)
        b->elapsed[i] = t;
    if (!c->brute)
        bd_tag_bin(c, &w, tid, nth, sh);
    /* tags: the taggers mark the runners they reach and count them (their rewards) */
    for (int a = R + tid; a < M; a += nth) {
        float n = bd_tag_tags(c, &w, a);
        b->rewards[row0 + a] = n;
        if (n > 0.0f)
            bd_tag_raise(&sh->tagged);
    }
    BD_TAG_SYNC();
    /* runners: -1 when tagged, then back at random or out of the game */
    const int any = sh->tagged;
    for (int a = tid; a < R; a += nth) {
        const int hit = w.tagged[a] != 0;
        b->rewards[row0 + a] = hit ? -1.0f : 0.0f;
        if (hit && c->respawn)
            bd_tag_place(c, &w, a, b->seed, b->world0 + (uint32_t)i, b->step, BD_STREAM_ENV);
        else if (hit)
            w.on[a] = 0.0f;
        if (any && !c->respawn && w.on[a] != 0.0f)
            bd_tag_raise(&sh->alive);
    }
    if (any) {
        BD_TAG_SYNC();
        if (!c->brute) /* positions or the active set changed */
            bd_tag_bin(c, &w, tid, nth, sh);
    }
    const uint8_t term = (uint8_t)(any && !c->respawn && !sh->alive), trunc = (uint8_t)(t >= b->max_steps);
    for (int a = tid; a < M; a += nth) {
        float *row = b->obs + (row0 + a) * D;
        bd_tag_observe(c, &w, a, row);
        b->terminated[row0 + a] = term;
        b->truncated[row0 + a] = trunc;
        if (term | trunc)
            for (int64_t k = 0; k < D; k++)
                b->final_obs[(row0 + a) * D + k] = row[k];
    }
    if (term | trunc) {
        BD_TAG_SYNC();
        bd_tag_world_reset(b, c, i, b->step + 1, tid, nth, sh);
    }
}

#endif
