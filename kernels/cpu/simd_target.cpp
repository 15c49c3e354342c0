#include "kernels/simd_target.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <hwy/highway.h>
#include <hwy/targets.h>

#include "kernels/cpu/dispatch.h"
#include "kernels/error.h"

namespace horo::kernels {
namespace {

struct NamedTarget {
  const char* name;
  int64_t bits;  // Highway targets that go by this name
};

// Best first, as Highway orders them (a lower bit is a better target).
constexpr NamedTarget kTargets[] = {
    {"avx512", HWY_AVX3_DL | HWY_AVX3}, {"avx2", HWY_AVX2},  {"sse4", HWY_SSE4},
    {"ssse3", HWY_SSSE3},               {"sve2", HWY_SVE2 | HWY_SVE2_128},
    {"sve", HWY_SVE | HWY_SVE_256},     {"neon", HWY_NEON},  {"scalar", HWY_EMU128 | HWY_SCALAR},
};

int64_t lowest_bit(int64_t bits) { return bits & -bits; }

const char* name_of(int64_t target) {
  for (const NamedTarget& t : kTargets) {
    if (t.bits & target) return t.name;
  }
  return hwy::TargetName(target);
}

// What the CPU can run among the targets compiled in, ignoring any choice made before.
int64_t runnable_targets() {
  static const int64_t runnable = [] {
    hwy::SetSupportedTargetsForTest(0);
    return hwy::SupportedTargets() & HWY_TARGETS;
  }();
  return runnable;
}

std::string runnable_names() {
  std::string names;
  for (const std::string& name : simd_targets()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

}  // namespace

namespace cpu::detail {
bool simd_environment_applied = false;
}

namespace {
// The chosen target, kept here: hwy::SupportedTargets() runs CPUID, too slow for every GEMM call.
std::atomic<int64_t> g_chosen{0};

int64_t current_best() { return lowest_bit(hwy::SupportedTargets() & HWY_TARGETS); }
}  // namespace

namespace cpu {

void apply_simd_environment() {
  const char* env = std::getenv("HORO_SIMD");
  if (env && *env) {
    try {
      set_simd_target(env);
    } catch (const ValueError& e) {
      throw ValueError(std::string("HORO_SIMD: ") + e.what());
    }
  }
  detail::simd_environment_applied = true;
}

int64_t chosen_simd_target() {
  ensure_simd_target();
  int64_t chosen = g_chosen.load(std::memory_order_relaxed);
  if (chosen == 0) {
    chosen = current_best();
    g_chosen.store(chosen, std::memory_order_relaxed);
  }
  return chosen;
}

}  // namespace cpu

std::string simd_target() { return name_of(cpu::chosen_simd_target()); }

std::vector<std::string> simd_targets() {
  std::vector<std::string> names;
  for (int64_t bits = runnable_targets(); bits != 0; bits &= bits - 1) {
    const std::string name = name_of(lowest_bit(bits));
    if (names.empty() || names.back() != name) names.push_back(name);
  }
  return names;
}

void set_simd_target(const std::string& target) {
  const int64_t runnable = runnable_targets();
  for (const NamedTarget& t : kTargets) {
    if (target != t.name) continue;
    const int64_t best = lowest_bit(runnable & t.bits);
    HORO_CHECK(best != 0, ValueError, "SIMD target '", target, "' is not available on this CPU or not compiled in; ",
               "this CPU can run: ", runnable_names());
    // Keep `best` and every lesser target; drop the better ones.
    hwy::SetSupportedTargetsForTest(runnable & ~(best - 1));
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    g_chosen.store(current_best(), std::memory_order_relaxed);
    cpu::detail::simd_environment_applied = true;  // an explicit choice overrides HORO_SIMD
    return;
  }
  throw ValueError("unknown SIMD target '" + target + "': expected one of " + runnable_names());
}

std::string cpu_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(cpuinfo, line) && (model.empty() || flags.empty())) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    key.erase(key.find_last_not_of(" \t") + 1);
    const std::string value = colon + 2 <= line.size() ? line.substr(colon + 2) : "";
    if (model.empty() && (key == "model name" || key == "Model" || key == "CPU part")) model = value;
    if (flags.empty() && (key == "flags" || key == "Features")) flags = value;
  }
  // Only the flags that decide which kernels can run.
  static const char* const kSimdFlags[] = {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl",
                                           "avx512_vnni", "avx512_bf16", "amx_tile", "asimd", "sve", "sve2"};
  std::string simd;
  std::istringstream words(flags);
  for (std::string word; words >> word;) {
    for (const char* f : kSimdFlags) {
      if (word == f) simd += (simd.empty() ? "" : " ") + word;
    }
  }
  return (model.empty() ? std::string("unknown CPU") : model) + " [" + simd + "]";
}

}  // namespace horo::kernels
