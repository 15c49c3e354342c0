// Per-sample transforms of the HDF5 reader, applied in this order: to float and scale, random crop
// with zero padding, random horizontal flip, normalise by per-channel mean and std. The random
// choices for a sample are a pure function of (seed, epoch, sample index), so every rank, thread
// count and resumed run draws the same.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace horo::data {

struct TransformOptions {
  float scale = -1.0f;       // < 0: 1/255 for uint8 data, 1 for float32
  std::vector<float> mean;   // per channel (or one value for all); empty: no normalisation
  std::vector<float> std;
  bool random_hflip = false;
  int64_t random_crop_padding = 0;  // > 0: pad each side by this many zeros, crop back at a random offset
};

// The random draws of one sample: whether to flip and the crop offsets.
struct SampleDraw {
  bool flip = false;
  int64_t crop_y = 0, crop_x = 0;  // offsets into the padded image, in [0, 2 * padding]
};
SampleDraw draw_for_sample(const TransformOptions& o, uint64_t seed, uint64_t epoch, uint64_t sample);

// Transforms one sample of shape sample_shape ([C, H, W], or [F] for tabular data, which allows no
// flip or crop) from raw (uint8 or float32) into out (float32).
void transform_sample(const TransformOptions& o, DType in_dtype, const Shape& sample_shape, const void* raw,
                      const SampleDraw& draw, float* out);

// Checks the options against a sample shape; throws ValueError naming the problem.
void check_transforms(const TransformOptions& o, const Shape& sample_shape, const std::string& where);

}  // namespace horo::data
