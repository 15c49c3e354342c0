// The NCCL communicator: collectives on GPU buffers (device pointers), on a stream of its own. The
// NCCL unique id travels from rank 0 over MPI; barriers and the node-local numbering come from MPI.
// Built when CMake finds NCCL (HORO_NCCL=AUTO), selected by HORO_ALLREDUCE=nccl or, in horo-train,
// by --device cuda under mpirun.
#include <cuda_runtime.h>
#include <nccl.h>

#include "dist/communicator.h"
#include "kernels/device.h"

namespace horo::dist {
namespace {

#define NCCL_CHECK(call)                                                                               \
  do {                                                                                                 \
    const ncclResult_t status_ = (call);                                                               \
    if (status_ != ncclSuccess)                                                                        \
      throw BackendError(detail::concat(#call, " failed: ", ncclGetErrorString(status_)));              \
  } while (0)

#define CUDA_RT_CHECK(call)                                                                            \
  do {                                                                                                 \
    const cudaError_t status_ = (call);                                                                \
    if (status_ != cudaSuccess) throw BackendError(detail::concat(#call, " failed: ", cudaGetErrorString(status_))); \
  } while (0)

// Host buffers (a model fingerprint, a rate) go over MPI; device buffers over NCCL.
bool on_device(const void* p) {
  cudaPointerAttributes attributes{};
  if (cudaPointerGetAttributes(&attributes, p) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged;
}

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(std::unique_ptr<Communicator> mpi) : mpi_(std::move(mpi)) {
    stall_timeout_ = mpi_->stall_timeout();
    // The caller has selected this rank's GPU (horo-train: the node-local rank's); NCCL works there.
    HORO_CHECK(kernels::cuda::device_count() > 0, BackendError, "NCCL communicator: no CUDA device visible on rank ",
               mpi_->rank());
    CUDA_RT_CHECK(cudaGetDevice(&device_));
    ncclUniqueId id;
    if (mpi_->rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    mpi_->broadcast(&id, sizeof id, 0);
    NCCL_CHECK(ncclCommInitRank(&comm_, mpi_->size(), id, mpi_->rank()));
    CUDA_RT_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }

  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  int local_size() const override { return mpi_->local_size(); }
  std::string name() const override { return "nccl"; }
  bool device_buffers() const override { return true; }

  void allreduce(float* data, int64_t count, ReduceOp op, Compression compression) override {
    if (!on_device(data)) return mpi_->allreduce(data, count, op, compression);
    HORO_CHECK(compression == Compression::None, ValueError, "NCCL allreduce: fp16 compression is not supported here");
    // horo's kernels that produced `data` ran on horo's stream: finish them before NCCL reads it.
    kernels::cuda::synchronize();
    NCCL_CHECK(ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat, op == ReduceOp::Average ? ncclAvg : ncclSum,
                             comm_, stream_));
    CUDA_RT_CHECK(cudaStreamSynchronize(stream_));
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    if (!on_device(data)) return mpi_->broadcast(data, bytes, root);
    kernels::cuda::synchronize();
    NCCL_CHECK(ncclBroadcast(data, data, static_cast<size_t>(bytes), ncclUint8, root, comm_, stream_));
    CUDA_RT_CHECK(cudaStreamSynchronize(stream_));
  }

  void allgather(const void* send, int64_t bytes_each, void* recv) override {
    HORO_CHECK(on_device(send) == on_device(recv), ValueError, "NCCL allgather: send and receive buffers must both be on the GPU or both on the host");
    if (!on_device(send)) return mpi_->allgather(send, bytes_each, recv);
    kernels::cuda::synchronize();
    NCCL_CHECK(ncclAllGather(send, recv, static_cast<size_t>(bytes_each), ncclUint8, comm_, stream_));
    CUDA_RT_CHECK(cudaStreamSynchronize(stream_));
  }

  void barrier() override { mpi_->barrier(); }

  std::unique_ptr<Communicator> duplicate() const override {
    return std::make_unique<NcclCommunicator>(mpi_->duplicate());
  }

  void announce(int64_t step, int64_t index, const std::string& what) override { mpi_->announce(step, index, what); }

 private:
  std::unique_ptr<Communicator> mpi_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi) {
  return std::make_unique<NcclCommunicator>(std::move(mpi));
}

}  // namespace horo::dist
