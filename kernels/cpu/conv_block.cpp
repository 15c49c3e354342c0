#include "kernels/conv_block.h"

#include <vector>

#include "kernels/parallel.h"
#include "kernels/unary_math.h"

// Compiled once per SIMD target (hwy/foreach_target.h); the entry points at the end dispatch.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv_block.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/conv_image.h"

HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {
namespace {

thread_local std::vector<float> t_conv_out;
thread_local std::vector<float> t_pooled_grad;

Pool2dShape one_image(const Conv2dShape& conv, const Pool2dShape& pool) {
  Pool2dShape p = pool;
  p.planes = conv.out_channels;
  return p;
}

}  // namespace

void conv_relu_maxpool_forward(const Conv2dShape& conv, const Pool2dShape& pool, const float* input,
                               const float* weight, const float* bias, float* output, int32_t* argmax) {
  const Pool2dShape image_pool = one_image(conv, pool);
  const int64_t image_size = conv.in_channels * conv.in_h * conv.in_w;
  const int64_t conv_size = conv.out_channels * conv.out_h() * conv.out_w();
  const int64_t pooled_size = conv.out_channels * pool.out_h() * pool.out_w();
  parallel_for(conv.batch, 1, [&](int64_t begin, int64_t end) {
    float* conv_out = thread_buffer(t_conv_out, conv_size);
    float* col = thread_columns(conv);
    for (int64_t n = begin; n < end; ++n) {
      conv_image_forward(conv, input + n * image_size, weight, bias, conv_out, col);
      float* out = output + n * pooled_size;
      maxpool2d_forward(image_pool, conv_out, out, argmax + n * pooled_size);  // serial inside this thread
      for (int64_t i = 0; i < pooled_size; ++i) out[i] = unary_math::forward(Unary::ReLU, 0.0f, out[i]);
    }
  });
}

void conv_relu_maxpool_backward(const Conv2dShape& conv, const Pool2dShape& pool, const float* input,
                                const float* weight, const float* output, const int32_t* argmax,
                                const float* grad_output, float* grad_input, float* grad_weight, float* grad_bias) {
  const Pool2dShape image_pool = one_image(conv, pool);
  const int64_t image_size = conv.in_channels * conv.in_h * conv.in_w;
  const int64_t conv_size = conv.out_channels * conv.out_h() * conv.out_w();
  const int64_t pooled_size = conv.out_channels * pool.out_h() * pool.out_w();
  // The convolution output's gradient for image n: the pooled gradient through ReLU (whose
  // derivative at the window's maximum is that of its pooled output) to each window's argmax.
  auto conv_grad = [&](int64_t n) {
    float* masked = thread_buffer(t_pooled_grad, pooled_size);
    const float* y = output + n * pooled_size;
    const float* g = grad_output + n * pooled_size;
    for (int64_t i = 0; i < pooled_size; ++i) masked[i] = y[i] > 0.0f ? g[i] : 0.0f;
    float* conv_out_grad = thread_buffer(t_conv_out, conv_size);
    maxpool2d_backward(image_pool, masked, argmax + n * pooled_size, conv_out_grad);
    return conv_out_grad;
  };
  if (grad_weight || grad_bias) {
    // Each thread's images: the weight gradient, and the input gradient while the conv gradient is in cache.
    std::vector<float> weight_scratch(grad_weight ? 0 : static_cast<size_t>(conv.out_channels * patch_size(conv)));
    float* gw = grad_weight ? grad_weight : weight_scratch.data();
    for_each_image_accumulating(conv, gw, grad_bias, [&](int64_t n, float* acc_weight, float* acc_bias) {
      const float* conv_out_grad = conv_grad(n);
      float* col = thread_columns(conv);
      conv_image_accumulate_weight_grad(conv, input + n * image_size, conv_out_grad, acc_weight, acc_bias, col);
      if (grad_input) conv_image_backward_input(conv, conv_out_grad, weight, grad_input + n * image_size, col);
    });
    return;
  }
  if (!grad_input) return;
  parallel_for(conv.batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      conv_image_backward_input(conv, conv_grad(n), weight, grad_input + n * image_size, thread_columns(conv));
    }
  });
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace horo::kernels::cpu {

HWY_EXPORT(conv_relu_maxpool_forward);
void conv_relu_maxpool_forward(const Conv2dShape& conv, const Pool2dShape& pool, const float* input, const float* weight, const float* bias, float* output, int32_t* argmax) { HORO_CPU_DISPATCH(conv_relu_maxpool_forward)(conv, pool, input, weight, bias, output, argmax); }

HWY_EXPORT(conv_relu_maxpool_backward);
void conv_relu_maxpool_backward(const Conv2dShape& conv, const Pool2dShape& pool, const float* input, const float* weight, const float* output, const int32_t* argmax, const float* grad_output, float* grad_input, float* grad_weight, float* grad_bias) { HORO_CPU_DISPATCH(conv_relu_maxpool_backward)(conv, pool, input, weight, output, argmax, grad_output, grad_input, grad_weight, grad_bias); }

}  // namespace horo::kernels::cpu
#endif  // HWY_ONCE
