// A tensor's memory: one allocation on one device, shared by every view of it.
#pragma once

#include <cstddef>

#include "tensor/dtype.h"

namespace horo {

// CPU buffers are 64-byte aligned (a cache line, an AVX-512 vector).
constexpr size_t kCpuAlignment = 64;

class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

}  // namespace horo
