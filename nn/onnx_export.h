// ONNX export: a model as an ONNX graph (the protobuf schema of Debian's libonnx-dev), for inference
// runtimes (ONNX Runtime, OpenCV's DNN module, TensorRT). What is exported is the model in eval():
// Dropout is the identity and BatchNorm normalises by its running statistics, as torch.onnx.export
// writes a model in eval mode. The batch dimension is dynamic by default ("batch"); the sample's
// shape is fixed to the one the model was built for.
//
//   horo::nn::export_onnx(*built.model, built.input_shape, "model.onnx");
//
// Every horo layer has an ONNX counterpart except where ONNX cannot say the same thing: an adaptive
// pooling whose input size is not a multiple of its output size, a Flatten from a dimension other
// than 1 and a BatchNorm without running statistics are refused with ValueError naming the layer.
#pragma once

#include <string>

#include "nn/module.h"

namespace horo::nn {

struct OnnxExportOptions {
  int64_t opset = 13;                 // the default ("ai.onnx") operator set version; 13 to 17
  bool dynamic_batch = true;          // the batch dimension as the symbol "batch"; false: fixed to 1
  std::string input_name = "input";   // the graph's input and output value names
  std::string output_name = "logits";
  std::string graph_name = "horo";
  std::string doc;                    // doc_string of the model (e.g. the checkpoint it came from)
};

struct OnnxExportSummary {
  int64_t nodes = 0;         // ONNX nodes written
  int64_t initializers = 0;  // weight tensors written
  int64_t parameters = 0;    // their elements
  Shape output_shape;        // for one sample
  int64_t bytes = 0;         // the size of the file
};

// Whether this build can export (libonnx-dev was found when horo was configured).
bool onnx_export_available();

// Serialises `model` for samples of `sample_shape` ([C, H, W] or [F]) to an ONNX ModelProto. Throws
// ValueError naming the layer for a layer ONNX cannot express, and for options out of range.
std::string export_onnx_bytes(const Module& model, const Shape& sample_shape, const OnnxExportOptions& options = {},
                              OnnxExportSummary* summary = nullptr);

// The same, written to `path` (IOError naming it when it cannot be written).
OnnxExportSummary export_onnx(const Module& model, const Shape& sample_shape, const std::string& path,
                              const OnnxExportOptions& options = {});

}  // namespace horo::nn
