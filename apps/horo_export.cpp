// horo-export: a checkpoint as an ONNX model for inference runtimes (ONNX Runtime, OpenCV DNN, TensorRT).
//   horo-export --checkpoint ckpt.h5 --onnx model.onnx [--opset 13] [--static-batch]
// The model is written as in eval(): Dropout is the identity and BatchNorm uses its running statistics.
// Its input is the normalised batch horo-eval feeds the model ([batch, C, H, W] after resizing,
// cropping and normalisation: `horo-eval --save-logits L.h5 --save-inputs` writes both to compare).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "apps/version.h"
#include "nn/checkpoint.h"
#include "nn/onnx_export.h"
#include "nn/spec.h"

int main(int argc, char** argv) {
  std::string checkpoint_path, onnx_path;
  horo::nn::OnnxExportOptions options;
  bool static_batch = false;
  CLI::App app{"horo-export: write a checkpoint's model as ONNX"};
  app.add_option("--checkpoint", checkpoint_path, "checkpoint written by horo-train")->required();
  app.add_option("--onnx", onnx_path, "the ONNX file to write")->required();
  app.add_option("--opset", options.opset, "ONNX operator set version (13 to 17)")->capture_default_str()->check(CLI::Range(13, 17));
  app.add_flag("--static-batch", static_batch, "fix the batch dimension to 1 instead of the symbol 'batch'");
  app.add_option("--input-name", options.input_name, "name of the graph's input")->capture_default_str();
  app.add_option("--output-name", options.output_name, "name of the graph's output")->capture_default_str();
  horo::apps::add_version_flag(app, "horo-export");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto checkpoint = horo::nn::read_checkpoint(checkpoint_path);
    auto built = horo::nn::build_model_from_checkpoint(checkpoint);
    built.model->eval();
    options.dynamic_batch = !static_batch;
    options.graph_name = built.name.empty() ? "horo" : built.name;
    options.doc = "exported by horo-export from " + checkpoint_path + " (step " + std::to_string(checkpoint.state.step) + ")";
    const auto summary = horo::nn::export_onnx(*built.model, built.input_shape, onnx_path, options);
    // "[batch, 3, 32, 32]": the ONNX value's shape, batch dimension first.
    const auto onnx_shape = [&](const horo::Shape& sample) {
      std::string text = "[" + std::string(static_batch ? "1" : "batch");
      for (int64_t d : sample) text += ", " + std::to_string(d);
      return text + "]";
    };
    std::string parameters = std::to_string(summary.parameters);
    for (int i = static_cast<int>(parameters.size()) - 3; i > 0; i -= 3) parameters.insert(static_cast<size_t>(i), ",");
    std::printf("%s: %s, %lld nodes, %s parameters (%.2f MiB), opset %lld; %s %s -> %s %s\n", onnx_path.c_str(),
                options.graph_name.c_str(), static_cast<long long>(summary.nodes), parameters.c_str(),
                static_cast<double>(summary.bytes) / (1 << 20), static_cast<long long>(options.opset),
                options.input_name.c_str(), onnx_shape(built.input_shape).c_str(), options.output_name.c_str(),
                onnx_shape(summary.output_shape).c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-export: error: %s\n", e.what());
    return 1;
  }
}
