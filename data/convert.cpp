#include "data/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>

#include "data/dataset_writer.h"
#include "data/idx.h"
#include "data/sampler.h"
#include "kernels/philox.h"

namespace horo::data {

void channel_statistics(const Tensor& data, std::vector<double>& mean, std::vector<double>& std) {
  const int64_t n = data.size(0), channels = data.dim() == 4 ? data.size(1) : 1;
  const int64_t per_channel = n ? data.numel() / (n * channels) : 0;
  const double scale = data.dtype() == DType::UInt8 ? 1.0 / 255.0 : 1.0;
  mean.assign(static_cast<size_t>(channels), 0.0);
  std.assign(static_cast<size_t>(channels), 0.0);
  std::vector<double> sum(static_cast<size_t>(channels)), sq(static_cast<size_t>(channels));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t base = (i * channels + c) * per_channel;
      for (int64_t k = 0; k < per_channel; ++k) {
        const double v = (data.dtype() == DType::UInt8 ? data.data<uint8_t>()[base + k] : data.data<float>()[base + k]) * scale;
        sum[c] += v;
        sq[c] += v * v;
      }
    }
  const double count = static_cast<double>(n * per_channel);
  for (int64_t c = 0; c < channels && count > 0; ++c) {
    mean[c] = sum[c] / count;
    std[c] = std::sqrt(std::max(0.0, sq[c] / count - mean[c] * mean[c]));
  }
}

void convert_idx(const std::string& images, const std::string& labels, const std::string& out, WriteOptions options) {
  const Tensor x = read_idx_images(images), y = read_idx_labels(labels);
  HORO_CHECK(x.size(0) == y.size(0), IOError, images, " holds ", x.size(0), " images but ", labels, " holds ", y.size(0),
             " labels");
  if (options.mean.empty()) channel_statistics(x, options.mean, options.std);
  write_dataset_file(out, x, y, options);
}

namespace {
std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  bool quoted = false;
  for (char ch : line) {
    if (ch == '"') quoted = !quoted;
    else if (ch == ',' && !quoted) { out.push_back(cell); cell.clear(); }
    else if (ch != '\r') cell += ch;
  }
  out.push_back(cell);
  return out;
}

bool parse_number(const std::string& text, double& value) {
  const char* begin = text.c_str();
  char* end = nullptr;
  value = std::strtod(begin, &end);
  while (end && *end == ' ') ++end;
  return end != begin && end && *end == '\0';
}
}  // namespace

CsvTable read_csv(const std::string& path, const std::string& label_column) {
  std::ifstream in(path);
  HORO_CHECK(in.good(), IOError, path, ": cannot open");
  std::string line;
  HORO_CHECK(static_cast<bool>(std::getline(in, line)), IOError, path, ": empty file, expected a header line");
  const auto header = split_csv_line(line);
  const auto label_at = std::find(header.begin(), header.end(), label_column);
  HORO_CHECK(label_at != header.end(), IOError, path, ": no column named '", label_column, "' in the header");
  const size_t label_index = static_cast<size_t>(label_at - header.begin());
  CsvTable table;
  for (size_t c = 0; c < header.size(); ++c) if (c != label_index) table.feature_names.push_back(header[c]);
  std::vector<float> features;
  std::vector<std::string> raw_labels;
  int64_t row = 1;
  while (std::getline(in, line)) {
    ++row;
    if (line.empty() || line == "\r") continue;
    const auto cells = split_csv_line(line);
    HORO_CHECK(cells.size() == header.size(), IOError, path, ":", row, ": expected ", header.size(), " columns, got ",
               cells.size());
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c == label_index) { raw_labels.push_back(cells[c]); continue; }
      double v = 0;
      HORO_CHECK(parse_number(cells[c], v), IOError, path, ":", row, ": column '", header[c], "' is not numeric: '",
                 cells[c], "'");
      const float value = static_cast<float>(std::clamp(v, -1e39, 1e39));  // past float's range: infinity, refused below
      HORO_CHECK(std::isfinite(value), IOError, path, ":", row, ": column '", header[c], "' holds '", cells[c],
                 "', which is not a finite float32 (missing values must be filled in before conversion)");
      features.push_back(value);
    }
  }
  const int64_t n = static_cast<int64_t>(raw_labels.size()), f = static_cast<int64_t>(table.feature_names.size());
  HORO_CHECK(n > 0, IOError, path, ": no data rows");
  table.features = Tensor::from_vector(features, {n, f});
  std::vector<int64_t> labels(static_cast<size_t>(n));
  bool integral = true;
  for (size_t i = 0; i < raw_labels.size() && integral; ++i) {
    double v = 0;
    // Class indices: whole, non-negative and below 2^31 (anything else is a name, mapped below).
    integral = parse_number(raw_labels[i], v) && v == std::floor(v) && v >= 0 && v < 2147483648.0;
    labels[i] = integral ? static_cast<int64_t>(v) : 0;
  }
  if (!integral) {
    std::map<std::string, int64_t> index;
    for (const auto& l : raw_labels) index.emplace(l, 0);
    int64_t k = 0;
    for (auto& [name, id] : index) { id = k++; table.class_names.push_back(name); }
    for (size_t i = 0; i < raw_labels.size(); ++i) labels[i] = index[raw_labels[i]];
  }
  table.labels = Tensor::from_vector(labels, {n});
  return table;
}

