#include "nn/norm.h"

#include <cmath>

namespace horo::nn {

BatchNorm::BatchNorm(const BatchNormOptions& options, int64_t input_dims) : options_(options), input_dims_(input_dims) {
  const int64_t c = options.features;
  HORO_CHECK(c > 0, ValueError, "BatchNorm: features (the channel count) must be positive, got ", c);
  HORO_CHECK(std::isfinite(options.eps) && options.eps > 0.0f, ValueError, "BatchNorm: eps must be positive, got ", options.eps);
  HORO_CHECK(!options.momentum || (*options.momentum >= 0.0f && *options.momentum <= 1.0f), ValueError,
             "BatchNorm: momentum must be in [0, 1], got ", options.momentum.value_or(0.0f));
  if (options.affine) {
    weight = register_parameter("weight", Tensor::ones({c}));
    bias = register_parameter("bias", Tensor::zeros({c}));
  }
  if (options.track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({c}));
    running_var = register_buffer("running_var", Tensor::ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::Int64));
  }
}

BatchNorm::BatchNorm(const BatchNorm& other, int64_t input_dims)
    : options_(other.options_), input_dims_(input_dims), frozen_(other.frozen_) {
  if (other.weight.defined()) weight = register_parameter("weight", other.weight, other.weight.requires_grad());
  if (other.bias.defined()) bias = register_parameter("bias", other.bias, other.bias.requires_grad());
  if (other.running_mean.defined()) {
    running_mean = register_buffer("running_mean", other.running_mean);
    running_var = register_buffer("running_var", other.running_var);
    num_batches_tracked = register_buffer("num_batches_tracked", other.num_batches_tracked);
  }
  train(other.is_training());
}

bool BatchNorm::uses_running_stats() const {
  return options_.track_running_stats && (!is_training() || frozen_);
}

void BatchNorm::reset_running_stats() {
  if (!options_.track_running_stats) return;
  running_mean.fill(0.0f);
  running_var.fill(1.0f);
  num_batches_tracked.copy_from(Tensor::zeros({}, DType::Int64));
}

Tensor BatchNorm::forward(const Tensor& input) { return run(input, false); }

Tensor BatchNorm::forward_relu(const Tensor& input) { return run(input, true); }

Tensor BatchNorm::forward_with_stats(const Tensor& input, bool relu, const Tensor& batch_mean, const Tensor& batch_var) {
  return run(input, relu, batch_mean, batch_var);
}

Tensor BatchNorm::forward_residual(const Tensor& input, const Tensor& residual, bool relu, const Tensor& batch_mean,
                                   const Tensor& batch_var) {
  HORO_CHECK(residual.shape() == input.shape(), ShapeError, where(), ": cannot add ", residual.describe(), " to its output ",
             "for ", input.describe(), " (the shapes must be equal)");
  return run(input, relu, batch_mean, batch_var, residual);
}

Tensor BatchNorm::run(const Tensor& input, bool relu, const Tensor& batch_mean, const Tensor& batch_var,
                      const Tensor& residual) {
  if (input_dims_ == 4) {
    HORO_CHECK(input.dim() == 4, ShapeError, where(), ": expected input [batch, ", options_.features,
               ", height, width], got ", input.describe());
  } else if (input_dims_ == 2) {
    HORO_CHECK(input.dim() == 2, ShapeError, where(), ": expected input [batch, ", options_.features, "], got ",
               input.describe());
  } else {
    HORO_CHECK(input.dim() == 2 || input.dim() == 4, ShapeError, where(), ": expected input [batch, ",
               options_.features, "] or [batch, ", options_.features, ", height, width], got ", input.describe());
  }
  HORO_CHECK(input.size(1) == options_.features, ShapeError, where(), ": expected ", options_.features,
             " channels, got ", input.size(1), " in ", input.describe());
  const bool use_batch = !uses_running_stats();
  functional::BatchNormArgs args{.training = use_batch, .momentum = options_.momentum.value_or(0.0f),
                                 .eps = options_.eps, .relu = relu};
  args.residual = residual;
  Tensor mean = running_mean, var = running_var;
  if (use_batch) {
    args.sync = sync();
    args.batch_mean = batch_mean;
    args.batch_var = batch_var;
    const int64_t per_channel = input.numel() / options_.features;
    HORO_CHECK(per_channel > 1 || args.sync, ValueError, where(),
               ": expected more than 1 value per channel when training, got input ", input.describe(),
               " (a batch of one sample without spatial extent has no variance; use a larger batch or eval())");
    if (is_training() && options_.track_running_stats) {
      ops::increment(num_batches_tracked);
      // momentum=None: the running statistics are the plain average of every batch so far.
      if (!options_.momentum) {
        const int64_t tracked = num_batches_tracked.to(Device::cpu()).data<int64_t>()[0];
        args.momentum = 1.0f / static_cast<float>(tracked);
      }
    } else {
      mean = var = Tensor();  // no running statistics to update (eval() without tracking)
    }
  }
  try {
    return functional::batch_norm(input, mean, var, weight, bias, args);
  } catch (const ValueError& e) {
    throw ValueError(where() + ": " + e.what());
  }
}

std::string BatchNorm::extra_repr() const {
  std::string out = detail::concat(options_.features, ", eps=", options_.eps, ", momentum=");
  out += options_.momentum ? detail::concat(*options_.momentum) : "None";
  if (!options_.affine) out += ", affine=false";
  if (!options_.track_running_stats) out += ", track_running_stats=false";
  if (frozen_) out += ", frozen";
  return out;
}

}  // namespace horo::nn
