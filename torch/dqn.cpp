/* dqn.cpp: the DQN algorithm behind bdt_dqn_* (torch/dqn_algo.h): double DQN with a
 * target network, the Huber loss, gradient-norm clipping and Adam, as CleanRL's dqn.py
 * and SB3's DQN, over batches the caller samples. */
#include "torch/shim.hpp"

extern "C" {
#include "torch/cpunet.h" /* the CPU step's layers (cpu_pass, cpu_grad) */
}

#include <torch/nn/functional/loss.h>

using namespace bd_shim;

/* bdt_dqn_mark's state: the network with Adam's state (its step count is the gradient
 * steps'), the target. */
struct DqnMark {
    FlatAdam::Kept q;
    torch::Tensor target;
};

/* One pass of a Q-network's trunk (q_forward below): each hidden layer's output after its
 * ReLU, and the Q-values, on buffers kept from step to step. */
struct QPass {
    std::vector<torch::Tensor> h; /* (rows, hidden) each: n, or 2n for s and s' at once */
    torch::Tensor out;            /* (rows, actions) */
};

/* A gradient step's buffers beside the passes: the Q-values' gradient, and a hidden
 * layer's (two, used in turn). */
struct QGrad {
    torch::Tensor dout, dh, dz[2], one;
};

/* A pass of a Q-network on the CPU (cpu_pass below): each hidden layer's ReLU output, one
 * layer after another (rows x hidden each), and the Q-values (rows x actions). */
struct CpuPass {
    std::vector<float> h, out;
    int rows = 0;
};

struct bdt_dqn {
    bdt_policy *q = nullptr;
    bdt_policy *target = nullptr;
    bdt_dqn_config cfg;
    FlatAdam opt;              /* the network's parameters and gradients are views of its buffers */
    torch::Tensor target_data; /* the target's parameters, flat (their tensors are views of it) */
    bdt_grad_hook grad_hook = nullptr; /* bdt_dqn_set_grad_hook */
    void *grad_ctx = nullptr;
    std::vector<float> grad_buf;
    std::unique_ptr<DqnMark> mark;  /* bdt_dqn_mark */
    bool split = false;             /* bdt_dqn_set_split */
    std::unique_ptr<Helper> helper; /* the target's pass's thread, made at the first step */
    QPass pass_x;      /* the network on s (double DQN: on s, then s', in one pass) */
    QPass pass_next;   /* the network on s' (bdt_dqn_targets) */
    QPass pass_target; /* the target on s' */
    QGrad g;
    /* the CPU step's (cpu_grad): passes of the network and the target, the rows [s; s'] of
     * a step, and a hidden layer's gradient (two, in turn) */
    CpuPass cpu_x, cpu_t;
    std::vector<float> cpu_rows, cpu_dz[2], cpu_dout, cpu_y, cpu_qsa;
    std::vector<size_t> cpu_off; /* each layer's first parameter in the flat order (cpu_offsets) */
    bool cpu_layers = false;     /* the CPU step's through torch/cpunet.c (cfg.torch_ops 0, on the CPU) */

    ~bdt_dqn()
    {
        helper.reset(); /* no task is running: every step waits for its own */
        bdt_policy_destroy(target);
    }
};

