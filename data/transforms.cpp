#include "data/transforms.h"

#include <algorithm>
#include <cmath>

#include "kernels/philox.h"

namespace horo::data {

void check_transforms(const TransformOptions& o, const Shape& sample_shape, const std::string& where) {
  const bool image = sample_shape.size() == 3;
  HORO_CHECK(image || (!o.random_hflip && o.random_crop_padding == 0 && !o.resamples() && !o.color_jitter.enabled()),
             ValueError, where, ": flips, crops, resizing and colour jitter need image samples [C, H, W], got samples of shape ",
             shape_str(sample_shape));
  HORO_CHECK(o.random_crop_padding >= 0, ValueError, where, ": crop padding must be non-negative");
  const auto& rrc = o.random_resized_crop;
  HORO_CHECK(rrc.size >= 0 && o.resize >= 0 && o.center_crop >= 0, ValueError, where,
             ": crop and resize sizes must be non-negative, got random resized crop ", rrc.size, ", resize ", o.resize,
             ", centre crop ", o.center_crop);
  HORO_CHECK(rrc.size == 0 || (o.resize == 0 && o.center_crop == 0 && o.random_crop_padding == 0), ValueError, where,
             ": a random resized crop replaces resizing, centre and padded crops; give one of them");
  HORO_CHECK(o.random_crop_padding == 0 || !o.resamples(), ValueError, where,
             ": a padded random crop works on the stored size; it cannot be combined with resizing or a centre crop");
  HORO_CHECK(rrc.scale_min > 0 && rrc.scale_min <= rrc.scale_max && rrc.scale_max <= 1.0, ValueError, where,
             ": random resized crop scale must satisfy 0 < min <= max <= 1, got (", rrc.scale_min, ", ", rrc.scale_max, ")");
  HORO_CHECK(rrc.ratio_min > 0 && rrc.ratio_min <= rrc.ratio_max, ValueError, where,
             ": random resized crop ratio must satisfy 0 < min <= max, got (", rrc.ratio_min, ", ", rrc.ratio_max, ")");
  const auto& cj = o.color_jitter;
  HORO_CHECK(cj.brightness >= 0 && cj.contrast >= 0 && cj.saturation >= 0, ValueError, where,
             ": colour jitter strengths must be non-negative, got brightness ", cj.brightness, ", contrast ", cj.contrast,
             ", saturation ", cj.saturation);
  HORO_CHECK(o.mean.size() == o.std.size(), ValueError, where, ": mean has ", o.mean.size(), " values but std has ",
             o.std.size());
  const int64_t channels = image ? sample_shape[0] : 1;
  HORO_CHECK(o.mean.empty() || o.mean.size() == 1 || static_cast<int64_t>(o.mean.size()) == channels, ValueError, where,
             ": expected 1 or ", channels, " mean/std values (one per channel), got ", o.mean.size());
  // A std of +Inf normalises every pixel to 0, a NaN mean every pixel to NaN: never meant.
  for (float s : o.std) HORO_CHECK(s > 0.0f && std::isfinite(s), ValueError, where, ": std values must be positive and finite, got ", s);
  for (float m : o.mean) HORO_CHECK(std::isfinite(m), ValueError, where, ": mean values must be finite, got ", m);
}

TransformOptions evaluation_transforms(const TransformOptions& training) {
  TransformOptions o;
  o.scale = training.scale;
  o.mean = training.mean;
  o.std = training.std;
  o.dct_scaling = training.dct_scaling;
  o.resize = training.resize;
  o.center_crop = training.center_crop;
  const int64_t size = training.random_resized_crop.size;
  if (size > 0 && o.resize == 0 && o.center_crop == 0) {
    o.resize = static_cast<int64_t>(std::lround(static_cast<double>(size) / 0.875));
    o.center_crop = size;
  }
  return o;
}

Shape transformed_shape(const TransformOptions& o, const Shape& stored, const std::string& where) {
  if (stored.size() != 3) return stored;
  const int64_t channels = stored[0], h = stored[1], w = stored[2];
  if (o.random_resized_crop.size > 0) return {channels, o.random_resized_crop.size, o.random_resized_crop.size};
  if (o.center_crop > 0) return {channels, o.center_crop, o.center_crop};
  HORO_CHECK(h > 0 && w > 0, ValueError, where,
             ": its images differ in size; give a crop that makes them equal (a random resized crop, or a centre crop)");
  if (o.resize > 0) {
    int64_t out_h = 0, out_w = 0;
    resize_center_crop_box(h, w, o.resize, 0, out_h, out_w);
    return {channels, out_h, out_w};
  }
  return stored;
}

SampleDraw draw_for_sample(const TransformOptions& o, uint64_t seed, uint64_t epoch, uint64_t sample, int64_t height,
                           int64_t width) {
  SampleDraw d;
  if (o.random_hflip || o.random_crop_padding > 0) {
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
  }
  if (!o.resamples() && !o.color_jitter.enabled()) return d;
  SampleRandom random(seed, epoch, sample);
  if (o.random_resized_crop.size > 0) {
    d.box = random_resized_crop_box(height, width, o.random_resized_crop, random);
    d.out_h = d.out_w = o.random_resized_crop.size;
  } else if (o.resamples()) {
    d.box = resize_center_crop_box(height, width, o.resize, o.center_crop, d.out_h, d.out_w);
  }
  if (o.color_jitter.enabled()) {
    d.jitter = true;
    d.color = draw_color_jitter(o.color_jitter, random);
  }
  return d;
}

namespace {

// The colour steps on planes [channels][plane] of `scale`d source values: jitter in [0, 1], then
// normalisation; one affine pass per channel when there is no jitter.
void finish_colour(const TransformOptions& o, float scale, int64_t channels, int64_t plane, const SampleDraw& draw,
                   float* out) {
  for (int64_t c = 0; c < channels; ++c) {
    const size_t stat = o.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    const float mean = o.mean.empty() ? 0.0f : o.mean[stat], inv_std = o.std.empty() ? 1.0f : 1.0f / o.std[stat];
    const float a = draw.jitter ? scale : scale * inv_std, b = draw.jitter ? 0.0f : -mean * inv_std;
    float* p = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = p[i] * a + b;
  }
  if (!draw.jitter) return;
  apply_color_jitter(draw.color, channels, plane, out);
  if (o.mean.empty()) return;
  for (int64_t c = 0; c < channels; ++c) {
    const size_t stat = o.mean.size() == 1 ? 0 : static_cast<size_t>(c);
    const float inv_std = 1.0f / o.std[stat], b = -o.mean[stat] * inv_std;
    float* p = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) p[i] = p[i] * inv_std + b;
  }
}

// Scale, padded crop, flip and (without jitter) normalisation at the stored size in one pass.
void transform_stored(const TransformOptions& o, float scale, DType in_dtype, const Shape& sample_shape, const void* raw,
                      const SampleDraw& draw, float* out) {
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
    const float mean = o.mean.empty() || draw.jitter ? 0.0f : o.mean[stat];
    const float inv_std = o.std.empty() || draw.jitter ? 1.0f : 1.0f / o.std[stat];
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
  if (draw.jitter) finish_colour(o, 1.0f, channels, h * w, draw, out);  // scaled above, not yet normalised
}

}  // namespace

