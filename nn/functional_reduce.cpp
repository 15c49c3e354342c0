#include <cmath>

#include "nn/functional.h"

namespace horo::nn::functional {

using autograd::Node;
using autograd::record;
using autograd::saved;

Tensor sum(const Tensor& x) {
  Tensor out = ops::sum_all(x);
  if (!autograd::any_requires_grad({&x})) return out;
  return record(out, {&x}, "sum", [shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
    return {ops::broadcast_to(g, shape)};
  });
}

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  Tensor out = ops::sum(x, dim, keepdim);
  if (!autograd::any_requires_grad({&x})) return out;
  const int64_t d = ops::normalize_dim(dim, x.dim(), "sum");
  return record(out, {&x}, "sum", [shape = x.shape(), d](const Tensor& g, const Node&) -> std::vector<Tensor> {
    Shape kept = shape;
    kept[static_cast<size_t>(d)] = 1;
    return {ops::broadcast_to(g.view(kept), shape)};
  });
}

Tensor mean(const Tensor& x) {
  HORO_CHECK(x.numel() > 0, ShapeError, "mean of an empty tensor ", x.describe());
  return affine(sum(x), 1.0f / static_cast<float>(x.numel()), 0.0f);
}

Tensor mean(const Tensor& x, int64_t dim, bool keepdim) {
  const int64_t count = x.size(dim);
  HORO_CHECK(count > 0, ShapeError, "mean over an empty dimension of ", x.describe());
  return affine(sum(x, dim, keepdim), 1.0f / static_cast<float>(count), 0.0f);
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor out = x.view(shape);
  if (!autograd::any_requires_grad({&x})) return out;
  return record(out, {&x}, "reshape", [shape = x.shape()](const Tensor& g, const Node&) -> std::vector<Tensor> {
    return {g.view(shape)};
  });
}

Tensor flatten(const Tensor& x, int64_t start_dim) {
  const int64_t start = ops::normalize_dim(start_dim, x.dim(), "flatten");
  Shape shape(x.shape().begin(), x.shape().begin() + start);
  int64_t rest = 1;
  for (int64_t d = start; d < x.dim(); ++d) rest *= x.size(d);
  shape.push_back(rest);
  return reshape(x, shape);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const ops::CrossEntropyOptions& options) {
  auto [loss, log_probs] = ops::cross_entropy(logits, labels, options);
  if (!autograd::any_requires_grad({&logits})) return loss;
  return record(loss, {&logits}, "cross_entropy",
                [log_probs = log_probs, labels = saved(labels), options](const Tensor& g, const Node&) -> std::vector<Tensor> {
                  return {ops::cross_entropy_backward(log_probs, labels, options, g)};
                });
}

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  HORO_CHECK(prediction.shape() == target.shape(), ShapeError, "mse_loss: prediction ", prediction.describe(),
             " and target ", target.describe(), " differ in shape");
  const Tensor diff = sub(prediction, target);
  return mean(mul(diff, diff));
}

void check_finite(const Tensor& x, const std::string& what) {
  if (x.dtype() != DType::Float32) return;
  if (x.device().is_cuda()) return check_finite(x.to(Device::cpu()), what);
  const float* p = x.data<float>();
  for (int64_t i = 0, n = x.numel(); i < n; ++i) {
    if (!std::isfinite(p[i])) {
      throw NumericError(detail::concat(what, ": ", std::isnan(p[i]) ? "NaN" : "infinity", " at element ", i, " of ",
                                        x.describe()));
    }
  }
}

}  // namespace horo::nn::functional
