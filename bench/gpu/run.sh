#!/usr/bin/env bash
# Runs on the GPU machine, from the folder bench/gpu/package.sh made (.gpu/), in one go:
#  1. builds the torch shim libbodhi_torch.so against the machine's CUDA libtorch (the
#     PyTorch wheel in /opt/torch/.venv) into OUT_DIR/shim; it comes first on LD_LIBRARY_PATH
#     with the kit's lib/ and torch's own lib/;
#  2. the env suites (their CUDA tests compare every env's kernel with the CPU loop bit for
#     bit: the classic envs over 1000 steps, Tag over 50) and the CUDA and CPU env
#     benchmarks, and Tag on the GPU at 2000 worlds x 1000 agents;
#  3. the torch shim's suites, test_torch and test_muscle (their CUDA tests run here);
#  4. training on the GPU: `bodhi run experiments/cartpole_ppo.yml --device cuda`, then
#     bench/train.py over seeds 1..5, for cartpole_ppo.yml and (if the kit has it)
#     cartpole_ppo_64k.yml.
# Every step logs to OUT_DIR/<step>.log (JSON results beside them); a failing step does not
# stop the later ones; OUT_DIR/steps.txt lists each step's outcome and time. Exit 0 only if
# every step passed. The whole run keeps within BUDGET_S seconds (default 540).
#   .gpu/run.sh OUT_DIR [AGENTS]
# Overrides: TORCH_PREFIX (libtorch's CMake prefix; default from the venv's python),
# TORCH_LIB (its lib folder; default PREFIX/../../lib), TORCH_PYTHON (default
# /opt/torch/.venv/bin/python3), CUDA_ARCH (90), DEVICE (cuda), BUDGET_S (540).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run.sh OUT_DIR [AGENTS]}
agents=${2:-16777216}
mkdir -p "$out" && out=$(cd "$out" && pwd)
device=${DEVICE:-cuda}
deadline=$((SECONDS + ${BUDGET_S:-540}))
rc=0
: > "$out/steps.txt"

# step NAME CAP CMD...: runs CMD, a program or an exported function (at most CAP seconds,
# less if the budget is nearly spent, killing its whole process group after that) with
# stdout and stderr in OUT/NAME.log, and notes the outcome in OUT/steps.txt.
step() {
  local name=$1 cap=$2 left=$((deadline - SECONDS)) t0=$SECONDS r; shift 2
  if ((left < 15)); then
    r="skipped (time budget spent)"; rc=1
  else
    ((cap > left)) && cap=$left
    timeout -k 10 "$cap" bash -c '"$@"' "$name" "$@" > "$out/$name.log" 2>&1 &
    local tp=$!
    wait "$tp"; r=$?
    # timeout leads its own process group; whatever the step left there (a `bodhi run`
    # whose python parent died, still finishing a PPO update after its SIGTERM) goes too.
    local i=0
    while kill -0 -- "-$tp" 2>/dev/null && ((i++ < 20)); do sleep 0.5; done
    kill -KILL -- "-$tp" 2>/dev/null
    if ((r == 0)); then r=ok
    elif ((r == 124 || r == 137)); then r="FAILED (timed out after ${cap}s)"; rc=1
    else r="FAILED (exit $r)"; rc=1; fi
  fi
  printf '%-24s %-32s %4ds\n' "$name" "$r" $((SECONDS - t0)) | tee -a "$out/steps.txt"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  echo "cores $(nproc)"; echo "os $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "glibc $(getconf GNU_LIBC_VERSION 2>/dev/null)"; echo "kit:"; cat "$here/BUILD"
} > "$out/device.txt" 2>&1

