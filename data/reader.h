// A Petastorm-like reader over horo's HDF5 layout: each rank reads its own shard of a per-epoch
// global permutation, in full batches, ahead of the consumer.
//
//  - Sharding is by sample: epoch e's permutation (a pure function of (seed, e)) is cut into
//    positions k = 0, 1, ...; rank r takes positions k = r (mod world). Every rank gets the same
//    number of full batches; the samples that do not fill a last round are dropped (Remainder::Drop)
//    or the permutation wraps around to fill it (Remainder::Pad). Remainder::Keep (one rank only)
//    reads every sample once in file order with a short last batch, for evaluation.
//  - One I/O thread holds the HDF5 lock and reads blocks (the file's chunks) as whole hyperslabs, in
//    ascending order, into an LRU block cache of cache_bytes; a batch's samples are copied out of it.
//    Worker threads decode, convert and transform, sharing the oldest batch a sample at a time; at
//    most prefetch_bytes of batches are in flight (but one batch at least, two with several
//    workers). Memory is bounded by cache_bytes + that whatever the file size.
//  - A failure on any thread reaches the consumer as the exception itself, from next().
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/h5_dataset.h"
#include "data/transforms.h"

namespace horo::data {

enum class Remainder { Drop, Pad, Keep };

struct ReaderOptions {
  std::string path;
  int64_t batch = 64;
  int64_t rank = 0, world = 1;
  uint64_t seed = 0;
  bool shuffle = true;
  Remainder remainder = Remainder::Drop;
  int64_t num_epochs = 1;
  int64_t start_epoch = 0, start_batch = 0;  // resume: the first batch to produce
  TransformOptions transforms;
  size_t prefetch_bytes = size_t{64} << 20;
  size_t cache_bytes = size_t{64} << 20;  // blocks kept for reuse (at least one block is always kept)
  int workers = 1;  // decode/transform threads (the I/O thread is extra)
  bool pinned = false;  // batches in page-locked memory, ready for an asynchronous copy to a GPU
};

struct ReaderBatch {
  Tensor data;    // float32 [B, ...sample_shape()]
  Tensor labels;  // int64 [B] (undefined for unlabelled files)
  Tensor indices; // int64 [B]: the samples' indices in the file
  int64_t epoch = 0, index = 0;
};

class Reader {
 public:
  explicit Reader(ReaderOptions options);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The next batch in (epoch, index) order, or nothing after the last epoch.
  std::optional<ReaderBatch> next();
  const Schema& schema() const { return file_->schema(); }
  // The shape of one sample of a batch (after the transforms: a crop may change the stored size).
  const Shape& sample_shape() const { return sample_shape_; }
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  // Samples this rank sees per epoch (padding included).
  int64_t samples_per_epoch() const;
  // Seconds next() spent waiting for a batch that was not ready yet.
  double wait_seconds() const { return wait_seconds_; }
  // Batches allowed in flight, from prefetch_bytes.
  int64_t max_in_flight() const { return max_in_flight_; }
  // Blocks read from the file so far (a block read again after eviction counts again).
  int64_t blocks_read() const { return blocks_read_; }

 private:
  struct Task;
  std::vector<int64_t> sample_indices(int64_t epoch, int64_t batch) const;
  void io_loop();
  void worker_loop();
  void fail(std::exception_ptr error);

  ReaderOptions options_;
  std::unique_ptr<H5DatasetFile> file_;
  Shape sample_shape_;
  int64_t batches_per_epoch_ = 0, total_batches_ = 0, max_in_flight_ = 1;
  int64_t claim_ = 1;  // samples a worker takes at a time
  mutable std::map<int64_t, std::vector<int64_t>> permutations_;  // by epoch, I/O thread only

  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, std::unique_ptr<Task>> working_;  // read and not yet transformed, by sequence number
  std::deque<Task*> raw_;                            // of those, the ones with samples no worker has taken
  std::map<int64_t, ReaderBatch> ready_;          // by sequence number
  int64_t next_to_read_ = 0, next_to_return_ = 0, in_flight_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  double wait_seconds_ = 0.0;
  std::atomic<int64_t> blocks_read_{0};
  std::vector<std::thread> threads_;
};

}  // namespace horo::data
