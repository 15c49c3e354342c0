#!/usr/bin/env python3
"""horo-export against two independent ONNX implementations.

W1 (cnn), W2 (mlp), ResNet-20 and ResNet-18 (on 3x32x32 colour images), and a model spec with every
other layer horo's exporter writes, are trained for a few steps with horo-train (so that BatchNorm's
running statistics are not the initial ones) and exported with horo-export. Each file must pass
onnx.checker (full check, with shape inference), declare a dynamic batch dimension, and, run by OpenCV's
DNN module on the very inputs horo-eval fed the model (horo-eval --save-inputs), give horo-eval's
logits within 1e-4 of their largest magnitude, at the evaluation's batch size and at two others.
Layers ONNX cannot express (adaptive pooling with unequal windows, BatchNorm without running
statistics) must be refused with the layer's name; so must a missing checkpoint.

Usage: onnx_export.py BIN_DIR WORK_DIR   (exit 77: onnx, cv2, h5py or numpy missing, or horo without ONNX)
"""
import os
import shutil
import subprocess
import sys

try:
    import cv2
    import h5py
    import numpy as np
    import onnx
except ImportError as e:  # the skip code ctest knows
    print(f"skipped: {e}")
    sys.exit(77)

bin_dir, work = os.path.abspath(sys.argv[1]), sys.argv[2]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
os.chdir(work)
rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
TOLERANCE = 1e-4
failures = []


def run(*args, expect_ok=True):
    p = subprocess.run([os.path.join(bin_dir, args[0]), *args[1:]], capture_output=True, text=True)
    if expect_ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        sys.exit(f"FAIL: {' '.join(args)} exited {p.returncode}")
    return p


def write_dataset(path, count, shape, classes):
    """Random images with a class-dependent brightness: something to learn, and statistics to record."""
    labels = rng.integers(0, classes, count)
    images = rng.random((count,) + shape) * 0.6 + labels[:, None, None, None] * (0.4 / classes)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=(images * 255).astype(np.uint8), chunks=(16,) + shape)
        f.create_dataset("labels", data=labels.astype(np.int64))


def check(name, checkpoint, test_file, extra_batches=(1, 7)):
    onnx_path = f"{name}.onnx"
    out = run("horo-export", "--checkpoint", checkpoint, "--onnx", onnx_path).stdout.strip()
    print(out)
    model = onnx.load(onnx_path)
    onnx.checker.check_model(model, full_check=True)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if dims[0].dim_param != "batch":
        failures.append(f"{name}: the input's batch dimension is {dims[0]}, not the symbol 'batch'")
    run("horo-eval", "--checkpoint", checkpoint, "--data", test_file, "--batch", "50", "--save-logits",
        f"{name}-logits.h5", "--save-inputs")
    with h5py.File(f"{name}-logits.h5") as f:
        inputs, logits = f["inputs"][:], f["logits"][:]
    net = cv2.dnn.readNetFromONNX(onnx_path)
    scale = float(np.abs(logits).max())
    worst = 0.0
    for batch in (len(inputs),) + extra_batches:
        start = int(rng.integers(0, len(inputs) - batch + 1))
        net.setInput(np.ascontiguousarray(inputs[start:start + batch]))
        out = net.forward()
        if out.shape != logits[start:start + batch].shape:
            failures.append(f"{name}: OpenCV gave {out.shape} for a batch of {batch}, horo {logits[start:start + batch].shape}")
            continue
        worst = max(worst, float(np.abs(out - logits[start:start + batch]).max()) / scale)
    verdict = "ok" if worst <= TOLERANCE else "FAIL"
    print(f"{name}: OpenCV DNN {cv2.__version__} against horo-eval: largest difference {worst:.2e} of the largest "
          f"logit ({scale:.3g}), batches {len(inputs)}, {', '.join(map(str, extra_batches))}: {verdict}")
    if worst > TOLERANCE:
        failures.append(f"{name}: OpenCV's logits differ from horo's by {worst:.2e} relative (> {TOLERANCE})")


def train(model, train_file, test_file, directory, *flags):
    run("horo-train", "--model", model, "--train", train_file, "--val", test_file, "--epochs", "1", "--max-steps", "3",
        "--batch", "16", "--checkpoint-dir", directory, "--log-dir", "", *flags)
    return os.path.join(directory, "ckpt-3.h5")


probe = run("horo-export", "--checkpoint", "missing.h5", "--onnx", "missing.onnx", expect_ok=False)
if "without ONNX support" in probe.stderr:
    print("skipped: " + probe.stderr.strip())
    sys.exit(77)
if probe.returncode == 0 or "missing.h5" not in probe.stderr or os.path.exists("missing.onnx"):
    failures.append(f"a missing checkpoint: exit {probe.returncode}, {probe.stderr.strip()!r}")

