/* dqn.c: the dqn brain's params, schedules, Bellman target and checks (see dqn.h). */
#include "brain/dqn.h"
#include "brain/params_get.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "brain/replay.h"
#include "common/launch.h"
#include "common/util.h"
#include "config/diag.h"
#include "wire/wire.h"

static const char *const bd_dqn_keys[] = {
    "learning_rate", "gamma", "buffer_size", "learning_starts", "batch_size", "utd_ratio",
    "target_update_interval", "tau", "max_grad_norm", "double_q", "exploration_initial_eps",
    "exploration_final_eps", "exploration_steps", "hidden", "layers", "rollout_steps", "save_buffer", NULL,
};

long long bd_dqn_auto_rollout(long long columns)
{
    columns *= bd_rank_world(); /* every rank's, as bd_brain_auto_rollout */
    long long t = columns > 0 ? BD_DQN_AUTO_BATCH / columns : BD_DQN_AUTO_T_MAX;
    return t < BD_DQN_AUTO_T_MIN ? BD_DQN_AUTO_T_MIN : t > BD_DQN_AUTO_T_MAX ? BD_DQN_AUTO_T_MAX : t;
}

double bd_dqn_auto_utd(long long columns)
{
    if (columns < 1)
        return BD_DQN_AUTO_UTD;
    double u = BD_DQN_AUTO_STEPS_PER_ROUND_STEP / (double)columns;
    return u < BD_DQN_AUTO_UTD ? u : BD_DQN_AUTO_UTD;
}

double bd_dqn_auto_lr(long long columns)
{
    return columns >= 1 && bd_dqn_auto_utd(columns) >= BD_DQN_AUTO_UTD ? BD_DQN_AUTO_LR_FEW : BD_DQN_AUTO_LR;
}

double bd_dqn_epsilon(const bd_dqn_params *dp, long long steps)
{
    if (dp->exploration_steps <= 0 || steps >= dp->exploration_steps)
        return dp->eps_final;
    double f = (double)(steps < 0 ? 0 : steps) / (double)dp->exploration_steps;
    return dp->eps_initial + f * (dp->eps_final - dp->eps_initial);
}

long long bd_dqn_grad_steps(const bd_dqn_params *dp, long long added, long long buffered, double *carry)
{
    if (buffered < dp->learning_starts || buffered < 1)
        return 0;
    double want = dp->utd_ratio * (double)added + *carry;
    long long k = (long long)floor(want);
    *carry = want - (double)k;
    return k;
}

float bd_dqn_target(float r, int term, float gamma, const float *q_online, const float *q_target, int A,
                    int double_q)
{
    const float *pick = double_q ? q_online : q_target;
    int a = 0;
    for (int k = 1; k < A; k++)
        if (pick[k] > pick[a])
            a = k;
    return r + gamma * (term ? 0.0f : 1.0f) * q_target[a];
}

/* Every problem of the map into *dp (config/diag.h); the first one's code. */
/* columns: the phase's most (the automatic rollout, which every agent shares); own: this
 * agent's (the automatic update ratio). */
static int bd_dqn_params_read(const bd_node *p, long long columns, long long own, bd_dqn_params *o,
                              bd_diags *dp)
{
    bd_diags d = BD_DIAGS_INIT;
    char where[256];
    bd_node_check_keys(p, bd_dqn_keys, "the dqn brain's params", &d);
    double dv;
    long long i;
    int b;
#define GETD(key, def, lo, hi, dst) BD_GETD_IN(key, def, lo, hi, 0, dst)
#define GETI BD_GETI
#define GETB BD_GETB
    GETD("learning_rate", bd_dqn_auto_lr(own), 1e-12, 10, o->learning_rate);
    GETD("gamma", 0.99, 0, 1, o->gamma);
    GETI("buffer_size", 1000000, 1, (long long)1 << 40, o->buffer_size);
    GETI("learning_starts", 1000, 0, (long long)1 << 50, o->learning_starts);
    GETI("batch_size", 128, 1, 1 << 20, o->batch_size);
    GETD("utd_ratio", bd_dqn_auto_utd(own), 0, 1e3, o->utd_ratio);
    GETI("target_update_interval", 1, 1, 1 << 30, o->target_update_interval);
    GETD("tau", 0.005, 1e-9, 1, o->tau);
    GETD("max_grad_norm", 10.0, 0, 1e9, o->max_grad_norm);
    GETB("double_q", 1, o->double_q);
    GETD("exploration_initial_eps", 1.0, 0, 1, o->eps_initial);
    GETD("exploration_final_eps", 0.01, 0, 1, o->eps_final);
    GETI("exploration_steps", 8000, 0, (long long)1 << 50, o->exploration_steps);
    GETI("hidden", 64, 1, 1 << 16, o->hidden);
    GETI("layers", 2, 1, 16, o->layers);
    o->rollout_steps = (int)bd_dqn_auto_rollout(columns);
    GETI("rollout_steps", o->rollout_steps, 1, 1 << 20, o->rollout_steps);
    GETB("save_buffer", 0, o->save_buffer);
#undef GETD
#undef GETI
#undef GETB
    return bd_diags_move(&d, dp); /* to the caller's list, each on its own */
}

