// Built instead of kernels/cuda/*.cu when horo is configured without CUDA: every CUDA entry point
// exists and says so, and available() is false, so CPU-only programs and tests run unchanged.
#include "kernels/activation.h"
#include "kernels/adaptive_pool.h"
#include "kernels/batch_norm.h"
#include "kernels/binary.h"
#include "kernels/conv2d.h"
#include "kernels/copy.h"
#include "kernels/cross_entropy.h"
#include "kernels/device.h"
#include "kernels/dropout.h"
#include "kernels/error.h"
#include "kernels/gemm.h"
#include "kernels/optim.h"
#include "kernels/pool2d.h"
#include "kernels/reduce.h"
#include "kernels/softmax.h"

namespace horo::kernels::cuda {
namespace {
[[noreturn]] void unavailable(const char* what) {
  throw TypeError(detail::concat(what, ": this build of horo has no CUDA backend (configure with -DHORO_CUDA=ON on a "
                                       "machine with the CUDA toolkit)"));
}
}  // namespace

bool available() { return false; }
int device_count() { return 0; }
void set_device(int) { unavailable("set_device"); }
int current_device() { unavailable("current_device"); }
DeviceScope::DeviceScope(int) { unavailable("selecting a device"); }
DeviceScope::~DeviceScope() = default;
bool is_device_pointer(const void*) { return false; }
void* device_alloc(size_t, int) { unavailable("device allocation"); }
void device_free(void*, size_t, int) {}
void* pinned_alloc(size_t) { unavailable("pinned allocation"); }
void pinned_free(void*) {}
AllocatorStats allocator_stats() { return {}; }
void release_cached_memory() {}
void copy(void*, const void*, size_t, Copy) { unavailable("device copy"); }
PendingCopy copy_async_to_host(void*, const void*, size_t) { unavailable("device copy"); }
void wait_copy(PendingCopy&) {}
void copy_async_to_device(void*, const void*, size_t) { unavailable("device copy"); }
void fill(float*, int64_t, float) { unavailable("fill"); }
void zero(void*, size_t) { unavailable("zero"); }
void argmax_rows(const float*, int64_t, int64_t, int64_t*) { unavailable("argmax"); }
void count_correct(const float*, const int64_t*, int64_t, int64_t, float*) { unavailable("count_correct"); }
uint64_t host_waits() { return 0; }
void synchronize() {}
void set_tf32(bool) { unavailable("set_tf32"); }
bool tf32() { return false; }
bool cudnn_available() { return false; }
void set_cudnn(bool) {}
bool cudnn_enabled() { return false; }

void gemm(const GemmArgs&) { unavailable("gemm"); }
void conv2d_forward(const Conv2dShape&, const float*, const float*, const float*, float*) { unavailable("conv2d"); }
void conv2d_backward_input(const Conv2dShape&, const float*, const float*, float*) { unavailable("conv2d"); }
void conv2d_backward_weight(const Conv2dShape&, const float*, const float*, float*, float*) { unavailable("conv2d"); }
void maxpool2d_forward(const Pool2dShape&, const float*, float*, int32_t*) { unavailable("max_pool2d"); }
void maxpool2d_backward(const Pool2dShape&, const float*, const int32_t*, float*) { unavailable("max_pool2d"); }
void avgpool2d_forward(const Pool2dShape&, const float*, float*) { unavailable("avg_pool2d"); }
void avgpool2d_backward(const Pool2dShape&, const float*, float*) { unavailable("avg_pool2d"); }
void unary_forward(Unary, float, int64_t, const float*, float*) { unavailable("unary op"); }
void unary_backward(Unary, float, int64_t, const float*, const float*, const float*, float*) { unavailable("unary op"); }
void softmax_forward(const SoftmaxShape&, bool, const float*, float*) { unavailable("softmax"); }
void softmax_backward(const SoftmaxShape&, bool, const float*, const float*, float*) { unavailable("softmax"); }
void dropout_forward(uint64_t, uint64_t, float, int64_t, const float*, float*, float*) { unavailable("dropout"); }
void binary(Binary, const BroadcastShape&, const float*, const float*, float*) { unavailable("binary op"); }
void affine(int64_t, float, float, const float*, float*) { unavailable("affine"); }
void accumulate(int64_t, const float*, float*) { unavailable("accumulate"); }
void add_relu(int64_t, const float*, const float*, float*) { unavailable("add_relu"); }
void sum(const ReduceShape&, const float*, float*) { unavailable("sum"); }
void cross_entropy_forward(const CrossEntropyArgs&, const float*, const int64_t*, float*, float*) { unavailable("cross_entropy"); }
void cross_entropy_backward(const CrossEntropyArgs&, const float*, const int64_t*, const float*, float*) { unavailable("cross_entropy"); }
void sgd_update(const SgdArgs&, int64_t, float*, const float*, float*) { unavailable("sgd"); }
void adam_update(const AdamArgs&, int64_t, float*, const float*, float*, float*) { unavailable("adam"); }

void adaptive_avgpool2d_forward(const AdaptivePool2dShape&, const float*, float*) { unavailable("adaptive_avg_pool2d"); }
void adaptive_avgpool2d_backward(const AdaptivePool2dShape&, const float*, float*) { unavailable("adaptive_avg_pool2d"); }
void copy_rows(const void*, int64_t, void*, int64_t, int64_t, int64_t) { unavailable("device copy"); }
void batch_norm_stats(const BatchNormShape&, const float*, float*, float*) { unavailable("batch_norm"); }
void batch_norm_coefficients(int64_t, const float*, const float*, const float*, const float*, float, float*, float*, float*) {
  unavailable("batch_norm");
}
void batch_norm_update_running(int64_t, const float*, const float*, float, float, float*, float*) { unavailable("batch_norm"); }
void batch_norm_apply(const BatchNormShape&, const float*, const float*, const float*, const float*, bool, float*) {
  unavailable("batch_norm");
}
void batch_norm_backward_reduce(const BatchNormShape&, const float*, ReluMask, const float*, const float*, const float*,
                                float*, float*) {
  unavailable("batch_norm");
}
void batch_norm_backward_input(const BatchNormShape&, const float*, ReluMask, const float*, const float*, const float*,
                               const float*, const float*, const float*, double, float*) {
  unavailable("batch_norm");
}
void batch_norm_backward(const BatchNormShape&, const float*, ReluMask, const float*, const float*, const float*,
                         const float*, float*, float*, float*) {
  unavailable("batch_norm");
}
void increment_int64(int64_t*, int64_t) { unavailable("increment"); }

}  // namespace horo::kernels::cuda