write_dataset("grey-train.h5", 96, (1, 28, 28), 10)
write_dataset("grey-test.h5", 100, (1, 28, 28), 10)
write_dataset("rgb-train.h5", 64, (3, 32, 32), 5)
write_dataset("rgb-test.h5", 50, (3, 32, 32), 5)

check("w1", train("cnn", "grey-train.h5", "grey-test.h5", "w1"), "grey-test.h5")
check("w2", train("mlp", "grey-train.h5", "grey-test.h5", "w2"), "grey-test.h5")
check("resnet20", train("resnet20", "rgb-train.h5", "rgb-test.h5", "r20", "--hflip"), "rgb-test.h5")
check("resnet18", train("resnet18", "rgb-train.h5", "rgb-test.h5", "r18"), "rgb-test.h5", extra_batches=(3,))

# Every other layer: LeakyReLU, Sigmoid, Tanh, average and adaptive pooling, BatchNorm1d, Concat,
# Flatten from dimension 2, Dropout, Identity, and BatchNorm without affine parameters.
layers_spec = """
name: "every_layer"
input_shape: [3, 32, 32]
layers { name: "conv" conv2d { in: 3 out: 8 kernel: 3 padding: 1 stride: 2 } }
layers { name: "bn" batch_norm2d { affine: false } }
layers { name: "leaky" leaky_relu { negative_slope: 0.2 } }
layers { name: "left" conv2d { in: 8 out: 4 kernel: 1 bias: false } inputs: "leaky" }
layers { name: "left_act" sigmoid {} }
layers { name: "right" avg_pool2d { kernel: 3 stride: 1 padding: 1 } inputs: "leaky" }
layers { name: "right_act" tanh {} }
layers { name: "join" concat { dim: 1 } inputs: "left_act" inputs: "right_act" }
layers { name: "same" identity {} }
layers { name: "pool" adaptive_avg_pool2d { output_size: 4 } }
layers { name: "rows" flatten { start_dim: 2 } }
layers { name: "all" flatten {} }
layers { name: "fc1" linear { in: 192 out: 32 } }
layers { name: "bn1d" batch_norm1d {} }
layers { name: "drop" dropout { p: 0.3 } }
layers { name: "relu" relu {} }
layers { name: "fc2" linear { in: 32 out: 5 } }
"""
with open("every_layer.prototxt", "w") as f:
    f.write(layers_spec)
check("every_layer", train("every_layer.prototxt", "rgb-train.h5", "rgb-test.h5", "every"), "rgb-test.h5")

# GELU is written in its erf form (ONNX has a Gelu operator only from opset 20).
with open("gelu.prototxt", "w") as f:
    f.write('name: "gelu" input_shape: [1, 28, 28]\n'
            'layers { flatten {} } layers { linear { in: 784 out: 16 } } layers { gelu {} } layers { linear { in: 16 out: 10 } }\n')
check("gelu", train("gelu.prototxt", "grey-train.h5", "grey-test.h5", "gelu"), "grey-test.h5")
if "Erf" not in [n.op_type for n in onnx.load("gelu.onnx").graph.node]:
    failures.append("gelu: no Erf node in the exported GELU")

# Refused by name, and nothing written.
refusals = {
    "unequal_pool": ('name: "unequal_pool" input_shape: [1, 28, 28]\n'
                     'layers { conv2d { in: 1 out: 4 kernel: 3 } } layers { name: "odd_pool" adaptive_avg_pool2d { output_size: 3 } }\n'
                     'layers { flatten {} } layers { linear { in: 36 out: 10 } }\n', "odd_pool"),
    "batch_stats": ('name: "batch_stats" input_shape: [1, 28, 28]\n'
                    'layers { conv2d { in: 1 out: 4 kernel: 3 } } layers { name: "live_bn" batch_norm2d { track_running_stats: false } }\n'
                    'layers { flatten {} } layers { linear { in: 2704 out: 10 } }\n', "live_bn"),
}
for name, (spec, layer) in refusals.items():
    with open(f"{name}.prototxt", "w") as f:
        f.write(spec)
    ckpt = train(f"{name}.prototxt", "grey-train.h5", "grey-test.h5", name)
    p = run("horo-export", "--checkpoint", ckpt, "--onnx", f"{name}.onnx", expect_ok=False)
    if p.returncode == 0 or layer not in p.stderr or os.path.exists(f"{name}.onnx"):
        failures.append(f"{name}: expected a refusal naming '{layer}', got exit {p.returncode}: {p.stderr.strip()!r}")
    else:
        print(f"{name}: refused: {p.stderr.strip()}")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print("onnx export: all checks passed")
