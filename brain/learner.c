/* learner.c: a brain's policy, optimiser, normaliser and checkpoints (see learner.h). */
#include "brain/learner.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

int bd_learner_init(bd_learner *l, const bd_agent_plan *ap, const bd_ppo_params *pp, int train,
                    bd_device device, int T, int N, const char *load, const volatile sig_atomic_t *cancel)
{
    memset(l, 0, sizeof *l);
    l->ap = ap;
    l->pp = *pp;
    l->train = train;
    l->lr = pp->learning_rate;
    const int S = ap->nsens, U = ap->nact;
    bd_obsnorm_init(&l->norm, S);
    if (ap->random)
        return BD_OK;
    bdt_policy_config pc;
    bd_ppo_policy_config(ap, pp, device, &pc);
    int rc = bdt_policy_create(&pc, &l->net);
    if (rc == BD_OK && train)
        rc = bdt_ppo_create(l->net, &pp->opt, &l->ppo);
    if (rc != BD_OK)
        return rc;
    if (l->ppo)
        bdt_ppo_set_cancel(l->ppo, (const volatile int *)cancel);
    l->use_norm = pp->norm_obs;
    if (load) {
        /* A train phase resumes: weights and the optimiser's state; a test phase only
         * needs the weights. */
        rc = bdt_load(l->net, l->ppo, load);
        if (rc == BD_OK && l->use_norm) {
            char *np = bd_strfmt("%s.obsnorm.json", load);
            rc = np ? bd_obsnorm_load(&l->norm, np) : bd_seterr(BD_ENOMEM, "out of memory");
            free(np);
        }
        if (rc != BD_OK)
            return rc;
    }
    l->nparams = bdt_policy_param_count(l->net);
    l->params = malloc(sizeof(float) * (l->nparams + (l->use_norm ? 2 * (size_t)S : 0)));
    if (!l->params)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if (l->use_norm)
        bd_obsnorm_pack(&l->norm, l->params + l->nparams);
    if ((rc = bdt_policy_get_params(l->net, l->params, l->nparams)) != BD_OK || !train)
        return rc;
    const size_t tn = (size_t)T * (size_t)N;
    l->max_rows = (long long)tn;
    struct {
        void **p;
        size_t bytes;
    } bufs[] = {
        {(void **)&l->adv, sizeof(float) * tn},        {(void **)&l->ret, sizeof(float) * tn},
        {(void **)&l->perm, sizeof(int64_t) * tn * (size_t)pp->opt.epochs},
        {(void **)&l->c_obs, sizeof(float) * tn * (size_t)S},
        {(void **)&l->c_act, sizeof(float) * tn * (size_t)U},
        {(void **)&l->c_logp, sizeof(float) * tn}, {(void **)&l->c_val, sizeof(float) * tn},
        {(void **)&l->c_rew, sizeof(float) * tn},  {(void **)&l->c_fval, sizeof(float) * tn},
        {(void **)&l->c_lastv, sizeof(float) * (size_t)N},
        {(void **)&l->c_term, tn},                 {(void **)&l->c_trunc, tn},
    };
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++)
        if (!(*bufs[k].p = malloc(bufs[k].bytes ? bufs[k].bytes : 1)))
            return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", T, N);
    if (l->use_norm && !(l->nobs = malloc(sizeof(float) * tn * (size_t)S)))
        return bd_seterr(BD_ENOMEM, "brain: out of memory for a batch of %d x %d", T, N);
    return BD_OK;
}

void bd_learner_fini(bd_learner *l)
{
    bdt_ppo_destroy(l->ppo);
    bdt_policy_destroy(l->net);
    free(l->params);
    free(l->adv);
    free(l->ret);
    free(l->nobs);
    free(l->perm);
    free(l->c_obs);
    free(l->c_act);
    free(l->c_logp);
    free(l->c_val);
    free(l->c_rew);
    free(l->c_fval);
    free(l->c_lastv);
    free(l->c_term);
    free(l->c_trunc);
    memset(l, 0, sizeof *l);
}

static double bd_explained_variance(const float *val, const float *ret, size_t n)
{
    double my = 0, md = 0;
    for (size_t k = 0; k < n; k++) {
        my += ret[k];
        md += ret[k] - val[k];
    }
    my /= (double)n;
    md /= (double)n;
    double vy = 0, vd = 0;
    for (size_t k = 0; k < n; k++) {
        double y = ret[k] - my, d = ret[k] - val[k] - md;
        vy += y * y;
        vd += d * d;
    }
    return vy == 0 ? NAN : 1.0 - vd / vy;
}

/* cols (count of them) of a (T, N, K) array of esize-byte elements into dst (T, n, K). */
static void bd_compact(const void *src, void *dst, int T, int N, size_t K, size_t esize, const int *cols, int n)
{
    const char *s = src;
    char *d = dst;
    const size_t row = K * esize;
    for (int t = 0; t < T; t++)
        for (int j = 0; j < n; j++)
            memcpy(d + ((size_t)t * (size_t)n + (size_t)j) * row, s + ((size_t)t * (size_t)N + (size_t)cols[j]) * row, row);
}

