/* kinds.c: the brain kinds bodhi knows, and what every kind's params share (see
 * learner.h, brain.h). */
#include "brain/brain.h"
#include "brain/learner.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "brain/dqn.h"
#include "brain/netless.h"
#include "brain/ppo.h"
#include "brain/sac.h"
#include "common/launch.h"
#include "common/util.h"
#include "config/diag.h"
#include "torch/bd_torch.h"
#include "torch/cpunet.h"
#include "wire/wire.h"

const bd_kind bd_brain_kinds[] = {
    BD_PPO_KIND("ppo", "ppo"),
    BD_DQN_KIND("dqn", "dqn"),
    BD_SAC_KIND("sac", "sac"),
    BD_NETLESS_KIND("random", "random"),
    /* drives a rule-based muscle (fsm): records and counts, learns nothing */
    BD_NETLESS_KIND("none", "rules"),
};
const int bd_brain_nkinds = (int)(sizeof bd_brain_kinds / sizeof bd_brain_kinds[0]);

long long bd_brain_auto_rollout(long long columns)
{
    columns *= bd_rank_world(); /* every rank's (common/launch.h) */
    long long t = columns > 0 ? BD_BRAIN_AUTO_BATCH / columns : BD_BRAIN_AUTO_T_MAX;
    return t < BD_BRAIN_AUTO_T_MIN ? BD_BRAIN_AUTO_T_MIN : t > BD_BRAIN_AUTO_T_MAX ? BD_BRAIN_AUTO_T_MAX : t;
}

long long bd_brain_total_steps(const bd_phase_plan *p, const bd_agent_plan *ap)
{
    /* the run file's agents by name: the plan's own may not be filled in yet (its kinds'
     * params are read agent by agent) */
    long long total = p->max_agent_steps > 0 ? p->max_agent_steps : 1000000;
    for (int i = 0; p->max_agent_steps > 0 && p->max_steps_agent && i < p->nagents; i++)
        if (strcmp(p->ph->agents[i].name, p->max_steps_agent) == 0 && p->agents[i].columns > 0)
            total = (long long)((double)p->max_agent_steps * (double)ap->columns / (double)p->agents[i].columns);
    return total;
}

int bd_learners_fewest(bd_sum_hook hook, void *ctx, long long *steps)
{
    if (!hook)
        return BD_OK;
    double x = (double)*steps;
    int rc = hook(ctx, &x, 1, 1);
    if (rc == BD_OK)
        *steps = (long long)x;
    return rc;
}

void bd_brain_net_config(const bd_agent_plan *ap, bdt_act_kind act_kind, int act_dim, int hidden, int layers,
                         bd_device device, bdt_policy_config *out)
{
    memset(out, 0, sizeof *out);
    out->obs_dim = ap->nsens;
    out->act_kind = act_kind;
    out->act_dim = act_dim;
    out->hidden = hidden;
    out->layers = layers;
    out->device = device == BD_DEVICE_CUDA && bdt_cuda_available() ? BDT_CUDA : BDT_CPU;
    out->seed = ap->seed;
}

const char *bd_net_shape_text(const bdt_policy_config *c, char *buf, size_t len)
{
    const char *kind = c->act_kind == BDT_CONTINUOUS ? "continuous actions"
                       : c->act_kind == BDT_Q        ? "Q-values of discrete actions"
                       : c->act_kind == BDT_SQUASHED ? "squashed continuous actions"
                                                     : "discrete actions";
    snprintf(buf, len, "%d sensors, %s %d, hidden %d, layers %d", c->obs_dim, kind, c->act_dim, c->hidden,
             c->layers);
    return buf;
}

int bd_brain_load_looks(const bd_phase_plan *p, const bd_agent_plan *ap)
{
    return p->gate && !p->ph->invalid && !ap->random && ap->load_phase;
}

