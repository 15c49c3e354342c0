// The training loop behind horo-train: epochs of shuffled mini-batches, cross-entropy, an optimizer
// step per batch, evaluation after each epoch, one progress line per epoch. Batches come from a
// BatchSource: Fashion-MNIST held in memory (IDX files) or the HDF5 reader.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "data/idx.h"
#include "data/reader.h"
#include "data/sampler.h"
#include "dist/reducer.h"
#include "nn/layers.h"
#include "nn/optim.h"

namespace horo::training {

struct TrainConfig {
  int64_t epochs = 10;
  int64_t batch = 64;
  float lr = 1e-3f;
  uint64_t seed = 42;
  int64_t max_steps = -1;  // stop after this many optimizer steps in all (< 0: no limit)
  // Where to start (a resumed run): the epoch, the batch within it and the steps already taken.
  int64_t start_epoch = 0, start_batch = 0, start_step = 0;
  Device device = Device::cpu();  // where the model lives; batches are copied there
};

// Resuming on a different number of ranks. Both sources deal each epoch's permutation by global
// position (rank r's j-th sample of batch b is position (b * batch + j) * ranks + r), so global batch
// b is positions [b * G, (b + 1) * G) with G = per-rank batch x ranks, whatever the rank count: with
// the same G, a run resumed on other ranks continues the same trajectory (to float rounding, and
// BatchNorm aside unless it is synchronised). resize_on_resume keeps G when the per-rank batch was not
// given and G divides evenly, converts the position from the old G to the new one, and says what
// changes (an empty note when nothing does).
struct ResumePlan {
  int64_t batch = 0, epoch = 0, batch_in_epoch = 0;
  std::string note;
};
ResumePlan resize_on_resume(int64_t saved_ranks, int64_t saved_batch, int64_t epoch, int64_t batch_in_epoch, int64_t ranks,
                            int64_t batch, bool batch_given, const std::function<int64_t(int64_t batch)>& batches_per_epoch);

class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // The next batch of epoch `epoch` (0-based), or nothing at the epoch's end.
  virtual std::optional<data::Batch> next(int64_t epoch) = 0;
  virtual int64_t batches_per_epoch() const = 0;
  // Seconds the consumer has spent waiting for data so far.
  virtual double wait_seconds() const { return 0.0; }
};

// An in-memory dataset, reshuffled each epoch by (seed, epoch); the last batch may be short. With
// several ranks, rank r takes positions r, r + world, ... of each epoch's permutation, all ranks the
// same count (the remainder of N / world is dropped), so every rank runs the same number of steps.
class MemorySource : public BatchSource {
 public:
  MemorySource(data::ImageDataset dataset, int64_t batch, uint64_t seed, int64_t rank = 0, int64_t world = 1);
  // Continues from batch `batch` of epoch `epoch` (a resumed run).
  void seek(int64_t epoch, int64_t batch);
  std::optional<data::Batch> next(int64_t epoch) override;
  int64_t batches_per_epoch() const override;
  double wait_seconds() const override { return wait_seconds_; }

 private:
  data::ImageDataset dataset_;
  int64_t batch_;
  uint64_t seed_;
  int64_t rank_, world_, per_rank_;
  int64_t epoch_ = -1, position_ = 0;
  std::vector<int64_t> order_;
  double wait_seconds_ = 0.0;  // time spent assembling batches on the training thread
};

// The HDF5 reader, prefetching in the background across all epochs.
class ReaderSource : public BatchSource {
 public:
  explicit ReaderSource(const data::ReaderOptions& options);
  std::optional<data::Batch> next(int64_t epoch) override;
  int64_t batches_per_epoch() const override { return reader_.batches_per_epoch(); }
  double wait_seconds() const override { return reader_.wait_seconds(); }
  const data::Schema& schema() const { return reader_.schema(); }

 private:
  data::Reader reader_;
  std::optional<data::ReaderBatch> pending_;  // read ahead of an epoch boundary
};

