// horo-train's flags: what they hold, how they are registered, how a training configuration
// (--config, or a resumed checkpoint's) fills the ones the command line did not give, and the
// configuration text recorded in checkpoints.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "apps/data_flags.h"
#include "train/loop.h"
#include "nn/spec.h"

namespace horo::apps {

struct TrainFlags {
  std::string model = "cnn", data_dir = "/usr/share/datasets/fashion-mnist", train_file, val_file;
  std::string optimizer = "adam", schedule = "none", checkpoint_dir, resume, init_from, log_dir = "horo-logs";
  std::vector<std::string> freeze;
  training::TrainConfig config;
  int threads = 0, keep = 3, zero = 0;
  int64_t train_images = -1, test_images = -1, num_classes = 0, checkpoint_every = 0;
  DataFlags data;
  int64_t step_size = 1, warmup_steps = 0;
  float momentum = 0.9f, weight_decay = 0.0f, backbone_lr_scale = 1.0f;
  double gamma = 0.1;
  bool strict_init = false, nesterov = false, sync_bn = false, zero_init_residual = false, summary = false;
};

// Registers every flag on `app`; --config and --device land in config_file and device_name.
void add_train_flags(CLI::App& app, TrainFlags& f, std::string& config_file, std::string& device_name);
// Takes the configuration's value for every flag `given` says the command line did not give.
void merge_train_settings(const nn::TrainSettings& t, const std::function<bool(const char*)>& given, TrainFlags& f);
// The training configuration as text (message TrainConfig), stored in checkpoints beside the model.
std::string train_config_text(const TrainFlags& f);

}  // namespace horo::apps
