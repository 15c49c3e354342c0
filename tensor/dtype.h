// Element types and devices of tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace horo {

enum class DType { Float32, Int64, Int32, UInt8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

// The DType of a C++ element type, for checked typed access to tensor data.
template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {}; }
  static Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  // Parses "cpu", "cuda" or "cuda:N"; throws ValueError otherwise.
  static Device parse(const std::string& text);
  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device& other) const = default;
};

}  // namespace horo
