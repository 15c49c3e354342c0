#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <sstream>

#include "kernels/device.h"
#include "kernels/philox.h"

namespace horo {

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << ']';
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    HORO_CHECK(d >= 0, ShapeError, "shape ", shape_str(shape), ": negative size");
    HORO_CHECK(!__builtin_mul_overflow(n, d, &n), ShapeError, "shape ", shape_str(shape), ": too many elements");
  }
  return n;
}

namespace {
// 512 B, 3.0 KiB, 1.5 GiB.
std::string bytes_str(size_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 5) {
    value /= 1024.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return text;
}

// A fresh tensor of `shape` on its own storage; the byte count is checked against overflow.
Tensor allocate(const Shape& shape, DType dtype, Device device, bool pinned) {
  for (int64_t d : shape) HORO_CHECK(d >= 0, ShapeError, "cannot create a tensor of shape ", shape_str(shape), ": negative size");
  size_t bytes = 0;
  HORO_CHECK(!__builtin_mul_overflow(static_cast<size_t>(shape_numel(shape)), dtype_size(dtype), &bytes) &&
                 bytes < (size_t{1} << 48), ShapeError, "cannot create a tensor of shape ", shape_str(shape), ": too large");
  auto impl = std::make_shared<TensorImpl>();
  try {
    impl->storage = std::make_shared<Storage>(bytes, device, pinned);
  } catch (const std::bad_alloc&) {  // a bare bad_alloc would not say what was asked for
    throw OutOfMemoryError(detail::concat("out of memory: cannot allocate ", bytes_str(bytes), " for a ", dtype_name(dtype),
                                          " tensor of shape ", shape_str(shape), " on ", device.str(),
                                          device.is_cpu() ? " (" + bytes_str(cpu_memory_in_use()) + " held by CPU tensors)" : ""));
  }
  impl->shape = shape;
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) { return allocate(shape, dtype, device, false); }

Tensor Tensor::empty_pinned(const Shape& shape, DType dtype) { return allocate(shape, dtype, Device::cpu(), true); }

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  const size_t bytes = static_cast<size_t>(t.numel()) * dtype_size(dtype);
  if (device.is_cuda()) {
    const kernels::cuda::DeviceScope scope(device.index);
    kernels::cuda::zero(t.raw_data(), bytes);
  } else {
    std::memset(t.raw_data(), 0, bytes);
  }
  return t;
}

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = empty(shape, DType::Float32, device);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape) {
  HORO_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), ShapeError, "from_vector: ", values.size(),
             " values cannot fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor t = empty(shape);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));  // data() may be null
  return t;
}

Tensor Tensor::from_vector(const std::vector<int64_t>& values, const Shape& shape) {
  HORO_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), ShapeError, "from_vector: ", values.size(),
             " values cannot fill shape ", shape_str(shape), " (", shape_numel(shape), " elements)");
  Tensor t = empty(shape, DType::Int64);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(int64_t));  // data() may be null
  return t;
}

Tensor Tensor::uniform(const Shape& shape, float low, float high, uint64_t seed, uint64_t offset) {
  Tensor t = empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    p[i] = low + (high - low) * kernels::Philox4x32::uniform(seed, offset + static_cast<uint64_t>(i));
  }
  return t;
}

Tensor Tensor::normal(const Shape& shape, float mean, float stddev, uint64_t seed, uint64_t offset) {
  // Box-Muller on consecutive pairs of the stream; the second uniform is shifted off zero.
  Tensor t = empty(shape);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint64_t base = offset + 2 * static_cast<uint64_t>(i);
    const double u1 = 1.0 - kernels::Philox4x32::uniform(seed, base);
    const double u2 = kernels::Philox4x32::uniform(seed, base + 1);
    p[i] = mean + stddev * static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  }
  return t;
}

const TensorImpl& Tensor::checked() const {
  HORO_CHECK(impl_ != nullptr, ValueError, "use of an undefined tensor");
  return *impl_;
}

const Shape& Tensor::shape() const { return checked().shape; }

int64_t Tensor::size(int64_t d) const {
  const int64_t rank = dim();
  const int64_t index = d < 0 ? d + rank : d;
  HORO_CHECK(index >= 0 && index < rank, ShapeError, describe(), ": dimension ", d, " out of range for rank ", rank);
  return shape()[static_cast<size_t>(index)];
}

int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { return checked().dtype; }
Device Tensor::device() const { return checked().storage->device(); }
const std::string& Tensor::name() const { return checked().name; }

