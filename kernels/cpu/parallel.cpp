#include "kernels/parallel.h"

#include <cstdlib>
#include <string>
#include <thread>

#include "kernels/error.h"

namespace horo {
namespace {

int initial_threads() {
  if (const char* env = std::getenv("HORO_NUM_THREADS"); env && *env) {
    char* end = nullptr;
    const long value = std::strtol(env, &end, 10);
    HORO_CHECK(*end == '\0' && value >= 1 && value <= 4096, ValueError,
               "HORO_NUM_THREADS: expected a positive integer, got '", env, "'");
    return static_cast<int>(value);
  }
  const unsigned cores = std::thread::hardware_concurrency();
  return cores == 0 ? 1 : static_cast<int>(cores);
}

int& thread_setting() {
  static int threads = initial_threads();
  return threads;
}

}  // namespace

void set_num_threads(int threads) {
  HORO_CHECK(threads >= 1, ValueError, "set_num_threads: expected at least 1 thread, got ", threads);
  thread_setting() = threads;  // the GEMM passes it on to Eigen
}

int get_num_threads() { return thread_setting(); }

}  // namespace horo