namespace {

torch::optim::AdamOptions adam_options(const bdt_dqn_config &c)
{
    return torch::optim::AdamOptions(c.lr).eps(1e-8);
}

/* target = tau online + (1 - tau) target */
void sync_target(bdt_dqn *o, float tau)
{
    torch::NoGradGuard ng;
    if (tau >= 1.0f)
        o->target_data.copy_(o->opt.data);
    else
        o->target_data.mul_(1.0f - tau).add_(o->opt.data, tau);
}

/* t as a buffer of (n, cols) like `like`'s elements, made anew only when its shape changes. */
torch::Tensor &sized(torch::Tensor &t, int64_t n, int64_t cols, const torch::Tensor &like)
{
    if (!t.defined() || t.size(0) != n || t.size(1) != cols)
        t = torch::empty({n, cols}, like.options());
    return t;
}

/* The Q-network of parameters ps (q.0.weight, q.0.bias, ..., the last linear layer's:
 * policy.cpp's trunk of ReLU layers) on x (n, obs) into s, as plain operations with no
 * autograd graph: its bookkeeping costs more than the arithmetic at a DQN's sizes. Each
 * layer is torch::nn::Linear's addmm(bias, input, weight^T), then ReLU: the same bits. */
void q_forward(const std::vector<torch::Tensor> &ps, const torch::Tensor &x, QPass &s)
{
    const size_t L = ps.size() / 2 - 1; /* hidden layers */
    s.h.resize(L);
    const int64_t n = x.size(0);
    const torch::Tensor *in = &x;
    for (size_t l = 0; l <= L; l++) {
        torch::Tensor &dst = sized(l < L ? s.h[l] : s.out, n, ps[2 * l].size(0), x);
        at::addmm_out(dst, ps[2 * l + 1], *in, ps[2 * l].t());
        if (l < L)
            dst.relu_();
        in = &dst;
    }
}

/* The gradient of the loss into each parameter's gradient (views of the flat optimiser's
 * buffer, overwritten) given dout, the gradient of the Q-values of the pass s on x (or on
 * rows that begin with x's):
 * the operations autograd runs backward through Linear and ReLU (the weight's
 * dz^T mm input, the bias's sum over the batch, the input's dz mm weight, then
 * threshold_backward at the ReLU's output), so the same bits as loss.backward(). */
void q_backward(const std::vector<torch::Tensor> &ps, const torch::Tensor &x, const QPass &s, QGrad &g)
{
    const size_t L = ps.size() / 2 - 1;
    const int64_t n = x.size(0);
    const torch::Tensor *dz = &g.dout;
    for (size_t l = L + 1; l-- > 0;) {
        /* the pass may have run on more rows than x's (q_forward on s and s' at once):
         * x's are its first n */
        const torch::Tensor in = !l ? x : s.h[l - 1].size(0) == n ? s.h[l - 1] : s.h[l - 1].narrow(0, 0, n);
        torch::Tensor w = ps[2 * l], b = ps[2 * l + 1];
        at::mm_out(w.mutable_grad(), dz->t(), in);
        at::sum_out(b.mutable_grad(), *dz, {0});
        if (l) {
            torch::Tensor &dh = sized(g.dh, n, w.size(1), x);
            at::mm_out(dh, *dz, w);
            torch::Tensor &next = sized(g.dz[l % 2], n, w.size(1), x);
            at::threshold_backward_out(next, dh, in, 0);
            dz = &next;
        }
    }
}

/* Each step's n rows of a, then its n rows of b, (steps, 2n, cols) on dev, by plain copies
 * on the host (libtorch's cat would wake its thread pool for it). */
torch::Tensor step_pairs(const float *a, const float *b, int64_t steps, int64_t n, int64_t cols,
                         const torch::Device &dev)
{
    torch::Tensor t = torch::empty({steps, 2 * n, cols}, torch::kFloat32);
    float *d = t.data_ptr<float>();
    const int64_t block = n * cols;
    for (int64_t k = 0; k < steps; k++) {
        std::memcpy(d + 2 * k * block, a + k * block, (size_t)block * sizeof(float));
        std::memcpy(d + (2 * k + 1) * block, b + k * block, (size_t)block * sizeof(float));
    }
    return t.to(dev);
}

/* Each transition's discount, gamma where it goes on and 0 where it terminated, for a
 * whole call's transitions at once (each step takes its slice). */
torch::Tensor discounts(const bdt_dqn *o, const torch::Tensor &term)
{
    return o->cfg.gamma * (1.0f - term);
}

/* rew + disc x qt(s', a) for each row's action a (n, 1), qt the target's Q-values at s'
 * (n, A) */
torch::Tensor bellman_from(const torch::Tensor &qt, const torch::Tensor &a, const torch::Tensor &rew,
                           const torch::Tensor &disc)
{
    return rew + disc * qt.gather(1, a).squeeze(1);
}

/* The Bellman targets rew + disc x Q_target(s', a*) (disc: discounts()), a* the network's
 * greedy action at s' (double DQN) or the target's. */
torch::Tensor bellman(bdt_dqn *o, const torch::Tensor &rew, const torch::Tensor &next, const torch::Tensor &disc)
{
    torch::NoGradGuard ng;
    q_forward(o->target->params, next, o->pass_target);
    const torch::Tensor &qt = o->pass_target.out; /* (n, A) */
    torch::Tensor a;
    if (o->cfg.double_q) {
        q_forward(o->q->params, next, o->pass_next);
        a = o->pass_next.out.argmax(1, true);
    } else {
        a = qt.argmax(1, true);
    }
    return bellman_from(qt, a, rew, disc);
}

/* The Q-network of flat parameters p (cfg's shape: `layers` ReLU layers of `hidden`, then
 * act_dim Q-values; policy.cpp's order, as q_forward's ps) on x (rows, obs_dim) into s, with
 * torch/cpunet.c's Linear and ReLU: libtorch's bits for q_forward's, without its dispatch. */
void cpu_pass(const bdt_policy_config &c, const float *p, const float *x, int rows, CpuPass &s)
{
    const size_t H = (size_t)c.hidden, L = (size_t)c.layers, R = (size_t)rows;
    s.h.resize(L * R * H);
    s.out.resize(R * (size_t)c.act_dim);
    s.rows = rows;
    const float *in = x;
    int width = c.obs_dim;
    for (size_t l = 0; l < L; l++) {
        float *z = s.h.data() + l * R * H;
        bdt_cpunet_linear(in, rows, width, p, p + H * (size_t)width, c.hidden, z);
        bdt_cpunet_relu(z, R * H);
        p += H * (size_t)width + H;
        in = z;
        width = c.hidden;
    }
    bdt_cpunet_linear(in, rows, width, p, p + (size_t)c.act_dim * (size_t)width, c.act_dim, s.out.data());
}

/* The first index of a row's largest value, a NaN taken for the largest (torch.argmax). */
int cpu_argmax(const float *v, int n)
{
    int best = 0;
    for (int k = 1; k < n && v[best] == v[best]; k++)
        if (v[k] > v[best] || v[k] != v[k])
            best = k;
    return best;
}

/* One gradient step's gradient on the CPU into the optimiser's flat gradient: the passes
 * (the network on [s; s'] with double DQN, on s without; the target on s'; split: the
 * target's on the helper's thread), the Bellman targets, the Huber loss's gradient (delta 1,
 * the batch's mean, as smooth_l1_loss_backward) at Q(s, a), and the backward pass through
 * the network on s (bdt_cpunet_linear_backward). The same arithmetic as the libtorch path
 * below, in the same order, but for the backward's BLAS arrangement and its bias sums, so
 * not always its bits. cpu_qsa and cpu_y keep Q(s, a) and the targets (the stats'). The
 * actions are whole numbers in range (bdt_dqn_update looked). */
void cpu_grad(bdt_dqn *o, const float *obs, const float *act, const float *rew, const float *next_obs,
              const float *term, int n, bool split)
{
    const bdt_policy_config &c = o->q->cfg;
    const int S = c.obs_dim, A = c.act_dim, H = c.hidden, L = c.layers;
    const bool dq = o->cfg.double_q;
    const float *x = obs;
    if (dq) { /* s and s' in one pass */
        o->cpu_rows.resize((size_t)2 * n * S);
        std::memcpy(o->cpu_rows.data(), obs, sizeof(float) * (size_t)n * S);
        std::memcpy(o->cpu_rows.data() + (size_t)n * S, next_obs, sizeof(float) * (size_t)n * S);
        x = o->cpu_rows.data();
    }
    const float *net = o->opt.data.data_ptr<float>(), *tgt = o->target_data.data_ptr<float>();
    auto theirs = [&] { cpu_pass(c, tgt, next_obs, n, o->cpu_t); };
    auto mine = [&] { cpu_pass(c, net, x, dq ? 2 * n : n, o->cpu_x); };
    if (split) {
        o->helper->beside(theirs, mine);
    } else {
        theirs();
        mine();
    }
    o->cpu_y.resize((size_t)n);
    o->cpu_qsa.resize((size_t)n);
    o->cpu_dout.assign((size_t)n * A, 0.0f);
    const float gamma = o->cfg.gamma, norm = (float)(1.0 / n);
    const float *qx = o->cpu_x.out.data(), *qt = o->cpu_t.out.data();
    for (int i = 0; i < n; i++) {
        const float a = act[i];
        const int ai = (int)a; /* a whole number in range: bdt_dqn_update looked */
        /* the greedy action at s': the network's (double DQN) or the target's */
        const int best = dq ? cpu_argmax(qx + (size_t)(n + i) * A, A) : cpu_argmax(qt + (size_t)i * A, A);
        const float disc = gamma * (1.0f - term[i]);
        const float y = rew[i] + disc * qt[(size_t)i * A + best];
        const float qsa = qx[(size_t)i * A + ai];
        const float d = qsa - y;
        o->cpu_y[i] = y;
        o->cpu_qsa[i] = qsa;
        o->cpu_dout[(size_t)i * A + ai] = d <= -1.0f ? -norm : d >= 1.0f ? norm : norm * d;
    }
    /* back through the layers on the first n rows of each (s's) */
    float *grad = o->opt.grad.data_ptr<float>();
    const std::vector<size_t> &off = o->cpu_off;
    const size_t rows = (size_t)o->cpu_x.rows;
    const float *dz = o->cpu_dout.data();
    for (int l = L; l >= 0; l--) {
        const int in = l ? H : S, out = l < L ? H : A;
        const float *xin = l ? o->cpu_x.h.data() + (size_t)(l - 1) * rows * H : x;
        float *dx = nullptr;
        if (l) {
            o->cpu_dz[l % 2].resize((size_t)n * H);
            dx = o->cpu_dz[l % 2].data();
        }
        bdt_cpunet_linear_backward(dz, xin, n, in, net + off[l], out, grad + off[l],
                                   grad + off[l] + (size_t)out * in, dx);
        dz = dx;
    }
}

/* Each layer's first parameter in the flat order (cpu_off; layers + 1 of them): true when
 * they cover the network's parameters exactly, as policy.cpp's Q-network lays them out
 * (weight, then bias, a layer at a time). Anything else keeps libtorch's operations. */
bool cpu_offsets(bdt_dqn *o)
{
    const bdt_policy_config &c = o->q->cfg;
    const std::vector<torch::Tensor> &ps = o->q->params;
    if (c.layers < 1 || ps.size() != 2 * ((size_t)c.layers + 1))
        return false;
    o->cpu_off.assign((size_t)c.layers + 1, 0);
    const float *data = o->opt.data.data_ptr<float>(), *grad = o->opt.grad.data_ptr<float>();
    int64_t at = 0;
    for (int l = 0; l <= c.layers; l++) { /* each weight and bias where the offsets say, both ways */
        const int64_t in = l ? c.hidden : c.obs_dim, out = l < c.layers ? c.hidden : c.act_dim;
        const torch::Tensor &w = ps[2 * (size_t)l], &b = ps[2 * (size_t)l + 1];
        o->cpu_off[l] = (size_t)at;
        if (w.sizes() != torch::IntArrayRef({out, in}) || b.sizes() != torch::IntArrayRef({out})
            || !w.is_contiguous() || w.data_ptr<float>() != data + at || b.data_ptr<float>() != data + at + out * in
            || !w.grad().defined() || w.grad().data_ptr<float>() != grad + at
            || b.grad().data_ptr<float>() != grad + at + out * in)
            return false;
        at += out * in + out;
    }
    return at == o->opt.data.numel();
}

/* What follows a gradient step's gradient on either path: the gradient hook (the ranks'
 * all-reduce), the clip, Adam's step and the target's update. BD_OK or the hook's error. */
int apply_grad(bdt_dqn *o, int k, int steps)
{
    if (o->grad_hook) {
        int hrc = o->opt.run_hook(o->grad_hook, o->grad_ctx, o->grad_buf);
        if (hrc != BD_OK) /* bd_seterr may read bd_lasterr's buffer: it formats apart first */
            return bd_seterr(hrc, "bdt_dqn_update: the gradient hook after %d of %d steps: %s", k, steps,
                             bd_lasterr());
    }
    if (o->cfg.max_grad_norm > 0)
        o->opt.clip(o->cfg.max_grad_norm);
    o->opt.step(); /* opt.t: the gradient steps so far */
    if (o->opt.t % o->cfg.target_every == 0)
        sync_target(o, o->cfg.tau);
    return BD_OK;
}

/* A whole call's stats on either path, beside its own loss and Q-values: the gradient
 * steps so far, whether the targets ran on the second thread, which path ran. */
void call_stats(bdt_dqn_stats *stats, const bdt_dqn *o, bool split, bool c_layers)
{
    stats->steps = (uint64_t)o->opt.t;
    stats->split = split;
    stats->c_layers = c_layers;
}

/* bdt_dqn_update on the CPU: each step's gradient by cpu_grad, straight from the caller's
 * arrays (step k's transitions are rows k n to (k + 1) n - 1 of each), the split as the
 * caller chose it. */
int cpu_update(bdt_dqn *o, const float *obs, const float *act, const float *rew, const float *next_obs,
               const float *term, int n, int steps, const volatile int *cancel, bool split, bdt_dqn_stats *stats)
{
    const size_t S = (size_t)o->q->cfg.obs_dim;
    bool any = false;
    for (int k = 0; k < steps; k++) {
        if (cancel && *cancel)
            return bd_seterr(BD_EINTR, "bdt_dqn_update: cancelled after %d of %d steps", k, steps);
        const size_t a0 = (size_t)k * (size_t)n;
        cpu_grad(o, obs + a0 * S, act + a0, rew + a0, next_obs + a0 * S, term + a0, n, split);
        any = true;
        if (k == 0 && stats) {
            double sum = 0;
            for (float q : o->cpu_qsa)
                sum += q;
            stats->q_first = (float)(sum / n);
        }
        const int rc = apply_grad(o, k, steps);
        if (rc != BD_OK)
            return rc;
    }
    if (stats) {
        call_stats(stats, o, split, true);
        if (any) { /* the last step's, before it: the Huber loss (delta 1) and Q(s, a)'s mean */
            double loss = 0, q = 0;
            for (int i = 0; i < n; i++) {
                const double d = std::fabs((double)o->cpu_qsa[i] - o->cpu_y[i]);
                loss += d < 1 ? 0.5 * d * d : d - 0.5;
                q += o->cpu_qsa[i];
            }
            stats->loss = (float)(loss / n);
            stats->q_mean = (float)(q / n);
        }
    }
    return BD_OK;
}

} // namespace

