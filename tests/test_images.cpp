// Image data: CIFAR conversion, encoded datasets through the reader (determinism over threads, ranks
// and resumption; errors that name the file), RandomResizedCrop's sampling rule, torchvision's
// Resize + CenterCrop arithmetic and ColorJitter.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "data/dataset_writer.h"
#include "data/image_folder.h"
#include "data/reader.h"
#include "tests/test_util.h"

namespace horo::data {
namespace {

using horo::testing::expect_error;
using horo::testing::random_int;

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("horo_images_" + std::to_string(::getpid()) + "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::filesystem::path dir_;
};

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A PNG of random RGB pixels (zlib-compressed rows, filter 0), enough for the reader's tests.
std::vector<uint8_t> random_png(int64_t height, int64_t width) {
  auto chunk = [](std::vector<uint8_t>& out, const char* kind, const std::vector<uint8_t>& data) {
    const uint32_t n = static_cast<uint32_t>(data.size());
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(n >> s));
    std::vector<uint8_t> body(kind, kind + 4);
    body.insert(body.end(), data.begin(), data.end());
    out.insert(out.end(), body.begin(), body.end());
    const uint32_t crc = static_cast<uint32_t>(crc32(0, body.data(), static_cast<uInt>(body.size())));
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(crc >> s));
  };
  std::vector<uint8_t> rows;
  for (int64_t y = 0; y < height; ++y) {
    rows.push_back(0);
    for (int64_t x = 0; x < 3 * width; ++x) rows.push_back(static_cast<uint8_t>(random_int(0, 255)));
  }
  uLongf packed_size = compressBound(static_cast<uLong>(rows.size()));
  std::vector<uint8_t> packed(packed_size);
  compress(packed.data(), &packed_size, rows.data(), static_cast<uLong>(rows.size()));
  packed.resize(packed_size);
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> header;
  for (int64_t v : {width, height})
    for (int s = 24; s >= 0; s -= 8) header.push_back(static_cast<uint8_t>(v >> s));
  header.insert(header.end(), {8, 2, 0, 0, 0});
  chunk(png, "IHDR", header);
  chunk(png, "IDAT", packed);
  chunk(png, "IEND", {});
  return png;
}

// An encoded file of `n` random PNGs of random sizes, labels i % 3; returns the images' sizes.
std::vector<std::pair<int64_t, int64_t>> write_encoded(const std::string& file, int64_t n, int64_t broken = -1) {
  WriteOptions options;
  options.class_names = {"a", "b", "c"};
  options.mean = {0.5, 0.5, 0.5};
  options.std = {0.25, 0.25, 0.25};
  DatasetWriter writer(file, true, options);
  std::vector<std::pair<int64_t, int64_t>> sizes;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t h = random_int(12, 40), w = random_int(12, 40);
    auto png = random_png(h, w);
    if (i == broken) png.resize(png.size() / 2);
    writer.append_encoded(png.data(), png.size(), h, w, i % 3, "class/" + std::to_string(i) + ".png");
    sizes.emplace_back(h, w);
  }
  writer.finish();
  return sizes;
}

std::vector<int64_t> ints(const Tensor& t) { return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel()); }

std::vector<ReaderBatch> read_all(ReaderOptions o) {
  Reader reader(o);
  std::vector<ReaderBatch> out;
  while (auto b = reader.next()) out.push_back(std::move(*b));
  return out;
}

ReaderOptions augmenting(const std::string& file) {
  ReaderOptions o;
  o.path = file;
  o.batch = 4;
  o.num_epochs = 2;
  o.seed = static_cast<uint64_t>(random_int(0, 1 << 20));
  o.transforms.random_resized_crop.size = 16;
  o.transforms.random_hflip = true;
  o.transforms.color_jitter = {0.4f, 0.4f, 0.4f};
  o.transforms.mean = {0.5f, 0.4f, 0.3f};
  o.transforms.std = {0.2f, 0.25f, 0.3f};
  return o;
}