Tensor& Tensor::set_name(std::string name) {
  checked();
  impl_->name = std::move(name);
  return *this;
}

std::string Tensor::describe() const {
  if (!impl_) return "undefined tensor";
  std::string head = impl_->name.empty() ? std::string("tensor") : "'" + impl_->name + "'";
  return head + " " + shape_str(impl_->shape) + " " + dtype_name(impl_->dtype);
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked();
  return static_cast<char*>(t.storage->data()) + t.offset * static_cast<int64_t>(dtype_size(t.dtype));
}

float Tensor::item() const {
  HORO_CHECK(numel() == 1, ShapeError, "item(): expected a one-element tensor, got ", describe());
  if (device().is_cuda()) return to(Device::cpu()).item();
  return *data<float>();
}

std::vector<float> Tensor::to_vector() const {
  if (device().is_cuda()) return to(Device::cpu()).to_vector();
  const float* p = data<float>();
  return std::vector<float>(p, p + numel());
}

Tensor Tensor::view(const Shape& shape) const {
  Shape resolved = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < resolved.size(); ++i) {
    HORO_CHECK(resolved[i] >= -1, ShapeError, "view of ", describe(), " as ", shape_str(shape), ": negative size");
    if (resolved[i] == -1) {
      HORO_CHECK(infer < 0, ShapeError, "view of ", describe(), " as ", shape_str(shape), ": more than one -1");
      infer = static_cast<int64_t>(i);
    } else {
      known *= resolved[i];
    }
  }
  if (infer >= 0) {
    HORO_CHECK(known > 0 && numel() % known == 0, ShapeError, "view of ", describe(), " as ", shape_str(shape),
               ": ", numel(), " elements do not divide into the given sizes");
    resolved[static_cast<size_t>(infer)] = numel() / known;
  }
  HORO_CHECK(shape_numel(resolved) == numel(), ShapeError, "view of ", describe(), " as ", shape_str(shape), ": ",
             numel(), " elements cannot take a shape of ", shape_numel(resolved));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = checked().storage;
  impl->offset = impl_->offset;
  impl->shape = std::move(resolved);
  impl->dtype = impl_->dtype;
  impl->name = impl_->name;
  return Tensor(std::move(impl));
}

Tensor Tensor::slice(int64_t begin, int64_t end) const {
  HORO_CHECK(dim() >= 1, ShapeError, "slice of ", describe(), ": needs at least one dimension");
  HORO_CHECK(0 <= begin && begin <= end && end <= shape()[0], ShapeError, "slice [", begin, ", ", end, ") of ",
             describe(), ": outside dimension 0 of size ", shape()[0]);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = impl_->storage;
  impl->shape = impl_->shape;
  impl->shape[0] = end - begin;
  impl->dtype = impl_->dtype;
  impl->offset = impl_->offset + begin * (shape()[0] ? numel() / shape()[0] : 0);
  impl->name = impl_->name;
  return Tensor(std::move(impl));
}

Tensor Tensor::clone() const {
  Tensor copy = empty(shape(), dtype(), device());
  copy.copy_from(*this);
  return copy;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor moved = empty(shape(), dtype(), device);
  moved.copy_from(*this);
  return moved;
}

void Tensor::copy_from(const Tensor& source) {
  HORO_CHECK(source.shape() == shape(), ShapeError, "copy into ", describe(), " from ", source.describe(),
             ": shapes differ");
  HORO_CHECK(source.dtype() == dtype(), TypeError, "copy into ", describe(), " from ", source.describe(),
             ": dtypes differ");
  const size_t bytes = static_cast<size_t>(numel()) * dtype_size(dtype());
  const bool from_gpu = source.device().is_cuda(), to_gpu = device().is_cuda();
  if (!from_gpu && !to_gpu) {
    std::memmove(raw_data(), source.raw_data(), bytes);
    return;
  }
  using kernels::cuda::Copy;
  if (from_gpu && to_gpu && source.device() != device()) {
    // Between GPUs (rare: never inside a training step): the source's stream finishes what produced
    // the data first, and the copy completes before this returns, so that the source's memory,
    // perhaps a temporary going back to its device's cache, cannot be reused under it.
    {
      const kernels::cuda::DeviceScope scope(source.device().index);
      kernels::cuda::synchronize();
    }
    const kernels::cuda::DeviceScope scope(device().index);
    kernels::cuda::copy(raw_data(), source.raw_data(), bytes, kernels::cuda::Copy::DeviceToDevice);
    kernels::cuda::synchronize();
    return;
  }
  // The copy runs on the stream of the GPU it involves (the destination's between two GPUs).
  const kernels::cuda::DeviceScope scope(to_gpu ? device().index : source.device().index);
  if (!from_gpu && source.impl_->storage->pinned()) {
    // From page-locked memory the copy runs on the stream without the host waiting; kernels that
    // use the data queue behind it on the same stream.
    kernels::cuda::copy_async_to_device(raw_data(), source.raw_data(), bytes);
    return;
  }
  kernels::cuda::copy(raw_data(), source.raw_data(), bytes,
                      from_gpu && to_gpu ? Copy::DeviceToDevice : from_gpu ? Copy::DeviceToHost : Copy::HostToDevice);
}