extern "C" int bdt_dqn_create(bdt_policy *q, const bdt_dqn_config *cfg, bdt_dqn **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bdt_dqn_create: out is NULL");
    *out = nullptr;
    if (!q || !cfg)
        return bd_seterr(BD_EINVAL, "bdt_dqn_create: NULL argument");
    if (enum_as_int(&q->cfg.act_kind) != BDT_Q)
        return bd_seterr(BD_EINVAL, "bdt_dqn_create: the network is not a Q-network (act_kind %s)",
                         kind_name(enum_as_int(&q->cfg.act_kind)));
    if (!(cfg->lr > 0) || !(cfg->gamma >= 0 && cfg->gamma <= 1) || cfg->target_every < 1 || !(cfg->tau > 0)
        || cfg->tau > 1)
        return bd_seterr(BD_EINVAL, "bdt_dqn_create: lr %g, gamma %g, target_every %d, tau %g out of range",
                         (double)cfg->lr, (double)cfg->gamma, cfg->target_every, (double)cfg->tau);
    try {
        std::unique_ptr<bdt_dqn> o(new bdt_dqn);
        o->q = q;
        o->cfg = *cfg;
        o->opt.init(q->params, cfg->lr, adam_options(*cfg).eps());
        /* the target starts as the network: no init drawn for it only to be replaced */
        torch::Tensor host = o->opt.data.to(torch::kCPU).contiguous();
        int rc = bdt_policy_create_from(&q->cfg, host.data_ptr<float>(), (size_t)host.numel(), &o->target);
        if (rc != BD_OK)
            return rc;
        o->target_data = o->opt.views_for(o->target->params); /* the target starts as the network */
        o->cpu_layers = !cfg->torch_ops && q->dev.is_cpu() && o->opt.data.scalar_type() == torch::kFloat32
                        && o->opt.data.is_contiguous() && o->opt.grad.is_contiguous() && cpu_offsets(o.get());
        *out = o.release();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_dqn_create");
    }
}

