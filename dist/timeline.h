// An optional Chrome trace (chrome://tracing, Perfetto) of training: HORO_TIMELINE=file.json makes
// every rank record its steps' forward, backward, fusion copies and allreduces; each rank writes
// file.json with ".rankN" before the extension when several run.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace horo::dist {

class Timeline {
 public:
  // The process's timeline: enabled by HORO_TIMELINE (or enable()), a no-op otherwise.
  static Timeline& instance();
  void enable(const std::string& path, int rank, int world);
  bool enabled() const { return enabled_; }
  // Records a complete event [start, now) named `name` in category `category` on lane `lane`.
  void record(const std::string& name, const char* category, const char* lane,
              std::chrono::steady_clock::time_point start);
  // Writes the trace file (also done at exit).
  void flush();
  ~Timeline();

 private:
  struct Event {
    std::string name;
    const char* category;
    const char* lane;
    int64_t start_us, duration_us;
  };
  bool enabled_ = false;
  std::string path_;
  std::mutex mutex_;
  std::vector<Event> events_;
  std::chrono::steady_clock::time_point origin_ = std::chrono::steady_clock::now();
};

// Records the lifetime of a scope as one timeline event (nothing when the timeline is off).
class TimelineScope {
 public:
  TimelineScope(std::string name, const char* category, const char* lane)
      : name_(std::move(name)), category_(category), lane_(lane), start_(std::chrono::steady_clock::now()) {}
  ~TimelineScope() {
    if (Timeline::instance().enabled()) Timeline::instance().record(name_, category_, lane_, start_);
  }

 private:
  std::string name_;
  const char* category_;
  const char* lane_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace horo::dist
