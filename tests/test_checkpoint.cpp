// Checkpoints, model specifications and transfer learning.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "data/h5_dataset.h"
#include "nn/checkpoint.h"
#include "nn/models.h"
#include "nn/spec.h"
#include "tests/test_util.h"

namespace horo::nn {
namespace {

namespace F = functional;
using horo::testing::expect_error;
using horo::testing::random_tensor;

using CheckpointTest = horo::testing::ScratchDirTest;

// A few Adam steps on a fixed batch so that the optimizer has state worth saving.
void train_a_little(Module& model, optim::Optimizer& opt, int steps) {
  static const Tensor x = random_tensor({8, 1, 28, 28});
  static const Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}, {8});
  for (int i = 0; i < steps; ++i) {
    opt.zero_grad();
    F::cross_entropy(model(x), y).backward();
    opt.step();
  }
}

TEST_F(CheckpointTest, SaveThenLoadGivesIdenticalOutputsAndOptimizerState) {
  manual_seed(static_cast<uint64_t>(horo::testing::random_int(0, 1000)));
  auto model = make_cnn();
  optim::Adam opt(model->parameters(), {.lr = 0.01f});
  train_a_little(*model, opt, 3);
  save_checkpoint(path("a.h5"), *model, &opt, {.step = 3, .epoch = 1, .batch_in_epoch = 2, .rng_seed = 9, .rng_offset = 40},
                  builtin_model_text("cnn"), "batch: 8\n");
  manual_seed(12345);  // a different initialisation, overwritten by the load
  auto restored = make_cnn();
  optim::Adam opt2(restored->parameters(), {.lr = 0.01f});
  const Checkpoint c = read_checkpoint(path("a.h5"));
  EXPECT_EQ(load_model(*restored, c, true).loaded.size(), 8u);
  load_optimizer(opt2, *restored, c);
  EXPECT_EQ(c.state.batch_in_epoch, 2);
  EXPECT_EQ(c.state.rng_offset, 40u);
  EXPECT_EQ(c.train_config, "batch: 8\n");
  model->eval();
  restored->eval();
  const Tensor x = random_tensor({5, 1, 28, 28});
  EXPECT_EQ((*model)(x).to_vector(), (*restored)(x).to_vector());
  // The same next step from the same optimizer state: parameters stay bit-identical.
  model->train();
  restored->train();
  default_generator().set_state(3, 0);
  train_a_little(*model, opt, 1);
  default_generator().set_state(3, 0);
  train_a_little(*restored, opt2, 1);
  const auto a = model->named_parameters(), b = restored->named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
}

TEST_F(CheckpointTest, PartialLoadReportsWhatWasLoadedSkippedAndMismatched) {
  auto source = make_cnn(10);
  save_checkpoint(path("s.h5"), *source, nullptr, {}, builtin_model_text("cnn"), "");
  auto target = make_cnn(4);
  const LoadReport report = load_model(*target, read_checkpoint(path("s.h5")), false);
  EXPECT_EQ(report.loaded.size(), 6u);
  ASSERT_EQ(report.mismatched.size(), 2u);
  EXPECT_NE(report.mismatched[0].find("classifier.4.weight: [4, 128] in the model, [10, 128]"), std::string::npos);
  EXPECT_EQ(target->parameter("features.0.weight").to_vector(), source->parameter("features.0.weight").to_vector());
  EXPECT_NE(report.summary().find("loaded 6 tensors"), std::string::npos);
  expect_error<ValueError>([&] { load_model(*target, read_checkpoint(path("s.h5")), true); },
                           {"s.h5", "classifier.4.weight", "[4, 128]", "[10, 128]"});
  auto mlp = make_mlp();
  expect_error<ValueError>([&] { load_model(*mlp, read_checkpoint(path("s.h5")), true); }, {"s.h5", "does not match"});
}

