/* bd_torch.cpp: the libtorch shim behind torch/bd_torch.h — the only C++ in bodhi.
 *
 * What it is: CleanRL's ppo.py / ppo_continuous_action.py actor-critic MLP and PPO update,
 * behind a C interface of opaque handles. Every extern "C" function catches every
 * exception and turns it into a bd_err code with the detail in bd_lasterr(); nothing here
 * prints or exits.
 *
 * Limits:
 *  - float32 only; one optimiser (Adam, one parameter group) per policy.
 *  - A policy and its bdt_ppo are not thread-safe: one thread at a time per handle. The
 *    bdt_ppo keeps a pointer to its policy, which must outlive it.
 *  - Initial weights are drawn from a generator local to bdt_policy_create (seeded with
 *    cfg->seed, on the CPU, then moved to the device), so they are a function of the seed
 *    alone: the same on CPU and CUDA policies and independent of torch's global RNG.
 *  - Results are bitwise reproducible for one build, device and thread count; across
 *    builds (BLAS/LAPACK, CUDA kernels) only approximately.
 *  - Advantage normalisation is skipped for minibatches of one sample (std undefined).
 *  - max_grad_norm <= 0 disables gradient clipping.
 *
 * Flat parameter order (bdt_policy_get_params/set_params) is torch's named_parameters()
 * order, each tensor row-major with Linear weights as (out, in):
 *    [actor_logstd (1, act_dim), continuous only]
 *    critic.0.weight (h, obs) critic.0.bias (h) ... critic.{2L}.weight (1, h) .bias (1)
 *    actor.0.weight (h, obs)  actor.0.bias (h)  ... actor.{2L}.weight (act, h) .bias (act)
 *  (L = layers; the odd Sequential indices are the Tanh modules.)
 *
 * Checkpoint file: a torch::serialize archive, written to path.tmp then renamed:
 *    "bodhi/format"    string "bodhi-torch-2"
 *    "bodhi/arch"      int64 (5): obs_dim, act_kind, act_dim, hidden, layers
 *    "bodhi/payload"   uint8 (bytes): an inner archive, serialised, holding
 *        "params"        nested archive, "<i>" = i-th tensor in the flat order above
 *        "optimizer"     nested archive from torch::optim::Adam::save (only when saved with o)
 *    "bodhi/checksum"  int64 (1): FNV-1a 64 of the payload bytes
 * followed by a 24-byte trailer: "BDHICKPT", the archive's length (u64 LE) and FNV-1a 64 of
 * the archive's bytes (u64 LE). libtorch's zip reader checks no CRCs and trusts the sizes
 * in its pickles, so a damaged file could load silently or read out of bounds; the
 * trailer is checked on the raw bytes before libtorch parses anything (BD_ETORCH), and
 * every tensor's storage is checked to hold its elements before its data is read.
 * Loading with o restores Adam's moments and step counts; the learning rate stays the one
 * o has now (libtorch's Adam::load does not restore options), as the caller schedules it.
 * Loading with o from a file saved without an optimiser is BD_EINVAL.
 */
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#if defined(__SSE2__)
#include <pmmintrin.h>
#include <xmmintrin.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>
#include <torch/utils.h>

#include "torch/bd_torch.h"

namespace {

const char *const kFormat = "bodhi-torch-2";

/* CleanRL's network: two separate trunks plus, for continuous actions, a free log std. */
struct ActorCritic : torch::nn::Module {
    torch::nn::Sequential critic{nullptr}; /* (n, obs) -> (n, 1) */
    torch::nn::Sequential actor{nullptr};  /* (n, obs) -> (n, act_dim) */
    torch::Tensor logstd;                  /* (1, act_dim), continuous only */

    ActorCritic(const bdt_policy_config &c)
    {
        if (c.act_kind == BDT_CONTINUOUS)
            logstd = register_parameter("actor_logstd", torch::zeros({1, c.act_dim}));
        critic = register_module("critic", trunk(c, 1));
        actor = register_module("actor", trunk(c, c.act_dim));
    }

