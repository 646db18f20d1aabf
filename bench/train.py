#!/usr/bin/python3
"""Training benchmark: runs `bodhi run EXPERIMENT --seed S` for several seeds (and, with
--worlds, several world counts) and measures, from the moment `bodhi run` starts, the wall
time and agent-steps until the train phase's mean return over the last 100 episodes first
reaches the threshold (read from the run's log.jsonl, whose events carry wall-clock
times). Writes one JSON file with the machine, commit and commands.

  bench/train.py experiments/cartpole_ppo.yml --threshold 475 --seeds 1 2 3 \
      --out bench/results/train-cartpole-cpu-xeon-2core.json
  bench/train.py experiments/cartpole_ppo.yml --threshold 475 --worlds 16 1024 65536 \
      --set brain.learning_rate=1e-3 --max-steps 50000000 --out /tmp/sweep.json

--ranks K starts K data-parallel ranks on this machine (torchrun's variables, loopback
rendezvous; `worlds` is per rank): the threshold is read from rank 0's log, whose
mean_return is the group's (every rank's last 100 episodes together, the same on every
rank; before 2026-12-05 it was rank 0's own, and a run another rank ended could read as
not reached); agent-steps and steps/s are summed over ranks.
--learner-cores N caps each learner's cores (BODHI_LEARNER_CORES; 1: one thread, no split).

--worlds N sets every environment's `worlds` param; --set brain.KEY=VALUE sets (or, with
an empty VALUE, removes) a brain param of every agent; --max-steps replaces the max_steps
condition. The run file written for each size is kept in the JSON ("run_file").
"""
import argparse, datetime, json, os, shutil, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("experiment")
p.add_argument("--threshold", type=float, required=True)
p.add_argument("--phase", default="train")
p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
p.add_argument("--worlds", type=int, nargs="+", default=None)
p.add_argument("--set", action="append", default=[], metavar="brain.KEY=VALUE")
p.add_argument("--max-steps", type=int, default=None)
p.add_argument("--workers", type=int, default=None)
p.add_argument("--ranks", type=int, default=1)
p.add_argument("--learner-cores", type=int, default=None)
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--device", default=None)
p.add_argument("--out", required=True)
p.add_argument("--resummarize", action="store_true",
               help="recompute the summary fields of --out from its runs (this script's own tables), run nothing")
