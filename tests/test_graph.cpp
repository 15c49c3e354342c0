// BatchNorm's PyTorch semantics, graphs of layers (C++ and model specifications), the ResNet
// built-ins, fusion equivalence and freezing BatchNorm.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/checkpoint.h"
#include "nn/graph.h"
#include "nn/models.h"
#include "nn/norm.h"
#include "nn/spec.h"
#include "tests/test_util.h"

namespace horo::nn {
namespace {

namespace F = functional;
using horo::testing::expect_error;
using horo::testing::normalized_error;
using horo::testing::random_int;
using horo::testing::random_tensor;

// Per-channel mean and (biased or unbiased) variance of an [N, C, H, W] tensor, in double.
std::pair<std::vector<double>, std::vector<double>> channel_stats(const Tensor& x, bool unbiased) {
  const int64_t n = x.size(0), c = x.size(1), plane = x.size(2) * x.size(3);
  std::vector<double> mean(c), var(c);
  const float* p = x.data<float>();
  for (int64_t k = 0; k < c; ++k) {
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < plane; ++j) s += p[(i * c + k) * plane + j];
    mean[k] = s / (n * plane);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < plane; ++j) s2 += std::pow(p[(i * c + k) * plane + j] - mean[k], 2);
    var[k] = s2 / (n * plane - (unbiased ? 1 : 0));
  }
  return {mean, var};
}

TEST(BatchNorm, TrainingNormalisesByTheBatchAndUpdatesRunningStatisticsAsPyTorch) {
  BatchNorm2d bn({.features = 3});
  EXPECT_EQ(bn.running_var.to_vector(), (std::vector<float>{1, 1, 1}));
  bn.weight.copy_from(random_tensor({3}, 0.5f, 1.5f));
  bn.bias.copy_from(random_tensor({3}));
  const Tensor x = random_tensor({4, 3, 5, 2}, -1, 3);
  const Tensor y = bn(x);
  const auto [mean, biased] = channel_stats(x, false);
  const auto [unused, unbiased] = channel_stats(x, true);
  for (int64_t k = 0; k < 3; ++k) {
    EXPECT_NEAR(bn.running_mean.data<float>()[k], 0.1 * mean[k], 1e-6);
    EXPECT_NEAR(bn.running_var.data<float>()[k], 0.9 + 0.1 * unbiased[k], 1e-5);  // unbiased, as PyTorch
  }
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = (i / 10) % 3;
    const double expected = (x.data<float>()[i] - mean[k]) / std::sqrt(biased[k] + 1e-5) * bn.weight.data<float>()[k] +
                            bn.bias.data<float>()[k];
    ASSERT_NEAR(y.data<float>()[i], expected, 1e-5) << i;  // biased variance to normalise
  }
  EXPECT_EQ(bn.num_batches_tracked.data<int64_t>()[0], 1);
  bn(x);
  EXPECT_EQ(bn.num_batches_tracked.data<int64_t>()[0], 2);
  // eval(): the running statistics normalise and stay as they are.
  bn.eval();
  const std::vector<float> rm = bn.running_mean.to_vector(), rv = bn.running_var.to_vector();
  const Tensor z = bn(x);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t k = (i / 10) % 3;
    const double expected = (x.data<float>()[i] - rm[k]) / std::sqrt(rv[k] + 1e-5) * bn.weight.data<float>()[k] +
                            bn.bias.data<float>()[k];
    ASSERT_NEAR(z.data<float>()[i], expected, 1e-5) << i;
  }
  EXPECT_EQ(bn.running_mean.to_vector(), rm);
  EXPECT_EQ(bn.num_batches_tracked.data<int64_t>()[0], 2);
}

