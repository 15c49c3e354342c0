// A central-difference gradient check for every differentiable op and layer, on fresh random inputs.
#include "nn/graph.h"
#include "nn/layers.h"
#include "nn/norm.h"
#include "tests/gradcheck.h"

namespace horo {
namespace {

namespace F = nn::functional;
using testing::gradcheck;
using testing::GradcheckOptions;
using testing::random_int;
using testing::random_tensor;

TEST(Gradcheck, Linear) {
  const int64_t n = random_int(1, 6), in = random_int(1, 9), out = random_int(1, 7);
  gradcheck([](const std::vector<Tensor>& v) { return F::linear(v[0], v[1], v[2]); },
            {random_tensor({n, in}), random_tensor({out, in}), random_tensor({out})});
}

TEST(Gradcheck, Matmul) {
  gradcheck([](const std::vector<Tensor>& v) { return F::matmul(v[0], v[1]); },
            {random_tensor({random_int(1, 5), 7}), random_tensor({7, random_int(1, 6)})});
}

TEST(Gradcheck, Conv2dWithStridePaddingAndDilation) {
  for (int trial = 0; trial < 4; ++trial) {
    const ops::Conv2dParams p{.stride_h = random_int(1, 2), .stride_w = random_int(1, 2), .pad_h = random_int(0, 1),
                              .pad_w = random_int(0, 1), .dilation_h = random_int(1, 2), .dilation_w = 1};
    const int64_t cin = random_int(1, 3), cout = random_int(1, 3);
    gradcheck([p](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1], v[2], p); },
              {random_tensor({2, cin, 7, 6}), random_tensor({cout, cin, 3, 2}), random_tensor({cout})});
  }
}

// Distinct values spaced wider than 2 eps, so no perturbation changes which cell is the maximum.
Tensor distinct_values(const Shape& shape) {
  const int64_t n = shape_numel(shape);
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = 0.05f * static_cast<float>(i) - 0.025f * static_cast<float>(n);
  std::shuffle(v.begin(), v.end(), testing::rng());
  return Tensor::from_vector(v, shape);
}

TEST(Gradcheck, MaxPool2d) {
  const ops::Pool2dParams p{.kernel_h = 3, .kernel_w = 2, .stride_h = 2, .stride_w = 1, .pad_h = 1, .pad_w = 1};
  gradcheck([p](const std::vector<Tensor>& v) { return F::max_pool2d(v[0], p); }, {distinct_values({2, 2, 7, 5})});
}

