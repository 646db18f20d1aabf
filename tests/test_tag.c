/* test_tag.c: the Tag environment (env/tag.h, env/tag.c, kernels/tag.cu): registry entry,
 * shape and params; grid neighbour search against brute force, bit for bit, and against a
 * reference written here (plain sort of all pairs); movement, tags and rewards against the
 * state, worked out here in float64; episode ends with and without respawn; independence
 * of the thread count and the shard split; the per-world step run by several host threads
 * in lock step, as a CUDA block runs it (a barrier for __syncthreads, atomic grid counts);
 * and CPU vs CUDA bit identity (skipped without a GPU).
 * Tolerances: the env computes in float32 (unit roundoff 6e-8, bd_sinf/bd_cosf about 1 ulp)
 * and the references here in float64 from the same float32 inputs, on values of at most a
 * few tens (positions in arenas up to 30); 1e-4 absolute on positions and 1e-5 on unit-size
 * quantities leave a wide margin over those roundings; decisions at a threshold (a wall, the
 * tag radius) within 1e-4 of it are skipped. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bodhi/env.h"
#include "common/devmem.h"

/* env/tag.h's world step on host threads in lock step (the block emulation below) */
static pthread_barrier_t emu_barrier;
#define BD_TAG_SYNC() pthread_barrier_wait(&emu_barrier)
#define BD_TAG_HOST_ATOMICS 1
#include "env/tag.h"

/* ---- helpers ------------------------------------------------------------------------ */

typedef struct {
    int n, runners, taggers;
    float arena, radius;
    int K, respawn, brute, max_steps;
} tag_case;

static const bd_env_desc *tag_desc(void)
{
    const bd_env_desc *d = bd_env_find("tag");
    cr_assert_not_null(d, "tag is registered");
    return d;
}

static void params_of(const tag_case *tc, float *p)
{
    bd_env_param_defaults(tag_desc(), p);
    p[BD_TAG_RUNNERS] = (float)tc->runners;
    p[BD_TAG_TAGGERS] = (float)tc->taggers;
    p[BD_TAG_ARENA] = tc->arena;
    p[BD_TAG_RADIUS] = tc->radius;
    p[BD_TAG_NEIGHBOURS] = (float)tc->K;
    p[BD_TAG_RESPAWN] = (float)tc->respawn;
    p[BD_TAG_BRUTE] = (float)tc->brute;
}

static bd_env *make_on(const tag_case *tc, int n, uint32_t world0, uint64_t seed, bd_device dev)
{
    float p[BD_ENV_MAX_PARAMS];
    params_of(tc, p);
    bd_env *e = NULL;
    cr_assert_eq(bd_env_create(tag_desc(), n, world0, seed, dev, tc->max_steps, p, &e), BD_OK, "%s",
                 bd_lasterr());
    return e;
}

static bd_env *make(const tag_case *tc, int n, uint32_t world0, uint64_t seed)
{
    return make_on(tc, n, world0, seed, BD_DEVICE_CPU);
}

static size_t rows_of(const bd_env_batch *b)
{
    return (size_t)b->n * (size_t)b->members;
}

/* A world's state as the test reads it (blocks of M floats: x, y, h, s, on, cos, sin, then
 * the grid's copy of the positions in cell order, which depends on the search). */
static const float *st(const bd_env_batch *b, int i, int block)
{
    return b->state + (size_t)i * (size_t)b->state_dim + (size_t)block * (size_t)b->members;
}

/* Everything a step shows (obs, rewards, flags, clocks, final obs of ended rows) is the
 * same in x and y, whose rows [0, rows) are compared, x's from row x0. */
static void same_outputs(const bd_env_batch *x, size_t x0, const bd_env_batch *y, size_t rows, const char *what,
                         int t)
{
    const size_t D = (size_t)x->obs_dim, M = (size_t)x->members;
    cr_assert_eq(y->obs_dim, x->obs_dim);
    cr_assert_eq(memcmp(x->obs + x0 * D, y->obs, sizeof(float) * rows * D), 0, "%s: obs differ at step %d", what,
                 t);
    cr_assert_eq(memcmp(x->rewards + x0, y->rewards, sizeof(float) * rows), 0, "%s: rewards differ at step %d",
                 what, t);
    cr_assert_eq(memcmp(x->terminated + x0, y->terminated, rows), 0, "%s: terminated differ at step %d", what, t);
    cr_assert_eq(memcmp(x->truncated + x0, y->truncated, rows), 0, "%s: truncated differ at step %d", what, t);
    cr_assert_eq(memcmp(x->elapsed + x0 / M, y->elapsed, sizeof(int32_t) * (rows / M)), 0,
                 "%s: clocks differ at step %d", what, t);
    for (size_t r = 0; r < rows; r++)
        if (y->terminated[r] || y->truncated[r])
            cr_assert_eq(memcmp(x->final_obs + (x0 + r) * D, y->final_obs + r * D, sizeof(float) * D), 0,
                         "%s: final obs of row %zu differ at step %d", what, r, t);
}

