#!/usr/bin/env bash
# A run never loses its final state, whatever ends it:
#   1. --max-steps in the middle of an epoch writes a checkpoint of the last step;
#   2. SIGTERM mid-epoch: the current step finishes, a checkpoint and the logs are written, the exit
#      code is 143, and --resume latest reproduces the uninterrupted run's losses step for step;
#      SIGINT likewise (exit 130);
#   3. SIGKILL at random moments while checkpoints are being written: every checkpoint left loads, and
#      --resume latest continues;
#   4. a full disk (a 4 MiB tmpfs, or a file-size limit where mounting is not allowed): a clear error,
#      exit 1 (no crash), the earlier checkpoint intact and loadable, no temporary left;
#   5. with MPIRUN: SIGTERM delivered to rank 1 alone stops both ranks after the same step, rank 0
#      writes the checkpoint, and resuming under mpirun reproduces the uninterrupted run.
# Usage: fault_injection.sh BIN_DIR WORK_DIR [MPIRUN]
set -uo pipefail
bin=$1 work=$2 mpirun=${3:-}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
"$bin/horo-data" synth -o train.h5 --count 1280 --seed 1 >/dev/null || fail "horo-data synth"
common=(--model cnn --train train.h5 --threads 1)  # 20 batches of 64 an epoch

# Waits until DIR/metrics.csv records step >= N (or the process PID ends).
wait_for_step() {  # dir n pid
  for _ in $(seq 3000); do
    local last
    last=$(awk -F, '$1 == "step" {s = $3} END {print s + 0}' "$1/metrics.csv" 2>/dev/null || echo 0)
    [ "${last:-0}" -ge "$2" ] && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.01
  done
  return 1
}
losses_after() {  # metrics.csv step -> "step loss" lines after that step
  awk -F, -v s="$2" '$1 == "step" && $3 > s {print $3, $4}' "$1"
}

# 1. --max-steps mid-epoch.
"$bin/horo-train" "${common[@]}" --epochs 3 --max-steps 27 --checkpoint-dir max --log-dir "" >/dev/null || fail "max-steps run"
[ -f max/ckpt-27.h5 ] || { ls max; fail "--max-steps 27 (mid-epoch) wrote no ckpt-27.h5"; }
"$bin/horo-train" "${common[@]}" --epochs 3 --max-steps 27 --checkpoint-every 10 --checkpoint-dir max10 --log-dir "" >/dev/null ||
  fail "max-steps run with --checkpoint-every 10"
[ -f max10/ckpt-27.h5 ] || { ls max10; fail "--max-steps 27 with --checkpoint-every 10 wrote no ckpt-27.h5"; }
echo "max-steps: the last step (27, mid-epoch) is checkpointed"

# 2. SIGTERM and SIGINT mid-epoch, then resume.
total=100
"$bin/horo-train" "${common[@]}" --epochs 20 --max-steps $total --checkpoint-dir whole --log-dir whole/logs >/dev/null ||
  fail "uninterrupted run"
for signal in TERM INT; do
  dir=stop-$signal
  "$bin/horo-train" "${common[@]}" --epochs 20 --max-steps $total --checkpoint-dir $dir --log-dir $dir/logs \
    >$dir.out 2>$dir.err &
  pid=$!
  wait_for_step $dir/logs 12 $pid || fail "SIG$signal: the run ended before step 12"
  kill -$signal $pid
  wait $pid
  code=$?
  expected=$([ $signal = TERM ] && echo 143 || echo 130)
  [ $code -eq "$expected" ] || { cat $dir.err; fail "SIG$signal: exit code $code, expected $expected"; }
  grep -q "stopped by SIG$signal after step" $dir.err || { cat $dir.err; fail "SIG$signal: no message saying so"; }
  stopped=$(sed -n "s/.*stopped by SIG$signal after step \([0-9]*\).*/\1/p" $dir.err)
  [ -f $dir/ckpt-$stopped.h5 ] || { ls $dir; fail "SIG$signal: no checkpoint of step $stopped"; }
  [ "$stopped" -lt $total ] || fail "SIG$signal: arrived after the run's end (step $stopped)"
  last_logged=$(awk -F, '$1 == "step" {s = $3} END {print s}' $dir/logs/metrics.csv)
  [ "$last_logged" = "$stopped" ] || fail "SIG$signal: the log ends at step $last_logged, the checkpoint at $stopped"
  "$bin/horo-train" "${common[@]}" --epochs 20 --max-steps $total --checkpoint-dir $dir --resume latest --log-dir $dir/resumed \
    >/dev/null || fail "SIG$signal: --resume latest"
  diff <(losses_after whole/logs/metrics.csv "$stopped") <(losses_after $dir/resumed/metrics.csv 0) >/dev/null ||
    fail "SIG$signal: the resumed losses differ from the uninterrupted run's"
  echo "SIG$signal at step $stopped: exit $code, checkpoint written, resumed losses equal the uninterrupted run's (steps $((stopped + 1))-$total)"
done

