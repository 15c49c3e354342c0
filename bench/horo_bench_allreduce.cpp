// W3, in the style of nccl-tests: float32 sum allreduce from 4 KiB to 256 MiB, for each algorithm
// (horo's ring, Open MPI's MPI_Allreduce, horo's hierarchical allreduce over 2 emulated nodes of n/2
// ranks: shared memory within a node, the ring between the nodes' leaders), one line per size and
// algorithm:
//   algorithm=ring bytes=1048576 time_us=812.3 algbw=1.29 busbw=1.29
// algbw = bytes / time; busbw = algbw * 2 (n - 1) / n, comparable across rank counts.
//   mpirun -np 2 horo-bench-allreduce [--min-bytes 4096] [--max-bytes 268435456] [--iters 20]
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  int64_t min_bytes = 4096, max_bytes = int64_t{256} << 20;
  int iters = 20;
  std::vector<std::string> algorithms = {"ring", "mpi", "hierarchical"};
  CLI::App app{"horo-bench-allreduce: allreduce bandwidth per size and algorithm"};
  app.add_option("--min-bytes", min_bytes, "smallest message")->capture_default_str();
  app.add_option("--max-bytes", max_bytes, "largest message")->capture_default_str();
  app.add_option("--iters", iters, "timed iterations per size (fewer for large sizes)")->capture_default_str();
  app.add_option("--algorithms", algorithms, "ring, mpi, hierarchical")->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  try {
    auto world = horo::dist::make_communicator();
    const int n = world->size();
    if (world->rank() == 0) std::printf("# ranks=%d (busbw = algbw * 2(n-1)/n)\n", n);
    for (int64_t bytes = min_bytes; bytes <= max_bytes; bytes *= 4) {
      const int64_t count = bytes / 4;
      std::vector<float> data(static_cast<size_t>(count), 1.0f);
      for (const auto& name : algorithms) {
        const auto algorithm = name == "ring"  ? horo::dist::Algorithm::Ring
                               : name == "mpi" ? horo::dist::Algorithm::Mpi
                                               : horo::dist::Algorithm::Hierarchical;
        // Two emulated nodes: the first half of the ranks and the second.
        if (algorithm == horo::dist::Algorithm::Hierarchical) ::setenv("HORO_NODE_ID", std::to_string(world->rank() * 2 / n).c_str(), 1);
        auto comm = horo::dist::make_mpi_communicator(algorithm, 0);
        ::unsetenv("HORO_NODE_ID");
        if (!comm) comm = std::make_unique<horo::dist::LocalCommunicator>();
        const int timed = bytes >= (int64_t{64} << 20) ? std::max(3, iters / 4) : iters;
        comm->allreduce(data.data(), count, horo::dist::ReduceOp::Sum);  // warm-up
        comm->barrier();
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < timed; ++i) comm->allreduce(data.data(), count, horo::dist::ReduceOp::Sum);
        double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / timed;
        // The slowest rank's time is the collective's time.
        float slowest = static_cast<float>(seconds);
        std::vector<float> all(static_cast<size_t>(n));
        comm->allgather(&slowest, sizeof slowest, all.data());
        for (float t : all) seconds = std::max(seconds, static_cast<double>(t));
        const double algbw = static_cast<double>(bytes) / seconds / 1e9;
        const double busbw = algbw * 2.0 * (n - 1) / n;
        if (world->rank() == 0) {
          std::printf("algorithm=%s bytes=%lld time_us=%.1f algbw=%.2f busbw=%.2f\n", name.c_str(),
                      static_cast<long long>(bytes), seconds * 1e6, algbw, busbw);
          std::fflush(stdout);
        }
        // Keep the values bounded: every call doubles them (times n).
        std::fill(data.begin(), data.end(), 1.0f);
      }
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-bench-allreduce: error: %s\n", e.what());
    horo::dist::abort_job(1);
  }
}
