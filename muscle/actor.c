/* actor.c: one agent's inference and action selection in a muscle (see actor.h). The
 * per-world work is muscle/act.h's; here it runs as loops on the CPU or as the kernels of
 * kernels/muscle.cu on CUDA. */
#include "muscle/actor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/devmem.h"
#ifdef BODHI_HAVE_CUDA
#include "muscle/muscle_launch.h"
#endif

#ifdef BODHI_HAVE_CUDA
#define BD_ON_CUDA(ac) ((ac)->dev == BD_DEVICE_CUDA)
#else
#define BD_ON_CUDA(ac) 0
#endif

int bd_actor_init(bd_actor *ac, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev,
                  bd_act_mode mode, const bd_fsm *fsm)
{
    memset(ac, 0, sizeof *ac);
    ac->ap = ap;
    ac->dev = dev;
    ac->n = b->n * ap->members;
    bd_act_args *a = &ac->args;
    a->n = ac->n;
    a->M = b->members;
    a->first = ap->env->shape.first[ap->group];
    a->count = ap->members;
    a->S = ap->nsens;
    a->U = ap->nact;
    a->A = ap->continuous ? ap->nact : ap->n_actions;
    a->D = b->obs_dim;
    a->AD = b->act_dim;
    a->continuous = ap->continuous;
    a->mode = mode == BD_ACT_FSM ? BD_ACT_FSM : ap->random ? BD_ACT_UNIFORM : mode;
    a->seed = ap->seed;
    a->world0 = b->world0 * (uint32_t)ap->members;
    if (a->mode == BD_ACT_FSM && !fsm)
        return bd_seterr(BD_EINVAL, "agent %s: an fsm muscle without its machine", ap->cfg->name);
    if (a->A > BD_ACT_MAX || a->U > BD_MAX_ACTUATORS)
        return bd_seterr(BD_EINVAL, "agent %s: %d outputs and %d actuators, at most %d and %d",
                         ap->cfg->name, a->A, a->U, BD_ACT_MAX, BD_MAX_ACTUATORS);
    for (int d = 0; d < a->U; d++) {
        a->act_cols[d] = ap->act_cols[d];
        a->low[d] = ap->act_low[d];
        a->high[d] = ap->act_high[d];
    }
    const size_t n = (size_t)ac->n, S = (size_t)a->S;
    int rc = bd_dev_alloc(dev, sizeof(int) * S, (void **)&ac->cols);
    if (rc == BD_OK)
        rc = bd_dev_from_host(dev, ac->cols, ap->sens_cols, sizeof(int) * S);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * 2 * S, (void **)&ac->norm);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n * (size_t)a->A * (a->continuous ? 2 : 1), (void **)&ac->out);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n * S, (void **)&ac->nobs);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n * S, (void **)&ac->fobs);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(float) * n, (void **)&ac->fv);
    if (rc == BD_OK)
        rc = bd_dev_alloc(dev, sizeof(int), (void **)&ac->any);
    if (rc == BD_OK && !(ac->fidx = malloc(sizeof(int) * n)))
        rc = bd_seterr(BD_ENOMEM, "muscle: out of memory");
    if (rc == BD_OK && a->mode == BD_ACT_FSM) {
        int *start = malloc(sizeof(int) * n);
        if (!start)
            rc = bd_seterr(BD_ENOMEM, "muscle: out of memory");
        for (size_t i = 0; start && i < n; i++)
            start[i] = fsm->start;
        if (rc == BD_OK)
            rc = bd_dev_alloc(dev, sizeof(int) * n, (void **)&ac->fsm_state);
        if (rc == BD_OK)
            rc = bd_dev_from_host(dev, ac->fsm_state, start, sizeof(int) * n);
        free(start);
        if (rc == BD_OK)
            rc = bd_dev_alloc(dev, sizeof *fsm, (void **)&ac->fsm);
        if (rc == BD_OK)
            rc = bd_dev_from_host(dev, ac->fsm, fsm, sizeof *fsm);
        a->fsm = ac->fsm;
        a->fsm_state = ac->fsm_state;
    }
    if (rc != BD_OK)
        return rc;
    a->cols = ac->cols;
    a->mean = ac->norm;
    a->inv = ac->norm + S;
    return BD_OK;
}

int bd_actor_has_net(const bd_actor *ac)
{
    return ac->net || ac->cparams;
}

