/* ppobench.cpp: `bodhi-ppobench [--samples N] [--minibatch M] [--epochs E] [--obs S]
 * [--actions A] [--hidden H] [--layers L] [--threads K] [--repeats R]`: bodhi's PPO update
 * (the torch shim's bdt_ppo_update, as a brain calls it: with its cancel flag set) against
 * a plain libtorch PPO update written as libtorch would have it, for the same network (the
 * ppo brain's default MLP of S observations and A discrete actions), batch of N samples,
 * minibatches of M and E epochs, in one sitting: the two alternate R times (shim, plain,
 * shim, plain, ...) so that a change in the machine's load touches both alike. Prints one
 * JSON object: each side's best and median update time, wall and CPU (the process's, steadier
 * on a loaded machine), and the ratios plain_time / shim_time (1 = the shim is as fast as
 * plain libtorch).
 *
 * The plain update: per epoch the batch is gathered once in shuffled order (contiguous
 * minibatches are slices), gradients set to none between steps, libtorch's own
 * clip_grad_norm_, Adam (eps 1e-5), CleanRL's losses (normalised advantages, clipped
 * surrogate, value loss unclipped, entropy). Threads as a brain sets them (K, default 1:
 * what brain.c picks for minibatches under 4096 samples). The inputs' values do not matter
 * to the time: a fixed xorshift stream. */
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

extern "C" {
#include "brain/ppo.h"
#include "common/util.h"
#include "torch/bd_torch.h"
}

namespace {

float noise(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (float)(*x >> 40) / (float)(1 << 24) * 2 - 1;
}

long long opt(int argc, char **argv, const char *name, long long def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (std::strcmp(argv[i], name) == 0)
            return std::atoll(argv[i + 1]);
    return def;
}

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

struct Plain {
    torch::nn::Sequential actor, critic;
    std::vector<torch::Tensor> params;
    std::unique_ptr<torch::optim::Adam> opt;
    Plain(int S, int A, int H, int L, double lr) : actor(trunk(S, H, L, A)), critic(trunk(S, H, L, 1))
    {
        for (auto &p : critic->parameters())
            params.push_back(p);
        for (auto &p : actor->parameters())
            params.push_back(p);
        opt.reset(new torch::optim::Adam(params, torch::optim::AdamOptions(lr).eps(1e-5)));
    }

    void update(const float *obs, const float *act, const float *logp, const float *adv, const float *ret,
                int n, int S, const int64_t *perm, int epochs, int mb, const bdt_ppo_config &c)
    {
        auto f = torch::kFloat32;
        torch::Tensor b_obs = torch::from_blob((void *)obs, {n, S}, f);
        torch::Tensor b_act = torch::from_blob((void *)act, {n}, f).to(torch::kLong);
        torch::Tensor b_logp = torch::from_blob((void *)logp, {n}, f);
        torch::Tensor b_adv = torch::from_blob((void *)adv, {n}, f);
        torch::Tensor b_ret = torch::from_blob((void *)ret, {n}, f);
        const int nmb = n / mb;
        for (int e = 0; e < epochs; e++) {
            torch::Tensor idx = torch::from_blob((void *)(perm + (size_t)e * n), {n}, torch::kLong);
            torch::Tensor s_obs = b_obs.index_select(0, idx), s_act = b_act.index_select(0, idx),
                          s_logp = b_logp.index_select(0, idx), s_adv = b_adv.index_select(0, idx),
                          s_ret = b_ret.index_select(0, idx);
            for (int b = 0; b < nmb; b++) {
                int64_t lo = (int64_t)b * mb, hi = lo + mb;
                torch::Tensor m_obs = s_obs.slice(0, lo, hi), m_adv = s_adv.slice(0, lo, hi);
                torch::Tensor lp = torch::log_softmax(actor->forward(m_obs), 1);
                torch::Tensor newlogp = lp.gather(1, s_act.slice(0, lo, hi).unsqueeze(1)).squeeze(1);
                torch::Tensor entropy = -(lp.exp() * lp.clamp_min(std::numeric_limits<float>::lowest())).sum(1);
                torch::Tensor newvalue = critic->forward(m_obs).view({-1});
                torch::Tensor logratio = newlogp - s_logp.slice(0, lo, hi);
                torch::Tensor ratio = logratio.exp();
                m_adv = (m_adv - m_adv.mean()) / (m_adv.std() + 1e-8);
                torch::Tensor pg = torch::max(-m_adv * ratio,
                                              -m_adv * torch::clamp(ratio, 1.0 - c.clip_coef, 1.0 + c.clip_coef))
                                       .mean();
                torch::Tensor v_loss = 0.5 * (newvalue - s_ret.slice(0, lo, hi)).pow(2).mean();
                torch::Tensor loss = pg - c.ent_coef * entropy.mean() + c.vf_coef * v_loss;
                for (auto &p : params)
                    p.mutable_grad() = torch::Tensor(); /* zero_grad(set_to_none) */
                loss.backward();
                torch::nn::utils::clip_grad_norm_(params, c.max_grad_norm);
                opt->step();
            }
        }
    }
};

/* CPU seconds of the whole process (all its threads): on a loaded machine far steadier than
 * wall time, and the same thing when the update runs on one thread */
double cpu_now()
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    size_t k = v.size() / 2;
    return v.size() % 2 ? v[k] : 0.5 * (v[k - 1] + v[k]);
}

} // namespace

