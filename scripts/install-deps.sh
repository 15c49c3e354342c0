#!/usr/bin/env bash
# Installs the Debian 12 packages horo builds, tests and trains with. Idempotent: packages already
# present are skipped, so it costs a second when nothing is missing.
#   scripts/install-deps.sh            build, test and training dependencies (python3-torch and
#                                      python3-torchvision for the PyTorch parity tests)
#   scripts/install-deps.sh --peers    also the benchmark peers (libtorch-dev)
#   scripts/install-deps.sh --cross    also the aarch64 cross tools for the Arm kernel check
#                                      (g++-aarch64-linux-gnu, qemu-user-static, libhwy-dev:arm64)
#   scripts/install-deps.sh --sanitizers  also clang with its OpenMP, libFuzzer and llvm-symbolizer
#                                      (scripts/sanitize.sh)
set -euo pipefail
packages=(build-essential cmake pkg-config zlib1g-dev procps
  libeigen3-dev libhwy-dev libopenblas-openmp-dev libhdf5-dev libjpeg-dev libpng-dev libprotobuf-dev protobuf-compiler libonnx-dev
  libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev
  dataset-fashion-mnist python3-h5py python3-numpy python3-pil python3-torch python3-torchvision python3-optuna
  python3-onnx python3-opencv)
for arg in "$@"; do
  case "$arg" in
    --peers) packages+=(libtorch-dev libopenblas0-openmp) ;;  # OpenBLAS, so libtorch runs at its best
    --cross) packages+=(g++-aarch64-linux-gnu qemu-user-static libhwy-dev:arm64) ;;
    --sanitizers) packages+=(clang-14 libomp-14-dev libfuzzer-14-dev llvm-14) ;;
    *) echo "install-deps.sh: unknown option '$arg' (expected --peers, --cross or --sanitizers)" >&2; exit 2 ;;
  esac
done
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
echo "install-deps.sh: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
# Arm packages (libhwy-dev:arm64) come from Debian's multiarch archive.
if printf '%s\n' "${missing[@]}" | grep -q ':arm64$' && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  "${sudo_cmd[@]}" dpkg --add-architecture arm64
fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
