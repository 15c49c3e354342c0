// What horo-train shows and keeps of a run: a progress line on a terminal (one line per epoch
// otherwise), metrics per step and per epoch appended to metrics.csv and metrics.jsonl, a
// self-contained report.html with the loss and accuracy curves, written at the end, and run.json,
// what identifies the run (its configuration, environment, status and result; docs/runs.md).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "train/loop.h"

namespace horo::training {

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

// DIR/run.json (docs/runs.md, format "horo-run/1"): written when the run starts (status "running")
// and again when it ends ("finished", "stopped" or "failed"), atomically each time.
struct RunRecord {
  std::string dir;  // the run directory (horo-train's --log-dir); empty: nothing is written
  std::string program, command, started, ended, status = "running", error;
  std::vector<std::pair<std::string, std::string>> config;       // resolved settings, as text
  std::vector<std::pair<std::string, std::string>> environment;  // version, commit, host, CPU, SIMD, GEMM, GPU, ranks...
  std::string flags;         // every flag with its value (CLI11's configuration dump)
  std::string train_config;  // message TrainConfig, as in checkpoints
  std::string model_spec;    // the model specification (prototxt)
  std::vector<std::pair<std::string, double>> result;  // steps, epochs, test_accuracy, train_images_per_s, seconds...
  std::string last_checkpoint;
};
// Writes record.dir/run.json (and model.prototxt and config.prototxt beside it, ready for --model and
// --config); returns the path, or "" when record.dir is empty.
std::string write_run_record(const RunRecord& record);
// The current time as ISO 8601 UTC ("2026-12-02T11:40:00Z").
std::string utc_now();

}  // namespace horo::training