void transform_sample(const TransformOptions& o, DType in_dtype, const Shape& sample_shape, const void* raw,
                      const SampleDraw& draw, float* out) {
  const float scale = o.scale >= 0.0f ? o.scale : (in_dtype == DType::UInt8 ? 1.0f / 255.0f : 1.0f);
  if (draw.out_h == 0) return transform_stored(o, scale, in_dtype, sample_shape, raw, draw, out);
  const int64_t channels = sample_shape[0], h = sample_shape[1], w = sample_shape[2];
  if (in_dtype == DType::UInt8) {
    resample(ImageView<uint8_t>{static_cast<const uint8_t*>(raw), h, w, channels, w, 1, h * w}, draw.box, draw.out_h,
             draw.out_w, draw.flip, out);
  } else {
    resample(ImageView<float>{static_cast<const float*>(raw), h, w, channels, w, 1, h * w}, draw.box, draw.out_h, draw.out_w,
             draw.flip, out);
  }
  finish_colour(o, scale, channels, draw.out_h * draw.out_w, draw, out);
}

void transform_encoded_sample(const TransformOptions& o, const uint8_t* bytes, size_t size, const std::string& name,
                              int64_t height, int64_t width, const SampleDraw& draw, float* out) {
  thread_local RgbImage image;
  HORO_CHECK(o.random_crop_padding == 0, ValueError, name,
             ": a padded random crop needs images stored decoded; use a random resized crop on encoded images");
  DecodeOptions decode;
  SampleDraw d = draw;
  if (d.out_h > 0) {
    // Decode only the box and a margin the filter reaches into, at a reduced scale where the box is
    // at least twice the output.
    const SourceBox& b = d.box;
    const int64_t margin = 2 * static_cast<int64_t>(std::ceil(std::max(b.width() / static_cast<double>(d.out_w),
                                                                        b.height() / static_cast<double>(d.out_h)))) + 2;
    const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(b.y0)) - margin);
    const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(b.x0)) - margin);
    const int64_t y1 = static_cast<int64_t>(std::ceil(b.y1)) + margin, x1 = static_cast<int64_t>(std::ceil(b.x1)) + margin;
    decode.region = {y0, x0, y1 - y0, x1 - x0};
    if (o.dct_scaling) {
      decode.min_height = static_cast<int64_t>(std::ceil(static_cast<double>(d.out_h) * static_cast<double>(y1 - y0) / b.height()));
      decode.min_width = static_cast<int64_t>(std::ceil(static_cast<double>(d.out_w) * static_cast<double>(x1 - x0) / b.width()));
    }
  }
  decode_image(bytes, size, name, decode, image);
  HORO_CHECK(image.full_height == height && image.full_width == width, IOError, name, ": the image is ", image.full_width,
             " x ", image.full_height, " pixels but the dataset records ", width, " x ", height);
  if (d.out_h == 0) {  // no resampling transform: the image as it is
    d.box = {0.0, 0.0, static_cast<double>(width), static_cast<double>(height)};
    d.out_h = height;
    d.out_w = width;
  }
  resample_rgb(image, d.box, d.out_h, d.out_w, d.flip, out);
  finish_colour(o, 1.0f / 255.0f, 3, d.out_h * d.out_w, d, out);
}

}  // namespace horo::data
