// One image's convolution steps, shared by the batched convolution (conv2d.cpp) and the fused
// conv + ReLU + max-pool block (conv_block.cpp). Internal to the CPU kernels.
// A per-target header: included from kernel files compiled once per SIMD target.
#if defined(HORO_KERNELS_CPU_CONV_IMAGE_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef HORO_KERNELS_CPU_CONV_IMAGE_H_
#undef HORO_KERNELS_CPU_CONV_IMAGE_H_
#else
#define HORO_KERNELS_CPU_CONV_IMAGE_H_
#endif

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/pool2d.h"
#include "kernels/parallel.h"

#include <hwy/highway.h>


HWY_BEFORE_NAMESPACE();
namespace horo::kernels::cpu::HWY_NAMESPACE {

inline int64_t patch_size(const Conv2dShape& s) { return s.in_channels * s.kernel_h * s.kernel_w; }

// A per-thread scratch buffer of at least `size` floats, 64-byte aligned, kept between calls.
float* thread_buffer(std::vector<float>& buffer, int64_t size);
// This thread's im2col buffer for shape s.
float* thread_columns(const Conv2dShape& s);

// out [out_channels, out_h * out_w] = conv(image) + bias (bias may be null).
void conv_image_forward(const Conv2dShape& s, const float* image, const float* weight, const float* bias,
                        float* out, float* col);
// grad_image = conv_transpose(grad_out, weight); overwrites grad_image.
void conv_image_backward_input(const Conv2dShape& s, const float* grad_out, const float* weight, float* grad_image,
                               float* col);
// grad_weight += grad_out x im2col(image)^T; grad_bias (when not null) += per-channel sums of grad_out.
void conv_image_accumulate_weight_grad(const Conv2dShape& s, const float* image, const float* grad_out,
                                       float* grad_weight, float* grad_bias, float* col);

// Direct versions for one input channel and a 3x3 stride-1 unpadded kernel (conv_direct.cpp);
// each returns false, doing nothing, when the shape is not one it handles.
bool conv_image_forward_single_channel(const Conv2dShape& s, const float* image, const float* weight,
                                       const float* bias, float* out);
bool conv_image_accumulate_weight_grad_single_channel(const Conv2dShape& s, const float* image,
                                                      const float* grad_out, float* grad_weight, float* grad_bias);
// Whether the single-channel kernels above handle s (on this target).
bool single_channel_fits(const Conv2dShape& s);

// The fused Conv2d-ReLU-MaxPool2d block for one input channel, 3x3 stride 1 unpadded and 2x2 stride-2
// pooling (conv_block_single.cpp), as conv_relu_maxpool_forward and the weight and bias gradients
// of conv_relu_maxpool_backward (overwritten; grad_bias may be null). Each returns false, doing
// nothing, for a shape it does not handle or on a target without it.
bool conv_relu_maxpool_forward_single_channel(const Conv2dShape& conv, const Pool2dShape& pool, const float* input,
                                              const float* weight, const float* bias, float* output, int32_t* argmax);
bool conv_relu_maxpool_backward_weight_single_channel(const Conv2dShape& conv, const Pool2dShape& pool,
                                                      const float* input, const float* output, const int32_t* argmax,
                                                      const float* grad_output, float* grad_weight, float* grad_bias);
// The fused block's backward for more than one input channel, 3x3 kernels and non-overlapping pooling
// at least 2x2 apart (conv_block_sparse.cpp), as conv_relu_maxpool_backward: from the cells that carry
// a gradient alone. grad_input, grad_weight and grad_bias may each be null. Returns false, doing
// nothing, for a shape it does not handle or on a target without it.
bool conv_relu_maxpool_backward_sparse(const Conv2dShape& conv, const Pool2dShape& pool, const float* input,
                                       const float* weight, const float* output, const int32_t* argmax,
                                       const float* grad_output, float* grad_input, float* grad_weight,
                                       float* grad_bias);

// Direct 3x3 convolutions on zero-padded images (conv_padded.cpp), whole batches: stride 1 or 2
// (the input gradient: 1), any padding up to 2, no dilation. Each returns false, doing nothing, for a shape it does not handle
// (or whose channels would fill too little of a vector to beat im2col).
bool conv_direct_applies(const Conv2dShape& s);
bool conv2d_forward_direct(const Conv2dShape& s, const float* input, const float* weight, const float* bias,
                           float* output);
bool conv2d_backward_input_direct(const Conv2dShape& s, const float* grad_output, const float* weight,
                                  float* grad_input);
bool conv2d_backward_weight_direct(const Conv2dShape& s, const float* input, const float* grad_output,
                                   float* grad_weight, float* grad_bias);
// Winograd F(2x2, 3x3) or F(4x4, 3x3) for 3x3 stride-1 convolutions, padding up to 2 (conv_winograd.cpp): whether it
// applies to s (and HORO_WINOGRAD=0 does not turn it off), and the batched convolution. With
// `transposed`, weight is that of the convolution whose input gradient this is ([s.in][s.out][3][3],
// rotated by 180 degrees here). With `sums`, also the per-channel sums of (y - shift) and of its
// squares over the batch, in double (sums[o], sums[out_channels + o]).
bool winograd_applies(const Conv2dShape& s);
// HORO_WINOGRAD (-1 auto, 0 off, 1 on) and HORO_WINOGRAD_TILE (0 auto, 2 or 4), both checked on first
// use; whether s's shape suits Winograd at all.
int winograd_mode();
int winograd_forced_tile();
bool winograd_fits(const Conv2dShape& s);
void winograd_forward(const Conv2dShape& s, const float* input, const float* weight, bool transposed, const float* bias,
                      float* output, const float* shift = nullptr, double* sums = nullptr);
// The weight gradient (and bias gradient, when grad_bias is not null) by Winograd
// (conv_winograd_wgrad.cpp); false where it does not apply or is slower than the direct tiles.
bool winograd_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                              float* grad_bias);
// The input gradient of a 3x3 stride-2 convolution (conv_transposed.cpp); false for other shapes.
bool conv2d_backward_input_strided(const Conv2dShape& s, const float* grad_output, const float* weight,
                                   float* grad_input);

