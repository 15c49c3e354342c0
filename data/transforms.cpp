#include "data/transforms.h"

#include <algorithm>

#include "kernels/philox.h"

namespace horo::data {

void check_transforms(const TransformOptions& o, const Shape& sample_shape, const std::string& where) {
  const bool image = sample_shape.size() == 3;
  HORO_CHECK(image || (!o.random_hflip && o.random_crop_padding == 0), ValueError, where,
             ": random flip and crop need image samples [C, H, W], got samples of shape ", shape_str(sample_shape));
  HORO_CHECK(o.random_crop_padding >= 0, ValueError, where, ": crop padding must be non-negative");
  HORO_CHECK(o.mean.size() == o.std.size(), ValueError, where, ": mean has ", o.mean.size(), " values but std has ",
             o.std.size());
  const int64_t channels = image ? sample_shape[0] : 1;
  HORO_CHECK(o.mean.empty() || o.mean.size() == 1 || static_cast<int64_t>(o.mean.size()) == channels, ValueError, where,
             ": expected 1 or ", channels, " mean/std values (one per channel), got ", o.mean.size());
  for (float s : o.std) HORO_CHECK(s > 0.0f, ValueError, where, ": std values must be positive, got ", s);
}

SampleDraw draw_for_sample(const TransformOptions& o, uint64_t seed, uint64_t epoch, uint64_t sample) {
  SampleDraw d;
  if (!o.random_hflip && o.random_crop_padding == 0) return d;
  uint32_t words[4];
  // One Philox block per sample under a key of (seed, epoch).
  kernels::Philox4x32::block(seed * 0xD1B54A32D192ED03ull + epoch * 0x9E3779B97F4A7C15ull + 0x5851F42D4C957F2Dull,
                             sample, words);
  d.flip = o.random_hflip && (words[0] & 1u);
  const uint64_t span = static_cast<uint64_t>(2 * o.random_crop_padding + 1);
  if (o.random_crop_padding > 0) {
    d.crop_y = static_cast<int64_t>(words[1] % span);
    d.crop_x = static_cast<int64_t>(words[2] % span);
  }
  return d;
}

void transform_sample(const TransformOptions& o, DType in_dtype, const Shape& sample_shape, const void* raw,
                      const SampleDraw& draw, float* out) {
  const float scale = o.scale >= 0.0f ? o.scale : (in_dtype == DType::UInt8 ? 1.0f / 255.0f : 1.0f);
  const bool image = sample_shape.size() == 3;
  const int64_t channels = image ? sample_shape[0] : 1;
  const int64_t h = image ? sample_shape[1] : 1;
  const int64_t w = image ? sample_shape[2] : shape_numel(sample_shape);
  const int64_t pad = o.random_crop_padding;
  auto value = [&](int64_t index) {
    return in_dtype == DType::UInt8 ? static_cast<float>(static_cast<const uint8_t*>(raw)[index]) * scale
                                    : static_cast<const float*>(raw)[index] * scale;
  };
  for (int64_t c = 0; c < channels; ++c) {
    const size_t stat = o.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    const float mean = o.mean.empty() ? 0.0f : o.mean[stat];
    const float inv_std = o.std.empty() ? 1.0f : 1.0f / o.std[stat];
    if (!draw.flip && pad == 0) {
      // The common case, one affine map per channel: a loop the compiler vectorises.
      const int64_t n = h * w, base = c * n;
      const float a = scale * inv_std, b = -mean * inv_std;
      if (in_dtype == DType::UInt8) {
        const uint8_t* src = static_cast<const uint8_t*>(raw) + base;
        for (int64_t i = 0; i < n; ++i) out[base + i] = static_cast<float>(src[i]) * a + b;
      } else {
        const float* src = static_cast<const float*>(raw) + base;
        for (int64_t i = 0; i < n; ++i) out[base + i] = src[i] * a + b;
      }
      continue;
    }
    for (int64_t y = 0; y < h; ++y) {
      // Output (y, x) shows padded-image cell (y + crop_y, x' + crop_x), x' flipped when drawn.
      const int64_t src_y = y + draw.crop_y - pad;
      float* row = out + (c * h + y) * w;
      for (int64_t x = 0; x < w; ++x) {
        const int64_t xx = draw.flip ? w - 1 - x : x;
        const int64_t src_x = xx + draw.crop_x - pad;
        const bool inside = src_y >= 0 && src_y < h && src_x >= 0 && src_x < w;
        const float v = inside ? value((c * h + src_y) * w + src_x) : 0.0f;
        row[x] = (v - mean) * inv_std;
      }
    }
  }
}

}  // namespace horo::data
