// Every CPU kernel against its naive reference in kernels/ref, on random shapes with odd sizes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "kernels/activation.h"
#include "kernels/binary.h"
#include "kernels/conv2d.h"
#include "kernels/cross_entropy.h"
#include "kernels/dropout.h"
#include "kernels/gemm.h"
#include "kernels/half.h"
#include "kernels/optim.h"
#include "kernels/parallel.h"
#include "kernels/philox.h"
#include "kernels/pool2d.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"
#include "tests/test_util.h"
#include "tests/thread_count_test.h"

namespace horo::kernels {
namespace {

using horo::testing::normalized_error;
using horo::testing::random_int;
using horo::testing::random_values;

constexpr double kTol = 1e-5;

class KernelTest : public horo::testing::ThreadCountTest {};

TEST_P(KernelTest, GemmMatchesReferenceForEveryTransposeAndBeta) {
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t m = random_int(1, 70), n = random_int(1, 70), k = random_int(1, 90);
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      const float beta = trial % 3 == 0 ? 0.0f : 0.5f;
      auto a = random_values(m * k), b = random_values(k * n), c = random_values(m * n);
      auto c_ref = c;
      GemmArgs args{.trans_a = ta, .trans_b = tb, .m = m, .n = n, .k = k, .alpha = 1.5f, .a = a.data(),
                    .lda = ta ? m : k, .b = b.data(), .ldb = tb ? k : n, .beta = beta, .c = c.data(), .ldc = n};
      cpu::gemm(args);
      args.c = c_ref.data();
      ref::gemm(args);
      EXPECT_LT(normalized_error(c, c_ref), kTol) << "m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb;
    }
  }
}

Conv2dShape random_conv_shape() {
  Conv2dShape s;
  s.batch = random_int(1, 5);
  s.in_channels = random_int(1, 6);
  s.out_channels = random_int(1, 7);
  s.kernel_h = random_int(1, 4);
  s.kernel_w = random_int(1, 4);
  s.stride_h = random_int(1, 3);
  s.stride_w = random_int(1, 3);
  s.pad_h = random_int(0, 2);
  s.pad_w = random_int(0, 2);
  s.dilation_h = random_int(1, 2);
  s.dilation_w = random_int(1, 2);
  s.in_h = random_int(s.dilation_h * (s.kernel_h - 1) + 1, 15);
  s.in_w = random_int(s.dilation_w * (s.kernel_w - 1) + 1, 15);
  return s;
}

