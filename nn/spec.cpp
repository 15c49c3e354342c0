#include "nn/spec.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fstream>
#include <sstream>

#include "proto/horo.pb.h"
#include "nn/builtin_models.h"

namespace horo::nn {
namespace {

namespace pb = google::protobuf;

class Errors : public pb::io::ErrorCollector {
 public:
  explicit Errors(std::string source) : source_(std::move(source)) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (first_.empty()) first_ = detail::concat(source_, ":", line + 1, ":", column + 1, ": ", message);
  }
  void AddWarning(int, pb::io::ColumnNumber, const std::string&) override {}
  const std::string& first() const { return first_; }

 private:
  std::string source_, first_;
};

template <typename Message>
void parse(const std::string& text, const std::string& source, Message& message, pb::TextFormat::ParseInfoTree* tree) {
  Errors errors(source);
  pb::TextFormat::Parser parser;
  parser.RecordErrorsTo(&errors);
  if (tree) parser.WriteLocationsTo(tree);
  if (!parser.ParseFromString(text, &message)) {
    throw ValueError(errors.first().empty() ? source + ": cannot parse the specification" : errors.first());
  }
}

// Walks the layer list with the shape of one sample, building modules and checking each step.
class Builder {
 public:
  explicit Builder(std::string source) : source_(std::move(source)) {}

  std::shared_ptr<Sequential> build(const pb::RepeatedPtrField<spec::Layer>& layers, const pb::Message& owner,
                                    const pb::TextFormat::ParseInfoTree* tree, const std::string& prefix, Shape& shape) {
    auto seq = std::make_shared<Sequential>();
    const pb::FieldDescriptor* field = owner.GetDescriptor()->FindFieldByName("layers");
    for (int i = 0; i < layers.size(); ++i) {
      const spec::Layer& layer = layers.Get(i);
      const std::string local = layer.has_name() ? layer.name() : std::to_string(i);
      const std::string path = prefix.empty() ? local : prefix + "." + local;
      const int line = tree ? tree->GetLocation(field, i).line + 1 : 0;
      const pb::TextFormat::ParseInfoTree* sub = tree ? tree->GetTreeForNested(field, i) : nullptr;
      try {
        seq->add(local, build_layer(layer, sub, path, shape));
      } catch (const Error& e) {
        const std::string what = e.what();
        if (what.rfind(source_, 0) == 0) throw;  // already located (a nested layer)
        throw ValueError(detail::concat(source_, ":", line, ": layer '", path, "' (", kind(layer), "): ", what));
      }
    }
    return seq;
  }

 private:
  static std::string kind(const spec::Layer& layer) {
    const pb::OneofDescriptor* oneof = layer.GetDescriptor()->FindOneofByName("kind");
    const pb::FieldDescriptor* set = layer.GetReflection()->GetOneofFieldDescriptor(layer, oneof);
    return set ? set->name() : "nothing";
  }

  [[noreturn]] void shape_error(const std::string& message) const { throw Error(message); }

  std::shared_ptr<Module> build_layer(const spec::Layer& layer, const pb::TextFormat::ParseInfoTree* tree,
                                      const std::string& path, Shape& shape) {
    switch (layer.kind_case()) {
      case spec::Layer::kLinear: {
        const auto& o = layer.linear();
        if (shape.size() != 1) shape_error(detail::concat("expects [features] per sample, the previous layer gives ", shape_str(shape), " (add a flatten layer?)"));
        if (shape[0] != o.in()) shape_error(detail::concat("expects ", o.in(), " input features, the previous layer gives ", shape[0]));
        shape = {o.out()};
        return std::make_shared<Linear>(LinearOptions{.in = o.in(), .out = o.out(), .bias = o.bias()});
      }
      case spec::Layer::kConv2D: {
        const auto& o = layer.conv2d();
        if (shape.size() != 3) shape_error(detail::concat("expects [channels, height, width] per sample, the previous layer gives ", shape_str(shape)));
        if (shape[0] != o.in()) shape_error(detail::concat("expects ", o.in(), " input channels, the previous layer gives ", shape[0], " (", shape_str(shape), ")"));
        auto conv = std::make_shared<Conv2d>(Conv2dOptions{.in = o.in(), .out = o.out(), .kernel = o.kernel(), .stride = o.stride(),
                                                           .padding = o.padding(), .dilation = o.dilation(), .bias = o.bias()});
        auto side = [&](int64_t n) { return (n + 2 * o.padding() - o.dilation() * (o.kernel() - 1) - 1) / o.stride() + 1; };
        if (side(shape[1]) <= 0 || side(shape[2]) <= 0) shape_error(detail::concat("a ", o.kernel(), "x", o.kernel(), " kernel does not fit the ", shape[1], "x", shape[2], " input"));
        shape = {o.out(), side(shape[1]), side(shape[2])};
        return conv;
      }
      case spec::Layer::kMaxPool2D:
      case spec::Layer::kAvgPool2D: {
        const auto& o = layer.has_max_pool2d() ? layer.max_pool2d() : layer.avg_pool2d();
        const Pool2dOptions options{.kernel = o.kernel(), .stride = o.stride(), .padding = o.padding()};
        std::shared_ptr<Module> pool;
        if (layer.has_max_pool2d()) pool = std::make_shared<MaxPool2d>(options);
        else pool = std::make_shared<AvgPool2d>(options);
        if (shape.size() != 3) shape_error(detail::concat("expects [channels, height, width] per sample, the previous layer gives ", shape_str(shape)));
        const int64_t stride = o.stride() ? o.stride() : o.kernel();
        auto side = [&](int64_t n) { return (n + 2 * o.padding() - o.kernel()) / stride + 1; };
        if (side(shape[1]) <= 0 || side(shape[2]) <= 0) shape_error(detail::concat("a ", o.kernel(), "x", o.kernel(), " window does not fit the ", shape[1], "x", shape[2], " input"));
        shape = {shape[0], side(shape[1]), side(shape[2])};
        return pool;
      }
      case spec::Layer::kDropout: return std::make_shared<Dropout>(layer.dropout().p());
      case spec::Layer::kRelu: return std::make_shared<ReLU>();
      case spec::Layer::kLeakyRelu: return std::make_shared<LeakyReLU>(layer.leaky_relu().negative_slope());
      case spec::Layer::kSigmoid: return std::make_shared<Sigmoid>();
      case spec::Layer::kTanh: return std::make_shared<Tanh>();
      case spec::Layer::kGelu: return std::make_shared<GELU>();
      case spec::Layer::kFlatten: {
        const int64_t start = layer.flatten().start_dim();  // counts the batch dimension, as torch.flatten
        if (start < 1 || start > static_cast<int64_t>(shape.size())) shape_error(detail::concat("start_dim ", start, " outside the sample's ", shape.size(), " dimensions"));
        Shape out(shape.begin(), shape.begin() + (start - 1));
        out.push_back(shape_numel(Shape(shape.begin() + (start - 1), shape.end())));
        shape = out;
        return std::make_shared<Flatten>(start);
      }
      case spec::Layer::kSequential: {
        const pb::TextFormat::ParseInfoTree* nested =
            tree ? tree->GetTreeForNested(layer.GetDescriptor()->FindFieldByName("sequential"), -1) : nullptr;
        return build(layer.sequential().layers(), layer.sequential(), nested, path, shape);
      }
      case spec::Layer::KIND_NOT_SET: shape_error("names no layer kind (linear, conv2d, max_pool2d, ...)");
    }
    shape_error("unknown layer kind");
  }

