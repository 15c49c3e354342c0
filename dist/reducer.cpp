#include "dist/reducer.h"

#include <chrono>
#include <cstdlib>
#include <exception>
#include <functional>

#include "dist/timeline.h"
#include "nn/autograd.h"
#include "kernels/binary.h"
#include "kernels/device.h"
#include "tensor/dispatch.h"

namespace horo::dist {
namespace {

int64_t fusion_bytes_from_env() {
  const char* env = std::getenv("HORO_FUSION_THRESHOLD");
  if (!env || !*env) return int64_t{16} << 20;
  char* end = nullptr;
  const long long value = std::strtoll(env, &end, 10);
  HORO_CHECK(*end == '\0' && value >= 0, ValueError, "HORO_FUSION_THRESHOLD: expected bytes (>= 0), got '", env, "'");
  return value;
}

std::string describe_entry(const std::pair<std::string, Tensor>& entry) {
  return entry.first + " " + shape_str(entry.second.shape()) + " " + dtype_name(entry.second.dtype());
}

}  // namespace

void check_same_tensors(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named, const std::string& what) {
  if (comm.size() == 1) return;
  std::string mine;
  for (const auto& entry : named) mine += describe_entry(entry) + "\n";
  const uint64_t hash = std::hash<std::string>{}(mine);
  std::vector<uint64_t> hashes(static_cast<size_t>(comm.size()));
  comm.allgather(&hash, sizeof hash, hashes.data());
  bool all_same = true;
  for (uint64_t h : hashes) all_same = all_same && h == hashes[0];
  if (all_same) return;
  // Compare with rank 0's list to name the first difference, and tell everyone which ranks differ.
  int64_t length = static_cast<int64_t>(mine.size());
  comm.broadcast(&length, sizeof length, 0);
  std::string reference(static_cast<size_t>(length), '\0');
  if (comm.rank() == 0) reference = mine;
  comm.broadcast(reference.data(), length, 0);
  std::vector<std::string> ref_lines;
  for (size_t pos = 0, next; pos < reference.size(); pos = next + 1) {
    next = reference.find('\n', pos);
    ref_lines.push_back(reference.substr(pos, next - pos));
  }
  std::string difference;
  for (size_t i = 0; i < std::max(ref_lines.size(), named.size()) && difference.empty(); ++i) {
    const std::string theirs = i < ref_lines.size() ? ref_lines[i] : "(nothing)";
    const std::string ours = i < named.size() ? describe_entry(named[i]) : "(nothing)";
    if (theirs != ours) difference = "tensor " + std::to_string(i) + ": rank 0 has " + theirs + ", this rank has " + ours;
  }
  std::string differing;
  for (int r = 0; r < comm.size(); ++r) {
    if (hashes[static_cast<size_t>(r)] != hashes[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  }
  throw ValueError(detail::concat(what, " differ between ranks: ranks ", differing, " do not match rank 0",
                                  difference.empty() ? std::string() : " (rank " + std::to_string(comm.rank()) + ": " + difference + ")"));
}

struct GradientReducer::State {
  struct Bucket {
    std::vector<size_t> params;  // indices into params
    Tensor buffer;               // the fused gradients, on the parameters' device
    Tensor staging;              // GPU gradients with a host communicator: pinned host memory
    kernels::cuda::PendingCopy staged;  // the copy of buffer into staging, queued when packed
    bool queued = false, done = false;
  };
  std::unique_ptr<Communicator> comm;  // the communication thread's own
  ReducerOptions options;
  std::vector<std::pair<std::string, Tensor>> params;
  Device device;
  std::vector<Bucket> buckets;
  std::mutex mutex;
  std::condition_variable changed;
  size_t next_to_reduce = 0;
  bool stopping = false;
  std::exception_ptr error;
  int64_t step = 0;
  int ranks = 1, rank = 0;
  std::vector<ShardSlot> slots;     // per parameter, with shard_gradients
  std::vector<int64_t> shard_block;  // per bucket, with shard_gradients

  void allocate(Bucket& bucket, int64_t total);
  void pack_sharded(Bucket& bucket, size_t index);

  void reduce(Bucket& bucket, size_t index);
  void communication_loop();
};

GradientReducer::GradientReducer(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named_parameters,
                                 ReducerOptions options)
    : state_(std::make_shared<State>()), uncaught_at_start_(std::uncaught_exceptions()) {
  State& s = *state_;
  s.options = options;
  HORO_CHECK(s.options.backward_passes_per_step >= 1, ValueError, "backward_passes_per_step must be at least 1");
  HORO_CHECK(!(s.options.shard_gradients && s.options.compression == Compression::Fp16), ValueError,
             "gradient reducer: fp16 compression is not supported with sharded gradients (ZeRO-1)");
  HORO_CHECK(!(comm.device_buffers() && s.options.compression == Compression::Fp16), ValueError,
             "gradient reducer: fp16 compression is not supported with NCCL (", comm.name(),
             "); use HORO_ALLREDUCE=ring or mpi, or no compression");
  if (s.options.fusion_bytes < 0) s.options.fusion_bytes = fusion_bytes_from_env();
  check_same_tensors(comm, named_parameters, "model parameters (names, shapes, dtypes)");
  for (const auto& entry : named_parameters) {
    if (entry.second.requires_grad()) s.params.push_back(entry);
  }
  s.device = s.params.empty() ? Device::cpu() : s.params.front().second.device();
  for (const auto& [name, tensor] : s.params) {
    HORO_CHECK(tensor.device() == s.device, TypeError, "gradient reducer: ", tensor.describe(), " is on ", tensor.device().str(),
               " but ", s.params.front().second.describe(), " is on ", s.device.str());
  }
  s.comm = comm.duplicate();
  s.comm->set_stall_timeout(comm.stall_timeout());
  // Reverse registration order approximates the order in which backward finishes gradients.
  bucket_of_.assign(s.params.size(), 0);
  int64_t filled = 0;
  for (size_t k = s.params.size(); k-- > 0;) {
    const int64_t bytes = s.params[k].second.numel() * 4;
    if (s.buckets.empty() || s.options.fusion_bytes == 0 || filled + bytes > s.options.fusion_bytes) {
      s.buckets.emplace_back();
      filled = 0;
    }
    s.buckets.back().params.push_back(k);
    bucket_of_[k] = s.buckets.size() - 1;
    filled += bytes;
  }
  // Every rank must cut the same buckets (same frozen parameters, same HORO_FUSION_THRESHOLD).
  std::vector<std::pair<std::string, Tensor>> layout;
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    for (size_t k : s.buckets[b].params) layout.emplace_back("bucket " + std::to_string(b) + ": " + s.params[k].first, s.params[k].second);
  }
  check_same_tensors(comm, layout, "fusion buckets (frozen parameters or HORO_FUSION_THRESHOLD)");
  s.ranks = comm.size();
  s.rank = comm.rank();
  if (s.options.shard_gradients) {
    // Each rank's block holds its piece of every parameter of the bucket; the buffers exist from the
    // start, since the sharded optimizer reads its gradients from them and writes its parameters back.
    s.slots.resize(s.params.size());
    for (size_t b = 0; b < s.buckets.size(); ++b) {
      int64_t offset = 0;
      for (size_t k : s.buckets[b].params) {
        const int64_t numel = s.params[k].second.numel();
        s.slots[k] = {.bucket = b, .offset = offset, .piece = (numel + s.ranks - 1) / s.ranks, .numel = numel};
        offset += s.slots[k].piece;
      }
      s.shard_block.push_back(offset);
      s.allocate(s.buckets[b], offset * s.ranks);
      s.buckets[b].buffer.fill(0.0f);
    }
  }
  ready_passes_.assign(s.params.size(), 0);
  pending_per_bucket_.resize(s.buckets.size());
  for (size_t b = 0; b < s.buckets.size(); ++b) pending_per_bucket_[b] = s.buckets[b].params.size();
  for (size_t k = 0; k < s.params.size(); ++k) {
    s.params[k].second.add_grad_ready_hook([this, k] { on_grad_ready(k); });
  }
  thread_ = std::thread([state = state_] { state->communication_loop(); });
}

GradientReducer::~GradientReducer() {
  {
    std::lock_guard<std::mutex> lock(state_->mutex);
    state_->stopping = true;
  }
  state_->changed.notify_all();
  for (auto& [name, tensor] : state_->params) tensor.clear_grad_ready_hooks();
  // While an exception unwinds, the thread may be inside a collective that a failed rank will never
  // complete: leave it (it holds the state it needs) rather than wait forever.
  if (std::uncaught_exceptions() > uncaught_at_start_) thread_.detach();
  else thread_.join();
}

int64_t GradientReducer::steps() const { return state_->step; }

std::vector<std::vector<std::string>> GradientReducer::buckets() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& b : state_->buckets) {
    out.emplace_back();
    for (size_t k : b.params) out.back().push_back(state_->params[k].first);
  }
  return out;
}

