/* sac.cpp: soft actor-critic behind bdt_sac_* (torch/sac_algo.h).
 *
 * One update (bdt_sac_update) is CleanRL's sac_continuous_action.py step with the actor
 * and alpha updated every step:
 *   critics  y = r + gamma (1 - done) (min(Q1', Q2')(s', a') - alpha log pi(a'|s')),
 *            a' ~ pi(.|s'); loss = mse(Q1(s, a), y) + mse(Q2(s, a), y)
 *   actor    loss = mean(alpha log pi(a~|s) - min(Q1, Q2)(s, a~)), a~ ~ pi(.|s) reparameterised
 *   alpha    loss = -mean(exp(log alpha) (log pi(a~|s) + target_entropy)) (autotune)
 *   targets  Q' <- tau Q + (1 - tau) Q'
 * The critics are two MLPs of (obs, act) -> 1 of the actor's hidden x layers, ReLU,
 * orthogonal init (gain sqrt(2), head 1) from a generator seeded with the actor's seed + 1.
 *
 * Checkpoint (checkpoint.cpp's container, format "bodhi-sac-1", arch obs_dim, act_dim,
 * hidden, layers): "actor", "critics", "targets" (tensors in flat order), "log_alpha",
 * "opt_actor", "opt_critic", "opt_alpha" (each Adam's first and second moments, flat, and
 * its step count).
 */
#include "torch/shim.hpp"

using namespace bd_shim;

namespace {

/* The twin critics as one stacked MLP: layer l holds both critics' weights (2, in, out)
 * and biases (2, 1, out), and a forward is one batched matrix product per layer for both
 * (half the operations of two networks, which on networks this small is most of the
 * time). Critic k's layer l is the Linear(in, out) whose weight is w[l][k] transposed. */
struct Critics : torch::nn::Module {
    std::vector<torch::Tensor> w, b;
    Critics(int in, int hidden, int layers)
    {
        for (int l = 0; l <= layers; l++) {
            const int out = l == layers ? 1 : hidden;
            w.push_back(register_parameter("w" + std::to_string(l), torch::zeros({2, in, out})));
            b.push_back(register_parameter("b" + std::to_string(l), torch::zeros({2, 1, out})));
            in = out;
        }
    }
    /* orthogonal weights (gain sqrt(2); the last layer 1), critic by critic, biases 0 */
    void init(at::Generator &gen)
    {
        torch::NoGradGuard ng;
        for (int k = 0; k < 2; k++)
            for (size_t l = 0; l < w.size(); l++) {
                torch::Tensor t = torch::empty({w[l].size(2), w[l].size(1)}); /* (out, in) as Linear's */
                orthogonal_(t, l + 1 == w.size() ? 1.0 : std::sqrt(2.0), gen);
                w[l][k].copy_(t.t());
            }
    }
    /* (2, n): both critics' values of (obs, act) */
    torch::Tensor forward(const torch::Tensor &obs, const torch::Tensor &act)
    {
        torch::Tensor x = torch::cat({obs, act}, 1);
        torch::Tensor h = x.unsqueeze(0).expand({2, x.size(0), x.size(1)});
        for (size_t l = 0; l < w.size(); l++) {
            h = torch::baddbmm(b[l], h, w[l]);
            if (l + 1 < w.size())
                h = torch::relu(h);
        }
        return h.squeeze(2);
    }
};

/* bdt_sac_mark's state: each optimiser's (actor, critics, temperature) and the targets'. */
struct SacMark {
    FlatAdam::Kept actor, critic, alpha;
    torch::Tensor targets;
};

} // namespace

struct bdt_sac {
    bdt_policy *actor = nullptr;
    bdt_sac_config cfg;
    std::shared_ptr<Critics> q, qt;
    std::vector<torch::Tensor> qp, qtp; /* their parameters, in order */
    torch::Tensor log_alpha, scale, bias;
    FlatAdam opt_actor, opt_critic, opt_alpha;
    torch::Tensor target_data; /* the targets' parameters, flat (their tensors are views of it) */
    bdt_grad_hook grad_hook = nullptr; /* bdt_sac_set_grad_hook */
    void *grad_ctx = nullptr;
    std::vector<float> grad_buf;
    std::unique_ptr<SacMark> mark; /* bdt_sac_mark */
};

