// Shared by the CUDA kernels: error checks that throw horo's exceptions naming the call, the stream
// every kernel runs on, and launch-size helpers.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/error.h"

#define CUDA_CHECK(call)                                                                              \
  do {                                                                                                \
    const cudaError_t status_ = (call);                                                               \
    if (status_ != cudaSuccess)                                                                       \
      throw ::horo::BackendError(::horo::detail::concat(#call, " failed: ", cudaGetErrorString(status_))); \
  } while (0)

#define CUBLAS_CHECK(call)                                                                            \
  do {                                                                                                \
    const cublasStatus_t status_ = (call);                                                            \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                             \
      throw ::horo::BackendError(::horo::detail::concat(#call, " failed: ", cublasGetStatusString(status_))); \
  } while (0)

// After each launch: a bad configuration or an earlier asynchronous fault, named by the kernel.
#define CUDA_CHECK_LAUNCH(name)                                                                       \
  do {                                                                                                \
    const cudaError_t status_ = cudaGetLastError();                                                   \
    if (status_ != cudaSuccess)                                                                       \
      throw ::horo::BackendError(::horo::detail::concat("CUDA kernel ", name, " failed: ", cudaGetErrorString(status_))); \
  } while (0)

namespace horo::kernels::cuda {

// The stream horo's kernels, copies and cuBLAS calls use (one per process, created on first use).
cudaStream_t stream();
cublasHandle_t blas();

// A scratch buffer from the caching device allocator, returned to it when the call ends.
struct DeviceBuffer {
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  float* data = nullptr;
  size_t bytes;
  int device = 0;
};

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) {
  const int64_t b = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 16 ? 65535 * 16 : b));
}

}  // namespace horo::kernels::cuda
