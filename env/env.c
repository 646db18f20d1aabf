/* env.c: shard creation, stepping and the registry of built-in environments.
 * CPU shards hold host buffers in one contiguous allocation; CUDA shards hold device
 * buffers plus host mirrors for bd_env_download. CPU steps and random actions run over
 * a pool of threads (bd_env_set_threads), each on its own range of worlds. */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bodhi/env.h"
#include "env/actions.h"
#include "common/devmem.h"
#include "env/env_impl.h"
#include "env/hosted.h"
#include "env/pool.h"

#ifdef BODHI_HAVE_CUDA
#include "common/cuda.h"
#endif

struct bd_env {
    const bd_env_desc *desc;
    bd_device device;
    bd_env_batch b;     /* CPU: host pointers; CUDA: device pointers */
    void *block;        /* the one allocation behind b's buffers */
    bd_env_batch host;  /* CUDA only: host mirrors */
    void *host_block;
    size_t bytes;       /* of the one allocation (and of host_block) */
    bd_env_shape shape;
    bd_pool *pool;      /* CPU loops */
    bd_action_space space;
    uint64_t counter;   /* random actions: the counter of the current call */
    void *hosted;       /* a hosted env's state (env/hosted.h), or NULL */
};

#define BD_ENV_ENTRY(name, gym) &bd_env_##name,
static const bd_env_desc *const bd_builtin_envs[] = {BD_BUILTIN_ENVS(BD_ENV_ENTRY)};
#undef BD_ENV_ENTRY

const bd_env_desc *const *bd_env_registry(int *count)
{
    *count = (int)(sizeof bd_builtin_envs / sizeof bd_builtin_envs[0]);
    return bd_builtin_envs;
}

/* The Gymnasium ids of the built-ins (their physics, limits and rewards follow those), in
 * the registry's order; NULL for an env that follows none. */
#define BD_ENV_GYM(name, gym) gym,
static const char *const bd_gym_ids[] = {BD_BUILTIN_ENVS(BD_ENV_GYM)};
#undef BD_ENV_GYM

const char *bd_env_gym_id(const bd_env_desc *d)
{
    for (size_t i = 0; i < sizeof bd_builtin_envs / sizeof bd_builtin_envs[0]; i++)
        if (bd_builtin_envs[i] == d)
            return bd_gym_ids[i];
    return NULL;
}

const bd_env_desc *bd_env_find(const char *name)
{
    int n;
    const bd_env_desc *const *r = bd_env_registry(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(r[i]->name, name) == 0)
            return r[i];
    for (int i = 0; i < n; i++)
        if (bd_gym_ids[i] && strcmp(bd_gym_ids[i], name) == 0)
            return r[i];
    return NULL;
}

void bd_env_param_defaults(const bd_env_desc *d, float *param)
{
    for (int k = 0; k < d->nparams && k < BD_ENV_MAX_PARAMS; k++)
        param[k] = d->params[k].def;
}

