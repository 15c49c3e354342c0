// ONNX export in a build without libonnx-dev: every call says how to get it.
#include "nn/onnx_export.h"

namespace horo::nn {
namespace {
[[noreturn]] void unavailable() {
  throw ValueError(
      "ONNX export: this horo was built without ONNX support (libonnx-dev was not found when it was configured); "
      "install libonnx-dev (scripts/install-deps.sh does) and configure again with -DHORO_ONNX=ON");
}
}  // namespace

bool onnx_export_available() { return false; }

std::string export_onnx_bytes(const Module&, const Shape&, const OnnxExportOptions&, OnnxExportSummary*) { unavailable(); }

OnnxExportSummary export_onnx(const Module&, const Shape&, const std::string&, const OnnxExportOptions&) { unavailable(); }

}  // namespace horo::nn
