/* noop_brain.c: `bodhi-noop`, bodhi with one more brain kind, defined here and nowhere in
 * the product: "noop", a fixed-policy learner written against brain/learner.h's ops table
 * alone (no PPO symbol, no libtorch call). It shows that the brain process runs whatever
 * learner a kind brings: the conductor, brains and muscles of a run are this executable
 * (they start as /proc/self/exe), each adds the kind before it reads the run file.
 *
 * The policy it sends is an actor-critic MLP (BD_POLICY_MLP) of `hidden` units and one
 * layer whose parameters are all zero but the actor's last bias: `bias` for the last
 * action, 0 for the others. Its logits are then constant, so with a large bias every
 * sampled action is the last one (test_brain checks that in the trace). Each update
 * counts the rounds and columns it was given ("noop_rounds", "noop_columns" in the update
 * events) and moves the version on; it saves nothing.
 *   params: {rollout_steps: T (required), hidden: 8, bias: 30} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brain/learner.h"
#include "cli/cli.h"
#include "common/proc.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "config/diag.h"
#include "torch/bd_torch.h"

typedef struct {
    int rollout_steps, hidden;
    double bias;
} noop_params;

static int noop_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out)
{
    (void)p;
    (void)ap;
    static const char *const keys[] = {"rollout_steps", "hidden", "bias", NULL};
    long long t = 0, h = 0;
    double bias = 0;
    int rc = bd_node_check_keys(params, keys, "the noop brain's params", d);
    if (rc == BD_OK)
        rc = bd_diag(d, bd_node_int(params, "rollout_steps", -1, &t));
    if (rc == BD_OK)
        rc = bd_diag(d, bd_node_int(params, "hidden", 8, &h));
    if (rc == BD_OK)
        rc = bd_diag(d, bd_node_double(params, "bias", 30, &bias));
    if (rc == BD_OK && (t < 1 || t > 4096 || h < 1 || h > 256))
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "noop: rollout_steps (1 to 4096) is required, hidden 1 to 256"));
    noop_params *v = rc == BD_OK ? malloc(sizeof *v) : NULL;
    if (rc == BD_OK && !v)
        rc = bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    if (rc != BD_OK)
        return rc;
    *v = (noop_params){(int)t, (int)h, bias};
    *out = v;
    return BD_OK;
}

static long long noop_rollout(const void *value)
{
    return ((const noop_params *)value)->rollout_steps;
}

static bdt_policy_config noop_net(const noop_params *v, const bd_agent_plan *ap)
{
    return (bdt_policy_config){.obs_dim = ap->nsens, .act_kind = ap->continuous ? BDT_CONTINUOUS : BDT_DISCRETE,
                               .act_dim = ap->continuous ? ap->nact : ap->n_actions, .hidden = v->hidden,
                               .layers = 1};
}

static unsigned long long noop_weights_floats(const void *value, const bd_agent_plan *ap)
{
    bdt_policy_config c = noop_net(value, ap);
    return bdt_policy_param_count_of(&c);
}

typedef struct {
    const bd_agent_plan *ap;
    noop_params v;
    bdt_policy_config net;
    float *params;
    uint64_t n, version;
    long long rounds, columns;
    const bd_batch *batch;
} noop_learner;

static void noop_destroy(void *self)
{
    noop_learner *l = self;
    if (l)
        free(l->params);
    free(l);
}

static int noop_create(const bd_learner_spec *s, void **out)
{
    noop_learner *l = calloc(1, sizeof *l);
    if (!l)
        return bd_seterr(BD_ENOMEM, "out of memory");
    l->ap = s->ap;
    l->v = *(const noop_params *)s->params;
    l->net = noop_net(&l->v, s->ap);
    l->n = bdt_policy_param_count_of(&l->net);
    l->params = l->n ? calloc(l->n, sizeof(float)) : NULL;
    if (!l->params || s->ap->continuous) {
        noop_destroy(l);
        return bd_seterr(BD_EINVAL, "noop: a network for one discrete actuator only");
    }
    l->params[l->n - 1] = (float)l->v.bias; /* the actor's bias of the last action (torch/policy.cpp) */
    *out = l;
    return BD_OK;
}

static int noop_load(void *self, const char *path)
{
    (void)self;
    return bd_seterr(BD_EINVAL, "noop: nothing to load from %s", path);
}

static int noop_collect(void *self, const bd_batch *b)
{
    ((noop_learner *)self)->batch = b;
    return BD_OK;
}

static int noop_update(void *self, long long steps, char *diverged, size_t len)
{
    (void)steps;
    (void)diverged;
    (void)len;
    noop_learner *l = self;
    if (!l->batch)
        return bd_seterr(BD_ESTATE, "noop: an update with nothing collected");
    for (int i = 0; i < l->batch->N; i++)
        l->columns += !l->batch->valid || l->batch->valid[i];
    l->rounds++;
    l->version++;
    l->batch = NULL;
    return BD_OK;
}

static void noop_stats(const void *self, cJSON *ev)
{
    const noop_learner *l = self;
    cJSON_AddNumberToObject(ev, "noop_rounds", (double)l->rounds);
    cJSON_AddNumberToObject(ev, "noop_columns", (double)l->columns);
}

static void noop_weights_out(const void *self, bd_policy_out *out)
{
    const noop_learner *l = self;
    memset(out, 0, sizeof *out);
    out->h = (bd_weights_hdr){.nparams = l->n, .rollout_steps = (uint32_t)l->v.rollout_steps,
                              .hidden = (uint32_t)l->v.hidden, .layers = 1, .policy = BD_POLICY_MLP,
                              .head = BD_HEAD_CATEGORICAL, .obs_dim = (uint32_t)l->net.obs_dim,
                              .act_dim = (uint32_t)l->net.act_dim};
    out->floats = l->params;
}

static int noop_weights_in(void *self, const bd_weights_hdr *h, const float *floats)
{
    noop_learner *l = self;
    if (h->nparams != l->n || h->norm_dims)
        return bd_seterr(BD_EINVAL, "noop: weights of another shape");
    memcpy(l->params, floats, sizeof(float) * l->n);
    return BD_OK;
}

static int noop_save(const void *self, const char *path, int *saved)
{
    (void)self;
    (void)path;
    *saved = 0;
    return BD_OK;
}

static uint64_t noop_version(const void *self)
{
    return ((const noop_learner *)self)->version;
}

static const bd_learner_ops noop_ops = {
    noop_create, noop_destroy, noop_load,        noop_collect,    noop_update,
    noop_stats,  noop_weights_out, noop_weights_in, noop_save,   noop_version,
    NULL, NULL, NULL,
};

/* family "ppo": its muscle is the ppo muscle, which runs the actor-critic MLP it is sent */
static const bd_kind noop_kind[] = {
    {"noop", "ppo", 0, noop_parse, free, NULL, noop_rollout, noop_weights_floats, &noop_ops, NULL},
};

int main(int argc, char **argv)
{
    bd_main_t = bd_now();
    bd_alloc_policy();
    if (bd_registry_add_brains(noop_kind, 1) != BD_OK) {
        fprintf(stderr, "bodhi-noop: %s\n", bd_lasterr());
        return 1;
    }
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return bd_cmd_run(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "brain") == 0)
        return bd_cmd_brain(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "muscle") == 0)
        return bd_cmd_muscle(argc - 1, argv + 1);
    fprintf(stderr, "usage: bodhi-noop run|brain|muscle ... (as bodhi's)\n");
    return 2;
}
