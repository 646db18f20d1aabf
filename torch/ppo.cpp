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

/* The hook of bdt_ppo_set_grad_hook: every gradient (zeros where backward left none)
 * copied into one host buffer, handed to the hook, and copied back. */
int run_grad_hook(bdt_ppo *o)
{
    torch::NoGradGuard ng;
    size_t n = 0;
    for (const auto &t : o->p->params)
        n += (size_t)t.numel();
    o->grad_buf.resize(n);
    size_t at = 0;
    for (const auto &t : o->p->params) {
        torch::Tensor g = t.grad().defined() ? t.grad().detach().to(torch::kCPU).contiguous()
                                             : torch::zeros({t.numel()}, torch::kFloat32);
        std::memcpy(o->grad_buf.data() + at, g.data_ptr<float>(), sizeof(float) * (size_t)t.numel());
        at += (size_t)t.numel();
    }
    int rc = o->grad_hook(o->grad_ctx, o->grad_buf.data(), n);
    if (rc != BD_OK)
        return rc;
    at = 0;
    for (auto &t : o->p->params) {
        torch::Tensor g = torch::from_blob(o->grad_buf.data() + at, t.sizes(), torch::kFloat32).to(t.device());
        if (t.grad().defined())
            t.mutable_grad().copy_(g);
        else
            t.mutable_grad() = g.clone();
        at += (size_t)t.numel();
    }
    return BD_OK;
}

/* What an update changes, kept so that a cancelled update can be undone. */
struct Snapshot {
    std::vector<torch::Tensor> params;
    std::string opt;
};

Snapshot take_snapshot(bdt_ppo *o)
{
    torch::NoGradGuard ng;
    Snapshot s;
    for (const auto &t : o->p->params)
        s.params.push_back(t.detach().clone());
    torch::serialize::OutputArchive a;
    o->opt->save(a);
    std::ostringstream os;
    a.save_to(os);
    s.opt = os.str();
    return s;
}

void restore_snapshot(bdt_ppo *o, const Snapshot &s)
{
    torch::NoGradGuard ng;
    for (size_t i = 0; i < s.params.size(); i++)
        o->p->params[i].copy_(s.params[i]);
    torch::serialize::InputArchive a;
    std::istringstream is(s.opt);
    a.load_from(is);
    o->opt->load(a);
}

} // namespace