int bd_env_shape_of(const bd_env_desc *d, const float *param, bd_env_shape *s)
{
    float def[BD_ENV_MAX_PARAMS] = {0};
    if (!param) {
        bd_env_param_defaults(d, def);
        param = def;
    }
    memset(s, 0, sizeof *s);
    if (d->ngroups > BD_ENV_MAX_GROUPS || d->nparams > BD_ENV_MAX_PARAMS)
        return bd_seterr(BD_EINVAL, "env %s: %d groups and %d params, at most %d and %d", d->name, d->ngroups,
                         d->nparams, BD_ENV_MAX_GROUPS, BD_ENV_MAX_PARAMS);
    s->groups = d->ngroups > 0 ? d->ngroups : 1;
    long long members = 0;
    for (int g = 0; g < s->groups; g++) {
        const bd_env_group *gr = d->ngroups > 0 ? &d->groups[g] : NULL;
        float c = gr ? param[gr->count_param] : 1.0f;
        if (!(c >= 1.0f && c <= (float)(1 << 20)))
            return bd_seterr(BD_EINVAL, "env %s: group %s has %g members per world; expected 1 to 2^20", d->name,
                             gr ? gr->name : "?", (double)c);
        s->count[g] = (int)c;
        s->first[g] = (int)members;
        members += s->count[g];
        s->obs_dim[g] = gr ? gr->obs_dim : d->obs_dim;
        s->act_dim[g] = gr ? gr->act_dim : d->act_dim;
    }
    if (members > (1 << 20))
        return bd_seterr(BD_EINVAL, "env %s: %lld agents per world; at most 2^20", d->name, members);
    s->members = (int)members;
    s->state_dim = d->state_dim;
    if (d->shape) {
        bd_env_shape declared = *s;
        d->shape(param, s);
        /* the hook may keep fewer channels and size its state; nothing else */
        int ok = s->groups == declared.groups && s->members == declared.members;
        for (int g = 0; ok && g < s->groups; g++)
            ok = s->count[g] == declared.count[g] && s->first[g] == declared.first[g] && s->obs_dim[g] >= 1
                 && s->obs_dim[g] <= declared.obs_dim[g] && s->act_dim[g] >= 1
                 && s->act_dim[g] <= declared.act_dim[g];
        if (!ok)
            return bd_seterr(BD_EINVAL, "env %s: its shape hook changed the groups or declared more channels than "
                             "the env has", d->name);
    }
    for (int g = 0; g < s->groups; g++) {
        s->obs_stride = s->obs_dim[g] > s->obs_stride ? s->obs_dim[g] : s->obs_stride;
        s->act_stride = s->act_dim[g] > s->act_stride ? s->act_dim[g] : s->act_stride;
    }
    if (s->obs_stride < 1 || s->act_stride < 1 || s->state_dim < 0 || s->scratch_dim < 0)
        return bd_seterr(BD_EINVAL, "env %s: a shape of %d sensors, %d actuators, %d state and %d scratch per world",
                         d->name, s->obs_stride, s->act_stride, s->state_dim, s->scratch_dim);
    return BD_OK;
}

/* Bytes of one shard's buffers, 16-byte aligned each; 0 when they overflow. */
static size_t bd_env_bytes(const bd_env_shape *sh, int n, size_t off[9])
{
    double sizes[9], total = 0;
    bd_env_buffer_sizes(sh, n, sizes);
    for (int k = 0; k < 9; k++) {
        off[k] = (size_t)total;
        total += (double)(((size_t)sizes[k] + 15) & ~(size_t)15);
    }
    return total > (double)((size_t)1 << 50) ? 0 : (size_t)total;
}

static void bd_env_point(bd_env_batch *b, char *base, const size_t off[9])
{
    b->obs = (float *)(base + off[0]);
    b->actions = (float *)(base + off[1]);
    b->rewards = (float *)(base + off[2]);
    b->terminated = (uint8_t *)(base + off[3]);
    b->truncated = (uint8_t *)(base + off[4]);
    b->final_obs = (float *)(base + off[5]);
    b->state = b->state_dim > 0 ? (float *)(base + off[6]) : NULL;
    b->scratch = b->scratch_dim > 0 ? (int32_t *)(base + off[7]) : NULL;
    b->elapsed = (int32_t *)(base + off[8]);
}

