// Training throughput of W1/W2/W5 in horo on fixed random batches: prints `images_per_s=R`; with
// --inference, eval-mode forward passes and their median latency.
// The peer bench/peers/libtorch_train.cpp does the same steps in libtorch.
#include <cstdio>

#include "bench/train_args.h"
#include "horo.h"
#include "kernels/device.h"

int main(int argc, char** argv) {
  const TrainBenchArgs args = parse_train_bench_args(argc, argv);
  try {
    horo::set_num_threads(static_cast<int>(args.threads));
    horo::manual_seed(1);
    const horo::Device device = horo::Device::parse(args.device);
    auto model = horo::nn::make_model(args.model);
    model->to(device);
    // W1/W2: Adam 1e-3; W5: the ResNet recipe, SGD with Nesterov momentum 0.9 and weight decay 5e-4.
    std::unique_ptr<horo::optim::Optimizer> optimizer;
    if (args.model == "resnet20") {
      optimizer = std::make_unique<horo::optim::SGD>(
          model->parameters(), horo::optim::SgdOptions{.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = true});
    } else {
      optimizer = std::make_unique<horo::optim::Adam>(model->parameters(), horo::optim::AdamOptions{.lr = 1e-3f});
    }
    const horo::Tensor images = horo::Tensor::normal({args.batch, 1, 28, 28}, 0.0f, 1.0f, 7).to(device);
    std::vector<int64_t> label_values(static_cast<size_t>(args.batch));
    for (size_t i = 0; i < label_values.size(); ++i) label_values[i] = static_cast<int64_t>((i * 7) % 10);
    const horo::Tensor labels = horo::Tensor::from_vector(label_values, {args.batch}).to(device);
    if (args.inference) {
      model->eval();
      horo::autograd::NoGradGuard no_grad;
      const auto [seconds, median_ms] = time_steps(args, [&] {
        const horo::Tensor out = model->forward(images);
        if (device.is_cuda()) horo::kernels::cuda::synchronize();
        return out;
      });
      std::printf("framework=horo device=%s model=%s mode=inference batch=%ld threads=%ld steps=%ld latency_ms_p50=%.4f "
                  "images_per_s=%.1f\n", args.device.c_str(), args.model.c_str(), args.batch, args.threads, args.steps,
                  median_ms, static_cast<double>(args.batch * args.steps) / seconds);
      return 0;
    }
    float last = 0.0f;
    auto step = [&] {
      const horo::Tensor loss = horo::nn::functional::cross_entropy(model->forward(images), labels);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      last = loss.item();
    };
    const auto [seconds, median_ms] = time_steps(args, step);
    std::printf("framework=horo device=%s model=%s batch=%ld threads=%ld steps=%ld loss=%.4f step_ms_p50=%.3f "
                "images_per_s=%.1f\n", args.device.c_str(), args.model.c_str(), args.batch, args.threads, args.steps,
                static_cast<double>(last), median_ms, static_cast<double>(args.batch * args.steps) / seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-bench-train: error: %s\n", e.what());
    return 1;
  }
}
