// Concatenation and narrowing along a dimension of contiguous tensors: each is a strided block copy
// (kernels/copy.h), `outer` blocks per tensor, a block being everything from the dimension inwards.
#include "kernels/copy.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace horo::ops {
namespace {

// Elements before dimension d (the number of blocks) and after it (one slice's size).
std::pair<int64_t, int64_t> outer_inner(const Shape& shape, int64_t d) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < d) outer *= shape[i];
    if (i > d) inner *= shape[i];
  }
  return {outer, inner};
}

}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  HORO_CHECK(!tensors.empty(), ValueError, "cat: no tensors to join");
  const Tensor& first = tensors.front();
  const int64_t d = normalize_dim(dim, first.dim(), "cat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const Tensor& t = tensors[k];
    HORO_CHECK(t.dim() == first.dim() && t.dtype() == first.dtype(), ShapeError, "cat: tensor ", k, " ", t.describe(),
               " does not match tensor 0 ", first.describe(), " in rank or dtype");
    for (int64_t i = 0; i < first.dim(); ++i) {
      HORO_CHECK(i == d || t.size(i) == first.size(i), ShapeError, "cat along dimension ", d, ": tensor ", k, " ",
                 t.describe(), " differs from tensor 0 ", first.describe(), " in dimension ", i);
    }
    check_same_device("cat", {&first, &t});
    out_shape[d] += t.size(d);
  }
  Tensor out = Tensor::empty(out_shape, first.dtype(), first.device());
  const int64_t element = static_cast<int64_t>(dtype_size(first.dtype()));
  const auto [outer, inner] = outer_inner(out_shape, d);
  const int64_t out_row = out_shape[d] * inner * element;
  int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const int64_t row = t.size(d) * inner * element;
    HORO_DISPATCH(first.device(), copy_rows, t.raw_data(), row, static_cast<char*>(out.raw_data()) + offset, out_row, row,
                  outer);
    offset += row;
  }
  return out;
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  const int64_t d = normalize_dim(dim, x.dim(), "narrow");
  HORO_CHECK(start >= 0 && length >= 0 && start + length <= x.size(d), ShapeError, "narrow: [", start, ", ",
             start + length, ") is outside dimension ", d, " of ", x.describe());
  Shape shape = x.shape();
  shape[d] = length;
  Tensor out = Tensor::empty(shape, x.dtype(), x.device());
  const int64_t element = static_cast<int64_t>(dtype_size(x.dtype()));
  const auto [outer, inner] = outer_inner(x.shape(), d);
  HORO_DISPATCH(x.device(), copy_rows, static_cast<const char*>(x.raw_data()) + start * inner * element,
                x.size(d) * inner * element, out.raw_data(), length * inner * element, length * inner * element, outer);
  return out;
}

}  // namespace horo::ops