/* The agents' state (the first 7 blocks of every world) is the same in x and y. */
static void same_state(const bd_env_batch *x, const bd_env_batch *y, const char *what, int t)
{
    for (int i = 0; i < x->n; i++)
        cr_assert_eq(memcmp(st(x, i, 0), st(y, i, 0), sizeof(float) * 7 * (size_t)x->members), 0,
                     "%s: state of world %d differs at step %d", what, i, t);
}

/* Rows that ended this step. */
static long ended_rows(const bd_env_batch *b)
{
    long n = 0;
    for (size_t r = 0; r < rows_of(b); r++)
        n += b->terminated[r] || b->truncated[r];
    return n;
}

/* ---- registry, shape, params ----------------------------------------------------------- */

Test(tag, registry_shape_and_params)
{
    const bd_env_desc *d = tag_desc();
    cr_assert_null(bd_env_gym_id(d));
    cr_assert_eq(d->ngroups, 2);
    cr_assert_str_eq(d->groups[0].name, "runner");
    cr_assert_str_eq(d->groups[1].name, "tagger");
    cr_assert_eq(d->default_max_steps, 200);
    cr_assert_eq(d->discrete, 0);
    const char *pn[] = {"runners", "taggers", "arena", "runner_speed", "tagger_speed", "accel", "turn",
                        "tag_radius", "neighbours", "respawn", "brute_force"};
    const float pdef[] = {20, 5, 10, 0.2f, 0.25f, 0.05f, 0.6f, 0.5f, 5, 1, 0};
    const int pint[] = {1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    cr_assert_eq(d->nparams, 11);
    for (int k = 0; k < 11; k++) {
        cr_assert_str_eq(d->params[k].name, pn[k]);
        cr_assert_eq(d->params[k].def, pdef[k], "%s default", pn[k]);
        cr_assert_eq(d->params[k].integer, pint[k], "%s integer", pn[k]);
        cr_assert(d->params[k].min <= d->params[k].def && d->params[k].def <= d->params[k].max);
    }
    cr_assert_eq(d->groups[0].count_param, 0);
    cr_assert_eq(d->groups[1].count_param, 1);
    /* channels: the same for both groups, 6 + 7 * 8 */
    const char *own[] = {"x", "y", "cos", "sin", "speed", "tagger"};
    const char *per[] = {"dx", "dy", "dist", "dvx", "dvy", "tagger", "present"};
    for (int g = 0; g < 2; g++) {
        const bd_env_group *gr = &d->groups[g];
        cr_assert_eq(gr->obs_dim, 62);
        cr_assert_eq(gr->act_dim, 2);
        cr_assert_str_eq(gr->actuators[0].name, "accel");
        cr_assert_str_eq(gr->actuators[1].name, "turn");
        for (int a = 0; a < 2; a++) {
            cr_assert_eq(gr->actuators[a].low, -1.0f);
            cr_assert_eq(gr->actuators[a].high, 1.0f);
            cr_assert_eq(gr->actuators[a].n, 0);
        }
        for (int k = 0; k < 6; k++)
            cr_assert_str_eq(gr->sensors[k].name, own[k]);
        for (int j = 0; j < 8; j++)
            for (int k = 0; k < 7; k++) {
                char want[32];
                snprintf(want, sizeof want, "n%d_%s", j, per[k]);
                cr_assert_str_eq(gr->sensors[6 + 7 * j + k].name, want);
            }
    }
    /* default shape: 20 + 5 agents, K 5, grid min(floor(10 / 0.5005), ceil(sqrt(12.5))) = 4 */
    bd_env_shape s;
    cr_assert_eq(bd_env_shape_of(d, NULL, &s), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(s.groups, 2);
    cr_assert_eq(s.members, 25);
    cr_assert_eq(s.count[0], 20);
    cr_assert_eq(s.count[1], 5);
    cr_assert_eq(s.first[1], 20);
    cr_assert_eq(s.obs_dim[0], 41);
    cr_assert_eq(s.obs_dim[1], 41);
    cr_assert_eq(s.act_stride, 2);
    cr_assert_eq(s.state_dim, 9 * 25);
    cr_assert_eq(s.scratch_dim, 2 * 25 + 2 * 16 + 1 + 20);
    /* params through bd_env_create: K 3, one of each */
    tag_case tc = {2, 1, 1, 5, 0.5f, 3, 1, 0, 0};
    bd_env *e = make(&tc, 2, 0, 1);
    bd_env_batch *b = bd_env_batch_of(e);
    cr_assert_eq(b->members, 2);
    cr_assert_eq(b->obs_dim, 27);
    cr_assert_eq(b->act_dim, 2);
    cr_assert_eq(b->max_steps, 200);
    cr_assert_eq(bd_env_shape_get(e)->obs_dim[1], 27);
    cr_assert_eq(b->param[BD_TAG_NEIGHBOURS], 3.0f);
    for (int r = 0; r < 4; r++) { /* a runner and a tagger see each other */
        cr_assert_eq(b->obs[r * 27 + 5], (float)(r & 1), "own tagger flag of row %d", r);
        cr_assert_eq(b->obs[r * 27 + 6 + 5], (float)!(r & 1), "neighbour's tagger flag of row %d", r);
        cr_assert_eq(b->obs[r * 27 + 6 + 6], 1.0f);
        cr_assert_eq(b->obs[r * 27 + 6 + 7 + 6], 0.0f, "only one other agent");
    }
    bd_env_destroy(e);
    /* counts out of range */
    float p[BD_ENV_MAX_PARAMS];
    bd_env_param_defaults(d, p);
    p[BD_TAG_RUNNERS] = 0;
    cr_assert_eq(bd_env_create(d, 2, 0, 1, BD_DEVICE_CPU, 0, p, &e), BD_EINVAL);
    cr_assert_null(e);
}

/* ---- grid against brute force --------------------------------------------------------- */

static const tag_case search_cases[] = {
    {3, 7, 3, 4, 0.5f, 5, 1, 0, 40},      /* G 3 */
    {2, 1, 1, 3, 0.5f, 5, 1, 0, 30},      /* one of each: K beyond the others, G 1 */
    {2, 40, 20, 3, 2.5f, 8, 1, 0, 50},    /* G 1: everybody in one cell, many tags */
    {2, 300, 200, 10, 1.0f, 8, 1, 0, 60}, /* G 9 by the radius: about 6 agents per cell */
    {2, 50, 10, 12, 0.7f, 8, 0, 0, 60},   /* respawn 0: runners leave, worlds terminate */
    {2, 200, 40, 60, 0.3f, 6, 1, 0, 80},  /* sparse: searches reach beyond ring 1 */
    {1, 3, 1, 50, 0.5f, 8, 1, 0, 100},    /* K beyond the others, G 2 */
};

Test(tag, grid_matches_brute_force_bit_for_bit)
{
    long all_tags = 0;
    for (size_t k = 0; k < sizeof search_cases / sizeof search_cases[0]; k++) {
        tag_case g = search_cases[k], f = g;
        f.brute = 1;
        bd_env *eg = make(&g, g.n, 0, 77 + k), *ef = make(&f, f.n, 0, 77 + k);
        bd_env_batch *bg = bd_env_batch_of(eg), *bf = bd_env_batch_of(ef);
        const size_t rows = rows_of(bg);
        char what[64];
        snprintf(what, sizeof what, "case %zu", k);
        same_outputs(bg, 0, bf, rows, what, -1);
        long ends = 0, tags = 0;
        for (int t = 0; t < 100; t++) {
            cr_assert_eq(bd_env_random_actions(eg, (uint64_t)t), BD_OK);
            memcpy(bf->actions, bg->actions, sizeof(float) * rows * (size_t)bg->act_dim);
            cr_assert_eq(bd_env_step(eg), BD_OK);
            cr_assert_eq(bd_env_step(ef), BD_OK);
            same_outputs(bg, 0, bf, rows, what, t);
            same_state(bg, bf, what, t);
            ends += ended_rows(bg);
            for (size_t r = 0; r < rows; r++)
                tags += bg->rewards[r] < 0;
        }
        cr_assert(ends > 0, "%s: episodes ended", what);
        all_tags += tags;
        cr_assert(k == 6 || tags > 0, "%s: runners were tagged", what);
        bd_env_destroy(eg);
        bd_env_destroy(ef);
    }
    cr_assert(all_tags > 100);
}

/* ---- neighbours against a reference written here ---------------------------------------- */

typedef struct {
    float d2;
    int idx;
} cand;

static int cand_cmp(const void *pa, const void *pb)
{
    const cand *a = pa, *b = pb;
    if (a->d2 != b->d2)
        return a->d2 < b->d2 ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Every row of b against its world's state: own channels, and the K nearest other active
 * agents by (float32 squared distance, index), from a sort of all of them. */
static void check_observations(const bd_env_batch *b, const float *obs, int R, float arena, float tspeed, int K)
{
    const int M = b->members, D = b->obs_dim;
    cand *c = malloc(sizeof(cand) * (size_t)M);
    cr_assert_not_null(c);
    for (int i = 0; i < b->n; i++) {
        const float *x = st(b, i, 0), *y = st(b, i, 1), *h = st(b, i, 2), *s = st(b, i, 3), *on = st(b, i, 4);
        for (int a = 0; a < M; a++) {
            const float *row = obs + ((size_t)i * M + a) * D;
            if (on[a] == 0.0f) {
                for (int k = 0; k < D; k++)
                    cr_assert_eq(row[k], 0.0f, "an inactive row is all 0");
                continue;
            }
            double ca = cos(h[a]), sa = sin(h[a]), vx = s[a] * ca, vy = s[a] * sa;
            cr_assert(fabs(row[0] - x[a] / arena) < 1e-6 && fabs(row[1] - y[a] / arena) < 1e-6);
            cr_assert(fabs(row[2] - ca) < 1e-6 && fabs(row[3] - sa) < 1e-6, "heading %g: %g %g", h[a], row[2],
                      row[3]);
            cr_assert(fabs(row[4] - s[a] / tspeed) < 1e-5);
            cr_assert_eq(row[5], a >= R ? 1.0f : 0.0f);
            int n = 0;
            for (int o = 0; o < M; o++) {
                if (o == a || on[o] == 0.0f)
                    continue;
                float dx = x[o] - x[a], dy = y[o] - y[a];
                c[n].d2 = dx * dx + dy * dy;
                c[n].idx = o;
                n++;
            }
            qsort(c, (size_t)n, sizeof(cand), cand_cmp);
            for (int k = 0; k < K; k++) {
                const float *q = row + 6 + 7 * k;
                if (k >= n) {
                    for (int l = 0; l < 7; l++)
                        cr_assert_eq(q[l], 0.0f, "an empty slot is all 0");
                    continue;
                }
                int o = c[k].idx;
                double dx = (double)x[o] - x[a], dy = (double)y[o] - y[a];
                double dvx = s[o] * cos(h[o]) - vx, dvy = s[o] * sin(h[o]) - vy;
                cr_assert_eq(q[6], 1.0f);
                cr_assert_eq(q[5], o >= R ? 1.0f : 0.0f, "world %d agent %d slot %d: agent %d", i, a, k, o);
                double want = sqrt(dx * dx + dy * dy) / arena;
                cr_assert(fabs(q[2] - want) < 1e-6, "world %d agent %d slot %d: %g vs %g", i, a, k, q[2], want);
                cr_assert(fabs(q[0] - (ca * dx + sa * dy) / arena) < 1e-5);
                cr_assert(fabs(q[1] - (ca * dy - sa * dx) / arena) < 1e-5);
                cr_assert(fabs(q[3] - (ca * dvx + sa * dvy) / tspeed) < 1e-5);
                cr_assert(fabs(q[4] - (ca * dvy - sa * dvx) / tspeed) < 1e-5);
            }
        }
    }
    free(c);
}

Test(tag, neighbours_match_a_reference_sort)
{
    const tag_case cases[] = {
        {4, 30, 10, 8, 0.5f, 6, 1, 0, 0},
        {2, 60, 20, 40, 0.5f, 8, 0, 0, 0},
        {2, 5, 2, 6, 0.5f, 8, 1, 0, 0},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bd_env *e = make(&cases[k], cases[k].n, 0, 5 + k);
        bd_env_batch *b = bd_env_batch_of(e);
        check_observations(b, b->obs, cases[k].runners, cases[k].arena, 0.25f, cases[k].K);
        for (int t = 0; t < 20; t++) {
            cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK);
            cr_assert_eq(bd_env_step(e), BD_OK);
            check_observations(b, b->obs, cases[k].runners, cases[k].arena, 0.25f, cases[k].K);
        }
        bd_env_destroy(e);
    }
}

/* Agents on a lattice of spacing 0.5 (exact in float32), some pairs on the same spot, at
 * rest: many neighbours at exactly the same distance, where only the index decides. */
static void set_lattice(bd_env_batch *b)
{
    const int M = b->members;
    for (int i = 0; i < b->n; i++) {
        float *s = b->state + (size_t)i * (size_t)b->state_dim;
        for (int a = 0; a < M; a++) {
            int k = a % 11 == 3 ? a - 1 : a; /* every 11th shares its predecessor's spot */
            s[a] = 0.5f + 0.5f * (float)(k % 7);
            s[M + a] = 0.5f + 0.5f * (float)((k / 7 + i) % 9);
            s[2 * M + a] = 0.0f;
            s[3 * M + a] = 0.0f;
            s[4 * M + a] = 1.0f;
            s[5 * M + a] = 1.0f;
            s[6 * M + a] = 0.0f;
        }
    }
    memset(b->actions, 0, sizeof(float) * rows_of(b) * (size_t)b->act_dim);
}

Test(tag, ties_are_broken_by_index_on_every_search)
{
    tag_case g = {2, 40, 20, 5, 0.3f, 8, 1, 0, 0}, f = g;
    f.brute = 1;
    bd_env *eg = make(&g, g.n, 0, 1), *ef = make(&f, f.n, 0, 1);
    bd_env_batch *bg = bd_env_batch_of(eg), *bf = bd_env_batch_of(ef);
    set_lattice(bg);
    set_lattice(bf);
    cr_assert_eq(bd_env_step(eg), BD_OK);
    cr_assert_eq(bd_env_step(ef), BD_OK);
    for (size_t r = 0; r < rows_of(bg); r++) /* every spot is 0.5 from the next: a tag only */
        cr_assert(bg->rewards[r] == 0.0f || (r % 60) % 11 == 3 || (r % 60) % 11 == 2, "row %zu", r);
    same_outputs(bg, 0, bf, rows_of(bg), "lattice", 0);
    check_observations(bg, bg->obs, g.runners, g.arena, 0.25f, g.K);
    bd_env_destroy(eg);
    bd_env_destroy(ef);
}

/* Starts and respawns come from the documented draws: (seed, world, (step << 21) | agent)
 * on BD_STREAM_RESET at create (step 0) and BD_STREAM_ENV for a respawn in step `step`. */
Test(tag, starts_and_respawns_use_the_documented_draws)
{
    const tag_case tc = {3, 20, 5, 4, 0.5f, 5, 1, 0, 0};
    const uint64_t seed = 4242;
    bd_env *e = make(&tc, tc.n, 7, seed);
    bd_env_batch *b = bd_env_batch_of(e);
    const int M = b->members;
    for (int i = 0; i < b->n; i++)
        for (int a = 0; a < M; a++) {
            float u[4];
            bd_rng_uniform4(seed, 7 + (uint32_t)i, (uint64_t)a, BD_STREAM_RESET, u);
            cr_assert_eq(st(b, i, 0)[a], u[0] * tc.arena);
            cr_assert_eq(st(b, i, 1)[a], u[1] * tc.arena);
            cr_assert_eq(st(b, i, 2)[a], (u[2] * 2.0f - 1.0f) * BD_PI_F);
            cr_assert_eq(st(b, i, 3)[a], 0.0f);
        }
    long respawns = 0;
    for (uint64_t t = 0; t < 60; t++) {
        cr_assert_eq(bd_env_random_actions(e, t), BD_OK);
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < b->n; i++)
            for (int a = 0; a < tc.runners; a++) {
                if (b->rewards[(size_t)i * M + a] == 0.0f)
                    continue;
                float u[4];
                bd_rng_uniform4(seed, 7 + (uint32_t)i, (t << 21) | (uint64_t)a, BD_STREAM_ENV, u);
                cr_assert_eq(st(b, i, 0)[a], u[0] * tc.arena, "respawn of runner %d at step %d", a, (int)t);
                cr_assert_eq(st(b, i, 1)[a], u[1] * tc.arena);
                cr_assert_eq(st(b, i, 3)[a], 0.0f);
                respawns++;
            }
    }
    cr_assert(respawns > 0);
    bd_env_destroy(e);
}

/* ---- movement, tags and rewards against the state -------------------------------------- */

static double clampd(double v, double lo, double hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* respawn 0 (tagged runners stay where they were tagged): every agent's move from the state
 * before and its actions, every runner's tag from the positions after, every reward. */
Test(tag, moves_tags_and_rewards_follow_the_rules)
{
    const tag_case tc = {4, 30, 8, 10, 0.6f, 5, 0, 0, 1000};
    const float rs = 0.2f, ts = 0.25f, acc = 0.05f, turn = 0.6f, r = tc.radius;
    bd_env *e = make(&tc, tc.n, 0, 31);
    bd_env_batch *b = bd_env_batch_of(e);
    const int M = b->members, R = tc.runners;
    float *prev = malloc(sizeof(float) * (size_t)b->n * (size_t)b->state_dim);
    cr_assert_not_null(prev);
    long tags = 0, walls = 0, checked = 0;
    for (int t = 0; t < 150; t++) {
        memcpy(prev, b->state, sizeof(float) * (size_t)b->n * (size_t)b->state_dim);
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t + 1000), BD_OK);
        for (size_t k = 0; k < rows_of(b) * 2; k += 7) /* some actions beyond [-1, 1] */
            b->actions[k] *= 3.0f;
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < b->n; i++) {
            if (b->terminated[(size_t)i * M])
                continue; /* reset: the state is a fresh episode's */
            const float *p = prev + (size_t)i * b->state_dim;
            const float *x = st(b, i, 0), *y = st(b, i, 1), *h = st(b, i, 2), *s = st(b, i, 3), *on = st(b, i, 4);
            const float *act = b->actions + (size_t)i * M * 2;
            const float *rew = b->rewards + (size_t)i * M;
            for (int a = 0; a < M; a++) {
                if (p[4 * M + a] == 0.0f) { /* out of the game: untouched */
                    cr_assert_eq(on[a], 0.0f);
                    cr_assert_eq(x[a], p[a]);
                    cr_assert_eq(rew[a], 0.0f);
                    continue;
                }
                double hh = p[2 * M + a] + clampd(act[2 * a + 1], -1, 1) * turn;
                double ss = clampd(p[3 * M + a] + clampd(act[2 * a], -1, 1) * acc, 0, a < R ? rs : ts);
                double xx = p[a] + ss * cos(hh), yy = p[M + a] + ss * sin(hh);
                double edge = fmin(fmin(fabs(xx), fabs(xx - tc.arena)), fmin(fabs(yy), fabs(yy - tc.arena)));
                if (edge < 1e-4)
                    continue; /* float32 and float64 may disagree on hitting the wall */
                int out = xx < 0 || xx > tc.arena || yy < 0 || yy > tc.arena;
                walls += out;
                checked++;
                double dh = fabs(remainder(h[a] - hh, 2 * M_PI));
                cr_assert(dh < 1e-5 && h[a] >= -BD_PI_F && h[a] < BD_PI_F, "heading %g vs %g", h[a], hh);
                cr_assert(fabs(s[a] - (out ? 0.0 : ss)) < 1e-6, "speed %g vs %g", s[a], out ? 0.0 : ss);
                cr_assert(fabs(x[a] - clampd(xx, 0, tc.arena)) < 1e-4, "x %g vs %g", x[a], xx);
                cr_assert(fabs(y[a] - clampd(yy, 0, tc.arena)) < 1e-4, "y %g vs %g", y[a], yy);
            }
            /* tags: a runner active before is out now exactly when a tagger is within r */
            int tagged_here = 0;
            for (int a = 0; a < R; a++) {
                if (p[4 * M + a] == 0.0f)
                    continue;
                int gone = on[a] == 0.0f;
                double best = INFINITY;
                for (int q = R; q < M; q++)
                    best = fmin(best, hypot((double)x[q] - x[a], (double)y[q] - y[a]));
                cr_assert_eq(rew[a], gone ? -1.0f : 0.0f, "runner reward -1 exactly when tagged");
                if (fabs(best - r) > 1e-4)
                    cr_assert_eq(gone, best <= r, "world %d runner %d: nearest tagger at %g", i, a, best);
                tagged_here += gone;
            }
            tags += tagged_here;
            double sum = 0;
            for (int q = R; q < M; q++) {
                int want = 0, near_edge = 0;
                for (int a = 0; a < R; a++) {
                    if (p[4 * M + a] == 0.0f || on[a] != 0.0f)
                        continue;
                    double d = hypot((double)x[q] - x[a], (double)y[q] - y[a]);
                    want += d <= r;
                    near_edge |= fabs(d - r) <= 1e-4;
                }
                if (!near_edge)
                    cr_assert_eq(rew[q], (float)want, "tagger %d: %g vs %d", q, rew[q], want);
                sum += rew[q];
            }
            cr_assert(sum >= tagged_here, "tagger rewards %g for %d tags", sum, tagged_here);
        }
    }
    cr_assert(tags > 10, "runners were tagged (%ld)", tags);
    cr_assert(walls > 0, "agents hit walls");
    cr_assert(checked > 1000);
    free(prev);
    bd_env_destroy(e);
}

