// Writes horo's HDF5 dataset layout (docs/data-format.md) a batch of samples at a time, so that a
// dataset larger than memory converts in bounded memory. Two layouts:
//   decoded   /images (or /features) uint8 or float32 [N, ...], chunked along samples
//   encoded   /encoded_images: each image file's own bytes (variable-length uint8 [N]), with
//             /heights and /widths int32 [N] and /filenames (variable-length strings [N])
// both with /labels int64 [N] when given. The file is written under a temporary name and moved into
// place by finish(); a writer destroyed before finish() removes what it wrote.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/h5_dataset.h"

namespace horo::data {

class DatasetWriter {
 public:
  // Decoded samples of `sample_shape` and `dtype` (uint8 or float32) under options.data_name.
  DatasetWriter(const std::string& path, DType dtype, const Shape& sample_shape, bool labels, const WriteOptions& options);
  // Encoded images (JPEG or PNG files as they are).
  DatasetWriter(const std::string& path, bool labels, const WriteOptions& options);
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  // `count` decoded samples, and their labels (nullptr when the file has none).
  void append(const void* data, int64_t count, const int64_t* labels);
  // One encoded image of height x width pixels, its label (ignored without labels) and its name.
  void append_encoded(const uint8_t* bytes, size_t size, int64_t height, int64_t width, int64_t label, const std::string& name);
  int64_t count() const;
  // Statistics computed while converting, written as the mean and std attributes.
  void set_statistics(std::vector<double> mean, std::vector<double> std);
  // Writes the attributes and moves the file into place.
  void finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace horo::data
