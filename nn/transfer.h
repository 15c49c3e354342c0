// Transfer learning on a Module: load tensors by name (strictly or not, with a report), freeze by
// name pattern, replace the classification head.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace horo::nn {

struct LoadReport {
  std::vector<std::string> loaded;     // copied into the model
  std::vector<std::string> missing;    // in the model, not in the source
  std::vector<std::string> unexpected; // in the source, not in the model (skipped)
  std::vector<std::string> mismatched; // in both, shapes differ (skipped): "name: [a] in the model, [b] in the source"
  std::string summary() const;
};

// Copies tensors by dotted name from `source` into the model's parameters and buffers. With strict,
// anything missing, unexpected or mismatched is an error naming it (and nothing is changed).
LoadReport load_tensors(Module& model, const std::map<std::string, Tensor>& source, bool strict, const std::string& what);

// Turns requires_grad off for every parameter whose name matches the glob (`features.*`) or starts
// with the prefix (`features.`); returns the names frozen. Throws when nothing matches. A BatchNorm
// layer with a matching tensor is frozen too: it normalises by its running statistics and leaves
// them unchanged, even in train() (their paths are added to *batch_norms when given).
std::vector<std::string> freeze(Module& model, const std::string& pattern, std::vector<std::string>* batch_norms = nullptr);

// Replaces the last Linear layer of the model with a fresh one with `classes` outputs (PyTorch's
// initialisation); returns its dotted path. A C++ module that calls its head through a member of its
// own must set that member instead and call Module::replace_child (examples/fine_tune.cpp).
std::string replace_head(Module& model, int64_t classes);

}  // namespace horo::nn