TEST_P(KernelTest, Conv2dForwardAndBothBackwardsMatchReference) {
  for (int trial = 0; trial < 30; ++trial) {
    Conv2dShape s = random_conv_shape();
    if (trial % 3 == 0) {  // stride 1, no padding or dilation: the dense fast paths, rows up to and past 16
      s.stride_h = s.stride_w = s.dilation_h = s.dilation_w = 1;
      s.pad_h = s.pad_w = 0;
      s.in_w = random_int(s.kernel_w, 40);
    }
    if (trial % 5 == 1) {  // one input channel, 3x3: the direct kernels (output rows up to 32 wide, then im2col)
      s = {.batch = random_int(1, 5), .in_channels = 1, .in_h = random_int(3, 30), .in_w = random_int(3, 36),
           .out_channels = random_int(1, 9), .kernel_h = 3, .kernel_w = 3};
    }
    SCOPED_TRACE(::testing::Message() << "batch=" << s.batch << " cin=" << s.in_channels << " cout=" << s.out_channels
                                      << " in=" << s.in_h << "x" << s.in_w << " k=" << s.kernel_h << "x" << s.kernel_w
                                      << " stride=" << s.stride_h << "," << s.stride_w << " pad=" << s.pad_h << ","
                                      << s.pad_w << " dil=" << s.dilation_h << "," << s.dilation_w);
    const int64_t in_n = s.batch * s.in_channels * s.in_h * s.in_w;
    const int64_t w_n = s.out_channels * s.in_channels * s.kernel_h * s.kernel_w;
    const int64_t out_n = s.batch * s.out_channels * s.out_h() * s.out_w();
    auto x = random_values(in_n), w = random_values(w_n), b = random_values(s.out_channels), g = random_values(out_n);
    std::vector<float> y(out_n), y_ref(out_n);
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data());
    ref::conv2d_forward(s, x.data(), w.data(), b.data(), y_ref.data());
    EXPECT_LT(normalized_error(y, y_ref), kTol);

    std::vector<float> gx(in_n), gx_ref(in_n);
    cpu::conv2d_backward_input(s, g.data(), w.data(), gx.data());
    ref::conv2d_backward_input(s, g.data(), w.data(), gx_ref.data());
    EXPECT_LT(normalized_error(gx, gx_ref), kTol);

    std::vector<float> gw(w_n), gw_ref(w_n), gb(s.out_channels), gb_ref(s.out_channels);
    cpu::conv2d_backward_weight(s, x.data(), g.data(), gw.data(), gb.data());
    ref::conv2d_backward_weight(s, x.data(), g.data(), gw_ref.data(), gb_ref.data());
    // Both are float sums over the batch and the output plane, summed in an order that depends on the
    // SIMD target: their rounding is bounded against the terms' magnitudes, sum |dy| (|x| <= 1), not
    // against the result, which can be near 0. A missing or wrong term is of order sum / count, far above.
    const int64_t plane = s.out_h() * s.out_w(), patch = s.in_channels * s.kernel_h * s.kernel_w;
    for (int64_t o = 0; o < s.out_channels; ++o) {
      double magnitude = 0.0;
      for (int64_t n = 0; n < s.batch; ++n)
        for (int64_t p = 0; p < plane; ++p) magnitude += std::fabs(g[(n * s.out_channels + o) * plane + p]);
      const double bound = 2e-5 * magnitude + 1e-6;
      EXPECT_NEAR(gb[o], gb_ref[o], bound) << "bias gradient of channel " << o;
      for (int64_t k = 0; k < patch; ++k) EXPECT_NEAR(gw[o * patch + k], gw_ref[o * patch + k], bound) << "weight gradient " << o << "," << k;
    }
  }
}

