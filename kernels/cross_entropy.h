// Cross-entropy from logits [n, classes] and int64 labels, with optional class weights and label
// smoothing, mean-reduced with PyTorch's weighting: (1-eps) * nll + eps/C * smooth, both divided by
// the sum of the targets' weights (n when unweighted). The CPU kernels need labels checked in range;
// the CUDA kernels check them on the device (a label out of range is raised by the next host wait,
// kernels/device.h, and contributes nothing). The loss and its gradient's scale stay in the memory
// of the kernel's device, so a GPU step need not wait for the host.
#pragma once

#include <cstdint>

namespace horo::kernels {

struct CrossEntropyArgs {
  int64_t n = 0, classes = 0;
  const float* weight = nullptr;  // [classes] or null
  float label_smoothing = 0.0f;
};

namespace cpu {
// Writes log_softmax(logits) to log_probs and the mean loss to *loss.
void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                           float* log_probs, float* loss);
// grad_logits = *grad_loss * d(loss)/d(logits), from the forward's log_probs.
void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            const float* grad_loss, float* grad_logits);
}  // namespace cpu

// Device pointers; run on the current CUDA stream (kernels/device.h).
namespace cuda {
void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                           float* log_probs, float* loss);
void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            const float* grad_loss, float* grad_logits);
}  // namespace cuda

namespace ref {
void cross_entropy_forward(const CrossEntropyArgs& a, const float* logits, const int64_t* labels,
                           float* log_probs, float* loss);
void cross_entropy_backward(const CrossEntropyArgs& a, const float* log_probs, const int64_t* labels,
                            const float* grad_loss, float* grad_logits);
}  // namespace ref

}  // namespace horo::kernels
