// horo-data: build and look at datasets in horo's HDF5 layout (docs/data-format.md).
//   horo-data convert --from idx --images train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz -o train.h5
//   horo-data convert --from csv --csv table.csv --label-column species -o table.h5
//   horo-data convert --from cifar10 cifar-10-batches-bin -o train.h5 [--split test]
//   horo-data convert --from folder photos/train -o train.h5 --encoded | --resize 64 [--skip-bad]
//   horo-data split train.h5 --train-out a.h5 --val-out b.h5 --val-fraction 0.1 --seed 1 [--classes 5,7 --relabel]
//   horo-data inspect train.h5
//   horo-data synth -o shapes.h5 --count 3000 --size 28 --seed 1
#include <CLI/CLI.hpp>

#include "apps/version.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "data/convert.h"
#include "data/image_folder.h"

namespace {

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// "done/total files  rate files/s  ETA": redrawn in place on a terminal, every tenth otherwise.
class ConvertProgress {
 public:
  void operator()(int64_t done, int64_t total) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const bool terminal = isatty(STDERR_FILENO) == 1;
    if (!terminal && done < total && done * 10 / total == shown_ * 10 / total) return;
    shown_ = done;
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    std::fprintf(stderr, "%sconvert: %lld/%lld files  %.0f files/s  %s %.0fs%s", terminal ? "\r\033[K" : "",
                 static_cast<long long>(done), static_cast<long long>(total), rate, done < total ? "ETA" : "took",
                 done < total ? eta : seconds, terminal && done < total ? "" : "\n");
    std::fflush(stderr);
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t shown_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"horo-data: convert, split, inspect and synthesise HDF5 datasets"};
  horo::apps::add_version_flag(app, "horo-data");
  app.require_subcommand(1);

  std::string from = "idx", images, labels, csv, label_column = "label", output, class_names_preset;
  std::vector<std::string> class_names;
  int gzip = 0;
  std::vector<std::string> inputs;
  std::string cifar_split = "train";
  bool coarse_labels = false;
  horo::data::ImageFolderOptions folder;
  auto* convert = app.add_subcommand("convert", "convert IDX, CSV, CIFAR or image-folder data to HDF5");
  convert->add_option("--from", from, "input format: idx, csv, cifar10, cifar100 or folder")
      ->check(CLI::IsMember({"idx", "csv", "cifar10", "cifar100", "folder"}))->capture_default_str();
  convert->add_option("input,--input", inputs, "cifar: the batches directory or .bin files; folder: the root (ROOT/<class>/<files>)");
  convert->add_option("--split", cifar_split, "cifar directory: train or test files")->check(CLI::IsMember({"train", "test"}))
      ->capture_default_str();
  convert->add_flag("--coarse-labels", coarse_labels, "cifar100: the 20 superclasses as labels");
  convert->add_option("--resize", folder.resize, "folder: decode, shorter side to S, centre crop: uint8 [N, 3, S, S]");
  convert->add_flag("--encoded", folder.encoded, "folder: store the files' own bytes, decoded (and augmented) by the reader");
  convert->add_flag("--skip-bad", folder.skip_bad, "folder: skip files that fail to decode, and list them");
  convert->add_option("--threads", folder.threads, "folder: decoding threads (0: every core)")->capture_default_str();
  convert->add_option("--images", images, "IDX images file (plain or .gz)");
  convert->add_option("--labels", labels, "IDX labels file (plain or .gz)");
  convert->add_option("--csv", csv, "CSV file with a header line");
  convert->add_option("--label-column", label_column, "CSV column holding the labels")->capture_default_str();
  convert->add_option("-o,--output", output, "HDF5 file to write")->required();
  convert->add_option("--gzip", gzip, "gzip level 1-9 (with the shuffle filter); 0: none")->check(CLI::Range(0, 9))->capture_default_str();
  convert->add_option("--class-names", class_names, "class names, in label order")->delimiter(',');
  convert->add_option("--class-preset", class_names_preset, "class names preset: fashion-mnist")
      ->check(CLI::IsMember({"fashion-mnist"}));

