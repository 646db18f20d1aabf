/* heads.cpp: the policy heads' log-probabilities and entropies (see shim.hpp), as the
 * algorithms (ppo.cpp) learn them: categorical over logits, and the diagonal Gaussian of
 * a state-independent log std. A squashed Gaussian or a Q-network's greedy head goes
 * here beside them. */
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

} // namespace bd_shim
