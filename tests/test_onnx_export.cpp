// nn::export_onnx_bytes from C++: the layers a model spec cannot name (Softmax, LogSoftmax) are
// written; a Module with its own forward() and out-of-range options are refused by name. The files'
// validity and numbers are checked by onnx's checker and OpenCV in tests/onnx_export.py.
#include <gtest/gtest.h>

#include "nn/graph.h"
#include "nn/onnx_export.h"
#include "tests/test_util.h"

namespace horo::nn {
namespace {

using horo::testing::expect_error;

class Doubler : public Module {  // a forward() of its own: nothing the exporter can read
 public:
  Tensor forward(const Tensor& x) override { return x + x; }
  std::string type_name() const override { return "Doubler"; }
};

TEST(OnnxExport, WritesSoftmaxHeadsAndRefusesWhatItCannotRead) {
  if (!onnx_export_available()) GTEST_SKIP() << "horo was built without libonnx-dev";
  Sequential model;
  model.add("fc", std::make_shared<Linear>(LinearOptions{.in = 6, .out = 4}));
  model.add("probabilities", std::make_shared<Softmax>(1));
  OnnxExportSummary summary;
  const std::string bytes = export_onnx_bytes(model, {6}, {}, &summary);
  EXPECT_EQ(summary.nodes, 2);
  EXPECT_EQ(summary.parameters, 6 * 4 + 4);
  EXPECT_EQ(summary.output_shape, (Shape{4}));
  EXPECT_EQ(summary.bytes, static_cast<int64_t>(bytes.size()));
  for (const char* text : {"Gemm", "Softmax", "fc.weight", "fc.bias", "batch", "logits"}) {
    EXPECT_NE(bytes.find(text), std::string::npos) << text;
  }
  Sequential log_model;
  log_model.add("fc", std::make_shared<Linear>(LinearOptions{.in = 6, .out = 4}));
  log_model.add("log_probabilities", std::make_shared<LogSoftmax>(-1));
  EXPECT_NE(export_onnx_bytes(log_model, {6}).find("LogSoftmax"), std::string::npos);

  Sequential custom;
  custom.add("fc", std::make_shared<Linear>(LinearOptions{.in = 6, .out = 4}));
  custom.add("twice", std::make_shared<Doubler>());
  expect_error<ValueError>([&] { export_onnx_bytes(custom, {6}); }, {"'twice'", "Doubler", "Graph"});
  OnnxExportOptions old_opset;
  old_opset.opset = 12;
  expect_error<ValueError>([&] { export_onnx_bytes(model, {6}, old_opset); }, {"opset 12"});
  OnnxExportOptions same_names;
  same_names.input_name = same_names.output_name = "x";
  expect_error<ValueError>([&] { export_onnx_bytes(model, {6}, same_names); }, {"names"});
  Sequential unflattened;  // a Linear on images: the missing Flatten is named
  unflattened.add("fc", std::make_shared<Linear>(LinearOptions{.in = 6, .out = 4}));
  expect_error<ValueError>([&] { export_onnx_bytes(unflattened, {1, 2, 3}); }, {"'fc'", "Flatten"});
}

}  // namespace
}  // namespace horo::nn
