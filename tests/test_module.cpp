// The Module API: dotted parameter names, PyTorch layouts and initialisation, freezing, train/eval.
#include "nn/models.h"
#include "nn/optim.h"
#include "tests/test_util.h"

namespace horo::nn {
namespace {

using horo::testing::expect_error;
using horo::testing::random_tensor;

TEST(Module, ReferenceCnnHasPyTorchNamesAndLayouts) {
  auto model = make_cnn();
  std::vector<std::pair<std::string, Shape>> expected = {
      {"features.0.weight", {32, 1, 3, 3}}, {"features.0.bias", {32}},   {"features.3.weight", {64, 32, 3, 3}},
      {"features.3.bias", {64}},            {"classifier.1.weight", {128, 1600}}, {"classifier.1.bias", {128}},
      {"classifier.4.weight", {10, 128}},   {"classifier.4.bias", {10}}};
  const auto params = model->named_parameters();
  ASSERT_EQ(params.size(), expected.size());
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_EQ(params[i].first, expected[i].first);
    EXPECT_EQ(params[i].second.shape(), expected[i].second);
    EXPECT_EQ(params[i].second.name(), expected[i].first);  // tensors carry their path for errors
  }
  EXPECT_EQ(model->parameter_count(), 225034);  // torch: sum(p.numel() for p in model.parameters())
  EXPECT_EQ(model->submodule("features.3")->where(), "Conv2d 'features.3'");
  EXPECT_NE(model->summary().find("(classifier): Sequential"), std::string::npos);
}

// Sequential runs Conv2d, ReLU, MaxPool2d as one fused CPU block: same output and gradients as
// calling the three layers one by one.
TEST(Module, SequentialFusesConvReluMaxPoolWithoutChangingResults) {
  manual_seed(static_cast<uint64_t>(horo::testing::random_int(0, 1 << 20)));
  auto net = make_model("cnn");
  const Tensor x = random_tensor({3, 1, 28, 28});
  const Tensor labels = Tensor::from_vector(std::vector<int64_t>{1, 7, 3}, {3});
  auto features = std::dynamic_pointer_cast<Sequential>(net->children()[0].second);
  ASSERT_TRUE(features);
  auto gradients = [&](bool fused) {
    net->zero_grad();
    Tensor h = x;
    if (fused) {
      h = features->forward(h);
    } else {
      for (const auto& [name, layer] : features->children()) h = layer->forward(h);
    }
    const Tensor logits = net->children()[1].second->forward(h);
    functional::cross_entropy(logits, labels).backward();
    std::vector<Tensor> out{logits.detach().clone()};
    for (const auto& [name, p] : net->named_parameters()) out.push_back(p.grad().clone());
    return out;
  };
  net->eval();  // no dropout, so both passes see the same function
  const auto fused = gradients(true), separate = gradients(false);
  ASSERT_EQ(fused.size(), separate.size());
  for (size_t k = 0; k < fused.size(); ++k) {
    for (int64_t i = 0; i < fused[k].numel(); ++i) {
      ASSERT_NEAR(fused[k].data<float>()[i], separate[k].data<float>()[i],
                  1e-5f * (1.0f + std::fabs(separate[k].data<float>()[i])))
          << "tensor " << k << " element " << i;
    }
  }
}

TEST(Module, DefaultInitialisationIsUniformWithinOneOverSqrtFanIn) {
  manual_seed(static_cast<uint64_t>(horo::testing::random_int(0, 1 << 20)));
  Conv2d conv({.in = 32, .out = 64, .kernel = 3});
  const float bound = 1.0f / std::sqrt(32.0f * 9.0f);
  float lo = 1, hi = -1;
  for (float v : conv.weight.to_vector()) { lo = std::min(lo, v); hi = std::max(hi, v); }
  EXPECT_GE(lo, -bound);
  EXPECT_LE(hi, bound);
  EXPECT_LT(lo, -0.9f * bound);  // the whole range is used
  EXPECT_GT(hi, 0.9f * bound);
  manual_seed(5);
  Linear a({.in = 7, .out = 3});
  manual_seed(5);
  Linear b({.in = 7, .out = 3});
  EXPECT_EQ(a.weight.to_vector(), b.weight.to_vector());  // the seed alone decides
}

TEST(Module, FrozenParametersStayBitIdenticalThroughTraining) {
  auto model = make_mlp();
  model->submodule("features")->set_requires_grad(false);
  std::vector<std::vector<float>> before;
  for (const auto& [name, p] : model->named_parameters()) before.push_back(p.to_vector());
  optim::Adam opt(model->parameters(), {.lr = 0.1f});
  const Tensor x = random_tensor({8, 1, 28, 28});
  const Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, {8});
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    functional::cross_entropy(model->forward(x), y).backward();
    opt.step();
  }
  const auto params = model->named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const bool frozen = params[i].first.rfind("features.", 0) == 0;
    EXPECT_EQ(params[i].second.to_vector() == before[i], frozen) << params[i].first;
    EXPECT_EQ(params[i].second.grad().defined(), !frozen) << params[i].first;
  }
}

