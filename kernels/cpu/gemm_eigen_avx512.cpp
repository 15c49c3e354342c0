// Eigen's GEMM for the avx512 target; see gemm_eigen.inc.
#define HORO_EIGEN_NAMESPACE horo_eigen_avx512
#define HORO_GEMM_FUNCTION gemm_eigen_avx512
#include "kernels/cpu/gemm_eigen.inc"
