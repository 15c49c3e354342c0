#include "nn/spec_builder.h"

#include <functional>
#include <map>

#include "nn/graph.h"
#include "nn/norm.h"

namespace horo::nn::spec_builder {
namespace {

namespace pb = google::protobuf;
using Tree = pb::TextFormat::ParseInfoTree;

// An error the builder has already located (file, line, layer): passed up through nested lists as is.
class Located : public ValueError {
  using ValueError::ValueError;
};

std::string kind_of(const spec::Layer& layer) {
  const pb::OneofDescriptor* oneof = layer.GetDescriptor()->FindOneofByName("kind");
  const pb::FieldDescriptor* set = layer.GetReflection()->GetOneofFieldDescriptor(layer, oneof);
  return set ? set->name() : "nothing";
}

int64_t numel(const Shape& s) { return shape_numel(s); }

// One entry of a layer list, with where it is written.
struct Entry {
  const spec::Layer* layer = nullptr;
  std::string local, path, kind;
  int line = 0;
  const Tree* tree = nullptr;  // the layer's own parse tree (for nested lists)
};

class Builder {
 public:
  Builder(std::string source, std::vector<LayerSummary>& rows) : source_(std::move(source)), rows_(rows) {}

  // Builds a layer list: a Sequential for a plain chain, a Graph when layers name their inputs or
  // join branches. `shape` is one sample's shape coming in and going out.
  std::shared_ptr<Module> build_list(const pb::RepeatedPtrField<spec::Layer>& layers, const pb::Message& owner,
                                     const Tree* tree, const std::string& prefix, Shape& shape) {
    const pb::FieldDescriptor* field = owner.GetDescriptor()->FindFieldByName("layers");
    std::vector<Entry> entries;
    std::map<std::string, int> index;
    bool graph = false;
    for (int i = 0; i < layers.size(); ++i) {
      Entry e;
      e.layer = &layers.Get(i);
      e.local = e.layer->has_name() ? e.layer->name() : std::to_string(i);
      e.path = prefix.empty() ? e.local : prefix + "." + e.local;
      e.kind = kind_of(*e.layer);
      e.line = tree ? tree->GetLocation(field, i).line + 1 : 0;
      e.tree = tree ? tree->GetTreeForNested(field, i) : nullptr;
      if (e.local == Graph::kInput) fail(e, "'input' names the input of the layer list; choose another name");
      if (e.local.empty() || e.local.find('.') != std::string::npos || e.local.find('/') != std::string::npos) {
        fail(e, "a layer name must be non-empty and contain no '.' or '/'");
      }
      auto [it, inserted] = index.emplace(e.local, i);
      if (!inserted) fail(e, detail::concat("a layer named '", e.local, "' is already at line ", entries[it->second].line));
      graph = graph || e.layer->inputs_size() > 0 || e.layer->has_add() || e.layer->has_concat();
      entries.push_back(std::move(e));
    }
    if (entries.empty()) throw Located(detail::concat(source_, ": '", prefix.empty() ? "model" : prefix, "' has no layers"));
    return graph ? build_graph(entries, index, shape) : build_chain(entries, shape);
  }

 private:
  [[noreturn]] void fail(const Entry& e, const std::string& message) const {
    throw Located(detail::concat(source_, ":", e.line, ": layer '", e.path, "' (", e.kind, "): ", message));
  }

  std::shared_ptr<Module> build_chain(const std::vector<Entry>& entries, Shape& shape) {
    auto seq = std::make_shared<Sequential>();
    for (const Entry& e : entries) {
      seq->add(e.local, build_located(e, shape, "the previous layer"));
    }
    return seq;
  }

