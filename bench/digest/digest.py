#!/usr/bin/env python3
"""Trace digests: runs each run file with `bodhi run --seed S --out DIR` and prints one
SHA-256 per phase, agent and dataset of run.h5 (sensors, actuators, rewards, terminated,
truncated). Two checkouts that print the same lines recorded the same trajectories byte
for byte: run it before and after a change that must not alter behaviour, and diff.

  /usr/bin/python3 bench/digest/digest.py [--bodhi build/bodhi] > before.txt
Run from the repository root (the plugin file names build/libbodhi_target.so).
"""
import argparse, hashlib, os, shutil, subprocess, sys, tempfile

import h5py

RUNS = [  # (run file, seed)
    ("experiments/cartpole_ppo.yml", 42),
    ("experiments/pendulum_ppo.yml", 1),
    ("bench/digest/cartpole3.yml", 7),
    ("bench/digest/acrobot.yml", 11),
    ("bench/digest/mountaincar_random.yml", 5),
    ("bench/digest/plugin_two_agents.yml", 9),
]
DATASETS = ["sensors", "actuators", "rewards", "terminated", "truncated"]

p = argparse.ArgumentParser()
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--keep", action="store_true", help="keep the run directories")
a = p.parse_args()

tmp = tempfile.mkdtemp(prefix="bd-digest-")
status = 0
for path, seed in RUNS:
    out = os.path.join(tmp, os.path.basename(path).rsplit(".", 1)[0])
    r = subprocess.run([a.bodhi, "run", path, "--seed", str(seed), "--out", out, "--quiet"])
    if r.returncode != 0:
        print(f"{path} seed {seed}: bodhi run exited {r.returncode}")
        status = 1
        continue
    with h5py.File(os.path.join(out, "run.h5"), "r") as f:
        for phase in f:
            for agent in f[phase]:
                g = f[phase][agent]
                for d in DATASETS:
                    x = g[d][()]
                    h = hashlib.sha256(x.tobytes()).hexdigest()[:16]
                    print(f"{path} seed {seed} /{phase}/{agent}/{d} {x.dtype} {x.shape} {h}")
if a.keep:
    print(f"# runs kept in {tmp}", file=sys.stderr)
else:
    shutil.rmtree(tmp)
sys.exit(status)
