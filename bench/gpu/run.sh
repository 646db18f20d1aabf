#!/usr/bin/env bash
# Runs on the GPU machine, from the folder bench/gpu/package.sh made (.gpu/): the env
# suites (their CUDA tests compare every env's CUDA kernel with the CPU loop bit for bit
# over 1000 steps) and the CUDA and CPU env benchmarks. Everything lands in OUT_DIR:
# tests.log, bench-cuda.json, bench-cpu.json, device.txt.
#   .gpu/run.sh OUT_DIR [AGENTS]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run.sh OUT_DIR [AGENTS]}
agents=${2:-16777216}
mkdir -p "$out"
export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  nproc; cat "$here/BUILD"; } > "$out/device.txt" 2>&1
rc=0
# The plugin test looks for the plugin where it was built; point it here instead.
export BODHI_TARGET_PLUGIN="$here/libbodhi_target.so"
for t in test_env test_classic; do
  (cd "$here" && ./$t --verbose 2>&1) >> "$out/tests.log" || rc=1
done
"$here/bodhi-envbench" --device cuda --agents "$agents" --json > "$out/bench-cuda.json" 2>> "$out/tests.log" || rc=1
"$here/bodhi-envbench" --device cpu --json > "$out/bench-cpu.json" 2>> "$out/tests.log" || rc=1
grep -E 'Synthesis|SKIP|FAIL' "$out/tests.log"
cat "$out/bench-cuda.json"
exit $rc
