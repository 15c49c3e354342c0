// Batch normalisation layers with PyTorch's names, defaults and buffers (torch.nn.BatchNorm1d/2d):
// parameters `weight` (1) and `bias` (0) when affine; buffers `running_mean` (0), `running_var` (1)
// and `num_batches_tracked` (int64) when track_running_stats. In train() a batch is normalised by its
// own statistics (biased variance) and the running statistics move towards them by `momentum` (the
// unbiased variance); in eval() the running statistics normalise. SyncBatchNorm (dist/) computes the
// batch statistics over every rank.
#pragma once

#include <optional>

#include "nn/layers.h"

namespace horo::nn {

struct BatchNormOptions {
  int64_t features = 0;  // channels (PyTorch's num_features)
  float eps = 1e-5f;
  std::optional<float> momentum = 0.1f;  // nullopt: a cumulative average (PyTorch's momentum=None)
  bool affine = true;
  bool track_running_stats = true;
};

class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  // relu(forward(input)) in one pass over the activations.
  Tensor forward_relu(const Tensor& input);
  // forward (or forward_relu) given this batch's per-channel mean and biased variance of input,
  // already computed (ops::conv2d_batch_stats); used only when normalising by batch statistics.
  Tensor forward_with_stats(const Tensor& input, bool relu, const Tensor& batch_mean, const Tensor& batch_var);
  // forward(input) + residual, then ReLU when relu, in one pass (the end of a residual block);
  // batch_mean and batch_var as for forward_with_stats, or undefined.
  Tensor forward_residual(const Tensor& input, const Tensor& residual, bool relu, const Tensor& batch_mean = Tensor(),
                          const Tensor& batch_var = Tensor());
  std::string extra_repr() const override;
  const BatchNormOptions& options() const { return options_; }
  // Whether this call normalises by the running statistics (eval mode, or frozen) rather than the batch's.
  bool uses_running_stats() const;
  // A frozen layer normalises by its running statistics and leaves them alone even in train() (what
  // freezing a pretrained backbone means for BatchNorm; nn::freeze() sets it).
  void set_frozen(bool frozen) { frozen_ = frozen; }
  bool frozen() const { return frozen_; }
  void reset_running_stats();
  // The dimensions an input must have (2 or 4); 0 accepts either (SyncBatchNorm).
  int64_t input_dims() const { return input_dims_; }

  Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  BatchNorm(const BatchNormOptions& options, int64_t input_dims);
  // Takes over another layer's options and tensors (the same handles: an optimizer built on them
  // keeps working), as convert_sync_batchnorm does.
  explicit BatchNorm(const BatchNorm& other, int64_t input_dims);
  // Combines statistics across processes (SyncBatchNorm); null: this process's batch only.
  virtual functional::BatchNormSync* sync() { return nullptr; }

 private:
  Tensor run(const Tensor& input, bool relu, const Tensor& batch_mean = Tensor(), const Tensor& batch_var = Tensor(),
             const Tensor& residual = Tensor());
  BatchNormOptions options_;
  int64_t input_dims_;
  bool frozen_ = false;
};

// Over [batch, features] (PyTorch also accepts [batch, features, length]; horo does not).
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(const BatchNormOptions& options) : BatchNorm(options, 2) {}
  std::string type_name() const override { return "BatchNorm1d"; }
};

// Over [batch, channels, height, width].
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(const BatchNormOptions& options) : BatchNorm(options, 4) {}
  std::string type_name() const override { return "BatchNorm2d"; }
};

}  // namespace horo::nn
