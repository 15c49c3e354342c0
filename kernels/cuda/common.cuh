// Shared by the CUDA kernels: error checks that throw horo's exceptions naming the call, the current
// device's stream and cuBLAS handle, errors kernels report without a host wait, and launch-size helpers.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/stream.h"
#include "kernels/error.h"

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

// The cuBLAS handle bound to the current device's stream (stream(), kernels/cuda/stream.h).
cublasHandle_t blas();

// Errors kernels find in their inputs (a label outside the class range): recorded in host-mapped
// memory and raised as ValueError by the next host wait on that device, so checking costs no wait.
enum DeviceErrorCode : int { kNoDeviceError = 0, kLabelOutOfRange = 1 };
struct DeviceErrorRecord {
  int code;
  long long a, b, c;
};
// The current device's record, as a device pointer for kernels.
DeviceErrorRecord* device_error_record();
// Raises and clears the current device's recorded error; called after every host wait.
void raise_device_errors();

__device__ inline void report_device_error(DeviceErrorRecord* record, int code, long long a, long long b, long long c) {
  if (atomicCAS(&record->code, kNoDeviceError, code) == kNoDeviceError) {  // the first error is the one reported
    record->a = a;
    record->b = b;
    record->c = c;
  }
}

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
// Blocks for n threads' worth of work, capped: kernels stride over the rest (grid-stride loops).
constexpr int64_t kMaxBlocks = 65535 * 16;
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > kMaxBlocks ? kMaxBlocks : b));
}

// Counts one host wait (kernels/device.h host_waits()).
void count_host_wait();

}  // namespace horo::kernels::cuda
