#!/usr/bin/env python3
"""Training benchmark: runs `bodhi run EXPERIMENT --seed S` for several seeds and measures,
from the moment `bodhi run` starts, the wall time until the train phase's mean return over
the last 100 episodes first reaches the threshold (read from the run's log.jsonl, whose
events carry wall-clock times). Writes one JSON file with the machine, commit and command.

  bench/train.py experiments/cartpole_ppo.yml --threshold 475 --seeds 1 2 3 4 5 \
      --out bench/results/train-cartpole-cpu-epyc-2core.json
"""
import argparse, datetime, json, os, shutil, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("experiment")
p.add_argument("--threshold", type=float, required=True)
p.add_argument("--phase", default="train")
p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--device", default=None)
p.add_argument("--out", required=True)
a = p.parse_args()

def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count()}

runs = []
tmp = tempfile.mkdtemp(prefix="bd-train-")
for seed in a.seeds:
    out = os.path.join(tmp, f"s{seed}")
    cmd = [a.bodhi, "run", a.experiment, "--seed", str(seed), "--out", out, "--quiet"]
    if a.device:
        cmd += ["--device", a.device]
    t0 = time.time()
    rc = subprocess.call(cmd)
    total = time.time() - t0
    reached, steps, final = None, None, None
    for line in open(os.path.join(out, "log.jsonl")):
        e = json.loads(line)
        if e.get("event") == "update" and e.get("phase") == a.phase and "mean_return" in e:
            final = e["mean_return"]
            if reached is None and e["episodes"] >= 100 and e["mean_return"] >= a.threshold:
                reached, steps = e["t"] - t0, e["steps"]
    summary = json.load(open(os.path.join(out, "summary.json")))
    ph = {x["name"]: x for x in summary["phases"]}
    r = {"seed": seed, "exit_code": rc, "reached": reached is not None,
         "seconds_to_threshold": reached, "agent_steps_to_threshold": steps,
         "train_mean_return": ph[a.phase]["agents"][0]["mean_return"],
         "train_phase_wall_s": ph[a.phase]["wall_s"], "run_wall_s": total,
         "train_agent_steps": ph[a.phase]["agents"][0]["steps"],
         "train_agent_steps_per_s": ph[a.phase]["agents"][0]["steps_per_s"]}
    if "test" in ph:
        r["test_mean_return"] = ph["test"]["agents"][0]["mean_return"]
    runs.append(r)
    print(json.dumps(r), flush=True)
shutil.rmtree(tmp, ignore_errors=True)

ok = [r for r in runs if r["reached"]]
doc = {"what": f"wall time from `bodhi run` start until the {a.phase} phase's mean return "
               f"(last 100 episodes) reaches {a.threshold}",
       "experiment": a.experiment, "threshold": a.threshold,
       "command": " ".join([a.bodhi, "run", a.experiment, "--seed", "S", "--out", "DIR", "--quiet"]
                           + (["--device", a.device] if a.device else [])),
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
       "machine": machine(),
       "seeds_reached": f"{len(ok)}/{len(runs)}",
       "max_seconds_to_threshold": max((r["seconds_to_threshold"] for r in ok), default=None),
       "mean_seconds_to_threshold": sum(r["seconds_to_threshold"] for r in ok) / len(ok) if ok else None,
       "min_train_agent_steps_per_s": min((r["train_agent_steps_per_s"] for r in runs), default=None),
       "runs": runs}
json.dump(doc, open(a.out, "w"), indent=1)
print(f"{doc['seeds_reached']} seeds reached {a.threshold}; max {doc['max_seconds_to_threshold']} s; wrote {a.out}")
sys.exit(0 if len(ok) == len(runs) else 1)
