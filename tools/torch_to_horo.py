#!/usr/bin/python3
"""Write a PyTorch state dict as a horo checkpoint (the reverse of tools/horo_to_torch.py).

    python3 tools/torch_to_horo.py resnet18.pt ckpt.h5 --model resnet18
    python3 tools/torch_to_horo.py weights.pt ckpt.h5 --spec net.prototxt

STATE_DICT is a file written by torch.save(model.state_dict()) (torchvision's ResNets included). The
model specification comes from a built-in (models/NAME.prototxt beside this script's folder), whose
first convolution's input channels and last linear layer's outputs are set from the weights, and
whose input_shape --input-shape overrides; or from --spec as written. The checkpoint then works
wherever horo takes one: `horo-eval --checkpoint`, `horo-train --init-from` (fine-tuning) or
`--resume`. Names and layouts are PyTorch's, so nothing is transposed; running_mean, running_var
and num_batches_tracked go to /buffers, everything else to /parameters. Needs python3-h5py and
python3-torch.
"""
import argparse
import os
import re

import h5py
import numpy as np

BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def builtin_spec(name, state, input_shape=None):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", name + ".prototxt")
    with open(path) as f:
        text = f.read()
    convs = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 4]
    linears = [k for k, v in state.items() if k.endswith(".weight") and v.dim() == 2]
    channels = int(state[convs[0]].shape[1]) if convs else None
    classes = int(state[linears[-1]].shape[0]) if linears else None
    shape = re.search(r"input_shape: \[([^\]]*)\]", text)
    dims = [int(d) for d in shape.group(1).split(",")]
    if input_shape:
        dims = list(input_shape)
    elif channels is not None:
        dims[0] = channels
    text = text.replace(shape.group(0), "input_shape: [" + ", ".join(str(d) for d in dims) + "]", 1)
    if channels is not None:
        text = re.sub(r"conv2d \{ in: \d+", f"conv2d {{ in: {dims[0]}", text, count=1)
    if classes is not None:
        last = list(re.finditer(r"linear \{ in: (\d+) out: \d+", text))[-1]
        text = text[:last.start()] + f"linear {{ in: {last.group(1)} out: {classes}" + text[last.end():]
    return text


def write_checkpoint(state, spec_text, path):
    strings = h5py.string_dtype()
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs.create("format_version", np.int64(1))
        f.attrs.create("model_spec", np.array([spec_text], dtype=object), dtype=strings)
        f.attrs.create("train_config", np.array([""], dtype=object), dtype=strings)
        f.attrs.create("optimizer", np.array([""], dtype=object), dtype=strings)
        for key in ("step", "epoch", "batch_in_epoch", "rng_seed", "rng_offset", "data_seed"):
            f.attrs.create(key, np.int64(0))
        params, buffers = f.create_group("parameters"), f.create_group("buffers")
        for name, tensor in state.items():
            array = tensor.detach().cpu().numpy()
            group = buffers if name.endswith(BUFFER_SUFFIXES) else params
            group.create_dataset(name, data=array.astype(np.int64 if array.dtype == np.int64 else np.float32))
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state_dict", help="a torch.save(model.state_dict()) file")
    parser.add_argument("output", help="the horo checkpoint to write (.h5)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a built-in model: resnet18, resnet20, cnn, mlp")
    source.add_argument("--spec", help="a horo model specification (.prototxt) matching the weights")
    parser.add_argument("--input-shape", help="one sample, e.g. 3,224,224 (built-ins: default the spec's)")
    args = parser.parse_args()
    import torch
    state = torch.load(args.state_dict, map_location="cpu")
    if hasattr(state, "state_dict"):
        state = state.state_dict()
    shape = [int(d) for d in args.input_shape.split(",")] if args.input_shape else None
    if args.model:
        spec = builtin_spec(args.model, state, shape)
    else:
        with open(args.spec) as f:
            spec = f.read()
    write_checkpoint(state, spec, args.output)
    print(f"{args.state_dict} -> {args.output} ({len(state)} tensors)")


if __name__ == "__main__":
    main()
