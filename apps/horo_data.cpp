// horo-data: build and look at datasets in horo's HDF5 layout (docs/data-format.md).
//   horo-data convert --from idx --images train-images-idx3-ubyte.gz --labels train-labels-idx1-ubyte.gz -o train.h5
//   horo-data convert --from csv --csv table.csv --label-column species -o table.h5
//   horo-data split train.h5 --train-out a.h5 --val-out b.h5 --val-fraction 0.1 --seed 1 [--classes 5,7 --relabel]
//   horo-data inspect train.h5
//   horo-data synth -o shapes.h5 --count 3000 --size 28 --seed 1
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "data/convert.h"

namespace {

const std::vector<std::string> kFashionClasses = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                  "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"horo-data: convert, split, inspect and synthesise HDF5 datasets"};
  app.require_subcommand(1);

  std::string from = "idx", images, labels, csv, label_column = "label", output, class_names_preset;
  std::vector<std::string> class_names;
  int gzip = 0;
  auto* convert = app.add_subcommand("convert", "convert IDX or CSV files to HDF5");
  convert->add_option("--from", from, "input format: idx or csv")->check(CLI::IsMember({"idx", "csv"}))->capture_default_str();
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