TEST_P(KernelTest, PoolingForwardAndBackwardMatchReference) {
  for (int trial = 0; trial < 30; ++trial) {
    Pool2dShape s;
    s.planes = random_int(1, 9);
    s.kernel_h = random_int(1, 4);
    s.kernel_w = random_int(1, 4);
    s.stride_h = random_int(1, 3);
    s.stride_w = random_int(1, 3);
    s.pad_h = random_int(0, s.kernel_h / 2);
    s.pad_w = random_int(0, s.kernel_w / 2);
    if (trial % 3 == 0) s = {.planes = random_int(1, 9), .kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
    s.in_h = random_int(s.kernel_h, 13);
    // 2x2 max pooling works on vectors of 4 to 16 outputs: wide rows cross them, odd widths leave a column.
    s.in_w = random_int(s.kernel_w, trial % 3 == 0 ? 70 : 13);
    SCOPED_TRACE(::testing::Message() << "in=" << s.in_h << "x" << s.in_w << " k=" << s.kernel_h << "x" << s.kernel_w
                                      << " stride=" << s.stride_h << "," << s.stride_w << " pad=" << s.pad_h << "," << s.pad_w);
    const int64_t in_n = s.planes * s.in_h * s.in_w, out_n = s.planes * s.out_h() * s.out_w();
    auto x = random_values(in_n), g = random_values(out_n);
    std::vector<float> y(out_n), y_ref(out_n), gx(in_n), gx_ref(in_n);
    std::vector<int32_t> arg(out_n), arg_ref(out_n);
    cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
    ref::maxpool2d_forward(s, x.data(), y_ref.data(), arg_ref.data());
    EXPECT_EQ(y, y_ref);
    EXPECT_EQ(arg, arg_ref);
    cpu::maxpool2d_backward(s, g.data(), arg.data(), gx.data());
    ref::maxpool2d_backward(s, g.data(), arg_ref.data(), gx_ref.data());
    EXPECT_LT(normalized_error(gx, gx_ref), kTol);

    cpu::avgpool2d_forward(s, x.data(), y.data());
    ref::avgpool2d_forward(s, x.data(), y_ref.data());
    EXPECT_LT(normalized_error(y, y_ref), kTol);
    cpu::avgpool2d_backward(s, g.data(), gx.data());
    ref::avgpool2d_backward(s, g.data(), gx_ref.data());
    EXPECT_LT(normalized_error(gx, gx_ref), kTol);
  }
}

TEST_P(KernelTest, MaxPoolTiesPickTheFirstCellAndNaNPropagates) {
  for (int64_t width : {26, 11, 64}) {
    const Pool2dShape s{.planes = 3, .in_h = 6, .in_w = width, .kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
    const int64_t in_n = s.planes * s.in_h * s.in_w, out_n = s.planes * s.out_h() * s.out_w();
    std::vector<float> x(in_n, 0.5f), y(out_n), y_ref(out_n);
    std::vector<int32_t> arg(out_n), arg_ref(out_n);
    cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
    ref::maxpool2d_forward(s, x.data(), y_ref.data(), arg_ref.data());
    EXPECT_EQ(arg, arg_ref) << "width " << width;  // every window ties: the top-left cell wins
    x[s.in_w + 1] = std::nanf("");                   // in the first window of plane 0
    x[in_n - s.in_w - 2] = std::nanf("");            // row 4, column in_w - 2 of plane 2: inside a window
    cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
    EXPECT_TRUE(std::isnan(y[0])) << "width " << width;
    EXPECT_EQ(arg[0], s.in_w + 1);
    int nans = 0;
    for (float v : y) nans += std::isnan(v);
    EXPECT_EQ(nans, 2) << "width " << width;
  }
}

TEST_P(KernelTest, UnaryOpsAndDerivativesMatchReference) {
  const Unary ops[] = {Unary::ReLU, Unary::LeakyReLU, Unary::Sigmoid, Unary::Tanh, Unary::GELU,
                       Unary::Exp,  Unary::Log,       Unary::Neg,     Unary::Sqrt, Unary::Abs};
  for (Unary op : ops) {
    SCOPED_TRACE(unary_name(op));
    const int64_t n = random_int(1, 70000);  // past the threading grain
    const bool positive = op == Unary::Log || op == Unary::Sqrt;
    auto x = positive ? random_values(n, 0.05f, 4.0f) : random_values(n, -4.0f, 4.0f);
    auto dy = random_values(n);
    std::vector<float> y(n), y_ref(n), dx(n), dx_ref(n);
    cpu::unary_forward(op, 0.1f, n, x.data(), y.data());
    ref::unary_forward(op, 0.1f, n, x.data(), y_ref.data());
    EXPECT_LT(normalized_error(y, y_ref), kTol);
    cpu::unary_backward(op, 0.1f, n, x.data(), y.data(), dy.data(), dx.data());
    ref::unary_backward(op, 0.1f, n, x.data(), y_ref.data(), dy.data(), dx_ref.data());
    EXPECT_LT(normalized_error(dx, dx_ref), 1e-4);
  }
}

TEST_P(KernelTest, SoftmaxAndLogSoftmaxMatchReferenceOnEveryAxisLayout) {
  for (int trial = 0; trial < 12; ++trial) {
    const SoftmaxShape s{.outer = random_int(1, 9), .axis = random_int(1, 33), .inner = random_int(1, 5)};
    const int64_t n = s.outer * s.axis * s.inner;
    for (bool log : {false, true}) {
      auto x = random_values(n, -6.0f, 6.0f), dy = random_values(n);
      std::vector<float> y(n), y_ref(n), dx(n), dx_ref(n);
      cpu::softmax_forward(s, log, x.data(), y.data());
      ref::softmax_forward(s, log, x.data(), y_ref.data());
      EXPECT_LT(normalized_error(y, y_ref), kTol);
      cpu::softmax_backward(s, log, y.data(), dy.data(), dx.data());
      ref::softmax_backward(s, log, y_ref.data(), dy.data(), dx_ref.data());
      EXPECT_LT(normalized_error(dx, dx_ref), kTol);
    }
  }
}

TEST_P(KernelTest, DropoutMaskMatchesReferenceAndKeepsOneMinusP) {
  const int64_t n = 100003;
  const uint64_t seed = static_cast<uint64_t>(random_int(0, 1 << 30)), offset = static_cast<uint64_t>(random_int(0, 99));
  auto x = random_values(n);
  std::vector<float> mask(n), y(n), mask_ref(n), y_ref(n);
  cpu::dropout_forward(seed, offset, 0.3f, n, x.data(), mask.data(), y.data());
  ref::dropout_forward(seed, offset, 0.3f, n, x.data(), mask_ref.data(), y_ref.data());
  EXPECT_EQ(mask, mask_ref);
  EXPECT_EQ(y, y_ref);
  int64_t kept = 0;
  for (float m : mask) kept += m != 0.0f;
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 0.01);
}

// SGD (momentum, dampening, Nesterov, weight decay) and Adam / AdamW over three steps against
// torch.optim's formulas in double, on lengths with vector tails and past a thread's share.
TEST_P(KernelTest, OptimizerUpdatesMatchTorchFormulas) {
  for (int64_t n : {int64_t{1}, int64_t{7}, random_int(17, 200), random_int(70000, 70100)}) {
    SCOPED_TRACE(::testing::Message() << "n=" << n);
    // Within a few float roundings of the values involved, which are of order 1 (an entry near zero
    // after a cancellation keeps only an absolute bound).
    auto check = [&](const std::vector<float>& got, const std::vector<double>& want, const char* what) {
      double worst = 0.0;
      for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(got[i] - want[i]) - 1e-5 * std::fabs(want[i]));
      EXPECT_LT(worst, 1e-6) << what;
    };
    for (int variant = 0; variant < 4; ++variant) {
      const SgdArgs base{.lr = 0.05f, .momentum = variant == 0 ? 0.0f : 0.9f, .dampening = variant == 2 ? 0.3f : 0.0f,
                         .weight_decay = variant == 1 ? 0.0f : 0.01f, .nesterov = variant == 3};
      SCOPED_TRACE(::testing::Message() << "sgd variant " << variant);
      auto p = random_values(n);
      std::vector<float> buf(n);
      std::vector<double> p_ref(p.begin(), p.end()), buf_ref(n);
      for (int step = 0; step < 3; ++step) {
        const auto g = random_values(n);
        SgdArgs a = base;
        a.first_step = step == 0;
        cpu::sgd_update(a, n, p.data(), g.data(), buf.data());
        for (int64_t i = 0; i < n; ++i) {
          double d = g[i] + double{a.weight_decay} * p_ref[i];
          if (a.momentum != 0.0f) {
            buf_ref[i] = step == 0 ? d : a.momentum * buf_ref[i] + (1.0 - a.dampening) * d;
            d = a.nesterov ? d + a.momentum * buf_ref[i] : buf_ref[i];
          }
          p_ref[i] -= double{a.lr} * d;
        }
        check(p, p_ref, "param");
        if (a.momentum != 0.0f) check(buf, buf_ref, "momentum buffer");
      }
    }
    for (bool decoupled : {false, true}) {
      SCOPED_TRACE(::testing::Message() << (decoupled ? "adamw" : "adam"));
      const AdamArgs base{.lr = 0.01f, .weight_decay = 0.02f, .decoupled_weight_decay = decoupled};
      auto p = random_values(n);
      std::vector<float> m(n), v(n);
      std::vector<double> p_ref(p.begin(), p.end()), m_ref(n), v_ref(n);
      for (int step = 1; step <= 3; ++step) {
        // Adam divides the update by its gradient's scale, so a gradient that cancels against the weight
        // decay (g near -wd * p) would amplify one rounding of float arithmetic: |g| stays above 0.1.
        auto g = random_values(n, 0.1f, 1.0f);
        for (auto& value : g) value = random_int(0, 1) ? value : -value;
        AdamArgs a = base;
        a.step = step;
        cpu::adam_update(a, n, p.data(), g.data(), m.data(), v.data());
        const double bias1 = 1.0 - std::pow(double{a.beta1}, step), bias2 = 1.0 - std::pow(double{a.beta2}, step);
        for (int64_t i = 0; i < n; ++i) {
          double d = g[i];
          if (decoupled) p_ref[i] *= 1.0 - double{a.lr} * a.weight_decay;
          else d += double{a.weight_decay} * p_ref[i];
          m_ref[i] = a.beta1 * m_ref[i] + (1.0 - a.beta1) * d;
          v_ref[i] = a.beta2 * v_ref[i] + (1.0 - a.beta2) * d * d;
          p_ref[i] -= a.lr / bias1 * m_ref[i] / (std::sqrt(v_ref[i]) / std::sqrt(bias2) + a.eps);
        }
        check(p, p_ref, "param");
        check(m, m_ref, "exp_avg");
        check(v, v_ref, "exp_avg_sq");
      }
    }
  }
}

