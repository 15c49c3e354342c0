// Convolutions through cuDNN's convolution API: descriptors and algorithms made once per shape and
// device and cached (cudnnFind* measures the candidates on first use, as torch.backends.cudnn.benchmark
// does); workspaces come from the caching allocator. Strict fp32 (FMA math) unless TF32 is switched on
// (kernels::cuda::set_tf32), so results match the CPU as the GEMM path's do. Among the algorithms that
// fit the workspace bound, the fastest deterministic one is taken where there is one, so that two runs
// give the same gradients.
#include <cudnn.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/cudnn_conv.h"
#include "kernels/device.h"

#define CUDNN_CHECK(call)                                                                             \
  do {                                                                                                \
    const cudnnStatus_t status_ = (call);                                                             \
    if (status_ != CUDNN_STATUS_SUCCESS)                                                              \
      throw ::horo::BackendError(::horo::detail::concat(#call, " failed: ", cudnnGetErrorString(status_))); \
  } while (0)

namespace horo::kernels::cuda {
namespace {

constexpr size_t kWorkspaceLimit = size_t{1} << 30;
constexpr int kMaxDevices = 64;

std::atomic<int> g_cudnn{-1};  // -1: not decided yet (HORO_CUDNN from the environment)

// This device's cuDNN handle, or null when cuDNN cannot start there (a missing sub-library, an
// unsupported GPU): the convolutions then take the im2col path instead of failing.
cudnnHandle_t handle() {
  static std::array<std::once_flag, kMaxDevices> once;
  static std::array<cudnnHandle_t, kMaxDevices> handles{};
  const int device = current_device();
  HORO_CHECK(device >= 0 && device < kMaxDevices, BackendError, "cuda:", device, " is beyond the devices horo supports");
  std::call_once(once[static_cast<size_t>(device)], [device] {
    cudnnHandle_t h = nullptr;
    if (cudnnCreate(&h) != CUDNN_STATUS_SUCCESS) return;
    if (cudnnSetStream(h, stream()) != CUDNN_STATUS_SUCCESS) {
      cudnnDestroy(h);
      return;
    }
    handles[static_cast<size_t>(device)] = h;
  });
  return handles[static_cast<size_t>(device)];
}

// One direction's algorithm, once chosen, or the decision that cuDNN has none for it (no usable
// candidate, or its search failed): im2col from then on.
template <typename Algo>
struct Choice {
  bool chosen = false, declined = false;
  Algo algo{};
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
};

// A shape's descriptors and its algorithm for each direction.
struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Choice<cudnnConvolutionFwdAlgo_t> forward;
  Choice<cudnnConvolutionBwdDataAlgo_t> data;
  Choice<cudnnConvolutionBwdFilterAlgo_t> filter;
};

using Key = std::tuple<int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                       int64_t, int64_t, int64_t>;

bool fits_int(const Conv2dShape& s) {
  const int64_t in = s.batch * s.in_channels * s.in_h * s.in_w, out = s.batch * s.out_channels * s.out_h() * s.out_w();
  return in < INT_MAX && out < INT_MAX && s.out_channels * s.in_channels * s.kernel_h * s.kernel_w < INT_MAX;
}

Plan& plan_for(const Conv2dShape& s) {
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<Plan>> plans;
  const Key key{current_device(), tf32(), s.batch, s.in_channels, s.in_h, s.in_w, s.out_channels, s.kernel_h, s.kernel_w,
                s.stride_h, s.stride_w, s.pad_h, s.pad_w, s.dilation_h, s.dilation_w};
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = plans[key];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>();
  auto i = [](int64_t v) { return static_cast<int>(v); };
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
  CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->bias));
  CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
  CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, i(s.batch), i(s.in_channels), i(s.in_h), i(s.in_w)));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, i(s.batch), i(s.out_channels), i(s.out_h()),
                                         i(s.out_w())));
  CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, i(s.out_channels), 1, 1));
  CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, i(s.out_channels), i(s.in_channels),
                                         i(s.kernel_h), i(s.kernel_w)));
  CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, i(s.pad_h), i(s.pad_w), i(s.stride_h), i(s.stride_w), i(s.dilation_h),
                                              i(s.dilation_w), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, tf32() ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH));
  slot = std::move(p);
  return *slot;
}

// The fastest candidate that ran, fits the workspace bound and (where one does) is deterministic.
template <typename Perf>
const Perf* pick(const Perf* results, int count) {
  const Perf* best = nullptr;
  for (int k = 0; k < count; ++k) {
    const Perf& r = results[k];
    if (r.status != CUDNN_STATUS_SUCCESS || r.memory > kWorkspaceLimit) continue;
    if (!best || (r.determinism == CUDNN_DETERMINISTIC && best->determinism != CUDNN_DETERMINISTIC)) best = &r;
  }
  return best;  // results come fastest first
}

std::mutex& choice_mutex();

