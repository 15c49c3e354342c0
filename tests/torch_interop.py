#!/usr/bin/python3
"""A horo checkpoint loads into PyTorch with tools/horo_to_torch.py and gives the same outputs.

Usage: torch_interop.py BIN_DIR TOOLS_DIR WORK_DIR. Exits 77 (skipped) without torch or h5py.
"""
import os
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
    import torch
except ImportError:
    print("python3-torch or python3-h5py not installed: skipping")
    sys.exit(77)

bin_dir, tools, work = sys.argv[1:4]
sys.path.insert(0, tools)
import horo_to_torch  # noqa: E402

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
run = lambda *args: subprocess.run(args, check=True, capture_output=True, text=True).stdout
run(f"{bin_dir}/horo-data", "synth", "-o", f"{work}/train.h5", "--count", "640", "--seed", "1")
run(f"{bin_dir}/horo-data", "synth", "-o", f"{work}/test.h5", "--count", "200", "--seed", "2")
run(f"{bin_dir}/horo-train", "--model", "cnn", "--epochs", "1", "--train", f"{work}/train.h5",
    "--checkpoint-dir", f"{work}/ck", "--log-dir", "")
checkpoint = f"{work}/ck/ckpt-10.h5"
run(f"{bin_dir}/horo-eval", "--checkpoint", checkpoint, "--data", f"{work}/test.h5", "--save-logits", f"{work}/logits.h5")

model = horo_to_torch.build_model(horo_to_torch.model_spec(checkpoint))
model.load_state_dict(horo_to_torch.load_state_dict(checkpoint), strict=True)
model.eval()
with h5py.File(f"{work}/test.h5", "r") as f:
    images = f["images"][:].astype(np.float32) / 255.0
with h5py.File(f"{work}/train.h5", "r") as f:  # horo-eval normalises as training did: the training file's statistics
    mean, std = f.attrs["mean"][0], f.attrs["std"][0]
with torch.no_grad():
    expected = model(torch.from_numpy((images - mean) / std)).numpy()
with h5py.File(f"{work}/logits.h5", "r") as f:
    got = f["logits"][:]
error = float(np.max(np.abs(expected - got)))
print(f"max |horo - torch| over {got.shape} logits: {error:.2e}")
assert error < 1e-4, error
print("torch interop: ok")
