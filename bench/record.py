#!/usr/bin/env python3
"""Recording benchmark: what writing every step to the trace costs a training run, and
how fast the trace writer itself is. In one sitting:

1. `bodhi run` of PPO on CartPole with --worlds worlds (8192), --repeats times each with
   `record: false` and with every step of every world recorded through each compression
   of --modes (none, lz4, blosc), alternating; a mode's cost is
   1 - (steps/s recording) / (steps/s not recording), from each run's summary.json.
2. `bodhi-tracebench`: the writer's rate per compression, to local disk (fsync'd).

  /usr/bin/python3 bench/record.py --out bench/results/record-cpu-xeon-2core.json
"""
import argparse, datetime, json, os, shutil, subprocess, tempfile

p = argparse.ArgumentParser()
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--tracebench", default="build/bodhi-tracebench")
p.add_argument("--worlds", type=int, default=8192)
p.add_argument("--steps", type=int, default=0, help="agent-steps per run (default: 24 rounds)")
p.add_argument("--repeats", type=int, default=2)
p.add_argument("--modes", default="none,lz4,blosc", help="compressions to record with, each against record: false")
p.add_argument("--out", required=True)
a = p.parse_args()

ROLLOUT = 16
steps = a.steps or a.worlds * ROLLOUT * 24
RUN = """uid: record-bench
seed: 1
schedule:
  - train:
      environments:
        - environment: {{name: CartPole-v1, uid: pole, params: {{worlds: {worlds}}}}}
      agents:
        - name: balancer
          brain: {{name: ppo, params: {{rollout_steps: {rollout}, learning_rate: 2.5e-3}}}}
          muscle: {{name: ppo}}
          sensors: [pole.*]
          actuators: [pole.push]
          record: {record}
      simulation:
        conditions: [{{name: max_steps, params: {{steps: {steps}}}}}]
      phase_config: {{worker: 2, device: cpu}}
"""

def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count()}

tmp = tempfile.mkdtemp(prefix="bd-record-")
runs = []
modes = a.modes.split(",")
for rep in range(a.repeats):
    for mode in ["off"] + modes:
        record = "false" if mode == "off" else "{compression: %s}" % mode
        f = os.path.join(tmp, f"r{mode}.yml")
        open(f, "w").write(RUN.format(worlds=a.worlds, rollout=ROLLOUT, record=record, steps=steps))
        out = os.path.join(tmp, f"{mode}{rep}")
        subprocess.check_call([a.bodhi, "run", f, "--out", out, "--quiet"])
        s = json.load(open(os.path.join(out, "summary.json")))
        ag = s["phases"][0]["agents"][0]
        h5 = os.path.join(out, "memory", "train.balancer.h5")
        runs.append({"record": mode != "off", "compression": None if mode == "off" else mode, "steps": ag["steps"],
                     "steps_per_s": ag["steps_per_s"], "trace_bytes": os.path.getsize(h5)})
        shutil.rmtree(out)
mean = lambda v: sum(v) / len(v)
off = mean([r["steps_per_s"] for r in runs if not r["record"]])
per_mode = {}
for m in modes:
    sps = mean([r["steps_per_s"] for r in runs if r["compression"] == m])
    per_mode[m] = {"steps_per_s": sps, "recording_cost": round(1 - sps / off, 4),
                   "trace_bytes": mean([r["trace_bytes"] for r in runs if r["compression"] == m])}
rec = [r["steps_per_s"] for r in runs if r["record"]]
cost = 1 - mean(rec) / off
writer = json.loads(subprocess.check_output([a.tracebench, "--worlds", str(a.worlds), "--rows", "8192",
                                             "--dir", tmp]))
shutil.rmtree(tmp)

def compressor_share(training, writer):
    """The share of one core each compression's writer needs at the rate a recording run
    produces trace bytes: (uncompressed bytes a second of the fastest uncompressed run) /
    (the writer's MB/s for that compression). A bound on what compression adds to a run
    that does not depend on how busy the machine is while the runs compare steps/s."""
    none = [r for r in training["runs"] if r.get("compression") == "none"]
    if not none:
        return {}
    rate = max(r["trace_bytes"] * r["steps_per_s"] / r["steps"] for r in none)  # bytes/s
    return {m["compression"]: round(rate / (m["MB_per_s"] * 1e6), 4) for m in writer["modes"]}

commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {
    "bench": "record", "date": datetime.date.today().isoformat(), "commit": commit, "machine": machine(),
    "command": "bench/record.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items() if k not in ("out",)),
    "training": {"env": "CartPole-v1", "worlds": a.worlds, "rollout_steps": ROLLOUT, "runs": runs,
                 "steps_per_s_recording": mean(rec), "steps_per_s_not_recording": off,
                 "recording_cost": round(cost, 4), "per_compression": per_mode, "target_cost": 0.15},
    "writer": writer,
}
result["training"]["compressor_core_share"] = compressor_share(result["training"], writer)
result["load_average"] = os.getloadavg()
json.dump(result, open(a.out, "w"), indent=2)
print(json.dumps({"recording_cost": {m: v["recording_cost"] for m, v in per_mode.items()},
                  "writer_MB_per_s": {m["compression"]: m["MB_per_s"] for m in writer["modes"]},
                  "ratios": {m["compression"]: m["ratio"] for m in writer["modes"]}}))