    static torch::nn::Sequential trunk(const bdt_policy_config &c, int out)
    {
        torch::nn::Sequential s;
        int in = c.obs_dim;
        for (int i = 0; i < c.layers; i++) {
            s->push_back(torch::nn::Linear(in, c.hidden));
            s->push_back(torch::nn::Tanh());
            in = c.hidden;
        }
        s->push_back(torch::nn::Linear(in, out));
        return s;
    }
};

/* torch.nn.init.orthogonal_ with an explicit generator. w: (rows, cols...) */
void orthogonal_(torch::Tensor w, double gain, at::Generator &gen)
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

/* Orthogonal init of one trunk: hidden layers gain sqrt(2), the head `head_gain`. */
void init_trunk(torch::nn::Sequential &s, double head_gain, at::Generator &gen)
{
    const size_t n = s->size();
    for (size_t i = 0; i < n; i++) {
        auto lin = s[i]->as<torch::nn::Linear>();
        if (!lin)
            continue;
        orthogonal_(lin->weight, i + 1 == n ? head_gain : std::sqrt(2.0), gen);
        lin->bias.zero_();
    }
}

/* Called from a catch block: the current exception as a bd_err, detail "where: [path: ]what".
 * c10::Error's what() carries a backtrace; the message alone is enough here. */
int catch_torch(const char *where, const char *path = nullptr)
{
    const char *sep = path ? ": " : "";
    if (!path)
        path = "";
    try {
        throw;
    } catch (const c10::Error &e) {
        return bd_seterr(BD_ETORCH, "%s: %s%s%s", where, path, sep, e.what_without_backtrace());
    } catch (const std::bad_alloc &) {
        return bd_seterr(BD_ENOMEM, "%s: %s%sout of memory", where, path, sep);
    } catch (const std::exception &e) {
        return bd_seterr(BD_ETORCH, "%s: %s%s%s", where, path, sep, e.what());
    } catch (...) {
        return bd_seterr(BD_ETORCH, "%s: %s%sunknown exception", where, path, sep);
    }
}

/* A host float array as a tensor on `dev` (no copy on the CPU; never written to). */
torch::Tensor upload(const float *src, torch::IntArrayRef shape, const torch::Device &dev)
{
    return torch::from_blob(const_cast<float *>(src), shape, torch::kFloat32).to(dev);
}

/* Copy a float tensor of exactly n elements out to host memory. */
void download(const torch::Tensor &t, float *dst, size_t n)
{
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    std::memcpy(dst, c.data_ptr<float>(), n * sizeof(float));
}

template <typename E> int enum_as_int(const E *e)
{
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
    int v;
    std::memcpy(&v, e, sizeof v);
    return v;
}

const char *kind_name(int k)
{
    return k == BDT_DISCRETE ? "discrete" : k == BDT_CONTINUOUS ? "continuous" : "?";
}

const double kLogSqrt2Pi = 0.5 * std::log(2.0 * M_PI);

} // namespace

struct bdt_policy {
    bdt_policy_config cfg;
    torch::Device dev{torch::kCPU};
    std::shared_ptr<ActorCritic> net;
    std::vector<torch::Tensor> params; /* named_parameters() order */
    size_t count = 0;
};

struct bdt_ppo {
    bdt_policy *p = nullptr;
    bdt_ppo_config cfg;
    std::unique_ptr<torch::optim::Adam> opt;
};

/* ---- policy ------------------------------------------------------------------------- */

/* Subnormal floats: once a policy saturates, Adam's moments and small weights fill with
 * subnormals and x86 arithmetic on them is ~100x slower (measured here: learn time per
 * update went from 0.017 s to 1 s mid-run). Every call into libtorch runs with
 * flush-to-zero and denormals-are-zero set on the calling thread, and restores the
 * caller's mode on return, so code outside the shim (the env physics, which must match
 * the GPU bit for bit) keeps IEEE subnormals. Threads that libtorch's OpenMP pool starts
 * inside such a call inherit the mode; OpenBLAS's own pool, started when the library
 * loads, does not: bodhi's conductor runs its children with OPENBLAS_NUM_THREADS=1. */
struct FtzGuard {
#if defined(__SSE2__)
    unsigned saved;
    FtzGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); /* FTZ | DAZ */ }
    ~FtzGuard() { _mm_setcsr(saved); }
#endif
};

