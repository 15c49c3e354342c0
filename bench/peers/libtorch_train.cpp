// The libtorch peer of horo-bench-train: the same W1/W2 model, Adam step, batch and thread count,
// on fixed random batches; prints `images_per_s=R` (with --inference: eval-mode forward passes).
#include <torch/torch.h>

#include <cstdio>

#include "bench/train_args.h"

namespace {

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
nn::Sequential make_resnet20(int64_t in_channels, int64_t classes) {
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

nn::Sequential make_model(const std::string& name) {
  if (name == "resnet20") return make_resnet20(1, 10);
  if (name == "cnn") {
    return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3)), nn::ReLU(), nn::MaxPool2d(2),
                          nn::Conv2d(nn::Conv2dOptions(32, 64, 3)), nn::ReLU(), nn::MaxPool2d(2), nn::Dropout(0.25),
                          nn::Flatten(), nn::Linear(1600, 128), nn::ReLU(), nn::Dropout(0.5), nn::Linear(128, 10));
  }
  return nn::Sequential(nn::Flatten(), nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 128), nn::ReLU(),
                        nn::Linear(128, 10));
}

}  // namespace

int main(int argc, char** argv) {
  const TrainBenchArgs args = parse_train_bench_args(argc, argv);
  torch::set_num_threads(static_cast<int>(args.threads));
  torch::manual_seed(1);
  auto model = make_model(args.model);
  model->train();
  // W1/W2: Adam 1e-3; W5: the ResNet recipe, SGD with Nesterov momentum 0.9 and weight decay 5e-4.
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  if (args.model == "resnet20") {
    optimizer = std::make_unique<torch::optim::SGD>(
        model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9).nesterov(true).weight_decay(5e-4));
  } else {
    optimizer = std::make_unique<torch::optim::Adam>(model->parameters(), torch::optim::AdamOptions(1e-3));
  }
  const auto images = torch::randn({args.batch, 1, 28, 28});
  const auto labels = torch::arange(args.batch, torch::kLong).mul(7).remainder(10);
  if (args.inference) {
    model->eval();
    torch::NoGradGuard no_grad;
    const auto [seconds, median_ms] = time_steps(args, [&] { return model->forward(images).data_ptr<float>()[0]; });
    std::printf("framework=libtorch model=%s mode=inference batch=%ld threads=%ld steps=%ld latency_ms_p50=%.4f "
                "images_per_s=%.1f\n", args.model.c_str(), args.batch, args.threads, args.steps, median_ms,
                static_cast<double>(args.batch * args.steps) / seconds);
    return 0;
  }
  float last = 0.0f;
  auto step = [&] {
    optimizer->zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(images), labels);
    loss.backward();
    optimizer->step();
    last = loss.item<float>();
  };
  const auto [seconds, median_ms] = time_steps(args, step);
  std::printf("framework=libtorch model=%s batch=%ld threads=%ld steps=%ld loss=%.4f step_ms_p50=%.3f images_per_s=%.1f\n",
              args.model.c_str(), args.batch, args.threads, args.steps, static_cast<double>(last), median_ms,
              static_cast<double>(args.batch * args.steps) / seconds);
  return 0;
}
