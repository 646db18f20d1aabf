#!/usr/bin/env python3
"""Tag learning benchmark: PPO taggers trained against rule-based (fsm) runners, against
random taggers in the same worlds, over several seeds.

For each seed it runs experiments/tag_fsm.yml twice with `bodhi run --seed S`: as written
(PPO taggers learn for the train phase's step cap, then a greedy test phase of 100
episodes), and with the taggers' brain and muscle swapped for `random` (the same phases:
uniform random accelerations and turns). A tagger's return is the number of tags it made
in an episode (200 steps), so the test phase's mean return is tags per tagger per episode:
how fast the taggers tag. It writes one JSON file (per seed: both test means, the
training curves from the episodes tables) and a figure (SVG) of the curves.

  /usr/bin/python3 bench/tag_learning.py --seeds 1 2 3 \\
      --out bench/results/tag-learning-cpu-xeon-2core.json
Run from the repository root; needs h5py, numpy, PyYAML and matplotlib (Debian's).
"""
import argparse, json, os, platform, shutil, subprocess, sys, tempfile, time

import h5py
import numpy as np
import yaml

p = argparse.ArgumentParser()
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--file", default="experiments/tag_fsm.yml")
p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
p.add_argument("--steps", type=int, default=0, help="the taggers' train step cap (0: the file's)")
p.add_argument("--out", default="bench/results/tag-learning.json")
p.add_argument("--figure", default="", help="SVG path (default: --out with .svg)")
a = p.parse_args()

with open(a.file) as f:
    base = yaml.safe_load(f)


def variant(random_taggers):
    doc = json.loads(json.dumps(base))
    train = doc["schedule"][0]["train"]
    if a.steps:
        for c in train["simulation"]["conditions"]:
            if c["name"] == "max_steps":
                c["params"]["steps"] = a.steps
    if random_taggers:
        for ag in train["agents"]:
            if ag["name"] == "taggers":
                ag["brain"] = {"name": "random", "params": {}}
                ag["muscle"] = {"name": "random", "params": {}}
    return doc


def curve(h5, phase, agent, bins=20):
    """Mean return of the episodes ending in each of `bins` slices of the phase's steps."""
    with h5py.File(h5, "r") as f:
        g = f[f"{phase}/{agent}"]
        ep = g["episodes"][:]
        cols = int(g.attrs["worlds"])
    if len(ep) == 0:
        return []
    end = (ep["start_step"] + ep["length"]).astype(np.float64) * cols  # agent-steps
    edges = np.linspace(0, end.max(), bins + 1)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (end > lo) & (end <= hi)
        if m.any():
            out.append([float(hi), float(ep["return"][m].mean()), int(m.sum())])
    return out


def run(doc, seed, tmp, tag):
    path = os.path.join(tmp, f"{tag}-{seed}.yml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    out = os.path.join(tmp, f"{tag}-{seed}")
    t0 = time.time()
    r = subprocess.run([a.bodhi, "run", path, "--seed", str(seed), "--out", out, "--quiet"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"{tag} seed {seed} failed ({r.returncode}):\n{r.stdout[-2000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    res = {"wall_s": round(wall, 1)}
    for ph in s["phases"]:
        for ag in ph["agents"]:
            if ag["name"] == "taggers":
                res[ph["name"]] = {"episodes": ag["episodes"], "mean_return": ag["mean_return"],
                                   "steps": ag["steps"]}
    res["train_curve"] = curve(os.path.join(out, "run.h5"), "train", "taggers")
    print(f"{tag:6s} seed {seed}: test tags per tagger per episode {res['test']['mean_return']:.3f} "
          f"({wall:.0f} s)", file=sys.stderr)
    return res


tmp = tempfile.mkdtemp(prefix="bd-tag-learning-")
results = []
try:
    for seed in a.seeds:
        results.append({"seed": seed, "ppo": run(variant(False), seed, tmp, "ppo"),
                        "random": run(variant(True), seed, tmp, "random")})
finally:
    shutil.rmtree(tmp, ignore_errors=True)

ppo = np.array([r["ppo"]["test"]["mean_return"] for r in results])
rnd = np.array([r["random"]["test"]["mean_return"] for r in results])
git = subprocess.run(["git", "describe", "--always", "--dirty"], stdout=subprocess.PIPE, text=True).stdout.strip()
doc = {
    "benchmark": "tag learning: PPO taggers vs random taggers against fsm runners",
    "command": "bench/tag_learning.py " + " ".join(sys.argv[1:]),
    "run_file": a.file, "git": git, "machine": platform.node(), "cpu": platform.processor(),
    "metric": "test phase (greedy, 100 episodes of 200 steps): mean return of the taggers = tags per tagger per episode",
    "seeds": a.seeds,
    "ppo_test_mean": [float(x) for x in ppo], "random_test_mean": [float(x) for x in rnd],
    "ratio_per_seed": [float(x) for x in ppo / np.maximum(rnd, 1e-9)],
    "ppo_better_every_seed": bool((ppo > rnd).all()),
    "runs": results,
}
os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
print(json.dumps({k: doc[k] for k in ("ppo_test_mean", "random_test_mean", "ratio_per_seed")}))

try:
    import matplotlib
except ImportError:  # the figure is extra: the JSON above is the result
    print(f"tag_learning: no figure (python3-matplotlib is not installed); the results are in {a.out}",
          file=sys.stderr)
    sys.exit(0)
matplotlib.use("Agg")
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(7, 4))
for r in results:
    for tag, color in (("ppo", "tab:blue"), ("random", "tab:gray")):
        c = np.array(r[tag]["train_curve"])
        if len(c):
            ax.plot(c[:, 0] / 1e6, c[:, 1], color=color, alpha=0.8,
                    label=f"{'PPO' if tag == 'ppo' else 'random'} taggers" if r is results[0] else None)
ax.set_xlabel("tagger agent-steps (millions)")
ax.set_ylabel("tags per tagger per episode (training)")
ax.set_title(f"Tag vs fsm runners, {len(results)} seeds; test: PPO {ppo.mean():.2f}, random {rnd.mean():.2f}")
ax.legend()
fig.tight_layout()
fig.savefig(a.figure or os.path.splitext(a.out)[0] + ".svg")
