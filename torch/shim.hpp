/* shim.hpp: what the files of the libtorch shim behind torch/bd_torch.h share (the only
 * C++ in bodhi; not an interface of its own): the network, the handles, errors, the
 * flush-to-zero guard. policy.cpp builds and runs the network, ppo.cpp updates it,
 * checkpoint.cpp saves and loads it, shim.cpp holds the rest.
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
 */
#ifndef BODHI_TORCH_SHIM_HPP
#define BODHI_TORCH_SHIM_HPP

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
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

namespace bd_shim {

/* CleanRL's network: two separate trunks plus, for continuous actions, a free log std.
 * A Q-network (BDT_Q, CleanRL's dqn.py) is one trunk of ReLU layers, `actor` here, with a
 * value per action and no critic. */
struct ActorCritic : torch::nn::Module {
    torch::nn::Sequential critic{nullptr}; /* (n, obs) -> (n, 1); none for BDT_Q */
    torch::nn::Sequential actor{nullptr};  /* (n, obs) -> (n, act_dim) */
    torch::Tensor logstd;                  /* (1, act_dim), continuous only */

    /* A squashed Gaussian (SAC's actor) has no critic: its critics are Q-networks of the
     * algorithm's own (torch/sac.cpp). */
    ActorCritic(const bdt_policy_config &c)
    {
        if (c.act_kind == BDT_Q) {
            actor = register_module("q", trunk(c.obs_dim, c.hidden, c.layers, c.act_dim, true));
            return;
        }
        if (c.act_kind == BDT_CONTINUOUS)
            logstd = register_parameter("actor_logstd", torch::zeros({1, c.act_dim}));
        if (c.act_kind != BDT_SQUASHED)
            critic = register_module("critic", trunk(c.obs_dim, c.hidden, c.layers, 1, false));
        actor = register_module("actor", trunk(c.obs_dim, c.hidden, c.layers, bdt_policy_out_dim(&c),
                                               c.act_kind == BDT_SQUASHED));
    }

