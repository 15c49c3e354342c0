// The data flags horo-train and horo-eval share (HDF5 input): augmentation, evaluation transforms,
// normalisation and reader threads, with torchvision's names and defaults; how they travel in a
// training configuration (and so in checkpoints); and the reader transforms they make.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "data/reader.h"
#include "nn/spec.h"

namespace horo::apps {

struct DataFlags {
  bool hflip = false;
  int64_t crop_padding = 0;
  int64_t random_resized_crop = 0;
  std::vector<double> crop_scale{0.08, 1.0}, crop_ratio{3.0 / 4.0, 4.0 / 3.0};
  int64_t resize = 0, center_crop = 0;
  std::vector<float> color_jitter;  // brightness[, contrast, saturation]
  std::vector<float> mean, std;     // empty: the training file's statistics
  int workers = 0;                  // 0: automatic
};

// Registers the training flags (augmentation and evaluation transforms).
void add_training_data_flags(CLI::App& app, DataFlags& flags);
// Registers the evaluation flags only (--resize, --center-crop, --workers).
void add_evaluation_data_flags(CLI::App& app, DataFlags& flags);
// Whether the command line gave `flag` (false for flags `app` does not have).
std::function<bool(const char*)> given_on(const CLI::App& app);
// Takes a configuration's values for every flag `given` says the command line did not give.
void merge_data_settings(const nn::TrainSettings& settings, const std::function<bool(const char*)>& given, DataFlags& flags);
// The flags as TrainConfig text fields.
std::string data_config_text(const DataFlags& flags);

// Transforms for training (random) and evaluation (deterministic; see data::evaluation_transforms).
// Without mean and std flags, normalisation uses `stats_file`'s statistics (usually the training file).
data::TransformOptions training_transforms(const DataFlags& flags);
data::TransformOptions evaluation_transforms(const DataFlags& flags);
// Fills flags.mean and flags.std from a file's statistics where they are empty.
void default_normalisation(const data::Schema& stats_file, DataFlags& flags);
// Decode/transform threads for a file: the flag, else 1 for decoded data and, for encoded images,
// half of this rank's share of the cores (the other half trains).
int reader_workers(const DataFlags& flags, const data::Schema& file, int local_ranks);

}  // namespace horo::apps