Test(tag, rewards_with_respawn)
{
    const tag_case tc = {8, 20, 5, 6, 0.5f, 5, 1, 0, 0};
    bd_env *e = make(&tc, tc.n, 0, 8);
    bd_env_batch *b = bd_env_batch_of(e);
    const int M = b->members, R = tc.runners;
    long tags = 0;
    for (int t = 0; t < 200; t++) {
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK);
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < b->n; i++) {
            const float *rew = b->rewards + (size_t)i * M;
            int n = 0;
            double sum = 0;
            for (int a = 0; a < R; a++) {
                cr_assert(rew[a] == 0.0f || rew[a] == -1.0f);
                n += rew[a] < 0;
            }
            for (int a = R; a < M; a++) {
                cr_assert(rew[a] >= 0 && rew[a] == floorf(rew[a]) && rew[a] <= R);
                sum += rew[a];
            }
            cr_assert(sum >= n, "tagger rewards %g for %d tags", sum, n);
            tags += n;
            for (int a = 0; a < M; a++) /* respawn: everybody stays in the game */
                cr_assert_eq(st(b, i, 4)[a], 1.0f);
        }
    }
    cr_assert(tags > 20, "runners were tagged (%ld)", tags);
    bd_env_destroy(e);
}

/* ---- episode ends ------------------------------------------------------------------------- */

