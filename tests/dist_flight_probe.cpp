// Run under `mpirun -np 3` with HORO_STALL_TIMEOUT set; the flight records go to argv[2]:
//   dist_flight_probe sleep DIR   rank 2 sleeps before the sixth gradient allreduce (a rank stuck elsewhere)
//   dist_flight_probe skip DIR    rank 1 skips the sixth allreduce and goes on to the barrier (a rank that
//                                 skipped a backward), so ranks wait in different collectives
// The ranks that stall dump their records and abort the job, as horo-train does; the sleeping rank
// dumps on the SIGTERM with which mpirun ends it.
#include <csignal>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "dist/flight_recorder.h"

namespace {
void on_term(int) { horo::dist::FlightRecorder::instance().request_dump("stopped by SIGTERM"); }
}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const std::string mode = argv[1];
  auto comm = horo::dist::make_communicator();
  auto& recorder = horo::dist::FlightRecorder::instance();
  recorder.configure(argv[2], comm->rank(), comm->size());
  recorder.start_dump_thread();
  std::signal(SIGTERM, on_term);
  try {
    std::vector<float> grads(4096, 1.0f);
    for (int step = 0; step < 8; ++step) {
      if (step == 5 && mode == "sleep" && comm->rank() == 2) std::this_thread::sleep_for(std::chrono::minutes(5));
      const bool skip = step == 5 && mode == "skip" && comm->rank() == 1;
      if (!skip) {
        comm->announce(step, 0, "allreduce of bucket 0 (fc.weight, fc.bias)");
        comm->allreduce(grads.data(), static_cast<int64_t>(grads.size()), horo::dist::ReduceOp::Average);
      }
      comm->barrier();
    }
    std::printf("no stall detected\n");
  } catch (const std::exception& e) {
    std::printf("rank %d: %s\n", comm->rank(), e.what());
    recorder.dump(std::string("error: ") + e.what());
  }
  std::fflush(stdout);
  horo::dist::abort_job(3);
}
