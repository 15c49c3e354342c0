#include "kernels/reduce.h"

namespace horo::kernels::ref {

void sum(const ReduceShape& s, const float* x, float* out) {
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      double acc = 0.0;
      for (int64_t a = 0; a < s.axis; ++a) acc += x[(o * s.axis + a) * s.inner + i];
      out[o * s.inner + i] = static_cast<float>(acc);
    }
}

}  // namespace horo::kernels::ref
