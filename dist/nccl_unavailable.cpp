// Built instead of nccl_communicator.cpp when horo is configured without NCCL.
#include "dist/communicator.h"

namespace horo::dist {

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator>) {
  throw BackendError("NCCL: this build of horo has no NCCL backend (it needs CUDA, MPI and NCCL at configure time)");
}

}  // namespace horo::dist