int bd_brain_load_check(const bd_phase_plan *p, const bd_agent_plan *ap, const bdt_policy_config *mine,
                        bd_load_file_fn read_file, bd_net_of_fn net_of, bd_phase_plan *src_phase,
                        const bd_agent_plan **src_agent)
{
    const bd_agent_cfg *a = ap->cfg;
    char w[256], s1[160], s2[160];
    if (src_agent)
        *src_agent = NULL;
    if (!bd_brain_load_looks(p, ap))
        return BD_OK;
    const bd_node *ld = bd_node_get(a->node, "load");
    bd_node_where(ld ? ld : a->node, w, sizeof w);
    if (ap->load_run) {
        char *path = bd_strfmt("%s/checkpoints/%s/%s.pt", ap->load_run, ap->load_phase, ap->load_agent);
        if (!path)
            return bd_seterr(BD_ENOMEM, "out of memory");
        bdt_policy_config cpu = *mine;
        cpu.device = BDT_CPU;
        int rc;
        if (read_file)
            rc = read_file(&cpu, path);
        else {
            bdt_policy *net = NULL;
            rc = bdt_policy_create(&cpu, &net);
            if (rc == BD_OK)
                rc = bdt_load(net, NULL, path);
            bdt_policy_destroy(net);
        }
        if (rc != BD_OK) {
            char why[2048];
            snprintf(why, sizeof why, "%s", bd_lasterr());
            rc = bd_seterr(BD_EINVAL, "%s: load: agent '%s' cannot start from %s: %s", w, a->name, path, why);
        }
        free(path);
        return rc;
    }
    int from = bd_runfile_phase_index(p->rf, ap->load_phase);
    if (from < 0 || from >= p->phase_index)
        return BD_OK; /* config/runfile.c reported it */
    bd_phase_plan src;
    int rc = bd_phase_plan_make(p->rf, from, p->reg, "cpu", &src);
    const bd_agent_plan *sap = NULL;
    for (int i = 0; rc == BD_OK && i < src.nagents; i++)
        if (strcmp(src.agents[i].cfg->name, ap->load_agent) == 0)
            sap = &src.agents[i];
    bdt_policy_config theirs;
    if (rc != BD_OK || !sap || sap->random || !sap->brain_params) {
        bd_phase_plan_fini(&src);
        return BD_OK; /* that phase's own problems are reported where they are */
    }
    if (sap->brain != ap->brain) { /* another kind's checkpoint */
        rc = bd_seterr(BD_EINVAL, "%s: load: agent '%s' (brain %s) cannot start from agent '%s' of phase '%s' "
                       "(brain %s): another kind's checkpoint", w, a->name, ap->brain ? ap->brain->name : "?",
                       ap->load_agent, ap->load_phase, sap->brain ? sap->brain->name : "?");
        bd_phase_plan_fini(&src);
        return rc;
    }
    net_of(sap, &theirs);
    rc = BD_OK;
    if (theirs.obs_dim != mine->obs_dim || theirs.act_kind != mine->act_kind || theirs.act_dim != mine->act_dim
        || theirs.hidden != mine->hidden || theirs.layers != mine->layers)
        rc = bd_seterr(BD_EINVAL, "%s: load: agent '%s' (%s) cannot start from agent '%s' of phase '%s' (%s)", w,
                       a->name, bd_net_shape_text(mine, s1, sizeof s1), ap->load_agent, ap->load_phase,
                       bd_net_shape_text(&theirs, s2, sizeof s2));
    if (rc == BD_OK && src_phase && src_agent) {
        *src_phase = src;
        *src_agent = sap;
        return BD_OK;
    }
    bd_phase_plan_fini(&src);
    return rc;
}

int bd_learner_params(const bd_agent_plan *ap, const bdt_policy_config *pc, const char *what, size_t extra,
                      float **out, size_t *n)
{
    *out = NULL;
    *n = (size_t)bdt_policy_param_count_of(pc);
    if (!*n)
        return bd_seterr(BD_EINVAL, "agent %s: no %s of %d x %d", ap->cfg->name, what, pc->layers, pc->hidden);
    if (!(*out = malloc(sizeof(float) * (*n + extra))))
        return bd_seterr(BD_ENOMEM, "out of memory");
    return bdt_policy_init_params(pc, *out, *n);
}

