/* dist.cpp: learner groups over c10d's ProcessGroupGloo (torch/dist.h). */
#include <chrono>
#include <string>
#include <unistd.h>

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "torch/shim.hpp"
#include "torch/dist.h"

using namespace bd_shim;

struct bdt_group {
    c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
    int rank = 0, size = 1;
    std::chrono::milliseconds timeout{60000};
};

extern "C" int bdt_group_join(const char *store_path, const char *name, int rank, int world, const char *host,
                              double timeout_s, bdt_group **out)
{
    if (!store_path || !name || !out || world < 1 || rank < 0 || rank >= world || !(timeout_s > 0))
        return bd_seterr(BD_EINVAL, "bdt_group_join: bad arguments (rank %d of %d, timeout %g s)", rank, world,
                         timeout_s);
    *out = nullptr;
    try {
        auto g = std::make_unique<bdt_group>();
        g->rank = rank;
        g->size = world;
        g->timeout = std::chrono::milliseconds((long long)(timeout_s * 1000.0));
        auto file = c10::make_intrusive<c10d::FileStore>(store_path, world);
        file->setTimeout(g->timeout);
        auto store = c10::make_intrusive<c10d::PrefixStore>(name, file);
        auto opts = c10d::ProcessGroupGloo::Options::create(g->timeout);
        char hn[256] = "";
        if (!host) {
            if (gethostname(hn, sizeof hn - 1) == 0)
                host = hn;
        }
        try {
            opts->devices.push_back(host ? c10d::ProcessGroupGloo::createDeviceForHostname(host)
                                         : c10d::ProcessGroupGloo::createDefaultDevice());
        } catch (...) {
            if (host == hn) /* this machine's name does not resolve: loopback (one host) */
                opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
            else
                throw;
        }
        opts->threads = 1;
        g->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
        *out = g.release();
        return BD_OK;
    } catch (...) {
        return catch_torch("bdt_group_join", store_path);
    }
}

extern "C" void bdt_group_leave(bdt_group *g)
{
    try {
        delete g;
    } catch (...) {
    }
}

extern "C" int bdt_group_rank(const bdt_group *g) { return g ? g->rank : 0; }
extern "C" int bdt_group_size(const bdt_group *g) { return g ? g->size : 1; }

template <typename T> static torch::Tensor wrap(T *x, size_t n)
{
    return torch::from_blob(x, {(int64_t)n}, std::is_same<T, double>::value ? torch::kFloat64 : torch::kFloat32);
}

extern "C" int bdt_group_allreduce_mean(bdt_group *g, float *x, size_t n)
{
    if (!g || (!x && n))
        return bd_seterr(BD_EINVAL, "bdt_group_allreduce_mean: no group or buffer");
    if (n == 0 || g->size == 1)
        return BD_OK;
    try {
        FtzGuard ftz;
        std::vector<torch::Tensor> t{wrap(x, n)};
        c10d::AllreduceOptions o;
        o.timeout = g->timeout;
        g->pg->allreduce(t, o)->wait(g->timeout);
        t[0].div_((float)g->size);
        return BD_OK;
    } catch (...) {
        return catch_torch("all-reduce of the learners' gradients");
    }
}

extern "C" int bdt_group_allreduce_f64(bdt_group *g, double *x, size_t n, int op)
{
    if (!g || (!x && n) || op < 0 || op > 2)
        return bd_seterr(BD_EINVAL, "bdt_group_allreduce_f64: bad arguments");
    if (n == 0 || g->size == 1)
        return BD_OK;
    try {
        std::vector<torch::Tensor> t{wrap(x, n)};
        c10d::AllreduceOptions o;
        o.reduceOp = op == 0 ? c10d::ReduceOp::SUM : op == 1 ? c10d::ReduceOp::MAX : c10d::ReduceOp::MIN;
        o.timeout = g->timeout;
        g->pg->allreduce(t, o)->wait(g->timeout);
        return BD_OK;
    } catch (...) {
        return catch_torch("all-reduce of the learners' statistics");
    }
}

extern "C" int bdt_group_broadcast(bdt_group *g, float *x, size_t n, int root)
{
    if (!g || (!x && n) || root < 0 || root >= g->size)
        return bd_seterr(BD_EINVAL, "bdt_group_broadcast: bad arguments");
    if (n == 0 || g->size == 1)
        return BD_OK;
    try {
        std::vector<torch::Tensor> t{wrap(x, n)};
        c10d::BroadcastOptions o;
        o.rootRank = root;
        o.timeout = g->timeout;
        g->pg->broadcast(t, o)->wait(g->timeout);
        return BD_OK;
    } catch (...) {
        return catch_torch("broadcast of rank 0's parameters");
    }
}
