// A tensor's memory: one allocation on one device, shared by every view of it.
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/dtype.h"

namespace horo {

// CPU buffers are 64-byte aligned (a cache line, an AVX-512 vector).
constexpr size_t kCpuAlignment = 64;

// CPU memory comes from a caching allocator: blocks of 64 KiB and more are kept on release and
// handed out again for the same size, so a training step, which asks for the same sizes every
// time, stops paying for mmap, page faults and munmap after its first iteration.
struct CpuAllocatorStats {
  uint64_t allocations = 0;   // requests served
  uint64_t cache_misses = 0;  // requests of cacheable size (>= 64 KiB) that the cache could not serve
  size_t cached_bytes = 0;    // held in the cache now
};
CpuAllocatorStats cpu_allocator_stats();
// Returns every cached block to the system.
void cpu_allocator_release_cache();
// A cap on the host memory tensors may hold at once (0, the default: none). An allocation past it
// is an OutOfMemoryError, as a real exhaustion is: for services and fuzzing, where a crafted model
// specification must not take the machine's memory.
void set_cpu_memory_limit(size_t bytes);
// Bytes that CPU tensors hold now.
size_t cpu_memory_in_use();

class Storage {
 public:
  // pinned: page-locked host memory (CPU device only), from which copies to a GPU run asynchronously.
  Storage(size_t bytes, Device device, bool pinned = false);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  bool pinned() const { return pinned_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  bool pinned_ = false;
};

}  // namespace horo
