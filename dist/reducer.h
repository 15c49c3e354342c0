// Data-parallel gradient reduction, as Horovod's DistributedOptimizer does it:
//  - parameters (those that require gradients; frozen ones are skipped) are grouped into fusion
//    buckets of up to HORO_FUSION_THRESHOLD bytes, in reverse registration order, the order backward
//    produces their gradients;
//  - as soon as backward has produced every gradient of a bucket, the bucket is packed into one
//    buffer and handed to a communication thread, which allreduces it while backward goes on;
//  - synchronize() (once per optimizer step) finishes the buckets whose parameters got no gradient
//    this step (zeros, so that no rank waits for a tensor another rank never sends), waits, and
//    writes the averages back into each parameter's grad().
// Buckets are reduced strictly in bucket order on every rank, so ranks cannot disagree on order.
// GPU gradients go to NCCL as they are (ordered by CUDA events, no host wait) or, with a host
// communicator (ring, mpi), through pinned host memory. A reducer destroyed while an exception
// unwinds does not wait for a communication thread that may be stuck in a collective with a failed
// rank: the thread is left to the process's end (horo-train then aborts the MPI job).
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "nn/module.h"
#include "nn/optim.h"

namespace horo::dist {

struct ReducerOptions {
  int64_t fusion_bytes = -1;  // < 0: HORO_FUSION_THRESHOLD, else 16 MiB; 0: one tensor per bucket
  Compression compression = Compression::None;
  int64_t backward_passes_per_step = 1;  // gradient accumulation: reduce after every k-th backward
  // ZeRO-1: reduce-scatter instead of allreduce, so that each rank receives the average of its own
  // shard of every bucket only (for dist::ShardedOptimizer, which updates that shard and allgathers
  // the parameters); synchronize() then leaves grad() as this rank's own, unreduced gradients.
  bool shard_gradients = false;
};

// Where a parameter sits in a sharded (ZeRO-1) bucket. Its flattened elements are cut into
// ranks pieces of `piece` elements (the last shorter or empty); rank r's piece, elements
// [begin(r), end(r)), lies at `offset` inside rank r's block of the bucket, and a bucket's buffer is
// the ranks' blocks one after another (each padded with zeros to the same length).
struct ShardSlot {
  size_t bucket = 0;
  int64_t offset = 0, piece = 0, numel = 0;
  int64_t begin(int rank) const { return std::min(numel, rank * piece); }
  int64_t end(int rank) const { return std::min(numel, (rank + 1) * piece); }
};

class GradientReducer {
 public:
  // Checks that every rank has the same parameters (names, shapes, dtypes) and fails naming the
  // first mismatch and the ranks concerned; then starts the communication thread.
  GradientReducer(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named_parameters,
                  ReducerOptions options = {});
  ~GradientReducer();
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Waits for this step's reductions; afterwards every grad() holds the average over ranks and
  // backward passes. Rethrows a communication failure (a StallError names the stalled tensors).
  void synchronize();
  // Seconds synchronize() has spent waiting for communication, summed over steps.
  double wait_seconds() const { return wait_seconds_; }
  int64_t steps() const;
  // The parameter names in each bucket, in reduction order.
  std::vector<std::vector<std::string>> buckets() const;

  // The parameters it reduces (those that require gradients), in registration order.
  const std::vector<std::pair<std::string, Tensor>>& parameters() const;
  // With shard_gradients: each parameter's slot, each bucket's per-rank block length, and the bucket
  // buffers, whose block rank() holds this rank's averaged gradient shard after synchronize().
  bool sharded() const;
  const ShardSlot& shard_slot(size_t param) const;
  int64_t shard_block(size_t bucket) const;
  Tensor bucket_buffer(size_t bucket) const;

 private:
  struct State;  // shared with the communication thread, which may outlive an abandoned reducer
  void on_grad_ready(size_t param);
  void pack_and_queue(size_t bucket);

  std::shared_ptr<State> state_;
  int uncaught_at_start_ = 0;
  std::vector<size_t> bucket_of_;
  std::vector<int64_t> ready_passes_;
  std::vector<size_t> pending_per_bucket_;
  double wait_seconds_ = 0.0;
  std::thread thread_;
};

// Copies rank `root`'s parameters and buffers to every rank (call once before training).
void broadcast_parameters(Communicator& comm, nn::Module& model, int root = 0);
// Copies rank `root`'s optimizer state (momentum, Adam moments) to every rank, e.g. after a resume.
void broadcast_optimizer_state(Communicator& comm, optim::Optimizer& optimizer, nn::Module& model, int root = 0);
// Throws ValueError on every rank, naming the first tensor and the ranks that differ, unless all ranks
// hold the same (name, shape, dtype) list.
void check_same_tensors(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named, const std::string& what);

}  // namespace horo::dist