TEST_F(ImageTest, CifarTenAndHundredRoundTripByteForByte) {
  // CIFAR-10: five training batches in a directory, records <label><3072 bytes>.
  std::filesystem::create_directories(path("c10"));
  std::vector<uint8_t> expected_pixels;
  std::vector<int64_t> expected_labels;
  for (int b = 1; b <= 5; ++b) {
    std::vector<uint8_t> file;
    for (int r = 0; r < 3; ++r) {
      const int64_t label = random_int(0, 9);
      file.push_back(static_cast<uint8_t>(label));
      expected_labels.push_back(label);
      for (int k = 0; k < 3072; ++k) {
        file.push_back(static_cast<uint8_t>(random_int(0, 255)));
        expected_pixels.push_back(file.back());
      }
    }
    write_bytes(path("c10/data_batch_" + std::to_string(b) + ".bin"), file);
  }
  EXPECT_EQ(convert_cifar({path("c10")}, path("c10.h5"), {.classes = 10}, {}), 15);
  H5DatasetFile c10(path("c10.h5"));
  EXPECT_EQ(c10.schema().sample_shape, (Shape{3, 32, 32}));
  EXPECT_EQ(c10.labels(), expected_labels);
  EXPECT_EQ(c10.schema().class_names.front(), "airplane");
  EXPECT_EQ(c10.schema().mean.size(), 3u);
  const Tensor images = c10.read_all();
  EXPECT_TRUE(std::equal(expected_pixels.begin(), expected_pixels.end(), images.data<uint8_t>()));

  // CIFAR-100: <coarse><fine><3072 bytes>; fine labels by default, coarse on request.
  std::vector<uint8_t> file;
  std::vector<int64_t> coarse, fine;
  for (int r = 0; r < 4; ++r) {
    coarse.push_back(random_int(0, 19));
    fine.push_back(random_int(0, 99));
    file.push_back(static_cast<uint8_t>(coarse.back()));
    file.push_back(static_cast<uint8_t>(fine.back()));
    for (int k = 0; k < 3072; ++k) file.push_back(static_cast<uint8_t>(random_int(0, 255)));
  }
  write_bytes(path("train.bin"), file);
  convert_cifar({path("train.bin")}, path("fine.h5"), {.classes = 100}, {});
  convert_cifar({path("train.bin")}, path("coarse.h5"), {.classes = 100, .coarse_labels = true}, {});
  EXPECT_EQ(H5DatasetFile(path("fine.h5")).labels(), fine);
  EXPECT_EQ(H5DatasetFile(path("coarse.h5")).labels(), coarse);
  EXPECT_EQ(H5DatasetFile(path("fine.h5")).schema().class_names.size(), 100u);
  EXPECT_EQ(H5DatasetFile(path("coarse.h5")).schema().class_names.size(), 20u);

  // Wrong record sizes and labels are refused, naming the file.
  file.resize(3074 * 2 + 5);
  write_bytes(path("short.bin"), file);
  expect_error<IOError>([&] { convert_cifar({path("short.bin")}, path("x.h5"), {.classes = 100}, {}); },
                        {"short.bin", "not a whole number of 3074-byte CIFAR-100 records"});
  std::vector<uint8_t> bad(3073, 0);
  bad[0] = 12;
  write_bytes(path("bad_label.bin"), bad);
  expect_error<IOError>([&] { convert_cifar({path("bad_label.bin")}, path("x.h5"), {.classes = 10}, {}); },
                        {"bad_label.bin", "record 0", "label 12"});
  EXPECT_FALSE(std::filesystem::exists(path("x.h5")));
}

