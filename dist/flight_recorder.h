// The collective flight recorder: every rank keeps its last K collectives (PyTorch's NCCL "flight
// recorder" idea) so that a hang, a stall or a crash can be explained afterwards. Each record holds the
// communicator and its sequence number (the same on every rank for the same collective, since ranks
// create their communicators in the same order and call their collectives in the same order), the
// kind, what was announced for it (bucket and tensor names, step), bytes, dtype, backend, the times it
// started and ended, and its state. dump() writes them as JSON, one file per rank
// (flight-recorder-rank<R>.json); tools/horo-diagnose reads a directory of them and says which rank
// stopped where. HORO_FLIGHT_RECORDER sets K (2000 by default; 0 turns recording off).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

namespace horo::dist {

struct CollectiveRecord {
  int communicator = 0;  // creation index of the communicator in this process
  int64_t seq = 0;       // the communicator's collective count, from 1
  std::string kind, what, dtype, backend;
  int64_t step = -1, bytes = 0;
  double started = 0, ended = -1;  // seconds since the process's recorder started; ended < 0: in flight
  std::string state = "started";   // started, completed, or failed: <reason>
};

class FlightRecorder {
 public:
  static FlightRecorder& instance();

  // A new communicator's id (the count of communicators registered before it).
  int register_communicator();
  // Records a collective's start; returns a handle for finish() (0 when recording is off).
  uint64_t start(int communicator, int64_t seq, const std::string& kind, const std::string& what, int64_t step, int64_t bytes,
                 const std::string& dtype, const std::string& backend);
  // Ends a record (the first state given stands: a stall reported inside wins over the unwinding).
  void finish(uint64_t handle, const std::string& state);
  // Ends the calling thread's newest open record, e.g. from the wait that detects a stall.
  void finish_current(const std::string& state);

  // Where dumps go and who this process is; dump() needs a directory.
  void configure(const std::string& dir, int rank, int world);
  std::string dump_path() const;
  // Writes the records (JSON) with the reason (after the reasons of earlier dumps, so that a stall
  // followed by mpirun's SIGTERM keeps both); returns the file's path, or "" when no directory is set.
  std::string dump(const std::string& reason);
  // Async-signal-safe: asks the dump thread (start_dump_thread) to dump with this reason (a literal).
  void request_dump(const char* reason) { requested_.store(reason); }
  // A thread that serves request_dump() within 50 ms, even while every other thread is blocked inside
  // a collective; it lives until the process ends.
  void start_dump_thread();

 private:
  FlightRecorder();
  mutable std::mutex mutex_;
  std::deque<CollectiveRecord> records_;
  uint64_t first_handle_ = 1;  // handle of records_.front()
  size_t capacity_ = 2000;
  int communicators_ = 0;
  std::string dir_, reasons_;
  int rank_ = 0, world_ = 1;
  std::atomic<const char*> requested_{nullptr};
  std::once_flag thread_once_;
};

// Records one collective for its lifetime: failed (with the exception's message, when the caller
// passes it to fail()) unless completed() was called.
class CollectiveScope {
 public:
  CollectiveScope(int communicator, int64_t seq, const std::string& kind, const std::string& what, int64_t step, int64_t bytes,
                  const std::string& dtype, const std::string& backend)
      : handle_(FlightRecorder::instance().start(communicator, seq, kind, what, step, bytes, dtype, backend)) {}
  ~CollectiveScope() {
    if (!done_) FlightRecorder::instance().finish(handle_, "failed: " + (reason_.empty() ? std::string("interrupted by an error") : reason_));
  }
  CollectiveScope(const CollectiveScope&) = delete;
  CollectiveScope& operator=(const CollectiveScope&) = delete;
  void completed() {
    done_ = true;
    FlightRecorder::instance().finish(handle_, "completed");
  }
  void fail(const std::string& reason) { reason_ = reason; }

 private:
  uint64_t handle_;
  bool done_ = false;
  std::string reason_;
};

}  // namespace horo::dist