int bd_env_create(const bd_env_desc *desc, int n, uint32_t world0, uint64_t seed,
                  bd_device device, int max_steps, const float *param, bd_env **out)
{
    *out = NULL;
    if (n <= 0)
        return bd_seterr(BD_EINVAL, "env %s: worlds must be > 0 (got %d)", desc->name, n);
    if (device == BD_DEVICE_CUDA) {
        if (!bd_cuda_available())
            return bd_seterr(BD_ENODEV, "env %s: device cuda requested but no CUDA GPU answers%s",
                             desc->name,
#ifdef BODHI_HAVE_CUDA
                             ""
#else
                             " (this bodhi was built without CUDA)"
#endif
            );
        if (!desc->step_cuda || !desc->reset_cuda)
            return bd_seterr(BD_ENODEV, "env %s has no CUDA kernel", desc->name);
    }
    bd_env_shape shape;
    int rc = bd_env_shape_of(desc, param, &shape);
    if (rc != BD_OK)
        return rc;
    if (shape.act_stride > BD_MAX_ACTUATORS)
        return bd_seterr(BD_EINVAL, "env %s: %d actuators, at most %d", desc->name, shape.act_stride,
                         BD_MAX_ACTUATORS);
    bd_env *e = calloc(1, sizeof *e);
    if (!e)
        return bd_seterr(BD_ENOMEM, "env %s: out of memory", desc->name);
    e->desc = desc;
    e->device = device;
    e->shape = shape;
    /* random actions (benchmarks): every row takes group 0's actuators' bounds (Tag's
     * groups share theirs; a plugin whose groups differ gets group 0's for all) */
    e->space.act_dim = shape.act_stride;
    const bd_channel *acts = desc->ngroups > 0 ? desc->groups[0].actuators : desc->actuators;
    for (int a = 0; a < e->space.act_dim; a++) {
        const bd_channel *ch = a < shape.act_dim[0] ? &acts[a] : NULL;
        e->space.n[a] = ch ? ch->n : 0;
        e->space.low[a] = ch ? ch->low : 0.0f;
        e->space.high[a] = ch ? ch->high : 0.0f;
    }
    size_t off[9];
    size_t bytes = bd_env_bytes(&shape, n, off);
    bd_env_batch *b = &e->b;
    b->n = n;
    b->members = shape.members;
    b->obs_dim = shape.obs_stride;
    b->act_dim = shape.act_stride;
    b->state_dim = shape.state_dim;
    b->scratch_dim = shape.scratch_dim;
    if (param)
        memcpy(b->param, param, sizeof(float) * (size_t)desc->nparams);
    else
        bd_env_param_defaults(desc, b->param);
    b->seed = seed;
    b->world0 = world0;
    b->step = 0;
    b->max_steps = max_steps > 0 ? max_steps : desc->default_max_steps;
    e->host = *b;
    e->host_block = bytes ? calloc(1, bytes) : NULL;
    if (!e->host_block) {
        free(e);
        return bd_seterr(BD_ENOMEM, "env %s: cannot allocate %zu bytes for %d worlds", desc->name,
                         bytes, n);
    }
    e->bytes = bytes;
    bd_env_point(&e->host, e->host_block, off);
    if (device == BD_DEVICE_CPU) {
        e->block = e->host_block;
        *b = e->host;
        const bd_env_hosted *h = bd_env_hosted_of(desc);
        if (h && (rc = h->open(h, b, &e->hosted)) == BD_OK)
            rc = h->reset(e->hosted, b);
        else if (!h)
            desc->reset_cpu(b, 0, n);
    } else {
        rc = bd_dev_alloc(device, bytes, &e->block);
        if (rc == BD_OK) {
            bd_env_point(b, e->block, off);
            rc = desc->reset_cuda(b);
        }
        if (rc == BD_OK)
            rc = bd_env_download(e, NULL);
    }
    if (rc != BD_OK) {
        bd_env_destroy(e);
        return rc;
    }
    *out = e;
    return BD_OK;
}

int bd_env_reset(bd_env *e, uint64_t seed)
{
    bd_env_batch *b = &e->b;
    memset(e->host_block, 0, e->bytes); /* as calloc'd by bd_env_create */
    e->host.seed = b->seed = seed;
    e->host.step = b->step = 0;
    if (e->device == BD_DEVICE_CPU) {
        const bd_env_hosted *h = bd_env_hosted_of(e->desc);
        if (h)
            return h->reset(e->hosted, b);
        e->desc->reset_cpu(b, 0, b->n);
        return BD_OK;
    }
    int rc = bd_dev_from_host(e->device, e->block, e->host_block, e->bytes);
    if (rc == BD_OK)
        rc = e->desc->reset_cuda(b);
    if (rc == BD_OK)
        rc = bd_env_download(e, NULL);
    return rc;
}

