#include "data/h5_dataset.h"

#include "data/dataset_writer.h"
#include "data/image_codec.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

namespace horo::data {
namespace {

// More classes than any real dataset has; larger "labels" are corrupt data (and label + 1 cannot overflow).
constexpr int64_t kMaxClasses = int64_t{1} << 31;

// Every element of a dataset declaring `count` samples must have been written: HDF5 reads chunks that
// were never written as zeros, so a file cut short, or one that only declares its size, would
// otherwise train on blank samples.
void check_written(hid_t dataset, const std::string& where, int64_t count) {
  if (count == 0) return;
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  h5::Handle props(h5::check_id(H5Dget_create_plist(dataset), where, "reading the layout"), H5Pclose);
  const H5D_layout_t layout = H5Pget_layout(props.get());
  bool written = true;
  if (layout == H5D_CHUNKED) {
    // Every chunk of the current extent must exist (H5Dget_space_status counts against the maximum
    // extent, which is unlimited for appendable datasets, so it cannot tell).
    h5::Handle space(h5::check_id(H5Dget_space(dataset), where, "reading the shape"), H5Sclose);
    const int rank = H5Sget_simple_extent_ndims(space.get());
    h5::check(rank, where, "reading the shape");
    std::vector<hsize_t> dims(static_cast<size_t>(rank)), chunk(static_cast<size_t>(rank));
    h5::check(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr), where, "reading the shape");
    h5::check(H5Pget_chunk(props.get(), rank, chunk.data()), where, "reading the chunk shape");
    hsize_t expected = 1, allocated = 0;
    for (int d = 0; d < rank; ++d) {
      HORO_CHECK(chunk[d] > 0, IOError, where, ": a chunk dimension of 0");
      expected *= (dims[d] + chunk[d] - 1) / chunk[d];
    }
    h5::check(H5Dget_num_chunks(dataset, space.get(), &allocated), where, "counting the chunks");
    written = allocated >= expected;
  } else if (layout == H5D_CONTIGUOUS) {
    H5D_space_status_t status{};
    h5::check(H5Dget_space_status(dataset, &status), where, "reading the allocation status");
    written = status == H5D_SPACE_STATUS_ALLOCATED;
  }
  HORO_CHECK(written, IOError, where, ": declares ", count, " samples but not all of them were ever written (a truncated or crafted file?)");
}

// mean and std normalise every pixel: one value per channel (or one for all), finite, std positive.
// A std of +Inf made every pixel 0, and a NaN mean every pixel NaN, without a word.
void check_statistics(const Schema& schema, const std::string& path) {
  const int64_t channels = schema.sample_shape.size() == 3 ? schema.sample_shape[0] : 0;
  for (const auto* values : {&schema.mean, &schema.std}) {
    const char* name = values == &schema.mean ? "mean" : "std";
    if (values->empty()) continue;
    HORO_CHECK(channels == 0 || static_cast<int64_t>(values->size()) == channels || values->size() == 1, IOError, path,
               ": attribute '", name, "' holds ", values->size(), " values for ", channels, " channels (expected ", channels,
               " or 1)");
    for (size_t c = 0; c < values->size(); ++c) {
      const double v = (*values)[c];
      HORO_CHECK(std::isfinite(v) && (values == &schema.mean || v > 0.0), IOError, path, ": attribute '", name, "' value ",
                 c, " is ", v, "; expected a finite", values == &schema.mean ? "" : ", positive", " number");
    }
  }
}

// Float samples must be finite: a NaN or infinity in the data can only poison the run. Names the
// first bad sample (its index in the file) and element.
void check_finite_samples(const Schema& schema, const void* data, int64_t first, int64_t count, const std::string& where) {
  if (schema.data_dtype != DType::Float32) return;
  const float* values = static_cast<const float*>(data);
  const int64_t per_sample = shape_numel(schema.sample_shape), total = count * per_sample;
  for (int64_t i = 0; i < total; ++i) {
    if (!std::isfinite(values[i])) {
      throw NumericError(detail::concat(where, ": sample ", first + i / per_sample, " holds ", values[i], " at element ",
                                        i % per_sample, "; the data must be finite"));
    }
  }
}

}  // namespace

