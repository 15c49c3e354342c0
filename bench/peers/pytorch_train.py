#!/usr/bin/env python3
"""The PyTorch peer of horo-bench-train on the GPU machine: W1 (cnn) or W2 (mlp) with Adam 1e-3, or W5
(resnet20: He et al.'s CIFAR ResNet-20 with 1x1 projection shortcuts) with SGD Nesterov 0.9, lr 0.1,
weight decay 5e-4; fixed random batches, fp32 eager mode, the same steps as horo; prints `images_per_s=R`.

    python3 bench/peers/pytorch_train.py --model cnn --batch 256 --device cuda --steps 200
"""
import argparse
import time

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet20(in_channels=1, classes=10):
    layers = [nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    cin = 16
    for stage in range(3):
        cout = 16 << stage
        for block in range(3):
            layers.append(BasicBlock(cin, cout, 2 if stage > 0 and block == 0 else 1))
            cin = cout
    model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return model


def make_model(name):
    if name == "resnet20":
        return resnet20()
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp", "resnet20"])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.manual_seed(1)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32, as horo by default
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(a.threads)
    model = make_model(a.model).to(a.device).train()
    if a.model == "resnet20":
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.randn(a.batch, 1, 28, 28, device=a.device)
    labels = (torch.arange(a.batch, device=a.device) * 7) % 10

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        opt.step()
        return loss.item()  # a host sync per step, as horo's loss.item()

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        last = step()
    seconds = time.perf_counter() - start
    print(f"framework=pytorch device={a.device} model={a.model} batch={a.batch} steps={a.steps} loss={last:.4f} "
          f"images_per_s={a.batch * a.steps / seconds:.1f}")


if __name__ == "__main__":
    main()
