// Cross-entropy from logits [n, classes] and int64 labels, with optional class weights and label
// smoothing, mean-reduced with PyTorch's weighting: (1-eps) * nll + eps/C * smooth, both divided by
// the sum of the targets' weights (n when unweighted). Labels must already be checked in range.
#pragma once

#include <cstdint>

namespace horo::kernels {

struct CrossEntropyArgs {
  int64_t n = 0, classes = 0;
  const float* weight = nullptr;  // [classes] or null
  float label_smoothing = 0.0f;
};

namespace cpu {
// Writes log_softmax(logits) to log_probs and returns the mean loss.
float cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                            float* log_probs);
// grad_logits = grad_loss * d(loss)/d(logits), from the forward's log_probs.
void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            float grad_loss, float* grad_logits);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
float cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                            float* log_probs);
void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            float grad_loss, float* grad_logits);
}  // namespace cuda

namespace ref {
float cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                            float* log_probs);
void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            float grad_loss, float* grad_logits);
}  // namespace ref

}  // namespace horo::kernels
