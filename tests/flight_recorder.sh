#!/usr/bin/env bash
# The collective flight recorder and horo-diagnose, under mpirun -np 3 (tests/dist_flight_probe.cpp):
#   1. rank 2 sleeps before step 5's allreduce: the others stall, every rank writes its records (rank 2
#      on mpirun's SIGTERM), and the diagnosis names rank 2, the allreduce it never entered, how long
#      the others waited and its last completed collective;
#   2. rank 1 skips step 5's allreduce and enters the barrier: the diagnosis says the ranks disagree on
#      that collective, naming each side.
# Usage: flight_recorder.sh MPIEXEC BIN_DIR WORK_DIR TOOLS_DIR
set -uo pipefail
mpirun=$1 bin=$2 work=$3 tools=$4
rm -rf "$work" && mkdir -p "$work"
run=("$mpirun" --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 --mca odls_base_sigkill_timeout 5 -np 3)
fail() { echo "FAIL: $*"; exit 1; }
expect() {  # file, fragment
  grep -qF -- "$2" "$1" || { cat "$1"; fail "$1 lacks: $2"; }
}

for mode in sleep skip; do
  HORO_STALL_TIMEOUT=3 timeout 120 "${run[@]}" "$bin/dist_flight_probe" "$mode" "$work/$mode" >"$work/$mode.txt" 2>&1
  code=$?
  [ $code -ne 0 ] && [ $code -ne 124 ] || { cat "$work/$mode.txt"; fail "$mode: exit code $code"; }
  sleep 1  # the records of a rank ended by SIGTERM are written by its dump thread
  ls "$work/$mode"
  /usr/bin/python3 "$tools/horo-diagnose" "$work/$mode" --table >"$work/$mode.diagnosis" || fail "$mode: horo-diagnose failed"
  cat "$work/$mode.diagnosis"
done
grep -q "each rank's last collectives go to" "$work/sleep.txt" || fail "the stall message does not point at the records"
for r in 0 1 2; do [ -s "$work/sleep/flight-recorder-rank$r.json" ] || fail "sleep: rank $r wrote no record"; done
expect "$work/sleep.diagnosis" "Rank 2 never entered allreduce #11 at step 5 (allreduce of bucket 0 (fc.weight, fc.bias); 16.0 KiB float32"
expect "$work/sleep.diagnosis" "ranks 0-1 waited"
expect "$work/sleep.diagnosis" "Rank 2's last completed collective there was barrier #10"
expect "$work/skip.diagnosis" "The ranks disagree on collective #11 of communicator 0"
expect "$work/skip.diagnosis" "ranks 0, 2 in allreduce #11 at step 5"
expect "$work/skip.diagnosis" "rank 1 in barrier #11"
# A directory without records is an error, not an empty diagnosis.
/usr/bin/python3 "$tools/horo-diagnose" "$work" >/dev/null 2>&1 && fail "horo-diagnose accepted a directory without records"
echo PASS
