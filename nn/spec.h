// Models built from text: a protobuf text-format specification (proto/horo.proto, message Model) such
// as models/cnn.prototxt. Errors name the file, the line and the layer: a misspelt field, an unknown
// layer kind, or a shape chain that cannot work (a Linear that expects 1600 features after a layer
// that gives 1024).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace horo::nn {

// The deepest nesting of layers (`sequential` within `sequential` ...) a specification may have.
inline constexpr int kMaxSpecNesting = 64;

// One layer as the builder saw it, for a model summary (horo-train --summary).
struct LayerSummary {
  std::string path, type;  // "layer1.0.conv1", "Conv2d"
  Shape output;            // for one sample
  int64_t params = 0;
  int64_t flops = 0;       // forward, one sample; a multiply-add counts two
};

struct BuiltModel {
  std::shared_ptr<Module> model;  // a Sequential, or a Graph when the top-level list is one
  std::string name;
  std::string spec_text;  // the specification the model was built from (stored in checkpoints)
  Shape input_shape;      // one sample
  Shape output_shape;     // one sample
  std::vector<LayerSummary> layers;  // every layer but the containers, in order
};

// The Keras/torchinfo table: each layer with its output shape, parameters and forward FLOPs, then
// the totals (parameters, trainable ones, FLOPs per sample and the activations' size).
std::string summary_table(const BuiltModel& built);

// Builds the model described by `text`; `source` names it in errors (a path, or "cnn").
BuiltModel build_model_from_text(const std::string& text, const std::string& source);
struct Checkpoint;
// The model a checkpoint was saved from, built from its specification with its weights and buffers
// loaded (strictly: every tensor present, shapes equal); ValueError naming the file when the
// checkpoint holds no specification (a model built in C++: build it, then nn::load_model).
BuiltModel build_model_from_checkpoint(const Checkpoint& checkpoint);
// A built-in name ("cnn", "mlp": the files models/*.prototxt, compiled in) or a .prototxt path.
BuiltModel build_model(const std::string& name_or_path);
// Whether name_or_path names a built-in model (no '/' and no ".prototxt") rather than a file.
bool is_builtin_model(const std::string& name_or_path);
// The specification text behind build_model(name_or_path).
std::string model_spec_text(const std::string& name_or_path);
// A whole text file; IOError naming it when it cannot be read.
std::string read_text_file(const std::string& path);
// The text of a built-in model, or throws ValueError naming the choices.
const std::string& builtin_model_text(const std::string& name);

// The specification with its last linear layer (the head) giving `classes` outputs, re-serialised.
std::string with_class_count(const std::string& text, int64_t classes, const std::string& source);
// The specification for samples of `sample` shape ([C, H, W]): input_shape replaced and the first
// convolution given C input channels, re-serialised. Built-in models take their input from the data
// this way (a resnet18 on 1x28x28 Fashion-MNIST or on 3x224x224 images).
std::string with_input_shape(const std::string& text, const Shape& sample, const std::string& source);

// A training configuration (message TrainConfig) as plain values; `has_*` say which were given.
struct TrainSettings {
  std::string optimizer = "adam";  // "adam" or "sgd"
  float lr = 1e-3f, momentum = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
  std::string schedule = "none";   // "none", "step" or "cosine"
  int64_t step_size = 1, warmup_epochs = 0;
  double gamma = 0.1;
  int64_t batch = 64, epochs = 10;
  uint64_t seed = 42;
  std::string train, val;
  bool hflip = false;
  int64_t crop_padding = 0;
  // Image transforms; empty or 0 where not given.
  int64_t random_resized_crop = 0, resize = 0, center_crop = 0;
  std::vector<double> crop_scale, crop_ratio;
  std::vector<float> color_jitter, mean, std;
  int workers = 0;
  bool has_optimizer = false, has_schedule = false, has_batch = false, has_epochs = false, has_seed = false;
  bool has_hflip = false, has_crop_padding = false, has_random_resized_crop = false, has_resize = false,
       has_center_crop = false, has_workers = false;
};
TrainSettings parse_train_config(const std::string& text, const std::string& source);

// Parses a training configuration (message TrainConfig) and returns it re-serialised in canonical
// text form, after checking it; throws ValueError with the line of any error.
std::string canonical_train_config(const std::string& text, const std::string& source);

}  // namespace horo::nn
