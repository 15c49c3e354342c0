// The MPI communicator: collectives over Open MPI, the allreduce either horo's ring (reduce-scatter
// then allgather, chunked and pipelined) or MPI_Iallreduce. Every wait polls with a deadline and
// drains the peers' arrival notices, so a stalled collective names the ranks that never reached it.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "dist/flight_recorder.h"
#include "kernels/device.h"
#include "kernels/half.h"

namespace horo::dist {
namespace {

#define MPI_CHECK(call)                                                                          \
  do {                                                                                           \
    const int mpi_status_ = (call);                                                              \
    if (mpi_status_ != MPI_SUCCESS) {                                                            \
      char text_[MPI_MAX_ERROR_STRING];                                                          \
      int length_ = 0;                                                                           \
      MPI_Error_string(mpi_status_, text_, &length_);                                            \
      throw BackendError(detail::concat(#call, " failed: ", std::string(text_, static_cast<size_t>(length_)))); \
    }                                                                                            \
  } while (0)

using kernels::Half;
using kernels::to_float;
using kernels::to_half;

void ensure_mpi_initialised() {
  static std::once_flag once;
  std::call_once(once, [] {
    int initialised = 0;
    MPI_CHECK(MPI_Initialized(&initialised));
    if (initialised) return;
    int provided = 0;
    MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
    HORO_CHECK(provided >= MPI_THREAD_MULTIPLE, BackendError,
               "MPI does not provide MPI_THREAD_MULTIPLE, which the gradient reducer's thread needs");
    // Errors come back as codes (and become exceptions) instead of aborting the job inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  });
}

// One element of a ring reduction, in the wire format (fp16 added in float, rounded once).
float sum(float a, float b) { return a + b; }
Half sum(Half a, Half b) { return to_half(to_float(a) + to_float(b)); }

void half_sum(void* in, void* inout, int* count, MPI_Datatype*) {
  const Half* a = static_cast<const Half*>(in);
  Half* b = static_cast<Half*>(inout);
  for (int i = 0; i < *count; ++i) b[i] = sum(a[i], b[i]);
}

template <typename T> MPI_Datatype mpi_type();
template <> MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <> MPI_Datatype mpi_type<Half>() { return MPI_UINT16_T; }

constexpr int kArrivalTag = 7;
constexpr int64_t kChunkBytes = int64_t{1} << 20;
// Auto's hierarchical allreduce stops here: above it, the ring's bandwidth term dominates and one leader
// per node carrying the node's sum across is no faster than the flat ring (docs/scaling.md).
constexpr int64_t kHierarchicalAutoBytes = int64_t{8} << 20;

class MpiCommunicator : public Communicator {
 public:
  // `nested`: the node leaders' own ring inside a hierarchical communicator (no nodes of its own, not
  // recorded: its traffic is part of the outer allreduce's record).
  MpiCommunicator(MPI_Comm parent, Algorithm algorithm, double stall_timeout, bool nested = false) : algorithm_(algorithm) {
    stall_timeout_ = stall_timeout;
    MPI_CHECK(MPI_Comm_dup(parent, &comm_));
    MPI_CHECK(MPI_Comm_dup(parent, &control_));
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    MPI_CHECK(MPI_Comm_size(comm_, &size_));
    MPI_Comm node;
    MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node));
    MPI_CHECK(MPI_Comm_rank(node, &local_rank_));
    MPI_CHECK(MPI_Comm_size(node, &local_size_));
    MPI_Comm_free(&node);
    MPI_CHECK(MPI_Op_create(half_sum, 1, &half_sum_op_));
    arrived_.assign(static_cast<size_t>(size_), {-1, -1});
    if (nested) return;
    flight_id_ = FlightRecorder::instance().register_communicator();
    setup_nodes();
  }

  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized) return;
    for (auto& pending : sends_) MPI_Request_free(&pending.request);
    leaders_.reset();
    free_window();
    if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
    MPI_Op_free(&half_sum_op_);
    MPI_Comm_free(&control_);
    MPI_Comm_free(&comm_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  std::string name() const override {
    if (hierarchical_) return detail::concat("mpi/hierarchical (", nodes_, " nodes)");
    return algorithm_ == Algorithm::Ring ? "mpi/ring" : algorithm_ == Algorithm::Mpi ? "mpi/mpi" : "mpi/auto";
  }

  std::unique_ptr<Communicator> duplicate() const override {
    return std::make_unique<MpiCommunicator>(comm_, algorithm_, stall_timeout_);
  }

  void drop_label() override {
    label_.clear();
    label_step_ = -1;
  }

  void announce(int64_t step, int64_t index, const std::string& what) override {
    current_ = {step, index};
    current_what_ = what;
    label_ = what;
    label_step_ = step;
    arrived_[static_cast<size_t>(rank_)] = current_;
    drain_arrivals();  // keep the peers' notices from piling up in MPI's unexpected-message queue
    // Retire finished notices, then tell every peer that this rank has reached (step, index).
    while (!sends_.empty()) {
      int done = 0;
      MPI_CHECK(MPI_Test(&sends_.front().request, &done, MPI_STATUS_IGNORE));
      if (!done) break;
      sends_.pop_front();
    }
    for (int peer = 0; peer < size_; ++peer) {
      if (peer == rank_) continue;
      sends_.push_back({{step, index}, MPI_REQUEST_NULL});
      Pending& p = sends_.back();
      MPI_CHECK(MPI_Isend(p.payload, 2, MPI_INT64_T, peer, kArrivalTag, control_, &p.request));
    }
  }

  void allreduce(float* data, int64_t count, ReduceOp op, Compression compression) override {
    if (count == 0) return;
    refuse_device_memory(data, "allreduce");
    const bool fp16 = compression == Compression::Fp16;
    CollectiveScope record = this->record("allreduce", count * (fp16 ? 2 : 4), fp16 ? "float16" : "float32");
    const float scale = op == ReduceOp::Average ? 1.0f / static_cast<float>(size_) : 1.0f;
    if (fp16) {
      // Averages are scaled before the sum: the sum of size() halves may pass 65,504 where the mean does not.
      half_.resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) half_[i] = to_half(data[i] * scale);
      reduce_any(half_.data(), count);
      for (int64_t i = 0; i < count; ++i) data[i] = to_float(half_[i]);
    } else {
      // Auto takes the hierarchical path where it pays (docs/scaling.md): latency-bound messages.
      const bool hierarchical = hierarchical_ && (algorithm_ != Algorithm::Auto || count * 4 < kHierarchicalAutoBytes);
      if (hierarchical) this->hierarchical(data, count);
      else reduce_any(data, count);
      if (scale != 1.0f) {
        for (int64_t i = 0; i < count; ++i) data[i] *= scale;
      }
    }
    record.completed();
  }

  void reduce_scatter(float* data, int64_t count_each, ReduceOp op) override {
    if (count_each == 0) return;
    refuse_device_memory(data, "reduce-scatter");
    CollectiveScope record = this->record("reduce-scatter", count_each * size_ * 4, "float32");
    float* own = data + rank_ * count_each;
    if (size_ > 1) {
      if (use_ring(count_each * size_ * static_cast<int64_t>(sizeof(float)))) {
        ring_reduce_scatter(data, count_each * size_, /*shift=*/1);  // leaves block r on rank r
      } else {
        HORO_CHECK(count_each < (int64_t{1} << 31), ValueError, "reduce-scatter: ", count_each, " floats per rank is too many");
        MPI_Request request;
        MPI_CHECK(MPI_Ireduce_scatter_block(MPI_IN_PLACE, data, static_cast<int>(count_each), MPI_FLOAT, MPI_SUM, comm_, &request));
        wait(&request, 1, "reduce-scatter");
        if (rank_ != 0) std::memmove(own, data, static_cast<size_t>(count_each) * sizeof(float));  // MPI leaves it first
      }
    }
    if (op == ReduceOp::Average) {
      const float scale = 1.0f / static_cast<float>(size_);
      for (int64_t i = 0; i < count_each; ++i) own[i] *= scale;
    }
    record.completed();
  }

  void allgather_in_place(void* data, int64_t bytes_each) override {
    HORO_CHECK(bytes_each < (int64_t{1} << 31), ValueError, "allgather: ", bytes_each, " bytes per rank is too many");
    refuse_device_memory(data, "allgather");
    CollectiveScope record = this->record("allgather", bytes_each * size_, "bytes");
    MPI_Request request;
    MPI_CHECK(MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, static_cast<int>(bytes_each), MPI_BYTE, comm_, &request));
    wait(&request, 1, "allgather");
    record.completed();
  }

  void broadcast(void* data, int64_t bytes, int root) override {
    HORO_CHECK(root >= 0 && root < size_, ValueError, "broadcast: root ", root, " outside a world of ", size_);
    refuse_device_memory(data, "broadcast");
    CollectiveScope record = this->record("broadcast from rank " + std::to_string(root), bytes, "bytes");
    char* p = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes;) {  // MPI counts are int: send in pieces below 2 GiB
      const int n = static_cast<int>(std::min<int64_t>(bytes - done, int64_t{1} << 30));
      MPI_Request request;
      MPI_CHECK(MPI_Ibcast(p + done, n, MPI_BYTE, root, comm_, &request));
      wait(&request, 1, "broadcast");
      done += n;
    }
    record.completed();
  }