extern "C" int bdt_ppo_undo(bdt_ppo *o)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_ppo_undo: o is NULL");
    if (o->undo_params.empty())
        return bd_seterr(BD_ESTATE, "bdt_ppo_undo: no update to undo");
    try {
        restore_snapshot(o, Snapshot{std::move(o->undo_params), std::move(o->undo_opt)});
        o->undo_params.clear();
        o->undo_opt.clear();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_undo");
    }
}

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
    const bdt_policy_config &pc = o->p->cfg;
    if (n < 1)
        return bd_seterr(BD_EINVAL, "bdt_ppo_update: n=%d must be >= 1", n);
    const int nmb = (int)bdt_ppo_minibatch_count(&c, n);
    const int mb = n / nmb;
    if (mb < 1)
        return bd_seterr(BD_EINVAL, "bdt_ppo_update: n=%d is smaller than minibatches=%d", n, nmb);
    /* Out-of-range indices would be a device-side assert on CUDA: check on the host. */
    for (int64_t i = 0; i < (int64_t)c.epochs * n; i++)
        if (perm[i] < 0 || perm[i] >= n)
            return bd_seterr(BD_EINVAL, "bdt_ppo_update: perm[%lld]=%lld is outside [0, %d)",
                             (long long)i, (long long)perm[i], n);
    const bool discrete = pc.act_kind == BDT_DISCRETE;
    if (discrete)
        for (int i = 0; i < n; i++)
            if (!(actions[i] >= 0.0f && actions[i] < (float)pc.act_dim) ||
                actions[i] != std::floor(actions[i]))
                return bd_seterr(BD_EINVAL, "bdt_ppo_update: actions[%d]=%g is not an action in [0, %d)",
                                 i, (double)actions[i], pc.act_dim);
    if (c.epochs == 0)
        return BD_OK;
    try {
        const torch::Device &dev = o->p->dev;
        ActorCritic &net = *o->p->net;
        /* The whole batch goes to the device once. */
        torch::Tensor b_obs = upload(obs, {n, pc.obs_dim}, dev);          /* (n, obs) */
        torch::Tensor b_act = upload(actions, discrete ? torch::IntArrayRef{n} : torch::IntArrayRef{n, pc.act_dim},
                                     dev); /* (n) or (n, act) */
        if (discrete) { /* as indices, into the update's own buffer (the values are whole) */
            if (!o->act_index.defined() || o->act_index.device() != dev)
                o->act_index = torch::empty({n}, torch::TensorOptions().dtype(torch::kLong).device(dev));
            o->act_index.resize_({n}).copy_(b_act);
            b_act = o->act_index;
        }
        torch::Tensor b_logp = upload(logp, {n}, dev);
        torch::Tensor b_adv = upload(adv, {n}, dev);
        torch::Tensor b_ret = upload(ret, {n}, dev);
        torch::Tensor b_val = upload(val, {n}, dev);
        torch::Tensor b_perm =
            torch::from_blob(const_cast<int64_t *>(perm), {(int64_t)c.epochs * n}, torch::kLong).to(dev);

        const double clip = c.clip_coef;
        Snapshot snap = take_snapshot(o); /* for a cancel, and for bdt_ppo_undo */
        o->undo_params.clear();
        torch::Tensor s_pg, s_v, s_ent, s_kl, s_cf; /* last epoch's sums, 0-d on the device */
        for (int e = 0; e < c.epochs; e++) {
            const bool last = e + 1 == c.epochs;
            /* The epoch's batch gathered once in shuffled order: minibatch b is then the
             * slice [b mb, (b + 1) mb), the same samples in the same order as gathering
             * each minibatch by its indices, in one pass instead of six per minibatch. */
            torch::Tensor idx_e = b_perm.slice(0, (int64_t)e * n, (int64_t)e * n + (int64_t)nmb * mb);
            const torch::Tensor *src[6] = {&b_obs, &b_act, &b_logp, &b_adv, &b_ret, &b_val};
            for (int k = 0; k < 6; k++) { /* into the buffers kept across updates */
                if (!o->e[k].defined() || o->e[k].device() != dev || o->e[k].dtype() != src[k]->dtype())
                    o->e[k] = torch::empty({0}, src[k]->options());
                o->e[k].resize_({0}); /* keeps its memory; index_select_out sizes it */
                at::index_select_out(o->e[k], *src[k], 0, idx_e);
            }
            const torch::Tensor &e_obs = o->e[0], &e_act = o->e[1], &e_logp = o->e[2], &e_adv = o->e[3],
                                &e_ret = o->e[4], &e_val = o->e[5];
            for (int b = 0; b < nmb; b++) {
                if (o->cancel && *o->cancel) {
                    restore_snapshot(o, snap);
                    return bd_seterr(BD_EINTR, "bdt_ppo_update: cancelled after %lld of %lld minibatches; "
                                     "the last whole update is kept", (long long)e * nmb + b,
                                     (long long)c.epochs * nmb);
                }
                const int64_t start = (int64_t)b * mb; /* (mb) rows of the epoch's batch */
                torch::Tensor m_obs = e_obs.slice(0, start, start + mb);
                torch::Tensor m_act = e_act.slice(0, start, start + mb);
                torch::Tensor m_logp = e_logp.slice(0, start, start + mb);
                torch::Tensor m_adv = e_adv.slice(0, start, start + mb);
                torch::Tensor m_ret = e_ret.slice(0, start, start + mb);
                torch::Tensor m_val = e_val.slice(0, start, start + mb);

                torch::Tensor head = net.actor->forward(m_obs); /* (mb, act) */
                torch::Tensor newlogp, entropy;                  /* (mb) */
                head_logp_entropy(net, discrete, head, m_act, newlogp, entropy); /* torch/heads.cpp */
                torch::Tensor newvalue = net.critic->forward(m_obs).view({-1}); /* (mb) */

                torch::Tensor logratio = newlogp - m_logp;
                torch::Tensor ratio = logratio.exp();
                if (c.norm_adv && mb > 1)
                    m_adv = (m_adv - m_adv.mean()) / (m_adv.std() + 1e-8);

                torch::Tensor pg1 = -m_adv * ratio;
                torch::Tensor pg2 = -m_adv * torch::clamp(ratio, 1.0 - clip, 1.0 + clip);
                torch::Tensor pg_loss = torch::max(pg1, pg2).mean();

                torch::Tensor v_loss;
                if (c.clip_vloss) {
                    torch::Tensor unclipped = (newvalue - m_ret).pow(2);
                    torch::Tensor vclip = m_val + torch::clamp(newvalue - m_val, -clip, clip);
                    torch::Tensor clipped = (vclip - m_ret).pow(2);
                    v_loss = 0.5 * torch::max(unclipped, clipped).mean();
                } else {
                    v_loss = 0.5 * (newvalue - m_ret).pow(2).mean();
                }
                torch::Tensor ent = entropy.mean();
                torch::Tensor loss = pg_loss - c.ent_coef * ent + c.vf_coef * v_loss;

                /* zero_grad(set_to_none): backward writes the gradients instead of adding
                 * them to zeros (the same values; a pass over every gradient saved) */
                for (auto &t : o->p->params)
                    t.mutable_grad() = torch::Tensor();
                loss.backward();
                if (o->grad_hook) {
                    int hrc = run_grad_hook(o);
                    if (hrc != BD_OK) {
                        restore_snapshot(o, snap);
                        return hrc;
                    }
                }
                {
                    torch::NoGradGuard ng;
                    if (c.max_grad_norm > 0.0f) {
                        /* clip_grad_norm_ without the host sync of libtorch's version */
                        std::vector<torch::Tensor> norms;
                        for (const auto &t : o->p->params)
                            if (t.grad().defined())
                                norms.push_back(t.grad().norm(2));
                        if (!norms.empty()) {
                            torch::Tensor total = torch::stack(norms).norm(2);
                            torch::Tensor coef =
                                torch::clamp_max((double)c.max_grad_norm / (total + 1e-6), 1.0);
                            for (auto &t : o->p->params)
                                if (t.grad().defined())
                                    t.mutable_grad().mul_(coef);
                        }
                    }
                }
                o->opt->step();

                if (last) {
                    torch::NoGradGuard ng;
                    torch::Tensor kl = ((ratio - 1.0) - logratio).mean();
                    torch::Tensor cf = ((ratio - 1.0).abs() > clip).to(torch::kFloat32).mean();
                    if (b == 0) {
                        s_pg = pg_loss.detach().clone();
                        s_v = v_loss.detach().clone();
                        s_ent = ent.detach().clone();
                        s_kl = kl;
                        s_cf = cf;
                    } else {
                        s_pg += pg_loss.detach();
                        s_v += v_loss.detach();
                        s_ent += ent.detach();
                        s_kl += kl;
                        s_cf += cf;
                    }
                }
            }
        }
        if (stats) {
            torch::NoGradGuard ng;
            float h[5];
            download(torch::stack({s_pg, s_v, s_ent, s_kl, s_cf}) / (double)nmb, h, 5);
            stats->policy_loss = h[0];
            stats->value_loss = h[1];
            stats->entropy = h[2];
            stats->approx_kl = h[3];
            stats->clip_frac = h[4];
        }
        o->undo_params = std::move(snap.params);
        o->undo_opt = std::move(snap.opt);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_update");
    }
}