int bd_actor_set_net(bd_actor *ac, int hidden, int layers)
{
    bd_act_args *a = &ac->args;
    if (a->mode == BD_ACT_UNIFORM || a->mode == BD_ACT_FSM || bd_actor_has_net(ac))
        return bd_seterr(BD_ESTATE, "agent %s: %s", ac->ap->cfg->name,
                         bd_actor_has_net(ac) ? "the network exists already" : "a netless muscle has no network");
    bdt_policy_config pc = {
        .obs_dim = a->S,
        .act_kind = a->qhead ? BDT_Q : a->squashed ? BDT_SQUASHED : a->continuous ? BDT_CONTINUOUS : BDT_DISCRETE,
        .act_dim = a->A, .hidden = hidden, .layers = layers,
        .device = ac->dev == BD_DEVICE_CUDA ? BDT_CUDA : BDT_CPU, .seed = ac->ap->seed,
    };
    /* On the CPU every network runs in C (parameters come with the first WEIGHTS), libtorch's
     * bits without libtorch (torch/cpunet.h); on CUDA it runs on libtorch. */
    if (!BD_ON_CUDA(ac)) {
        int rc = bdt_cpunet_init(&ac->cnet, &pc, ac->n);
        if (rc == BD_OK && !(ac->cparams = calloc(ac->cnet.count, sizeof(float)))) {
            rc = bd_seterr(BD_ENOMEM, "muscle: out of memory for %zu parameters", ac->cnet.count);
            bdt_cpunet_fini(&ac->cnet);
        }
        return rc;
    }
    int rc = bdt_policy_create(&pc, &ac->net);
    if (rc == BD_OK && a->continuous && !a->qhead && !a->squashed)
        rc = bdt_policy_logstd(ac->net, a->logstd, a->A);
    return rc;
}

int bd_actor_net_of(bd_actor *ac, const bd_weights_hdr *w)
{
    ac->args.qhead = w->head == BD_HEAD_Q;
    ac->args.squashed = w->head == BD_HEAD_SQUASHED_GAUSSIAN;
    return bd_actor_set_net(ac, (int)w->hidden, (int)w->layers);
}

int bd_actor_take(bd_actor *ac, const bd_weights_hdr *w, const float *floats)
{
    const size_t np = (size_t)w->nparams, nn = np + (w->norm_dims ? 2 * (size_t)ac->args.S : 0);
    if (ac->args.qhead) /* the brain's exploration rate, after the normaliser */
        ac->args.epsilon = floats[nn];
    int rc = bd_actor_set_params(ac, floats, np);
    if (rc == BD_OK)
        rc = w->norm_dims ? bd_actor_set_norm(ac, floats + np, floats + np + ac->args.S) : bd_actor_set_norm(ac, NULL, NULL);
    return rc;
}

/* The network's outputs for obs (n, S) on the actor's device: out (n, A), values (n). */
static int bd_actor_forward(bd_actor *ac, const float *obs, int n, float *out, float *values)
{
    if (ac->cparams)
        return bdt_cpunet_forward(&ac->cnet, ac->cparams, obs, n, out, values);
    return bdt_policy_forward_on_device(ac->net, obs, n, out, values);
}

void bd_actor_fini(bd_actor *ac)
{
    bdt_policy_destroy(ac->net);
    bdt_cpunet_fini(&ac->cnet);
    free(ac->cparams);
    bd_dev_free(ac->dev, ac->cols);
    bd_dev_free(ac->dev, ac->norm);
    bd_dev_free(ac->dev, ac->out);
    bd_dev_free(ac->dev, ac->nobs);
    bd_dev_free(ac->dev, ac->fobs);
    bd_dev_free(ac->dev, ac->fv);
    bd_dev_free(ac->dev, ac->any);
    bd_dev_free(ac->dev, ac->fsm);
    bd_dev_free(ac->dev, ac->fsm_state);
    free(ac->fidx);
    memset(ac, 0, sizeof *ac);
}

int bd_actor_set_params(bd_actor *ac, const float *params, size_t n)
{
    if (ac->cparams) {
        if (n != ac->cnet.count)
            return bd_seterr(BD_EINVAL, "agent %s: %zu parameters for a network of %zu", ac->ap->cfg->name, n,
                             ac->cnet.count);
        memcpy(ac->cparams, params, sizeof(float) * n);
        const float *ls = bdt_cpunet_logstd(&ac->cnet, ac->cparams);
        if (ls)
            memcpy(ac->args.logstd, ls, sizeof(float) * (size_t)ac->args.A);
        return BD_OK;
    }
    if (!ac->net)
        return BD_OK;
    int rc = bdt_policy_set_params(ac->net, params, n);
    if (rc == BD_OK && ac->args.continuous && !ac->args.qhead && !ac->args.squashed)
        rc = bdt_policy_logstd(ac->net, ac->args.logstd, ac->args.A);
    return rc;
}