// The fused block must give what its three ops give in turn: values, argmax choice and every gradient
// (each of which the tests above check against finite differences), for any subset of inputs that
// need a gradient, padded and strided windows, and a NaN.
TEST(Gradcheck, FusedConvReluMaxPoolEqualsTheThreeOpsInTurn) {
  for (int trial = 0; trial < 12; ++trial) {
    const ops::Conv2dParams conv{.stride_h = random_int(1, 2), .stride_w = random_int(1, 2), .pad_h = random_int(0, 1),
                                 .pad_w = random_int(0, 1), .dilation_h = random_int(1, 2), .dilation_w = 1};
    const ops::Pool2dParams pool = trial % 2 == 0
                                       ? ops::Pool2dParams{}
                                       : ops::Pool2dParams{.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
    // Every third trial with enough output channels for the batched direct kernels on any target.
    const int64_t batch = random_int(1, 4), cin = random_int(1, 4), cout = trial % 3 == 2 ? random_int(16, 20) : random_int(1, 5);
    const bool with_bias = trial % 3 != 0, want_input = trial % 4 != 1, want_weight = trial % 4 != 2;
    const int64_t h = random_int(7, 15), w = random_int(7, 15);
    SCOPED_TRACE(::testing::Message() << "trial " << trial << " input " << batch << "x" << cin << "x" << h << "x" << w);
    Tensor x = random_tensor({batch, cin, h, w}), weight = random_tensor({cout, cin, 3, 3}),
           bias = with_bias ? random_tensor({cout}) : Tensor();
    if (trial == 5) x.data<float>()[x.numel() / 2] = std::nanf("");
    auto run = [&](bool fused) {
      std::vector<Tensor> leaves{x.clone(), weight.clone(), with_bias ? bias.clone() : Tensor()};
      leaves[0].set_requires_grad(want_input);
      leaves[1].set_requires_grad(want_weight);
      if (with_bias) leaves[2].set_requires_grad(true);
      const Tensor out = fused ? F::conv2d_relu_max_pool2d(leaves[0], leaves[1], leaves[2], conv, pool)
                               : F::max_pool2d(F::relu(F::conv2d(leaves[0], leaves[1], leaves[2], conv)), pool);
      F::sum(out * Tensor::uniform(out.shape(), 0.5f, 1.5f, 99)).backward();
      leaves.insert(leaves.begin(), out);
      return leaves;
    };
    const auto fused = run(true), separate = run(false);
    const char* names[] = {"output", "grad input", "grad weight", "grad bias"};
    for (size_t k = 0; k < fused.size(); ++k) {
      const Tensor a = k == 0 ? fused[0] : fused[k].defined() ? fused[k].grad() : Tensor();
      const Tensor b = k == 0 ? separate[0] : separate[k].defined() ? separate[k].grad() : Tensor();
      ASSERT_EQ(a.defined(), b.defined()) << names[k];
      if (!a.defined()) continue;
      ASSERT_EQ(a.shape(), b.shape()) << names[k];
      for (int64_t i = 0; i < a.numel(); ++i) {
        const float u = a.data<float>()[i], v = b.data<float>()[i];
        if (std::isnan(u) || std::isnan(v)) {
          EXPECT_EQ(std::isnan(u), std::isnan(v)) << names[k] << " element " << i;
        } else {
          EXPECT_NEAR(u, v, 1e-4f * (1.0f + std::fabs(v))) << names[k] << " element " << i;
        }
      }
    }
  }
}

TEST(Gradcheck, AvgPool2dCountingPadding) {
  const ops::Pool2dParams p{.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1};
  gradcheck([p](const std::vector<Tensor>& v) { return F::avg_pool2d(v[0], p); }, {random_tensor({2, 3, 6, 7})});
}

struct UnaryCase {
  const char* name;
  Tensor (*fn)(const Tensor&);
  float low, high;
  bool kink_at_zero;
};

TEST(Gradcheck, Activations) {
  const UnaryCase cases[] = {
      {"relu", F::relu, -2, 2, true},       {"sigmoid", F::sigmoid, -3, 3, false}, {"tanh", F::tanh, -2, 2, false},
      {"gelu", F::gelu, -3, 3, false},      {"exp", F::exp, -2, 2, false},         {"log", F::log, 0.5f, 3, false},
      {"neg", F::neg, -2, 2, false},        {"sqrt", F::sqrt, 0.5f, 3, false},     {"abs", F::abs, -2, 2, true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor x = random_tensor({3, 17}, c.low, c.high);
    GradcheckOptions o;
    if (c.kink_at_zero) o.skip = [x](size_t, int64_t i) { return std::fabs(x.data<float>()[i]) < 0.05f; };
    gradcheck([fn = c.fn](const std::vector<Tensor>& v) { return fn(v[0]); }, {x}, o);
  }
  const Tensor x = random_tensor({4, 9}, -2, 2);
  GradcheckOptions o;
  o.skip = [x](size_t, int64_t i) { return std::fabs(x.data<float>()[i]) < 0.05f; };
  gradcheck([](const std::vector<Tensor>& v) { return F::leaky_relu(v[0], 0.2f); }, {x}, o);
}

TEST(Gradcheck, SoftmaxAndLogSoftmaxOnEveryDimension) {
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE(dim);
    gradcheck([dim](const std::vector<Tensor>& v) { return F::softmax(v[0], dim); }, {random_tensor({3, 4, 5}, -2, 2)});
    gradcheck([dim](const std::vector<Tensor>& v) { return F::log_softmax(v[0], dim); }, {random_tensor({3, 4, 5}, -2, 2)});
  }
}

TEST(Gradcheck, BroadcastingArithmetic) {
  const std::vector<std::pair<Shape, Shape>> shapes = {{{3, 4}, {3, 4}}, {{3, 4}, {4}}, {{2, 1, 5}, {3, 1}}, {{4}, {}}};
  for (const auto& [sa, sb] : shapes) {
    SCOPED_TRACE(shape_str(sa) + " with " + shape_str(sb));
    gradcheck([](const std::vector<Tensor>& v) { return v[0] + v[1]; }, {random_tensor(sa), random_tensor(sb)});
    gradcheck([](const std::vector<Tensor>& v) { return v[0] - v[1]; }, {random_tensor(sa), random_tensor(sb)});
    gradcheck([](const std::vector<Tensor>& v) { return v[0] * v[1]; }, {random_tensor(sa), random_tensor(sb)});
    gradcheck([](const std::vector<Tensor>& v) { return v[0] / v[1]; }, {random_tensor(sa), random_tensor(sb, 1.0f, 2.0f)});
  }
  gradcheck([](const std::vector<Tensor>& v) { return 3.0f - v[0] * 2.5f + 1.0f; }, {random_tensor({5})});
}

TEST(Gradcheck, Reductions) {
  gradcheck([](const std::vector<Tensor>& v) { return F::sum(v[0]); }, {random_tensor({3, 5})});
  gradcheck([](const std::vector<Tensor>& v) { return F::mean(v[0]); }, {random_tensor({3, 5})});
  for (int64_t dim : {0, 1, 2}) {
    for (bool keep : {false, true}) {
      gradcheck([dim, keep](const std::vector<Tensor>& v) { return F::sum(v[0], dim, keep); }, {random_tensor({2, 3, 4})});
      gradcheck([dim, keep](const std::vector<Tensor>& v) { return F::mean(v[0], dim, keep); }, {random_tensor({2, 3, 4})});
    }
  }
}

TEST(Gradcheck, ReshapeAndFlatten) {
  gradcheck([](const std::vector<Tensor>& v) { return F::reshape(v[0], {6, -1}) * F::reshape(v[0], {6, -1}); },
            {random_tensor({2, 3, 4})});
  gradcheck([](const std::vector<Tensor>& v) { return F::flatten(v[0]) * 2.0f; }, {random_tensor({2, 3, 2, 2})});
}

TEST(Gradcheck, CrossEntropyWithClassWeightsAndLabelSmoothing) {
  const int64_t n = random_int(2, 8), classes = random_int(2, 6);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (auto& y : labels) y = random_int(0, classes - 1);
  const Tensor y = Tensor::from_vector(labels, {n});
  for (int variant = 0; variant < 4; ++variant) {
    ops::CrossEntropyOptions o;
    if (variant & 1) o.weight = random_tensor({classes}, 0.3f, 2.0f);
    if (variant & 2) o.label_smoothing = 0.2f;
    gradcheck([y, o](const std::vector<Tensor>& v) { return F::cross_entropy(v[0], y, o); },
              {random_tensor({n, classes}, -2, 2)});
  }
}

TEST(Gradcheck, MseLoss) {
  gradcheck([](const std::vector<Tensor>& v) { return F::mse_loss(v[0], v[1]); },
            {random_tensor({4, 3}), random_tensor({4, 3})});
}

TEST(Gradcheck, DropoutWithAFixedStream) {
  // The same generator state for every evaluation, so each sees the same mask.
  const uint64_t seed = static_cast<uint64_t>(random_int(0, 1000));
  gradcheck([seed](const std::vector<Tensor>& v) {
              Generator g(seed);
              return F::dropout(v[0], 0.4f, true, &g);
            },
            {random_tensor({5, 8})});
}

TEST(Gradcheck, LayersThroughTheModuleApi) {
  manual_seed(static_cast<uint64_t>(random_int(0, 1000)));
  nn::Conv2d conv({.in = 2, .out = 3, .kernel = 3, .stride = 2, .padding = 1});
  gradcheck([&](const std::vector<Tensor>& v) { return F::conv2d(v[0], v[1], v[2], {.stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}); },
            {random_tensor({2, 2, 5, 5}), conv.weight.clone(), conv.bias.clone()});
  // A whole small network, checked with respect to its input.
  nn::Sequential net{std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 1, .out = 2, .kernel = 3}),
                     std::make_shared<nn::Tanh>(), std::make_shared<nn::AvgPool2d>(nn::Pool2dOptions{.kernel = 2}),
                     std::make_shared<nn::Flatten>(), std::make_shared<nn::Linear>(nn::LinearOptions{.in = 8, .out = 3}),
                     std::make_shared<nn::GELU>()};
  gradcheck([&](const std::vector<Tensor>& v) { return net(v[0]); }, {random_tensor({2, 1, 6, 6})});
}

