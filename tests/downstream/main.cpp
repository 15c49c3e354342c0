// Builds a small model from the installed headers, takes one training step and checks the loss fell.
#include <horo/horo.h>

#include <cstdio>

int main() {
  horo::manual_seed(1);
  horo::nn::Sequential model{std::make_shared<horo::nn::Linear>(horo::nn::LinearOptions{.in = 4, .out = 3})};
  horo::optim::SGD optimizer(model.parameters(), {.lr = 0.5f});
  const horo::Tensor x = horo::Tensor::uniform({8, 4}, -1, 1, 3);
  const horo::Tensor y = horo::Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1}, {8});
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    const horo::Tensor loss = horo::nn::functional::cross_entropy(model(x), y);
    (step == 0 ? first : last) = loss.item();
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  }
  std::printf("downstream: loss %.4f -> %.4f\n", first, last);
  return last < first ? 0 : 1;
}
