#!/usr/bin/python3
"""Training throughput against what libtorch can do here.

For each world count, `bodhi run` trains CartPole with the default ppo params for --steps
agent-steps (no threshold stops it), and its agent-steps/s (summary.json) is held against
`bodhi-learnbench`: the torch shim's PPO update alone (forward, backward and Adam over a
batch already in memory), timed on a batch of the same size (worlds x the automatic
rollout_steps) with the same minibatch size and libtorch threads as the brain, in the
environment the conductor gives a brain. That update rate is the ceiling the loop (env,
inference, rollout transfer, update) could reach if learning were all it did. A sweep of
minibatch sizes and threads on one batch also says what libtorch's best is here. Writes
one JSON file.

  bench/throughput.py --worlds 4096 16384 65536 --out bench/results/throughput-cpu-xeon-2core.json
"""
import argparse, datetime, json, os, shutil, subprocess, tempfile

p = argparse.ArgumentParser()
p.add_argument("--worlds", type=int, nargs="+", default=[4096, 16384, 65536])
p.add_argument("--steps", type=int, default=8000000)
p.add_argument("--minibatch", type=int, default=1024, help="the ppo brain's default minibatch_size")
p.add_argument("--build", default="build")
p.add_argument("--out", required=True)
a = p.parse_args()

ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_WAIT_POLICY="passive")  # as the conductor sets


def learnbench(samples, threads, sizes):
    cmd = [os.path.join(a.build, "bodhi-learnbench"), "--samples", str(samples), "--threads", str(threads),
           "--minibatch"] + [str(s) for s in sizes]
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, env=ENV).stdout)


def auto_rollout(worlds):  # brain/ppo.h: BD_PPO_AUTO_BATCH / worlds within [16, 128]
    return min(128, max(16, 16384 // worlds))


def brain_threads(batch):  # brain/brain.c bd_learner_threads: every core from 4096-sample minibatches
    mb = batch // max(1, batch // a.minibatch)
    return os.cpu_count() if mb >= 4096 and os.cpu_count() > 1 else 1


sweep = [learnbench(262144, t, [256, 512, 1024, 2048, 4096, 16384])
         for t in ([1, os.cpu_count()] if os.cpu_count() > 1 else [1])]
every = [dict(r, threads=c["threads"]) for c in sweep for r in c["by_minibatch"]]
best = max(every, key=lambda r: r["agent_steps_per_s_ceiling"])

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
    batch = w * auto_rollout(w)
    threads = brain_threads(batch)
    ceil = learnbench(batch, threads, [a.minibatch])["by_minibatch"][0]
    f = os.path.join(tmp, f"w{w}.yml")
    open(f, "w").write(run_file.format(worlds=w, steps=a.steps))
    out = os.path.join(tmp, f"w{w}")
    subprocess.run([os.path.join(a.build, "bodhi"), "run", f, "--out", out, "--quiet"], check=True)
    s = json.load(open(os.path.join(out, "summary.json")))
    ag = s["phases"][0]["agents"][0]
    wall = s["phases"][0]["wall_s"]
    learn = sum(json.loads(l).get("learn_s", 0) for l in open(os.path.join(out, "log.jsonl")))
    r = {"worlds": w, "batch": batch, "minibatch": a.minibatch, "learner_threads": threads,
         "agent_steps": ag["steps"], "wall_s": wall, "agent_steps_per_s": ag["steps_per_s"],
         "learn_share_of_wall": learn / wall,
         "learner_in_loop_agent_steps_per_s": ag["steps"] / learn if learn > 0 else None,
         "ceiling_agent_steps_per_s": ceil["agent_steps_per_s_ceiling"],
         "ratio": ag["steps_per_s"] / ceil["agent_steps_per_s_ceiling"],
         "ratio_to_best_of_sweep": ag["steps_per_s"] / best["agent_steps_per_s_ceiling"]}
    rows.append(r)
    print(json.dumps(r), flush=True)
    shutil.rmtree(out, ignore_errors=True)
shutil.rmtree(tmp, ignore_errors=True)

status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {"what": "CartPole training agent-steps/s with the default ppo params (env, inference, rollout transfer, "
               "update) over libtorch's PPO update alone on a batch of the same size, same minibatch and threads",
       "command": "bench/throughput.py --worlds " + " ".join(map(str, a.worlds)) + f" --steps {a.steps} --out {a.out}",
       "commit": subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip(),
       "dirty_files": [l[3:] for l in status.splitlines()],
       "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
       "machine": {"cpu": cpu, "cores": os.cpu_count()},
       "sweep": sweep, "best_of_sweep": best, "runs": rows}
json.dump(doc, open(a.out, "w"), indent=1)
print(", ".join(f"{r['worlds']} worlds {r['ratio']:.2f} (of the best {r['ratio_to_best_of_sweep']:.2f})" for r in rows)
      + f"; wrote {a.out}")
