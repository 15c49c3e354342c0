#include "nn/layers.h"

#include "nn/graph.h"

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

// N(0, 2 / fan_out) from the default generator: kaiming_normal_(mode="fan_out", nonlinearity="relu").
Tensor init_kaiming_normal_fan_out(const Shape& shape, int64_t fan_out) {
  const float stddev = std::sqrt(2.0f / static_cast<float>(std::max<int64_t>(1, fan_out)));
  Generator& gen = default_generator();
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(shape_numel(shape)));
  return Tensor::normal(shape, 0.0f, stddev, gen.seed(), offset);
}

template <typename... Args>
std::string format(const Args&... args) {
  return detail::concat(args...);
}

constexpr int64_t kMaxExtent = ops::kMaxWindowExtent;

ops::Pool2dParams pool_params(const Pool2dOptions& o, const char* layer) {
  HORO_CHECK(o.kernel > 0 && o.stride >= 0 && o.padding >= 0, ValueError, layer, ": kernel must be positive and ",
             "stride and padding non-negative, got kernel=", o.kernel, " stride=", o.stride, " padding=", o.padding);
  HORO_CHECK(o.kernel <= kMaxExtent && o.stride <= kMaxExtent, ValueError, layer, ": kernel and stride must be below 2^31, got kernel=",
             o.kernel, " stride=", o.stride);
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
  const int64_t kh = options.kernel_h.value_or(options.kernel), kw = options.kernel_w.value_or(options.kernel);
  HORO_CHECK(options.in > 0 && options.out > 0 && kh > 0 && kw > 0, ValueError,
             "Conv2d: in, out and kernel must be positive, got in=", options.in, " out=", options.out, " kernel=", kh,
             "x", kw);
  const ops::Conv2dParams p = params();
  HORO_CHECK(kh <= kMaxExtent && kw <= kMaxExtent && p.stride_h <= kMaxExtent && p.stride_w <= kMaxExtent && p.pad_h <= kMaxExtent &&
                 p.pad_w <= kMaxExtent && p.dilation_h <= kMaxExtent, ValueError,
             "Conv2d: kernel, stride, padding and dilation must be below 2^31, got kernel=", kh, "x", kw, " stride=", p.stride_h,
             "x", p.stride_w, " padding=", p.pad_h, "x", p.pad_w, " dilation=", options.dilation);
  HORO_CHECK(p.stride_h > 0 && p.stride_w > 0 && p.dilation_h > 0 && p.pad_h >= 0 && p.pad_w >= 0, ValueError,
             "Conv2d: stride and dilation must be positive and padding non-negative, got stride=", p.stride_h, "x",
             p.stride_w, " padding=", p.pad_h, "x", p.pad_w, " dilation=", options.dilation);
  const Shape shape{options.out, options.in, kh, kw};
  shape_numel(shape);  // a ShapeError if the weight's size overflows: then fan-in and fan-out below cannot
  const int64_t fan_in = options.in * kh * kw;
  weight = register_parameter("weight", options.init == WeightInit::KaimingNormalFanOut
                                            ? init_kaiming_normal_fan_out(shape, options.out * kh * kw)
                                            : init_uniform(shape, fan_in));
  if (options.bias) bias = register_parameter("bias", init_uniform({options.out}, fan_in));
}

ops::Conv2dParams Conv2d::params() const {
  const Conv2dOptions& o = options_;
  return {.stride_h = o.stride_h.value_or(o.stride), .stride_w = o.stride_w.value_or(o.stride),
          .pad_h = o.padding_h.value_or(o.padding), .pad_w = o.padding_w.value_or(o.padding),
          .dilation_h = o.dilation, .dilation_w = o.dilation};
}

Shape Conv2d::output_shape(const Shape& sample) const {
  HORO_CHECK(sample.size() == 3, ShapeError, where(), ": expects [channels, height, width] per sample, got ",
             shape_str(sample));
  HORO_CHECK(sample[0] == options_.in, ShapeError, where(), ": expects ", options_.in, " input channels, got ",
             sample[0], " (", shape_str(sample), ")");
  const ops::Conv2dParams p = params();
  const int64_t out_h = (sample[1] + 2 * p.pad_h - p.dilation_h * (kernel_h() - 1) - 1) / p.stride_h + 1;
  const int64_t out_w = (sample[2] + 2 * p.pad_w - p.dilation_w * (kernel_w() - 1) - 1) / p.stride_w + 1;
  HORO_CHECK(sample[1] + 2 * p.pad_h >= p.dilation_h * (kernel_h() - 1) + 1 &&
                 sample[2] + 2 * p.pad_w >= p.dilation_w * (kernel_w() - 1) + 1 && out_h > 0 && out_w > 0,
             ShapeError, where(), ": a ", kernel_h(), "x", kernel_w(), " kernel (padding ", p.pad_h, "x", p.pad_w,
             ", dilation ", p.dilation_h, ") does not fit the ", sample[1], "x", sample[2], " input");
  return {options_.out, out_h, out_w};
}

