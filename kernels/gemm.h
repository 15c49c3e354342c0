// Row-major GEMM: C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C, op = transpose when asked.
// lda/ldb/ldc are row strides of A, B and C as stored.
#pragma once

#include <cstdint>
#include <string>

namespace horo::kernels {

struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  float alpha = 1.0f;
  const float* a = nullptr;
  int64_t lda = 0;
  const float* b = nullptr;
  int64_t ldb = 0;
  float beta = 0.0f;
  float* c = nullptr;
  int64_t ldc = 0;
};

namespace cpu {
void gemm(const GemmArgs& args);  // OpenBLAS or Eigen; threads inside unless already parallel
// Which library the CPU GEMM is and the kernels it runs: "OpenBLAS (core SkylakeX)", "Eigen (avx2)".
std::string gemm_backend();
}  // namespace cpu
// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void gemm(const GemmArgs& args);  // cuBLAS, fp32 (TF32 when enabled in kernels/device.h)
}  // namespace cuda

namespace ref { void gemm(const GemmArgs& args); }  // triple loop, double accumulation

}  // namespace horo::kernels
