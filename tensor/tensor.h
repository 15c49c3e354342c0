// horo::Tensor: a shaped, typed view of shared storage on one device, contiguous and row-major
// (NCHW for images). Copies are shallow, as in PyTorch: two Tensor objects may name one tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "kernels/error.h"
#include "tensor/dtype.h"
#include "tensor/storage.h"

namespace horo {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);
int64_t shape_numel(const Shape& shape);

namespace autograd { class Node; }

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor: defined() is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // --- creation ---
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  // A CPU tensor in page-locked memory (needs CUDA): its copies to a GPU do not wait on the host.
  static Tensor empty_pinned(const Shape& shape, DType dtype = DType::Float32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, Device device = Device::cpu()) { return full(shape, 1.0f, device); }
  static Tensor scalar(float value) { return full({}, value); }
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);
  // Uniform in [low, high) or normal(mean, std), drawn from Philox stream (seed, offset...).
  static Tensor uniform(const Shape& shape, float low, float high, uint64_t seed, uint64_t offset = 0);
  static Tensor normal(const Shape& shape, float mean, float stddev, uint64_t seed, uint64_t offset = 0);

  // --- metadata ---
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  // Size of dimension d; negative d counts from the end.
  int64_t size(int64_t d) const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  // A name used in error messages (parameters carry their dotted path); empty by default.
  const std::string& name() const;
  Tensor& set_name(std::string name);
  // "'features.0.weight' [32, 1, 3, 3] float32" or "tensor [64, 10] float32".
  std::string describe() const;

  // --- data (CPU tensors) ---
  template <typename T> T* data() const;
  void* raw_data() const;
  float item() const;  // the value of a one-element float32 tensor
  std::vector<float> to_vector() const;

  // --- views and copies (no autograd: see nn/functional.h for the differentiable versions) ---
  Tensor view(const Shape& shape) const;  // same storage, new shape; one -1 allowed
  Tensor slice(int64_t begin, int64_t end) const;  // rows [begin, end) of dimension 0, same storage
  Tensor clone() const;
  Tensor to(Device device) const;
  void copy_from(const Tensor& source);  // same shape and dtype, any devices
  // Moves this tensor's data (and its gradient) to `device` in place: every handle to it follows, so
  // an optimizer built on a model's parameters keeps working after Module::to().
  void move_to(Device device);
  void fill(float value);
  bool shares_storage_with(const Tensor& other) const;

  // --- autograd ---
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& grad);
  // Registers fn to run each time a backward pass has accumulated into this leaf's grad().
  void add_grad_ready_hook(std::function<void()> fn);
  void clear_grad_ready_hooks();
  std::shared_ptr<autograd::Node> grad_fn() const;
  bool is_leaf() const;
  // Reverse-mode differentiation of this tensor (a scalar unless grad_output is given); defined in nn/.
  void backward(const Tensor& grad_output = Tensor()) const;
  // The same data without history: not tracked by autograd.
  Tensor detach() const;

  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

// The state behind a Tensor; autograd fields are used by nn/autograd.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  DType dtype = DType::Float32;
  std::string name;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;      // the op that produced this tensor, if recorded
  std::shared_ptr<autograd::Node> accumulator;  // for leaves: adds incoming gradients to `grad`
  // Called after backward has added a gradient into `grad` (the distributed reducer starts
  // communicating a parameter's gradient from here, while backward goes on).
  std::vector<std::function<void()>> grad_ready_hooks;
};

template <typename T>
T* Tensor::data() const {
  const TensorImpl& t = checked();
  HORO_CHECK(t.dtype == dtype_of<T>(), TypeError, describe(), ": expected dtype ", dtype_name(dtype_of<T>()),
             ", got ", dtype_name(t.dtype));
  return static_cast<T*>(raw_data());
}

// Throws ShapeError unless `tensor` has exactly `expected` shape; `what` names the operand.
void check_shape(const Tensor& tensor, const Shape& expected, const std::string& what);
// Throws ShapeError unless `tensor` has `rank` dimensions.
void check_rank(const Tensor& tensor, int64_t rank, const std::string& what);
// Throws TypeError unless `tensor` has `dtype`.
void check_dtype(const Tensor& tensor, DType dtype, const std::string& what);
// The position of the first element of a CPU Int32 or Int64 tensor outside [0, limit), or -1 when
// every element is inside: one min/max pass that compilers vectorise, then a search only when an
// element is out. For the index tensors an op scatters or gathers by (labels, pooling argmax).
int64_t first_index_outside(const Tensor& indices, int64_t limit);

}  // namespace horo
