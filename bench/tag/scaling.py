#!/usr/bin/env python3
"""Tag's CPU scaling, written to one JSON file: agent-steps per second by agents per world
(100 to 10,000, density 1 agent per unit area) with the grid neighbour search, the O(M^2)
brute force at the sizes where it finishes, their ratio at each size measured in the same
run, the cost per agent-step across sizes, and two threads.

  /usr/bin/python3 bench/tag/scaling.py --out bench/results/tag-cpu-xeon-2core.json
Run from the repository root after building (build/bodhi-tagbench, a Release build).
"""
import argparse, datetime, json, os, platform, subprocess

p = argparse.ArgumentParser()
p.add_argument("--bench", default="build/bodhi-tagbench")
p.add_argument("--seconds", default="2")
p.add_argument("--out", default="bench/results/tag-cpu.json")
a = p.parse_args()


def run(*args):
    cmd = [a.bench, "--json", "--seconds", a.seconds, *args]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return " ".join(cmd), [json.loads(l) for l in out.splitlines() if l.startswith("{")]


c1, one = run("--agents", "100,300,1000,3000,10000", "--brute", "--brute-max", "2000")
c2, two = run("--agents", "100,1000,10000", "--threads", "2", "--worlds", "256")
grid = {r["agents_per_world"]: r for r in one if r["search"] == "grid"}
brute = {r["agents_per_world"]: r for r in one if r["search"] == "brute"}
ns = {m: r["ns_per_agent_step"] for m, r in grid.items()}
git = subprocess.run(["git", "describe", "--always", "--dirty"], stdout=subprocess.PIPE, text=True).stdout.strip()
doc = {
    "what": "Tag env agent-steps/s by agents per world on the CPU: grid vs brute-force neighbour search "
            "(same run), density 1 agent per unit area, K 5, 80% runners, random actions timed with the step",
    "commands": [c1, c2],
    "git": git,
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"node": platform.node(), "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(), "gpu": None},
    "grid_over_brute": {str(m): round(grid[m]["agent_steps_per_s"] / brute[m]["agent_steps_per_s"], 2)
                        for m in sorted(brute) if m in grid},
    "ns_per_agent_step_grid": {str(m): ns[m] for m in sorted(ns)},
    "cost_per_agent_10000_over_100": round(ns[10000] / ns[100], 3),
    "results": one + two,
}
with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
print(json.dumps({k: doc[k] for k in ("grid_over_brute", "ns_per_agent_step_grid", "cost_per_agent_10000_over_100")}))