int bd_dqn_params_parse(const bd_node *p, long long columns, bd_dqn_params *o)
{
    bd_diags d = BD_DIAGS_INIT;
    bd_dqn_params_read(p, columns, columns, o, &d);
    return bd_diags_finish(&d);
}

int bd_dqn_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                      void **out)
{
    bd_dqn_params *dp = calloc(1, sizeof *dp);
    if (!dp)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    int rc = bd_dqn_params_read(params, p->max_columns, ap->columns > 0 ? ap->columns : p->max_columns, dp, d);
    if (rc != BD_OK) {
        free(dp);
        return rc;
    }
    *out = dp;
    return BD_OK;
}

double bd_dqn_kind_memory(const void *value, const bd_agent_plan *ap)
{
    const bd_dqn_params *x = value;
    return bd_replay_brain_bytes(ap, x->buffer_size, x->rollout_steps);
}

long long bd_dqn_kind_rollout(const void *value)
{
    return ((const bd_dqn_params *)value)->rollout_steps;
}

void bd_dqn_net_config(const bd_agent_plan *ap, const bd_dqn_params *dp, bd_device device, bdt_policy_config *out)
{
    bd_brain_net_config(ap, BDT_Q, ap->n_actions, dp->hidden, dp->layers, device, out);
}

unsigned long long bd_dqn_kind_weights_floats(const void *value, const bd_agent_plan *ap)
{
    bdt_policy_config cfg;
    bd_dqn_net_config(ap, value, BD_DEVICE_CPU, &cfg);
    return (unsigned long long)bdt_policy_param_count_of(&cfg) + BD_WEIGHTS_HEAD_FLOATS(BD_HEAD_Q);
}

/* A dqn agent's Q-network, for bd_brain_load_check. */
static void bd_dqn_net_of(const bd_agent_plan *src, bdt_policy_config *out)
{
    bd_dqn_net_config(src, src->brain_params, BD_DEVICE_CPU, out);
}

/* A dqn brain needs one discrete actuator; its buffer, network and rounds must fit, and
 * what it loads. */
int bd_dqn_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d)
{
    char w[256];
    const bd_dqn_params *dp = ap->brain_params;
    if (ap->nact > 0 && (ap->continuous || ap->discrete != 1 || ap->nact != 1))
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s': the dqn brain learns a Q-value per action of one "
                                    "discrete actuator; this agent lists %d actuator(s), %d of them discrete (ppo "
                                    "or sac learn continuous actions)",
                                    bd_node_where(bd_node_get(ap->cfg->node, "brain"), w, sizeof w), ap->cfg->name,
                                    ap->nact, ap->discrete));
    if (!dp || !ap->env)
        return BD_OK;
    int rc = bd_replay_sizes_check(params, dp->learning_starts, dp->batch_size, dp->buffer_size, d);
    int brc = bd_replay_check(params, p, ap, dp->rollout_steps, dp->buffer_size, d);
    rc = rc ? rc : brc;
    if (dp->save_buffer && p->ph->mode == BD_MODE_TRAIN) { /* it resumes a saved buffer */
        brc = bd_replay_load_check(ap, d);
        rc = rc ? rc : brc;
    }
    bdt_policy_config cfg;
    bd_dqn_net_config(ap, dp, BD_DEVICE_CPU, &cfg);
    uint64_t n = bdt_policy_param_count_of(&cfg);
    double need = (double)n * 20, have = bd_phys_bytes(); /* network, target, gradient, Adam's moments */
    if (n == 0 || (have > 0 && need > have)) {
        const bd_node *hn = bd_node_get(params, "hidden");
        int nrc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: hidden %d x layers %d makes a Q-network of %.3g parameters, "
                                       "%.3g GiB with its target and optimiser; this machine has %.3g GiB",
                                       bd_node_where(hn ? hn : params, w, sizeof w), dp->hidden, dp->layers,
                                       (double)n, need / (1 << 30), have / (1 << 30)));
        return rc ? rc : nrc;
    }
    /* what it loads fits (an earlier run's checkpoint, or an earlier phase's agent) */
    int lrc = bd_diag(d, bd_brain_load_check(p, ap, &cfg, NULL, bd_dqn_net_of, NULL, NULL));
    return rc ? rc : lrc;
}
