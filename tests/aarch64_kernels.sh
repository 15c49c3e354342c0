#!/bin/bash
# Cross-compiles the CPU kernels and their unit tests for aarch64 (tests/aarch64/CMakeLists.txt) and
# runs the tests under qemu-aarch64 once per SIMD target the emulated CPU offers (SVE, NEON, plain
# C++). Exits 77 (skipped) when the cross tools are missing: scripts/install-deps.sh --cross installs
# them (g++-aarch64-linux-gnu, qemu-user-static, libhwy-dev:arm64).
#   aarch64_kernels.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1; build=$2
for tool in aarch64-linux-gnu-g++ qemu-aarch64-static; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (scripts/install-deps.sh --cross)"; exit 77; }
done
[ -e /usr/lib/aarch64-linux-gnu/libhwy.so ] || { echo "SKIP: libhwy-dev:arm64 not installed (scripts/install-deps.sh --cross)"; exit 77; }
cmake -S "$src/tests/aarch64" -B "$build" -DCMAKE_TOOLCHAIN_FILE="$src/cmake/toolchains/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "${HORO_BUILD_JOBS:-$(nproc)}"
run() { qemu-aarch64-static -L /usr/aarch64-linux-gnu "$@"; }
targets=$(run "$build/print_simd_targets")
echo "aarch64 (qemu) SIMD targets: $targets"
[ -n "$targets" ] || { echo "no SIMD target reported" >&2; exit 1; }
# One thread: under qemu-user, libgomp's and Eigen's spin-waits between threads livelock (a 2-thread
# test ran for 10 minutes). Threading is the same code on every architecture and is tested natively.
for t in $targets; do
  for test in test_kernels test_kernels_norm test_kernels_conv; do
    echo "== HORO_SIMD=$t $test (aarch64, one thread)"
    HORO_SIMD=$t HORO_NUM_THREADS=1 OMP_NUM_THREADS=1 run "$build/$test" --gtest_brief=1 \
      --gtest_filter='-*/2_threads:*/3_threads'
  done
done
