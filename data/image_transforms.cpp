#include "data/image_transforms.h"

#include <algorithm>
#include <cmath>

#include "kernels/philox.h"

namespace horo::data {

SampleRandom::SampleRandom(uint64_t seed, uint64_t epoch, uint64_t sample) : sample_(sample) {
  // A key of its own (the flip and padded-crop draws of transforms.cpp use another).
  const uint64_t key = seed * 0x9FB21C651E98DF25ull + epoch * 0xC2B2AE3D27D4EB4Full + 0x165667B19E3779F9ull;
  key_[0] = static_cast<uint32_t>(key);
  key_[1] = static_cast<uint32_t>(key >> 32);
}

uint32_t SampleRandom::next() {
  if (used_ == 4) {
    const uint32_t counter[4] = {static_cast<uint32_t>(block_), static_cast<uint32_t>(block_ >> 32),
                                 static_cast<uint32_t>(sample_), static_cast<uint32_t>(sample_ >> 32)};
    kernels::Philox4x32::rounds(counter, key_, words_);
    ++block_;
    used_ = 0;
  }
  return words_[used_++];
}

double SampleRandom::uniform(double lo, double hi) {
  const uint64_t bits = (static_cast<uint64_t>(next()) << 21) ^ (next() >> 11);  // 53 bits
  return lo + (hi - lo) * (static_cast<double>(bits) * (1.0 / 9007199254740992.0));
}

int64_t SampleRandom::below(int64_t n) {
  const uint64_t wide = (static_cast<uint64_t>(next()) << 32) | next();
  return static_cast<int64_t>(wide % static_cast<uint64_t>(n));
}

SourceBox random_resized_crop_box(int64_t height, int64_t width, const RandomResizedCropParams& p, SampleRandom& random) {
  const double area = static_cast<double>(height * width);
  const double log_min = std::log(p.ratio_min), log_max = std::log(p.ratio_max);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * random.uniform(p.scale_min, p.scale_max);
    const double aspect = std::exp(random.uniform(log_min, log_max));
    // Python's round(): halves to even, as std::nearbyint in the default rounding mode.
    const int64_t w = static_cast<int64_t>(std::nearbyint(std::sqrt(target * aspect)));
    const int64_t h = static_cast<int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int64_t i = random.below(height - h + 1), j = random.below(width - w + 1);
      return {static_cast<double>(j), static_cast<double>(i), static_cast<double>(j + w), static_cast<double>(i + h)};
    }
  }
  // Fallback: the whole image, cut to the nearest ratio in range, centred.
  const double in_ratio = static_cast<double>(width) / static_cast<double>(height);
  int64_t w = width, h = height;
  if (in_ratio < p.ratio_min) h = static_cast<int64_t>(std::nearbyint(static_cast<double>(w) / p.ratio_min));
  else if (in_ratio > p.ratio_max) w = static_cast<int64_t>(std::nearbyint(static_cast<double>(h) * p.ratio_max));
  const int64_t i = (height - h) / 2, j = (width - w) / 2;
  return {static_cast<double>(j), static_cast<double>(i), static_cast<double>(j + w), static_cast<double>(i + h)};
}

SourceBox resize_center_crop_box(int64_t height, int64_t width, int64_t resize, int64_t crop, int64_t& out_h, int64_t& out_w) {
  // torchvision's Resize(int): the shorter side to `resize`, the longer in proportion (truncated).
  int64_t rh = height, rw = width;
  if (resize > 0) {
    if (height <= width) {
      rh = resize;
      rw = static_cast<int64_t>(static_cast<double>(resize) * static_cast<double>(width) / static_cast<double>(height));
    } else {
      rw = resize;
      rh = static_cast<int64_t>(static_cast<double>(resize) * static_cast<double>(height) / static_cast<double>(width));
    }
  }
  out_h = crop > 0 ? crop : rh;
  out_w = crop > 0 ? crop : rw;
  // CenterCrop: offsets round((resized - crop) / 2), halves to even as Python's round().
  const double top = std::nearbyint(static_cast<double>(rh - out_h) / 2.0), left = std::nearbyint(static_cast<double>(rw - out_w) / 2.0);
  const double sy = static_cast<double>(height) / static_cast<double>(rh), sx = static_cast<double>(width) / static_cast<double>(rw);
  return {left * sx, top * sy, (left + static_cast<double>(out_w)) * sx, (top + static_cast<double>(out_h)) * sy};
}

ColorJitterDraw draw_color_jitter(const ColorJitterParams& p, SampleRandom& random) {
  ColorJitterDraw d;
  for (int i = 2; i > 0; --i) std::swap(d.order[i], d.order[random.below(i + 1)]);
  const float ranges[3] = {p.brightness, p.contrast, p.saturation};
  for (int k = 0; k < 3; ++k) {
    if (ranges[k] > 0) d.factors[k] = static_cast<float>(random.uniform(std::max(0.0f, 1.0f - ranges[k]), 1.0f + ranges[k]));
  }
  return d;
}

namespace {

inline float clamp01(float v) { return std::min(1.0f, std::max(0.0f, v)); }
inline float grey(const float* planes, int64_t plane, int64_t i) {
  return 0.2989f * planes[i] + 0.587f * planes[plane + i] + 0.114f * planes[2 * plane + i];
}

}  // namespace

void apply_color_jitter(const ColorJitterDraw& draw, int64_t channels, int64_t plane, float* planes) {
  const int64_t n = channels * plane;
  for (int k : draw.order) {
    const float f = draw.factors[k];
    if (f == 1.0f) continue;
    if (k == 0) {  // brightness
      for (int64_t i = 0; i < n; ++i) planes[i] = clamp01(planes[i] * f);
    } else if (k == 1) {  // contrast: towards the image's mean grey level
      double sum = 0.0;
      for (int64_t i = 0; i < plane; ++i) sum += channels == 3 ? grey(planes, plane, i) : planes[i];
      const float mean = static_cast<float>(sum / static_cast<double>(plane)) * (1.0f - f);
      for (int64_t i = 0; i < n; ++i) planes[i] = clamp01(f * planes[i] + mean);
    } else if (channels == 3) {  // saturation: towards each pixel's grey
      for (int64_t i = 0; i < plane; ++i) {
        const float g = grey(planes, plane, i) * (1.0f - f);
        for (int64_t c = 0; c < 3; ++c) planes[c * plane + i] = clamp01(f * planes[c * plane + i] + g);
      }
    }
  }
}

}  // namespace horo::data
