#!/usr/bin/env python3
"""The PyTorch peer of horo-bench-train on the GPU machine: W1 (cnn) or W2 (mlp), Adam 1e-3, fixed
random batches, fp32 eager mode, the same steps as horo; prints `images_per_s=R`.

    python3 bench/peers/pytorch_train.py --model cnn --batch 256 --device cuda --steps 200
"""
import argparse
import time

import torch
import torch.nn as nn


def make_model(name):
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(),
                             nn.Dropout(0.5), nn.Linear(128, 10))
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="cnn", choices=["cnn", "mlp"])
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
