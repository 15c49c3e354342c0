// Built instead of mpi_communicator.cpp when horo is configured without MPI.
#include <cstdlib>

#include "dist/communicator.h"

namespace horo::dist {

std::unique_ptr<Communicator> make_mpi_communicator(Algorithm, double) { return nullptr; }

void abort_job(int code) { std::exit(code); }

}  // namespace horo::dist
