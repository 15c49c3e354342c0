// CSV tables (data/convert.h): the input is the file, read with the label column "label" and
// converted to an HDF5 dataset.
#include "data/convert.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  const std::string path = horo::fuzz::scratch("table.csv"), out = horo::fuzz::scratch("table.h5");
  horo::fuzz::write_file(path, data, size);
  try {
    horo::data::convert_csv(path, "label", out, {});
  } catch (const horo::Error&) {
  }
  std::remove(path.c_str());
  std::remove(out.c_str());
  return 0;
}
