#include <algorithm>

#include "kernels/gemm.h"
#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace horo::ops {

Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a, bool trans_b) {
  check_rank(a, 2, "matmul: left operand");
  check_rank(b, 2, "matmul: right operand");
  check_dtype(a, DType::Float32, "matmul: left operand");
  check_dtype(b, DType::Float32, "matmul: right operand");
  const int64_t m = trans_a ? a.size(1) : a.size(0), k = trans_a ? a.size(0) : a.size(1);
  const int64_t k2 = trans_b ? b.size(1) : b.size(0), n = trans_b ? b.size(0) : b.size(1);
  HORO_CHECK(k == k2, ShapeError, "matmul: inner sizes differ: ", a.describe(), (trans_a ? "^T" : ""), " @ ",
             b.describe(), (trans_b ? "^T" : ""));
  Tensor out = Tensor::empty({m, n}, DType::Float32, a.device());
  check_same_device("matmul", {&a, &b});
  HORO_DISPATCH(a.device(), gemm, {.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k, .a = a.data<float>(),
                      .lda = a.size(1), .b = b.data<float>(), .ldb = b.size(1), .c = out.data<float>(), .ldc = n});
  return out;
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_rank(x, 2, "linear: input");
  check_rank(weight, 2, "linear: weight");
  HORO_CHECK(x.size(1) == weight.size(1), ShapeError, "linear: input ", x.describe(), " has ", x.size(1),
             " features but weight ", weight.describe(), " expects ", weight.size(1));
  check_same_device("linear", {&x, &weight, &bias});
  const int64_t n = x.size(0), out_features = weight.size(0);
  if (x.device().is_cuda()) {
    // On the GPU the bias is a broadcast add after the GEMM (rows cannot be prefilled from the host).
    Tensor out = matmul(x, weight, false, true);
    if (bias.defined()) {
      check_shape(bias, {out_features}, "linear: bias");
      return binary(kernels::Binary::Add, out, bias);
    }
    return out;
  }
  Tensor out = Tensor::empty({n, out_features}, DType::Float32, x.device());
  float* o = out.data<float>();
  if (bias.defined()) {
    check_shape(bias, {out_features}, "linear: bias");
    const float* b = bias.data<float>();
    for (int64_t i = 0; i < n; ++i) std::copy(b, b + out_features, o + i * out_features);
  }
  HORO_DISPATCH(x.device(), gemm, {.trans_b = true, .m = n, .n = out_features, .k = x.size(1), .a = x.data<float>(),
                      .lda = x.size(1), .b = weight.data<float>(), .ldb = weight.size(1),
                      .beta = bias.defined() ? 1.0f : 0.0f, .c = o, .ldc = out_features});
  return out;
}

}  // namespace horo::ops
