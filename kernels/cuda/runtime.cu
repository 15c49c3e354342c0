// Device memory, copies and utilities (kernels/device.h).
#include <map>
#include <mutex>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/device.h"

namespace horo::kernels::cuda {
namespace {

// Freed blocks are kept by (device, size) and reused for requests of the same size, as a training
// step asks for the same sizes every iteration; on cudaMalloc failure the cache is emptied and the
// allocation retried once.
class DeviceCache {
 public:
  void* allocate(size_t bytes, int device) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.allocations;
      auto& blocks = free_[{device, bytes}];
      if (!blocks.empty()) {
        void* p = blocks.back();
        blocks.pop_back();
        stats_.cached_bytes -= bytes;
        stats_.in_use_bytes += bytes;
        return p;
      }
      ++stats_.cuda_mallocs;
    }
    CUDA_CHECK(cudaSetDevice(device));
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      release_cached();
      CUDA_CHECK(cudaMalloc(&p, bytes));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.in_use_bytes += bytes;
    return p;
  }

  void release(void* p, size_t bytes, int device) {
    std::lock_guard<std::mutex> lock(mutex_);
    free_[{device, bytes}].push_back(p);
    stats_.cached_bytes += bytes;
    stats_.in_use_bytes -= bytes;
  }

  void release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [key, blocks] : free_) {
      for (void* p : blocks) cudaFree(p);
      blocks.clear();
    }
    stats_.cached_bytes = 0;
  }

  AllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  std::mutex mutex_;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_;
  AllocatorStats stats_;
};

DeviceCache& cache() {
  static DeviceCache* c = new DeviceCache();  // outlives static destructors that free tensors
  return *c;
}

bool g_tf32 = false;

__global__ void fill_kernel(float* data, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) data[i] = value;
}

__global__ void argmax_kernel(const float* x, int64_t rows, int64_t cols, int64_t* out) {
  const int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (r >= rows) return;
  const float* row = x + r * cols;
  int64_t best = 0;
  for (int64_t c = 1; c < cols; ++c) if (row[c] > row[best]) best = c;
  out[r] = best;
}

}  // namespace

DeviceBuffer::DeviceBuffer(size_t size) : bytes(size) {
  CUDA_CHECK(cudaGetDevice(&device));
  data = static_cast<float*>(device_alloc(bytes, device));
}

DeviceBuffer::~DeviceBuffer() { device_free(data, bytes, device); }

cudaStream_t stream() {
  static cudaStream_t s = [] {
    cudaStream_t created;
    CUDA_CHECK(cudaStreamCreateWithFlags(&created, cudaStreamNonBlocking));
    return created;
  }();
  return s;
}

cublasHandle_t blas() {
  static cublasHandle_t h = [] {
    cublasHandle_t created;
    CUBLAS_CHECK(cublasCreate(&created));
    CUBLAS_CHECK(cublasSetStream(created, stream()));
    return created;
  }();
  return h;
}

bool available() { return device_count() > 0; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for a CPU run
    return 0;
  }
  return n;
}

void set_device(int device) { CUDA_CHECK(cudaSetDevice(device)); }

void* device_alloc(size_t bytes, int device) { return cache().allocate(bytes, device); }
void device_free(void* pointer, size_t bytes, int device) { cache().release(pointer, bytes, device); }

void* pinned_alloc(size_t bytes) {
  void* p = nullptr;
  CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
  return p;
}

void pinned_free(void* pointer) { cudaFreeHost(pointer); }

AllocatorStats allocator_stats() { return cache().stats(); }

void copy(void* dst, const void* src, size_t bytes, Copy kind) {
  if (bytes == 0) return;
  const cudaMemcpyKind k = kind == Copy::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == Copy::DeviceToHost ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, stream()));
  // Host memory given to us may be pageable and reused at once: finish the copy before returning.
  if (kind != Copy::DeviceToDevice) CUDA_CHECK(cudaStreamSynchronize(stream()));
}

void copy_async_to_device(void* dst, const void* src, size_t bytes) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
}

void fill(float* data, int64_t n, float value) {
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(data, n, value);
  CUDA_CHECK_LAUNCH("fill");
}

void zero(void* data, size_t bytes) { CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, stream())); }

void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t* out) {
  if (rows == 0) return;
  argmax_kernel<<<blocks_for(rows), kThreads, 0, stream()>>>(x, rows, cols, out);
  CUDA_CHECK_LAUNCH("argmax_rows");
}

void synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream())); }

void set_tf32(bool on) {
  g_tf32 = on;
  CUBLAS_CHECK(cublasSetMathMode(blas(), on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

}  // namespace horo::kernels::cuda
