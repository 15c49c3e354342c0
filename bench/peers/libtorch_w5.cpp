// The libtorch peer of W5's accuracy recipe (horo-train --model resnet20 on Fashion-MNIST with random
// crops and flips, SGD Nesterov, cosine learning rate): the same ResNet-20 (libtorch_train.cpp's), the
// same data, normalisation, augmentation, optimizer and schedule, evaluated on the 10,000 test images
// after each epoch. Prints one line per epoch and a last line like horo-train's:
//   epochs=15 train_images_per_s=R test_accuracy=A
// Usage: libtorch-w5 [--epochs 15] [--batch 128] [--lr 0.1] [--seed 42] [--threads 2]
//                    [--data /usr/share/datasets/fashion-mnist] [--train-images N]
#include <torch/torch.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/peers/resnet20.h"

namespace {

// An IDX file, gzipped or not: its payload after the header of `header` bytes.
std::vector<uint8_t> read_idx(const std::string& path, size_t header) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open");
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  int n;
  while ((n = gzread(f, buffer, sizeof buffer)) > 0) bytes.insert(bytes.end(), buffer, buffer + n);
  gzclose(f);
  if (bytes.size() < header) throw std::runtime_error(path + ": truncated");
  return {bytes.begin() + static_cast<long>(header), bytes.end()};
}

// Images normalised as horo's HDF5 input is (the training set's mean and std), and labels.
std::pair<torch::Tensor, torch::Tensor> load(const std::string& dir, const std::string& split, int64_t limit) {
  auto images = read_idx(dir + "/" + split + "-images-idx3-ubyte.gz", 16);
  auto labels = read_idx(dir + "/" + split + "-labels-idx1-ubyte.gz", 8);
  int64_t n = static_cast<int64_t>(labels.size());
  if (limit > 0 && limit < n) n = limit;
  auto x = torch::from_blob(images.data(), {n, 1, 28, 28}, torch::kUInt8).to(torch::kFloat32).div(255.0);
  auto y = torch::from_blob(labels.data(), {n}, torch::kUInt8).to(torch::kLong);
  return {x.sub(0.2860).div(0.3530), y.clone()};
}

}  // namespace

int main(int argc, char** argv) {
  int64_t epochs = 15, batch = 128, seed = 42, threads = 2, train_images = -1;
  double lr = 0.1;
  std::string data = "/usr/share/datasets/fashion-mnist";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--epochs") epochs = std::stoll(value);
    else if (key == "--batch") batch = std::stoll(value);
    else if (key == "--lr") lr = std::stod(value);
    else if (key == "--seed") seed = std::stoll(value);
    else if (key == "--threads") threads = std::stoll(value);
    else if (key == "--data") data = value;
    else if (key == "--train-images") train_images = std::stoll(value);
    else { std::fprintf(stderr, "libtorch-w5: unknown flag %s\n", key.c_str()); return 2; }
  }
  torch::set_num_threads(static_cast<int>(threads));
  torch::manual_seed(static_cast<uint64_t>(seed));
  auto [x_train, y_train] = load(data, "train", train_images);
  auto [x_test, y_test] = load(data, "t10k", -1);
  auto model = horo_peer::make_resnet20(1, 10);
  torch::optim::SGD optimizer(model->parameters(),
                              torch::optim::SGDOptions(lr).momentum(0.9).nesterov(true).weight_decay(5e-4));
  const float pad_value = static_cast<float>(-0.2860 / 0.3530);  // a black pixel after normalisation
  const int64_t n = x_train.size(0);
  double train_seconds = 0;
  int64_t seen_total = 0;
  double accuracy = 0;
  std::printf("libtorch-w5: resnet20 train=%lld test=%lld batch=%lld lr=%g threads=%lld seed=%lld\n", static_cast<long long>(n),
              static_cast<long long>(x_test.size(0)), static_cast<long long>(batch), lr, static_cast<long long>(threads),
              static_cast<long long>(seed));
  for (int64_t epoch = 0; epoch < epochs; ++epoch) {
    // torch.optim.lr_scheduler.CosineAnnealingLR(T_max=epochs), stepped per epoch, as horo-train's.
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr * (1 + std::cos(M_PI * epoch / epochs)) / 2);
    }
    model->train();
    const auto start = std::chrono::steady_clock::now();
    auto order = torch::randperm(n, torch::kLong);
    double loss_sum = 0;
    int64_t correct = 0;
    auto padded = torch::constant_pad_nd(x_train, {2, 2, 2, 2}, pad_value);
    for (int64_t b = 0; b < n; b += batch) {
      auto index = order.slice(0, b, std::min(n, b + batch));
      auto source = padded.index_select(0, index);
      const int64_t m = index.size(0);
      auto crops = torch::randint(0, 5, {m, 2}, torch::kLong);
      auto flips = torch::randint(0, 2, {m}, torch::kLong);
      std::vector<torch::Tensor> images;
      images.reserve(static_cast<size_t>(m));
      auto crop_data = crops.accessor<int64_t, 2>();
      auto flip_data = flips.accessor<int64_t, 1>();
      for (int64_t k = 0; k < m; ++k) {
        auto image = source[k].narrow(1, crop_data[k][0], 28).narrow(2, crop_data[k][1], 28);
        images.push_back(flip_data[k] ? image.flip({2}) : image);
      }
      auto x = torch::stack(images);
      auto y = y_train.index_select(0, index);
      optimizer.zero_grad();
      auto logits = model->forward(x);
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(m);
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    train_seconds += seconds;
    seen_total += n;
    model->eval();
    torch::NoGradGuard no_grad;
    int64_t test_correct = 0;
    for (int64_t b = 0; b < x_test.size(0); b += 1000) {
      auto x = x_test.slice(0, b, b + 1000);
      test_correct += model->forward(x).argmax(1).eq(y_test.slice(0, b, b + 1000)).sum().item<int64_t>();
    }
    accuracy = static_cast<double>(test_correct) / static_cast<double>(x_test.size(0));
    std::printf("epoch %lld/%lld loss=%.4f train_acc=%.4f test_acc=%.4f images/s=%.0f time=%.1fs\n",
                static_cast<long long>(epoch + 1), static_cast<long long>(epochs), loss_sum / n,
                static_cast<double>(correct) / n, accuracy, n / seconds, seconds);
    std::fflush(stdout);
  }
  std::printf("epochs=%lld train_images_per_s=%.1f test_accuracy=%.4f\n", static_cast<long long>(epochs),
              seen_total / train_seconds, accuracy);
  return 0;
}
