#!/usr/bin/env bash
# Sanitizer and fuzzing jobs (CI runs all three after the test suite):
#   scripts/sanitize.sh asan          clang build with AddressSanitizer + UBSan (and libFuzzer coverage) in
#                                     build-asan/; runs the unit, gradcheck, integration and mpi labels, not the
#                                     accuracy runs, the heavy ones (whole ResNet trainings, 30-60x slower
#                                     under ASan, and the examples project's build) nor the process-killing
#                                     fault tests (label faults: 490 s of CI under ASan); their code runs under
#                                     it in the unit, gradcheck and shorter integration tests
#   scripts/sanitize.sh tsan          clang build with ThreadSanitizer in build-tsan/ (the libraries and the
#                                     reader's and reducer's tests only); runs them
#   scripts/sanitize.sh fuzz [SECS]   every libFuzzer target in build-asan/ for SECS seconds each (45), from
#                                     its seed corpus in fuzz/corpus/; a finding fails the job and is kept
#                                     in build-asan/fuzz-findings/ (docs/fuzzing.md)
# Reports are fatal (no recovery); suppressions live in tests/sanitizers/ with the reason for each.
# Both builds compile the CPU kernels for every SIMD target but AVX-512 (CMakeLists.txt says why).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --sanitizers
mode=${1:-}
jobs=${HORO_BUILD_JOBS:-$(nproc)}
root=$PWD
common=(-DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 -DCMAKE_BUILD_TYPE=Release
  "-DCMAKE_CXX_FLAGS=-gline-tables-only" "-DCMAKE_C_FLAGS=-gline-tables-only"
  -DHORO_CUDA=OFF -DHORO_CUDNN=OFF -DHORO_NCCL=OFF -DHORO_BUILD_BENCH=OFF
  # Eigen's GEMM: OpenBLAS's OpenMP build brings libgomp, clang's OpenMP is libomp; one runtime only.
  -DHORO_BLAS=EIGEN)
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$root/tests/sanitizers/ubsan.supp"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1:detect_stack_use_after_return=1:strict_string_checks=1"
export LSAN_OPTIONS="suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp"

case "$mode" in
  asan)
    cmake -S . -B build-asan "${common[@]}" -DHORO_SANITIZE=address,undefined -DHORO_FUZZ=ON >/dev/null
    cmake --build build-asan -j "$jobs"
    cd build-asan
    # Everything but: the aarch64 check (cross-compiled without sanitizers, run by the main suite), and
    # the `accuracy` runs (W1 twice, ResNet-20, the image-folder pipeline alone and under mpirun),
    # which train for hundreds to thousands of steps to an accuracy bar through the paths that the
    # shorter integration tests (cli, resnet_cli, e2e), test_images and image_fuzzer
    # take; under ASan they alone would take over 20 minutes of CI's budget.
    # The fault tests (fault_injection, mpi_auto_restart) kill and restart whole training runs dozens of
    # times: 490 s under ASan on a 2-core Zen 3, against 46 s in the main suite, which runs them.
    ctest --output-on-failure --timeout 1500 -L "unit|gradcheck|integration" -LE "cross|accuracy|heavy|faults|mpi" -j "$jobs"
    # Under mpirun, without leak checking: Open MPI loads its components with dlopen and unloads them at
    # MPI_Finalize, so what they keep for the process's life is reported from "<unknown module>",
    # which no suppression can name. Addresses and undefined behaviour are checked as everywhere.
    ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" ctest --output-on-failure --timeout 1500 -L mpi -LE "cross|accuracy|heavy|faults" -j "$jobs"
    ;;
  tsan)
    cmake -S . -B build-tsan "${common[@]}" -DHORO_SANITIZE=thread >/dev/null
    cmake --build build-tsan -j "$jobs" --target test_data test_images test_dist
    cd build-tsan
    # libomp is not built with TSan: with one OpenMP thread its parallel regions run on the calling
    # thread, and every other thread (the reader's I/O and decode workers, the reducer's communication
    # thread) is a std::thread that TSan sees whole.
    export OMP_NUM_THREADS=1 HORO_NUM_THREADS=1
    bin/test_data --gtest_brief=1
    bin/test_images --gtest_brief=1
    bin/test_dist --gtest_brief=1
    mpirun --oversubscribe --allow-run-as-root --mca btl self,vader -np 2 bin/test_dist --gtest_brief=1
    ;;
  fuzz)
    seconds=${2:-45}
    [ -x build-asan/bin/spec_fuzzer ] || { echo "sanitize.sh fuzz: build the targets first (scripts/sanitize.sh asan)" >&2; exit 2; }
    findings=build-asan/fuzz-findings
    rm -rf "$findings" && mkdir -p "$findings"
    status=0
    for corpus in fuzz/corpus/*/; do
      name=$(basename "$corpus")
      work=$(mktemp -d)  # new inputs go here: the committed corpus stays as it is
      echo "fuzz: $name for ${seconds}s from $(ls "$corpus" | wc -l) seeds"
      if ! build-asan/bin/$name -max_total_time="$seconds" -timeout=20 -rss_limit_mb=3072 -max_len=65536 \
           -print_final_stats=1 -artifact_prefix="$findings/$name-" "$work" "$corpus" >"$findings/$name.log" 2>&1; then
        status=1
        echo "fuzz: $name FOUND A PROBLEM:"; grep -E "ERROR|SUMMARY|==[0-9]+==|deadly|uncaught|timeout|out-of-memory" "$findings/$name.log" | head -20
      fi
      grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$findings/$name.log" | tr '\n' ' '; echo
      rm -rf "$work"
    done
    exit $status
    ;;
  *)
    echo "usage: scripts/sanitize.sh asan | tsan | fuzz [SECONDS]" >&2
    exit 2
    ;;
esac