H5DatasetFile::H5DatasetFile(const std::string& path) {
  schema_.path = path;
  file_ = h5::open_file(path);
  const hid_t f = file_.get();
  if (h5::has_dataset(f, "encoded_images")) {
    open_encoded();
  } else {
    if (h5::has_dataset(f, "images")) schema_.data_name = "images";
    else if (h5::has_dataset(f, "features")) schema_.data_name = "features";
    else throw IOError(detail::concat(path, ": no dataset 'images', 'features' or 'encoded_images' (see docs/data-format.md)"));
    const std::string where = path + ":/" + schema_.data_name;
    data_ = h5::open_dataset(f, schema_.data_name, where);
    schema_.data_dtype = h5::dataset_dtype(data_.get(), where);
    HORO_CHECK(schema_.data_dtype == DType::UInt8 || schema_.data_dtype == DType::Float32, IOError, where,
               ": unsupported dtype ", dtype_name(schema_.data_dtype), "; expected uint8 or float32");
    const auto shape = h5::dataset_shape(data_.get(), where);
    HORO_CHECK(shape.size() >= 2, IOError, where, ": expected [samples, ...] with at least 2 dimensions, got ",
               shape_str(shape));
    schema_.count = shape[0];
    schema_.sample_shape.assign(shape.begin() + 1, shape.end());
    HORO_CHECK(shape_numel(schema_.sample_shape) > 0, IOError, where, ": samples of shape ", shape_str(schema_.sample_shape),
               " hold no values");
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
    h5::Handle props(h5::check_id(H5Dget_create_plist(data_.get()), where, "reading the layout"), H5Pclose);
    if (H5Pget_layout(props.get()) == H5D_CHUNKED) {
      std::vector<hsize_t> chunk(shape.size());
      h5::check(H5Pget_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data()) >= 0 ? 0 : -1, where,
                "reading the chunk shape");
      block_samples_ = std::max<int64_t>(1, static_cast<int64_t>(std::min<hsize_t>(chunk[0], INT64_MAX)));
    }
    // A block never exceeds the samples there are (chunks of 10^6 samples in a 1 MB file once made
    // training take 950 MB) nor about 256 MiB (HDF5 reads part of a larger chunk just as well).
    const int64_t cap = std::max<int64_t>(1, (int64_t{256} << 20) / std::max<int64_t>(1, schema_.sample_bytes()));
    block_samples_ = std::min({block_samples_, std::max<int64_t>(1, schema_.count), cap});
  }

  schema_.class_names = h5::read_string_list(f, "class_names", path);
  schema_.mean = h5::read_doubles(f, "mean", path);
  schema_.std = h5::read_doubles(f, "std", path);
  check_statistics(schema_, path);
  schema_.feature_names = h5::read_string_list(f, "feature_names", path);

  schema_.has_labels = h5::has_dataset(f, "labels");
  if (schema_.has_labels) {
    const std::string at = path + ":/labels";
    h5::Handle labels = h5::open_dataset(f, "labels", at);
    const DType dtype = h5::dataset_dtype(labels.get(), at);
    HORO_CHECK(dtype == DType::Int64 || dtype == DType::Int32, IOError, at, ": unsupported dtype ", dtype_name(dtype),
               "; expected int64 or int32 class indices");
    const auto lshape = h5::dataset_shape(labels.get(), at);
    HORO_CHECK(lshape.size() == 1, IOError, at, ": expected shape [", schema_.count, "], got ", shape_str(lshape));
    HORO_CHECK(lshape[0] == schema_.count, IOError, path, ": ", schema_.data_name, " holds ", schema_.count,
               " samples but labels holds ", lshape[0]);
    check_written(labels.get(), at, schema_.count);
    labels_.resize(static_cast<size_t>(schema_.count));
    {
      std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
      h5::check(H5Dread(labels.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels_.data()), at, "reading");
    }
    const auto max_label = std::max_element(labels_.begin(), labels_.end());
    if (max_label != labels_.end()) {
      HORO_CHECK(*max_label < kMaxClasses, IOError, at, ": label ", *max_label, " of sample ", max_label - labels_.begin(),
                 " is not a class index (at most ", kMaxClasses - 1, ")");
    }
    schema_.num_classes = !schema_.class_names.empty() ? static_cast<int64_t>(schema_.class_names.size())
                          : max_label == labels_.end() ? 0 : *max_label + 1;
    for (size_t i = 0; i < labels_.size(); ++i) {
      HORO_CHECK(labels_[i] >= 0 && labels_[i] < schema_.num_classes, IOError, at, ": label ", labels_[i], " of sample ",
                 i, " is outside the class range [0, ", schema_.num_classes, ")",
                 schema_.class_names.empty() ? "" : " given by the class_names attribute");
    }
  }
  if (!schema_.encoded) check_written(data_.get(), path + ":/" + schema_.data_name, schema_.count);
}

