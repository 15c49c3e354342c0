#!/usr/bin/env bash
# Installs what is missing, builds horo (Release, in build/) and runs the whole test suite with ctest.
#   scripts/test.sh                 every test
#   scripts/test.sh -L unit         only one label (unit, gradcheck, integration, mpi, cuda)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=${HORO_BUILD_JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"
cd build
# Two tests at a time on two cores: ctest keeps the ones marked PROCESSORS 2 (the timing-sensitive
# multi-rank runs) alone.
ctest --output-on-failure --timeout 900 -j "$jobs" "$@"
