/* ppo.cpp: CleanRL's PPO update behind bdt_ppo_* (torch/bd_torch.h): Adam over the
 * policy's parameters, epochs of shuffled minibatches, the clipped surrogate and value
 * losses, the entropy bonus and the global gradient-norm clip. */
#include "torch/shim.hpp"

using namespace bd_shim;

extern "C" int bdt_ppo_create(bdt_policy *p, const bdt_ppo_config *cfg, bdt_ppo **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bdt_ppo_create: out is NULL");
    *out = nullptr;
    if (!p || !cfg)
        return bd_seterr(BD_EINVAL, "bdt_ppo_create: NULL argument");
    if (!(cfg->lr >= 0.0f) || cfg->epochs < 0 || cfg->minibatches < 0
        || (cfg->minibatches == 0 && cfg->minibatch_size < 1) || !(cfg->clip_coef >= 0.0f))
        return bd_seterr(BD_EINVAL,
                         "bdt_ppo_create: need lr >= 0, clip_coef >= 0, epochs >= 0, and minibatches >= 1 "
                         "or minibatch_size >= 1 (got lr=%g clip_coef=%g epochs=%d minibatches=%d "
                         "minibatch_size=%d)",
                         (double)cfg->lr, (double)cfg->clip_coef, cfg->epochs, cfg->minibatches,
                         cfg->minibatch_size);
    try {
        std::unique_ptr<bdt_ppo> o(new bdt_ppo);
        o->p = p;
        o->cfg = *cfg;
        o->opt.reset(new torch::optim::Adam(p->params, torch::optim::AdamOptions(cfg->lr).eps(1e-5)));
        *out = o.release();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_create");
    }
}

extern "C" void bdt_ppo_destroy(bdt_ppo *o)
{
    try {
        delete o;
    } catch (...) {
    }
}

extern "C" int bdt_ppo_set_lr(bdt_ppo *o, float lr)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_ppo_set_lr: o is NULL");
    if (!(lr >= 0.0f))
        return bd_seterr(BD_EINVAL, "bdt_ppo_set_lr: lr=%g must be >= 0", (double)lr);
    try {
        for (auto &g : o->opt->param_groups())
            static_cast<torch::optim::AdamOptions &>(g.options()).lr(lr);
        o->cfg.lr = lr;
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_set_lr");
    }
}

extern "C" int bdt_ppo_set_minibatches(bdt_ppo *o, int count)
{
    if (!o || count < 0)
        return bd_seterr(BD_EINVAL, "bdt_ppo_set_minibatches: %s", o ? "a negative count" : "o is NULL");
    o->cfg.minibatches = count;
    return BD_OK;
}

extern "C" int bdt_ppo_set_coefs(bdt_ppo *o, const bdt_ppo_config *cfg)
{
    if (!o || !cfg)
        return bd_seterr(BD_EINVAL, "bdt_ppo_set_coefs: NULL argument");
    if (!(cfg->clip_coef >= 0.0f) || !(cfg->vf_coef >= 0.0f) || !(cfg->ent_coef >= 0.0f)
        || !(cfg->max_grad_norm >= 0.0f))
        return bd_seterr(BD_EINVAL, "bdt_ppo_set_coefs: need clip_coef, vf_coef, ent_coef and max_grad_norm >= 0 "
                         "(got %g, %g, %g, %g)", (double)cfg->clip_coef, (double)cfg->vf_coef,
                         (double)cfg->ent_coef, (double)cfg->max_grad_norm);
    o->cfg.clip_coef = cfg->clip_coef;
    o->cfg.vf_coef = cfg->vf_coef;
    o->cfg.ent_coef = cfg->ent_coef;
    o->cfg.max_grad_norm = cfg->max_grad_norm;
    return BD_OK;
}

extern "C" int bdt_ppo_set_split(bdt_ppo *o, int on)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_ppo_set_split: o is NULL");
    o->split = on != 0; /* off keeps a helper made, asleep, until the handle goes */
    return BD_OK;
}

extern "C" void bdt_ppo_set_cancel(bdt_ppo *o, const volatile int *flag)
{
    if (o)
        o->cancel = flag;
}

extern "C" void bdt_ppo_set_grad_hook(bdt_ppo *o, bdt_grad_hook hook, void *ctx)
{
    if (o) {
        o->grad_hook = hook;
        o->grad_ctx = ctx;
    }
}

namespace {

/* The hook of bdt_ppo_set_grad_hook (bdt_run_grad_hook, shim.cpp). */
int run_grad_hook(bdt_ppo *o)
{
    return bdt_run_grad_hook(o->p->params, o->grad_buf, o->grad_hook, o->grad_ctx);
}

} // namespace