int main(int argc, char **argv)
{
    bd_ppo_params pp;
    if (bd_ppo_params_parse(NULL, 1, 1, &pp) != BD_OK) {
        std::fprintf(stderr, "ppobench: %s\n", bd_lasterr());
        return 1;
    }
    const int N = (int)opt(argc, argv, "--samples", BD_PPO_AUTO_BATCH),
              M = (int)opt(argc, argv, "--minibatch", BD_PPO_MINIBATCH_SIZE),
              E = (int)opt(argc, argv, "--epochs", pp.opt.epochs), S = (int)opt(argc, argv, "--obs", 4),
              A = (int)opt(argc, argv, "--actions", 2), H = (int)opt(argc, argv, "--hidden", pp.hidden),
              L = (int)opt(argc, argv, "--layers", pp.layers), K = (int)opt(argc, argv, "--threads", 1),
              R = (int)opt(argc, argv, "--repeats", 7);
    if (N < 2 || M < 2 || M > N || E < 1 || S < 1 || A < 2 || H < 1 || L < 1 || K < 1 || R < 1) {
        std::fprintf(stderr, "usage: bodhi-ppobench [--samples N] [--minibatch 2..N] [--epochs E] [--obs S] "
                             "[--actions A >= 2] [--hidden H] [--layers L] [--threads K] [--repeats R]\n");
        return 2;
    }
    bdt_set_threads(K);
    torch::set_num_threads(K);
    /* the shim flushes subnormals to zero during its calls (torch/shim.hpp): so does plain */
    at::globalContext().setFlushDenormal(true);
    std::vector<float> obs((size_t)N * S), act(N), logp(N), adv(N), ret(N), val(N);
    std::vector<int64_t> perm((size_t)N * E);
    uint64_t x = 88172645463325252ull;
    for (auto &v : obs)
        v = noise(&x);
    for (int i = 0; i < N; i++) {
        act[i] = (float)(i % A);
        logp[i] = -0.69f;
        adv[i] = noise(&x);
        ret[i] = adv[i];
        val[i] = 0;
    }
    bd_ppo_perm(perm.data(), N, E, 7, 0);

    bdt_policy_config pc = {S, BDT_DISCRETE, A, H, L, BDT_CPU, 1};
    bdt_ppo_config oc = pp.opt;
    oc.epochs = E;
    oc.minibatches = 0;
    oc.minibatch_size = M;
    bdt_policy *p = NULL;
    bdt_ppo *o = NULL;
    if (bdt_policy_create(&pc, &p) != BD_OK || bdt_ppo_create(p, &oc, &o) != BD_OK) {
        std::fprintf(stderr, "ppobench: %s\n", bd_lasterr());
        return 1;
    }
    static volatile int cancel = 0; /* as a brain: an update can be cancelled between minibatches */
    bdt_ppo_set_cancel(o, &cancel);
    Plain plain(S, A, H, L, oc.lr);
    const int mb = (int)(N / bdt_ppo_minibatch_count(&oc, N));
    std::vector<double> ts, tp, cs, cp;
    for (int r = 0; r < R + 1; r++) { /* the first pair warms up */
        bdt_ppo_stats st;
        double c0 = cpu_now(), t0 = bd_now();
        if (bdt_ppo_update(o, obs.data(), act.data(), logp.data(), adv.data(), ret.data(), val.data(), N,
                           perm.data(), &st) != BD_OK) {
            std::fprintf(stderr, "ppobench: %s\n", bd_lasterr());
            return 1;
        }
        double t1 = bd_now(), c1 = cpu_now();
        plain.update(obs.data(), act.data(), logp.data(), adv.data(), ret.data(), N, S, perm.data(), E, mb, oc);
        double c2 = cpu_now(), t2 = bd_now();
        if (r > 0) {
            ts.push_back(t1 - t0);
            tp.push_back(t2 - t1);
            cs.push_back(c1 - c0);
            cp.push_back(c2 - c1);
        }
    }
    double bs = *std::min_element(ts.begin(), ts.end()), bp = *std::min_element(tp.begin(), tp.end());
    double ms = median(ts), mp = median(tp);
    double cbs = *std::min_element(cs.begin(), cs.end()), cbp = *std::min_element(cp.begin(), cp.end());
    double cms = median(cs), cmp = median(cp);
    char load[64] = "?";
    if (FILE *f = std::fopen("/proc/loadavg", "r")) {
        if (!std::fgets(load, sizeof load, f))
            std::snprintf(load, sizeof load, "?");
        std::fclose(f);
        load[std::strcspn(load, "\n")] = 0;
    }
    std::printf("{\"what\": \"bodhi's PPO update (torch shim) against a plain libtorch PPO update, alternating\", "
                "\"samples\": %d, \"minibatch\": %d, \"epochs\": %d, \"obs\": %d, \"actions\": %d, \"hidden\": %d, "
                "\"layers\": %d, \"threads\": %d, \"repeats\": %d, \"loadavg\": \"%s\", "
                "\"shim\": {\"best_s\": %.5f, \"median_s\": %.5f, \"cpu_best_s\": %.5f, \"cpu_median_s\": %.5f, "
                "\"samples_per_cpu_s\": %.0f}, "
                "\"plain\": {\"best_s\": %.5f, \"median_s\": %.5f, \"cpu_best_s\": %.5f, \"cpu_median_s\": %.5f, "
                "\"samples_per_cpu_s\": %.0f}, "
                "\"ratio_wall_best\": %.3f, \"ratio_wall_median\": %.3f, \"ratio_cpu_best\": %.3f, "
                "\"ratio_cpu_median\": %.3f}\n",
                N, mb, E, S, A, H, L, K, R, load, bs, ms, cbs, cms, N / cbs, bp, mp, cbp, cmp, N / cbp, bp / bs,
                mp / ms, cbp / cbs, cmp / cms);
    bdt_ppo_destroy(o);
    bdt_policy_destroy(p);
    return 0;
}