  void allgather(const void* send, int64_t bytes_each, void* recv) override {
    HORO_CHECK(bytes_each < (int64_t{1} << 31), ValueError, "allgather: ", bytes_each, " bytes per rank is too many");
    refuse_device_memory(send, "allgather");
    refuse_device_memory(recv, "allgather");
    CollectiveScope record = this->record("allgather", bytes_each * size_, "bytes");
    MPI_Request request;
    MPI_CHECK(MPI_Iallgather(send, static_cast<int>(bytes_each), MPI_BYTE, recv, static_cast<int>(bytes_each), MPI_BYTE,
                             comm_, &request));
    wait(&request, 1, "allgather");
    record.completed();
  }

  void barrier() override {
    CollectiveScope record = this->record("barrier", 0, "");
    MPI_Request request;
    MPI_CHECK(MPI_Ibarrier(comm_, &request));
    wait(&request, 1, "barrier");
    record.completed();
  }

 private:
  // MPI here is not assumed CUDA-aware: a GPU pointer would crash inside MPI. Tensors on a GPU go
  // through Communicator's Tensor overloads (staged in host memory) or the NCCL communicator.
  void refuse_device_memory(const void* p, const char* what) const {
    HORO_CHECK(!kernels::cuda::is_device_pointer(p), TypeError, "MPI ", what, " on rank ", rank_,
               ": the buffer is GPU memory, which this communicator cannot send; use the Tensor overloads (they stage "
               "through host memory) or HORO_ALLREDUCE=nccl");
  }

