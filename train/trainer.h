// training::Trainer: a whole training run around a model, an optimizer and a batch source, as Keras'
// fit() or Lightning's Trainer. What makes a run robust is here rather than in each program:
//   - data-parallel under mpirun: rank 0's weights and optimizer state broadcast at the start, the
//     gradients averaged by a bucketed, overlapped reducer (ZeRO-1 sharding optional), SyncBatchNorm
//     optional, a stop request on any rank stopping every rank after the same step;
//   - checkpoints on a cadence (every N steps or each epoch, the newest K kept) and one at the end
//     whatever ended the run, resumable bit-identically (`resume`), rank 0 writing;
//   - SIGTERM / SIGINT finishing the step, writing the checkpoint and the logs
//     (install_stop_signals, which the Trainer calls);
//   - a progress line and one line per epoch on rank 0, metrics.csv, metrics.jsonl and report.html.
//
//   auto comm = horo::dist::make_communicator_for(false);
//   horo::optim::Adam adam(model->parameters(), {.lr = 1e-3f});
//   horo::training::Trainer trainer(*model, adam, *comm, {.epochs = 5, .batch = 64, .checkpoint_dir = "ck"});
//   horo::training::MemorySource batches(train_set, 64, /*seed=*/42, comm->rank(), comm->size());
//   auto result = trainer.fit(batches, {.evaluate = [&] { return horo::training::evaluate(*model, test_set); }});
//
// Callbacks (TrainCallbacks) add a custom loss, per-step and per-epoch hooks, evaluation and a stop
// condition; the Trainer's own run first.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dist/communicator.h"
#include "nn/checkpoint.h"
#include "train/loop.h"

namespace horo::dist {
class ShardedOptimizer;
}

namespace horo::training {

struct TrainerOptions {
  int64_t epochs = 10;
  int64_t batch = 64;      // per rank: what the batch source yields (recorded in checkpoints)
  int64_t max_steps = -1;  // stop after this many optimizer steps in all (< 0: no limit)
  uint64_t seed = 42;      // the data order's seed, recorded in checkpoints
  Device device = Device::cpu();
  std::string checkpoint_dir;    // empty: no checkpoints
  int64_t checkpoint_every = 0;  // steps between checkpoints; 0: at each epoch's end
  int keep = 3;                  // checkpoints kept
  std::string log_dir;           // metrics.csv, metrics.jsonl, report.html (rank 0); empty: none
  bool print = true;             // the progress line and epoch lines on rank 0's stdout
  int zero = 0;                  // 1: ZeRO-1, the optimizer state sharded over the ranks
  bool sync_bn = false;          // BatchNorm statistics over every rank's batch
  // Stepped after each epoch (StepLR, CosineAnnealingLR...), built on the optimizer the run steps
  // (the sharded one under ZeRO-1); none when empty.
  std::function<std::unique_ptr<optim::LRScheduler>(optim::Optimizer&)> schedule;
  // Stored in every checkpoint so that horo-eval, horo-export and a resumed run can rebuild the
  // model: its specification (prototxt; empty for a model built in C++) and the training configuration.
  std::string model_spec, train_config;
  std::string title = "horo";  // report.html's title
};

struct FitResult : TrainResult {
  double total_images_per_s = 0.0;   // the sum of the ranks' training rates
  double best_test_accuracy = 0.0;
  int stopping_ranks = 0;            // ranks that received the stop request
  std::string last_checkpoint;       // the last checkpoint written ("" when none)
  int64_t optimizer_state_bytes = 0;      // on this rank
  int64_t all_optimizer_state_bytes = 0;  // summed over the ranks
  int64_t start_step = 0;            // the step the run started from (a resumed run's)
  double seconds = 0.0;
  std::string summary;               // "epochs=3 train_images_per_s=4712.3 test_accuracy=0.8812"
};

class Trainer {
 public:
  // `optimizer` is built on the model's parameters; the communicator is the data-parallel one
  // (dist::make_communicator_for). Nothing runs before fit().
  Trainer(nn::Module& model, optim::Optimizer& optimizer, dist::Communicator& comm, TrainerOptions options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Continue a run from `checkpoint`: its weights, optimizer state and random generator, from
  // batch `batch_in_epoch` of `epoch` (the checkpoint's own position unless the rank count changed:
  // resize_on_resume). The batch source must continue from the same place (seek, or the reader's
  // start_epoch / start_batch). Checkpoints in checkpoint_dir later than this one are removed.
  void resume(const nn::Checkpoint& checkpoint, int64_t epoch, int64_t batch_in_epoch);
  // The newest checkpoint in `dir`, or nullopt when there is none.
  static std::optional<nn::Checkpoint> latest_checkpoint(const std::string& dir, int keep = 3);

  // Trains until `epochs`, `max_steps` or a stop request; the model ends on `device`. Once per
  // Trainer (ValueError on a second call: its reducer already hooks the parameters' gradients); a
  // new Trainer continues a run, through resume().
  FitResult fit(BatchSource& batches, const TrainCallbacks& callbacks = {});

  // The optimizer the run steps: the sharded one under ZeRO-1 (valid after fit() started).
  optim::Optimizer& optimizer();
  dist::Communicator& comm() { return comm_; }
  int rank() const { return comm_.rank(); }
  int world() const { return comm_.size(); }
  // Writes a checkpoint now (a collective: every rank calls it); returns its path on rank 0.
  std::string save_checkpoint(int64_t step, int64_t epoch, int64_t batch_in_epoch);

 private:
  nn::Module& model_;
  optim::Optimizer& base_optimizer_;
  dist::Communicator& comm_;
  TrainerOptions options_;
  std::optional<nn::Checkpoint> resumed_;
  int64_t start_epoch_ = 0, start_batch_ = 0, start_step_ = 0;
  std::unique_ptr<dist::GradientReducer> reducer_;
  std::unique_ptr<dist::ShardedOptimizer> sharded_;
  std::unique_ptr<nn::CheckpointDir> checkpoints_;
  int64_t saved_step_ = -1;
  bool fitted_ = false;
  std::string saved_path_;
};

}  // namespace horo::training
