#!/usr/bin/env bash
# Failure handling under mpirun: a mismatched model fails with a clear error instead of hanging, a
# stalled collective names the missing rank, and a killed rank ends the whole job non-zero in time.
# Usage: dist_failures.sh MPIRUN BIN_DIR WORK_DIR
set -uo pipefail
mpirun=$1 bin=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
run=("$mpirun" --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1)
fail() { echo "FAIL: $*"; exit 1; }

# 1. Different models on the two ranks (MPMD launch): an error naming the mismatch, non-zero exit.
timeout 120 "${run[@]}" -np 1 "$bin/horo-train" --model cnn --max-steps 5 : -np 1 "$bin/horo-train" --model mlp --max-steps 5 \
  >"$work/mismatch.txt" 2>&1
code=$?
[ $code -ne 0 ] && [ $code -ne 124 ] || fail "mismatched models: exit code $code"
grep -q "differ between ranks" "$work/mismatch.txt" || fail "mismatched models: no clear error"; cat "$work/mismatch.txt" | grep "differ" | head -2

# 2. A rank that never reaches a collective: rank 0 names it within HORO_STALL_TIMEOUT.
start=$(date +%s)
HORO_STALL_TIMEOUT=3 timeout 120 "${run[@]}" -np 2 "$bin/dist_stall_probe" >"$work/stall.txt" 2>&1
code=$?
elapsed=$(( $(date +%s) - start ))
grep "stall reported" "$work/stall.txt"
grep -q "ranks that never reached it: 1" "$work/stall.txt" || fail "stall: missing rank not named"
grep -q "probe.weight" "$work/stall.txt" || fail "stall: tensor not named"
[ $code -ne 0 ] && [ $code -ne 124 ] && [ $elapsed -lt 60 ] || fail "stall: exit code $code after ${elapsed}s"

# 3. A rank SIGKILLed at a random moment of training (three rounds, each killing a random rank): the
#    job ends non-zero well within the watchdog's timeout, and the launcher names the dead rank.
for round in 1 2 3; do
  target=$((RANDOM % 2))
  HORO_STALL_TIMEOUT=30 timeout 120 "${run[@]}" -np 2 "$bin/horo-train" --model cnn --epochs 500 --train-images 2000 \
    --test-images 200 --log-dir "" >"$work/kill$round.txt" 2>&1 &
  launcher=$!
  victim=""
  for _ in $(seq 300); do
    for pid in $(pgrep -f "$bin/horo-train"); do
      tr '\0' '\n' < /proc/$pid/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$target" && victim=$pid
    done
    [ -n "$victim" ] && grep -q "^epoch 1/" "$work/kill$round.txt" && break
    sleep 0.1
  done
  [ -n "$victim" ] || fail "kill: rank $target never started"
  sleep "0.$((RANDOM % 10))"  # somewhere in a later epoch: forward, backward, allreduce or evaluation
  start=$(date +%s)
  kill -9 "$victim"
  wait $launcher
  code=$?
  elapsed=$(( $(date +%s) - start ))
  [ $code -ne 0 ] && [ $code -ne 124 ] && [ $elapsed -lt 45 ] || fail "kill: exit code $code after ${elapsed}s"
  grep -q "process rank $target .*exited on signal 9" "$work/kill$round.txt" || { cat "$work/kill$round.txt"; fail "kill: rank $target not named"; }
  echo "killed rank $target (round $round): the job ended with code $code after ${elapsed}s, naming it: $(grep -o "process rank $target .*signal 9[^.]*" "$work/kill$round.txt")"
done
echo "distributed failure handling: ok"