# ---- 1. the torch shim, against this machine's libtorch ------------------------------------
py=${TORCH_PYTHON:-/opt/torch/.venv/bin/python3}
prefix=${TORCH_PREFIX:-$("$py" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)}
torchlib=${TORCH_LIB:-$(cd "$prefix/../../lib" 2>/dev/null && pwd)} # <torch>/share/cmake -> <torch>/lib
shim=$out/shim
export here py prefix torchlib shim
build_shim() {
  echo "libtorch CMake prefix: ${prefix:-(none found)}; torch lib: ${torchlib:-(none)}"
  [ -n "$prefix" ] || return 1
  local nvcc=${CUDACXX:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
  local gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
  # find_package(Torch) of a CUDA wheel also looks for the CUDA toolkit (nvcc, headers).
  if CUDACXX=$nvcc TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} \
     cmake -S "$here/torch-shim" -B "$shim" "${gen[@]}" -DBODHI_SOURCE_DIR="$here/src" \
           -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" \
     && cmake --build "$shim" -j "$(nproc)"; then
    return 0
  fi
  # Fallback if libtorch's CMake config will not configure here: the wheel's own layout
  # (<torch>/include, <torch>/lib) with a plain compiler line.
  [ -d "$torchlib" ] && [ -d "$torchlib/../include/torch" ] || return 1
  echo "run.sh: CMake failed; building the shim with g++ directly"
  local inc=$torchlib/../include abi libs=()
  abi=$("$py" -c 'import torch; print(int(torch.compiled_with_cxx11_abi()))' 2>/dev/null || echo 1)
  for l in torch torch_cpu torch_cuda c10 c10_cuda; do
    [ -e "$torchlib/lib$l.so" ] && libs+=("-l$l")
  done
  mkdir -p "$shim" && (set -x
  g++ -std=c++17 -O2 -fPIC -shared -Wall -Wextra -ffp-contract=off -D_GLIBCXX_USE_CXX11_ABI="$abi" \
      -I"$here/src/include" -I"$here/src" -isystem "$inc" -isystem "$inc/torch/csrc/api/include" \
      "$here"/src/torch/*.cpp -o "$shim/libbodhi_torch.so" -Wl,-soname,libbodhi_torch.so \
      -L"$torchlib" -Wl,-rpath,"$torchlib" -Wl,--no-as-needed "${libs[@]}" -Wl,--as-needed)
}
export -f build_shim
step shim-build 300 build_shim
# The kit's programs find the new shim first, then the kit's libraries, then torch's (and
# the NVIDIA libraries those name by RPATH). Only they: the machine's own tools and python
# keep the machine's libraries (the kit's OpenSSL or libffi are not for python's modules).
kitpath="$shim:$here/lib${torchlib:+:$torchlib}"
kit() { LD_LIBRARY_PATH="$kitpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$@"; }
envbench() { kit ./bodhi-envbench --device "$1" ${2:+--agents "$2"} --json > "$out/bench-$1.json"; }
export kitpath out
export -f kit envbench
echo "kit library path: $kitpath" >> "$out/device.txt"
cd "$here" || exit 2
kit ldd ./bodhi > "$out/ldd-bodhi.txt" 2>&1

# ---- 2. env suites and env benchmarks --------------------------------------------------------
# The plugin test looks for the plugin where it was built; point it here instead.
export BODHI_TARGET_PLUGIN="$here/libbodhi_target.so"
step test_env 120 kit ./test_env --verbose
step test_classic 120 kit ./test_classic --verbose
step test_tag 120 kit ./test_tag --verbose
step bench-cuda 180 envbench cuda "$agents"
step bench-cpu 120 envbench cpu
# Tag at WarpDrive's published point: 2000 worlds x 1000 agents, 2.9M env-steps/s on an
# A100. tagbench reports agent-steps/s, and worlds, steps and seconds, from which world-
# steps/s follow: compare in WarpDrive's own unit (its paper defines it)
tagbench() { kit ./bodhi-tagbench --device cuda --json "$@" > "$out/bench-tag-cuda.json"; }
export -f tagbench
step bench-tag-cuda 120 tagbench --agents 1000 --worlds 2000 --seconds 3

# ---- 3. the torch shim's suites --------------------------------------------------------------
step test_torch 180 kit ./test_torch --verbose
step test_muscle 180 kit ./test_muscle --verbose

# ---- 4. training on the GPU ------------------------------------------------------------------
step "run-cartpole-$device" 150 kit ./bodhi run experiments/cartpole_ppo.yml --device "$device" \
  --out "$out/run-cartpole-$device"
python=/usr/bin/python3
[ -x "$python" ] || python=$py
# bench/train.py starts bin/bodhi, which sets the kit's library path. It also records
# `git rev-parse --short HEAD`: the commit that counts is the kit's, and this machine may
# have no git or no repository, so bin/git says that one.
mkdir -p bin
printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s/bodhi" "$@"\n' \
  "$kitpath" "$here" > bin/bodhi
printf '#!/bin/sh\nsed -n "s/^commit //p" "%s/BUILD"\n' "$here" > bin/git
chmod +x bin/bodhi bin/git
train() { # NAME EXPERIMENT: 5 seeds to mean return 475
  step "$1" 240 env PATH="$here/bin:$PATH" "$python" bench/train.py "$2" --threshold 475 \
    --seeds 1 2 3 4 5 --bodhi bin/bodhi --device "$device" --out "$out/$1.json"
}
train "train-cartpole-$device" experiments/cartpole_ppo.yml
if [ -f experiments/cartpole_ppo_64k.yml ]; then
  train "train-cartpole-64k-$device" experiments/cartpole_ppo_64k.yml
fi

echo "---- summary"
grep -hE 'Synthesis' "$out"/test_*.log
cat "$out/steps.txt"
exit $rc