extern "C" void bdt_dqn_destroy(bdt_dqn *o)
{
    try {
        delete o;
    } catch (...) {
    }
}

extern "C" int bdt_dqn_set_lr(bdt_dqn *o, float lr)
{
    if (!o || !(lr > 0))
        return bd_seterr(BD_EINVAL, "bdt_dqn_set_lr: no handle or lr %g", (double)lr);
    o->opt.lr = lr;
    o->cfg.lr = lr;
    return BD_OK;
}

extern "C" int bdt_dqn_targets(bdt_dqn *o, const float *rew, const float *next_obs, const float *term, int n,
                               float *y)
{
    if (!o || n < 0 || (n > 0 && (!rew || !next_obs || !term || !y)))
        return bd_seterr(BD_EINVAL, "bdt_dqn_targets: NULL argument or n %d", n);
    if (n == 0)
        return BD_OK;
    FtzGuard ftz;
    try {
        const torch::Device &dev = o->q->dev;
        torch::Tensor t = bellman(o, upload(rew, {n}, dev), upload(next_obs, {n, o->q->cfg.obs_dim}, dev),
                                  discounts(o, upload(term, {n}, dev)));
        download(t, y, (size_t)n);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_dqn_targets");
    }
}

extern "C" int bdt_dqn_update(bdt_dqn *o, const float *obs, const float *act, const float *rew,
                              const float *next_obs, const float *term, int n, int steps,
                              const volatile int *cancel, bdt_dqn_stats *stats)
{
    if (!o || n < 1 || steps < 0 || !obs || !act || !rew || !next_obs || !term)
        return bd_seterr(BD_EINVAL, "bdt_dqn_update: NULL argument, n %d or steps %d", n, steps);
    const int64_t m = (int64_t)n * steps;
    for (int64_t i = 0; i < m; i++) /* on any device: an index past the Q-values is no CUDA assert */
        if (!(act[i] >= 0 && act[i] < (float)o->q->cfg.act_dim && act[i] == std::floor(act[i])))
            return bd_seterr(BD_EINVAL, "bdt_dqn_update: transition %lld's action is %g, not a whole number from 0 "
                             "to %d", (long long)i, (double)act[i], o->q->cfg.act_dim - 1);
    FtzGuard ftz;
    try {
        const torch::Device &dev = o->q->dev;
        const int64_t S = o->q->cfg.obs_dim;
        const bool split = helper_ready(o->helper, o->split, o->q->dev);
        Helper::Hold held(split ? o->helper.get() : nullptr);
        if (o->cpu_layers)
            return cpu_update(o, obs, act, rew, next_obs, term, n, steps, cancel, split, stats);
        torch::Tensor X = upload(obs, {m, S}, dev), NX = upload(next_obs, {m, S}, dev);
        torch::Tensor A = upload(act, {m}, dev).to(torch::kLong), R = upload(rew, {m}, dev);
        torch::NoGradGuard ng; /* the gradients by hand (q_backward) */
        const torch::Tensor D = discounts(o, upload(term, {m}, dev));
        torch::Tensor qsa, y;
        QGrad &g = o->g;
        if (!g.one.defined())
            g.one = torch::ones({}, X.options());
        /* double DQN: each step's s and s' rows one after the other, so that the network
         * runs on both in one pass (one matrix product a layer, not two) */
        const torch::Tensor XN = o->cfg.double_q ? step_pairs(obs, next_obs, steps, n, S, dev) : torch::Tensor();
        for (int k = 0; k < steps; k++) {
            if (cancel && *cancel)
                return bd_seterr(BD_EINTR, "bdt_dqn_update: cancelled after %d of %d steps", k, steps);
            const int64_t a0 = (int64_t)k * n, a1 = a0 + n;
            const torch::Tensor x = X.slice(0, a0, a1), ai = A.slice(0, a0, a1).unsqueeze(1);
            /* double DQN: the target's pass on s' beside the network's on s and s'; without
             * it, the targets (the target's pass and max) beside the network's on s */
            auto theirs = [&] {
                torch::NoGradGuard tng; /* grad mode is the thread's own */
                if (XN.defined())
                    q_forward(o->target->params, NX.slice(0, a0, a1), o->pass_target);
                else
                    y = bellman(o, R.slice(0, a0, a1), NX.slice(0, a0, a1), D.slice(0, a0, a1));
            };
            auto mine = [&] { q_forward(o->q->params, XN.defined() ? XN.select(0, k) : x, o->pass_x); };
            /* split: both on their own threads; both only read the parameters, which
             * change after both are done */
            if (split) {
                o->helper->beside(theirs, mine);
            } else {
                theirs();
                mine();
            }
            const torch::Tensor &qx = o->pass_x.out;
            if (XN.defined()) /* the network's greedy action at s', valued by the target */
                y = bellman_from(o->pass_target.out, qx.narrow(0, n, n).argmax(1, true), R.slice(0, a0, a1),
                                 D.slice(0, a0, a1));
            qsa = (XN.defined() ? qx.narrow(0, 0, n) : qx).gather(1, ai).squeeze(1);
            if (k == 0 && stats)
                stats->q_first = qsa.mean().item<float>();
            /* the Huber loss's (delta 1, the mean) gradient into Q(s, a), then through the
             * gather into the Q-values, as autograd's SmoothL1Loss and Gather backward */
            torch::Tensor gq = at::smooth_l1_loss_backward(g.one, qsa, y, at::Reduction::Mean, 1.0);
            sized(g.dout, n, o->pass_x.out.size(1), x).zero_().scatter_add_(1, ai, gq.unsqueeze(1));
            q_backward(o->q->params, x, o->pass_x, g);
            const int rc = apply_grad(o, k, steps);
            if (rc != BD_OK)
                return rc;
        }
        if (stats) {
            call_stats(stats, o, split, false);
            if (qsa.defined()) { /* the last step's, before it */
                stats->loss = torch::nn::functional::smooth_l1_loss(qsa, y).item<float>(); /* Huber, delta 1 */
                stats->q_mean = qsa.mean().item<float>();
            }
        }
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_dqn_update");
    }
}

