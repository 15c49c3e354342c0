// The NCCL communicator: collectives on GPU buffers (device pointers), on a stream of its own. The
// NCCL unique id travels from rank 0 over MPI; barriers and the node-local numbering come from MPI.
// Built when CMake finds NCCL (HORO_NCCL=AUTO), selected by HORO_ALLREDUCE=nccl or, in horo-train,
// by --device cuda under mpirun.
//
// No host waits: a collective starts after the work horo's stream has queued (the producer of its
// buffer) and horo's stream continues after it, both ordered with CUDA events. A watchdog thread
// follows every queued collective; one that has not finished after the stall timeout aborts the
// NCCL communicator (which ends its kernels, so no stream blocks forever) and the next call on this
// communicator, or raise_async_errors(), throws StallError naming it.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "dist/flight_recorder.h"
#include "kernels/cuda/stream.h"
#include "kernels/device.h"

namespace horo::dist {
namespace {

#define NCCL_CHECK(call)                                                                               \
  do {                                                                                                 \
    const ncclResult_t status_ = (call);                                                               \
    if (status_ != ncclSuccess)                                                                        \
      throw BackendError(detail::concat(#call, " failed: ", ncclGetErrorString(status_)));              \
  } while (0)

using Clock = std::chrono::steady_clock;

class NcclCommunicator : public Communicator {
 public:
  explicit NcclCommunicator(std::unique_ptr<Communicator> mpi) : mpi_(std::move(mpi)) {
    stall_timeout_ = mpi_->stall_timeout();
    HORO_CHECK(kernels::cuda::device_count() > 0, BackendError, "NCCL communicator: no CUDA device visible on rank ",
               mpi_->rank());
    // The caller has selected this rank's GPU (horo-train: the node-local rank's); NCCL works there.
    device_ = kernels::cuda::current_device();
    ncclUniqueId id;
    if (mpi_->rank() == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    mpi_->broadcast(&id, sizeof id, 0);
    NCCL_CHECK(ncclCommInitRank(&comm_, mpi_->size(), id, mpi_->rank()));
    CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    watchdog_.join();
    const kernels::cuda::DeviceScope scope(device_);
    // While an exception unwinds (a rank may be gone, a collective stuck), destroying would wait for
    // NCCL's work; aborting ends it.
    if (comm_) {
      if (std::uncaught_exceptions() > 0) ncclCommAbort(comm_);
      else ncclCommDestroy(comm_);
    }
    for (const Queued& q : queued_) {
      cudaEventDestroy(q.ready);
      cudaEventDestroy(q.done);
    }
    for (cudaEvent_t e : spare_events_) cudaEventDestroy(e);
    if (stream_) cudaStreamDestroy(stream_);
  }

  int rank() const override { return mpi_->rank(); }
  int size() const override { return mpi_->size(); }
  int local_rank() const override { return mpi_->local_rank(); }
  int local_size() const override { return mpi_->local_size(); }
  std::string name() const override { return "nccl"; }
  bool device_buffers() const override { return true; }

  void allreduce(float* data, int64_t count, ReduceOp op, Compression compression) override {
    if (!kernels::cuda::is_device_pointer(data)) return mpi_->allreduce(data, count, op, compression);
    HORO_CHECK(compression == Compression::None, ValueError,
               "NCCL allreduce: fp16 compression is not supported with NCCL (use it with HORO_ALLREDUCE=ring or mpi)");
    queue_allreduce(data, count, op, /*join=*/true);
  }

  void allreduce_async(float* data, int64_t count, ReduceOp op, Compression compression) override {
    if (!kernels::cuda::is_device_pointer(data)) return mpi_->allreduce(data, count, op, compression);
    HORO_CHECK(compression == Compression::None, ValueError,
               "NCCL allreduce: fp16 compression is not supported with NCCL (use it with HORO_ALLREDUCE=ring or mpi)");
    queue_allreduce(data, count, op, /*join=*/false);
  }

  void join_async() override {
    const kernels::cuda::DeviceScope scope(device_);
    std::lock_guard<std::mutex> lock(mutex_);
    // Collectives already retired by the watchdog have completed; the others are waited for by
    // the stream, not the host.
    for (Queued& q : queued_) {
      if (q.joined || !q.launched) continue;
      CUDA_CHECK(cudaStreamWaitEvent(kernels::cuda::stream(), q.done, 0));
      q.joined = true;
    }
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    if (!kernels::cuda::is_device_pointer(data)) return mpi_->broadcast(data, bytes, root);
    enqueue("broadcast from rank " + std::to_string(root), bytes, "bytes", true, [&] {
      return ncclBroadcast(data, data, static_cast<size_t>(bytes), ncclUint8, root, comm_, stream_);
    });
  }

  void allgather(const void* send, int64_t bytes_each, void* recv) override {
    const bool send_on_device = kernels::cuda::is_device_pointer(send);
    HORO_CHECK(send_on_device == kernels::cuda::is_device_pointer(recv), ValueError,
               "NCCL allgather: send and receive buffers must both be on the GPU or both on the host");
    if (!send_on_device) return mpi_->allgather(send, bytes_each, recv);
    enqueue("allgather", bytes_each * size(), "bytes", true, [&] {
      return ncclAllGather(send, recv, static_cast<size_t>(bytes_each), ncclUint8, comm_, stream_);
    });
  }

  void reduce_scatter(float* data, int64_t count_each, ReduceOp op) override {
    if (!kernels::cuda::is_device_pointer(data)) return mpi_->reduce_scatter(data, count_each, op);
    // In place as NCCL defines it: the receive buffer is this rank's block of the send buffer.
    float* own = data + static_cast<int64_t>(rank()) * count_each;
    enqueue("reduce-scatter", count_each * size() * 4, "float32", true, [&] {
      return ncclReduceScatter(data, own, static_cast<size_t>(count_each), ncclFloat,
                               op == ReduceOp::Average ? ncclAvg : ncclSum, comm_, stream_);
    });
  }

  void allgather_in_place(void* data, int64_t bytes_each) override {
    if (!kernels::cuda::is_device_pointer(data)) return mpi_->allgather_in_place(data, bytes_each);
    const char* own = static_cast<const char*>(data) + static_cast<int64_t>(rank()) * bytes_each;
    enqueue("allgather", bytes_each * size(), "bytes", true, [&] {
      return ncclAllGather(own, data, static_cast<size_t>(bytes_each), ncclUint8, comm_, stream_);
    });
  }

  void barrier() override { mpi_->barrier(); }

  std::unique_ptr<Communicator> duplicate() const override {
    const kernels::cuda::DeviceScope scope(device_);
    return std::make_unique<NcclCommunicator>(mpi_->duplicate());
  }

  void announce(int64_t step, int64_t index, const std::string& what) override {
    mpi_->announce(step, index, what);  // the arrival notices name missing ranks in the MPI side's stall reports
    mpi_->drop_label();                 // the label belongs to this communicator's next NCCL collective
    label_ = what;
    label_step_ = step;
  }

  void raise_async_errors() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct Queued {
    cudaEvent_t ready, done;
    std::string what;
    Clock::time_point started;
    bool launched = false;  // NCCL's call has returned and `done` is recorded
    bool joined = true;     // horo's stream waits for `done` (allreduce_async: once join_async ran)
    uint64_t record = 0;    // its flight record
  };

  void queue_allreduce(float* data, int64_t count, ReduceOp op, bool join) {
    enqueue("allreduce", count * 4, "float32", join, [&] {
      return ncclAllReduce(data, data, static_cast<size_t>(count), ncclFloat, op == ReduceOp::Average ? ncclAvg : ncclSum,
                           comm_, stream_);
    });
  }

  cudaEvent_t take_event() {  // under mutex_
    if (!spare_events_.empty()) {
      cudaEvent_t e = spare_events_.back();
      spare_events_.pop_back();
      return e;
    }
    cudaEvent_t e = nullptr;
    CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    return e;
  }

  // Queues one collective: NCCL after the buffer's producer on horo's stream, and (join) horo's stream
  // after NCCL. NCCL's call runs outside mutex_: it can block the host (connection set-up on first
  // use), and the watchdog must still be able to time it out and abort.
  template <typename Call>
  void enqueue(const std::string& kind, int64_t bytes, const char* dtype, bool join, Call&& call) {
    const kernels::cuda::DeviceScope scope(device_);
    std::lock_guard<std::mutex> launching(launch_mutex_);  // one launch at a time on this communicator
    const std::string what = detail::concat(kind, " of ", bytes, " bytes", label_.empty() ? "" : " (" + label_ + ")");
    // The flight record runs from the launch until the watchdog sees the collective's event complete.
    const uint64_t record = FlightRecorder::instance().start(flight_id_, ++seq_, kind, label_, label_step_, bytes, dtype, name());
    label_.clear();
    label_step_ = -1;
    cudaEvent_t ready = nullptr, done = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error_) {
        FlightRecorder::instance().finish(record, "failed: the communicator was aborted earlier");
        std::rethrow_exception(error_);
      }
      ready = take_event();
      done = take_event();
      queued_.push_back(Queued{ready, done, what, Clock::now(), false, join, record});
    }
    changed_.notify_all();
    CUDA_CHECK(cudaEventRecord(ready, kernels::cuda::stream()));
    CUDA_CHECK(cudaStreamWaitEvent(stream_, ready, 0));
    const ncclResult_t status = call();
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_) std::rethrow_exception(error_);  // aborted by the watchdog meanwhile
    if (status != ncclSuccess) {
      FlightRecorder::instance().finish(record, std::string("failed: ") + ncclGetErrorString(status));
      throw BackendError(detail::concat("NCCL ", what, " on rank ", rank(), " failed: ", ncclGetErrorString(status)));
    }
    CUDA_CHECK(cudaEventRecord(done, stream_));
    if (join) CUDA_CHECK(cudaStreamWaitEvent(kernels::cuda::stream(), done, 0));
    for (auto it = queued_.rbegin(); it != queued_.rend(); ++it) {
      if (it->done == done) {
        it->launched = true;
        break;
      }
    }
    changed_.notify_all();
  }

  // Retires finished collectives; aborts NCCL when one has run past the stall timeout.
  void watch() {
    try {
      kernels::cuda::set_device(device_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      error_ = std::current_exception();
      return;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      if (queued_.empty()) {
        changed_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
        continue;
      }
      Queued& oldest = queued_.front();
      // An error NCCL found on its own (a peer gone, a network failure) ends the wait at once.
      ncclResult_t async_status = ncclSuccess;
      if (comm_ && ncclCommGetAsyncError(comm_, &async_status) == ncclSuccess && async_status != ncclSuccess &&
          async_status != ncclInProgress) {
        error_ = std::make_exception_ptr(BackendError(detail::concat("NCCL ", oldest.what, " on rank ", rank(), " failed: ",
                                                                     ncclGetErrorString(async_status))));
        abort_locked();
        continue;
      }
      // Not yet launched: NCCL's call is still blocking the launching thread; only the clock counts.
      const cudaError_t status = oldest.launched ? cudaEventQuery(oldest.done) : cudaErrorNotReady;
      if (status == cudaSuccess) {
        FlightRecorder::instance().finish(oldest.record, "completed");
        spare_events_.push_back(oldest.ready);
        spare_events_.push_back(oldest.done);
        queued_.pop_front();
        continue;
      }
      if (status != cudaErrorNotReady) {
        cudaGetLastError();
        error_ = std::make_exception_ptr(BackendError(detail::concat("NCCL ", oldest.what, " on rank ", rank(), " failed: ",
                                                                     cudaGetErrorString(status))));
        abort_locked();
        continue;
      }
      const double waited = std::chrono::duration<double>(Clock::now() - oldest.started).count();
      if (stall_timeout_ > 0 && waited > stall_timeout_ && !error_) {
        error_ = std::make_exception_ptr(StallError(detail::concat(
            "NCCL ", oldest.what, " on rank ", rank(), " made no progress for ", static_cast<int64_t>(waited),
            " s (HORO_STALL_TIMEOUT): another rank stopped calling it, or a GPU or link failed; NCCL was aborted")));
        abort_locked();
        continue;
      }
      changed_.wait_for(lock, std::chrono::milliseconds(2));
    }
  }

  // Ends NCCL's kernels so that no stream waits forever; later calls throw the recorded error.
  void abort_locked() {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    std::string reason = "failed: NCCL aborted";
    try {
      if (error_) std::rethrow_exception(error_);
    } catch (const std::exception& e) {
      reason = std::string("failed: ") + e.what();
    }
    for (Queued& q : queued_) {
      FlightRecorder::instance().finish(q.record, reason);
      spare_events_.push_back(q.ready);
      spare_events_.push_back(q.done);
    }
    queued_.clear();
  }

  std::unique_ptr<Communicator> mpi_;
  int flight_id_ = FlightRecorder::instance().register_communicator();
  int64_t seq_ = 0, label_step_ = -1;
  std::string label_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
  std::mutex launch_mutex_;  // serialises launches (held across NCCL's call)
  std::mutex mutex_;         // guards the queue and the error (never held across NCCL's call)
  std::condition_variable changed_;
  std::deque<Queued> queued_;
  std::vector<cudaEvent_t> spare_events_;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> mpi) {
  return std::make_unique<NcclCommunicator>(std::move(mpi));
}

}  // namespace horo::dist
