#include "kernels/copy.h"

#include <cstring>

#include "kernels/parallel.h"

namespace horo::kernels::cpu {

void copy_rows(const void* src, int64_t src_stride, void* dst, int64_t dst_stride, int64_t row_bytes, int64_t rows) {
  if (rows <= 0 || row_bytes <= 0) return;
  const auto* from = static_cast<const char*>(src);
  auto* to = static_cast<char*>(dst);
  parallel_for(rows, std::max<int64_t>(1, (int64_t{1} << 16) / row_bytes), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) std::memcpy(to + r * dst_stride, from + r * src_stride, static_cast<size_t>(row_bytes));
  });
}

}  // namespace horo::kernels::cpu
