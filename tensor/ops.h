// Tensor ops without autograd: shape checks, output allocation and dispatch to kernels/ by device.
// nn/functional.h builds the differentiable ops from these (forward and backward alike).
#pragma once

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/activation.h"
#include "kernels/binary.h"
#include "tensor/tensor.h"

namespace horo::ops {

// ---- linear algebra ----
// op(a) @ op(b) for 2-d float32 tensors.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x [N, in] @ weight[out, in]^T + bias [out] (bias may be undefined): PyTorch's F.linear.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

// ---- convolution and pooling (NCHW) ----
// The largest kernel, stride, padding or dilation accepted: shape arithmetic on them stays exact.
inline constexpr int64_t kMaxWindowExtent = 2147483647;  // 2^31 - 1
struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0, dilation_h = 1, dilation_w = 1;
};
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);
Tensor conv2d_backward_input(const Tensor& grad_output, const Tensor& weight, const Shape& input_shape,
                             const Conv2dParams& p);
// Returns (grad_weight, grad_bias); grad_bias is undefined unless with_bias.
std::pair<Tensor, Tensor> conv2d_backward_weight(const Tensor& input, const Tensor& grad_output,
                                                 const Shape& weight_shape, bool with_bias,
                                                 const Conv2dParams& p);

struct Pool2dParams {
  int64_t kernel_h = 2, kernel_w = 2, stride_h = 2, stride_w = 2, pad_h = 0, pad_w = 0;
};
// Returns (output, argmax) where argmax (int32) indexes each window's maximum within its plane.
std::pair<Tensor, Tensor> maxpool2d(const Tensor& input, const Pool2dParams& p);
Tensor maxpool2d_backward(const Tensor& grad_output, const Tensor& argmax, const Shape& input_shape,
                          const Pool2dParams& p);
// Conv2d + bias + ReLU + max pooling in one pass, one image at a time (CPU tensors only; see
// kernels/conv_block.h). Returns (output, argmax) like maxpool2d.
std::pair<Tensor, Tensor> conv2d_relu_maxpool2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                                const Conv2dParams& conv, const Pool2dParams& pool);
struct ConvBlockGrads {
  Tensor input, weight, bias;  // each undefined unless asked for
};
ConvBlockGrads conv2d_relu_maxpool2d_backward(const Tensor& input, const Tensor& weight, const Tensor& output,
                                              const Tensor& argmax, const Tensor& grad_output, bool want_input,
                                              bool want_weight, bool want_bias, const Conv2dParams& conv,
                                              const Pool2dParams& pool);
Tensor avgpool2d(const Tensor& input, const Pool2dParams& p);
Tensor avgpool2d_backward(const Tensor& grad_output, const Shape& input_shape, const Pool2dParams& p);

// conv2d and the per-channel mean and biased variance of its output (the batch statistics of the
// BatchNorm after it), taken about `shift` (per channel, e.g. the running mean); in one pass where
// the CPU's direct kernels apply (kernels/conv_stats.h), else the two ops in turn. Returns
// (output, mean, var).
std::tuple<Tensor, Tensor, Tensor> conv2d_batch_stats(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                                      const Conv2dParams& p, const Tensor& shift);

// Adaptive average pooling to out_h x out_w (torch.nn.AdaptiveAvgPool2d; 1x1 is global pooling).
Tensor adaptive_avgpool2d(const Tensor& input, int64_t out_h, int64_t out_w);
Tensor adaptive_avgpool2d_backward(const Tensor& grad_output, const Shape& input_shape);

// ---- batch normalisation over [N, C, H, W] or [N, C] (kernels/batch_norm.h) ----
// Per-channel mean and biased variance of this batch.
std::pair<Tensor, Tensor> batch_norm_stats(const Tensor& x);
struct BatchNormCoefficients {
  Tensor invstd, scale, shift;  // y = x * scale + shift
};
BatchNormCoefficients batch_norm_coefficients(const Tensor& mean, const Tensor& var, const Tensor& weight,
                                              const Tensor& bias, float eps);
// running = (1 - momentum) * running + momentum * batch value (the variance times `unbias` first).
void batch_norm_update_running(const Tensor& mean, const Tensor& var, float momentum, float unbias, Tensor& running_mean,
                               Tensor& running_var);