  std::string source_;
};

}  // namespace

BuiltModel build_model_from_text(const std::string& text, const std::string& source) {
  spec::Model message;
  pb::TextFormat::ParseInfoTree tree;
  parse(text, source, message, &tree);
  HORO_CHECK(message.layers_size() > 0, ValueError, source, ": the model has no layers");
  HORO_CHECK(message.input_shape_size() > 0, ValueError, source, ": input_shape is missing (one sample, e.g. [1, 28, 28])");
  BuiltModel out;
  out.name = message.has_name() ? message.name() : source;
  out.spec_text = text;
  out.input_shape.assign(message.input_shape().begin(), message.input_shape().end());
  Shape shape = out.input_shape;
  Builder builder(source);
  out.model = builder.build(message.layers(), message, &tree, "", shape);
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  HORO_CHECK(in.good(), IOError, path, ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string model_spec_text(const std::string& name_or_path) {
  const bool builtin = name_or_path.find('/') == std::string::npos && name_or_path.find(".prototxt") == std::string::npos;
  return builtin ? builtin_model_text(name_or_path) : read_text_file(name_or_path);
}

BuiltModel build_model(const std::string& name_or_path) {
  return build_model_from_text(model_spec_text(name_or_path), name_or_path);
}

namespace {
spec::Linear* last_linear(pb::RepeatedPtrField<spec::Layer>* layers) {
  for (int i = layers->size() - 1; i >= 0; --i) {
    spec::Layer* layer = layers->Mutable(i);
    if (layer->has_sequential()) {
      if (auto* found = last_linear(layer->mutable_sequential()->mutable_layers())) return found;
    } else if (layer->has_linear()) {
      return layer->mutable_linear();
    }
  }
  return nullptr;
}
}  // namespace

std::string with_class_count(const std::string& text, int64_t classes, const std::string& source) {
  HORO_CHECK(classes > 0, ValueError, "the class count must be positive, got ", classes);
  spec::Model message;
  parse(text, source, message, nullptr);
  spec::Linear* head = last_linear(message.mutable_layers());
  HORO_CHECK(head != nullptr, ValueError, source, ": the model has no linear layer to resize for ", classes, " classes");
  head->set_out(classes);
  std::string out;
  pb::TextFormat::PrintToString(message, &out);
  return out;
}

TrainSettings parse_train_config(const std::string& text, const std::string& source) {
  spec::TrainConfig config;
  parse(text, source, config, nullptr);
  TrainSettings t;
  if (config.has_optimizer()) {
    t.has_optimizer = true;
    if (config.optimizer().has_sgd()) {
      const auto& o = config.optimizer().sgd();
      t.optimizer = "sgd";
      t.lr = o.lr();
      t.momentum = o.momentum();
      t.weight_decay = o.weight_decay();
    } else {
      const auto& o = config.optimizer().adam();
      t.lr = o.lr();
      t.weight_decay = o.weight_decay();
    }
  }
  if (config.has_schedule()) {
    t.has_schedule = true;
    const auto& s = config.schedule();
    t.schedule = s.has_step_size() ? "step" : s.has_cosine() && s.cosine() ? "cosine" : "none";
    t.step_size = s.has_step_size() ? s.step_size() : 1;
    t.gamma = s.gamma();
    t.warmup_epochs = s.warmup_steps();
  }
  t.has_batch = config.has_batch();
  t.batch = config.batch();
  t.has_epochs = config.has_epochs();
  t.epochs = config.epochs();
  t.has_seed = config.has_seed();
  t.seed = config.seed();
  t.train = config.train();
  t.val = config.val();
  HORO_CHECK(t.batch > 0 && t.epochs > 0, ValueError, source, ": batch and epochs must be positive");
  return t;
}

std::string canonical_train_config(const std::string& text, const std::string& source) {
  spec::TrainConfig config;
  parse(text, source, config, nullptr);
  std::string out;
  pb::TextFormat::PrintToString(config, &out);
  return out;
}

}  // namespace horo::nn