    /* `layers` hidden layers of `hidden` units, tanh (CleanRL's PPO) or ReLU (its DQN, SAC). */
    static torch::nn::Sequential trunk(int in, int hidden, int layers, int out, bool relu)
    {
        torch::nn::Sequential s;
        for (int i = 0; i < layers; i++) {
            s->push_back(torch::nn::Linear(in, hidden));
            if (relu)
                s->push_back(torch::nn::ReLU());
            else
                s->push_back(torch::nn::Tanh());
            in = hidden;
        }
        s->push_back(torch::nn::Linear(in, out));
        return s;
    }
};

/* heads.cpp: the log-probability of actions `act` and the entropy of the policy's head
 * (each (n)) given the actor's output `out` (n, act_dim): categorical over logits
 * (discrete: act (n) indices) or the diagonal Gaussian of means `out` and net's log std. */
void head_logp_entropy(const ActorCritic &net, bool discrete, const torch::Tensor &out, const torch::Tensor &act,
                       torch::Tensor &logp, torch::Tensor &entropy);

/* checkpoint.cpp: p's parameters and, with o, an optimiser's state to path, in the format
 * of bdt_save; and back (with adam and o: an optimiser of those options over p's
 * parameters, its state read from the file, into *o). Nothing changes when loading fails. */
int save_policy(bdt_policy *p, torch::optim::Adam *o, const char *path);
int load_policy(bdt_policy *p, const torch::optim::AdamOptions *adam, std::unique_ptr<torch::optim::Adam> *o,
                const char *path);

/* heads.cpp: the squashed Gaussian of an actor's output out (n, 2 A: means, raw log stds):
 * its log std (squashed_logstd, BDT_LOGSTD_MIN..MAX), and at standard normal draws eps
 * (n, A; undefined: greedy, eps = 0) the actions tanh(mean + std eps) * scale + bias (n, A)
 * and their log-densities (n) with the change of variables through tanh and the scale. */
torch::Tensor squashed_logstd(const torch::Tensor &raw);
void squashed_sample(const torch::Tensor &out, const torch::Tensor &eps, const torch::Tensor &scale,
                     const torch::Tensor &bias, torch::Tensor &act, torch::Tensor &logp);

/* torch.nn.init.orthogonal_ of w (rows, cols...) times gain, drawn from gen (policy.cpp). */
void orthogonal_(torch::Tensor w, double gain, at::Generator &gen);

/* checkpoint.cpp: a checkpoint file of `format` (see its opening comment) around the archive
 * inner, with the int64 architecture arch; and read back (arch: its narch numbers, for the
 * caller to check; inner loaded onto dev). BD_OK, or an error naming `where` and path. */
int write_checkpoint(const char *path, const char *format, const std::vector<int64_t> &arch,
                     torch::serialize::OutputArchive &inner, const char *where);
/* format NULL: either of the formats below, the one found in *found (narch its own) */
int read_checkpoint(const char *path, const char *format, size_t narch, std::vector<int64_t> &arch,
                    torch::serialize::InputArchive &inner, const torch::Device &dev, const char *where,
                    const char **found = nullptr);
/* The formats: ppo's and dqn's networks (checkpoint.cpp, arch of 5), sac's learner
 * (sac.cpp, arch of 4). */
inline constexpr const char *kPolicyFormat = "bodhi-torch-2";
inline constexpr const char *kSacFormat = "bodhi-sac-1";
/* Tensors as a nested archive `key` ("0", "1", ...); read back shaped as `like` (0 when one
 * is missing or has another shape or type). */
void write_tensors(torch::serialize::OutputArchive &inner, const char *key, const std::vector<torch::Tensor> &ts);
int read_tensors(torch::serialize::InputArchive &inner, const char *key, const std::vector<torch::Tensor> &like,
                 std::vector<torch::Tensor> &out);

/* Called from a catch block: the current exception as a bd_err, detail "where: [path: ]what". */
int catch_torch(const char *where, const char *path = nullptr);

/* A host float array as a tensor on `dev` (no copy on the CPU; never written to). */
torch::Tensor upload(const float *src, torch::IntArrayRef shape, const torch::Device &dev);

/* Copy a float tensor of exactly n elements out to host memory. */
void download(const torch::Tensor &t, float *dst, size_t n);

template <typename E> int enum_as_int(const E *e)
{
    static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
    int v;
    std::memcpy(&v, e, sizeof v);
    return v;
}

/* "discrete", "continuous" or "?". */
const char *kind_name(int k);

inline const double kLogSqrt2Pi = 0.5 * std::log(2.0 * M_PI);

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

/* A second thread of a learner's own for work beside the caller's (ppo.cpp: a minibatch's
 * critic beside its actor): one task at a time, handed over and waited for through a
 * condition variable (the waiting thread sleeps, so a busy second core costs a context
 * switch, not a spinning core). It runs under flush-to-zero and denormals-are-zero, as the
 * shim's callers do (FtzGuard), with libtorch's intra-op threads as the process set them. */
class Helper {
  public:
    Helper();
    ~Helper();
    Helper(const Helper &) = delete;
    Helper &operator=(const Helper &) = delete;
    void start(std::function<void()> task); /* runs task on the helper's thread */
    void wait();                             /* until it is done; rethrows what it threw */
    /* While held, the helper's thread between tasks and a caller in wait() poll, giving
     * the core away at each look (sched_yield), for up to 2 ms each time before they
     * sleep: for a run of tasks of a few hundred microseconds each, under a millisecond
     * apart (dqn.cpp's target passes, one per gradient step), where waking a sleeping
     * thread (50-100 us on this VM's idle core) costs about what the task saves. Held
     * only inside one call of the caller's (Hold), never between calls. */
    void hold(bool on);
    struct Hold { /* held for a scope; NULL: nothing */
        Helper *h;
        explicit Hold(Helper *helper) : h(helper)
        {
            if (h)
                h->hold(true);
        }
        ~Hold()
        {
            if (h)
                h->hold(false);
        }
        Hold(const Hold &) = delete;
        Hold &operator=(const Hold &) = delete;
    };
    /* theirs on the helper's thread beside mine on the caller's; both are done on return,
     * and an exception of mine's (else of theirs') is rethrown */
    void beside(const std::function<void()> &theirs, const std::function<void()> &mine);

