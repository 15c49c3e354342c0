// Building datasets in horo's HDF5 layout: from IDX and CSV files, by splitting an existing file, and
// as seeded synthetic shapes; and a human-readable summary of a file.
#pragma once

#include <string>
#include <vector>

#include "data/h5_dataset.h"

namespace horo::data {

// Per-channel mean and std of uint8 images [N, C, H, W] scaled to [0, 1] (or of float data as is).
void channel_statistics(const Tensor& data, std::vector<double>& mean, std::vector<double>& std);

// IDX images + labels (MNIST / Fashion-MNIST, gzip or not) -> HDF5, with mean/std attributes.
void convert_idx(const std::string& images, const std::string& labels, const std::string& out, WriteOptions options);

struct CsvTable {
  Tensor features;  // float32 [N, F]
  Tensor labels;    // int64 [N]
  std::vector<std::string> feature_names, class_names;  // class_names set when labels were strings
};
// A CSV file with a header: every column but `label_column` must be numeric. Integer labels are kept;
// any other labels are mapped to class indices in sorted order, with class_names recording them.
CsvTable read_csv(const std::string& path, const std::string& label_column);
void convert_csv(const std::string& csv, const std::string& label_column, const std::string& out, WriteOptions options);

struct SplitOptions {
  double val_fraction = 0.1;         // share of (filtered) samples that go to the validation file
  uint64_t seed = 0;
  std::vector<int64_t> classes;      // keep only these classes (empty: all)
  bool relabel = false;              // renumber the kept classes 0..K-1 in the order given
  int64_t limit_per_class = -1;      // at most this many training samples per class (-1: all)
};
// Splits `input` into train_out and (when val_fraction > 0) val_out, seeded; returns (train, val) counts.
std::pair<int64_t, int64_t> split_dataset(const std::string& input, const std::string& train_out,
                                          const std::string& val_out, const SplitOptions& options);

// `count` grey images [count, 1, size, size] of a triangle, a square or a circle (labels 0, 1, 2) at a
// random position and scale, with noise; a pure function of the seed.
void synth_shapes(int64_t count, int64_t size, uint64_t seed, float noise, Tensor& images, Tensor& labels);

// Schema, sample counts, label histogram and value range of a dataset file.
std::string inspect(const std::string& path);

}  // namespace horo::data
