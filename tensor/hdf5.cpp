#include "tensor/hdf5.h"

#include <cstring>
#include <filesystem>
#include <string_view>

namespace horo::h5 {
void quiet_this_thread() {
  // HDF5 prints its error stack to stderr by default, per thread; horo reports errors itself.
  thread_local bool quiet = false;
  if (!quiet) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    quiet = true;
  }
}

namespace {
// libhdf5 (1.10) crashes in its exit handler when a file's close has failed, e.g. on a full disk: the
// write error is reported and thrown, then H5_term_library segfaults on the half-closed file. Every
// handle here closes its object itself (RAII), so the library's own clean-up at exit has nothing
// left to do: skip it. Runs when the library loads, before any other HDF5 call.
const bool skip_hdf5_exit_handler = [] {
  H5dont_atexit();
  return true;
}();
}  // namespace

std::recursive_mutex& hdf5_lock() {
  static std::recursive_mutex mutex;
  return mutex;
}

void Handle::reset() {
  if (id_ >= 0 && closer_) {
    std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
    closer_(id_);
  }
  id_ = H5I_INVALID_HID;
}

void check(herr_t status, const std::string& where, const char* what) {
  const std::string_view verb(what);
  const bool output = verb.starts_with("writ") || verb.starts_with("creat") || verb.starts_with("flush");
  HORO_CHECK(status >= 0, IOError, where, ": ", what, " failed",
             output ? " (disk full, over quota, or not writable?)" : " (corrupt or unreadable HDF5 data?)");
}

hid_t check_id(hid_t id, const std::string& where, const char* what) {
  HORO_CHECK(id >= 0, IOError, where, ": ", what, " failed (corrupt or unreadable HDF5 data?)");
  return id;
}

Handle open_file(const std::string& path, bool writable) {
  quiet_this_thread();
  HORO_CHECK(std::filesystem::is_regular_file(path), IOError, path, ": no such file");
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  HORO_CHECK(H5Fis_hdf5(path.c_str()) > 0, IOError, path, ": not an HDF5 file (or truncated: its superblock is unreadable)");
  const hid_t id = H5Fopen(path.c_str(), writable ? H5F_ACC_RDWR : H5F_ACC_RDONLY, H5P_DEFAULT);
  HORO_CHECK(id >= 0, IOError, path, ": cannot open as HDF5 (corrupt or truncated?)");
  return Handle(id, H5Fclose);
}

Handle create_file(const std::string& path, size_t user_block) {
  quiet_this_thread();
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  Handle creation(check_id(H5Pcreate(H5P_FILE_CREATE), path, "creating file properties"), H5Pclose);
  if (user_block) check(H5Pset_userblock(creation.get(), user_block), path, "reserving the user block");
  const hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, creation.get(), H5P_DEFAULT);
  HORO_CHECK(id >= 0, IOError, path, ": cannot create the HDF5 file (directory missing or not writable?)");
  return Handle(id, H5Fclose);
}

namespace {
// The kind of object at `name` under `parent`, or H5O_TYPE_UNKNOWN when there is none.
H5O_type_t object_type(hid_t parent, const std::string& name) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  if (H5Lexists(parent, name.c_str(), H5P_DEFAULT) <= 0) return H5O_TYPE_UNKNOWN;
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  const herr_t status = H5Oget_info_by_name3(parent, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT);
#else
  const herr_t status = H5Oget_info_by_name2(parent, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT);
#endif
  if (status < 0) {
    // The name is there but not the object: a corrupt file, not an absent field (a damaged /labels
    // header was once taken for "no labels").
    char file[1024] = "", group[1024] = "";
    H5Fget_name(parent, file, sizeof file);
    H5Iget_name(parent, group, sizeof group);
    const std::string prefix = std::string(group) == "/" || !*group ? "/" : std::string(group) + "/";
    throw IOError(detail::concat(file, ":", prefix, name, ": the object exists but its header is unreadable (corrupt file?)"));
  }
  return info.type;
}
}  // namespace

bool has_dataset(hid_t file, const std::string& name) { return object_type(file, name) == H5O_TYPE_DATASET; }

Handle open_dataset(hid_t file, const std::string& name, const std::string& where) {
  HORO_CHECK(has_dataset(file, name), IOError, where, ": no dataset '", name, "'");
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  return Handle(check_id(H5Dopen2(file, name.c_str(), H5P_DEFAULT), where, "opening the dataset"), H5Dclose);
}

