// Convolution as im2col + GEMM, one image per task, images spread over the threads. Each thread
// keeps its column buffer between calls, so a training step allocates nothing here once warm.
#include "kernels/conv2d.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv2d.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/simd.h"
#include "kernels/cpu/conv_image.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

// Stride 1, no padding, no dilation (the common 3x3 "valid" convolution): each column row is a
// block of the input plane, copied without per-element bounds.
bool is_dense_valid(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0 && s.dilation_h == 1 && s.dilation_w == 1;
}

// col[(c, ki, kj), (oh, ow)] = x[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw], zero outside the image.
void im2col(const Conv2dShape& s, const float* image, float* col) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  if (is_dense_valid(s)) {
    for (int64_t c = 0; c < s.in_channels; ++c) {
      for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
        for (int64_t kj = 0; kj < s.kernel_w; ++kj, col += oh_n * ow_n) {
          simd::copy_rows(image + (c * s.in_h + ki) * s.in_w + kj, s.in_w, col, ow_n, oh_n, ow_n);
        }
      }
    }
    return;
  }
  const int64_t plane_size = s.in_h * s.in_w;
  for (int64_t c = 0; c < s.in_channels; ++c) {
    const float* plane = image + c * plane_size;
    for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
      for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
        float* row = col + ((c * s.kernel_h + ki) * s.kernel_w + kj) * oh_n * ow_n;
        for (int64_t oh = 0; oh < oh_n; ++oh) {
          const int64_t ih = oh * s.stride_h - s.pad_h + ki * s.dilation_h;
          float* out = row + oh * ow_n;
          if (ih < 0 || ih >= s.in_h) {
            std::fill(out, out + ow_n, 0.0f);
            continue;
          }
          const float* in_row = plane + ih * s.in_w;
          const int64_t offset = kj * s.dilation_w - s.pad_w;
          if (s.stride_w == 1) {
            // Contiguous run: zero the left and right margins, copy the middle.
            const int64_t lo = std::clamp<int64_t>(-offset, 0, ow_n);
            const int64_t hi = std::clamp<int64_t>(s.in_w - offset, lo, ow_n);
            simd::fill(0.0f, lo, out);
            simd::copy(in_row + lo + offset, hi - lo, out + lo);
            simd::fill(0.0f, ow_n - hi, out + hi);
          } else {
            for (int64_t ow = 0; ow < ow_n; ++ow) {
              const int64_t iw = ow * s.stride_w + offset;
              out[ow] = (iw >= 0 && iw < s.in_w) ? in_row[iw] : 0.0f;
            }
          }
        }
      }
    }
  }
}

