/* shim.cpp: the shim's shared helpers (errors, copies) and its process-wide settings
 * (see shim.hpp and torch/bd_torch.h). */
#include "torch/shim.hpp"

#include "common/hostdev.h"

#include <sched.h>

#include <chrono>

namespace bd_shim {

/* Called from a catch block: the current exception as a bd_err, detail "where: [path: ]what".
 * c10::Error's what() carries a backtrace; the message alone is enough here. */
int catch_torch(const char *where, const char *path)
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

const char *kind_name(int k)
{
    return k == BDT_DISCRETE ? "discrete" : k == BDT_CONTINUOUS ? "continuous" : k == BDT_Q ? "q"
           : k == BDT_SQUASHED ? "squashed" : "?";
}

/* how long a held helper, or its caller, polls before it sleeps (Helper::hold) */
constexpr std::chrono::microseconds kHeldPoll{2000};

/* The thread blocks every signal: the process's handlers (a brain's SIGINT and SIGTERM)
 * run on its caller's threads, as before there was a helper. */
Helper::Helper()
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    try {
        thr = std::thread(&Helper::loop, this);
    } catch (...) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

Helper::~Helper()
{
    held = false;
    {
        std::lock_guard<std::mutex> g(mu);
        quit = true;
    }
    cv.notify_all();
    thr.join();
}

void Helper::loop()
{
    FtzGuard ftz; /* for the thread's life: its results must be the caller's */
    std::unique_lock<std::mutex> g(mu);
    for (;;) {
        if (held && !busy) { /* the next task comes within microseconds: look for it */
            g.unlock();
            const auto until = std::chrono::steady_clock::now() + kHeldPoll;
            while (held.load(std::memory_order_acquire) && !busy.load(std::memory_order_acquire)
                   && std::chrono::steady_clock::now() < until)
                sched_yield();
            g.lock();
        }
        cv.wait(g, [this] { return quit || (busy && task); });
        if (quit)
            return;
        std::function<void()> t = std::move(task);
        task = nullptr;
        g.unlock();
        std::exception_ptr e;
        try {
            t();
        } catch (...) {
            e = std::current_exception();
        }
        g.lock();
        err = e;
        busy = false;
        cv.notify_all();
    }
}

void Helper::start(std::function<void()> t)
{
    {
        std::lock_guard<std::mutex> g(mu);
        task = std::move(t);
        busy = true;
        err = nullptr;
    }
    cv.notify_all();
}

void Helper::hold(bool on)
{
    held.store(on, std::memory_order_release);
}

void Helper::wait()
{
    const auto until = std::chrono::steady_clock::now() + kHeldPoll;
    while (held.load(std::memory_order_acquire) && busy.load(std::memory_order_acquire)
           && std::chrono::steady_clock::now() < until)
        sched_yield();
    std::unique_lock<std::mutex> g(mu);
    cv.wait(g, [this] { return !busy; });
    std::exception_ptr e = err;
    err = nullptr;
    if (e)
        std::rethrow_exception(e);
}

void Helper::beside(const std::function<void()> &theirs, const std::function<void()> &mine)
{
    start(std::ref(theirs)); /* theirs outlives the wait below: no copy */
    try {
        mine();
    } catch (...) {
        try {
            wait();
        } catch (...) {
        }
        throw;
    }
    wait();
}

bool helper_ready(std::unique_ptr<Helper> &helper, bool &split, const torch::Device &dev)
{
    if (!split || !dev.is_cpu())
        return false;
    if (!helper) {
        try {
            helper.reset(new Helper);
        } catch (const std::system_error &) { /* no thread to be had: one thread it is */
            split = false;
        }
    }
    return split;
}

Snapshot take_snapshot(const std::vector<torch::Tensor> &params, torch::optim::Adam &opt)
{
    torch::NoGradGuard ng;
    Snapshot s;
    for (const auto &t : params)
        s.params.push_back(t.detach().clone());
    torch::serialize::OutputArchive a;
    opt.save(a);
    std::ostringstream os;
    a.save_to(os);
    s.opt = os.str();
    return s;
}

void restore_snapshot(std::vector<torch::Tensor> &params, torch::optim::Adam &opt, const Snapshot &s)
{
    torch::NoGradGuard ng;
    for (size_t i = 0; i < s.params.size(); i++)
        params[i].copy_(s.params[i]);
    torch::serialize::InputArchive a;
    std::istringstream is(s.opt);
    a.load_from(is);
    opt.state().clear(); /* load sets the states it holds and leaves others: none from after the snapshot */
    opt.load(a);
}

void FlatAdam::init(const std::vector<torch::Tensor> &params, double rate, double epsilon)
{
    torch::NoGradGuard ng;
    ps = params;
    lr = rate;
    eps = epsilon;
    t = 0;
    int64_t n = 0;
    for (const auto &p : ps)
        n += p.numel();
    const auto opts = ps.at(0).options().requires_grad(false);
    data = torch::empty({n}, opts);
    grad = torch::zeros({n}, opts);
    m = torch::zeros({n}, opts);
    v = torch::zeros({n}, opts);
    int64_t off = 0;
    for (auto &p : ps) {
        const int64_t k = p.numel();
        data.slice(0, off, off + k).copy_(p.detach().reshape({-1}));
        p.set_data(data.slice(0, off, off + k).view(p.sizes()));
        p.mutable_grad() = grad.slice(0, off, off + k).view(p.sizes());
        off += k;
    }
}

namespace {
/* Adam's step over n floats in one pass: libtorch's formula as FlatAdam::step's tensor
 * operations below write it (m = b1 m + (1 - b1) g; v = b2 v + ((1 - b2) g) g;
 * d += (step m) / (sqrt(v) / sqrt(bc2) + eps)), with the coefficients rounded to float
 * as libtorch rounds them, though not always its bits (its vector kernels may fuse a
 * product into its sum). Built for AVX-512, AVX2 and plain x86-64 (BD_CPU_CLONES), each element's
 * arithmetic the same on all three, so every CPU gets the same bits; errno is not set by
 * sqrt here (shim.cpp is built with -fno-math-errno; v is never negative), which lets
 * the compiler use vector square roots. */
BD_CPU_CLONES void adam_cpu(float *__restrict d, float *__restrict m, float *__restrict v, const float *__restrict g,
                            int64_t n, float b1, float c1, float b2, float c2, float sbc2, float eps, float step)
{
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        const float mi = m[i] * b1 + c1 * gi;
        const float vi = v[i] * b2 + (c2 * gi) * gi;
        m[i] = mi;
        v[i] = vi;
        d[i] += (step * mi) / (__builtin_sqrtf(vi) / sbc2 + eps);
    }
}

/* whether t is a contiguous float buffer of n elements on the CPU */
bool host_floats(const torch::Tensor &t, int64_t n)
{
    return t.is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.numel() == n;
}
} // namespace

