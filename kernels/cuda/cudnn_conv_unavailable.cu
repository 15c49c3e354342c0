// A build without cuDNN (HORO_CUDNN=OFF, or not found): convolutions take the im2col path.
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/device.h"

namespace horo::kernels::cuda {

bool cudnn_available() { return false; }
void set_cudnn(bool) {}
bool cudnn_enabled() { return false; }
bool cudnn_conv_forward(const Conv2dShape&, const float*, const float*, const float*, float*) { return false; }
bool cudnn_conv_backward_input(const Conv2dShape&, const float*, const float*, float*) { return false; }
bool cudnn_conv_backward_weight(const Conv2dShape&, const float*, const float*, float*, float*) { return false; }

}  // namespace horo::kernels::cuda
