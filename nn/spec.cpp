#include "nn/spec.h"

#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "proto/horo.pb.h"
#include "nn/builtin_models.h"
#include "nn/spec_builder.h"

namespace horo::nn {
namespace {

namespace pb = google::protobuf;

class Errors : public pb::io::ErrorCollector {
 public:
  explicit Errors(std::string source) : source_(std::move(source)) {}
  void AddError(int line, pb::io::ColumnNumber column, const std::string& message) override {
    if (!first_.empty()) return;
    const bool too_deep = message.find("recursion limit") != std::string::npos;
    first_ = detail::concat(source_, ":", line + 1, ":", column + 1, ": ",
                            too_deep ? detail::concat("layers nested more than ", kMaxSpecNesting,
                                                      " deep (sequential within sequential ...): the limit is ", kMaxSpecNesting)
                                     : message);
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
  // Bounded nesting: protobuf's default limit is INT_MAX, and 5,000 nested `sequential`s (130 KB)
  // overflowed the stack. A real model nests a few levels; two message levels make one layer level.
  parser.SetRecursionLimit(2 * kMaxSpecNesting);
  parser.RecordErrorsTo(&errors);
  if (tree) parser.WriteLocationsTo(tree);
  if (!parser.ParseFromString(text, &message)) {
    throw ValueError(errors.first().empty() ? source + ": cannot parse the specification" : errors.first());
  }
}

// 950, 12.3K, 3.61M, 1.82G.
std::string si(int64_t n) {
  const double v = static_cast<double>(n);
  char text[32];
  if (v < 1e3) std::snprintf(text, sizeof text, "%lld", static_cast<long long>(n));
  else if (v < 1e6) std::snprintf(text, sizeof text, "%.1fK", v / 1e3);
  else if (v < 1e9) std::snprintf(text, sizeof text, "%.2fM", v / 1e6);
  else std::snprintf(text, sizeof text, "%.2fG", v / 1e9);
  return text;
}

std::string thousands(int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace

BuiltModel build_model_from_text(const std::string& text, const std::string& source) {
  spec::Model message;
  pb::TextFormat::ParseInfoTree tree;
  parse(text, source, message, &tree);
  BuiltModel out = spec_builder::build(message, tree, source);
  out.spec_text = text;
  return out;
}

std::string summary_table(const BuiltModel& built) {
  std::vector<std::array<std::string, 5>> rows{{"layer", "type", "output shape", "params", "FLOPs"}};
  int64_t flops = 0, activations = 0;
  auto mflops = [](int64_t f) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", static_cast<double>(f) / 1e6);
    return std::string(text);
  };
  for (const auto& l : built.layers) {
    rows.push_back({l.path, l.type, shape_str(l.output), thousands(l.params), si(l.flops)});
    flops += l.flops;
    activations += shape_numel(l.output);
  }
  int64_t params = 0, trainable = 0;
  for (const auto& [name, t] : built.model->named_parameters()) {
    params += t.numel();
    if (t.requires_grad()) trainable += t.numel();
  }
  std::array<size_t, 5> width{};
  for (const auto& r : rows)
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  std::ostringstream out;
  auto line = [&](const std::array<std::string, 5>& r) {
    for (size_t c = 0; c < r.size(); ++c) {
      const bool right = c >= 3;  // numbers right-aligned
      out << (c ? "  " : "") << (right ? std::string(width[c] - r[c].size(), ' ') + r[c] : r[c] + std::string(width[c] - r[c].size(), ' '));
    }
    out << "\n";
  };
  size_t total_width = 8;
  for (size_t w : width) total_width += w;
  out << built.name << ": input " << shape_str(built.input_shape) << " per sample\n";
  line(rows[0]);
  out << std::string(total_width, '-') << "\n";
  for (size_t i = 1; i < rows.size(); ++i) line(rows[i]);
  out << std::string(total_width, '-') << "\n";
  out << "parameters: " << thousands(params) << " (trainable " << thousands(trainable) << ", " << mflops(params * 4)
      << " MB as float32)\n";
  out << "forward: " << mflops(flops) << " MFLOPs per sample (a multiply-add counts two; training costs about 3x)\n";
  out << "activations: " << mflops(activations * 4) << " MB per sample (float32, every layer's output)\n";
  return out.str();
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path);
  HORO_CHECK(in.good(), IOError, path, ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

bool is_builtin_model(const std::string& name_or_path) {
  return name_or_path.find('/') == std::string::npos && name_or_path.find(".prototxt") == std::string::npos;
}

std::string model_spec_text(const std::string& name_or_path) {
  return is_builtin_model(name_or_path) ? builtin_model_text(name_or_path) : read_text_file(name_or_path);
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

spec::Conv2d* first_conv(pb::RepeatedPtrField<spec::Layer>* layers) {
  for (int i = 0; i < layers->size(); ++i) {
    spec::Layer* layer = layers->Mutable(i);
    if (layer->has_sequential()) {
      if (auto* found = first_conv(layer->mutable_sequential()->mutable_layers())) return found;
    } else if (layer->has_conv2d()) {
      return layer->mutable_conv2d();
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

std::string with_input_shape(const std::string& text, const Shape& sample, const std::string& source) {
  spec::Model message;
  parse(text, source, message, nullptr);
  message.clear_input_shape();
  for (int64_t d : sample) message.add_input_shape(d);
  if (sample.size() == 3) {
    if (spec::Conv2d* first = first_conv(message.mutable_layers())) first->set_in(sample[0]);
  }
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
      t.nesterov = o.nesterov();
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
  t.has_hflip = config.has_hflip();
  t.hflip = config.hflip();
  t.has_crop_padding = config.has_crop_padding();
  t.crop_padding = config.crop_padding();
  HORO_CHECK(t.crop_padding >= 0, ValueError, source, ": crop_padding must be non-negative");
  t.has_random_resized_crop = config.has_random_resized_crop();
  t.random_resized_crop = config.random_resized_crop();
  t.crop_scale.assign(config.crop_scale().begin(), config.crop_scale().end());
  t.crop_ratio.assign(config.crop_ratio().begin(), config.crop_ratio().end());
  t.has_resize = config.has_resize();
  t.resize = config.resize();
  t.has_center_crop = config.has_center_crop();
  t.center_crop = config.center_crop();
  t.color_jitter.assign(config.color_jitter().begin(), config.color_jitter().end());
  t.mean.assign(config.mean().begin(), config.mean().end());
  t.std.assign(config.std().begin(), config.std().end());
  t.has_workers = config.has_workers();
  t.workers = config.workers();
  HORO_CHECK(t.random_resized_crop >= 0 && t.resize >= 0 && t.center_crop >= 0 && t.workers >= 0, ValueError, source,
             ": random_resized_crop, resize, center_crop and workers must be non-negative");
  HORO_CHECK(t.crop_scale.empty() || t.crop_scale.size() == 2, ValueError, source, ": crop_scale takes two values (min, max), got ",
             t.crop_scale.size());
  HORO_CHECK(t.crop_ratio.empty() || t.crop_ratio.size() == 2, ValueError, source, ": crop_ratio takes two values (min, max), got ",
             t.crop_ratio.size());
  HORO_CHECK(t.color_jitter.size() <= 3, ValueError, source, ": color_jitter takes 1 to 3 values (brightness, contrast, saturation)");
  HORO_CHECK(t.mean.size() == t.std.size(), ValueError, source, ": mean has ", t.mean.size(), " values but std has ", t.std.size());
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
