// ONNX export through the generated classes of onnx.proto (Debian's libonnx-dev, libonnx_proto).
// The model is walked as it runs: a Sequential's children in order, a Graph's layers with the names
// they read. Every value carries its per-sample shape so that layers whose ONNX form depends on it
// (Flatten's Reshape, adaptive pooling) can be written with fixed attributes.
#include "nn/onnx_export.h"

#include <onnx/onnx_pb.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "nn/graph.h"
#include "nn/layers.h"
#include "nn/norm.h"

namespace horo::nn {
namespace {

// A value in the ONNX graph: its name and the shape of one sample (without the batch dimension).
struct Value {
  std::string name;
  Shape sample;
};

class Exporter {
 public:
  explicit Exporter(onnx::GraphProto& graph) : graph_(graph) {}

  Value emit(const Module& module, const Value& input) {
    if (const auto* seq = dynamic_cast<const Sequential*>(&module)) {
      Value x = input;
      for (const auto& [name, child] : seq->children()) x = emit(*child, x);
      return x;
    }
    if (const auto* g = dynamic_cast<const Graph*>(&module)) return emit_graph(*g, input);
    return emit_layer(module, {input});
  }

  int64_t parameters() const { return parameters_; }

 private:
  Value emit_graph(const Graph& g, const Value& input) {
    std::map<std::string, Value> values{{Graph::kInput, input}};
    Value last = input;
    for (const auto& [name, child] : g.children()) {
      std::vector<Value> inputs;
      for (const auto& source : g.inputs_of(name)) inputs.push_back(values.at(source));
      if (child->input_count() == 1 && inputs.size() == 1) {
        last = emit(*child, inputs.front());
      } else {
        last = emit_layer(*child, inputs);
      }
      values[name] = last;
    }
    return last;
  }

  Value emit_layer(const Module& m, const std::vector<Value>& in) {
    const Value& x = in.front();
    const std::string out = m.path().empty() ? "output" : m.path();
    const std::string type = m.type_name();
    if (const auto* conv = dynamic_cast<const Conv2d*>(&m)) {
      const ops::Conv2dParams p = conv->params();
      std::vector<std::string> inputs{x.name, initializer(conv->weight)};
      if (conv->bias.defined()) inputs.push_back(initializer(conv->bias));
      auto& n = node("Conv", inputs, out, m);
      ints(n, "kernel_shape", {conv->kernel_h(), conv->kernel_w()});
      ints(n, "strides", {p.stride_h, p.stride_w});
      ints(n, "pads", {p.pad_h, p.pad_w, p.pad_h, p.pad_w});
      ints(n, "dilations", {p.dilation_h, p.dilation_w});
      return {out, conv->output_shape(x.sample)};
    }
    if (const auto* linear = dynamic_cast<const Linear*>(&m)) {
      HORO_CHECK(x.sample.size() == 1, ValueError, "ONNX export: ", m.where(), " takes [batch, features] but gets samples of ",
                 shape_str(x.sample), " (put a Flatten before it)");
      std::vector<std::string> inputs{x.name, initializer(linear->weight)};
      if (linear->bias.defined()) inputs.push_back(initializer(linear->bias));
      integer(node("Gemm", inputs, out, m), "transB", 1);
      return {out, {linear->options().out}};
    }
    if (const auto* bn = dynamic_cast<const BatchNorm*>(&m)) return batch_norm(*bn, x, out);
    if (const auto* pool = dynamic_cast<const MaxPool2d*>(&m)) return pooling("MaxPool", pool->params(), m, x, out, false);
    if (const auto* pool = dynamic_cast<const AvgPool2d*>(&m)) return pooling("AveragePool", pool->params(), m, x, out, true);
    if (const auto* pool = dynamic_cast<const AdaptiveAvgPool2d*>(&m)) return adaptive_pooling(*pool, x, out);
    if (dynamic_cast<const Identity*>(&m) || dynamic_cast<const Dropout*>(&m)) return x;  // eval(): both pass x on
    if (dynamic_cast<const ReLU*>(&m) || dynamic_cast<const Sigmoid*>(&m) || dynamic_cast<const Tanh*>(&m)) {
      node(dynamic_cast<const ReLU*>(&m) ? "Relu" : type, {x.name}, out, m);
      return {out, x.sample};
    }
    if (const auto* leaky = dynamic_cast<const LeakyReLU*>(&m)) {
      real(node("LeakyRelu", {x.name}, out, m), "alpha", leaky->negative_slope());
      return {out, x.sample};
    }
    if (dynamic_cast<const GELU*>(&m)) return gelu(m, x, out);
    if (const auto* softmax = dynamic_cast<const Softmax*>(&m)) {
      integer(node("Softmax", {x.name}, out, m), "axis", softmax->dim());
      return {out, x.sample};
    }
    if (const auto* log_softmax = dynamic_cast<const LogSoftmax*>(&m)) {
      integer(node("LogSoftmax", {x.name}, out, m), "axis", log_softmax->dim());
      return {out, x.sample};
    }
    if (const auto* flatten = dynamic_cast<const Flatten*>(&m)) return flatten_layer(*flatten, x, out);
    if (dynamic_cast<const Add*>(&m)) {
      HORO_CHECK(in.size() == 2 && in[0].sample == in[1].sample, ValueError, "ONNX export: ", m.where(),
                 " adds two inputs of the same shape");
      node("Add", {in[0].name, in[1].name}, out, m);
      return {out, x.sample};
    }
    if (const auto* concat = dynamic_cast<const Concat*>(&m)) return concat_layer(*concat, in, out);
    throw ValueError(detail::concat("ONNX export: ", m.where(), " (", type,
                                    ") has no ONNX form in horo's exporter, which walks Sequential and Graph containers "
                                    "of horo's layers (a Module with a forward() of its own cannot be read: wire it as "
                                    "a Graph); the layers it writes are Conv2d, Linear, BatchNorm1d/2d, MaxPool2d, "
                                    "AvgPool2d, AdaptiveAvgPool2d, ReLU, LeakyReLU, Sigmoid, Tanh, GELU, Softmax, "
                                    "LogSoftmax, Flatten, Dropout, Identity, Add, Concat"));
  }

