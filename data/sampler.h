// Sample orders and batch assembly for in-memory datasets.
#pragma once

#include <cstdint>
#include <vector>

#include "data/idx.h"

namespace horo::data {

// A permutation of [0, n) that is a pure function of (seed, epoch): Fisher-Yates driven by Philox.
std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t epoch);

struct Batch {
  Tensor images;  // float32 [B, C, H, W], normalised
  Tensor labels;  // int64 [B]
};

// The samples indices[begin, end) of dataset, normalised with normalize_images' defaults.
Batch gather_batch(const ImageDataset& dataset, const std::vector<int64_t>& indices, int64_t begin, int64_t end);

}  // namespace horo::data