Test(tag, respawn_0_terminates_when_the_last_runner_is_tagged)
{
    const tag_case tc = {3, 3, 6, 2, 1.0f, 5, 0, 0, 500};
    bd_env *e = make(&tc, tc.n, 0, 9);
    bd_env_batch *b = bd_env_batch_of(e);
    const int M = b->members, D = b->obs_dim, R = tc.runners;
    int ends[3] = {0};
    for (int t = 0; t < 300; t++) {
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK);
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (int i = 0; i < b->n; i++) {
            const size_t r0 = (size_t)i * M;
            int term = b->terminated[r0];
            for (int a = 0; a < M; a++) {
                cr_assert_eq(b->terminated[r0 + a], term, "every row of a world ends together");
                cr_assert_eq(b->truncated[r0 + a], 0);
            }
            if (!term) {
                int active = 0;
                for (int a = 0; a < R; a++) {
                    int on = st(b, i, 4)[a] != 0.0f;
                    active += on;
                    if (!on) /* out: nothing seen; reward 0, or -1 on the step it was tagged */
                        for (int k = 0; k < D; k++)
                            cr_assert_eq(b->obs[(r0 + a) * D + k], 0.0f);
                }
                cr_assert(active > 0);
                continue;
            }
            ends[i]++;
            cr_assert_eq(b->elapsed[i], 0, "a fresh episode");
            for (int a = 0; a < R; a++) {
                cr_assert_eq(st(b, i, 4)[a], 1.0f, "runners are back");
                cr_assert_eq(b->obs[(r0 + a) * D + 5 + 7], 1.0f, "a fresh runner sees a neighbour");
                for (int k = 0; k < D; k++)
                    cr_assert_eq(b->final_obs[(r0 + a) * D + k], 0.0f, "the last runners were out");
            }
            for (int a = R; a < M; a++) {
                const float *f = b->final_obs + (r0 + a) * D;
                cr_assert_eq(f[5], 1.0f, "a tagger's last observation");
                for (int k = 0; k < tc.K; k++) /* only taggers were left to see */
                    cr_assert(f[6 + 7 * k + 6] == 0.0f || f[6 + 7 * k + 5] == 1.0f);
            }
        }
    }
    for (int i = 0; i < b->n; i++)
        cr_assert(ends[i] > 0, "world %d terminated", i);
    bd_env_destroy(e);
}