TEST(BatchNorm, CumulativeAverageWithoutMomentumAndNoTracking) {
  BatchNorm1d bn({.features = 2, .momentum = std::nullopt});
  std::vector<double> sum(2);
  for (int step = 0; step < 3; ++step) {
    const Tensor x = random_tensor({6, 2}, -2, 2);
    bn(x);
    const auto [m, v] = channel_stats(x.view({6, 2, 1, 1}), false);
    for (int k = 0; k < 2; ++k) sum[k] += m[k];
  }
  for (int k = 0; k < 2; ++k) EXPECT_NEAR(bn.running_mean.data<float>()[k], sum[k] / 3, 1e-6);
  // Without running statistics, eval() still normalises by the batch.
  BatchNorm2d plain({.features = 2, .affine = false, .track_running_stats = false});
  EXPECT_TRUE(plain.named_buffers().empty());
  EXPECT_TRUE(plain.named_parameters().empty());
  plain.eval();
  const Tensor y = plain(random_tensor({3, 2, 4, 4}, 5, 9));
  const auto [m, v] = channel_stats(y, false);
  EXPECT_NEAR(m[0], 0.0, 1e-5);
  EXPECT_NEAR(v[1], 1.0, 1e-3);
}

TEST(BatchNorm, BadInputsAreClearErrors) {
  BatchNorm1d bn({.features = 4});
  expect_error<ValueError>([&] { bn(random_tensor({1, 4})); }, {"BatchNorm1d", "more than 1 value per channel", "[1, 4]"});
  bn.eval();
  EXPECT_EQ(bn(random_tensor({1, 4})).shape(), (Shape{1, 4}));  // evaluation of one sample is fine
  expect_error<ShapeError>([&] { bn(random_tensor({2, 5})); }, {"BatchNorm1d", "4 channels", "[2, 5]"});
  BatchNorm2d bn2({.features = 4});
  expect_error<ShapeError>([&] { bn2(random_tensor({2, 4})); }, {"BatchNorm2d", "height, width"});
  expect_error<ValueError>([] { BatchNorm2d({.features = 0}); }, {"features", "0"});
  expect_error<ValueError>([] { BatchNorm2d({.features = 3, .momentum = 1.5f}); }, {"momentum", "1.5"});
}

TEST(BatchNorm, FrozenLayersUseAndKeepTheirRunningStatisticsInTraining) {
  manual_seed(5);
  auto model = make_model("resnet20", 10);
  model->eval();
  const Tensor x = random_tensor({3, 1, 28, 28});
  const Tensor reference = (*model)(x);
  std::vector<std::string> norms;
  freeze(*model, "layer1.*", &norms);
  EXPECT_EQ(norms.size(), 6u);  // three blocks of two
  model->train();
  const auto before = model->named_buffers();
  std::vector<std::vector<float>> saved;
  for (const auto& [name, t] : before) {
    if (t.dtype() == DType::Float32) saved.push_back(t.to_vector());
  }
  (*model)(x);
  size_t k = 0;
  for (const auto& [name, t] : model->named_buffers()) {
    if (t.dtype() != DType::Float32) continue;
    if (name.rfind("layer1.", 0) == 0) {
      EXPECT_EQ(t.to_vector(), saved[k]) << name;  // bit-identical
    } else if (name.find("running_mean") != std::string::npos) {
      EXPECT_NE(t.to_vector(), saved[k]) << name;
    }
    ++k;
  }
}

