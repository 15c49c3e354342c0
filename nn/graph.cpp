#include "nn/graph.h"

#include <cstdlib>

#include "nn/norm.h"

namespace horo::nn {

Tensor Add::forward(const Tensor& input) {
  throw ValueError(detail::concat(where(), ": takes two inputs (in a Graph), got one ", input.describe()));
}

Tensor Add::forward_many(const std::vector<Tensor>& inputs) {
  HORO_CHECK(inputs.size() == 2, ValueError, where(), ": takes two inputs, got ", inputs.size());
  HORO_CHECK(inputs[0].shape() == inputs[1].shape(), ShapeError, where(), ": cannot add ", inputs[0].describe(), " and ",
             inputs[1].describe(), " (the shapes must be equal)");
  return functional::add(inputs[0], inputs[1]);
}

Tensor Concat::forward(const Tensor& input) {
  throw ValueError(detail::concat(where(), ": takes two or more inputs (in a Graph), got one ", input.describe()));
}

Tensor Concat::forward_many(const std::vector<Tensor>& inputs) {
  HORO_CHECK(inputs.size() >= 2, ValueError, where(), ": takes two or more inputs, got ", inputs.size());
  try {
    return functional::cat(inputs, dim_);
  } catch (const ShapeError& e) {
    throw ShapeError(where() + ": " + e.what());
  }
}

std::string Concat::extra_repr() const { return detail::concat("dim=", dim_); }

Graph& Graph::add(const std::string& name, std::shared_ptr<Module> module, const std::vector<std::string>& inputs) {
  HORO_CHECK(module != nullptr, ValueError, where(), ": layer '", name, "' is a null module");
  HORO_CHECK(name != kInput, ValueError, where(), ": a layer may not be named '", kInput,
             "' (the name of the graph's input)");
  HORO_CHECK(!index_.count(name), ValueError, where(), ": a layer named '", name, "' is already in the graph");
  Node node;
  if (inputs.empty()) {
    node.inputs.push_back(static_cast<int>(nodes_.size()) - 1);  // the previous layer, or the input (-1)
  } else {
    for (const std::string& in : inputs) {
      if (in == kInput) {
        node.inputs.push_back(-1);
        continue;
      }
      auto it = index_.find(in);
      HORO_CHECK(it != index_.end(), ValueError, where(), ": layer '", name, "' reads '", in,
                 "', which is not an earlier layer of the graph (nor '", kInput, "')");
      node.inputs.push_back(it->second);
    }
  }
  const int wanted = module->input_count();
  const int got = static_cast<int>(node.inputs.size());
  HORO_CHECK(wanted == Module::kAnyInputs ? got >= 2 : got == wanted, ValueError, where(), ": layer '", name, "' (",
             module->type_name(), ") takes ", wanted == Module::kAnyInputs ? std::string("two or more") : std::to_string(wanted),
             " input", wanted == 1 ? "" : "s", ", got ", got);
  register_module(name, std::move(module));
  for (int k : node.inputs) {
    if (k < 0) {
      ++input_readers_;
    } else {
      ++nodes_[static_cast<size_t>(k)].readers;
      nodes_[static_cast<size_t>(k)].reader = static_cast<int>(nodes_.size());
    }
  }
  index_[name] = static_cast<int>(nodes_.size());
  nodes_.push_back(std::move(node));
  return *this;
}

std::string Graph::name_of(int index) const {
  return index < 0 ? std::string(kInput) : children()[static_cast<size_t>(index)].first;
}

std::vector<std::string> Graph::inputs_of(const std::string& layer) const {
  auto it = index_.find(layer);
  HORO_CHECK(it != index_.end(), ValueError, where(), ": no layer named '", layer, "'");
  std::vector<std::string> names;
  for (int k : nodes_[static_cast<size_t>(it->second)].inputs) names.push_back(name_of(k));
  return names;
}

void Graph::check() const {
  HORO_CHECK(!nodes_.empty(), ValueError, where(), ": the graph has no layers");
  HORO_CHECK(input_readers_ > 0, ValueError, where(), ": no layer reads the graph's input ('", kInput, "')");
  for (size_t i = 0; i + 1 < nodes_.size(); ++i) {
    HORO_CHECK(nodes_[i].readers > 0, ValueError, where(), ": the output of layer '", name_of(static_cast<int>(i)),
               "' is never used (only the last layer's output leaves the graph)");
  }
}

std::string Graph::extra_repr() const {
  std::string out;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    const Node& n = nodes_[i];
    if (n.inputs.size() == 1 && n.inputs[0] == static_cast<int>(i) - 1) continue;  // the default wiring
    if (!out.empty()) out += ", ";
    out += name_of(static_cast<int>(i));
    out += "<-";
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (k) out += "+";
      out += name_of(n.inputs[k]);
    }
  }
  return out;
}

