// horo-eval: accuracy, per-class accuracy and the confusion matrix of a checkpoint on an HDF5 dataset.
//   horo-eval --checkpoint ckpt.h5 --data test.h5 [--json] [--resize 256 --center-crop 224]
// The data is cropped and normalised as the checkpoint's training configuration says evaluation
// data should be (the training file's mean and std; Resize + CenterCrop after random resized crops).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "apps/version.h"
#include "apps/data_flags.h"
#include "train/loop.h"
#include "nn/checkpoint.h"
#include "nn/spec.h"
#include "tensor/hdf5.h"

int main(int argc, char** argv) {
  std::string checkpoint_path, data_path;
  int64_t batch = 1000;
  bool json = false;
  std::string logits_path;
  bool save_inputs = false;
  CLI::App app{"horo-eval: evaluate a checkpoint on an HDF5 dataset"};
  app.add_option("--checkpoint", checkpoint_path, "checkpoint written by horo-train")->required();
  app.add_option("--data", data_path, "HDF5 dataset with labels (docs/data-format.md)")->required();
  app.add_option("--batch", batch, "evaluation batch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_flag("--json", json, "print one JSON object (accuracy, per_class, confusion) instead of tables");
  app.add_option("--save-logits", logits_path, "also write the logits [N, classes] (file order) to this HDF5 file");
  app.add_flag("--save-inputs", save_inputs,
               "with --save-logits, also write the model's inputs as /inputs (after resizing, cropping and normalisation), "
               "to check another runtime (an exported ONNX model) against these logits")
      ->needs("--save-logits");
  horo::apps::DataFlags data_flags;
  horo::apps::add_evaluation_data_flags(app, data_flags);
  horo::apps::add_version_flag(app, "horo-eval");
  CLI11_PARSE(app, argc, argv);
  try {
    const auto checkpoint = horo::nn::read_checkpoint(checkpoint_path);
    auto built = horo::nn::build_model_from_checkpoint(checkpoint);
    auto options = horo::training::reader_options(data_path, batch, 0, 1);
    if (!checkpoint.train_config.empty()) {
      const auto settings = horo::nn::parse_train_config(checkpoint.train_config, checkpoint_path + ":train_config");
      horo::apps::merge_data_settings(settings, horo::apps::given_on(app), data_flags);
    }
    // Without a recorded normalisation (older checkpoints), the data file's own statistics.
    horo::apps::default_normalisation(horo::data::H5DatasetFile(data_path).schema(), data_flags);
    options.transforms = horo::apps::evaluation_transforms(data_flags);
    options.workers = horo::apps::reader_workers(data_flags, horo::data::H5DatasetFile(data_path).schema(), 1);
    options.shuffle = false;
    options.remainder = horo::data::Remainder::Keep;
    horo::data::Reader reader(options);
    HORO_CHECK(reader.schema().has_labels, horo::ValueError, data_path, ": has no labels to evaluate against");
    HORO_CHECK(reader.sample_shape() == built.input_shape, horo::ShapeError, checkpoint_path, ": the model takes samples ",
               horo::shape_str(built.input_shape), " but the batches of ", data_path, " are ", horo::shape_str(reader.sample_shape()),
               " (give --resize / --center-crop to match)");
    built.model->eval();
    horo::autograd::NoGradGuard no_grad;
    int64_t classes = 0;
    std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
    std::vector<horo::Tensor> all_logits, all_inputs;
    while (auto b = reader.next()) {
      const horo::Tensor logits = built.model->forward(b->data);
      if (!logits_path.empty()) all_logits.push_back(logits);
      if (save_inputs) all_inputs.push_back(b->data);
      if (confusion.empty()) {
        classes = logits.size(1);
        HORO_CHECK(reader.schema().num_classes <= classes, horo::ValueError, data_path, " has ", reader.schema().num_classes,
                   " classes but the model predicts ", classes);
        confusion.assign(static_cast<size_t>(classes), std::vector<int64_t>(static_cast<size_t>(classes), 0));
      }
      const horo::Tensor predicted = horo::ops::argmax_rows(logits);
      for (int64_t i = 0; i < b->labels.numel(); ++i) {
        ++confusion[static_cast<size_t>(b->labels.data<int64_t>()[i])][static_cast<size_t>(predicted.data<int64_t>()[i])];
      }
    }
    int64_t correct = 0, total = 0;
    std::vector<double> per_class(static_cast<size_t>(classes), 0.0);
    for (int64_t t = 0; t < classes; ++t) {
      int64_t row = 0;
      for (int64_t p = 0; p < classes; ++p) row += confusion[t][p];
      correct += confusion[t][t];
      total += row;
      per_class[t] = row ? static_cast<double>(confusion[t][t]) / row : 0.0;
    }
    const double accuracy = total ? static_cast<double>(correct) / total : 0.0;
    if (!logits_path.empty()) {
      // The batches one under another, in file order.
      const auto stack = [total](const std::vector<horo::Tensor>& parts) {
        horo::Shape shape = parts.front().shape();
        shape[0] = total;
        horo::Tensor stacked = horo::Tensor::empty(shape);
        int64_t row = 0;
        for (const auto& part : parts) {
          stacked.slice(row, row + part.size(0)).copy_from(part);
          row += part.size(0);
        }
        return stacked;
      };
      horo::h5::Handle file = horo::h5::create_file(logits_path);
      if (total > 0) {
        horo::h5::write_tensor(file.get(), "logits", stack(all_logits), logits_path);
        if (save_inputs) horo::h5::write_tensor(file.get(), "inputs", stack(all_inputs), logits_path);
      }
    }
    const auto& names = reader.schema().class_names;
    if (json) {
      std::printf("{\"accuracy\":%.6f,\"samples\":%lld,\"per_class\":[", accuracy, static_cast<long long>(total));
      for (int64_t c = 0; c < classes; ++c) std::printf("%s%.6f", c ? "," : "", per_class[c]);
      std::printf("],\"confusion\":[");
      for (int64_t t = 0; t < classes; ++t) {
        std::printf("%s[", t ? "," : "");
        for (int64_t p = 0; p < classes; ++p) std::printf("%s%lld", p ? "," : "", static_cast<long long>(confusion[t][p]));
        std::printf("]");
      }
      std::printf("]}\n");
      return 0;
    }
    std::printf("%s on %s: accuracy %.4f (%lld of %lld)\n", checkpoint_path.c_str(), data_path.c_str(), accuracy,
                static_cast<long long>(correct), static_cast<long long>(total));
    std::printf("per class:\n");
    for (int64_t c = 0; c < classes; ++c) {
      std::printf("  %2lld %-14s %.4f\n", static_cast<long long>(c), c < static_cast<int64_t>(names.size()) ? names[c].c_str() : "",
                  per_class[c]);
    }
    std::printf("confusion matrix (rows: true class, columns: predicted):\n");
    for (int64_t t = 0; t < classes; ++t) {
      std::printf("  %2lld", static_cast<long long>(t));
      for (int64_t p = 0; p < classes; ++p) std::printf(" %6lld", static_cast<long long>(confusion[t][p]));
      std::printf("\n");
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-eval: error: %s\n", e.what());
    return 1;
  }
}
