// Differentiable ops: each computes its result with tensor/ops.h and, when an input requires a
// gradient, records how to send the output gradient back. Custom layers and losses are written
// with these (and the operators below) and need no backward of their own.
#pragma once

#include <cstdint>

#include "nn/autograd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace horo::nn::functional {

using ops::Conv2dParams;
using ops::Pool2dParams;

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p = {});
Tensor max_pool2d(const Tensor& input, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& input, const Pool2dParams& p);
// max_pool2d(relu(conv2d(input, weight, bias))) in one fused pass on the CPU (same values and
// gradients; kernels/conv_block.h); the three ops in turn on other devices.
Tensor conv2d_relu_max_pool2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& conv,
                              const Pool2dParams& pool);

Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, float negative_slope = 0.01f);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor gelu(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor neg(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);
// In training, zeroes each element with probability p and scales the rest by 1/(1-p), drawing from
// `generator` (the default one when null); in evaluation, returns x.
Tensor dropout(const Tensor& x, float p, bool training, Generator* generator = nullptr);

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// alpha * x + beta
Tensor affine(const Tensor& x, float alpha, float beta);

Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);

Tensor reshape(const Tensor& x, const Shape& shape);
// Merges dimensions start_dim..end of x into one, as torch.flatten(x, start_dim).
Tensor flatten(const Tensor& x, int64_t start_dim = 1);

// Cross-entropy from logits [N, C] and int64 labels [N] (mean over the batch).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const ops::CrossEntropyOptions& options = {});
// Mean squared error between same-shaped tensors.
Tensor mse_loss(const Tensor& prediction, const Tensor& target);

// Throws NumericError naming `what` if x holds a NaN or an infinity.
void check_finite(const Tensor& x, const std::string& what);

}  // namespace horo::nn::functional

namespace horo {
// Differentiable arithmetic with broadcasting, so `out + residual` in a custom module just works.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, float b);
Tensor operator-(const Tensor& a, float b);
Tensor operator*(const Tensor& a, float b);
Tensor operator/(const Tensor& a, float b);
Tensor operator+(float a, const Tensor& b);
Tensor operator-(float a, const Tensor& b);
Tensor operator*(float a, const Tensor& b);
Tensor operator-(const Tensor& a);
}  // namespace horo
