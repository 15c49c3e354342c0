#include "train/run_log.h"

#include <unistd.h>

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "dist/communicator.h"

namespace horo::training {
namespace {

std::string clock_text(double seconds) {
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof text, "%02lld:%02lld", static_cast<long long>(s / 60), static_cast<long long>(s % 60));
  return text;
}

// An SVG polyline chart of one or more series over x, scaled to fit.
std::string svg_chart(const std::string& title, const std::vector<std::pair<std::string, std::vector<std::pair<double, double>>>>& series) {
  double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
  for (const auto& [name, points] : series)
    for (const auto& [x, y] : points) { x0 = std::min(x0, x); x1 = std::max(x1, x); y0 = std::min(y0, y); y1 = std::max(y1, y); }
  if (x0 > x1) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double w = 560, h = 240, pad = 40;
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd"};
  std::ostringstream out;
  out << "<figure><figcaption>" << title << "</figcaption><svg width='" << w + 2 * pad << "' height='" << h + 2 * pad
      << "' xmlns='http://www.w3.org/2000/svg'><rect x='" << pad << "' y='" << pad << "' width='" << w << "' height='" << h
      << "' fill='none' stroke='#999'/>";
  out << "<text x='" << pad << "' y='" << pad - 8 << "' font-size='11'>" << y1 << "</text><text x='" << pad << "' y='"
      << pad + h + 14 << "' font-size='11'>" << y0 << " (x " << x0 << "–" << x1 << ")</text>";
  size_t k = 0;
  for (const auto& [name, points] : series) {
    out << "<polyline fill='none' stroke-width='1.5' stroke='" << colours[k % 4] << "' points='";
    for (const auto& [x, y] : points) out << pad + (x - x0) / (x1 - x0) * w << "," << pad + h - (y - y0) / (y1 - y0) * h << " ";
    out << "'/><text x='" << pad + w - 150 << "' y='" << pad + 16 + 14 * k << "' font-size='12' fill='" << colours[k % 4]
        << "'>" << name << "</text>";
    ++k;
  }
  out << "</svg></figure>";
  return out.str();
}

}  // namespace

// Under mpirun, stdout may be a pseudo-terminal that the launcher relays line by line: no redraws there.
ProgressLine::ProgressLine(int64_t epochs)
    : terminal_(isatty(STDOUT_FILENO) == 1 && !dist::launched_by_mpi()), epochs_(epochs) {}

