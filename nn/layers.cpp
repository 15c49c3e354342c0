#include "nn/layers.h"

#include <cmath>
#include <cstdlib>
#include <sstream>

namespace horo::nn {
namespace {

// U(-bound, bound) from the default generator: PyTorch's kaiming_uniform_(a=sqrt(5)) for weights and
// its bias rule both come to bound = 1/sqrt(fan_in).
Tensor init_uniform(const Shape& shape, int64_t fan_in) {
  const float bound = fan_in > 0 ? 1.0f / std::sqrt(static_cast<float>(fan_in)) : 0.0f;
  Generator& gen = default_generator();
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(shape_numel(shape)));
  return Tensor::uniform(shape, -bound, bound, gen.seed(), offset);
}

template <typename... Args>
std::string format(const Args&... args) {
  return detail::concat(args...);
}

ops::Pool2dParams pool_params(const Pool2dOptions& o, const char* layer) {
  HORO_CHECK(o.kernel > 0 && o.stride >= 0 && o.padding >= 0, ValueError, layer, ": kernel must be positive and ",
             "stride and padding non-negative, got kernel=", o.kernel, " stride=", o.stride, " padding=", o.padding);
  HORO_CHECK(2 * o.padding <= o.kernel, ValueError, layer, ": padding ", o.padding,
             " must be at most half the kernel size ", o.kernel);
  const int64_t stride = o.stride == 0 ? o.kernel : o.stride;
  return {.kernel_h = o.kernel, .kernel_w = o.kernel, .stride_h = stride, .stride_w = stride,
          .pad_h = o.padding, .pad_w = o.padding};
}

std::string pool_repr(const ops::Pool2dParams& p) {
  return format("kernel=", p.kernel_h, ", stride=", p.stride_h, ", padding=", p.pad_h);
}

}  // namespace

Linear::Linear(const LinearOptions& options) : options_(options) {
  HORO_CHECK(options.in > 0 && options.out > 0, ValueError, "Linear: in and out must be positive, got in=",
             options.in, " out=", options.out);
  weight = register_parameter("weight", init_uniform({options.out, options.in}, options.in));
  if (options.bias) bias = register_parameter("bias", init_uniform({options.out}, options.in));
}

Tensor Linear::forward(const Tensor& input) {
  HORO_CHECK(input.dim() == 2, ShapeError, where(), ": expected input [batch, ", options_.in, "], got ",
             input.describe(), " (add a Flatten before it?)");
  HORO_CHECK(input.size(1) == options_.in, ShapeError, where(), ": expected ", options_.in,
             " input features, got ", input.describe());
  return functional::linear(input, weight, bias);
}

std::string Linear::extra_repr() const {
  return format("in=", options_.in, ", out=", options_.out, options_.bias ? "" : ", bias=false");
}

Conv2d::Conv2d(const Conv2dOptions& options) : options_(options) {
  HORO_CHECK(options.in > 0 && options.out > 0 && options.kernel > 0, ValueError,
             "Conv2d: in, out and kernel must be positive, got in=", options.in, " out=", options.out, " kernel=",
             options.kernel);
  HORO_CHECK(options.stride > 0 && options.dilation > 0 && options.padding >= 0, ValueError,
             "Conv2d: stride and dilation must be positive and padding non-negative");
  const int64_t fan_in = options.in * options.kernel * options.kernel;
  weight = register_parameter("weight", init_uniform({options.out, options.in, options.kernel, options.kernel}, fan_in));
  if (options.bias) bias = register_parameter("bias", init_uniform({options.out}, fan_in));
}

ops::Conv2dParams Conv2d::checked_params(const Tensor& input) const {
  HORO_CHECK(input.dim() == 4, ShapeError, where(), ": expected input [batch, ", options_.in,
             ", height, width], got ", input.describe());
  HORO_CHECK(input.size(1) == options_.in, ShapeError, where(), ": expected ", options_.in, " input channels, got ",
             input.size(1), " in ", input.describe());
  return {.stride_h = options_.stride, .stride_w = options_.stride, .pad_h = options_.padding,
          .pad_w = options_.padding, .dilation_h = options_.dilation, .dilation_w = options_.dilation};
}

Tensor Conv2d::forward(const Tensor& input) { return functional::conv2d(input, weight, bias, checked_params(input)); }

