// nn::Module: a tree of layers with named parameters and buffers, as torch.nn.Module. Names are
// dotted paths from the root (`features.0.weight`), and each tensor carries its name for errors.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace horo::nn {

class Module : public std::enable_shared_from_this<Module> {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // One-tensor forward; modules with other signatures add their own methods.
  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }
  // How many inputs the layer takes in a Graph: 1 for most; layers that join branches (Add,
  // Concat) take 2 or more (kAnyInputs).
  static constexpr int kAnyInputs = -1;
  virtual int input_count() const { return 1; }
  // The layer applied to several inputs (Graph calls this); by default, forward() of the only one.
  virtual Tensor forward_many(const std::vector<Tensor>& inputs);
  // The class name shown in summaries and errors ("Conv2d").
  virtual std::string type_name() const = 0;
  // One line of options, e.g. "in=1, out=32, kernel=3" (empty when there are none).
  virtual std::string extra_repr() const { return ""; }

  using NamedTensor = std::pair<std::string, Tensor>;
  std::vector<NamedTensor> named_parameters() const;  // depth first, in registration order
  std::vector<Tensor> parameters() const;
  std::vector<NamedTensor> named_buffers() const;
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const { return children_; }
  // This module's path from the root ("" for the root, "features.0" below it).
  const std::string& path() const { return path_; }
  // "Conv2d 'features.0'", for error messages.
  std::string where() const;
  // The parameter with this dotted name; throws ValueError listing the names when absent.
  Tensor parameter(const std::string& dotted_name) const;
  // The sub-module at this dotted path; throws ValueError when absent.
  std::shared_ptr<Module> submodule(const std::string& dotted_path) const;
  // Replaces the child at `name` (e.g. a new head) and renames its tensors under this module.
  void replace_child(const std::string& name, std::shared_ptr<Module> child);

  // Moves every parameter and buffer to `device` in place (names, requires_grad and optimizer
  // references are kept).
  void to(Device device);
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();
  // Sets requires_grad on every parameter (freezing or unfreezing the whole tree).
  void set_requires_grad(bool on);
  int64_t parameter_count() const;
  // A printable summary: one line per module with its options and parameter count.
  std::string summary() const;

 protected:
  Tensor register_parameter(const std::string& name, Tensor tensor, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor tensor);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    adopt(name, module);
    return module;
  }

 private:
  void adopt(const std::string& name, std::shared_ptr<Module> module);
  void set_path(const std::string& path);
  void collect(const std::string& prefix, bool buffers, std::vector<NamedTensor>& out) const;
  void summarize(const std::string& name, int depth, std::string& out) const;

  std::vector<NamedTensor> parameters_;
  std::vector<NamedTensor> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  std::unordered_set<std::string> child_names_;  // registering n children costs O(n), not O(n^2)
  std::string path_;
  bool training_ = true;
};

// When on, Sequential checks every layer's output for NaN and infinity and names the first layer
// that produced one (a cost of one pass over each activation; off by default).
void set_detect_anomaly(bool on);
bool detect_anomaly();

}  // namespace horo::nn
