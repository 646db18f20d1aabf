/* ranks.c: a brain's learner group across ranks (brain/ranks.h). */
#include "brain/ranks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

static int ranks_env_int(const char *name, long long lo, long long hi, int *v)
{
    const char *s = getenv(name);
    long long x;
    if (!s || bd_parse_ll(s, lo, hi, &x) != BD_OK)
        return bd_seterr(BD_EINVAL, "brain: %s must be an integer from %lld to %lld (got '%s')", name, lo, hi,
                         s ? s : "(unset)");
    *v = (int)x;
    return BD_OK;
}

int bd_ranks_join(bd_ranks *r, const char *phase, const char *agent)
{
    memset(r, 0, sizeof *r);
    r->world = 1;
    const char *ws = getenv("BODHI_WORLD_SIZE");
    if (!ws || strcmp(ws, "1") == 0)
        return BD_OK;
    int world = 1, rank = 0, timeout = 60;
    if (ranks_env_int("BODHI_WORLD_SIZE", 1, 65536, &world) != BD_OK
        || ranks_env_int("BODHI_RANK", 0, world - 1, &rank) != BD_OK
        || (getenv("BODHI_GROUP_TIMEOUT") && ranks_env_int("BODHI_GROUP_TIMEOUT", 1, 86400, &timeout) != BD_OK))
        return BD_EINVAL;
    const char *store = getenv("BODHI_GROUP_STORE");
    if (!store || !*store)
        return bd_seterr(BD_EINVAL, "brain: rank %d of %d has no BODHI_GROUP_STORE", rank, world);
    /* one store file a phase and agent: c10d's FileStore deletes its file when as many
     * processes as the group holds have left it, so groups must not share one */
    char *path = bd_strfmt("%s.%s.%s", store, phase, agent);
    if (!path)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int rc = bdt_group_join(path, "bodhi", rank, world, getenv("BODHI_GROUP_HOST"), (double)timeout, &r->g);
    free(path);
    if (rc != BD_OK)
        return bd_seterr(rc, "rank %d of %d: the learner group of agent '%s' did not form within %d s: %s", rank,
                         world, agent, timeout, bd_lasterr());
    r->rank = rank;
    r->world = world;
    return BD_OK;
}

void bd_ranks_leave(bd_ranks *r)
{
    bdt_group_leave(r->g);
    free(r->buf);
    memset(r, 0, sizeof *r);
    r->world = 1;
}

int bd_ranks_grad(void *ctx, float *grad, size_t n)
{
    bd_ranks *r = ctx;
    return bdt_group_allreduce_mean(r->g, grad, n);
}

int bd_ranks_sum(void *ctx, double *x, size_t n, int min)
{
    bd_ranks *r = ctx;
    return bdt_group_allreduce_f64(r->g, x, n, min ? 2 : 0);
}

int bd_ranks_sync(bd_ranks *r, const bd_learner_ops *ops, void *learner)
{
    if (!r->g)
        return BD_OK;
    bd_policy_out po;
    ops->weights_out(learner, &po);
    size_t n = bd_weights_floats(&po.h);
    if (n == 0)
        return BD_OK;
    float *buf = realloc(r->buf, n * sizeof(float));
    if (!buf)
        return bd_seterr(BD_ENOMEM, "out of memory");
    r->buf = buf;
    memcpy(buf, po.floats, n * sizeof(float));
    int rc = bdt_group_broadcast(r->g, buf, n, 0);
    if (rc == BD_OK && r->rank != 0)
        rc = ops->weights_in(learner, &po.h, buf);
    return rc;
}

int bd_ranks_agree_stop(bd_ranks *r, int *code)
{
    if (!r->g)
        return BD_OK;
    double x = (double)*code;
    int rc = bdt_group_allreduce_f64(r->g, &x, 1, 1);
    if (rc == BD_OK)
        *code = (int)x;
    return rc;
}

void bd_ranks_describe(const bd_ranks *r, const bd_learner_ops *ops, const void *learner, cJSON *ev)
{
    if (!r->g)
        return;
    cJSON_AddNumberToObject(ev, "rank", r->rank);
    bd_policy_out po;
    ops->weights_out(learner, &po);
    char hex[65];
    bd_sha256_hex(po.floats, bd_weights_floats(&po.h) * sizeof(float), hex);
    cJSON_AddStringToObject(ev, "param_digest", hex);
}
