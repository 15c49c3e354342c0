#!/usr/bin/env bash
# horo-run: a rank SIGKILLed mid-epoch in a 2-rank CPU run (checkpoints every 5 steps); the job restarts
# itself from the newest checkpoint and its final checkpoint equals the uninterrupted run's bit for bit.
# Then: a job that keeps failing gives up after --max-restarts, with the job's exit status.
# Usage: auto_restart.sh MPIEXEC BIN_DIR WORK_DIR TOOLS_DIR
set -uo pipefail
mpirun=$1 bin=$2 work=$3 tools=$4
here=$(dirname "$(readlink -f "$0")")
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
run=("$mpirun" --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np 2)
"$bin/horo-data" synth -o train.h5 --count 1280 --seed 1 >/dev/null || fail "horo-data synth"
common=(--model cnn --train train.h5 --threads 1 --epochs 3 --checkpoint-every 5)  # 10 steps an epoch, 30 in all

"${run[@]}" "$bin/horo-train" "${common[@]}" --checkpoint-dir full --log-dir full-logs >full.log 2>&1 || fail "uninterrupted run"

/usr/bin/python3 "$tools/horo-run" --max-restarts 2 --backoff 1 --log restarts.log -- \
  "${run[@]}" "$bin/horo-train" "${common[@]}" --checkpoint-dir killed --log-dir killed-logs >killed.log 2>&1 &
job=$!
# Kill a random rank once the run has passed step 12 (mid-epoch 2, after the checkpoint of step 10).
victim=""
for _ in $(seq 2000); do
  last=$(awk -F, '$1 == "step" {s = $3} END {print s + 0}' killed-logs/metrics.csv 2>/dev/null || echo 0)
  if [ "${last:-0}" -ge 12 ]; then
    pids=()
    for pid in $(pgrep -x horo-train); do  # this job's ranks (other tests may run horo-train meanwhile)
      tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--checkpoint-dir killed" && pids+=("$pid")
    done
    [ ${#pids[@]} -gt 0 ] && { victim=${pids[$((RANDOM % ${#pids[@]}))]}; break; }
  fi
  sleep 0.02
done
[ -n "$victim" ] || { cat killed.log; fail "the run never reached step 12"; }
kill -9 "$victim"
wait "$job"
code=$?
cat restarts.log
[ $code -eq 0 ] || { tail -20 killed.log; fail "horo-run exit code $code"; }
grep -q "restart 1 of 2" restarts.log || fail "no restart logged"
grep -q "finished after 1 restart" restarts.log || fail "no finish logged"
/usr/bin/python3 "$here/compare_checkpoints.py" full/ckpt-30.h5 killed/ckpt-30.h5 same || fail "the restarted run ended elsewhere"
HORO_COMPARE_OPTIMIZER=1 /usr/bin/python3 "$here/compare_checkpoints.py" full/ckpt-30.h5 killed/ckpt-30.h5 same ||
  fail "the restarted run's optimizer state differs"

# A job that always fails: two restarts, then horo-run gives up with the job's status.
/usr/bin/python3 "$tools/horo-run" --max-restarts 2 --backoff 0 -- "$bin/horo-train" --model cnn --train missing.h5 \
  --checkpoint-dir broken >broken.log 2>&1
code=$?
[ $code -eq 1 ] || { cat broken.log; fail "a failing job: horo-run exit code $code"; }
grep -q "2 restarts used of 2: giving up" broken.log || { cat broken.log; fail "no give-up message"; }
# Refusals: no checkpoint directory, or a --resume of its own.
/usr/bin/python3 "$tools/horo-run" -- "$bin/horo-train" --model cnn >/dev/null 2>&1 && fail "accepted a command without --checkpoint-dir"
echo PASS