// The adjoint of im2col: adds each column entry back into the image cell it was read from.
void col2im(const Conv2dShape& s, const float* col, float* image) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
#if HORO_TARGET_MASKED_MEMORY
  namespace hn = hwy::HWY_NAMESPACE;
  const hn::ScalableTag<float> d;
  const hn::RebindToSigned<decltype(d)> di;
  const int64_t n = static_cast<int64_t>(hn::Lanes(d));
  if (is_dense_valid(s) && s.in_w <= 2 * n) {
    // One image row at a time in one or two vectors, summing every column entry that lands on it
    // (each entry loaded already shifted to its column by a masked load that starts kj floats early:
    // masked-off lanes read nothing), so each row is written once and never re-read.
    const auto lane = hn::Iota(di, 0), width = hn::Set(di, static_cast<int32_t>(ow_n));
    const bool two = s.in_w > n;
    const auto store_lo = static_cast<size_t>(std::min(n, s.in_w));
    const auto store_hi = static_cast<size_t>(std::max<int64_t>(0, s.in_w - n));
    for (int64_t c = 0; c < s.in_channels; ++c) {
      for (int64_t r = 0; r < s.in_h; ++r) {
        auto acc0 = hn::Zero(d), acc1 = hn::Zero(d);
        for (int64_t ki = std::max<int64_t>(0, r - (oh_n - 1)); ki <= std::min<int64_t>(s.kernel_h - 1, r); ++ki) {
          const float* row0 = col + (c * s.kernel_h + ki) * s.kernel_w * oh_n * ow_n + (r - ki) * ow_n;
          for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
            // Image columns [kj, kj + ow_n) take this kernel column's entries.
            const auto shifted = hn::Sub(lane, hn::Set(di, static_cast<int32_t>(kj)));
            const auto in0 = hn::RebindMask(d, hn::AndNot(shifted < hn::Zero(di), shifted < width));
            const float* src = row0 + kj * oh_n * ow_n - kj;
            acc0 = hn::Add(acc0, hn::MaskedLoad(in0, d, src));
            if (two) {
              const auto shifted1 = hn::Add(shifted, hn::Set(di, static_cast<int32_t>(n)));
              const auto in1 = hn::RebindMask(d, hn::AndNot(shifted1 < hn::Zero(di), shifted1 < width));
              acc1 = hn::Add(acc1, hn::MaskedLoad(in1, d, src + n));
            }
          }
        }
        float* dst = image + (c * s.in_h + r) * s.in_w;
        simd::store_first(acc0, d, dst, store_lo);
        if (two && store_hi > 0) simd::store_first(acc1, d, dst + n, store_hi);
      }
    }
    return;
  }
#endif
  std::fill(image, image + s.in_channels * s.in_h * s.in_w, 0.0f);
  for (int64_t c = 0; c < s.in_channels; ++c) {
    float* plane = image + c * s.in_h * s.in_w;
    for (int64_t ki = 0; ki < s.kernel_h; ++ki) {
      for (int64_t kj = 0; kj < s.kernel_w; ++kj) {
        const float* row = col + ((c * s.kernel_h + ki) * s.kernel_w + kj) * oh_n * ow_n;
        for (int64_t oh = 0; oh < oh_n; ++oh) {
          const int64_t ih = oh * s.stride_h - s.pad_h + ki * s.dilation_h;
          if (ih < 0 || ih >= s.in_h) continue;
          float* in_row = plane + ih * s.in_w;
          const float* src = row + oh * ow_n;
          const int64_t offset = kj * s.dilation_w - s.pad_w;
          if (s.stride_w == 1) {
            const int64_t lo = std::clamp<int64_t>(-offset, 0, ow_n);
            const int64_t hi = std::clamp<int64_t>(s.in_w - offset, lo, ow_n);
            simd::add(src + lo, hi - lo, in_row + lo + offset);
            continue;
          }
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            const int64_t iw = ow * s.stride_w + offset;
            if (iw >= 0 && iw < s.in_w) in_row[iw] += src[ow];
          }
        }
      }
    }
  }
}

}  // namespace

float* thread_buffer(std::vector<float>& buffer, int64_t size) {
  constexpr int64_t kAlign = 16;  // floats: 64 bytes, a cache line and an AVX-512 vector
  if (static_cast<int64_t>(buffer.size()) < size + kAlign) buffer.resize(static_cast<size_t>(size + kAlign));
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return reinterpret_cast<float*>((address + 63) & ~uintptr_t{63});
}

float* thread_columns(const Conv2dShape& s) {
  thread_local std::vector<float> columns;
  return thread_buffer(columns, patch_size(s) * s.out_h() * s.out_w());
}

void conv_image_forward(const Conv2dShape& s, const float* image, const float* weight, const float* bias,
                        float* out, float* col) {
  if (conv_image_forward_single_channel(s, image, weight, bias, out)) return;
  const int64_t spatial = s.out_h() * s.out_w(), patch = patch_size(s);
  im2col(s, image, col);
  if (bias) {
    for (int64_t o = 0; o < s.out_channels; ++o) simd::fill(bias[o], spatial, out + o * spatial);
  }
  gemm({.m = s.out_channels, .n = spatial, .k = patch, .a = weight, .lda = patch, .b = col, .ldb = spatial,
        .beta = bias ? 1.0f : 0.0f, .c = out, .ldc = spatial});
}

