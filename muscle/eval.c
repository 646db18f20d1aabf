/* eval.c: greedy episodes outside the rounds (see eval.h). */
#include "muscle/eval.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"

void bd_eval_fini(bd_eval *e)
{
    bd_actor_fini(&e->actor);
    bd_env_destroy(e->env);
    free(e->obs);
    free(e->act);
    free(e->logp);
    free(e->val);
    free(e->rew);
    free(e->fval);
    free(e->fobs);
    free(e->term);
    free(e->trunc);
    free(e->done);
    free(e->ret);
    memset(e, 0, sizeof *e);
}

int bd_eval_init(bd_eval *e, const bd_agent_plan *ap, int episodes)
{
    memset(e, 0, sizeof *e);
    e->ap = ap;
    const bd_env_plan *ep = ap->env;
    if (episodes < 1 || !ep)
        return bd_seterr(BD_EINVAL, "agent '%s': %d greedy episodes asked for", ap->cfg->name, episodes);
    int rc = bd_env_create(ep->desc, episodes, 0, ep->seed, BD_DEVICE_CPU, ep->max_steps, ep->param, &e->env);
    if (rc == BD_OK)
        rc = bd_actor_init(&e->actor, ap, bd_env_batch_of(e->env), BD_DEVICE_CPU, BD_ACT_GREEDY, NULL);
    if (rc != BD_OK) {
        bd_eval_fini(e);
        return rc;
    }
    const size_t n = (size_t)e->actor.n, S = (size_t)ap->nsens, U = (size_t)ap->nact;
    e->n = (int)n;
    e->obs = malloc(sizeof(float) * n * S);
    e->fobs = malloc(sizeof(float) * n * S);
    e->act = malloc(sizeof(float) * n * U);
    e->logp = malloc(sizeof(float) * n);
    e->val = malloc(sizeof(float) * n);
    e->rew = malloc(sizeof(float) * n);
    e->fval = malloc(sizeof(float) * n);
    e->term = malloc(n);
    e->trunc = malloc(n);
    e->done = malloc(n);
    e->ret = malloc(sizeof(double) * n);
    if (!e->obs || !e->fobs || !e->act || !e->logp || !e->val || !e->rew || !e->fval || !e->term || !e->trunc
        || !e->done || !e->ret) {
        bd_eval_fini(e);
        return bd_seterr(BD_ENOMEM, "agent '%s': out of memory for %d greedy episodes", ap->cfg->name, episodes);
    }
    return BD_OK;
}

uint64_t bd_eval_seed(const bd_agent_plan *ap, uint64_t k)
{
    return bd_seed_mix(ap->env->seed, 0x6772656564790000ull /* "greedy" */, k);
}

/* The network of w, made on the first call; later calls must describe the same one. */
static int bd_eval_net(bd_eval *e, const bd_weights_hdr *w)
{
    const bd_act_args *a = &e->actor.args;
    if (w->obs_dim != (uint32_t)a->S || w->act_dim != (uint32_t)a->A || w->nparams == 0)
        return bd_seterr(BD_EINVAL, "agent '%s': a network of %u inputs and %u outputs to evaluate, for %d sensors "
                         "and %d outputs", e->ap->cfg->name, w->obs_dim, w->act_dim, a->S, a->A);
    if (!e->has_net) {
        int rc = bd_actor_net_of(&e->actor, w);
        if (rc != BD_OK)
            return rc;
        e->has_net = 1;
    }
    if (w->nparams != e->actor.cnet.count)
        return bd_seterr(BD_EINVAL, "agent '%s': %llu parameters to evaluate, for a network of %zu",
                         e->ap->cfg->name, (unsigned long long)w->nparams, e->actor.cnet.count);
    return BD_OK;
}

int bd_eval_play(bd_eval *e, const bd_weights_hdr *w, const float *floats, uint64_t k, double *mean,
                 long long *steps, const volatile sig_atomic_t *cancel)
{
    int rc = bd_eval_net(e, w);
    if (rc == BD_OK)
        rc = bd_actor_take(&e->actor, w, floats);
    const double start = bd_now(), none = 0;
    if (rc == BD_OK) { /* draws of the evaluation's own: the worlds of no training round */
        __atomic_store(&e->step_since, &start, __ATOMIC_RELAXED); /* a reset may hang as a step may */
        rc = bd_env_reset(e->env, bd_eval_seed(e->ap, k));
        __atomic_store(&e->step_since, &none, __ATOMIC_RELAXED);
    }
    if (rc != BD_OK)
        return rc;
    bd_env_batch *b = bd_env_batch_of(e->env);
    memset(e->done, 0, (size_t)e->n);
    for (int i = 0; i < e->n; i++)
        e->ret[i] = 0;
    long long played = 0;
    int left = e->n;
    /* every world's episode ends by its time limit: a world past it is the env's fault */
    for (long long t = 0; left > 0; t++) {
        if (t >= (long long)e->ap->env->max_steps)
            return bd_seterr(BD_EPROTO, "environment '%s': an episode of agent '%s' went on past max_steps (%d) "
                             "in a greedy evaluation", e->ap->env->uid, e->ap->cfg->name, e->ap->env->max_steps);
        if (cancel && *cancel)
            return bd_seterr(BD_EINTR, "a greedy evaluation of agent '%s' was stopped", e->ap->cfg->name);
        rc = bd_actor_act(&e->actor, b->obs, b->step, e->obs, e->act, e->logp, e->val, b->actions);
        const double since = bd_now();
        __atomic_store(&e->step_since, &since, __ATOMIC_RELAXED);
        if (rc == BD_OK)
            rc = bd_env_step(e->env);
        __atomic_store(&e->step_since, &none, __ATOMIC_RELAXED);
        if (rc == BD_OK)
            rc = bd_actor_record(&e->actor, b, e->rew, e->term, e->trunc, e->fval, e->fobs);
        if (rc != BD_OK)
            return rc;
        for (int i = 0; i < e->n; i++) {
            if (e->done[i])
                continue;
            e->ret[i] += e->rew[i];
            played++;
            if (e->term[i] || e->trunc[i]) {
                e->done[i] = 1;
                left--;
            }
        }
    }
    double sum = 0;
    for (int i = 0; i < e->n; i++)
        sum += e->ret[i];
    *mean = sum / e->n;
    *steps = played;
    return BD_OK;
}

static int bd_greedy_create(const bd_agent_plan *ap, int episodes, void **out)
{
    bd_eval *e = calloc(1, sizeof *e);
    if (!e)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int rc = bd_eval_init(e, ap, episodes);
    if (rc != BD_OK) {
        free(e);
        return rc;
    }
    *out = e;
    return BD_OK;
}

static int bd_greedy_play(void *self, const void *w, const float *floats, uint64_t k, double *mean, long long *steps,
                          const volatile sig_atomic_t *cancel)
{
    return bd_eval_play(self, w, floats, k, mean, steps, cancel);
}

static double bd_greedy_since(const void *self)
{
    double since;
    __atomic_load(&((const bd_eval *)self)->step_since, &since, __ATOMIC_RELAXED);
    return since;
}

static void bd_greedy_destroy(void *self)
{
    if (self)
        bd_eval_fini(self);
    free(self);
}

const bd_greedy_ops bd_muscle_greedy = {bd_greedy_create, bd_greedy_play, bd_greedy_since, bd_greedy_destroy};
