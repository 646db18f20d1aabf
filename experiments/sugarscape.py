"""SugarScape-like foraging: agents on a sugar grid move to gather what regrows.

An environment written in Python for bodhi (docs/python.md, "Envs written in Python"),
named in experiments/sugarscape.yml as python:sugarscape:SugarScape. Each world is a
size x size torus whose cells hold sugar up to a capacity (two hills, as in Epstein and
Axtell's Sugarscape), regrowing by `regrow` a step. `agents` agents per world see the
sugar on their own cell and on the cells one and two steps away in the four directions
(their vision), their own stock and whether they are alive; each step they stay or move
one cell (Discrete(5)), then gather the sugar of the cell they stand on (shared evenly
when several stand there) and burn their metabolism (1 or 2 a step). An agent whose
stock runs out dies and stays dead until its world starts over; a world ends when all its
agents are dead, or after max_steps. Reward: the sugar gathered, a quarter per unit.

The rule-based Sugarscape agent moves to the richest visible cell; `greedy_actions` is
that rule over the observations, a yardstick for what PPO learns. Everything is NumPy
over all worlds at once; a world's start draws from its seed only, so a world's episode
is the same whatever the split of worlds across muscles (replay --verify holds).
"""
import numpy as np

VISION = 2
# the cells an agent sees: its own, then north, east, south, west at 1..VISION steps
_OFF = [(0, 0)] + [(dy * k, dx * k) for dy, dx in ((-1, 0), (0, 1), (1, 0), (0, -1))
                   for k in range(1, VISION + 1)]
OFF_Y = np.array([o[0] for o in _OFF], dtype=np.int64)
OFF_X = np.array([o[1] for o in _OFF], dtype=np.int64)
# action -> move: stay, north, east, south, west
MOVE_Y = np.array([0, -1, 0, 1, 0], dtype=np.int64)
MOVE_X = np.array([0, 0, 1, 0, -1], dtype=np.int64)
MAX_SUGAR = 4.0
STOCK_SCALE = 20.0


