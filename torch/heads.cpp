/* heads.cpp: the policy heads' log-probabilities and entropies (see shim.hpp), as the
 * algorithms (ppo.cpp) learn them: categorical over logits, and the diagonal Gaussian of
 * a state-independent log std (ppo.cpp); the squashed Gaussian (sac.cpp). A Q-network's
 * greedy head goes here beside them. */
#include "torch/shim.hpp"

namespace bd_shim {

void head_logp_entropy(const ActorCritic &net, bool discrete, const torch::Tensor &out, const torch::Tensor &act,
                       torch::Tensor &logp, torch::Tensor &entropy)
{
    if (discrete) {
        torch::Tensor lp = torch::log_softmax(out, 1); /* (n, act) */
        logp = lp.gather(1, act.unsqueeze(1)).squeeze(1);
        /* torch.distributions.Categorical clamps logits at finfo.min so that p = 0 gives
         * 0 * finite instead of 0 * -inf. */
        torch::Tensor lpc = lp.clamp_min(std::numeric_limits<float>::lowest());
        entropy = -(lp.exp() * lpc).sum(1);
    } else {
        torch::Tensor logstd = net.logstd.expand_as(out); /* (n, act) */
        torch::Tensor z = (act - out) * torch::exp(-logstd);
        logp = (-0.5 * z * z - logstd - kLogSqrt2Pi).sum(1);
        entropy = (0.5 + kLogSqrt2Pi + logstd).sum(1);
    }
}

torch::Tensor squashed_logstd(const torch::Tensor &raw)
{
    return BDT_LOGSTD_MIN + 0.5 * (BDT_LOGSTD_MAX - BDT_LOGSTD_MIN) * (torch::tanh(raw) + 1.0);
}

void squashed_sample(const torch::Tensor &out, const torch::Tensor &eps, const torch::Tensor &scale,
                     const torch::Tensor &bias, torch::Tensor &act, torch::Tensor &logp)
{
    const int64_t A = out.size(1) / 2;
    torch::Tensor mean = out.slice(1, 0, A), ls = squashed_logstd(out.slice(1, A, 2 * A));
    torch::Tensor z = eps.defined() ? eps : torch::zeros_like(mean);
    torch::Tensor u = mean + ls.exp() * z; /* the Gaussian's draw, reparameterised */
    act = torch::tanh(u) * scale + bias;
    /* log |d act / d u| = log scale + log(1 - tanh(u)^2), the latter in the form that
     * stays finite where tanh(u) rounds to +-1: 2 (log 2 - u - softplus(-2 u)) */
    torch::Tensor jac = scale.log() + 2.0 * (M_LN2 - u - torch::softplus(-2.0 * u));
    logp = (-0.5 * z * z - ls - kLogSqrt2Pi - jac).sum(1);
}

} // namespace bd_shim