namespace {

int check_sac_config(const bdt_policy *p, const bdt_sac_config *c)
{
    if (p->cfg.act_kind != BDT_SQUASHED)
        return bd_seterr(BD_EINVAL, "bdt_sac_create: the actor is %s, not a squashed Gaussian",
                         kind_name(p->cfg.act_kind));
    if (p->cfg.act_dim > BDT_SAC_MAX_ACT)
        return bd_seterr(BD_EINVAL, "bdt_sac_create: %d action dimensions, at most %d", p->cfg.act_dim,
                         BDT_SAC_MAX_ACT);
    for (int d = 0; d < p->cfg.act_dim; d++)
        if (!(c->low[d] < c->high[d]) || !std::isfinite(c->low[d]) || !std::isfinite(c->high[d]))
            return bd_seterr(BD_EINVAL, "bdt_sac_create: action %d has bounds [%g, %g]", d, c->low[d], c->high[d]);
    if (!(c->lr_actor >= 0) || !(c->lr_critic >= 0) || !(c->lr_alpha >= 0) || !(c->alpha > 0) ||
        !(c->gamma >= 0 && c->gamma <= 1) || !(c->tau >= 0 && c->tau <= 1))
        return bd_seterr(BD_EINVAL, "bdt_sac_create: a learning rate, alpha, gamma or tau out of range");
    return BD_OK;
}

/* scale and bias (1, A) on dev from bounds. */
void bounds(const bdt_sac_config &c, int A, const torch::Device &dev, torch::Tensor &scale, torch::Tensor &bias)
{
    std::vector<float> s((size_t)A), b((size_t)A);
    for (int d = 0; d < A; d++) {
        s[(size_t)d] = 0.5f * (c.high[d] - c.low[d]);
        b[(size_t)d] = 0.5f * (c.high[d] + c.low[d]);
    }
    scale = torch::tensor(s).view({1, A}).to(dev);
    bias = torch::tensor(b).view({1, A}).to(dev);
}

int flat_params(std::vector<torch::Tensor> &ps, float *dst, const float *src, size_t n, size_t count,
                const torch::Device &dev, const char *where)
{
    if (n != count)
        return bd_seterr(BD_EINVAL, "%s: n=%zu but there are %zu parameters", where, n, count);
    torch::NoGradGuard ng;
    if (dst) {
        std::vector<torch::Tensor> flat;
        for (const auto &t : ps)
            flat.push_back(t.detach().reshape({-1}));
        download(torch::cat(flat), dst, n);
        return BD_OK;
    }
    torch::Tensor all = upload(src, {(int64_t)n}, dev);
    int64_t off = 0;
    for (auto &t : ps) {
        t.copy_(all.slice(0, off, off + t.numel()).view(t.sizes()));
        off += t.numel();
    }
    return BD_OK;
}

size_t count_of(const std::vector<torch::Tensor> &ps)
{
    size_t n = 0;
    for (const auto &t : ps)
        n += (size_t)t.numel();
    return n;
}

} // namespace

