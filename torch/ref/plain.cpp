/* plain.cpp: a plain libtorch PPO update (see plain.h). */
#include "torch/ref/plain.h"

#include <torch/torch.h>

#include <limits>
#include <memory>
#include <vector>

namespace {

torch::nn::Sequential trunk(int in, int hidden, int layers, int out)
{
    torch::nn::Sequential s;
    for (int i = 0; i < layers; i++) {
        s->push_back(torch::nn::Linear(in, hidden));
        s->push_back(torch::nn::Tanh());
        in = hidden;
    }
    s->push_back(torch::nn::Linear(in, out));
    return s;
}

} // namespace

struct bdt_ref {
    int S;
    torch::nn::Sequential actor, critic;
    std::vector<torch::Tensor> params;
    std::unique_ptr<torch::optim::Adam> opt;
};

extern "C" void bdt_ref_setup(int threads)
{
    try {
        if (threads > 0)
            torch::set_num_threads(threads);
        at::globalContext().setFlushDenormal(true);
    } catch (...) {
    }
}

extern "C" int bdt_ref_create(int S, int A, int hidden, int layers, float lr, bdt_ref **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bdt_ref_create: out is NULL");
    *out = nullptr;
    if (S < 1 || A < 2 || hidden < 1 || layers < 1)
        return bd_seterr(BD_EINVAL, "bdt_ref_create: need S >= 1, A >= 2, hidden >= 1, layers >= 1");
    try {
        std::unique_ptr<bdt_ref> r(new bdt_ref);
        r->S = S;
        r->actor = trunk(S, hidden, layers, A);
        r->critic = trunk(S, hidden, layers, 1);
        for (auto &p : r->critic->parameters())
            r->params.push_back(p);
        for (auto &p : r->actor->parameters())
            r->params.push_back(p);
        r->opt.reset(new torch::optim::Adam(r->params, torch::optim::AdamOptions(lr).eps(1e-5)));
        *out = r.release();
        return BD_OK;
    } catch (const std::exception &e) {
        return bd_seterr(BD_ETORCH, "bdt_ref_create: %s", e.what());
    }
}

extern "C" void bdt_ref_destroy(bdt_ref *r)
{
    delete r;
}

extern "C" int bdt_ref_update(bdt_ref *r, const float *obs, const float *actions, const float *logp,
                              const float *adv, const float *ret, int n, const int64_t *perm, int epochs, int mb,
                              const bdt_ppo_config *c)
{
    if (!r || !obs || !actions || !logp || !adv || !ret || !perm || !c || n < 1 || mb < 1 || mb > n)
        return bd_seterr(BD_EINVAL, "bdt_ref_update: bad argument");
    try {
        auto f = torch::kFloat32;
        torch::Tensor b_obs = torch::from_blob((void *)obs, {n, r->S}, f);
        torch::Tensor b_act = torch::from_blob((void *)actions, {n}, f).to(torch::kLong);
        torch::Tensor b_logp = torch::from_blob((void *)logp, {n}, f);
        torch::Tensor b_adv = torch::from_blob((void *)adv, {n}, f);
        torch::Tensor b_ret = torch::from_blob((void *)ret, {n}, f);
        const int nmb = n / mb;
        const double clip = c->clip_coef;
        for (int e = 0; e < epochs; e++) {
            torch::Tensor idx = torch::from_blob((void *)(perm + (size_t)e * n), {n}, torch::kLong);
            torch::Tensor s_obs = b_obs.index_select(0, idx), s_act = b_act.index_select(0, idx),
                          s_logp = b_logp.index_select(0, idx), s_adv = b_adv.index_select(0, idx),
                          s_ret = b_ret.index_select(0, idx);
            for (int b = 0; b < nmb; b++) {
                int64_t lo = (int64_t)b * mb, hi = lo + mb;
                torch::Tensor m_obs = s_obs.slice(0, lo, hi), m_adv = s_adv.slice(0, lo, hi);
                torch::Tensor lp = torch::log_softmax(r->actor->forward(m_obs), 1);
                torch::Tensor newlogp = lp.gather(1, s_act.slice(0, lo, hi).unsqueeze(1)).squeeze(1);
                torch::Tensor entropy =
                    -(lp.exp() * lp.clamp_min(std::numeric_limits<float>::lowest())).sum(1);
                torch::Tensor newvalue = r->critic->forward(m_obs).view({-1});
                torch::Tensor logratio = newlogp - s_logp.slice(0, lo, hi);
                torch::Tensor ratio = logratio.exp();
                m_adv = (m_adv - m_adv.mean()) / (m_adv.std() + 1e-8);
                torch::Tensor pg = torch::max(-m_adv * ratio, -m_adv * torch::clamp(ratio, 1.0 - clip, 1.0 + clip))
                                       .mean();
                torch::Tensor v_loss = 0.5 * (newvalue - s_ret.slice(0, lo, hi)).pow(2).mean();
                torch::Tensor loss = pg - c->ent_coef * entropy.mean() + c->vf_coef * v_loss;
                for (auto &p : r->params)
                    p.mutable_grad() = torch::Tensor(); /* zero_grad(set_to_none) */
                loss.backward();
                if (c->max_grad_norm > 0)
                    torch::nn::utils::clip_grad_norm_(r->params, c->max_grad_norm);
                r->opt->step();
            }
        }
        return BD_OK;
    } catch (const std::exception &e) {
        return bd_seterr(BD_ETORCH, "bdt_ref_update: %s", e.what());
    }
}
