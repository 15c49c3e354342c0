// ZeRO stage 1 (Rajbhandari et al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter
// Models", 2020): the optimizer state is sharded over the ranks instead of replicated.
//  - The gradient reducer (ReducerOptions::shard_gradients) reduce-scatters each fusion bucket, in
//    the same buckets and with the same overlap with backward as the allreduce, so that each rank
//    receives the averaged gradient of its own shard only.
//  - step() applies the update rule (SGD, Adam, AdamW: any optim::Optimizer, through make_like) to
//    this rank's shard of every parameter, keeping momentum and moments for that shard only, then
//    allgathers the updated shards so that every rank holds the whole model for the next forward.
// Optimizer memory per rank is about 1/N of the unsharded optimizer's; the updates are those of the
// unsharded optimizer, up to the summation order of the gradient reduction.
// Checkpoints keep the ordinary format: consolidate_state() (collective) gathers the shards, after
// which state(param) answers for the whole parameter, as in PyTorch's ZeroRedundancyOptimizer
// (consolidate_state_dict, then state_dict). set_state() takes a whole parameter's state and keeps
// this rank's piece, so a ZeRO run resumes from a plain checkpoint and the other way round.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "dist/communicator.h"
#include "dist/reducer.h"
#include "nn/optim.h"

namespace horo::dist {

class ShardedOptimizer : public optim::Optimizer {
 public:
  // `reducer` must shard gradients (ReducerOptions::shard_gradients) and outlive this optimizer;
  // `prototype` gives the update rule, its options and the parameter groups with their learning rates
  // (its own state is never used). Parameters of the prototype's groups that the reducer does not
  // reduce must be frozen (requires_grad false). Make it after the model is on its device: the
  // shards are views of the parameters' memory.
  ShardedOptimizer(Communicator& comm, GradientReducer& reducer, const optim::Optimizer& prototype);

  // After reducer.synchronize(): updates this rank's shards, then allgathers the parameters.
  void step() override;
  std::vector<std::pair<std::string, Tensor>> state(const Tensor& param) const override;
  void set_state(const Tensor& param, const std::string& key, const Tensor& value) override;
  std::string type_name() const override { return inner_->type_name(); }
  std::unique_ptr<optim::Optimizer> make_like(std::vector<optim::ParamGroup> groups) const override {
    return inner_->make_like(std::move(groups));
  }

  // Collective (every rank, at the same point): gathers every parameter's state from the ranks that
  // hold its pieces; afterwards state(param) returns the whole state, on the CPU, until the next step().
  void consolidate_state();
  // Bytes of optimizer state this rank holds (its shards).
  int64_t state_bytes() const;

 protected:
  void update(Tensor&, const Tensor&, float) override {}  // step() is overridden

 private:
  struct Shard {
    size_t param = 0;  // index into the reducer's parameters
    Tensor view;       // this rank's piece of the parameter's memory (undefined when empty)
    size_t group = 0;
  };
  const Shard* shard_of(const Tensor& param) const;

  std::unique_ptr<Communicator> comm_;
  GradientReducer& reducer_;
  std::unique_ptr<optim::Optimizer> inner_;  // the update rule over the shards' views
  std::vector<Shard> shards_;
  std::unordered_map<TensorImpl*, size_t> shard_by_param_;
  std::vector<std::vector<size_t>> in_bucket_;  // the reducer's parameter indices, by bucket
  std::vector<std::string> bucket_labels_;      // what each bucket's allgather is announced as
  int64_t synchronized_steps_ = 0;  // reducer.steps() at the last step()
  bool consolidated_ = false;
  std::map<size_t, std::vector<std::pair<std::string, Tensor>>> whole_state_;  // by shard, after consolidate_state()
};

// Bytes of optimizer state (momentum, moments) that `optimizer` holds for the model's parameters on
// this rank: a ShardedOptimizer's shards, or a plain optimizer's whole state.
int64_t optimizer_state_bytes(const optim::Optimizer& optimizer, const nn::Module& model);

}  // namespace horo::dist
