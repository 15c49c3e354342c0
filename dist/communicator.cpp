#include "dist/communicator.h"

#include "kernels/device.h"

#include <cstdlib>
#include <cstring>
#include <vector>

namespace horo::dist {

namespace {

// Runs a collective on the tensor's memory, or, for a tensor on a GPU and a communicator that takes
// host buffers (MPI is not assumed CUDA-aware), on a host copy that is copied back afterwards.
template <typename Collective>
void on_reachable_memory(Communicator& comm, Tensor& tensor, Collective&& collective) {
  if (tensor.device().is_cpu()) return collective(tensor);
  if (comm.device_buffers()) {
    const kernels::cuda::DeviceScope scope(tensor.device().index);
    return collective(tensor);
  }
  Tensor host = Tensor::empty_pinned(tensor.shape(), tensor.dtype());
  host.copy_from(tensor);
  collective(host);
  tensor.copy_from(host);
}

}  // namespace

void Communicator::allreduce(Tensor& tensor, ReduceOp op, Compression compression) {
  check_dtype(tensor, DType::Float32, "allreduce of " + tensor.describe());
  on_reachable_memory(*this, tensor, [&](Tensor& t) { allreduce(t.data<float>(), t.numel(), op, compression); });
}

void Communicator::broadcast(Tensor& tensor, int root) {
  on_reachable_memory(*this, tensor, [&](Tensor& t) {
    broadcast(t.raw_data(), t.numel() * static_cast<int64_t>(dtype_size(t.dtype())), root);
  });
}

void Communicator::reduce_scatter(Tensor& blocks, ReduceOp op) {
  check_dtype(blocks, DType::Float32, "reduce-scatter of " + blocks.describe());
  HORO_CHECK(blocks.numel() % size() == 0, ShapeError, "reduce-scatter of ", blocks.describe(), ": ", blocks.numel(),
             " elements do not split into ", size(), " equal blocks");
  on_reachable_memory(*this, blocks, [&](Tensor& t) { reduce_scatter(t.data<float>(), t.numel() / size(), op); });
}

void Communicator::allgather_in_place(Tensor& blocks) {
  HORO_CHECK(blocks.numel() % size() == 0, ShapeError, "allgather of ", blocks.describe(), ": ", blocks.numel(),
             " elements do not split into ", size(), " equal blocks");
  on_reachable_memory(*this, blocks, [&](Tensor& t) {
    allgather_in_place(t.raw_data(), t.numel() / size() * static_cast<int64_t>(dtype_size(t.dtype())));
  });
}

void Communicator::allgather_in_place(void* data, int64_t bytes_each) {
  // MPI forbids a send buffer inside the receive buffer: send a copy of this rank's block.
  char* blocks = static_cast<char*>(data);
  const std::vector<char> own(blocks + rank() * bytes_each, blocks + (rank() + 1) * bytes_each);
  allgather(own.data(), bytes_each, blocks);
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
    else if (value == "hierarchical") algorithm = Algorithm::Hierarchical;
    else if (value != "nccl") throw ValueError("HORO_ALLREDUCE: expected ring, mpi, hierarchical or nccl, got '" + value + "'");
  }
  auto comm = make_mpi_communicator(algorithm, stall_timeout_from_env());
  HORO_CHECK(comm != nullptr, BackendError,
             "this process was started by an MPI launcher, but horo was built without MPI (configure with -DHORO_MPI=ON)");
  return nccl ? make_nccl_communicator(std::move(comm)) : std::move(comm);
}

}  // namespace horo::dist
