/* plan_agent.c: the parts of an agent's plan that stand on their own (see plan_impl.h):
 * where it loads from, its actuators, its objective, and its kinds' params. */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "config/plan_impl.h"

/* Where agent ap (run-file agent a) starts from: a phase of this run in which that agent
 * learnt (the default skips phases where its brain learnt nothing); a tested learner needs
 * one. Problems go to d; the first one's code. */
int bd_plan_load(bd_phase_plan *p, bd_agent_plan *ap, const bd_agent_cfg *a, bd_diags *d)
{
    char w[256];
    int bad = BD_OK;
    const bd_registry *reg = p->reg;
    ap->load_run = a->load_run;
    ap->load_phase = a->load_phase;
    ap->load_agent = a->load_agent;
    int from = !a->load_run && a->load_phase ? bd_runfile_phase_index(p->rf, a->load_phase) : -1;
    const bd_agent_cfg *src = from >= 0 ? bd_phase_agent(&p->rf->phases[from], a->load_agent) : NULL;
    const bd_kind *sk = src ? bd_kind_find(reg->brains, reg->nbrains, src->brain.name) : NULL;
    if (sk && sk->netless && a->load_phase_given) {
        const bd_node *ld = bd_node_get(a->node, "load");
        bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: load: agent '%s' of phase '%s' has a %s brain, which learns "
                                   "nothing and writes no checkpoint", bd_where(ld ? ld : a->node, w, sizeof w),
                                   a->load_agent, a->load_phase, sk->name));
    } else if (sk && sk->netless) { /* the default: an earlier phase where it learnt, or none */
        ap->load_phase = NULL;
        for (int k = from - 1; k >= 0 && !ap->load_phase; k--) {
            const bd_agent_cfg *e = bd_phase_agent(&p->rf->phases[k], a->load_agent);
            const bd_kind *ek = e ? bd_kind_find(reg->brains, reg->nbrains, e->brain.name) : NULL;
            if (p->rf->phases[k].mode == BD_MODE_TRAIN && ek && !ek->netless)
                ap->load_phase = p->rf->phases[k].name;
        }
    }
    int earlier_invalid = 0; /* an agent dropped for its problems is not there to load from */
    for (int k = 0; k < p->phase_index; k++)
        earlier_invalid |= p->rf->phases[k].invalid;
    /* a learner tested needs what it learnt */
    if (p->ph->mode == BD_MODE_TEST && ap->brain && !ap->random && !ap->load_phase && !ap->load_run
        && !earlier_invalid && !p->ph->invalid)
        bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s' in test phase '%s' has nothing to load: no "
                                   "earlier train phase has it learning (add a train phase, or load: "
                                   "{experiment_run: RUN_DIR, phase, agent})",
                                   bd_where(a->node, w, sizeof w), a->name, p->ph->name));
    return bad;
}

/* Agent i's actuators (of group g of env e): their bounds, whether they are discrete, and
 * that no other agent sets one of them. Problems go to d; the first one's code. */
int bd_plan_actuators(bd_phase_plan *p, int i, const bd_env_plan *e, int g, bd_diags *d)
{
    char w[256];
    int bad = BD_OK;
    bd_agent_plan *ap = &p->agents[i];
    const bd_agent_cfg *a = ap->cfg;
    int discrete = 0;
    ap->act_low = calloc((size_t)ap->nact, sizeof(float));
    ap->act_high = calloc((size_t)ap->nact, sizeof(float));
    if (!ap->act_low || !ap->act_high)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    for (int x = 0; x < ap->nact; x++) {
        const bd_channel *ch = &(e->desc->ngroups ? e->desc->groups[g].actuators : e->desc->actuators)[ap->act_cols[x]];
        discrete += ch->n > 0;
        ap->act_low[x] = ch->low;
        ap->act_high[x] = ch->high;
    }
    ap->discrete = discrete;
    ap->continuous = !discrete;
    ap->n_actions = discrete == 1 && ap->nact == 1 ? (int)ap->act_high[0] + 1 : 0;
    if (discrete == 1 && ap->nact == 1)
        ap->n_actions = (e->desc->ngroups ? e->desc->groups[g].actuators : e->desc->actuators)[ap->act_cols[0]].n;
    /* An actuator has one owner. */
    for (int j = 0; j < i; j++)
        for (int x = 0; x < ap->nact; x++)
            for (int y = 0; y < p->agents[j].nact; y++)
                if (p->agents[j].act_cols && p->agents[j].env == e && p->agents[j].group == g
                    && ap->act_cols[x] == p->agents[j].act_cols[y])
                    bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: actuator '%s' is set by agents '%s' and '%s'",
                                               bd_where(a->node, w, sizeof w), ap->actuator_ids[x],
                                               p->agents[j].cfg->name, a->name));
    return bad;
}

/* A kind's params for agent ap: read once into *value (bd_kind.parse), then its check. */
int bd_plan_kind(const bd_kind *k, const bd_node *params, const bd_phase_plan *p, bd_agent_plan *ap,
                        void **value, bd_diags *d)
{
    int rc = k->parse ? k->parse(params, p, ap, d, value) : BD_OK;
    int crc = k->check ? k->check(params, p, ap, d) : BD_OK; /* sees *value NULL when parse failed */
    return rc ? rc : crc;
}

