// Bad input gets a clear error naming the layer, tensor or file, and nothing crashes.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "train/loop.h"
#include "data/idx.h"
#include "nn/models.h"
#include "tensor/ops.h"
#include "tests/test_util.h"

namespace horo {
namespace {

namespace F = nn::functional;
using testing::expect_error;
using testing::random_tensor;

TEST(BadInput, MismatchedFeaturesNameTheLayerAndBothShapes) {
  auto model = nn::make_mlp();
  expect_error<ShapeError>([&] { model->forward(random_tensor({4, 1, 28, 27})); },
                           {"Linear 'features.1'", "784", "[4, 756]"});
  auto head = model->submodule("classifier");
  expect_error<ShapeError>([&] { head->forward(random_tensor({4, 64})); }, {"Linear 'classifier.0'", "128", "[4, 64]"});
}

TEST(BadInput, WrongChannelCountNamesTheConvolution) {
  auto model = nn::make_cnn();
  expect_error<ShapeError>([&] { model->forward(random_tensor({2, 3, 28, 28})); },
                           {"Conv2d 'features.0'", "expected 1 input channels", "got 3"});
  expect_error<ShapeError>([&] { model->forward(random_tensor({28, 28})); }, {"Conv2d 'features.0'", "[28, 28]"});
  expect_error<ShapeError>([&] { model->forward(random_tensor({1, 1, 5, 5})); }, {"smaller than"});
}

TEST(BadInput, InvalidLayerOptionsAreRejectedOnConstruction) {
  expect_error<ValueError>([] { nn::Conv2d({.in = 1, .out = 0, .kernel = 3}); }, {"Conv2d", "out=0"});
  expect_error<ValueError>([] { nn::Dropout(1.5f); }, {"Dropout", "1.5"});
  expect_error<ValueError>([] { nn::MaxPool2d({.kernel = 2, .padding = 2}); }, {"MaxPool2d", "padding"});
  expect_error<ValueError>([] { nn::make_model("resnet"); }, {"'resnet'", "cnn", "mlp"});
}

// (n + 2p - k) / s + 1 truncates toward zero: a window one larger than its padded input gave one
// output instead of an error. Refused as PyTorch refuses it, for pooling and convolution alike.
TEST(BadInput, WindowsLargerThanTheirPaddedInputAreRefused) {
  const Tensor x = random_tensor({1, 1, 3, 3});
  expect_error<ShapeError>([&] { F::max_pool2d(x, {.kernel_h = 4, .kernel_w = 4, .stride_h = 2, .stride_w = 2}); },
                           {"max_pool2d", "smaller than the 4x4 window"});
  expect_error<ShapeError>([&] { F::avg_pool2d(x, {.kernel_h = 5, .kernel_w = 5, .stride_h = 3, .stride_w = 3, .pad_h = 0}); },
                           {"smaller than the 5x5 window"});
  expect_error<ShapeError>([&] { F::conv2d(x, random_tensor({2, 1, 4, 4}), Tensor(), {.stride_h = 2, .stride_w = 2}); },
                           {"conv2d", "smaller than the 4x4 kernel"});
  expect_error<ShapeError>(
      [&] { F::conv2d(x, random_tensor({2, 1, 3, 3}), Tensor(), {.stride_h = 2, .stride_w = 2, .dilation_h = 2, .dilation_w = 2}); },
      {"conv2d", "kernel"});
  EXPECT_EQ(F::max_pool2d(x, {.kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 2}).shape(), (Shape{1, 1, 1, 1}));
  EXPECT_EQ(F::max_pool2d(x, {.kernel_h = 4, .kernel_w = 4, .stride_h = 2, .stride_w = 2, .pad_h = 1, .pad_w = 1}).shape(),
            (Shape{1, 1, 1, 1}));
  // Extents whose shape arithmetic would overflow are refused by the layers that hold them.
  expect_error<ValueError>([] { nn::MaxPool2d({.kernel = int64_t{1} << 62}); }, {"MaxPool2d", "below 2^31"});
  expect_error<ValueError>([] { nn::Conv2d({.in = 1, .out = 1, .kernel = 3, .padding = int64_t{1} << 62}); }, {"Conv2d", "below 2^31"});
}

// Max pooling's backward scatters by the argmax it is given: a hand-made one with an index outside
// the input plane, the wrong shape or the wrong dtype is refused before anything is written.
TEST(BadInput, PoolingArgmaxOutsideItsPlaneIsRefused) {
  const ops::Pool2dParams pool{.kernel_h = 2, .kernel_w = 2, .stride_h = 2, .stride_w = 2};
  const Tensor x = random_tensor({2, 3, 6, 6});
  // Plain names rather than structured bindings: clang 14 (the sanitizer build) cannot capture those in lambdas.
  const auto pooled = ops::maxpool2d(x, pool);
  const Tensor y = pooled.first, argmax = pooled.second;
  const Tensor g = random_tensor(y.shape());
  EXPECT_EQ(ops::maxpool2d_backward(g, argmax, x.shape(), pool).shape(), x.shape());
  Tensor bad = argmax.clone();
  bad.data<int32_t>()[5] = 36;
  expect_error<ValueError>([&] { ops::maxpool2d_backward(g, bad, x.shape(), pool); },
                           {"max_pool2d backward: argmax", "element 5 is 36", "36 cells"});
  bad.data<int32_t>()[5] = -1;
  expect_error<ValueError>([&] { ops::maxpool2d_backward(g, bad, x.shape(), pool); }, {"element 5 is -1"});
  expect_error<ShapeError>([&] { ops::maxpool2d_backward(g, argmax.view({2, 3, 9}), x.shape(), pool); },
                           {"max_pool2d backward: argmax", "[2, 3, 3, 3]"});
  expect_error<TypeError>([&] { ops::maxpool2d_backward(g, y, x.shape(), pool); }, {"max_pool2d backward: argmax", "expected dtype int32"});

  // The fused convolution, ReLU and pooling: the argmax indexes the convolution's 6x6 output planes.
  const Tensor w = random_tensor({4, 3, 3, 3});
  const ops::Conv2dParams conv{.pad_h = 1, .pad_w = 1};
  const auto block = ops::conv2d_relu_maxpool2d(x, w, Tensor(), conv, pool);
  const Tensor out = block.first, block_argmax = block.second;
  Tensor bad_block = block_argmax.clone();
  bad_block.data<int32_t>()[bad_block.numel() - 1] = 1 << 20;
  expect_error<ValueError>(
      [&] { ops::conv2d_relu_maxpool2d_backward(x, w, out, bad_block, random_tensor(out.shape()), true, true, false, conv, pool); },
      {"conv2d_relu_max_pool2d backward: argmax", "outside the input plane of 36 cells"});
}

// A tensor too large for memory is an OutOfMemoryError giving its shape and size, not a bare bad_alloc.
TEST(BadInput, ImpossibleAllocationsSayWhatWasAskedFor) {
  expect_error<OutOfMemoryError>([] { Tensor::empty({int64_t{1} << 20, int64_t{1} << 20, 16}); },
                                 {"out of memory", "64.0 TiB", "float32", "[1048576, 1048576, 16]", "cpu"});
}

TEST(BadInput, LabelOutOfRangeNamesTheLabelAndItsPosition) {
  const Tensor logits = random_tensor({3, 10});
  expect_error<ValueError>([&] { F::cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{1, 10, 2}, {3})); },
                           {"label 10", "batch index 1", "[0, 10)"});
  expect_error<ValueError>([&] { F::cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{-1, 0, 2}, {3})); },
                           {"label -1"});
  // Of several bad labels the first is named, whatever its size.
  expect_error<ValueError>(
      [&] { F::cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{0, int64_t{5} << 30, -3}, {3})); },
      {"label 5368709120", "batch index 1"});
  expect_error<ShapeError>([&] { F::cross_entropy(logits, Tensor::from_vector(std::vector<int64_t>{1, 2}, {2})); },
                           {"labels [3]", "[2]"});
  expect_error<TypeError>([&] { F::cross_entropy(logits, random_tensor({3})); }, {"int64"});
}

