// Optimizers with torch.optim's update rules, over parameter groups with their own learning rates
// (a slower backbone and a faster head, say). Parameters without a gradient (frozen, or unused this
// step) are skipped.
#pragma once

#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/optim.h"
#include "tensor/tensor.h"

namespace horo::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  float lr = -1.0f;  // < 0: the optimizer's default learning rate
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // Applies one update to every parameter that has a gradient.
  virtual void step();
  // Zeroes the gradients of every parameter (keeping their buffers).
  void zero_grad();
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  int64_t step_count() const { return steps_; }
  // Per-parameter state (momentum buffers, Adam moments) by name, for checkpoints.
  virtual std::vector<std::pair<std::string, Tensor>> state(const Tensor& param) const = 0;
  // Restores one entry of state(param) (from a checkpoint); throws ValueError for an unknown key.
  virtual void set_state(const Tensor& param, const std::string& key, const Tensor& value) = 0;
  // "sgd" or "adam"; checkpoints refuse to load one optimizer's state into the other.
  virtual std::string type_name() const = 0;
  void set_step_count(int64_t steps) { steps_ = steps; }
  // A fresh optimizer of the same kind and options (no state) over other parameters, e.g. the shards
  // of a sharded (ZeRO) optimizer.
  virtual std::unique_ptr<Optimizer> make_like(std::vector<ParamGroup> groups) const = 0;

 protected:
  Optimizer(std::vector<ParamGroup> groups, float default_lr);
  virtual void update(Tensor& param, const Tensor& grad, float lr) = 0;

 private:
  std::vector<ParamGroup> groups_;
  int64_t steps_ = 0;
};

struct SgdOptions {
  float lr = 0.01f, momentum = 0.0f, dampening = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SgdOptions& options);
  SGD(std::vector<ParamGroup> groups, const SgdOptions& options);
  std::vector<std::pair<std::string, Tensor>> state(const Tensor& param) const override;
  void set_state(const Tensor& param, const std::string& key, const Tensor& value) override;
  std::string type_name() const override { return "sgd"; }
  std::unique_ptr<Optimizer> make_like(std::vector<ParamGroup> groups) const override {
    return std::make_unique<SGD>(std::move(groups), options_);
  }

 protected:
  void update(Tensor& param, const Tensor& grad, float lr) override;

 private:
  SgdOptions options_;
  std::unordered_map<TensorImpl*, Tensor> momentum_;
};

struct AdamOptions {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  bool decoupled_weight_decay = false;  // AdamW when true
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = {});
  Adam(std::vector<ParamGroup> groups, const AdamOptions& options = {});
  std::vector<std::pair<std::string, Tensor>> state(const Tensor& param) const override;
  void set_state(const Tensor& param, const std::string& key, const Tensor& value) override;
  std::string type_name() const override { return "adam"; }
  std::unique_ptr<Optimizer> make_like(std::vector<ParamGroup> groups) const override {
    return std::make_unique<Adam>(std::move(groups), options_);
  }

 protected:
  void update(Tensor& param, const Tensor& grad, float lr) override;

 private:
  struct Moments {
    Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
  };
  AdamOptions options_;
  std::unordered_map<TensorImpl*, Moments> moments_;
};

// Adam with decoupled weight decay (torch.optim.AdamW; weight decay 0.01 by default).
class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamOptions options = {.weight_decay = 1e-2f});
};

// ---- learning-rate schedules: lr = base_lr * factor(t), t counting step() calls ----
class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer);
  virtual ~LRScheduler() = default;
  // Advances one step (an epoch or an iteration, as the caller chooses) and sets each group's lr.
  void step();
  int64_t last_step() const { return t_; }
  virtual double factor(int64_t t) const = 0;

 protected:
  // Sets each group's lr to base_lr * factor(t); derived constructors call apply(0).
  void apply(int64_t t);

 private:
  Optimizer& optimizer_;
  std::vector<float> base_lrs_;
  int64_t t_ = 0;
};

// lr * gamma^floor(t / step_size) (torch StepLR).
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  double factor(int64_t t) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// eta_min + (lr - eta_min) * (1 + cos(pi * t / t_max)) / 2, as a factor of lr (torch CosineAnnealingLR).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double min_factor = 0.0);
  double factor(int64_t t) const override;

 private:
  int64_t t_max_;
  double min_factor_;
};

// Linear warm-up from start_factor to 1 over warmup_steps, then `after` (or a constant 1) counted from
// the end of the warm-up.
class LinearWarmup : public LRScheduler {
 public:
  LinearWarmup(Optimizer& optimizer, int64_t warmup_steps, double start_factor = 0.0,
               std::unique_ptr<LRScheduler> after = nullptr);
  double factor(int64_t t) const override;

 private:
  int64_t warmup_steps_;
  double start_factor_;
  std::unique_ptr<LRScheduler> after_;
};

}  // namespace horo::optim
