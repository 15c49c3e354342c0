// The part of the CUDA runtime plumbing host-only code may use (dist/nccl_communicator.cpp): error
// checks that throw horo's exceptions naming the call, and the current device's stream. Kernels
// include kernels/cuda/common.cuh, which adds the device-side helpers.
#pragma once

#include <cuda_runtime.h>

#include "kernels/error.h"

#define CUDA_CHECK(call)                                                                              \
  do {                                                                                                \
    const cudaError_t status_ = (call);                                                               \
    if (status_ != cudaSuccess)                                                                       \
      throw ::horo::BackendError(::horo::detail::concat(#call, " failed: ", cudaGetErrorString(status_))); \
  } while (0)

namespace horo::kernels::cuda {

// The stream horo's kernels, copies and cuBLAS calls use on the current device (one per device,
// created on first use).
cudaStream_t stream();

}  // namespace horo::kernels::cuda
