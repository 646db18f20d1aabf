#!/usr/bin/env bash
# Packages what proves bodhi's CUDA paths for an offline GPU machine (one that has the
# NVIDIA driver but none of bodhi's libraries): the env suites with their CPU-vs-CUDA
# bit-identity tests (test_env, test_classic), the example plugin they load, and the
# torch-free env benchmark (bodhi-envbench), built here for compute capability
# ${CUDA_ARCH:-90} with static cudart, plus every shared library they need that is not
# part of glibc. Output: .gpu/ (git-ignored), with .gpu/run.sh to run there.
#   bench/gpu/package.sh              then, on the GPU machine:  .gpu/run.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || { echo "package.sh: no nvcc at $nvcc" >&2; exit 2; }
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBODHI_CUDA=ON \
      -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90}" >/dev/null
cmake --build build-gpu --target test_env test_classic bodhi-envbench bodhi_target
rm -rf .gpu && mkdir -p .gpu/lib
cp build-gpu/test_env build-gpu/test_classic build-gpu/bodhi-envbench build-gpu/libbodhi_target.so .gpu/
for bin in .gpu/test_env .gpu/test_classic .gpu/bodhi-envbench; do
  ldd "$bin" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' \
  | while read -r lib; do cp -L "$lib" .gpu/lib/; done
cp bench/gpu/run.sh .gpu/run.sh
echo "$(git rev-parse --short HEAD) $(date -u +%Y-%m-%dT%H:%M:%SZ)" > .gpu/BUILD
du -sh .gpu | awk '{print "package.sh: .gpu is " $1}'
