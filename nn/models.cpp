#include "nn/models.h"

#include "nn/builtin_models.h"
#include "nn/spec.h"

namespace horo::nn {

std::vector<std::string> builtin_model_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : builtin_model_texts()) names.push_back(name);
  return names;
}

std::shared_ptr<Module> make_model(const std::string& name, int64_t classes, const Shape& sample) {
  std::string text = builtin_model_text(name);
  if (!sample.empty()) text = with_input_shape(text, sample, name);
  text = with_class_count(text, classes, name);
  return build_model_from_text(text, name).model;
}

std::shared_ptr<Module> make_cnn(int64_t classes) { return make_model("cnn", classes); }

std::shared_ptr<Module> make_mlp(int64_t classes) { return make_model("mlp", classes); }

const std::string& builtin_model_text(const std::string& name) {
  const auto& texts = builtin_model_texts();
  auto it = texts.find(name);
  if (it == texts.end()) {
    std::string known;
    for (const auto& [n, t] : texts) known += (known.empty() ? "" : ", ") + n;
    throw ValueError(detail::concat("model '", name, "': not a built-in model (", known, ") nor a .prototxt path"));
  }
  return it->second;
}

}  // namespace horo::nn