extern "C" int bdt_sac_create(bdt_policy *actor, const bdt_sac_config *cfg, bdt_sac **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bdt_sac_create: out is NULL");
    *out = nullptr;
    if (!actor || !cfg)
        return bd_seterr(BD_EINVAL, "bdt_sac_create: NULL argument");
    int rc = check_sac_config(actor, cfg);
    if (rc != BD_OK)
        return rc;
    try {
        std::unique_ptr<bdt_sac> s(new bdt_sac);
        const bdt_policy_config &pc = actor->cfg;
        s->actor = actor;
        s->cfg = *cfg;
        const int in = pc.obs_dim + pc.act_dim;
        s->q = std::make_shared<Critics>(in, pc.hidden, pc.layers);
        s->qt = std::make_shared<Critics>(in, pc.hidden, pc.layers);
        {
            torch::NoGradGuard ng;
            at::Generator gen = at::detail::createCPUGenerator(pc.seed + 1);
            s->q->init(gen);
        }
        s->q->to(actor->dev);
        s->qt->to(actor->dev);
        s->qp = s->q->parameters();
        s->qtp = s->qt->parameters();
        s->log_alpha = torch::full({1}, std::log(cfg->alpha), torch::TensorOptions().device(actor->dev))
                           .set_requires_grad(true);
        bounds(*cfg, pc.act_dim, actor->dev, s->scale, s->bias);
        s->opt_actor.init(actor->params, cfg->lr_actor);
        s->opt_critic.init(s->qp, cfg->lr_critic);
        s->opt_alpha.init({s->log_alpha}, cfg->lr_alpha);
        s->target_data = s->opt_critic.views_for(s->qtp); /* targets start as the critics */
        *out = s.release();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_create");
    }
}

extern "C" void bdt_sac_destroy(bdt_sac *s)
{
    try {
        delete s;
    } catch (...) {
    }
}

extern "C" int bdt_sac_set_rates(bdt_sac *s, const bdt_sac_config *cfg)
{
    if (!s || !cfg)
        return bd_seterr(BD_EINVAL, "bdt_sac_set_rates: NULL argument");
    if (!(cfg->lr_actor >= 0) || !(cfg->lr_critic >= 0) || !(cfg->lr_alpha >= 0) || !(cfg->alpha >= 0)
        || !std::isfinite(cfg->alpha) || !(cfg->tau >= 0 && cfg->tau <= 1) || !std::isfinite(cfg->target_entropy))
        return bd_seterr(BD_EINVAL, "bdt_sac_set_rates: a learning rate, alpha, tau or target_entropy out of range");
    try {
        s->opt_actor.lr = s->cfg.lr_actor = cfg->lr_actor;
        s->opt_critic.lr = s->cfg.lr_critic = cfg->lr_critic;
        s->opt_alpha.lr = s->cfg.lr_alpha = cfg->lr_alpha;
        s->cfg.tau = cfg->tau;
        s->cfg.target_entropy = cfg->target_entropy;
        if (cfg->alpha > 0) { /* alpha starts again from it (autotune learns on from there) */
            torch::NoGradGuard ng;
            s->log_alpha.fill_(std::log((double)cfg->alpha));
            s->cfg.alpha = cfg->alpha;
        }
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_set_rates");
    }
}

extern "C" float bdt_sac_alpha(const bdt_sac *s)
{
    try {
        return s ? std::exp(s->log_alpha.detach().to(torch::kCPU).item<float>()) : 0.0f;
    } catch (...) {
        return 0.0f;
    }
}

namespace {

/* The gradient hook over one optimiser's flat gradient (FlatAdam::run_hook). */
void sac_hook(bdt_sac *s, FlatAdam &a, const char *what)
{
    if (!s->grad_hook)
        return;
    const int rc = a.run_hook(s->grad_hook, s->grad_ctx, s->grad_buf);
    if (rc != BD_OK)
        throw std::runtime_error(std::string("the gradient hook of the ") + what + ": " + bd_lasterr());
}

} // namespace

extern "C" void bdt_sac_set_grad_hook(bdt_sac *s, bdt_grad_hook hook, void *ctx)
{
    if (s) {
        s->grad_hook = hook;
        s->grad_ctx = ctx;
    }
}

