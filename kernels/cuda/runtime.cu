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
// Whether this thread has chosen a device (set_device, or a DeviceScope that found none chosen). A
// thread that has not is on device 0 without a context there; restoring "device 0" for it would open
// one (CUDA 12 creates the primary context in cudaSetDevice), so such a thread is left on the device
// it was moved to.
thread_local bool t_device_chosen = false;

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
    // A worker thread that never chose a device works on the process's (querying events and
    // registering memory there), never on device 0 by default.
    const DeviceScope scope(g_process_device.load());
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
    void* p = nullptr;
    CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    std::lock_guard<std::mutex> lock(mutex_);
    live_[p] = Block{p, bytes, {}};
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
    // One event per device that copied from the block: a copy still running on one GPU keeps the
    // block out of reuse even after another GPU has copied from it too.
    const int device = current_device();
    cudaEvent_t* event = nullptr;
    for (auto& [d, e] : b.events) {
      if (d == device) event = &e;
    }
    if (!event) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
      b.events.emplace_back(device, e);
      event = &b.events.back().second;
    }
    CUDA_CHECK(cudaEventRecord(*event, stream()));
  }

  size_t held_bytes() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_bytes_;
  }

 private:
  struct Block {
    void* pointer = nullptr;
    size_t bytes = 0;
    std::vector<std::pair<int, cudaEvent_t>> events;  // (device, last copy recorded there)
  };
  static bool copies_done(const Block& b) {
    for (const auto& [device, event] : b.events) {
      (void)device;
      const cudaError_t status = cudaEventQuery(event);
      if (status == cudaErrorNotReady) {
        cudaGetLastError();
        return false;
      }
      CUDA_CHECK(status);
    }
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
  std::atomic<int> blas_tf32{-1};  // the math mode last set on `blas` (-1: none yet)
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
  if (current == device && t_device_chosen) return;
  CUDA_CHECK(cudaSetDevice(device));
  // A thread that had chosen no device stays on this one (see t_device_chosen): nothing to restore.
  if (t_device_chosen) previous_ = current;
  t_device_chosen = true;
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
// The math mode follows set_tf32() on every device's handle, applied when the handle is next used.
cublasHandle_t blas() {
  DeviceState& s = device_state();
  const int want = g_tf32.load() ? 1 : 0;
  if (s.blas_tf32.load() != want) {
    CUBLAS_CHECK(cublasSetMathMode(s.blas, want ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    s.blas_tf32 = want;
  }
  return s.blas;
}
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
  t_device_chosen = true;
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

PendingCopy copy_async_to_host(void* dst, const void* src, size_t bytes) {
  PendingCopy pending;
  if (bytes == 0) return pending;
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream()));
  cudaEvent_t event = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(event, stream()));
  pending.event = event;
  return pending;
}

void wait_copy(PendingCopy& pending) {
  if (!pending.event) return;
  cudaEvent_t event = static_cast<cudaEvent_t>(pending.event);
  pending.event = nullptr;
  const cudaError_t status = cudaEventSynchronize(event);
  cudaEventDestroy(event);
  CUDA_CHECK(status);
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

void set_tf32(bool on) { g_tf32 = on; }  // each cuBLAS handle takes it at its next use (blas())

}  // namespace horo::kernels::cuda
