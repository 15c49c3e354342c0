#include "dist/communicator.h"

#include <cstdlib>
#include <cstring>

namespace horo::dist {

void Communicator::allreduce(Tensor& tensor, ReduceOp op, Compression compression) {
  check_dtype(tensor, DType::Float32, "allreduce of " + tensor.describe());
  allreduce(tensor.data<float>(), tensor.numel(), op, compression);
}

void Communicator::broadcast(Tensor& tensor, int root) {
  broadcast(tensor.raw_data(), tensor.numel() * static_cast<int64_t>(dtype_size(tensor.dtype())), root);
}

void LocalCommunicator::broadcast(void*, int64_t, int root) {
  HORO_CHECK(root == 0, ValueError, "broadcast: root ", root, " outside a world of 1");
}

void LocalCommunicator::allgather(const void* send, int64_t bytes_each, void* recv) {
  std::memmove(recv, send, static_cast<size_t>(bytes_each));
}

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MV2_COMM_WORLD_SIZE"}) {
    if (std::getenv(v)) return true;
  }
  return false;
}

namespace {
double stall_timeout_from_env() {
  const char* env = std::getenv("HORO_STALL_TIMEOUT");
  if (!env || !*env) return 300.0;
  char* end = nullptr;
  const double seconds = std::strtod(env, &end);
  HORO_CHECK(*end == '\0' && seconds >= 0.0, ValueError, "HORO_STALL_TIMEOUT: expected seconds (>= 0), got '", env, "'");
  return seconds;
}
}  // namespace

std::unique_ptr<Communicator> make_communicator() { return make_communicator_for(false); }

std::unique_ptr<Communicator> make_communicator_for(bool gpu) {
  if (!launched_by_mpi()) return std::make_unique<LocalCommunicator>();
  Algorithm algorithm = Algorithm::Auto;
  bool nccl = gpu;
  if (const char* env = std::getenv("HORO_ALLREDUCE"); env && *env) {
    const std::string value = env;
    nccl = value == "nccl";
    if (value == "ring") algorithm = Algorithm::Ring;
    else if (value == "mpi") algorithm = Algorithm::Mpi;
    else if (value != "nccl") throw ValueError("HORO_ALLREDUCE: expected ring, mpi or nccl, got '" + value + "'");
  }
  auto comm = make_mpi_communicator(algorithm, stall_timeout_from_env());
  HORO_CHECK(comm != nullptr, BackendError,
             "this process was started by an MPI launcher, but horo was built without MPI (configure with -DHORO_MPI=ON)");
  return nccl ? make_nccl_communicator(std::move(comm)) : std::move(comm);
}

}  // namespace horo::dist