void ProgressLine::update(const StepReport& s) {
  if (!terminal_) return;
  const auto now = std::chrono::steady_clock::now();
  const bool last = s.batch_in_epoch == s.batches_per_epoch;
  if (!last && drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  drawn_ = true;
  const double done = s.batches_per_epoch ? static_cast<double>(s.batch_in_epoch) / s.batches_per_epoch : 0.0;
  const int width = 24, filled = static_cast<int>(done * width);
  const double eta = done > 0 ? s.epoch_seconds * (1.0 - done) / done : 0.0;
  std::printf("\r\033[Kepoch %lld/%lld [%s%s] %lld/%lld %s<%s loss %.4f acc %.3f %.0f img/s wait %.1f%%",
              static_cast<long long>(s.epoch + 1), static_cast<long long>(epochs_), std::string(filled, '=').c_str(),
              std::string(width - filled, ' ').c_str(), static_cast<long long>(s.batch_in_epoch),
              static_cast<long long>(s.batches_per_epoch), clock_text(s.epoch_seconds).c_str(), clock_text(eta).c_str(),
              static_cast<double>(s.loss), s.accuracy, s.images_per_s, 100.0 * s.data_wait_share);
  std::fflush(stdout);
}

void ProgressLine::finish_line() {
  if (terminal_ && drawn_) {
    std::printf("\r\033[K");
    drawn_ = false;
  }
}

MetricsLog::MetricsLog(const std::string& dir) : dir_(dir) {
  if (dir_.empty()) return;
  std::error_code error;
  std::filesystem::create_directories(dir_, error);
  HORO_CHECK(!error, IOError, dir_, ": cannot create the log directory (", error.message(), ")");
  const std::string csv = dir_ + "/metrics.csv";
  const bool fresh = !std::filesystem::exists(csv);
  csv_ = std::fopen(csv.c_str(), "a");
  jsonl_ = std::fopen((dir_ + "/metrics.jsonl").c_str(), "a");
  HORO_CHECK(csv_ && jsonl_, IOError, dir_, ": cannot write metrics.csv / metrics.jsonl");
  if (fresh) std::fprintf(csv_, "kind,epoch,step,loss,accuracy,test_accuracy,images_per_s,data_wait_share,seconds\n");
}

MetricsLog::~MetricsLog() {
  if (csv_) std::fclose(csv_);
  if (jsonl_) std::fclose(jsonl_);
}

void MetricsLog::step(const StepReport& s) {
  step_loss_.emplace_back(s.step, s.loss);
  if (!csv_) return;
  std::fprintf(csv_, "step,%lld,%lld,%.6f,%.4f,,%.1f,%.4f,%.3f\n", static_cast<long long>(s.epoch + 1),
               static_cast<long long>(s.step), static_cast<double>(s.loss), s.accuracy, s.images_per_s, s.data_wait_share,
               s.epoch_seconds);
  std::fprintf(jsonl_, "{\"kind\":\"step\",\"epoch\":%lld,\"step\":%lld,\"loss\":%.6f,\"accuracy\":%.4f,\"images_per_s\":%.1f}\n",
               static_cast<long long>(s.epoch + 1), static_cast<long long>(s.step), static_cast<double>(s.loss), s.accuracy,
               s.images_per_s);
  std::fflush(csv_);  // a run that is killed keeps every step it finished
  std::fflush(jsonl_);
}

void MetricsLog::epoch(const EpochReport& e) {
  epochs_.push_back(e);
  if (!csv_) return;
  std::fprintf(csv_, "epoch,%lld,,%.6f,%.4f,%.4f,%.1f,%.4f,%.3f\n", static_cast<long long>(e.epoch), e.loss, e.train_accuracy,
               e.test_accuracy, e.images_per_s, e.data_wait_share, e.seconds);
  std::fprintf(jsonl_,
               "{\"kind\":\"epoch\",\"epoch\":%lld,\"loss\":%.6f,\"train_accuracy\":%.4f,\"test_accuracy\":%.4f,"
               "\"images_per_s\":%.1f,\"data_wait_share\":%.4f,\"seconds\":%.3f}\n",
               static_cast<long long>(e.epoch), e.loss, e.train_accuracy, e.test_accuracy, e.images_per_s,
               e.data_wait_share, e.seconds);
  std::fflush(csv_);
  std::fflush(jsonl_);
}

std::string MetricsLog::write_report(const std::string& title, const std::string& summary) {
  if (dir_.empty()) return "";
  std::vector<std::pair<double, double>> loss, epoch_loss, train_acc, test_acc;
  for (const auto& [step, value] : step_loss_) loss.emplace_back(static_cast<double>(step), value);
  for (const auto& e : epochs_) {
    epoch_loss.emplace_back(e.epoch, e.loss);
    train_acc.emplace_back(e.epoch, e.train_accuracy);
    test_acc.emplace_back(e.epoch, e.test_accuracy);
  }
  const std::string path = dir_ + "/report.html";
  FILE* f = std::fopen(path.c_str(), "w");
  HORO_CHECK(f != nullptr, IOError, path, ": cannot write the report");
  std::ostringstream table;
  table << "<table><tr><th>epoch</th><th>loss</th><th>train acc</th><th>test acc</th><th>images/s</th><th>data wait</th><th>s</th></tr>";
  for (const auto& e : epochs_) {
    table << "<tr><td>" << e.epoch << "</td><td>" << e.loss << "</td><td>" << e.train_accuracy << "</td><td>" << e.test_accuracy
          << "</td><td>" << static_cast<int64_t>(e.images_per_s) << "</td><td>" << 100 * e.data_wait_share << "%</td><td>" << e.seconds
          << "</td></tr>";
  }
  table << "</table>";
  std::fprintf(f, "<!doctype html><html><head><meta charset='utf-8'><title>%s</title><style>body{font-family:sans-serif;margin:2em}"
               "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}</style></head><body>"
               "<h1>%s</h1><p>%s</p>%s%s%s</body></html>\n",
               title.c_str(), title.c_str(), summary.c_str(), svg_chart("training loss per step", {{"loss", loss}}).c_str(),
               svg_chart("accuracy per epoch", {{"train", train_acc}, {"test", test_acc}}).c_str(), table.str().c_str());
  std::fclose(f);
  return path;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

namespace {
// Writes `text` to `path` through a temporary name, so that a reader never sees half a file.
void write_atomically(const std::string& path, const std::string& text) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    out.flush();
    HORO_CHECK(out.good(), IOError, temporary, ": writing failed");
  }
  std::filesystem::rename(temporary, path);
}

std::string json_object(const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string out = "{";
  for (size_t i = 0; i < entries.size(); ++i) {
    out += (i ? ", " : "") + detail::json_quote(entries[i].first) + ": " + detail::json_quote(entries[i].second);
  }
  return out + "}";
}
}  // namespace

std::string write_run_record(const RunRecord& r) {
  if (r.dir.empty()) return "";
  std::filesystem::create_directories(r.dir);
  std::ostringstream out;
  out << "{\n  \"format\": \"horo-run/1\",\n  \"program\": " << detail::json_quote(r.program)
      << ",\n  \"command\": " << detail::json_quote(r.command) << ",\n  \"status\": " << detail::json_quote(r.status)
      << ",\n  \"started\": " << detail::json_quote(r.started) << ",\n  \"ended\": "
      << (r.ended.empty() ? std::string("null") : detail::json_quote(r.ended))
      << ",\n  \"error\": " << (r.error.empty() ? std::string("null") : detail::json_quote(r.error))
      << ",\n  \"config\": " << json_object(r.config) << ",\n  \"environment\": " << json_object(r.environment)
      << ",\n  \"result\": {";
  for (size_t i = 0; i < r.result.size(); ++i) {
    const double v = r.result[i].second;
    out << (i ? ", " : "") << detail::json_quote(r.result[i].first) << ": ";
    if (std::isfinite(v)) out << v;
    else out << "null";
  }
  out << "},\n  \"last_checkpoint\": " << (r.last_checkpoint.empty() ? std::string("null") : detail::json_quote(r.last_checkpoint))
      << ",\n  \"flags\": " << detail::json_quote(r.flags) << ",\n  \"train_config\": " << detail::json_quote(r.train_config)
      << ",\n  \"model_spec\": " << detail::json_quote(r.model_spec) << "\n}\n";
  const std::string path = r.dir + "/run.json";
  write_atomically(path, out.str());
  if (!r.model_spec.empty()) write_atomically(r.dir + "/model.prototxt", r.model_spec);
  if (!r.train_config.empty()) write_atomically(r.dir + "/config.prototxt", r.train_config);
  return path;
}

}  // namespace horo::training
