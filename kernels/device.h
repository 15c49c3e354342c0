// The CUDA runtime as horo uses it: device memory from a caching allocator (no cudaMalloc once a
// training step has run), pinned host memory from a pool, copies, per-device streams, and small
// utilities. Built from kernels/cuda/*.cu when CMake finds CUDA; otherwise
// kernels/cuda_unavailable.cpp provides the same functions, which report that this build has no
// CUDA (and available() is false).
//
// Devices: every thread has a current device (CUDA's); horo's kernels run on that device's stream
// (one stream and one cuBLAS handle per device). Ops select their tensors' device for the duration
// of the call (DeviceScope) and restore the caller's; nothing else changes a thread's device behind
// its back. set_device() also names the process's device, on which pinned host memory is registered
// from any thread (a reader's workers included), so no thread opens a context on another GPU.
#pragma once

#include <cstddef>
#include <cstdint>

namespace horo::kernels::cuda {

// True when horo was built with CUDA and the process sees at least one GPU.
bool available();
int device_count();
// Selects the device for this thread's later allocations and launches, and makes it the process's
// device for pinned memory.
void set_device(int device);
// This thread's current device.
int current_device();

// Makes `device` current for the scope and restores the previous device at its end (no CUDA call
// when it is current already).
class DeviceScope {
 public:
  explicit DeviceScope(int device);
  ~DeviceScope();
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};

// True for memory a GPU owns (device or managed memory); false for host memory, and without CUDA.
bool is_device_pointer(const void* pointer);

void* device_alloc(size_t bytes, int device);
void device_free(void* pointer, size_t bytes, int device);
// Page-locked host memory from a pool: a block is handed out again only after every asynchronous
// copy from it has completed (tracked with events), so freeing never waits for the device.
void* pinned_alloc(size_t bytes);
void pinned_free(void* pointer);

struct AllocatorStats {
  uint64_t allocations = 0;    // requests served
  uint64_t cuda_mallocs = 0;   // of those, served by cudaMalloc (cache misses)
  uint64_t cache_flushes = 0;  // times a failed cudaMalloc released the cached blocks and retried
  size_t cached_bytes = 0;     // free blocks held
  size_t in_use_bytes = 0;
  size_t peak_in_use_bytes = 0;
  size_t pinned_bytes = 0;     // page-locked host memory held (in use and pooled)
};
AllocatorStats allocator_stats();
// Returns every cached device block to CUDA.
void release_cached_memory();

enum class Copy { HostToDevice, DeviceToHost, DeviceToDevice };
// Copies on the current stream. Copies to the host wait for the data (a host wait); copies from the
// host do not (pageable memory is staged by CUDA before the call returns; pinned memory is tracked).
void copy(void* dst, const void* src, size_t bytes, Copy kind);
// Copies pinned host memory to the device without waiting; the pinned block is not reused until the
// copy has completed.
void copy_async_to_device(void* dst, const void* src, size_t bytes);
// A copy from the device into pinned host memory, queued on the current stream without waiting;
// wait_copy() then blocks the calling thread until that copy (and what was queued before it) has
// completed. Neither counts as a host wait of the step nor raises the kernels' errors: for a helper
// thread (the gradient reducer's) that must leave both to the thread that owns the step.
struct PendingCopy {
  void* event = nullptr;  // a cudaEvent_t
};
PendingCopy copy_async_to_host(void* dst, const void* src, size_t bytes);
void wait_copy(PendingCopy& pending);
void fill(float* data, int64_t n, float value);
void zero(void* data, size_t bytes);
// Index of the largest value of each row of a [rows, cols] matrix.
void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t* out);
// *correct = the number of rows whose largest logit is at its label (a device scalar).
void count_correct(const float* logits, const int64_t* labels, int64_t rows, int64_t cols, float* correct);
// Waits for the current device's stream (a host wait).
void synchronize();
// How many times the host has waited for a GPU (stream synchronisations and copies to the host):
// the training step aims at one, the loss.
uint64_t host_waits();
// TF32 tensor-core GEMMs and convolutions (off by default: fp32 results as on the CPU).
void set_tf32(bool on);
bool tf32();
// Convolutions through cuDNN: available in builds with HORO_CUDNN, on unless switched off here or by
// HORO_CUDNN=0 in the environment (the im2col path then runs, as it does without cuDNN).
bool cudnn_available();
void set_cudnn(bool on);
bool cudnn_enabled();

}  // namespace horo::kernels::cuda