TEST(Gradcheck, BatchNormInTrainingAndEvaluation) {
  for (const Shape& shape : {Shape{4, 3, 3, 5}, Shape{7, 5}}) {
    const int64_t c = shape[1];
    SCOPED_TRACE(shape_str(shape));
    for (bool affine : {true, false}) {
      // Training: the batch's own statistics, so every output depends on every input of its channel.
      std::vector<Tensor> inputs{random_tensor(shape, -2, 2)};
      if (affine) inputs.insert(inputs.end(), {random_tensor({c}, 0.5f, 1.5f), random_tensor({c})});
      auto fresh = [&] {
        std::vector<Tensor> copies;
        for (const Tensor& t : inputs) copies.push_back(t.clone());
        return copies;
      };
      gradcheck([affine](const std::vector<Tensor>& v) {
                  return F::batch_norm(v[0], Tensor(), Tensor(), affine ? v[1] : Tensor(), affine ? v[2] : Tensor(),
                                       {.training = true});
                },
                fresh(), {.eps = 1e-2f, .atol = 3e-3, .rtol = 3e-2, .max_elements = 48, .skip = nullptr});
      // Evaluation: fixed running statistics, an affine map per channel.
      const Tensor running_mean = random_tensor({c}), running_var = random_tensor({c}, 0.5f, 2.0f);
      gradcheck([&](const std::vector<Tensor>& v) {
                  return F::batch_norm(v[0], running_mean, running_var, affine ? v[1] : Tensor(), affine ? v[2] : Tensor(),
                                       {.training = false});
                },
                fresh());
    }
  }
}

