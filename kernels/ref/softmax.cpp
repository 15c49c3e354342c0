#include "kernels/softmax.h"

#include <cmath>
#include <vector>

namespace horo::kernels::ref {

void softmax_forward(const SoftmaxShape& s, bool log, const float* x, float* y) {
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      auto at = [&](int64_t a) { return (o * s.axis + a) * s.inner + i; };
      double total = 0.0;
      for (int64_t a = 0; a < s.axis; ++a) total += std::exp(static_cast<double>(x[at(a)]));
      for (int64_t a = 0; a < s.axis; ++a) {
        const double p = std::exp(static_cast<double>(x[at(a)])) / total;
        y[at(a)] = static_cast<float>(log ? std::log(p) : p);
      }
    }
}

// The Jacobian written out: d softmax_a / d x_b = p_a (delta_ab - p_b); log-softmax: delta_ab - p_b.
void softmax_backward(const SoftmaxShape& s, bool log, const float* y, const float* dy, float* dx) {
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i) {
      auto at = [&](int64_t a) { return (o * s.axis + a) * s.inner + i; };
      std::vector<double> p(static_cast<size_t>(s.axis));
      for (int64_t a = 0; a < s.axis; ++a) p[a] = log ? std::exp(static_cast<double>(y[at(a)])) : y[at(a)];
      for (int64_t b = 0; b < s.axis; ++b) {
        double g = 0.0;
        for (int64_t a = 0; a < s.axis; ++a) {
          const double delta = a == b ? 1.0 : 0.0;
          g += dy[at(a)] * (log ? delta - p[b] : p[a] * (delta - p[b]));
        }
        dx[at(b)] = static_cast<float>(g);
      }
    }
}

}  // namespace horo::kernels::ref
