#include "data/reader.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <list>
#include <unordered_map>
#include <numeric>

#include "data/sampler.h"

namespace horo::data {

struct Reader::Task {
  int64_t sequence = 0, epoch = 0, index = 0;
  std::vector<int64_t> indices;  // samples in batch order
  std::vector<uint8_t> raw;      // their bytes, in the same order
  std::vector<size_t> offsets;   // encoded files: sample j's bytes are raw[offsets[j], offsets[j + 1])
  ReaderBatch out;               // filled by the workers, a sample each at a time
  int64_t claimed = 0, finished = 0;  // samples taken by a worker, and done (under the reader's mutex)
};

namespace {

// The I/O thread's least-recently-used cache of file blocks.
class BlockCache {
 public:
  BlockCache(const H5DatasetFile& file, size_t capacity_bytes)
      : file_(file), block_bytes_(static_cast<size_t>(file.block_samples() * file.schema().sample_bytes())),
        capacity_(std::max<size_t>(1, capacity_bytes / std::max<size_t>(1, block_bytes_))) {}

  // The bytes of block b, reading it (and evicting the least recently used block) when absent.
  const uint8_t* get(int64_t b, std::atomic<int64_t>& reads) {
    auto it = blocks_.find(b);
    if (it != blocks_.end()) {
      order_.splice(order_.begin(), order_, it->second.position);
      return it->second.bytes.data();
    }
    std::vector<uint8_t> bytes;
    if (blocks_.size() >= capacity_) {
      const int64_t victim = order_.back();
      order_.pop_back();
      bytes = std::move(blocks_[victim].bytes);  // reuse the buffer
      blocks_.erase(victim);
    }
    bytes.resize(block_bytes_);
    file_.read_block(b, bytes.data());
    ++reads;
    order_.push_front(b);
    auto& entry = blocks_[b];
    entry.bytes = std::move(bytes);
    entry.position = order_.begin();
    return entry.bytes.data();
  }

 private:
  struct Entry {
    std::vector<uint8_t> bytes;
    std::list<int64_t>::iterator position;
  };
  const H5DatasetFile& file_;
  size_t block_bytes_, capacity_;
  std::list<int64_t> order_;  // most recent first
  std::unordered_map<int64_t, Entry> blocks_;
};

}  // namespace

Reader::Reader(ReaderOptions options) : options_(std::move(options)) {
  const ReaderOptions& o = options_;
  HORO_CHECK(o.batch > 0, ValueError, o.path, ": batch size must be positive, got ", o.batch);
  HORO_CHECK(o.world >= 1 && o.rank >= 0 && o.rank < o.world, ValueError, o.path, ": rank ", o.rank,
             " outside a world of ", o.world);
  HORO_CHECK(o.remainder != Remainder::Keep || o.world == 1, ValueError, o.path,
             ": Remainder::Keep gives ranks unequal batch counts; use it with one rank (evaluation) only");
  HORO_CHECK(o.num_epochs >= 1, ValueError, o.path, ": num_epochs must be at least 1, got ", o.num_epochs);
  HORO_CHECK(o.workers >= 1, ValueError, o.path, ": at least one worker thread is needed");
  file_ = std::make_unique<H5DatasetFile>(o.path);
  const Schema& s = file_->schema();
  check_transforms(o.transforms, s.sample_shape, o.path);
  sample_shape_ = transformed_shape(o.transforms, s.sample_shape, o.path);
  const int64_t n = s.count, round = o.batch * o.world;
  if (o.remainder == Remainder::Keep) {
    HORO_CHECK(n > 0, ValueError, o.path, ": the file holds no samples");
    batches_per_epoch_ = (n + o.batch - 1) / o.batch;
  } else {
    HORO_CHECK(n >= round, ValueError, o.path, ": ", n, " samples are fewer than ranks x batch = ", o.world, " x ",
               o.batch, " = ", round, "; every rank needs at least one full batch");
    batches_per_epoch_ = o.remainder == Remainder::Drop ? n / round : (n + round - 1) / round;
  }
  HORO_CHECK(o.start_epoch >= 0 && o.start_epoch < o.num_epochs && o.start_batch >= 0 &&
                 o.start_batch < batches_per_epoch_, ValueError, o.path, ": cannot resume at epoch ", o.start_epoch,
             " batch ", o.start_batch, " of ", o.num_epochs, " epochs x ", batches_per_epoch_, " batches");
  total_batches_ = (o.num_epochs - o.start_epoch) * batches_per_epoch_ - o.start_batch;
  // A batch in flight: its raw bytes (for image files, guessed at a quarter of the float output) and
  // its float output.
  const size_t out_bytes = static_cast<size_t>(shape_numel(sample_shape_)) * 4;
  const size_t raw_bytes = s.encoded ? out_bytes / 4 : static_cast<size_t>(s.sample_bytes());
  const size_t batch_bytes = static_cast<size_t>(o.batch) * (raw_bytes + out_bytes + 24);
  // With several workers, two batches at least: the next one is read while the workers finish this one.
  max_in_flight_ = std::max<int64_t>(o.workers > 1 ? 2 : 1, static_cast<int64_t>(o.prefetch_bytes / std::max<size_t>(1, batch_bytes)));
  claim_ = s.encoded ? 1 : std::max<int64_t>(1, o.batch / (4 * o.workers));
  threads_.emplace_back([this] { io_loop(); });
  for (int w = 0; w < o.workers; ++w) threads_.emplace_back([this] { worker_loop(); });
}

Reader::~Reader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
}