def capacity(size):
    """(size, size) float32: two sugar hills of up to MAX_SUGAR, at a quarter and three
    quarters of the diagonal."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c1, c2 = size * 0.25, size * 0.75
    d1 = np.hypot(y - c1, x - c1)
    d2 = np.hypot(y - c2, x - c2)
    d = np.minimum(d1, d2) / (size * 0.5)
    return np.clip(np.floor(MAX_SUGAR * (1.0 - d) + 0.5), 0.0, MAX_SUGAR).astype(np.float32)


def draws(seeds, k):
    """(len(seeds), k) uint64: k draws per seed, SplitMix64 of the seed's k successors; a
    world's draws depend on its seed alone, whichever worlds start over with it."""
    z = seeds[:, None] + np.uint64(0x9E3779B97F4A7C15) * np.arange(1, k + 1, dtype=np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def greedy_actions(obs):
    """The rule-based agent: move one step toward the richest cell in view (stay when its
    own cell is as rich). obs is (..., 11); returns int64 (...)."""
    here = obs[..., 0]
    dirs = obs[..., 1:1 + 4 * VISION].reshape(obs.shape[:-1] + (4, VISION)).max(axis=-1)
    best = dirs.argmax(axis=-1)
    return np.where(dirs.max(axis=-1) > here, best + 1, 0).astype(np.int64)


class SugarScape:
    """SugarScape-like foraging: agents move on a regrowing sugar grid (Python, NumPy)."""

    name = "sugarscape"
    max_steps = 200
    params = {
        "agents": (8, 1, 256, "agents per world"),
        "size": (16, 6, 128, "the grid's side (cells)"),
        "regrow": (0.5, 0.0, 4.0, "sugar a cell regrows per step, up to its capacity"),
    }
    _cells = ["here"] + ["%s%d" % (d, k) for d in "nesw" for k in range(1, VISION + 1)]
    groups = {
        "agent": {
            "count": "agents",
            "sensors": [(c, 0.0, 1.0) for c in _cells] + [("stock", 0.0, 5.0), ("alive", 0.0, 1.0)],
            "actuators": [("move", 5)],
        }
    }

    def __init__(self, worlds, agents, size, regrow):
        self.n, self.a, self.g = worlds, agents, size
        self.regrow = np.float32(regrow)
        self.cap = capacity(size)
        self.sugar = np.empty((worlds, size, size), dtype=np.float32)
        self.y = np.zeros((worlds, agents), dtype=np.int64)
        self.x = np.zeros((worlds, agents), dtype=np.int64)
        self.stock = np.zeros((worlds, agents), dtype=np.float32)
        self.burn = np.ones((worlds, agents), dtype=np.float32)
        self.alive = np.zeros((worlds, agents), dtype=bool)
        self.worlds = np.arange(worlds, dtype=np.int64)[:, None]
        # wrap[VISION + i] is cell i on the torus for -VISION <= i < size + VISION (a table:
        # NumPy's integer % is slow)
        self.wrap = np.arange(-VISION, size + VISION, dtype=np.int64) % size

    def reset(self, rows, seeds, obs):
        """Worlds `rows` start over: full sugar, agents placed at random with a stock of 5 to
        10 and a metabolism of 1 or 2, drawn from each world's seed (all worlds at once)."""
        r = draws(seeds, 4 * self.a).reshape(len(rows), 4, self.a)
        self.y[rows] = r[:, 0] % np.uint64(self.g)
        self.x[rows] = r[:, 1] % np.uint64(self.g)
        self.stock[rows] = 5 + r[:, 2] % np.uint64(6)
        self.burn[rows] = 1 + r[:, 3] % np.uint64(2)
        self.sugar[rows] = self.cap
        self.alive[rows] = True
        self._observe(obs, rows)

    def step(self, actions, obs, rewards, terminated):
        g, alive = self.g, self.alive
        move = actions[..., 0].astype(np.int64)
        self.y = np.where(alive, self.wrap[VISION + self.y + MOVE_Y[move]], self.y)
        self.x = np.where(alive, self.wrap[VISION + self.x + MOVE_X[move]], self.x)
        cell = (self.worlds * g + self.y) * g + self.x              # (N, A) flat cell index
        flat = self.sugar.reshape(-1)
        here = cell[alive]
        _, which, crowd = np.unique(here, return_inverse=True, return_counts=True)
        gathered = np.zeros_like(self.stock)
        gathered[alive] = flat[here] / crowd[which]
        flat[here] = 0.0
        self.stock += gathered - np.where(alive, self.burn, 0.0)
        alive &= self.stock > 0
        self.stock[~alive] = 0.0
        self.sugar += self.regrow
        np.minimum(self.sugar, self.cap, out=self.sugar)
        rewards[:] = gathered / MAX_SUGAR
        terminated[:] = ~alive.any(axis=1)
        self._observe(obs, None)

    def _observe(self, obs, rows):
        """obs (N, A, 11) of worlds `rows` (all when None)."""
        w = self.worlds if rows is None else rows[:, None]
        y, x, alive = self.y[w[:, 0]], self.x[w[:, 0]], self.alive[w[:, 0]]
        g = self.g
        # the cells in view as flat indices into sugar: (K, A, 9)
        wrap = self.wrap
        cells = (w[..., None] * g + wrap[VISION + y[..., None] + OFF_Y]) * g + wrap[VISION + x[..., None] + OFF_X]
        seen = np.take(self.sugar.reshape(-1), cells) * np.float32(1.0 / MAX_SUGAR)
        out = obs if rows is None else np.empty((len(rows),) + obs.shape[1:], dtype=np.float32)
        out[..., :len(OFF_Y)] = seen
        out[..., :len(OFF_Y)] *= alive[..., None]
        out[..., -2] = self.stock[w[:, 0]] * np.float32(1.0 / STOCK_SCALE)
        out[..., -1] = alive
        if rows is not None:
            obs[rows] = out