DType dataset_dtype(hid_t dataset, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  Handle type(check_id(H5Dget_type(dataset), where, "reading the type"), H5Tclose);
  const H5T_class_t cls = H5Tget_class(type.get());
  const size_t size = H5Tget_size(type.get());
  if (cls == H5T_FLOAT && size == 4) return DType::Float32;
  if (cls == H5T_INTEGER) {
    const H5T_sign_t sign = H5Tget_sign(type.get());
    if (size == 1 && sign == H5T_SGN_NONE) return DType::UInt8;
    if (size == 4 && sign == H5T_SGN_2) return DType::Int32;
    if (size == 8 && sign == H5T_SGN_2) return DType::Int64;
  }
  const char* kind = cls == H5T_FLOAT ? "float" : cls == H5T_INTEGER ? "integer" : cls == H5T_STRING ? "string" : "compound or other";
  throw IOError(detail::concat(where, ": unsupported dtype (", kind, ", ", size,
                               " bytes); expected uint8 or float32 data and int64/int32 labels"));
}

std::vector<int64_t> dataset_shape(hid_t dataset, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  Handle space(check_id(H5Dget_space(dataset), where, "reading the shape"), H5Sclose);
  const int rank = H5Sget_simple_extent_ndims(space.get());
  HORO_CHECK(rank >= 0, IOError, where, ": unreadable shape");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return std::vector<int64_t>(dims.begin(), dims.end());
}

hid_t memory_type(DType dtype) {
  switch (dtype) {
    case DType::Float32: return H5T_NATIVE_FLOAT;
    case DType::Int64: return H5T_NATIVE_INT64;
    case DType::Int32: return H5T_NATIVE_INT32;
    case DType::UInt8: return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_FLOAT;
}

bool has_attribute(hid_t object, const std::string& name) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  return H5Aexists(object, name.c_str()) > 0;
}

std::vector<std::string> read_string_list(hid_t object, const std::string& name, const std::string& where) {
  if (!has_attribute(object, name)) return {};
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + " attribute '" + name + "'";
  Handle attr(check_id(H5Aopen(object, name.c_str(), H5P_DEFAULT), at, "opening"), H5Aclose);
  Handle type(check_id(H5Aget_type(attr.get()), at, "reading the type"), H5Tclose);
  HORO_CHECK(H5Tget_class(type.get()) == H5T_STRING, IOError, at, ": expected strings");
  Handle space(check_id(H5Aget_space(attr.get()), at, "reading the shape"), H5Sclose);
  const hssize_t count = H5Sget_simple_extent_npoints(space.get());
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    // h5py writes lists of str as variable-length strings.
    std::vector<char*> raw(static_cast<size_t>(count));
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    check(H5Aread(attr.get(), mem.get(), raw.data()), at, "reading");
    for (char* s : raw) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
  } else {
    const size_t size = H5Tget_size(type.get());
    std::vector<char> raw(size * static_cast<size_t>(count));
    check(H5Aread(attr.get(), type.get(), raw.data()), at, "reading");
    for (hssize_t i = 0; i < count; ++i) {
      const char* s = raw.data() + static_cast<size_t>(i) * size;
      out.emplace_back(s, ::strnlen(s, size));
    }
  }
  return out;
}

std::vector<double> read_doubles(hid_t object, const std::string& name, const std::string& where) {
  if (!has_attribute(object, name)) return {};
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + " attribute '" + name + "'";
  Handle attr(check_id(H5Aopen(object, name.c_str(), H5P_DEFAULT), at, "opening"), H5Aclose);
  Handle space(check_id(H5Aget_space(attr.get()), at, "reading the shape"), H5Sclose);
  std::vector<double> out(static_cast<size_t>(H5Sget_simple_extent_npoints(space.get())));
  check(H5Aread(attr.get(), H5T_NATIVE_DOUBLE, out.data()), at, "reading");
  return out;
}

void write_string_list(hid_t object, const std::string& name, const std::vector<std::string>& values,
                       const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + " attribute '" + name + "'";
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const hsize_t count = values.size();
  Handle space(check_id(H5Screate_simple(1, &count, nullptr), at, "creating the shape"), H5Sclose);
  Handle attr(check_id(H5Acreate2(object, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), at, "creating"),
              H5Aclose);
  std::vector<const char*> raw;
  for (const auto& v : values) raw.push_back(v.c_str());
  check(H5Awrite(attr.get(), type.get(), raw.data()), at, "writing");
}

void write_doubles(hid_t object, const std::string& name, const std::vector<double>& values, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + " attribute '" + name + "'";
  const hsize_t count = values.size();
  Handle space(check_id(H5Screate_simple(1, &count, nullptr), at, "creating the shape"), H5Sclose);
  Handle attr(check_id(H5Acreate2(object, name.c_str(), H5T_NATIVE_DOUBLE, space.get(), H5P_DEFAULT, H5P_DEFAULT), at,
                       "creating"), H5Aclose);
  check(H5Awrite(attr.get(), H5T_NATIVE_DOUBLE, values.data()), at, "writing");
}

