#!/usr/bin/python3
"""Load a horo checkpoint into PyTorch, with h5py alone reading the file.

    python3 tools/horo_to_torch.py ckpt.h5 model.pt      # saves the state_dict with torch.save

As a module:
    state_dict = load_state_dict("ckpt.h5")             # {dotted name: torch.Tensor}
    model = build_model(model_spec("ckpt.h5"))          # the torch.nn.Module the spec describes
    model.load_state_dict(state_dict)

horo stores parameters and buffers (BatchNorm's running_mean, running_var, num_batches_tracked) in
PyTorch's layouts (conv OIHW, linear [out, in]) under PyTorch's dotted names, so no tensor is
transposed or renamed: a horo `resnet18` checkpoint loads with strict=True into
torchvision.models.resnet18(num_classes=N) (for 3-channel inputs), and build_model() gives the same
network for any spec, layer lists with `inputs` (residual blocks) included. tools/torch_to_horo.py goes
the other way. Needs Debian's python3-h5py and python3-torch.
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
        spec = spec[0] if not isinstance(spec, (str, bytes)) else spec
        return spec.decode() if isinstance(spec, bytes) else spec


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
        for kind in (int, float):
            try:
                return kind(tok)
            except ValueError:
                pass
        return tok  # an enum value such as KAIMING_NORMAL_FAN_OUT

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


def _module(kind, options):
    import torch.nn as nn
    o = dict(options) if isinstance(options, list) else {}
    if kind == "linear":
        return nn.Linear(o["in"], o["out"], bias=o.get("bias", True))
    if kind == "conv2d":
        k = o.get("kernel", 0)
        kernel = (o.get("kernel_h", k), o.get("kernel_w", k))
        stride = (o.get("stride_h", o.get("stride", 1)), o.get("stride_w", o.get("stride", 1)))
        padding = (o.get("padding_h", o.get("padding", 0)), o.get("padding_w", o.get("padding", 0)))
        return nn.Conv2d(o["in"], o["out"], kernel, stride=stride, padding=padding, dilation=o.get("dilation", 1),
                         bias=o.get("bias", True))
    if kind in ("max_pool2d", "avg_pool2d"):
        k = o.get("kernel", 2)
        cls = nn.MaxPool2d if kind == "max_pool2d" else nn.AvgPool2d
        return cls(k, stride=o.get("stride", 0) or k, padding=o.get("padding", 0))
    if kind == "adaptive_avg_pool2d":
        size = o.get("output_size", 1)
        return nn.AdaptiveAvgPool2d((o.get("output_h", size), o.get("output_w", size)))
    if kind in ("batch_norm2d", "batch_norm1d"):
        return kind, o  # needs the channel count, known from the shapes (see _Builder)
    if kind == "dropout":
        return nn.Dropout(o.get("p", 0.5))
    if kind == "flatten":
        return nn.Flatten(o.get("start_dim", 1))
    if kind == "leaky_relu":
        return nn.LeakyReLU(o.get("negative_slope", 0.01))
    if kind == "add":
        return _Add()
    if kind == "concat":
        return _Concat(o.get("dim", 1))
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU, "identity": nn.Identity}[kind]()


_CLASSES = None


def _torch_classes():
    """Add, Concat and Graph, defined once torch is imported."""
    global _CLASSES
    if _CLASSES is not None:
        return _CLASSES
    import torch
    import torch.nn as nn

    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    class Concat(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.dim = dim

        def forward(self, *xs):
            return torch.cat(xs, self.dim)

    class Graph(nn.Module):
        """A horo layer list whose layers name their inputs ("input": the list's own input)."""

        def __init__(self, layers):
            super().__init__()
            self.wiring = []
            previous = "input"
            for name, module, inputs in layers:
                self.add_module(name, module)
                self.wiring.append((name, inputs or [previous]))
                previous = name

        def forward(self, x):
            values = {"input": x}
            for name, inputs in self.wiring:
                values[name] = getattr(self, name)(*[values[i] for i in inputs])
            return values[self.wiring[-1][0]]

    _CLASSES = (Add, Concat, Graph)
    return _CLASSES


def _Add():
    return _torch_classes()[0]()


def _Concat(dim):
    return _torch_classes()[1](dim)


def _layers(fields, channels):
    """The module for a layer list, and the channel count it gives (for BatchNorm's width)."""
    import torch.nn as nn
    entries, graph, index = [], False, 0
    shapes = {"input": channels}
    previous = "input"
    for key, layer in fields:
        if key != "layers":
            continue
        name, kind, options, inputs = str(index), None, {}, []
        for k, v in layer:
            if k == "name":
                name = v
            elif k == "inputs":
                inputs += v if isinstance(v, list) else [v]
            else:
                kind, options = k, v
        graph = graph or bool(inputs) or kind in ("add", "concat")
        source = shapes[inputs[0]] if inputs else shapes[previous]
        if kind == "sequential":
            module, out = _layers(options, source)
        else:
            module = _module(kind, options)
            if isinstance(module, tuple):  # BatchNorm: as wide as its input
                bn_kind, o = module
                cls = nn.BatchNorm2d if bn_kind == "batch_norm2d" else nn.BatchNorm1d
                module = cls(source, eps=o.get("eps", 1e-5),
                             momentum=None if o.get("cumulative_average") else o.get("momentum", 0.1),
                             affine=o.get("affine", True), track_running_stats=o.get("track_running_stats", True))
            out = dict(options).get("out", source) if kind in ("linear", "conv2d") else source
            if kind == "concat":
                out = sum(shapes[i] for i in inputs)
        shapes[name] = out
        entries.append((name, module, inputs))
        previous = name
        index += 1
    if graph:
        return _torch_classes()[2](entries), shapes[previous]
    seq = nn.Sequential()
    for name, module, _ in entries:
        seq.add_module(name, module)
    return seq, shapes[previous]


def build_model(spec_text):
    fields = _parse(spec_text)
    input_shape = next((v for k, v in fields if k == "input_shape"), [1])
    return _layers(fields, input_shape[0] if isinstance(input_shape, list) else input_shape)[0]


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    import torch
    torch.save(load_state_dict(sys.argv[1]), sys.argv[2])
    print(f"{sys.argv[1]} -> {sys.argv[2]}")
