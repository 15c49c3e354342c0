// JPEG and PNG decoding (data/image_codec.h, libjpeg-turbo and libpng): the input's first 8 bytes
// choose a region and a minimum size (DCT scaling), the rest is the image file.
#include "data/image_codec.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  FuzzedDataProvider in(data, size);
  horo::data::DecodeOptions options;
  if (in.ConsumeBool()) {
    options.region = {.y = in.ConsumeIntegralInRange<int64_t>(-4, 300), .x = in.ConsumeIntegralInRange<int64_t>(-4, 300),
                      .height = in.ConsumeIntegralInRange<int64_t>(0, 300), .width = in.ConsumeIntegralInRange<int64_t>(0, 300)};
  }
  options.min_height = options.min_width = in.ConsumeIntegralInRange<int64_t>(0, 64);
  const auto bytes = in.ConsumeRemainingBytes<uint8_t>();
  try {
    horo::data::read_image_info(bytes.data(), bytes.size(), "fuzz-image");
  } catch (const horo::Error&) {
  }
  try {
    horo::data::RgbImage image;
    horo::data::decode_image(bytes.data(), bytes.size(), "fuzz-image", options, image);
  } catch (const horo::Error&) {
  }
  return 0;
}