int64_t Reader::samples_per_epoch() const {
  if (options_.remainder == Remainder::Keep) return file_->schema().count;
  return batches_per_epoch_ * options_.batch;
}

std::vector<int64_t> Reader::sample_indices(int64_t epoch, int64_t batch) const {
  const int64_t n = file_->schema().count;
  auto it = permutations_.find(epoch);
  if (it == permutations_.end()) {
    permutations_.clear();  // epochs are read in order: only the current one is needed
    std::vector<int64_t> order(static_cast<size_t>(n));
    if (options_.shuffle) order = permutation(n, options_.seed, static_cast<uint64_t>(epoch));
    else std::iota(order.begin(), order.end(), int64_t{0});
    it = permutations_.emplace(epoch, std::move(order)).first;
  }
  const auto& order = it->second;
  std::vector<int64_t> out;
  if (options_.remainder == Remainder::Keep) {
    for (int64_t k = batch * options_.batch; k < std::min(n, (batch + 1) * options_.batch); ++k) out.push_back(order[k]);
    return out;
  }
  for (int64_t j = 0; j < options_.batch; ++j) {
    const int64_t k = (batch * options_.batch + j) * options_.world + options_.rank;
    out.push_back(order[static_cast<size_t>(k % n)]);  // k >= n only under Remainder::Pad: wrap around
  }
  return out;
}

void Reader::fail(std::exception_ptr error) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = error;
  }
  changed_.notify_all();
}