extern "C" int bdt_policy_create(const bdt_policy_config *cfg, bdt_policy **out)
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
    if (kind != BDT_DISCRETE && kind != BDT_CONTINUOUS)
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
        {
            torch::NoGradGuard ng;
            at::Generator gen = at::detail::createCPUGenerator(cfg->seed);
            init_trunk(p->net->critic, 1.0, gen); /* CleanRL builds the critic first */
            init_trunk(p->net->actor, 0.01, gen);
        }
        p->net->to(p->dev);
        p->params = p->net->parameters();
        for (const auto &t : p->params)
            p->count += (size_t)t.numel();
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
        const int64_t A = p->cfg.act_dim;
        torch::Tensor x = on_device ? torch::from_blob(const_cast<float *>(obs), {n, p->cfg.obs_dim}, opts)
                                    : upload(obs, {n, p->cfg.obs_dim}, p->dev); /* (n, obs) */
        if (out && on_device)
            torch::from_blob(out, {n, A}, opts).copy_(p->net->actor->forward(x));
        else if (out)
            download(p->net->actor->forward(x), out, (size_t)n * A); /* (n, act) */
        if (value && on_device)
            torch::from_blob(value, {n, 1}, opts).copy_(p->net->critic->forward(x));
        else if (value)
            download(p->net->critic->forward(x), value, (size_t)n); /* (n, 1) */
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

/* ---- PPO ---------------------------------------------------------------------------- */

extern "C" int bdt_ppo_create(bdt_policy *p, const bdt_ppo_config *cfg, bdt_ppo **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bdt_ppo_create: out is NULL");
    *out = nullptr;
    if (!p || !cfg)
        return bd_seterr(BD_EINVAL, "bdt_ppo_create: NULL argument");
    if (!(cfg->lr >= 0.0f) || cfg->epochs < 0 || cfg->minibatches < 1 || !(cfg->clip_coef >= 0.0f))
        return bd_seterr(BD_EINVAL,
                         "bdt_ppo_create: need lr >= 0, clip_coef >= 0, epochs >= 0, minibatches >= 1 "
                         "(got lr=%g clip_coef=%g epochs=%d minibatches=%d)",
                         (double)cfg->lr, (double)cfg->clip_coef, cfg->epochs, cfg->minibatches);
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
    const int mb = n / c.minibatches;
    if (mb < 1)
        return bd_seterr(BD_EINVAL, "bdt_ppo_update: n=%d is smaller than minibatches=%d", n,
                         c.minibatches);
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
        torch::Tensor b_act = discrete ? upload(actions, {n}, dev).to(torch::kLong) /* (n) */
                                       : upload(actions, {n, pc.act_dim}, dev); /* (n, act) */
        torch::Tensor b_logp = upload(logp, {n}, dev);
        torch::Tensor b_adv = upload(adv, {n}, dev);
        torch::Tensor b_ret = upload(ret, {n}, dev);
        torch::Tensor b_val = upload(val, {n}, dev);
        torch::Tensor b_perm =
            torch::from_blob(const_cast<int64_t *>(perm), {(int64_t)c.epochs * n}, torch::kLong).to(dev);

        const double clip = c.clip_coef;
        torch::Tensor s_pg, s_v, s_ent, s_kl, s_cf; /* last epoch's sums, 0-d on the device */
        for (int e = 0; e < c.epochs; e++) {
            const bool last = e + 1 == c.epochs;
            for (int b = 0; b < c.minibatches; b++) {
                const int64_t start = (int64_t)e * n + (int64_t)b * mb;
                torch::Tensor idx = b_perm.slice(0, start, start + mb); /* (mb) */
                torch::Tensor m_obs = b_obs.index_select(0, idx);
                torch::Tensor m_act = b_act.index_select(0, idx);
                torch::Tensor m_logp = b_logp.index_select(0, idx);
                torch::Tensor m_adv = b_adv.index_select(0, idx);
                torch::Tensor m_ret = b_ret.index_select(0, idx);
                torch::Tensor m_val = b_val.index_select(0, idx);

                torch::Tensor head = net.actor->forward(m_obs); /* (mb, act) */
                torch::Tensor newlogp, entropy;                  /* (mb) */
                if (discrete) {
                    torch::Tensor lp = torch::log_softmax(head, 1); /* (mb, act) */
                    newlogp = lp.gather(1, m_act.unsqueeze(1)).squeeze(1);
                    /* torch.distributions.Categorical clamps logits at finfo.min so that
                     * p = 0 gives 0 * finite instead of 0 * -inf. */
                    torch::Tensor lpc = lp.clamp_min(std::numeric_limits<float>::lowest());
                    entropy = -(lp.exp() * lpc).sum(1);
                } else {
                    torch::Tensor logstd = net.logstd.expand_as(head); /* (mb, act) */
                    torch::Tensor z = (m_act - head) * torch::exp(-logstd);
                    newlogp = (-0.5 * z * z - logstd - kLogSqrt2Pi).sum(1);
                    entropy = (0.5 + kLogSqrt2Pi + logstd).sum(1);
                }
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

                o->opt->zero_grad();
                loss.backward();
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
            download(torch::stack({s_pg, s_v, s_ent, s_kl, s_cf}) / (double)c.minibatches, h, 5);
            stats->policy_loss = h[0];
            stats->value_loss = h[1];
            stats->entropy = h[2];
            stats->approx_kl = h[3];
            stats->clip_frac = h[4];
        }
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_ppo_update");
    }
}