TEST_P(KernelTest, DropoutMatchesReferenceForAnyRateOffsetAndLength) {
  // Offsets just below 2^34 make the 32-bit low word of the block counter wrap inside a run.
  const uint64_t offsets[] = {0, static_cast<uint64_t>(random_int(1, 200)), (uint64_t{1} << 34) - 37};
  for (float p : {0.0f, 0.25f, 0.5f, 0.9f, 1.0f}) {
    for (uint64_t offset : offsets) {
      const int64_t n = random_int(1, 3000);
      SCOPED_TRACE(::testing::Message() << "p=" << p << " offset=" << offset << " n=" << n);
      const uint64_t seed = static_cast<uint64_t>(random_int(0, 1 << 30)) << 20;
      auto x = random_values(n);
      std::vector<float> mask(n), y(n), mask_ref(n), y_ref(n);
      cpu::dropout_forward(seed, offset, p, n, x.data(), mask.data(), y.data());
      ref::dropout_forward(seed, offset, p, n, x.data(), mask_ref.data(), y_ref.data());
      EXPECT_EQ(mask, mask_ref);
      EXPECT_EQ(y, y_ref);
    }
  }
}

TEST_P(KernelTest, BroadcastBinaryOpsMatchReference) {
  for (int trial = 0; trial < 20; ++trial) {
    BroadcastShape s;
    s.ndim = static_cast<int>(random_int(1, 4));
    int64_t sa = 1, sb = 1;
    for (int d = s.ndim - 1; d >= 0; --d) {
      s.out_shape[d] = random_int(1, 9);
      const bool a_broadcast = random_int(0, 2) == 0, b_broadcast = random_int(0, 2) == 0;
      s.a_stride[d] = a_broadcast ? 0 : sa;
      s.b_stride[d] = b_broadcast ? 0 : sb;
      sa *= a_broadcast ? 1 : s.out_shape[d];
      sb *= b_broadcast ? 1 : s.out_shape[d];
    }
    int64_t total = 1;
    for (int d = 0; d < s.ndim; ++d) total *= s.out_shape[d];
    auto a = random_values(sa), b = random_values(sb, 0.5f, 2.0f);
    for (Binary op : {Binary::Add, Binary::Sub, Binary::Mul, Binary::Div}) {
      std::vector<float> out(total), out_ref(total);
      cpu::binary(op, s, a.data(), b.data(), out.data());
      ref::binary(op, s, a.data(), b.data(), out_ref.data());
      EXPECT_LT(normalized_error(out, out_ref), kTol);
    }
  }
}

