"""bodhi.make_multi: many-agent envs (Tag) as per-group arrays over all worlds, and
bodhi.parallel_env: a PettingZoo-ParallelEnv-shaped view of one world.

Group g's arrays have shape (worlds, members of g, columns): strided views of the engine's
rows (a world's rows are its groups' members in order), overwritten by the next step."""

import numpy as np

from . import _core, spaces
from .vector import AutoresetMode, _GOLDEN, _MASK64, _seed64


def _every_key(actions, keys, shown):
    """ValueError unless the dict actions has every one of keys and no other (at most 8 of
    each named)."""
    unknown = sorted((str(k) for k in actions if k not in keys))
    missing = [k for k in keys if k not in actions]
    if unknown or missing:
        raise ValueError(f"bodhi: actions for {shown}: unknown {unknown[:8]}, missing {missing[:8]}"
                         f"{' ...' if len(missing) > 8 or len(unknown) > 8 else ''}")


class BodhiMultiEnv:
    """`worlds` worlds of a many-agent bodhi env, stepped in one call.

    groups: the group names in order ("runner", "tagger" for Tag); observation_spaces /
    action_spaces: per group, for one member; step(actions) takes a dict group ->
    array (worlds, members, act_dim) and returns dicts group -> array for obs, rewards,
    terminations, truncations, and infos with "final_obs"/"_final_obs" per group when some
    world ended (same-step autoreset, as make_vec)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, env_id, worlds, seed=0, device="cpu", threads=1, max_steps=0, **params):
        if isinstance(worlds, bool) or not isinstance(worlds, (int, np.integer)):
            raise TypeError(f"bodhi: worlds must be an int, got {type(worlds).__name__}")
        self._seed, self._resets = _seed64(seed), 0
        self._core = _core.Batch(env_id, int(worlds), self._seed, device, threads, max_steps, params)
        self.bodhi_spec = spec = self._core.spec()
        self.num_worlds = int(worlds)
        self.groups = [g["name"] for g in spec["groups"]]
        self.members = {g["name"]: g["count"] for g in spec["groups"]}
        self.observation_spaces = {g["name"]: spaces.box(g["sensors"]) for g in spec["groups"]}
        self.action_spaces = {g["name"]: spaces.actions(g["actuators"], spec["discrete"]) for g in spec["groups"]}
        self.closed = False
        self._obs, self._final, self._rew, self._term, self._trunc, self._done = {}, {}, {}, {}, {}, {}
        for k, g in enumerate(spec["groups"]):
            n, od = g["name"], g["obs_dim"]
            self._obs[n] = self._core.view("obs", k)[:, :, :od]
            self._final[n] = self._core.view("final_obs", k)[:, :, :od]
            self._rew[n] = self._core.view("rewards", k)
            self._term[n] = self._core.view("terminated", k)
            self._trunc[n] = self._core.view("truncated", k)
            self._done[n] = self._core.view("done", k)
        for d in (self._obs, self._final, self._rew, self._term, self._trunc, self._done):
            for a in d.values():
                a.flags.writeable = False

    def reset(self, *, seed=None, options=None):
        if options:
            raise ValueError(f"bodhi: reset takes no options (got {sorted(options)})")
        if seed is not None:
            self._seed, self._resets = _seed64(seed), 0
        self._core.reset((self._seed + self._resets * _GOLDEN) & _MASK64)
        self._resets += 1
        return dict(self._obs), {}

    def step(self, actions):
        if not isinstance(actions, dict):
            raise TypeError(f"bodhi: actions must be a dict group -> array (groups {self.groups}),"
                            f" got {type(actions).__name__}")
        _every_key(actions, self.groups, f"groups {self.groups}")
        for k, name in enumerate(self.groups):
            self._core.set_actions(k, actions[name])
        infos = {}
        if self._core.step():
            infos = {"final_obs": dict(self._final), "_final_obs": dict(self._done)}
        return dict(self._obs), dict(self._rew), dict(self._term), dict(self._trunc), infos

    def close(self):
        if not self.closed:
            self._core.close()
            self.closed = True


def make_multi(env_id, worlds, seed=0, device="cpu", threads=1, max_steps=0, **params):
    """A many-agent env of `worlds` worlds (see BodhiMultiEnv); params the env's own."""
    return BodhiMultiEnv(env_id, worlds, seed=seed, device=device, threads=threads, max_steps=max_steps, **params)


class ParallelEnv:
    """One world of a bodhi env in PettingZoo's ParallelEnv shape: agents "<group>_<i>",
    reset(seed) -> (obs, infos), step(actions) -> (obs, rewards, terminations, truncations,
    infos), dicts keyed by agent. The world resets itself when its episode ends (as
    bodhi's engine does), so agents never leave; infos[agent]["final_obs"] holds an ended
    agent's last observation."""

    metadata = {"name": "bodhi_parallel", "is_parallelizable": True}

    def __init__(self, env_id, seed=0, max_steps=0, **params):
        self._m = BodhiMultiEnv(env_id, 1, seed=seed, max_steps=max_steps, **params)
        self.possible_agents = [f"{g}_{i}" for g in self._m.groups for i in range(self._m.members[g])]
        self.agents = list(self.possible_agents)
        self._where = {a: (a.rsplit("_", 1)[0], int(a.rsplit("_", 1)[1])) for a in self.possible_agents}
        self.observation_spaces = {a: self._m.observation_spaces[g] for a, (g, _) in self._where.items()}
        self.action_spaces = {a: self._m.action_spaces[g] for a, (g, _) in self._where.items()}
        self._act = {g: np.zeros((1, self._m.members[g]) + self._m.action_spaces[g].shape,
                                 self._m.action_spaces[g].dtype) for g in self._m.groups}

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    @property
    def num_agents(self):
        return len(self.agents)

    @property
    def max_num_agents(self):
        return len(self.possible_agents)

    def reset(self, seed=None, options=None):
        obs, _ = self._m.reset(seed=seed, options=options)
        return {a: obs[g][0, i].copy() for a, (g, i) in self._where.items()}, {a: {} for a in self.agents}

    def step(self, actions):
        if not isinstance(actions, dict):
            raise TypeError(f"bodhi: actions must be a dict agent -> action, got {type(actions).__name__}")
        # every agent acts at every step: none keeps its last action
        _every_key(actions, self.agents, f"agents {self.possible_agents[0]} ... {self.possible_agents[-1]}")
        for a, act in actions.items():
            g, i = self._where[a]
            shape = self.action_spaces[a].shape
            got = np.shape(act)
            if got != shape:
                raise ValueError(f"bodhi: the action of agent {a!r} has shape {got}; its space {self.action_spaces[a]}"
                                 f" takes {shape}")
            self._act[g][0, i] = act
        obs, rew, term, trunc, info = self._m.step(self._act)
        w = self._where.items()
        infos = {a: {} for a in self.agents}
        if info:
            for a, (g, i) in w:
                if info["_final_obs"][g][0, i]:
                    infos[a]["final_obs"] = info["final_obs"][g][0, i].copy()
        return ({a: obs[g][0, i].copy() for a, (g, i) in w}, {a: float(rew[g][0, i]) for a, (g, i) in w},
                {a: bool(term[g][0, i]) for a, (g, i) in w}, {a: bool(trunc[g][0, i]) for a, (g, i) in w}, infos)

    def close(self):
        self._m.close()


def parallel_env(env_id, seed=0, max_steps=0, **params):
    """One world of `env_id` in PettingZoo's ParallelEnv shape (see ParallelEnv)."""
    return ParallelEnv(env_id, seed=seed, max_steps=max_steps, **params)