Tensor Graph::forward(const Tensor& input) {
  check();
  const auto& layers = children();
  const size_t n = nodes_.size();
  std::vector<Tensor> values(n);
  std::vector<int> unread(n);
  for (size_t i = 0; i < n; ++i) unread[i] = nodes_[i].readers;
  const bool fuse = fusion::enabled();
  auto value = [&](int k) -> const Tensor& { return k < 0 ? input : values[static_cast<size_t>(k)]; };
  // The next layer reads only layer i's output, and nothing else reads it: a chain link.
  auto chains_on = [&](size_t i) {
    return i + 1 < n && nodes_[i].readers == 1 && nodes_[i + 1].inputs.size() == 1 &&
           nodes_[i + 1].inputs[0] == static_cast<int>(i);
  };
  // The end of a residual block, BatchNorm -> Add -> ReLU in training: the BatchNorm is deferred to the
  // add (its input, and the batch statistics when a convolution gathered them, wait in `pending`)
  // and the three run as one pass.
  struct Pending {
    bool active = false;
    Tensor input, mean, var;
  };
  std::vector<Pending> pending(n);
  auto deferred_batch_norm = [&](size_t i) -> BatchNorm* {
    if (!fuse || i >= n || nodes_[i].readers != 1 || nodes_[i].inputs.size() != 1) return nullptr;
    auto* bn = dynamic_cast<BatchNorm*>(layers[i].second.get());
    if (!bn || bn->uses_running_stats()) return nullptr;
    const int k = nodes_[i].reader;
    const bool add_relu = k > 0 && dynamic_cast<Add*>(layers[static_cast<size_t>(k)].second.get()) && chains_on(static_cast<size_t>(k)) &&
                          dynamic_cast<ReLU*>(layers[static_cast<size_t>(k) + 1].second.get());
    return add_relu ? bn : nullptr;
  };
  size_t i = 0;
  while (i < n) {
    const Node& node = nodes_[i];
    Module* module = layers[i].second.get();
    size_t ran = 1;
    Tensor out;
    bool produced = true;
    if (node.inputs.size() == 1 && deferred_batch_norm(i)) {
      pending[i] = {true, value(node.inputs[0]), Tensor(), Tensor()};
      produced = false;
    } else if (node.inputs.size() == 1 && chains_on(i) && deferred_batch_norm(i + 1) && dynamic_cast<Conv2d*>(module)) {
      // Conv2d -> (deferred) BatchNorm: the convolution gathers the batch statistics as it writes (CPU).
      auto* conv = static_cast<Conv2d*>(module);
      auto* bn = static_cast<BatchNorm*>(layers[i + 1].second.get());
      const Tensor& x = value(node.inputs[0]);
      if (!x.device().is_cuda() && x.dim() == 4 && x.size(1) == conv->options().in) {
        const Tensor shift = bn->running_mean.defined() ? bn->running_mean : Tensor::zeros({conv->options().out});
        auto [y, mean, var] = functional::conv2d_batch_stats(x, conv->weight, conv->bias, conv->params(), shift);
        pending[i + 1] = {true, y, mean, var};
      } else {
        pending[i + 1] = {true, conv->forward(x), Tensor(), Tensor()};
      }
      produced = false;
      ran = 2;
    } else if (node.inputs.size() == 1) {
      std::vector<Module*> chain{module};
      for (size_t j = i; chain.size() < 3 && chains_on(j); ++j) chain.push_back(layers[j + 1].second.get());
      std::tie(out, ran) = fuse ? fusion::run_chain(chain, value(node.inputs[0])) : std::pair{module->forward(value(node.inputs[0])), size_t{1}};
    } else {
      std::vector<Tensor> inputs;
      int deferred = -1;  // the input whose BatchNorm waits to run fused with this add
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        const int from = node.inputs[k];
        if (from >= 0 && pending[static_cast<size_t>(from)].active) {
          Pending& p = pending[static_cast<size_t>(from)];
          auto* bn = static_cast<BatchNorm*>(layers[static_cast<size_t>(from)].second.get());
          if (deferred < 0) {
            deferred = static_cast<int>(k);
            inputs.push_back(Tensor());
            continue;
          }
          inputs.push_back(bn->forward_with_stats(p.input, false, p.mean, p.var));  // a second one runs alone
          p.active = false;
          continue;
        }
        inputs.push_back(value(from));
      }
      if (deferred >= 0) {
        // BatchNorm, the residual add and its ReLU in one pass.
        const size_t from = static_cast<size_t>(node.inputs[static_cast<size_t>(deferred)]);
        Pending& p = pending[from];
        auto* bn = static_cast<BatchNorm*>(layers[from].second.get());
        out = bn->forward_residual(p.input, inputs[1 - static_cast<size_t>(deferred)], true, p.mean, p.var);
        p = Pending{};
        ran = 2;
      } else if (fuse && dynamic_cast<Add*>(module) && chains_on(i) && dynamic_cast<ReLU*>(layers[i + 1].second.get()) &&
                 inputs[0].shape() == inputs[1].shape()) {
        // The residual join and the ReLU after it in one pass.
        out = functional::add_relu(inputs[0], inputs[1]);
        ran = 2;
      } else {
        out = module->forward_many(inputs);
      }
    }
    const size_t last = i + ran - 1;
    if (produced) {
      if (detect_anomaly()) functional::check_finite(out, "output of " + layers[last].second->where());
      values[last] = std::move(out);
    }
    // Outputs nobody will read again are freed at once (a deep graph keeps only its live branches).
    for (int k : node.inputs) {
      if (k >= 0 && --unread[static_cast<size_t>(k)] == 0) values[static_cast<size_t>(k)] = Tensor();
    }
    i += ran;
  }
  return values[n - 1];
}

