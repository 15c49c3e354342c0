// The model and data the examples share: a small residual network (a stem, two ResNet basic blocks,
// global average pooling, a linear head) for 1 x 16 x 16 images, and synthetic images whose class is
// the quadrant that is lit.
#pragma once

#include <horo/horo.h>
#include <horo/data/dataset_writer.h>

#include <random>
#include <vector>

namespace nn = horo::nn;
namespace F = horo::nn::functional;

// ResNet's basic block: conv-BN-ReLU-conv-BN, plus the input, then ReLU.
class ResidualBlock : public nn::Module {
 public:
  explicit ResidualBlock(int64_t channels) {
    const nn::Conv2dOptions conv{.in = channels, .out = channels, .kernel = 3, .padding = 1, .bias = false};
    conv1 = register_module("conv1", std::make_shared<nn::Conv2d>(conv));
    bn1 = register_module("bn1", std::make_shared<nn::BatchNorm2d>(nn::BatchNormOptions{.features = channels}));
    conv2 = register_module("conv2", std::make_shared<nn::Conv2d>(conv));
    bn2 = register_module("bn2", std::make_shared<nn::BatchNorm2d>(nn::BatchNormOptions{.features = channels}));
  }
  horo::Tensor forward(const horo::Tensor& x) override {
    const horo::Tensor h = F::relu(bn1->forward(conv1->forward(x)));
    return F::relu(bn2->forward(conv2->forward(h)) + x);
  }
  std::string type_name() const override { return "ResidualBlock"; }

  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::BatchNorm2d> bn1, bn2;
};

class ResidualNet : public nn::Module {
 public:
  explicit ResidualNet(int64_t classes, int64_t width = 8) {
    stem = register_module("stem", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 1, .out = width, .kernel = 3, .padding = 1}));
    block1 = register_module("block1", std::make_shared<ResidualBlock>(width));
    block2 = register_module("block2", std::make_shared<ResidualBlock>(width));
    head = register_module("head", std::make_shared<nn::Linear>(nn::LinearOptions{.in = width, .out = classes}));
  }
  horo::Tensor forward(const horo::Tensor& x) override {
    horo::Tensor h = block2->forward(block1->forward(F::relu(stem->forward(x))));
    return head->forward(F::flatten(F::adaptive_avg_pool2d(h)));
  }
  std::string type_name() const override { return "ResidualNet"; }

  std::shared_ptr<nn::Conv2d> stem;
  std::shared_ptr<ResidualBlock> block1, block2;
  std::shared_ptr<nn::Linear> head;
};

// `count` noisy 16 x 16 images, each with one quadrant lit; quadrant[i] is image i's (0-3).
inline void quadrant_images(int64_t count, uint64_t seed, std::vector<float>& images, std::vector<int64_t>& quadrant) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0.0f, 0.5f);
  images.resize(static_cast<size_t>(count * 256));
  quadrant.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    quadrant[i] = static_cast<int64_t>(rng() % 4);
    for (int64_t y = 0; y < 16; ++y) {
      for (int64_t x = 0; x < 16; ++x) {
        const bool lit = (y / 8) * 2 + (x / 8) == quadrant[i];
        images[static_cast<size_t>(i * 256 + y * 16 + x)] = noise(rng) + (lit ? 1.0f : 0.0f);
      }
    }
  }
}

// Writes `count` of them to `path` in horo's HDF5 layout (float32 [count, 1, 16, 16] and labels).
inline void write_quadrant_dataset(const std::string& path, int64_t count, uint64_t seed) {
  std::vector<float> images;
  std::vector<int64_t> labels;
  quadrant_images(count, seed, images, labels);
  horo::data::DatasetWriter writer(path, horo::DType::Float32, {1, 16, 16}, /*labels=*/true, {});
  writer.append(images.data(), count, labels.data());
  writer.finish();
}

// The share of rows whose largest logit is at their label.
inline double accuracy(const horo::Tensor& logits, const std::vector<int64_t>& labels) {
  const std::vector<float> v = logits.to_vector();
  const int64_t classes = logits.shape()[1];
  int64_t right = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    int64_t best = 0;
    for (int64_t c = 1; c < classes; ++c) best = v[i * classes + c] > v[i * classes + best] ? c : best;
    right += best == labels[i];
  }
  return static_cast<double>(right) / static_cast<double>(labels.size());
}
