// Batch normalisation by definition, in double: the oracle for the CPU and CUDA kernels.
#include "kernels/batch_norm.h"

#include <cmath>
#include <vector>

namespace horo::kernels::ref {
namespace {

// Calls visit(c, index) for every element of channel c.
template <typename Visit>
void for_each(const BatchNormShape& s, const Visit& visit) {
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t c = 0; c < s.channels; ++c)
      for (int64_t p = 0; p < s.plane; ++p) visit(c, (n * s.channels + c) * s.plane + p);
}

double gradient(const ReluMask& relu, const float* x, const float* dy, int64_t c, int64_t i) {
  return relu.scale && !(x[i] * relu.scale[c] + relu.shift[c] > 0.0f) ? 0.0 : static_cast<double>(dy[i]);
}

}  // namespace

void batch_norm_stats(const BatchNormShape& s, const float* x, float* mean, float* var) {
  std::vector<double> sum(static_cast<size_t>(s.channels)), squares(static_cast<size_t>(s.channels));
  for_each(s, [&](int64_t c, int64_t i) { sum[c] += x[i]; });
  for_each(s, [&](int64_t c, int64_t i) {
    const double d = x[i] - sum[c] / static_cast<double>(s.count());
    squares[c] += d * d;
  });
  for (int64_t c = 0; c < s.channels; ++c) {
    mean[c] = static_cast<float>(sum[c] / static_cast<double>(s.count()));
    var[c] = static_cast<float>(squares[c] / static_cast<double>(s.count()));
  }
}

void batch_norm_coefficients(int64_t channels, const float* mean, const float* var, const float* weight,
                             const float* bias, float eps, float* invstd, float* scale, float* shift) {
  for (int64_t c = 0; c < channels; ++c) {
    const double is = 1.0 / std::sqrt(static_cast<double>(var[c]) + eps);
    const double w = weight ? weight[c] : 1.0, b = bias ? bias[c] : 0.0;
    invstd[c] = static_cast<float>(is);
    scale[c] = static_cast<float>(w * is);
    shift[c] = static_cast<float>(b - mean[c] * w * is);
  }
}

void batch_norm_update_running(int64_t channels, const float* mean, const float* var, float momentum, float unbias,
                               float* running_mean, float* running_var) {
  for (int64_t c = 0; c < channels; ++c) {
    running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + static_cast<double>(momentum) * mean[c]);
    running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] +
                                        static_cast<double>(momentum) * var[c] * unbias);
  }
}

void batch_norm_apply(const BatchNormShape& s, const float* x, const float* scale, const float* shift,
                      const float* residual, bool relu, float* y) {
  for_each(s, [&](int64_t c, int64_t i) {
    const float v = static_cast<float>(static_cast<double>(x[i]) * scale[c] + shift[c] + (residual ? residual[i] : 0.0));
    y[i] = relu && v < 0.0f ? 0.0f : v;
  });
}

void batch_norm_backward_reduce(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,
                                const float* mean, const float* invstd, float* sum_dy, float* sum_dy_xhat) {
  std::vector<double> g_sum(static_cast<size_t>(s.channels)), gx_sum(static_cast<size_t>(s.channels));
  for_each(s, [&](int64_t c, int64_t i) {
    const double g = gradient(relu, x, dy, c, i);
    g_sum[c] += g;
    gx_sum[c] += g * (x[i] - static_cast<double>(mean[c])) * invstd[c];
  });
  for (int64_t c = 0; c < s.channels; ++c) {
    sum_dy[c] = static_cast<float>(g_sum[c]);
    sum_dy_xhat[c] = static_cast<float>(gx_sum[c]);
  }
}

void batch_norm_backward_input(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy,
                               const float* mean, const float* invstd, const float* weight, const float* sum_dy,
                               const float* sum_dy_xhat, double count, float* dx) {
  for_each(s, [&](int64_t c, int64_t i) {
    double g = gradient(relu, x, dy, c, i);
    if (sum_dy) {
      const double xhat = (x[i] - static_cast<double>(mean[c])) * invstd[c];
      g -= sum_dy[c] / count + xhat * sum_dy_xhat[c] / count;
    }
    dx[i] = static_cast<float>((weight ? weight[c] : 1.0) * invstd[c] * g);
  });
}

void batch_norm_backward(const BatchNormShape& s, const float* x, ReluMask relu, const float* dy, const float* mean,
                         const float* invstd, const float* weight, float* sum_dy, float* sum_dy_xhat, float* dx) {
  batch_norm_backward_reduce(s, x, relu, dy, mean, invstd, sum_dy, sum_dy_xhat);
  batch_norm_backward_input(s, x, relu, dy, mean, invstd, weight, sum_dy, sum_dy_xhat, static_cast<double>(s.count()), dx);
}

}  // namespace horo::kernels::ref
