// Row-major GEMM through column-major cuBLAS: C = op(A) op(B) is, read column-major, C^T = op(B)^T op(A)^T,
// so the operands are passed swapped, each with its own transpose flag.
#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/gemm.h"

namespace horo::kernels::cuda {
namespace {

// C = beta * C for an inner size of 0 (cuBLAS refuses the zero leading dimensions such operands have).
__global__ void scale_rows_kernel(int64_t m, int64_t n, int64_t ldc, float beta, float* c) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < m * n; i += int64_t{gridDim.x} * blockDim.x) {
    float* cell = c + (i / n) * ldc + i % n;
    *cell = beta == 0.0f ? 0.0f : beta * *cell;  // beta 0 overwrites (NaN in C included), as BLAS does
  }
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {
    scale_rows_kernel<<<blocks_for(g.m * g.n), kThreads, 0, stream()>>>(g.m, g.n, g.ldc, g.beta, g.c);
    CUDA_CHECK_LAUNCH("gemm (inner size 0)");
    return;
  }
  HORO_CHECK(g.m <= INT32_MAX && g.n <= INT32_MAX && g.k <= INT32_MAX && g.lda <= INT32_MAX && g.ldb <= INT32_MAX &&
                 g.ldc <= INT32_MAX, ValueError, "gemm: ", g.m, " x ", g.n, " x ", g.k, " exceeds cuBLAS's 32-bit sizes");
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasSgemm(blas(), op_b, op_a, static_cast<int>(g.n), static_cast<int>(g.m), static_cast<int>(g.k), &g.alpha,
                           g.b, static_cast<int>(g.ldb), g.a, static_cast<int>(g.lda), &g.beta, g.c, static_cast<int>(g.ldc)));
}

}  // namespace horo::kernels::cuda
