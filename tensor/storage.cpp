#include "tensor/storage.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "kernels/device.h"
#include "kernels/error.h"

namespace horo {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float32: return 4;
    case DType::Int64: return 8;
    case DType::Int32: return 4;
    case DType::UInt8: return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Float32: return "float32";
    case DType::Int64: return "int64";
    case DType::Int32: return "int32";
    case DType::UInt8: return "uint8";
  }
  return "?";
}

Device Device::parse(const std::string& text) {
  if (text == "cpu") return cpu();
  if (text == "cuda") return cuda(0);
  if (text.rfind("cuda:", 0) == 0 && text.size() > 5 && text.find_first_not_of("0123456789", 5) == std::string::npos) {
    return cuda(std::stoi(text.substr(5)));
  }
  throw ValueError(detail::concat("device: expected 'cpu', 'cuda' or 'cuda:N', got '", text, "'"));
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

namespace {

constexpr size_t kCacheMinBytes = size_t{64} << 10;   // smaller blocks: malloc is already fast
constexpr size_t kCacheMaxBytes = size_t{2} << 30;    // keep at most this much idle memory

class CpuCache {
 public:
  static CpuCache& instance() {
    static CpuCache* cache = new CpuCache();  // never destroyed: tensors may outlive static teardown
    return *cache;
  }

  void* allocate(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.allocations;
      if (bytes >= kCacheMinBytes) {
        auto it = free_.find(bytes);
        if (it != free_.end() && !it->second.empty()) {
          void* p = it->second.back();
          it->second.pop_back();
          stats_.cached_bytes -= bytes;
          return p;
        }
        ++stats_.cache_misses;
      }
    }
    void* p = std::aligned_alloc(kCpuAlignment, bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }

  void release(void* p, size_t bytes) {
    if (bytes >= kCacheMinBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stats_.cached_bytes + bytes <= kCacheMaxBytes) {
        free_[bytes].push_back(p);
        stats_.cached_bytes += bytes;
        return;
      }
    }
    std::free(p);
  }

  void release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [bytes, blocks] : free_) {
      for (void* p : blocks) std::free(p);
    }
    free_.clear();
    stats_.cached_bytes = 0;
  }

  CpuAllocatorStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  CpuAllocatorStats stats_;
};

// aligned_alloc needs a multiple of the alignment; never zero, so data() is always valid.
size_t rounded_size(size_t bytes) {
  const size_t rounded = (bytes + kCpuAlignment - 1) / kCpuAlignment * kCpuAlignment;
  return rounded == 0 ? kCpuAlignment : rounded;
}

std::atomic<size_t> g_cpu_in_use{0};
std::atomic<size_t> g_cpu_limit{0};

}  // namespace

void set_cpu_memory_limit(size_t bytes) { g_cpu_limit = bytes; }
size_t cpu_memory_in_use() { return g_cpu_in_use; }

CpuAllocatorStats cpu_allocator_stats() { return CpuCache::instance().stats(); }
void cpu_allocator_release_cache() { CpuCache::instance().release_all(); }

Storage::Storage(size_t bytes, Device device, bool pinned) : bytes_(bytes), device_(device), pinned_(pinned) {
  if (pinned) {
    HORO_CHECK(device.is_cpu(), TypeError, "pinned memory is host memory; asked for ", device.str());
    data_ = kernels::cuda::pinned_alloc(rounded_size(bytes));
    return;
  }
  if (device.is_cuda()) {
    HORO_CHECK(kernels::cuda::available(), TypeError, "cannot allocate ", bytes, " bytes on ", device.str(),
               ": no CUDA device is available here");
    HORO_CHECK(device.index < kernels::cuda::device_count(), TypeError, "cannot allocate on ", device.str(), ": only ",
               kernels::cuda::device_count(), " CUDA devices are visible");
    data_ = kernels::cuda::device_alloc(rounded_size(bytes), device.index);
    return;
  }
  const size_t size = rounded_size(bytes), limit = g_cpu_limit;
  const size_t in_use = g_cpu_in_use.fetch_add(size) + size;
  if (limit && in_use > limit) {
    g_cpu_in_use -= size;
    throw std::bad_alloc();  // reported with the tensor's shape by the caller (OutOfMemoryError)
  }
  try {
    data_ = CpuCache::instance().allocate(size);
  } catch (...) {
    g_cpu_in_use -= size;
    throw;
  }
}

Storage::~Storage() {
  if (pinned_) kernels::cuda::pinned_free(data_);
  else if (device_.is_cuda()) kernels::cuda::device_free(data_, rounded_size(bytes_), device_.index);
  else {
    CpuCache::instance().release(data_, rounded_size(bytes_));
    g_cpu_in_use -= rounded_size(bytes_);
  }
}

}  // namespace horo