void convert_csv(const std::string& csv, const std::string& label_column, const std::string& out, WriteOptions options) {
  CsvTable table = read_csv(csv, label_column);
  options.data_name = "features";
  options.feature_names = table.feature_names;
  if (options.class_names.empty()) options.class_names = table.class_names;
  write_dataset_file(out, table.features, table.labels, options);
}

namespace {
// Copies the listed samples of a file into a new file, with new labels.
void write_subset(const H5DatasetFile& file, const Tensor& all, const std::vector<int64_t>& samples,
                  const std::vector<int64_t>& labels, const std::string& out, WriteOptions options) {
  const Schema& s = file.schema();
  if (s.encoded) {  // image files copied one at a time, with their sizes and names
    options.mean = s.mean;
    options.std = s.std;
    DatasetWriter writer(out, true, options);
    std::vector<uint8_t> bytes;
    for (size_t i = 0; i < samples.size(); ++i) {
      file.read_encoded(samples[i], bytes);
      writer.append_encoded(bytes.data(), bytes.size(), file.image_height(samples[i]), file.image_width(samples[i]), labels[i],
                            file.file_name(samples[i]));
    }
    writer.finish();
    return;
  }
  Shape shape{static_cast<int64_t>(samples.size())};
  shape.insert(shape.end(), s.sample_shape.begin(), s.sample_shape.end());
  Tensor data = Tensor::empty(shape, s.data_dtype);
  const int64_t bytes = s.sample_bytes();
  for (size_t i = 0; i < samples.size(); ++i) {
    std::memcpy(static_cast<char*>(data.raw_data()) + static_cast<int64_t>(i) * bytes,
                static_cast<const char*>(all.raw_data()) + samples[i] * bytes, static_cast<size_t>(bytes));
  }
  options.data_name = s.data_name;
  options.mean = s.mean;
  options.std = s.std;
  options.feature_names = s.feature_names;
  write_dataset_file(out, data, Tensor::from_vector(labels, {static_cast<int64_t>(labels.size())}), options);
}
}  // namespace

std::pair<int64_t, int64_t> split_dataset(const std::string& input, const std::string& train_out,
                                          const std::string& val_out, const SplitOptions& o) {
  HORO_CHECK(o.val_fraction >= 0.0 && o.val_fraction < 1.0, ValueError, "split: validation fraction must be in [0, 1), got ",
             o.val_fraction);
  HORO_CHECK(o.val_fraction == 0.0 || !val_out.empty(), ValueError, "split: a validation fraction needs a validation output");
  H5DatasetFile file(input);
  const Schema& s = file.schema();
  HORO_CHECK(s.has_labels, ValueError, input, ": split needs labels");
  for (int64_t c : o.classes) {
    HORO_CHECK(c >= 0 && c < s.num_classes, ValueError, input, ": class ", c, " outside [0, ", s.num_classes, ")");
  }
  auto new_label = [&](int64_t label) -> int64_t {
    if (o.classes.empty()) return label;
    const auto at = std::find(o.classes.begin(), o.classes.end(), label);
    if (at == o.classes.end()) return -1;
    return o.relabel ? at - o.classes.begin() : label;
  };
  std::vector<int64_t> kept;
  for (int64_t i : permutation(s.count, o.seed, 0)) if (new_label(file.labels()[i]) >= 0) kept.push_back(i);
  const int64_t val_count = static_cast<int64_t>(std::llround(o.val_fraction * static_cast<double>(kept.size())));
  std::vector<int64_t> val(kept.begin(), kept.begin() + val_count), train;
  std::map<int64_t, int64_t> per_class;
  for (size_t k = static_cast<size_t>(val_count); k < kept.size(); ++k) {
    const int64_t label = new_label(file.labels()[kept[k]]);
    if (o.limit_per_class >= 0 && per_class[label] >= o.limit_per_class) continue;
    ++per_class[label];
    train.push_back(kept[k]);
  }
  // Ascending file order inside each output keeps the copies sequential and the files comparable.
  std::sort(train.begin(), train.end());
  std::sort(val.begin(), val.end());
  HORO_CHECK(!train.empty(), ValueError, input, ": the split leaves no training samples");
  WriteOptions options;
  for (int64_t c : o.classes.empty() || !o.relabel ? std::vector<int64_t>{} : o.classes) {
    options.class_names.push_back(s.class_names.empty() ? "class_" + std::to_string(c) : s.class_names[c]);
  }
  if (options.class_names.empty() && o.classes.empty()) options.class_names = s.class_names;
  const Tensor all = s.encoded ? Tensor() : file.read_all();
  auto relabelled = [&](const std::vector<int64_t>& samples) {
    std::vector<int64_t> labels;
    for (int64_t i : samples) labels.push_back(new_label(file.labels()[i]));
    return labels;
  };
  write_subset(file, all, train, relabelled(train), train_out, options);
  if (!val.empty()) write_subset(file, all, val, relabelled(val), val_out, options);
  return {static_cast<int64_t>(train.size()), static_cast<int64_t>(val.size())};
}

