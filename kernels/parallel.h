// Intra-op threading for the CPU kernels. The thread count comes from HORO_NUM_THREADS when set,
// else the machine's core count, and can be changed at run time with set_num_threads().
#pragma once

#include <cstdint>

namespace horo {

// Sets the number of threads CPU kernels use (>= 1), the GEMM's included.
void set_num_threads(int threads);
// The number of threads CPU kernels use now.
int get_num_threads();

namespace kernels {

// Runs body(begin, end) over [0, n) split into contiguous chunks, one per thread, when n is at least
// min_per_thread times the thread count; otherwise runs it once on the calling thread. Work inside an
// already-parallel region runs serially.
template <typename Body>
void parallel_for(int64_t n, int64_t min_per_thread, const Body& body);

}  // namespace kernels
}  // namespace horo

#include "kernels/parallel_impl.h"