TEST(BadInput, NaNInTheLossNamesTheLayerThatProducedIt) {
  manual_seed(1);
  auto model = nn::make_cnn();
  optim::Adam opt(model->parameters());
  // A NaN in one weight of the second convolution: its output is the first non-finite activation.
  model->parameter("features.3.weight").data<float>()[5] = std::nanf("");
  const Tensor x = random_tensor({2, 1, 28, 28});
  const Tensor y = Tensor::from_vector(std::vector<int64_t>{1, 2}, {2});
  expect_error<NumericError>([&] { training::train_step(*model, opt, x, y); },
                             {"loss is NaN", "step 1", "Conv2d 'features.3'"});
  EXPECT_EQ(opt.step_count(), 0);  // the bad step was not applied
  // NaN in the input batch is named as such.
  auto clean = nn::make_cnn();
  optim::Adam opt2(clean->parameters());
  Tensor bad = random_tensor({2, 1, 28, 28});
  bad.data<float>()[3] = std::nanf("");
  expect_error<NumericError>([&] { training::train_step(*clean, opt2, bad, y); }, {"input batch", "NaN"});
}

TEST(BadInput, MissingAndCorruptIdxFilesNameTheFile) {
  const auto dir = std::filesystem::temp_directory_path() / ("horo_bad_idx_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  expect_error<IOError>([&] { data::read_idx_images((dir / "absent").string()); }, {"absent", "no such file"});
  expect_error<IOError>([&] { data::load_mnist_split(dir.string(), true); }, {"train-images-idx3-ubyte", "not found"});
  {
    std::ofstream f(dir / "not-idx", std::ios::binary);
    f << "hello, world";
  }
  expect_error<IOError>([&] { data::read_idx_images((dir / "not-idx").string()); }, {"not-idx", "not an unsigned-byte IDX"});
  {
    std::ofstream f(dir / "truncated", std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 4, 1, 2, 3};
    f.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  expect_error<IOError>([&] { data::read_idx_images((dir / "truncated").string()); }, {"truncated", "expected 32 bytes"});
  {
    std::ofstream f(dir / "labels", std::ios::binary);
    const unsigned char header[] = {0, 0, 8, 3, 0, 0, 0, 1};
    f.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  expect_error<IOError>([&] { data::read_idx_labels((dir / "labels").string()); }, {"rank 1", "got rank 3"});
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace horo