void synth_shapes(int64_t count, int64_t size, uint64_t seed, float noise, Tensor& images, Tensor& labels) {
  HORO_CHECK(count > 0 && size >= 8, ValueError, "synth: need count > 0 and size >= 8, got ", count, " and ", size);
  images = Tensor::zeros({count, 1, size, size}, DType::UInt8);
  labels = Tensor::empty({count}, DType::Int64);
  for (int64_t i = 0; i < count; ++i) {
    uint32_t w[4];
    kernels::Philox4x32::block(seed, static_cast<uint64_t>(i), w);
    const int64_t shape = static_cast<int64_t>(w[0] % 3);
    const double half = size * (0.2 + 0.15 * (w[1] % 1000) / 1000.0);
    const double cx = half + (size - 2 * half) * ((w[2] % 1000) / 1000.0);
    const double cy = half + (size - 2 * half) * ((w[3] % 1000) / 1000.0);
    uint8_t* img = images.data<uint8_t>() + i * size * size;
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        bool inside = false;
        if (shape == 0) inside = dy <= half && dy >= -half && std::fabs(dx) <= (dy + half) / 2;  // triangle, apex up
        else if (shape == 1) inside = std::fabs(dx) <= half && std::fabs(dy) <= half;           // square
        else inside = dx * dx + dy * dy <= half * half;                                          // circle
        const float jitter = noise * (kernels::Philox4x32::uniform(seed ^ 0xA5A5A5A5ull, static_cast<uint64_t>((i * size + y) * size + x)) - 0.5f);
        const float v = std::clamp((inside ? 0.9f : 0.1f) + jitter, 0.0f, 1.0f);
        img[y * size + x] = static_cast<uint8_t>(std::lround(v * 255.0f));
      }
    labels.data<int64_t>()[i] = shape;
  }
}

std::string inspect(const std::string& path) {
  H5DatasetFile file(path);
  const Schema& s = file.schema();
  std::ostringstream out;
  out << path << "\n  " << s.data_name << ": ";
  if (s.encoded) {
    out << s.count << " JPEG/PNG files";
  } else {
    out << dtype_name(s.data_dtype) << " [" << s.count;
    for (int64_t d : s.sample_shape) out << ", " << d;
    out << "]";
  }
  out << "\n  labels: " << (s.has_labels ? "int64 [" + std::to_string(s.count) + "], " + std::to_string(s.num_classes) + " classes" : "none") << "\n";
  if (!s.class_names.empty()) {
    out << "  class_names:";
    for (const auto& n : s.class_names) out << " " << n;
    out << "\n";
  }
  auto list = [&](const char* name, const std::vector<double>& v) {
    if (v.empty()) return;
    out << "  " << name << ":";
    for (double x : v) out << " " << x;
    out << "\n";
  };
  list("mean", s.mean);
  list("std", s.std);
  if (s.has_labels) {
    std::vector<int64_t> histogram(static_cast<size_t>(s.num_classes));
    for (int64_t l : file.labels()) ++histogram[static_cast<size_t>(l)];
    out << "  label histogram:";
    for (size_t c = 0; c < histogram.size(); ++c) out << " " << c << ":" << histogram[c];
    out << "\n";
  }
  if (s.encoded) {
    int64_t min_h = 0, max_h = 0, min_w = 0, max_w = 0;
    for (int64_t i = 0; i < s.count; ++i) {
      const int64_t h = file.image_height(i), w = file.image_width(i);
      if (i == 0 || h < min_h) min_h = h;
      if (i == 0 || h > max_h) max_h = h;
      if (i == 0 || w < min_w) min_w = w;
      if (i == 0 || w > max_w) max_w = w;
    }
    out << "  image sizes (width x height): " << min_w << "-" << max_w << " x " << min_h << "-" << max_h
        << " (decoded and transformed by the reader)\n";
    return out.str();
  }
  const Tensor all = file.read_all();
  double lo = 0, hi = 0, sum = 0;
  for (int64_t i = 0; i < all.numel(); ++i) {
    const double v = s.data_dtype == DType::UInt8 ? all.data<uint8_t>()[i] : all.data<float>()[i];
    if (i == 0 || v < lo) lo = v;
    if (i == 0 || v > hi) hi = v;
    sum += v;
  }
  out << "  values: min " << lo << " max " << hi << " mean " << (all.numel() ? sum / static_cast<double>(all.numel()) : 0.0) << "\n";
  return out.str();
}

}  // namespace horo::data