TEST_F(CheckpointTest, CorruptMissingAndForeignFilesNameTheFile) {
  auto model = make_mlp();
  save_checkpoint(path("good.h5"), *model, nullptr, {}, builtin_model_text("mlp"), "");
  expect_error<IOError>([&] { read_checkpoint(path("absent.h5")); }, {"absent.h5", "no such file"});
  std::filesystem::copy_file(path("good.h5"), path("cut.h5"));
  std::filesystem::resize_file(path("cut.h5"), std::filesystem::file_size(path("good.h5")) / 2);
  expect_error<IOError>([&] { read_checkpoint(path("cut.h5")); }, {"cut.h5"});
  data::write_dataset_file(path("data.h5"), Tensor::zeros({2, 3}, DType::UInt8), Tensor(), {});
  expect_error<IOError>([&] { read_checkpoint(path("data.h5")); }, {"data.h5", "not a horo checkpoint"});
  EXPECT_FALSE(std::filesystem::exists(path("good.h5.tmp")));  // the atomic write left nothing behind
}

// Rewrites attribute `name` of the file's root as int64 values of the given dimensions.
void replace_int_attribute(const std::string& file, const std::string& name, std::vector<hsize_t> dims,
                           int64_t value) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Adelete(f, name.c_str()), 0);
  const hid_t space = dims.empty() ? H5Screate(H5S_SCALAR) : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  const hid_t attr = H5Acreate2(f, name.c_str(), H5T_NATIVE_INT64, space, H5P_DEFAULT, H5P_DEFAULT);
  hsize_t count = 1;
  for (hsize_t d : dims) count *= d;
  std::vector<int64_t> values(count, value);
  EXPECT_GE(H5Awrite(attr, H5T_NATIVE_INT64, values.data()), 0);
  H5Aclose(attr);
  H5Sclose(space);
  H5Fclose(f);
  // A crafted file carries no checksum of horo's (or a recomputed one): blank the user block, so the
  // content checks are what refuse it.
  std::fstream raw(file, std::ios::in | std::ios::out | std::ios::binary);
  const std::string zeros(512, '\0');
  raw.write(zeros.data(), static_cast<std::streamsize>(zeros.size()));
}

// A crafted checkpoint: an array where one integer belongs (read into one int64_t, it overflowed the
// stack), a format_version of two values or of shape [1, 1], a negative step: each refused, naming the
// file and the attribute.
TEST_F(CheckpointTest, CraftedIntegerAttributesAreRefusedByName) {
  auto model = nn::make_mlp();
  struct Case {
    const char* attribute;
    std::vector<hsize_t> dims;
    int64_t value;
    const char* expected;
  };
  const Case cases[] = {{"step", {1000}, 5, "expected one integer, found 1000 values"},
                        {"epoch", {1000}, 5, "expected one integer, found 1000 values"},
                        {"format_version", {1, 1}, 1, "expected one integer, found 1 values in 2 dimensions"},
                        {"format_version", {2}, 1, "expected one integer, found 2 values"},
                        {"step", {}, -3, "must not be negative"}};
  for (const Case& c : cases) {
    const std::string file = path("crafted.h5");
    save_checkpoint(file, *model, nullptr, {.step = 1}, builtin_model_text("mlp"), "");
    replace_int_attribute(file, c.attribute, c.dims, c.value);
    try {
      read_checkpoint(file);
      ADD_FAILURE() << c.attribute << ": accepted";
    } catch (const IOError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(file), std::string::npos) << what;
      EXPECT_NE(what.find(c.attribute), std::string::npos) << what;
      EXPECT_NE(what.find(c.expected), std::string::npos) << what;
    }
  }
}

// NaN weights evaluated to 10 % accuracy with exit code 0: a non-finite tensor is refused by name.
TEST_F(CheckpointTest, NonFiniteTensorsAreRefusedByName) {
  auto model = make_mlp();
  model->parameter("classifier.0.bias").data<float>()[3] = std::numeric_limits<float>::infinity();
  const std::string file = path("inf.h5");
  save_checkpoint(file, *model, nullptr, {.step = 1}, builtin_model_text("mlp"), "");
  expect_error<NumericError>([&] { read_checkpoint(file); }, {file.c_str(), "/parameters/classifier.0.bias", "element 3 is inf"});
}