TEST_P(KernelTest, SumOverAnyAxisMatchesReference) {
  for (int trial = 0; trial < 15; ++trial) {
    const ReduceShape s{.outer = random_int(1, 20), .axis = random_int(1, 300), .inner = random_int(1, 6)};
    auto x = random_values(s.outer * s.axis * s.inner);
    std::vector<float> out(s.outer * s.inner), out_ref(s.outer * s.inner);
    cpu::sum(s, x.data(), out.data());
    ref::sum(s, x.data(), out_ref.data());
    EXPECT_LT(normalized_error(out, out_ref), kTol);
  }
}

TEST_P(KernelTest, CrossEntropyWithWeightsAndSmoothingMatchesReference) {
  for (int trial = 0; trial < 12; ++trial) {
    const int64_t n = random_int(1, 40), classes = random_int(2, 13);
    auto logits = random_values(n * classes, -5.0f, 5.0f);
    auto weights = random_values(classes, 0.2f, 3.0f);
    std::vector<int64_t> labels(n);
    for (auto& y : labels) y = random_int(0, classes - 1);
    const CrossEntropyArgs args{.n = n, .classes = classes, .weight = trial % 2 ? weights.data() : nullptr,
                                .label_smoothing = trial % 3 ? 0.1f : 0.0f};
    std::vector<float> lp(n * classes), lp_ref(n * classes), g(n * classes), g_ref(n * classes);
    float loss = 0.0f, loss_ref = 0.0f;
    cpu::cross_entropy_forward(args, logits.data(), labels.data(), lp.data(), &loss);
    ref::cross_entropy_forward(args, logits.data(), labels.data(), lp_ref.data(), &loss_ref);
    EXPECT_NEAR(loss, loss_ref, 1e-5 * std::max(1.0f, std::fabs(loss_ref)));
    const float grad_loss = 0.7f;
    cpu::cross_entropy_backward(args, lp.data(), labels.data(), &grad_loss, g.data());
    ref::cross_entropy_backward(args, lp_ref.data(), labels.data(), &grad_loss, g_ref.data());
    EXPECT_LT(normalized_error(g, g_ref), kTol);
  }
}

