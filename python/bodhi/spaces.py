"""Spaces of bodhi's envs: gymnasium.spaces when Gymnasium 1.x is importable, else small
classes of bodhi's own with the attributes code reads (shape, dtype, low, high, n, nvec,
sample, contains, seed)."""

import numpy as np

try:
    import gymnasium as _gym

    if int(_gym.__version__.split(".")[0]) < 1:
        raise ImportError("bodhi follows Gymnasium 1.x's VectorEnv API")
    from gymnasium import spaces as _gspaces

    HAVE_GYMNASIUM = True
except ImportError:
    _gym = None
    _gspaces = None
    HAVE_GYMNASIUM = False

_FLOAT_MAX = float(np.finfo(np.float32).max)


class Space:
    """The part of gymnasium.spaces.Space bodhi's envs use."""

    def __init__(self, shape, dtype, seed=None):
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.np_random = np.random.default_rng(seed)

    def seed(self, seed=None):
        self.np_random = np.random.default_rng(seed)
        return [seed]

    def __contains__(self, x):
        return self.contains(x)


class Box(Space):
    def __init__(self, low, high, shape=None, dtype=np.float32, seed=None):
        dtype = np.dtype(dtype)
        shape = tuple(shape) if shape is not None else np.shape(low)
        super().__init__(shape, dtype, seed)
        self.low = np.broadcast_to(np.asarray(low, dtype), shape).copy()
        self.high = np.broadcast_to(np.asarray(high, dtype), shape).copy()

    def sample(self):
        lo = np.where(np.isfinite(self.low), self.low, -1.0)
        hi = np.where(np.isfinite(self.high), self.high, 1.0)
        lo = np.where(np.isfinite(self.low), lo, hi - 1.0)
        hi = np.where(np.isfinite(self.high), hi, lo + 1.0)
        return self.np_random.uniform(lo, hi, self.shape).astype(self.dtype)

    def contains(self, x):
        x = np.asarray(x)
        return (x.shape == self.shape and np.can_cast(x.dtype, self.dtype)
                and bool(np.all(x >= self.low)) and bool(np.all(x <= self.high)))

    def __repr__(self):
        return f"Box({self.low.min()}, {self.high.max()}, {self.shape}, {self.dtype})"


class Discrete(Space):
    def __init__(self, n, seed=None):
        super().__init__((), np.int64, seed)
        self.n = np.int64(n)
        self.start = np.int64(0)

    def sample(self):
        return np.int64(self.np_random.integers(self.n))

    def contains(self, x):
        x = np.asarray(x)
        return x.shape == () and x.dtype.kind in "iu" and 0 <= int(x) < self.n

    def __repr__(self):
        return f"Discrete({self.n})"


class MultiDiscrete(Space):
    def __init__(self, nvec, seed=None):
        self.nvec = np.asarray(nvec, np.int64)
        super().__init__(self.nvec.shape, np.int64, seed)
        self.start = np.zeros_like(self.nvec)

    def sample(self):
        return self.np_random.integers(self.nvec).astype(np.int64)

    def contains(self, x):
        x = np.asarray(x)
        return (x.shape == self.shape and x.dtype.kind in "iu"
                and bool(np.all(x >= 0)) and bool(np.all(x < self.nvec)))

    def __repr__(self):
        return f"MultiDiscrete({self.nvec})"


def _bounds(channels):
    lo = np.array([c[1] for c in channels], np.float32)
    hi = np.array([c[2] for c in channels], np.float32)
    # bodhi declares an unbounded sensor as +-FLT_MAX; Gymnasium writes inf
    lo[lo <= -_FLOAT_MAX] = -np.inf
    hi[hi >= _FLOAT_MAX] = np.inf
    return lo, hi


def box(channels, lead=()):
    """A float32 Box over `channels` ((name, low, high, n) tuples), with leading dims `lead`."""
    lo, hi = _bounds(channels)
    shape = tuple(lead) + (len(channels),)
    lo, hi = np.broadcast_to(lo, shape), np.broadcast_to(hi, shape)
    if HAVE_GYMNASIUM:
        return _gspaces.Box(lo, hi, shape, np.float32)
    return Box(lo, hi, shape, np.float32)


def actions(channels, discrete, lead=()):
    """The action space of one row (lead ()) or of `lead` rows."""
    if not discrete:
        return box(channels, lead)
    ns = [c[3] for c in channels]
    if len(ns) == 1 and not lead:
        return _gspaces.Discrete(ns[0]) if HAVE_GYMNASIUM else Discrete(ns[0])
    nvec = np.broadcast_to(np.array(ns, np.int64), tuple(lead) + (len(ns),))
    if len(ns) == 1:
        nvec = nvec[..., 0]
    return _gspaces.MultiDiscrete(nvec) if HAVE_GYMNASIUM else MultiDiscrete(nvec)
