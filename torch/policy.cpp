/* policy.cpp: the policy network (CleanRL's actor-critic MLP) behind bdt_policy_*
 * (torch/bd_torch.h): creation with the initial weights of torch/cpunet.c (orthogonal,
 * drawn from the seed),
 * parameters in and out, inference on host or device memory, the log std.
 *
 * Flat parameter order (bdt_policy_get_params/set_params) is torch's named_parameters()
 * order, each tensor row-major with Linear weights as (out, in):
 *    [actor_logstd (1, act_dim), continuous only]
 *    critic.0.weight (h, obs) critic.0.bias (h) ... critic.{2L}.weight (1, h) .bias (1)
 *    actor.0.weight (h, obs)  actor.0.bias (h)  ... actor.{2L}.weight (act, h) .bias (act)
 *  (L = layers; the odd Sequential indices are the Tanh modules.)
 * A Q-network (BDT_Q): q.0.weight (h, obs) q.0.bias (h) ... q.{2L}.weight (act, h) .bias (act)
 *  (the odd indices are ReLU modules).
 * A squashed Gaussian (SAC's actor) has the actor alone, with ReLU modules and 2 act_dim
 * outputs (means, then raw log stds).
 *
 */
#include "torch/shim.hpp"

#include <vector>

extern "C" {
#include "torch/cpunet.h"
}

using namespace bd_shim;

/* torch.nn.init.orthogonal_ with an explicit generator. w: (rows, cols...) */
void bd_shim::orthogonal_(torch::Tensor w, double gain, at::Generator &gen)
{
    const int64_t rows = w.size(0), cols = w.numel() / rows;
    torch::Tensor flat = at::randn({rows, cols}, gen, torch::TensorOptions().dtype(torch::kFloat32));
    if (rows < cols)
        flat = flat.t();
    auto qr = at::linalg_qr(flat);
    torch::Tensor q = std::get<0>(qr);
    q = q * torch::diag(std::get<1>(qr), 0).sign();
    if (rows < cols)
        q = q.t();
    w.copy_(q.reshape(w.sizes()) * gain);
}

extern "C" int bdt_policy_create(const bdt_policy_config *cfg, bdt_policy **out)
{
    return bdt_policy_create_from(cfg, nullptr, 0, out);
}

extern "C" int bdt_policy_create_from(const bdt_policy_config *cfg, const float *params, size_t n,
                                      bdt_policy **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bdt_policy_create: out is NULL");
    *out = nullptr;
    if (!cfg)
        return bd_seterr(BD_EINVAL, "bdt_policy_create: cfg is NULL");
    if (cfg->obs_dim < 1 || cfg->act_dim < 1 || cfg->hidden < 1 || cfg->layers < 0)
        return bd_seterr(BD_EINVAL,
                         "bdt_policy_create: need obs_dim, act_dim, hidden >= 1 and layers >= 0 "
                         "(got obs_dim=%d act_dim=%d hidden=%d layers=%d)",
                         cfg->obs_dim, cfg->act_dim, cfg->hidden, cfg->layers);
    /* C callers may pass any int in the enum fields; in C++ loading an out-of-range enum
     * is undefined, so look at them as ints. */
    const int kind = enum_as_int(&cfg->act_kind), device = enum_as_int(&cfg->device);
    if (kind != BDT_DISCRETE && kind != BDT_CONTINUOUS && kind != BDT_Q && kind != BDT_SQUASHED)
        return bd_seterr(BD_EINVAL, "bdt_policy_create: unknown act_kind %d", kind);
    if (device != BDT_CPU && device != BDT_CUDA)
        return bd_seterr(BD_EINVAL, "bdt_policy_create: unknown device %d", device);
    try {
        if (cfg->device == BDT_CUDA && !torch::cuda::is_available())
            return bd_seterr(BD_ENODEV,
                             "bdt_policy_create: device cuda requested but libtorch sees no "
                             "CUDA device (CPU-only build or no GPU)");
        std::unique_ptr<bdt_policy> p(new bdt_policy);
        p->cfg = *cfg;
        p->dev = cfg->device == BDT_CUDA ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
        p->net = std::make_shared<ActorCritic>(*cfg);
        p->net->to(p->dev);
        p->params = p->net->parameters();
        for (const auto &t : p->params)
            p->count += (size_t)t.numel();
        /* every network's initial weights are torch/cpunet.c's, which a brain sends
         * before it loads libtorch; or the caller's (no init drawn only to be replaced: a
         * wide network's QR takes seconds) */
        if (params && n != p->count)
            return bd_seterr(BD_EINVAL, "bdt_policy_create_from: %zu parameters for a network of %zu", n, p->count);
        std::vector<float> init(params ? 0 : p->count);
        int rc = params ? BD_OK : bdt_policy_init_params(cfg, init.data(), init.size());
        if (rc == BD_OK)
            rc = bdt_policy_set_params(p.get(), params ? params : init.data(), p->count);
        if (rc != BD_OK)
            return rc;
        *out = p.release();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_policy_create");
    }
}

