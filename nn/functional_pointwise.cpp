#include "nn/functional.h"

namespace horo::nn::functional {

using autograd::Node;
using autograd::record;
using autograd::saved;
using kernels::Binary;
using kernels::Unary;

namespace {

Tensor unary_op(Unary op, const Tensor& x, float param = 0.0f) {
  Tensor y = ops::unary(op, x, param);
  if (!autograd::any_requires_grad({&x})) return y;
  return record(y, {&x}, kernels::unary_name(op),
                [op, param, x = saved(x), y = saved(y)](const Tensor& g, const Node&) -> std::vector<Tensor> {
                  return {ops::unary_backward(op, param, x, y, g)};
                });
}

Tensor softmax_op(const Tensor& x, int64_t dim, bool log) {
  Tensor y = ops::softmax(x, dim, log);
  if (!autograd::any_requires_grad({&x})) return y;
  return record(y, {&x}, log ? "log_softmax" : "softmax",
                [y = saved(y), dim, log](const Tensor& g, const Node&) -> std::vector<Tensor> {
                  return {ops::softmax_backward(y, g, dim, log)};
                });
}

Tensor binary_op(Binary op, const Tensor& a, const Tensor& b) {
  Tensor out = ops::binary(op, a, b);
  if (!autograd::any_requires_grad({&a, &b})) return out;
  static const char* names[] = {"add", "sub", "mul", "div"};
  return record(out, {&a, &b}, names[static_cast<int>(op)],
                [op, a = saved(a), b = saved(b)](const Tensor& g, const Node& node) -> std::vector<Tensor> {
                  Tensor ga, gb;
                  const bool need_a = node.needs_input_grad(0), need_b = node.needs_input_grad(1);
                  switch (op) {
                    case Binary::Add:
                      if (need_a) ga = g;
                      if (need_b) gb = g;
                      break;
                    case Binary::Sub:
                      if (need_a) ga = g;
                      if (need_b) gb = ops::affine(g, -1.0f, 0.0f);
                      break;
                    case Binary::Mul:
                      if (need_a) ga = ops::binary(Binary::Mul, g, b);
                      if (need_b) gb = ops::binary(Binary::Mul, g, a);
                      break;
                    case Binary::Div:
                      if (need_a) ga = ops::binary(Binary::Div, g, b);
                      if (need_b) {
                        // d(a/b)/db = -a / b^2
                        const Tensor q = ops::binary(Binary::Div, ops::binary(Binary::Mul, g, a), ops::binary(Binary::Mul, b, b));
                        gb = ops::affine(q, -1.0f, 0.0f);
                      }
                      break;
                  }
                  // Broadcasting's gradient: sum over the dimensions each operand was repeated along.
                  if (ga.defined()) ga = ops::sum_to_shape(ga, a.shape());
                  if (gb.defined()) gb = ops::sum_to_shape(gb, b.shape());
                  return {ga, gb};
                });
}

}  // namespace

Tensor relu(const Tensor& x) { return unary_op(Unary::ReLU, x); }
Tensor leaky_relu(const Tensor& x, float negative_slope) { return unary_op(Unary::LeakyReLU, x, negative_slope); }
Tensor sigmoid(const Tensor& x) { return unary_op(Unary::Sigmoid, x); }
Tensor tanh(const Tensor& x) { return unary_op(Unary::Tanh, x); }
Tensor gelu(const Tensor& x) { return unary_op(Unary::GELU, x); }
Tensor exp(const Tensor& x) { return unary_op(Unary::Exp, x); }
Tensor log(const Tensor& x) { return unary_op(Unary::Log, x); }
Tensor neg(const Tensor& x) { return unary_op(Unary::Neg, x); }
Tensor sqrt(const Tensor& x) { return unary_op(Unary::Sqrt, x); }
Tensor abs(const Tensor& x) { return unary_op(Unary::Abs, x); }
Tensor softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_op(x, dim, true); }

Tensor add(const Tensor& a, const Tensor& b) { return binary_op(Binary::Add, a, b); }
Tensor sub(const Tensor& a, const Tensor& b) { return binary_op(Binary::Sub, a, b); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary_op(Binary::Mul, a, b); }
Tensor div(const Tensor& a, const Tensor& b) { return binary_op(Binary::Div, a, b); }

Tensor affine(const Tensor& x, float alpha, float beta) {
  check_dtype(x, DType::Float32, "affine");
  Tensor y = ops::affine(x, alpha, beta);
  if (!autograd::any_requires_grad({&x})) return y;
  return record(y, {&x}, "affine", [alpha](const Tensor& g, const Node&) -> std::vector<Tensor> {
    return {ops::affine(g, alpha, 0.0f)};
  });
}

}  // namespace horo::nn::functional

namespace horo {
namespace F = nn::functional;
Tensor operator+(const Tensor& a, const Tensor& b) { return F::add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return F::sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return F::mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return F::div(a, b); }
Tensor operator+(const Tensor& a, float b) { return F::affine(a, 1.0f, b); }
Tensor operator-(const Tensor& a, float b) { return F::affine(a, 1.0f, -b); }
Tensor operator*(const Tensor& a, float b) { return F::affine(a, b, 0.0f); }
Tensor operator/(const Tensor& a, float b) { return F::affine(a, 1.0f / b, 0.0f); }
Tensor operator+(float a, const Tensor& b) { return F::affine(b, 1.0f, a); }
Tensor operator-(float a, const Tensor& b) { return F::affine(b, -1.0f, a); }
Tensor operator*(float a, const Tensor& b) { return F::affine(b, a, 0.0f); }
Tensor operator-(const Tensor& a) { return F::affine(a, -1.0f, 0.0f); }
}  // namespace horo
