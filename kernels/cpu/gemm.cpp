// The CPU GEMM: OpenBLAS (HORO_GEMM_OPENBLAS, its own run-time choice of CPU kernels; OPENBLAS_CORETYPE
// overrides it) or Eigen's, in the copy built for the SIMD target the kernels run with.
#include "kernels/gemm.h"

#include <hwy/targets.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/parallel.h"

#if defined(HORO_GEMM_OPENBLAS)
#include <cblas.h>

#include <atomic>
#endif

namespace horo::kernels::cpu {

#if defined(HORO_GEMM_OPENBLAS)

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) {  // C = beta * C (BLAS would refuse the leading dimensions of empty operands)
    for (int64_t i = 0; i < g.m; ++i) {
      float* row = g.c + i * g.ldc;
      for (int64_t j = 0; j < g.n; ++j) row[j] = g.beta == 0.0f ? 0.0f : g.beta * row[j];
    }
    return;
  }
  // OpenBLAS's thread count follows horo's (inside an OpenMP parallel region it runs on one thread).
  static std::atomic<int> openblas_threads{0};
  const int threads = get_num_threads();
  if (openblas_threads.load(std::memory_order_relaxed) != threads) {
    openblas_set_num_threads(threads);
    openblas_threads.store(threads, std::memory_order_relaxed);
  }
  cblas_sgemm(CblasRowMajor, g.trans_a ? CblasTrans : CblasNoTrans, g.trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(g.m), static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, g.a,
              static_cast<blasint>(g.lda), g.b, static_cast<blasint>(g.ldb), g.beta, g.c, static_cast<blasint>(g.ldc));
}

std::string gemm_backend() { return std::string("OpenBLAS (core ") + openblas_get_corename() + ")"; }

#else

void gemm_eigen_baseline(const GemmArgs& g, int threads);
#if defined(HORO_GEMM_X86_TARGETS)
void gemm_eigen_avx2(const GemmArgs& g, int threads);
void gemm_eigen_avx512(const GemmArgs& g, int threads);
#endif

void gemm(const GemmArgs& g) {
  const int threads = get_num_threads();
#if defined(HORO_GEMM_X86_TARGETS)
  const int64_t target = chosen_simd_target();
  if (target & (HWY_AVX3 | HWY_AVX3_DL)) return gemm_eigen_avx512(g, threads);
  if (target & HWY_AVX2) return gemm_eigen_avx2(g, threads);
#endif
  gemm_eigen_baseline(g, threads);
}

std::string gemm_backend() {
#if defined(HORO_GEMM_X86_TARGETS)
  const int64_t target = chosen_simd_target();
  if (target & (HWY_AVX3 | HWY_AVX3_DL)) return "Eigen (avx512)";
  if (target & HWY_AVX2) return "Eigen (avx2)";
#endif
  return "Eigen (baseline)";
}

#endif

}  // namespace horo::kernels::cpu