Test(tag, respawn_1_never_terminates_and_truncates_at_max_steps)
{
    const tag_case tc = {3, 3, 6, 2, 1.0f, 5, 1, 0, 25};
    bd_env *e = make(&tc, tc.n, 0, 9);
    bd_env_batch *b = bd_env_batch_of(e);
    const int M = b->members, D = b->obs_dim;
    long tags = 0;
    for (int t = 0; t < 100; t++) {
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK);
        cr_assert_eq(bd_env_step(e), BD_OK);
        int want = (t + 1) % 25 == 0;
        for (size_t r = 0; r < rows_of(b); r++) {
            cr_assert_eq(b->terminated[r], 0);
            cr_assert_eq(b->truncated[r], want, "step %d", t);
            tags += b->rewards[r] < 0;
        }
        for (int i = 0; i < b->n; i++) {
            cr_assert_eq(b->elapsed[i], (t + 1) % 25);
            if (want) /* final obs: a full observation of the world as it was */
                for (int a = 0; a < M; a++)
                    cr_assert_eq(b->final_obs[((size_t)i * M + a) * D + 6 + 6], 1.0f);
        }
    }
    cr_assert(tags > 0);
    bd_env_destroy(e);
}

/* ---- threads and shards ------------------------------------------------------------------- */