Handle create_group(hid_t parent, const std::string& name, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  return Handle(check_id(H5Gcreate2(parent, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), where,
                         ("creating group " + name).c_str()), H5Gclose);
}

bool has_group(hid_t parent, const std::string& name) { return object_type(parent, name) == H5O_TYPE_GROUP; }

Handle open_group(hid_t parent, const std::string& name, const std::string& where) {
  HORO_CHECK(has_group(parent, name), IOError, where, ": no group '", name, "'");
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  return Handle(check_id(H5Gopen2(parent, name.c_str(), H5P_DEFAULT), where, "opening a group"), H5Gclose);
}

std::vector<std::string> link_names(hid_t group, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  H5G_info_t info;
  check(H5Gget_info(group, &info), where, "listing");
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t length = H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    check(length < 0 ? -1 : 0, where, "listing");
    std::string name(static_cast<size_t>(length), '\0');
    H5Lget_name_by_idx(group, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1, H5P_DEFAULT);
    names.push_back(std::move(name));
  }
  return names;
}

std::vector<std::string> dataset_names(hid_t group, const std::string& where) {
  std::vector<std::string> names;
  for (auto& name : link_names(group, where)) {
    if (has_dataset(group, name)) names.push_back(std::move(name));
  }
  return names;
}

void write_tensor(hid_t group, const std::string& name, const Tensor& tensor, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + "/" + name;
  std::vector<hsize_t> dims(tensor.shape().begin(), tensor.shape().end());
  Handle space(check_id(dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
                        at, "creating the shape"), H5Sclose);
  const hid_t file_type = tensor.dtype() == DType::Float32 ? H5T_IEEE_F32LE
                          : tensor.dtype() == DType::Int64 ? H5T_STD_I64LE
                          : tensor.dtype() == DType::Int32 ? H5T_STD_I32LE : H5T_STD_U8LE;
  Handle set(check_id(H5Dcreate2(group, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), at,
                      "creating the dataset"), H5Dclose);
  const Tensor host = tensor.to(Device::cpu());
  check(H5Dwrite(set.get(), memory_type(tensor.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, host.raw_data()), at, "writing");
}

Tensor read_tensor(hid_t group, const std::string& name, const std::string& where) {
  const std::string at = where + "/" + name;
  Handle set = open_dataset(group, name, at);
  const DType dtype = dataset_dtype(set.get(), at);
  Tensor out = Tensor::empty(dataset_shape(set.get(), at), dtype);
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  check(H5Dread(set.get(), memory_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.raw_data()), at, "reading");
  return out;
}

void write_string(hid_t object, const std::string& name, const std::string& value, const std::string& where) {
  write_string_list(object, name, {value}, where);
}

std::string read_string(hid_t object, const std::string& name, const std::string& where) {
  const auto values = read_string_list(object, name, where);
  return values.empty() ? std::string() : values.front();
}

void write_int(hid_t object, const std::string& name, int64_t value, const std::string& where) {
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + " attribute '" + name + "'";
  Handle space(check_id(H5Screate(H5S_SCALAR), at, "creating the shape"), H5Sclose);
  Handle attr(check_id(H5Acreate2(object, name.c_str(), H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), at, "creating"),
              H5Aclose);
  check(H5Awrite(attr.get(), H5T_NATIVE_INT64, &value), at, "writing");
}

int64_t read_int(hid_t object, const std::string& name, const std::string& where) {
  HORO_CHECK(has_attribute(object, name), IOError, where, ": attribute '", name, "' is missing");
  std::lock_guard<std::recursive_mutex> lock(hdf5_lock());
  const std::string at = where + " attribute '" + name + "'";
  Handle attr(check_id(H5Aopen(object, name.c_str(), H5P_DEFAULT), at, "opening"), H5Aclose);
  // One integer, checked before reading: a crafted file could declare an array (read into one
  // int64_t, a buffer overflow) or a float or string type.
  Handle type(check_id(H5Aget_type(attr.get()), at, "reading the type of"), H5Tclose);
  HORO_CHECK(H5Tget_class(type.get()) == H5T_INTEGER, IOError, at, ": expected an integer");
  Handle space(check_id(H5Aget_space(attr.get()), at, "reading the shape of"), H5Sclose);
  const hssize_t points = H5Sget_simple_extent_npoints(space.get());
  const int rank = H5Sget_simple_extent_ndims(space.get());
  HORO_CHECK(points == 1 && rank <= 1, IOError, at, ": expected one integer, found ", static_cast<long long>(points),
             " values in ", rank, " dimensions");
  int64_t value = 0;
  check(H5Aread(attr.get(), H5T_NATIVE_INT64, &value), at, "reading");
  return value;
}

}  // namespace horo::h5
