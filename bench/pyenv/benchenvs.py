"""Python envs for bench/pyenv/pyenvbench.c, and the same envs' step timed directly from
Python (the NumPy work alone, no bodhi around it)."""
import time

import numpy as np


class Noop:
    """Steps nothing: what bodhi's hosting costs per call."""

    max_steps = 1 << 30
    sensors = ["x", "y", "z", "w"]
    actuators = [("push", 2)]

    def __init__(self, worlds):
        pass

    def reset(self, rows, seeds, obs):
        obs[rows] = 0.0

    def step(self, actions, obs, rewards, terminated):
        pass


class Work(Noop):
    """A few NumPy operations over every world (no episode ends): a small env's step."""

    def step(self, actions, obs, rewards, terminated):
        obs *= np.float32(0.999)
        obs[:, 0] += actions[:, 0]
        np.sum(obs, axis=1, out=rewards)
        np.greater(rewards, np.float32(1e30), out=terminated)


def time_direct(module, cls_name, worlds, steps, params, restarts=False):
    """Seconds per step of cls over arrays like bodhi's, without bodhi: step, then reset
    of the worlds that ended (or all, every max_steps), as bodhi's host does; actions are
    zeros as in the bench's bodhi path. Without `restarts`, step alone (for envs whose
    episodes do not end in the bench)."""
    mod = __import__(module)
    cls = getattr(mod, cls_name)
    env = cls(worlds=worlds, **params)
    groups = getattr(cls, "groups", None)
    if groups:
        m = sum(int(params[g["count"]]) for g in groups.values())
        s = max(len(g["sensors"]) for g in groups.values())
        a = max(len(g["actuators"]) for g in groups.values())
        shape_o, shape_a, shape_r = (worlds, m, s), (worlds, m, a), (worlds, m)
    else:
        shape_o, shape_a, shape_r = (worlds, len(cls.sensors)), (worlds, len(cls.actuators)), (worlds,)
    obs = np.zeros(shape_o, np.float32)
    actions = np.zeros(shape_a, np.float32)
    rewards = np.zeros(shape_r, np.float32)
    terminated = np.zeros(worlds, bool)
    env.reset(np.arange(worlds, dtype=np.int64), np.arange(worlds, dtype=np.uint64), obs)
    args = (actions, obs, rewards, terminated)
    draws = getattr(cls, "step_draws", 0)
    if draws:
        args += (np.random.default_rng(0).random((worlds, draws), dtype=np.float32),)
    step, reset, limit = env.step, env.reset, cls.max_steps
    seeds = np.arange(worlds, dtype=np.uint64)
    clock = 0

    def run(n, clock):
        if not restarts:
            for _ in range(n):
                step(*args)
            return clock
        # bodhi's part done here too: the worlds that ended (or hit max_steps) start over
        for _ in range(n):
            terminated[:] = False
            step(*args)
            clock += 1
            ended = np.arange(worlds) if clock % limit == 0 else np.flatnonzero(terminated)
            if ended.size:
                reset(ended, seeds[ended], obs)
        return clock

    clock = run(min(steps, 100), clock)
    t0 = time.perf_counter()
    run(steps, clock)
    return (time.perf_counter() - t0) / steps