// The spec's residual block and the same block built in C++ have the same parameters and outputs.
TEST(Graph, ResidualBlockInTextEqualsTheCppBuiltOne) {
  const std::string text = R"(input_shape: [4, 6, 6]
layers { name: "conv1" conv2d { in: 4 out: 8 kernel: 3 stride: 2 padding: 1 bias: false } }
layers { name: "bn1" batch_norm2d {} }
layers { name: "relu1" relu {} }
layers { name: "conv2" conv2d { in: 8 out: 8 kernel: 3 padding: 1 bias: false } }
layers { name: "bn2" batch_norm2d {} }
layers {
  name: "downsample"
  inputs: "input"
  sequential { layers { conv2d { in: 4 out: 8 kernel: 1 stride: 2 bias: false } } layers { batch_norm2d {} } }
}
layers { name: "add" inputs: ["bn2", "downsample"] add {} }
layers { name: "relu" relu {} }
)";
  const uint64_t seed = static_cast<uint64_t>(random_int(0, 1000));
  manual_seed(seed);
  const BuiltModel built = build_model_from_text(text, "block.prototxt");
  manual_seed(seed);
  auto conv = [](int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
    return std::make_shared<Conv2d>(Conv2dOptions{.in = in, .out = out, .kernel = k, .stride = stride, .padding = pad, .bias = false});
  };
  auto bn = [] { return std::make_shared<BatchNorm2d>(BatchNormOptions{.features = 8}); };
  auto downsample = std::make_shared<Sequential>();
  Graph block;
  block.add("conv1", conv(4, 8, 3, 2, 1)).add("bn1", bn()).add("relu1", std::make_shared<ReLU>());
  block.add("conv2", conv(8, 8, 3, 1, 1)).add("bn2", bn());
  downsample->add(conv(4, 8, 1, 2, 0)).add(bn());
  block.add("downsample", downsample, {"input"});
  block.add("add", std::make_shared<Add>(), {"bn2", "downsample"}).add("relu", std::make_shared<ReLU>());
  const auto a = built.model->named_parameters(), b = block.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  }
  EXPECT_EQ(built.model->named_buffers().size(), 9u);  // three BatchNorms
  EXPECT_EQ(built.output_shape, (Shape{8, 3, 3}));
  const Tensor x = random_tensor({2, 4, 6, 6});
  EXPECT_EQ((*built.model)(x).to_vector(), block(x).to_vector());
  EXPECT_EQ(block.inputs_of("add"), (std::vector<std::string>{"bn2", "downsample"}));
}

TEST(Graph, CppGraphErrorsNameTheLayer) {
  Graph g;
  g.add("a", std::make_shared<ReLU>());
  expect_error<ValueError>([&] { g.add("b", std::make_shared<ReLU>(), {"c"}); }, {"'b'", "reads 'c'"});
  expect_error<ValueError>([&] { g.add("a", std::make_shared<ReLU>()); }, {"'a'", "already"});
  expect_error<ValueError>([&] { g.add("input", std::make_shared<ReLU>()); }, {"'input'"});
  expect_error<ValueError>([&] { g.add("s", std::make_shared<Add>(), {"a"}); }, {"'s'", "Add", "2 inputs", "got 1"});
  g.add("dead", std::make_shared<ReLU>(), {"input"});
  g.add("last", std::make_shared<Tanh>(), {"a"});
  expect_error<ValueError>([&] { g(random_tensor({2, 3})); }, {"'dead'", "never used"});
  // Shapes are checked when the layers run.
  Graph h;
  h.add("x", std::make_shared<Flatten>()).add("y", std::make_shared<ReLU>(), {"input"}).add("s", std::make_shared<Add>(), {"x", "y"});
  expect_error<ShapeError>([&] { h(random_tensor({2, 3, 2})); }, {"Add 's'", "[2, 6]", "[2, 3, 2]"});
}

