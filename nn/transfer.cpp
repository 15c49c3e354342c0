#include "nn/transfer.h"

#include <fnmatch.h>

#include <set>

#include "nn/norm.h"

namespace horo::nn {

std::string LoadReport::summary() const {
  auto join = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? std::string("none") : out;
  };
  return detail::concat("loaded ", loaded.size(), " tensors; missing: ", join(missing), "; skipped (unexpected): ",
                        join(unexpected), "; skipped (shape mismatch): ", join(mismatched));
}

LoadReport load_tensors(Module& model, const std::map<std::string, Tensor>& source, bool strict, const std::string& what) {
  auto targets = model.named_parameters();
  const auto buffers = model.named_buffers();
  targets.insert(targets.end(), buffers.begin(), buffers.end());
  LoadReport report;
  std::set<std::string> known;
  for (const auto& [name, tensor] : targets) {
    known.insert(name);
    auto it = source.find(name);
    if (it == source.end()) {
      report.missing.push_back(name);
    } else if (it->second.shape() != tensor.shape() || it->second.dtype() != tensor.dtype()) {
      report.mismatched.push_back(name + ": " + shape_str(tensor.shape()) + " in the model, " + shape_str(it->second.shape()) +
                                  " in " + what);
    }
  }
  for (const auto& [name, tensor] : source) {
    if (!known.count(name)) report.unexpected.push_back(name);
  }
  if (strict && (!report.missing.empty() || !report.unexpected.empty() || !report.mismatched.empty())) {
    throw ValueError(detail::concat(what, " does not match the model: ",
                                    !report.mismatched.empty() ? "shape mismatch " + report.mismatched.front()
                                    : !report.missing.empty() ? "missing tensor '" + report.missing.front() + "'"
                                                              : "unexpected tensor '" + report.unexpected.front() + "'",
                                    " (", report.summary(), ")"));
  }
  for (auto& [name, tensor] : targets) {
    auto it = source.find(name);
    if (it == source.end() || it->second.shape() != tensor.shape() || it->second.dtype() != tensor.dtype()) continue;
    tensor.copy_from(it->second);
    report.loaded.push_back(name);
  }
  return report;
}

namespace {

bool matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0 || name.rfind(pattern, 0) == 0;
}

// Freezes every BatchNorm layer one of whose tensors (parameters or buffers) the pattern matches.
void freeze_batch_norms(Module& module, const std::string& pattern, std::vector<std::string>& frozen) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&module)) {
    bool hit = false;
    for (const auto& [local, tensor] : module.named_parameters()) hit = hit || matches(pattern, tensor.name());
    for (const auto& [local, tensor] : module.named_buffers()) hit = hit || matches(pattern, tensor.name());
    if (hit && !bn->frozen()) {
      bn->set_frozen(true);
      frozen.push_back(module.path());
    }
  }
  for (const auto& [name, child] : module.children()) freeze_batch_norms(*child, pattern, frozen);
}

}  // namespace

std::vector<std::string> freeze(Module& model, const std::string& pattern, std::vector<std::string>* batch_norms) {
  std::vector<std::string> frozen;
  for (auto& [name, tensor] : model.named_parameters()) {
    if (matches(pattern, name)) {
      tensor.set_requires_grad(false);
      frozen.push_back(name);
    }
  }
  std::vector<std::string> norms;
  freeze_batch_norms(model, pattern, norms);
  HORO_CHECK(!frozen.empty() || !norms.empty(), ValueError, "freeze '", pattern, "': no parameter matches (names look like '",
             model.named_parameters().empty() ? std::string("?") : model.named_parameters().front().first, "')");
  if (batch_norms) batch_norms->insert(batch_norms->end(), norms.begin(), norms.end());
  return frozen;
}

namespace {
bool replace_last_linear(Module& module, int64_t classes, std::string& path) {
  const auto& children = module.children();
  for (auto it = children.rbegin(); it != children.rend(); ++it) {
    if (replace_last_linear(*it->second, classes, path)) return true;
    if (auto* linear = dynamic_cast<Linear*>(it->second.get())) {
      const LinearOptions old = linear->options();
      path = it->second->path();
      module.replace_child(it->first, std::make_shared<Linear>(LinearOptions{.in = old.in, .out = classes, .bias = old.bias}));
      return true;
    }
  }
  return false;
}
}  // namespace

std::string replace_head(Module& model, int64_t classes) {
  HORO_CHECK(classes > 0, ValueError, "replace_head: the class count must be positive, got ", classes);
  std::string path;
  HORO_CHECK(replace_last_linear(model, classes, path), ValueError, "replace_head: the model has no Linear layer");
  return path;
}

}  // namespace horo::nn