// x * scale[c] + shift[c] (+ residual when defined, same shape as x), then ReLU when relu.
Tensor batch_norm_apply(const Tensor& x, const Tensor& scale, const Tensor& shift, bool relu,
                        const Tensor& residual = Tensor());
// (sum_dy, sum_dy_xhat) per channel. relu_scale and relu_shift (the forward pass's coefficients),
// when defined, mask dy where a fused ReLU cut the output to 0.
std::pair<Tensor, Tensor> batch_norm_backward_reduce(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift,
                                                     const Tensor& dy, const Tensor& mean, const Tensor& invstd);
// The input gradient; sum_dy and sum_dy_xhat undefined when the statistics were constants (eval mode).
Tensor batch_norm_backward_input(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift, const Tensor& dy,
                                 const Tensor& mean, const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy,
                                 const Tensor& sum_dy_xhat, double count);
// Both in one call with this process's sums (a BatchNorm that is not synchronised across ranks):
// (dx, sum_dy, sum_dy_xhat), count = the values per channel of x.
struct BatchNormGrads {
  Tensor grad_input, sum_dy, sum_dy_xhat;
};
BatchNormGrads batch_norm_backward(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift, const Tensor& dy,
                                   const Tensor& mean, const Tensor& invstd, const Tensor& weight);

// counter[0] += by for an int64 scalar on any device (BatchNorm's num_batches_tracked).
void increment(Tensor& counter, int64_t by = 1);

// ---- pointwise ----
Tensor unary(kernels::Unary op, const Tensor& x, float param = 0.0f);
Tensor unary_backward(kernels::Unary op, float param, const Tensor& x, const Tensor& y, const Tensor& grad_y);
// The broadcast shape of a and b (PyTorch rules); `what` names the op in the error.
Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& what);
Tensor binary(kernels::Binary op, const Tensor& a, const Tensor& b);
// alpha * x + beta
Tensor affine(const Tensor& x, float alpha, float beta);
// max(a + b, 0) for same-shaped a and b: a residual connection and its ReLU in one pass.
Tensor add_relu(const Tensor& a, const Tensor& b);
// target += source (same shape), for gradient accumulation.
void accumulate(Tensor& target, const Tensor& source);
// Returns (y, mask) with y = x * mask, mask from Philox (seed, offset + i).
std::pair<Tensor, Tensor> dropout(const Tensor& x, float p, uint64_t seed, uint64_t offset);
Tensor softmax(const Tensor& x, int64_t dim, bool log);
Tensor softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t dim, bool log);

// ---- shape ----
// The tensors joined along dimension dim (every other dimension equal), as torch.cat.
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim);
// A copy of x[..., start:start + length, ...] along dimension dim (torch.narrow, copied).
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);

// ---- reductions ----
// Sum over dimension dim (negative counts from the end), keeping it as size 1 when keepdim.
Tensor sum(const Tensor& x, int64_t dim, bool keepdim);
Tensor sum_all(const Tensor& x);
// Sums a broadcast result back to `shape`: the gradient of broadcasting.
Tensor sum_to_shape(const Tensor& x, const Shape& shape);
// Repeats x (whose shape broadcasts to `shape`) into a tensor of `shape`.
Tensor broadcast_to(const Tensor& x, const Shape& shape);
// Index of the largest value along the last dimension of a 2-d tensor, as int64 [rows].
Tensor argmax_rows(const Tensor& x);
// The number of rows whose largest logit (the first; NaN counts largest) is at the row's label, as a
// float32 scalar on the logits' device: counted without the host waiting for a GPU.
Tensor count_correct(const Tensor& logits, const Tensor& labels);

// ---- losses ----
struct CrossEntropyOptions {
  Tensor weight;  // [classes] float32, or undefined
  float label_smoothing = 0.0f;
};
// Checks labels (int64 [N], each in [0, C); on a GPU, by the kernels, raised at the next host wait)
// and returns (loss scalar on the logits' device, log_probs [N, C]).
std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o);
// The logits' gradient for the loss's gradient grad_loss (a scalar on the same device).
Tensor cross_entropy_backward(const Tensor& log_probs, const Tensor& labels, const CrossEntropyOptions& o,
                              const Tensor& grad_loss);

// Resolves a possibly negative dimension index against rank, naming `what` in the error.
int64_t normalize_dim(int64_t dim, int64_t rank, const std::string& what);

}  // namespace horo::ops
