#!/usr/bin/env bash
# Packages bodhi for an offline GPU machine, one that has the NVIDIA driver, a compiler,
# CMake and a PyTorch wheel (CUDA libtorch) but none of bodhi's other libraries. Built here
# for compute capability ${CUDA_ARCH:-90} with static cudart:
#   - `bodhi` itself, to train there (bodhi run ... --device cuda), and bench/train.py;
#   - the env suites with their CPU-vs-CUDA bit-identity tests (test_env, test_classic,
#     test_tag), the example plugin they load, and the torch-free env benchmarks
#     (bodhi-envbench, bodhi-tagbench);
#   - the torch shim's suites (test_torch, and test_muscle with its CUDA-vs-CPU actor test);
#   - every shared library these need, except glibc's and the compiler runtime's (the GPU
#     machine has its own) and except the torch shim libbodhi_torch.so: Debian's libtorch
#     is CPU-only, so the kit carries the shim's sources (src/, torch-shim/) and run.sh
#     rebuilds it there against the machine's CUDA libtorch. Nothing else needs libtorch,
#     so none of it (nor the OpenCV/Qt that Debian's drags in) is packaged;
#   - experiments/.
# Output: .gpu/ (git-ignored), with .gpu/run.sh to run there. The build tree is build-gpu/.
#   bench/gpu/package.sh              then, on the GPU machine:  .gpu/run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "package.sh: no nvcc at $nvcc" >&2; exit 2; }
bins="bodhi bodhi-envbench bodhi-tagbench test_env test_classic test_tag test_torch test_muscle"
# No build RPATH: the kit's programs find their libraries through run.sh's LD_LIBRARY_PATH,
# never in this machine's build tree.
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBODHI_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" \
      -DCMAKE_SKIP_BUILD_RPATH=ON >/dev/null
cmake --build build-gpu -j "${JOBS:-$(nproc)}" --target $bins bodhi_target bd_torch
rm -rf .gpu && mkdir -p .gpu/lib .gpu/src .gpu/bench
for b in $bins; do cp "build-gpu/$b" .gpu/; done
cp build-gpu/libbodhi_target.so .gpu/

# The libraries FILE needs, recursively (paths here), without glibc's, the compiler
# runtime's and the torch shim's own closure. ldd maps every name the closure needs.
skip='^(linux-vdso|ld-linux-x86-64|libc|libm|libmvec|libpthread|libdl|librt|libresolv|libutil|libanl|libstdc\+\+|libgcc_s|libbodhi_torch)\.so'
deps() {
  local map queue=("$1") seen=" " f n p
  map=$(LD_LIBRARY_PATH=build-gpu ldd "$1")
  while ((${#queue[@]})); do
    f=${queue[0]}; queue=("${queue[@]:1}")
    for n in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      [[ $n =~ $skip || $seen == *" $n "* ]] && continue
      seen+="$n "
      p=$(awk -v n="$n" '$1 == n && $3 ~ /^\// {print $3; exit}' <<<"$map")
      [ -n "$p" ] || { echo "package.sh: $1 needs $n, which ldd does not find" >&2; return 1; }
      echo "$p"; queue+=("$p")
    done
  done
}
libs=$(for f in .gpu/libbodhi_target.so $(printf '.gpu/%s ' $bins); do deps "$f" || exit 1; done | sort -u)
if grep -E '/lib(torch|c10|caffe2|opencv|Qt)' <<<"$libs"; then
  echo "package.sh: something besides the torch shim needs libtorch or its baggage (above)" >&2
  exit 1
fi
for lib in $libs; do cp -L "$lib" .gpu/lib/; done

# What the shim needs to be rebuilt there: its sources and every project header it
# includes (from the build's dependency record), and the CMake project that builds it.
root=$(pwd)
{ for src in torch/*.cpp; do
    echo "$src"
    ninja -C build-gpu -t deps "CMakeFiles/bd_torch.dir/$src.o" | awk 'NR > 1 {print $1}' \
      | grep "^$root/" | sed "s|^$root/||"
  done
  ls torch/*.h torch/abi.cmake # the interface hash's rule and headers (the shim's loaders check it)
} | sort -u | while read -r f; do mkdir -p ".gpu/src/$(dirname "$f")"; cp "$f" ".gpu/src/$f"; done
cp -r bench/gpu/torch-shim .gpu/torch-shim
cp -r experiments .gpu/experiments
cp bench/train.py .gpu/bench/train.py
cp bench/gpu/run.sh .gpu/run.sh

# The newest glibc and libstdc++ symbol versions anything in the kit asks for: run.sh shows
# them beside the machine's own, so a kit too new for that machine is plain to see.
newest() { for f in .gpu/* .gpu/lib/*; do [ -f "$f" ] && objdump -T "$f" 2>/dev/null; done \
           | grep -o "$1_[0-9.]*[0-9]" | sort -uV | tail -1; }
{ echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (+ local changes)')"
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) for sm_${CUDA_ARCH:-90} on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "needs $(newest GLIBC) $(newest GLIBCXX)"
} > .gpu/BUILD
cat .gpu/BUILD
du -sh .gpu | awk '{print "package.sh: .gpu is " $1}'