extern "C" int bdt_ppo_undo(bdt_ppo *o)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_ppo_undo: o is NULL");
    if (o->undo_params.empty())
        return bd_seterr(BD_ESTATE, "bdt_ppo_undo: no update to undo");
    try {
        restore_snapshot(o->p->params, *o->opt, Snapshot{std::move(o->undo_params), std::move(o->undo_opt)});
        o->undo_params.clear();
        o->undo_opt.clear();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_undo");
    }
}

namespace {

/* bdt_ppo_update's checks of its arguments, on the host: the minibatch count and size
 * through nmb_out and mb_out. Out-of-range indices would be a device-side assert on CUDA. */
int check_update(const bdt_ppo *o, const float *actions, int n, const int64_t *perm, int *nmb_out,
                 int *mb_out)
{
    const bdt_ppo_config &c = o->cfg;
    const bdt_policy_config &pc = o->p->cfg;
    if (n < 1)
        return bd_seterr(BD_EINVAL, "bdt_ppo_update: n=%d must be >= 1", n);
    const int nmb = (int)bdt_ppo_minibatch_count(&c, n);
    const int mb = n / nmb;
    if (mb < 1)
        return bd_seterr(BD_EINVAL, "bdt_ppo_update: n=%d is smaller than minibatches=%d", n, nmb);
    for (int64_t i = 0; i < (int64_t)c.epochs * n; i++)
        if (perm[i] < 0 || perm[i] >= n)
            return bd_seterr(BD_EINVAL, "bdt_ppo_update: perm[%lld]=%lld is outside [0, %d)",
                             (long long)i, (long long)perm[i], n);
    if (pc.act_kind == BDT_DISCRETE)
        for (int i = 0; i < n; i++)
            if (!(actions[i] >= 0.0f && actions[i] < (float)pc.act_dim) ||
                actions[i] != std::floor(actions[i]))
                return bd_seterr(BD_EINVAL, "bdt_ppo_update: actions[%d]=%g is not an action in [0, %d)",
                                 i, (double)actions[i], pc.act_dim);
    *nmb_out = nmb;
    *mb_out = mb;
    return BD_OK;
}

/* An update's whole batch on the device, in rollout order: obs, actions, logp, adv, ret,
 * val (the order of bdt_ppo::e), and every epoch's permutation. */
struct Batch {
    torch::Tensor t[6];
    torch::Tensor perm;
};

/* The whole batch to the device once; discrete actions as indices, into the update's
 * own buffer (the values are whole). */
Batch upload_batch(bdt_ppo *o, const float *obs, const float *actions, const float *logp, const float *adv,
                   const float *ret, const float *val, int n, const int64_t *perm)
{
    const bdt_policy_config &pc = o->p->cfg;
    const torch::Device &dev = o->p->dev;
    const bool discrete = pc.act_kind == BDT_DISCRETE;
    Batch b;
    b.t[0] = upload(obs, {n, pc.obs_dim}, dev); /* (n, obs) */
    b.t[1] = upload(actions, discrete ? torch::IntArrayRef{n} : torch::IntArrayRef{n, pc.act_dim},
                    dev); /* (n) or (n, act) */
    if (discrete) {
        if (!o->act_index.defined() || o->act_index.device() != dev)
            o->act_index = torch::empty({n}, torch::TensorOptions().dtype(torch::kLong).device(dev));
        o->act_index.resize_({n}).copy_(b.t[1]);
        b.t[1] = o->act_index;
    }
    b.t[2] = upload(logp, {n}, dev);
    b.t[3] = upload(adv, {n}, dev);
    b.t[4] = upload(ret, {n}, dev);
    b.t[5] = upload(val, {n}, dev);
    b.perm = torch::from_blob(const_cast<int64_t *>(perm), {(int64_t)o->cfg.epochs * n}, torch::kLong).to(dev);
    return b;
}

/* Epoch e's batch gathered once in shuffled order into o->e: minibatch b is then the
 * slice [b mb, (b + 1) mb), the same samples in the same order as gathering each
 * minibatch by its indices, in one pass instead of six per minibatch. */
void gather_epoch(bdt_ppo *o, const Batch &bt, int e, int n, int nmb, int mb)
{
    const torch::Device &dev = o->p->dev;
    torch::Tensor idx_e = bt.perm.slice(0, (int64_t)e * n, (int64_t)e * n + (int64_t)nmb * mb);
    for (int k = 0; k < 6; k++) { /* into the buffers kept across updates */
        if (!o->e[k].defined() || o->e[k].device() != dev || o->e[k].dtype() != bt.t[k].dtype())
            o->e[k] = torch::empty({0}, bt.t[k].options());
        o->e[k].resize_({0}); /* keeps its memory; index_select_out sizes it */
        at::index_select_out(o->e[k], bt.t[k], 0, idx_e);
    }
}

/* One minibatch's losses, and what its stats need. */
struct MbLoss {
    torch::Tensor logratio, ratio, pg_loss, v_loss, ent;
};

/* The actor's part of rows [start, start + mb) of the epoch's batch in o->e: the clipped
 * surrogate and the entropy, and the loss they add to the update's (pg - ent_coef ent). */
torch::Tensor actor_loss(bdt_ppo *o, int64_t start, int mb, double clip, MbLoss &l)
{
    const bdt_ppo_config &c = o->cfg;
    ActorCritic &net = *o->p->net;
    const bool discrete = o->p->cfg.act_kind == BDT_DISCRETE;
    torch::Tensor m_obs = o->e[0].slice(0, start, start + mb);
    torch::Tensor m_act = o->e[1].slice(0, start, start + mb);
    torch::Tensor m_logp = o->e[2].slice(0, start, start + mb);
    torch::Tensor m_adv = o->e[3].slice(0, start, start + mb);

    torch::Tensor head = net.actor->forward(m_obs); /* (mb, act) */
    torch::Tensor newlogp, entropy;                  /* (mb) */
    head_logp_entropy(net, discrete, head, m_act, newlogp, entropy); /* torch/heads.cpp */

    l.logratio = newlogp - m_logp;
    l.ratio = l.logratio.exp();
    if (c.norm_adv && mb > 1)
        m_adv = (m_adv - m_adv.mean()) / (m_adv.std() + 1e-8);

    torch::Tensor pg1 = -m_adv * l.ratio;
    torch::Tensor pg2 = -m_adv * torch::clamp(l.ratio, 1.0 - clip, 1.0 + clip);
    l.pg_loss = torch::max(pg1, pg2).mean();
    l.ent = entropy.mean();
    return l.pg_loss - c.ent_coef * l.ent;
}

/* The critic's part: the value loss, and what it adds to the update's loss (vf_coef v). */
torch::Tensor critic_loss(bdt_ppo *o, int64_t start, int mb, double clip, MbLoss &l)
{
    const bdt_ppo_config &c = o->cfg;
    ActorCritic &net = *o->p->net;
    torch::Tensor m_obs = o->e[0].slice(0, start, start + mb);
    torch::Tensor m_ret = o->e[4].slice(0, start, start + mb);
    torch::Tensor m_val = o->e[5].slice(0, start, start + mb);
    torch::Tensor newvalue = net.critic->forward(m_obs).view({-1}); /* (mb) */
    if (c.clip_vloss) {
        torch::Tensor unclipped = (newvalue - m_ret).pow(2);
        torch::Tensor vclip = m_val + torch::clamp(newvalue - m_val, -clip, clip);
        torch::Tensor clipped = (vclip - m_ret).pow(2);
        l.v_loss = 0.5 * torch::max(unclipped, clipped).mean();
    } else {
        l.v_loss = 0.5 * (newvalue - m_ret).pow(2).mean();
    }
    return c.vf_coef * l.v_loss;
}

/* Rows [start, start + mb)'s losses, and their gradients in the parameters' grads: the
 * loss pg - ent_coef ent + vf_coef v, whose actor and critic terms touch disjoint
 * parameters. With a helper (bdt_ppo_set_split) the critic's forward and backward pass
 * run on it beside the actor's: each parameter's gradient is then the same sum, in the
 * same order, as one backward pass of the whole loss gives it (its terms' seeds are 1 and
 * vf_coef either way), so the update does not change. */
MbLoss minibatch_grads(bdt_ppo *o, int64_t start, int mb, double clip)
{
    grads_to_none(o->p->params);
    MbLoss l;
    if (helper_ready(o->helper, o->split, o->p->dev)) {
        o->helper->beside([&] { critic_loss(o, start, mb, clip, l).backward(); },
                          [&] { actor_loss(o, start, mb, clip, l).backward(); });
        return l;
    }
    torch::Tensor la = actor_loss(o, start, mb, clip, l);
    torch::Tensor lc = critic_loss(o, start, mb, clip, l);
    (la + lc).backward();
    return l;
}

/* One optimiser step on the gradients minibatch_grads left: the gradient hook
 * (bdt_ppo_set_grad_hook), the global gradient-norm clip, Adam's step. Returns the
 * hook's error, the step not taken. */
int step_on(bdt_ppo *o)
{
    if (o->grad_hook) {
        int hrc = run_grad_hook(o);
        if (hrc != BD_OK)
            return hrc;
    }
    {
        torch::NoGradGuard ng;
        if (o->cfg.max_grad_norm > 0.0f) {
            /* clip_grad_norm_ without the host sync of libtorch's version */
            std::vector<torch::Tensor> norms;
            for (const auto &t : o->p->params)
                if (t.grad().defined())
                    norms.push_back(t.grad().norm(2));
            if (!norms.empty()) {
                torch::Tensor total = torch::stack(norms).norm(2);
                torch::Tensor coef = torch::clamp_max((double)o->cfg.max_grad_norm / (total + 1e-6), 1.0);
                for (auto &t : o->p->params)
                    if (t.grad().defined())
                        t.mutable_grad().mul_(coef);
            }
        }
    }
    o->opt->step();
    return BD_OK;
}

/* The last epoch's sums of the minibatch stats, 0-d on the device. */
struct StatSums {
    torch::Tensor pg, v, ent, kl, cf;
};

/* Adds minibatch b's losses, approximate KL and clip fraction to s (b == 0 starts it). */
void add_stats(StatSums &s, const MbLoss &l, int b, double clip)
{
    torch::NoGradGuard ng;
    torch::Tensor kl = ((l.ratio - 1.0) - l.logratio).mean();
    torch::Tensor cf = ((l.ratio - 1.0).abs() > clip).to(torch::kFloat32).mean();
    if (b == 0) {
        s.pg = l.pg_loss.detach().clone();
        s.v = l.v_loss.detach().clone();
        s.ent = l.ent.detach().clone();
        s.kl = kl;
        s.cf = cf;
    } else {
        s.pg += l.pg_loss.detach();
        s.v += l.v_loss.detach();
        s.ent += l.ent.detach();
        s.kl += kl;
        s.cf += cf;
    }
}

/* The means over nmb minibatches of the sums in s, to the host in one copy. */
void write_stats(const StatSums &s, int nmb, bdt_ppo_stats *stats)
{
    torch::NoGradGuard ng;
    float h[5];
    download(torch::stack({s.pg, s.v, s.ent, s.kl, s.cf}) / (double)nmb, h, 5);
    stats->policy_loss = h[0];
    stats->value_loss = h[1];
    stats->entropy = h[2];
    stats->approx_kl = h[3];
    stats->clip_frac = h[4];
}

} // namespace

