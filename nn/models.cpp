#include "nn/models.h"

#include "nn/builtin_models.h"
#include "nn/spec.h"
#include "nn/transfer.h"

namespace horo::nn {

// The reference models are the texts in models/*.prototxt; a class count other than 10 replaces the head.
std::shared_ptr<Sequential> make_cnn(int64_t classes) { return make_model("cnn", classes); }

std::shared_ptr<Sequential> make_mlp(int64_t classes) { return make_model("mlp", classes); }

std::shared_ptr<Sequential> make_model(const std::string& name, int64_t classes) {
  HORO_CHECK(name == "cnn" || name == "mlp", ValueError, "model '", name, "': expected 'cnn' (W1) or 'mlp' (W2)");
  auto model = build_model(name).model;
  if (classes != 10) replace_head(*model, classes);
  return model;
}

const std::string& builtin_model_text(const std::string& name) {
  const auto& texts = builtin_model_texts();
  auto it = texts.find(name);
  HORO_CHECK(it != texts.end(), ValueError, "model '", name, "': not a built-in model (cnn, mlp) nor a .prototxt path");
  return it->second;
}

}  // namespace horo::nn