  private:
    void loop();
    std::mutex mu;
    std::condition_variable cv;
    std::function<void()> task;
    std::atomic<bool> busy{false}, held{false};
    bool quit = false;
    std::exception_ptr err;
    std::thread thr;
};

/* Whether a learner that asked for a second thread (split) gets one on dev: the CPU, and
 * its helper, made here on first need (none to be had: split becomes false, and one
 * thread it is). */
bool helper_ready(std::unique_ptr<Helper> &helper, bool &split, const torch::Device &dev);

/* A learner's parameters and its Adam's state, kept so that an update can be undone
 * (ppo.cpp: a cancel, bdt_ppo_undo; dqn.cpp: bdt_dqn_mark). Adam's state goes through its
 * own archive, so it comes back whatever optimiser object holds the parameters then. */
struct Snapshot {
    std::vector<torch::Tensor> params;
    std::string opt;
};
Snapshot take_snapshot(const std::vector<torch::Tensor> &params, torch::optim::Adam &opt);
void restore_snapshot(std::vector<torch::Tensor> &params, torch::optim::Adam &opt, const Snapshot &s);

/* zero_grad(set_to_none): backward then writes the gradients instead of adding them to
 * zeros (the same values; a pass over every gradient saved). */
void grads_to_none(std::vector<torch::Tensor> &params);

/* Adam (torch.optim.Adam's update) over parameters gathered into one flat buffer: each
 * parameter's data and gradient become views of a flat tensor, so a step, a gradient
 * clip or a target's Polyak average is a handful of whole-buffer operations instead of a
 * handful per parameter tensor (which on networks this small cost more than the
 * arithmetic: a DQN gradient step at hidden 64 took 0.31 ms with libtorch's Adam and
 * clip, 0.21 ms flat). SAC's three optimisers and DQN's use it. init makes the
 * parameters views of its buffers: one optimiser per set of parameters. */
struct FlatAdam {
    std::vector<torch::Tensor> ps;
    torch::Tensor data, grad, m, v;
    double lr = 1e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    int64_t t = 0;

    void init(const std::vector<torch::Tensor> &params, double rate, double epsilon = 1e-8);
    void zero_grad() { grad.zero_(); }
    void step();
    /* clip_grad_norm_'s: the gradient scaled by max_norm / (its 2-norm + 1e-6) where that
     * is below 1 */
    void clip(double max_norm);
    /* bdt_grad_hook over the flat gradient: in place on the host, through buf on a device */
    int run_hook(bdt_grad_hook hook, void *ctx, std::vector<float> &buf);
    /* A flat buffer like data (a target's), its parameters' tensors made views of it. */
    torch::Tensor views_for(std::vector<torch::Tensor> &like) const;
    /* Its own archive (SAC's checkpoints) */
    void save(torch::serialize::OutputArchive &ar, const char *key) const;
    /* 0 when the archive has no state of this shape */
    int load(torch::serialize::InputArchive &ar, const char *key, std::vector<torch::Tensor> &out) const;
    void take(const std::vector<torch::Tensor> &st);
    /* The state as a torch::optim::Adam over the same parameters holds it (the ppo checkpoint
     * format: save_policy and load_policy), and back. */
    void to_adam(torch::optim::Adam &opt) const;
    /* false (nothing changed) when opt's state does not fit: a moment of another size, or
     * parameters stepped unequally */
    bool from_adam(torch::optim::Adam &opt);
    /* The parameters (data: they are views of it), moments and step count, kept and put back. */
    struct Kept {
        torch::Tensor data, m, v;
        int64_t t = 0;
    };
    Kept keep() const;
    void put_back(const Kept &k);
};

} // namespace bd_shim

struct bdt_policy {
    bdt_policy_config cfg;
    torch::Device dev{torch::kCPU};
    std::shared_ptr<bd_shim::ActorCritic> net;
    std::vector<torch::Tensor> params; /* named_parameters() order */
    size_t count = 0;
};

/* A learner's gradient hook (bdt_grad_hook) over params: every gradient (zeros where
 * backward left none) copied into buf (one flat host buffer, kept between calls), handed
 * to the hook, and copied back. BD_OK or the hook's code. */
int bdt_run_grad_hook(const std::vector<torch::Tensor> &params, std::vector<float> &buf, bdt_grad_hook hook,
                      void *ctx);

struct bdt_ppo {
    bdt_policy *p = nullptr;
    bdt_ppo_config cfg;
    std::unique_ptr<torch::optim::Adam> opt;
    const volatile int *cancel = nullptr; /* bdt_ppo_set_cancel */
    bdt_grad_hook grad_hook = nullptr;    /* bdt_ppo_set_grad_hook */
    void *grad_ctx = nullptr;
    std::vector<float> grad_buf;          /* the flat gradient the hook sees */
    bool split = false;                   /* bdt_ppo_set_split */
    std::unique_ptr<bd_shim::Helper> helper; /* the critic's thread, made on first need */
    /* An update's epoch batch (obs, actions, logp, adv, ret, val, gathered in shuffled
     * order) and the discrete actions as indices: kept from one update to the next, so
     * that their memory is allocated once (resized only when a batch grows). */
    torch::Tensor e[6], act_index;
    /* the parameters and the optimiser's state before the last update (bdt_ppo_undo) */
    std::vector<torch::Tensor> undo_params;
    std::string undo_opt;
};

#endif
