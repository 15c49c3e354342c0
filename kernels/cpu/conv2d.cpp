// Convolution as im2col + GEMM, one image per task, images spread over the threads. Each thread
// keeps its column buffer between calls, so a training step allocates nothing here once warm.
#include "kernels/conv2d.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/gemm.h"
#include "kernels/parallel.h"

namespace horo::kernels::cpu {
namespace {

float* thread_buffer(std::vector<float>& buffer, int64_t size) {
  if (static_cast<int64_t>(buffer.size()) < size) buffer.resize(static_cast<size_t>(size));
  return buffer.data();
}

thread_local std::vector<float> t_columns;

// col[(c, ki, kj), (oh, ow)] = x[c, oh*sh - ph + ki*dh, ow*sw - pw + kj*dw], zero outside the image.
void im2col(const Conv2dShape& s, const float* image, float* col) {
  const int64_t oh_n = s.out_h(), ow_n = s.out_w();
  for (int64_t c = 0; c < s.in_channels; ++c) {
    const float* plane = image + c * s.in_h * s.in_w;
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
            std::fill(out, out + lo, 0.0f);
            std::memcpy(out + lo, in_row + lo + offset, static_cast<size_t>(hi - lo) * sizeof(float));
            std::fill(out + hi, out + ow_n, 0.0f);
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
          for (int64_t ow = 0; ow < ow_n; ++ow) {
            const int64_t iw = ow * s.stride_w + offset;
            if (iw >= 0 && iw < s.in_w) in_row[iw] += src[ow];
          }
        }
      }
    }
  }
}

int64_t patch_size(const Conv2dShape& s) { return s.in_channels * s.kernel_h * s.kernel_w; }

}  // namespace

void conv2d_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                    float* output) {
  const int64_t spatial = s.out_h() * s.out_w(), patch = patch_size(s);
  const int64_t image_size = s.in_channels * s.in_h * s.in_w;
  parallel_for(s.batch, 1, [&](int64_t begin, int64_t end) {
    float* col = thread_buffer(t_columns, patch * spatial);
    for (int64_t n = begin; n < end; ++n) {
      im2col(s, input + n * image_size, col);
      float* out = output + n * s.out_channels * spatial;
      if (bias) {
        for (int64_t o = 0; o < s.out_channels; ++o) std::fill(out + o * spatial, out + (o + 1) * spatial, bias[o]);
      }
      gemm({.m = s.out_channels, .n = spatial, .k = patch, .a = weight, .lda = patch, .b = col,
            .ldb = spatial, .beta = bias ? 1.0f : 0.0f, .c = out, .ldc = spatial});
    }
  });
}

void conv2d_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight,
                           float* grad_input) {
  const int64_t spatial = s.out_h() * s.out_w(), patch = patch_size(s);
  const int64_t image_size = s.in_channels * s.in_h * s.in_w;
  parallel_for(s.batch, 1, [&](int64_t begin, int64_t end) {
    float* col = thread_buffer(t_columns, patch * spatial);
    for (int64_t n = begin; n < end; ++n) {
      gemm({.trans_a = true, .m = patch, .n = spatial, .k = s.out_channels, .a = weight, .lda = patch,
            .b = grad_output + n * s.out_channels * spatial, .ldb = spatial, .c = col, .ldc = spatial});
      col2im(s, col, grad_input + n * image_size);
    }
  });
}

void conv2d_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output,
                            float* grad_weight, float* grad_bias) {
  const int64_t spatial = s.out_h() * s.out_w(), patch = patch_size(s);
  const int64_t image_size = s.in_channels * s.in_h * s.in_w;
  const int64_t weight_size = s.out_channels * patch;
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  // One partial gradient per thread, summed at the end, so no two threads write the same cell.
  std::vector<float> partials(static_cast<size_t>(weight_size) * (threads - 1));
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* acc = t == 0 ? grad_weight : partials.data() + (t - 1) * weight_size;
      std::fill(acc, acc + weight_size, 0.0f);
      float* col = thread_buffer(t_columns, patch * spatial);
      for (int64_t n = s.batch * t / threads; n < s.batch * (t + 1) / threads; ++n) {
        im2col(s, input + n * image_size, col);
        gemm({.trans_b = true, .m = s.out_channels, .n = patch, .k = spatial,
              .a = grad_output + n * s.out_channels * spatial, .lda = spatial, .b = col, .ldb = spatial,
              .beta = 1.0f, .c = acc, .ldc = patch});
      }
    }
  });
  for (int t = 1; t < threads; ++t) {
    const float* part = partials.data() + (t - 1) * weight_size;
    for (int64_t i = 0; i < weight_size; ++i) grad_weight[i] += part[i];
  }
  if (grad_bias) {
    for (int64_t o = 0; o < s.out_channels; ++o) {
      double acc = 0.0;
      for (int64_t n = 0; n < s.batch; ++n) {
        const float* g = grad_output + (n * s.out_channels + o) * spatial;
        float plane = 0.0f;
        for (int64_t i = 0; i < spatial; ++i) plane += g[i];
        acc += plane;
      }
      grad_bias[o] = static_cast<float>(acc);
    }
  }
}

}  // namespace horo::kernels::cpu
