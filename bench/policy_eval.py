#!/usr/bin/python3
"""A trained agent's checkpoint (bodhi.load_policy) run afresh on its env: one episode in
each of --episodes worlds (bodhi.make_vec with the trace's env and params), greedily and
then sampling (a dqn brain's Q-network epsilon-greedily at each --epsilon; a ppo or sac
policy from its distribution). Says whether a test phase's shortfall is the weights' or
the missing exploration's: with a stochastic policy's noise gone a policy can fall into a
cycle the noise broke (docs/run-file.md, dqn and sac).

  PYTHONPATH=build/python bench/policy_eval.py runs/cartpole-dqn balancer \\
      --epsilon 0.01 0.05 --out /tmp/eval.json

Single-agent envs only (make_vec; one agent's actuators drive each world).
"""
import argparse, datetime, json, os, subprocess, sys

import numpy as np

import bodhi

p = argparse.ArgumentParser()
p.add_argument("run")
p.add_argument("agent")
p.add_argument("--phase", default=None, help="the train phase whose checkpoint (default: the last)")
p.add_argument("--episodes", type=int, default=200)
p.add_argument("--seed", type=int, default=7)
p.add_argument("--epsilon", type=float, nargs="*", default=[0.01, 0.05])
p.add_argument("--out", default=None)
a = p.parse_args()
if a.episodes < 1:
    sys.exit("policy_eval: --episodes must be at least 1")

pi = bodhi.load_policy(a.run, a.agent, a.phase)
with bodhi.open_run(a.run) as run:
    tr = run.agent(pi.phase, a.agent)
    env_id, params = tr.env, {k: v for k, v in tr.env_params.items() if k != "worlds"}


def evaluate(mode, eps):
    """returns of one episode per world, acting greedily (mode 'greedy') or sampling"""
    env = bodhi.make_vec(env_id, a.episodes, seed=a.seed, **params)
    obs, _ = env.reset(seed=a.seed)
    rng = np.random.default_rng(a.seed)
    ret, out = np.zeros(a.episodes), np.zeros(a.episodes)
    done = np.zeros(a.episodes, bool)
    while not done.all():
        if mode == "greedy":
            act = pi(obs)
        else:
            act = pi(obs, greedy=False, rng=rng, **({"epsilon": eps} if mode == "epsilon" else {}))
        obs, r, term, trunc, _ = env.step(act)
        ret += np.where(done, 0.0, r)
        end = (term | trunc) & ~done
        out[end] = ret[end]
        done |= end
    env.close()
    return out


modes = [("greedy", 0.0)] + ([("epsilon", e) for e in a.epsilon] if pi.brain == "dqn" else [("sampled", 0.0)])
rows = []
for mode, eps in modes:
    r = evaluate(mode, eps)
    row = {"mode": mode, "epsilon": eps if mode == "epsilon" else None, "mean": float(r.mean()),
           "median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())}
    rows.append(row)
    print(json.dumps(row))
if a.out:
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    with open(a.out, "w") as f:
        json.dump({"what": f"{a.agent}'s checkpoint of {pi.phase} ({pi.brain} brain) from {a.run}, one episode in"
                           f" each of {a.episodes} worlds of {env_id} per mode",
                   "command": " ".join(sys.argv), "commit": commit, "machine": {"cpu": cpu, "cores": os.cpu_count()},
                   "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "env": env_id, "env_params": params, "seed": a.seed, "results": rows}, f, indent=1)
