#include <algorithm>

#include <cmath>

#include "kernels/cross_entropy.h"
#include "kernels/reduce.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace horo::ops {

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  check_dtype(x, DType::Float32, "sum");
  const int64_t d = normalize_dim(dim, x.dim(), "sum");
  kernels::ReduceShape s;
  for (int64_t i = 0; i < x.dim(); ++i) {
    if (i < d) s.outer *= x.size(i);
    else if (i == d) s.axis = x.size(i);
    else s.inner *= x.size(i);
  }
  Shape out_shape = x.shape();
  if (keepdim) out_shape[static_cast<size_t>(d)] = 1;
  else out_shape.erase(out_shape.begin() + d);
  Tensor out = Tensor::empty(out_shape, DType::Float32, x.device());
  HORO_DISPATCH(x.device(), sum, s, x.data<float>(), out.data<float>());
  return out;
}

Tensor sum_all(const Tensor& x) {
  check_dtype(x, DType::Float32, "sum");
  Tensor out = Tensor::empty({}, DType::Float32, x.device());
  HORO_DISPATCH(x.device(), sum, {.outer = 1, .axis = x.numel(), .inner = 1}, x.data<float>(), out.data<float>());
  return out;
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  Tensor out = x;
  // Leading dimensions that the target lacks are summed away; then each broadcast size-1 dimension.
  while (out.dim() > static_cast<int64_t>(shape.size())) out = sum(out, 0, false);
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1 && out.size(static_cast<int64_t>(d)) != 1) out = sum(out, static_cast<int64_t>(d), true);
  }
  check_shape(out, shape, "sum_to_shape");
  return out;
}

Tensor broadcast_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  HORO_CHECK(broadcast_shapes(x.shape(), shape, "broadcast_to") == shape, ShapeError, "broadcast_to: ", x.describe(),
             " cannot broadcast to ", shape_str(shape));
  return binary(kernels::Binary::Add, Tensor::zeros(shape, DType::Float32, x.device()), x);
}

namespace {
// The first largest value of a row; a NaN counts as the largest (as torch.argmax), the first one wins.
int64_t row_argmax(const float* row, int64_t cols) {
  int64_t best = 0;
  for (int64_t c = 1; c < cols; ++c) {
    if (row[c] > row[best] || (std::isnan(row[c]) && !std::isnan(row[best]))) best = c;
  }
  return best;
}
}  // namespace

Tensor argmax_rows(const Tensor& x) {
  check_rank(x, 2, "argmax");
  const int64_t rows = x.size(0), cols = x.size(1);
  HORO_CHECK(cols > 0 || rows == 0, ShapeError, "argmax: rows of no values in ", x.describe());
  Tensor out = Tensor::empty({rows}, DType::Int64, x.device());
  if (x.device().is_cuda()) {
    const kernels::cuda::DeviceScope scope(x.device().index);
    kernels::cuda::argmax_rows(x.data<float>(), rows, cols, out.data<int64_t>());
    return out;
  }
  const float* p = x.data<float>();
  int64_t* o = out.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r) o[r] = row_argmax(p + r * cols, cols);
  return out;
}

Tensor count_correct(const Tensor& logits, const Tensor& labels) {
  check_rank(logits, 2, "count_correct: logits");
  check_dtype(labels, DType::Int64, "count_correct: labels");
  HORO_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), ShapeError, "count_correct: labels ", labels.describe(),
             " do not match logits ", logits.describe());
  HORO_CHECK(logits.size(1) > 0 || logits.size(0) == 0, ShapeError, "count_correct: rows of no logits in ", logits.describe());
  check_same_device("count_correct", {&logits, &labels});
  Tensor out = Tensor::empty({}, DType::Float32, logits.device());
  const int64_t rows = logits.size(0), cols = logits.size(1);
  if (logits.device().is_cuda()) {
    const kernels::cuda::DeviceScope scope(logits.device().index);
    kernels::cuda::count_correct(logits.data<float>(), labels.data<int64_t>(), rows, cols, out.data<float>());
    return out;
  }
  const float* p = logits.data<float>();
  const int64_t* y = labels.data<int64_t>();
  float correct = 0.0f;
  for (int64_t r = 0; r < rows; ++r) correct += row_argmax(p + r * cols, cols) == y[r] ? 1.0f : 0.0f;
  *out.data<float>() = correct;
  return out;
}

namespace {

kernels::CrossEntropyArgs check_cross_entropy(const Tensor& logits, const Tensor& labels,
                                              const CrossEntropyOptions& o) {
  HORO_CHECK(logits.dim() == 2, ShapeError, "cross_entropy: expected logits [batch, classes], got ", logits.describe());
  check_dtype(logits, DType::Float32, "cross_entropy: logits");
  HORO_CHECK(labels.dim() == 1 && labels.size(0) == logits.size(0), ShapeError, "cross_entropy: expected labels [",
             logits.size(0), "] to match logits ", logits.describe(), ", got ", labels.describe());
  check_dtype(labels, DType::Int64, "cross_entropy: labels");
  const int64_t classes = logits.size(1);
  HORO_CHECK(logits.size(0) > 0, ShapeError, "cross_entropy: empty batch");
  check_same_device("cross_entropy", {&logits, &labels, &o.weight});
  if (labels.device().is_cpu()) {
    // GPU labels are checked by the kernels on the device: reading them here would make the host wait.
    const int64_t bad = first_index_outside(labels, classes);
    HORO_CHECK(bad < 0, ValueError, "cross_entropy: label ", labels.data<int64_t>()[bad], " at batch index ", bad,
               " is outside the class range [0, ", classes, ")");
  }
  HORO_CHECK(o.label_smoothing >= 0.0f && o.label_smoothing <= 1.0f, ValueError,
             "cross_entropy: label_smoothing must be in [0, 1], got ", o.label_smoothing);
  if (o.weight.defined()) {
    check_shape(o.weight, {classes}, "cross_entropy: class weights");
    check_dtype(o.weight, DType::Float32, "cross_entropy: class weights");
  }
  return {.n = logits.size(0), .classes = classes, .weight = o.weight.defined() ? o.weight.data<float>() : nullptr,
          .label_smoothing = o.label_smoothing};
}

}  // namespace

std::pair<Tensor, Tensor> cross_entropy(const Tensor& logits, const Tensor& labels, const CrossEntropyOptions& o) {
  const auto args = check_cross_entropy(logits, labels, o);
  Tensor log_probs = Tensor::empty(logits.shape(), DType::Float32, logits.device());
  Tensor loss = Tensor::empty({}, DType::Float32, logits.device());
  HORO_DISPATCH(logits.device(), cross_entropy_forward, args, logits.data<float>(), labels.data<int64_t>(),
                log_probs.data<float>(), loss.data<float>());
  return {loss, log_probs};
}

Tensor cross_entropy_backward(const Tensor& log_probs, const Tensor& labels, const CrossEntropyOptions& o,
                              const Tensor& grad_loss) {
  const auto args = check_cross_entropy(log_probs, labels, o);
  HORO_CHECK(grad_loss.numel() == 1 && grad_loss.dtype() == DType::Float32, ShapeError,
             "cross_entropy backward: expected a float32 scalar gradient, got ", grad_loss.describe());
  check_same_device("cross_entropy backward", {&log_probs, &grad_loss});
  Tensor grad = Tensor::empty(log_probs.shape(), DType::Float32, log_probs.device());
  HORO_DISPATCH(log_probs.device(), cross_entropy_backward, args, log_probs.data<float>(), labels.data<int64_t>(),
                grad_loss.data<float>(), grad.data<float>());
  return grad;
}

}  // namespace horo::ops
