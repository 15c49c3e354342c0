// Batch normalisation and adaptive pooling: shape checks, outputs, dispatch by device.
#include "kernels/adaptive_pool.h"
#include "kernels/batch_norm.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace horo::ops {
namespace {

kernels::BatchNormShape bn_shape(const Tensor& x, const char* what) {
  HORO_CHECK(x.dim() == 2 || x.dim() == 4, ShapeError, what, ": expected [batch, channels] or [batch, channels, height, ",
             "width], got ", x.describe());
  check_dtype(x, DType::Float32, what);
  return {.batch = x.size(0), .channels = x.size(1), .plane = x.dim() == 4 ? x.size(2) * x.size(3) : 1};
}

void check_channels(const Tensor& t, int64_t channels, const char* what) {
  if (!t.defined()) return;
  check_shape(t, {channels}, what);
  check_dtype(t, DType::Float32, what);
}

const float* ptr(const Tensor& t) { return t.defined() ? t.data<float>() : nullptr; }

// The shape of a backward pass's x, checked against its gradient and a fused ReLU's coefficients.
kernels::BatchNormShape backward_shape(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift, const Tensor& dy) {
  const auto s = bn_shape(x, "batch_norm backward");
  check_shape(dy, x.shape(), "batch_norm backward: grad_output");
  check_channels(relu_scale, s.channels, "batch_norm backward: scale");
  check_channels(relu_shift, s.channels, "batch_norm backward: shift");
  return s;
}

kernels::AdaptivePool2dShape adaptive_shape(const Shape& input, int64_t out_h, int64_t out_w) {
  return {.planes = input[0] * input[1], .in_h = input[2], .in_w = input[3], .out_h = out_h, .out_w = out_w};
}

}  // namespace

Tensor adaptive_avgpool2d(const Tensor& input, int64_t out_h, int64_t out_w) {
  HORO_CHECK(input.dim() == 4, ShapeError, "adaptive_avg_pool2d: expected [batch, channels, height, width], got ",
             input.describe());
  check_dtype(input, DType::Float32, "adaptive_avg_pool2d");
  HORO_CHECK(out_h > 0 && out_w > 0, ValueError, "adaptive_avg_pool2d: output size must be positive, got ", out_h, "x", out_w);
  HORO_CHECK(input.size(2) > 0 && input.size(3) > 0, ShapeError, "adaptive_avg_pool2d: empty plane in ", input.describe());
  Tensor out = Tensor::empty({input.size(0), input.size(1), out_h, out_w}, DType::Float32, input.device());
  HORO_DISPATCH(input.device(), adaptive_avgpool2d_forward, adaptive_shape(input.shape(), out_h, out_w),
                input.data<float>(), out.data<float>());
  return out;
}

Tensor adaptive_avgpool2d_backward(const Tensor& grad_output, const Shape& input_shape) {
  check_rank(grad_output, 4, "adaptive_avg_pool2d backward: grad_output");
  HORO_CHECK(grad_output.size(0) == input_shape[0] && grad_output.size(1) == input_shape[1], ShapeError,
             "adaptive_avg_pool2d backward: grad_output ", grad_output.describe(), " does not match the input ",
             shape_str(input_shape));
  Tensor grad_input = Tensor::empty(input_shape, DType::Float32, grad_output.device());
  HORO_DISPATCH(grad_output.device(), adaptive_avgpool2d_backward,
                adaptive_shape(input_shape, grad_output.size(2), grad_output.size(3)), grad_output.data<float>(),
                grad_input.data<float>());
  return grad_input;
}

std::pair<Tensor, Tensor> batch_norm_stats(const Tensor& x) {
  const auto s = bn_shape(x, "batch_norm");
  HORO_CHECK(s.count() > 0, ShapeError, "batch_norm: no values per channel in ", x.describe());
  Tensor mean = Tensor::empty({s.channels}, DType::Float32, x.device());
  Tensor var = Tensor::empty({s.channels}, DType::Float32, x.device());
  HORO_DISPATCH(x.device(), batch_norm_stats, s, x.data<float>(), mean.data<float>(), var.data<float>());
  return {mean, var};
}

BatchNormCoefficients batch_norm_coefficients(const Tensor& mean, const Tensor& var, const Tensor& weight,
                                              const Tensor& bias, float eps) {
  check_rank(mean, 1, "batch_norm: mean");
  const int64_t c = mean.size(0);
  check_channels(var, c, "batch_norm: variance");
  check_channels(weight, c, "batch_norm: weight");
  check_channels(bias, c, "batch_norm: bias");
  check_same_device("batch_norm", {&mean, &var, &weight, &bias});
  BatchNormCoefficients k{Tensor::empty({c}, DType::Float32, mean.device()), Tensor::empty({c}, DType::Float32, mean.device()),
                          Tensor::empty({c}, DType::Float32, mean.device())};
  HORO_DISPATCH(mean.device(), batch_norm_coefficients, c, mean.data<float>(), var.data<float>(), ptr(weight), ptr(bias), eps,
                k.invstd.data<float>(), k.scale.data<float>(), k.shift.data<float>());
  return k;
}