void Tensor::fill(float value) {
  float* p = data<float>();
  if (device().is_cuda()) {
    const kernels::cuda::DeviceScope scope(device().index);
    kernels::cuda::fill(p, numel(), value);
    return;
  }
  for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = value;
}

void Tensor::move_to(Device device) {
  if (device == this->device()) return;
  const Tensor moved = to(device);
  impl_->storage = moved.impl_->storage;
  impl_->offset = moved.impl_->offset;
  if (impl_->grad.defined()) impl_->grad.move_to(device);
}

bool Tensor::shares_storage_with(const Tensor& other) const {
  return defined() && other.defined() && impl_->storage == other.impl_->storage;
}

bool Tensor::requires_grad() const { return checked().requires_grad; }

Tensor& Tensor::set_requires_grad(bool on) {
  HORO_CHECK(!on || dtype() == DType::Float32, TypeError, describe(), ": only float32 tensors can require gradients");
  HORO_CHECK(is_leaf(), ValueError, describe(), ": requires_grad can only be set on a leaf tensor (one made by no recorded op)");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const { return checked().grad; }
void Tensor::set_grad(const Tensor& grad) { checked(); impl_->grad = grad; }
void Tensor::add_grad_ready_hook(std::function<void()> fn) { checked(); impl_->grad_ready_hooks.push_back(std::move(fn)); }
void Tensor::clear_grad_ready_hooks() { checked(); impl_->grad_ready_hooks.clear(); }
std::shared_ptr<autograd::Node> Tensor::grad_fn() const { return checked().grad_fn; }
bool Tensor::is_leaf() const { return checked().grad_fn == nullptr; }

Tensor Tensor::detach() const { return view(shape()); }

void check_shape(const Tensor& tensor, const Shape& expected, const std::string& what) {
  HORO_CHECK(tensor.shape() == expected, ShapeError, what, ": expected shape ", shape_str(expected), ", got ",
             shape_str(tensor.shape()));
}

void check_rank(const Tensor& tensor, int64_t rank, const std::string& what) {
  HORO_CHECK(tensor.dim() == rank, ShapeError, what, ": expected a ", rank, "-d tensor, got ", tensor.describe());
}

void check_dtype(const Tensor& tensor, DType dtype, const std::string& what) {
  HORO_CHECK(tensor.dtype() == dtype, TypeError, what, ": expected dtype ", dtype_name(dtype), ", got ",
             tensor.describe());
}

namespace {

template <typename T>
int64_t first_outside(const T* index, int64_t count, int64_t limit) {
  T low = 0, high = 0;
  for (int64_t i = 0; i < count; ++i) {
    low = std::min(low, index[i]);
    high = std::max(high, index[i]);
  }
  if (low >= 0 && static_cast<int64_t>(high) < limit) return -1;
  for (int64_t i = 0; i < count; ++i) {
    if (index[i] < 0 || static_cast<int64_t>(index[i]) >= limit) return i;
  }
  return -1;
}

}  // namespace

int64_t first_index_outside(const Tensor& indices, int64_t limit) {
  HORO_CHECK(indices.device().is_cpu(), TypeError, "first_index_outside: expected a CPU tensor, got ",
             indices.describe());
  if (indices.dtype() == DType::Int32) return first_outside(indices.data<int32_t>(), indices.numel(), limit);
  HORO_CHECK(indices.dtype() == DType::Int64, TypeError, "first_index_outside: expected dtype int32 or int64, got ",
             indices.describe());
  return first_outside(indices.data<int64_t>(), indices.numel(), limit);
}

}  // namespace horo
