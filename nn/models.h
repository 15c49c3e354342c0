// The built-in models (models/*.prototxt, compiled in), as PyTorch would write them:
//   cnn      W1: Conv(1->32,3) ReLU MaxPool(2) Conv(32->64,3) ReLU MaxPool(2) Dropout(0.25) | Flatten
//            Linear(1600->128) ReLU Dropout(0.5) Linear(128->classes); a `features` trunk and a
//            `classifier` head, so that transfer learning can freeze `features.*` and replace the head.
//   mlp      W2: Flatten Linear(784->256) ReLU Linear(256->128) ReLU | Linear(128->classes).
//   resnet20 W5: He et al.'s CIFAR ResNet-20 (16/32/64 channels, 3 basic blocks a stage, BatchNorm,
//            1x1 projection shortcuts, global average pooling), for 28x28 or 32x32 images.
//   resnet18 torchvision's ResNet-18 with its parameter names (conv1, bn1, layer1.0.conv1, ..., fc).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace horo::nn {

// The names of the built-in models.
std::vector<std::string> builtin_model_names();
// A built-in model with `classes` outputs for samples of `sample` shape ([C, H, W]; empty: the
// specification's own, e.g. [1, 28, 28]); throws ValueError naming the choices for an unknown name.
std::shared_ptr<Module> make_model(const std::string& name, int64_t classes = 10, const Shape& sample = {});
std::shared_ptr<Module> make_cnn(int64_t classes = 10);
std::shared_ptr<Module> make_mlp(int64_t classes = 10);

}  // namespace horo::nn