// Reader options for an HDF5 file with horo-train's defaults: normalised by the file's mean/std
// attributes when it has them.
data::ReaderOptions reader_options(const std::string& path, int64_t batch, uint64_t seed, int64_t epochs);

struct EpochReport {
  int64_t epoch = 0;  // 1-based
  int64_t steps = 0;
  double loss = 0.0;            // mean training loss over the epoch
  double train_accuracy = 0.0;  // on the training batches, in training mode
  double test_accuracy = 0.0;
  double images_per_s = 0.0;    // training images per second of training time (evaluation excluded)
  double seconds = 0.0;
  double data_wait_share = 0.0;  // share of the epoch's training time spent waiting for batches
  double comm_wait_share = 0.0;  // share spent waiting for gradient allreduces
};

struct StepReport {
  int64_t epoch = 0;           // 0-based
  int64_t batch_in_epoch = 0;  // the index of the next batch (batches done in this epoch)
  int64_t batches_per_epoch = 0;
  int64_t step = 0;            // optimizer steps taken in all
  float loss = 0.0f;
  double accuracy = 0.0;       // of this batch
  double epoch_seconds = 0.0, images_per_s = 0.0, data_wait_share = 0.0;
};

// The loss of a batch from the model's output and the labels (a scalar tensor); cross-entropy when empty.
using LossFunction = std::function<Tensor(const Tensor& logits, const Tensor& labels)>;

struct TrainCallbacks {
  LossFunction loss;                                   // the step's loss (label smoothing, MSE...): cross-entropy by default
  std::function<double()> evaluate;                    // test accuracy after each epoch
  std::function<void(const StepReport&)> on_step;      // after every optimizer step
  std::function<void(const EpochReport&)> on_epoch;    // after each epoch's evaluation
  // Polled after every step (after on_step): a non-zero value ends the run there, without the
  // epoch's evaluation, and is returned as TrainResult::stop_code. Under mpirun it must return the
  // same on every rank (horo-train sums the ranks' requests), so that all stop at one step.
  std::function<int()> should_stop;
};

enum class StopReason { Completed, MaxSteps, Requested };

struct TrainResult {
  int64_t epochs = 0;  // epochs started (the last may have been cut short by max_steps or a stop)
  StopReason reason = StopReason::Completed;
  int stop_code = 0;  // should_stop's value when reason is Requested
  // Where the run ended, as a checkpoint records it: optimizer steps taken in all, and the next
  // batch to train (an epoch's end is batch 0 of the next epoch).
  int64_t step = 0, next_epoch = 0, next_batch = 0;
  double train_images_per_s = 0.0;
  double test_accuracy = 0.0;
};

// Accuracy over every batch a source yields for epoch 0, in eval mode and without gradients, on
// the device the model's parameters are on.
double evaluate(nn::Module& model, BatchSource& batches);
// Accuracy of model on an in-memory dataset.
double evaluate(nn::Module& model, const data::ImageDataset& dataset, int64_t batch = 1000);
// The device of the model's first parameter (CPU for a model without any).
Device model_device(const nn::Module& model);

// One optimizer step on a batch; returns the loss, and the batch's correctly classified count in
// *correct. Throws NumericError naming the layer (found by re-running the forward pass with anomaly
// detection) when the loss is not finite; the weights are then untouched. On a GPU the host waits
// once, for the loss and the count together (kernels::cuda::host_waits()).
// With a reducer, gradients are averaged over ranks between backward and the optimizer step.
// `loss` replaces cross-entropy when given.
float train_step(nn::Module& model, optim::Optimizer& optimizer, const Tensor& images, const Tensor& labels,
                 int64_t* correct = nullptr, dist::GradientReducer* reducer = nullptr, const LossFunction& loss = {});

TrainResult train(nn::Module& model, optim::Optimizer& optimizer, BatchSource& train_batches, const TrainConfig& config,
                  const TrainCallbacks& callbacks, dist::GradientReducer* reducer = nullptr);

}  // namespace horo::training
