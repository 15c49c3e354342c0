// Row-major GEMM through column-major cuBLAS: C = op(A) op(B) is, read column-major, C^T = op(B)^T op(A)^T,
// so the operands are passed swapped, each with its own transpose flag.
#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"

namespace horo::kernels::cuda {

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasSgemm(blas(), op_b, op_a, static_cast<int>(g.n), static_cast<int>(g.m), static_cast<int>(g.k), &g.alpha,
                           g.b, static_cast<int>(g.ldb), g.a, static_cast<int>(g.lda), &g.beta, g.c, static_cast<int>(g.ldc)));
}

}  // namespace horo::kernels::cuda
