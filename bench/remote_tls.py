#!/usr/bin/python3
"""What mutual TLS costs a run: the same CartPole training run with three muscles, once
all local (ipc) and once with two of them remote over TLS (`bodhi run --listen`, `bodhi
muscle --connect ... --credential RUN_DIR/remote.key`, on loopback), side by side in one
sitting, alternating so that the machine's load falls on both alike. The rate compared is
the steady one: agent-steps between the brain's first and last round reports (log.jsonl's
`update` events) over the time between them, which leaves out the start (remote muscles
join only once every brain listens, so their start falls inside the brain's own clock);
summary.json's steps_per_s, start included, is kept beside it. The ratio is the median of
TLS over the median of ipc. Writes one JSON file.

  bench/remote_tls.py --out bench/results/remote-tls-cpu-epyc-2core.json
"""
import argparse, datetime, json, os, socket, statistics, subprocess, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--worlds", type=int, default=3072)
p.add_argument("--steps", type=int, default=900000)
p.add_argument("--repeats", type=int, default=4)
p.add_argument("--build", default="build")
p.add_argument("--out", required=True)
a = p.parse_args()
bodhi = os.path.join(a.build, "bodhi")

RUN = """uid: remote-tls
seed: 3
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
        conditions: [{{name: max_steps, params: {{steps: {steps}}}}}]
      phase_config: {{mode: train, worker: {worker}, remote_worker: {remote}}}
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def one(tmp, remote, k):
    f = os.path.join(tmp, f"run-{remote}-{k}.yml")
    open(f, "w").write(RUN.format(worlds=a.worlds, steps=a.steps, worker=3 - remote, remote=remote))
    out = os.path.join(tmp, f"out-{remote}-{k}")
    cmd = [bodhi, "run", f, "--out", out, "--quiet"]
    port = free_port()
    if remote:
        cmd += ["--listen", f"127.0.0.1:{port}"]
    t0 = time.time()
    run = subprocess.Popen(cmd)
    muscles = []
    if remote:
        key = os.path.join(out, "remote.key")
        while not os.path.exists(key) and time.time() - t0 < 60:
            time.sleep(0.05)
        muscles = [subprocess.Popen([bodhi, "muscle", "--connect", f"127.0.0.1:{port}", "--credential", key,
                                     "--wait", "60"], stderr=subprocess.DEVNULL) for _ in range(remote)]
    rc = run.wait(timeout=900)
    for m in muscles:
        m.wait(timeout=60)
    assert rc == 0, f"run exited {rc}"
    s = json.load(open(os.path.join(out, "summary.json")))
    ag = s["phases"][0]["agents"][0]
    ups = [json.loads(l) for l in open(os.path.join(out, "log.jsonl")) if '"event":"update"' in l]
    first, last = ups[0], ups[-1]
    steady = (last["steps"] - first["steps"]) / (last["t"] - first["t"])
    return {"transport": "tls" if remote else "ipc", "remote_muscles": remote, "steps": ag["steps"],
            "rounds": len(ups), "agent_steps_per_s": steady, "summary_steps_per_s": ag["steps_per_s"],
            "phase_wall_s": s["phases"][0]["wall_s"]}


runs = []
with tempfile.TemporaryDirectory(prefix="bodhi-remote-tls-") as tmp:
    for k in range(a.repeats):
        for remote in (0, 2):
            r = one(tmp, remote, k)
            runs.append(r)
            print(json.dumps(r), flush=True)

med = {t: statistics.median(r["agent_steps_per_s"] for r in runs if r["transport"] == t) for t in ("ipc", "tls")}
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                       text=True).stdout.split("\n")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
result = {
    "what": "CartPole PPO training agent-steps/s with 3 muscles: all on ipc, against 1 on ipc and 2 remote "
            "over mutual TLS on loopback (same run file, seed and worlds), alternated in one sitting; "
            "agent_steps_per_s is the steady rate between the first and last round reports, "
            "summary_steps_per_s the brain's own, start included",
    "command": "bench/remote_tls.py " + " ".join(f"--{k} {v}" for k, v in
                                                 [("worlds", a.worlds), ("steps", a.steps),
                                                  ("repeats", a.repeats), ("out", a.out)]),
    "commit": commit,
    "dirty_files": [l[3:] for l in dirty if l.strip()],
    "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "nng_tls_engine": "mbedTLS 2.28 (Debian libnng 1.5.2)"},
    "runs": runs,
    "median_agent_steps_per_s": med,
    "tls_over_ipc": med["tls"] / med["ipc"],
    "target": 0.9,
}
json.dump(result, open(a.out, "w"), indent=1)
print(json.dumps({"median": med, "tls_over_ipc": result["tls_over_ipc"]}))