TEST_F(ImageTest, RandomResizedCropStaysInsideAndInItsRanges) {
  const RandomResizedCropParams p{.size = 32, .scale_min = 0.2, .scale_max = 0.9, .ratio_min = 0.6, .ratio_max = 1.5};
  int fallbacks = 0;
  const int draws = 3000;
  double mean_scale = 0.0;
  for (int i = 0; i < draws; ++i) {
    // Photo-like shapes (width / height in [0.75, 1.33]): crops in the ratio range nearly always fit.
    const int64_t h = random_int(20, 400);
    const int64_t w = static_cast<int64_t>(static_cast<double>(h) * (0.75 + 0.58 * random_int(0, 1000) / 1000.0));
    SampleRandom random(static_cast<uint64_t>(random_int(0, 1000)), 0, static_cast<uint64_t>(i));
    const SourceBox b = random_resized_crop_box(h, w, p, random);
    ASSERT_GE(b.x0, 0);
    ASSERT_GE(b.y0, 0);
    ASSERT_LE(b.x1, w);
    ASSERT_LE(b.y1, h);
    ASSERT_GT(b.width(), 0);
    ASSERT_GT(b.height(), 0);
    ASSERT_EQ(b.x0, std::floor(b.x0));  // whole pixels, as torchvision's integer crop
    const double scale = b.width() * b.height() / static_cast<double>(h * w), ratio = b.width() / b.height();
    // Rounding each side to whole pixels moves the area and the ratio by up to a pixel's worth.
    const double slack = 1.0 / static_cast<double>(std::min(b.width(), b.height()));
    const bool in_range = scale >= p.scale_min * (1 - 3 * slack) && scale <= p.scale_max * (1 + 3 * slack) &&
                          ratio >= p.ratio_min * (1 - 2 * slack) && ratio <= p.ratio_max * (1 + 2 * slack);
    if (!in_range) {
      // torchvision's fallback: centred, the whole of one side, the ratio clamped into range.
      ++fallbacks;
      EXPECT_TRUE(b.width() == w || b.height() == h) << h << "x" << w;
      EXPECT_NEAR(b.x0, (w - b.width()) / 2, 1.0);
      EXPECT_NEAR(b.y0, (h - b.height()) / 2, 1.0);
    }
    mean_scale += scale;
  }
  EXPECT_LT(fallbacks, draws / 50);
  mean_scale /= draws;
  EXPECT_GT(mean_scale, 0.4);  // uniform over [0.2, 0.9], a little less where crops did not fit
  EXPECT_LT(mean_scale, 0.6);
  // A thin image cannot hold any crop in the ratio range: always the fallback, width clamped to 1.5 x height.
  SampleRandom random(1, 2, 3);
  const SourceBox thin = random_resized_crop_box(10, 400, p, random);
  EXPECT_EQ(thin.height(), 10);
  EXPECT_EQ(thin.width(), 15);
  EXPECT_EQ(thin.x0, (400 - 15) / 2);
}

TEST_F(ImageTest, ResizeCenterCropFollowsTorchvision) {
  int64_t out_h = 0, out_w = 0;
  // 500 x 375 -> Resize(256): 341 x 256 (int(256 * 500 / 375)); CenterCrop(224): top 16, left round(58.5) = 58.
  SourceBox b = resize_center_crop_box(375, 500, 256, 224, out_h, out_w);
  EXPECT_EQ(out_h, 224);
  EXPECT_EQ(out_w, 224);
  EXPECT_DOUBLE_EQ(b.x0, 58 * 500.0 / 341);
  EXPECT_DOUBLE_EQ(b.y0, 16 * 375.0 / 256);
  EXPECT_DOUBLE_EQ(b.x1, 282 * 500.0 / 341);
  EXPECT_DOUBLE_EQ(b.y1, 240 * 375.0 / 256);
  // Resize alone keeps the aspect ratio; a crop larger than the image reaches outside it (zero padding).
  b = resize_center_crop_box(100, 40, 20, 0, out_h, out_w);
  EXPECT_EQ(out_w, 20);
  EXPECT_EQ(out_h, 50);
  b = resize_center_crop_box(10, 10, 0, 16, out_h, out_w);
  EXPECT_EQ(b.x0, -3);
  EXPECT_EQ(b.x1, 13);
}

TEST_F(ImageTest, ColorJitterMatchesTorchvisionsFormulas) {
  const int64_t plane = 37;
  std::vector<float> x(3 * plane);
  for (auto& v : x) v = static_cast<float>(random_int(0, 1000)) / 1000.0f;
  ColorJitterDraw d;
  d.factors[0] = 1.3f;  // brightness
  d.factors[1] = 0.6f;  // contrast
  d.factors[2] = 1.7f;  // saturation
  d.order[0] = 2;
  d.order[1] = 0;
  d.order[2] = 1;
  std::vector<float> expected = x;
  auto grey = [&](const std::vector<float>& v, int64_t i) { return 0.2989f * v[i] + 0.587f * v[plane + i] + 0.114f * v[2 * plane + i]; };
  auto clamp = [](float v) { return std::min(1.0f, std::max(0.0f, v)); };
  std::vector<float> g(plane);
  for (int64_t i = 0; i < plane; ++i) g[i] = grey(expected, i);
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < plane; ++i) expected[c * plane + i] = clamp(1.7f * expected[c * plane + i] + (1 - 1.7f) * g[i]);
  for (auto& v : expected) v = clamp(v * 1.3f);
  double mean = 0;
  for (int64_t i = 0; i < plane; ++i) mean += grey(expected, i);
  mean /= plane;
  for (auto& v : expected) v = clamp(0.6f * v + 0.4f * static_cast<float>(mean));
  apply_color_jitter(d, 3, plane, x.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(x[i], expected[i], 1e-6) << i;
}

