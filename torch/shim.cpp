/* shim.cpp: the shim's shared helpers (errors, copies) and its process-wide settings
 * (see shim.hpp and torch/bd_torch.h). */
#include "torch/shim.hpp"

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

void grads_to_none(std::vector<torch::Tensor> &params)
{
    for (auto &t : params)
        t.mutable_grad() = torch::Tensor();
}

} // namespace bd_shim

using namespace bd_shim;

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
