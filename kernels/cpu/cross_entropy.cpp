// Fused log-softmax + weighted, label-smoothed NLL. Per sample, the loss is -sum_c a_c * logp_c with
// a_c = ((1-eps) * w_y * [c == y] + eps/C * w_c) / W, W = sum over the batch of w_y, which gives the
// gradient dL/dz_c = -a_c + p_c * sum_c' a_c'.
#include "kernels/cross_entropy.h"

#include <cmath>

#include "kernels/softmax.h"

namespace horo::kernels::cpu {
namespace {

float class_weight(const CrossEntropyArgs& a, int64_t c) { return a.weight ? a.weight[c] : 1.0f; }

double total_target_weight(const CrossEntropyArgs& a, const int64_t* labels) {
  if (!a.weight) return static_cast<double>(a.n);
  double total = 0.0;
  for (int64_t i = 0; i < a.n; ++i) total += a.weight[labels[i]];
  return total;
}

}  // namespace

void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                           float* log_probs, float* loss) {
  softmax_forward({.outer = a.n, .axis = a.classes, .inner = 1}, true, logits, log_probs);
  const double eps = a.label_smoothing, smooth_share = eps / static_cast<double>(a.classes);
  double nll = 0.0, smooth = 0.0;
  for (int64_t i = 0; i < a.n; ++i) {
    const float* lp = log_probs + i * a.classes;
    nll -= static_cast<double>(class_weight(a, labels[i])) * lp[labels[i]];
    if (eps != 0.0) {
      double row = 0.0;
      for (int64_t c = 0; c < a.classes; ++c) row -= static_cast<double>(class_weight(a, c)) * lp[c];
      smooth += row;
    }
  }
  const double total = total_target_weight(a, labels);
  *loss = static_cast<float>(((1.0 - eps) * nll + smooth_share * smooth) / total);
}

void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            const float* grad_loss, float* grad_logits) {
  const double total = total_target_weight(a, labels);
  const float eps = a.label_smoothing;
  const float scale = static_cast<float>(*grad_loss / total);
  const float smooth_share = eps / static_cast<float>(a.classes);
  float smooth_sum = 0.0f;  // sum_c eps/C * w_c, the same for every sample
  for (int64_t c = 0; c < a.classes; ++c) smooth_sum += smooth_share * class_weight(a, c);
  for (int64_t i = 0; i < a.n; ++i) {
    const float* lp = log_probs + i * a.classes;
    float* g = grad_logits + i * a.classes;
    const int64_t y = labels[i];
    const float target_coeff = (1.0f - eps) * class_weight(a, y);
    const float coeff_sum = target_coeff + smooth_sum;
    for (int64_t c = 0; c < a.classes; ++c) {
      const float coeff = smooth_share * class_weight(a, c) + (c == y ? target_coeff : 0.0f);
      g[c] = scale * (std::exp(lp[c]) * coeff_sum - coeff);
    }
  }
}

}  // namespace horo::kernels::cpu
