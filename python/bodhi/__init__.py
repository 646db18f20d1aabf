"""bodhi from Python: the env engine as Gymnasium-shaped vector envs (make_vec), many-agent
envs as per-group arrays (make_multi) or one world as a PettingZoo ParallelEnv
(parallel_env), and a run's trace as NumPy arrays and pandas tables (open_run).
See docs/python.md."""

from . import _core
from .multi import BodhiMultiEnv, ParallelEnv, make_multi, parallel_env
from .spaces import HAVE_GYMNASIUM
from .policy import Policy, load_policy
from .trace import AgentTrace, Run, open_run
from .vector import AutoresetMode, BodhiVectorEnv, make_vec, register

__version__ = _core.version


def envs():
    """The built-in envs: [(name, Gymnasium id or None, summary)]."""
    return _core.envs()


__all__ = ["AutoresetMode", "BodhiMultiEnv", "BodhiVectorEnv", "HAVE_GYMNASIUM", "ParallelEnv", "envs",
           "make_multi", "make_vec", "load_policy", "open_run", "Policy", "parallel_env", "register", "Run", "AgentTrace"]
