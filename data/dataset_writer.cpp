#include "data/dataset_writer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace horo::data {

namespace {

// Images buffered before one write of the encoded datasets (and the chunk of their references).
constexpr int64_t kEncodedChunk = 64;

h5::Handle variable_bytes_type() { return h5::Handle(H5Tvlen_create(H5T_NATIVE_UINT8), H5Tclose); }
h5::Handle variable_string_type() {
  h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

// An empty dataset [0, ...sample_shape] that grows along its first axis, chunked `chunk` samples.
h5::Handle create_growing(hid_t file, const std::string& name, hid_t file_type, const Shape& sample_shape, int64_t chunk,
                          int gzip_level, const std::string& where) {
  const int rank = static_cast<int>(sample_shape.size()) + 1;
  std::vector<hsize_t> dims(static_cast<size_t>(rank), 0), max_dims(static_cast<size_t>(rank)), chunk_dims(static_cast<size_t>(rank));
  max_dims[0] = H5S_UNLIMITED;
  chunk_dims[0] = static_cast<hsize_t>(std::max<int64_t>(1, chunk));
  for (int d = 1; d < rank; ++d) {
    dims[static_cast<size_t>(d)] = max_dims[static_cast<size_t>(d)] = chunk_dims[static_cast<size_t>(d)] =
        static_cast<hsize_t>(sample_shape[static_cast<size_t>(d - 1)]);
  }
  const std::string at = where + ":/" + name;
  h5::Handle space(h5::check_id(H5Screate_simple(rank, dims.data(), max_dims.data()), at, "creating the shape"), H5Sclose);
  h5::Handle props(h5::check_id(H5Pcreate(H5P_DATASET_CREATE), at, "creating properties"), H5Pclose);
  h5::check(H5Pset_chunk(props.get(), rank, chunk_dims.data()), at, "setting the chunk shape");
  if (gzip_level > 0) {
    h5::check(H5Pset_shuffle(props.get()), at, "enabling the shuffle filter");
    h5::check(H5Pset_deflate(props.get(), static_cast<unsigned>(gzip_level)), at, "enabling gzip");
  }
  return h5::Handle(h5::check_id(H5Dcreate2(file, name.c_str(), file_type, space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT),
                                 at, "creating the dataset"),
                    H5Dclose);
}

// Writes `count` samples at [first, first + count) of a growing dataset, extending it.
void append_rows(hid_t dataset, hid_t memory_type, int64_t first, int64_t count, const Shape& sample_shape, const void* data,
                 const std::string& where) {
  if (count == 0) return;
  const int rank = static_cast<int>(sample_shape.size()) + 1;
  std::vector<hsize_t> total(static_cast<size_t>(rank)), start(static_cast<size_t>(rank), 0), dims(static_cast<size_t>(rank));
  total[0] = static_cast<hsize_t>(first + count);
  start[0] = static_cast<hsize_t>(first);
  dims[0] = static_cast<hsize_t>(count);
  for (int d = 1; d < rank; ++d) total[static_cast<size_t>(d)] = dims[static_cast<size_t>(d)] = static_cast<hsize_t>(sample_shape[static_cast<size_t>(d - 1)]);
  h5::check(H5Dset_extent(dataset, total.data()), where, "growing the dataset");
  h5::Handle file_space(h5::check_id(H5Dget_space(dataset), where, "reading the shape"), H5Sclose);
  h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr), where,
            "selecting samples");
  h5::Handle memory_space(h5::check_id(H5Screate_simple(rank, dims.data(), nullptr), where, "creating the memory shape"), H5Sclose);
  h5::check(H5Dwrite(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data), where, "writing samples");
}

}  // namespace