  std::shared_ptr<Module> build_graph(const std::vector<Entry>& entries, const std::map<std::string, int>& index,
                                      Shape& shape) {
    const int n = static_cast<int>(entries.size());
    // Resolve every name first, so that a reference forward can be told apart from a cycle.
    std::vector<std::vector<int>> reads(static_cast<size_t>(n));  // -1: the list's input
    for (int i = 0; i < n; ++i) {
      const Entry& e = entries[static_cast<size_t>(i)];
      if (e.layer->inputs_size() == 0) {
        reads[i].push_back(i - 1);
        continue;
      }
      for (const std::string& name : e.layer->inputs()) {
        if (name == Graph::kInput) {
          reads[i].push_back(-1);
          continue;
        }
        auto it = index.find(name);
        if (it == index.end()) {
          std::string known;
          for (const Entry& other : entries) known += (known.empty() ? "" : ", ") + other.local;
          fail(e, detail::concat("reads '", name, "', which is no layer of this list (layers: ", known, "; '",
                                 Graph::kInput, "' is the list's input)"));
        }
        reads[i].push_back(it->second);
      }
    }
    for (int i = 0; i < n; ++i) {
      const Entry& e = entries[static_cast<size_t>(i)];
      for (int j : reads[i]) {
        if (j < i) continue;
        if (j == i) fail(e, "reads its own output (a cycle)");
        const std::vector<int> loop = path_back(reads, j, i);
        if (!loop.empty()) {
          std::string chain = "'" + e.local + "' reads '" + entries[j].local + "'";
          for (size_t k = 1; k < loop.size(); ++k) chain += ", which reads '" + entries[loop[k]].local + "'";
          fail(e, "the inputs form a cycle: " + chain);
        }
        fail(e, detail::concat("reads '", entries[j].local, "', which comes later (line ", entries[j].line,
                               "): a layer may only read the layers above it"));
      }
      const int want = e.layer->has_add() ? 2 : e.layer->has_concat() ? Module::kAnyInputs : 1;
      const int got = static_cast<int>(reads[i].size());
      if (want == Module::kAnyInputs ? got < 2 : got != want) {
        fail(e, detail::concat("takes ", want == Module::kAnyInputs ? std::string("two or more") : std::to_string(want),
                               " input", want == 1 ? "" : "s", ", got ", got));
      }
    }
    // Build in order with each layer's input shapes, then check that every output is used.
    std::vector<Shape> shapes(static_cast<size_t>(n));
    std::vector<int> readers(static_cast<size_t>(n));
    int input_readers = 0;
    auto graph = std::make_shared<Graph>();
    auto name_of = [&](int k) { return k < 0 ? std::string(Graph::kInput) : entries[k].local; };
    for (int i = 0; i < n; ++i) {
      const Entry& e = entries[static_cast<size_t>(i)];
      std::vector<std::string> names;
      std::vector<Shape> in_shapes;
      for (int k : reads[i]) {
        names.push_back(name_of(k));
        in_shapes.push_back(k < 0 ? shape : shapes[k]);
        (k < 0 ? input_readers : readers[k]) += 1;
      }
      Shape out;
      std::shared_ptr<Module> module;
      if (e.layer->has_add()) {
        if (in_shapes[0] != in_shapes[1]) {
          fail(e, detail::concat("cannot add '", names[0], "' ", shape_str(in_shapes[0]), " and '", names[1], "' ",
                                 shape_str(in_shapes[1]), ": the shapes must be equal"));
        }
        out = in_shapes[0];
        module = std::make_shared<Add>();
        record(e, module, out, numel(out));
      } else if (e.layer->has_concat()) {
        const int64_t dim = e.layer->concat().dim();  // counts the batch dimension
        if (dim < 1 || dim > static_cast<int64_t>(in_shapes[0].size())) {
          fail(e, detail::concat("dim ", dim, " is outside the sample's dimensions 1..", in_shapes[0].size(),
                                 " (dimension 0 is the batch)"));
        }
        out = in_shapes[0];
        for (size_t k = 1; k < in_shapes.size(); ++k) {
          bool fits = in_shapes[k].size() == out.size();
          for (size_t d = 0; fits && d < out.size(); ++d) fits = d == static_cast<size_t>(dim - 1) || in_shapes[k][d] == out[d];
          if (!fits) {
            fail(e, detail::concat("cannot join '", names[0], "' ", shape_str(in_shapes[0]), " and '", names[k], "' ",
                                   shape_str(in_shapes[k]), " along dimension ", dim,
                                   ": every other dimension must be equal"));
          }
          out[static_cast<size_t>(dim - 1)] += in_shapes[k][static_cast<size_t>(dim - 1)];
        }
        module = std::make_shared<Concat>(dim);
        record(e, module, out, 0);
      } else {
        out = in_shapes[0];
        const int k = reads[i][0];
        module = build_located(e, out, k < 0 ? "the list's input" : k == i - 1 ? "the previous layer" : "'" + names[0] + "'");
      }
      shapes[static_cast<size_t>(i)] = out;
      graph->add(e.local, module, e.layer->inputs_size() ? names : std::vector<std::string>{});
    }
    if (input_readers == 0) fail(entries[0], "no layer reads the list's input ('input')");
    for (int i = 0; i + 1 < n; ++i) {
      if (readers[i] == 0) {
        fail(entries[static_cast<size_t>(i)],
             "its output is never used: only the last layer's output leaves the list, so every other layer must be read");
      }
    }
    shape = shapes.back();
    return graph;
  }

