"""bodhi.load_policy: a trained agent's checkpoint acting on NumPy observations, with the
network a muscle runs (libbodhi_torch through bodhi._policy) and the muscle's rules, for
each kind of brain that learns: a ppo brain's policy, a dqn brain's Q-network, a sac
brain's actor. Observations are normalised with the checkpoint's statistics when it has
them; greedy actions are the argmax of the logits or Q-values (first on ties), the
Gaussian's mean clipped to the actuators' bounds, or the squashed Gaussian's
tanh(mean) scaled into them.

    pi = bodhi.load_policy("runs/cartpole-ppo", "balancer")
    env = bodhi.make_vec("CartPole-v1", 64)
    obs, _ = env.reset(seed=1)
    obs, *_ = env.step(pi(obs))
"""

import json
import os

import numpy as np

from . import _core
from .trace import Run

# the network's kind (bodhi._policy.Net.kind) -> the brain that writes it
_BRAIN = {"discrete": "ppo", "continuous": "ppo", "q": "dqn", "squashed": "sac"}


class Policy:
    """A checkpoint's acting network: policy(obs) -> actions; its outputs by forward()."""

    def __init__(self, run, agent, phase=None, hidden=None, layers=None):
        self.run = run if isinstance(run, Run) else Run(run)
        self.agent = agent
        if phase is None:
            found = [p for p in self.run.phases if os.path.exists(self.run.checkpoint(p, agent))]
            if not found:
                raise FileNotFoundError(f"bodhi.load_policy: run {self.run.path} has no checkpoint of agent"
                                        f" {agent!r} (checkpoints/<phase>/{agent}.pt)")
            phase = found[-1]
        self.phase = phase
        self.path = self.run.checkpoint(phase, agent)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"bodhi.load_policy: no checkpoint {self.path}")
        tr = self.run.agent(phase, agent)
        spec = _core.Batch(tr.env, 1, 0, "cpu", 1, 0, {k: float(v) for k, v in tr.env_params.items()
                                                       if k not in ("worlds", "max_steps")}).spec()
        group = str(tr.attrs.get("group", ""))
        g = next((x for x in spec["groups"] if x["name"] == group), spec["groups"][0])
        names = [i.split(".")[-1] for i in tr.actuator_ids]
        chans = {c[0]: c for c in g["actuators"]}
        self.actuators = [chans[n] for n in names]
        self.discrete = bool(spec["discrete"])
        self.obs_dim = len(tr.sensor_ids)
        act_dim = self.actuators[0][3] if self.discrete else len(self.actuators)
        from . import _policy  # loads libtorch
        self._lib = _policy
        self._net = net = _policy.Net(self.path)  # the shape the file holds
        self.brain = _BRAIN[net.kind]
        self.hidden, self.layers = net.hidden, net.layers
        fits = (net.obs_dim == self.obs_dim and net.act_dim == act_dim
                and (net.kind in ("discrete", "q")) == self.discrete)
        if not fits or hidden not in (None, net.hidden) or layers not in (None, net.layers):
            asked = (f"; {net.layers if layers is None else layers} x {net.hidden if hidden is None else hidden}"
                     " hidden was asked") if fits else ""
            raise ValueError(
                f"bodhi.load_policy: checkpoint {self.path} holds a {self.brain} brain's network of {net.obs_dim}"
                f" sensors and {net.act_dim} {'actions' if net.kind in ('discrete', 'q') else 'action dimensions'},"
                f" {net.layers} x {net.hidden} hidden; agent {agent!r} of phase {phase!r} has {self.obs_dim}"
                f" sensors and {act_dim} {'actions' if self.discrete else 'action dimensions'}{asked}")
        self.obs_mean = self.obs_inv = None
        norm = self.path + ".obsnorm.json"
        if os.path.exists(norm):
            with open(norm) as f:
                j = json.load(f)
            self.obs_mean = np.asarray(j["mean"], np.float64).astype(np.float32)
            self.obs_inv = (1.0 / np.sqrt(np.asarray(j["var"], np.float64) + 1e-8)).astype(np.float32)
        self.low = np.array([c[1] for c in self.actuators], np.float32)
        self.high = np.array([c[2] for c in self.actuators], np.float32)

    def normalise(self, obs):
        obs = np.asarray(obs, np.float32)
        if obs.ndim != 2 or obs.shape[1] != self.obs_dim:
            raise ValueError(f"bodhi: {self.agent}'s policy takes observations of shape (n, {self.obs_dim}),"
                             f" got {obs.shape} (one observation: obs[None])")
        if not np.isfinite(obs).all():
            raise ValueError(f"bodhi: {self.agent}'s policy got an observation that is NaN or infinite (a trace's"
                             " rows of a round its muscle lost are NaN: leave them out)")
        if self.obs_mean is None:
            return obs
        return np.clip((obs - self.obs_mean) * self.obs_inv, -10.0, 10.0).astype(np.float32)

    def forward(self, obs):
        """The network's outputs for observations (n, obs_dim): (logits, means or Q-values
        (n, act_dim), or a sac actor's means and raw log stds (n, 2 act_dim); values (n,):
        the critic's, the largest Q-value, or 0 for a sac actor)."""
        return self._net.forward(self.normalise(obs))

    def __call__(self, obs, greedy=True, rng=None, epsilon=None):
        """Actions for observations (n, obs_dim): int64 indices (n,) for a discrete
        actuator, float32 (n, act_dim) otherwise. greedy=False samples with rng (a NumPy
        Generator or a seed for one; not the muscle's Philox stream): from the policy, or
        for a dqn brain's Q-network epsilon-greedily (epsilon 0.05 unless given, as
        CleanRL's DQN evaluation; epsilon is for that alone)."""
        kind = self._net.kind
        if epsilon is not None and (kind != "q" or greedy):
            raise ValueError(f"bodhi: epsilon is for sampling a dqn brain's Q-network (greedy=False); this is a"
                             f" {self.brain} brain's network{', acting greedily' if kind == 'q' else ''}")
        if epsilon is not None and not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"bodhi: epsilon {epsilon} is not a probability (0 to 1)")
        out, _ = self.forward(obs)
        if not greedy:
            rng = np.random.default_rng(rng)
        if kind == "q":
            a = np.argmax(out, axis=1).astype(np.int64)
            if not greedy:
                explore = rng.random(len(a)) < (0.05 if epsilon is None else epsilon)
                a[explore] = rng.integers(0, out.shape[1], int(explore.sum()))
            return a
        if kind == "discrete":
            if greedy:
                return np.argmax(out, axis=1).astype(np.int64)
            p = np.exp(out - out.max(axis=1, keepdims=True))
            c = np.cumsum(p, axis=1)
            u = rng.random((len(out), 1)) * c[:, -1:]
            return np.minimum((u >= c).sum(axis=1), out.shape[1] - 1).astype(np.int64)
        if kind == "squashed":  # in double, rounded once, as the muscle (muscle/act.h)
            A = self._net.act_dim
            u = out[:, :A].astype(np.float64)
            if not greedy:
                lo, hi = self._lib.LOGSTD_MIN, self._lib.LOGSTD_MAX
                logstd = lo + 0.5 * (hi - lo) * (np.tanh(out[:, A:].astype(np.float64)) + 1.0)
                u = u + np.exp(logstd) * rng.standard_normal(u.shape)
            low, high = self.low.astype(np.float64), self.high.astype(np.float64)
            return (np.tanh(u) * (0.5 * (high - low)) + 0.5 * (high + low)).astype(np.float32)
        a = out if greedy else out + np.exp(self._net.logstd()) * rng.standard_normal(out.shape)
        return np.clip(a, self.low, self.high).astype(np.float32)

    def __repr__(self):
        return (f"Policy({self.agent} from {self.path}: a {self.brain} brain's network of {self.obs_dim} sensors, "
                f"{'discrete' if self.discrete else 'continuous'}, {self.layers} x {self.hidden} hidden)")


def load_policy(run, agent, phase=None, hidden=None, layers=None):
    """agent's checkpoint from `run` (a folder, run.h5 or bodhi.open_run's Run), from train
    phase `phase` (default: the last with a checkpoint), a ppo, dqn or sac brain's. The
    network's shape is the one the file holds; it must fit the agent's sensors and
    actuators in the trace, and hidden and layers, when given, are checked against it."""
    return Policy(run, agent, phase, hidden, layers)