  Value batch_norm(const BatchNorm& bn, const Value& x, const std::string& out) {
    HORO_CHECK(bn.running_mean.defined() && bn.running_var.defined(), ValueError, "ONNX export: ", bn.where(),
               " has no running statistics (track_running_stats false), so at inference it would normalise each "
               "batch by its own statistics, which ONNX's BatchNormalization cannot do");
    const int64_t c = bn.options().features;
    const std::string scale = bn.weight.defined() ? initializer(bn.weight) : constant(bn.path() + ".weight", std::vector<float>(c, 1.0f), {c});
    const std::string shift = bn.bias.defined() ? initializer(bn.bias) : constant(bn.path() + ".bias", std::vector<float>(c, 0.0f), {c});
    auto& n = node("BatchNormalization", {x.name, scale, shift, initializer(bn.running_mean), initializer(bn.running_var)}, out, bn);
    real(n, "epsilon", bn.options().eps);
    return {out, x.sample};
  }

  Value pooling(const char* op, const ops::Pool2dParams& p, const Module& m, const Value& x, const std::string& out,
                bool count_include_pad) {
    HORO_CHECK(x.sample.size() == 3, ValueError, "ONNX export: ", m.where(), " takes [batch, C, H, W] but gets samples of ",
               shape_str(x.sample));
    std::string source = x.name;
    const bool padded = p.pad_h > 0 || p.pad_w > 0;
    if (padded && count_include_pad) {
      // Padded cells count toward the average (PyTorch's default, horo's only mode): zeros padded
      // explicitly, then an unpadded average. The same as count_include_pad=1, which some runtimes
      // ignore (OpenCV 4.6 divides by the cells inside the image).
      const std::string pads = int64_constant(m.path() + ".pads", {0, 0, p.pad_h, p.pad_w, 0, 0, p.pad_h, p.pad_w});
      source = out + ".padded";
      node("Pad", {x.name, pads}, source, m, "/pad");
    }
    auto& n = node(op, {source}, out, m);
    ints(n, "kernel_shape", {p.kernel_h, p.kernel_w});
    ints(n, "strides", {p.stride_h, p.stride_w});
    if (padded && !count_include_pad) ints(n, "pads", {p.pad_h, p.pad_w, p.pad_h, p.pad_w});
    const int64_t h = (x.sample[1] + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
    const int64_t w = (x.sample[2] + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
    return {out, {x.sample[0], h, w}};
  }

  // ONNX has no adaptive pooling: 1x1 is GlobalAveragePool; an output size that divides the input
  // size is an AveragePool with kernel = stride = input / output, as PyTorch's own exporter writes it.
  Value adaptive_pooling(const AdaptiveAvgPool2d& pool, const Value& x, const std::string& out) {
    HORO_CHECK(x.sample.size() == 3, ValueError, "ONNX export: ", pool.where(), " takes [batch, C, H, W] but gets samples of ",
               shape_str(x.sample));
    const int64_t oh = pool.output_h(), ow = pool.output_w();
    if (oh == 1 && ow == 1) {
      node("GlobalAveragePool", {x.name}, out, pool);
    } else {
      HORO_CHECK(x.sample[1] % oh == 0 && x.sample[2] % ow == 0, ValueError, "ONNX export: ", pool.where(),
                 " pools ", x.sample[1], "x", x.sample[2], " to ", oh, "x", ow,
                 ", unequal windows that ONNX has no operator for (an output size that divides the input size can be exported)");
      auto& n = node("AveragePool", {x.name}, out, pool);
      ints(n, "kernel_shape", {x.sample[1] / oh, x.sample[2] / ow});
      ints(n, "strides", {x.sample[1] / oh, x.sample[2] / ow});
    }
    return {out, {x.sample[0], oh, ow}};
  }

  // erf form, as horo's GELU computes it: x * 0.5 * (1 + erf(x / sqrt(2))) (ONNX has Gelu only from opset 20).
  Value gelu(const Module& m, const Value& x, const std::string& out) {
    const std::string sqrt2 = constant("gelu.sqrt2", {static_cast<float>(std::sqrt(2.0))}, {});
    const std::string one = constant("gelu.one", {1.0f}, {});
    const std::string half = constant("gelu.half", {0.5f}, {});
    node("Div", {x.name, sqrt2}, out + ".scaled", m, "/div");
    node("Erf", {out + ".scaled"}, out + ".erf", m, "/erf");
    node("Add", {out + ".erf", one}, out + ".plus_one", m, "/add");
    node("Mul", {x.name, out + ".plus_one"}, out + ".product", m, "/mul");
    node("Mul", {out + ".product", half}, out, m, "/half");
    return {out, x.sample};
  }

  Value flatten_layer(const Flatten& f, const Value& x, const std::string& out) {
    const int64_t rank = static_cast<int64_t>(x.sample.size()) + 1;
    const int64_t start = f.start_dim() < 0 ? f.start_dim() + rank : f.start_dim();
    HORO_CHECK(start >= 1 && start < rank, ValueError, "ONNX export: ", f.where(), " flattens from dimension ", f.start_dim(),
               " of samples ", shape_str(x.sample), "; the exported model keeps the batch dimension, so 1 to ", rank - 1);
    Shape sample(x.sample.begin(), x.sample.begin() + (start - 1));
    int64_t merged = 1;
    for (size_t d = static_cast<size_t>(start - 1); d < x.sample.size(); ++d) merged *= x.sample[d];
    sample.push_back(merged);
    if (start == 1) {
      integer(node("Flatten", {x.name}, out, f), "axis", 1);
    } else {
      std::vector<int64_t> target{0};  // 0: the batch dimension as it comes
      target.insert(target.end(), sample.begin(), sample.end());
      node("Reshape", {x.name, int64_constant(f.path() + ".shape", target)}, out, f);
    }
    return {out, sample};
  }

  Value concat_layer(const Concat& c, const std::vector<Value>& in, const std::string& out) {
    const int64_t rank = static_cast<int64_t>(in.front().sample.size()) + 1;
    const int64_t axis = c.dim() < 0 ? c.dim() + rank : c.dim();
    HORO_CHECK(axis >= 1 && axis < rank, ValueError, "ONNX export: ", c.where(), " joins along dimension ", c.dim(),
               "; only a dimension of the samples (1 to ", rank - 1, ") keeps the batch dynamic");
    std::vector<std::string> names;
    Shape sample = in.front().sample;
    sample[static_cast<size_t>(axis - 1)] = 0;
    for (const auto& v : in) {
      names.push_back(v.name);
      sample[static_cast<size_t>(axis - 1)] += v.sample[static_cast<size_t>(axis - 1)];
    }
    integer(node("Concat", names, out, c), "axis", axis);
    return {out, sample};
  }

  onnx::NodeProto& node(const std::string& op, const std::vector<std::string>& inputs, const std::string& output,
                        const Module& m, const std::string& suffix = "") {
    onnx::NodeProto* n = graph_.add_node();
    n->set_op_type(op);
    n->set_name((m.path().empty() ? m.type_name() : m.path()) + suffix);
    for (const auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return *n;
  }

  static void ints(onnx::NodeProto& n, const char* name, const std::vector<int64_t>& values) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto& n, const char* name, int64_t value) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void real(onnx::NodeProto& n, const char* name, float value) {
    onnx::AttributeProto* a = n.add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }

  // A parameter or buffer as a float32 initializer named by its dotted path (features.0.weight).
  std::string initializer(const Tensor& t) {
    HORO_CHECK(t.dtype() == DType::Float32, ValueError, "ONNX export: ", t.describe(), " is not float32");
    HORO_CHECK(!t.name().empty(), ValueError, "ONNX export: a parameter ", t.describe(), " has no name");
    if (written_.count(t.name())) return t.name();  // a tensor shared by two layers is written once
    return constant(t.name(), t.to_vector(), t.shape());
  }

  // A float32 initializer of `shape` (empty: a scalar), written once per name.
  std::string constant(const std::string& name, const std::vector<float>& values, const Shape& shape) {
    if (!written_.insert(name).second) return name;
    onnx::TensorProto* t = graph_.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (int64_t d : shape) t->add_dims(d);
    // raw_data is little-endian by the ONNX specification, as every machine horo builds for.
    t->set_raw_data(values.data(), values.size() * sizeof(float));
    parameters_ += static_cast<int64_t>(values.size());
    return name;
  }

  // A 1-D int64 initializer (shapes, pads).
  std::string int64_constant(const std::string& name, const std::vector<int64_t>& values) {
    if (!written_.insert(name).second) return name;
    onnx::TensorProto* t = graph_.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return name;
  }

  onnx::GraphProto& graph_;
  std::set<std::string> written_;
  int64_t parameters_ = 0;
};

void set_tensor_type(onnx::ValueInfoProto& info, const std::string& name, const Shape& sample, bool dynamic_batch) {
  info.set_name(name);
  onnx::TypeProto_Tensor* type = info.mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = type->mutable_shape();
  if (dynamic_batch) {
    shape->add_dim()->set_dim_param("batch");
  } else {
    shape->add_dim()->set_dim_value(1);
  }
  for (int64_t d : sample) shape->add_dim()->set_dim_value(d);
}

// Renames a value everywhere it is read or written.
void rename_value(onnx::GraphProto& graph, const std::string& from, const std::string& to) {
  for (auto& n : *graph.mutable_node()) {
    for (auto& i : *n.mutable_input()) if (i == from) i = to;
    for (auto& o : *n.mutable_output()) if (o == from) o = to;
  }
}

}  // namespace

bool onnx_export_available() { return true; }

std::string export_onnx_bytes(const Module& model, const Shape& sample_shape, const OnnxExportOptions& options,
                              OnnxExportSummary* summary) {
  HORO_CHECK(options.opset >= 13 && options.opset <= 17, ValueError, "ONNX export: opset ", options.opset,
             " is out of range; horo writes opsets 13 to 17");
  HORO_CHECK(!sample_shape.empty(), ValueError, "ONNX export: the model's sample shape is empty");
  HORO_CHECK(!options.input_name.empty() && !options.output_name.empty() && options.input_name != options.output_name,
             ValueError, "ONNX export: the input and output need two different, non-empty names");
  onnx::ModelProto proto;
  // IR version 7 goes with opset 13, 8 with opsets 14 to 17 (onnx/docs/Versioning.md).
  proto.set_ir_version(options.opset == 13 ? 7 : 8);
  proto.set_producer_name("horo");
  proto.set_producer_version("0.1.0");
  if (!options.doc.empty()) proto.set_doc_string(options.doc);
  onnx::OperatorSetIdProto* opset = proto.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  onnx::GraphProto& graph = *proto.mutable_graph();
  graph.set_name(options.graph_name);

  Exporter exporter(graph);
  const Value result = exporter.emit(model, {options.input_name, sample_shape});
  if (result.name == options.input_name) {  // a model of identities: the output still needs a node
    onnx::NodeProto* n = graph.add_node();
    n->set_op_type("Identity");
    n->set_name("output");
    n->add_input(options.input_name);
    n->add_output(options.output_name);
  } else {
    rename_value(graph, result.name, options.output_name);
  }
  set_tensor_type(*graph.add_input(), options.input_name, sample_shape, options.dynamic_batch);
  set_tensor_type(*graph.add_output(), options.output_name, result.sample, options.dynamic_batch);

  std::string bytes;
  HORO_CHECK(proto.SerializeToString(&bytes), ValueError, "ONNX export: the model (", exporter.parameters(),
             " parameters) could not be serialised; protobuf messages are limited to 2 GiB");
  if (summary) {
    summary->nodes = graph.node_size();
    summary->initializers = graph.initializer_size();
    summary->parameters = exporter.parameters();
    summary->output_shape = result.sample;
    summary->bytes = static_cast<int64_t>(bytes.size());
  }
  return bytes;
}

OnnxExportSummary export_onnx(const Module& model, const Shape& sample_shape, const std::string& path,
                              const OnnxExportOptions& options) {
  OnnxExportSummary summary;
  const std::string bytes = export_onnx_bytes(model, sample_shape, options, &summary);
  // Written beside the target and renamed over it: an interrupted export leaves no half file.
  const std::string partial = path + ".partial";
  {
    std::ofstream file(partial, std::ios::binary | std::ios::trunc);
    HORO_CHECK(file.good(), IOError, path, ": cannot open for writing: ", std::strerror(errno));
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    file.close();
    HORO_CHECK(file.good(), IOError, path, ": writing ", bytes.size(), " bytes failed: ", std::strerror(errno));
  }
  HORO_CHECK(std::rename(partial.c_str(), path.c_str()) == 0, IOError, path, ": cannot rename ", partial, " over it: ",
             std::strerror(errno));
  return summary;
}

}  // namespace horo::nn
