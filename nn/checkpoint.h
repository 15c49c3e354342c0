// Checkpoints in HDF5, readable with h5py alone (docs/checkpoints.md):
//   /parameters/<dotted name>            float32, PyTorch layouts
//   /buffers/<dotted name>
//   /optimizer/<dotted name>/<state>     e.g. exp_avg, exp_avg_sq, step (Adam), momentum_buffer (SGD)
//   root attributes: format_version, model_spec (prototxt), train_config (prototxt), optimizer,
//   step, epoch, batch_in_epoch (the reader's position), rng_seed, rng_offset (the default
//   generator: dropout), data_seed, ranks (of the run that wrote it)
// A checkpoint is data: loading one reads tensors and text, it never runs anything.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/optim.h"
#include "nn/transfer.h"

namespace horo::nn {

constexpr int64_t kCheckpointFormatVersion = 1;

struct TrainingState {
  int64_t step = 0;            // optimizer steps taken
  int64_t epoch = 0;           // the epoch the next batch belongs to
  int64_t batch_in_epoch = 0;  // the index of the next batch within it
  uint64_t rng_seed = 0, rng_offset = 0;
  uint64_t data_seed = 0;
  // Data-parallel ranks of the run that wrote it (0: not recorded, checkpoints before this field);
  // with the per-rank batch in train_config, it gives the global batch the position above counts in.
  int64_t ranks = 0;
};

struct Checkpoint {
  std::string path;
  int64_t format_version = 0;
  std::map<std::string, Tensor> parameters, buffers;
  std::map<std::string, std::map<std::string, Tensor>> optimizer_state;  // by parameter name
  std::string optimizer;  // "adam", "sgd" or "" (none saved)
  std::string model_spec, train_config;
  TrainingState state;
};

// Writes model (and optimizer, when given) and state to `path` atomically: a temporary file in the
// same directory, flushed, then renamed over `path`.
void save_checkpoint(const std::string& path, const Module& model, const optim::Optimizer* optimizer,
                     const TrainingState& state, const std::string& model_spec, const std::string& train_config);

// Reads a checkpoint; a missing, truncated or corrupt file, or one of another format, is an IOError
// naming the file (and the tensor, where one is at fault).
Checkpoint read_checkpoint(const std::string& path);

// Loads the checkpoint's parameters and buffers into `model` (strict: every tensor must match, or an
// error names the first that does not).
LoadReport load_model(Module& model, const Checkpoint& checkpoint, bool strict);

// Restores optimizer state saved for the model's parameters; names what does not fit.
void load_optimizer(optim::Optimizer& optimizer, const Module& model, const Checkpoint& checkpoint);

// A directory of checkpoints named ckpt-<step>.h5, keeping the newest `keep`.
class CheckpointDir {
 public:
  CheckpointDir(std::string dir, int keep);
  // Saves at `state.step`, then deletes all but the newest `keep`; returns the path written.
  std::string save(const Module& model, const optim::Optimizer* optimizer, const TrainingState& state,
                   const std::string& model_spec, const std::string& train_config);
  // The newest checkpoint, or "" when there is none.
  std::string latest() const;
  // Deletes the checkpoints of steps after `step` (a run resumed from an earlier one abandons them);
  // returns their paths.
  std::vector<std::string> remove_after(int64_t step);

 private:
  std::vector<std::pair<int64_t, std::string>> list() const;
  std::string dir_;
  int keep_;
};

}  // namespace horo::nn