TEST(Module, DropoutActsInTrainingAndIsTheIdentityInEval) {
  auto model = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{std::make_shared<Dropout>(0.5f)});
  const Tensor x = random_tensor({1000}, 1.0f, 2.0f);
  const auto trained = model->forward(x).to_vector();
  int zeros = 0;
  for (size_t i = 0; i < trained.size(); ++i) {
    if (trained[i] == 0.0f) ++zeros;
    else EXPECT_FLOAT_EQ(trained[i], 2.0f * x.data<float>()[i]);
  }
  EXPECT_GT(zeros, 400);
  EXPECT_LT(zeros, 600);
  model->eval();
  EXPECT_FALSE(model->children()[0].second->is_training());
  EXPECT_EQ(model->forward(x).to_vector(), x.to_vector());
}

TEST(Module, DropoutMasksArePureFunctionsOfTheGeneratorState) {
  Generator g1(17), g2(17);
  const Tensor x = random_tensor({257});
  EXPECT_EQ(functional::dropout(x, 0.3f, true, &g1).to_vector(), functional::dropout(x, 0.3f, true, &g2).to_vector());
  EXPECT_NE(functional::dropout(x, 0.3f, true, &g1).to_vector(), functional::dropout(x, 0.3f, false, &g1).to_vector());
}

TEST(Module, ReplacingTheHeadRenamesItsParameters) {
  auto model = make_cnn();
  auto classifier = std::dynamic_pointer_cast<Sequential>(model->submodule("classifier"));
  classifier->replace_child("4", std::make_shared<Linear>(LinearOptions{.in = 128, .out = 4}));
  EXPECT_EQ(model->parameter("classifier.4.weight").shape(), (Shape{4, 128}));
  EXPECT_EQ(model->parameter("classifier.4.weight").name(), "classifier.4.weight");
  EXPECT_EQ(model->forward(random_tensor({2, 1, 28, 28})).shape(), (Shape{2, 4}));
  expect_error<ValueError>([&] { model->parameter("classifier.9.weight"); }, {"classifier.9.weight", "features.0.weight"});
}

TEST(Allocator, SteadyStateTrainingStepsAllocateNothingNew) {
  for (const char* name : {"cnn", "resnet20"}) {
    SCOPED_TRACE(name);
    auto model = make_model(name);
    optim::Adam opt(model->parameters());
    const Tensor x = random_tensor({16, 1, 28, 28});
    const Tensor y = Tensor::from_vector(std::vector<int64_t>(16, 3), {16});
    auto step = [&] {
      opt.zero_grad();
      functional::cross_entropy(model->forward(x), y).backward();
      opt.step();
    };
    step();
    step();
    const auto before = cpu_allocator_stats();
    for (int i = 0; i < 5; ++i) step();
    const auto after = cpu_allocator_stats();
    EXPECT_GT(after.allocations, before.allocations);
    EXPECT_EQ(after.cache_misses, before.cache_misses);
  }
}

}  // namespace
}  // namespace horo::nn
