// Device memory, pinned memory, streams, copies and utilities (kernels/device.h).
#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cuda/common.cuh"
#include "kernels/device.h"

namespace horo::kernels::cuda {
namespace {

constexpr int kMaxDevices = 64;
std::atomic<int> g_process_device{0};
std::atomic<uint64_t> g_host_waits{0};
std::atomic<bool> g_tf32{false};
// Whether this process has used a GPU: until then nothing may touch the CUDA runtime in a way that
// opens a context (a CPU run on a GPU machine stays off the GPUs).
std::atomic<bool> g_gpu_used{false};

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
        add_in_use(bytes);
        return p;
      }
      ++stats_.cuda_mallocs;
    }
    const DeviceScope scope(device);
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      cudaGetLastError();
      release_cached();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ++stats_.cache_flushes;
      }
      const cudaError_t status = cudaMalloc(&p, bytes);
      if (status != cudaSuccess) {
        cudaGetLastError();
        const AllocatorStats s = stats();
        throw BackendError(detail::concat("cannot allocate ", bytes, " bytes on cuda:", device, " (", cudaGetErrorString(status),
                                          "): ", s.in_use_bytes, " bytes in use by horo's tensors, peak ", s.peak_in_use_bytes));
      }
    }
    std::lock_guard<std::mutex> lock(mutex_);
    add_in_use(bytes);
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
      const DeviceScope scope(key.first);
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
  void add_in_use(size_t bytes) {
    stats_.in_use_bytes += bytes;
    if (stats_.in_use_bytes > stats_.peak_in_use_bytes) stats_.peak_in_use_bytes = stats_.in_use_bytes;
  }

  std::mutex mutex_;
  std::map<std::pair<int, size_t>, std::vector<void*>> free_;
  AllocatorStats stats_;
};

DeviceCache& cache() {
  static DeviceCache* c = new DeviceCache();  // outlives static destructors that free tensors
  return *c;
}

// Pinned host blocks by size. A block used as the source of an asynchronous copy carries an event
// recorded after the copy; it is handed out again only once that event has completed.
class PinnedPool {
 public:
  void* allocate(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto& blocks = free_[bytes];
      for (size_t i = 0; i < blocks.size(); ++i) {
        if (!copies_done(blocks[i])) continue;
        void* p = blocks[i].pointer;
        live_[p] = blocks[i];
        blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(i));
        return p;
      }
    }
    // Registered on the process's device, whichever thread asks (a reader's worker included).
    const DeviceScope scope(g_process_device.load());
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    std::lock_guard<std::mutex> lock(mutex_);
    live_[p] = Block{p, bytes, nullptr, -1};
    held_bytes_ += bytes;
    return p;
  }

  void release(void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return;
    free_[it->second.bytes].push_back(it->second);
    live_.erase(it);
  }

  // Records, on the current stream, that a copy from `source` (inside a live block) was queued.
  void record_copy(const void* source) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.upper_bound(const_cast<void*>(source));
    if (it == live_.begin()) return;
    --it;
    Block& b = it->second;
    if (static_cast<const char*>(source) >= static_cast<const char*>(b.pointer) + b.bytes) return;
    const int device = current_device();
    if (b.event && b.event_device != device) {
      cudaEventDestroy(b.event);
      b.event = nullptr;
    }
    if (!b.event) {
      CUDA_CHECK(cudaEventCreateWithFlags(&b.event, cudaEventDisableTiming));
      b.event_device = device;
    }
    CUDA_CHECK(cudaEventRecord(b.event, stream()));
  }

  size_t held_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_bytes_;
  }

 private:
  struct Block {
    void* pointer = nullptr;
    size_t bytes = 0;
    cudaEvent_t event = nullptr;
    int event_device = -1;
  };
  static bool copies_done(const Block& b) {
    if (!b.event) return true;
    const cudaError_t status = cudaEventQuery(b.event);
    if (status == cudaErrorNotReady) {
      cudaGetLastError();
      return false;
    }
    CUDA_CHECK(status);
    return true;
  }

  std::mutex mutex_;
  std::map<size_t, std::vector<Block>> free_;
  std::map<void*, Block> live_;
  size_t held_bytes_ = 0;
};

PinnedPool& pinned_pool() {
  static PinnedPool* pool = new PinnedPool();
  return *pool;
}

// A device's stream, cuBLAS handle and error record, created on first use with the device current.
struct DeviceState {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  DeviceErrorRecord* host_record = nullptr;    // what the host reads
  DeviceErrorRecord* device_record = nullptr;  // the same memory, as kernels address it
};

DeviceState& device_state() {
  static std::array<std::once_flag, kMaxDevices> once;
  static std::array<DeviceState, kMaxDevices> states;
  const int device = current_device();
  HORO_CHECK(device >= 0 && device < kMaxDevices, BackendError, "cuda:", device, " is beyond the ", kMaxDevices,
             " devices horo supports");
  std::call_once(once[static_cast<size_t>(device)], [device] {
    DeviceState& s = states[static_cast<size_t>(device)];
    CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&s.blas));
    CUBLAS_CHECK(cublasSetStream(s.blas, s.stream));
    CUBLAS_CHECK(cublasSetMathMode(s.blas, g_tf32.load() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    void* record = nullptr;
    CUDA_CHECK(cudaHostAlloc(&record, sizeof(DeviceErrorRecord), cudaHostAllocMapped));
    s.host_record = static_cast<DeviceErrorRecord*>(record);
    *s.host_record = DeviceErrorRecord{kNoDeviceError, 0, 0, 0};
    void* on_device = nullptr;
    CUDA_CHECK(cudaHostGetDevicePointer(&on_device, record, 0));
    s.device_record = static_cast<DeviceErrorRecord*>(on_device);
  });
  return states[static_cast<size_t>(device)];
}

