// Model specifications and training configurations as text (nn/spec.h): parsed, built, and a
// small model run forward once on a batch of 2.
#include "fuzz/fuzz_util.h"
#include "nn/spec.h"
#include "tensor/tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const auto built = horo::nn::build_model_from_text(text, "fuzz.prototxt");
    horo::Shape batch{2};
    batch.insert(batch.end(), built.input_shape.begin(), built.input_shape.end());
    if (horo::shape_numel(batch) <= 4096 && built.model->parameter_count() <= 100000) {
      built.model->forward(horo::Tensor::normal(batch, 0.0f, 1.0f, 1));
    }
  } catch (const horo::Error&) {
  }
  try {
    horo::nn::parse_train_config(text, "fuzz.config");
  } catch (const horo::Error&) {
  }
  return 0;
}
