// The CPU GEMM: Eigen's, in the copy built for the SIMD target the kernels run with.
#include "kernels/gemm.h"

#include <hwy/targets.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/parallel.h"

namespace horo::kernels::cpu {

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

}  // namespace horo::kernels::cpu
