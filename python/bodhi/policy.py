"""bodhi.load_policy: a trained agent's checkpoint acting on NumPy observations, with the
network a muscle runs (libbodhi_torch through bodhi._policy) and the muscle's rules:
observations normalised with the checkpoint's statistics when it has them, greedy actions
the argmax of the logits (first on ties) or the Gaussian's mean, clipped to the
actuators' bounds as the env clips them.

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


def _arch(run_file, agent):
    """hidden, layers of `agent`'s brain params in the run file (64, 2 when not given)."""
    hidden, layers = 64, 2
    try:
        import yaml
        doc = yaml.safe_load(run_file) or {}
    except Exception:
        return hidden, layers
    for entry in doc.get("schedule") or []:
        for phase in (entry or {}).values():
            for a in (phase or {}).get("agents") or []:
                if isinstance(a, dict) and a.get("name") == agent:
                    params = ((a.get("brain") or {}).get("params") or {})
                    hidden = int(params.get("hidden", hidden))
                    layers = int(params.get("layers", layers))
    return hidden, layers


class Policy:
    """A checkpoint's actor: policy(obs) -> actions; logits/means and values by forward()."""

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
        h, l = _arch(self.run.run_file, agent)
        self.hidden, self.layers = hidden or h, layers or l
        from . import _policy  # loads libtorch
        self._net = _policy.Net(self.obs_dim, not self.discrete, act_dim, self.hidden, self.layers, self.path)
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
        """(logits or means (n, act_dim), values (n,)) for observations (n, obs_dim)."""
        return self._net.forward(self.normalise(obs))

    def __call__(self, obs, greedy=True, rng=None):
        """Actions for observations (n, obs_dim): int64 indices (n,) for a discrete
        actuator, float32 (n, act_dim) otherwise. greedy=False samples (NumPy's rng, not
        the muscle's Philox stream)."""
        out, _ = self.forward(obs)
        if self.discrete:
            if greedy:
                return np.argmax(out, axis=1).astype(np.int64)
            rng = rng or np.random.default_rng()
            p = np.exp(out - out.max(axis=1, keepdims=True))
            c = np.cumsum(p, axis=1)
            u = rng.random((len(out), 1)) * c[:, -1:]
            return np.minimum((u >= c).sum(axis=1), out.shape[1] - 1).astype(np.int64)
        a = out if greedy else out + np.exp(self._net.logstd()) * (rng or np.random.default_rng()).standard_normal(out.shape)
        return np.clip(a, self.low, self.high).astype(np.float32)

    def __repr__(self):
        return (f"Policy({self.agent} from {self.path}: {self.obs_dim} sensors, "
                f"{'discrete' if self.discrete else 'continuous'}, {self.layers} x {self.hidden} hidden)")


def load_policy(run, agent, phase=None, hidden=None, layers=None):
    """agent's checkpoint from `run` (a folder, run.h5 or bodhi.open_run's Run), from train
    phase `phase` (default: the last with a checkpoint). The network's shape comes from the
    trace (sensors, actuators) and the run file (hidden, layers; override them here)."""
    return Policy(run, agent, phase, hidden, layers)
