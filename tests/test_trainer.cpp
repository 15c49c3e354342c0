// training::Trainer in one process: a run stopped by a callback and resumed from its checkpoint ends
// bit-identical to an uninterrupted run; the loss callback replaces cross-entropy; the checkpoint
// cadence and the final checkpoint; misuse refused. (Under mpirun it is exercised by horo-train's CLI
// tests and examples/fit.cpp.)
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "nn/models.h"
#include "tests/test_util.h"
#include "train/trainer.h"

namespace horo::training {
namespace {

using horo::testing::expect_error;
using TrainerTest = horo::testing::ScratchDirTest;

data::ImageDataset random_dataset(int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  data::ImageDataset d{Tensor::empty({count, 1, 28, 28}, DType::UInt8), Tensor::empty({count}, DType::Int64)};
  for (int64_t i = 0; i < count; ++i) {
    const int64_t label = static_cast<int64_t>(rng() % 10);
    d.labels.data<int64_t>()[i] = label;
    for (int64_t p = 0; p < 784; ++p) d.images.data<uint8_t>()[i * 784 + p] = static_cast<uint8_t>((rng() % 128) + (p % 10 == label ? 127 : 0));
  }
  return d;
}

struct RunOutcome {
  std::string dir;
  FitResult result;
  std::vector<float> weights;
};

// W2 for `epochs` on 320 samples (10 batches of 32 an epoch), checkpoints every 4 steps.
RunOutcome run(const std::string& dir, int64_t max_steps, bool resume, const TrainCallbacks& callbacks = {}) {
  auto comm = dist::make_communicator();
  manual_seed(5);
  auto model = nn::make_mlp(10);
  optim::SGD sgd(model->parameters(), {.lr = 0.05f, .momentum = 0.9f});
  TrainerOptions options;
  options.epochs = 3;
  options.batch = 32;
  options.max_steps = max_steps;
  options.checkpoint_dir = dir;
  options.checkpoint_every = 4;
  options.print = false;
  options.schedule = [](optim::Optimizer& o) { return std::make_unique<optim::StepLR>(o, 1, 0.5); };
  Trainer trainer(*model, sgd, *comm, options);
  MemorySource source(random_dataset(320, 9), 32, 17);
  if (resume) {
    const auto latest = Trainer::latest_checkpoint(dir);
    EXPECT_TRUE(latest.has_value());
    trainer.resume(*latest, latest->state.epoch, latest->state.batch_in_epoch);
    source.seek(latest->state.epoch, latest->state.batch_in_epoch);
  }
  RunOutcome r{dir, trainer.fit(source, callbacks), {}};
  for (const auto& p : model->parameters()) {
    const auto v = p.to_vector();
    r.weights.insert(r.weights.end(), v.begin(), v.end());
  }
  return r;
}

TEST_F(TrainerTest, StoppedAndResumedEqualsUninterrupted) {
  const RunOutcome whole = run(path("whole"), -1, false);
  EXPECT_EQ(whole.result.step, 30);
  EXPECT_EQ(whole.result.reason, StopReason::Completed);
  EXPECT_TRUE(std::filesystem::exists(whole.dir + "/ckpt-28.h5"));
  EXPECT_TRUE(std::filesystem::exists(whole.dir + "/ckpt-30.h5"));  // the end, off the cadence

  // Stopped by a callback after step 13 (mid-epoch, between checkpoints): the final checkpoint
  // keeps step 13, and the resumed run continues from it.
  const std::string dir = path("stopped");
  TrainCallbacks stop_at_13;
  int64_t steps = 0;
  stop_at_13.on_step = [&](const StepReport& s) { steps = s.step; };
  stop_at_13.should_stop = [&] { return steps == 13 ? 15 : 0; };
  const RunOutcome first = run(dir, -1, false, stop_at_13);
  EXPECT_EQ(first.result.reason, StopReason::Requested);
  EXPECT_EQ(first.result.stop_code, 15);
  EXPECT_EQ(first.result.step, 13);
  EXPECT_EQ(first.result.last_checkpoint, dir + "/ckpt-13.h5");
  const RunOutcome second = run(dir, -1, true);
  EXPECT_EQ(second.result.start_step, 13);
  EXPECT_EQ(second.result.step, 30);
  ASSERT_EQ(second.weights.size(), whole.weights.size());
  EXPECT_EQ(second.weights, whole.weights) << "the resumed run's weights differ from the uninterrupted run's";
}

TEST_F(TrainerTest, LossCallbackReplacesCrossEntropy) {
  TrainCallbacks half;
  int calls = 0;
  half.loss = [&](const Tensor& logits, const Tensor& labels) {
    ++calls;
    return nn::functional::cross_entropy(logits, labels) * 0.0f;  // no gradient: the weights stay
  };
  auto comm = dist::make_communicator();
  manual_seed(5);
  auto model = nn::make_mlp(10);
  const auto before = model->parameters().front().to_vector();
  optim::SGD sgd(model->parameters(), {.lr = 0.05f});
  TrainerOptions options;
  options.epochs = 1;
  options.batch = 32;
  options.print = false;
  Trainer trainer(*model, sgd, *comm, options);
  MemorySource source(random_dataset(64, 3), 32, 1);
  const auto result = trainer.fit(source, half);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(result.step, 2);
  EXPECT_EQ(model->parameters().front().to_vector(), before);
  EXPECT_TRUE(result.last_checkpoint.empty());  // no checkpoint_dir: nothing written
  MemorySource more(random_dataset(64, 3), 32, 1);
  expect_error<ValueError>([&] { trainer.fit(more); }, {"once per Trainer"});

  TrainCallbacks bad;
  bad.loss = [](const Tensor& logits, const Tensor&) { return logits; };  // not one value
  MemorySource again(random_dataset(64, 3), 32, 1);
  Trainer second(*model, sgd, *comm, options);
  expect_error<ShapeError>([&] { second.fit(again, bad); }, {"one value"});
}

TEST_F(TrainerTest, RefusesMisuse) {
  auto comm = dist::make_communicator();
  auto model = nn::make_mlp(10);
  optim::SGD sgd(model->parameters(), {.lr = 0.05f});
  TrainerOptions options;
  options.batch = 0;
  EXPECT_THROW(Trainer(*model, sgd, *comm, options), ValueError);
  options.batch = 32;
  options.zero = 2;
  EXPECT_THROW(Trainer(*model, sgd, *comm, options), ValueError);
  // A directory holding another run's checkpoints is not overwritten.
  const std::string dir = path("taken");
  run(dir, 4, false);
  options.zero = 0;
  options.checkpoint_dir = dir;
  options.print = false;
  Trainer trainer(*model, sgd, *comm, options);
  MemorySource source(random_dataset(64, 3), 32, 1);
  expect_error<ValueError>([&] { trainer.fit(source); }, {"already holds checkpoints"});
}

}  // namespace
}  // namespace horo::training
