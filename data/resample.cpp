#include "data/resample.h"

#include <algorithm>
#include <cmath>

namespace horo::data {

ResampleTaps resample_taps(double in0, double in1, int64_t in_size, int64_t out_size) {
  // PIL's precompute_coeffs (libImaging/Resample.c) with the bilinear filter (support 1).
  const double scale = (in1 - in0) / static_cast<double>(out_size);
  const double filter_scale = std::max(scale, 1.0), support = filter_scale;
  ResampleTaps taps;
  taps.max_taps = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  taps.first.resize(static_cast<size_t>(out_size));
  taps.count.resize(static_cast<size_t>(out_size));
  taps.weights.assign(static_cast<size_t>(out_size * taps.max_taps), 0.0f);
  for (int64_t i = 0; i < out_size; ++i) {
    const double center = in0 + (static_cast<double>(i) + 0.5) * scale;
    const int64_t lo = std::max<int64_t>(0, static_cast<int64_t>(center - support + 0.5));
    const int64_t hi = std::min<int64_t>(in_size, static_cast<int64_t>(center + support + 0.5));
    const int64_t n = std::clamp<int64_t>(hi - lo, 0, taps.max_taps);
    float* w = taps.weights.data() + i * taps.max_taps;
    double total = 0.0;
    for (int64_t k = 0; k < n; ++k) {
      const double x = std::fabs((static_cast<double>(k + lo) - center + 0.5) / filter_scale);
      const double weight = x < 1.0 ? 1.0 - x : 0.0;
      w[k] = static_cast<float>(weight);
      total += weight;
    }
    taps.first[static_cast<size_t>(i)] = static_cast<int32_t>(lo);
    taps.count[static_cast<size_t>(i)] = static_cast<int32_t>(total > 0.0 ? n : 0);
    for (int64_t k = 0; k < n; ++k) w[k] = total > 0.0 ? static_cast<float>(w[k] / total) : 0.0f;
  }
  return taps;
}

namespace {

template <typename T>
void resample_view(const ImageView<T>& src, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out) {
  HORO_CHECK(out_h > 0 && out_w > 0 && box.width() > 0 && box.height() > 0, ValueError, "resample: box ", box.x0, ",",
             box.y0, ",", box.x1, ",", box.y1, " to ", out_h, "x", out_w, " is empty");
  HORO_CHECK(src.height > 0 && src.width > 0 && src.channels > 0, ValueError, "resample: empty source image");
  const ResampleTaps tx = resample_taps(box.x0, box.x1, src.width, out_w);
  const ResampleTaps ty = resample_taps(box.y0, box.y1, src.height, out_h);
  const int64_t channels = src.channels;
  // Source rows the vertical pass reads.
  int64_t row_lo = src.height, row_hi = 0;
  for (int64_t i = 0; i < out_h; ++i) {
    if (ty.count[static_cast<size_t>(i)] == 0) continue;
    row_lo = std::min<int64_t>(row_lo, ty.first[static_cast<size_t>(i)]);
    row_hi = std::max<int64_t>(row_hi, ty.first[static_cast<size_t>(i)] + ty.count[static_cast<size_t>(i)]);
  }
  const int64_t plane = out_h * out_w, width = out_w * channels;
  if (row_hi <= row_lo) {
    std::fill(out, out + channels * plane, 0.0f);
    return;
  }
  // Horizontal pass: rows [row_lo, row_hi) into [row][x][c].
  thread_local std::vector<float> rows_buffer, accumulator;
  rows_buffer.resize(static_cast<size_t>((row_hi - row_lo) * width));
  const bool rgb = channels == 3 && src.pixel_stride == 3 && src.channel_stride == 1;
  for (int64_t y = row_lo; y < row_hi; ++y) {
    const T* line = src.data + y * src.row_stride;
    float* dst = rows_buffer.data() + (y - row_lo) * width;
    if (rgb) {  // decoded images: one pass over each tap's three values
      for (int64_t x = 0; x < out_w; ++x) {
        const int64_t count = tx.count[static_cast<size_t>(x)];
        const T* p = line + 3 * static_cast<int64_t>(tx.first[static_cast<size_t>(x)]);
        const float* w = tx.weights.data() + x * tx.max_taps;
        float r = 0.0f, g = 0.0f, b = 0.0f;
        for (int64_t k = 0; k < count; ++k, p += 3) {
          r += w[k] * static_cast<float>(p[0]);
          g += w[k] * static_cast<float>(p[1]);
          b += w[k] * static_cast<float>(p[2]);
        }
        dst[3 * x] = r;
        dst[3 * x + 1] = g;
        dst[3 * x + 2] = b;
      }
      continue;
    }
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t first = tx.first[static_cast<size_t>(x)], count = tx.count[static_cast<size_t>(x)];
      const float* w = tx.weights.data() + x * tx.max_taps;
      for (int64_t c = 0; c < channels; ++c) {
        const T* p = line + first * src.pixel_stride + c * src.channel_stride;
        float sum = 0.0f;
        for (int64_t k = 0; k < count; ++k) sum += w[k] * static_cast<float>(p[k * src.pixel_stride]);
        dst[x * channels + c] = sum;
      }
    }
  }
  // Vertical pass, one output row at a time, then into planes (mirrored when flipping).
  accumulator.resize(static_cast<size_t>(width));
  for (int64_t y = 0; y < out_h; ++y) {
    const int64_t first = ty.first[static_cast<size_t>(y)], count = ty.count[static_cast<size_t>(y)];
    const float* w = ty.weights.data() + y * ty.max_taps;
    float* acc = accumulator.data();
    std::fill(acc, acc + width, 0.0f);
    for (int64_t k = 0; k < count; ++k) {
      const float* row = rows_buffer.data() + (first + k - row_lo) * width;
      const float wk = w[k];
      for (int64_t i = 0; i < width; ++i) acc[i] += wk * row[i];
    }
    for (int64_t c = 0; c < channels; ++c) {
      float* dst = out + c * plane + y * out_w;
      if (flip) {
        for (int64_t x = 0; x < out_w; ++x) dst[out_w - 1 - x] = acc[x * channels + c];
      } else {
        for (int64_t x = 0; x < out_w; ++x) dst[x] = acc[x * channels + c];
      }
    }
  }
}

}  // namespace

void resample(const ImageView<uint8_t>& src, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out) {
  resample_view(src, box, out_h, out_w, flip, out);
}

void resample(const ImageView<float>& src, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out) {
  resample_view(src, box, out_h, out_w, flip, out);
}

void resample_rgb(const RgbImage& image, const SourceBox& box, int64_t out_h, int64_t out_w, bool flip, float* out) {
  const ImageView<uint8_t> view{image.pixels.data(), image.height, image.width, 3, image.width * 3, 3, 1};
  const double s = static_cast<double>(image.scale);
  const SourceBox local{(box.x0 - static_cast<double>(image.origin_x)) / s, (box.y0 - static_cast<double>(image.origin_y)) / s,
                        (box.x1 - static_cast<double>(image.origin_x)) / s, (box.y1 - static_cast<double>(image.origin_y)) / s};
  resample_view(view, local, out_h, out_w, flip, out);
}

}  // namespace horo::data
