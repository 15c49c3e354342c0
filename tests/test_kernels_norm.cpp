// Batch normalisation, adaptive pooling and the residual add + ReLU kernels against their naive
// references in kernels/ref, on random shapes (odd planes, one channel, BatchNorm1d's plane of 1).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels/simd_target.h"
#include "kernels/adaptive_pool.h"
#include "kernels/batch_norm.h"
#include "kernels/binary.h"
#include "kernels/parallel.h"
#include "tests/test_util.h"
#include "tests/thread_count_test.h"

namespace horo::kernels {
namespace {

using horo::testing::normalized_error;
using horo::testing::random_int;
using horo::testing::random_values;

constexpr double kTol = 1e-5;

class NormKernelTest : public horo::testing::ThreadCountTest {};

BatchNormShape random_bn_shape(int trial) {
  BatchNormShape s{.batch = random_int(1, 6), .channels = random_int(1, 9), .plane = random_int(1, 40)};
  if (trial % 4 == 0) s.plane = 1;                       // BatchNorm1d
  if (trial % 4 == 1) s.plane = random_int(200, 900);    // image planes, several vector blocks
  if (s.count() < 2) s.batch = 2;
  return s;
}

TEST_P(NormKernelTest, BatchNormForwardMatchesReference) {
  for (int trial = 0; trial < 24; ++trial) {
    const BatchNormShape s = random_bn_shape(trial);
    SCOPED_TRACE(::testing::Message() << "batch=" << s.batch << " channels=" << s.channels << " plane=" << s.plane);
    const int64_t n = s.batch * s.channels * s.plane, c = s.channels;
    // An offset mean, large against the spread: the statistics must not lose it.
    const float offset = trial % 3 == 0 ? 300.0f : 0.0f;
    auto x = random_values(n, offset - 2.0f, offset + 1.0f);
    std::vector<float> mean(c), var(c), mean_ref(c), var_ref(c);
    cpu::batch_norm_stats(s, x.data(), mean.data(), var.data());
    ref::batch_norm_stats(s, x.data(), mean_ref.data(), var_ref.data());
    EXPECT_LT(normalized_error(mean, mean_ref), kTol);
    for (int64_t k = 0; k < c; ++k) EXPECT_NEAR(var[k], var_ref[k], 1e-4 * var_ref[k] + 1e-6) << "channel " << k;

    auto weight = random_values(c, 0.5f, 1.5f), bias = random_values(c);
    const bool affine = trial % 2 == 0;
    std::vector<float> invstd(c), scale(c), shift(c), invstd_ref(c), scale_ref(c), shift_ref(c);
    cpu::batch_norm_coefficients(c, mean_ref.data(), var_ref.data(), affine ? weight.data() : nullptr,
                                 affine ? bias.data() : nullptr, 1e-5f, invstd.data(), scale.data(), shift.data());
    ref::batch_norm_coefficients(c, mean_ref.data(), var_ref.data(), affine ? weight.data() : nullptr,
                                 affine ? bias.data() : nullptr, 1e-5f, invstd_ref.data(), scale_ref.data(), shift_ref.data());
    EXPECT_LT(normalized_error(invstd, invstd_ref), kTol);
    EXPECT_LT(normalized_error(scale, scale_ref), kTol);
    EXPECT_LT(normalized_error(shift, shift_ref), kTol);

    // y = x * scale + shift rounds once with FMA and twice without (SSE4, plain C++). Without FMA the
    // product's rounding, up to 2^-24 |x * scale| per element, can be far larger than y when the mean
    // is large against the spread (300 against a spread of 3, or two samples close together): the
    // bound is that rounding (twice, with a margin) over the scale normalized_error divides by.
    const std::string target = horo::kernels::simd_target();
    const bool fma = target != "sse4" && target != "scalar";
    double apply_tol = kTol;
    if (!fma) {
      double largest_product = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t ch = (i / s.plane) % c;
        largest_product = std::max(largest_product, std::fabs(double(x[i]) * scale_ref[ch]) + std::fabs(double(shift_ref[ch])));
      }
      apply_tol = std::max(kTol, 4.0 * std::ldexp(largest_product, -24));  // normalized_error divides by >= 1
    }
    const auto residual = random_values(n, -2.0f, 2.0f);
    for (bool relu : {false, true}) {
      for (bool with_residual : {false, true}) {
        const float* r = with_residual ? residual.data() : nullptr;
        std::vector<float> y(n), y_ref(n);
        cpu::batch_norm_apply(s, x.data(), scale_ref.data(), shift_ref.data(), r, relu, y.data());
        ref::batch_norm_apply(s, x.data(), scale_ref.data(), shift_ref.data(), r, relu, y_ref.data());
        EXPECT_LT(normalized_error(y, y_ref), apply_tol) << "relu " << relu << " residual " << with_residual;
        if (relu) {
          for (float v : y) ASSERT_GE(v, 0.0f);
        }
      }
    }

    auto running_mean = random_values(c), running_var = random_values(c, 0.5f, 2.0f);
    auto rm_ref = running_mean, rv_ref = running_var;
    const float unbias = static_cast<float>(s.count()) / static_cast<float>(s.count() - 1);
    cpu::batch_norm_update_running(c, mean_ref.data(), var_ref.data(), 0.1f, unbias, running_mean.data(), running_var.data());
    ref::batch_norm_update_running(c, mean_ref.data(), var_ref.data(), 0.1f, unbias, rm_ref.data(), rv_ref.data());
    EXPECT_LT(normalized_error(running_mean, rm_ref), kTol);
    EXPECT_LT(normalized_error(running_var, rv_ref), kTol);
  }
}

TEST_P(NormKernelTest, BatchNormBackwardMatchesReference) {
  for (int trial = 0; trial < 26; ++trial) {
    BatchNormShape s = random_bn_shape(trial);
    // Channels past the fused pass's 64-channel chunk: a BatchNorm1d and a plane of 3x3.
    if (trial == 24) s = {.batch = 5, .channels = 150, .plane = 1};
    if (trial == 25) s = {.batch = 3, .channels = 70, .plane = 9};
    SCOPED_TRACE(::testing::Message() << "batch=" << s.batch << " channels=" << s.channels << " plane=" << s.plane);
    const int64_t n = s.batch * s.channels * s.plane, c = s.channels;
    auto x = random_values(n, -1.0f, 2.0f), dy = random_values(n);
    auto mean = random_values(c), invstd = random_values(c, 0.5f, 2.0f), weight = random_values(c, 0.5f, 1.5f);
    auto scale = random_values(c, 0.5f, 1.5f), shift = random_values(c);  // a fused ReLU's coefficients
    for (int64_t k = 0; k < c; k += 2) scale[k] = -scale[k];                // of both signs, away from 0
    // No input within rounding of the ReLU's threshold: whether x * scale + shift is above 0 there
    // depends on how it is rounded (one FMA or two operations), and one flipped gradient shows. With
    // |scale| >= 0.5 the nudge moves the value by at least 0.005.
    for (int64_t i = 0; i < n; ++i) {
      const int64_t ch = (i / s.plane) % c;
      if (std::fabs(x[i] * scale[ch] + shift[ch]) < 1e-3f) x[i] += 0.01f;
    }
    for (bool with_relu : {false, true}) {
      const ReluMask yp = with_relu ? ReluMask{scale.data(), shift.data()} : ReluMask{};
      std::vector<float> sum_dy(c), sum_dy_xhat(c), sum_dy_ref(c), sum_dy_xhat_ref(c);
      std::vector<std::pair<double, double>> bounds(c);
      cpu::batch_norm_backward_reduce(s, x.data(), yp, dy.data(), mean.data(), invstd.data(), sum_dy.data(), sum_dy_xhat.data());
      ref::batch_norm_backward_reduce(s, x.data(), yp, dy.data(), mean.data(), invstd.data(), sum_dy_ref.data(),
                                      sum_dy_xhat_ref.data());
      // Float sums over a plane, in an order that depends on the SIMD target: their rounding is
      // bounded against the sum of the terms' magnitudes (a sum near 0 has no relative accuracy).
      // A missing or wrong term is of order magnitude / count, far above the bound.
      for (int64_t k = 0; k < c; ++k) {
        double magnitude = 0.0, magnitude_xhat = 0.0;
        for (int64_t b = 0; b < s.batch; ++b) {
          for (int64_t i = 0; i < s.plane; ++i) {
            const int64_t at = (b * c + k) * s.plane + i;
            magnitude += std::fabs(dy[at]);
            magnitude_xhat += std::fabs(dy[at] * (x[at] - mean[k]) * invstd[k]);
          }
        }
        EXPECT_NEAR(sum_dy[k], sum_dy_ref[k], 2e-5 * magnitude + 1e-6) << "relu " << with_relu << " channel " << k;
        EXPECT_NEAR(sum_dy_xhat[k], sum_dy_xhat_ref[k], 2e-5 * magnitude_xhat + 1e-6) << "relu " << with_relu << " channel " << k;
        bounds[k] = {2e-5 * magnitude + 1e-6, 2e-5 * magnitude_xhat + 1e-6};
      }
      {  // Both passes in one call (this process's sums): the same sums, and dx from them.
        std::vector<float> fused_dy(c), fused_dy_xhat(c), dx(n), dx_ref(n);
        cpu::batch_norm_backward(s, x.data(), yp, dy.data(), mean.data(), invstd.data(), weight.data(), fused_dy.data(),
                                 fused_dy_xhat.data(), dx.data());
        for (int64_t k = 0; k < c; ++k) {
          EXPECT_NEAR(fused_dy[k], sum_dy_ref[k], bounds[k].first) << "fused, relu " << with_relu << " channel " << k;
          EXPECT_NEAR(fused_dy_xhat[k], sum_dy_xhat_ref[k], bounds[k].second) << "fused, relu " << with_relu << " channel " << k;
        }
        // dx from the sums this call produced, so that their own rounding is not counted twice.
        ref::batch_norm_backward_input(s, x.data(), yp, dy.data(), mean.data(), invstd.data(), weight.data(), fused_dy.data(),
                                       fused_dy_xhat.data(), static_cast<double>(s.count()), dx_ref.data());
        EXPECT_LT(normalized_error(dx, dx_ref), kTol) << "fused, relu " << with_relu;
      }
      for (bool batch_stats : {true, false}) {
        std::vector<float> dx(n), dx_ref(n);
        const double count = static_cast<double>(s.count()) * (trial % 5 == 0 ? 3 : 1);  // several ranks' worth
        const float* a = batch_stats ? sum_dy_ref.data() : nullptr;
        const float* b = batch_stats ? sum_dy_xhat_ref.data() : nullptr;
        cpu::batch_norm_backward_input(s, x.data(), yp, dy.data(), mean.data(), invstd.data(), weight.data(), a, b, count, dx.data());
        ref::batch_norm_backward_input(s, x.data(), yp, dy.data(), mean.data(), invstd.data(), weight.data(), a, b, count,
                                       dx_ref.data());
        EXPECT_LT(normalized_error(dx, dx_ref), kTol) << "relu " << with_relu << " batch statistics " << batch_stats;
      }
    }
  }
}

TEST_P(NormKernelTest, AdaptiveAveragePoolingMatchesReference) {
  for (int trial = 0; trial < 30; ++trial) {
    AdaptivePool2dShape s{.planes = random_int(1, 9), .in_h = random_int(1, 17), .in_w = random_int(1, 17)};
    // Global pooling, sizes that divide, and sizes that do not (overlapping windows), even upsampling.
    s.out_h = trial % 3 == 0 ? 1 : random_int(1, s.in_h + 2);
    s.out_w = trial % 3 == 0 ? 1 : random_int(1, s.in_w + 2);
    SCOPED_TRACE(::testing::Message() << s.in_h << "x" << s.in_w << " -> " << s.out_h << "x" << s.out_w);
    const int64_t in_n = s.planes * s.in_h * s.in_w, out_n = s.planes * s.out_h * s.out_w;
    auto x = random_values(in_n), g = random_values(out_n);
    std::vector<float> y(out_n), y_ref(out_n), gx(in_n), gx_ref(in_n);
    cpu::adaptive_avgpool2d_forward(s, x.data(), y.data());
    ref::adaptive_avgpool2d_forward(s, x.data(), y_ref.data());
    EXPECT_LT(normalized_error(y, y_ref), kTol);
    cpu::adaptive_avgpool2d_backward(s, g.data(), gx.data());
    ref::adaptive_avgpool2d_backward(s, g.data(), gx_ref.data());
    EXPECT_LT(normalized_error(gx, gx_ref), kTol);
  }
}

TEST_P(NormKernelTest, AddReluMatchesReferenceAndKeepsNaN) {
  const int64_t n = random_int(1, 100000);
  auto a = random_values(n), b = random_values(n);
  a[static_cast<size_t>(n / 2)] = std::nanf("");
  std::vector<float> y(n), y_ref(n);
  cpu::add_relu(n, a.data(), b.data(), y.data());
  ref::add_relu(n, a.data(), b.data(), y_ref.data());
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(y_ref[i])) EXPECT_TRUE(std::isnan(y[i])) << i;
    else EXPECT_EQ(y[i], y_ref[i]) << i;
  }
  EXPECT_TRUE(std::isnan(y[static_cast<size_t>(n / 2)]));
}

HORO_INSTANTIATE_THREAD_COUNTS(NormKernelTest);

}  // namespace
}  // namespace horo::kernels