extern "C" int bdt_sac_update(bdt_sac *s, const float *obs, const float *act, const float *rew,
                              const float *next_obs, const float *done, int n, uint64_t seed, uint64_t key,
                              bdt_sac_stats *stats)
{
    if (!s || !obs || !act || !rew || !next_obs || !done)
        return bd_seterr(BD_EINVAL, "bdt_sac_update: NULL argument");
    if (n < 1)
        return bd_seterr(BD_EINVAL, "bdt_sac_update: n=%d < 1", n);
    FtzGuard ftz;
    try {
        const torch::Device dev = s->actor->dev;
        const int64_t S = s->actor->cfg.obs_dim, A = s->actor->cfg.act_dim;
        auto &net = s->actor->net->actor;
        torch::Tensor o = upload(obs, {n, S}, dev), a = upload(act, {n, A}, dev);
        torch::Tensor r = upload(rew, {n}, dev), o2 = upload(next_obs, {n, S}, dev);
        torch::Tensor d = upload(done, {n}, dev);
        /* the actor's draws: a function of (seed, key) alone, on the CPU whatever the device */
        at::Generator gen = at::detail::createCPUGenerator(seed ^ (key * 0x9e3779b97f4a7c15ull));
        const auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
        torch::Tensor eps2 = at::randn({n, A}, gen, f32).to(dev), eps = at::randn({n, A}, gen, f32).to(dev);
        torch::Tensor alpha = s->log_alpha.detach().exp();

        torch::Tensor y;
        {
            torch::NoGradGuard ng;
            torch::Tensor a2, lp2;
            squashed_sample(net->forward(o2), eps2, s->scale, s->bias, a2, lp2);
            torch::Tensor qn = std::get<0>(s->qt->forward(o2, a2).min(0)) - alpha * lp2;
            y = r + s->cfg.gamma * (1.0 - d) * qn;
        }
        torch::Tensor q = s->q->forward(o, a); /* (2, n) */
        torch::Tensor q_loss = (q - y.unsqueeze(0)).square().mean(1).sum();
        s->opt_critic.zero_grad();
        q_loss.backward();
        sac_hook(s, s->opt_critic, "critics");
        s->opt_critic.step();

        torch::Tensor pa, lp;
        squashed_sample(net->forward(o), eps, s->scale, s->bias, pa, lp);
        torch::Tensor qpi = std::get<0>(s->q->forward(o, pa).min(0));
        torch::Tensor actor_loss = (alpha * lp - qpi).mean();
        s->opt_actor.zero_grad();
        actor_loss.backward();
        sac_hook(s, s->opt_actor, "actor");
        s->opt_actor.step();

        torch::Tensor alpha_loss;
        if (s->cfg.autotune) {
            alpha_loss = -(s->log_alpha.exp() * (lp.detach() + s->cfg.target_entropy)).mean();
            s->opt_alpha.zero_grad();
            alpha_loss.backward();
            sac_hook(s, s->opt_alpha, "temperature");
            s->opt_alpha.step();
        }
        {
            torch::NoGradGuard ng;
            s->target_data.mul_(1.0 - s->cfg.tau).add_(s->opt_critic.data, s->cfg.tau);
        }
        if (stats) {
            stats->q_loss = 0.5f * q_loss.item<float>();
            stats->actor_loss = actor_loss.item<float>();
            stats->alpha = alpha.item<float>();
            stats->alpha_loss = alpha_loss.defined() ? alpha_loss.item<float>() : 0.0f;
            stats->q_mean = q[0].detach().mean().item<float>();
            stats->logp_mean = lp.detach().mean().item<float>();
        }
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_update");
    }
}

extern "C" int bdt_sac_mark(bdt_sac *s)
{
    if (!s)
        return bd_seterr(BD_EINVAL, "bdt_sac_mark: no handle");
    try {
        torch::NoGradGuard ng;
        s->mark.reset(new SacMark{s->opt_actor.keep(), s->opt_critic.keep(), s->opt_alpha.keep(),
                                  s->target_data.clone()});
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_mark");
    }
}

extern "C" int bdt_sac_restore(bdt_sac *s)
{
    if (!s)
        return bd_seterr(BD_EINVAL, "bdt_sac_restore: no handle");
    if (!s->mark)
        return bd_seterr(BD_ESTATE, "bdt_sac_restore: no state kept (bdt_sac_mark)");
    try {
        torch::NoGradGuard ng;
        s->opt_actor.put_back(s->mark->actor);
        s->opt_critic.put_back(s->mark->critic);
        s->opt_alpha.put_back(s->mark->alpha);
        s->target_data.copy_(s->mark->targets);
        s->mark.reset();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_restore");
    }
}

