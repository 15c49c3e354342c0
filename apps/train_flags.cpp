#include "apps/train_flags.h"

#include <sstream>

namespace horo::apps {

void add_train_flags(CLI::App& app, TrainFlags& f, std::string& config_file, std::string& device_name) {
  app.add_option("--config", config_file, "training configuration (.prototxt, message TrainConfig); flags given override it");
  app.add_option("--model", f.model, "cnn (W1), mlp (W2), resnet20 (W5), resnet18 or a .prototxt file")->capture_default_str();
  app.add_flag("--summary", f.summary, "print every layer with its output shape, parameters and FLOPs, then exit");
  app.add_flag("--sync-bn", f.sync_bn, "BatchNorm statistics over every rank's batch (SyncBatchNorm)");
  app.add_option("--zero", f.zero, "ZeRO stage: 0 keeps the whole optimizer state on every rank, 1 shards it over the ranks "
                 "(each keeps 1/N; gradients reduce-scattered, parameters allgathered)")
      ->check(CLI::IsMember({0, 1}))->capture_default_str();
  app.add_flag("--zero-init-residual", f.zero_init_residual, "start the last BatchNorm of each residual branch at weight 0");
  app.add_option("--epochs", f.config.epochs, "number of epochs")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", f.config.batch, "mini-batch size (per rank)")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr", f.config.lr, "learning rate")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--optimizer", f.optimizer, "adam or sgd")->check(CLI::IsMember({"adam", "sgd"}))->capture_default_str();
  app.add_option("--momentum", f.momentum, "SGD momentum")->capture_default_str();
  app.add_flag("--nesterov", f.nesterov, "SGD with Nesterov momentum");
  app.add_option("--weight-decay", f.weight_decay, "weight decay")->capture_default_str();
  app.add_option("--schedule", f.schedule, "learning-rate schedule per epoch: none, step or cosine")
      ->check(CLI::IsMember({"none", "step", "cosine"}))->capture_default_str();
  app.add_option("--step-size", f.step_size, "epochs between decays (step schedule)")->capture_default_str();
  app.add_option("--gamma", f.gamma, "decay factor (step schedule)")->capture_default_str();
  app.add_option("--warmup-epochs", f.warmup_steps, "linear warm-up epochs before the schedule")->capture_default_str();
  app.add_option("--device", device_name, "cpu, cuda or cuda:N")->capture_default_str();
  app.add_option("--seed", f.config.seed, "seed of initialisation, shuffling and dropout")->capture_default_str();
  app.add_option("--threads", f.threads, "CPU threads (0: HORO_NUM_THREADS, else the cores shared by the host's ranks)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-steps", f.config.max_steps, "stop after this many optimizer steps (-1: no limit)")->capture_default_str();
  app.add_option("--data", f.data_dir, "directory with the IDX files (plain or .gz)")->capture_default_str();
  app.add_option("--train-images", f.train_images, "use only the first N IDX training images (-1: all)")->capture_default_str();
  app.add_option("--test-images", f.test_images, "use only the first N IDX test images (-1: all)")->capture_default_str();
  app.add_option("--train", f.train_file, "HDF5 training set (docs/data-format.md) instead of the IDX files");
  app.add_option("--val", f.val_file, "HDF5 validation set, evaluated after each epoch");
  add_training_data_flags(app, f.data);
  app.add_option("--checkpoint-dir", f.checkpoint_dir, "write checkpoints (ckpt-<step>.h5) here");
  app.add_option("--checkpoint-every", f.checkpoint_every, "steps between checkpoints (0: at the end of each epoch)")->capture_default_str();
  app.add_option("--keep", f.keep, "checkpoints to keep")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--resume", f.resume, "continue a run from this checkpoint ('latest': the newest in --checkpoint-dir)");
  app.add_option("--init-from", f.init_from, "initialise from a checkpoint's tensors by name (transfer learning)");
  app.add_flag("--strict-init", f.strict_init, "with --init-from, fail unless every tensor matches");
  app.add_option("--freeze", f.freeze, "freeze parameters by glob or prefix, e.g. 'features.*' (repeatable)");
  app.add_option("--num-classes", f.num_classes, "classes of a new head (0: the data's class count)")->capture_default_str();
  app.add_option("--backbone-lr-scale", f.backbone_lr_scale, "learning-rate factor for everything but the head")->capture_default_str();
  app.add_option("--log-dir", f.log_dir, "metrics.csv, metrics.jsonl and report.html go here ('' to disable)")->capture_default_str();
}

void merge_train_settings(const nn::TrainSettings& t, const std::function<bool(const char*)>& given, TrainFlags& f) {
  auto unset = [&](const char* flag) { return !given(flag); };
  if (t.has_optimizer) {
    if (unset("--optimizer")) f.optimizer = t.optimizer;
    if (unset("--lr")) f.config.lr = t.lr;
    if (unset("--momentum") && t.optimizer == "sgd") f.momentum = t.momentum;
    if (unset("--nesterov") && t.optimizer == "sgd") f.nesterov = t.nesterov;
    if (unset("--weight-decay")) f.weight_decay = t.weight_decay;
  }
  if (t.has_schedule && unset("--schedule")) {
    f.schedule = t.schedule;
    f.step_size = t.step_size;
    f.gamma = t.gamma;
    f.warmup_steps = t.warmup_epochs;
  }
  if (t.has_batch && unset("--batch")) f.config.batch = t.batch;
  if (t.has_epochs && unset("--epochs")) f.config.epochs = t.epochs;
  if (t.has_seed && unset("--seed")) f.config.seed = t.seed;
  if (!t.train.empty() && unset("--train")) f.train_file = t.train;
  if (!t.val.empty() && unset("--val")) f.val_file = t.val;
  merge_data_settings(t, given, f.data);
}

// The training configuration as text, stored in checkpoints beside the model specification.
std::string train_config_text(const TrainFlags& f) {
  std::ostringstream c;
  c.precision(9);  // floats read back exactly: a resumed run trains with the same values
  c << "optimizer { " << (f.optimizer == "sgd" ? "sgd" : "adam") << " { lr: " << f.config.lr;
  if (f.optimizer == "sgd") c << " momentum: " << f.momentum << " nesterov: " << (f.nesterov ? "true" : "false");
  c << " weight_decay: " << f.weight_decay << " } }\n";
  if (f.schedule == "step") c << "schedule { step_size: " << f.step_size << " gamma: " << f.gamma << " warmup_steps: " << f.warmup_steps << " }\n";
  if (f.schedule == "cosine") c << "schedule { cosine: true warmup_steps: " << f.warmup_steps << " }\n";
  c << "batch: " << f.config.batch << "\nepochs: " << f.config.epochs << "\nseed: " << f.config.seed << "\n";
  if (!f.train_file.empty()) c << "train: \"" << f.train_file << "\"\n";
  if (!f.val_file.empty()) c << "val: \"" << f.val_file << "\"\n";
  c << data_config_text(f.data);
  return nn::canonical_train_config(c.str(), "train config");
}

}  // namespace horo::apps
