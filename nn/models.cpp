#include "nn/models.h"

namespace horo::nn {

std::shared_ptr<Sequential> make_cnn(int64_t classes) {
  auto features = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Conv2d>(Conv2dOptions{.in = 1, .out = 32, .kernel = 3}), std::make_shared<ReLU>(),
      std::make_shared<MaxPool2d>(Pool2dOptions{.kernel = 2}),
      std::make_shared<Conv2d>(Conv2dOptions{.in = 32, .out = 64, .kernel = 3}), std::make_shared<ReLU>(),
      std::make_shared<MaxPool2d>(Pool2dOptions{.kernel = 2}), std::make_shared<Dropout>(0.25f)});
  auto classifier = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Flatten>(), std::make_shared<Linear>(LinearOptions{.in = 1600, .out = 128}),
      std::make_shared<ReLU>(), std::make_shared<Dropout>(0.5f),
      std::make_shared<Linear>(LinearOptions{.in = 128, .out = classes})});
  auto model = std::make_shared<Sequential>();
  model->add("features", features).add("classifier", classifier);
  return model;
}

std::shared_ptr<Sequential> make_mlp(int64_t classes) {
  auto features = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Flatten>(), std::make_shared<Linear>(LinearOptions{.in = 784, .out = 256}),
      std::make_shared<ReLU>(), std::make_shared<Linear>(LinearOptions{.in = 256, .out = 128}),
      std::make_shared<ReLU>()});
  auto classifier = std::make_shared<Sequential>(std::initializer_list<std::shared_ptr<Module>>{
      std::make_shared<Linear>(LinearOptions{.in = 128, .out = classes})});
  auto model = std::make_shared<Sequential>();
  model->add("features", features).add("classifier", classifier);
  return model;
}

std::shared_ptr<Sequential> make_model(const std::string& name, int64_t classes) {
  if (name == "cnn") return make_cnn(classes);
  if (name == "mlp") return make_mlp(classes);
  throw ValueError(detail::concat("model '", name, "': expected 'cnn' (W1) or 'mlp' (W2)"));
}

}  // namespace horo::nn
