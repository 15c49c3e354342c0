#include "dist/timeline.h"

#include <cstdio>
#include <cstdlib>

#include "kernels/error.h"

namespace horo::dist {

Timeline& Timeline::instance() {
  static Timeline timeline;
  return timeline;
}

void Timeline::enable(const std::string& path, int rank, int world) {
  std::lock_guard<std::mutex> lock(mutex_);
  path_ = path;
  if (world > 1) {
    const size_t dot = path.rfind('.');
    const std::string suffix = ".rank" + std::to_string(rank);
    path_ = dot == std::string::npos ? path + suffix : path.substr(0, dot) + suffix + path.substr(dot);
  }
  enabled_ = true;
}

void Timeline::record(const std::string& name, const char* category, const char* lane,
                      std::chrono::steady_clock::time_point start) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  events_.push_back({name, category, lane,
                     std::chrono::duration_cast<std::chrono::microseconds>(start - origin_).count(),
                     std::chrono::duration_cast<std::chrono::microseconds>(now - start).count()});
}

void Timeline::flush() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!enabled_) return;
  FILE* f = std::fopen(path_.c_str(), "w");
  HORO_CHECK(f != nullptr, IOError, path_, ": cannot write the timeline (HORO_TIMELINE)");
  std::fprintf(f, "{\"traceEvents\":[\n");
  for (size_t i = 0; i < events_.size(); ++i) {
    const Event& e = events_[i];
    std::fprintf(f, "%s{\"name\":\"%s\",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%lld,\"dur\":%lld,\"pid\":0,\"tid\":\"%s\"}",
                 i ? ",\n" : "", e.name.c_str(), e.category, static_cast<long long>(e.start_us),
                 static_cast<long long>(e.duration_us), e.lane);
  }
  std::fprintf(f, "\n]}\n");
  std::fclose(f);
}

Timeline::~Timeline() {
  try {
    flush();
  } catch (...) {
    // At exit there is no one left to tell; the trace is best effort.
  }
}

}  // namespace horo::dist