// Each graph error of a specification names the file, the line and the layer.
TEST(Graph, SpecificationErrorsNameTheLineAndTheLayer) {
  auto expect = [](const std::string& body, std::initializer_list<const char*> fragments) {
    expect_error<ValueError>([&] { build_model_from_text("input_shape: [2, 4, 4]\n" + body, "g.prototxt"); }, fragments);
  };
  expect("layers { name: \"a\" relu {} }\nlayers { name: \"b\" inputs: \"nope\" relu {} }\n",
         {"g.prototxt:3:", "layer 'b'", "reads 'nope'", "no layer of this list"});
  expect("layers { name: \"a\" inputs: \"b\" relu {} }\nlayers { name: \"b\" inputs: \"input\" relu {} }\n"
         "layers { name: \"c\" inputs: [\"a\", \"b\"] add {} }\n",
         {"g.prototxt:2:", "layer 'a'", "reads 'b'", "comes later (line 3)"});
  expect("layers { name: \"a\" inputs: \"b\" relu {} }\nlayers { name: \"b\" inputs: \"a\" relu {} }\n",
         {"g.prototxt:2:", "layer 'a'", "cycle", "'a' reads 'b', which reads 'a'"});
  expect("layers { name: \"a\" inputs: \"a\" relu {} }\n", {"g.prototxt:2:", "layer 'a'", "its own output"});
  expect("layers { name: \"a\" relu {} }\nlayers { name: \"b\" inputs: \"input\" relu {} }\n",
         {"g.prototxt:2:", "layer 'a'", "never used"});
  expect("layers { name: \"p\" max_pool2d { kernel: 2 } }\nlayers { name: \"s\" inputs: [\"p\", \"input\"] add {} }\n",
         {"g.prototxt:3:", "layer 's' (add)", "cannot add 'p' [2, 2, 2] and 'input' [2, 4, 4]"});
  expect("layers { name: \"s\" inputs: \"input\" add {} }\n", {"g.prototxt:2:", "layer 's' (add)", "takes 2 inputs, got 1"});
  expect("layers { name: \"a\" relu {} }\nlayers { name: \"a\" relu {} }\n", {"g.prototxt:3:", "'a'", "already at line 2"});
  expect("layers { name: \"input\" relu {} }\n", {"g.prototxt:2:", "'input'"});
  expect("layers { name: \"a/b\" relu {} }\n", {"g.prototxt:2:", "'a/b'", "no '.' or '/'"});
  expect("layers { name: \"p\" max_pool2d { kernel: 2 } }\nlayers { name: \"c\" inputs: [\"p\", \"input\"] concat {} }\n",
         {"g.prototxt:3:", "layer 'c' (concat)", "every other dimension"});
  // A nested block's errors keep their own line.
  expect("layers {\n  name: \"block\"\n  sequential {\n    layers { name: \"x\" inputs: \"y\" relu {} }\n  }\n}\n",
         {"g.prototxt:5:", "layer 'block.x'", "reads 'y'"});
}

TEST(Graph, ConcatJoinsBranchesAlongChannels) {
  const BuiltModel built = build_model_from_text(
      "input_shape: [2, 4, 4]\nlayers { name: \"a\" conv2d { in: 2 out: 3 kernel: 1 } }\n"
      "layers { name: \"b\" inputs: \"input\" conv2d { in: 2 out: 5 kernel: 3 padding: 1 } }\n"
      "layers { name: \"c\" inputs: [\"a\", \"b\", \"input\"] concat {} }\n",
      "concat");
  EXPECT_EQ(built.output_shape, (Shape{10, 4, 4}));
  const Tensor x = random_tensor({3, 2, 4, 4});
  const Tensor y = (*built.model)(x);
  EXPECT_EQ(y.shape(), (Shape{3, 10, 4, 4}));
  // The last two channels are the input itself.
  for (int64_t n = 0; n < 3; ++n)
    for (int64_t i = 0; i < 32; ++i) ASSERT_EQ(y.data<float>()[n * 160 + 128 + i], x.data<float>()[n * 32 + i]);
}

TEST(Zoo, ResNet18HasTorchvisionNamesAndParameterCount) {
  const BuiltModel built = build_model_from_text(builtin_model_text("resnet18"), "resnet18");
  EXPECT_EQ(built.model->parameter_count(), 11689512);  // torchvision.models.resnet18()
  EXPECT_EQ(built.output_shape, (Shape{1000}));
  std::vector<std::string> names;
  for (const auto& [name, t] : built.model->named_parameters()) names.push_back(name);
  for (const auto& [name, t] : built.model->named_buffers()) names.push_back(name);
  EXPECT_EQ(names.size(), 62u + 60u);  // torchvision: 62 parameters, 60 buffers
  for (const char* expected : {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer2.0.downsample.0.weight",
                               "layer2.0.downsample.1.running_var", "layer4.1.bn2.num_batches_tracked", "fc.bias"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), expected), names.end()) << expected;
  }
  // Built for Fashion-MNIST's samples, it takes one channel and still ends at 1x1 before fc.
  auto small = make_model("resnet18", 10, {1, 28, 28});
  EXPECT_EQ((*small)(random_tensor({2, 1, 28, 28})).shape(), (Shape{2, 10}));
  EXPECT_EQ(small->parameter("conv1.weight").shape(), (Shape{64, 1, 7, 7}));
}

