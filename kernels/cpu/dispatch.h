// Run-time dispatch of the CPU kernels (internal to kernels/cpu). A kernel file is compiled once per
// Highway target (hwy/foreach_target.h) into horo::kernels::cpu::N_<TARGET>; its public entry points
// call the chosen copy through HORO_CPU_DISPATCH, which first applies HORO_SIMD from the environment.
#pragma once

#include <hwy/highway.h>

namespace horo::kernels::cpu {

// Applies HORO_SIMD once; throws ValueError (on every call) when it names no usable target.
void apply_simd_environment();

namespace detail {
extern bool simd_environment_applied;
}

inline void ensure_simd_target() {
  if (!detail::simd_environment_applied) [[unlikely]] apply_simd_environment();
}

// The Highway target bit the dispatched kernels use now (HWY_AVX3, HWY_AVX2, ...).
int64_t chosen_simd_target();

}  // namespace horo::kernels::cpu

#define HORO_CPU_DISPATCH(name) (::horo::kernels::cpu::ensure_simd_target(), HWY_DYNAMIC_DISPATCH(name))

// Inside a per-target region: whether this copy is the AVX-512 one, where the hand-written
// _mm512 loops (the target's own intrinsics, enabled by Highway's target attributes) are used.
#define HORO_TARGET_AVX512 (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3)
// Whether masked loads and stores are native (no read or write past the end): AVX2 and AVX-512.
#define HORO_TARGET_MASKED_MEMORY (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2)
