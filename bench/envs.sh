#!/usr/bin/env bash
# Environment throughput: `bodhi bench --json` for every built-in env on one device, saved
# with a description of the machine, the commit and the exact command.
#   bench/envs.sh [cpu|cuda] [extra bodhi bench args...]  -> bench/results/envs-<device>-<host>.json
set -euo pipefail
cd "$(dirname "$0")/.."
dev=${1:-cpu}
shift || true
bin=${BODHI:-build/bodhi}
host=$(hostname -s 2>/dev/null || echo host)
out=${OUT_FILE:-bench/results/envs-$dev-$host.json}
cmd="$bin bench --device $dev --json $*"
lines=$($cmd)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
gpu=""
if [ "$dev" = cuda ] && command -v nvidia-smi >/dev/null; then
  gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
fi
/usr/bin/python3 - "$out" "$cmd" "$cpu" "$(nproc)" "$gpu" "$(git rev-parse --short HEAD)" <<PY
import json, sys, datetime
out, cmd, cpu, cores, gpu, commit = sys.argv[1:7]
results = [json.loads(l) for l in """$lines""".splitlines() if l.strip()]
doc = {"what": "environment throughput, uniform random policy drawn on the device",
       "command": cmd, "commit": commit,
       "date": datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
       "machine": {"cpu": cpu, "cores": int(cores), "gpu": gpu or None},
       "results": results}
json.dump(doc, open(out, "w"), indent=1)
for r in results:
    print(f"{r['env']:12s} {r['device']:4s} N={r['agents']:<9d} {r['agent_steps_per_s']/1e6:9.1f} M agent-steps/s"
          f"  {r['bytes_per_step']:.0f} B/step  {100*r['fraction_of_floor']:.0f}% of floor")
print("wrote", out)
PY