# 3. SIGKILL while checkpoints are being written (one every step), at five random moments once the
#    run is writing them.
checkpoints_in() { ls "$1" 2>/dev/null | grep -c '^ckpt-[0-9]*\.h5$'; }
for round in 1 2 3 4 5; do
  resume=(); [ $round -gt 1 ] && resume=(--resume latest)
  before=$(ls killed 2>/dev/null | sed -n 's/^ckpt-\([0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
  "$bin/horo-train" "${common[@]}" --epochs 50 --checkpoint-dir killed --checkpoint-every 1 --keep 2 "${resume[@]}" \
    --log-dir "" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 3000); do  # until this run has saved a step of its own
    latest=$(ls killed 2>/dev/null | sed -n 's/^ckpt-\([0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
    [ -n "$latest" ] && [ "$latest" != "$before" ] && break
    kill -0 $pid 2>/dev/null || fail "SIGKILL round $round: the run ended before saving"
    sleep 0.01
  done
  sleep "0.$((RANDOM % 10))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  [ "$(checkpoints_in killed)" -ge 1 ] || fail "SIGKILL round $round: no checkpoint left"
  for ck in killed/ckpt-*.h5; do
    "$bin/horo-eval" --checkpoint "$ck" --data train.h5 >/dev/null 2>eval.err || { cat eval.err; fail "SIGKILL round $round: $ck does not load"; }
  done
done
last=$(ls killed | sed -n 's/^ckpt-\([0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
"$bin/horo-train" "${common[@]}" --epochs 50 --max-steps $((last + 3)) \
  --checkpoint-dir killed --checkpoint-every 1 --keep 2 --resume latest --log-dir "" >/dev/null || fail "resume after SIGKILLs"
ls killed | grep -q '\.tmp$' && fail "a temporary checkpoint outlived the next save"
echo "SIGKILL during checkpoint writes (5 rounds, the last at step $last): every checkpoint left loads, --resume latest continues"

# 4. A full disk.
mkdir -p disk
full_disk_run() {
  "$bin/horo-train" "${common[@]}" --epochs 3 --checkpoint-dir disk/ck --checkpoint-every 5 --log-dir "" >/dev/null 2>disk.err
}
if mount -t tmpfs -o size=4m horo-test-disk disk 2>/dev/null; then
  how="a 4 MiB tmpfs"
  full_disk_run; code=$?
  cp -r disk/ck full-ck; umount disk
else
  # A checkpoint of this model is 2.6 MiB: with a 2 MiB file-size limit, the save after ckpt-5.h5 fails.
  how="a 2 MiB file-size limit (mounting a tmpfs is not allowed here)"
  "$bin/horo-train" "${common[@]}" --epochs 3 --max-steps 5 --checkpoint-dir disk/ck --log-dir "" >/dev/null || fail "ckpt-5 run"
  (trap '' XFSZ; ulimit -f 2048; exec "$bin/horo-train" "${common[@]}" --epochs 3 --checkpoint-dir disk/ck --checkpoint-every 5 \
     --resume latest --log-dir "" >/dev/null 2>disk.err); code=$?
  cp -r disk/ck full-ck
fi
[ $code -eq 1 ] || { cat disk.err; fail "full disk: exit code $code, expected 1"; }
grep -q "disk full" disk.err && grep -q "earlier checkpoints are untouched" disk.err || { cat disk.err; fail "full disk: unclear error"; }
ls full-ck | grep -q '\.tmp$' && fail "full disk: a temporary file was left"
[ -f full-ck/ckpt-5.h5 ] || fail "full disk: the earlier checkpoint is gone"
"$bin/horo-eval" --checkpoint full-ck/ckpt-5.h5 --data train.h5 >/dev/null || fail "full disk: the earlier checkpoint does not load"
echo "full disk ($how): exit 1 with '$(head -c 160 disk.err)...'; ckpt-5.h5 intact and loadable"

# 5. Under mpirun: SIGTERM to one rank stops both at the same step.
if [ -n "$mpirun" ]; then
  run=("$mpirun" --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np 2)
  "${run[@]}" "$bin/horo-train" "${common[@]}" --epochs 20 --max-steps $total --checkpoint-dir mpi-whole --log-dir mpi-whole/logs \
    >/dev/null 2>&1 || fail "mpirun: uninterrupted run"
  "${run[@]}" "$bin/horo-train" "${common[@]}" --epochs 20 --max-steps $total --checkpoint-dir mpi-stop --log-dir mpi-stop/logs \
    >mpi-stop.out 2>mpi-stop.err &
  launcher=$!
  wait_for_step mpi-stop/logs 10 $launcher || fail "mpirun: the run ended before step 10"
  victim=""
  for pid in $(pgrep -f "$bin/horo-train"); do
    tr '\0' '\n' </proc/$pid/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$pid
  done
  [ -n "$victim" ] || fail "mpirun: rank 1 not found"
  kill -TERM "$victim"
  timeout 120 tail --pid=$launcher -f /dev/null
  wait $launcher; code=$?
  [ $code -ne 0 ] || fail "mpirun: exit code 0 after SIGTERM"
  grep -q "stopped by SIGTERM on 1 of 2 ranks after step" mpi-stop.err || { cat mpi-stop.err; fail "mpirun: no message naming the stop"; }
  stopped=$(sed -n 's/.*stopped by SIGTERM on 1 of 2 ranks after step \([0-9]*\).*/\1/p' mpi-stop.err)
  [ -f mpi-stop/ckpt-$stopped.h5 ] || { ls mpi-stop; fail "mpirun: no checkpoint of step $stopped"; }
  "${run[@]}" "$bin/horo-train" "${common[@]}" --epochs 20 --max-steps $total --checkpoint-dir mpi-stop --resume latest \
    --log-dir mpi-stop/resumed >/dev/null 2>&1 || fail "mpirun: --resume latest"
  diff <(losses_after mpi-whole/logs/metrics.csv "$stopped") <(losses_after mpi-stop/resumed/metrics.csv 0) >/dev/null ||
    fail "mpirun: the resumed losses differ from the uninterrupted run's"
  echo "mpirun -np 2, SIGTERM to rank 1 at step $stopped: both ranks stopped there (exit $code); resumed losses equal the uninterrupted run's"
fi
echo "fault injection: ok"