int bd_actor_set_norm(bd_actor *ac, const float *mean, const float *inv)
{
    const int S = ac->args.S;
    ac->args.norm = 0;
    if (!mean)
        return BD_OK;
    int rc = bd_dev_from_host(ac->dev, ac->norm, mean, sizeof(float) * (size_t)S);
    if (rc == BD_OK)
        rc = bd_dev_from_host(ac->dev, ac->norm + S, inv, sizeof(float) * (size_t)S);
    ac->args.norm = rc == BD_OK;
    return rc;
}

/* raw (may be NULL) and the network's input net from src (n, D). */
static int bd_actor_gather(bd_actor *ac, const float *src, float *raw, float *net)
{
#ifdef BODHI_HAVE_CUDA
    if (BD_ON_CUDA(ac))
        return bd_act_gather_cuda(&ac->args, src, raw, net);
#endif
    for (int i = 0; i < ac->n; i++)
        bd_act_gather(i, &ac->args, src, raw, net);
    return BD_OK;
}

int bd_actor_act(bd_actor *ac, const float *env_obs, uint64_t step, float *obs, float *act,
                   float *logp, float *values, float *env_act)
{
    const bd_act_args *a = &ac->args;
    const int uniform = a->mode == BD_ACT_UNIFORM || a->mode == BD_ACT_FSM;
    /* without normalisation the network reads the rollout's rows themselves */
    float *net = a->norm ? ac->nobs : NULL;
    int rc = bd_actor_gather(ac, env_obs, obs, net);
    if (rc == BD_OK && !uniform)
        rc = bd_actor_forward(ac, net ? net : obs, ac->n, ac->out, values);
    if (rc != BD_OK)
        return rc;
#ifdef BODHI_HAVE_CUDA
    if (BD_ON_CUDA(ac))
        return bd_act_select_cuda(a, step, ac->out, obs, act, logp, values, env_act);
#endif
    for (int i = 0; i < ac->n; i++)
        bd_act_select(i, a, step, ac->out, obs, act, logp, values, env_act);
    return BD_OK;
}

int bd_actor_record(bd_actor *ac, const bd_env_batch *b, float *rew, uint8_t *term,
                      uint8_t *trunc, float *fval, float *fobs)
{
    const bd_act_args *a = &ac->args;
#ifdef BODHI_HAVE_CUDA
    if (BD_ON_CUDA(ac)) {
        /* final observations by world; one forward over all of them when any is needed */
        int any = 0;
        int rc = bd_act_gather_cuda(a, b->final_obs, fobs, NULL);
        if (rc == BD_OK)
            rc = bd_act_record_cuda(a, b, rew, term, trunc, fval, ac->net ? ac->fobs : NULL, ac->any);
        if (rc == BD_OK && ac->net)
            rc = bd_dev_to_host(ac->dev, &any, ac->any, sizeof any);
        if (rc == BD_OK && any)
            rc = bd_actor_forward(ac, ac->fobs, ac->n, NULL, ac->fv);
        if (rc == BD_OK && any)
            rc = bd_act_fval_cuda(ac->n, term, trunc, ac->fv, fval);
        return rc;
    }
#endif
    /* CPU: the final observations that need a value, packed, in one forward */
    int m = 0;
    for (int i = 0; i < ac->n; i++) {
        int needs_value = bd_act_record(i, a, b->rewards, b->terminated, b->truncated, rew, term, trunc, fval);
        if (term[i] || trunc[i]) /* what the world saw as its episode ended, for the trace */
            bd_act_gather(i, a, b->final_obs, fobs, NULL);
        if (needs_value && bd_actor_has_net(ac)) {
            bd_act_gather(i, a, b->final_obs, NULL, ac->nobs);
            memcpy(ac->fobs + (size_t)m * a->S, ac->nobs + (size_t)i * a->S, sizeof(float) * (size_t)a->S);
            ac->fidx[m++] = i;
        }
    }
    if (m == 0)
        return BD_OK;
    int rc = bd_actor_forward(ac, ac->fobs, m, NULL, ac->fv);
    for (int j = 0; rc == BD_OK && j < m; j++)
        fval[ac->fidx[j]] = ac->fv[j];
    return rc;
}

int bd_actor_values(bd_actor *ac, const float *env_obs, float *values)
{
    if (!bd_actor_has_net(ac)) {
        float *zero = calloc((size_t)ac->n, sizeof(float));
        int rc = zero ? bd_dev_from_host(ac->dev, values, zero, sizeof(float) * (size_t)ac->n)
                      : bd_seterr(BD_ENOMEM, "muscle: out of memory");
        free(zero);
        return rc;
    }
    int rc = bd_actor_gather(ac, env_obs, NULL, ac->nobs);
    if (rc == BD_OK)
        rc = bd_actor_forward(ac, ac->nobs, ac->n, NULL, values);
    return rc;
}
