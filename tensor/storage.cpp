#include "tensor/storage.h"

#include <cstdlib>
#include <new>

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

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  HORO_CHECK(device.is_cpu(), TypeError, "cannot allocate ", bytes, " bytes on ", device.str(),
             ": this build of horo has no CUDA backend (configure with -DHORO_CUDA=ON on a machine with the CUDA toolkit)");
  // aligned_alloc needs a size that is a multiple of the alignment; never zero, so data() is valid.
  const size_t rounded = ((bytes + kCpuAlignment - 1) / kCpuAlignment) * kCpuAlignment;
  data_ = std::aligned_alloc(kCpuAlignment, rounded == 0 ? kCpuAlignment : rounded);
  if (!data_) throw std::bad_alloc();
}

Storage::~Storage() { std::free(data_); }

}  // namespace horo