struct DatasetWriter::Impl {
  Impl(const std::string& out, const WriteOptions& o, bool with_labels, bool images_encoded)
      : path(out), temporary(out + ".tmp"), options(o), encoded(images_encoded), has_labels(with_labels),
        file(h5::create_file(temporary)) {}
  // An unfinished file (an error, or a writer dropped before finish()) is removed.
  ~Impl() {
    if (finished) return;
    {
      std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
      data = {};
      labels = {};
      heights = {};
      widths = {};
      names = {};
      file = {};
    }
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::string path, temporary;
  WriteOptions options;
  bool encoded = false, has_labels = false, finished = false;
  Shape sample_shape;
  DType dtype = DType::UInt8;
  int64_t written = 0;
  h5::Handle file, data, labels, heights, widths, names;
  // Encoded images waiting for the next write.
  std::vector<std::vector<uint8_t>> pending_bytes;
  std::vector<int32_t> pending_heights, pending_widths;
  std::vector<int64_t> pending_labels;
  std::vector<std::string> pending_names;

  void flush_encoded() {
    const int64_t n = static_cast<int64_t>(pending_bytes.size());
    if (n == 0) return;
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
    std::vector<hvl_t> bytes(static_cast<size_t>(n));
    std::vector<const char*> name_pointers(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      bytes[static_cast<size_t>(i)] = {pending_bytes[static_cast<size_t>(i)].size(), pending_bytes[static_cast<size_t>(i)].data()};
      name_pointers[static_cast<size_t>(i)] = pending_names[static_cast<size_t>(i)].c_str();
    }
    const h5::Handle bytes_type = variable_bytes_type(), string_type = variable_string_type();
    append_rows(data.get(), bytes_type.get(), written, n, {}, bytes.data(), temporary + ":/encoded_images");
    append_rows(heights.get(), H5T_NATIVE_INT32, written, n, {}, pending_heights.data(), temporary + ":/heights");
    append_rows(widths.get(), H5T_NATIVE_INT32, written, n, {}, pending_widths.data(), temporary + ":/widths");
    append_rows(names.get(), string_type.get(), written, n, {}, name_pointers.data(), temporary + ":/filenames");
    if (has_labels) append_rows(labels.get(), H5T_NATIVE_INT64, written, n, {}, pending_labels.data(), temporary + ":/labels");
    written += n;
    pending_bytes.clear();
    pending_heights.clear();
    pending_widths.clear();
    pending_labels.clear();
    pending_names.clear();
  }
};

DatasetWriter::DatasetWriter(const std::string& path, DType dtype, const Shape& sample_shape, bool labels,
                             const WriteOptions& options)
{
  HORO_CHECK(dtype == DType::UInt8 || dtype == DType::Float32, TypeError, path, ": data must be uint8 or float32, got ",
             dtype_name(dtype));
  HORO_CHECK(!sample_shape.empty(), ShapeError, path, ": samples need a shape, got a scalar");
  impl_ = std::make_unique<Impl>(path, options, labels, false);
  Impl& m = *impl_;
  m.sample_shape = sample_shape;
  m.dtype = dtype;
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  const int64_t sample_bytes = shape_numel(sample_shape) * static_cast<int64_t>(dtype_size(dtype));
  const int64_t chunk = options.chunk_samples > 0 ? options.chunk_samples
                                                  : std::max<int64_t>(1, (int64_t{64} << 10) / std::max<int64_t>(1, sample_bytes));
  m.data = create_growing(m.file.get(), options.data_name, dtype == DType::UInt8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, sample_shape,
                          chunk, options.gzip_level, m.temporary);
  if (labels) m.labels = create_growing(m.file.get(), "labels", H5T_STD_I64LE, {}, 4096, 0, m.temporary);
}

DatasetWriter::DatasetWriter(const std::string& path, bool labels, const WriteOptions& options)
    : impl_(std::make_unique<Impl>(path, options, labels, true)) {
  Impl& m = *impl_;
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  const h5::Handle bytes_type = variable_bytes_type(), string_type = variable_string_type();
  m.data = create_growing(m.file.get(), "encoded_images", bytes_type.get(), {}, kEncodedChunk, 0, m.temporary);
  m.heights = create_growing(m.file.get(), "heights", H5T_STD_I32LE, {}, 4096, 0, m.temporary);
  m.widths = create_growing(m.file.get(), "widths", H5T_STD_I32LE, {}, 4096, 0, m.temporary);
  m.names = create_growing(m.file.get(), "filenames", string_type.get(), {}, kEncodedChunk, 0, m.temporary);
  if (labels) m.labels = create_growing(m.file.get(), "labels", H5T_STD_I64LE, {}, 4096, 0, m.temporary);
}

DatasetWriter::~DatasetWriter() = default;

void DatasetWriter::append(const void* data, int64_t count, const int64_t* labels) {
  Impl& m = *impl_;
  HORO_CHECK(!m.encoded && !m.finished, ValueError, m.path, ": append() is for decoded samples of an unfinished file");
  HORO_CHECK(!m.has_labels || labels, ValueError, m.path, ": this file has labels; append() needs them");
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  append_rows(m.data.get(), h5::memory_type(m.dtype), m.written, count, m.sample_shape, data, m.temporary + ":/" + m.options.data_name);
  if (m.has_labels) append_rows(m.labels.get(), H5T_NATIVE_INT64, m.written, count, {}, labels, m.temporary + ":/labels");
  m.written += count;
}

void DatasetWriter::append_encoded(const uint8_t* bytes, size_t size, int64_t height, int64_t width, int64_t label,
                                   const std::string& name) {
  Impl& m = *impl_;
  HORO_CHECK(m.encoded && !m.finished, ValueError, m.path, ": append_encoded() is for encoded images of an unfinished file");
  HORO_CHECK(height > 0 && width > 0 && height <= INT32_MAX && width <= INT32_MAX, ValueError, m.path, ": ", name,
             ": image size ", width, " x ", height, " out of range");
  m.pending_bytes.emplace_back(bytes, bytes + size);
  m.pending_heights.push_back(static_cast<int32_t>(height));
  m.pending_widths.push_back(static_cast<int32_t>(width));
  m.pending_labels.push_back(label);
  m.pending_names.push_back(name);
  if (static_cast<int64_t>(m.pending_bytes.size()) >= kEncodedChunk) m.flush_encoded();
}

int64_t DatasetWriter::count() const { return impl_->written + static_cast<int64_t>(impl_->pending_bytes.size()); }

void DatasetWriter::set_statistics(std::vector<double> mean, std::vector<double> std) {
  impl_->options.mean = std::move(mean);
  impl_->options.std = std::move(std);
}

void DatasetWriter::finish() {
  Impl& m = *impl_;
  HORO_CHECK(!m.finished, ValueError, m.path, ": finish() called twice");
  if (m.encoded) m.flush_encoded();
  {
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
    const hid_t f = m.file.get();
    const WriteOptions& o = m.options;
    if (!o.class_names.empty()) h5::write_string_list(f, "class_names", o.class_names, m.temporary);
    if (!o.feature_names.empty()) h5::write_string_list(f, "feature_names", o.feature_names, m.temporary);
    if (!o.mean.empty()) h5::write_doubles(f, "mean", o.mean, m.temporary);
    if (!o.std.empty()) h5::write_doubles(f, "std", o.std, m.temporary);
    h5::check(H5Fflush(f, H5F_SCOPE_GLOBAL), m.temporary, "flushing");
    m.data = {};
    m.labels = {};
    m.heights = {};
    m.widths = {};
    m.names = {};
    m.file = {};
  }
  std::error_code error;
  std::filesystem::rename(m.temporary, m.path, error);
  HORO_CHECK(!error, IOError, m.path, ": cannot move the finished file into place (", error.message(), ")");
  m.finished = true;
}

}  // namespace horo::data