TEST_F(ImageTest, EncodedBatchesAreTheSameForAnyThreadsRanksAndResumption) {
  const std::string file = path("enc.h5");
  const auto sizes = write_encoded(file, 26);
  ReaderOptions o = augmenting(file);
  o.workers = 1;
  const auto one = read_all(o);
  ASSERT_EQ(one.size(), 2u * (26 / 4));
  EXPECT_EQ(one[0].data.shape(), (Shape{4, 3, 16, 16}));
  o.workers = 3;
  const auto three = read_all(o);
  for (size_t b = 0; b < one.size(); ++b) {
    EXPECT_EQ(ints(one[b].indices), ints(three[b].indices));
    EXPECT_EQ(one[b].data.to_vector(), three[b].data.to_vector()) << "batch " << b;
  }
  // A sample's tensor depends on (seed, epoch, sample) alone: the same on whichever rank reads it.
  std::map<std::pair<int64_t, int64_t>, std::vector<float>> by_sample;
  for (const auto& b : one) {
    const auto data = b.data.to_vector();
    const auto idx = ints(b.indices);
    for (size_t j = 0; j < idx.size(); ++j)
      by_sample[{b.epoch, idx[j]}] = std::vector<float>(data.begin() + static_cast<int64_t>(j * 768), data.begin() + static_cast<int64_t>((j + 1) * 768));
  }
  o.world = 2;
  o.batch = 2;
  std::set<std::pair<int64_t, int64_t>> seen;
  for (int64_t rank = 0; rank < 2; ++rank) {
    o.rank = rank;
    for (const auto& b : read_all(o)) {
      const auto data = b.data.to_vector();
      const auto idx = ints(b.indices);
      for (size_t j = 0; j < idx.size(); ++j) {
        EXPECT_TRUE(seen.insert({b.epoch, idx[j]}).second) << "sample " << idx[j] << " read twice in epoch " << b.epoch;
        const auto it = by_sample.find({b.epoch, idx[j]});
        if (it == by_sample.end()) continue;  // dropped by the single-rank run's last partial batch
        EXPECT_EQ(std::vector<float>(data.begin() + static_cast<int64_t>(j * 768), data.begin() + static_cast<int64_t>((j + 1) * 768)), it->second);
      }
    }
  }
  EXPECT_EQ(seen.size(), 2u * (26 / 4 * 4));  // full rounds of 2 ranks x 2 each epoch
  // Resuming at epoch 1, batch 2 gives the uninterrupted run's batches from there.
  o = augmenting(file);
  o.seed = 7;
  const auto whole = read_all(o);
  o.start_epoch = 1;
  o.start_batch = 2;
  const auto resumed = read_all(o);
  const size_t skip = whole.size() / 2 + 2;
  ASSERT_EQ(resumed.size(), whole.size() - skip);
  for (size_t b = 0; b < resumed.size(); ++b) EXPECT_EQ(resumed[b].data.to_vector(), whole[b + skip].data.to_vector());
  (void)sizes;
}

TEST_F(ImageTest, EncodedErrorsNameTheSampleAndItsFile) {
  const std::string file = path("broken.h5");
  write_encoded(file, 8, /*broken=*/5);
  ReaderOptions o = augmenting(file);
  o.shuffle = false;
  o.num_epochs = 1;
  o.batch = 8;
  expect_error<ImageError>([&] { read_all(o); }, {"broken.h5: sample 5", "class/5.png", "PNG"});
  // Images of different sizes need a crop that makes them equal.
  write_encoded(path("sizes.h5"), 6);
  ReaderOptions plain;
  plain.path = path("sizes.h5");
  expect_error<ValueError>([&] { Reader r(plain); }, {"sizes.h5", "differ in size", "random resized crop"});
  // A padded crop is for stored images; combining it with a random resized crop is refused.
  plain.transforms.random_resized_crop.size = 8;
  plain.transforms.random_crop_padding = 2;
  expect_error<ValueError>([&] { Reader r(plain); }, {"sizes.h5", "random resized crop replaces"});
}

}  // namespace
}  // namespace horo::data
