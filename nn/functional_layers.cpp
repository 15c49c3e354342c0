#include "nn/functional.h"

namespace horo::nn::functional {

using autograd::Node;
using autograd::record;
using autograd::saved;

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  Tensor out = ops::linear(x, weight, bias);
  if (!autograd::any_requires_grad({&x, &weight, &bias})) return out;
  return record(out, {&x, &weight, &bias}, "linear",
                [x = saved(x), w = saved(weight)](const Tensor& g, const Node& node) -> std::vector<Tensor> {
                  Tensor gx, gw, gb;
                  if (node.needs_input_grad(0)) gx = ops::matmul(g, w);
                  if (node.needs_input_grad(1)) gw = ops::matmul(g, x, true, false);
                  if (node.needs_input_grad(2)) gb = ops::sum(g, 0, false);
                  return {gx, gw, gb};
                });
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  Tensor out = ops::matmul(a, b);
  if (!autograd::any_requires_grad({&a, &b})) return out;
  return record(out, {&a, &b}, "matmul",
                [a = saved(a), b = saved(b)](const Tensor& g, const Node& node) -> std::vector<Tensor> {
                  Tensor ga, gb;
                  if (node.needs_input_grad(0)) ga = ops::matmul(g, b, false, true);
                  if (node.needs_input_grad(1)) gb = ops::matmul(a, g, true, false);
                  return {ga, gb};
                });
}

namespace {
// Records out = conv2d(input, weight, bias) for backward.
Tensor record_conv2d(const Tensor& out, const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  if (!autograd::any_requires_grad({&input, &weight, &bias})) return out;
  return record(out, {&input, &weight, &bias}, "conv2d",
                [x = saved(input), w = saved(weight), p](const Tensor& g, const Node& node) -> std::vector<Tensor> {
                  Tensor gx, gw, gb;
                  if (node.needs_input_grad(0)) gx = ops::conv2d_backward_input(g, w, x.shape(), p);
                  if (node.needs_input_grad(1) || node.needs_input_grad(2)) {
                    std::tie(gw, gb) = ops::conv2d_backward_weight(x, g, w.shape(), node.needs_input_grad(2), p);
                  }
                  return {gx, gw, gb};
                });
}
}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  return record_conv2d(ops::conv2d(input, weight, bias, p), input, weight, bias, p);
}

std::tuple<Tensor, Tensor, Tensor> conv2d_batch_stats(const Tensor& input, const Tensor& weight, const Tensor& bias,
                                                      const Conv2dParams& p, const Tensor& shift) {
  auto [out, mean, var] = ops::conv2d_batch_stats(input, weight, bias, p, shift);
  return {record_conv2d(out, input, weight, bias, p), mean, var};
}

Tensor max_pool2d(const Tensor& input, const Pool2dParams& p) {
  auto [out, argmax] = ops::maxpool2d(input, p);
  if (!autograd::any_requires_grad({&input})) return out;
  return record(out, {&input}, "max_pool2d",
                [argmax = argmax, shape = input.shape(), p](const Tensor& g, const Node&) -> std::vector<Tensor> {
                  return {ops::maxpool2d_backward(g, argmax, shape, p)};
                });
}

Tensor conv2d_relu_max_pool2d(const Tensor& input, const Tensor& weight, const Tensor& bias, const Conv2dParams& conv,
                              const Pool2dParams& pool) {
  if (input.device().is_cuda()) return functional::max_pool2d(functional::relu(functional::conv2d(input, weight, bias, conv)), pool);
  auto [out, argmax] = ops::conv2d_relu_maxpool2d(input, weight, bias, conv, pool);
  if (!autograd::any_requires_grad({&input, &weight, &bias})) return out;
  return record(out, {&input, &weight, &bias}, "conv2d_relu_max_pool2d",
                [x = saved(input), w = saved(weight), y = saved(out), argmax = argmax, conv, pool](
                    const Tensor& g, const Node& node) -> std::vector<Tensor> {
                  auto grads = ops::conv2d_relu_maxpool2d_backward(x, w, y, argmax, g, node.needs_input_grad(0),
                                                                   node.needs_input_grad(1), node.needs_input_grad(2),
                                                                   conv, pool);
                  return {grads.input, grads.weight, grads.bias};
                });
}

Tensor avg_pool2d(const Tensor& input, const Pool2dParams& p) {
  Tensor out = ops::avgpool2d(input, p);
  if (!autograd::any_requires_grad({&input})) return out;
  return record(out, {&input}, "avg_pool2d",
                [shape = input.shape(), p](const Tensor& g, const Node&) -> std::vector<Tensor> {
                  return {ops::avgpool2d_backward(g, shape, p)};
                });
}

Tensor dropout(const Tensor& x, float p, bool training, Generator* generator) {
  HORO_CHECK(p >= 0.0f && p < 1.0f, ValueError, "dropout: probability must be in [0, 1), got ", p);
  if (!training || p == 0.0f) return x;
  Generator& gen = generator ? *generator : default_generator();
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(x.numel()));
  auto [out, mask] = ops::dropout(x, p, gen.seed(), offset);
  if (!autograd::any_requires_grad({&x})) return out;
  return record(out, {&x}, "dropout", [mask = mask](const Tensor& g, const Node&) -> std::vector<Tensor> {
    return {ops::binary(kernels::Binary::Mul, g, mask)};
  });
}

}  // namespace horo::nn::functional
