"""bodhi.make_vec: a Gymnasium 1.x VectorEnv over a shard of bodhi worlds.

The arrays step() and reset() return are views of the engine's buffers, not copies: the
next step() overwrites them. Keep what you need with np.copy (or torch.tensor, which
copies)."""

import enum

import numpy as np

from . import _core, spaces

if spaces.HAVE_GYMNASIUM:
    from gymnasium.vector import VectorEnv as _Base

    try:
        from gymnasium.vector import AutoresetMode
    except ImportError:  # Gymnasium 1.0 names the modes in metadata only
        AutoresetMode = None
else:
    _Base = object
    AutoresetMode = None

if AutoresetMode is None:

    class AutoresetMode(enum.Enum):
        """Gymnasium 1.x's autoreset modes; bodhi's engine resets in the same step."""

        NEXT_STEP = "NextStep"
        SAME_STEP = "SameStep"
        DISABLED = "Disabled"


_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = (1 << 64) - 1


def _seed64(seed, what="seed"):
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"bodhi: {what} must be an int, got {type(seed).__name__}"
                        " (bodhi seeds every world from one int: world i draws at (seed, i))")
    if seed < 0 or seed > _MASK64:
        raise ValueError(f"bodhi: {what} must be from 0 to 2^64-1, got {seed}")
    return int(seed)


class BodhiVectorEnv(_Base):
    """num_envs worlds of a bodhi env stepped in one call (Gymnasium 1.x VectorEnv API).

    Same-step autoreset: a world whose episode ended in a step already holds its next
    episode's first observation in the obs returned; its last observation is in
    infos["final_obs"][i] where infos["_final_obs"][i] is True (both are present only
    when some world ended). infos["final_obs"] is a float32 (num_envs, obs_dim) view, valid
    in the rows the mask marks."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    render_mode = None

    def __init__(self, env_id, num_envs, seed=0, device="cpu", threads=1, max_steps=0, **params):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"bodhi: num_envs must be an int, got {type(num_envs).__name__}")
        if not isinstance(env_id, str):
            raise TypeError(f"bodhi: env_id must be a str, got {type(env_id).__name__}")
        self._seed = _seed64(seed)
        self._resets = 0
        self._core = _core.Batch(env_id, int(num_envs), self._seed, device, threads, max_steps, params)
        spec = self._core.spec()
        if len(spec["groups"]) != 1 or spec["groups"][0]["count"] != 1:
            self._core.close()
            raise ValueError(f"bodhi: env {spec['name']} has many agents per world; use bodhi.make_multi"
                             f" (or bodhi.parallel_env) for it")
        self.bodhi_spec = spec
        self.env_id = env_id
        self.num_envs = int(num_envs)
        g = spec["groups"][0]
        self.single_observation_space = spaces.box(g["sensors"])
        self.single_action_space = spaces.actions(g["actuators"], spec["discrete"])
        self.observation_space = spaces.box(g["sensors"], (self.num_envs,))
        self.action_space = spaces.actions(g["actuators"], spec["discrete"], (self.num_envs,))
        self.metadata = dict(type(self).metadata)
        self.closed = False
        # views over the engine's buffers, made once
        odim = g["obs_dim"]
        self._obs = self._core.view("obs")[:, :odim]
        self._final_obs = self._core.view("final_obs")[:, :odim]
        self._rewards = self._core.view("rewards")
        self._term = self._core.view("terminated")
        self._trunc = self._core.view("truncated")
        self._done = self._core.view("done")
        for a in (self._obs, self._final_obs, self._rewards, self._term, self._trunc, self._done):
            a.flags.writeable = False

    def reset(self, *, seed=None, options=None):
        """Every world starts over. seed: an int (world i's episode drawn at (seed, i));
        None: the seed given to make_vec on the first reset, then a new one derived from it
        per reset (deterministic). Returns (obs, infos)."""
        if options:
            raise ValueError(f"bodhi: reset takes no options (got {sorted(options)})")
        if seed is not None:
            self._seed, self._resets = _seed64(seed), 0
        s = (self._seed + self._resets * _GOLDEN) & _MASK64
        self._resets += 1
        self._core.reset(s)
        return self._obs, {}

    def step(self, actions):
        """One step of every world. actions: (num_envs,) integers for a Discrete action,
        (num_envs, act_dim) numbers for a Box. Returns (obs, rewards, terminations,
        truncations, infos), views overwritten by the next step."""
        if actions is None:  # the engine's step(None) reuses the last actions: not for users
            raise TypeError("bodhi: step() needs every world's actions, got None")
        if self._core.step(actions):
            infos = {"final_obs": self._final_obs, "_final_obs": self._done,
                     "final_info": {}, "_final_info": self._done}
        else:
            infos = {}
        return self._obs, self._rewards, self._term, self._trunc, infos

    def close(self, **kwargs):
        if not self.closed:
            self._core.close()
            self.closed = True

    def close_extras(self, **kwargs):
        self.close()

    def render(self):
        raise NotImplementedError("bodhi: vector envs do not render; see `bodhi replay` for a run's trace")

    @property
    def unwrapped(self):
        return self

    def __repr__(self):
        return f"BodhiVectorEnv({self.env_id!r}, num_envs={self.num_envs}, device={self.bodhi_spec['device']!r})"


def make_vec(env_id, num_envs, seed=0, device="cpu", threads=1, max_steps=0, **params):
    """A vector env of num_envs worlds of bodhi env `env_id` (a bodhi name, "cartpole", or
    a Gymnasium id, "CartPole-v1"). threads: CPU worker threads as `bodhi bench --threads`
    (0: one per core; results do not depend on it); max_steps: the time limit (0: the
    env's own); params: the env's own params by name (`bodhi envs` lists them)."""
    return BodhiVectorEnv(env_id, num_envs, seed=seed, device=device, threads=threads,
                          max_steps=max_steps, **params)


def register():
    """Registers bodhi's built-ins with Gymnasium as "bodhi/<Gymnasium id or name>", so
    that gymnasium.make_vec("bodhi/CartPole-v1", num_envs=N) returns a BodhiVectorEnv."""
    if not spaces.HAVE_GYMNASIUM:
        raise ImportError("bodhi.register needs Gymnasium 1.x (import gymnasium failed)")
    import gymnasium

    ids = []
    for name, gym_id, _summary in _core.envs():
        env_id = f"bodhi/{gym_id or name}"
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, vector_entry_point="bodhi.vector:_gym_vector_entry",
                               kwargs={"env_id": gym_id or name})
        ids.append(env_id)
    return ids


def _gym_vector_entry(num_envs=1, env_id=None, **kwargs):
    kwargs.pop("render_mode", None)
    return make_vec(env_id, num_envs, **kwargs)
