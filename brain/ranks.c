/* ranks.c: a brain's learner group across ranks (brain/ranks.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_* */
#include "brain/ranks.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static int ranks_placed; /* bd_ranks_place narrowed this process to its share */

void bd_ranks_place(void)
{
    long long local = 1, lr = 0;
    const char *ls = getenv("BODHI_LOCAL_SIZE"), *lrs = getenv("BODHI_LOCAL_RANK"), *pin = getenv("BODHI_BRAIN_PIN");
    if (!ls || bd_parse_ll(ls, 1, 65536, &local) != BD_OK || local < 2 || !lrs
        || bd_parse_ll(lrs, 0, local - 1, &lr) != BD_OK || (pin && strcmp(pin, "0") == 0))
        return;
    cpu_set_t set, mine;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    const int c = CPU_COUNT(&set);
    if (c < local) /* the launcher bound the ranks already (mpirun: a core each), or too few */
        return;
    const int lo = (int)(lr * c / local), hi = (int)((lr + 1) * c / local);
    CPU_ZERO(&mine);
    for (int cpu = 0, k = 0; cpu < CPU_SETSIZE && k < hi; cpu++)
        if (CPU_ISSET(cpu, &set)) {
            if (k >= lo)
                CPU_SET(cpu, &mine);
            k++;
        }
    if (sched_setaffinity(0, sizeof mine, &mine) == 0)
        ranks_placed = 1;
}

long bd_ranks_cores(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        cores = CPU_COUNT(&set);
    const char *ls = getenv("BODHI_LOCAL_SIZE");
    long long local = 1;
    if (!ranks_placed && ls && bd_parse_ll(ls, 1, 65536, &local) == BD_OK && local > 1)
        cores = cores / local > 0 ? cores / local : 1;
    const char *cap = getenv("BODHI_LEARNER_CORES");
    long long most;
    if (cap && bd_parse_ll(cap, 1, 65536, &most) == BD_OK && most < cores)
        cores = (long)most;
    return cores > 0 ? cores : 1;
}

long long bd_ranks_world(void)
{
    long long w;
    const char *ws = getenv("BODHI_WORLD_SIZE");
    return ws && bd_parse_ll(ws, 1, 65536, &w) == BD_OK ? w : 1;
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