extern "C" void bdt_policy_destroy(bdt_policy *p)
{
    try {
        delete p;
    } catch (...) {
        /* destructors of torch objects do not throw in practice; nothing to report to */
    }
}

extern "C" size_t bdt_policy_param_count(const bdt_policy *p)
{
    return p ? p->count : 0;
}

extern "C" int bdt_policy_get_params(bdt_policy *p, float *dst, size_t n)
{
    if (!p || !dst)
        return bd_seterr(BD_EINVAL, "bdt_policy_get_params: NULL argument");
    if (n != p->count)
        return bd_seterr(BD_EINVAL, "bdt_policy_get_params: n=%zu but the policy has %zu parameters",
                         n, p->count);
    try {
        torch::NoGradGuard ng;
        std::vector<torch::Tensor> flat;
        for (const auto &t : p->params)
            flat.push_back(t.detach().reshape({-1}));
        download(torch::cat(flat), dst, n);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_policy_get_params");
    }
}

extern "C" int bdt_policy_set_params(bdt_policy *p, const float *src, size_t n)
{
    if (!p || !src)
        return bd_seterr(BD_EINVAL, "bdt_policy_set_params: NULL argument");
    if (n != p->count)
        return bd_seterr(BD_EINVAL, "bdt_policy_set_params: n=%zu but the policy has %zu parameters",
                         n, p->count);
    try {
        torch::NoGradGuard ng;
        torch::Tensor all = upload(src, {(int64_t)n}, p->dev); /* one transfer */
        int64_t off = 0;
        for (auto &t : p->params) {
            t.copy_(all.slice(0, off, off + t.numel()).view(t.sizes()));
            off += t.numel();
        }
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_policy_set_params");
    }
}

/* Inference on obs (n, obs_dim): host arrays (copied to and from the policy's device), or
 * arrays already in the policy's device memory (read and written in place). On CUDA the
 * work goes to libtorch's current stream, which bodhi never changes from the default
 * (legacy) stream: that is what orders it with bodhi's kernels. A stream guard around
 * this call would need an explicit synchronisation instead. */
static int policy_forward(bdt_policy *p, const float *obs, int n, float *out, float *value,
                          bool on_device, const char *where)
{
    if (!p || (!obs && n > 0))
        return bd_seterr(BD_EINVAL, "%s: NULL argument", where);
    if (n < 0)
        return bd_seterr(BD_EINVAL, "%s: n=%d < 0", where, n);
    if (n == 0 || (!out && !value))
        return BD_OK;
    FtzGuard ftz;
    try {
        torch::NoGradGuard ng;
        const auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(p->dev);
        const int64_t A = bdt_policy_out_dim(&p->cfg);
        torch::Tensor x = on_device ? torch::from_blob(const_cast<float *>(obs), {n, p->cfg.obs_dim}, opts)
                                    : upload(obs, {n, p->cfg.obs_dim}, p->dev); /* (n, obs) */
        if (out && on_device)
            torch::from_blob(out, {n, A}, opts).copy_(p->net->actor->forward(x));
        else if (out)
            download(p->net->actor->forward(x), out, (size_t)n * A); /* (n, act) */
        /* a Q-network's value: the greedy action's; a squashed Gaussian's: 0 (no critic) */
        const bool kind_is_q = p->cfg.act_kind == BDT_Q;
        auto critic = [&]() {
            return p->net->critic ? p->net->critic->forward(x)
                   : kind_is_q ? std::get<0>(p->net->actor->forward(x).max(1, true)) : torch::zeros({n, 1}, opts);
        };
        if (value && on_device)
            torch::from_blob(value, {n, 1}, opts).copy_(critic());
        else if (value)
            download(critic(), value, (size_t)n); /* (n, 1) */
        return BD_OK;
    } catch (...) {
        return catch_torch(where);
    }
}

extern "C" int bdt_policy_forward(bdt_policy *p, const float *obs, int n, float *out, float *value)
{
    return policy_forward(p, obs, n, out, value, false, "bdt_policy_forward");
}

extern "C" int bdt_policy_forward_on_device(bdt_policy *p, const float *obs, int n, float *out,
                                            float *value)
{
    return policy_forward(p, obs, n, out, value, true, "bdt_policy_forward_on_device");
}

extern "C" int bdt_policy_logstd(bdt_policy *p, float *dst, int act_dim)
{
    if (!p || !dst)
        return bd_seterr(BD_EINVAL, "bdt_policy_logstd: NULL argument");
    if (p->cfg.act_kind != BDT_CONTINUOUS)
        return bd_seterr(BD_EINVAL, "bdt_policy_logstd: the policy is discrete");
    if (act_dim != p->cfg.act_dim)
        return bd_seterr(BD_EINVAL, "bdt_policy_logstd: act_dim=%d but the policy has %d", act_dim,
                         p->cfg.act_dim);
    try {
        torch::NoGradGuard ng;
        download(p->net->logstd, dst, (size_t)act_dim);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_policy_logstd");
    }
}
