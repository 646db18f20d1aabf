#!/usr/bin/python3
"""Training throughput against what libtorch can do here. First `bodhi-learnbench` times
the torch shim's PPO update alone (forward, backward and Adam over a batch already in
memory, the default network and epochs) for several minibatch sizes: the best of them is
the ceiling a training loop could reach if learning were all it did. Then, for each world
count, `bodhi run` trains CartPole with the default ppo params for --steps agent-steps
(no threshold stops it) and its agent-steps/s, from summary.json, is divided by the
ceiling. Writes one JSON file.

  bench/throughput.py --worlds 4096 16384 65536 --out bench/results/throughput-cpu-xeon-2core.json
"""
import argparse, datetime, json, os, shutil, subprocess, tempfile

p = argparse.ArgumentParser()
p.add_argument("--worlds", type=int, nargs="+", default=[4096, 16384, 65536])
p.add_argument("--steps", type=int, default=8000000)
p.add_argument("--build", default="build")
p.add_argument("--out", required=True)
a = p.parse_args()

ceilings = []
for threads in [1, os.cpu_count()] if os.cpu_count() > 1 else [1]:
    lb = subprocess.run([os.path.join(a.build, "bodhi-learnbench"), "--samples", "262144", "--threads", str(threads),
                         "--minibatch", "256", "512", "1024", "2048", "4096", "16384"],
                        capture_output=True, text=True, check=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    ceilings.append(json.loads(lb.stdout))
every = [dict(r, threads=c["threads"]) for c in ceilings for r in c["by_minibatch"]]
best = max(every, key=lambda r: r["agent_steps_per_s_ceiling"])
default = max((r for r in every if r["minibatch"] == 1024), key=lambda r: r["agent_steps_per_s_ceiling"])

run_file = """uid: throughput
seed: 1
version: 1
schedule:
  - train:
      environments:
        - environment: {{name: cartpole, uid: pole, params: {{worlds: {worlds}}}}}
      agents:
        - name: balancer
          brain: {{name: ppo}}
          muscle: {{name: ppo}}
          objective: {{name: reward}}
          sensors: [pole.*]
          actuators: [pole.push]
      simulation:
        name: vanilla
        conditions:
          - {{name: max_steps, params: {{steps: {steps}}}}}
      phase_config: {{mode: train, worker: 2, device: cpu}}
run_config:
  condition: {{name: all_phases, params: {{}}}}
"""
tmp = tempfile.mkdtemp(prefix="bd-throughput-")
rows = []
for w in a.worlds:
    f = os.path.join(tmp, f"w{w}.yml")
    open(f, "w").write(run_file.format(worlds=w, steps=a.steps))
    out = os.path.join(tmp, f"w{w}")
    subprocess.run([os.path.join(a.build, "bodhi"), "run", f, "--out", out, "--quiet"], check=True)
    s = json.load(open(os.path.join(out, "summary.json")))
    ag = s["phases"][0]["agents"][0]
    learn = sum(json.loads(l).get("learn_s", 0) for l in open(os.path.join(out, "log.jsonl")))
    r = {"worlds": w, "agent_steps": ag["steps"], "wall_s": s["phases"][0]["wall_s"],
         "agent_steps_per_s": ag["steps_per_s"], "learn_s": learn,
         "ratio_to_best_ceiling": ag["steps_per_s"] / best["agent_steps_per_s_ceiling"],
         "ratio_to_ceiling_at_default_minibatch": ag["steps_per_s"] / default["agent_steps_per_s_ceiling"]}
    rows.append(r)
    print(json.dumps(r), flush=True)
    shutil.rmtree(out, ignore_errors=True)
shutil.rmtree(tmp, ignore_errors=True)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {"what": "CartPole training agent-steps/s with the default ppo params (env, inference, rollout "
               "transfer, update) over libtorch's PPO-update ceiling on this machine",
       "command": "bench/throughput.py --worlds " + " ".join(map(str, a.worlds)) + f" --steps {a.steps} --out {a.out}",
       "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
       "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
       "machine": {"cpu": cpu, "cores": os.cpu_count()},
       "ceiling": ceilings, "best_ceiling_agent_steps_per_s": best["agent_steps_per_s_ceiling"],
       "best_ceiling_minibatch": best["minibatch"], "best_ceiling_threads": best["threads"], "runs": rows}
json.dump(doc, open(a.out, "w"), indent=1)
print(f"ceiling {best['agent_steps_per_s_ceiling']:.0f} agent-steps/s (minibatch {best['minibatch']}); "
      + ", ".join(f"{r['worlds']} worlds {r['ratio_to_best_ceiling']:.2f}" for r in rows) + f"; wrote {a.out}")
