// dist::Communicator: rank, size, the node-local rank and size, and the collectives data-parallel
// training needs, over one of three backends: `local` (one process, no MPI), `mpi` (Open MPI; the
// allreduce either horo's own ring or MPI_Allreduce, chosen by HORO_ALLREDUCE) and, with CUDA, `nccl`.
// make_communicator() picks `local` when the process was not started by mpirun, `mpi` otherwise.
// HORO_ALLREDUCE=ring|mpi forces one allreduce; unset, it is chosen per message size (Algorithm::Auto).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tensor/tensor.h"

namespace horo::dist {

enum class ReduceOp { Sum, Average };
enum class Compression { None, Fp16 };  // fp16: values cross the wire as IEEE half floats
// Auto: the ring for 2 ranks and for messages of at least 1 MiB per rank, MPI_Allreduce (fewer,
// latency-bound steps) below that; the choice bench/allreduce-w3 measured best on one host. When the
// ranks span several nodes and some node holds several, Auto (for messages below 8 MiB; Hierarchical
// always) reduces within each node through shared memory, runs the ring over one leader per node, and
// hands the result back through shared memory. Nodes are those of MPI_Comm_split_type(SHARED), or HORO_NODE_ID's (an
// integer per rank, to emulate several nodes on one host); HORO_HIERARCHICAL=0|1 turns it off or on.
enum class Algorithm { Auto, Ring, Mpi, Hierarchical };

// A collective made no progress for HORO_STALL_TIMEOUT seconds; the message names the collective,
// its tensors and the ranks that never reached it.
class StallError : public Error { using Error::Error; };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // "local", "mpi/ring", "mpi/mpi".
  virtual std::string name() const = 0;

  // In place on `count` floats: the sum (or average) over all ranks.
  virtual void allreduce(float* data, int64_t count, ReduceOp op, Compression compression = Compression::None) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  // Each rank contributes bytes_each bytes; recv receives size() * bytes_each, in rank order.
  virtual void allgather(const void* send, int64_t bytes_each, void* recv) = 0;
  // In place on size() blocks of `count_each` floats (ZeRO's gradient step): afterwards this rank's
  // block, data[rank() * count_each, (rank() + 1) * count_each), holds that block's sum (or average)
  // over all ranks; the other blocks hold unspecified values. The default is a whole allreduce.
  virtual void reduce_scatter(float* data, int64_t count_each, ReduceOp op) {
    allreduce(data, count_each * size(), op, Compression::None);
  }
  // In place on size() blocks of `bytes_each` bytes: every rank's block reaches every rank.
  virtual void allgather_in_place(void* data, int64_t bytes_each);
  virtual void barrier() = 0;
  // An allreduce the caller joins later with join_async(), for buffers that live past the call (the
  // gradient reducer's buckets): on the GPU (NCCL) compute goes on while it runs. Host communicators
  // reduce at once (the default).
  virtual void allreduce_async(float* data, int64_t count, ReduceOp op, Compression compression = Compression::None) {
    allreduce(data, count, op, compression);
  }
  // Orders the calling thread's GPU stream after every allreduce_async queued so far (a no-op on the host).
  virtual void join_async() {}
  // Throws an error found after a collective was queued (NCCL: a stall, or a failed kernel).
  virtual void raise_async_errors() {}
  // A communicator over the same ranks whose traffic never mixes with this one's (for a thread of its own).
  virtual std::unique_ptr<Communicator> duplicate() const = 0;
  // True when the collectives take GPU buffers (NCCL), false for host buffers.
  virtual bool device_buffers() const { return false; }

  // Names the next collective for stall reports; every rank announces the same (step, index)
  // sequence, so a rank that is missing can be named. A no-op for one process.
  virtual void announce(int64_t step, int64_t index, const std::string& what) { (void)step, (void)index, (void)what; }
  // Drops the label announce() left for the next collective's flight record (a wrapping communicator
  // that runs the collective itself, NCCL, labels its own record instead).
  virtual void drop_label() {}
  // Seconds without progress before a collective throws StallError (0: wait forever).
  void set_stall_timeout(double seconds) { stall_timeout_ = seconds; }
  double stall_timeout() const { return stall_timeout_; }

  void allreduce(Tensor& tensor, ReduceOp op, Compression compression = Compression::None);
  void broadcast(Tensor& tensor, int root);
  // The two above on a float32 tensor of size() equal blocks, staged through host memory when the
  // tensor is on a GPU and this communicator takes host buffers.
  void reduce_scatter(Tensor& blocks, ReduceOp op);
  void allgather_in_place(Tensor& blocks);

 protected:
  double stall_timeout_ = 0.0;
};

// One process, no MPI: every collective is the identity.
class LocalCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  std::string name() const override { return "local"; }
  void allreduce(float*, int64_t, ReduceOp, Compression) override {}
  void reduce_scatter(float*, int64_t, ReduceOp) override {}
  void allgather_in_place(void*, int64_t) override {}
  void broadcast(void*, int64_t, int root) override;
  void allgather(const void* send, int64_t bytes_each, void* recv) override;
  void barrier() override {}
  std::unique_ptr<Communicator> duplicate() const override { return std::make_unique<LocalCommunicator>(); }
};

// True when an MPI launcher (mpirun, srun with PMI) started this process.
bool launched_by_mpi();
// `local`, or `mpi` under a launcher; HORO_ALLREDUCE=ring|mpi picks the allreduce (Auto by default)
// and HORO_STALL_TIMEOUT the watchdog (seconds, 300 by default). Throws when launched by MPI but
// built without it.
std::unique_ptr<Communicator> make_communicator();
// Ends every process of the job with `code` (MPI_Abort under MPI): for main() after an error on one
// rank, so that no other rank waits forever in a collective.
[[noreturn]] void abort_job(int code);

// The MPI-backed communicator, or null when horo was built without MPI.
std::unique_ptr<Communicator> make_mpi_communicator(Algorithm algorithm, double stall_timeout);
// NCCL over the ranks of an MPI communicator (which shares the NCCL id and serves barriers); each rank
// uses the GPU of its node-local rank. Throws BackendError when built without NCCL.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi);
// make_communicator(), with NCCL when `gpu` is true under a launcher (unless HORO_ALLREDUCE says otherwise).
std::unique_ptr<Communicator> make_communicator_for(bool gpu);

}  // namespace horo::dist
