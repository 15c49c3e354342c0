// The standard layers, with PyTorch's layouts, defaults and initialisation. Options structs use
// designated initialisers: Conv2d({.in = 1, .out = 32, .kernel = 3}). Options are checked when the
// layer is built, inputs when it runs; errors name the layer by its path.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "nn/functional.h"
#include "nn/module.h"

namespace horo::nn {

struct LinearOptions {
  int64_t in = 0, out = 0;
  bool bias = true;
};

// y = x W^T + b with W [out, in]; W and b ~ U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's default).
class Linear : public Module {
 public:
  explicit Linear(const LinearOptions& options);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Linear"; }
  std::string extra_repr() const override;
  const LinearOptions& options() const { return options_; }
  Tensor weight, bias;

 private:
  LinearOptions options_;
};

// How a layer's weights start: PyTorch's default (kaiming_uniform_ with a = sqrt(5), i.e.
// U(-1/sqrt(fan_in), 1/sqrt(fan_in))), or Kaiming-normal over fan_out for ReLU networks, as
// torchvision's ResNets initialise their convolutions (N(0, 2 / fan_out)).
enum class WeightInit { Default, KaimingNormalFanOut };

struct Conv2dOptions {
  int64_t in = 0, out = 0, kernel = 0;
  int64_t stride = 1, padding = 0, dilation = 1;
  bool bias = true;
  // Rectangular kernels, strides and padding (PyTorch's tuples): each overrides the square value above
  // along its own axis when given.
  std::optional<int64_t> kernel_h = {}, kernel_w = {}, stride_h = {}, stride_w = {}, padding_h = {}, padding_w = {};
  WeightInit init = WeightInit::Default;
};

// NCHW convolution, weight OIHW [out, in, kernel_h, kernel_w]; bias (default) initialised as PyTorch.
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Conv2d"; }
  std::string extra_repr() const override;
  const Conv2dOptions& options() const { return options_; }
  // The convolution's strides, padding and dilation (rectangular ones resolved).
  ops::Conv2dParams params() const;
  int64_t kernel_h() const { return weight.size(2); }
  int64_t kernel_w() const { return weight.size(3); }
  // The output's [channels, height, width] for one sample of [in, height, width]; ShapeError naming
  // the layer when the kernel does not fit.
  Shape output_shape(const Shape& sample) const;
  // The same convolution with other weights and bias (e.g. a BatchNorm folded in).
  Tensor forward_with(const Tensor& input, const Tensor& other_weight, const Tensor& other_bias);
  // max_pool2d(relu(forward(input))) through the fused CPU kernel (Sequential uses it for a
  // Conv2d, ReLU, MaxPool2d run); null when the pooling window does not fit the output, so the
  // caller runs the layers one by one and the pooling layer reports the error.
  std::optional<Tensor> forward_relu_max_pool(const Tensor& input, const ops::Pool2dParams& pool);
  Tensor weight, bias;

 private:
  ops::Conv2dParams checked_params(const Tensor& input) const;
  Conv2dOptions options_;
};

struct Pool2dOptions {
  int64_t kernel = 2;
  int64_t stride = 0;  // 0: the kernel size, as in PyTorch
  int64_t padding = 0;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dOptions& options = {});
  Tensor forward(const Tensor& input) override;
  const ops::Pool2dParams& params() const { return params_; }
  std::string type_name() const override { return "MaxPool2d"; }
  std::string extra_repr() const override;

 private:
  ops::Pool2dParams params_;
};

// Average pooling; padded cells count toward the average (PyTorch's count_include_pad=True).
class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dOptions& options = {});
  Tensor forward(const Tensor& input) override;
  const ops::Pool2dParams& params() const { return params_; }
  std::string type_name() const override { return "AvgPool2d"; }
  std::string extra_repr() const override;

 private:
  ops::Pool2dParams params_;
};