/* ---- checkpoints -------------------------------------------------------------------- */

namespace {

uint64_t fnv1a64(const unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Write bytes to path.tmp, fsync, rename over path. BD_EIO with the file and errno text. */
int write_file_atomic(const char *path, const std::string &bytes, const char *where)
{
    const std::string tmp = std::string(path) + ".tmp";
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        return bd_seterr(BD_EIO, "%s: %s: %s", where, tmp.c_str(), std::strerror(err));
    }
    const char *b = bytes.data();
    size_t left = bytes.size();
    while (left > 0) {
        ssize_t w = write(fd, b, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = w < 0 ? errno : EIO;
            close(fd);
            unlink(tmp.c_str());
            return bd_seterr(BD_EIO, "%s: write %s: %s", where, tmp.c_str(), std::strerror(err));
        }
        b += w;
        left -= (size_t)w;
    }
    int err = fsync(fd) != 0 ? errno : 0;
    if (close(fd) != 0 && err == 0)
        err = errno;
    if (err != 0) {
        unlink(tmp.c_str());
        return bd_seterr(BD_EIO, "%s: write %s: %s", where, tmp.c_str(), std::strerror(err));
    }
    if (rename(tmp.c_str(), path) != 0) {
        int err = errno;
        unlink(tmp.c_str());
        return bd_seterr(BD_EIO, "%s: rename %s -> %s: %s", where, tmp.c_str(), path, std::strerror(err));
    }
    return BD_OK;
}

const char kTrailerMagic[8] = {'B', 'D', 'H', 'I', 'C', 'K', 'P', 'T'};
const size_t kTrailerSize = 24;

void put_u64(std::string &s, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        s.push_back((char)(v >> (8 * i)));
}

uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* file += magic, length, FNV-1a of file (see the opening comment). */
void append_trailer(std::string &file)
{
    const uint64_t n = file.size();
    const uint64_t sum = fnv1a64(reinterpret_cast<const unsigned char *>(file.data()), file.size());
    file.append(kTrailerMagic, sizeof kTrailerMagic);
    put_u64(file, n);
    put_u64(file, sum);
}

/* Reads path whole and checks its trailer; *archive holds the bytes before it. */
int read_checked(const char *path, std::string *archive)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        return bd_seterr(err == ENOENT ? BD_ENOTFOUND : BD_EIO, "bdt_load: %s: %s", path, std::strerror(err));
    }
    std::string buf;
    char chunk[65536];
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof chunk);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            return bd_seterr(BD_EIO, "bdt_load: %s: %s", path, std::strerror(err));
        }
        if (r == 0)
            break;
        buf.append(chunk, (size_t)r);
    }
    close(fd);
    const unsigned char *b = reinterpret_cast<const unsigned char *>(buf.data());
    const size_t n = buf.size();
    if (n < kTrailerSize || std::memcmp(b + n - kTrailerSize, kTrailerMagic, sizeof kTrailerMagic) != 0)
        return bd_seterr(BD_ETORCH, "bdt_load: %s: not a bodhi checkpoint (no BDHICKPT trailer)", path);
    const size_t len = n - kTrailerSize;
    if (get_u64(b + len + 8) != len || get_u64(b + len + 16) != fnv1a64(b, len))
        return bd_seterr(BD_ETORCH, "bdt_load: %s: damaged checkpoint (length or checksum mismatch)", path);
    buf.resize(len);
    *archive = std::move(buf);
    return BD_OK;
}