extern "C" int bdt_ppo_update(bdt_ppo *o, const float *obs, const float *actions, const float *logp,
                              const float *adv, const float *ret, const float *val, int n,
                              const int64_t *perm, bdt_ppo_stats *stats)
{
    FtzGuard ftz;
    if (stats)
        std::memset(stats, 0, sizeof *stats);
    if (!o || !obs || !actions || !logp || !adv || !ret || !val || !perm)
        return bd_seterr(BD_EINVAL, "bdt_ppo_update: NULL argument");
    const bdt_ppo_config &c = o->cfg;
    int nmb = 0, mb = 0;
    int rc = check_update(o, actions, n, perm, &nmb, &mb);
    if (rc != BD_OK)
        return rc;
    if (c.epochs == 0)
        return BD_OK;
    try {
        Batch bt = upload_batch(o, obs, actions, logp, adv, ret, val, n, perm);
        const double clip = c.clip_coef;
        Snapshot snap = take_snapshot(o->p->params, *o->opt); /* for a cancel, and for bdt_ppo_undo */
        o->undo_params.clear();
        StatSums sums;
        for (int e = 0; e < c.epochs; e++) {
            gather_epoch(o, bt, e, n, nmb, mb);
            for (int b = 0; b < nmb; b++) {
                if (o->cancel && *o->cancel) {
                    restore_snapshot(o->p->params, *o->opt, snap);
                    return bd_seterr(BD_EINTR, "bdt_ppo_update: cancelled after %lld of %lld minibatches; "
                                     "the last whole update is kept", (long long)e * nmb + b,
                                     (long long)c.epochs * nmb);
                }
                MbLoss l = minibatch_grads(o, (int64_t)b * mb, mb, clip);
                int hrc = step_on(o);
                if (hrc != BD_OK) {
                    restore_snapshot(o->p->params, *o->opt, snap);
                    return hrc;
                }
                if (e + 1 == c.epochs)
                    add_stats(sums, l, b, clip);
            }
        }
        if (stats)
            write_stats(sums, nmb, stats);
        o->undo_params = std::move(snap.params);
        o->undo_opt = std::move(snap.opt);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_update");
    }
}
