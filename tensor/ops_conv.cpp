#include <string>

#include "kernels/conv2d.h"
#include "kernels/conv_block.h"
#include "kernels/conv_stats.h"
#include "kernels/pool2d.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace horo::ops {
namespace {

kernels::Conv2dShape conv_shape(const Shape& input, const Shape& weight, const Conv2dParams& p) {
  return {.batch = input[0], .in_channels = input[1], .in_h = input[2], .in_w = input[3],
          .out_channels = weight[0], .kernel_h = weight[2], .kernel_w = weight[3],
          .stride_h = p.stride_h, .stride_w = p.stride_w, .pad_h = p.pad_h, .pad_w = p.pad_w,
          .dilation_h = p.dilation_h, .dilation_w = p.dilation_w};
}

void check_conv(const Tensor& input, const Tensor& weight, const Conv2dParams& p) {
  check_rank(input, 4, "conv2d: input (N, C, H, W)");
  check_rank(weight, 4, "conv2d: weight (out, in, kH, kW)");
  HORO_CHECK(input.size(1) == weight.size(1), ShapeError, "conv2d: input ", input.describe(), " has ",
             input.size(1), " channels but weight ", weight.describe(), " expects ", weight.size(1));
  HORO_CHECK(p.stride_h > 0 && p.stride_w > 0 && p.dilation_h > 0 && p.dilation_w > 0 && p.pad_h >= 0 &&
                 p.pad_w >= 0, ValueError, "conv2d: stride and dilation must be positive and padding non-negative");
  constexpr int64_t kMax = kMaxWindowExtent;
  HORO_CHECK(p.stride_h <= kMax && p.stride_w <= kMax && p.dilation_h <= kMax && p.dilation_w <= kMax && p.pad_h <= kMax &&
                 p.pad_w <= kMax, ValueError, "conv2d: stride, dilation and padding must be below 2^31");
  const auto s = conv_shape(input.shape(), weight.shape(), p);
  // The (dilated) kernel must fit the padded input: (n + 2p - k) / s + 1 truncates toward zero and
  // would give one output for an input one short of the window (PyTorch refuses it too).
  const bool fits = s.in_h + 2 * s.pad_h >= s.dilation_h * (s.kernel_h - 1) + 1 &&
                    s.in_w + 2 * s.pad_w >= s.dilation_w * (s.kernel_w - 1) + 1;
  HORO_CHECK(fits && s.out_h() > 0 && s.out_w() > 0, ShapeError, "conv2d: input ", input.describe(), " is smaller than the ",
             s.kernel_h, "x", s.kernel_w, " kernel (dilation ", p.dilation_h, ", padding ", p.pad_h, ")");
}

kernels::Pool2dShape pool_shape(const Shape& input, const Pool2dParams& p) {
  return {.planes = input[0] * input[1], .in_h = input[2], .in_w = input[3], .kernel_h = p.kernel_h,
          .kernel_w = p.kernel_w, .stride_h = p.stride_h, .stride_w = p.stride_w, .pad_h = p.pad_h, .pad_w = p.pad_w};
}

// The pooling of an input of shape `input` (N, C, H, W): checks the window and that it fits; `input`
// names the input in the message.
kernels::Pool2dShape checked_pool_shape(const Shape& shape, const std::string& input, const Pool2dParams& p,
                                        const char* what) {
  HORO_CHECK(p.kernel_h > 0 && p.kernel_w > 0 && p.stride_h > 0 && p.stride_w > 0, ValueError, what,
             ": kernel and stride must be positive");
  HORO_CHECK(p.pad_h >= 0 && 2 * p.pad_h <= p.kernel_h && p.pad_w >= 0 && 2 * p.pad_w <= p.kernel_w, ValueError, what,
             ": padding must be at most half the kernel size, got padding ", p.pad_h, "x", p.pad_w, " for kernel ",
             p.kernel_h, "x", p.kernel_w);
  constexpr int64_t kMax = kMaxWindowExtent;
  HORO_CHECK(p.kernel_h <= kMax && p.kernel_w <= kMax && p.stride_h <= kMax && p.stride_w <= kMax, ValueError, what,
             ": kernel and stride must be below 2^31");
  const auto s = pool_shape(shape, p);
  const bool fits = s.in_h + 2 * s.pad_h >= s.kernel_h && s.in_w + 2 * s.pad_w >= s.kernel_w;  // as for conv2d
  HORO_CHECK(fits && s.out_h() > 0 && s.out_w() > 0, ShapeError, what, ": input ", input, " (padded by ", p.pad_h, "x",
             p.pad_w, ") is smaller than the ", p.kernel_h, "x", p.kernel_w, " window");
  return s;
}

kernels::Pool2dShape checked_pool_shape(const Tensor& input, const Pool2dParams& p, const char* what) {
  HORO_CHECK(input.dim() == 4, ShapeError, what, ": expected a 4-d input (N, C, H, W), got ", input.describe());
  check_dtype(input, DType::Float32, what);
  return checked_pool_shape(input.shape(), input.describe(), p, what);
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  check_conv(input, weight, p);
  if (bias.defined()) check_shape(bias, {weight.size(0)}, "conv2d: bias");
  const auto s = conv_shape(input.shape(), weight.shape(), p);
  Tensor out = Tensor::empty({s.batch, s.out_channels, s.out_h(), s.out_w()}, DType::Float32, input.device());
  check_same_device("conv2d", {&input, &weight, &bias});
  HORO_DISPATCH(input.device(), conv2d_forward, s, input.data<float>(), weight.data<float>(),
                               bias.defined() ? bias.data<float>() : nullptr, out.data<float>());
  return out;
}

Tensor conv2d_backward_input(const Tensor& grad_output, const Tensor& weight, const Shape& input_shape,
                             const Conv2dParams& p) {
  const auto s = conv_shape(input_shape, weight.shape(), p);
  check_shape(grad_output, {s.batch, s.out_channels, s.out_h(), s.out_w()}, "conv2d backward: grad_output");
  Tensor grad_input = Tensor::empty(input_shape, DType::Float32, weight.device());
  HORO_DISPATCH(weight.device(), conv2d_backward_input, s, grad_output.data<float>(), weight.data<float>(), grad_input.data<float>());
  return grad_input;
}

std::pair<Tensor, Tensor> conv2d_backward_weight(const Tensor& input, const Tensor& grad_output,
                                                 const Shape& weight_shape, bool with_bias,
                                                 const Conv2dParams& p) {
  const auto s = conv_shape(input.shape(), weight_shape, p);
  check_shape(grad_output, {s.batch, s.out_channels, s.out_h(), s.out_w()}, "conv2d backward: grad_output");
  Tensor grad_weight = Tensor::empty(weight_shape, DType::Float32, input.device());
  Tensor grad_bias = with_bias ? Tensor::empty({weight_shape[0]}, DType::Float32, input.device()) : Tensor();
  HORO_DISPATCH(input.device(), conv2d_backward_weight, s, input.data<float>(), grad_output.data<float>(), grad_weight.data<float>(),
                                       with_bias ? grad_bias.data<float>() : nullptr);
  return {grad_weight, grad_bias};
}

std::tuple<Tensor, Tensor, Tensor> conv2d_batch_stats(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                                      const Conv2dParams& p, const Tensor& shift) {
  check_conv(input, weight, p);
  if (bias.defined()) check_shape(bias, {weight.size(0)}, "conv2d: bias");
  check_shape(shift, {weight.size(0)}, "conv2d statistics: shift");
  check_same_device("conv2d", {&input, &weight, &bias, &shift});
  const auto s = conv_shape(input.shape(), weight.shape(), p);
  if (!input.device().is_cuda()) {
    Tensor out = Tensor::empty({s.batch, s.out_channels, s.out_h(), s.out_w()}, DType::Float32, input.device());
    Tensor mean = Tensor::empty({s.out_channels}), var = Tensor::empty({s.out_channels});
    if (kernels::cpu::conv2d_forward_stats(s, input.data<float>(), weight.data<float>(), bias.defined() ? bias.data<float>() : nullptr,
                                           shift.data<float>(), out.data<float>(), mean.data<float>(), var.data<float>())) {
      return {out, mean, var};
    }
  }
  Tensor out = conv2d(input, weight, bias, p);
  auto [mean, var] = batch_norm_stats(out);
  return {out, mean, var};
}

std::pair<Tensor, Tensor> maxpool2d(const Tensor& input, const Pool2dParams& p) {
  const auto s = checked_pool_shape(input, p, "max_pool2d");
  const Shape out_shape{input.size(0), input.size(1), s.out_h(), s.out_w()};
  Tensor out = Tensor::empty(out_shape, DType::Float32, input.device());
  Tensor argmax = Tensor::empty(out_shape, DType::Int32, input.device());
  HORO_DISPATCH(input.device(), maxpool2d_forward, s, input.data<float>(), out.data<float>(), argmax.data<int32_t>());
  return {out, argmax};
}

std::pair<Tensor, Tensor> conv2d_relu_maxpool2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                                const Conv2dParams& conv, const Pool2dParams& pool) {
  check_conv(input, weight, conv);
  if (bias.defined()) check_shape(bias, {weight.size(0)}, "conv2d: bias");
  check_same_device("conv2d_relu_max_pool2d", {&input, &weight, &bias});
  HORO_CHECK(!input.device().is_cuda(), TypeError, "conv2d_relu_max_pool2d: CPU tensors only, got ", input.describe(),
             " on ", input.device().str());
  const auto cs = conv_shape(input.shape(), weight.shape(), conv);
  const auto ps = checked_pool_shape({cs.batch, cs.out_channels, cs.out_h(), cs.out_w()},
                                     "(the convolution's output, " + std::to_string(cs.out_h()) + "x" + std::to_string(cs.out_w()) + ")", pool,
                                     "max_pool2d");
  const Shape out_shape{cs.batch, cs.out_channels, ps.out_h(), ps.out_w()};
  Tensor out = Tensor::empty(out_shape, DType::Float32, input.device());
  Tensor argmax = Tensor::empty(out_shape, DType::Int32, input.device());
  kernels::cpu::conv_relu_maxpool_forward(cs, ps, input.data<float>(), weight.data<float>(),
                                          bias.defined() ? bias.data<float>() : nullptr, out.data<float>(),
                                          argmax.data<int32_t>());
  return {out, argmax};
}

