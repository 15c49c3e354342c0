#include <algorithm>

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

Tensor argmax_rows(const Tensor& x) {
  check_rank(x, 2, "argmax");
  const int64_t rows = x.size(0), cols = x.size(1);
  Tensor out = Tensor::empty({rows}, DType::Int64, x.device());
  if (x.device().is_cuda()) {
    kernels::cuda::argmax_rows(x.data<float>(), rows, cols, out.data<int64_t>());
    return out;
  }
  const float* p = x.data<float>();
  int64_t* o = out.data<int64_t>();
  for (int64_t r = 0; r < rows; ++r) o[r] = std::max_element(p + r * cols, p + (r + 1) * cols) - (p + r * cols);
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
  const Tensor host_labels = labels.to(Device::cpu());  // the range check reads them on the host
  const int64_t* y = host_labels.data<int64_t>();
  for (int64_t i = 0; i < labels.numel(); ++i) {
    HORO_CHECK(y[i] >= 0 && y[i] < classes, ValueError, "cross_entropy: label ", y[i], " at batch index ", i,
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
  const float loss = HORO_DISPATCH(logits.device(), cross_entropy_forward, args, logits.data<float>(), labels.data<int64_t>(),
                                                         log_probs.data<float>());
  return {Tensor::scalar(loss), log_probs};
}

Tensor cross_entropy_backward(const Tensor& log_probs, const Tensor& labels, const CrossEntropyOptions& o,
                              float grad_loss) {
  const auto args = check_cross_entropy(log_probs, labels, o);
  Tensor grad = Tensor::empty(log_probs.shape(), DType::Float32, log_probs.device());
  HORO_DISPATCH(log_probs.device(), cross_entropy_backward, args, log_probs.data<float>(), labels.data<int64_t>(), grad_loss,
                                       grad.data<float>());
  return grad;
}

}  // namespace horo::ops
