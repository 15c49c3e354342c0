// PyTorch's formula written as it is documented: (1-eps) * nll_loss(logp, y, w) + eps/C * smooth, with
// smooth = sum_i sum_c -w_c logp_ic / sum_i w_y_i; the gradient by the chain rule through log-softmax.
#include "kernels/cross_entropy.h"

#include <cmath>
#include <vector>

namespace horo::kernels::ref {
namespace {

std::vector<double> log_softmax_row(const float* z, int64_t classes) {
  double max_value = z[0];
  for (int64_t c = 1; c < classes; ++c) max_value = std::max<double>(max_value, z[c]);
  double total = 0.0;
  for (int64_t c = 0; c < classes; ++c) total += std::exp(z[c] - max_value);
  std::vector<double> out(static_cast<size_t>(classes));
  for (int64_t c = 0; c < classes; ++c) out[c] = z[c] - max_value - std::log(total);
  return out;
}

double w(const CrossEntropyArgs& a, int64_t c) { return a.weight ? a.weight[c] : 1.0; }

}  // namespace

void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                           float* log_probs, float* loss) {
  double nll = 0.0, smooth = 0.0, denominator = 0.0;
  for (int64_t i = 0; i < a.n; ++i) {
    const auto lp = log_softmax_row(logits + i * a.classes, a.classes);
    for (int64_t c = 0; c < a.classes; ++c) {
      log_probs[i * a.classes + c] = static_cast<float>(lp[c]);
      smooth += -w(a, c) * lp[c];
    }
    nll += -w(a, labels[i]) * lp[labels[i]];
    denominator += w(a, labels[i]);
  }
  const double eps = a.label_smoothing;
  *loss = static_cast<float>((1 - eps) * nll / denominator + eps / a.classes * smooth / denominator);
}

void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            const float* grad_loss, float* grad_logits) {
  double denominator = 0.0;
  for (int64_t i = 0; i < a.n; ++i) denominator += w(a, labels[i]);
  const double eps = a.label_smoothing;
  for (int64_t i = 0; i < a.n; ++i) {
    // d loss / d logp_ic, then through log-softmax: dz_b = g_b - p_b * sum_c g_c.
    std::vector<double> g(static_cast<size_t>(a.classes));
    double g_sum = 0.0;
    for (int64_t c = 0; c < a.classes; ++c) {
      g[c] = -(eps / a.classes) * w(a, c) / denominator;
      if (c == labels[i]) g[c] += -(1 - eps) * w(a, c) / denominator;
      g_sum += g[c];
    }
    for (int64_t b = 0; b < a.classes; ++b) {
      const double p = std::exp(static_cast<double>(log_probs[i * a.classes + b]));
      grad_logits[i * a.classes + b] = static_cast<float>(*grad_loss * (g[b] - p * g_sum));
    }
  }
}

}  // namespace horo::kernels::ref
