// The direct 3x3 convolution kernels (kernels/cpu/conv_padded.cpp) against the naive reference, on
// the shapes that exercise them: channel counts below, at and past a vector (1, 3, 8, 16, 17, 33, 64),
// planes from 1x1 to 30 wide, stride 1 and 2, padding 0, 1 and 2, 1 to 3 threads; the fused
// one-channel conv + ReLU + max-pool block (kernels/cpu/conv_block_single.cpp) and the fused block's
// backward from its gradient-carrying cells (kernels/cpu/conv_block_sparse.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv_block.h"
#include "kernels/conv_stats.h"
#include "kernels/parallel.h"
#include "kernels/pool2d.h"
#include "tests/test_util.h"
#include "tests/thread_count_test.h"

namespace horo::kernels {
namespace {

using horo::testing::normalized_error;
using horo::testing::random_int;
using horo::testing::random_values;

class DirectConvTest : public horo::testing::ThreadCountTest {};

// A bias gradient is one float sum of batch x cells terms per channel, so its rounding grows with the
// terms' total magnitude, not with the sum, which can be near zero (one output channel of 5 x 12 x 31
// cells on the plain C++ target once missed 1e-5 of the sum). Its error is taken relative to that
// total: summation's bound is about n x eps x sum |g|, and a term lost or counted twice still shows.
double bias_error(const std::vector<float>& gb, const std::vector<float>& gb_ref, const std::vector<float>& g,
                  int64_t batch, int64_t channels) {
  const int64_t cells = static_cast<int64_t>(g.size()) / (batch * channels);
  double worst = 0.0;
  for (int64_t o = 0; o < channels; ++o) {
    double mass = 0.0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t i = 0; i < cells; ++i) mass += std::fabs(g[static_cast<size_t>((n * channels + o) * cells + i)]);
    const double diff = std::fabs(static_cast<double>(gb[static_cast<size_t>(o)]) - gb_ref[static_cast<size_t>(o)]);
    worst = std::max(worst, diff / std::max(1.0, mass));
  }
  return worst;
}

// Winograd F(4x4, 3x3) runs 3x3 stride-1 convolutions whose (forward or transposed) input has 8 or
// more channels, by default, and rounds about 6x more than the direct sums. Over about 1,060 such
// convolutions of the trials below (HORO_WINOGRAD=1, AVX-512 and AVX2), forward and input-gradient
// errors reached 8e-6 (1.1e-5 once in other runs), weight gradients 1.1e-5 on W5's first stage; the
// direct tiles stayed under 2.1e-6. Elsewhere the tolerance stays 1e-5.
double winograd_tolerance(int64_t stride, int64_t channels) { return stride == 1 && channels >= 8 ? 3e-5 : 1e-5; }

TEST_P(DirectConvTest, ForwardAndBothBackwardsMatchReference) {
  const int64_t channel_choices[] = {1, 3, 8, 16, 17, 33, 64};
  for (int trial = 0; trial < 30; ++trial) {
    Conv2dShape s{.batch = random_int(1, 5), .kernel_h = 3, .kernel_w = 3};
    s.in_channels = channel_choices[random_int(0, 6)];
    s.out_channels = channel_choices[random_int(0, 6)];
    s.stride_h = s.stride_w = trial % 3 == 1 ? 2 : 1;
    s.pad_h = random_int(0, 2);
    s.pad_w = trial % 4 == 0 ? random_int(0, 2) : s.pad_h;
    s.in_h = random_int(std::max<int64_t>(1, 3 - 2 * s.pad_h), trial % 3 == 0 ? 30 : 9);
    s.in_w = random_int(std::max<int64_t>(1, 3 - 2 * s.pad_w), trial % 3 == 0 ? 30 : 9);
    if (trial == 0) s = {.batch = 4, .in_channels = 16, .in_h = 28, .in_w = 28, .out_channels = 16, .kernel_h = 3,
                         .kernel_w = 3, .pad_h = 1, .pad_w = 1};  // W5's first stage
    // 35 output columns: 18 Winograd tiles a row, whole groups of 8 and 16 tiles (AVX2, AVX-512) and a tail.
    if (trial == 1) s = {.batch = 2, .in_channels = 17, .in_h = 9, .in_w = 35, .out_channels = 33, .kernel_h = 3,
                         .kernel_w = 3, .pad_h = 1, .pad_w = 1};
    // 67 input columns, padding 2: whole groups of 4 vectors as F(4x4, 3x3) splits each row into its
    // four column phases (AVX-512 included), 18 tiles a row.
    if (trial == 2) s = {.batch = 1, .in_channels = 8, .in_h = 7, .in_w = 67, .out_channels = 16, .kernel_h = 3,
                         .kernel_w = 3, .pad_h = 2, .pad_w = 2};
    SCOPED_TRACE(::testing::Message() << "batch=" << s.batch << " cin=" << s.in_channels << " cout=" << s.out_channels
                                      << " in=" << s.in_h << "x" << s.in_w << " stride=" << s.stride_h << " pad=" << s.pad_h
                                      << "," << s.pad_w);
    const int64_t in_n = s.batch * s.in_channels * s.in_h * s.in_w, w_n = s.out_channels * s.in_channels * 9;
    const int64_t out_n = s.batch * s.out_channels * s.out_h() * s.out_w();
    auto x = random_values(in_n), w = random_values(w_n), b = random_values(s.out_channels), g = random_values(out_n);
    const bool with_bias = trial % 2 == 0;
    std::vector<float> y(out_n), y_ref(out_n);
    cpu::conv2d_forward(s, x.data(), w.data(), with_bias ? b.data() : nullptr, y.data());
    ref::conv2d_forward(s, x.data(), w.data(), with_bias ? b.data() : nullptr, y_ref.data());
    EXPECT_LT(normalized_error(y, y_ref), winograd_tolerance(s.stride_h, s.in_channels)) << "forward";
    std::vector<float> gx(in_n), gx_ref(in_n);
    cpu::conv2d_backward_input(s, g.data(), w.data(), gx.data());
    ref::conv2d_backward_input(s, g.data(), w.data(), gx_ref.data());
    EXPECT_LT(normalized_error(gx, gx_ref), winograd_tolerance(s.stride_h, s.out_channels)) << "input gradient";
    std::vector<float> gw(w_n), gw_ref(w_n), gb(s.out_channels), gb_ref(s.out_channels);
    cpu::conv2d_backward_weight(s, x.data(), g.data(), gw.data(), with_bias ? gb.data() : nullptr);
    ref::conv2d_backward_weight(s, x.data(), g.data(), gw_ref.data(), with_bias ? gb_ref.data() : nullptr);
    EXPECT_LT(normalized_error(gw, gw_ref), winograd_tolerance(s.stride_h, s.in_channels)) << "weight gradient";
    if (with_bias) {
      EXPECT_LT(bias_error(gb, gb_ref, g, s.batch, s.out_channels), 1e-6) << "bias gradient";
    }
  }
}

// The convolution that also sums its output's BatchNorm statistics (stride 1 and 2, padding 0 to 2,
// odd planes): output as the reference's, mean and biased variance as computed from that output.
TEST_P(DirectConvTest, ForwardWithStatisticsMatchesReference) {
  const int64_t channel_choices[] = {8, 16, 17, 33, 64};
  for (int trial = 0; trial < 12; ++trial) {
    Conv2dShape s{.batch = random_int(1, 4), .kernel_h = 3, .kernel_w = 3};
    s.in_channels = channel_choices[random_int(0, 4)];
    s.out_channels = channel_choices[random_int(0, 4)];
    s.stride_h = s.stride_w = trial % 4 == 3 ? 2 : 1;
    s.pad_h = s.pad_w = random_int(0, 2);
    s.in_h = random_int(std::max<int64_t>(3, 3 - 2 * s.pad_h), 19);
    s.in_w = random_int(std::max<int64_t>(3, 3 - 2 * s.pad_w), 19);
    SCOPED_TRACE(::testing::Message() << "batch=" << s.batch << " cin=" << s.in_channels << " cout=" << s.out_channels
                                      << " in=" << s.in_h << "x" << s.in_w << " stride=" << s.stride_h << " pad=" << s.pad_h);
    const int64_t plane = s.out_h() * s.out_w(), out_n = s.batch * s.out_channels * plane;
    auto x = random_values(s.batch * s.in_channels * s.in_h * s.in_w), w = random_values(s.out_channels * s.in_channels * 9);
    auto b = random_values(s.out_channels), shift = random_values(s.out_channels);
    std::vector<float> y(out_n), y_ref(out_n), mean(s.out_channels), var(s.out_channels);
    if (!cpu::conv2d_forward_stats(s, x.data(), w.data(), b.data(), shift.data(), y.data(), mean.data(), var.data())) continue;
    ref::conv2d_forward(s, x.data(), w.data(), b.data(), y_ref.data());
    EXPECT_LT(normalized_error(y, y_ref), winograd_tolerance(s.stride_h, s.in_channels)) << "output";
    std::vector<float> mean_ref(s.out_channels), var_ref(s.out_channels);
    for (int64_t o = 0; o < s.out_channels; ++o) {
      double sum = 0, squares = 0;
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t i = 0; i < plane; ++i) {
          const double v = y_ref[(n * s.out_channels + o) * plane + i];
          sum += v;
          squares += v * v;
        }
      const double count = static_cast<double>(s.batch * plane);
      mean_ref[o] = static_cast<float>(sum / count);
      var_ref[o] = static_cast<float>(squares / count - (sum / count) * (sum / count));
    }
    EXPECT_LT(normalized_error(mean, mean_ref), winograd_tolerance(s.stride_h, s.in_channels)) << "mean";
    EXPECT_LT(normalized_error(var, var_ref), winograd_tolerance(s.stride_h, s.in_channels)) << "variance";
  }
}

