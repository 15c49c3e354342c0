#include "kernels/copy.h"
#include "kernels/cuda/common.cuh"

namespace horo::kernels::cuda {

void copy_rows(const void* src, int64_t src_stride, void* dst, int64_t dst_stride, int64_t row_bytes, int64_t rows) {
  if (rows <= 0 || row_bytes <= 0) return;
  CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(dst_stride), src, static_cast<size_t>(src_stride),
                               static_cast<size_t>(row_bytes), static_cast<size_t>(rows), cudaMemcpyDeviceToDevice,
                               stream()));
}

}  // namespace horo::kernels::cuda
