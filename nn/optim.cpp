#include "nn/optim.h"

#include <cmath>

#include "nn/autograd.h"
#include "tensor/dispatch.h"

namespace horo::optim {

Optimizer::Optimizer(std::vector<ParamGroup> groups, float default_lr) : groups_(std::move(groups)) {
  HORO_CHECK(default_lr >= 0.0f, ValueError, "optimizer: learning rate must be non-negative, got ", default_lr);
  for (auto& g : groups_) {
    if (g.lr < 0.0f) g.lr = default_lr;
    for (const Tensor& p : g.params) {
      HORO_CHECK(p.defined() && p.dtype() == DType::Float32, TypeError, "optimizer: parameter ", p.describe(),
                 " must be a float32 tensor");
    }
  }
}

void Optimizer::step() {
  autograd::NoGradGuard no_grad;
  ++steps_;
  for (auto& group : groups_) {
    for (Tensor& p : group.params) {
      if (!p.requires_grad()) continue;
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      check_shape(grad, p.shape(), "optimizer: gradient of " + p.describe());
      update(p, grad, group.lr);
    }
  }
}

void Optimizer::zero_grad() {
  for (auto& group : groups_) {
    for (Tensor& p : group.params) {
      Tensor g = p.grad();
      if (g.defined()) g.fill(0.0f);
    }
  }
}

namespace {
std::vector<ParamGroup> one_group(std::vector<Tensor> params) { return {ParamGroup{std::move(params), -1.0f}}; }
}  // namespace

SGD::SGD(std::vector<Tensor> params, const SgdOptions& options) : SGD(one_group(std::move(params)), options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& options)
    : Optimizer(std::move(groups), options.lr), options_(options) {
  HORO_CHECK(options.momentum >= 0.0f && options.weight_decay >= 0.0f, ValueError,
             "SGD: momentum and weight_decay must be non-negative");
  HORO_CHECK(!options.nesterov || (options.momentum > 0.0f && options.dampening == 0.0f), ValueError,
             "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
}

void SGD::update(Tensor& param, const Tensor& grad, float lr) {
  kernels::SgdArgs args{.lr = lr, .momentum = options_.momentum, .dampening = options_.dampening,
                        .weight_decay = options_.weight_decay, .nesterov = options_.nesterov};
  float* buffer = nullptr;
  if (options_.momentum != 0.0f) {
    auto [it, inserted] = momentum_.try_emplace(param.impl());
    if (inserted) it->second = Tensor::zeros(param.shape(), DType::Float32, param.device());
    args.first_step = inserted;
    buffer = it->second.data<float>();
  }
  HORO_DISPATCH(param.device(), sgd_update, args, param.numel(), param.data<float>(), grad.data<float>(), buffer);
}

std::vector<std::pair<std::string, Tensor>> SGD::state(const Tensor& param) const {
  auto it = momentum_.find(param.impl());
  if (it == momentum_.end()) return {};
  return {{"momentum_buffer", it->second}};
}

void SGD::set_state(const Tensor& param, const std::string& key, const Tensor& value) {
  HORO_CHECK(key == "momentum_buffer", ValueError, "SGD: unknown state '", key, "' for ", param.describe());
  check_shape(value, param.shape(), "SGD momentum buffer of " + param.describe());
  momentum_[param.impl()] = value.to(param.device()).clone();
}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options) : Adam(one_group(std::move(params)), options) {}

Adam::Adam(std::vector<ParamGroup> groups, const AdamOptions& options)
    : Optimizer(std::move(groups), options.lr), options_(options) {
  HORO_CHECK(options.beta1 >= 0.0f && options.beta1 < 1.0f && options.beta2 >= 0.0f && options.beta2 < 1.0f,
             ValueError, "Adam: betas must be in [0, 1), got (", options.beta1, ", ", options.beta2, ")");
  HORO_CHECK(options.eps >= 0.0f && options.weight_decay >= 0.0f, ValueError,
             "Adam: eps and weight_decay must be non-negative");
}

void Adam::update(Tensor& param, const Tensor& grad, float lr) {
  auto [it, inserted] = moments_.try_emplace(param.impl());
  Moments& m = it->second;
  if (inserted) {
    m.exp_avg = Tensor::zeros(param.shape(), DType::Float32, param.device());
    m.exp_avg_sq = Tensor::zeros(param.shape(), DType::Float32, param.device());
  }
  ++m.step;
  const kernels::AdamArgs args{.lr = lr, .beta1 = options_.beta1, .beta2 = options_.beta2, .eps = options_.eps,
                               .weight_decay = options_.weight_decay,
                               .decoupled_weight_decay = options_.decoupled_weight_decay, .step = m.step};
  HORO_DISPATCH(param.device(), adam_update, args, param.numel(), param.data<float>(), grad.data<float>(), m.exp_avg.data<float>(),
                            m.exp_avg_sq.data<float>());
}

std::vector<std::pair<std::string, Tensor>> Adam::state(const Tensor& param) const {
  auto it = moments_.find(param.impl());
  if (it == moments_.end()) return {};
  return {{"exp_avg", it->second.exp_avg}, {"exp_avg_sq", it->second.exp_avg_sq},
          {"step", Tensor::from_vector(std::vector<int64_t>{it->second.step}, {})}};
}

void Adam::set_state(const Tensor& param, const std::string& key, const Tensor& value) {
  Moments& m = moments_[param.impl()];
  if (!m.exp_avg.defined()) {
    m.exp_avg = Tensor::zeros(param.shape(), DType::Float32, param.device());
    m.exp_avg_sq = Tensor::zeros(param.shape(), DType::Float32, param.device());
  }
  if (key == "step") {
    HORO_CHECK(value.numel() == 1, ShapeError, "Adam: state 'step' of ", param.describe(), " must be one number");
    m.step = static_cast<int64_t>(value.dtype() == DType::Int64 ? *value.data<int64_t>() : value.item());
    return;
  }
  HORO_CHECK(key == "exp_avg" || key == "exp_avg_sq", ValueError, "Adam: unknown state '", key, "' for ", param.describe());
  check_shape(value, param.shape(), "Adam " + key + " of " + param.describe());
  (key == "exp_avg" ? m.exp_avg : m.exp_avg_sq).copy_from(value);
}

AdamW::AdamW(std::vector<Tensor> params, AdamOptions options)
    : Adam(std::move(params), (options.decoupled_weight_decay = true, options)) {}

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (const auto& g : optimizer.param_groups()) base_lrs_.push_back(g.lr);
}