// Average pooling to a fixed output size whatever the input size (torch.nn.AdaptiveAvgPool2d); the
// default 1x1 is the global average pooling before a classification head.
class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_h = 1, int64_t output_w = 0);  // output_w 0: output_h
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  std::string extra_repr() const override;
  int64_t output_h() const { return output_h_; }
  int64_t output_w() const { return output_w_; }

 private:
  int64_t output_h_, output_w_;
};

// Returns its input (a placeholder, or the shortcut of a residual block).
class Identity : public Module {
 public:
  Tensor forward(const Tensor& input) override { return input; }
  std::string type_name() const override { return "Identity"; }
};

// Zeroes elements with probability p while training (scaling the rest by 1/(1-p)); identity in eval().
class Dropout : public Module {
 public:
  explicit Dropout(float p = 0.5f, Generator* generator = nullptr);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Dropout"; }
  std::string extra_repr() const override;
  float p() const { return p_; }

 private:
  float p_;
  Generator* generator_;
};

// Pointwise activations and softmax, wrapped as modules for Sequential.
class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return functional::relu(x); }
  std::string type_name() const override { return "ReLU"; }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(float negative_slope = 0.01f) : slope_(negative_slope) {}
  Tensor forward(const Tensor& x) override { return functional::leaky_relu(x, slope_); }
  std::string type_name() const override { return "LeakyReLU"; }
  std::string extra_repr() const override;
  float negative_slope() const { return slope_; }

 private:
  float slope_;
};
class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& x) override { return functional::sigmoid(x); }
  std::string type_name() const override { return "Sigmoid"; }
};
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) override { return functional::tanh(x); }
  std::string type_name() const override { return "Tanh"; }
};
class GELU : public Module {
 public:
  Tensor forward(const Tensor& x) override { return functional::gelu(x); }
  std::string type_name() const override { return "GELU"; }
};
class Softmax : public Module {
 public:
  explicit Softmax(int64_t dim = -1) : dim_(dim) {}
  Tensor forward(const Tensor& x) override { return functional::softmax(x, dim_); }
  std::string type_name() const override { return "Softmax"; }
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
};
class LogSoftmax : public Module {
 public:
  explicit LogSoftmax(int64_t dim = -1) : dim_(dim) {}
  Tensor forward(const Tensor& x) override { return functional::log_softmax(x, dim_); }
  std::string type_name() const override { return "LogSoftmax"; }
  int64_t dim() const { return dim_; }

 private:
  int64_t dim_;
};

// Merges every dimension from start_dim on into one ([N, C, H, W] -> [N, C*H*W]).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1) : start_dim_(start_dim) {}
  Tensor forward(const Tensor& x) override;
  std::string type_name() const override { return "Flatten"; }
  int64_t start_dim() const { return start_dim_; }

 private:
  int64_t start_dim_;
};

// Runs its children in order. Children are named "0", "1", ... unless given names.
class Sequential : public Module {
 public:
  Sequential() = default;
  Sequential(std::initializer_list<std::shared_ptr<Module>> modules);
  Sequential& add(std::shared_ptr<Module> module);
  Sequential& add(const std::string& name, std::shared_ptr<Module> module);
  Tensor forward(const Tensor& input) override;
  std::string type_name() const override { return "Sequential"; }
  size_t size() const { return children().size(); }
  std::shared_ptr<Module> operator[](size_t i) const;
};

// Loss modules over the functional losses.
class CrossEntropyLoss {
 public:
  explicit CrossEntropyLoss(ops::CrossEntropyOptions options = {}) : options_(std::move(options)) {}
  Tensor operator()(const Tensor& logits, const Tensor& labels) const {
    return functional::cross_entropy(logits, labels, options_);
  }

 private:
  ops::CrossEntropyOptions options_;
};

class MSELoss {
 public:
  Tensor operator()(const Tensor& prediction, const Tensor& target) const {
    return functional::mse_loss(prediction, target);
  }
};

}  // namespace horo::nn