TEST(Zoo, ResNet20SummaryAndZeroInitResidual) {
  BuiltModel built = build_model_from_text(builtin_model_text("resnet20"), "resnet20");
  EXPECT_EQ(built.model->parameter_count(), 272186);
  int64_t flops = 0;
  for (const auto& l : built.layers) flops += l.flops;
  EXPECT_NEAR(static_cast<double>(flops), 62.56e6, 0.01e6);  // the design's ~62 MFLOP per 28x28 image
  const std::string table = summary_table(built);
  for (const char* fragment : {"layer3.2.conv2", "[64, 7, 7]", "272,186", "62.56 MFLOPs"}) {
    EXPECT_NE(table.find(fragment), std::string::npos) << fragment << " in\n" << table;
  }
  EXPECT_EQ(zero_init_residual(*built.model), 9);
  for (const auto& [name, t] : built.model->named_parameters()) {
    const bool zeroed = name.find(".bn2.weight") != std::string::npos;
    for (float v : t.to_vector()) {
      if (zeroed) {
        ASSERT_EQ(v, 0.0f) << name;
      }
    }
    if (name.find("downsample.1.weight") != std::string::npos) {
      EXPECT_EQ(t.to_vector()[0], 1.0f);
    }
  }
  // The spec flag does the same.
  std::string text = builtin_model_text("resnet20");
  text += "zero_init_residual: true\n";
  const BuiltModel flagged = build_model_from_text(text, "resnet20");
  EXPECT_EQ(flagged.model->parameter("layer2.1.bn2.weight").to_vector(), std::vector<float>(32, 0.0f));
}

// Fused execution (Conv-BatchNorm folding in eval, BatchNorm+ReLU and Add+ReLU in training) gives the
// layer-by-layer results; anomaly mode runs every layer on its own.
// One input in about thirty puts a ReLU's input within rounding of zero: the fused kernels (FMA on
// AVX2 and AVX-512) and the layer-by-layer ones then round it to opposite signs, one element takes
// the other branch of the ReLU, and every gradient below it moves by a few percent (one term of a
// few hundred). So the comparison is made on up to three fresh inputs and must hold exactly on one:
// a real defect fails on all of them.
// The bound is 1e-4: the 3x3 stride-1 convolutions run by Winograd F(4x4, 3x3), whose rounding (about
// 6x the direct sums') differs between the two paths' slightly different inputs. Over 26 inputs the
// largest error of an input without a ReLU flip measured 1.5e-5 to 4.3e-5 with Winograd, 5e-6 to 1e-5
// with HORO_WINOGRAD=0; a defect in a fused kernel moves gradients by percents.
TEST(Graph, FusedExecutionEqualsLayerByLayer) {
  SCOPED_TRACE(horo::testing::seed_trace());
  std::string failures;
  for (int attempt = 0; attempt < 3; ++attempt) {
    manual_seed(static_cast<uint64_t>(random_int(0, 1000)));
    auto model = make_model("resnet20", 10, {3, 12, 12});
    const Tensor x = random_tensor({4, 3, 12, 12});
    std::string mismatches;
    for (bool training : {true, false}) {
      model->train(training);
      auto run = [&](bool fused) {
        set_detect_anomaly(!fused);
        model->zero_grad();
        const Tensor y = (*model)(x);
        F::sum(y * y).backward();
        set_detect_anomaly(false);
        std::vector<std::vector<float>> out{y.to_vector()};
        for (const auto& [name, t] : model->named_parameters()) out.push_back(t.grad().to_vector());
        return out;
      };
      // Training mode updates the running statistics: run both on the same state.
      std::vector<std::vector<float>> saved;
      for (const auto& [n, t] : model->named_buffers()) saved.push_back(t.dtype() == DType::Float32 ? t.to_vector() : std::vector<float>{});
      const auto fused = run(true);
      size_t k = 0;
      for (auto [n, t] : model->named_buffers()) {
        if (t.dtype() == DType::Float32) t.copy_from(Tensor::from_vector(saved[k], t.shape()));
        ++k;
      }
      const auto separate = run(false);
      for (size_t i = 0; i < fused.size(); ++i) {
        const double error = normalized_error(fused[i], separate[i]);
        if (!(error < 1e-4)) mismatches += detail::concat(" [training ", training, " tensor ", i, ": ", error, "]");
      }
    }
    if (mismatches.empty()) return;
    failures += detail::concat("attempt ", attempt, ":", mismatches, "\n");
  }
  ADD_FAILURE() << "fused and layer-by-layer results differ on three fresh inputs:\n" << failures;
}