int zero_init_residual(Module& model) {
  int changed = 0;
  if (auto* graph = dynamic_cast<Graph*>(&model)) {
    for (const auto& [name, child] : graph->children()) {
      if (!dynamic_cast<Add*>(child.get())) continue;
      const std::string residual = graph->inputs_of(name).front();
      if (residual == Graph::kInput) continue;
      if (auto* bn = dynamic_cast<BatchNorm*>(graph->submodule(residual).get()); bn && bn->weight.defined()) {
        bn->weight.fill(0.0f);
        ++changed;
      }
    }
  }
  for (const auto& [name, child] : model.children()) changed += zero_init_residual(*child);
  return changed;
}

namespace fusion {

bool enabled() {
  static const bool on = [] {
    const char* env = std::getenv("HORO_FUSE");
    return !(env && std::string(env) == "0");
  }();
  return on && !detect_anomaly();  // anomaly mode checks every layer's own output
}

namespace {

// conv then batch norm by running statistics, as one convolution: weight * scale[o] and
// bias * scale[o] + shift[o]. Differentiable in the convolution's weight and bias (a frozen
// BatchNorm under a convolution that still trains); only used when BatchNorm's own parameters
// need no gradient.
Tensor conv_batch_norm_folded(Conv2d& conv, BatchNorm& bn, const Tensor& x) {
  const auto k = ops::batch_norm_coefficients(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.options().eps);
  // As [out, in * kh * kw] times [out, 1]: each row scaled by one value (the fast broadcast).
  const int64_t out = conv.weight.size(0);
  const Tensor weight = functional::reshape(
      functional::mul(functional::reshape(conv.weight, {out, -1}), k.scale.view({out, 1})), conv.weight.shape());
  const Tensor bias = conv.bias.defined() ? functional::add(functional::mul(conv.bias, k.scale), k.shift) : k.shift;
  return conv.forward_with(x, weight, bias);
}

}  // namespace

std::pair<Tensor, size_t> run_chain(const std::vector<Module*>& chain, const Tensor& x) {
  auto* conv = dynamic_cast<Conv2d*>(chain[0]);
  auto* bn = dynamic_cast<BatchNorm*>(chain[0]);
  const bool then_relu = chain.size() > 1 && dynamic_cast<ReLU*>(chain[1]);
  if (conv && chain.size() > 2 && then_relu && !x.device().is_cuda()) {
    if (auto* pool = dynamic_cast<MaxPool2d*>(chain[2])) {
      if (auto fused = conv->forward_relu_max_pool(x, pool->params())) return {*fused, 3};
    }
  }
  if (conv && chain.size() > 1) {
    auto* next = dynamic_cast<BatchNorm*>(chain[1]);
    const bool relu = chain.size() > 2 && dynamic_cast<ReLU*>(chain[2]);
    const size_t ran = relu ? 3 : 2;
    if (next && next->uses_running_stats() && !autograd::any_requires_grad({&next->weight, &next->bias})) {
      const Tensor y = conv_batch_norm_folded(*conv, *next, x);
      return {relu ? functional::relu(y) : y, ran};
    }
    // Training: the BatchNorm's batch statistics gathered while the convolution writes its output.
    if (next && !next->uses_running_stats() && !x.device().is_cuda() && x.dim() == 4 && x.size(1) == conv->options().in) {
      const Tensor shift = next->running_mean.defined() ? next->running_mean : Tensor::zeros({conv->options().out});
      auto [y, mean, var] = functional::conv2d_batch_stats(x, conv->weight, conv->bias, conv->params(), shift);
      return {next->forward_with_stats(y, relu, mean, var), ran};
    }
  }
  if (bn && then_relu) return {bn->forward_relu(x), 2};
  return {chain[0]->forward(x), 1};
}

}  // namespace fusion

}  // namespace horo::nn
