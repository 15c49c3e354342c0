// Tensor views and errors; autograd's accumulation, no-grad mode, shared inputs and custom modules.
#include "nn/layers.h"
#include "tests/gradcheck.h"

namespace horo {
namespace {

namespace F = nn::functional;
using testing::expect_error;
using testing::random_tensor;

TEST(Tensor, ViewsShareStorageAndSlicesSelectRows) {
  Tensor t = random_tensor({4, 3, 2});
  Tensor v = t.view({4, -1});
  EXPECT_EQ(v.shape(), (Shape{4, 6}));
  EXPECT_TRUE(v.shares_storage_with(t));
  Tensor rows = t.slice(1, 3);
  EXPECT_EQ(rows.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(rows.data<float>()[0], t.data<float>()[6]);
  rows.fill(7.0f);
  EXPECT_EQ(t.data<float>()[6], 7.0f);
  EXPECT_EQ(t.data<float>()[17], 7.0f);
  EXPECT_NE(t.data<float>()[18], 7.0f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(Tensor::empty({3}).raw_data()) % kCpuAlignment, 0u);
}

TEST(Tensor, ErrorsNameBothShapesAndTheDtype) {
  Tensor t = random_tensor({4, 3});
  expect_error<ShapeError>([&] { t.view({5, 2}); }, {"[4, 3]", "[5, 2]"});
  expect_error<ShapeError>([&] { t.slice(2, 9); }, {"[2, 9)", "size 4"});
  expect_error<TypeError>([&] { t.data<int64_t>(); }, {"int64", "float32"});
  expect_error<ShapeError>([&] { ops::matmul(t, random_tensor({2, 5})); }, {"[4, 3]", "[2, 5]"});
  expect_error<ShapeError>([&] { random_tensor({2, 3}) + random_tensor({4}); }, {"[2, 3]", "[4]", "broadcast"});
  expect_error<TypeError>([&] { Tensor::empty({2}, DType::Float32, Device::cuda()); }, {"cuda:0"});
  expect_error<ValueError>([&] { Device::parse("gpu"); }, {"'gpu'"});
}

TEST(Tensor, RandomTensorsArePureFunctionsOfSeedAndOffset) {
  const Tensor a = Tensor::uniform({100}, -1, 1, 9, 40), b = Tensor::uniform({100}, -1, 1, 9, 40);
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_NE(a.to_vector(), Tensor::uniform({100}, -1, 1, 9, 44).to_vector());
  const Tensor n = Tensor::normal({20000}, 2.0f, 3.0f, 5);
  double mean = 0, sq = 0;
  for (float x : n.to_vector()) { mean += x; sq += x * x; }
  mean /= 20000;
  EXPECT_NEAR(mean, 2.0, 0.1);
  EXPECT_NEAR(std::sqrt(sq / 20000 - mean * mean), 3.0, 0.1);
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCallsUntilZeroed) {
  Tensor w = random_tensor({3}).set_requires_grad(true);
  const Tensor x = random_tensor({3});
  F::sum(w * x).backward();
  const auto once = w.grad().to_vector();
  EXPECT_EQ(once, x.to_vector());
  F::sum(w * x).backward();
  for (size_t i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(w.grad().to_vector()[i], 2 * once[i]);
  w.grad().fill(0.0f);
  F::sum(w * x).backward();
  EXPECT_EQ(w.grad().to_vector(), once);
}

TEST(Autograd, ATensorUsedTwiceGetsTheSumOfBothPaths) {
  Tensor x = random_tensor({4}).set_requires_grad(true);
  F::sum(x * x + F::exp(x)).backward();  // d/dx = 2x + exp(x)
  for (int i = 0; i < 4; ++i) {
    const float v = x.data<float>()[i];
    EXPECT_NEAR(x.grad().data<float>()[i], 2 * v + std::exp(v), 1e-5);
  }
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor w = random_tensor({3}).set_requires_grad(true);
  Tensor y;
  {
    autograd::NoGradGuard guard;
    y = w * 2.0f;
  }
  EXPECT_FALSE(y.requires_grad());
  expect_error<ValueError>([&] { F::sum(y).backward(); }, {"does not require a gradient"});
  EXPECT_TRUE((w * 2.0f).requires_grad());
}

TEST(Autograd, OnlyInputsThatRequireGradReceiveOne) {
  Tensor a = random_tensor({2, 3}).set_requires_grad(true);
  Tensor b = random_tensor({2, 3});
  F::sum(a * b).backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(Autograd, SecondBackwardThroughAFreedGraphIsAClearError) {
  Tensor a = random_tensor({3}).set_requires_grad(true);
  Tensor loss = F::sum(F::tanh(a));
  loss.backward();
  expect_error<ValueError>([&] { loss.backward(); }, {"second time"});
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor a = random_tensor({3}).set_requires_grad(true);
  expect_error<ShapeError>([&] { (a * 2.0f).backward(); }, {"one-element"});
  (a * 2.0f).backward(Tensor::ones({3}));
  EXPECT_EQ(a.grad().to_vector(), (std::vector<float>{2, 2, 2}));
}

// A residual block as a user would write it: plain C++ composition, no backward of its own.
class ResidualBlock : public nn::Module {
 public:
  using Activation = Tensor (*)(const Tensor&);
  explicit ResidualBlock(int64_t channels, Activation activation = F::relu) : act(activation) {
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = channels, .out = channels, .kernel = 3, .padding = 1}));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = channels, .out = channels, .kernel = 3, .padding = 1}));
  }
  Tensor forward(const Tensor& x) override { return act(conv2->forward(act(conv1->forward(x))) + x); }
  std::string type_name() const override { return "ResidualBlock"; }
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  Activation act;
};

TEST(Autograd, ResidualBlockWrittenAsACustomModuleJustWorks) {
  manual_seed(3);
  auto block = std::make_shared<ResidualBlock>(2);
  EXPECT_EQ(block->parameter("conv2.bias").shape(), (Shape{2}));
  const Tensor x = random_tensor({2, 2, 5, 5});
  F::sum(block->forward(x)).backward();
  for (const auto& [name, p] : block->named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
  // And the gradient is right: check it numerically with respect to the input, with a smooth
  // activation so that central differences do not straddle ReLU's kink.
  auto smooth = std::make_shared<ResidualBlock>(2, F::tanh);
  testing::GradcheckOptions o;
  o.max_elements = 20;
  testing::gradcheck([&](const std::vector<Tensor>& v) { return smooth->forward(v[0]); }, {x.clone()}, o);
}

}  // namespace
}  // namespace horo