int bd_learner_take_params(bdt_policy *net, float *params, size_t n, const float *floats)
{
    if (!net) {
        memcpy(params, floats, sizeof(float) * n);
        return BD_OK;
    }
    int rc = bdt_policy_set_params(net, floats, n);
    return rc == BD_OK ? bdt_policy_get_params(net, params, n) : rc;
}

double bd_brain_batch_bytes(const bd_agent_plan *ap, long long T, int epochs)
{
    /* a batch in the brain: assembled from the rollouts, compacted, GAE, the shuffles
     * (8 bytes a sample and epoch), the weights versions (8 bytes a sample) and the shim's
     * copy of it */
    const double S = ap->nsens, U = ap->nact, tnd = (double)T * (double)(ap->columns > 0 ? ap->columns : 0);
    return tnd * (3 * 4 * (S + U + 6) + 4 * S + 2 * 8 * epochs + 8);
}

int bd_brain_batch_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap,
                         long long T, long long mb, int epochs, bd_diags *d)
{
    char w[256];
    if (ap->columns <= 0 || p->muscles < 1)
        return BD_OK; /* the env's params or the phase_config have problems of their own */
    const long long N = ap->columns;
    const char *unit = ap->members > 1 ? "columns" : "worlds"; /* a column is a (world, member) */
    const bd_node *tn = bd_node_get(params, "rollout_steps");
    bd_node_where(tn ? tn : params, w, sizeof w);
    if (!tn) /* the automatic length: say so, and where the brain is */
        snprintf(w + strlen(w), sizeof w - strlen(w), " (automatic rollout_steps)");
    /* the largest shard's columns */
    long long n_max = (ap->env->worlds + p->muscles - 1) / p->muscles * ap->members;
    bd_rollout_hdr h = {.T = (uint32_t)T, .N = (uint32_t)n_max, .S = (uint32_t)ap->nsens, .U = (uint32_t)ap->nact,
                        .ended = (uint64_t)T * (uint64_t)n_max}; /* at worst every episode ends */
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    int rc = BD_OK;
    if (n_max > BD_RO_MAX_DIM)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: %lld %s per muscle; one muscle steps at most %u (add workers)",
                                  w, n_max, unit, BD_RO_MAX_DIM));
    else if (bd_rollout_layout(&h, off, size) == 0)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: rollout_steps %lld x %lld %s per muscle is too much for one "
                                  "rollout message (steps x %s x (sensors + actuators + 8) must stay under "
                                  "2^34); use fewer rollout_steps or more workers", w, T, n_max, unit, unit));
    const double need = bd_brain_batch_bytes(ap, T, epochs);
    double have = bd_phys_bytes();
    if (T * N > INT_MAX)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: rollout_steps %lld x %lld %s = %lld samples per update; the "
                                  "learner takes at most %d", w, T, N, unit, T * N, INT_MAX));
    else if (rc == BD_OK && have > 0 && need > have) /* only once the sizes themselves are right */
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: rollout_steps %lld x %lld %s = %lld samples per update need "
                                  "about %.3g GiB in the brain; this machine has %.3g GiB (fewer worlds or "
                                  "rollout_steps)", w, T, N, unit, T * N, need / (1 << 30),
                                  have / (1 << 30)));
    else if (mb > T * N) {
        const bd_node *mn = bd_node_get(params, "num_minibatches");
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: num_minibatches %lld is more than the %lld samples of an update "
                                  "(rollout_steps %lld x %lld %s)", bd_node_where(mn ? mn : params, w, sizeof w),
                                  mb, T * N, T, N, unit));
    }
    return rc;
}