// BatchNorm with a residual add and its ReLU fused must give what BatchNorm, add and ReLU give in
// turn: values and every gradient, the residual's included.
TEST(Gradcheck, BatchNormAddReluEqualsTheOpsInTurn) {
  for (bool training : {true, false}) {
    for (bool with_residual : {false, true}) {
      const Tensor x = random_tensor({3, 4, 5, 6}, -2, 2), w = random_tensor({4}, 0.5f, 1.5f), b = random_tensor({4});
      const Tensor rm = random_tensor({4}), rv = random_tensor({4}, 0.5f, 2.0f);
      const Tensor res = random_tensor({3, 4, 5, 6}), r = random_tensor({3, 4, 5, 6}, 0.5f, 1.5f);
      auto run = [&](bool fused) {
        std::vector<Tensor> leaves{x.clone(), w.clone(), b.clone(), res.clone()};
        for (auto& t : leaves) t.set_requires_grad(true);
        F::BatchNormArgs args{.training = training, .relu = fused};
        if (fused && with_residual) args.residual = leaves[3];
        Tensor out = F::batch_norm(leaves[0], rm.clone(), rv.clone(), leaves[1], leaves[2], args);
        if (!fused) out = F::relu(with_residual ? out + leaves[3] : out);
        F::sum(out * r).backward();
        std::vector<Tensor> results{out, leaves[0].grad(), leaves[1].grad(), leaves[2].grad()};
        if (with_residual) results.push_back(leaves[3].grad());
        return results;
      };
      const auto fused = run(true), separate = run(false);
      for (size_t k = 0; k < fused.size(); ++k) {
        EXPECT_LT(testing::normalized_error(fused[k].data<float>(), separate[k].data<float>(), fused[k].numel()), 1e-5)
            << "training " << training << " residual " << with_residual << " tensor " << k;
      }
    }
  }
}

TEST(Gradcheck, AdaptiveAveragePooling) {
  gradcheck([](const std::vector<Tensor>& v) { return F::adaptive_avg_pool2d(v[0], 1, 1); }, {random_tensor({2, 3, 4, 5})});
  gradcheck([](const std::vector<Tensor>& v) { return F::adaptive_avg_pool2d(v[0], 3, 2); }, {random_tensor({2, 2, 7, 5})});
}

TEST(Gradcheck, CatAlongEveryDimension) {
  for (int64_t dim : {0, 1, 2, -1}) {
    SCOPED_TRACE(dim);
    Shape a{2, 3, 4}, b{2, 3, 4};
    const int64_t d = dim < 0 ? 2 : dim;
    b[static_cast<size_t>(d)] = random_int(1, 3);
    gradcheck([dim](const std::vector<Tensor>& v) { return F::cat(v, dim) * F::cat(v, dim); },
              {random_tensor(a), random_tensor(b), random_tensor(a)});
  }
}

TEST(Gradcheck, AddAndAddRelu) {
  const Tensor a = random_tensor({3, 11}), b = random_tensor({3, 11});
  gradcheck([](const std::vector<Tensor>& v) { return F::add(v[0], v[1]); }, {a.clone(), b.clone()});
  GradcheckOptions o;  // skip where a + b sits at the ReLU's kink
  o.skip = [a, b](size_t, int64_t i) { return std::fabs(a.data<float>()[i] + b.data<float>()[i]) < 0.05f; };
  gradcheck([](const std::vector<Tensor>& v) { return F::add_relu(v[0], v[1]); }, {a, b}, o);
}

// A residual graph (both branches read the block's input, so its gradient sums two paths), with
// BatchNorm in training mode; Tanh instead of ReLU keeps the function smooth for finite differences.
TEST(Gradcheck, ResidualGraphThroughTheModuleApi) {
  manual_seed(static_cast<uint64_t>(random_int(0, 1000)));
  auto block = std::make_shared<nn::Graph>();
  block->add("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 2, .out = 2, .kernel = 3, .padding = 1, .bias = false}))
      .add("bn1", std::make_shared<nn::BatchNorm2d>(nn::BatchNormOptions{.features = 2}))
      .add("act1", std::make_shared<nn::Tanh>())
      .add("shortcut", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 2, .out = 2, .kernel = 1}), {"input"})
      .add("add", std::make_shared<nn::Add>(), {"act1", "shortcut"})
      .add("act", std::make_shared<nn::Tanh>());
  gradcheck([&](const std::vector<Tensor>& v) { return (*block)(v[0]); }, {random_tensor({3, 2, 4, 4})});
}

}  // namespace
}  // namespace horo
