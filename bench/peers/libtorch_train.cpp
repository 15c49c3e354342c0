// The libtorch peer of horo-bench-train: the same W1/W2 model, Adam step, batch and thread count,
// on fixed random batches; prints `images_per_s=R` (with --inference: eval-mode forward passes).
#include <torch/torch.h>

#include <cstdio>

#include "bench/peers/resnet20.h"
#include "bench/train_args.h"

namespace {

namespace nn = torch::nn;

nn::Sequential make_model(const std::string& name) {
  if (name == "resnet20") return horo_peer::make_resnet20(1, 10);
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