extern "C" int bdt_dqn_mark(bdt_dqn *o)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_dqn_mark: o is NULL");
    try {
        torch::NoGradGuard ng;
        auto k = std::make_unique<DqnMark>();
        k->q = o->opt.keep();
        k->target = o->target_data.clone();
        o->mark = std::move(k);
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_dqn_mark");
    }
}

extern "C" int bdt_dqn_restore(bdt_dqn *o)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_dqn_restore: o is NULL");
    if (!o->mark)
        return bd_seterr(BD_ESTATE, "bdt_dqn_restore: nothing marked");
    try {
        torch::NoGradGuard ng;
        const DqnMark &k = *o->mark;
        o->opt.put_back(k.q);
        o->target_data.copy_(k.target);
        o->mark.reset();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_dqn_restore");
    }
}

extern "C" int bdt_dqn_set_split(bdt_dqn *o, int on)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_dqn_set_split: o is NULL");
    o->split = on != 0; /* off keeps a helper made, asleep, until the handle goes */
    return BD_OK;
}

extern "C" void bdt_dqn_set_grad_hook(bdt_dqn *o, bdt_grad_hook hook, void *ctx)
{
    if (o) {
        o->grad_hook = hook;
        o->grad_ctx = ctx;
    }
}

extern "C" int bdt_dqn_target_params(bdt_dqn *o, float *dst, size_t n)
{
    if (!o)
        return bd_seterr(BD_EINVAL, "bdt_dqn_target_params: no handle");
    return bdt_policy_get_params(o->target, dst, n);
}

