#include "nn/module.h"

#include <sstream>

#include "nn/functional.h"

namespace horo::nn {
namespace {
bool g_detect_anomaly = false;

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

// '.' joins the dotted names; '/' separates HDF5 paths in checkpoints, so a layer named "a/b" could
// train but never be saved. Refused when registered, as PyTorch refuses '.'.
void check_local_name(const std::string& name, const char* what) {
  HORO_CHECK(!name.empty() && name.find_first_of("./") == std::string::npos, ValueError, what, " name '", name,
             "': must be non-empty and contain no '.' or '/'");
}
}  // namespace

void set_detect_anomaly(bool on) { g_detect_anomaly = on; }
bool detect_anomaly() { return g_detect_anomaly; }

Tensor Module::forward_many(const std::vector<Tensor>& inputs) {
  HORO_CHECK(inputs.size() == 1, ValueError, where(), ": takes one input, got ", inputs.size());
  return forward(inputs.front());
}

std::string Module::where() const {
  return type_name() + (path_.empty() ? std::string() : " '" + path_ + "'");
}

Tensor Module::register_parameter(const std::string& name, Tensor tensor, bool requires_grad) {
  check_local_name(name, "parameter");
  check_dtype(tensor, DType::Float32, "parameter '" + name + "'");
  tensor.set_requires_grad(requires_grad);
  tensor.set_name(join(path_, name));
  parameters_.emplace_back(name, std::move(tensor));
  return parameters_.back().second;
}

Tensor Module::register_buffer(const std::string& name, Tensor tensor) {
  check_local_name(name, "buffer");
  tensor.set_name(join(path_, name));
  buffers_.emplace_back(name, std::move(tensor));
  return buffers_.back().second;
}

void Module::adopt(const std::string& name, std::shared_ptr<Module> module) {
  check_local_name(name, "module");
  HORO_CHECK(module != nullptr, ValueError, "register_module '", name, "': null module");
  HORO_CHECK(child_names_.insert(name).second, ValueError, where(), ": a child named '", name, "' is already registered");
  module->set_path(join(path_, name));
  module->training_ = training_;
  children_.emplace_back(name, std::move(module));
}

void Module::replace_child(const std::string& name, std::shared_ptr<Module> child) {
  HORO_CHECK(child != nullptr, ValueError, where(), ": replace_child '", name, "' with a null module");
  for (auto& [existing, module] : children_) {
    if (existing == name) {
      child->set_path(join(path_, name));
      child->training_ = training_;
      module = std::move(child);
      return;
    }
  }
  throw ValueError(detail::concat(where(), ": no child named '", name, "' to replace"));
}

void Module::set_path(const std::string& path) {
  path_ = path;
  for (auto& [name, tensor] : parameters_) tensor.set_name(join(path, name));
  for (auto& [name, tensor] : buffers_) tensor.set_name(join(path, name));
  for (auto& [name, child] : children_) child->set_path(join(path, name));
}

void Module::collect(const std::string& prefix, bool buffers, std::vector<NamedTensor>& out) const {
  for (const auto& [name, tensor] : buffers ? buffers_ : parameters_) out.emplace_back(join(prefix, name), tensor);
  for (const auto& [name, child] : children_) child->collect(join(prefix, name), buffers, out);
}

std::vector<Module::NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out;
  collect("", false, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

std::vector<Module::NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  collect("", true, out);
  return out;
}

Tensor Module::parameter(const std::string& dotted_name) const {
  std::string known;
  for (const auto& [name, tensor] : named_parameters()) {
    if (name == dotted_name) return tensor;
    known += (known.empty() ? "" : ", ") + name;
  }
  throw ValueError(detail::concat(where(), ": no parameter named '", dotted_name, "' (has: ", known, ")"));
}

std::shared_ptr<Module> Module::submodule(const std::string& dotted_path) const {
  const size_t dot = dotted_path.find('.');
  const std::string head = dotted_path.substr(0, dot);
  for (const auto& [name, child] : children_) {
    if (name == head) return dot == std::string::npos ? child : child->submodule(dotted_path.substr(dot + 1));
  }
  throw ValueError(detail::concat(where().empty() ? "model" : where(), ": no sub-module named '", head, "'"));
}

void Module::to(Device device) {
  for (auto& [name, tensor] : parameters_) tensor.move_to(device);
  for (auto& [name, tensor] : buffers_) tensor.move_to(device);
  for (auto& [name, child] : children_) child->to(device);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, tensor] : named_parameters()) {
    Tensor g = tensor.grad();
    if (g.defined()) g.fill(0.0f);
  }
}

void Module::set_requires_grad(bool on) {
  for (auto& [name, tensor] : named_parameters()) tensor.set_requires_grad(on);
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, tensor] : named_parameters()) n += tensor.numel();
  return n;
}

void Module::summarize(const std::string& name, int depth, std::string& out) const {
  std::ostringstream line;
  line << std::string(static_cast<size_t>(depth) * 2, ' ') << (name.empty() ? "" : "(" + name + "): ") << type_name();
  const std::string extra = extra_repr();
  if (!extra.empty()) line << "(" << extra << ")";
  int64_t own = 0;
  for (const auto& [n, t] : parameters_) own += t.numel();
  if (own) line << "  params=" << own;
  out += line.str() + "\n";
  for (const auto& [child_name, child] : children_) child->summarize(child_name, depth + 1, out);
}

std::string Module::summary() const {
  std::string out;
  summarize("", 0, out);
  out += "total parameters: " + std::to_string(parameter_count()) + "\n";
  return out;
}

}  // namespace horo::nn
