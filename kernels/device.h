// The CUDA runtime as horo uses it: device memory from a caching allocator (no cudaMalloc once a
// training step has run), pinned host memory, copies, and small utilities. Built from
// kernels/cuda/*.cu when CMake finds CUDA; otherwise kernels/cuda_unavailable.cpp provides the same
// functions, which report that this build has no CUDA (and available() is false).
#pragma once

#include <cstddef>
#include <cstdint>

namespace horo::kernels::cuda {

// True when horo was built with CUDA and the process sees at least one GPU.
bool available();
int device_count();
// Selects the device for this thread's later allocations and launches.
void set_device(int device);

void* device_alloc(size_t bytes, int device);
void device_free(void* pointer, size_t bytes, int device);
void* pinned_alloc(size_t bytes);
void pinned_free(void* pointer);

struct AllocatorStats {
  uint64_t allocations = 0;  // requests served
  uint64_t cuda_mallocs = 0; // of those, served by cudaMalloc (cache misses)
  size_t cached_bytes = 0;   // free blocks held
  size_t in_use_bytes = 0;
};
AllocatorStats allocator_stats();

enum class Copy { HostToDevice, DeviceToHost, DeviceToDevice };
// Copies on the current stream; device-to-host copies wait for the data.
void copy(void* dst, const void* src, size_t bytes, Copy kind);
// Copies host (pinned) memory to the device without waiting.
void copy_async_to_device(void* dst, const void* src, size_t bytes);
void fill(float* data, int64_t n, float value);
void zero(void* data, size_t bytes);
// Index of the largest value of each row of a [rows, cols] matrix.
void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t* out);
void synchronize();
// TF32 tensor-core GEMMs (off by default: fp32 results as on the CPU).
void set_tf32(bool on);

}  // namespace horo::kernels::cuda