HORO_INSTANTIATE_THREAD_COUNTS(KernelTest);

// Random123's known-answer vectors for Philox-4x32-10.
TEST(Philox, MatchesPublishedKnownAnswers) {
  struct Case { uint32_t counter[4]; uint32_t key[2]; uint32_t expected[4]; };
  const Case cases[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Case& c : cases) {
    uint32_t out[4];
    Philox4x32::rounds(c.counter, c.key, out);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.expected[i]) << "word " << i;
  }
}

TEST(Philox, StreamIsAPureFunctionOfSeedAndIndex) {
  EXPECT_EQ(Philox4x32::word(5, 1234), Philox4x32::word(5, 1234));
  EXPECT_NE(Philox4x32::word(5, 1234), Philox4x32::word(6, 1234));
  double mean = 0.0;
  for (uint64_t i = 0; i < 40000; ++i) mean += Philox4x32::uniform(11, i);
  EXPECT_NEAR(mean / 40000, 0.5, 0.01);
}

// The fp16 wire format: every half converts exactly to float and back; floats round to nearest even,
// overflow to infinity past 65520, and reach the subnormals; where the compiler has _Float16 (GCC on
// x86-64), a million random floats convert as its hardware-defined cast does.
TEST(Half, ConversionsAreIeeeRoundToNearestEven) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const float value = to_float(Half{static_cast<uint16_t>(bits)});
    if (std::isnan(value)) continue;
    EXPECT_EQ(to_half(value).bits, bits) << bits;
  }
  EXPECT_EQ(to_half(1.0f).bits, 0x3c00);
  EXPECT_EQ(to_half(-2.0f).bits, 0xc000);
  EXPECT_EQ(to_half(65504.0f).bits, 0x7bff);
  EXPECT_EQ(to_half(65519.0f).bits, 0x7bff);
  EXPECT_EQ(to_half(65520.0f).bits, 0x7c00);  // halfway to the next step rounds to even: infinity
  EXPECT_EQ(to_half(1.0f + 1.0f / 2048).bits, 0x3c00);  // halfway between 1 and 1 + 2^-10: even (down)
  EXPECT_EQ(to_half(1.0f + 3.0f / 2048).bits, 0x3c02);  // halfway, odd below: up
  EXPECT_EQ(to_half(5.960464477539063e-08f).bits, 0x0001);  // 2^-24, the smallest subnormal
  EXPECT_EQ(to_half(2.0e-8f).bits, 0x0000);
  EXPECT_TRUE(std::isnan(to_float(to_half(std::nanf("")))));
  EXPECT_EQ(to_float(to_half(-std::numeric_limits<float>::infinity())), -std::numeric_limits<float>::infinity());
#if defined(__x86_64__) && defined(__FLT16_MAX__) && !defined(__clang__)  // GCC on x86-64 has _Float16 in C++
  std::mt19937 generator(12345);
  for (int i = 0; i < 1000000; ++i) {
    const uint32_t bits = generator();
    float value;
    std::memcpy(&value, &bits, 4);
    if (std::isnan(value)) continue;
    const _Float16 reference = static_cast<_Float16>(value);
    uint16_t expected;
    std::memcpy(&expected, &reference, 2);
    ASSERT_EQ(to_half(value).bits, expected) << value;
  }
#endif
}

}  // namespace
}  // namespace horo::kernels
