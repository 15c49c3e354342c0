#!/usr/bin/env bash
# ZeRO-1 from horo-train under mpirun -np 2:
#   1. --zero 1 writes the same checkpoint (parameters and optimizer state, 1e-6) as --zero 0, for Adam
#      and for SGD with Nesterov momentum, and reports half the optimizer state on rank 0;
#   2. checkpoints cross between the modes: a --zero 1 checkpoint resumed with --zero 0 and a --zero 0
#      checkpoint resumed with --zero 1 both end where the uninterrupted run ends.
# Usage: zero_cli.sh BIN_DIR WORK_DIR MPIEXEC
set -uo pipefail
bin=$1 work=$2
mpirun=("$3" --oversubscribe --allow-run-as-root --mca mpi_yield_when_idle 1 -np 2)
here=$(dirname "$(readlink -f "$0")")
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
compare() { HORO_COMPARE_OPTIMIZER=1 /usr/bin/python3 "$here/compare_checkpoints.py" "$1" "$2" 1e-6 || fail "$1 and $2 differ"; }
"$bin/horo-data" synth -o train.h5 --count 1280 --seed 1 >/dev/null || fail "horo-data synth"
common=(--model cnn --train train.h5 --threads 1 --epochs 2 --log-dir "")  # 10 batches of 64 per rank an epoch
run() {  # name, then horo-train flags
  local name=$1; shift
  "${mpirun[@]}" "$bin/horo-train" "${common[@]}" "$@" >"$name.log" 2>&1 || { cat "$name.log"; fail "$name run"; }
}

# 1. The same run replicated and sharded, two optimizers; each stops mid-epoch at step 14.
run plain --max-steps 14 --checkpoint-dir plain
run zero --max-steps 14 --checkpoint-dir zero --zero 1
compare plain/ckpt-14.h5 zero/ckpt-14.h5
run plain-sgd --max-steps 14 --checkpoint-dir plain-sgd --optimizer sgd --lr 0.05 --nesterov
run zero-sgd --max-steps 14 --checkpoint-dir zero-sgd --optimizer sgd --lr 0.05 --nesterov --zero 1
compare plain-sgd/ckpt-14.h5 zero-sgd/ckpt-14.h5
whole=$(sed -n 's/^optimizer state: \([0-9.]*\) MiB on every rank$/\1/p' plain.log)
read -r own total < <(sed -n 's/^optimizer state: \([0-9.]*\) MiB on rank 0, sharded over 2 ranks (ZeRO-1; \([0-9.]*\) MiB in all)$/\1 \2/p' zero.log)
[ -n "$whole" ] && [ -n "${own:-}" ] || { grep "optimizer state" plain.log zero.log; fail "no optimizer-state line"; }
awk -v w="$whole" -v o="$own" -v t="$total" 'BEGIN { exit !(o <= w / 2 + 0.01 && o >= w / 2 - 0.01 && t >= w - 0.01 && t <= w + 0.01) }' ||
  fail "rank 0 holds $own MiB of optimizer state (all ranks: $total MiB) where unsharded every rank holds $whole MiB"
echo "optimizer state: $whole MiB per rank unsharded, $own MiB on rank 0 with --zero 1"

# 2. Resumes across modes, against the uninterrupted run to step 20.
run full --max-steps 20 --checkpoint-dir full
cp -r zero zero-then-plain && run zero-then-plain --resume latest --checkpoint-dir zero-then-plain --max-steps 20
cp -r plain plain-then-zero && run plain-then-zero --resume latest --checkpoint-dir plain-then-zero --max-steps 20 --zero 1
compare full/ckpt-20.h5 zero-then-plain/ckpt-20.h5
compare full/ckpt-20.h5 plain-then-zero/ckpt-20.h5
echo "PASS"
