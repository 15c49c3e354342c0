// The reference models (W1 `cnn`, W2 `mlp`), as PyTorch would write them: a `features` trunk and a
// `classifier` head, so that transfer learning can freeze `features.*` and replace the head.
#pragma once

#include <memory>
#include <string>

#include "nn/layers.h"

namespace horo::nn {

// W1: Conv(1->32,3) ReLU MaxPool(2) Conv(32->64,3) ReLU MaxPool(2) Dropout(0.25) | Flatten
// Linear(1600->128) ReLU Dropout(0.5) Linear(128->classes). Input [N, 1, 28, 28].
std::shared_ptr<Sequential> make_cnn(int64_t classes = 10);
// W2: Flatten Linear(784->256) ReLU Linear(256->128) ReLU | Linear(128->classes). Input [N, 1, 28, 28].
std::shared_ptr<Sequential> make_mlp(int64_t classes = 10);
// "cnn" or "mlp"; throws ValueError naming the choices otherwise.
std::shared_ptr<Sequential> make_model(const std::string& name, int64_t classes = 10);

}  // namespace horo::nn
