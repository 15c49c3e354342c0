#include "dist/reducer.h"

#include <chrono>
#include <cstdlib>
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

GradientReducer::GradientReducer(Communicator& comm, const std::vector<std::pair<std::string, Tensor>>& named_parameters,
                                 ReducerOptions options)
    : user_comm_(comm), options_(options) {
  HORO_CHECK(options_.backward_passes_per_step >= 1, ValueError, "backward_passes_per_step must be at least 1");
  if (options_.fusion_bytes < 0) options_.fusion_bytes = fusion_bytes_from_env();
  check_same_tensors(comm, named_parameters, "model parameters (names, shapes, dtypes)");
  for (const auto& entry : named_parameters) {
    if (entry.second.requires_grad()) params_.push_back(entry);
  }
  device_ = params_.empty() ? Device::cpu() : params_.front().second.device();
  for (const auto& [name, tensor] : params_) {
    HORO_CHECK(tensor.device() == device_, TypeError, "gradient reducer: ", tensor.describe(), " is on ", tensor.device().str(),
               " but ", params_.front().second.describe(), " is on ", device_.str());
  }
  HORO_CHECK(device_.is_cuda() == comm.device_buffers() || comm.size() == 1, TypeError, "gradient reducer: parameters on ",
             device_.str(), " need ", device_.is_cuda() ? "the NCCL communicator (HORO_ALLREDUCE=nccl)" : "a host communicator (ring or mpi)",
             ", got ", comm.name());
  comm_ = comm.duplicate();
  comm_->set_stall_timeout(comm.stall_timeout());
  // Reverse registration order approximates the order in which backward finishes gradients.
  bucket_of_.assign(params_.size(), 0);
  int64_t filled = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t bytes = params_[k].second.numel() * 4;
    if (buckets_.empty() || options_.fusion_bytes == 0 || filled + bytes > options_.fusion_bytes) {
      buckets_.emplace_back();
      filled = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    filled += bytes;
  }
  // Every rank must cut the same buckets (same frozen parameters, same HORO_FUSION_THRESHOLD).
  std::vector<std::pair<std::string, Tensor>> layout;
  for (size_t b = 0; b < buckets_.size(); ++b) {
    for (size_t k : buckets_[b].params) layout.emplace_back("bucket " + std::to_string(b) + ": " + params_[k].first, params_[k].second);
  }
  check_same_tensors(comm, layout, "fusion buckets (frozen parameters or HORO_FUSION_THRESHOLD)");
  ready_passes_.assign(params_.size(), 0);
  pending_per_bucket_.resize(buckets_.size());
  for (size_t b = 0; b < buckets_.size(); ++b) pending_per_bucket_[b] = buckets_[b].params.size();
  for (size_t k = 0; k < params_.size(); ++k) {
    params_[k].second.add_grad_ready_hook([this, k] { on_grad_ready(k); });
  }
  thread_ = std::thread([this] { communication_loop(); });
}

GradientReducer::~GradientReducer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  for (auto& [name, tensor] : params_) tensor.clear_grad_ready_hooks();
}

std::vector<std::vector<std::string>> GradientReducer::buckets() const {
  std::vector<std::vector<std::string>> out;
  for (const auto& b : buckets_) {
    out.emplace_back();
    for (size_t k : b.params) out.back().push_back(params_[k].first);
  }
  return out;
}

void GradientReducer::on_grad_ready(size_t param) {
  // Called on the backward thread each time this parameter's gradient has been accumulated.
  HORO_CHECK(ready_passes_[param] < options_.backward_passes_per_step, ValueError, "gradient of '", params_[param].first,
             "' produced by more than ", options_.backward_passes_per_step,
             " backward passes before synchronize(): call synchronize() once per optimizer step, or raise "
             "backward_passes_per_step");
  if (++ready_passes_[param] != options_.backward_passes_per_step) return;
  const size_t bucket = bucket_of_[param];
  if (--pending_per_bucket_[bucket] == 0) pack_and_queue(bucket);
}

void GradientReducer::pack_and_queue(size_t index) {
  Bucket& bucket = buckets_[index];
  {
    TimelineScope scope("pack bucket " + std::to_string(index), "fusion", "main");
    if (!bucket.buffer.defined()) {
      int64_t total = 0;
      for (size_t k : bucket.params) total += params_[k].second.numel();
      bucket.buffer = Tensor::empty({total}, DType::Float32, device_);
    }
    int64_t offset = 0;
    for (size_t k : bucket.params) {
      const Tensor& p = params_[k].second;
      Tensor slot = bucket.buffer.slice(offset, offset + p.numel()).view(p.shape());
      const Tensor grad = p.grad();
      if (grad.defined()) slot.copy_from(grad);
      else slot.fill(0.0f);  // no gradient on this rank this step: contribute zeros
      offset += p.numel();
    }
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    bucket.queued = true;
  }
  changed_.notify_all();
}

void GradientReducer::communication_loop() {
  // A thread starts on device 0: work on the parameters' GPU (its kernels and NCCL buffers live there).
  if (device_.is_cuda()) {
    try {
      kernels::cuda::set_device(device_.index);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      return;
    }
  }
  for (;;) {
    size_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || (next_to_reduce_ < buckets_.size() && buckets_[next_to_reduce_].queued && !error_);
      });
      if (stopping_) return;
      index = next_to_reduce_;
    }
    Bucket& bucket = buckets_[index];
    try {
      std::string names;
      for (size_t k : bucket.params) names += (names.empty() ? "" : ", ") + params_[k].first;
      comm_->announce(step_, static_cast<int64_t>(index), "allreduce of bucket " + std::to_string(index) + " (" + names + ")");
      TimelineScope scope("allreduce bucket " + std::to_string(index), "allreduce", "communication");
      float* data = bucket.buffer.data<float>();
      const int64_t count = bucket.buffer.numel();
      comm_->allreduce(data, count, ReduceOp::Average, options_.compression);
      if (options_.backward_passes_per_step > 1) {
        const float scale = 1.0f / static_cast<float>(options_.backward_passes_per_step);
        HORO_DISPATCH(device_, affine, count, scale, 0.0f, data, data);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      changed_.notify_all();
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      bucket.done = true;
      ++next_to_reduce_;
    }
    changed_.notify_all();
  }
}

void GradientReducer::synchronize() {
  const auto start = std::chrono::steady_clock::now();
  // Buckets that backward did not complete (parameters unused this step) go out now, with zeros.
  for (size_t b = 0; b < buckets_.size(); ++b) {
    bool queued;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queued = buckets_[b].queued;
    }
    if (!queued) pack_and_queue(b);
  }
  {
    TimelineScope scope("wait for allreduce", "wait", "main");
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return error_ || next_to_reduce_ == buckets_.size(); });
    if (error_) std::rethrow_exception(error_);
  }
  {
    TimelineScope scope("unpack", "fusion", "main");
    for (Bucket& bucket : buckets_) {
      int64_t offset = 0;
      for (size_t k : bucket.params) {
        Tensor& p = params_[k].second;
        if (!p.grad().defined()) p.set_grad(Tensor::zeros(p.shape(), DType::Float32, device_));
        p.grad().copy_from(bucket.buffer.slice(offset, offset + p.numel()).view(p.shape()));
        offset += p.numel();
      }
      bucket.queued = bucket.done = false;
    }
  }
  std::fill(ready_passes_.begin(), ready_passes_.end(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) pending_per_bucket_[b] = buckets_[b].params.size();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    next_to_reduce_ = 0;
  }
  ++step_;
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