void Reader::io_loop() {
  try {
    const int64_t first = options_.start_epoch * batches_per_epoch_ + options_.start_batch;
    const int64_t sample_bytes = file_->schema().sample_bytes(), per_block = file_->block_samples();
    BlockCache cache(*file_, options_.cache_bytes);
    for (;;) {
      int64_t sequence = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || error_ || next_to_read_ == total_batches_ || in_flight_ < max_in_flight_; });
        if (stopping_ || error_ || next_to_read_ == total_batches_) return;
        sequence = next_to_read_++;
        ++in_flight_;
      }
      auto task = std::make_unique<Task>();
      task->sequence = sequence;
      task->epoch = (first + sequence) / batches_per_epoch_;
      task->index = (first + sequence) % batches_per_epoch_;
      task->indices = sample_indices(task->epoch, task->index);
      // Visit the batch's samples in ascending order so that each block is fetched once per batch.
      std::vector<size_t> by_index(task->indices.size());
      std::iota(by_index.begin(), by_index.end(), size_t{0});
      std::sort(by_index.begin(), by_index.end(), [&](size_t a, size_t b) { return task->indices[a] < task->indices[b]; });
      if (file_->schema().encoded) {
        // Image files one at a time, in file order, then laid out in batch order.
        thread_local std::vector<std::vector<uint8_t>> files;
        files.resize(task->indices.size());
        for (size_t j : by_index) file_->read_encoded(task->indices[j], files[j]);
        task->offsets.assign(1, 0);
        for (size_t j = 0; j < task->indices.size(); ++j) task->offsets.push_back(task->offsets.back() + files[j].size());
        task->raw.resize(task->offsets.back());
        for (size_t j = 0; j < task->indices.size(); ++j)
          std::copy(files[j].begin(), files[j].end(), task->raw.begin() + static_cast<std::ptrdiff_t>(task->offsets[j]));
        blocks_read_ += static_cast<int64_t>(task->indices.size());
      } else {
        task->raw.resize(task->indices.size() * static_cast<size_t>(sample_bytes));
        for (size_t j : by_index) {
          const int64_t sample = task->indices[j];
          const uint8_t* block = cache.get(sample / per_block, blocks_read_);
          std::memcpy(task->raw.data() + j * static_cast<size_t>(sample_bytes), block + (sample % per_block) * sample_bytes,
                      static_cast<size_t>(sample_bytes));
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        raw_.push_back(task.get());
        working_.emplace(task->sequence, std::move(task));
      }
      changed_.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

void Reader::worker_loop() {
  try {
    const Schema& s = file_->schema();
    const int64_t sample_bytes = s.sample_bytes(), sample_values = shape_numel(sample_shape_);
    for (;;) {
      // Workers share the oldest batch: image files one at a time (each costs a millisecond or so),
      // small samples in runs, so that the lock is not taken per sample.
      Task* task = nullptr;
      int64_t first = 0, last = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || error_ || !raw_.empty(); });
        if (stopping_ || error_) return;
        task = raw_.front();
        const int64_t b = static_cast<int64_t>(task->indices.size());
        if (task->claimed == 0) {  // the batch's tensors, made by the worker that starts it
          Shape shape{b};
          shape.insert(shape.end(), sample_shape_.begin(), sample_shape_.end());
          task->out = {options_.pinned ? Tensor::empty_pinned(shape) : Tensor::empty(shape), Tensor(),
                       Tensor::from_vector(task->indices, {b}), task->epoch, task->index};
          if (s.has_labels) task->out.labels = Tensor::empty({b}, DType::Int64);
        }
        first = task->claimed;
        last = std::min(b, first + claim_);
        task->claimed = last;
        if (last == b) raw_.pop_front();
      }
      float* data = task->out.data.data<float>();
      for (int64_t j = first; j < last; ++j) {
        const int64_t sample = task->indices[static_cast<size_t>(j)];
        const int64_t height = s.encoded ? file_->image_height(sample) : s.sample_shape.size() == 3 ? s.sample_shape[1] : 0;
        const int64_t width = s.encoded ? file_->image_width(sample) : s.sample_shape.size() == 3 ? s.sample_shape[2] : 0;
        const SampleDraw draw = draw_for_sample(options_.transforms, options_.seed, static_cast<uint64_t>(task->epoch),
                                                static_cast<uint64_t>(sample), height, width);
        if (s.encoded) {
          const size_t begin = task->offsets[static_cast<size_t>(j)], end = task->offsets[static_cast<size_t>(j) + 1];
          try {
            transform_encoded_sample(options_.transforms, task->raw.data() + begin, end - begin, "", height, width, draw,
                                     data + j * sample_values);
          } catch (const IOError& e) {  // the message starts after the (empty) name: name the sample and its file
            throw ImageError(file_->sample_name(sample) + e.what());
          }
        } else {
          transform_sample(options_.transforms, s.data_dtype, s.sample_shape, task->raw.data() + j * sample_bytes, draw,
                           data + j * sample_values);
        }
        if (s.has_labels) task->out.labels.data<int64_t>()[j] = file_->labels()[static_cast<size_t>(sample)];
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        task->finished += last - first;
        if (task->finished < static_cast<int64_t>(task->indices.size())) continue;
        ready_.emplace(task->sequence, std::move(task->out));
        working_.erase(task->sequence);
      }
      changed_.notify_all();
    }
  } catch (...) {
    fail(std::current_exception());
  }
}

std::optional<ReaderBatch> Reader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (next_to_return_ == total_batches_) return std::nullopt;
  auto ready = [&] { return error_ || ready_.count(next_to_return_) > 0; };
  if (!ready()) {
    const auto start = std::chrono::steady_clock::now();
    changed_.wait(lock, ready);
    wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  if (error_) std::rethrow_exception(error_);
  auto node = ready_.extract(next_to_return_);
  ++next_to_return_;
  --in_flight_;
  lock.unlock();
  changed_.notify_all();
  return std::move(node.mapped());
}

}  // namespace horo::data
