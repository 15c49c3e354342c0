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
thread_local std::vector<float> t_batch_conv;  // the whole batch's convolution output (or its gradient)

// Whether the block runs its convolution on the whole batch with the direct (or Winograd) kernels
// rather than image by image with im2col + GEMM: where they apply they are much faster (W1's conv2 on
// AVX-512 at batch 64: 186 against 105 GFLOP/s), and the pooling then reads the output once from L2.
// With one input channel, a 3x3 unpadded convolution under 2x2 pooling (W1's conv1) has its own fused
// kernel (conv_block_single.cpp); other one-channel shapes run image by image, where im2col + GEMM
// measured faster than the direct tiles (W1's conv1 on AVX2: 18 against 10 GFLOP/s).
bool batch_direct(const Conv2dShape& conv) { return conv.in_channels > 1 && conv_direct_applies(conv); }

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
  auto pool_relu = [&](const float* conv_out, int64_t n) {
    float* out = output + n * pooled_size;
    maxpool2d_forward(image_pool, conv_out, out, argmax + n * pooled_size);  // serial inside this thread
    for (int64_t i = 0; i < pooled_size; ++i) out[i] = unary_math::forward(Unary::ReLU, 0.0f, out[i]);
  };
  if (conv_relu_maxpool_forward_single_channel(conv, pool, input, weight, bias, output, argmax)) return;
  if (batch_direct(conv)) {
    float* conv_all = thread_buffer(t_batch_conv, conv.batch * conv_size);
    if (conv2d_forward_direct(conv, input, weight, bias, conv_all)) {
      parallel_for(conv.batch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) pool_relu(conv_all + n * conv_size, n);
      });
      return;
    }
  }
  parallel_for(conv.batch, 1, [&](int64_t begin, int64_t end) {
    float* conv_out = thread_buffer(t_conv_out, conv_size);
    float* col = thread_columns(conv);
    for (int64_t n = begin; n < end; ++n) {
      conv_image_forward(conv, input + n * image_size, weight, bias, conv_out, col);
      pool_relu(conv_out, n);
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
  auto conv_grad_into = [&](int64_t n, float* conv_out_grad) {
    float* masked = thread_buffer(t_pooled_grad, pooled_size);
    const float* y = output + n * pooled_size;
    const float* g = grad_output + n * pooled_size;
    for (int64_t i = 0; i < pooled_size; ++i) masked[i] = y[i] > 0.0f ? g[i] : 0.0f;
    maxpool2d_backward(image_pool, masked, argmax + n * pooled_size, conv_out_grad);
    return conv_out_grad;
  };
  auto conv_grad = [&](int64_t n) { return conv_grad_into(n, thread_buffer(t_conv_out, conv_size)); };
  std::vector<float> weight_scratch(grad_weight || !grad_bias ? 0 : static_cast<size_t>(conv.out_channels * patch_size(conv)));
  float* gw = grad_weight ? grad_weight : weight_scratch.data();
  if (!grad_input && (grad_weight || grad_bias) &&
      conv_relu_maxpool_backward_weight_single_channel(conv, pool, input, output, argmax, grad_output, gw, grad_bias)) {
    return;
  }
  if (conv_relu_maxpool_backward_sparse(conv, pool, input, weight, output, argmax, grad_output, grad_input,
                                        grad_weight, grad_bias)) {
    return;
  }
  if (batch_direct(conv)) {
    // The whole batch's convolution gradient, then the batched direct kernels; a part they do not
    // handle (an input gradient of too few channels) runs image by image on the same gradient.
    float* grad_all = thread_buffer(t_batch_conv, conv.batch * conv_size);
    parallel_for(conv.batch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t n = begin; n < end; ++n) conv_grad_into(n, grad_all + n * conv_size);
    });
    if ((grad_weight || grad_bias) && !conv2d_backward_weight_direct(conv, input, grad_all, gw, grad_bias)) {
      for_each_image_accumulating(conv, gw, grad_bias, [&](int64_t n, float* acc_weight, float* acc_bias) {
        conv_image_accumulate_weight_grad(conv, input + n * image_size, grad_all + n * conv_size, acc_weight, acc_bias,
                                          thread_columns(conv));
      });
    }
    if (grad_input && !conv2d_backward_input_direct(conv, grad_all, weight, grad_input)) {
      parallel_for(conv.batch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; ++n) {
          conv_image_backward_input(conv, grad_all + n * conv_size, weight, grad_input + n * image_size, thread_columns(conv));
        }
      });
    }
    return;
  }
  if (grad_weight || grad_bias) {
    // Each thread's images: the weight gradient, and the input gradient while the conv gradient is in cache.
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