  std::string input, train_out, val_out;
  horo::data::SplitOptions split_options;
  auto* split = app.add_subcommand("split", "split a file into training and validation files, seeded");
  split->add_option("input", input, "HDF5 file to split")->required();
  split->add_option("--train-out", train_out, "training output")->required();
  split->add_option("--val-out", val_out, "validation output (needed when --val-fraction > 0)");
  split->add_option("--val-fraction", split_options.val_fraction, "share of samples for validation")->capture_default_str();
  split->add_option("--seed", split_options.seed, "seed of the split")->capture_default_str();
  split->add_option("--classes", split_options.classes, "keep only these classes, e.g. 5,7,8,9")->delimiter(',');
  split->add_flag("--relabel", split_options.relabel, "renumber the kept classes 0..K-1 in the order given");
  split->add_option("--limit-per-class", split_options.limit_per_class, "at most N training samples per class (-1: all)")
      ->capture_default_str();

  auto* inspect = app.add_subcommand("inspect", "print a file's schema, counts, label histogram and value range");
  inspect->add_option("input", input, "HDF5 file")->required();

  int64_t count = 3000, size = 28;
  uint64_t seed = 0;
  float noise = 0.2f;
  auto* synth = app.add_subcommand("synth", "write a seeded synthetic set of triangles, squares and circles");
  synth->add_option("-o,--output", output, "HDF5 file to write")->required();
  synth->add_option("--count", count, "number of images")->capture_default_str();
  synth->add_option("--size", size, "image side in pixels")->capture_default_str();
  synth->add_option("--seed", seed, "seed")->capture_default_str();
  synth->add_option("--noise", noise, "pixel noise amplitude in [0, 1]")->capture_default_str();

  CLI11_PARSE(app, argc, argv);
  try {
    if (convert->parsed()) {
      horo::data::WriteOptions options;
      options.gzip_level = gzip;
      options.class_names = class_names_preset == "fashion-mnist" ? kFashionClasses : class_names;
      if (from == "idx") {
        if (images.empty() || labels.empty()) throw horo::ValueError("convert --from idx needs --images and --labels");
        horo::data::convert_idx(images, labels, output, options);
      } else if (from == "cifar10" || from == "cifar100") {
        horo::data::CifarOptions cifar{.classes = from == "cifar10" ? 10 : 100, .split = cifar_split, .coarse_labels = coarse_labels};
        horo::data::convert_cifar(inputs, output, cifar, options);
      } else if (from == "folder") {
        if (inputs.size() != 1) throw horo::ValueError("convert --from folder needs one root folder (ROOT/<class>/<files>)");
        ConvertProgress progress;
        folder.progress = [&](int64_t done, int64_t total) { progress(done, total); };
        const auto summary = horo::data::convert_image_folder(inputs[0], output, folder, options);
        std::cout << summary.report();
      } else {
        if (csv.empty()) throw horo::ValueError("convert --from csv needs --csv");
        horo::data::convert_csv(csv, label_column, output, options);
      }
      std::cout << horo::data::inspect(output);
    } else if (split->parsed()) {
      const auto [train, val] = horo::data::split_dataset(input, train_out, val_out, split_options);
      std::printf("%s: %lld training samples; %s%lld validation samples\n", train_out.c_str(),
                  static_cast<long long>(train), val ? (val_out + ": ").c_str() : "", static_cast<long long>(val));
    } else if (inspect->parsed()) {
      std::cout << horo::data::inspect(input);
    } else if (synth->parsed()) {
      horo::Tensor x, y;
      horo::data::synth_shapes(count, size, seed, noise, x, y);
      horo::data::WriteOptions options;
      options.class_names = {"triangle", "square", "circle"};
      horo::data::channel_statistics(x, options.mean, options.std);
      horo::data::write_dataset_file(output, x, y, options);
      std::cout << horo::data::inspect(output);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-data: error: %s\n", e.what());
    return 1;
  }
}
