// Adaptive average pooling by definition, in double.
#include "kernels/adaptive_pool.h"

namespace horo::kernels::ref {

void adaptive_avgpool2d_forward(const AdaptivePool2dShape& s, const float* input, float* output) {
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t i = 0; i < s.out_h; ++i)
      for (int64_t j = 0; j < s.out_w; ++j) {
        const int64_t h0 = adaptive_begin(i, s.in_h, s.out_h), h1 = adaptive_end(i, s.in_h, s.out_h);
        const int64_t w0 = adaptive_begin(j, s.in_w, s.out_w), w1 = adaptive_end(j, s.in_w, s.out_w);
        double sum = 0.0;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) sum += input[(p * s.in_h + h) * s.in_w + w];
        output[(p * s.out_h + i) * s.out_w + j] = static_cast<float>(sum / static_cast<double>((h1 - h0) * (w1 - w0)));
      }
}

void adaptive_avgpool2d_backward(const AdaptivePool2dShape& s, const float* grad_output, float* grad_input) {
  for (int64_t k = 0; k < s.planes * s.in_h * s.in_w; ++k) grad_input[k] = 0.0f;
  for (int64_t p = 0; p < s.planes; ++p)
    for (int64_t i = 0; i < s.out_h; ++i)
      for (int64_t j = 0; j < s.out_w; ++j) {
        const int64_t h0 = adaptive_begin(i, s.in_h, s.out_h), h1 = adaptive_end(i, s.in_h, s.out_h);
        const int64_t w0 = adaptive_begin(j, s.in_w, s.out_w), w1 = adaptive_end(j, s.in_w, s.out_w);
        const double g = grad_output[(p * s.out_h + i) * s.out_w + j] / static_cast<double>((h1 - h0) * (w1 - w0));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) grad_input[(p * s.in_h + h) * s.in_w + w] += static_cast<float>(g);
      }
}

}  // namespace horo::kernels::ref
