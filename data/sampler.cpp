#include "data/sampler.h"

#include <cstring>
#include <algorithm>
#include <numeric>

#include "kernels/philox.h"

namespace horo::data {

std::vector<int64_t> permutation(int64_t n, uint64_t seed, uint64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  // One key per (seed, epoch); two 32-bit words per swap make the modulo bias negligible (< 2^-32).
  const uint64_t key = seed * 0x9E3779B97F4A7C15ull + epoch + 1;
  for (int64_t i = n - 1; i > 0; --i) {
    const uint64_t hi = kernels::Philox4x32::word(key, 2 * static_cast<uint64_t>(i));
    const uint64_t lo = kernels::Philox4x32::word(key, 2 * static_cast<uint64_t>(i) + 1);
    const int64_t j = static_cast<int64_t>(((hi << 32) | lo) % static_cast<uint64_t>(i + 1));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

Batch gather_batch(const ImageDataset& dataset, const std::vector<int64_t>& indices, int64_t begin, int64_t end) {
  HORO_CHECK(0 <= begin && begin <= end && end <= static_cast<int64_t>(indices.size()), ValueError,
             "gather_batch: range [", begin, ", ", end, ") outside ", indices.size(), " indices");
  Shape shape = dataset.images.shape();
  const int64_t sample_bytes = dataset.images.numel() / std::max<int64_t>(1, shape[0]);
  shape[0] = end - begin;
  Tensor raw = Tensor::empty(shape, DType::UInt8);
  Tensor labels = Tensor::empty({end - begin}, DType::Int64);
  const uint8_t* src = dataset.images.data<uint8_t>();
  const int64_t* src_labels = dataset.labels.data<int64_t>();
  uint8_t* dst = raw.data<uint8_t>();
  int64_t* dst_labels = labels.data<int64_t>();
  for (int64_t i = begin; i < end; ++i) {
    const int64_t s = indices[static_cast<size_t>(i)];
    HORO_CHECK(s >= 0 && s < dataset.size(), ValueError, "gather_batch: sample index ", s, " outside dataset of ",
               dataset.size());
    std::memcpy(dst + (i - begin) * sample_bytes, src + s * sample_bytes, static_cast<size_t>(sample_bytes));
    dst_labels[i - begin] = src_labels[s];
  }
  return {normalize_images(raw), labels};
}

}  // namespace horo::data
