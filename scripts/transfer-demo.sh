#!/usr/bin/env bash
# Transfer learning on Fashion-MNIST: pretrain W1 on the six clothing classes (0 1 2 3 4 6), then
# train a new 4-class head for footwear and bags (5 7 8 9) from only 100 images per class with the
# convolutional features frozen, beside the same model trained from scratch on those 400 images.
# Both are evaluated on all 4,000 test images of the four classes.
# Usage: scripts/transfer-demo.sh [WORK_DIR]    (default build/transfer-demo; about 3 minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-build/transfer-demo}
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)" --target horo-train horo-data horo-eval >/dev/null
bin=build/bin fm=/usr/share/datasets/fashion-mnist
mkdir -p "$work"
rm -rf "$work"/pretrained "$work"/finetuned "$work"/scratch "$work"/logs-*  # a fresh run each time
$bin/horo-data convert --from idx --images $fm/train-images-idx3-ubyte.gz --labels $fm/train-labels-idx1-ubyte.gz \
  -o "$work/train.h5" --class-preset fashion-mnist >/dev/null
$bin/horo-data convert --from idx --images $fm/t10k-images-idx3-ubyte.gz --labels $fm/t10k-labels-idx1-ubyte.gz \
  -o "$work/test.h5" --class-preset fashion-mnist >/dev/null
split() { $bin/horo-data split "$1" --train-out "$2" --val-fraction 0 --classes "$3" --relabel "${@:4}" >/dev/null; }
split "$work/train.h5" "$work/clothing-train.h5" 0,1,2,3,4,6
split "$work/test.h5" "$work/clothing-test.h5" 0,1,2,3,4,6
split "$work/train.h5" "$work/footwear-100.h5" 5,7,8,9 --limit-per-class 100 --seed 1
split "$work/test.h5" "$work/footwear-test.h5" 5,7,8,9

echo "== pretraining W1 on the six clothing classes (36,000 images, 3 epochs)"
$bin/horo-train --model cnn --epochs 3 --train "$work/clothing-train.h5" --val "$work/clothing-test.h5" \
  --checkpoint-dir "$work/pretrained" --keep 1 --log-dir "$work/logs-pretrain" | tail -1
pretrained=$(ls "$work"/pretrained/ckpt-*.h5 | tail -1)

echo "== new head on 400 footwear/bag images, features frozen (30 epochs, batch 32)"
$bin/horo-train --model cnn --init-from "$pretrained" --freeze 'features.*' --num-classes 4 --epochs 30 --batch 32 \
  --train "$work/footwear-100.h5" --val "$work/footwear-test.h5" --checkpoint-dir "$work/finetuned" --keep 1 \
  --log-dir "$work/logs-finetune" | grep -E "^(init|froze|epochs=)"
echo "== the same model from scratch on the same 400 images (30 epochs, batch 32)"
$bin/horo-train --model cnn --num-classes 4 --epochs 30 --batch 32 --train "$work/footwear-100.h5" \
  --val "$work/footwear-test.h5" --checkpoint-dir "$work/scratch" --keep 1 --log-dir "$work/logs-scratch" | tail -1

finetuned=$($bin/horo-eval --checkpoint "$(ls "$work"/finetuned/ckpt-*.h5 | tail -1)" --data "$work/footwear-test.h5" --json)
scratch=$($bin/horo-eval --checkpoint "$(ls "$work"/scratch/ckpt-*.h5 | tail -1)" --data "$work/footwear-test.h5" --json)
acc() { sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p'; }
echo "transfer: frozen pretrained features + new head: accuracy $(echo "$finetuned" | acc) on 4,000 test images"
echo "transfer: from scratch on the same 400 images:   accuracy $(echo "$scratch" | acc)"
