#!/usr/bin/python3
"""Files written by h5py in horo's layout read back in horo, and files horo writes open in h5py.

Usage: h5py_interop.py HORO_DATA_BINARY WORK_DIR. Exits 77 (ctest: skipped) when h5py is missing.
"""
import os
import subprocess
import sys

try:
    import h5py
    import numpy as np
except ImportError:
    print("h5py or numpy not installed (Debian: python3-h5py python3-numpy): skipping")
    sys.exit(77)

horo_data, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng()

# 1. h5py writes, horo reads: images, labels, class names as a list of str, chunked and compressed.
images = rng.integers(0, 256, size=(50, 1, 7, 5), dtype=np.uint8)
labels = rng.integers(0, 3, size=50).astype(np.int64)
path = os.path.join(work, "from_h5py.h5")
with h5py.File(path, "w") as f:
    f.create_dataset("images", data=images, chunks=(8, 1, 7, 5), compression="gzip", shuffle=True)
    f.create_dataset("labels", data=labels)
    f.attrs["class_names"] = ["red", "green", "blue"]
    f.attrs["mean"] = [0.5]
    f.attrs["std"] = [0.25]
out = subprocess.run([horo_data, "inspect", path], capture_output=True, text=True, check=True).stdout
print(out)
assert "uint8 [50, 1, 7, 5]" in out, out
assert "class_names: red green blue" in out, out
histogram = " ".join(f"{c}:{int((labels == c).sum())}" for c in range(3))
assert f"label histogram: {histogram}" in out, (histogram, out)
assert f"min {images.min()} max {images.max()}" in out, out

# 2. horo writes, h5py reads: a synthetic set and a split of it.
synth = os.path.join(work, "synth.h5")
subprocess.run([horo_data, "synth", "-o", synth, "--count", "120", "--size", "16", "--seed", "4"], check=True,
               capture_output=True)
with h5py.File(synth, "r") as f:
    assert f["images"].dtype == np.uint8 and f["images"].shape == (120, 1, 16, 16), f["images"]
    assert f["labels"].dtype == np.int64 and f["labels"].shape == (120,), f["labels"]
    assert list(f.attrs["class_names"]) == ["triangle", "square", "circle"], f.attrs["class_names"]
    assert f["images"].chunks[0] >= 1 and f["images"].chunks[1:] == (1, 16, 16)
    assert set(np.unique(f["labels"][:])) <= {0, 1, 2}
    synth_images = f["images"][:]
train, val = os.path.join(work, "t.h5"), os.path.join(work, "v.h5")
subprocess.run([horo_data, "split", synth, "--train-out", train, "--val-out", val, "--val-fraction", "0.25",
                "--seed", "2"], check=True, capture_output=True)
with h5py.File(train, "r") as t, h5py.File(val, "r") as v:
    assert t["images"].shape[0] + v["images"].shape[0] == 120
    rows = {bytes(x.tobytes()) for x in np.concatenate([t["images"][:], v["images"][:]])}
    assert rows == {bytes(x.tobytes()) for x in synth_images}, "the split lost or changed samples"
print("h5py interop: ok")