/* The batch with only its valid columns (the batch itself when all are). */
static int bd_learner_view(bd_learner *l, const bd_batch *b, bd_batch *v)
{
    *v = *b;
    v->valid = NULL;
    if (!b->valid)
        return BD_OK;
    int *cols = malloc(sizeof(int) * (size_t)b->N), n = 0;
    if (!cols)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; i < b->N; i++)
        if (b->valid[i])
            cols[n++] = i;
    if (n < b->N) {
        bd_compact(b->obs, l->c_obs, b->T, b->N, (size_t)b->S, 4, cols, n);
        bd_compact(b->act, l->c_act, b->T, b->N, (size_t)b->U, 4, cols, n);
        bd_compact(b->logp, l->c_logp, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->val, l->c_val, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->rew, l->c_rew, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->fval, l->c_fval, b->T, b->N, 1, 4, cols, n);
        bd_compact(b->lastv, l->c_lastv, 1, b->N, 1, 4, cols, n);
        bd_compact(b->term, l->c_term, b->T, b->N, 1, 1, cols, n);
        bd_compact(b->trunc, l->c_trunc, b->T, b->N, 1, 1, cols, n);
        *v = (bd_batch){b->T, n, b->S, b->U, l->c_obs, l->c_act, l->c_logp, l->c_val, l->c_rew,
                        l->c_fval, l->c_lastv, l->c_term, l->c_trunc, NULL};
    }
    free(cols);
    return BD_OK;
}

int bd_learner_update(bd_learner *l, const bd_batch *batch, long long steps, cJSON *ev)
{
    bd_batch vb;
    int rc = bd_learner_view(l, batch, &vb);
    if (rc != BD_OK)
        return rc;
    const bd_batch *b = &vb;
    const int tn = b->T * b->N;
    if (tn == 0)
        return BD_OK;
    bd_gae(b->T, b->N, b->rew, b->val, b->fval, b->lastv, b->term, b->trunc, (float)l->pp.gamma,
           (float)l->pp.gae_lambda, l->adv, l->ret);
    bd_ppo_perm(l->perm, tn, l->pp.opt.epochs, l->ap->seed, l->version);
    double lr = l->lr;
    if (l->pp.anneal_lr && l->pp.total_steps > 0) {
        double frac = 1.0 - (double)steps / (double)l->pp.total_steps;
        if (frac < 0.01)
            frac = 0.01;
        lr *= frac;
    }
    if ((rc = bdt_ppo_set_lr(l->ppo, (float)lr)) != BD_OK)
        return rc;
    bdt_ppo_stats st;
    double t0 = bd_now();
    /* The learner sees what the muscles' policy saw: the batch normalised with the
     * statistics in force while it was collected; only then do they take it in. */
    const float *x = b->obs;
    if (l->use_norm) {
        bd_obsnorm_apply(&l->norm, b->obs, l->nobs, (size_t)tn);
        x = l->nobs;
    }
    rc = bdt_ppo_update(l->ppo, x, b->act, b->logp, l->adv, l->ret, b->val, tn, l->perm, &st);
    if (rc == BD_OK)
        rc = bdt_policy_get_params(l->net, l->params, l->nparams);
    if (rc != BD_OK)
        return rc;
    if (l->use_norm) {
        bd_obsnorm_update(&l->norm, b->obs, (size_t)tn);
        bd_obsnorm_pack(&l->norm, l->params + l->nparams);
    }
    l->version++;
    l->lr = bd_ppo_adapt_lr(&l->pp, l->lr, st.approx_kl);
    cJSON_AddNumberToObject(ev, "learning_rate", lr);
    cJSON_AddNumberToObject(ev, "policy_loss", st.policy_loss);
    cJSON_AddNumberToObject(ev, "value_loss", st.value_loss);
    cJSON_AddNumberToObject(ev, "entropy", st.entropy);
    cJSON_AddNumberToObject(ev, "approx_kl", st.approx_kl);
    cJSON_AddNumberToObject(ev, "clip_frac", st.clip_frac);
    double evar = bd_explained_variance(b->val, l->ret, (size_t)tn);
    if (!isnan(evar))
        cJSON_AddNumberToObject(ev, "explained_variance", evar);
    cJSON_AddNumberToObject(ev, "learn_s", bd_now() - t0);
    return BD_OK;
}

int bd_learner_undo(bd_learner *l)
{
    int rc = l->ppo ? bdt_ppo_undo(l->ppo) : bd_seterr(BD_ESTATE, "no learner to undo");
    return rc == BD_OK ? bdt_policy_get_params(l->net, l->params, l->nparams) : rc;
}

int bd_learner_save(const bd_learner *l, const char *path)
{
    if (!l->net)
        return BD_OK;
    int rc = bdt_save(l->net, l->ppo, path);
    if (rc == BD_OK && l->use_norm) {
        char *np = bd_strfmt("%s.obsnorm.json", path);
        rc = np ? bd_obsnorm_save(&l->norm, np) : bd_seterr(BD_ENOMEM, "out of memory");
        free(np);
    }
    return rc;
}
