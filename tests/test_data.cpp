// The HDF5 pipeline: round trips, sharding, shuffling, resume, transforms and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <fstream>
#include <set>
#include <zlib.h>

#include "data/convert.h"
#include "data/idx.h"
#include "data/reader.h"
#include "tests/test_util.h"

namespace horo::data {
namespace {

using horo::testing::expect_error;
using horo::testing::random_int;

class DataTest : public horo::testing::ScratchDirTest {
 protected:
  // A labelled uint8 image file of n random samples [c, h, w] with `classes` classes.
  std::string make_file(const std::string& name, int64_t n, int64_t c = 1, int64_t h = 6, int64_t w = 5,
                        int64_t classes = 4, int gzip = 0) {
    Tensor x = Tensor::empty({n, c, h, w}, DType::UInt8);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(random_int(0, 255));
    std::vector<int64_t> y(static_cast<size_t>(n));
    for (auto& v : y) v = random_int(0, classes - 1);
    WriteOptions o;
    o.gzip_level = gzip;
    o.chunk_samples = 7;
    for (int64_t k = 0; k < classes; ++k) o.class_names.push_back(std::string(1, 'c').append(std::to_string(k)));
    write_dataset_file(path(name), x, Tensor::from_vector(y, {n}), o);
    images_ = x;
    labels_ = y;
    return path(name);
  }

