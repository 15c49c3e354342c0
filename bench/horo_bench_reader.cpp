// W4 and W6: shuffled, sharded reading of an HDF5 dataset with transforms, beside the raw read rate
// of the same bytes. Prints samples/s for both and the process's peak memory.
//   horo-bench-reader --file train.h5 [--world 2] [--rank 0] [--batch 64] [--epochs 2] [--prefetch-mib 64]
//                     [--workers 1] [--transforms none|normalize|augment|imagenet] [--size 224]
// imagenet: RandomResizedCrop(size), horizontal flip, ImageNet's mean and std (W6, encoded JPEGs).
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>

#include "data/reader.h"

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}
}  // namespace

int main(int argc, char** argv) {
  horo::data::ReaderOptions o;
  std::string transforms = "augment";
  int64_t prefetch_mib = 64, cache_mib = 64, size = 224;
  CLI::App app{"horo-bench-reader: W4 reader throughput"};
  app.add_option("--file", o.path, "HDF5 dataset")->required();
  app.add_option("--world", o.world, "shards (ranks)")->capture_default_str();
  app.add_option("--rank", o.rank, "this shard")->capture_default_str();
  app.add_option("--batch", o.batch, "batch size")->capture_default_str();
  app.add_option("--epochs", o.num_epochs, "epochs to read")->capture_default_str();
  app.add_option("--prefetch-mib", prefetch_mib, "prefetch queue bound in MiB")->capture_default_str();
  app.add_option("--cache-mib", cache_mib, "block cache bound in MiB")->capture_default_str();
  app.add_option("--workers", o.workers, "transform threads")->capture_default_str();
  app.add_option("--transforms", transforms,
                 "none, normalize, augment (normalize + flip + crop 2) or imagenet (random resized crop + flip + normalize)")
      ->check(CLI::IsMember({"none", "normalize", "augment", "imagenet"}))->capture_default_str();
  app.add_option("--size", size, "imagenet: the crop's side")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    o.prefetch_bytes = static_cast<size_t>(prefetch_mib) << 20;
    o.cache_bytes = static_cast<size_t>(cache_mib) << 20;
    if (transforms != "none") {
      o.transforms.mean = {0.286f};
      o.transforms.std = {0.353f};
    }
    if (transforms == "augment") {
      o.transforms.random_hflip = true;
      o.transforms.random_crop_padding = 2;
    }
    if (transforms == "imagenet") {
      o.transforms.mean = {0.485f, 0.456f, 0.406f};
      o.transforms.std = {0.229f, 0.224f, 0.225f};
      o.transforms.random_hflip = true;
      o.transforms.random_resized_crop.size = size;
    }
    // Raw: the same bytes read block by block, in file order, from the page cache (a warm-up pass
    // first). Reading block by block keeps this pass's memory small too.
    const horo::data::H5DatasetFile file(o.path);
    const bool encoded = file.schema().encoded;
    std::vector<uint8_t> block(encoded ? 0 : static_cast<size_t>(file.block_samples() * file.schema().sample_bytes()));
    size_t file_bytes = 0;
    auto read_everything = [&] {
      file_bytes = 0;
      if (encoded) {
        for (int64_t i = 0; i < file.schema().count; ++i) {
          file.read_encoded(i, block);
          file_bytes += block.size();
        }
        return;
      }
      for (int64_t b = 0; b < file.block_count(); ++b) file.read_block(b, block.data());
      file_bytes = static_cast<size_t>(file.schema().count * file.schema().sample_bytes());
    };
    read_everything();
    auto start = std::chrono::steady_clock::now();
    read_everything();
    const double raw_seconds = seconds_since(start);
    const double raw_rate = static_cast<double>(file.schema().count) / raw_seconds;
    const double file_mib = static_cast<double>(file_bytes) / (1 << 20);

    start = std::chrono::steady_clock::now();
    horo::data::Reader reader(o);
    int64_t samples = 0;
    double checksum = 0;
    while (auto batch = reader.next()) {
      samples += batch->data.size(0);
      checksum += batch->data.data<float>()[0];
    }
    const double seconds = seconds_since(start);
    std::printf("file=%s samples=%lld world=%lld rank=%lld batch=%lld transforms=%s workers=%d prefetch_mib=%lld\n",
                o.path.c_str(), static_cast<long long>(samples), static_cast<long long>(o.world),
                static_cast<long long>(o.rank), static_cast<long long>(o.batch), transforms.c_str(), o.workers,
                static_cast<long long>(prefetch_mib));
    std::printf("reader_samples_per_s=%.0f raw_samples_per_s=%.0f raw_mib_per_s=%.0f wait_s=%.3f peak_rss_mib=%.0f "
                "file_mib=%.0f in_flight=%lld checksum=%.3f\n",
                static_cast<double>(samples) / seconds, raw_rate,
                file_mib / raw_seconds, reader.wait_seconds(), peak_rss_mib(), file_mib,
                static_cast<long long>(reader.max_in_flight()), checksum);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "horo-bench-reader: error: %s\n", e.what());
    return 1;
  }
}