/* 1 when t's storage holds all of its elements (a pickle can claim more than it has). */
bool storage_ok(const torch::Tensor &t)
{
    if (!t.defined() || !t.has_storage())
        return false;
    const size_t need = (size_t)(t.storage_offset() + t.numel()) * (size_t)t.element_size();
    return t.storage().nbytes() >= need;
}

} // namespace

extern "C" int bdt_save(bdt_policy *p, bdt_ppo *o, const char *path)
{
    if (!p || !path)
        return bd_seterr(BD_EINVAL, "bdt_save: NULL argument");
    if (o && o->p != p)
        return bd_seterr(BD_EINVAL, "bdt_save: %s: the optimiser belongs to another policy", path);
    std::string file; /* the whole checkpoint, serialised */
    try {
        torch::NoGradGuard ng;
        const bdt_policy_config &c = p->cfg;
        torch::serialize::OutputArchive inner, params;
        for (size_t i = 0; i < p->params.size(); i++)
            params.write(std::to_string(i), p->params[i].detach());
        inner.write("params", params);
        if (o) {
            torch::serialize::OutputArchive opt;
            o->opt->save(opt);
            inner.write("optimizer", opt);
        }
        std::ostringstream ss;
        inner.save_to(ss);
        const std::string bytes = ss.str();
        const uint64_t sum = fnv1a64(reinterpret_cast<const unsigned char *>(bytes.data()), bytes.size());

        torch::serialize::OutputArchive ar;
        ar.write("bodhi/format", c10::IValue(std::string(kFormat)));
        ar.write("bodhi/arch", torch::tensor(std::vector<int64_t>{c.obs_dim, (int64_t)c.act_kind,
                                                                  c.act_dim, c.hidden, c.layers}),
                 true);
        ar.write("bodhi/payload",
                 torch::from_blob(const_cast<char *>(bytes.data()), {(int64_t)bytes.size()}, torch::kUInt8),
                 true);
        ar.write("bodhi/checksum", torch::tensor(std::vector<int64_t>{(int64_t)sum}), true);
        std::ostringstream out;
        ar.save_to(out);
        file = out.str();
    } catch (...) {
        return catch_torch("bdt_save", path);
    }
    append_trailer(file);
    return write_file_atomic(path, file, "bdt_save");
}