void FlatAdam::step()
{
    torch::NoGradGuard ng;
    t++;
    const double bc1 = 1 - std::pow(b1, (double)t), bc2 = 1 - std::pow(b2, (double)t);
    const int64_t n = data.numel();
    if (host_floats(data, n) && host_floats(grad, n) && host_floats(m, n) && host_floats(v, n)) {
        /* one pass, not eight operations each over the whole buffer (a DQN step at hidden 64
         * spent about a tenth of its time in them) */
        adam_cpu(data.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(), grad.data_ptr<float>(), n,
                 (float)b1, (float)(1 - b1), (float)b2, (float)(1 - b2), (float)std::sqrt(bc2), (float)eps,
                 (float)(-lr / bc1));
        return;
    }
    m.mul_(b1).add_(grad, 1 - b1);
    v.mul_(b2).addcmul_(grad, grad, 1 - b2);
    data.addcdiv_(m, (v.sqrt() / std::sqrt(bc2)).add_(eps), -lr / bc1);
}

void FlatAdam::clip(double max_norm)
{
    torch::NoGradGuard ng;
    const double coef = max_norm / (grad.norm().item<double>() + 1e-6);
    if (!(coef >= 1)) /* a norm that is not a number makes the gradient so, as libtorch's */
        grad.mul_(coef);
}

int FlatAdam::run_hook(bdt_grad_hook hook, void *ctx, std::vector<float> &buf)
{
    torch::NoGradGuard ng;
    const size_t n = (size_t)grad.numel();
    if (grad.is_cpu() && grad.is_contiguous())
        return hook(ctx, grad.data_ptr<float>(), n);
    buf.resize(n);
    torch::Tensor h = torch::from_blob(buf.data(), {(int64_t)n}, torch::kFloat32);
    h.copy_(grad);
    const int rc = hook(ctx, buf.data(), n);
    if (rc == BD_OK)
        grad.copy_(h);
    return rc;
}

torch::Tensor FlatAdam::views_for(std::vector<torch::Tensor> &like) const
{
    torch::NoGradGuard ng;
    torch::Tensor flat = data.clone();
    int64_t off = 0;
    for (auto &t : like) {
        const int64_t k = t.numel();
        t.set_requires_grad(false);
        t.set_data(flat.slice(0, off, off + k).view(t.sizes()));
        off += k;
    }
    return flat;
}

