#!/usr/bin/python3
"""bodhi from Python against bodhi in C, one sitting, interleaved: per round and size,
`bodhi bench ENV --agents N --threads K --json` (random actions drawn in C), then
bodhi.make_vec(ENV, N, threads=K) stepped from Python with a NumPy action array (one of 8
drawn up front, so that NumPy's random draw is not what is timed), then, where a
Gymnasium source tree is given (--gymnasium DIR, whose CartPoleVectorEnv is Gymnasium's
own NumPy loop over arrays), that at the same N. Tag: bodhi.make_multi("tag", worlds)
against `bodhi bench tag --agents 25 x worlds`. Reports every round's agent-steps/s, the
medians, and the ratios the issue sets targets for, with the machine's load.

  PYTHONPATH=build/python bench/python_vec.py --out bench/results/python-vec-cpu-epyc-2core.json \\
      --gymnasium /path/to/Gymnasium-source
"""
import argparse, datetime, json, os, statistics, subprocess, sys, time

import numpy as np

import bodhi

p = argparse.ArgumentParser()
p.add_argument("--bodhi", default="build/bodhi")
p.add_argument("--sizes", type=int, nargs="+", default=[4096, 65536])
p.add_argument("--tag-worlds", type=int, default=1000)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--rounds", type=int, default=5)
p.add_argument("--seconds", type=float, default=1.0, help="about this long per measurement")
p.add_argument("--gymnasium", help="a Gymnasium source tree (its parent goes on sys.path)")
p.add_argument("--out", required=True)
a = p.parse_args()


def c_bench(env, agents, steps):
    out = subprocess.run([a.bodhi, "bench", env, "--agents", str(agents), "--steps", str(steps),
                          "--threads", str(a.threads), "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["agent_steps_per_s"]


def timed(step, agents, steps):
    for _ in range(5):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return agents * steps / (time.perf_counter() - t)


def py_vec(n, steps):
    env = bodhi.make_vec("CartPole-v1", n, seed=1, threads=a.threads)
    env.reset(seed=1)
    acts = [np.random.default_rng(i).integers(0, 2, n) for i in range(8)]
    k = [0]

    def step():
        k[0] += 1
        env.step(acts[k[0] & 7])
    r = timed(step, n, steps)
    env.close()
    return r


def py_vec_fresh(n, steps):
    """As py_vec, with the actions drawn by NumPy every step (as a random policy would)."""
    env = bodhi.make_vec("CartPole-v1", n, seed=1, threads=a.threads)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    r = timed(lambda: env.step(rng.integers(0, 2, n)), n, steps)
    env.close()
    return r


def py_tag(worlds, steps):
    env = bodhi.make_multi("tag", worlds, seed=1, threads=a.threads)
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    acts = [{g: rng.uniform(-1, 1, (worlds, env.members[g], 2)).astype(np.float32) for g in env.groups}
            for _ in range(8)]
    k = [0]

    def step():
        k[0] += 1
        env.step(acts[k[0] & 7])
    r = timed(step, worlds * sum(env.members.values()), steps)
    env.close()
    return r


gym_vec = None
if a.gymnasium:
    sys.path.insert(0, os.path.dirname(os.path.abspath(a.gymnasium.rstrip("/"))))
    from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
    import gymnasium
    gym_version = gymnasium.__version__

    def gym_vec(n, steps):
        env = CartPoleVectorEnv(num_envs=n)
        env.reset(seed=1)
        acts = [np.random.default_rng(i).integers(0, 2, n) for i in range(8)]
        k = [0]

        def step():
            k[0] += 1
            env.step(acts[k[0] & 7])
        return timed(step, n, steps)


def steps_for(rate_guess, agents):
    return max(20, int(a.seconds * rate_guess / agents))


res = {n: {"c": [], "python": [], "fresh": [], "gymnasium": []} for n in a.sizes}
tag = {"c": [], "python": []}
loads = []
for r in range(a.rounds):
    loads.append(os.getloadavg()[0])
    for n in a.sizes:
        T = steps_for(5e7, n)
        res[n]["c"].append(c_bench("cartpole", n, T))
        res[n]["python"].append(py_vec(n, T))
        res[n]["fresh"].append(py_vec_fresh(n, T))
        if gym_vec:
            res[n]["gymnasium"].append(gym_vec(n, steps_for(1e7, n)))
    W = a.tag_worlds
    T = steps_for(2e6, 25 * W)
    tag["c"].append(c_bench("tag", 25 * W, T))
    tag["python"].append(py_tag(W, T))
    print(f"round {r + 1}/{a.rounds}: " + ", ".join(
        f"{n}: C {res[n]['c'][-1]:.3g} Py {res[n]['python'][-1]:.3g}" for n in a.sizes)
        + f"; tag C {tag['c'][-1]:.3g} Py {tag['python'][-1]:.3g}", file=sys.stderr)

med = statistics.median
results = []
for n in a.sizes:
    row = {"env": "cartpole", "agents": n, "threads": a.threads,
           "bodhi_bench_agent_steps_per_s": res[n]["c"], "python_make_vec_agent_steps_per_s": res[n]["python"],
           "median_c": med(res[n]["c"]), "median_python": med(res[n]["python"]),
           "ratio_python_to_c": med(res[n]["python"]) / med(res[n]["c"]),
           "python_numpy_drawn_actions_agent_steps_per_s": res[n]["fresh"],
           "median_python_numpy_drawn_actions": med(res[n]["fresh"]),
           "ratio_python_numpy_drawn_actions_to_c": med(res[n]["fresh"]) / med(res[n]["c"])}
    if res[n]["gymnasium"]:
        row.update({"gymnasium_cartpole_vector_env_agent_steps_per_s": res[n]["gymnasium"],
                    "median_gymnasium": med(res[n]["gymnasium"]),
                    "ratio_python_to_gymnasium": med(res[n]["python"]) / med(res[n]["gymnasium"])})
    results.append(row)
results.append({"env": "tag", "agents": 25 * a.tag_worlds, "worlds": a.tag_worlds, "threads": a.threads,
                "bodhi_bench_agent_steps_per_s": tag["c"], "python_make_multi_agent_steps_per_s": tag["python"],
                "median_c": med(tag["c"]), "median_python": med(tag["python"]),
                "ratio_python_to_c": med(tag["python"]) / med(tag["c"])})
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
doc = {
    "what": "bodhi stepped from Python (bodhi.make_vec / make_multi, NumPy action arrays) against `bodhi bench`"
            " (actions drawn in C) and Gymnasium's NumPy CartPoleVectorEnv, interleaved per round."
            " python: 8 action arrays drawn up front, rotated; python_numpy_drawn_actions: rng.integers every step"
            " (bodhi bench draws its random actions with Philox inside the timed loop, so the first beats it)",
    "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
    "commit": commit,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
                "cores": os.cpu_count(), "gpu": None,
                "load_average_1min_per_round": loads,
                "note": "shared with other builds and tests at the time (see the load)"},
    "gymnasium": {"version": gym_version, "source": "a Gymnasium source tree's CartPoleVectorEnv"} if gym_vec else None,
    "python": sys.version.split()[0], "numpy": np.__version__,
    "results": results,
}
with open(a.out, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(json.dumps(results, indent=1))
