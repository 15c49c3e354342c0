// Define-by-run reverse-mode autograd. Each differentiable op that sees an input requiring a gradient
// records a Node on its output; backward() walks the recorded graph from the output in reverse
// topological order and leaves the sums of gradients in the leaves' grad().
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace horo::autograd {

class Node {
 public:
  virtual ~Node() = default;
  // Gradients for each input from the gradient of the output; undefined where none is needed.
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  // Frees what the forward pass saved, once backward has used it.
  virtual void release() {}
  // Whether input i needs a gradient (someone upstream requires one).
  bool needs_input_grad(size_t i) const { return i < next.size() && next[i] != nullptr; }

  std::vector<std::shared_ptr<Node>> next;  // per input: where its gradient goes (null: nowhere)
};

// An op's backward as a function of the output gradient; saved tensors live in the lambda's captures.
class FunctionNode : public Node {
 public:
  using Backward = std::function<std::vector<Tensor>(const Tensor& grad_output, const Node& node)>;
  FunctionNode(std::string name, Backward backward) : name_(std::move(name)), backward_(std::move(backward)) {}
  std::vector<Tensor> apply(const Tensor& grad_output) override;
  std::string name() const override { return name_; }
  void release() override { backward_ = nullptr; }

 private:
  std::string name_;
  Backward backward_;
};

// Whether ops record the graph now (false inside a NoGradGuard).
bool grad_enabled();

// Turns recording off for its lifetime, as torch.no_grad(): for evaluation and optimizer steps.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when recording is on and some input requires a gradient.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Records `output` as produced by an op with the given inputs: attaches a node built from name and
// backward, linked to each input's producer (or its leaf accumulator). Returns output.
Tensor record(Tensor output, std::initializer_list<const Tensor*> inputs, std::string name,
              FunctionNode::Backward backward);
Tensor record(Tensor output, const std::vector<const Tensor*>& inputs, std::string name,
              FunctionNode::Backward backward);

// The tensor as a saved value: same data, no history, so a node never owns its own output.
inline Tensor saved(const Tensor& t) { return t.defined() ? t.detach() : t; }

// Runs reverse mode from root with the given output gradient (ones for a scalar when undefined).
void backward(const Tensor& root, const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace horo::autograd