Test(tag, threads_and_shards_do_not_change_results)
{
    /* 130 worlds: the pool splits at multiples of 64 worlds */
    const tag_case tc = {130, 5, 2, 4, 0.5f, 4, 0, 0, 30};
    bd_env *one = make(&tc, 130, 0, 4), *two = make(&tc, 130, 0, 4), *lo = make(&tc, 50, 0, 4),
           *hi = make(&tc, 80, 50, 4), *other = make(&tc, 130, 0, 5);
    cr_assert_eq(bd_env_set_threads(two, 2), BD_OK);
    bd_env_batch *b1 = bd_env_batch_of(one), *b2 = bd_env_batch_of(two), *bl = bd_env_batch_of(lo),
                 *bh = bd_env_batch_of(hi), *bo = bd_env_batch_of(other);
    const size_t M = (size_t)b1->members;
    cr_assert_neq(memcmp(b1->obs, bo->obs, sizeof(float) * rows_of(b1) * (size_t)b1->obs_dim), 0,
                  "another seed, other worlds");
    long ends = 0;
    for (int t = 0; t < 70; t++) {
        bd_env *all[] = {one, two, lo, hi};
        for (int k = 0; k < 4; k++) {
            cr_assert_eq(bd_env_random_actions(all[k], (uint64_t)t), BD_OK);
            cr_assert_eq(bd_env_step(all[k]), BD_OK);
        }
        same_outputs(b1, 0, b2, rows_of(b1), "2 threads", t);
        same_outputs(b1, 0, bl, 50 * M, "shard [0, 50)", t);
        same_outputs(b1, 50 * M, bh, 80 * M, "shard [50, 130)", t);
        ends += ended_rows(b1);
    }
    cr_assert(ends > 0);
    bd_env_destroy(one);
    bd_env_destroy(two);
    bd_env_destroy(lo);
    bd_env_destroy(hi);
    bd_env_destroy(other);
}

