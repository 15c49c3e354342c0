// horo's HDF5 dataset layout (docs/data-format.md) and access to it:
//   /images    uint8 or float32 [N, C, H, W]   (or /features float32 [N, F] for tabular data)
//   /labels    int64 or int32 [N]             optional for unlabelled data
//   or /encoded_images: JPEG/PNG files' bytes [N] (variable-length uint8), /heights and /widths int32
//   [N], /filenames [N] (variable-length strings, for messages)
//   root attributes, all optional: class_names (strings), mean and std (per channel, of the data
//   scaled to [0, 1] for uint8), feature_names (strings, for tabular data)
// Data is chunked along the sample axis; gzip and the shuffle filter are optional.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tensor/hdf5.h"

namespace horo::data {

struct Schema {
  std::string path;
  std::string data_name;  // "images", "features" or "encoded_images"
  DType data_dtype = DType::UInt8;
  Shape sample_shape;  // shape of one sample, e.g. [1, 28, 28]; encoded: [3, H, W], H = W = 0 where sizes differ
  bool encoded = false;  // samples are image files, decoded by the reader
  int64_t count = 0;
  bool has_labels = false;
  int64_t num_classes = 0;  // from class_names when present, else max label + 1
  std::vector<std::string> class_names;
  std::vector<double> mean, std;
  std::vector<std::string> feature_names;

  int64_t sample_bytes() const { return shape_numel(sample_shape) * static_cast<int64_t>(dtype_size(data_dtype)); }
};

// An open dataset file, validated on opening: fields present, supported dtypes, equal sample counts,
// labels within the class range. Labels are read whole (they are small); data is read on demand.
class H5DatasetFile {
 public:
  explicit H5DatasetFile(const std::string& path);
  const Schema& schema() const { return schema_; }
  const std::vector<int64_t>& labels() const { return labels_; }
  // Samples are read in blocks: the dataset's chunks (a block of 1024 samples for an unchunked
  // dataset). A block is one contiguous hyperslab, which HDF5 reads (and inflates) in one piece.
  int64_t block_samples() const { return block_samples_; }
  int64_t block_count() const { return (schema_.count + block_samples_ - 1) / block_samples_; }
  // Reads block b into out (block_samples() samples, fewer for the last block); returns the count.
  int64_t read_block(int64_t b, void* out) const;
  // The whole data field as a tensor [N, ...].
  Tensor read_all() const;

  // Encoded files: sample i's bytes (into out, reusing its buffer) and its recorded size.
  void read_encoded(int64_t i, std::vector<uint8_t>& out) const;
  int64_t image_height(int64_t i) const { return heights_[static_cast<size_t>(i)]; }
  int64_t image_width(int64_t i) const { return widths_[static_cast<size_t>(i)]; }
  // Encoded files: the name sample i's file had when converted ("" when not recorded).
  std::string file_name(int64_t i) const;
  // "path: sample i" and, for encoded files, the image's file name: for messages.
  std::string sample_name(int64_t i) const;

 private:
  Schema schema_;
  h5::Handle file_, data_;
  std::vector<int64_t> labels_;
  std::vector<int32_t> heights_, widths_;
  int64_t block_samples_ = 1024;

  void open_encoded();
};

struct WriteOptions {
  std::string data_name = "images";
  int64_t chunk_samples = 0;  // 0: about 64 KiB per chunk (small chunks keep shuffled reads cheap)
  int gzip_level = 0;         // 0: no compression; 1-9: gzip with the shuffle filter
  std::vector<std::string> class_names;
  std::vector<double> mean, std;
  std::vector<std::string> feature_names;
};

// Writes data [N, ...] (uint8 or float32) and labels int64 [N] (undefined: no labels) in horo's
// layout; the file appears atomically (written to a temporary name, then renamed).
void write_dataset_file(const std::string& path, const Tensor& data, const Tensor& labels, const WriteOptions& options);

}  // namespace horo::data
