// horo-train: trains W1 (cnn) or W2 (mlp) on Fashion-MNIST.
//   horo-train --model cnn --epochs 10 --batch 64 --lr 1e-3
//   horo-train --model cnn --train train.h5 --val test.h5 --hflip --crop-padding 2
//   mpirun -np 4 horo-train --model cnn            (data-parallel: each rank its own shard)
// Prints one line per epoch and, last, `epochs=E train_images_per_s=R test_accuracy=A` (rank 0 only;
// under mpirun the rate is the total over ranks).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "apps/trainer.h"
#include "dist/timeline.h"
#include "kernels/parallel.h"
#include "nn/models.h"

int main(int argc, char** argv) {
  std::string model_name = "cnn";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  horo::apps::TrainConfig config;
  int threads = 0;
  int64_t train_images = -1, test_images = -1, crop_padding = 0;
  std::string train_file, val_file;
  bool hflip = false;

  CLI::App app{"horo-train: train a reference model on Fashion-MNIST"};
  app.add_option("--model", model_name, "model: cnn (W1) or mlp (W2)")->check(CLI::IsMember({"cnn", "mlp"}))->capture_default_str();
  app.add_option("--epochs", config.epochs, "number of epochs")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--batch", config.batch, "mini-batch size")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--lr", config.lr, "Adam learning rate")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--seed", config.seed, "seed of initialisation, shuffling and dropout")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: HORO_NUM_THREADS, else all cores)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-steps", config.max_steps, "stop after this many optimizer steps (-1: no limit)")->capture_default_str();
  app.add_option("--data", data_dir, "directory with the IDX files (plain or .gz)")->capture_default_str();
  app.add_option("--train-images", train_images, "use only the first N training images (-1: all)")->capture_default_str();
  app.add_option("--test-images", test_images, "use only the first N test images (-1: all)")->capture_default_str();
  app.add_option("--train", train_file, "HDF5 training set (docs/data-format.md) instead of the IDX files");
  app.add_option("--val", val_file, "HDF5 validation set, evaluated after each epoch");
  app.add_flag("--hflip", hflip, "random horizontal flips (HDF5 input)");
  app.add_option("--crop-padding", crop_padding, "random crops after zero padding by N pixels (HDF5 input)")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  int rank = 0;
  try {
    auto comm = horo::dist::make_communicator();
    rank = comm->rank();
    const int world = comm->size();
    const bool leader = rank == 0;
    // Ranks sharing a host share its cores unless told otherwise.
    if (threads > 0) horo::set_num_threads(threads);
    else if (!std::getenv("HORO_NUM_THREADS") && comm->local_size() > 1)
      horo::set_num_threads(std::max(1, horo::get_num_threads() / comm->local_size()));
    if (const char* path = std::getenv("HORO_TIMELINE"); path && *path) horo::dist::Timeline::instance().enable(path, rank, world);
    horo::manual_seed(config.seed);
    std::unique_ptr<horo::apps::BatchSource> train_batches;
    std::function<double()> evaluate;
    horo::data::ImageDataset test_set;
    int64_t train_count = 0, test_count = 0, classes = 10;
    if (!train_file.empty()) {
      auto options = horo::apps::reader_options(train_file, config.batch, config.seed, config.epochs);
      options.rank = rank;
      options.world = world;
      options.transforms.random_hflip = hflip;
      options.transforms.random_crop_padding = crop_padding;
      auto source = std::make_unique<horo::apps::ReaderSource>(options);
      train_count = source->batches_per_epoch() * config.batch * world;
      if (source->schema().num_classes > 0) classes = source->schema().num_classes;  // the head fits the data
      train_batches = std::move(source);
    } else {
      auto train_set = horo::data::take(horo::data::load_mnist_split(data_dir, true), train_images);
      train_count = train_set.size();
      train_batches = std::make_unique<horo::apps::MemorySource>(train_set, config.batch, config.seed, rank, world);
    }
    auto model = horo::nn::make_model(model_name, classes);
    // Every rank starts from rank 0's weights; evaluation runs on rank 0 alone.
    horo::dist::broadcast_parameters(*comm, *model);
    if (!leader) {
    } else if (!val_file.empty()) {
      auto options = horo::apps::reader_options(val_file, 1000, 0, 1);
      options.shuffle = false;
      options.remainder = horo::data::Remainder::Keep;
      test_count = horo::data::H5DatasetFile(val_file).schema().count;
      evaluate = [options, &model] {
        horo::apps::ReaderSource batches(options);
        return horo::apps::evaluate(*model, batches);
      };
    } else if (train_file.empty()) {
      test_set = horo::data::take(horo::data::load_mnist_split(data_dir, false), test_images);
      test_count = test_set.size();
      evaluate = [&] { return horo::apps::evaluate(*model, test_set); };
    }
    horo::optim::Adam optimizer(model->parameters(), {.lr = config.lr});
    std::unique_ptr<horo::dist::GradientReducer> reducer;
    if (world > 1) reducer = std::make_unique<horo::dist::GradientReducer>(*comm, model->named_parameters());
    if (leader) std::printf("horo-train: model=%s params=%lld train=%lld test=%lld batch=%lld lr=%g threads=%d seed=%llu\n",
                model_name.c_str(), static_cast<long long>(model->parameter_count()),
                static_cast<long long>(train_count), static_cast<long long>(test_count),
                static_cast<long long>(config.batch), static_cast<double>(config.lr), horo::get_num_threads(),
                static_cast<unsigned long long>(config.seed));
    std::fflush(stdout);
    const auto result = horo::apps::train(*model, optimizer, *train_batches, evaluate, config,
        [&](const horo::apps::EpochReport& r) {
          if (!leader) return;
          std::printf("epoch %lld/%lld steps=%lld loss=%.4f train_acc=%.4f test_acc=%.4f images/s=%.0f%s "
                      "data_wait=%.1f%%%s time=%.1fs\n",
                      static_cast<long long>(r.epoch), static_cast<long long>(config.epochs),
                      static_cast<long long>(r.steps), r.loss, r.train_accuracy, r.test_accuracy,
                      r.images_per_s * world, world > 1 ? horo::detail::concat(" (per rank ", static_cast<long long>(r.images_per_s), ")").c_str() : "",
                      100.0 * r.data_wait_share,
                      world > 1 ? horo::detail::concat(" comm_wait=", static_cast<int>(1000 * r.comm_wait_share) / 10.0, "%").c_str() : "",
                      r.seconds);
          std::fflush(stdout);
        }, reducer.get());
    // The total rate is the sum of the ranks' own rates.
    float total_rate = static_cast<float>(result.train_images_per_s);
    comm->allreduce(&total_rate, 1, horo::dist::ReduceOp::Sum);
    horo::dist::Timeline::instance().flush();
    if (!leader) return 0;
    if (evaluate) {
      std::printf("epochs=%lld train_images_per_s=%.1f test_accuracy=%.4f\n", static_cast<long long>(result.epochs),
                  static_cast<double>(total_rate), result.test_accuracy);
    } else {
      std::printf("epochs=%lld train_images_per_s=%.1f test_accuracy=nan\n", static_cast<long long>(result.epochs),
                  static_cast<double>(total_rate));
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-train: error%s: %s\n", horo::dist::launched_by_mpi() ? horo::detail::concat(" (rank ", rank, ")").c_str() : "", e.what());
    std::fflush(stderr);
    // Under mpirun the other ranks may be waiting for this one in a collective: end them all.
    if (horo::dist::launched_by_mpi()) horo::dist::abort_job(1);
    return 1;
  }
}