/* ---- the block's threads in lock step ------------------------------------------------------ */

typedef struct {
    bd_env_batch *b;
    const bd_tag_cfg *c;
    bd_tag_shared *sh;
    int tid, nth, reset;
} emu_arg;

static void *emu_thread(void *p)
{
    emu_arg *a = p;
    for (int i = 0; i < a->b->n; i++) {
        if (a->reset)
            bd_tag_world_reset(a->b, a->c, i, 0, a->tid, a->nth, a->sh);
        else
            bd_tag_world_step(a->b, a->c, i, a->tid, a->nth, a->sh);
        pthread_barrier_wait(&emu_barrier); /* the next world reuses the shared block */
    }
    return NULL;
}

/* Every world of b reset (reset 1) or stepped by nth threads at once, as a CUDA block. */
static void emu_run(bd_env_batch *b, int nth, int reset)
{
    bd_tag_cfg c;
    bd_tag_shared sh;
    bd_tag_cfg_of(b->param, b->members, &c);
    pthread_t th[BD_TAG_THREADS];
    emu_arg args[BD_TAG_THREADS];
    cr_assert_eq(pthread_barrier_init(&emu_barrier, NULL, (unsigned)nth), 0);
    for (int k = 0; k < nth; k++) {
        args[k] = (emu_arg){b, &c, &sh, k, nth, reset};
        cr_assert_eq(pthread_create(&th[k], NULL, emu_thread, &args[k]), 0);
    }
    for (int k = 0; k < nth; k++)
        pthread_join(th[k], NULL);
    pthread_barrier_destroy(&emu_barrier);
}