TEST(Graph, CheckpointsKeepBatchNormBuffers) {
  const std::string path = (std::filesystem::temp_directory_path() / ("horo_graph_ckpt_" + std::to_string(::getpid()) + ".h5")).string();
  manual_seed(3);
  auto model = make_model("resnet20");
  (*model)(random_tensor({4, 1, 28, 28}));  // running statistics move, num_batches_tracked = 1
  save_checkpoint(path, *model, nullptr, {}, builtin_model_text("resnet20"), "");
  manual_seed(4);
  auto restored = make_model("resnet20");
  const Checkpoint c = read_checkpoint(path);
  std::filesystem::remove(path);
  load_model(*restored, c, true);
  const auto a = model->named_buffers(), b = restored->named_buffers();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].second.dtype(), b[i].second.dtype()) << a[i].first;
    if (a[i].second.dtype() == DType::Int64) EXPECT_EQ(b[i].second.data<int64_t>()[0], 1) << a[i].first;
    else EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  }
  model->eval();
  restored->eval();
  const Tensor x = random_tensor({2, 1, 28, 28});
  EXPECT_EQ((*model)(x).to_vector(), (*restored)(x).to_vector());
}

TEST(Layers, RectangularConvolutionsAndAdaptivePooling) {
  Conv2d conv({.in = 2, .out = 3, .kernel = 0, .bias = false, .kernel_h = 1, .kernel_w = 3, .stride_w = 2, .padding_w = 1});
  EXPECT_EQ(conv.weight.shape(), (Shape{3, 2, 1, 3}));
  EXPECT_TRUE(conv.named_parameters().size() == 1);
  const Tensor x = random_tensor({2, 2, 5, 7});
  const Tensor y = conv(x);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 5, 4}));
  EXPECT_EQ(y.to_vector(), F::conv2d(x, conv.weight, Tensor(), {.stride_h = 1, .stride_w = 2, .pad_h = 0, .pad_w = 1}).to_vector());
  EXPECT_EQ(conv.output_shape({2, 5, 7}), (Shape{3, 5, 4}));
  expect_error<ShapeError>([&] { conv.output_shape({2, 5, 0}); }, {"does not fit"});
  AdaptiveAvgPool2d pool;
  const Tensor p = pool(x);
  EXPECT_EQ(p.shape(), (Shape{2, 2, 1, 1}));
  double s = 0;
  for (int64_t i = 0; i < 35; ++i) s += x.data<float>()[i];
  EXPECT_NEAR(p.data<float>()[0], s / 35, 1e-5);
  // Kaiming-normal over fan_out: standard deviation sqrt(2 / (out * k * k)).
  manual_seed(11);
  Conv2d big({.in = 64, .out = 64, .kernel = 3, .init = WeightInit::KaimingNormalFanOut});
  double sq = 0;
  for (float v : big.weight.to_vector()) sq += static_cast<double>(v) * v;
  EXPECT_NEAR(std::sqrt(sq / big.weight.numel()), std::sqrt(2.0 / (64 * 9)), 0.002);
}

}  // namespace
}  // namespace horo::nn
