#!/usr/bin/python3
"""A CleanRL script (ppo.py on CartPole-v1 by default; dqn.py, sac_continuous_action.py with
--env-id) against `bodhi run` of an experiment: wall time from launch until the mean
return of the last 100 episodes first reaches a threshold (475), runs interleaved (CleanRL,
bodhi, CleanRL, bodhi, ...) so that a change in the machine's load touches both alike.
Writes one JSON file with every run's wall, agent-steps, CPU time (wait4's rusage of the
launched process, which reaps its children), /proc/loadavg before and after, the versions
and the exact commands, and the CleanRL/bodhi ratios of the medians and of the minima.

The script is run as fetched, with its defaults (only --seed, and --env-id when given, are
passed; dqn.py and sac_continuous_action.py also import cleanrl_utils/buffers.py from the
same snapshot, found on --pythonpath). Its two imports that
are not needed for the algorithm get small stand-ins, written to a temporary directory at
run time: `tyro` (cli() returns the Args dataclass with its defaults, --seed N applied) and
`torch.utils.tensorboard` (a SummaryWriter that ignores everything but
`charts/episodic_return`: it keeps the last 100 values, and when there are 100 whose mean is
>= the threshold it writes the time, global_step and episode count to a file and ends the
process with os._exit(0)). A run that never gets there ends at the script's total_timesteps.

bodhi runs the experiment's train phase only (the run file with its later phases dropped,
written to the temporary directory; `--full` runs the file as it is); the threshold time is
the `t` of the first train `update` event in log.jsonl with >= 100 episodes and
mean_return >= the threshold (bodhi's own objective_average condition stops the phase there;
a greedy_average condition in the run file is replaced by it, the window being CleanRL's
criterion).

  bench/cleanrl_ratio.py --ppo /tmp/cleanrl/ppo.py --pythonpath /tmp/gym029 \
      --cleanrl-seeds 1 2 3 --bodhi-seeds 1 2 3 4 5 \
      --out bench/results/cleanrl-vs-bodhi-cartpole-cpu-epyc-2core.json
  bench/cleanrl_ratio.py --script /tmp/cleanrl/sac_continuous_action.py --env-id Pendulum-v1 \
      --pythonpath /tmp/gym029 --experiment experiments/pendulum_sac.yml --threshold -200 ...
--pythonpath is where `import gymnasium` finds the Gymnasium to use (e.g. a source tree's
gymnasium/ folder's parent). --ppo-source / --gymnasium-source record where they came from.
"""
import argparse, datetime, hashlib, json, os, shlex, shutil, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--ppo", "--script", dest="ppo", required=True,
               help="path to the CleanRL script (cleanrl/ppo.py, dqn.py, sac_continuous_action.py)")
