// A custom model with residual blocks and its own training loop, in one process:
//   custom_model [CHECKPOINT]      (writes residual.h5 by default, for fine_tune)
#include <cstdio>
#include <string>

#include "nn/checkpoint.h"
#include "residual_net.h"

int main(int argc, char** argv) try {
  const std::string checkpoint = argc > 1 ? argv[1] : "residual.h5";
  horo::manual_seed(0);
  ResidualNet model(4);
  horo::optim::Adam optimizer(model.parameters(), {.lr = 3e-3f});
  std::vector<float> images;
  std::vector<int64_t> labels;
  for (int64_t step = 1; step <= 200; ++step) {
    quadrant_images(32, step, images, labels);  // a fresh batch each step
    const horo::Tensor loss = F::cross_entropy(model(horo::Tensor::from_vector(images, {32, 1, 16, 16})),
                                               horo::Tensor::from_vector(labels, {32}));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    if (step % 50 == 0) std::printf("step %lld loss %.4f\n", static_cast<long long>(step), loss.item());
  }
  model.eval();  // BatchNorm by its running statistics
  quadrant_images(512, 1'000'000, images, labels);
  const double held_out = accuracy(model(horo::Tensor::from_vector(images, {512, 1, 16, 16})), labels);
  std::printf("held-out accuracy %.3f\n", held_out);
  nn::save_checkpoint(checkpoint, model, &optimizer, {.step = 200}, "", "");
  std::printf("saved %s\n", checkpoint.c_str());
  return held_out >= 0.9 ? 0 : 1;
} catch (const std::exception& e) {
  std::fprintf(stderr, "custom_model: %s\n", e.what());
  return 1;
}