void batch_norm_update_running(const Tensor& mean, const Tensor& var, float momentum, float unbias, Tensor& running_mean,
                               Tensor& running_var) {
  const int64_t c = mean.size(0);
  check_channels(running_mean, c, "batch_norm: running_mean");
  check_channels(running_var, c, "batch_norm: running_var");
  check_same_device("batch_norm running statistics", {&mean, &var, &running_mean, &running_var});
  HORO_DISPATCH(mean.device(), batch_norm_update_running, c, mean.data<float>(), var.data<float>(), momentum, unbias,
                running_mean.data<float>(), running_var.data<float>());
}

Tensor batch_norm_apply(const Tensor& x, const Tensor& scale, const Tensor& shift, bool relu, const Tensor& residual) {
  const auto s = bn_shape(x, "batch_norm");
  check_channels(scale, s.channels, "batch_norm: scale");
  check_channels(shift, s.channels, "batch_norm: shift");
  if (residual.defined()) {
    check_shape(residual, x.shape(), "batch_norm: residual");
    check_dtype(residual, DType::Float32, "batch_norm: residual");
  }
  check_same_device("batch_norm", {&x, &scale, &shift, &residual});
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  HORO_DISPATCH(x.device(), batch_norm_apply, s, x.data<float>(), scale.data<float>(), shift.data<float>(), ptr(residual),
                relu, y.data<float>());
  return y;
}

std::pair<Tensor, Tensor> batch_norm_backward_reduce(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift,
                                                     const Tensor& dy, const Tensor& mean, const Tensor& invstd) {
  const auto s = backward_shape(x, relu_scale, relu_shift, dy);
  Tensor sum_dy = Tensor::empty({s.channels}, DType::Float32, x.device());
  Tensor sum_dy_xhat = Tensor::empty({s.channels}, DType::Float32, x.device());
  HORO_DISPATCH(x.device(), batch_norm_backward_reduce, s, x.data<float>(), kernels::ReluMask{ptr(relu_scale), ptr(relu_shift)},
                dy.data<float>(), mean.data<float>(),
                invstd.data<float>(), sum_dy.data<float>(), sum_dy_xhat.data<float>());
  return {sum_dy, sum_dy_xhat};
}

Tensor batch_norm_backward_input(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift, const Tensor& dy,
                                 const Tensor& mean, const Tensor& invstd, const Tensor& weight, const Tensor& sum_dy,
                                 const Tensor& sum_dy_xhat, double count) {
  const auto s = backward_shape(x, relu_scale, relu_shift, dy);
  Tensor dx = Tensor::empty(x.shape(), DType::Float32, x.device());
  HORO_DISPATCH(x.device(), batch_norm_backward_input, s, x.data<float>(), kernels::ReluMask{ptr(relu_scale), ptr(relu_shift)},
                dy.data<float>(), mean.data<float>(),
                invstd.data<float>(), ptr(weight), ptr(sum_dy), ptr(sum_dy_xhat), count, dx.data<float>());
  return dx;
}

BatchNormGrads batch_norm_backward(const Tensor& x, const Tensor& relu_scale, const Tensor& relu_shift, const Tensor& dy,
                                   const Tensor& mean, const Tensor& invstd, const Tensor& weight) {
  const auto s = backward_shape(x, relu_scale, relu_shift, dy);
  check_channels(weight, s.channels, "batch_norm backward: weight");
  BatchNormGrads out{Tensor::empty(x.shape(), DType::Float32, x.device()), Tensor::empty({s.channels}, DType::Float32, x.device()),
                     Tensor::empty({s.channels}, DType::Float32, x.device())};
  HORO_DISPATCH(x.device(), batch_norm_backward, s, x.data<float>(), kernels::ReluMask{ptr(relu_scale), ptr(relu_shift)},
                dy.data<float>(), mean.data<float>(), invstd.data<float>(), ptr(weight), out.sum_dy.data<float>(),
                out.sum_dy_xhat.data<float>(), out.grad_input.data<float>());
  return out;
}

void increment(Tensor& counter, int64_t by) {
  check_dtype(counter, DType::Int64, "increment");
  HORO_CHECK(counter.numel() == 1, ShapeError, "increment: expected one counter, got ", counter.describe());
  if (counter.device().is_cuda()) {
    const kernels::cuda::DeviceScope scope(counter.device().index);
    kernels::cuda::increment_int64(counter.data<int64_t>(), by);
  }
  else *counter.data<int64_t>() += by;
}

}  // namespace horo::ops
