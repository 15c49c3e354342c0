// Eigen's GEMM for the avx2 target; see gemm_eigen.inc.
#define HORO_EIGEN_NAMESPACE horo_eigen_avx2
#define HORO_GEMM_FUNCTION gemm_eigen_avx2
#include "kernels/cpu/gemm_eigen.inc"