// The fused Conv2d-ReLU-MaxPool2d block of a one-channel input (W1's conv1: 3x3, 2x2 pooling) against
// the reference convolution, pooling and ReLU in turn: pooled values, an argmax that names a maximal
// cell (the first NaN where a window has one), and the weight and bias gradients through that argmax.
// Output channels below, at and past a vector; widths giving 1 to 19 pooled columns, odd and even.
TEST_P(DirectConvTest, FusedSingleChannelBlockMatchesReference) {
  const int64_t channel_choices[] = {1, 5, 8, 17, 32};
  for (int trial = 0; trial < 16; ++trial) {
    Conv2dShape c{.batch = random_int(1, 5), .in_channels = 1, .kernel_h = 3, .kernel_w = 3};
    c.out_channels = channel_choices[random_int(0, 4)];
    c.in_h = random_int(4, 20);
    c.in_w = random_int(4, 41);
    if (trial == 0) c = {.batch = 4, .in_channels = 1, .in_h = 28, .in_w = 28, .out_channels = 32, .kernel_h = 3, .kernel_w = 3};
    const Pool2dShape p{.planes = c.batch * c.out_channels, .in_h = c.out_h(), .in_w = c.out_w(), .kernel_h = 2,
                        .kernel_w = 2, .stride_h = 2, .stride_w = 2};
    SCOPED_TRACE(::testing::Message() << "batch=" << c.batch << " cout=" << c.out_channels << " in=" << c.in_h << "x" << c.in_w);
    const int64_t conv_plane = c.out_h() * c.out_w(), pooled_plane = p.out_h() * p.out_w();
    const int64_t conv_n = c.batch * c.out_channels * conv_plane, pooled_n = c.batch * c.out_channels * pooled_plane;
    auto x = random_values(c.batch * c.in_h * c.in_w), w = random_values(c.out_channels * 9), b = random_values(c.out_channels);
    if (trial % 4 == 3) x[static_cast<size_t>(random_int(0, static_cast<int>(x.size()) - 1))] = std::nanf("");
    const bool with_bias = trial % 2 == 0;
    std::vector<float> y(pooled_n);
    std::vector<int32_t> arg(pooled_n);
    cpu::conv_relu_maxpool_forward(c, p, x.data(), w.data(), with_bias ? b.data() : nullptr, y.data(), arg.data());
    std::vector<float> conv_ref(conv_n);
    ref::conv2d_forward(c, x.data(), w.data(), with_bias ? b.data() : nullptr, conv_ref.data());
    for (int64_t i = 0; i < pooled_n; ++i) {
      // The window's cells in row-major order: the maximum, or the first NaN (which wins, as in PyTorch).
      const int64_t plane = i / pooled_plane, cell = i % pooled_plane, ph = cell / p.out_w(), pw = cell % p.out_w();
      const float* conv = conv_ref.data() + plane * conv_plane;
      float best = -INFINITY;
      int32_t first_nan = -1;
      for (int64_t dy = 0; dy < 2; ++dy)
        for (int64_t dx = 0; dx < 2; ++dx) {
          const auto at = static_cast<int32_t>((2 * ph + dy) * c.out_w() + 2 * pw + dx);
          if (std::isnan(conv[at]) && first_nan < 0) first_nan = at;
          best = std::max(best, conv[at]);
        }
      ASSERT_EQ(std::isnan(y[i]), first_nan >= 0) << "pooled cell " << i;
      if (first_nan >= 0) {
        EXPECT_EQ(arg[i], first_nan) << "argmax of a window with a NaN, cell " << i;
        continue;
      }
      EXPECT_NEAR(y[i], std::max(best, 0.0f), 1e-5f * (1.0f + std::fabs(best))) << "pooled cell " << i;
      EXPECT_NEAR(conv[arg[i]], best, 1e-5f * (1.0f + std::fabs(best))) << "argmax " << arg[i] << " of cell " << i;
    }
    if (trial % 4 == 3) continue;  // gradients through a NaN are NaN either way
    // Backward: the pooled gradient masked by the output, sent to the argmax, then the reference.
    const auto g = random_values(pooled_n);
    std::vector<float> gw(w.size()), gb(c.out_channels);
    cpu::conv_relu_maxpool_backward(c, p, x.data(), w.data(), y.data(), arg.data(), g.data(), nullptr, gw.data(),
                                    with_bias ? gb.data() : nullptr);
    std::vector<float> masked(pooled_n), conv_grad(conv_n), gw_ref(w.size()), gb_ref(c.out_channels);
    for (int64_t i = 0; i < pooled_n; ++i) masked[i] = y[i] > 0.0f ? g[i] : 0.0f;
    ref::maxpool2d_backward(p, masked.data(), arg.data(), conv_grad.data());
    ref::conv2d_backward_weight(c, x.data(), conv_grad.data(), gw_ref.data(), with_bias ? gb_ref.data() : nullptr);
    EXPECT_LT(normalized_error(gw, gw_ref), winograd_tolerance(c.stride_h, c.in_channels)) << "weight gradient";
    if (with_bias) {
      EXPECT_LT(bias_error(gb, gb_ref, g, c.batch, c.out_channels), 1e-6) << "bias gradient";
    }
  }
}