Test(tag, a_block_of_threads_matches_the_cpu_loop)
{
    const tag_case cases[] = {
        {3, 20, 5, 10, 0.5f, 5, 1, 0, 30},
        {3, 40, 20, 3, 2.5f, 8, 0, 0, 30},  /* one cell, respawn 0 */
        {2, 70, 30, 12, 0.5f, 6, 1, 0, 25}, /* more agents than threads, uneven chunks */
        {2, 9, 4, 5, 0.5f, 8, 0, 1, 30},    /* brute force */
    };
    const int threads[] = {4, 7, 5, 3};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bd_env *ref = make(&cases[k], cases[k].n, 0, 60 + k), *emu = make(&cases[k], cases[k].n, 0, 60 + k);
        bd_env_batch *br = bd_env_batch_of(ref), *be = bd_env_batch_of(emu);
        char what[64];
        snprintf(what, sizeof what, "case %zu, %d threads", k, threads[k]);
        memset(be->obs, 0, sizeof(float) * rows_of(be) * (size_t)be->obs_dim);
        emu_run(be, threads[k], 1);
        same_outputs(br, 0, be, rows_of(br), what, -1);
        long ends = 0;
        for (int t = 0; t < 80; t++) {
            cr_assert_eq(bd_env_random_actions(ref, (uint64_t)t), BD_OK);
            memcpy(be->actions, br->actions, sizeof(float) * rows_of(br) * 2);
            cr_assert_eq(bd_env_step(ref), BD_OK);
            emu_run(be, threads[k], 0);
            be->step++;
            same_outputs(br, 0, be, rows_of(br), what, t);
            same_state(br, be, what, t);
            ends += ended_rows(br);
        }
        cr_assert(ends > 0, "%s: episodes ended", what);
        bd_env_destroy(ref);
        bd_env_destroy(emu);
    }
}

/* ---- observation bounds -------------------------------------------------------------------- */

Test(tag, observations_stay_within_the_declared_bounds)
{
    const tag_case tc = {4, 20, 5, 10, 0.5f, 8, 1, 0, 50};
    bd_env *e = make(&tc, tc.n, 0, 12);
    bd_env_batch *b = bd_env_batch_of(e);
    const bd_channel *ch = tag_desc()->groups[0].sensors;
    for (int t = 0; t < 120; t++) {
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK);
        cr_assert_eq(bd_env_step(e), BD_OK);
        for (size_t r = 0; r < rows_of(b); r++)
            for (int k = 0; k < b->obs_dim; k++) {
                float v = b->obs[r * (size_t)b->obs_dim + k];
                cr_assert(v >= ch[k].low && v <= ch[k].high, "%s = %g", ch[k].name, v);
            }
    }
    bd_env_destroy(e);
}

/* ---- CUDA ------------------------------------------------------------------------------------ */

Test(tag, cuda_matches_cpu_bit_for_bit)
{
    if (!bd_cuda_available())
        cr_skip_test("no CUDA GPU answers here");
    const tag_case cases[] = {
        {64, 20, 5, 10, 0.5f, 5, 1, 0, 30},
        {16, 40, 20, 3, 2.5f, 8, 0, 0, 40},   /* one cell, respawn 0 */
        {4, 500, 120, 25, 0.5f, 6, 1, 0, 20}, /* more agents than a block's threads */
        {8, 30, 10, 8, 0.5f, 4, 0, 1, 25},    /* brute force */
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bd_env *c = make(&cases[k], cases[k].n, 3, 2024 + k), *g = make_on(&cases[k], cases[k].n, 3, 2024 + k,
                                                                          BD_DEVICE_CUDA);
        bd_env_batch *cb = bd_env_batch_of(c), hb;
        char what[64];
        snprintf(what, sizeof what, "cuda case %zu", k);
        cr_assert_eq(bd_env_download(g, &hb), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(memcmp(cb->obs, hb.obs, sizeof(float) * rows_of(cb) * (size_t)cb->obs_dim), 0,
                     "%s: first observations differ", what);
        long ends = 0;
        for (int t = 0; t < 50; t++) {
            cr_assert_eq(bd_env_random_actions(c, (uint64_t)t), BD_OK);
            cr_assert_eq(bd_env_upload_actions(g, cb->actions), BD_OK, "%s", bd_lasterr());
            cr_assert_eq(bd_env_step(c), BD_OK);
            cr_assert_eq(bd_env_step(g), BD_OK, "%s", bd_lasterr());
            cr_assert_eq(bd_env_download(g, &hb), BD_OK, "%s", bd_lasterr());
            same_outputs(cb, 0, &hb, rows_of(cb), what, t);
            ends += ended_rows(cb);
        }
        cr_assert(ends > 0, "%s: episodes ended", what);
        bd_env_destroy(c);
        bd_env_destroy(g);
    }
}
