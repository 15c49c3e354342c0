#!/bin/bash
# Runs a test binary once per SIMD target this CPU can run (HORO_SIMD=<target>), as listed by
# `horo-train --version`: the kernels must match their references whatever the target.
#   every_simd_target.sh BIN_DIR TEST_BINARY [gtest args...]
set -euo pipefail
bin=$1; test=$2; shift 2
targets=$("$bin/horo-train" --version | sed -n 's/^SIMD: .*this CPU can run: \([^;]*\);.*/\1/p')
[ -n "$targets" ] || { echo "could not read the SIMD targets from horo-train --version" >&2; exit 1; }
echo "SIMD targets: $targets"
for t in $targets; do
  echo "== HORO_SIMD=$t $test"
  HORO_SIMD=$t "$bin/$test" "$@"
done
