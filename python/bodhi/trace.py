"""bodhi.open_run: a run's trace (docs/trace-format.md) as NumPy arrays and pandas tables,
read with h5py (Debian's python3-h5py) in SWMR mode, so a live run can be followed too.

    run = bodhi.open_run("runs/cartpole-ppo")
    run.phases                        # ['train', 'test'], in run order
    a = run["train"]["balancer"]      # or run.agent("train", "balancer")
    a.episodes                        # DataFrame (a structured array without pandas)
    a.rewards[-100:]                  # (100, N) float32, read from the file on indexing
    a.last(100, world=0)              # the last 100 steps of world 0 as a DataFrame
"""

import json
import os

import numpy as np

try:
    import pandas as _pd
except ImportError:
    _pd = None


def _h5py():
    try:
        import h5py
    except ImportError as e:
        raise ImportError("bodhi.open_run needs h5py (Debian: python3-h5py)") from e
    return h5py


class AgentTrace:
    """One agent's trace in one phase: the datasets sensors (T, N, S), actuators (T, N, U),
    rewards, terminated, truncated (T, N) (h5py datasets: index them to read rows), the
    episodes table and final_sensors, and the group's attributes."""

    def __init__(self, group, phase, agent):
        self._g = group
        self.phase, self.name = phase, agent
        self.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in group.attrs.items()}
        self.sensor_ids = [str(s) for s in group.attrs["sensor_ids"]]
        self.actuator_ids = [str(s) for s in group.attrs["actuator_ids"]]
        self.env = str(self.attrs.get("env", ""))
        self.env_params = json.loads(self.attrs["env_params"]) if self.attrs.get("env_params") else {}
        self.record_every = int(self.attrs.get("record_every", 1))

    def __getattr__(self, name):
        if name in ("sensors", "actuators", "rewards", "terminated", "truncated", "final_sensors"):
            return self._g[name]
        raise AttributeError(name)

    @property
    def steps(self):
        """Rows recorded so far (T)."""
        return int(self._g["rewards"].shape[0])

    @property
    def columns(self):
        """Columns recorded (N): worlds x members."""
        return int(self._g["rewards"].shape[1])

    @property
    def episodes(self):
        """Every finished episode: world, start_step, length, return, terminated,
        truncated; a pandas DataFrame (a NumPy structured array without pandas)."""
        e = self._g["episodes"][:]
        return _pd.DataFrame(e) if _pd is not None else e

    def arrays(self, start=None, stop=None):
        """Rows [start, stop) of every step dataset as NumPy arrays (a dict)."""
        sl = slice(start, stop)
        return {k: self._g[k][sl] for k in ("sensors", "actuators", "rewards", "terminated", "truncated")}

    def last(self, n=100, world=None):
        """The last n recorded steps (of column `world`, or of every column) as a pandas
        DataFrame: step, world, one column per sensor and actuator id, reward, terminated,
        truncated."""
        if _pd is None:
            raise ImportError("AgentTrace.last needs pandas (Debian: python3-pandas); use arrays()")
        T = self.steps
        t0 = max(0, T - int(n))
        col = slice(None) if world is None else slice(int(world), int(world) + 1)
        if world is not None and not 0 <= int(world) < self.columns:
            raise IndexError(f"bodhi: {self.phase}/{self.name} records columns 0..{self.columns - 1}, not {world}")
        obs = self._g["sensors"][t0:T, col]
        act = self._g["actuators"][t0:T, col]
        rows, cols = obs.shape[:2]
        data = {"step": np.repeat(np.arange(t0, t0 + rows, dtype=np.int64) * self.record_every, cols),
                "world": np.tile(np.arange(cols) + (0 if world is None else int(world)), rows)}
        for j, sid in enumerate(self.sensor_ids):
            data[sid] = obs[:, :, j].reshape(-1)
        for j, aid in enumerate(self.actuator_ids):
            data[aid] = act[:, :, j].reshape(-1)
        data["reward"] = self._g["rewards"][t0:T, col].reshape(-1)
        data["terminated"] = self._g["terminated"][t0:T, col].reshape(-1).astype(bool)
        data["truncated"] = self._g["truncated"][t0:T, col].reshape(-1).astype(bool)
        return _pd.DataFrame(data)

    def __repr__(self):
        return f"AgentTrace({self.phase}/{self.name}: env {self.env}, {self.steps} steps x {self.columns} columns)"


class Run:
    """A run folder (runs/<uid>) or its run.h5: phases in run order, per phase its agents."""

    def __init__(self, path):
        h5py = _h5py()
        p = os.path.join(path, "run.h5") if os.path.isdir(path) else path
        if not os.path.exists(p):
            raise FileNotFoundError(f"bodhi.open_run: no run.h5 at {p}")
        self.path = os.path.dirname(os.path.abspath(p))
        try:
            self._f = h5py.File(p, "r", swmr=True)
        except OSError as e:
            raise OSError(f"bodhi.open_run: {p} is not a run's run.h5 (HDF5 cannot open it: {e})") from e
        if "phases" not in self._f.attrs or "seed" not in self._f.attrs:
            self._f.close()
            raise ValueError(f"bodhi.open_run: {p} is not a run's run.h5 (no phases or seed attribute; an agent's"
                             " trace under memory/ is read through its run's run.h5)")
        self.attrs = dict(self._f.attrs)
        self.phases = [str(x) for x in self._f.attrs["phases"]]
        self.seed = int(self._f.attrs["seed"])
        self.run_file = str(self._f.attrs.get("run_file", ""))

    def agents(self, phase):
        """The agents with a trace in `phase` (links to missing files left out)."""
        if phase not in self._f:
            raise KeyError(f"bodhi: run {self.path} has no phase {phase!r} (phases: {self.phases})")
        g = self._f[phase]
        return [a for a in g if g.get(a) is not None]

    def agent(self, phase, agent):
        if agent not in self.agents(phase):
            raise KeyError(f"bodhi: phase {phase} of run {self.path} has no agent {agent!r}"
                           f" (agents: {self.agents(phase)})")
        return AgentTrace(self._f[phase][agent], phase, agent)

    def __getitem__(self, phase):
        return {a: self.agent(phase, a) for a in self.agents(phase)}

    def checkpoint(self, phase, agent):
        """The path of agent's checkpoint from train phase `phase` (it may not exist)."""
        return os.path.join(self.path, "checkpoints", phase, f"{agent}.pt")

    def close(self):
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Run({self.path!r}: phases {self.phases})"


def open_run(path):
    """Opens a run folder (or its run.h5) for reading; see Run and AgentTrace."""
    return Run(path)
