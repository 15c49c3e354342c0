#!/usr/bin/python3
"""Load a horo checkpoint into PyTorch, with h5py alone reading the file.

    python3 tools/horo_to_torch.py ckpt.h5 model.pt      # saves the state_dict with torch.save

As a module:
    state_dict = load_state_dict("ckpt.h5")             # {dotted name: torch.Tensor}
    model = build_model(model_spec("ckpt.h5"))          # the torch.nn.Sequential the spec describes
    model.load_state_dict(state_dict)

horo stores parameters in PyTorch's layouts (conv OIHW, linear [out, in]) under PyTorch's dotted
names, so no tensor is transposed or renamed. Needs Debian's python3-h5py and python3-torch.
"""
import re
import sys

import h5py
import numpy as np


def load_state_dict(path):
    import torch
    with h5py.File(path, "r") as f:
        state = {}
        for group in ("parameters", "buffers"):
            if group in f:
                for name, data in f[group].items():
                    state[name] = torch.from_numpy(np.array(data))
        return state


def model_spec(path):
    with h5py.File(path, "r") as f:
        spec = f.attrs["model_spec"]
        return spec[0] if not isinstance(spec, str) else spec


def _parse(text):
    """Protobuf text format, the subset horo's model specs use, into nested lists of (key, value)."""
    text = re.sub(r"#[^\n]*", "", text)
    tokens = re.findall(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,]+', text)
    pos = 0

    def value(tok):
        if tok.startswith('"'):
            return tok[1:-1]
        if tok in ("true", "false"):
            return tok == "true"
        try:
            return int(tok)
        except ValueError:
            return float(tok)

    def message():
        nonlocal pos
        fields = []
        while pos < len(tokens) and tokens[pos] != "}":
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            if tokens[pos] == "{":
                pos += 1
                fields.append((key, message()))
                pos += 1
            elif tokens[pos] == "[":
                pos += 1
                items = []
                while tokens[pos] != "]":
                    if tokens[pos] != ",":
                        items.append(value(tokens[pos]))
                    pos += 1
                pos += 1
                fields.append((key, items))
            else:
                fields.append((key, value(tokens[pos])))
                pos += 1
        return fields

    return message()


def _layers(fields):
    import torch.nn as nn
    seq = nn.Sequential()
    index = 0
    for key, layer in fields:
        if key != "layers":
            continue
        name = str(index)
        kind, options = None, {}
        for k, v in layer:
            if k == "name":
                name = v
            else:
                kind, options = k, dict(v) if isinstance(v, list) and k != "sequential" else v
        if kind == "sequential":
            module = _layers(options)
        elif kind == "linear":
            module = nn.Linear(options["in"], options["out"], bias=options.get("bias", True))
        elif kind == "conv2d":
            module = nn.Conv2d(options["in"], options["out"], options["kernel"], stride=options.get("stride", 1),
                               padding=options.get("padding", 0), dilation=options.get("dilation", 1),
                               bias=options.get("bias", True))
        elif kind in ("max_pool2d", "avg_pool2d"):
            k = options.get("kernel", 2)
            cls = nn.MaxPool2d if kind == "max_pool2d" else nn.AvgPool2d
            module = cls(k, stride=options.get("stride", 0) or k, padding=options.get("padding", 0))
        elif kind == "dropout":
            module = nn.Dropout(options.get("p", 0.5))
        elif kind == "flatten":
            module = nn.Flatten(options.get("start_dim", 1))
        elif kind == "leaky_relu":
            module = nn.LeakyReLU(options.get("negative_slope", 0.01))
        else:
            module = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}[kind]()
        seq.add_module(name, module)
        index += 1
    return seq


def build_model(spec_text):
    return _layers(_parse(spec_text))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    import torch
    torch.save(load_state_dict(sys.argv[1]), sys.argv[2])
    print(f"{sys.argv[1]} -> {sys.argv[2]}")
