#include "dist/sharded_optimizer.h"

#include <cstring>
#include <sstream>

#include "dist/timeline.h"
#include "nn/autograd.h"
#include "nn/module.h"

namespace horo::dist {

ShardedOptimizer::ShardedOptimizer(Communicator& comm, GradientReducer& reducer, const optim::Optimizer& prototype)
    : Optimizer(prototype.param_groups(), 0.0f), comm_(comm.duplicate()), reducer_(reducer) {
  HORO_CHECK(reducer.sharded(), ValueError,
             "sharded optimizer: the gradient reducer must reduce-scatter (ReducerOptions::shard_gradients = true)");
  comm_->set_stall_timeout(comm.stall_timeout());
  std::unordered_map<TensorImpl*, size_t> reduced;
  const auto& params = reducer.parameters();
  for (size_t k = 0; k < params.size(); ++k) reduced[params[k].second.impl()] = k;
  const int rank = comm.rank();
  std::vector<optim::ParamGroup> inner_groups;
  for (size_t g = 0; g < param_groups().size(); ++g) {
    inner_groups.push_back({{}, param_groups()[g].lr});
    for (const Tensor& p : param_groups()[g].params) {
      const auto it = reduced.find(p.impl());
      if (it == reduced.end()) {
        HORO_CHECK(!p.requires_grad(), ValueError, "sharded optimizer: parameter ", p.describe(),
                   " requires a gradient, but the gradient reducer was not given it");
        continue;
      }
      HORO_CHECK(shard_by_param_.count(p.impl()) == 0, ValueError, "sharded optimizer: parameter '", params[it->second].first,
                 "' is in more than one parameter group");
      const ShardSlot& slot = reducer.shard_slot(it->second);
      Shard shard{.param = it->second, .view = Tensor(), .group = g};
      if (slot.end(rank) > slot.begin(rank)) {
        shard.view = p.detach().view({slot.numel}).slice(slot.begin(rank), slot.end(rank));
        shard.view.set_requires_grad(true);
        inner_groups.back().params.push_back(shard.view);
      }
      shard_by_param_[p.impl()] = shards_.size();
      shards_.push_back(std::move(shard));
    }
  }
  inner_ = prototype.make_like(std::move(inner_groups));
  // The allgather's per-bucket parameter lists and stall labels, made once rather than every step.
  in_bucket_.resize(reducer.buckets().size());
  for (size_t k = 0; k < params.size(); ++k) in_bucket_[reducer.shard_slot(k).bucket].push_back(k);
  for (size_t b = 0; b < in_bucket_.size(); ++b) {
    std::string names;
    for (size_t k : in_bucket_[b]) names += (names.empty() ? "" : ", ") + params[k].first;
    bucket_labels_.push_back("ZeRO-1 allgather of bucket " + std::to_string(b) + " (" + names + ")");
  }
  synchronized_steps_ = reducer.steps();
}

const ShardedOptimizer::Shard* ShardedOptimizer::shard_of(const Tensor& param) const {
  const auto it = shard_by_param_.find(param.impl());
  return it == shard_by_param_.end() ? nullptr : &shards_[it->second];
}

void ShardedOptimizer::step() {
  HORO_CHECK(reducer_.steps() > synchronized_steps_, ValueError,
             "sharded optimizer: step() without a reducer.synchronize() since the last step (the gradient shards are stale)");
  synchronized_steps_ = reducer_.steps();
  autograd::NoGradGuard no_grad;
  set_step_count(step_count() + 1);
  consolidated_ = false;
  whole_state_.clear();
  const int rank = comm_->rank();
  {
    TimelineScope scope("optimizer step on this rank's shard", "compute", "main");
    for (Shard& s : shards_) {
      if (!s.view.defined()) continue;
      const ShardSlot& slot = reducer_.shard_slot(s.param);
      const int64_t at = rank * reducer_.shard_block(slot.bucket) + slot.offset;
      s.view.set_grad(reducer_.bucket_buffer(slot.bucket).slice(at, at + s.view.numel()));
    }
    auto& inner_groups = inner_->param_groups();
    for (size_t g = 0; g < inner_groups.size(); ++g) inner_groups[g].lr = param_groups()[g].lr;  // LR schedules act on this optimizer
    inner_->step();
  }
  // Every reduced parameter's piece goes out (also those of parameters outside this optimizer, which
  // keep their values), and every other rank's piece comes in.
  const auto& params = reducer_.parameters();
  for (size_t b = 0; b < in_bucket_.size(); ++b) {
    TimelineScope scope("allgather parameters of bucket " + std::to_string(b), "allgather", "main");
    Tensor buffer = reducer_.bucket_buffer(b);
    const int64_t block = reducer_.shard_block(b);
    for (size_t k : in_bucket_[b]) {
      const ShardSlot& slot = reducer_.shard_slot(k);
      const int64_t length = slot.end(rank) - slot.begin(rank);
      if (length > 0) {
        buffer.slice(rank * block + slot.offset, rank * block + slot.offset + length)
            .copy_from(params[k].second.detach().view({slot.numel}).slice(slot.begin(rank), slot.end(rank)));
      }
    }
    comm_->announce(step_count(), static_cast<int64_t>(b), bucket_labels_[b]);
    comm_->allgather_in_place(buffer);
    for (size_t k : in_bucket_[b]) {
      const ShardSlot& slot = reducer_.shard_slot(k);
      Tensor flat = params[k].second.detach().view({slot.numel});
      for (int r = 0; r < comm_->size(); ++r) {
        const int64_t length = slot.end(r) - slot.begin(r);
        if (r == rank || length == 0) continue;
        flat.slice(slot.begin(r), slot.end(r)).copy_from(buffer.slice(r * block + slot.offset, r * block + slot.offset + length));
      }
    }
  }
}

namespace {
// A state entry with one value per element of the shard is gathered piece by piece; any other
// (Adam's step count) is the same on every rank and comes from rank 0.
bool elementwise(const Tensor& state, const Tensor& shard) {
  return state.dtype() == DType::Float32 && state.shape() == shard.shape();
}
}  // namespace

void ShardedOptimizer::consolidate_state() {
  // Rank 0 holds a piece of every parameter that has elements: its entries describe the state.
  std::ostringstream described;
  if (comm_->rank() == 0) {
    for (size_t i = 0; i < shards_.size(); ++i) {
      if (!shards_[i].view.defined()) continue;
      for (const auto& [key, t] : inner_->state(shards_[i].view)) {
        described << i << ' ' << key << ' ' << (elementwise(t, shards_[i].view) ? 'E' : 'S') << ' '
                  << static_cast<int>(t.dtype()) << ' ' << t.dim();
        for (int64_t d : t.shape()) described << ' ' << d;
        described << '\n';
      }
    }
  }
  std::string text = described.str();
  int64_t length = static_cast<int64_t>(text.size());
  comm_->broadcast(&length, sizeof length, 0);
  text.resize(static_cast<size_t>(length));
  comm_->broadcast(text.data(), length, 0);

  whole_state_.clear();
  const auto& params = reducer_.parameters();
  const int rank = comm_->rank(), ranks = comm_->size();
  std::istringstream in(text);
  size_t i = 0;
  std::string key;
  char kind = 0;
  int dtype = 0, dims = 0;
  while (in >> i >> key >> kind >> dtype >> dims) {
    Shape shape(static_cast<size_t>(dims));
    for (auto& d : shape) in >> d;
    HORO_CHECK(i < shards_.size(), ValueError, "sharded optimizer: rank 0 described state for shard ", i, " of ", shards_.size());
    const Shard& s = shards_[i];
    const Tensor& param = params[s.param].second;
    Tensor own;
    if (s.view.defined()) {
      for (const auto& [k, t] : inner_->state(s.view)) {
        if (k == key) own = t.to(Device::cpu());
      }
    }
    Tensor whole;
    if (kind == 'E') {
      const ShardSlot& slot = reducer_.shard_slot(s.param);
      std::vector<float> send(static_cast<size_t>(slot.piece), 0.0f), received(static_cast<size_t>(slot.piece * ranks));
      if (own.defined() && own.numel() > 0) std::memcpy(send.data(), own.data<float>(), static_cast<size_t>(own.numel()) * sizeof(float));
      comm_->allgather(send.data(), slot.piece * static_cast<int64_t>(sizeof(float)), received.data());
      received.resize(static_cast<size_t>(slot.numel));
      whole = Tensor::from_vector(received, param.shape());
    } else {
      whole = Tensor::empty(shape, static_cast<DType>(dtype));
      if (rank == 0) whole.copy_from(own);
      comm_->broadcast(whole.raw_data(), whole.numel() * static_cast<int64_t>(dtype_size(whole.dtype())), 0);
    }
    whole_state_[i].emplace_back(key, whole);
  }
  consolidated_ = true;
}

std::vector<std::pair<std::string, Tensor>> ShardedOptimizer::state(const Tensor& param) const {
  const auto it = shard_by_param_.find(param.impl());
  if (it == shard_by_param_.end()) return {};  // frozen, or not an optimized parameter
  HORO_CHECK(consolidated_, ValueError, "sharded optimizer: the state of ", param.describe(),
             " is spread over the ranks; call consolidate_state() on every rank first");
  const auto found = whole_state_.find(it->second);
  return found == whole_state_.end() ? std::vector<std::pair<std::string, Tensor>>{} : found->second;
}

void ShardedOptimizer::set_state(const Tensor& param, const std::string& key, const Tensor& value) {
  const Shard* s = shard_of(param);
  HORO_CHECK(s, ValueError, "sharded optimizer: ", param.describe(), " is not one of its parameters");
  consolidated_ = false;
  whole_state_.clear();
  if (!s->view.defined()) return;  // no piece of this parameter lives on this rank
  const ShardSlot& slot = reducer_.shard_slot(s->param);
  const int rank = comm_->rank();
  if (value.dtype() == DType::Float32 && value.shape() == param.shape()) {
    inner_->set_state(s->view, key, value.view({slot.numel}).slice(slot.begin(rank), slot.end(rank)).clone().to(s->view.device()));
  } else {
    inner_->set_state(s->view, key, value);
  }
}

int64_t ShardedOptimizer::state_bytes() const {
  int64_t bytes = 0;
  for (const Shard& s : shards_) {
    if (!s.view.defined()) continue;
    for (const auto& [key, t] : inner_->state(s.view)) bytes += t.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
  }
  return bytes;
}

int64_t optimizer_state_bytes(const optim::Optimizer& optimizer, const nn::Module& model) {
  if (const auto* sharded = dynamic_cast<const ShardedOptimizer*>(&optimizer)) return sharded->state_bytes();
  int64_t bytes = 0;
  for (const auto& [name, param] : model.named_parameters()) {
    for (const auto& [key, t] : optimizer.state(param)) bytes += t.numel() * static_cast<int64_t>(dtype_size(t.dtype()));
  }
  return bytes;
}

}  // namespace horo::dist