namespace {

// The argmax a max pooling's backward scatters the gradient by: Int32, the pooled shape, and, on the
// CPU (where a bad index would write outside the input gradient), every index inside its input plane.
// The forward makes it so; a hand-made one is checked here.
void check_argmax(const Tensor& argmax, const Shape& pooled, int64_t plane, const std::string& what) {
  check_dtype(argmax, DType::Int32, what);
  check_shape(argmax, pooled, what);
  if (!argmax.device().is_cpu()) return;
  const int64_t bad = first_index_outside(argmax, plane);
  HORO_CHECK(bad < 0, ValueError, what, ": element ", bad, " is ", argmax.data<int32_t>()[bad],
             ", outside the input plane of ", plane, " cells");
}

}  // namespace

ConvBlockGrads conv2d_relu_maxpool2d_backward(const Tensor& input, const Tensor& weight, const Tensor& output,
                                              const Tensor& argmax, const Tensor& grad_output, bool want_input,
                                              bool want_weight, bool want_bias, const Conv2dParams& conv,
                                              const Pool2dParams& pool) {
  const auto cs = conv_shape(input.shape(), weight.shape(), conv);
  const auto ps = pool_shape({cs.batch, cs.out_channels, cs.out_h(), cs.out_w()}, pool);
  check_shape(grad_output, output.shape(), "conv2d_relu_max_pool2d backward: grad_output");
  check_argmax(argmax, output.shape(), cs.out_h() * cs.out_w(), "conv2d_relu_max_pool2d backward: argmax");
  ConvBlockGrads grads;
  if (want_input) grads.input = Tensor::empty(input.shape(), DType::Float32, input.device());
  if (want_weight) grads.weight = Tensor::empty(weight.shape(), DType::Float32, input.device());
  if (want_bias) grads.bias = Tensor::empty({weight.size(0)}, DType::Float32, input.device());
  auto ptr = [](Tensor& t) { return t.defined() ? t.data<float>() : nullptr; };
  kernels::cpu::conv_relu_maxpool_backward(cs, ps, input.data<float>(), weight.data<float>(), output.data<float>(),
                                           argmax.data<int32_t>(), grad_output.data<float>(),
                                           ptr(grads.input), ptr(grads.weight), ptr(grads.bias));
  return grads;
}