void FlatAdam::save(torch::serialize::OutputArchive &ar, const char *key) const
{
    write_tensors(ar, key, {m, v, torch::tensor(std::vector<float>{(float)t})});
}

int FlatAdam::load(torch::serialize::InputArchive &ar, const char *key, std::vector<torch::Tensor> &out) const
{
    return read_tensors(ar, key, {m, v, torch::zeros({1})}, out);
}

void FlatAdam::take(const std::vector<torch::Tensor> &st)
{
    torch::NoGradGuard ng;
    m.copy_(st[0]);
    v.copy_(st[1]);
    t = (int64_t)st[2].item<float>();
}

/* torch::optim::Adam keys a parameter's state by its TensorImpl, as its step does. */
static std::string adam_key(const torch::Tensor &p)
{
    return c10::guts::to_string(p.unsafeGetTensorImpl());
}

void FlatAdam::to_adam(torch::optim::Adam &opt) const
{
    torch::NoGradGuard ng;
    opt.state().clear();
    if (t == 0) /* as libtorch's Adam before its first step: no state */
        return;
    int64_t off = 0;
    for (const auto &p : ps) {
        const int64_t k = p.numel();
        auto st = std::make_unique<torch::optim::AdamParamState>();
        st->step(t);
        st->exp_avg(m.slice(0, off, off + k).view(p.sizes()).clone());
        st->exp_avg_sq(v.slice(0, off, off + k).view(p.sizes()).clone());
        opt.state()[adam_key(p)] = std::move(st);
        off += k;
    }
}

bool FlatAdam::from_adam(torch::optim::Adam &opt)
{
    torch::NoGradGuard ng;
    torch::Tensor m2 = torch::zeros_like(m), v2 = torch::zeros_like(v);
    int64_t step = -1, off = 0;
    size_t with = 0;
    for (const auto &p : ps) {
        const int64_t k = p.numel();
        auto it = opt.state().find(adam_key(p));
        if (it != opt.state().end()) {
            auto &st = static_cast<torch::optim::AdamParamState &>(*it->second);
            const torch::Tensor &a = st.exp_avg(), &b = st.exp_avg_sq();
            if (!a.defined() || !b.defined() || a.numel() != k || b.numel() != k || (step >= 0 && st.step() != step)
                || st.step() < 1)
                return false;
            step = st.step();
            m2.slice(0, off, off + k).copy_(a.reshape({-1}));
            v2.slice(0, off, off + k).copy_(b.reshape({-1}));
            with++;
        }
        off += k;
    }
    if (with != 0 && with != ps.size()) /* every parameter stepped as often, or none */
        return false;
    m.copy_(m2);
    v.copy_(v2);
    t = with ? step : 0;
    return true;
}

FlatAdam::Kept FlatAdam::keep() const
{
    torch::NoGradGuard ng;
    return Kept{data.clone(), m.clone(), v.clone(), t};
}

void FlatAdam::put_back(const Kept &k)
{
    torch::NoGradGuard ng;
    data.copy_(k.data);
    m.copy_(k.m);
    v.copy_(k.v);
    t = k.t;
}

void grads_to_none(std::vector<torch::Tensor> &params)
{
    for (auto &t : params)
        t.mutable_grad() = torch::Tensor();
}

} // namespace bd_shim

using namespace bd_shim;

extern "C" const char *bdt_abi(void)
{
    return BDT_ABI_HASH;
}

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

int bdt_run_grad_hook(const std::vector<torch::Tensor> &params, std::vector<float> &buf, bdt_grad_hook hook,
                      void *ctx)
{
    torch::NoGradGuard ng;
    size_t n = 0;
    for (const auto &t : params)
        n += (size_t)t.numel();
    buf.resize(n);
    size_t at = 0;
    for (const auto &t : params) {
        torch::Tensor g = t.grad().defined() ? t.grad().detach().to(torch::kCPU).contiguous()
                                             : torch::zeros({t.numel()}, torch::kFloat32);
        std::memcpy(buf.data() + at, g.data_ptr<float>(), sizeof(float) * (size_t)t.numel());
        at += (size_t)t.numel();
    }
    int rc = hook(ctx, buf.data(), n);
    if (rc != BD_OK)
        return rc;
    at = 0;
    for (auto t : params) {
        torch::Tensor g = torch::from_blob(buf.data() + at, t.sizes(), torch::kFloat32).to(t.device());
        if (t.grad().defined())
            t.mutable_grad().copy_(g);
        else
            t.mutable_grad() = g.clone();
        at += (size_t)t.numel();
    }
    return BD_OK;
}
