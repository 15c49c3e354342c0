#include "data/idx.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <memory>

namespace horo::data {
namespace {

struct GzCloser {
  void operator()(gzFile f) const { gzclose(f); }
};
using GzFile = std::unique_ptr<std::remove_pointer_t<gzFile>, GzCloser>;

// Reads exactly `bytes` bytes; gzread reads plain files too, so one path serves both.
void read_exact(gzFile file, void* out, size_t bytes, const std::string& path, const char* what) {
  char* dst = static_cast<char*>(out);
  size_t done = 0;
  while (done < bytes) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(bytes - done, 1u << 30));
    const int got = gzread(file, dst + done, chunk);
    if (got < 0) {
      int code = 0;
      const char* message = gzerror(file, &code);
      throw IOError(detail::concat(path, ": corrupt or unreadable while reading ", what, " (", message, ")"));
    }
    HORO_CHECK(got > 0, IOError, path, ": truncated: expected ", bytes, " bytes of ", what, ", found ", done + got);
    done += static_cast<size_t>(got);
  }
}

uint32_t big_endian(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

GzFile open(const std::string& path) {
  HORO_CHECK(std::filesystem::is_regular_file(path), IOError, path, ": no such file");
  GzFile file(gzopen(path.c_str(), "rb"));
  HORO_CHECK(file != nullptr, IOError, path, ": cannot open (", std::strerror(errno), ")");
  return file;
}

// Reads the header and returns the dimension sizes; the magic is 0x00 0x00 0x08 (ubyte) rank.
std::vector<int64_t> read_header(gzFile file, const std::string& path, int expected_rank) {
  unsigned char magic[4];
  read_exact(file, magic, 4, path, "the IDX header");
  HORO_CHECK(magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08, IOError, path,
             ": not an unsigned-byte IDX file (magic bytes ", int(magic[0]), " ", int(magic[1]), " ", int(magic[2]), ")");
  HORO_CHECK(magic[3] == expected_rank, IOError, path, ": expected an IDX file of rank ", expected_rank, ", got rank ",
             int(magic[3]));
  std::vector<int64_t> dims;
  for (int d = 0; d < expected_rank; ++d) {
    unsigned char size[4];
    read_exact(file, size, 4, path, "the IDX header");
    dims.push_back(big_endian(size));
  }
  return dims;
}

// The header's sizes must fit in what the file can hold before anything is allocated: its size for a
// plain file, 1032 times it for gzip (deflate's largest ratio). A 16-byte header declaring 2^32
// images of 2^16 x 2^16 pixels is refused here, not by the allocator.
void check_declared_size(gzFile file, const std::vector<int64_t>& dims, const std::string& path) {
  std::error_code error;
  const uint64_t file_bytes = std::filesystem::file_size(path, error);
  HORO_CHECK(!error, IOError, path, ": cannot read its size (", error.message(), ")");
  const bool gzip = gzdirect(file) == 0;  // known once the header has been read
  const uint64_t header = 4 + 4 * dims.size();
  long double declared = 1.0L;
  std::string sizes;
  for (int64_t d : dims) {
    declared *= static_cast<long double>(d);
    sizes += (sizes.empty() ? "" : " x ") + std::to_string(d);
  }
  if (gzip) {
    HORO_CHECK(declared <= static_cast<long double>(file_bytes) * 1032.0L, IOError, path, ": its header declares ", sizes,
               " bytes, more than a gzip file of ", file_bytes, " bytes can hold (corrupt?)");
  } else {
    HORO_CHECK(declared <= static_cast<long double>(file_bytes - std::min(file_bytes, header)), IOError, path,
               ": truncated: its header declares ", sizes, ", expected ",
               declared < 1e18L ? std::to_string(static_cast<unsigned long long>(declared)) : std::string("over 10^18"),
               " bytes of data, found ", file_bytes - std::min(file_bytes, header));
  }
}

std::string find_file(const std::string& dir, const std::string& name) {
  const std::filesystem::path base = std::filesystem::path(dir) / name;
  if (std::filesystem::exists(base)) return base.string();
  const std::string gz = base.string() + ".gz";
  HORO_CHECK(std::filesystem::exists(gz), IOError, "dataset file not found: neither ", base.string(), " nor ", gz,
             " exists (install Debian's dataset-fashion-mnist, or pass --data DIR)");
  return gz;
}

}  // namespace

Tensor read_idx_images(const std::string& path) {
  GzFile file = open(path);
  const auto dims = read_header(file.get(), path, 3);
  check_declared_size(file.get(), dims, path);
  Tensor images = Tensor::empty({dims[0], 1, dims[1], dims[2]}, DType::UInt8);
  read_exact(file.get(), images.raw_data(), static_cast<size_t>(images.numel()), path, "the images");
  return images;
}

Tensor read_idx_labels(const std::string& path) {
  GzFile file = open(path);
  const auto dims = read_header(file.get(), path, 1);
  check_declared_size(file.get(), dims, path);
  std::vector<unsigned char> raw(static_cast<size_t>(dims[0]));
  read_exact(file.get(), raw.data(), raw.size(), path, "the labels");
  Tensor labels = Tensor::empty({dims[0]}, DType::Int64);
  int64_t* out = labels.data<int64_t>();
  for (size_t i = 0; i < raw.size(); ++i) out[i] = raw[i];
  return labels;
}

ImageDataset load_mnist_split(const std::string& dir, bool train) {
  const std::string prefix = train ? "train" : "t10k";
  const std::string images_path = find_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_file(dir, prefix + "-labels-idx1-ubyte");
  ImageDataset out{read_idx_images(images_path), read_idx_labels(labels_path)};
  HORO_CHECK(out.images.size(0) == out.labels.size(0), IOError, images_path, " holds ", out.images.size(0),
             " images but ", labels_path, " holds ", out.labels.size(0), " labels");
  return out;
}

ImageDataset take(const ImageDataset& dataset, int64_t count) {
  if (count < 0 || count >= dataset.size()) return dataset;
  return {dataset.images.slice(0, count), dataset.labels.slice(0, count)};
}

Tensor normalize_images(const Tensor& images, float mean, float std) {
  check_dtype(images, DType::UInt8, "normalize_images");
  Tensor out = Tensor::empty(images.shape());
  const uint8_t* src = images.data<uint8_t>();
  float* dst = out.data<float>();
  const float scale = 1.0f / (255.0f * std), shift = -mean / std;
  for (int64_t i = 0, n = images.numel(); i < n; ++i) dst[i] = static_cast<float>(src[i]) * scale + shift;
  return out;
}

}  // namespace horo::data