// A checkpoint damaged after it was written (here one byte of a tensor's data, where libhdf5 would
// read garbage silently; elsewhere it can loop forever) is refused by its CRC-32 before HDF5 parses
// it; so is one cut short. The checksum lives in HDF5's user block, which h5py skips.
TEST_F(CheckpointTest, DamagedCheckpointsAreRefusedByTheirChecksum) {
  auto model = make_mlp();
  const std::string file = path("ck.h5");
  save_checkpoint(file, *model, nullptr, {.step = 7}, builtin_model_text("mlp"), "");
  EXPECT_EQ(read_checkpoint(file).state.step, 7);
  const auto size = std::filesystem::file_size(file);
  const std::string flipped = path("flipped.h5");
  std::filesystem::copy_file(file, flipped);
  {
    std::fstream f(flipped, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size - 100));
    char byte = 0;
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x10);
    f.seekp(static_cast<std::streamoff>(size - 100));
    f.write(&byte, 1);
  }
  expect_error<IOError>([&] { read_checkpoint(flipped); }, {flipped.c_str(), "corrupt checkpoint", "CRC-32"});
  const std::string cut = path("cut.h5");
  std::filesystem::copy_file(file, cut);
  std::filesystem::resize_file(cut, size - 1000);
  expect_error<IOError>([&] { read_checkpoint(cut); }, {cut.c_str(), "truncated"});
}

TEST_F(CheckpointTest, DirectoryKeepsTheNewestKAndNeverTheJustWrittenOneAway) {
  auto model = make_mlp();
  CheckpointDir dir(path("ck"), 2);
  for (int64_t step : {5, 10, 15}) dir.save(*model, nullptr, {.step = step}, builtin_model_text("mlp"), "");
  EXPECT_EQ(dir.latest(), path("ck/ckpt-15.h5"));
  EXPECT_FALSE(std::filesystem::exists(path("ck/ckpt-5.h5")));
  EXPECT_TRUE(std::filesystem::exists(path("ck/ckpt-10.h5")));
  // A run resumed from step 10 abandons step 15; its own next checkpoint survives.
  EXPECT_EQ(dir.remove_after(10), std::vector<std::string>{path("ck/ckpt-15.h5")});
  dir.save(*model, nullptr, {.step = 12}, builtin_model_text("mlp"), "");
  EXPECT_EQ(dir.latest(), path("ck/ckpt-12.h5"));
  dir.save(*model, nullptr, {.step = 1}, builtin_model_text("mlp"), "");  // even when older than the rest
  EXPECT_TRUE(std::filesystem::exists(path("ck/ckpt-1.h5")));
}

TEST_F(CheckpointTest, FrozenTensorsStayBitIdenticalAndTheNewHeadTrains) {
  auto model = make_cnn(10);
  replace_head(*model, 4);
  const auto frozen = freeze(*model, "features.*");
  EXPECT_EQ(frozen.size(), 4u);
  std::map<std::string, std::vector<float>> before;
  for (const auto& [name, t] : model->named_parameters()) before[name] = t.to_vector();
  optim::Adam opt(model->parameters(), {.lr = 0.01f});
  const Tensor x = random_tensor({6, 1, 28, 28});
  const Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 3, 0, 1}, {6});
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    F::cross_entropy((*model)(x), y).backward();
    opt.step();
  }
  for (const auto& [name, t] : model->named_parameters()) {
    EXPECT_EQ(t.to_vector() == before[name], name.rfind("features.", 0) == 0) << name;
  }
  expect_error<ValueError>([&] { freeze(*model, "backbone.*"); }, {"backbone.*", "no parameter matches"});
}

TEST(Tensor, ImpossibleShapesAreShapeErrors) {
  expect_error<ShapeError>([] { Tensor::empty({int64_t{1} << 40, int64_t{1} << 40}); }, {"too"});
  expect_error<ShapeError>([] { random_tensor({6}).view({-2, -3}); }, {"negative size"});
}

TEST(Spec, BuiltInModelsAreTheFilesInModels) {
  for (const char* name : {"cnn", "mlp"}) {
    std::ifstream in(std::string(HORO_SOURCE_DIR) + "/models/" + name + ".prototxt");
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_EQ(builtin_model_text(name), text.str()) << name;
  }
  EXPECT_EQ(make_cnn()->parameter_count(), 225034);
  EXPECT_EQ(make_mlp()->parameter_count(), 235146);
}

