// Thin RAII over the HDF5 C API. Every call is checked; failures become IOError naming the file and
// the dataset. All of horo's HDF5 calls hold one process-wide lock (hdf5_lock()), so a single thread
// is inside the library at a time whatever the library's own build options.
#pragma once

#include <hdf5.h>

#include <mutex>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace horo::h5 {

std::recursive_mutex& hdf5_lock();
// Turns off HDF5's own printing of its error stack for the calling thread (horo throws instead).
void quiet_this_thread();

// An owned HDF5 identifier closed with the matching H5?close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      closer_ = other.closer_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

// Throws IOError "<where>: <what> failed" when status is negative.
void check(herr_t status, const std::string& where, const char* what);
hid_t check_id(hid_t id, const std::string& where, const char* what);

Handle open_file(const std::string& path, bool writable = false);
// user_block: bytes reserved at the file's start for the caller (0, or a power of two >= 512).
Handle create_file(const std::string& path, size_t user_block = 0);
bool has_dataset(hid_t file, const std::string& name);
Handle open_dataset(hid_t file, const std::string& name, const std::string& where);

// The dtype of a dataset as one of horo's, or throws IOError naming the unsupported type.
DType dataset_dtype(hid_t dataset, const std::string& where);
std::vector<int64_t> dataset_shape(hid_t dataset, const std::string& where);
hid_t memory_type(DType dtype);

// Attributes: absent ones read as empty / unset.
bool has_attribute(hid_t object, const std::string& name);
std::vector<std::string> read_string_list(hid_t object, const std::string& name, const std::string& where);
std::vector<double> read_doubles(hid_t object, const std::string& name, const std::string& where);
void write_string_list(hid_t object, const std::string& name, const std::vector<std::string>& values,
                       const std::string& where);
void write_doubles(hid_t object, const std::string& name, const std::vector<double>& values, const std::string& where);

// Groups, whole tensors and scalar attributes (checkpoints use these).
Handle create_group(hid_t parent, const std::string& name, const std::string& where);
Handle open_group(hid_t parent, const std::string& name, const std::string& where);
bool has_group(hid_t parent, const std::string& name);
// The names of everything directly inside a group, and of its datasets only (in name order).
std::vector<std::string> link_names(hid_t group, const std::string& where);
std::vector<std::string> dataset_names(hid_t group, const std::string& where);
void write_tensor(hid_t group, const std::string& name, const Tensor& tensor, const std::string& where);
Tensor read_tensor(hid_t group, const std::string& name, const std::string& where);
void write_string(hid_t object, const std::string& name, const std::string& value, const std::string& where);
std::string read_string(hid_t object, const std::string& name, const std::string& where);  // "" when absent
void write_int(hid_t object, const std::string& name, int64_t value, const std::string& where);
int64_t read_int(hid_t object, const std::string& name, const std::string& where);  // throws when absent

}  // namespace horo::h5