void bd_env_destroy(bd_env *e)
{
    if (!e)
        return;
    if (e->device == BD_DEVICE_CUDA)
        bd_dev_free(e->device, e->block);
    const bd_env_hosted *h = bd_env_hosted_of(e->desc);
    if (h && e->hosted)
        h->close(e->hosted);
    bd_pool_destroy(e->pool);
    free(e->host_block);
    free(e);
}

int bd_env_set_threads(bd_env *e, int threads)
{
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    bd_pool_destroy(e->pool);
    e->pool = NULL;
    if (threads == 1 || e->device != BD_DEVICE_CPU)
        return BD_OK;
    return bd_pool_create(threads, &e->pool);
}

static void bd_env_step_range(void *ctx, int i0, int i1)
{
    bd_env *e = ctx;
    e->desc->step_cpu(&e->b, i0, i1);
}

/* Worlds [i0, i1): the draws that cover their rows' flat action elements (see
 * env/actions.h). */
BD_CPU_CLONES static void bd_env_random_range(void *ctx, int i0, int i1)
{
    bd_env *e = ctx;
    const int64_t M = e->b.members, A = e->space.act_dim, j0 = (int64_t)i0 * M * A, j1 = (int64_t)i1 * M * A;
    const uint64_t k0 = (uint64_t)e->b.world0 * (uint64_t)M * (uint64_t)A;
    const uint64_t c0 = (k0 + (uint64_t)j0) >> 2, c1 = (k0 + (uint64_t)j1 + 3) >> 2;
    float *actions = e->b.actions;
#pragma GCC ivdep /* each draw writes its own four elements */
    for (uint64_t c = c0; c < c1; c++)
        bd_random_action_draw(c, actions, j0, j1, k0, &e->space, e->b.seed, e->counter);
}

double bd_env_bytes_per_world_step(const bd_env_desc *d)
{
    /* per row: obs and actions read and written, reward and flags written; per world:
     * state and scratch read and written, the episode clock read and written. Final
     * observations (rare) are left out. Default params. */
    bd_env_shape s;
    if (bd_env_shape_of(d, NULL, &s) != BD_OK)
        return 0;
    return (double)s.members * (2.0 * 4 * s.obs_stride + 2.0 * 4 * s.act_stride + 4 + 2)
           + 2.0 * 4 * s.state_dim + 2.0 * 4 * s.scratch_dim + 8;
}

typedef struct {
    char *dst;
    const char *src;
    size_t bytes;
    int n;
} bd_copy_job;

static void bd_copy_range(void *ctx, int i0, int i1)
{
    bd_copy_job *j = ctx;
    size_t a = j->bytes * (size_t)i0 / (size_t)j->n, b = j->bytes * (size_t)i1 / (size_t)j->n;
    memcpy(j->dst + a, j->src + a, b - a);
}

int bd_env_copy_bandwidth(bd_env *e, size_t bytes, double *bytes_per_s)
{
    *bytes_per_s = 0;
    if (e->device == BD_DEVICE_CUDA) {
#ifdef BODHI_HAVE_CUDA
        return bd_cuda_copy_bandwidth(bytes, bytes_per_s);
#else
        return bd_seterr(BD_ENODEV, "no CUDA in this build");
#endif
    }
    char *src = malloc(bytes), *dst = malloc(bytes);
    if (!src || !dst) {
        free(src);
        free(dst);
        return bd_seterr(BD_ENOMEM, "copy bandwidth: cannot allocate 2 x %zu bytes", bytes);
    }
    memset(src, 1, bytes);
    memset(dst, 2, bytes);
    bd_copy_job job = {dst, src, bytes, 1 << 16};
    double best = 0;
    for (int rep = 0; rep < 30; rep++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (e->pool)
            bd_pool_run(e->pool, bd_copy_range, &job, job.n);
        else
            bd_copy_range(&job, 0, job.n);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (rep >= 3 && (best == 0 || s < best))
            best = s;
    }
    free(src);
    free(dst);
    *bytes_per_s = best > 0 ? 2.0 * (double)bytes / best : 0;
    return BD_OK;
}