TEST(Spec, ErrorsNameTheLineAndTheLayer) {
  expect_error<ValueError>([] { build_model_from_text("input_shape: [1, 4, 4]\nlayers { linear { in: 16 outt: 3 } }\n", "net.prototxt"); },
                           {"net.prototxt:2:", "outt"});
  expect_error<ValueError>([] { build_model_from_text("input_shape: [1, 4, 4]\nlayers { convolution {} }\n", "net.prototxt"); },
                           {"net.prototxt:2:", "convolution"});
  const std::string chain =
      "input_shape: [1, 28, 28]\n"
      "layers {\n"
      "  name: \"features\"\n"
      "  sequential {\n"
      "    layers { conv2d { in: 1 out: 8 kernel: 3 } }\n"
      "    layers { flatten {} }\n"
      "    layers { linear { in: 1600 out: 10 } }\n"
      "  }\n"
      "}\n";
  expect_error<ValueError>([&] { build_model_from_text(chain, "net.prototxt"); },
                           {"net.prototxt:7:", "layer 'features.2' (linear)", "expects 1600 input features", "gives 5408"});
  const std::string channels = "input_shape: [3, 8, 8]\nlayers { conv2d { in: 1 out: 2 kernel: 3 } }\n";
  expect_error<ValueError>([&] { build_model_from_text(channels, "c.prototxt"); },
                           {"c.prototxt:2:", "layer '0' (conv2d)", "expects 1 input channels", "gives 3"});
  expect_error<ValueError>([] { build_model_from_text("input_shape: [4]\nlayers { dropout { p: 1.5 } }\n", "d.prototxt"); },
                           {"d.prototxt:2:", "Dropout", "1.5"});
}

std::string nested_sequentials(int depth) {
  std::string text = "input_shape: [4]\nlayers { ";
  for (int i = 0; i < depth; ++i) text += "sequential { layers { ";
  text += "relu {} ";
  for (int i = 0; i < depth; ++i) text += "} } ";
  return text + "}\nlayers { linear { in: 4 out: 2 } }\n";
}

// 5,000 nested sequentials (130 KB) overflowed the stack in protobuf's parser: refused with the limit,
// from a file and from a checkpoint's stored specification alike. The limit itself still builds.
TEST_F(CheckpointTest, DeeplyNestedSpecificationsAreRefusedWithTheLimit) {
  EXPECT_NO_THROW(build_model_from_text(nested_sequentials(kMaxSpecNesting - 2), "ok.prototxt"));
  expect_error<ValueError>([] { build_model_from_text(nested_sequentials(5000), "deep.prototxt"); },
                           {"deep.prototxt:2:", "nested more than 64 deep"});
  auto model = make_mlp();
  const std::string file = path("deep.h5");
  save_checkpoint(file, *model, nullptr, {.step = 1}, nested_sequentials(5000), "");
  expect_error<ValueError>([&] { build_model_from_text(read_checkpoint(file).model_spec, file); }, {file.c_str(), "nested more than 64 deep"});
}

// Registration is linear in the layer count (a duplicate scan made 200,000 layers take over a minute),
// and duplicates are still refused; a '/' in a name (an HDF5 path separator: the layer trained, then
// could not be saved) is refused when registered.
TEST(Spec, ManyLayersBuildAndBadNamesAreRefusedWhenRegistered) {
  std::string text = "input_shape: [4]\n";
  for (int i = 0; i < 200000; ++i) text += "layers { relu {} }\n";
  text += "layers { linear { in: 4 out: 2 } }\n";
  EXPECT_EQ(build_model_from_text(text, "wide.prototxt").model->children().size(), 200001u);
  Sequential seq;
  seq.add("a", std::make_shared<ReLU>());
  expect_error<ValueError>([&] { seq.add("a", std::make_shared<ReLU>()); }, {"a child named 'a' is already registered"});
  expect_error<ValueError>([&] { seq.add("a/b", std::make_shared<ReLU>()); }, {"'a/b'", "no '.' or '/'"});
  expect_error<ValueError>(
      [] { build_model_from_text("input_shape: [4]\nlayers { name: \"x/y\" relu {} }\nlayers { linear { in: 4 out: 2 } }\n", "n.prototxt"); },
      {"n.prototxt:2:", "'x/y'", "no '.' or '/'"});
}

TEST(Spec, ClassCountRewritesTheHead) {
  const auto built = build_model_from_text(with_class_count(builtin_model_text("cnn"), 4, "cnn"), "cnn");
  EXPECT_EQ(built.model->parameter("classifier.4.weight").shape(), (Shape{4, 128}));
}

}  // namespace
}  // namespace horo::nn