// Runs cuDNN's search once for a direction (find(results, &count) with room for kCount results) and
// keeps the pick; false when the direction is declined.
template <typename Perf, int kCount, typename Algo, typename Find>
bool choose(Choice<Algo>& choice, const Find& find) {
  std::lock_guard<std::mutex> lock(choice_mutex());
  if (choice.declined) return false;
  if (choice.chosen) return true;
  Perf results[kCount];
  int count = 0;
  const Perf* best = find(results, &count) == CUDNN_STATUS_SUCCESS ? pick(results, count) : nullptr;
  if (!best) {
    choice.declined = true;
    return false;
  }
  choice.algo = best->algo;
  choice.workspace = best->memory;
  choice.math = tf32() ? best->mathType : CUDNN_FMA_MATH;  // strict fp32 unless TF32 is on
  choice.chosen = true;
  return true;
}

std::mutex& choice_mutex() {
  static std::mutex m;
  return m;
}

constexpr float kOne = 1.0f, kZero = 0.0f;

}  // namespace

bool cudnn_available() { return true; }

void set_cudnn(bool on) { g_cudnn = on ? 1 : 0; }

bool cudnn_enabled() {
  int v = g_cudnn.load();
  if (v < 0) {
    const char* env = std::getenv("HORO_CUDNN");
    std::string value = env ? env : "";
    for (char& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (value.empty() || value == "1" || value == "on" || value == "auto" || value == "true") v = 1;
    else if (value == "0" || value == "off" || value == "false") v = 0;
    else throw ValueError(detail::concat("HORO_CUDNN='", env, "': expected on, off, auto, 1 or 0"));
    g_cudnn = v;
  }
  return v == 1;
}

bool cudnn_conv_forward(const Conv2dShape& s, const float* input, const float* weight, const float* bias, float* output) {
  if (!cudnn_enabled() || !fits_int(s)) return false;
  cudnnHandle_t h = handle();
  if (!h) return false;
  Plan& p = plan_for(s);
  using Perf = cudnnConvolutionFwdAlgoPerf_t;
  const bool chosen = choose<Perf, CUDNN_CONVOLUTION_FWD_ALGO_COUNT>(p.forward, [&](Perf* results, int* count) {
    return cudnnFindConvolutionForwardAlgorithm(h, p.x, p.w, p.conv, p.y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, count, results);
  });
  if (!chosen) return false;
  DeviceBuffer workspace(std::max<size_t>(p.forward.workspace, 4));
  CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.forward.math));  // the descriptor serves all three directions
  CUDNN_CHECK(cudnnConvolutionForward(h, &kOne, p.x, input, p.w, weight, p.conv, p.forward.algo, workspace.data, p.forward.workspace,
                                      &kZero, p.y, output));
  if (bias) CUDNN_CHECK(cudnnAddTensor(h, &kOne, p.bias, bias, &kOne, p.y, output));
  return true;
}

bool cudnn_conv_backward_input(const Conv2dShape& s, const float* grad_output, const float* weight, float* grad_input) {
  if (!cudnn_enabled() || !fits_int(s)) return false;
  cudnnHandle_t h = handle();
  if (!h) return false;
  Plan& p = plan_for(s);
  using Perf = cudnnConvolutionBwdDataAlgoPerf_t;
  const bool chosen = choose<Perf, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT>(p.data, [&](Perf* results, int* count) {
    return cudnnFindConvolutionBackwardDataAlgorithm(h, p.w, p.y, p.conv, p.x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, count, results);
  });
  if (!chosen) return false;
  DeviceBuffer workspace(std::max<size_t>(p.data.workspace, 4));
  CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.data.math));
  CUDNN_CHECK(cudnnConvolutionBackwardData(h, &kOne, p.w, weight, p.y, grad_output, p.conv, p.data.algo, workspace.data,
                                           p.data.workspace, &kZero, p.x, grad_input));
  return true;
}

bool cudnn_conv_backward_weight(const Conv2dShape& s, const float* input, const float* grad_output, float* grad_weight,
                                float* grad_bias) {
  if (!cudnn_enabled() || !fits_int(s)) return false;
  cudnnHandle_t h = handle();
  if (!h) return false;
  Plan& p = plan_for(s);
  using Perf = cudnnConvolutionBwdFilterAlgoPerf_t;
  const bool chosen = choose<Perf, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT>(p.filter, [&](Perf* results, int* count) {
    return cudnnFindConvolutionBackwardFilterAlgorithm(h, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, count, results);
  });
  if (!chosen) return false;
  DeviceBuffer workspace(std::max<size_t>(p.filter.workspace, 4));
  CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, p.filter.math));
  CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &kOne, p.x, input, p.y, grad_output, p.conv, p.filter.algo, workspace.data,
                                             p.filter.workspace, &kZero, p.w, grad_weight));
  if (grad_bias) CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &kOne, p.y, grad_output, &kZero, p.bias, grad_bias));
  return true;
}

}  // namespace horo::kernels::cuda
