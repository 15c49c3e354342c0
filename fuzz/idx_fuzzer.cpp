// IDX files (data/idx.h), plain or gzip: the input is the file; read as images and as labels.
#include "data/idx.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  const std::string path = horo::fuzz::scratch("data.idx");
  horo::fuzz::write_file(path, data, size);
  try {
    horo::data::read_idx_images(path);
  } catch (const horo::Error&) {
  }
  try {
    horo::data::read_idx_labels(path);
  } catch (const horo::Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
