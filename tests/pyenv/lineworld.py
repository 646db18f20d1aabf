"""Python envs for tests/test_pyenv.c: a good one, one whose step raises, and classes
whose declarations are wrong (each refused by bodhi check)."""
import numpy as np


class Line:
    """A point on a line moves left or right (Discrete(2)) toward x = 1."""

    max_steps = 40
    params = {"speed": (0.1, 0.01, 1.0, "how far a move goes")}
    sensors = [("x", -1.0, 1.0), "goal"]
    actuators = [("move", 2)]
    step_draws = 1

    def __init__(self, worlds, speed):
        self.speed = np.float32(speed)

    def reset(self, rows, seeds, obs):
        # x in [-1, 0) from each world's seed: the top 24 bits
        obs[rows, 0] = (seeds >> np.uint64(40)).astype(np.float32) / np.float32(1 << 24) - 1.0
        obs[rows, 1] = 1.0

    def step(self, actions, obs, rewards, terminated, draws):
        x = obs[:, 0]
        # a slip now and then, from the step's draws: a world's own noise
        x += self.speed * (actions[:, 0] * 2.0 - 1.0) * (draws[:, 0] > 0.1)
        np.clip(x, -1.0, 1.0, out=x)
        rewards[:] = -np.abs(1.0 - x)
        terminated[:] = x >= 1.0 - 1e-6


class Raising(Line):
    """Line whose step raises on its 30th call."""

    def __init__(self, worlds, speed):
        super().__init__(worlds, speed)
        self.calls = 0

    def step(self, actions, obs, rewards, terminated, draws):
        self.calls += 1
        if self.calls == 30:
            self.fail()
        super().step(actions, obs, rewards, terminated, draws)

    def fail(self):
        raise ValueError("the sugar ran out at call 30")


class Hanging(Raising):
    """Line whose step never returns on its 30th call (a deadlock, an endless loop)."""

    def fail(self):
        import time
        time.sleep(3600)


class FailsInFive(Line):
    """Line whose step raises in a shard of 5 worlds: a greedy evaluation of 5 episodes
    (tests/test_pyenv.c), never the muscles' shards of 3."""

    def __init__(self, worlds, speed):
        super().__init__(worlds, speed)
        self.worlds = worlds

    def step(self, actions, obs, rewards, terminated, draws):
        if self.worlds == 5:
            self.fail()
        super().step(actions, obs, rewards, terminated, draws)

    def fail(self):
        raise ValueError("no greedy walk today")


class HangsInFive(FailsInFive):
    """FailsInFive whose step never returns instead."""

    def fail(self):
        import time
        time.sleep(3600)


class BadSpaces(Line):
    """Its sensor's bounds are the wrong way round."""

    sensors = [("x", 1.0, -1.0), "goal"]


class BadActuator(Line):
    """A discrete actuator of one value."""

    actuators = [("move", 1)]


class NoStep:
    """Declares spaces but has no step."""

    sensors = ["x"]
    actuators = [("move", 2)]

    def reset(self, rows, seeds, obs):
        pass


class NoParam(Line):
    """Declares speed but its constructor does not take it."""

    def __init__(self, worlds):
        self.speed = np.float32(0.1)
