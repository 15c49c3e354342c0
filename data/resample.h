// Resizing a region of an image, as PIL's Image.resize(size, BILINEAR, box) does (which is what
// torchvision's Resize and RandomResizedCrop run on PIL images): separable, with the triangle filter
// stretched by the downscale factor so that shrinking averages every source pixel (antialiasing),
// horizontal pass first. horo keeps the intermediate rows in float where PIL rounds them to 8 bits,
// so results agree with PIL's within one grey level.
#pragma once

#include <cstdint>
#include <vector>

#include "data/image_codec.h"

namespace horo::data {

// A box in source pixel coordinates: pixel i spans [i, i + 1), so (0, 0, width, height) is the image.
struct SourceBox {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  double width() const { return x1 - x0; }
  double height() const { return y1 - y0; }
};

// An image in memory with any layout: element (y, x, c) at data[y * row_stride + x * pixel_stride +
// c * channel_stride] (interleaved RGB: 3 * width, 3, 1; planar [C, H, W]: width, 1, H * W).
template <typename T>
struct ImageView {
  const T* data = nullptr;
  int64_t height = 0, width = 0, channels = 0;
  int64_t row_stride = 0, pixel_stride = 0, channel_stride = 0;
};

// The filter taps of one axis: output i reads `count[i]` inputs from `first[i]`, weights
// weights[i * max_taps ...]. Outputs whose footprint falls outside the input have no taps (value 0).
struct ResampleTaps {
  std::vector<int32_t> first, count;
  std::vector<float> weights;
  int64_t max_taps = 0;
};
ResampleTaps resample_taps(double in0, double in1, int64_t in_size, int64_t out_size);

// Resamples `box` of `src` to out_h x out_w into planes out[c][y][x] (source units: 0..255 for
// 8-bit data); `flip` mirrors the output left to right.
void resample(const ImageView<uint8_t>& src, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out);
void resample(const ImageView<float>& src, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out);

// The same for decoded pixels that may be a part of the full image at a reduced scale (a region
// decode): `box` is in full-image coordinates.
void resample_rgb(const RgbImage& image, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out);

}  // namespace horo::data