namespace {

// A one-dimensional int32 dataset of `count` values.
std::vector<int32_t> read_int32s(hid_t file, const std::string& name, int64_t count, const std::string& path) {
  const std::string at = path + ":/" + name;
  HORO_CHECK(h5::has_dataset(file, name), IOError, path, ": encoded images need the dataset '", name, "'");
  h5::Handle set = h5::open_dataset(file, name, at);
  const auto shape = h5::dataset_shape(set.get(), at);
  HORO_CHECK(shape.size() == 1 && shape[0] == count, IOError, at, ": expected shape [", count, "], got ", shape_str(shape));
  check_written(set.get(), at, count);
  std::vector<int32_t> values(static_cast<size_t>(count));
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  if (count > 0) h5::check(H5Dread(set.get(), H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()), at, "reading");
  return values;
}

// One element of a one-dimensional dataset as the selection of a file space and a memory space.
struct Element {
  h5::Handle file_space, memory_space;
  Element(hid_t dataset, int64_t i, const std::string& where) {
    file_space = h5::Handle(h5::check_id(H5Dget_space(dataset), where, "reading the shape"), H5Sclose);
    const hsize_t start = static_cast<hsize_t>(i), one = 1;
    h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &one, nullptr), where, "selecting a sample");
    memory_space = h5::Handle(h5::check_id(H5Screate_simple(1, &one, nullptr), where, "creating the memory shape"), H5Sclose);
  }
};

}  // namespace

void H5DatasetFile::open_encoded() {
  const hid_t f = file_.get();
  const std::string& path = schema_.path;
  schema_.data_name = "encoded_images";
  schema_.encoded = true;
  schema_.data_dtype = DType::UInt8;
  const std::string where = path + ":/encoded_images";
  data_ = h5::open_dataset(f, "encoded_images", where);
  {
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
    h5::Handle type(h5::check_id(H5Dget_type(data_.get()), where, "reading the type"), H5Tclose);
    bool bytes = H5Tget_class(type.get()) == H5T_VLEN;
    if (bytes) {
      h5::Handle base(h5::check_id(H5Tget_super(type.get()), where, "reading the element type"), H5Tclose);
      bytes = H5Tget_class(base.get()) == H5T_INTEGER && H5Tget_size(base.get()) == 1;
    }
    HORO_CHECK(bytes, IOError, where, ": expected variable-length uint8 (each image file's bytes)");
  }
  const auto shape = h5::dataset_shape(data_.get(), where);
  HORO_CHECK(shape.size() == 1, IOError, where, ": expected shape [samples], got ", shape_str(shape));
  schema_.count = shape[0];
  check_written(data_.get(), where, schema_.count);
  heights_ = read_int32s(f, "heights", schema_.count, path);
  widths_ = read_int32s(f, "widths", schema_.count, path);
  int64_t h = schema_.count ? heights_[0] : 0, w = schema_.count ? widths_[0] : 0;
  for (int64_t i = 0; i < schema_.count; ++i) {
    const int64_t hi = heights_[static_cast<size_t>(i)], wi = widths_[static_cast<size_t>(i)];
    HORO_CHECK(hi > 0 && wi > 0 && hi * wi <= kMaxImagePixels, IOError, path, ": sample ", i, " records an image of ", wi,
               " x ", hi, " pixels (expected 1 to ", kMaxImagePixels, " pixels)");
    if (hi != h || wi != w) h = w = 0;
  }
  schema_.sample_shape = {3, h, w};
  block_samples_ = 1;  // image files are read one at a time
}

void H5DatasetFile::read_encoded(int64_t i, std::vector<uint8_t>& out) const {
  const std::string where = schema_.path + ":/encoded_images";
  HORO_CHECK(schema_.encoded, ValueError, schema_.path, ": not a file of encoded images");
  HORO_CHECK(i >= 0 && i < schema_.count, ValueError, where, ": sample ", i, " outside [0, ", schema_.count, ")");
  h5::quiet_this_thread();
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  const Element element(data_.get(), i, where);
  h5::Handle type(h5::check_id(H5Tvlen_create(H5T_NATIVE_UINT8), where, "creating the memory type"), H5Tclose);
  hvl_t value{0, nullptr};
  h5::check(H5Dread(data_.get(), type.get(), element.memory_space.get(), element.file_space.get(), H5P_DEFAULT, &value), where,
            "reading an image");
  out.assign(static_cast<const uint8_t*>(value.p), static_cast<const uint8_t*>(value.p) + value.len);
  h5::check(H5Dvlen_reclaim(type.get(), element.memory_space.get(), H5P_DEFAULT, &value), where, "releasing a read buffer");
}

