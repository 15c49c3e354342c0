// Template body of horo::kernels::parallel_for (OpenMP). Included by parallel.h only.
#pragma once

#include <omp.h>

#include <algorithm>

namespace horo::kernels {

template <typename Body>
void parallel_for(int64_t n, int64_t min_per_thread, const Body& body) {
  if (n <= 0) return;
  const int threads = get_num_threads();
  const int64_t usable = std::min<int64_t>(threads, std::max<int64_t>(1, n / std::max<int64_t>(1, min_per_thread)));
  if (usable <= 1 || omp_in_parallel()) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(static_cast<int>(usable))
  {
    const int64_t t = omp_get_thread_num();
    const int64_t count = omp_get_num_threads();
    const int64_t begin = n * t / count;
    const int64_t end = n * (t + 1) / count;
    if (begin < end) body(begin, end);
  }
}

}  // namespace horo::kernels
