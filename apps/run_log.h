// What horo-train shows and keeps of a run: a progress line on a terminal (one line per epoch
// otherwise), metrics per step and per epoch appended to metrics.csv and metrics.jsonl, and a
// self-contained report.html with the loss and accuracy curves, written at the end.
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/trainer.h"

namespace horo::apps {

class ProgressLine {
 public:
  // Draws in place only when stdout is a terminal; otherwise stays silent (the epoch lines suffice).
  explicit ProgressLine(int64_t epochs);
  void update(const StepReport& step);
  // Ends the in-place line before an epoch line is printed.
  void finish_line();

 private:
  bool terminal_;
  int64_t epochs_;
  std::chrono::steady_clock::time_point last_draw_{};
  bool drawn_ = false;
};

class MetricsLog {
 public:
  // Appends to DIR/metrics.csv and DIR/metrics.jsonl (creating DIR); an empty dir disables the log.
  explicit MetricsLog(const std::string& dir);
  ~MetricsLog();
  void step(const StepReport& s);
  void epoch(const EpochReport& e);
  // Writes DIR/report.html with the run's curves and summary; returns its path ("" when disabled).
  std::string write_report(const std::string& title, const std::string& summary);

 private:
  std::string dir_;
  FILE* csv_ = nullptr;
  FILE* jsonl_ = nullptr;
  std::vector<std::pair<int64_t, double>> step_loss_;
  std::vector<EpochReport> epochs_;
};

}  // namespace horo::apps