extern "C" size_t bdt_sac_param_count(const bdt_sac *s, int which)
{
    return !s ? 0 : count_of(which == BDT_SAC_TARGETS ? s->qtp : s->qp);
}

extern "C" int bdt_sac_get_params(bdt_sac *s, int which, float *dst, size_t n)
{
    if (!s || !dst || (which != BDT_SAC_CRITICS && which != BDT_SAC_TARGETS))
        return bd_seterr(BD_EINVAL, "bdt_sac_get_params: bad argument");
    auto &ps = which == BDT_SAC_TARGETS ? s->qtp : s->qp;
    try {
        return flat_params(ps, dst, nullptr, n, count_of(ps), s->actor->dev, "bdt_sac_get_params");
    } catch (...) {
        return catch_torch("bdt_sac_get_params");
    }
}

extern "C" int bdt_sac_set_params(bdt_sac *s, int which, const float *src, size_t n)
{
    if (!s || !src || (which != BDT_SAC_CRITICS && which != BDT_SAC_TARGETS))
        return bd_seterr(BD_EINVAL, "bdt_sac_set_params: bad argument");
    auto &ps = which == BDT_SAC_TARGETS ? s->qtp : s->qp;
    try {
        return flat_params(ps, nullptr, src, n, count_of(ps), s->actor->dev, "bdt_sac_set_params");
    } catch (...) {
        return catch_torch("bdt_sac_set_params");
    }
}

extern "C" int bdt_sac_act(bdt_policy *p, const float *obs, int n, const float *noise, const float *low,
                           const float *high, float *act, float *logp)
{
    if (!p || !obs || !low || !high || !act)
        return bd_seterr(BD_EINVAL, "bdt_sac_act: NULL argument");
    if (p->cfg.act_kind != BDT_SQUASHED)
        return bd_seterr(BD_EINVAL, "bdt_sac_act: the policy is %s, not a squashed Gaussian",
                         kind_name(p->cfg.act_kind));
    if (n < 1)
        return n == 0 ? BD_OK : bd_seterr(BD_EINVAL, "bdt_sac_act: n=%d < 0", n);
    FtzGuard ftz;
    try {
        torch::NoGradGuard ng;
        const int A = p->cfg.act_dim;
        bdt_sac_config c{};
        for (int d = 0; d < A && d < BDT_SAC_MAX_ACT; d++) {
            c.low[d] = low[d];
            c.high[d] = high[d];
        }
        torch::Tensor scale, bias, a, lp, eps;
        bounds(c, A, p->dev, scale, bias);
        if (noise)
            eps = upload(noise, {n, A}, p->dev);
        squashed_sample(p->net->actor->forward(upload(obs, {n, p->cfg.obs_dim}, p->dev)), eps, scale, bias, a, lp);
        download(a, act, (size_t)n * (size_t)A);
        if (logp)
            download(lp, logp, (size_t)n);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_act");
    }
}

extern "C" int bdt_sac_save(bdt_sac *s, const char *path)
{
    if (!s || !path)
        return bd_seterr(BD_EINVAL, "bdt_sac_save: NULL argument");
    const bdt_policy_config &c = s->actor->cfg;
    try {
        torch::NoGradGuard ng;
        torch::serialize::OutputArchive inner;
        write_tensors(inner, "actor", s->actor->params);
        write_tensors(inner, "critics", s->qp);
        write_tensors(inner, "targets", s->qtp);
        write_tensors(inner, "log_alpha", {s->log_alpha});
        s->opt_actor.save(inner, "opt_actor");
        s->opt_critic.save(inner, "opt_critic");
        s->opt_alpha.save(inner, "opt_alpha");
        return write_checkpoint(path, kSacFormat, {c.obs_dim, c.act_dim, c.hidden, c.layers}, inner, "bdt_sac_save");
    } catch (...) {
        return catch_torch("bdt_sac_save", path);
    }
}

