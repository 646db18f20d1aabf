#!/usr/bin/python3
"""Same run, same speed: runs one run file's train phase with one seed R times (10 by
default) at each world count and reports, per size, the min / median / max of the wall
time, the user and kernel (sys) CPU time of the whole process tree (conductor, brain,
muscles: wait4's rusage of `bodhi run`, which reaps its children), its minor page faults,
and the brain's own minor page faults (the last `update` event's `minflt` in log.jsonl),
the time from `bodhi run` to the first env step (the muscles' `startup` events), the
machine's speed just before each run (probe_s: CPU-seconds of a fixed loop),
with every run's figures and the machine's load while it ran. The runs of all sizes are
interleaved (size A, size B, size C, A, B, C, ...) so that a change in the machine's load
touches every size alike. Writes one JSON file with the machine, commit and command.

  bench/steady.py --out bench/results/steady-cartpole-cpu-epyc-2core.json
  bench/steady.py --repeats 3 --worlds 16 1024 --out /tmp/steady.json   (a shared machine)

The run file (experiments/cartpole_ppo.yml by default) is used as it is but for the world
count, the seed (--seed, 2) and the device (cpu): its train phase alone, to its own stop
conditions (CartPole: mean return 475 over 100 episodes). Every run of a size must take the
same agent-steps (the trajectories are a function of the seed); the JSON says whether they did.
"""
import argparse, datetime, json, os, shutil, statistics, subprocess, sys, tempfile, time

import yaml  # Debian's python3-yaml

p = argparse.ArgumentParser()
p.add_argument("--experiment", default="experiments/cartpole_ppo.yml")
p.add_argument("--phase", default="train")
p.add_argument("--worlds", type=int, nargs="+", default=[16, 1024, 4096])
p.add_argument("--repeats", type=int, default=10, help="runs per size (fewer on a shared machine)")
p.add_argument("--seed", type=int, default=2)
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--out", required=True)
a = p.parse_args()
if a.repeats < 1:
    sys.exit("steady.py: --repeats must be >= 1")


def run_file(worlds):
    doc = yaml.safe_load(open(a.experiment))
    keep = []  # the phase and those before it (they cascade into it)
    for entry in doc["schedule"]:
        keep.append(entry)
        if next(iter(entry)) == a.phase:
            break
    doc["schedule"] = keep
    for entry in keep:
        for ph in entry.values():
            for e in ph.get("environments", []) or []:
                e["environment"].setdefault("params", {})["worlds"] = worlds
            pc = ph.get("phase_config")
            if pc is not None:
                pc["device"] = "cpu"
    return yaml.safe_dump(doc, sort_keys=False)


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def probe():
    """The machine's speed: CPU-seconds of a fixed pure-Python loop (one core), taken just
    before and just after each run. On a shared host the same work can take more CPU-seconds
    at one time than another. It samples the machine at two moments only: a run can be
    slowed between them unseen (its own user CPU time for identical work is the better
    witness: every run of a size does the same work)."""
    t0 = time.process_time()
    x = 0
    for i in range(1_500_000):
        x = (x * 31 + i) & 0xFFFFFFFF
    return round(time.process_time() - t0, 4)


def one(path, out):
    pr = probe()
    t0 = time.monotonic()
    proc = subprocess.Popen([a.bodhi, "run", path, "--seed", str(a.seed), "--out", out, "--quiet"],
                            stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"steady.py: bodhi run {path} exited {proc.returncode}")
    minflt, updates, first_step = None, 0, None
    for line in open(os.path.join(out, "log.jsonl")):
        e = json.loads(line)
        if e.get("event") == "update" and "minflt" in e:
            minflt, updates = e["minflt"], updates + 1
        fs = e.get("since_run_s", {}).get("first_step") if e.get("event") == "startup" else None
        if fs is not None and (first_step is None or fs < first_step):  # the first muscle's
            first_step = fs
    summ = json.load(open(os.path.join(out, "summary.json")))
    ph = next(x for x in summ["phases"] if x["name"] == a.phase)
    ag = ph["agents"][0]
    return {"wall_s": round(wall, 3), "user_s": round(ru.ru_utime, 3), "sys_s": round(ru.ru_stime, 3),
            "tree_minflt": ru.ru_minflt, "brain_minflt": minflt, "updates": updates,
            "steps": ag["steps"], "mean_return": ag["mean_return"], "ended": ph.get("ended"),
            "first_step_s": first_step, "loadavg": loadavg(), "probe_s": pr, "probe_after_s": probe()}


def spread(xs):
    xs = [x for x in xs if x is not None]
    if not xs:
        return None
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}


tmp = tempfile.mkdtemp(prefix="bd-steady-")
files = {}
for w in a.worlds:
    files[w] = os.path.join(tmp, f"w{w}.yml")
    open(files[w], "w").write(run_file(w))
runs = {w: [] for w in a.worlds}
load_before = loadavg()
for r in range(a.repeats):
    for w in a.worlds:
        x = one(files[w], os.path.join(tmp, f"w{w}-{r}"))
        runs[w].append(x)
        print(f"worlds {w} run {r + 1}/{a.repeats}: {x['wall_s']:.2f} s wall, {x['sys_s']:.2f} s sys, "
              f"probe {x['probe_s']:.3f} s, "
              f"brain {x['brain_minflt']} minor faults, {x['steps']} steps, load {x['loadavg'][0]:.2f}",
              file=sys.stderr, flush=True)
        shutil.rmtree(os.path.join(tmp, f"w{w}-{r}"))
sizes = []
for w in a.worlds:
    xs = runs[w]
    wall = spread([x["wall_s"] for x in xs])
    sizes.append({
        "worlds": w, "runs": xs,
        "wall_s": wall, "sys_s": spread([x["sys_s"] for x in xs]), "user_s": spread([x["user_s"] for x in xs]),
        "tree_minflt": spread([x["tree_minflt"] for x in xs]),
        "brain_minflt": spread([x["brain_minflt"] for x in xs]),
        "first_step_s": spread([x["first_step_s"] for x in xs]),
        "probe_s": spread([x["probe_s"] for x in xs]),
        "max_over_min_wall": round(wall["max"] / wall["min"], 3),
        "same_steps_every_run": len({x["steps"] for x in xs}) == 1,
        "run_file": open(files[w]).read(),
    })
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                       text=True).stdout.strip() != ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {
    "what": "the same seed run again and again: wall, CPU and page faults per run, per world count",
    "machine": {"cpu": cpu, "cores": os.cpu_count()},
    "commit": commit + ("+dirty" if dirty else ""),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
    "experiment": a.experiment, "phase": a.phase, "seed": a.seed, "repeats": a.repeats,
    "loadavg_before": load_before, "loadavg_after": loadavg(),
    "sizes": sizes,
}
os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
shutil.rmtree(tmp)
for s in sizes:
    print(f"worlds {s['worlds']}: wall {s['wall_s']['min']:.2f} / {s['wall_s']['median']:.2f} / "
          f"{s['wall_s']['max']:.2f} s (max/min {s['max_over_min_wall']}), sys median {s['sys_s']['median']:.2f} s, "
          f"brain faults median {s['brain_minflt']['median'] if s['brain_minflt'] else None}")
