// Checkpoints (nn/checkpoint.h): valid HDF5 files with hostile content, crafted from the input —
// attributes of any type, shape and value, tensors of any name, dtype and shape, model specifications
// real or fuzzed — then read, built, loaded into the model (strict and not) with its optimizer state.
// The byte-level parsing of HDF5 is libhdf5's; this target aims at horo's reading of what it parses.
#include "fuzz/fuzz_util.h"
#include "nn/builtin_models.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"
#include "nn/spec.h"

namespace {

const char* const kAttributes[] = {"format_version", "model_spec", "train_config", "optimizer", "step", "epoch",
                                   "batch_in_epoch", "rng_seed", "rng_offset", "data_seed"};
const char* const kTensorNames[] = {"features.1.weight", "features.1.bias", "classifier.0.weight", "classifier.0.bias",
                                    "classifier.2.weight", "classifier.2.bias", "exp_avg", "exp_avg_sq", "step",
                                    "momentum_buffer", "a/b", "", ".", "features..weight"};

std::string pick_name(FuzzedDataProvider& in) {
  if (in.ConsumeIntegralInRange(0, 3) == 0) return in.ConsumeRandomLengthString(24);
  return kTensorNames[in.ConsumeIntegralInRange<size_t>(0, std::size(kTensorNames) - 1)];
}

void write_group(FuzzedDataProvider& in, hid_t file, const char* group_name) {
  const hid_t group = H5Gcreate2(file, group_name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (group < 0) return;
  const int count = in.ConsumeIntegralInRange(0, 6);
  for (int i = 0; i < count; ++i) {
    const std::string name = pick_name(in);
    if (in.ConsumeIntegralInRange(0, 4) == 0) {  // a nested group (the optimizer's layout)
      const hid_t sub = H5Gcreate2(group, name.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (sub >= 0) {
        horo::fuzz::write_dataset(in, sub, pick_name(in), horo::fuzz::pick_type(in), horo::fuzz::pick_dims(in));
        H5Gclose(sub);
      }
      continue;
    }
    horo::fuzz::write_dataset(in, group, name, horo::fuzz::pick_type(in), horo::fuzz::pick_dims(in));
  }
  H5Gclose(group);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  FuzzedDataProvider in(data, size);
  const std::string path = horo::fuzz::scratch("checkpoint.h5");
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) std::abort();
    for (const char* attribute : kAttributes) {
      const int how = in.ConsumeIntegralInRange(0, 5);
      if (how == 0) continue;  // absent
      if (how <= 2 && std::string(attribute) == "model_spec") {
        // Mostly a real model, so that loading gets far; sometimes fuzzed text.
        const char* models[] = {"mlp", "cnn"};
        horo::fuzz::write_text_attribute(file, attribute, how == 1 ? horo::nn::builtin_model_text(models[in.ConsumeBool()])
                                                                   : in.ConsumeRandomLengthString(512));
        continue;
      }
      horo::fuzz::write_attribute(in, file, attribute);
    }
    for (const char* group : {"parameters", "buffers", "optimizer"}) {
      if (in.ConsumeBool()) write_group(in, file, group);
    }
    H5Fclose(file);
  }
  try {
    const auto checkpoint = horo::nn::read_checkpoint(path);
    const auto built = horo::nn::build_model_from_text(checkpoint.model_spec, path);
    horo::nn::load_model(*built.model, checkpoint, in.ConsumeBool());
    horo::optim::Adam adam(built.model->parameters());
    horo::nn::load_optimizer(adam, *built.model, checkpoint);
  } catch (const horo::Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
