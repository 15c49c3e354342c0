// Shared by the distributed tests (run under `mpirun -np 2|3|4`, every rank running every test, and
// as one process): the world communicator, a communicator with a chosen allreduce, reference values
// every rank can compute, and a model's parameters as one vector.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"
#include "nn/module.h"

namespace horo::dist::shared {

inline Communicator& world() {
  static std::unique_ptr<Communicator> comm = make_communicator();
  return *comm;
}

// One process without mpirun; under mpirun, MPI with this allreduce and a 120 s stall watchdog.
inline std::unique_ptr<Communicator> with_algorithm(Algorithm algorithm) {
  if (!launched_by_mpi()) return std::make_unique<LocalCommunicator>();
  return make_mpi_communicator(algorithm, 120.0);
}

inline std::string algorithm_name(const ::testing::TestParamInfo<Algorithm>& p) { return p.param == Algorithm::Ring ? "ring" : "mpi"; }

// A value every rank can compute for every (rank, index): the reference needs no communication.
inline float value_of(int rank, int64_t i) { return static_cast<float>((i * 7919 + rank * 104729) % 1000) / 250.0f - 2.0f; }

inline std::vector<float> flat_parameters(nn::Module& m) {
  std::vector<float> out;
  for (const auto& p : m.parameters()) {
    const auto v = p.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

}  // namespace horo::dist::shared