  Tensor images_;
  std::vector<int64_t> labels_;
};

ReaderOptions plain(const std::string& file, int64_t batch) {
  ReaderOptions o;
  o.path = file;
  o.batch = batch;
  o.transforms.scale = 1.0f;  // floats equal to the stored bytes
  return o;
}

std::vector<int64_t> epoch_indices(Reader& reader, int64_t* batches = nullptr) {
  std::vector<int64_t> out;
  int64_t count = 0;
  while (auto b = reader.next()) {
    for (int64_t i = 0; i < b->indices.numel(); ++i) out.push_back(b->indices.data<int64_t>()[i]);
    ++count;
  }
  if (batches) *batches = count;
  return out;
}

TEST_F(DataTest, IdxToHdf5ToReaderGivesBackTheIdxBytes) {
  // An IDX pair written by hand (gzip), converted, then read back in file order.
  const int64_t n = 37, h = 4, w = 3;
  std::vector<uint8_t> pixels(static_cast<size_t>(n * h * w)), labels(static_cast<size_t>(n));
  for (auto& p : pixels) p = static_cast<uint8_t>(random_int(0, 255));
  for (auto& l : labels) l = static_cast<uint8_t>(random_int(0, 9));
  auto write_idx = [&](const std::string& file, std::vector<uint8_t> header, const std::vector<uint8_t>& body) {
    gzFile f = gzopen(file.c_str(), "wb");
    header.insert(header.end(), body.begin(), body.end());
    gzwrite(f, header.data(), static_cast<unsigned>(header.size()));
    gzclose(f);
  };
  write_idx(path("img.gz"), {0, 0, 8, 3, 0, 0, 0, static_cast<uint8_t>(n), 0, 0, 0, static_cast<uint8_t>(h), 0, 0, 0, static_cast<uint8_t>(w)}, pixels);
  write_idx(path("lab.gz"), {0, 0, 8, 1, 0, 0, 0, static_cast<uint8_t>(n)}, labels);
  convert_idx(path("img.gz"), path("lab.gz"), path("out.h5"), {});
  auto o = plain(path("out.h5"), 8);
  o.shuffle = false;
  o.remainder = Remainder::Keep;
  Reader reader(o);
  int64_t seen = 0;
  while (auto b = reader.next()) {
    for (int64_t j = 0; j < b->labels.numel(); ++j, ++seen) {
      EXPECT_EQ(b->labels.data<int64_t>()[j], labels[seen]);
      for (int64_t k = 0; k < h * w; ++k) EXPECT_EQ(b->data.data<float>()[j * h * w + k], pixels[seen * h * w + k]);
    }
  }
  EXPECT_EQ(seen, n);
  EXPECT_EQ(read_idx_images(path("img.gz")).numel(), n * h * w);
}

TEST_F(DataTest, ShardsCoverTheDatasetWithEqualBatchCounts) {
  const int64_t n = random_int(40, 90);
  const std::string file = make_file("d.h5", n);
  for (int64_t world = 1; world <= 4; ++world) {
    for (Remainder policy : {Remainder::Drop, Remainder::Pad}) {
      const int64_t batch = random_int(1, 5);
      std::vector<int64_t> all;
      std::set<int64_t> batch_counts;
      for (int64_t rank = 0; rank < world; ++rank) {
        auto o = plain(file, batch);
        o.world = world;
        o.rank = rank;
        o.remainder = policy;
        o.seed = 11;
        Reader reader(o);
        int64_t batches = 0;
        auto mine = epoch_indices(reader, &batches);
        EXPECT_EQ(batches, reader.batches_per_epoch());
        batch_counts.insert(batches);
        all.insert(all.end(), mine.begin(), mine.end());
      }
      SCOPED_TRACE(::testing::Message() << "n=" << n << " world=" << world << " batch=" << batch);
      EXPECT_EQ(batch_counts.size(), 1u);  // every rank the same number of batches
      const std::set<int64_t> unique(all.begin(), all.end());
      const int64_t round = world * batch;
      if (policy == Remainder::Drop) {
        EXPECT_EQ(static_cast<int64_t>(all.size()), n / round * round);
        EXPECT_EQ(unique.size(), all.size());  // no duplicates
      } else {
        EXPECT_EQ(static_cast<int64_t>(all.size()), (n + round - 1) / round * round);
        EXPECT_EQ(static_cast<int64_t>(unique.size()), n);  // everything, duplicates only the padding
      }
    }
  }
}

TEST_F(DataTest, OrderIsAPureFunctionOfSeedAndEpoch) {
  const std::string file = make_file("d.h5", 64);
  auto order = [&](uint64_t seed, int64_t epochs) {
    auto o = plain(file, 8);
    o.seed = seed;
    o.num_epochs = epochs;
    Reader reader(o);
    return epoch_indices(reader);
  };
  const auto two = order(5, 2);
  const std::vector<int64_t> first(two.begin(), two.begin() + 64), second(two.begin() + 64, two.end());
  EXPECT_NE(first, second);                 // epochs differ
  EXPECT_EQ(std::set<int64_t>(second.begin(), second.end()).size(), 64u);
  EXPECT_EQ(order(5, 2), two);              // same seed, same order
  EXPECT_NE(order(6, 1), first);            // another seed, another order
}

TEST_F(DataTest, ResumeMidEpochYieldsTheRestExactly) {
  const std::string file = make_file("d.h5", 50);
  auto o = plain(file, 4);
  o.num_epochs = 2;
  o.world = 2;
  o.rank = 1;
  o.transforms.random_hflip = true;
  o.transforms.random_crop_padding = 1;
  std::vector<ReaderBatch> full;
  {
    Reader reader(o);
    while (auto b = reader.next()) full.push_back(*b);
  }
  o.start_epoch = 0;
  o.start_batch = 3;
  Reader resumed(o);
  size_t k = 3;
  while (auto b = resumed.next()) {
    ASSERT_LT(k, full.size());
    EXPECT_EQ(b->epoch, full[k].epoch);
    EXPECT_EQ(b->index, full[k].index);
    EXPECT_TRUE(std::equal(b->indices.data<int64_t>(), b->indices.data<int64_t>() + 4, full[k].indices.data<int64_t>()));
    EXPECT_EQ(b->data.to_vector(), full[k].data.to_vector());
    ++k;
  }
  EXPECT_EQ(k, full.size());
}

TEST_F(DataTest, TransformsMatchAPixelByPixelReference) {
  const std::string file = make_file("d.h5", 24, 2, 5, 6);
  auto o = plain(file, 6);
  o.transforms.scale = 1.0f / 255.0f;
  o.transforms.mean = {0.4f, 0.6f};
  o.transforms.std = {0.2f, 0.3f};
  o.transforms.random_hflip = true;
  o.transforms.random_crop_padding = 2;
  o.seed = static_cast<uint64_t>(random_int(0, 1000));
  Reader reader(o);
  int flips = 0, crops = 0;
  while (auto b = reader.next()) {
    for (int64_t j = 0; j < 6; ++j) {
      const int64_t s = b->indices.data<int64_t>()[j];
      const SampleDraw d = draw_for_sample(o.transforms, o.seed, static_cast<uint64_t>(b->epoch), static_cast<uint64_t>(s));
      flips += d.flip;
      crops += d.crop_x != 2 || d.crop_y != 2;
      for (int64_t c = 0; c < 2; ++c)
        for (int64_t y = 0; y < 5; ++y)
          for (int64_t x = 0; x < 6; ++x) {
            // pad by 2, crop at (crop_y, crop_x), then flip: out(y, x) = padded(y + cy, fx + cx)
            const int64_t fx = d.flip ? 5 - x : x;
            const int64_t sy = y + d.crop_y - 2, sx = fx + d.crop_x - 2;
            const float raw = (sy >= 0 && sy < 5 && sx >= 0 && sx < 6)
                                  ? images_.data<uint8_t>()[((s * 2 + c) * 5 + sy) * 6 + sx] / 255.0f : 0.0f;
            const float expected = (raw - o.transforms.mean[c]) / o.transforms.std[c];
            EXPECT_NEAR(b->data.data<float>()[((j * 2 + c) * 5 + y) * 6 + x], expected, 1e-5);
          }
    }
  }
  EXPECT_GT(flips, 0);
  EXPECT_LT(flips, 24);
  EXPECT_GT(crops, 0);
}

TEST_F(DataTest, PrefetchIsBoundedByBytesEvenBelowOneBatch) {
  const std::string file = make_file("d.h5", 200, 1, 8, 8, 4, 3);
  auto o = plain(file, 10);
  o.prefetch_bytes = 100;  // less than one batch: one batch in flight at a time
  Reader small(o);
  EXPECT_EQ(small.max_in_flight(), 1);
  EXPECT_EQ(epoch_indices(small).size(), 200u);
  o.prefetch_bytes = 10 * 10 * (64 + 64 * 4 + 24);
  Reader larger(o);
  EXPECT_EQ(larger.max_in_flight(), 10);
}

TEST_F(DataTest, BadInputNamesTheFileAndDataset) {
  expect_error<IOError>([&] { H5DatasetFile f(path("absent.h5")); }, {"absent.h5", "no such file"});
  {
    std::ofstream f(path("garbage.h5"), std::ios::binary);
    f << std::string(4096, 'x');
  }
  expect_error<IOError>([&] { H5DatasetFile f(path("garbage.h5")); }, {"garbage.h5", "not an HDF5 file"});
  const std::string good = make_file("good.h5", 30, 1, 8, 8, 4, 0);
  const auto size = std::filesystem::file_size(good);
  std::filesystem::copy_file(good, path("truncated.h5"));
  std::filesystem::resize_file(path("truncated.h5"), size / 3);
  expect_error<IOError>([&] { H5DatasetFile f(path("truncated.h5")); }, {"truncated.h5"});
  // Files with the wrong fields, written directly with the HDF5 API.
  auto write_raw = [&](const std::string& name, const char* dataset, hid_t type, std::vector<hsize_t> dims) {
    h5::Handle file = h5::create_file(path(name));
    h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    h5::Handle set(H5Dcreate2(file.get(), dataset, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    return file;
  };
  { auto f = write_raw("nodata.h5", "pixels", H5T_STD_U8LE, {4, 2}); }
  expect_error<IOError>([&] { H5DatasetFile f(path("nodata.h5")); }, {"nodata.h5", "no dataset 'images', 'features' or 'encoded_images'"});
  { auto f = write_raw("f64.h5", "images", H5T_IEEE_F64LE, {4, 2}); }
  expect_error<IOError>([&] { H5DatasetFile f(path("f64.h5")); }, {"f64.h5:/images", "unsupported dtype", "float, 8 bytes"});
  {
    auto f = write_raw("counts.h5", "images", H5T_STD_U8LE, {4, 2});
    const hsize_t three = 3;
    h5::Handle space(H5Screate_simple(1, &three, nullptr), H5Sclose);
    h5::Handle set(H5Dcreate2(f.get(), "labels", H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
  }
  expect_error<IOError>([&] { H5DatasetFile f(path("counts.h5")); }, {"counts.h5", "4 samples", "labels holds 3"});
  // A label outside the classes named by class_names.
  Tensor x = Tensor::zeros({3, 1, 2, 2}, DType::UInt8);
  WriteOptions named;
  named.class_names = {"a", "b", "c"};
  write_dataset_file(path("range.h5"), x, Tensor::from_vector(std::vector<int64_t>{0, 5, 1}, {3}), named);
  expect_error<IOError>([&] { H5DatasetFile f(path("range.h5")); }, {"range.h5:/labels", "label 5", "sample 1", "[0, 3)"});
  // Fewer samples than ranks x batch.
  auto o = plain(good, 8);
  o.world = 4;
  expect_error<ValueError>([&] { Reader r(o); }, {"good.h5", "30 samples", "4 x 8 = 32"});
}

// Files that open but whose content cannot be meant: each refused, naming the file, object and value.
TEST_F(DataTest, CraftedDatasetsAreRefusedByName) {
  const Tensor x = Tensor::zeros({3, 3, 2, 2}, DType::UInt8);
  const Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 1, 2}, {3});
  // Statistics that would blank or poison every pixel, or that do not match the channels.
  struct Stats {
    std::vector<double> mean, std;
    const char* expected;
  };
  const Stats stats[] = {{{0.5}, {std::numeric_limits<double>::infinity()}, "attribute 'std' value 0 is inf"},
                         {{0.1, std::nan(""), 0.1}, {0.2}, "attribute 'mean' value 1 is nan"},
                         {{0.5}, {0.0}, "expected a finite, positive number"},
                         {{0.5}, {0.2, 0.2}, "attribute 'std' holds 2 values for 3 channels"}};
  for (const Stats& c : stats) {
    WriteOptions o;
    o.mean = c.mean;
    o.std = c.std;
    write_dataset_file(path("stats.h5"), x, y, o);
    expect_error<IOError>([&] { H5DatasetFile f(path("stats.h5")); }, {"stats.h5", c.expected});
  }
  // A label no class range can hold (label + 1 overflowed).
  write_dataset_file(path("label.h5"), x, Tensor::from_vector(std::vector<int64_t>{0, INT64_MAX, 1}, {3}), {});
  expect_error<IOError>([&] { H5DatasetFile f(path("label.h5")); }, {"label.h5:/labels", "sample 1", "not a class index"});
  // Chunks declared but never written read back as zeros: refused. A chunk far larger than the file's
  // 50 samples is read in blocks of 50 (it was a block of a million samples' memory).
  auto chunked = [&](const std::string& name, hsize_t count, hsize_t chunk_rows, hsize_t written_rows) {
    h5::Handle file = h5::create_file(path(name));
    const hsize_t dims[2] = {count, 4}, max_dims[2] = {H5S_UNLIMITED, 4}, chunk[2] = {chunk_rows, 4};
    h5::Handle space(H5Screate_simple(2, dims, max_dims), H5Sclose);
    h5::Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(props.get(), 2, chunk);
    h5::Handle set(H5Dcreate2(file.get(), "features", H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, props.get(), H5P_DEFAULT), H5Dclose);
    std::vector<float> values(written_rows * 4, 0.5f);
    const hsize_t start[2] = {0, 0}, rows[2] = {written_rows, 4};
    h5::Handle file_space(H5Dget_space(set.get()), H5Sclose);
    H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, rows, nullptr);
    h5::Handle memory(H5Screate_simple(2, rows, nullptr), H5Sclose);
    EXPECT_GE(H5Dwrite(set.get(), H5T_NATIVE_FLOAT, memory.get(), file_space.get(), H5P_DEFAULT, values.data()), 0);
  };
  chunked("unwritten.h5", 100, 10, 10);
  expect_error<IOError>([&] { H5DatasetFile f(path("unwritten.h5")); }, {"unwritten.h5:/features", "declares 100 samples", "not all"});
  chunked("big_chunk.h5", 50, 1000000, 50);
  EXPECT_EQ(H5DatasetFile(path("big_chunk.h5")).block_samples(), 50);
  // A NaN in float data: the first bad sample and element are named, by every read.
  Tensor features = Tensor::zeros({20, 6});
  features.data<float>()[7 * 6 + 3] = std::nanf("");
  WriteOptions as_features;
  as_features.data_name = "features";
  as_features.chunk_samples = 8;
  write_dataset_file(path("nan.h5"), features, Tensor(), as_features);
  const H5DatasetFile nan_file(path("nan.h5"));
  expect_error<NumericError>([&] { nan_file.read_all(); }, {"nan.h5:/features", "sample 7", "element 3", "must be finite"});
  std::vector<float> block(8 * 6);
  EXPECT_NO_THROW(nan_file.read_block(1, block.data()));
  expect_error<NumericError>([&] { nan_file.read_block(0, block.data()); }, {"sample 7"});
  // An unreadable object header under an existing name is a corrupt file, not "no labels".
  const std::string good = make_file("header.h5", 10);
  haddr_t address = 0;
  {
    h5::Handle file = h5::open_file(good);
    H5O_info_t info;
    ASSERT_GE(H5Oget_info_by_name2(file.get(), "labels", &info, H5O_INFO_BASIC, H5P_DEFAULT), 0);
    address = info.addr;
  }
  {
    std::fstream f(good, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(address));
    const std::string junk(64, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  expect_error<IOError>([&] { H5DatasetFile f(good); }, {"header.h5:/labels", "header is unreadable"});
}

// Normalisation given on the command line or in a configuration, checked as the file's are.
TEST(Transforms, NonFiniteNormalisationIsRefused) {
  const Shape sample{3, 8, 8};
  auto with = [](std::vector<float> mean, std::vector<float> std) {
    TransformOptions o;
    o.mean = std::move(mean);
    o.std = std::move(std);
    return o;
  };
  EXPECT_NO_THROW(check_transforms(with({0.5f}, {0.25f}), sample, "run.prototxt"));
  expect_error<ValueError>([&] { check_transforms(with({0.5f}, {std::numeric_limits<float>::infinity()}), sample, "run.prototxt"); },
                           {"run.prototxt", "std values must be positive and finite", "inf"});
  expect_error<ValueError>([&] { check_transforms(with({0.1f, std::nanf(""), 0.1f}, {1, 1, 1}), sample, "run.prototxt"); },
                           {"mean values must be finite", "nan"});
}

TEST_F(DataTest, AReaderThreadFailureReachesTheConsumer) {
  // Corrupt the compressed image chunks (written before the labels), so opening succeeds and the
  // I/O thread's first read fails.
  const std::string file = make_file("c.h5", 400, 1, 16, 16, 4, 6);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(file) / 4));
    const std::string junk(2000, '\x5a');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto o = plain(file, 50);
  o.shuffle = false;
  bool threw = false;
  try {
    Reader reader(o);
    while (reader.next()) {
    }
  } catch (const IOError& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find("c.h5"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(threw);
}

TEST_F(DataTest, SplitFiltersRelabelsAndLimitsPerClass) {
  const std::string file = make_file("d.h5", 300, 1, 4, 4, 5);
  SplitOptions o{.val_fraction = 0.2, .seed = 3, .classes = {3, 1}, .relabel = true, .limit_per_class = 10};
  const auto [train, val] = split_dataset(file, path("t.h5"), path("v.h5"), o);
  H5DatasetFile t(path("t.h5")), v(path("v.h5"));
  EXPECT_EQ(t.schema().count, train);
  EXPECT_EQ(v.schema().count, val);
  EXPECT_EQ(t.schema().class_names, (std::vector<std::string>{"c3", "c1"}));
  std::map<int64_t, int64_t> histogram;
  for (int64_t l : t.labels()) ++histogram[l];
  EXPECT_EQ(histogram.size(), 2u);
  EXPECT_EQ(histogram[0], 10);
  EXPECT_EQ(histogram[1], 10);
  const int64_t kept = std::count(labels_.begin(), labels_.end(), 3) + std::count(labels_.begin(), labels_.end(), 1);
  EXPECT_EQ(val, std::llround(0.2 * static_cast<double>(kept)));
}

TEST_F(DataTest, CsvConversionKeepsHeaderNamesAndMapsStringLabels) {
  {
    std::ofstream f(path("t.csv"));
    f << "width,height,kind\n1.5,2,cat\n3,4.25,dog\n5,6,cat\n";
  }
  convert_csv(path("t.csv"), "kind", path("t.h5"), {});
  H5DatasetFile t(path("t.h5"));
  EXPECT_EQ(t.schema().data_name, "features");
  EXPECT_EQ(t.schema().feature_names, (std::vector<std::string>{"width", "height"}));
  EXPECT_EQ(t.schema().class_names, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(t.labels(), (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(t.read_all().to_vector(), (std::vector<float>{1.5f, 2, 3, 4.25f, 5, 6}));
  {
    std::ofstream f(path("bad.csv"));
    f << "a,label\n1,0\nx,1\n";
  }
  expect_error<IOError>([&] { read_csv(path("bad.csv"), "label"); }, {"bad.csv:3", "column 'a'", "'x'"});
  // Missing or out-of-range values were read as NaN and infinity; a huge numeric label was cast to
  // int64 (undefined behaviour): the first two are refused by row and column, the label is a name.
  for (const char* value : {"nan", "inf", "-1e300"}) {
    {
      std::ofstream f(path("nonfinite.csv"));
      f << "a,b,label\n1,2,0\n3," << value << ",1\n";
    }
    expect_error<IOError>([&] { read_csv(path("nonfinite.csv"), "label"); }, {"nonfinite.csv:3", "column 'b'", value, "not a finite"});
  }
  {
    std::ofstream f(path("huge_label.csv"));
    f << "a,label\n1,1e300\n2,3\n";
  }
  const auto table = read_csv(path("huge_label.csv"), "label");
  EXPECT_EQ(table.class_names, (std::vector<std::string>{"1e300", "3"}));
}

TEST_F(DataTest, SynthIsSeededAndBalanced) {
  Tensor a, la, b, lb;
  synth_shapes(300, 16, 9, 0.1f, a, la);
  synth_shapes(300, 16, 9, 0.1f, b, lb);
  EXPECT_TRUE(std::equal(a.data<uint8_t>(), a.data<uint8_t>() + a.numel(), b.data<uint8_t>()));
  std::map<int64_t, int> histogram;
  for (int64_t i = 0; i < 300; ++i) ++histogram[la.data<int64_t>()[i]];
  for (int64_t c = 0; c < 3; ++c) EXPECT_GT(histogram[c], 70);
}

}  // namespace
}  // namespace horo::data
