// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
#pragma once

#include <string>

#include "tensor/tensor.h"

namespace horo::data {

// Images from an idx3-ubyte file as uint8 [N, 1, rows, cols]. Throws IOError naming the file when it
// is missing, not IDX, or shorter than its header says.
Tensor read_idx_images(const std::string& path);
// Labels from an idx1-ubyte file as int64 [N].
Tensor read_idx_labels(const std::string& path);

struct ImageDataset {
  Tensor images;  // uint8 [N, 1, H, W]
  Tensor labels;  // int64 [N]
  int64_t size() const { return labels.numel(); }
};

// The train or test split of (Fashion-)MNIST from `dir`, trying `<name>` and `<name>.gz` for each
// file; checks that images and labels have the same count.
ImageDataset load_mnist_split(const std::string& dir, bool train);

// The first `count` samples of a dataset (all when count < 0 or larger than it), as views.
ImageDataset take(const ImageDataset& dataset, int64_t count);

// uint8 images -> float32 (x / 255 - mean) / std, the normalisation of torchvision's ToTensor +
// Normalize. Fashion-MNIST's statistics are the defaults.
Tensor normalize_images(const Tensor& images, float mean = 0.2860f, float std = 0.3530f);

}  // namespace horo::data
