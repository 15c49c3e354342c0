#include <algorithm>

#include "kernels/dropout.h"
#include "kernels/softmax.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace horo::ops {
namespace {

void check_float(const Tensor& x, const std::string& what) { check_dtype(x, DType::Float32, what); }

// Element strides of `shape` inside a broadcast to `out` (rank-aligned on the right; 0 where broadcast).
void broadcast_strides(const Shape& shape, const Shape& out, int64_t* strides) {
  const size_t rank = out.size(), offset = rank - shape.size();
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    if (d < offset) {
      strides[d] = 0;
      continue;
    }
    const int64_t size = shape[d - offset];
    strides[d] = size == 1 && out[d] != 1 ? 0 : stride;
    stride *= size;
  }
}

}  // namespace

Tensor unary(kernels::Unary op, const Tensor& x, float param) {
  check_float(x, kernels::unary_name(op));
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  HORO_DISPATCH(x.device(), unary_forward, op, param, x.numel(), x.data<float>(), y.data<float>());
  return y;
}

Tensor unary_backward(kernels::Unary op, float param, const Tensor& x, const Tensor& y, const Tensor& grad_y) {
  Tensor dx = Tensor::empty(x.shape(), DType::Float32, x.device());
  HORO_DISPATCH(x.device(), unary_backward, op, param, x.numel(), x.data<float>(), y.data<float>(), grad_y.data<float>(),
                               dx.data<float>());
  return dx;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const std::string& what) {
  const size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    HORO_CHECK(da == db || da == 1 || db == 1, ShapeError, what, ": shapes ", shape_str(a), " and ", shape_str(b),
               " do not broadcast (dimension ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  HORO_CHECK(rank <= static_cast<size_t>(kernels::kMaxDims), ShapeError, what, ": at most ", kernels::kMaxDims,
             " dimensions are supported, got ", shape_str(out));
  return out;
}

Tensor binary(kernels::Binary op, const Tensor& a, const Tensor& b) {
  static const char* names[] = {"add", "sub", "mul", "div"};
  const std::string what = names[static_cast<int>(op)];
  check_float(a, what + ": left operand");
  check_float(b, what + ": right operand");
  const Shape out_shape = broadcast_shapes(a.shape(), b.shape(), what);
  Tensor out = Tensor::empty(out_shape, DType::Float32, a.device());
  kernels::BroadcastShape s;
  s.ndim = static_cast<int>(out_shape.size());
  std::copy(out_shape.begin(), out_shape.end(), s.out_shape);
  broadcast_strides(a.shape(), out_shape, s.a_stride);
  broadcast_strides(b.shape(), out_shape, s.b_stride);
  check_same_device(what, {&a, &b});
  HORO_DISPATCH(a.device(), binary, op, s, a.data<float>(), b.data<float>(), out.data<float>());
  return out;
}

Tensor affine(const Tensor& x, float alpha, float beta) {
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  HORO_DISPATCH(x.device(), affine, x.numel(), alpha, beta, x.data<float>(), y.data<float>());
  return y;
}

Tensor add_relu(const Tensor& a, const Tensor& b) {
  check_float(a, "add_relu: left operand");
  check_float(b, "add_relu: right operand");
  HORO_CHECK(a.shape() == b.shape(), ShapeError, "add_relu: ", a.describe(), " and ", b.describe(), " differ in shape");
  check_same_device("add_relu", {&a, &b});
  Tensor y = Tensor::empty(a.shape(), DType::Float32, a.device());
  HORO_DISPATCH(a.device(), add_relu, a.numel(), a.data<float>(), b.data<float>(), y.data<float>());
  return y;
}

void accumulate(Tensor& target, const Tensor& source) {
  check_shape(source, target.shape(), "gradient accumulation into " + target.describe());
  check_same_device("gradient accumulation", {&target, &source});
  HORO_DISPATCH(target.device(), accumulate, target.numel(), source.data<float>(), target.data<float>());
}

std::pair<Tensor, Tensor> dropout(const Tensor& x, float p, uint64_t seed, uint64_t offset) {
  check_float(x, "dropout");
  HORO_CHECK(p >= 0.0f && p < 1.0f, ValueError, "dropout: probability must be in [0, 1), got ", p);
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  Tensor mask = Tensor::empty(x.shape(), DType::Float32, x.device());
  HORO_DISPATCH(x.device(), dropout_forward, seed, offset, p, x.numel(), x.data<float>(), mask.data<float>(), y.data<float>());
  return {y, mask};
}

namespace {
kernels::SoftmaxShape softmax_shape(const Shape& shape, int64_t dim) {
  kernels::SoftmaxShape s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim) s.outer *= shape[d];
    else if (d == dim) s.axis = shape[d];
    else s.inner *= shape[d];
  }
  return s;
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  const char* what = log ? "log_softmax" : "softmax";
  check_float(x, what);
  const int64_t d = normalize_dim(dim, x.dim(), what);
  Tensor y = Tensor::empty(x.shape(), DType::Float32, x.device());
  if (x.numel() > 0) HORO_DISPATCH(x.device(), softmax_forward, softmax_shape(x.shape(), d), log, x.data<float>(), y.data<float>());
  return y;
}

Tensor softmax_backward(const Tensor& y, const Tensor& grad_y, int64_t dim, bool log) {
  const int64_t d = normalize_dim(dim, y.dim(), "softmax backward");
  Tensor dx = Tensor::empty(y.shape(), DType::Float32, y.device());
  if (y.numel() > 0) {
    HORO_DISPATCH(y.device(), softmax_backward, softmax_shape(y.shape(), d), log, y.data<float>(), grad_y.data<float>(),
                                   dx.data<float>());
  }
  return dx;
}

int64_t normalize_dim(int64_t dim, int64_t rank, const std::string& what) {
  const int64_t d = dim < 0 ? dim + rank : dim;
  HORO_CHECK(d >= 0 && d < rank, ShapeError, what, ": dimension ", dim, " is out of range for a ", rank, "-d tensor");
  return d;
}

}  // namespace horo::ops
