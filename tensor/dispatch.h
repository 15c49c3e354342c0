// Picks the CPU or CUDA version of a kernel (same name and arguments in kernels::cpu and
// kernels::cuda) by the device of the tensors, and checks that an op's tensors share one device. A
// CUDA kernel runs with its tensors' device current (and that device's stream); the caller's device
// is restored after the call.
#pragma once

#include <initializer_list>
#include <string>

#include "kernels/device.h"
#include "tensor/tensor.h"

#define HORO_DISPATCH(device, kernel, ...)                                                                      \
  ((device).is_cuda() ? (::horo::kernels::cuda::DeviceScope((device).index), ::horo::kernels::cuda::kernel(__VA_ARGS__)) \
                      : ::horo::kernels::cpu::kernel(__VA_ARGS__))

namespace horo {

// Throws TypeError naming `what` unless every defined tensor is on the first one's device.
inline void check_same_device(const std::string& what, std::initializer_list<const Tensor*> tensors) {
  const Tensor* first = nullptr;
  for (const Tensor* t : tensors) {
    if (!t || !t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    HORO_CHECK(t->device() == first->device(), TypeError, what, ": ", first->describe(), " is on ", first->device().str(),
               " but ", t->describe(), " is on ", t->device().str());
  }
}

}  // namespace horo
