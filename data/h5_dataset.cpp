#include "data/h5_dataset.h"

#include <algorithm>
#include <filesystem>

namespace horo::data {

H5DatasetFile::H5DatasetFile(const std::string& path) {
  schema_.path = path;
  file_ = h5::open_file(path);
  const hid_t f = file_.get();
  if (h5::has_dataset(f, "images")) schema_.data_name = "images";
  else if (h5::has_dataset(f, "features")) schema_.data_name = "features";
  else throw IOError(detail::concat(path, ": no dataset 'images' or 'features' (see docs/data-format.md)"));
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
  {
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
    h5::Handle props(h5::check_id(H5Dget_create_plist(data_.get()), where, "reading the layout"), H5Pclose);
    if (H5Pget_layout(props.get()) == H5D_CHUNKED) {
      std::vector<hsize_t> chunk(shape.size());
      h5::check(H5Pget_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data()) >= 0 ? 0 : -1, where,
                "reading the chunk shape");
      block_samples_ = std::max<int64_t>(1, static_cast<int64_t>(chunk[0]));
    }
  }

  schema_.class_names = h5::read_string_list(f, "class_names", path);
  schema_.mean = h5::read_doubles(f, "mean", path);
  schema_.std = h5::read_doubles(f, "std", path);
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
    labels_.resize(static_cast<size_t>(schema_.count));
    {
      std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
      h5::check(H5Dread(labels.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels_.data()), at, "reading");
    }
    const int64_t max_label = labels_.empty() ? -1 : *std::max_element(labels_.begin(), labels_.end());
    schema_.num_classes = schema_.class_names.empty() ? max_label + 1 : static_cast<int64_t>(schema_.class_names.size());
    for (size_t i = 0; i < labels_.size(); ++i) {
      HORO_CHECK(labels_[i] >= 0 && labels_[i] < schema_.num_classes, IOError, at, ": label ", labels_[i], " of sample ",
                 i, " is outside the class range [0, ", schema_.num_classes, ")",
                 schema_.class_names.empty() ? "" : " given by the class_names attribute");
    }
  }
}

int64_t H5DatasetFile::read_block(int64_t b, void* out) const {
  const std::string where = schema_.path + ":/" + schema_.data_name;
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
  return count;
}

Tensor H5DatasetFile::read_all() const {
  Shape shape{schema_.count};
  shape.insert(shape.end(), schema_.sample_shape.begin(), schema_.sample_shape.end());
  Tensor out = Tensor::empty(shape, schema_.data_dtype);
  if (schema_.count == 0) return out;
  std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
  h5::check(H5Dread(data_.get(), h5::memory_type(schema_.data_dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.raw_data()),
            schema_.path + ":/" + schema_.data_name, "reading");
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
  const std::string temporary = path + ".tmp";
  {
    h5::Handle file = h5::create_file(temporary);
    std::lock_guard<std::recursive_mutex> lock(h5::hdf5_lock());
    const int rank = static_cast<int>(data.dim());
    std::vector<hsize_t> dims(data.shape().begin(), data.shape().end());
    const int64_t sample_bytes = data.numel() / std::max<int64_t>(1, data.size(0)) * static_cast<int64_t>(dtype_size(data.dtype()));
    const int64_t chunk = o.chunk_samples > 0 ? o.chunk_samples : std::max<int64_t>(1, (int64_t{64} << 10) / std::max<int64_t>(1, sample_bytes));
    std::vector<hsize_t> chunk_dims = dims;
    chunk_dims[0] = static_cast<hsize_t>(std::clamp<int64_t>(chunk, 1, std::max<int64_t>(1, data.size(0))));
    const std::string where = temporary + ":/" + o.data_name;
    h5::Handle space(h5::check_id(H5Screate_simple(rank, dims.data(), nullptr), where, "creating the shape"), H5Sclose);
    h5::Handle props(h5::check_id(H5Pcreate(H5P_DATASET_CREATE), where, "creating properties"), H5Pclose);
    if (data.size(0) > 0) h5::check(H5Pset_chunk(props.get(), rank, chunk_dims.data()), where, "setting the chunk shape");
    if (o.gzip_level > 0) {
      h5::check(H5Pset_shuffle(props.get()), where, "enabling the shuffle filter");
      h5::check(H5Pset_deflate(props.get(), static_cast<unsigned>(o.gzip_level)), where, "enabling gzip");
    }
    const hid_t file_type = data.dtype() == DType::UInt8 ? H5T_STD_U8LE : H5T_IEEE_F32LE;
    h5::Handle dataset(h5::check_id(H5Dcreate2(file.get(), o.data_name.c_str(), file_type, space.get(), H5P_DEFAULT,
                                               props.get(), H5P_DEFAULT), where, "creating the dataset"), H5Dclose);
    h5::check(H5Dwrite(dataset.get(), h5::memory_type(data.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.raw_data()),
              where, "writing");
    if (labels.defined()) {
      const hsize_t n = static_cast<hsize_t>(labels.numel());
      h5::Handle lspace(h5::check_id(H5Screate_simple(1, &n, nullptr), temporary, "creating the label shape"), H5Sclose);
      h5::Handle lset(h5::check_id(H5Dcreate2(file.get(), "labels", H5T_STD_I64LE, lspace.get(), H5P_DEFAULT,
                                              H5P_DEFAULT, H5P_DEFAULT), temporary, "creating labels"), H5Dclose);
      h5::check(H5Dwrite(lset.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.raw_data()), temporary,
                "writing labels");
    }
    if (!o.class_names.empty()) h5::write_string_list(file.get(), "class_names", o.class_names, temporary);
    if (!o.feature_names.empty()) h5::write_string_list(file.get(), "feature_names", o.feature_names, temporary);
    if (!o.mean.empty()) h5::write_doubles(file.get(), "mean", o.mean, temporary);
    if (!o.std.empty()) h5::write_doubles(file.get(), "std", o.std, temporary);
    h5::check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), temporary, "flushing");
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  HORO_CHECK(!error, IOError, path, ": cannot move the finished file into place (", error.message(), ")");
}

}  // namespace horo::data