std::optional<Tensor> Conv2d::forward_relu_max_pool(const Tensor& input, const ops::Pool2dParams& pool) {
  const ops::Conv2dParams p = checked_params(input);
  const int64_t extent = (options_.kernel - 1) * options_.dilation + 1;  // square kernels
  const int64_t out_h = (input.size(2) + 2 * options_.padding - extent) / options_.stride + 1;
  const int64_t out_w = (input.size(3) + 2 * options_.padding - extent) / options_.stride + 1;
  const bool window_fits = out_h >= pool.kernel_h - 2 * pool.pad_h && out_w >= pool.kernel_w - 2 * pool.pad_w &&
                           2 * pool.pad_h <= pool.kernel_h && 2 * pool.pad_w <= pool.kernel_w;
  if (out_h <= 0 || out_w <= 0 || !window_fits) return std::nullopt;
  return functional::conv2d_relu_max_pool2d(input, weight, bias, p, pool);
}

std::string Conv2d::extra_repr() const {
  return format("in=", options_.in, ", out=", options_.out, ", kernel=", options_.kernel,
                options_.stride != 1 ? format(", stride=", options_.stride) : "",
                options_.padding ? format(", padding=", options_.padding) : "",
                options_.dilation != 1 ? format(", dilation=", options_.dilation) : "", options_.bias ? "" : ", bias=false");
}

MaxPool2d::MaxPool2d(const Pool2dOptions& options) : params_(pool_params(options, "MaxPool2d")) {}

Tensor MaxPool2d::forward(const Tensor& input) {
  HORO_CHECK(input.dim() == 4, ShapeError, where(), ": expected input [batch, channels, height, width], got ",
             input.describe());
  return functional::max_pool2d(input, params_);
}

std::string MaxPool2d::extra_repr() const { return pool_repr(params_); }

AvgPool2d::AvgPool2d(const Pool2dOptions& options) : params_(pool_params(options, "AvgPool2d")) {}

Tensor AvgPool2d::forward(const Tensor& input) {
  HORO_CHECK(input.dim() == 4, ShapeError, where(), ": expected input [batch, channels, height, width], got ",
             input.describe());
  return functional::avg_pool2d(input, params_);
}

std::string AvgPool2d::extra_repr() const { return pool_repr(params_); }

Dropout::Dropout(float p, Generator* generator) : p_(p), generator_(generator) {
  HORO_CHECK(p >= 0.0f && p < 1.0f, ValueError, "Dropout: probability must be in [0, 1), got ", p);
}

Tensor Dropout::forward(const Tensor& input) { return functional::dropout(input, p_, is_training(), generator_); }

std::string Dropout::extra_repr() const { return format("p=", p_); }

std::string LeakyReLU::extra_repr() const { return format("negative_slope=", slope_); }

Tensor Flatten::forward(const Tensor& x) {
  HORO_CHECK(x.dim() > start_dim_, ShapeError, where(), ": cannot flatten from dimension ", start_dim_, " of ",
             x.describe());
  return functional::flatten(x, start_dim_);
}

Sequential::Sequential(std::initializer_list<std::shared_ptr<Module>> modules) {
  for (const auto& m : modules) add(m);
}

Sequential& Sequential::add(std::shared_ptr<Module> module) { return add(std::to_string(size()), std::move(module)); }

Sequential& Sequential::add(const std::string& name, std::shared_ptr<Module> module) {
  register_module(name, std::move(module));
  return *this;
}

namespace {
// HORO_FUSE=0 turns the fused CPU blocks off (to compare, or to see each layer's own output).
bool fusion_enabled() {
  static const bool enabled = [] {
    const char* env = std::getenv("HORO_FUSE");
    return !(env && std::string(env) == "0");
  }();
  return enabled && !detect_anomaly();  // anomaly mode checks every layer's own output
}
}  // namespace

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  const auto& layers = children();
  for (size_t i = 0; i < layers.size(); ++i) {
    // Conv2d, ReLU, MaxPool2d in a row: one fused pass on the CPU.
    if (i + 2 < layers.size() && fusion_enabled() && !x.device().is_cuda()) {
      auto* conv = dynamic_cast<Conv2d*>(layers[i].second.get());
      auto* pool = dynamic_cast<MaxPool2d*>(layers[i + 2].second.get());
      if (conv && pool && dynamic_cast<ReLU*>(layers[i + 1].second.get())) {
        if (auto fused = conv->forward_relu_max_pool(x, pool->params())) {
          x = *fused;
          i += 2;
          continue;
        }
      }
    }
    x = layers[i].second->forward(x);
    if (detect_anomaly()) functional::check_finite(x, "output of " + layers[i].second->where());
  }
  return x;
}

std::shared_ptr<Module> Sequential::operator[](size_t i) const {
  HORO_CHECK(i < size(), ValueError, where(), ": index ", i, " out of range for ", size(), " layers");
  return children()[i].second;
}

}  // namespace horo::nn