ops::Conv2dParams Conv2d::checked_params(const Tensor& input) const {
  HORO_CHECK(input.dim() == 4, ShapeError, where(), ": expected input [batch, ", options_.in,
             ", height, width], got ", input.describe());
  HORO_CHECK(input.size(1) == options_.in, ShapeError, where(), ": expected ", options_.in, " input channels, got ",
             input.size(1), " in ", input.describe());
  return params();
}

Tensor Conv2d::forward(const Tensor& input) { return functional::conv2d(input, weight, bias, checked_params(input)); }

Tensor Conv2d::forward_with(const Tensor& input, const Tensor& other_weight, const Tensor& other_bias) {
  check_shape(other_weight, weight.shape(), where() + ": replacement weight");
  return functional::conv2d(input, other_weight, other_bias, checked_params(input));
}

std::optional<Tensor> Conv2d::forward_relu_max_pool(const Tensor& input, const ops::Pool2dParams& pool) {
  const ops::Conv2dParams p = checked_params(input);
  const int64_t out_h = (input.size(2) + 2 * p.pad_h - (kernel_h() - 1) * p.dilation_h - 1) / p.stride_h + 1;
  const int64_t out_w = (input.size(3) + 2 * p.pad_w - (kernel_w() - 1) * p.dilation_w - 1) / p.stride_w + 1;
  const bool window_fits = out_h >= pool.kernel_h - 2 * pool.pad_h && out_w >= pool.kernel_w - 2 * pool.pad_w &&
                           2 * pool.pad_h <= pool.kernel_h && 2 * pool.pad_w <= pool.kernel_w;
  if (out_h <= 0 || out_w <= 0 || !window_fits) return std::nullopt;
  return functional::conv2d_relu_max_pool2d(input, weight, bias, p, pool);
}

std::string Conv2d::extra_repr() const {
  const ops::Conv2dParams p = params();
  auto pair = [](int64_t a, int64_t b) { return a == b ? std::to_string(a) : format(a, "x", b); };
  return format("in=", options_.in, ", out=", options_.out, ", kernel=", pair(kernel_h(), kernel_w()),
                p.stride_h != 1 || p.stride_w != 1 ? ", stride=" + pair(p.stride_h, p.stride_w) : "",
                p.pad_h || p.pad_w ? ", padding=" + pair(p.pad_h, p.pad_w) : "",
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

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t output_h, int64_t output_w)
    : output_h_(output_h), output_w_(output_w == 0 ? output_h : output_w) {
  HORO_CHECK(output_h_ > 0 && output_w_ > 0, ValueError, "AdaptiveAvgPool2d: output size must be positive, got ", output_h,
             "x", output_w);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& input) {
  HORO_CHECK(input.dim() == 4, ShapeError, where(), ": expected input [batch, channels, height, width], got ",
             input.describe());
  return functional::adaptive_avg_pool2d(input, output_h_, output_w_);
}

std::string AdaptiveAvgPool2d::extra_repr() const {
  return output_h_ == output_w_ ? format("output_size=", output_h_) : format("output_size=", output_h_, "x", output_w_);
}

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

Tensor Sequential::forward(const Tensor& input) {
  Tensor x = input;
  const auto& layers = children();
  const bool fuse = fusion::enabled();
  for (size_t i = 0; i < layers.size();) {
    size_t ran = 1;
    if (fuse) {
      std::vector<Module*> chain;
      for (size_t j = i; j < layers.size() && chain.size() < 3; ++j) chain.push_back(layers[j].second.get());
      std::tie(x, ran) = fusion::run_chain(chain, x);
    } else {
      x = layers[i].second->forward(x);
    }
    i += ran;
    if (detect_anomaly()) functional::check_finite(x, "output of " + layers[i - 1].second->where());
  }
  return x;
}

std::shared_ptr<Module> Sequential::operator[](size_t i) const {
  HORO_CHECK(i < size(), ValueError, where(), ": index ", i, " out of range for ", size(), " layers");
  return children()[i].second;
}

}  // namespace horo::nn