void conv_image_backward_input(const Conv2dShape& s, const float* grad_out, const float* weight, float* grad_image,
                               float* col) {
  const int64_t spatial = s.out_h() * s.out_w(), patch = patch_size(s);
  gemm({.trans_a = true, .m = patch, .n = spatial, .k = s.out_channels, .a = weight, .lda = patch, .b = grad_out,
        .ldb = spatial, .c = col, .ldc = spatial});
  col2im(s, col, grad_image);
}

void conv_image_accumulate_weight_grad(const Conv2dShape& s, const float* image, const float* grad_out,
                                       float* grad_weight, float* grad_bias, float* col) {
  if (conv_image_accumulate_weight_grad_single_channel(s, image, grad_out, grad_weight, grad_bias)) return;
  const int64_t spatial = s.out_h() * s.out_w(), patch = patch_size(s);
  im2col(s, image, col);
  gemm({.trans_b = true, .m = s.out_channels, .n = patch, .k = spatial, .a = grad_out, .lda = spatial, .b = col,
        .ldb = spatial, .beta = 1.0f, .c = grad_weight, .ldc = patch});
  if (grad_bias) {
    for (int64_t o = 0; o < s.out_channels; ++o) grad_bias[o] += simd::sum(grad_out + o * spatial, spatial);
  }
}

void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                    float* output) {
  // With one input channel the direct tiles lose: to the single-channel kernel (AVX-512) and to im2col +
  // GEMM elsewhere (W1's conv1 on AVX2: 13 against 21 GFLOP/s).
  if (s.in_channels > 1 && conv2d_forward_direct(s, input, weight, bias, output)) return;
  const int64_t image_size = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * s.out_h() * s.out_w();
  parallel_for(s.batch, 1, [&](int64_t begin, int64_t end) {
    float* col = thread_columns(s);
    for (int64_t n = begin; n < end; ++n) {
      conv_image_forward(s, input + n * image_size, weight, bias, output + n * out_size, col);
    }
  });
}

void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight,
                           float* grad_input) {
  if (conv2d_backward_input_direct(s, grad_output, weight, grad_input)) return;
  if (conv2d_backward_input_strided(s, grad_output, weight, grad_input)) return;
  const int64_t image_size = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * s.out_h() * s.out_w();
  parallel_for(s.batch, 1, [&](int64_t begin, int64_t end) {
    float* col = thread_columns(s);
    for (int64_t n = begin; n < end; ++n) {
      conv_image_backward_input(s, grad_output + n * out_size, weight, grad_input + n * image_size, col);
    }
  });
}

void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output,
                            float* grad_weight, float* grad_bias) {
  if (!single_channel_fits(s) && conv2d_backward_weight_direct(s, input, grad_output, grad_weight, grad_bias)) return;
  const int64_t image_size = s.in_channels * s.in_h * s.in_w, out_size = s.out_channels * s.out_h() * s.out_w();
  for_each_image_accumulating(s, grad_weight, grad_bias, [&](int64_t n, float* acc_weight, float* acc_bias) {
    conv_image_accumulate_weight_grad(s, input + n * image_size, grad_output + n * out_size, acc_weight, acc_bias,
                                      thread_columns(s));
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(conv2d_forward);
void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output) { HORO_CPU_DISPATCH(conv2d_forward)(s, input, weight, bias, output); }

HWY_EXPORT(conv2d_backward_input);
void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input) { HORO_CPU_DISPATCH(conv2d_backward_input)(s, grad_output, weight, grad_input); }

HWY_EXPORT(conv2d_backward_weight);
void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight, float* grad_bias) { HORO_CPU_DISPATCH(conv2d_backward_weight)(s, input, grad_output, grad_weight, grad_bias); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
