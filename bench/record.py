#!/usr/bin/env python3
"""Recording benchmark: what writing every step to the trace costs a training run, and
how fast the trace writer itself is. In one sitting:

1. `bodhi run` of PPO on CartPole with --worlds worlds (8192), twice each with `record:
   true` (every step of every world) and `record: false`, alternating; the cost is
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
for rep in range(a.repeats):
    for record in ("true", "false"):
        f = os.path.join(tmp, f"r{record}.yml")
        open(f, "w").write(RUN.format(worlds=a.worlds, rollout=ROLLOUT, record=record, steps=steps))
        out = os.path.join(tmp, f"{record}{rep}")
        subprocess.check_call([a.bodhi, "run", f, "--out", out, "--quiet"])
        s = json.load(open(os.path.join(out, "summary.json")))
        ag = s["phases"][0]["agents"][0]
        h5 = os.path.join(out, "memory", "train.balancer.h5")
        runs.append({"record": record == "true", "steps": ag["steps"], "steps_per_s": ag["steps_per_s"],
                     "trace_bytes": os.path.getsize(h5)})
        shutil.rmtree(out)
rec = [r["steps_per_s"] for r in runs if r["record"]]
off = [r["steps_per_s"] for r in runs if not r["record"]]
cost = 1 - (sum(rec) / len(rec)) / (sum(off) / len(off))
writer = json.loads(subprocess.check_output([a.tracebench, "--worlds", str(a.worlds), "--rows", "8192",
                                             "--dir", tmp]))
shutil.rmtree(tmp)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {
    "bench": "record", "date": datetime.date.today().isoformat(), "commit": commit, "machine": machine(),
    "command": "bench/record.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items() if k not in ("out",)),
    "training": {"env": "CartPole-v1", "worlds": a.worlds, "rollout_steps": ROLLOUT, "runs": runs,
                 "steps_per_s_recording": sum(rec) / len(rec), "steps_per_s_not_recording": sum(off) / len(off),
                 "recording_cost": round(cost, 4), "target_cost": 0.15},
    "writer": writer,
}
json.dump(result, open(a.out, "w"), indent=2)
print(json.dumps({"recording_cost": result["training"]["recording_cost"],
                  "writer_MB_per_s": {m["compression"]: m["MB_per_s"] for m in writer["modes"]},
                  "ratios": {m["compression"]: m["ratio"] for m in writer["modes"]}}))
