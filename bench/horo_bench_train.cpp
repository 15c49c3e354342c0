// Training throughput of W1/W2 in horo on fixed random batches: prints `images_per_s=R`.
// The peer bench/peers/libtorch_train.cpp does the same steps in libtorch.
#include <chrono>
#include <cstdio>

#include "bench/train_args.h"
#include "horo.h"

int main(int argc, char** argv) {
  const TrainBenchArgs args = parse_train_bench_args(argc, argv);
  try {
    horo::set_num_threads(static_cast<int>(args.threads));
    horo::manual_seed(1);
    const horo::Device device = horo::Device::parse(args.device);
    auto model = horo::nn::make_model(args.model);
    model->to(device);
    horo::optim::Adam optimizer(model->parameters(), {.lr = 1e-3f});
    const horo::Tensor images = horo::Tensor::normal({args.batch, 1, 28, 28}, 0.0f, 1.0f, 7).to(device);
    std::vector<int64_t> label_values(static_cast<size_t>(args.batch));
    for (size_t i = 0; i < label_values.size(); ++i) label_values[i] = static_cast<int64_t>((i * 7) % 10);
    const horo::Tensor labels = horo::Tensor::from_vector(label_values, {args.batch}).to(device);
    auto step = [&] {
      const horo::Tensor loss = horo::nn::functional::cross_entropy(model->forward(images), labels);
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      return loss.item();
    };
    for (long i = 0; i < args.warmup; ++i) step();
    const auto start = std::chrono::steady_clock::now();
    float last = 0.0f;
    for (long i = 0; i < args.steps; ++i) last = step();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("framework=horo device=%s model=%s batch=%ld threads=%ld steps=%ld loss=%.4f images_per_s=%.1f\n",
                args.device.c_str(), args.model.c_str(), args.batch, args.threads, args.steps, static_cast<double>(last),
                static_cast<double>(args.batch * args.steps) / seconds);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-bench-train: error: %s\n", e.what());
    return 1;
  }
}