  // A path target <- ... <- from along `reads` edges, starting at `from` (empty when none).
  static std::vector<int> path_back(const std::vector<std::vector<int>>& reads, int from, int target) {
    std::vector<int> path{from};
    std::vector<char> seen(reads.size());
    std::function<bool(int)> dfs = [&](int node) {
      if (node == target) return true;
      if (node < 0 || seen[static_cast<size_t>(node)]) return false;
      seen[static_cast<size_t>(node)] = 1;
      for (int next : reads[static_cast<size_t>(node)]) {
        path.push_back(next);
        if (dfs(next)) return true;
        path.pop_back();
      }
      return false;
    };
    for (int next : reads[static_cast<size_t>(from)]) {
      path.push_back(next);
      if (dfs(next)) return path;
      path.pop_back();
    }
    return {};
  }

  // build_layer with errors located at the layer.
  std::shared_ptr<Module> build_located(const Entry& e, Shape& shape, const std::string& from) {
    try {
      return build_layer(e, shape, from);
    } catch (const Located&) {
      throw;
    } catch (const Error& error) {
      fail(e, error.what());
    }
  }

  void record(const Entry& e, const std::shared_ptr<Module>& module, const Shape& out, int64_t flops) {
    rows_.push_back({.path = e.path, .type = module->type_name(), .output = out, .params = module->parameter_count(),
                     .flops = flops});
  }

