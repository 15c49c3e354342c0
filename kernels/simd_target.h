// The instruction set the CPU kernels run with. One binary carries each kernel compiled for several
// targets (x86: AVX-512, AVX2, SSE4 and plain C++; Arm: NEON) and picks the best one the CPU
// has when the first kernel runs. HORO_SIMD=<target> in the environment, or set_simd_target(),
// chooses a lower one: every target can be tested and timed on one machine.
#pragma once

#include <string>
#include <vector>

namespace horo::kernels {

// The target the kernels use now: "avx512", "avx2", "sse4", "neon" or "scalar".
std::string simd_target();

// The targets this CPU can run among those compiled in, best first.
std::vector<std::string> simd_targets();

// Runs the CPU kernels (GEMM included) with `target` from now on. Throws ValueError when the name
// is unknown or the CPU cannot run it, naming the targets it can.
void set_simd_target(const std::string& target);

// The CPU's model name and its SIMD flags, for benchmark reports ("Intel(R) Xeon(R) ... [avx2 fma ...]").
std::string cpu_description();

}  // namespace horo::kernels