std::string H5DatasetFile::file_name(int64_t i) const {
  if (!schema_.encoded || i < 0 || i >= schema_.count) return "";
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  if (!h5::has_dataset(file_.get(), "filenames")) return "";
  h5::quiet_this_thread();
  const std::string where = schema_.path + ":/filenames";
  h5::Handle set = h5::open_dataset(file_.get(), "filenames", where);
  const Element element(set.get(), i, where);
  h5::Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  char* text = nullptr;
  h5::check(H5Dread(set.get(), type.get(), element.memory_space.get(), element.file_space.get(), H5P_DEFAULT, &text), where,
            "reading a file name");
  std::string name = text ? text : "";
  H5Dvlen_reclaim(type.get(), element.memory_space.get(), H5P_DEFAULT, &text);
  return name;
}

std::string H5DatasetFile::sample_name(int64_t i) const {
  std::string name = detail::concat(schema_.path, ": sample ", i);
  try {
    const std::string file = file_name(i);
    if (!file.empty()) name += " (" + file + ")";
  } catch (const Error&) {
    // the name only decorates a message: without it the message still names the sample
  }
  return name;
}

int64_t H5DatasetFile::read_block(int64_t b, void* out) const {
  const std::string where = schema_.path + ":/" + schema_.data_name;
  HORO_CHECK(!schema_.encoded, ValueError, where, ": encoded images are read one at a time (read_encoded)");
  HORO_CHECK(b >= 0 && b < block_count(), ValueError, where, ": block ", b, " outside [0, ", block_count(), ")");
  h5::quiet_this_thread();
  const int64_t first = b * block_samples_, count = std::min(block_samples_, schema_.count - first);
  const size_t rank = schema_.sample_shape.size() + 1;
  std::vector<hsize_t> start(rank, 0), dims(rank);
  start[0] = static_cast<hsize_t>(first);
  dims[0] = static_cast<hsize_t>(count);
  for (size_t d = 1; d < rank; ++d) dims[d] = static_cast<hsize_t>(schema_.sample_shape[d - 1]);
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  h5::Handle file_space(h5::check_id(H5Dget_space(data_.get()), where, "reading the shape"), H5Sclose);
  h5::check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, dims.data(), nullptr), where,
            "selecting samples");
  h5::Handle mem_space(h5::check_id(H5Screate_simple(static_cast<int>(rank), dims.data(), nullptr), where,
                                    "creating the memory shape"), H5Sclose);
  h5::check(H5Dread(data_.get(), h5::memory_type(schema_.data_dtype), mem_space.get(), file_space.get(), H5P_DEFAULT, out),
            where, "reading samples");
  check_finite_samples(schema_, out, first, count, where);
  return count;
}

Tensor H5DatasetFile::read_all() const {
  HORO_CHECK(!schema_.encoded, ValueError, schema_.path, ": encoded images have no fixed-size array to read whole");
  Shape shape{schema_.count};
  shape.insert(shape.end(), schema_.sample_shape.begin(), schema_.sample_shape.end());
  Tensor out = Tensor::empty(shape, schema_.data_dtype);
  if (schema_.count == 0) return out;
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  const std::string where = schema_.path + ":/" + schema_.data_name;
  h5::check(H5Dread(data_.get(), h5::memory_type(schema_.data_dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.raw_data()), where,
            "reading");
  check_finite_samples(schema_, out.raw_data(), 0, schema_.count, where);
  return out;
}

void write_dataset_file(const std::string& path, const Tensor& data, const Tensor& labels, const WriteOptions& o) {
  HORO_CHECK(data.dtype() == DType::UInt8 || data.dtype() == DType::Float32, TypeError, path,
             ": data must be uint8 or float32, got ", data.describe());
  HORO_CHECK(data.dim() >= 2, ShapeError, path, ": data must be [samples, ...], got ", data.describe());
  if (labels.defined()) {
    check_dtype(labels, DType::Int64, path + ": labels");
    HORO_CHECK(labels.dim() == 1 && labels.size(0) == data.size(0), ShapeError, path, ": ", data.size(0),
               " samples but labels ", labels.describe());
  }
  const Shape sample_shape(data.shape().begin() + 1, data.shape().end());
  DatasetWriter writer(path, data.dtype(), sample_shape, labels.defined(), o);
  writer.append(data.raw_data(), data.size(0), labels.defined() ? labels.data<int64_t>() : nullptr);
  writer.finish();
}

}  // namespace horo::data
