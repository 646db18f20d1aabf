#!/usr/bin/env python3
"""Recording, build A against build B: for a change to how traces are recorded that must
not cost speed. In one sitting, alternating A and B run for run:

1. `bodhi run` of PPO on CartPole (--worlds worlds, rollout 16, --rounds rounds) with each
   recording of --records (the run file's `record:` value), --repeats times per build; a
   build's rate is the mean steps/s of summary.json.
2. `bodhi-tracebench` of each build (the writer alone: every row of every world).

Reports B / A per recording and per compression (1.0: the same speed).

  /usr/bin/python3 bench/record_ab.py --a /tmp/base/bodhi --b build/bodhi \\
      --out bench/results/record-ab-cpu-epyc-2core.json
Each bodhi finds its libbodhi_torch.so beside it; each tracebench is bodhi-tracebench beside
that bodhi unless --a-tracebench / --b-tracebench say otherwise.
"""
import argparse, datetime, json, os, shutil, subprocess, tempfile

p = argparse.ArgumentParser()
p.add_argument("--a", required=True, help="build A's bodhi (before)")
p.add_argument("--b", required=True, help="build B's bodhi (after)")
p.add_argument("--a-tracebench")
p.add_argument("--b-tracebench")
p.add_argument("--worlds", type=int, default=4096)
p.add_argument("--rounds", type=int, default=16)
p.add_argument("--repeats", type=int, default=3)
p.add_argument("--records", default="{compression: lz4};{every: 4, worlds: 1024, compression: lz4}",
               help="record: values, separated by ';'")
p.add_argument("--trace-rows", type=int, default=2048)
p.add_argument("--out", required=True)
a = p.parse_args()

ROLLOUT = 16
RUN = """uid: record-ab
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
builds = {"A": a.a, "B": a.b}
benches = {"A": a.a_tracebench or os.path.join(os.path.dirname(a.a), "bodhi-tracebench"),
           "B": a.b_tracebench or os.path.join(os.path.dirname(a.b), "bodhi-tracebench")}
records = [r.strip() for r in a.records.split(";") if r.strip()]
steps = a.worlds * ROLLOUT * a.rounds

tmp = tempfile.mkdtemp(prefix="bd-record-ab-")
runs = []
for rep in range(a.repeats):
    for i, record in enumerate(records):
        f = os.path.join(tmp, f"r{i}.yml")
        open(f, "w").write(RUN.format(worlds=a.worlds, rollout=ROLLOUT, record=record, steps=steps))
        for build in (["A", "B"] if rep % 2 == 0 else ["B", "A"]):
            out = os.path.join(tmp, f"{build}{i}-{rep}")
            subprocess.check_call([builds[build], "run", f, "--out", out, "--quiet"])
            ag = json.load(open(os.path.join(out, "summary.json")))["phases"][0]["agents"][0]
            runs.append({"build": build, "record": record, "steps": ag["steps"], "steps_per_s": ag["steps_per_s"]})
            shutil.rmtree(out)
writers = []
for rep in range(a.repeats):
    for build in (["A", "B"] if rep % 2 == 0 else ["B", "A"]):
        w = json.loads(subprocess.check_output([benches[build], "--worlds", str(a.worlds), "--rows",
                                                str(a.trace_rows), "--dir", tmp]))
        writers.append({"build": build, "modes": w["modes"]})
shutil.rmtree(tmp)

mean = lambda v: sum(v) / len(v)
training = {}
for record in records:
    sa = mean([r["steps_per_s"] for r in runs if r["build"] == "A" and r["record"] == record])
    sb = mean([r["steps_per_s"] for r in runs if r["build"] == "B" and r["record"] == record])
    training[record] = {"A_steps_per_s": sa, "B_steps_per_s": sb, "B_over_A": round(sb / sa, 4)}
writer = {}
for m in writers[0]["modes"]:
    c = m["compression"]
    rate = lambda b: mean([x["MB_per_s"] for w in writers if w["build"] == b for x in w["modes"] if x["compression"] == c])
    writer[c] = {"A_MB_per_s": rate("A"), "B_MB_per_s": rate("B"), "B_over_A": round(rate("B") / rate("A"), 4)}

cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {
    "bench": "record-ab", "date": datetime.date.today().isoformat(), "commit": commit,
    "machine": {"cpu": cpu, "cores": os.cpu_count()},
    "command": "bench/record_ab.py " + " ".join(f"--{k.replace('_', '-')} '{v}'" for k, v in vars(a).items()
                                                 if k != "out" and v is not None),
    "training": {"env": "CartPole-v1", "worlds": a.worlds, "rollout_steps": ROLLOUT, "rounds": a.rounds,
                 "per_record": training, "runs": runs},
    "writer": {"per_compression": writer, "runs": writers},
    "load_average": os.getloadavg(),
}
json.dump(result, open(a.out, "w"), indent=2)
print(json.dumps({"training_B_over_A": {k: v["B_over_A"] for k, v in training.items()},
                  "writer_B_over_A": {k: v["B_over_A"] for k, v in writer.items()}}))