const std::vector<std::pair<std::string, Tensor>>& GradientReducer::parameters() const { return state_->params; }
bool GradientReducer::sharded() const { return state_->options.shard_gradients; }
const ShardSlot& GradientReducer::shard_slot(size_t param) const {
  HORO_CHECK(sharded(), ValueError, "gradient reducer: shard slots exist only with shard_gradients");
  return state_->slots.at(param);
}
int64_t GradientReducer::shard_block(size_t bucket) const {
  HORO_CHECK(sharded(), ValueError, "gradient reducer: shard blocks exist only with shard_gradients");
  return state_->shard_block.at(bucket);
}
Tensor GradientReducer::bucket_buffer(size_t bucket) const { return state_->buckets.at(bucket).buffer; }

void GradientReducer::on_grad_ready(size_t param) {
  // Called on the backward thread each time this parameter's gradient has been accumulated.
  const State& s = *state_;
  HORO_CHECK(ready_passes_[param] < s.options.backward_passes_per_step, ValueError, "gradient of '", s.params[param].first,
             "' produced by more than ", s.options.backward_passes_per_step,
             " backward passes before synchronize(): call synchronize() once per optimizer step, or raise "
             "backward_passes_per_step");
  if (++ready_passes_[param] != s.options.backward_passes_per_step) return;
  const size_t bucket = bucket_of_[param];
  if (--pending_per_bucket_[bucket] == 0) pack_and_queue(bucket);
}

