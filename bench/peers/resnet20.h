// W5's model for the libtorch peers: He et al.'s CIFAR ResNet-20 with torchvision's BasicBlock
// (1x1 convolution + BatchNorm projection where the shape changes) and Kaiming-normal (fan_out)
// convolutions, as models/resnet20.prototxt.
#pragma once

#include <torch/torch.h>

namespace horo_peer {

namespace nn = torch::nn;

// torchvision's BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the input (or its 1x1 conv + BN
// projection when the shape changes), then ReLU.
struct BasicBlockImpl : nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", nn::Conv2d(nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        bn1(register_module("bn1", nn::BatchNorm2d(out))),
        conv2(register_module("conv2", nn::Conv2d(nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
        bn2(register_module("bn2", nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      downsample = register_module("downsample", nn::Sequential(nn::Conv2d(nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                                                                nn::BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = bn2(conv2(torch::relu(bn1(conv1(x)))));
    return torch::relu(y + (downsample.is_empty() ? x : downsample->forward(x)));
  }
  nn::Conv2d conv1;
  nn::BatchNorm2d bn1;
  nn::Conv2d conv2;
  nn::BatchNorm2d bn2;
  nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// W5: He et al.'s CIFAR ResNet-20 with 1x1 projection shortcuts, Kaiming-normal (fan_out) convolutions.
inline nn::Sequential make_resnet20(int64_t in_channels, int64_t classes) {
  nn::Sequential model(nn::Conv2d(nn::Conv2dOptions(in_channels, 16, 3).padding(1).bias(false)), nn::BatchNorm2d(16),
                       nn::ReLU());
  int64_t in = 16;
  for (int64_t stage = 0; stage < 3; ++stage) {
    const int64_t out = 16 << stage;
    for (int64_t block = 0; block < 3; ++block) {
      model->push_back(BasicBlock(in, out, stage > 0 && block == 0 ? 2 : 1));
      in = out;
    }
  }
  model->push_back(nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions(1)));
  model->push_back(nn::Flatten());
  model->push_back(nn::Linear(64, classes));
  for (auto& m : model->modules(false)) {
    if (auto* conv = m->as<nn::Conv2d>()) nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
  }
  return model;
}

}  // namespace horo_peer
