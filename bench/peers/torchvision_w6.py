#!/usr/bin/env python3
"""W6's peer: torchvision's ImageFolder + DataLoader over the same JPEG folder with the same transforms
(RandomResizedCrop(size), RandomHorizontalFlip, ToTensor, Normalize with ImageNet's mean and std),
shuffled, batch 64, `--workers` worker processes. Prints samples/s over `--epochs` epochs (worker
start-up included, as horo-bench-reader includes its threads') and the peak memory of the main
process and its workers.

  bench/peers/torchvision_w6.py ROOT [--workers 2] [--batch 64] [--epochs 2] [--size 224]
"""
import argparse
import resource
import time

import torch
import torchvision
from torchvision import transforms


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the workers do the work, as horo's reader threads do
    transform = transforms.Compose([
        transforms.RandomResizedCrop(args.size),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    dataset = torchvision.datasets.ImageFolder(args.root, transform=transform)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True, drop_last=True,
                                         num_workers=args.workers)
    start = time.perf_counter()
    samples, checksum = 0, 0.0
    for _ in range(args.epochs):
        for images, labels in loader:
            samples += images.shape[0]
            checksum += float(images[0, 0, 0, 0])
    seconds = time.perf_counter() - start
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"framework=torchvision {torch.__version__}/{torchvision.__version__} samples={samples} workers={args.workers} "
          f"batch={args.batch} samples_per_s={samples / seconds:.0f} peak_rss_mib={own:.0f} worker_peak_rss_mib={children:.0f}")


if __name__ == "__main__":
    main()