void GradientReducer::pack_and_queue(size_t index) {
  State& s = *state_;
  State::Bucket& bucket = s.buckets[index];
  if (s.options.shard_gradients) {
    s.pack_sharded(bucket, index);
  } else {
    TimelineScope scope("pack bucket " + std::to_string(index), "fusion", "main");
    if (!bucket.buffer.defined()) {
      int64_t total = 0;
      for (size_t k : bucket.params) total += s.params[k].second.numel();
      s.allocate(bucket, total);
    }
    int64_t offset = 0;
    for (size_t k : bucket.params) {
      const Tensor& p = s.params[k].second;
      Tensor slot = bucket.buffer.slice(offset, offset + p.numel()).view(p.shape());
      const Tensor grad = p.grad();
      if (grad.defined()) slot.copy_from(grad);
      else slot.fill(0.0f);  // no gradient on this rank this step: contribute zeros
      offset += p.numel();
    }
  }
  if (bucket.staging.defined()) {
    // Out to pinned memory right behind the packing, on this thread's stream; the communication
    // thread waits for this copy alone (not for backward work queued later, nor as the step's wait).
    const kernels::cuda::DeviceScope scope(s.device.index);
    bucket.staged = kernels::cuda::copy_async_to_host(bucket.staging.raw_data(), bucket.buffer.raw_data(),
                                                      static_cast<size_t>(bucket.buffer.numel()) * sizeof(float));
  }
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    bucket.queued = true;
  }
  s.changed.notify_all();
}

void GradientReducer::State::allocate(Bucket& bucket, int64_t total) {
  bucket.buffer = Tensor::empty({total}, DType::Float32, device);
  if (device.is_cuda() && !comm->device_buffers()) bucket.staging = Tensor::empty_pinned({total});
}

void GradientReducer::State::pack_sharded(Bucket& bucket, size_t index) {
  TimelineScope scope("pack bucket " + std::to_string(index) + " by shard", "fusion", "main");
  const int64_t block = shard_block[index];
  for (size_t k : bucket.params) {
    const ShardSlot& slot = slots[k];
    const Tensor grad = params[k].second.grad();
    const Tensor flat = grad.defined() ? grad.view({slot.numel}) : Tensor();
    for (int r = 0; r < ranks; ++r) {
      const int64_t at = r * block + slot.offset, length = slot.end(r) - slot.begin(r);
      if (flat.defined() && length > 0) bucket.buffer.slice(at, at + length).copy_from(flat.slice(slot.begin(r), slot.end(r)));
      else if (length > 0) bucket.buffer.slice(at, at + length).fill(0.0f);  // no gradient on this rank: zeros
      if (length < slot.piece) bucket.buffer.slice(at + std::max<int64_t>(length, 0), at + slot.piece).fill(0.0f);
    }
  }
}

