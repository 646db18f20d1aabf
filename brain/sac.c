/* sac.c: SAC hyper-parameters and the sac kind's checks (see sac.h). */
#include "brain/sac.h"
#include "brain/params_get.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "brain/replay.h"
#include "common/util.h"
#include "config/diag.h"

static const char *const bd_sac_keys[] = {
    "policy_lr", "q_lr", "alpha_lr", "gamma", "tau", "alpha", "autotune", "target_entropy", "batch_size",
    "buffer_size", "learning_starts", "update_ratio", "rollout_steps", "hidden", "layers", "save_buffer", NULL,
};

int bd_sac_params_read(const bd_node *p, long long columns, int act_dim, bd_sac_params *o, bd_diags *dp)
{
    bd_diags d = BD_DIAGS_INIT;
    char where[256];
    bd_node_check_keys(p, bd_sac_keys, "the sac brain's params", &d);
    double dv;
    long long i;
    int b;
#define GETD BD_GETD_IN
#define GETI BD_GETI
#define GETB BD_GETB
    GETD("policy_lr", 3e-4, 0, 10, 1, o->policy_lr);
    GETD("q_lr", 1e-3, 0, 10, 1, o->q_lr);
    GETD("alpha_lr", 1e-3, 0, 10, 1, o->alpha_lr);
    GETD("gamma", 0.99, 0, 1, 0, o->gamma);
    GETD("tau", 0.005, 0, 1, 1, o->tau);
    GETD("alpha", 0.2, 0, 1e6, 1, o->alpha);
    GETB("autotune", 1, o->autotune);
    GETD("target_entropy", -(double)act_dim, -1e6, 1e6, 0, o->target_entropy);
    GETI("batch_size", 256, 1, 1 << 20, o->batch_size);
    GETI("buffer_size", 1000000, 1, (long long)1 << 40, o->buffer_size);
    GETI("learning_starts", 1000, 0, (long long)1 << 40, o->learning_starts);
    GETD("update_ratio", 1.0 / (double)(columns < 1 ? 1 : columns < BD_SAC_RATIO_COLUMNS ? columns : BD_SAC_RATIO_COLUMNS),
         0, 1024, 1, o->update_ratio);
    o->rollout_steps = (int)bd_brain_auto_rollout(columns);
    GETI("rollout_steps", o->rollout_steps, 1, 1 << 20, o->rollout_steps);
    GETI("hidden", 64, 1, 1 << 16, o->hidden);
    GETI("layers", 2, 1, 16, o->layers);
    GETB("save_buffer", 0, o->save_buffer);
#undef GETD
#undef GETI
#undef GETB
    return bd_diags_move(&d, dp); /* to the caller's list, each on its own */
}

void bd_sac_policy_config(const bd_agent_plan *ap, const bd_sac_params *sp, bd_device device,
                          bdt_policy_config *out)
{
    bd_brain_net_config(ap, BDT_SQUASHED, ap->nact, sp->hidden, sp->layers, device, out);
}

long long bd_sac_steps_due(const bd_sac_params *sp, long long added, double *carry)
{
    double due = *carry + (double)added * sp->update_ratio;
    long long n = (long long)floor(due);
    *carry = due - (double)n;
    return n;
}

int bd_sac_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out)
{
    bd_sac_params *sp = malloc(sizeof *sp);
    if (!sp)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    int rc = bd_sac_params_read(params, p->max_columns, ap->nact, sp, d);
    if (rc != BD_OK) {
        free(sp);
        return rc;
    }
    *out = sp;
    return BD_OK;
}

/* A sac agent's actor, for bd_brain_load_check. */
static void bd_sac_net_of(const bd_agent_plan *src, bdt_policy_config *out)
{
    bd_sac_policy_config(src, src->brain_params, BD_DEVICE_CPU, out);
}

int bd_sac_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d)
{
    char w[256];
    int rc = BD_OK;
    const bd_node *where = ap->cfg->brain.node ? ap->cfg->brain.node : ap->cfg->node;
    if (ap->env && (ap->discrete || !ap->continuous))
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s': the sac brain learns continuous (Box) actions; %d of "
                                  "its %d actuators are discrete (dqn or ppo learn those)",
                                  bd_node_where(where, w, sizeof w), ap->cfg->name, ap->discrete, ap->nact));
    else if (ap->env && ap->nact > BDT_SAC_MAX_ACT)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s' has %d actuators; the sac brain takes at most %d",
                                  bd_node_where(where, w, sizeof w), ap->cfg->name, ap->nact, BDT_SAC_MAX_ACT));
    const bd_sac_params *sp = ap->brain_params;
    if (!sp || !ap->env || rc != BD_OK)
        return rc;
    rc = bd_replay_sizes_check(params, sp->learning_starts, sp->batch_size, sp->buffer_size, d);
    /* the rollouts fit their messages, the buffer this machine's memory (brain/replay.h) */
    int brc = bd_replay_check(params, p, ap, sp->rollout_steps, sp->buffer_size, d);
    rc = rc ? rc : brc;
    if (p->ph->mode == BD_MODE_TRAIN) { /* a train phase resumes a saved buffer */
        brc = bd_replay_load_check(ap, d);
        rc = rc ? rc : brc;
    }
    /* the networks (actor, twin critics and their targets, two Adam moments each) */
    bdt_policy_config cfg;
    bd_sac_policy_config(ap, sp, BD_DEVICE_CPU, &cfg);
    double need = (double)bdt_policy_param_count_of(&cfg) * 4 * 12, have = bd_phys_bytes();
    if (have > 0 && need > have) {
        const bd_node *n = bd_node_get(params, "hidden");
        int mrc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: hidden %d x layers %d makes networks of about %.3g GiB with "
                                       "their optimisers; this machine has %.3g GiB",
                                       bd_node_where(n ? n : params, w, sizeof w), sp->hidden, sp->layers,
                                       need / (1 << 30), have / (1 << 30)));
        return rc ? rc : mrc;
    }
    /* what it loads: an earlier phase's agent of this kind and shape, or an earlier run's
     * checkpoint in sac's own format that fits */
    int lrc = bd_diag(d, bd_brain_load_check(p, ap, &cfg, bdt_sac_check_file, bd_sac_net_of, NULL, NULL));
    return rc ? rc : lrc;
}

double bd_sac_kind_memory(const void *value, const bd_agent_plan *ap)
{
    const bd_sac_params *x = value;
    return bd_replay_brain_bytes(ap, x->buffer_size, x->rollout_steps);
}

long long bd_sac_kind_rollout(const void *value)
{
    return ((const bd_sac_params *)value)->rollout_steps;
}

unsigned long long bd_sac_kind_weights_floats(const void *value, const bd_agent_plan *ap)
{
    bdt_policy_config cfg;
    bd_sac_policy_config(ap, value, BD_DEVICE_CPU, &cfg);
    return (unsigned long long)bdt_policy_param_count_of(&cfg);
}