extern "C" int bdt_load(bdt_policy *p, bdt_ppo *o, const char *path)
{
    if (!p || !path)
        return bd_seterr(BD_EINVAL, "bdt_load: NULL argument");
    if (o && o->p != p)
        return bd_seterr(BD_EINVAL, "bdt_load: %s: the optimiser belongs to another policy", path);
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        return bd_seterr(err == ENOENT ? BD_ENOTFOUND : BD_EIO, "bdt_load: %s: %s", path,
                         std::strerror(err));
    }
    if (!S_ISREG(st.st_mode))
        return bd_seterr(BD_EIO, "bdt_load: %s: not a regular file", path);
    std::string file;
    int rc = read_checked(path, &file);
    if (rc != BD_OK)
        return rc;
    try {
        torch::serialize::InputArchive ar;
        try {
            ar.load_from(file.data(), file.size(), torch::Device(torch::kCPU));
        } catch (const c10::Error &e) {
            return bd_seterr(BD_ETORCH, "bdt_load: %s: not a readable checkpoint: %s", path,
                             e.what_without_backtrace());
        } catch (const std::exception &e) {
            return bd_seterr(BD_ETORCH, "bdt_load: %s: not a readable checkpoint: %s", path, e.what());
        }
        c10::IValue fmt;
        torch::Tensor arch, payload, sum;
        if (!ar.try_read("bodhi/format", fmt) || !fmt.isString() || fmt.toStringRef() != kFormat ||
            !ar.try_read("bodhi/arch", arch, true) || arch.numel() != 5 ||
            arch.scalar_type() != torch::kLong || !storage_ok(arch))
            return bd_seterr(BD_ETORCH, "bdt_load: %s: not a bodhi policy checkpoint (%s)", path, kFormat);
        arch = arch.contiguous();
        const int64_t *a = arch.data_ptr<int64_t>();
        const bdt_policy_config &c = p->cfg;
        if (a[0] != c.obs_dim || a[1] != (int64_t)c.act_kind || a[2] != c.act_dim || a[3] != c.hidden ||
            a[4] != c.layers)
            return bd_seterr(BD_EINVAL,
                             "bdt_load: %s: architecture mismatch: file has obs_dim=%lld act_kind=%s "
                             "act_dim=%lld hidden=%lld layers=%lld, policy has obs_dim=%d act_kind=%s "
                             "act_dim=%d hidden=%d layers=%d",
                             path, (long long)a[0], kind_name((int)a[1]), (long long)a[2], (long long)a[3],
                             (long long)a[4], c.obs_dim, kind_name(c.act_kind), c.act_dim, c.hidden,
                             c.layers);
        if (!ar.try_read("bodhi/payload", payload, true) || payload.scalar_type() != torch::kUInt8 ||
            payload.dim() != 1 || !ar.try_read("bodhi/checksum", sum, true) || sum.numel() != 1 ||
            sum.scalar_type() != torch::kLong || !storage_ok(payload) || !storage_ok(sum))
            return bd_seterr(BD_ETORCH, "bdt_load: %s: damaged checkpoint (no payload or checksum)", path);
        payload = payload.contiguous();
        const unsigned char *bytes = payload.data_ptr<uint8_t>();
        const size_t nbytes = (size_t)payload.numel();
        if ((int64_t)fnv1a64(bytes, nbytes) != sum.contiguous().data_ptr<int64_t>()[0])
            return bd_seterr(BD_ETORCH, "bdt_load: %s: damaged checkpoint (checksum mismatch)", path);

        /* Read everything before changing anything, so that a failure leaves p and o as
         * they were. */
        torch::serialize::InputArchive inner, params;
        inner.load_from(reinterpret_cast<const char *>(bytes), nbytes, p->dev);
        inner.read("params", params);
        std::vector<torch::Tensor> loaded(p->params.size());
        for (size_t i = 0; i < p->params.size(); i++) {
            params.read(std::to_string(i), loaded[i]);
            if (!loaded[i].sizes().equals(p->params[i].sizes()) || loaded[i].scalar_type() != torch::kFloat32 ||
                !storage_ok(loaded[i]))
                return bd_seterr(BD_ETORCH, "bdt_load: %s: parameter %zu has the wrong shape or type",
                                 path, i);
        }
        std::unique_ptr<torch::optim::Adam> opt;
        if (o) {
            torch::serialize::InputArchive oa;
            if (!inner.try_read("optimizer", oa))
                return bd_seterr(BD_EINVAL,
                                 "bdt_load: %s: the file holds no optimiser state (load with o = NULL "
                                 "to read the parameters alone)",
                                 path);
            opt.reset(new torch::optim::Adam(p->params, torch::optim::AdamOptions(o->cfg.lr).eps(1e-5)));
            opt->load(oa);
        }
        {
            torch::NoGradGuard ng;
            for (size_t i = 0; i < p->params.size(); i++)
                p->params[i].copy_(loaded[i]);
        }
        if (o)
            o->opt = std::move(opt);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_load", path);
    }
}

/* ---- process-wide ------------------------------------------------------------------- */

extern "C" void bdt_set_threads(int n)
{
    if (n < 1)
        return;
    try {
        torch::set_num_threads(n);
    } catch (...) {
        catch_torch("bdt_set_threads");
    }
    /* The inter-op pool can be sized once, and only before it starts: try once, quietly. */
    static std::once_flag once;
    try {
        std::call_once(once, [n] {
            try {
                torch::set_num_interop_threads(n);
            } catch (...) {
            }
        });
    } catch (...) {
    }
}

extern "C" int bdt_cuda_available(void)
{
    try {
        return torch::cuda::is_available() ? 1 : 0;
    } catch (...) {
        return 0;
    }
}