a = p.parse_args()
def table(rs):
    ok = [r for r in rs if r["reached"]]
    t = {"seeds_reached": f"{len(ok)}/{len(rs)}",
         "max_seconds_to_threshold": max((r["seconds_to_threshold"] for r in ok), default=None),
         "mean_seconds_to_threshold": sum(r["seconds_to_threshold"] for r in ok) / len(ok) if ok else None,
         "mean_agent_steps_to_threshold": sum(r["agent_steps_to_threshold"] for r in ok) / len(ok) if ok else None,
         "min_train_agent_steps_per_s": min((r["train_agent_steps_per_s"] for r in rs), default=None)}
    # a run file that stops on greedy_average: how many stopped on it, when, and what the
    # test phase's greedy episodes returned (seeds_reached above reads the training window,
    # which such a run may stop before)
    greedy = [r for r in rs if "greedy mean return" in (r.get("train_stop") or "")]
    if greedy or any("greedy_evaluations" in r for r in rs):
        stops = sorted(r["seconds_to_train_stop"] for r in greedy)
        t["greedy_stops"] = f"{len(greedy)}/{len(rs)}"
        t["median_seconds_to_greedy_stop"] = stops[len(stops) // 2] if len(stops) % 2 else \
            (stops[len(stops) // 2 - 1] + stops[len(stops) // 2]) / 2 if stops else None
        t["max_seconds_to_greedy_stop"] = stops[-1] if stops else None
        t["test_mean_returns"] = [r.get("test_mean_return") for r in rs]
    return t


def summary(doc, runs, worlds):
    doc.update(table(runs))
    if worlds:
        doc["by_worlds"] = {str(w): table([r for r in runs if r["worlds"] == w]) for w in worlds}


if a.resummarize:
    doc = json.load(open(a.out))
    summary(doc, doc["runs"], sorted({r["worlds"] for r in doc["runs"]}) if "by_worlds" in doc else None)
    doc["runs"] = doc.pop("runs")  # last, as written
    json.dump(doc, open(a.out, "w"), indent=1)
    sys.exit(0)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {"cpu": cpu, "cores": os.cpu_count()}


def variant(doc, worlds):
    """The run file with this sweep's changes, phase by phase."""
    for entry in doc["schedule"]:
        for ph in entry.values():
            for e in ph.get("environments", []) or []:
                if worlds is not None:
                    e["environment"].setdefault("params", {})["worlds"] = worlds
            for ag in ph.get("agents", []) or []:
                params = ag.setdefault("brain", {}).setdefault("params", {}) or {}
                ag["brain"]["params"] = params
                for kv in a.set:
                    key, _, val = kv.partition("=")
                    if not key.startswith("brain."):
                        sys.exit(f"--set {kv}: only brain.KEY=VALUE")
                    key = key[len("brain."):]
                    if val == "":
                        params.pop(key, None)
                    else:
                        params[key] = yaml.safe_load(val)
            sim = ph.get("simulation")
            if a.max_steps is not None and sim:
                for c in sim.get("conditions", []):
                    if c.get("name") == "max_steps":
                        c["params"]["steps"] = a.max_steps
            pc = ph.get("phase_config")
            if a.workers is not None and pc and "worker" in pc:
                pc["worker"] = a.workers
    return doc


runs = []
tmp = tempfile.mkdtemp(prefix="bd-train-")
sizes = a.worlds if a.worlds else [None]
files = {}
for worlds in sizes:
    exp = a.experiment
    if worlds is not None or a.set or a.max_steps is not None or a.workers is not None:
        import yaml  # Debian's python3-yaml; only sweeps need it
        doc = variant(yaml.safe_load(open(a.experiment)), worlds)
        exp = os.path.join(tmp, f"w{worlds}.yml")
        text = yaml.safe_dump(doc, sort_keys=False)
        open(exp, "w").write(text)
        files[str(worlds)] = text
    for seed in a.seeds:
        out = os.path.join(tmp, f"w{worlds}-s{seed}")
        cmd = [a.bodhi, "run", exp, "--seed", str(seed), "--out", out, "--quiet"]
        if a.device:
            cmd += ["--device", a.device]
        env = dict(os.environ)
        if a.learner_cores:
            env["BODHI_LEARNER_CORES"] = str(a.learner_cores)
        t0 = time.time()
        if a.ranks > 1:
            port = 20000 + (os.getpid() + seed) % 20000
            procs = [subprocess.Popen(cmd, env=dict(env, RANK=str(k), WORLD_SIZE=str(a.ranks),
                                                    MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)))
                     for k in range(a.ranks)]
            rc = max(pr.wait() for pr in procs)
        else:
            rc = subprocess.call(cmd, env=env)
        total = time.time() - t0
        reached, steps = None, None
        updates, learn_s = 0, 0.0
        greedy = []  # greedy_average's evaluations: (agent-steps, mean return, seconds)
        done, stop_s = None, None
        for line in open(os.path.join(out, "log.jsonl")):
            e = json.loads(line)
            if e.get("event") == "update" and e.get("phase") == a.phase:
                updates += 1
                learn_s += e.get("learn_s", 0.0)
                if "greedy_return" in e:
                    greedy.append((e["steps"], e["greedy_return"], e["greedy_s"]))
                if "done" in e and done is None:
                    done, stop_s = e["done"], e["t"] - t0
                if reached is None and "mean_return" in e and e["episodes"] >= 100 and e["mean_return"] >= a.threshold:
                    reached, steps = e["t"] - t0, e["steps"]
        dirs = [out] + [f"{out}.r{k}" for k in range(1, a.ranks)]
        phs = [{x["name"]: x for x in json.load(open(os.path.join(d, "summary.json")))["phases"]} for d in dirs]
        ph = phs[0]
        ag = ph[a.phase]["agents"][0]
        if steps is not None:
            steps *= a.ranks  # rank 0's count; every rank steps as many worlds in step
        agents = [p[a.phase]["agents"][0] for p in phs]
        r = {"worlds": worlds, "ranks": a.ranks, "seed": seed, "exit_code": rc, "reached": reached is not None,
             "seconds_to_threshold": reached, "agent_steps_to_threshold": steps,
             "train_mean_return": ag.get("mean_return"), "train_phase_wall_s": max(p[a.phase]["wall_s"] for p in phs),
             "run_wall_s": total, "train_agent_steps": sum(x["steps"] for x in agents),
             "train_agent_steps_per_s": sum(x["steps"] for x in agents) / max(x["wall_s"] for x in agents)
             if all("wall_s" in x for x in agents) else sum(x["steps_per_s"] for x in agents),
             "updates": updates, "learn_s": learn_s, "train_stop": done,
             "seconds_to_train_stop": stop_s}
        if greedy:
            r["greedy_evaluations"] = len(greedy)
            r["greedy_s"] = sum(g[2] for g in greedy)
            r["greedy_returns"] = [[g[0], g[1]] for g in greedy]
        if "test" in ph:
            r["test_mean_return"] = ph["test"]["agents"][0].get("mean_return")
        runs.append(r)
        print(json.dumps(r), flush=True)
        for d in dirs + [out + ".ranks"]:
            shutil.rmtree(d, ignore_errors=True)
shutil.rmtree(tmp, ignore_errors=True)


cmd = ["bench/train.py", a.experiment, "--threshold", str(a.threshold), "--seeds"] + [str(s) for s in a.seeds]
if a.worlds:
    cmd += ["--worlds"] + [str(w) for w in a.worlds]
for kv in a.set:
    cmd += ["--set", kv]
if a.max_steps is not None:
    cmd += ["--max-steps", str(a.max_steps)]
if a.workers is not None:
    cmd += ["--workers", str(a.workers)]
if a.ranks > 1:
    cmd += ["--ranks", str(a.ranks)]
if a.learner_cores:
    cmd += ["--learner-cores", str(a.learner_cores)]
if a.device:
    cmd += ["--device", a.device]
doc = {"what": f"wall time and agent-steps from `bodhi run` start until the {a.phase} phase's mean return "
               f"(last 100 episodes) reaches {a.threshold}",
       "experiment": a.experiment, "threshold": a.threshold,
       "command": " ".join(cmd + ["--out", a.out]),
       "commit": subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip(),
       "dirty_files": [l[3:] for l in subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                                     capture_output=True, text=True).stdout.splitlines()],
       "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
       "machine": machine(), "load_avg_1_5_15_at_end": list(os.getloadavg()),
       "load_note": "2 cores shared with other builds and runs; load averages above 2 mean the runs got part of them",
       }
summary(doc, runs, a.worlds)
if files:
    doc["run_file"] = files
doc["runs"] = runs
json.dump(doc, open(a.out, "w"), indent=1)
for w, t in (doc.get("by_worlds") or {"-": table(runs)}).items():
    print(f"worlds {w}: {t['seeds_reached']} reached {a.threshold}; mean {t['mean_seconds_to_threshold']} s, "
          f"{t['mean_agent_steps_to_threshold']} agent-steps")
print(f"wrote {a.out}")
sys.exit(0 if all(r["reached"] for r in runs) else 1)
