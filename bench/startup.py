#!/usr/bin/python3
"""Start-up: the time from `bodhi run` to the first env step, and where it goes. Runs a
CartPole run file at 16 worlds (worker 2, CPU) capped at one round (max_steps 1) R times
with each binary given, interleaved (A, B, A, B, ...) so that a change in the machine's
load touches both alike, and reports per binary the wall and CPU time of the whole run
(wait4's rusage of `bodhi run`, which reaps its children) and, from log.jsonl's `startup`
events (seconds since `bodhi run` began), each process's stamps: the conductor's plan,
trace and spawn; the brain's trace, sockets, network (its first weights) and ready; the
muscles' first weights and first step. first_step_s is the earliest muscle's.

  bench/startup.py --bodhi build/bodhi --base OLD/build/bodhi --out bench/results/startup-cpu-epyc-2core.json
A binary whose log has no startup events (older than the breakdown) reports wall and CPU only.
"""
import argparse, datetime, json, os, shutil, statistics, subprocess, sys, tempfile

p = argparse.ArgumentParser()
p.add_argument("--bodhi", default="build/bodhi", help="the binary under test")
p.add_argument("--base", help="a binary to compare with (e.g. a build of the commit before)")
p.add_argument("--repeats", type=int, default=10)
p.add_argument("--worlds", type=int, default=16)
p.add_argument("--out", required=True)
a = p.parse_args()
if a.repeats < 1:
    sys.exit("startup.py: --repeats must be >= 1")

RUN = f"""uid: startup
seed: 2
version: 1
schedule:
  - train:
      environments:
        - environment: {{name: cartpole, uid: pole, params: {{worlds: {a.worlds}}}}}
      agents:
        - name: balancer
          brain: {{name: ppo, params: {{}}}}
          muscle: {{name: ppo, params: {{}}}}
          objective: {{name: reward, params: {{}}}}
          sensors: [pole.*]
          actuators: [pole.push]
      simulation:
        name: vanilla
        conditions:
          - {{name: max_steps, params: {{steps: 1}}}}
      phase_config: {{mode: train, worker: 2, device: cpu}}
run_config:
  condition: {{name: all_phases, params: {{}}}}
"""


def loadavg():
    return [float(x) for x in open("/proc/loadavg").read().split()[:3]]


def one(binary, path, out):
    proc = subprocess.Popen([binary, "run", path, "--out", out, "--quiet"], stdout=subprocess.DEVNULL)
    t0 = datetime.datetime.now().timestamp()
    _, status, ru = os.wait4(proc.pid, 0)
    wall = datetime.datetime.now().timestamp() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"startup.py: {binary} run exited {os.waitstatus_to_exitcode(status)}")
    stamps = {}
    for line in open(os.path.join(out, "log.jsonl")):
        e = json.loads(line)
        if e.get("event") != "startup":
            continue
        role = e["role"] + (str(e["muscle"]) if "muscle" in e else "")
        stamps[role] = e.get("since_run_s", {})
    firsts = [s["first_step"] for r, s in stamps.items() if r.startswith("muscle") and "first_step" in s]
    return {"wall_s": round(wall, 3), "user_s": round(ru.ru_utime, 3), "sys_s": round(ru.ru_stime, 3),
            "first_step_s": min(firsts) if firsts else None, "stamps": stamps, "loadavg": loadavg()}


def spread(xs):
    xs = [x for x in xs if x is not None]
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)} if xs else None


tmp = tempfile.mkdtemp(prefix="bd-startup-")
path = os.path.join(tmp, "run.yml")
open(path, "w").write(RUN)
bins = {"new": os.path.abspath(a.bodhi)}
if a.base:
    bins["base"] = os.path.abspath(a.base)
runs = {k: [] for k in bins}
for r in range(a.repeats):
    for k, b in bins.items():
        out = os.path.join(tmp, f"{k}-{r}")
        x = one(b, path, out)
        runs[k].append(x)
        print(f"{k} run {r + 1}/{a.repeats}: {x['wall_s']:.2f} s wall, first step {x['first_step_s']}, "
              f"load {x['loadavg'][0]:.2f}", file=sys.stderr, flush=True)
        shutil.rmtree(out)
shutil.rmtree(tmp)
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
doc = {
    "what": f"start-up: bodhi run of CartPole at {a.worlds} worlds capped at one round (max_steps 1), worker 2, "
            "CPU; seconds since bodhi run began",
    "machine": {"cpu": cpu, "cores": os.cpu_count()},
    "commit": commit,
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
    "binaries": bins,
    "summary": {k: {"wall_s": spread([x["wall_s"] for x in xs]), "user_s": spread([x["user_s"] for x in xs]),
                    "sys_s": spread([x["sys_s"] for x in xs]),
                    "first_step_s": spread([x["first_step_s"] for x in xs])} for k, xs in runs.items()},
    "runs": runs,
}
os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
for k, s in doc["summary"].items():
    fs = s["first_step_s"]
    print(f"{k}: wall median {s['wall_s']['median']:.2f} s, first step median "
          f"{fs['median'] if fs else 'n/a'}", file=sys.stderr)