// Runs visit(n, acc_weight, acc_bias) for every image n, images spread over the threads, each thread
// accumulating into its own zeroed partial sums, which are then added into grad_weight and grad_bias
// (overwritten; grad_bias may be null). No two threads write the same cell.
template <typename Visit>
void for_each_image_accumulating(const Conv2dShape& s, float* grad_weight, float* grad_bias, const Visit& visit) {
  const int64_t weight_size = s.out_channels * patch_size(s);
  const int64_t bias_size = grad_bias ? s.out_channels : 0;
  const int threads = std::max(1, std::min<int>(get_num_threads(), static_cast<int>(s.batch)));
  std::vector<float> partials(static_cast<size_t>((weight_size + bias_size) * (threads - 1)));
  parallel_for(threads, 1, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t t = t_begin; t < t_end; ++t) {
      float* acc_weight = t == 0 ? grad_weight : partials.data() + (t - 1) * (weight_size + bias_size);
      float* acc_bias = !grad_bias ? nullptr : t == 0 ? grad_bias : acc_weight + weight_size;
      std::fill(acc_weight, acc_weight + weight_size, 0.0f);
      if (acc_bias) std::fill(acc_bias, acc_bias + bias_size, 0.0f);
      for (int64_t n = s.batch * t / threads; n < s.batch * (t + 1) / threads; ++n) visit(n, acc_weight, acc_bias);
    }
  });
  for (int t = 1; t < threads; ++t) {
    const float* part = partials.data() + (t - 1) * (weight_size + bias_size);
    for (int64_t i = 0; i < weight_size; ++i) grad_weight[i] += part[i];
    for (int64_t i = 0; i < bias_size; ++i) grad_bias[i] += part[weight_size + i];
  }
}

}  // namespace horo::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
