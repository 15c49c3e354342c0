// Eigen's GEMM for the baseline target; see gemm_eigen.inc.
#define HORO_EIGEN_NAMESPACE horo_eigen_baseline
#define HORO_GEMM_FUNCTION gemm_eigen_baseline
#include "kernels/cpu/gemm_eigen.inc"
