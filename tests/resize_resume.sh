#!/usr/bin/env bash
# Resize on resume: a checkpoint written by 4 ranks resumes on 2 with the same global batch (horo-train
# picks the per-rank batch) and ends where the 4-rank run ends, plain and with --zero 1; on 3 ranks,
# where 64 samples do not split evenly, the run goes on and says what changes.
# Usage: resize_resume.sh MPIEXEC BIN_DIR WORK_DIR
set -uo pipefail
mpirun=$1 bin=$2 work=$3
here=$(dirname "$(readlink -f "$0")")
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
run() {  # ranks name flags...
  local np=$1 name=$2; shift 2
  "$mpirun" --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np "$np" "$bin/horo-train" --model mlp \
    --train train.h5 --threads 1 --epochs 2 --log-dir "" "$@" >"$name.log" 2>&1 || { cat "$name.log"; fail "$name run"; }
}
compare() { HORO_COMPARE_OPTIMIZER=1 /usr/bin/python3 "$here/compare_checkpoints.py" "$1" "$2" "$3" || fail "$1 and $2 differ"; }
"$bin/horo-data" synth -o train.h5 --count 1280 --seed 1 >/dev/null || fail "horo-data synth"

# 4 ranks x 16 = 64 a step, 20 steps an epoch; the checkpoint of step 7 is mid-epoch.
run 4 four --batch 16 --max-steps 14 --checkpoint-every 7 --checkpoint-dir four
for zero in 0 1; do
  mkdir "two$zero" && cp four/ckpt-7.h5 "two$zero/"
  run 2 "two$zero" --resume latest --checkpoint-dir "two$zero" --max-steps 14 --zero "$zero"
  grep -q "resume: the checkpoint was written by 4 ranks x batch 16; on 2 ranks x batch 32 the global batch (64) is the same" \
    "two$zero.log" || { cat "two$zero.log"; fail "no resize message"; }
  compare four/ckpt-14.h5 "two$zero/ckpt-14.h5" 1e-6
done

# 3 ranks: 64 does not split evenly; the per-rank batch stays 16 and the message says what changes.
mkdir three && cp four/ckpt-7.h5 three/
run 3 three --resume latest --checkpoint-dir three --max-steps 12
grep -q "resume: the global batch changes from 64 (4 ranks x batch 16) to 48 (3 ranks x batch 16): 64 samples do not split evenly over 3 ranks" three.log ||
  { cat three.log; fail "no message for a changed global batch"; }
grep -q "epoch 1 continues at batch 9 (16 samples of the interrupted batch are seen again)" three.log || { cat three.log; fail "position not converted"; }
[ -f three/ckpt-12.h5 ] || fail "the 3-rank run wrote no ckpt-12.h5"
echo PASS