extern "C" int bdt_dqn_save(bdt_dqn *o, const char *path)
{
    if (!o || !path)
        return bd_seterr(BD_EINVAL, "bdt_dqn_save: NULL argument");
    std::unique_ptr<torch::optim::Adam> adam; /* the ppo format's Adam state */
    try {
        adam.reset(new torch::optim::Adam(o->q->params, adam_options(o->cfg)));
        o->opt.to_adam(*adam);
    } catch (...) {
        return catch_torch("bdt_dqn_save", path);
    }
    int rc = save_policy(o->q, adam.get(), path);
    if (rc == BD_OK)
        rc = save_policy(o->target, nullptr, (std::string(path) + ".target.pt").c_str());
    return rc;
}

extern "C" int bdt_dqn_load(bdt_dqn *o, const char *path)
{
    if (!o || !path)
        return bd_seterr(BD_EINVAL, "bdt_dqn_load: NULL argument");
    /* the learner as it is, put back should any part of the load fail (the network and
     * Adam's state are read first, then the target) */
    FlatAdam::Kept kept;
    torch::Tensor target_kept;
    try {
        kept = o->opt.keep();
        target_kept = o->target_data.clone();
    } catch (...) {
        return catch_torch("bdt_dqn_load", path);
    }
    std::unique_ptr<torch::optim::Adam> opt;
    const torch::optim::AdamOptions adam = adam_options(o->cfg);
    int rc = load_policy(o->q, &adam, &opt, path); /* into the flat buffer's views */
    try {
        if (rc == BD_OK && !o->opt.from_adam(*opt))
            rc = bd_seterr(BD_EINVAL, "bdt_dqn_load: %s: the optimiser state does not fit the network", path);
        const std::string tp = std::string(path) + ".target.pt";
        struct stat st;
        if (rc == BD_OK && stat(tp.c_str(), &st) == 0)
            rc = load_policy(o->target, nullptr, nullptr, tp.c_str());
        else if (rc == BD_OK)
            sync_target(o, 1.0f);
        if (rc != BD_OK) {
            const std::string why = bd_lasterr(); /* not the buffer bd_seterr writes */
            o->opt.put_back(kept);
            o->target_data.copy_(target_kept);
            return bd_seterr(rc, "%s", why.c_str());
        }
    } catch (...) {
        return catch_torch("bdt_dqn_load", path);
    }
    o->mark.reset(); /* a mark from before the load would undo it */
    return BD_OK;
}
