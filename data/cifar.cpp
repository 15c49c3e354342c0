// CIFAR-10 and CIFAR-100 binary files into horo's HDF5 layout (data/image_folder.h).
#include <algorithm>
#include <filesystem>
#include <fstream>

#include "data/convert.h"
#include "data/image_folder.h"
#include "data/image_codec.h"

namespace horo::data {

namespace {

namespace fs = std::filesystem;

constexpr int64_t kPixels = 3 * 32 * 32;

const std::vector<std::string> kCifar10Names = {"airplane", "automobile", "bird", "cat", "deer",
                                                "dog",      "frog",       "horse", "ship", "truck"};
const std::vector<std::string> kCifar100Coarse = {
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
    "household_furniture", "insects", "large_carnivores", "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals",
    "trees", "vehicles_1", "vehicles_2"};
const std::vector<std::string> kCifar100Fine = {
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle", "bowl", "boy", "bridge",
    "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud",
    "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl",
    "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel",
    "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor", "train",
    "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm"};

// Non-empty lines of a names file, or `fallback` when the file is absent.
std::vector<std::string> names_file(const fs::path& path, const std::vector<std::string>& fallback) {
  std::ifstream in(path);
  if (!in.good()) return fallback;
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) names.push_back(line);
  }
  HORO_CHECK(names.size() == fallback.size(), IOError, path.string(), ": expected ", fallback.size(), " class names, found ",
             names.size());
  return names;
}

}  // namespace

int64_t convert_cifar(const std::vector<std::string>& inputs, const std::string& out, const CifarOptions& o, WriteOptions write) {
  HORO_CHECK(o.classes == 10 || o.classes == 100, ValueError, "CIFAR has 10 or 100 classes, not ", o.classes);
  HORO_CHECK(o.split == "train" || o.split == "test", ValueError, "CIFAR split must be 'train' or 'test', got '", o.split, "'");
  HORO_CHECK(!o.coarse_labels || o.classes == 100, ValueError, "coarse labels are CIFAR-100's");
  HORO_CHECK(!inputs.empty(), ValueError, "convert --from cifar", o.classes, ": no input files or directory given");
  std::vector<std::string> files = inputs;
  fs::path directory;
  if (inputs.size() == 1 && fs::is_directory(inputs[0])) {
    directory = inputs[0];
    files.clear();
    if (o.classes == 10 && o.split == "train")
      for (int b = 1; b <= 5; ++b) files.push_back((directory / ("data_batch_" + std::to_string(b) + ".bin")).string());
    else files.push_back((directory / (o.classes == 10 ? "test_batch.bin" : o.split + ".bin")).string());
  } else if (!inputs.empty()) {
    directory = fs::path(inputs[0]).parent_path();
  }
  std::vector<std::string> names;
  if (o.classes == 10) names = names_file(directory / "batches.meta.txt", kCifar10Names);
  else if (o.coarse_labels) names = names_file(directory / "coarse_label_names.txt", kCifar100Coarse);
  else names = names_file(directory / "fine_label_names.txt", kCifar100Fine);
  if (write.class_names.empty()) write.class_names = names;
  const int64_t label_bytes = o.classes == 10 ? 1 : 2, record = label_bytes + kPixels;
  const int64_t label_offset = o.classes == 100 && !o.coarse_labels ? 1 : 0;
  const int64_t classes = o.coarse_labels ? 20 : o.classes;

  std::vector<uint8_t> pixels;
  std::vector<int64_t> labels;
  for (const std::string& file : files) {
    const std::vector<uint8_t> bytes = read_file_bytes(file);
    const int64_t size = static_cast<int64_t>(bytes.size());
    HORO_CHECK(size > 0 && size % record == 0, IOError, file, ": ", size, " bytes is not a whole number of ", record,
               "-byte CIFAR-", o.classes, " records (", label_bytes, " label byte", label_bytes > 1 ? "s" : "", " + 3072 pixels)");
    for (int64_t r = 0; r < size / record; ++r) {
      const uint8_t* at = bytes.data() + r * record;
      const int64_t label = at[label_offset];
      HORO_CHECK(label < classes, IOError, file, ": record ", r, " has label ", label, ", outside CIFAR-", o.classes,
                 o.coarse_labels ? " (coarse)" : "", "'s [0, ", classes, ")");
      labels.push_back(label);
      pixels.insert(pixels.end(), at + label_bytes, at + record);
    }
  }
  const int64_t n = static_cast<int64_t>(labels.size());
  Tensor images = Tensor::empty({n, 3, 32, 32}, DType::UInt8);
  std::copy(pixels.begin(), pixels.end(), images.data<uint8_t>());
  if (write.mean.empty()) channel_statistics(images, write.mean, write.std);
  write_dataset_file(out, images, Tensor::from_vector(labels, {n}), write);
  return n;
}

}  // namespace horo::data