p.add_argument("--env-id", default="", help="the CleanRL script's --env-id (its default when empty)")
p.add_argument("--pythonpath", default="", help="directory holding the gymnasium package to use")
p.add_argument("--python", default="/usr/bin/python3")
p.add_argument("--ppo-source", default="", help="where ppo.py came from (recorded only)")
p.add_argument("--gymnasium-source", default="", help="where Gymnasium came from (recorded only)")
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--experiment", default="experiments/cartpole_ppo.yml")
p.add_argument("--phase", default="train")
p.add_argument("--full", action="store_true", help="run every phase of the experiment")
p.add_argument("--threshold", type=float, default=475.0)
p.add_argument("--cleanrl-seeds", type=int, nargs="+", default=[1, 2, 3])
p.add_argument("--bodhi-seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
p.add_argument("--out", required=True)
p.add_argument("--machine-note", default="shared machine: other processes may have run alongside; see each run's loadavg",
               help="what the result's machine.note says about the sitting")
a = p.parse_args()

TYRO = '''"""Stand-in for tyro: cli() returns the dataclass with its defaults; only --seed N and
--env-id ID are read."""
import sys


def cli(cls):
    args = cls()
    argv = sys.argv[1:]
    while argv:
        if argv[0] == "--seed" and len(argv) > 1:
            args.seed = int(argv[1])
            argv = argv[2:]
        elif argv[0] == "--env-id" and len(argv) > 1:
            args.env_id = argv[1]
            argv = argv[2:]
        else:
            sys.exit(f"tyro stand-in: only --seed N and --env-id ID are understood, not {argv[0]!r}")
    return args
'''

RUNNER = '''"""Runs ppo.py as __main__ with a stand-in torch.utils.tensorboard whose SummaryWriter ends
the process when the mean of the last 100 charts/episodic_return values reaches THRESHOLD."""
import collections, json, os, runpy, sys, time, types

THRESHOLD = float(os.environ["BENCH_THRESHOLD"])
RESULT = os.environ["BENCH_RESULT"]


class SummaryWriter:
    def __init__(self, *args, **kwargs):
        self.last = collections.deque(maxlen=100)
        self.episodes = 0

    def add_text(self, *args, **kwargs):
        pass

    def add_scalar(self, tag, value, step=None, *args, **kwargs):
        if tag != "charts/episodic_return":
            return
        self.episodes += 1
        self.last.append(float(value))
        mean = sum(self.last) / len(self.last)
        if len(self.last) == 100 and mean >= THRESHOLD:
            t = time.time()
            import gymnasium, numpy, torch
            with open(RESULT, "w") as f:
                json.dump({"t": t, "global_step": int(step), "episodes": self.episodes, "mean_return": mean,
                           "torch_threads": torch.get_num_threads(),
                           "torch_interop_threads": torch.get_num_interop_threads(),
                           "torch": torch.__version__, "numpy": numpy.__version__,
                           "gymnasium": gymnasium.__version__, "gymnasium_file": gymnasium.__file__,
                           "cuda": torch.cuda.is_available()}, f)
            sys.stdout.flush()
            os._exit(0)

    def close(self):
        pass


tb = types.ModuleType("torch.utils.tensorboard")
tb.SummaryWriter = SummaryWriter
sys.modules["torch.utils.tensorboard"] = tb
ppo = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(ppo, run_name="__main__")
'''


def loadavg():
    return open("/proc/loadavg").read().strip()


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def launch(cmd, env=None, cwd=None, stdout=None):
    """Runs cmd; returns (launch time, exit time, exit code, user CPU s, system CPU s)."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=stdout, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(proc.pid, 0)
    t1 = time.time()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return t0, t1, proc.returncode, ru.ru_utime, ru.ru_stime


tmp = tempfile.mkdtemp(prefix="cleanrl-ratio-")
stub = os.path.join(tmp, "stub")
os.makedirs(stub)
open(os.path.join(stub, "tyro.py"), "w").write(TYRO)
runner = os.path.join(stub, "run_ppo.py")
open(runner, "w").write(RUNNER)
ppo = os.path.abspath(a.ppo)

env_c = dict(os.environ)
env_c["PYTHONPATH"] = os.pathsep.join(x for x in [stub, os.path.abspath(a.pythonpath) if a.pythonpath else ""] if x)
env_c["BENCH_THRESHOLD"] = str(a.threshold)
for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    env_c.pop(k, None)  # CleanRL's default: torch picks its own thread count

experiment = a.experiment
run_file_text = None
if not a.full:
    import yaml  # Debian's python3-yaml
    doc = yaml.safe_load(open(a.experiment))
    doc["schedule"] = [e for e in doc["schedule"] if a.phase in e][:1]
    # CleanRL's criterion is the training window's: a run file that stops on its greedy
    # evaluation (greedy_average, which may come before the window reaches the threshold)
    # stops here on the window instead, so that both stop where they are timed
    for e in doc["schedule"]:
        conds = ((e[a.phase] or {}).get("simulation") or {}).get("conditions") or []
        for i, c in enumerate(conds):
            if c.get("name") == "greedy_average":
                conds[i] = {"name": "objective_average", "params": {"window": 100, "threshold": a.threshold}}
    run_file_text = yaml.safe_dump(doc, sort_keys=False)
    experiment = os.path.join(tmp, f"{a.phase}-only.yml")
    open(experiment, "w").write(run_file_text)

# bodhi is copied (with libbodhi_torch.so, which it loads from beside itself) so that a rebuild
# of the build folder during the sitting cannot mix two binaries; the copy's children are the
# copy too (the conductor spawns /proc/self/exe).
pinned = os.path.join(tmp, "bin")
os.makedirs(pinned)
bin_src = {}
for b in (a.bodhi, os.path.join(os.path.dirname(a.bodhi), "libbodhi_torch.so")):
    if os.path.exists(b):
        shutil.copy2(b, pinned)
        bin_src[b] = {"sha256": sha256(b), "mtime": datetime.datetime.fromtimestamp(
            os.path.getmtime(b), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
bodhi = os.path.join(pinned, os.path.basename(a.bodhi))
commit_at_start = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                                 text=True).stdout.strip()


def run_cleanrl(seed):
    result = os.path.join(tmp, f"cleanrl-{seed}.json")
    work = os.path.join(tmp, f"cleanrl-{seed}")
    os.makedirs(work)
    cmd = [a.python, runner, ppo, "--seed", str(seed)] + (["--env-id", a.env_id] if a.env_id else [])
    env = dict(env_c, BENCH_RESULT=result)
    before = loadavg()
    with open(os.path.join(work, "stdout.txt"), "w") as out:
        t0, t1, rc, ut, st = launch(cmd, env=env, cwd=work, stdout=out)
    r = {"who": "cleanrl", "seed": seed, "command": shlex.join(cmd), "exit_code": rc,
         "loadavg_before": before, "loadavg_after": loadavg(), "exit_wall_s": t1 - t0,
         "cpu_user_s": ut, "cpu_sys_s": st, "cpu_s": ut + st}
    if os.path.exists(result):
        res = json.load(open(result))
        r.update(reached=True, seconds_to_threshold=res["t"] - t0, agent_steps_to_threshold=res["global_step"],
                 episodes_to_threshold=res["episodes"], mean_return=res["mean_return"], versions=res)
    else:
        r.update(reached=False, seconds_to_threshold=None, agent_steps_to_threshold=None)
    shutil.rmtree(work, ignore_errors=True)
    return r


def run_bodhi(seed):
    out = os.path.join(tmp, f"bodhi-{seed}")
    cmd = [bodhi, "run", experiment, "--seed", str(seed), "--out", out, "--quiet"]
    before = loadavg()
    t0, t1, rc, ut, st = launch(cmd, stdout=subprocess.DEVNULL)
    r = {"who": "bodhi", "seed": seed, "command": shlex.join(cmd), "exit_code": rc,
         "loadavg_before": before, "loadavg_after": loadavg(), "exit_wall_s": t1 - t0,
         "cpu_user_s": ut, "cpu_sys_s": st, "cpu_s": ut + st,
         "reached": False, "seconds_to_threshold": None, "agent_steps_to_threshold": None}
    try:
        for line in open(os.path.join(out, "log.jsonl")):
            e = json.loads(line)
            if (e.get("event") == "update" and e.get("phase") == a.phase and "mean_return" in e
                    and e.get("episodes", 0) >= 100 and e["mean_return"] >= a.threshold):
                r.update(reached=True, seconds_to_threshold=e["t"] - t0, agent_steps_to_threshold=e["steps"],
                         episodes_to_threshold=e["episodes"], mean_return=e["mean_return"])
                break
        s = json.load(open(os.path.join(out, "summary.json")))
        ph = {x["name"]: x for x in s["phases"]}[a.phase]
        r.update(phase_wall_s=ph["wall_s"], phase_ended=ph["ended"], phase_agent_steps=ph["agents"][0]["steps"])
    except (OSError, ValueError, KeyError) as err:
        r["error"] = str(err)
    shutil.rmtree(out, ignore_errors=True)
    return r


runs = []
for i in range(max(len(a.cleanrl_seeds), len(a.bodhi_seeds))):
    for who, seeds, fn in (("cleanrl", a.cleanrl_seeds, run_cleanrl), ("bodhi", a.bodhi_seeds, run_bodhi)):
        if i < len(seeds):
            r = fn(seeds[i])
            r["order"] = len(runs) + 1
            runs.append(r)
            print(json.dumps({k: r[k] for k in ("order", "who", "seed", "reached", "seconds_to_threshold",
                                                "agent_steps_to_threshold", "cpu_s", "loadavg_before")}), flush=True)


def stats(who):
    rs = [r for r in runs if r["who"] == who]
    ok = [r for r in rs if r["reached"]]
    out = {"runs": len(rs), "reached": len(ok)}
    for key in ("seconds_to_threshold", "exit_wall_s", "cpu_s", "agent_steps_to_threshold"):
        v = [r[key] for r in ok]
        if v:
            out[key] = {"min": min(v), "median": statistics.median(v), "max": max(v)}
    return out


sc, sb = stats("cleanrl"), stats("bodhi")
ratio = {}
for key in ("seconds_to_threshold", "exit_wall_s", "cpu_s"):
    if key in sc and key in sb:
        ratio[key] = {"median": sc[key]["median"] / sb[key]["median"], "min": sc[key]["min"] / sb[key]["min"]}


# each CleanRL run against the bodhi run right after it (same load, as near as interleaving gets)
pairs = []
for c, b in zip(runs, runs[1:]):
    if c["who"] == "cleanrl" and b["who"] == "bodhi" and c["reached"] and b["reached"]:
        pairs.append({"orders": [c["order"], b["order"]],
                      "wall": c["seconds_to_threshold"] / b["seconds_to_threshold"], "cpu": c["cpu_s"] / b["cpu_s"]})
if pairs:
    ratio["adjacent_pairs"] = {"pairs": pairs, "median_wall": statistics.median(x["wall"] for x in pairs),
                               "median_cpu": statistics.median(x["cpu"] for x in pairs)}


def git(*args, cwd=None):
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=cwd).stdout.strip()


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {
    "what": f"wall time from launch until the mean return of the last 100 episodes first reaches {a.threshold} "
            f"on {a.env_id or 'CartPole-v1'}: CleanRL {os.path.basename(ppo)} (defaults) vs `bodhi run {a.experiment}` "
            f"({'all phases' if a.full else a.phase + ' phase only'}), interleaved",
    "command": shlex.join(["bench/" + os.path.basename(sys.argv[0])] + sys.argv[1:]),
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "loadavg_start": runs[0]["loadavg_before"] if runs else None,
                "note": a.machine_note},
    "bodhi": {"version": subprocess.run([bodhi, "--version"], capture_output=True, text=True).stdout.strip(),
              "commit_at_start": commit_at_start, "commit_at_end": git("describe", "--always", "--dirty"),
              "binaries": bin_src, "ran": f"copies of these in a temporary bin/ ({bodhi})",
              "experiment": a.experiment, "run_file": run_file_text,
              "threshold_from": "t of the first train `update` event in log.jsonl with episodes >= 100 and "
                                "mean_return >= threshold, minus the launch time"},
    "cleanrl": {"ppo_py": ppo, "ppo_py_sha256": sha256(ppo), "ppo_source": a.ppo_source,
                "gymnasium_source": a.gymnasium_source, "python": a.python,
                "python_version": subprocess.run([a.python, "-c", "import sys; print(sys.version.split()[0])"],
                                                 capture_output=True, text=True).stdout.strip(),
                "pythonpath": env_c["PYTHONPATH"],
                "thread_env": "OMP_NUM_THREADS, MKL_NUM_THREADS, OPENBLAS_NUM_THREADS unset (ppo.py sets none; "
                              "torch picks its own count, recorded per run as versions.torch_threads); "
                              "torch_deterministic=True and cuda=True are ppo.py's defaults (no GPU: device cpu)",
                "threshold_from": "stand-in torch.utils.tensorboard.SummaryWriter: keeps the last 100 "
                                  "charts/episodic_return values; at the first add_scalar where there are 100 and "
                                  "their mean >= threshold it records time.time() and global_step and calls "
                                  "os._exit(0); seconds_to_threshold = that time minus the launch time",
                "stand_ins": {"tyro.py": TYRO, "run_ppo.py": RUNNER}},
    "summary": {"cleanrl": sc, "bodhi": sb, "ratio_cleanrl_over_bodhi": ratio},
    "runs": runs,
}
os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
json.dump(doc, open(a.out, "w"), indent=1)
shutil.rmtree(tmp, ignore_errors=True)
for key, v in ratio.items():
    if key == "adjacent_pairs":
        print(f"adjacent pairs: median CleanRL/bodhi {v['median_wall']:.2f}x wall, {v['median_cpu']:.2f}x CPU")
        continue
    print(f"{key}: CleanRL/bodhi median {v['median']:.2f}x, min {v['min']:.2f}x")
print(f"wrote {a.out}")
sys.exit(0 if all(r["reached"] for r in runs) else 1)