  // The flight record of the next collective, labelled with what was announced for it (if anything).
  CollectiveScope record(const std::string& kind, int64_t bytes, const char* dtype) {
    std::string what = std::move(label_);
    label_.clear();
    const int64_t step = label_step_;
    label_step_ = -1;
    return CollectiveScope(flight_id_, ++seq_, kind, what, step, bytes, dtype, name());
  }

  struct Pending {
    int64_t payload[2];
    MPI_Request request;
  };

  bool use_ring(int64_t bytes) const {
    return algorithm_ == Algorithm::Ring ||
           (algorithm_ == Algorithm::Auto && (size_ == 2 || bytes >= size_ * (int64_t{1} << 20)));
  }

  template <typename T>
  void reduce_any(T* data, int64_t count) {
    if (size_ == 1) return;
    if (!use_ring(count * static_cast<int64_t>(sizeof(T)))) {
      for (int64_t done = 0; done < count;) {
        const int n = static_cast<int>(std::min<int64_t>(count - done, int64_t{1} << 30));
        MPI_Request request;
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, data + done, n, mpi_type<T>(),
                                 std::is_same_v<T, Half> ? half_sum_op_ : MPI_SUM, comm_, &request));
        wait(&request, 1, "allreduce");
        done += n;
      }
    } else {
      ring(data, count);
    }
  }

  // Ring allreduce. The buffer is cut into size() segments; in reduce-scatter step s, rank r sends
  // segment (r - s) to its right neighbour and adds segment (r - s - 1) from its left one; after
  // size()-1 steps rank r holds the full sum of segment (r + 1), and size()-1 allgather steps pass
  // the sums around. Segments travel in chunks, the next chunk's receive posted before the current
  // one is added, so transfers and additions overlap and memory stays at two chunks.
  struct RingLayout {
    int64_t count, chunks;
    int size;
    int64_t begin(int s) const { return count * (((s % size) + size) % size) / size; }
    int64_t end(int s) const { return count * ((((s % size) + size) % size) + 1) / size; }
    // Chunk c of segment s: the same number of chunks for every segment, sizes within one.
    void piece(int s, int64_t c, int64_t& pb, int64_t& pe) const {
      pb = begin(s) + (end(s) - begin(s)) * c / chunks;
      pe = begin(s) + (end(s) - begin(s)) * (c + 1) / chunks;
    }
  };

  template <typename T>
  RingLayout ring_layout(int64_t count) const {
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / static_cast<int64_t>(sizeof(T)));
    const int64_t longest = (count + size_ - 1) / size_;
    return {count, std::max<int64_t>(1, (longest + chunk - 1) / chunk), size_};
  }

  template <typename T>
  void ring(T* data, int64_t count) {
    ring_reduce_scatter(data, count, 0);
    const RingLayout layout = ring_layout<T>(count);
    const int right = (rank_ + 1) % size_, left = (rank_ - 1 + size_) % size_;
    for (int step = 0; step < size_ - 1; ++step) {
      const int send_seg = rank_ + 1 - step, recv_seg = rank_ - step;
      for (int64_t c = 0; c < layout.chunks; ++c) {
        int64_t sb, se, rb, re;
        layout.piece(send_seg, c, sb, se);
        layout.piece(recv_seg, c, rb, re);
        MPI_Request requests[2];
        MPI_CHECK(MPI_Irecv(data + rb, static_cast<int>(re - rb), mpi_type<T>(), left, size_ + step, comm_, &requests[0]));
        MPI_CHECK(MPI_Isend(data + sb, static_cast<int>(se - sb), mpi_type<T>(), right, size_ + step, comm_, &requests[1]));
        wait(requests, 2, "ring allreduce (allgather)");
      }
    }
  }

  // The ring's first half: afterwards rank r holds the full sum of segment (r + 1 - shift).
  template <typename T>
  void ring_reduce_scatter(T* data, int64_t count, int shift) {
    const RingLayout layout = ring_layout<T>(count);
    const int right = (rank_ + 1) % size_, left = (rank_ - 1 + size_) % size_;
    const int64_t chunk = std::max<int64_t>(1, kChunkBytes / static_cast<int64_t>(sizeof(T)));
    scratch_.resize(static_cast<size_t>(2 * chunk * static_cast<int64_t>(sizeof(T))));
    T* incoming[2] = {reinterpret_cast<T*>(scratch_.data()), reinterpret_cast<T*>(scratch_.data()) + chunk};
    for (int step = 0; step < size_ - 1; ++step) {
      const int send_seg = rank_ - step - shift, recv_seg = send_seg - 1;
      MPI_Request recv_request[2];
      auto post_recv = [&](int64_t c) {
        int64_t b, e;
        layout.piece(recv_seg, c, b, e);
        MPI_CHECK(MPI_Irecv(incoming[c % 2], static_cast<int>(e - b), mpi_type<T>(), left, step, comm_, &recv_request[c % 2]));
      };
      post_recv(0);
      for (int64_t c = 0; c < layout.chunks; ++c) {
        if (c + 1 < layout.chunks) post_recv(c + 1);
        int64_t sb, se, rb, re;
        layout.piece(send_seg, c, sb, se);
        layout.piece(recv_seg, c, rb, re);
        MPI_Request send_request;
        MPI_CHECK(MPI_Isend(data + sb, static_cast<int>(se - sb), mpi_type<T>(), right, step, comm_, &send_request));
        wait(&recv_request[c % 2], 1, "ring allreduce (reduce-scatter)");
        const T* in = incoming[c % 2];
        T* out = data + rb;
        for (int64_t i = 0; i < re - rb; ++i) out[i] = sum(out[i], in[i]);
        wait(&send_request, 1, "ring allreduce (reduce-scatter)");
      }
    }
  }

  // Nodes: HORO_NODE_ID's grouping, else the ranks that share memory. Collective over comm_.
  void setup_nodes() {
    const char* forced = std::getenv("HORO_NODE_ID");
    // Every rank must take the same path below (two different collectives would hang).
    int given = forced && *forced ? 1 : 0, given_anywhere = 0, given_everywhere = 0;
    MPI_CHECK(MPI_Allreduce(&given, &given_anywhere, 1, MPI_INT, MPI_MAX, comm_));
    MPI_CHECK(MPI_Allreduce(&given, &given_everywhere, 1, MPI_INT, MPI_MIN, comm_));
    HORO_CHECK(given_anywhere == given_everywhere, ValueError, "HORO_NODE_ID is set on some ranks only (rank ", rank_,
               given ? " has it" : " has not", "): set it on every rank or on none");
    if (given) {
      char* end = nullptr;
      const long id = std::strtol(forced, &end, 10);
      HORO_CHECK(*end == '\0' && id >= 0 && id < (1L << 30), ValueError, "HORO_NODE_ID: expected a node number (>= 0), got '", forced, "'");
      MPI_CHECK(MPI_Comm_split(comm_, static_cast<int>(id), rank_, &node_));
    } else {
      MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_));
    }
    MPI_CHECK(MPI_Comm_rank(node_, &node_rank_));
    MPI_CHECK(MPI_Comm_size(node_, &node_size_));
    int leader = node_rank_ == 0 ? 1 : 0, widest = 0;
    MPI_CHECK(MPI_Allreduce(&leader, &nodes_, 1, MPI_INT, MPI_SUM, comm_));
    MPI_CHECK(MPI_Allreduce(&node_size_, &widest, 1, MPI_INT, MPI_MAX, comm_));
    const char* toggle = std::getenv("HORO_HIERARCHICAL");
    const std::string setting = toggle ? toggle : "";
    HORO_CHECK(setting.empty() || setting == "0" || setting == "1", ValueError, "HORO_HIERARCHICAL: expected 0 or 1, got '", setting, "'");
    hierarchical_ = size_ > 1 && setting != "0" &&
                    (algorithm_ == Algorithm::Hierarchical || setting == "1" || (algorithm_ == Algorithm::Auto && nodes_ > 1 && widest > 1));
    if (!hierarchical_) return;
    MPI_Comm leaders = MPI_COMM_NULL;
    MPI_CHECK(MPI_Comm_split(comm_, node_rank_ == 0 ? 0 : MPI_UNDEFINED, rank_, &leaders));
    if (leaders != MPI_COMM_NULL) {
      leaders_ = std::make_unique<MpiCommunicator>(leaders, Algorithm::Ring, stall_timeout_, /*nested=*/true);
      MPI_Comm_free(&leaders);
    }
  }

  // Room for node_size_ slots of `count` floats in the node's shared window (collective over node_).
  void ensure_window(int64_t count) {
    if (count <= slot_floats_) return;
    free_window();
    const int64_t slot = std::max<int64_t>(count, 1024);
    const MPI_Aint bytes = node_rank_ == 0 ? static_cast<MPI_Aint>(slot * node_size_ * static_cast<int64_t>(sizeof(float))) : 0;
    void* base = nullptr;
    MPI_CHECK(MPI_Win_allocate_shared(bytes, sizeof(float), MPI_INFO_NULL, node_, &base, &window_));
    MPI_Aint size = 0;
    int unit = 0;
    MPI_CHECK(MPI_Win_shared_query(window_, 0, &size, &unit, &base));
    shared_ = static_cast<float*>(base);
    slot_floats_ = slot;
    MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
  }

  void free_window() {
    if (window_ == MPI_WIN_NULL) return;
    MPI_Win_unlock_all(window_);
    MPI_Win_free(&window_);
    shared_ = nullptr;
    slot_floats_ = 0;
  }

  // A barrier over the node that also orders the shared window's reads and writes.
  void node_barrier(const char* what) {
    MPI_CHECK(MPI_Win_sync(window_));
    MPI_Request request;
    MPI_CHECK(MPI_Ibarrier(node_, &request));
    wait(&request, 1, what);
    MPI_CHECK(MPI_Win_sync(window_));
  }

  // Hierarchical allreduce (a sum): every rank writes its data into its slot of the node's shared
  // window; node rank j adds slice j of every slot into slot 0 (the node's sum, in node-rank order);
  // the node leaders run the ring over slot 0; every rank copies the result out.
  void hierarchical(float* data, int64_t count) {
    if (node_size_ == 1) {  // a node of one: its leader is itself
      if (leaders_->size_ > 1) leaders_->ring(data, count);
      return;
    }
    ensure_window(count);
    const int64_t bytes = count * static_cast<int64_t>(sizeof(float));
    float* total = shared_;
    std::memcpy(shared_ + node_rank_ * slot_floats_, data, static_cast<size_t>(bytes));
    node_barrier("hierarchical allreduce (within the node)");
    const int64_t begin = count * node_rank_ / node_size_, end = count * (node_rank_ + 1) / node_size_;
    for (int j = 1; j < node_size_; ++j) {
      const float* slot = shared_ + j * slot_floats_;
      for (int64_t i = begin; i < end; ++i) total[i] += slot[i];
    }
    node_barrier("hierarchical allreduce (within the node)");
    if (leaders_ && leaders_->size_ > 1) leaders_->ring(total, count);
    node_barrier("hierarchical allreduce (across nodes)");
    std::memcpy(data, total, static_cast<size_t>(bytes));
    node_barrier("hierarchical allreduce (within the node)");  // slot 0 is rewritten by the next call
  }

  // Polls until every request completes, draining arrival notices; throws StallError past the timeout.
  // Yielding (not sleeping) between polls costs nothing on an idle core and hands the core over when
  // more ranks than cores share a host.
  void wait(MPI_Request* requests, int n, const char* what) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    for (uint64_t spins = 0;; ++spins) {
      int done = 0;
      MPI_CHECK(MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE));
      if (done) return;
      if (spins % 256 == 255) {
        drain_arrivals();
        if (stall_timeout_ > 0 && std::chrono::duration<double>(Clock::now() - start).count() > stall_timeout_) {
          // Withdraw what is still posted, so that a late peer cannot write into freed buffers.
          for (int i = 0; i < n; ++i) {
            if (requests[i] != MPI_REQUEST_NULL) {
              MPI_Cancel(&requests[i]);
              MPI_Request_free(&requests[i]);
            }
          }
          FlightRecorder::instance().finish_current(detail::concat("stalled: no progress for ", stall_timeout_, " s"));
          throw StallError(stall_report(what));
        }
      }
      if (spins > 100000) std::this_thread::sleep_for(std::chrono::microseconds(100));  // long waits: stop burning a core
      else std::this_thread::yield();
    }
  }

  void drain_arrivals() {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, kArrivalTag, control_, &flag, &status));
      if (!flag) return;
      int64_t payload[2];
      MPI_CHECK(MPI_Recv(payload, 2, MPI_INT64_T, status.MPI_SOURCE, kArrivalTag, control_, MPI_STATUS_IGNORE));
      arrived_[static_cast<size_t>(status.MPI_SOURCE)] = {payload[0], payload[1]};
    }
  }

  std::string stall_report(const char* what) const {
    std::string missing;
    for (int r = 0; r < size_; ++r) {
      if (arrived_[static_cast<size_t>(r)] < current_) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
    return detail::concat("rank ", rank_, ": ", what, " made no progress for ", stall_timeout_, " s (HORO_STALL_TIMEOUT)",
                          current_what_.empty() ? std::string() : " in " + current_what_,
                          current_.first >= 0 ? detail::concat(" at step ", current_.first) : std::string(), "; ",
                          missing.empty() ? std::string("every rank announced it, so a rank died or hangs inside it")
                                          : "ranks that never reached it: " + missing,
                          FlightRecorder::instance().dump_path().empty()
                              ? std::string()
                              : "; each rank's last collectives go to " + FlightRecorder::instance().dump_path() +
                                    " and its peers (horo-diagnose reads them)");
  }

  Algorithm algorithm_;
  MPI_Comm comm_ = MPI_COMM_NULL, control_ = MPI_COMM_NULL;
  MPI_Op half_sum_op_ = MPI_OP_NULL;
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  std::vector<Half> half_;
  std::vector<char> scratch_;
  std::deque<Pending> sends_;
  std::vector<std::pair<int64_t, int64_t>> arrived_;
  std::pair<int64_t, int64_t> current_{-1, -1};
  std::string current_what_;
  int flight_id_ = 0;
  // Hierarchical allreduce: this rank's node, the leaders' ring (leaders only), the node's shared window.
  MPI_Comm node_ = MPI_COMM_NULL;
  int node_rank_ = 0, node_size_ = 1, nodes_ = 1;
  bool hierarchical_ = false;
  std::unique_ptr<MpiCommunicator> leaders_;
  MPI_Win window_ = MPI_WIN_NULL;
  float* shared_ = nullptr;
  int64_t slot_floats_ = 0;
  int64_t seq_ = 0, label_step_ = -1;
  std::string label_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator(Algorithm algorithm, double stall_timeout) {
  ensure_mpi_initialised();
  return std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, algorithm, stall_timeout);
}

void abort_job(int code) {
  int initialised = 0, finalized = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalized);
  if (initialised && !finalized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace horo::dist
