#include "nn/autograd.h"

#include <unordered_map>

#include "tensor/ops.h"

namespace horo::autograd {
namespace {

thread_local bool t_grad_enabled = true;

// A leaf's gradient sink: adds what arrives to the leaf's grad(), in place once it exists, so the
// buffer is reused from step to step (and zero_grad() zeroes it rather than dropping it).
class AccumulateGrad : public Node {
 public:
  explicit AccumulateGrad(std::weak_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}
  std::vector<Tensor> apply(const Tensor& grad) override {
    if (auto leaf = leaf_.lock()) {
      Tensor& target = leaf->grad;
      if (!target.defined()) {
        target = grad.clone();
      } else {
        ops::accumulate(target, grad);
      }
      for (const auto& hook : leaf->grad_ready_hooks) hook();
    }
    return {};
  }
  std::string name() const override { return "AccumulateGrad"; }

 private:
  std::weak_ptr<TensorImpl> leaf_;
};

// Where gradients for t go: its producer, its leaf accumulator, or nowhere.
std::shared_ptr<Node> gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.requires_grad()) return nullptr;
  TensorImpl* impl = t.impl();
  if (impl->grad_fn) return impl->grad_fn;
  if (!impl->accumulator) impl->accumulator = std::make_shared<AccumulateGrad>(t.impl_ptr());
  return impl->accumulator;
}

}  // namespace

std::vector<Tensor> FunctionNode::apply(const Tensor& grad_output) {
  HORO_CHECK(backward_ != nullptr, ValueError, "backward through ", name_,
             " a second time: its saved tensors were freed after the first backward (use retain_graph)");
  return backward_(grad_output, *this);
}

bool grad_enabled() { return t_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = previous_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs) {
    if (t && t->defined() && t->requires_grad()) return true;
  }
  return false;
}

Tensor record(Tensor output, std::initializer_list<const Tensor*> inputs, std::string name,
              FunctionNode::Backward backward) {
  return record(std::move(output), std::vector<const Tensor*>(inputs), std::move(name), std::move(backward));
}

Tensor record(Tensor output, const std::vector<const Tensor*>& inputs, std::string name,
              FunctionNode::Backward backward) {
  auto node = std::make_shared<FunctionNode>(std::move(name), std::move(backward));
  node->next.reserve(inputs.size());
  for (const Tensor* t : inputs) node->next.push_back(t ? gradient_edge(*t) : nullptr);
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  HORO_CHECK(root.defined(), ValueError, "backward() on an undefined tensor");
  HORO_CHECK(root.requires_grad(), ValueError, "backward() on ", root.describe(),
             ", which does not require a gradient: no parameter with requires_grad reached it "
             "(or it was computed under NoGradGuard)");
  Tensor seed = grad_output;
  if (!seed.defined()) {
    HORO_CHECK(root.numel() == 1, ShapeError, "backward() without a gradient needs a one-element tensor, got ",
               root.describe());
    seed = Tensor::ones(root.shape(), root.device());
  }
  check_shape(seed, root.shape(), "backward(): gradient for " + root.describe());
  std::shared_ptr<Node> start = gradient_edge(root);

  // Count, for each node, how many edges lead into it, so a node runs only after all its consumers.
  std::unordered_map<Node*, int> pending;
  std::vector<Node*> stack{start.get()};
  pending[start.get()] = 0;
  while (!stack.empty()) {
    Node* node = stack.back();
    stack.pop_back();
    for (const auto& next : node->next) {
      if (!next) continue;
      auto [it, inserted] = pending.try_emplace(next.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(next.get());
    }
  }

  std::unordered_map<Node*, Tensor> incoming{{start.get(), seed}};
  std::vector<Node*> ready{start.get()};
  while (!ready.empty()) {
    Node* node = ready.back();
    ready.pop_back();
    // A node whose consumers all sent nothing still runs its bookkeeping so that its own inputs,
    // which may get gradients along other paths, are released in turn.
    std::vector<Tensor> input_grads;
    if (auto it = incoming.find(node); it != incoming.end()) {
      Tensor grad = std::move(it->second);
      incoming.erase(it);
      input_grads = node->apply(grad);
    }
    for (size_t i = 0; i < node->next.size(); ++i) {
      Node* next = node->next[i].get();
      if (!next) continue;
      if (i < input_grads.size() && input_grads[i].defined()) {
        auto [it, inserted] = incoming.try_emplace(next, input_grads[i]);
        if (!inserted) {
          // Gradients meeting along several paths (a residual block's input) are summed in place when
          // nothing else holds the first one's memory, else into a new tensor.
          Tensor& sum = it->second;
          const bool sole_owner = sum.impl_ptr().use_count() == 1 && sum.impl()->storage.use_count() == 1;
          if (sole_owner && sum.shape() == input_grads[i].shape()) ops::accumulate(sum, input_grads[i]);
          else sum = ops::binary(kernels::Binary::Add, sum, input_grads[i]);
        }
      }
      if (--pending[next] == 0) ready.push_back(next);
    }
    if (!retain_graph) node->release();
  }
}

}  // namespace horo::autograd

namespace horo {
void Tensor::backward(const Tensor& grad_output) const { autograd::backward(*this, grad_output); }
}  // namespace horo