void GradientReducer::State::reduce(Bucket& bucket, size_t index) {
  std::string names;
  for (size_t k : bucket.params) names += (names.empty() ? "" : ", ") + params[k].first;
  const char* kind = options.shard_gradients ? "reduce-scatter" : "allreduce";
  comm->announce(step, static_cast<int64_t>(index), std::string(kind) + " of bucket " + std::to_string(index) + " (" + names + ")");
  TimelineScope scope("allreduce bucket " + std::to_string(index), "allreduce", "communication");
  const int64_t count = bucket.buffer.numel();
  if (options.shard_gradients) {
    if (bucket.staging.defined()) {
      kernels::cuda::wait_copy(bucket.staged);
      comm->reduce_scatter(bucket.staging.data<float>(), shard_block[index], ReduceOp::Average);
      bucket.buffer.copy_from(bucket.staging);
    } else {
      comm->reduce_scatter(bucket.buffer.data<float>(), shard_block[index], ReduceOp::Average);
    }
  } else if (bucket.staging.defined()) {
    // A host communicator: through pinned memory (copied out when the bucket was packed).
    kernels::cuda::wait_copy(bucket.staged);
    comm->allreduce(bucket.staging.data<float>(), count, ReduceOp::Average, options.compression);
    bucket.buffer.copy_from(bucket.staging);
  } else if (options.backward_passes_per_step == 1) {
    // On the GPU: queued behind the packing; synchronize() joins it before unpacking, so backward
    // kernels queued meanwhile run alongside.
    comm->allreduce_async(bucket.buffer.data<float>(), count, ReduceOp::Average, options.compression);
  } else {
    comm->allreduce(bucket.buffer.data<float>(), count, ReduceOp::Average, options.compression);
  }
  if (options.backward_passes_per_step > 1) {
    const float scale = 1.0f / static_cast<float>(options.backward_passes_per_step);
    float* data = bucket.buffer.data<float>();
    HORO_DISPATCH(device, affine, count, scale, 0.0f, data, data);
  }
}

void GradientReducer::State::communication_loop() {
  // A thread starts on device 0: work on the parameters' GPU (its kernels and NCCL buffers live there).
  if (device.is_cuda()) {
    try {
      kernels::cuda::set_device(device.index);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lock(mutex);
        error = std::current_exception();
      }
      changed.notify_all();  // synchronize() may be waiting already
      return;
    }
  }
  for (;;) {
    size_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mutex);
      changed.wait(lock, [&] { return stopping || (next_to_reduce < buckets.size() && buckets[next_to_reduce].queued && !error); });
      if (stopping) return;
      index = next_to_reduce;
    }
    try {
      reduce(buckets[index], index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      error = std::current_exception();
      changed.notify_all();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      buckets[index].done = true;
      ++next_to_reduce;
    }
    changed.notify_all();
  }
}

void GradientReducer::synchronize() {
  State& s = *state_;
  const auto start = std::chrono::steady_clock::now();
  // Buckets that backward did not complete (parameters unused this step) go out now, with zeros.
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    bool queued;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      queued = s.buckets[b].queued;
    }
    if (!queued) pack_and_queue(b);
  }
  {
    TimelineScope scope("wait for allreduce", "wait", "main");
    std::unique_lock<std::mutex> lock(s.mutex);
    s.changed.wait(lock, [&] { return s.error || s.next_to_reduce == s.buckets.size(); });
    if (s.error) std::rethrow_exception(s.error);
  }
  s.comm->join_async();
  s.comm->raise_async_errors();
  {
    TimelineScope scope("unpack", "fusion", "main");
    for (State::Bucket& bucket : s.buckets) {
      bucket.queued = bucket.done = false;
      if (s.options.shard_gradients) continue;  // the sharded optimizer reads its block in place
      int64_t offset = 0;
      for (size_t k : bucket.params) {
        Tensor& p = s.params[k].second;
        if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), DType::Float32, s.device));
        p.grad().copy_from(bucket.buffer.slice(offset, offset + p.numel()).view(p.shape()));
        offset += p.numel();
      }
    }
  }
  std::fill(ready_passes_.begin(), ready_passes_.end(), 0);
  for (size_t b = 0; b < s.buckets.size(); ++b) pending_per_bucket_[b] = s.buckets[b].params.size();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.next_to_reduce = 0;
  }
  ++s.step;
  wait_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void broadcast_parameters(Communicator& comm, nn::Module& model, int root) {
  if (comm.size() == 1) return;
  auto tensors = model.named_parameters();
  const auto buffers = model.named_buffers();
  tensors.insert(tensors.end(), buffers.begin(), buffers.end());
  check_same_tensors(comm, tensors, "model parameters and buffers");
  autograd::NoGradGuard no_grad;
  for (auto& [name, tensor] : tensors) comm.broadcast(tensor, root);
}

void broadcast_optimizer_state(Communicator& comm, optim::Optimizer& optimizer, nn::Module& model, int root) {
  if (comm.size() == 1) return;
  std::vector<std::pair<std::string, Tensor>> state;
  std::vector<std::pair<Tensor, std::string>> owners;  // (parameter, state key) of each entry
  for (const auto& [name, param] : model.named_parameters()) {
    for (const auto& [key, tensor] : optimizer.state(param)) {
      state.emplace_back(name + "." + key, tensor);
      owners.emplace_back(param, key);
    }
  }
  check_same_tensors(comm, state, "optimizer state");
  for (size_t i = 0; i < state.size(); ++i) {
    comm.broadcast(state[i].second, root);
    optimizer.set_state(owners[i].first, owners[i].second, state[i].second);  // some entries are copies (Adam's step)
  }
}

}  // namespace horo::dist
