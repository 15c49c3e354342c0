// Fine-tuning a saved checkpoint with a new head: the residual network trained by custom_model
// (which quadrant is lit: 4 classes) learns a new task (top or bottom half: 2 classes) with its
// body frozen and a fresh head.
//   fine_tune [CHECKPOINT]      (residual.h5 by default)
#include <cstdio>
#include <string>

#include "nn/checkpoint.h"
#include "nn/transfer.h"
#include "residual_net.h"

int main(int argc, char** argv) try {
  const std::string checkpoint = argc > 1 ? argv[1] : "residual.h5";
  ResidualNet model(4);
  const auto report = nn::load_model(model, nn::read_checkpoint(checkpoint), /*strict=*/true);
  std::printf("loaded %s: %s\n", checkpoint.c_str(), report.summary().c_str());
  horo::manual_seed(1);
  // A new head, as PyTorch's `model.head = nn.Linear(8, 2)`: the member that forward() uses, and the
  // child registered under "head" (its tensors are named head.weight, head.bias). nn::replace_head()
  // does the second alone, for models built from specifications, which hold no such member.
  model.head = std::make_shared<nn::Linear>(nn::LinearOptions{.in = 8, .out = 2});
  model.replace_child("head", model.head);
  for (const char* body : {"stem.*", "block1.*", "block2.*"}) nn::freeze(model, body);  // BatchNorm keeps its statistics
  std::vector<horo::Tensor> trainable;
  for (const auto& p : model.parameters()) {
    if (p.requires_grad()) trainable.push_back(p);
  }
  const std::vector<float> stem_before = model.stem->weight.to_vector();
  horo::optim::Adam optimizer(trainable, {.lr = 1e-2f});
  std::vector<float> images;
  std::vector<int64_t> quadrant, half;
  auto halves = [&] {
    half.resize(quadrant.size());
    for (size_t i = 0; i < quadrant.size(); ++i) half[i] = quadrant[i] / 2;  // 0: top, 1: bottom
  };
  for (int64_t step = 1; step <= 100; ++step) {
    quadrant_images(32, 5000 + step, images, quadrant);
    halves();
    const horo::Tensor loss = F::cross_entropy(model(horo::Tensor::from_vector(images, {32, 1, 16, 16})),
                                               horo::Tensor::from_vector(half, {32}));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    if (step % 25 == 0) std::printf("step %lld loss %.4f\n", static_cast<long long>(step), loss.item());
  }
  model.eval();
  quadrant_images(512, 2'000'000, images, quadrant);
  halves();
  const double held_out = accuracy(model(horo::Tensor::from_vector(images, {512, 1, 16, 16})), half);
  const bool body_unchanged = model.stem->weight.to_vector() == stem_before;
  std::printf("%zu of %zu tensors trained; held-out accuracy %.3f; frozen stem unchanged: %s\n", trainable.size(),
              model.parameters().size(), held_out, body_unchanged ? "yes" : "NO");
  return held_out >= 0.9 && body_unchanged ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "fine_tune: %s\n", e.what());
  return 1;
}
