#!/usr/bin/env bash
# Installs what is missing, builds horo and trains W1 (the reference CNN) on Fashion-MNIST:
#   scripts/train.sh                         10 epochs, batch 64, Adam 1e-3
#   scripts/train.sh --model mlp --epochs 3  any horo-train flags pass through
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=${HORO_BUILD_JOBS:-$(nproc)}
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs" --target horo-train
if [ $# -eq 0 ]; then set -- --model cnn --epochs 10 --batch 64 --lr 1e-3; fi
exec build/bin/horo-train "$@"