// The fused block's backward with more than one input channel (the cells that carry a gradient alone,
// kernels/cpu/conv_block_sparse.cpp, or the dense path) against the reference pooling and convolution
// backwards: input, weight and bias gradients, each also left out. Input channels below and past the
// sparse path's 8 and a vector, strides 1 and 2, padding 0 to 2, pooling 2x2 and 3x3 apart (and 2x2
// overlapping, which stays dense).
TEST_P(DirectConvTest, FusedBlockBackwardMatchesReference) {
  const int64_t channel_choices[] = {3, 8, 9, 16, 32, 33};
  for (int trial = 0; trial < 24; ++trial) {
    Conv2dShape c{.batch = random_int(1, 5), .kernel_h = 3, .kernel_w = 3};
    c.in_channels = channel_choices[random_int(0, 5)];
    c.out_channels = random_int(1, 40);
    c.stride_h = c.stride_w = trial % 4 == 1 ? 2 : 1;
    c.pad_h = c.pad_w = random_int(0, 2);
    c.in_h = random_int(std::max<int64_t>(2, 4 - 2 * c.pad_h), 16);
    c.in_w = random_int(std::max<int64_t>(2, 4 - 2 * c.pad_w), 16);
    if (trial == 0) c = {.batch = 6, .in_channels = 32, .in_h = 13, .in_w = 13, .out_channels = 64, .kernel_h = 3, .kernel_w = 3};
    const int64_t window = trial % 5 == 2 ? 3 : 2, stride = trial % 7 == 3 ? 1 : window;
    if (c.out_h() < window || c.out_w() < window) continue;
    const Pool2dShape p{.planes = c.batch * c.out_channels, .in_h = c.out_h(), .in_w = c.out_w(), .kernel_h = window,
                        .kernel_w = window, .stride_h = stride, .stride_w = stride};
    SCOPED_TRACE(::testing::Message() << "batch=" << c.batch << " cin=" << c.in_channels << " cout=" << c.out_channels
                                      << " in=" << c.in_h << "x" << c.in_w << " stride=" << c.stride_h << " pad=" << c.pad_h
                                      << " pool=" << window << "/" << stride);
    const int64_t conv_n = c.batch * c.out_channels * c.out_h() * c.out_w();
    const int64_t pooled_n = c.batch * c.out_channels * p.out_h() * p.out_w();
    const auto x = random_values(c.batch * c.in_channels * c.in_h * c.in_w);
    const auto w = random_values(c.out_channels * c.in_channels * 9), b = random_values(c.out_channels);
    std::vector<float> y(pooled_n);
    std::vector<int32_t> arg(pooled_n);
    cpu::conv_relu_maxpool_forward(c, p, x.data(), w.data(), b.data(), y.data(), arg.data());
    const auto g = random_values(pooled_n);
    const bool want_input = trial % 3 != 2, want_weight = trial % 3 != 1, want_bias = trial % 2 == 0;
    std::vector<float> gx(x.size()), gw(w.size()), gb(c.out_channels);
    cpu::conv_relu_maxpool_backward(c, p, x.data(), w.data(), y.data(), arg.data(), g.data(),
                                    want_input ? gx.data() : nullptr, want_weight ? gw.data() : nullptr,
                                    want_bias ? gb.data() : nullptr);
    std::vector<float> masked(pooled_n), conv_grad(conv_n), gx_ref(x.size()), gw_ref(w.size()), gb_ref(c.out_channels);
    for (int64_t i = 0; i < pooled_n; ++i) masked[i] = y[i] > 0.0f ? g[i] : 0.0f;
    ref::maxpool2d_backward(p, masked.data(), arg.data(), conv_grad.data());
    ref::conv2d_backward_input(c, conv_grad.data(), w.data(), gx_ref.data());
    ref::conv2d_backward_weight(c, x.data(), conv_grad.data(), gw_ref.data(), gb_ref.data());
    if (want_input) {
      EXPECT_LT(normalized_error(gx, gx_ref), winograd_tolerance(c.stride_h, c.out_channels)) << "input gradient";
    }
    if (want_weight) {
      EXPECT_LT(normalized_error(gw, gw_ref), winograd_tolerance(c.stride_h, c.in_channels)) << "weight gradient";
    }
    if (want_bias) {
      EXPECT_LT(bias_error(gb, gb_ref, g, c.batch, c.out_channels), 1e-6) << "bias gradient";
    }
  }
}

HORO_INSTANTIATE_THREAD_COUNTS(DirectConvTest);

}  // namespace
}  // namespace horo::kernels
