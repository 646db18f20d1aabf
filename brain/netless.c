/* netless.c: the random and none brains (see netless.h). */
#include "brain/netless.h"

#include <string.h>

#include "common/util.h"
#include "config/diag.h"

int bd_netless_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                     void **out)
{
    (void)ap;
    static const char *const keys[] = {"rollout_steps", NULL};
    char where[256];
    int rc = bd_node_check_keys(params, keys, "the brain's params (it takes rollout_steps)", d);
    long long t = 0;
    int trc = bd_diag(d, bd_node_int(params, "rollout_steps", bd_brain_auto_rollout(p->max_columns), &t));
    if (trc == BD_OK && (t < 1 || t > (1 << 20)))
        trc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: rollout_steps: expected 1 to %d, got %lld",
                                   bd_node_where(bd_node_get(params, "rollout_steps"), where, sizeof where),
                                   1 << 20, t));
    if (rc == BD_OK)
        rc = trc;
    bd_netless_params *v = rc == BD_OK ? malloc(sizeof *v) : NULL;
    if (rc == BD_OK && !v)
        rc = bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    if (rc != BD_OK)
        return rc;
    v->rollout_steps = (int)t;
    *out = v;
    return BD_OK;
}

int bd_netless_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d)
{
    const bd_netless_params *v = ap->brain_params;
    if (!v || !ap->env)
        return BD_OK;
    return bd_brain_batch_check(params, p, ap, v->rollout_steps, 1, 0, d);
}

long long bd_netless_rollout(const void *value)
{
    return ((const bd_netless_params *)value)->rollout_steps;
}

typedef struct {
    int T;
} bd_netless;

static int bd_netless_create(const bd_learner_spec *s, void **out)
{
    bd_netless *l = calloc(1, sizeof *l);
    if (!l)
        return bd_seterr(BD_ENOMEM, "out of memory");
    l->T = ((const bd_netless_params *)s->params)->rollout_steps;
    *out = l;
    return BD_OK;
}

static void bd_netless_destroy(void *self)
{
    free(self);
}

static int bd_netless_load(void *self, const char *path)
{
    (void)self;
    (void)path;
    return BD_OK; /* nothing to start from */
}

static int bd_netless_collect(void *self, const bd_batch *b)
{
    (void)self;
    (void)b;
    return BD_OK;
}

static int bd_netless_update(void *self, long long steps, char *diverged, size_t len)
{
    (void)self;
    (void)steps;
    (void)diverged;
    (void)len;
    return BD_OK;
}

static void bd_netless_stats(const void *self, cJSON *ev)
{
    (void)self;
    (void)ev;
}

static void bd_netless_weights_out(const void *self, bd_policy_out *out)
{
    memset(out, 0, sizeof *out);
    out->h.rollout_steps = (uint32_t)((const bd_netless *)self)->T;
    out->h.policy = BD_POLICY_NONE;
}

static int bd_netless_weights_in(void *self, const bd_weights_hdr *h, const float *floats)
{
    (void)self;
    (void)floats;
    return h->policy == BD_POLICY_NONE && h->nparams == 0 && h->norm_dims == 0
               ? BD_OK
               : bd_seterr(BD_EINVAL, "a brain without a network takes no weights");
}

static int bd_netless_save(const void *self, const char *path, int *saved)
{
    (void)self;
    (void)path;
    *saved = 0;
    return BD_OK;
}

static uint64_t bd_netless_version(const void *self)
{
    (void)self;
    return 0;
}

const bd_learner_ops bd_netless_learner = {
    bd_netless_create, bd_netless_destroy,     bd_netless_load,    bd_netless_collect,
    bd_netless_update, bd_netless_stats,       bd_netless_weights_out, bd_netless_weights_in,
    bd_netless_save,   bd_netless_version,
    NULL, NULL, NULL,
};