Tensor maxpool2d_backward(const Tensor& grad_output, const Tensor& argmax, const Shape& input_shape,
                          const Pool2dParams& p) {
  const auto s = pool_shape(input_shape, p);
  check_shape(grad_output, {input_shape[0], input_shape[1], s.out_h(), s.out_w()}, "max_pool2d backward: grad_output");
  check_argmax(argmax, grad_output.shape(), s.in_h * s.in_w, "max_pool2d backward: argmax");
  Tensor grad_input = Tensor::empty(input_shape, DType::Float32, grad_output.device());
  HORO_DISPATCH(grad_output.device(), maxpool2d_backward, s, grad_output.data<float>(), argmax.data<int32_t>(), grad_input.data<float>());
  return grad_input;
}

Tensor avgpool2d(const Tensor& input, const Pool2dParams& p) {
  const auto s = checked_pool_shape(input, p, "avg_pool2d");
  Tensor out = Tensor::empty({input.size(0), input.size(1), s.out_h(), s.out_w()}, DType::Float32, input.device());
  HORO_DISPATCH(input.device(), avgpool2d_forward, s, input.data<float>(), out.data<float>());
  return out;
}

Tensor avgpool2d_backward(const Tensor& grad_output, const Shape& input_shape, const Pool2dParams& p) {
  const auto s = pool_shape(input_shape, p);
  check_shape(grad_output, {input_shape[0], input_shape[1], s.out_h(), s.out_w()}, "avg_pool2d backward: grad_output");
  Tensor grad_input = Tensor::empty(input_shape, DType::Float32, grad_output.device());
  HORO_DISPATCH(grad_output.device(), avgpool2d_backward, s, grad_output.data<float>(), grad_input.data<float>());
  return grad_input;
}

}  // namespace horo::ops
