// Differentiable ops: each computes its result with tensor/ops.h and, when an input requires a
// gradient, records how to send the output gradient back. Custom layers and losses are written
// with these (and the operators below) and need no backward of their own.
#pragma once

#include <cstdint>
#include <vector>

#include "nn/autograd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace horo::nn::functional {

using ops::Conv2dParams;
using ops::Pool2dParams;

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor());
Tensor matmul(const Tensor& a, const Tensor& b);
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p = {});
// conv2d (differentiable) together with the per-channel mean and biased variance of its output (plain
// tensors), computed in the same pass on the CPU: what a BatchNorm after it needs. `shift` (per
// channel, e.g. the BatchNorm's running mean) keeps the variance's digits. Returns (output, mean, var).
std::tuple<Tensor, Tensor, Tensor> conv2d_batch_stats(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                                      const Conv2dParams& p, const Tensor& shift);
Tensor max_pool2d(const Tensor& input, const Pool2dParams& p);
Tensor avg_pool2d(const Tensor& input, const Pool2dParams& p);
// max_pool2d(relu(conv2d(input, weight, bias))) in one fused pass on the CPU (same values and
// gradients; kernels/conv_block.h); the three ops in turn on other devices.
Tensor conv2d_relu_max_pool2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& conv,
                              const Pool2dParams& pool);

// Adaptive average pooling to out_h x out_w (F.adaptive_avg_pool2d); 1x1 is global average pooling.
Tensor adaptive_avg_pool2d(const Tensor& input, int64_t out_h = 1, int64_t out_w = 1);

// Combines batch statistics across processes (SyncBatchNorm, implemented in dist/ over a
// Communicator); without one, a batch is normalised by its own statistics.
class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  // In: this process's per-channel mean and biased variance over `count` values per channel. Out: the
  // same over every process; returns the total count.
  virtual int64_t reduce_statistics(Tensor& mean, Tensor& var, int64_t count) = 0;
  // Sums the two per-channel backward sums over every process, in place.
  virtual void reduce_gradient_sums(Tensor& sum_dy, Tensor& sum_dy_xhat) = 0;
};

struct BatchNormArgs {
  bool training = false;  // normalise by the batch's statistics (and update the running ones)
  float momentum = 0.1f;  // weight of the batch in the running statistics
  float eps = 1e-5f;
  bool relu = false;               // apply ReLU to the result in the same pass
  BatchNormSync* sync = nullptr;   // statistics over every process (training only)
  // This process's batch statistics of x when already known (conv2d_batch_stats), else computed here.
  Tensor batch_mean = {}, batch_var = {};
  // Added to the normalised x before the ReLU (a residual block's shortcut), in the same pass.
  Tensor residual = {};
};
// F.batch_norm over [N, C, H, W] or [N, C]: per-channel normalisation, by the batch's statistics when
// training (the biased variance; the running variance is updated with the unbiased one) or by
// running_mean and running_var otherwise; then weight and bias (each may be undefined: 1 and 0), then
// args.residual, then ReLU, as each is asked for.
// running_mean/running_var may be undefined when training (track_running_stats=False).
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, const BatchNormArgs& args);

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
// relu(a + b) for same-shaped a and b in one pass: the end of a residual block.
Tensor add_relu(const Tensor& a, const Tensor& b);
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
// The tensors joined along dimension dim, as torch.cat (every other dimension must agree).
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 1);
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