  std::shared_ptr<Module> build_layer(const Entry& e, Shape& shape, const std::string& from) {
    const spec::Layer& layer = *e.layer;
    auto need_image = [&] {
      if (shape.size() != 3) throw Error(detail::concat("expects [channels, height, width] per sample, ", from, " gives ", shape_str(shape)));
    };
    switch (layer.kind_case()) {
      case spec::Layer::kLinear: {
        const auto& o = layer.linear();
        if (shape.size() != 1) throw Error(detail::concat("expects [features] per sample, ", from, " gives ", shape_str(shape), " (add a flatten layer?)"));
        if (shape[0] != o.in()) throw Error(detail::concat("expects ", o.in(), " input features, ", from, " gives ", shape[0]));
        auto m = std::make_shared<Linear>(LinearOptions{.in = o.in(), .out = o.out(), .bias = o.bias()});
        shape = {o.out()};
        record(e, m, shape, 2 * o.in() * o.out() + (o.bias() ? o.out() : 0));
        return m;
      }
      case spec::Layer::kConv2D: {
        const auto& o = layer.conv2d();
        need_image();
        if (shape[0] != o.in()) throw Error(detail::concat("expects ", o.in(), " input channels, ", from, " gives ", shape[0], " (", shape_str(shape), ")"));
        if (!o.has_kernel() && !(o.has_kernel_h() && o.has_kernel_w())) throw Error("needs kernel (or kernel_h and kernel_w)");
        auto optional = [](bool has, int64_t v) { return has ? std::optional<int64_t>(v) : std::nullopt; };
        Conv2dOptions options{.in = o.in(), .out = o.out(), .kernel = o.kernel(), .stride = o.stride(), .padding = o.padding(),
                              .dilation = o.dilation(), .bias = o.bias(), .kernel_h = optional(o.has_kernel_h(), o.kernel_h()),
                              .kernel_w = optional(o.has_kernel_w(), o.kernel_w()), .stride_h = optional(o.has_stride_h(), o.stride_h()),
                              .stride_w = optional(o.has_stride_w(), o.stride_w()), .padding_h = optional(o.has_padding_h(), o.padding_h()),
                              .padding_w = optional(o.has_padding_w(), o.padding_w()),
                              .init = o.init() == spec::KAIMING_NORMAL_FAN_OUT ? WeightInit::KaimingNormalFanOut : WeightInit::Default};
        auto m = std::make_shared<Conv2d>(options);
        shape = m->output_shape(shape);
        const int64_t macs = numel(shape) * o.in() * m->kernel_h() * m->kernel_w();
        record(e, m, shape, 2 * macs + (o.bias() ? numel(shape) : 0));
        return m;
      }
      case spec::Layer::kMaxPool2D:
      case spec::Layer::kAvgPool2D: {
        const auto& o = layer.has_max_pool2d() ? layer.max_pool2d() : layer.avg_pool2d();
        const Pool2dOptions options{.kernel = o.kernel(), .stride = o.stride(), .padding = o.padding()};
        std::shared_ptr<Module> m;
        if (layer.has_max_pool2d()) m = std::make_shared<MaxPool2d>(options);
        else m = std::make_shared<AvgPool2d>(options);
        need_image();
        const int64_t stride = o.stride() ? o.stride() : o.kernel();
        auto side = [&](int64_t n) { return n + 2 * o.padding() < o.kernel() ? 0 : (n + 2 * o.padding() - o.kernel()) / stride + 1; };
        if (side(shape[1]) <= 0 || side(shape[2]) <= 0) throw Error(detail::concat("a ", o.kernel(), "x", o.kernel(), " window does not fit the ", shape[1], "x", shape[2], " input"));
        shape = {shape[0], side(shape[1]), side(shape[2])};
        record(e, m, shape, numel(shape) * o.kernel() * o.kernel());
        return m;
      }
      case spec::Layer::kAdaptiveAvgPool2D: {
        const auto& o = layer.adaptive_avg_pool2d();
        need_image();
        const int64_t oh = o.has_output_h() ? o.output_h() : o.output_size(), ow = o.has_output_w() ? o.output_w() : o.output_size();
        auto m = std::make_shared<AdaptiveAvgPool2d>(oh, ow);
        const int64_t in = numel(shape);
        shape = {shape[0], oh, ow};
        record(e, m, shape, in);
        return m;
      }
      case spec::Layer::kBatchNorm2D:
      case spec::Layer::kBatchNorm1D: {
        const bool two_d = layer.has_batch_norm2d();
        const auto& o = two_d ? layer.batch_norm2d() : layer.batch_norm1d();
        if (two_d) need_image();
        else if (shape.size() != 1) throw Error(detail::concat("expects [features] per sample, ", from, " gives ", shape_str(shape)));
        const BatchNormOptions options{.features = shape[0], .eps = o.eps(),
                                       .momentum = o.cumulative_average() ? std::nullopt : std::optional<float>(o.momentum()),
                                       .affine = o.affine(), .track_running_stats = o.track_running_stats()};
        std::shared_ptr<Module> m;
        if (two_d) m = std::make_shared<BatchNorm2d>(options);
        else m = std::make_shared<BatchNorm1d>(options);
        record(e, m, shape, 2 * numel(shape));
        return m;
      }
      case spec::Layer::kDropout: return simple(e, std::make_shared<Dropout>(layer.dropout().p()), shape, 0);
      case spec::Layer::kRelu: return simple(e, std::make_shared<ReLU>(), shape, numel(shape));
      case spec::Layer::kLeakyRelu: return simple(e, std::make_shared<LeakyReLU>(layer.leaky_relu().negative_slope()), shape, numel(shape));
      case spec::Layer::kSigmoid: return simple(e, std::make_shared<Sigmoid>(), shape, numel(shape));
      case spec::Layer::kTanh: return simple(e, std::make_shared<Tanh>(), shape, numel(shape));
      case spec::Layer::kGelu: return simple(e, std::make_shared<GELU>(), shape, numel(shape));
      case spec::Layer::kIdentity: return simple(e, std::make_shared<Identity>(), shape, 0);
      case spec::Layer::kFlatten: {
        const int64_t start = layer.flatten().start_dim();  // counts the batch dimension, as torch.flatten
        if (start < 1 || start > static_cast<int64_t>(shape.size())) throw Error(detail::concat("start_dim ", start, " outside the sample's ", shape.size(), " dimensions"));
        Shape out(shape.begin(), shape.begin() + (start - 1));
        out.push_back(shape_numel(Shape(shape.begin() + (start - 1), shape.end())));
        shape = out;
        return simple(e, std::make_shared<Flatten>(start), shape, 0);
      }
      case spec::Layer::kSequential: {
        const Tree* nested = e.tree ? e.tree->GetTreeForNested(layer.GetDescriptor()->FindFieldByName("sequential"), -1) : nullptr;
        return build_list(layer.sequential().layers(), layer.sequential(), nested, e.path, shape);
      }
      case spec::Layer::kAdd:
      case spec::Layer::kConcat: throw Error("joins branches: it needs inputs (two names)");
      case spec::Layer::KIND_NOT_SET: throw Error("names no layer kind (linear, conv2d, batch_norm2d, add, ...)");
    }
    throw Error("unknown layer kind");
  }

  std::shared_ptr<Module> simple(const Entry& e, std::shared_ptr<Module> m, const Shape& shape, int64_t flops) {
    record(e, m, shape, flops);
    return m;
  }

  std::string source_;
  std::vector<LayerSummary>& rows_;
};

}  // namespace

BuiltModel build(const spec::Model& message, const Tree& tree, const std::string& source) {
  HORO_CHECK(message.layers_size() > 0, ValueError, source, ": the model has no layers");
  HORO_CHECK(message.input_shape_size() > 0, ValueError, source, ": input_shape is missing (one sample, e.g. [1, 28, 28])");
  BuiltModel out;
  out.name = message.has_name() ? message.name() : source;
  out.input_shape.assign(message.input_shape().begin(), message.input_shape().end());
  for (int64_t d : out.input_shape) HORO_CHECK(d > 0, ValueError, source, ": input_shape ", shape_str(out.input_shape), " must be positive");
  Shape shape = out.input_shape;
  Builder builder(source, out.layers);
  out.model = builder.build_list(message.layers(), message, &tree, "", shape);
  out.output_shape = shape;
  if (message.zero_init_residual()) zero_init_residual(*out.model);
  return out;
}

}  // namespace horo::nn::spec_builder
