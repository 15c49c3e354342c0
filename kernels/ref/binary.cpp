#include "kernels/binary.h"

namespace horo::kernels::ref {

void binary(Binary op, const BroadcastShape& s, const float* a, const float* b, float* out) {
  int64_t total = 1;
  for (int d = 0; d < s.ndim; ++d) total *= s.out_shape[d];
  for (int64_t i = 0; i < total; ++i) {
    int64_t ia, ib;
    broadcast_offsets(s, i, ia, ib);
    const double x = a[ia], y = b[ib];
    double r = 0;
    switch (op) {
      case Binary::Add: r = x + y; break;
      case Binary::Sub: r = x - y; break;
      case Binary::Mul: r = x * y; break;
      case Binary::Div: r = x / y; break;
    }
    out[i] = static_cast<float>(r);
  }
}

void add_relu(int64_t n, const float* a, const float* b, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = a[i] + b[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
}

}  // namespace horo::kernels::ref
