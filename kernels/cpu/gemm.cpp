#include "kernels/gemm.h"

#include <Eigen/Core>

namespace horo::kernels::cpu {
namespace {
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ColMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;
using Stride = Eigen::OuterStride<>;
}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  Eigen::Map<RowMajor, 0, Stride> c(g.c, g.m, g.n, Stride(g.ldc));
  if (g.k == 0) {
    if (g.beta == 0.0f) c.setZero(); else c *= g.beta;
    return;
  }
  // A transposed, stored row-major [k, m], is the same memory as a column-major [m, k].
  auto run = [&](const auto& a, const auto& b) {
    if (g.beta == 0.0f) {
      c.noalias() = g.alpha * (a * b);
    } else {
      if (g.beta != 1.0f) c *= g.beta;
      c.noalias() += g.alpha * (a * b);
    }
  };
  using ConstRow = Eigen::Map<const RowMajor, 0, Stride>;
  using ConstCol = Eigen::Map<const ColMajor, 0, Stride>;
  if (!g.trans_a && !g.trans_b) run(ConstRow(g.a, g.m, g.k, Stride(g.lda)), ConstRow(g.b, g.k, g.n, Stride(g.ldb)));
  else if (g.trans_a && !g.trans_b) run(ConstCol(g.a, g.m, g.k, Stride(g.lda)), ConstRow(g.b, g.k, g.n, Stride(g.ldb)));
  else if (!g.trans_a && g.trans_b) run(ConstRow(g.a, g.m, g.k, Stride(g.lda)), ConstCol(g.b, g.k, g.n, Stride(g.ldb)));
  else run(ConstCol(g.a, g.m, g.k, Stride(g.lda)), ConstCol(g.b, g.k, g.n, Stride(g.ldb)));
}

}  // namespace horo::kernels::cpu
