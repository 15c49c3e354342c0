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
  // A residual block with BatchNorm from the installed headers, and the resnet20 built-in.
  namespace nn = horo::nn;
  auto block = std::make_shared<nn::Graph>();
  block->add("conv", std::make_shared<nn::Conv2d>(nn::Conv2dOptions{.in = 2, .out = 2, .kernel = 3, .padding = 1, .bias = false}))
      .add("bn", std::make_shared<nn::BatchNorm2d>(nn::BatchNormOptions{.features = 2}))
      .add("add", std::make_shared<nn::Add>(), {"bn", "input"})
      .add("relu", std::make_shared<nn::ReLU>());
  const horo::Tensor out = (*block)(horo::Tensor::uniform({3, 2, 5, 5}, -1, 1, 4));
  auto resnet = nn::make_model("resnet20", 10, {3, 32, 32});
  const horo::Tensor logits = (*resnet)(horo::Tensor::uniform({2, 3, 32, 32}, -1, 1, 5));
  std::printf("downstream: block %s, resnet20 %s\n", horo::shape_str(out.shape()).c_str(), horo::shape_str(logits.shape()).c_str());
  return last < first && logits.shape() == horo::Shape{2, 10} ? 0 : 1;
}