__global__ void fill_kernel(float* data, int64_t n, float value) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) data[i] = value;
}

// The first largest value of each row (a NaN wins, as on the CPU); rows in a grid-stride loop.
__device__ inline int64_t row_argmax(const float* row, int64_t cols) {
  int64_t best = 0;
  for (int64_t c = 1; c < cols; ++c) {
    if (row[c] > row[best] || (isnan(row[c]) && !isnan(row[best]))) best = c;
  }
  return best;
}

__global__ void argmax_kernel(const float* x, int64_t rows, int64_t cols, int64_t* out) {
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < rows; r += int64_t{gridDim.x} * blockDim.x) {
    out[r] = row_argmax(x + r * cols, cols);
  }
}

// One block: each thread counts its rows, then a shared-memory sum.
__global__ void count_correct_kernel(const float* logits, const int64_t* labels, int64_t rows, int64_t cols, float* correct) {
  __shared__ float partial[kThreads];
  float count = 0.0f;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) count += row_argmax(logits + r * cols, cols) == labels[r] ? 1.0f : 0.0f;
  partial[threadIdx.x] = count;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) *correct = partial[0];
}

}  // namespace

DeviceScope::DeviceScope(int device) {
  int current = 0;
  CUDA_CHECK(cudaGetDevice(&current));
  if (current == device) return;
  CUDA_CHECK(cudaSetDevice(device));
  previous_ = current;
}

DeviceScope::~DeviceScope() {
  if (previous_ >= 0) cudaSetDevice(previous_);
}

DeviceBuffer::DeviceBuffer(size_t size) : bytes(size) {
  device = current_device();
  data = static_cast<float*>(device_alloc(bytes, device));
}

DeviceBuffer::~DeviceBuffer() { device_free(data, bytes, device); }

cudaStream_t stream() { return device_state().stream; }
cublasHandle_t blas() { return device_state().blas; }
DeviceErrorRecord* device_error_record() { return device_state().device_record; }

void raise_device_errors() {
  DeviceErrorRecord& r = *device_state().host_record;
  const int code = reinterpret_cast<volatile DeviceErrorRecord&>(r).code;
  if (code == kNoDeviceError) return;
  const long long a = r.a, b = r.b, c = r.c;
  r.code = kNoDeviceError;
  if (code == kLabelOutOfRange) {
    throw ValueError(detail::concat("cross_entropy: label ", a, " at batch index ", b, " is outside the class range [0, ", c, ")"));
  }
  throw BackendError(detail::concat("a CUDA kernel reported error ", code));
}

void count_host_wait() { ++g_host_waits; }

bool available() { return device_count() > 0; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // no driver or no device: not an error for a CPU run
    return 0;
  }
  return n;
}

void set_device(int device) {
  g_gpu_used = true;
  CUDA_CHECK(cudaSetDevice(device));
  g_process_device = device;
}

int current_device() {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  return device;
}

bool is_device_pointer(const void* pointer) {
  if (!pointer || !g_gpu_used.load()) return false;
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, pointer) != cudaSuccess) {
    cudaGetLastError();  // not memory CUDA knows: host memory
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

void* device_alloc(size_t bytes, int device) {
  g_gpu_used = true;
  return cache().allocate(bytes, device);
}
void device_free(void* pointer, size_t bytes, int device) { cache().release(pointer, bytes, device); }

void* pinned_alloc(size_t bytes) {
  g_gpu_used = true;
  return pinned_pool().allocate(bytes);
}
void pinned_free(void* pointer) { pinned_pool().release(pointer); }

AllocatorStats allocator_stats() {
  AllocatorStats s = cache().stats();
  s.pinned_bytes = pinned_pool().held_bytes();
  return s;
}

void release_cached_memory() { cache().release_cached(); }

void copy(void* dst, const void* src, size_t bytes, Copy kind) {
  if (bytes == 0) return;
  const cudaMemcpyKind k = kind == Copy::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == Copy::DeviceToHost ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, stream()));
  if (kind == Copy::HostToDevice) pinned_pool().record_copy(src);  // pageable sources are staged by CUDA
  if (kind != Copy::DeviceToHost) return;
  count_host_wait();
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  raise_device_errors();
}

void copy_async_to_device(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream()));
  pinned_pool().record_copy(src);
}

void fill(float* data, int64_t n, float value) {
  if (n == 0) return;
  fill_kernel<<<blocks_for(n), kThreads, 0, stream()>>>(data, n, value);
  CUDA_CHECK_LAUNCH("fill");
}

void zero(void* data, size_t bytes) {
  if (bytes == 0) return;
  CUDA_CHECK(cudaMemsetAsync(data, 0, bytes, stream()));
}

void argmax_rows(const float* x, int64_t rows, int64_t cols, int64_t* out) {
  if (rows == 0) return;
  argmax_kernel<<<blocks_for(rows), kThreads, 0, stream()>>>(x, rows, cols, out);
  CUDA_CHECK_LAUNCH("argmax_rows");
}

void count_correct(const float* logits, const int64_t* labels, int64_t rows, int64_t cols, float* correct) {
  count_correct_kernel<<<1, kThreads, 0, stream()>>>(logits, labels, rows, cols, correct);
  CUDA_CHECK_LAUNCH("count_correct");
}

void synchronize() {
  count_host_wait();
  CUDA_CHECK(cudaStreamSynchronize(stream()));
  raise_device_errors();
}

uint64_t host_waits() { return g_host_waits.load(); }

bool tf32() { return g_tf32.load(); }

void set_tf32(bool on) {
  g_tf32 = on;
  // The current device's handle now; others take the setting when they are created.
  CUBLAS_CHECK(cublasSetMathMode(blas(), on ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
}

}  // namespace horo::kernels::cuda
