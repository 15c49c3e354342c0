// Run under `mpirun -np 2` with HORO_STALL_TIMEOUT set: rank 1 never joins the allreduce, rank 0
// must report a stall naming rank 1 (then the job is aborted, as horo-train does).
#include <chrono>
#include <cstdio>
#include <thread>

#include "dist/communicator.h"

int main() {
  auto comm = horo::dist::make_communicator();
  if (comm->rank() == 1) {
    std::this_thread::sleep_for(std::chrono::minutes(5));  // stands for a rank stuck elsewhere
    return 0;
  }
  try {
    std::vector<float> data(1000, 1.0f);
    comm->announce(0, 0, "allreduce of probe.weight");
    comm->allreduce(data.data(), 1000, horo::dist::ReduceOp::Sum);
    std::printf("no stall detected\n");
  } catch (const horo::dist::StallError& e) {
    std::printf("stall reported: %s\n", e.what());
  }
  std::fflush(stdout);
  horo::dist::abort_job(3);
}
