#include "dist/flight_recorder.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kernels/error.h"

namespace horo::dist {
namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point kOrigin = Clock::now();
const double kOriginUnix =
    std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

thread_local uint64_t g_current_record = 0;  // the calling thread's newest open record

double now() { return std::chrono::duration<double>(Clock::now() - kOrigin).count(); }

}  // namespace

FlightRecorder& FlightRecorder::instance() {
  static FlightRecorder* recorder = new FlightRecorder();  // never destroyed: the dump thread may outlive main()
  return *recorder;
}

FlightRecorder::FlightRecorder() {
  if (const char* env = std::getenv("HORO_FLIGHT_RECORDER"); env && *env) {
    char* end = nullptr;
    const long long value = std::strtoll(env, &end, 10);
    HORO_CHECK(*end == '\0' && value >= 0, ValueError, "HORO_FLIGHT_RECORDER: expected a number of records (>= 0), got '", env, "'");
    capacity_ = static_cast<size_t>(value);
  }
}

int FlightRecorder::register_communicator() {
  std::lock_guard<std::mutex> lock(mutex_);
  return communicators_++;
}

uint64_t FlightRecorder::start(int communicator, int64_t seq, const std::string& kind, const std::string& what, int64_t step,
                               int64_t bytes, const std::string& dtype, const std::string& backend) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (capacity_ == 0) return 0;
  if (records_.size() == capacity_) {
    records_.pop_front();
    ++first_handle_;
  }
  records_.push_back({.communicator = communicator, .seq = seq, .kind = kind, .what = what, .dtype = dtype, .backend = backend,
                      .step = step, .bytes = bytes, .started = now()});
  g_current_record = first_handle_ + records_.size() - 1;
  return g_current_record;
}

void FlightRecorder::finish_current(const std::string& state) { finish(g_current_record, state); }

void FlightRecorder::finish(uint64_t handle, const std::string& state) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (handle < first_handle_ || handle >= first_handle_ + records_.size()) return;  // off (0) or already dropped
  CollectiveRecord& r = records_[handle - first_handle_];
  if (r.ended >= 0) return;
  r.ended = now();
  r.state = state;
}

void FlightRecorder::configure(const std::string& dir, int rank, int world) {
  std::lock_guard<std::mutex> lock(mutex_);
  dir_ = dir;
  rank_ = rank;
  world_ = world;
}

std::string FlightRecorder::dump_path() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return dir_.empty() ? std::string() : (std::filesystem::path(dir_) / ("flight-recorder-rank" + std::to_string(rank_) + ".json")).string();
}

std::string FlightRecorder::dump(const std::string& reason) {
  const std::string path = dump_path();
  if (path.empty()) return "";
  std::ostringstream out;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reasons_ += (reasons_.empty() ? "" : "; then ") + reason;
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    out << "{\n  \"format\": \"horo-flight-recorder/1\",\n  \"rank\": " << rank_ << ",\n  \"world\": " << world_
        << ",\n  \"host\": " << detail::json_quote(host) << ",\n  \"pid\": " << getpid() << ",\n  \"reason\": " << detail::json_quote(reasons_)
        << ",\n  \"clock_origin_unix\": " << std::fixed << kOriginUnix << ",\n  \"dumped_at\": " << now()
        << ",\n  \"capacity\": " << capacity_ << ",\n  \"records\": [";
    for (size_t i = 0; i < records_.size(); ++i) {
      const CollectiveRecord& r = records_[i];
      out << (i ? ",\n    " : "\n    ") << "{\"communicator\": " << r.communicator << ", \"seq\": " << r.seq
          << ", \"kind\": " << detail::json_quote(r.kind) << ", \"what\": " << detail::json_quote(r.what) << ", \"step\": " << r.step
          << ", \"bytes\": " << r.bytes << ", \"dtype\": " << detail::json_quote(r.dtype) << ", \"backend\": " << detail::json_quote(r.backend)
          << ", \"started\": " << r.started << ", \"ended\": " << (r.ended < 0 ? std::string("null") : std::to_string(r.ended))
          << ", \"state\": " << detail::json_quote(r.state) << "}";
    }
    out << "\n  ]\n}\n";
  }
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ignored);
  const std::string temporary = path + ".tmp";
  {
    std::ofstream file(temporary, std::ios::trunc);
    file << out.str();
    file.flush();
    HORO_CHECK(file.good(), IOError, temporary, ": writing the flight record failed");
  }
  std::filesystem::rename(temporary, path);
  return path;
}

void FlightRecorder::start_dump_thread() {
  std::call_once(thread_once_, [this] {
    std::thread([this] {
      for (;;) {
        if (const char* reason = requested_.exchange(nullptr)) {
          try {
            dump(reason);
          } catch (const std::exception& e) {
            std::fprintf(stderr, "horo: flight recorder: %s\n", e.what());
          }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }).detach();
  });
}

}  // namespace horo::dist