void LRScheduler::step() { apply(++t_); }

void LRScheduler::apply(int64_t t) {
  const double f = factor(t);
  auto& groups = optimizer_.param_groups();
  for (size_t i = 0; i < groups.size() && i < base_lrs_.size(); ++i) {
    groups[i].lr = static_cast<float>(base_lrs_[i] * f);
  }
}

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  HORO_CHECK(step_size > 0, ValueError, "StepLR: step_size must be positive, got ", step_size);
  apply(0);
}

double StepLR::factor(int64_t t) const { return std::pow(gamma_, static_cast<double>(t / step_size_)); }

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double min_factor)
    : LRScheduler(optimizer), t_max_(t_max), min_factor_(min_factor) {
  HORO_CHECK(t_max > 0, ValueError, "CosineAnnealingLR: t_max must be positive, got ", t_max);
  apply(0);
}

double CosineAnnealingLR::factor(int64_t t) const {
  const double progress = static_cast<double>(std::min(t, t_max_)) / static_cast<double>(t_max_);
  return min_factor_ + (1.0 - min_factor_) * (1.0 + std::cos(M_PI * progress)) / 2.0;
}

LinearWarmup::LinearWarmup(Optimizer& optimizer, int64_t warmup_steps, double start_factor,
                           std::unique_ptr<LRScheduler> after)
    : LRScheduler(optimizer), warmup_steps_(warmup_steps), start_factor_(start_factor), after_(std::move(after)) {
  HORO_CHECK(warmup_steps >= 0 && start_factor >= 0.0 && start_factor <= 1.0, ValueError,
             "LinearWarmup: warmup_steps must be non-negative and start_factor in [0, 1]");
  apply(0);
}

double LinearWarmup::factor(int64_t t) const {
  if (t < warmup_steps_) {
    return start_factor_ + (1.0 - start_factor_) * static_cast<double>(t) / static_cast<double>(warmup_steps_);
  }
  return after_ ? after_->factor(t - warmup_steps_) : 1.0;
}

}  // namespace horo::optim
