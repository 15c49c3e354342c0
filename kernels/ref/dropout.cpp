#include "kernels/dropout.h"

#include "kernels/philox.h"

namespace horo::kernels::ref {

void dropout_forward(uint64_t seed, uint64_t offset, float p, int64_t n, const float* x, float* mask, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const bool kept = Philox4x32::uniform(seed, offset + static_cast<uint64_t>(i)) < 1.0f - p;
    mask[i] = kept ? 1.0f / (1.0f - p) : 0.0f;
    y[i] = x[i] * mask[i];
  }
}

}  // namespace horo::kernels::ref