int bd_env_random_actions(bd_env *e, uint64_t counter)
{
    e->counter = counter;
    if (e->device == BD_DEVICE_CPU) {
        if (e->pool)
            bd_pool_run(e->pool, bd_env_random_range, e, e->b.n);
        else
            bd_env_random_range(e, 0, e->b.n);
        return BD_OK;
    }
#ifdef BODHI_HAVE_CUDA
    return bd_random_actions_cuda(&e->b, &e->space, counter);
#else
    return bd_seterr(BD_ENODEV, "no CUDA in this build");
#endif
}

int bd_env_random_steps(bd_env *e, long long steps, uint64_t *counter)
{
    int rc = BD_OK;
    for (long long t = 0; t < steps && rc == BD_OK; t++) {
        rc = bd_env_random_actions(e, (*counter)++);
        if (rc == BD_OK)
            rc = bd_env_step(e);
    }
    if (rc == BD_OK)
        rc = bd_dev_sync(e->device);
    return rc;
}

bd_env_batch *bd_env_batch_of(bd_env *e)
{
    return &e->b;
}

const bd_env_shape *bd_env_shape_get(const bd_env *e)
{
    return &e->shape;
}

const bd_env_desc *bd_env_desc_of(const bd_env *e)
{
    return e->desc;
}

bd_device bd_env_device(const bd_env *e)
{
    return e->device;
}

int bd_env_upload_actions(bd_env *e, const float *actions)
{
    size_t bytes = sizeof(float) * (size_t)e->b.n * (size_t)e->b.members * (size_t)e->b.act_dim;
    if (actions == e->b.actions)
        return BD_OK;
    return bd_dev_from_host(e->device, e->b.actions, actions, bytes);
}

int bd_env_step(bd_env *e)
{
    int rc = BD_OK;
    const bd_env_hosted *h = bd_env_hosted_of(e->desc);
    if (h) /* its host steps the whole shard, on this thread */
        rc = h->step(e->hosted, &e->b);
    else if (e->device == BD_DEVICE_CPU && e->pool)
        bd_pool_run(e->pool, bd_env_step_range, e, e->b.n);
    else if (e->device == BD_DEVICE_CPU)
        e->desc->step_cpu(&e->b, 0, e->b.n);
    else
        rc = e->desc->step_cuda(&e->b);
    e->b.step++;
    e->host.step = e->b.step;
    return rc;
}

int bd_env_download(bd_env *e, bd_env_batch *host)
{
    if (e->device == BD_DEVICE_CPU) {
        if (host)
            *host = e->b;
        return BD_OK;
    }
    bd_env_batch *h = &e->host, *d = &e->b;
    size_t n = (size_t)d->n * (size_t)d->members, od = (size_t)d->obs_dim;
    int rc = bd_dev_to_host(e->device, h->obs, d->obs, sizeof(float) * n * od);
    if (rc == BD_OK)
        rc = bd_dev_to_host(e->device, h->rewards, d->rewards, sizeof(float) * n);
    if (rc == BD_OK)
        rc = bd_dev_to_host(e->device, h->terminated, d->terminated, n);
    if (rc == BD_OK)
        rc = bd_dev_to_host(e->device, h->truncated, d->truncated, n);
    if (rc == BD_OK)
        rc = bd_dev_to_host(e->device, h->final_obs, d->final_obs, sizeof(float) * n * od);
    if (rc == BD_OK)
        rc = bd_dev_to_host(e->device, h->elapsed, d->elapsed, sizeof(int32_t) * (size_t)d->n);
    if (rc == BD_OK && host)
        *host = *h;
    return rc;
}
