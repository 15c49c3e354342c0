#!/usr/bin/env bash
# ResNets end to end through the programs: the --summary table; a resumed resnet20 run whose final
# parameters and BatchNorm buffers are bit-identical to an uninterrupted run's; fine-tuning with a
# frozen backbone keeps every frozen BatchNorm's running statistics bit-identical. With MPIRUN given,
# instead: `mpirun -np 2 horo-train --sync-bn` with batch 16 per rank ends where one process with
# batch 32 does, and plain BatchNorm does not.
# Usage: resnet_cli.sh BIN_DIR WORK_DIR [MPIRUN]
set -uo pipefail
bin=$1 work=$2 mpirun=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
py=/usr/bin/python3

# Compares two checkpoints' tensors (tests/compare_checkpoints.py).
compare() { "$py" "$here/compare_checkpoints.py" "$@" || exit 1; }

"$bin/horo-data" synth -o train.h5 --count 640 --seed 1 >/dev/null
"$bin/horo-data" synth -o test.h5 --count 200 --seed 2 >/dev/null

if [ -z "$mpirun" ]; then
"$bin/horo-train" --model resnet18 --summary >summary.txt || fail "--summary"
grep -q "layer4.1.conv2" summary.txt && grep -q "parameters: 11,689,512" summary.txt && grep -q "3638.01 MFLOPs per sample" summary.txt ||
  { cat summary.txt; fail "--summary table"; }
"$bin/horo-train" --model resnet18 --summary --train train.h5 --num-classes 3 >summary-data.txt || fail "--summary for data"
grep -q "input \[1, 28, 28\]" summary-data.txt && grep -q "parameters: 11,171,779" summary-data.txt ||
  { cat summary-data.txt; fail "--summary with --train: the data's shape and the class count"; }

recipe=(--model resnet20 --optimizer sgd --lr 0.05 --momentum 0.9 --nesterov --weight-decay 5e-4 --schedule cosine
        --crop-padding 2 --hflip --train train.h5 --val test.h5)

# Resume: stop at step 14, resume from the step-10 checkpoint; the end (step 30) equals the uninterrupted run's.
"$bin/horo-train" "${recipe[@]}" --epochs 3 --batch 64 --max-steps 30 --checkpoint-dir a --checkpoint-every 10 --log-dir "" >/dev/null ||
  fail "uninterrupted run"
"$bin/horo-train" "${recipe[@]}" --epochs 3 --batch 64 --max-steps 14 --checkpoint-dir b --checkpoint-every 10 --log-dir "" >/dev/null ||
  fail "interrupted run"
"$bin/horo-train" --train train.h5 --val test.h5 --crop-padding 2 --hflip --epochs 3 --max-steps 30 --checkpoint-dir b \
  --checkpoint-every 10 --resume b/ckpt-10.h5 --log-dir "" >/dev/null || fail "resumed run"
compare a/ckpt-30.h5 b/ckpt-30.h5 same || fail "the resumed resnet20 run differs from the uninterrupted one"
echo "resume: the resumed resnet20 run ends bit-identical (parameters and BatchNorm buffers)"

# Fine-tuning with everything but the head frozen: BatchNorm statistics do not move.
"$bin/horo-train" --model resnet20 --init-from a/ckpt-30.h5 --freeze 'conv1.*' --freeze 'bn1.*' --freeze 'layer*' \
  --num-classes 3 --epochs 1 --batch 32 --train train.h5 --checkpoint-dir tuned --log-dir "" >tune.txt || fail "fine-tuning"
grep -q "BatchNorm layers keep their running statistics" tune.txt || { cat tune.txt; fail "freeze report"; }
compare a/ckpt-30.h5 tuned/ckpt-20.h5 same 'bn|downsample\.1|running|num_batches' || fail "frozen BatchNorm statistics moved"
echo "fine-tuning: frozen BatchNorm running statistics bit-identical"
fi

# 2 ranks x 16 with SyncBatchNorm against 1 process x 32 (the ranks' batches are the halves of its
# batches). Two plain SGD steps: a deep ResNet amplifies float rounding from there on (1 against 2
# threads of one process differ by ~1e-3 after three steps), while plain BatchNorm differs at once.
if [ -n "$mpirun" ]; then
  sync=(--model resnet20 --optimizer sgd --lr 0.01 --crop-padding 2 --hflip --train train.h5 --epochs 1 --max-steps 2
        --checkpoint-every 2 --log-dir "")
  "$mpirun" --oversubscribe --allow-run-as-root -np 2 "$bin/horo-train" "${sync[@]}" --sync-bn --batch 16 --checkpoint-dir sync \
    >sync.txt 2>&1 || { cat sync.txt; fail "mpirun --sync-bn"; }
  grep -q "sync-bn: 21 BatchNorm layers" sync.txt || { cat sync.txt; fail "sync-bn report"; }
  "$mpirun" --oversubscribe --allow-run-as-root -np 2 "$bin/horo-train" "${sync[@]}" --batch 16 --checkpoint-dir plain \
    >plain.txt 2>&1 || { cat plain.txt; fail "mpirun without --sync-bn"; }
  "$bin/horo-train" "${sync[@]}" --batch 32 --checkpoint-dir one >/dev/null || fail "single-process run"
  compare sync/ckpt-2.h5 one/ckpt-2.h5 5e-3 || fail "2 ranks x 16 with --sync-bn differ from 1 process x 32"
  compare plain/ckpt-2.h5 one/ckpt-2.h5 apart:5e-3 || fail "plain BatchNorm under mpirun matched the single process"
  echo "sync-bn: 2 ranks x batch 16 end where 1 process x batch 32 does; plain BatchNorm does not"
fi
echo "resnet cli: ok"
