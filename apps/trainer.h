// The training loop behind horo-train: epochs of shuffled mini-batches, cross-entropy, an optimizer
// step per batch, evaluation after each epoch, one progress line per epoch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "data/idx.h"
#include "nn/layers.h"
#include "nn/optim.h"

namespace horo::apps {

struct TrainConfig {
  int64_t epochs = 10;
  int64_t batch = 64;
  float lr = 1e-3f;
  uint64_t seed = 42;
  int64_t max_steps = -1;  // stop after this many optimizer steps in all (< 0: no limit)
};

struct EpochReport {
  int64_t epoch = 0;  // 1-based
  int64_t steps = 0;
  double loss = 0.0;            // mean training loss over the epoch
  double train_accuracy = 0.0;  // on the training batches, in training mode
  double test_accuracy = 0.0;
  double images_per_s = 0.0;  // training images per second of training time (evaluation excluded)
  double seconds = 0.0;
};

struct TrainResult {
  int64_t epochs = 0;  // epochs started (the last may have been cut short by max_steps)
  double train_images_per_s = 0.0;
  double test_accuracy = 0.0;
};

// Accuracy of model on dataset, in eval mode and without recording gradients.
double evaluate(nn::Module& model, const data::ImageDataset& dataset, int64_t batch = 1000);

// One optimizer step on a batch; returns the loss. Throws NumericError naming the layer (found by
// re-running the forward pass with anomaly detection) when the loss is not finite.
float train_step(nn::Module& model, optim::Optimizer& optimizer, const Tensor& images, const Tensor& labels,
                 Tensor* logits_out = nullptr);

TrainResult train(nn::Module& model, optim::Optimizer& optimizer, const data::ImageDataset& train_set,
                  const data::ImageDataset& test_set, const TrainConfig& config,
                  const std::function<void(const EpochReport&)>& on_epoch);

}  // namespace horo::apps