extern "C" int bdt_sac_check_file(const bdt_policy_config *actor, const char *path)
{
    if (!actor || !path)
        return bd_seterr(BD_EINVAL, "bdt_sac_check_file: NULL argument");
    bdt_policy_config c = *actor;
    c.device = BDT_CPU;
    bdt_policy *p = nullptr;
    int rc = bdt_policy_create(&c, &p);
    if (rc != BD_OK)
        return rc;
    try {
        std::vector<int64_t> a;
        torch::serialize::InputArchive inner;
        rc = read_checkpoint(path, kSacFormat, 4, a, inner, p->dev, "reading it");
        if (rc == BD_OK && (a[0] != c.obs_dim || a[1] != c.act_dim || a[2] != c.hidden || a[3] != c.layers))
            rc = bd_seterr(BD_EINVAL,
                           "architecture mismatch: the file has obs_dim=%lld act_dim=%lld hidden=%lld layers=%lld, "
                           "the agent's networks obs_dim=%d act_dim=%d hidden=%d layers=%d",
                           (long long)a[0], (long long)a[1], (long long)a[2], (long long)a[3], c.obs_dim,
                           c.act_dim, c.hidden, c.layers);
        std::vector<torch::Tensor> got;
        if (rc == BD_OK && !read_tensors(inner, "actor", p->params, got))
            rc = bd_seterr(BD_ETORCH, "the actor is missing or has the wrong shape");
    } catch (...) {
        rc = catch_torch("bdt_sac_check_file", path);
    }
    bdt_policy_destroy(p);
    return rc;
}

extern "C" int bdt_sac_load(bdt_sac *s, const char *path)
{
    if (!s || !path)
        return bd_seterr(BD_EINVAL, "bdt_sac_load: NULL argument");
    const bdt_policy_config &c = s->actor->cfg;
    try {
        std::vector<int64_t> a;
        torch::serialize::InputArchive inner;
        int rc = read_checkpoint(path, kSacFormat, 4, a, inner, s->actor->dev, "bdt_sac_load");
        if (rc != BD_OK)
            return rc;
        if (a[0] != c.obs_dim || a[1] != c.act_dim || a[2] != c.hidden || a[3] != c.layers)
            return bd_seterr(BD_EINVAL,
                             "bdt_sac_load: %s: architecture mismatch: file has obs_dim=%lld act_dim=%lld "
                             "hidden=%lld layers=%lld, the learner obs_dim=%d act_dim=%d hidden=%d layers=%d",
                             path, (long long)a[0], (long long)a[1], (long long)a[2], (long long)a[3], c.obs_dim,
                             c.act_dim, c.hidden, c.layers);
        /* read everything before changing anything: a failure leaves s as it was */
        std::vector<torch::Tensor> actor, critics, targets, la, oa, oc, ol;
        if (!read_tensors(inner, "actor", s->actor->params, actor) || !read_tensors(inner, "critics", s->qp, critics) ||
            !read_tensors(inner, "targets", s->qtp, targets) || !read_tensors(inner, "log_alpha", {s->log_alpha}, la) ||
            !s->opt_actor.load(inner, "opt_actor", oa) || !s->opt_critic.load(inner, "opt_critic", oc) ||
            !s->opt_alpha.load(inner, "opt_alpha", ol))
            return bd_seterr(BD_ETORCH, "bdt_sac_load: %s: a network, log alpha or an optimiser is missing or "
                             "has the wrong shape", path);
        s->opt_actor.take(oa);
        s->opt_critic.take(oc);
        s->opt_alpha.take(ol);
        {
            torch::NoGradGuard ng;
            for (size_t i = 0; i < actor.size(); i++)
                s->actor->params[i].copy_(actor[i]);
            for (size_t i = 0; i < critics.size(); i++)
                s->qp[i].copy_(critics[i]);
            for (size_t i = 0; i < targets.size(); i++)
                s->qtp[i].copy_(targets[i]);
            s->log_alpha.copy_(la[0]);
        }
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_sac_load", path);
    }
}
