// CIFAR-10/100 binary files (data/image_folder.h): the input's first byte picks CIFAR-10, CIFAR-100
// fine or coarse labels; the rest is the file, converted to an HDF5 dataset.
#include "data/image_folder.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  if (size == 0) return 0;
  const std::string path = horo::fuzz::scratch("data_batch_1.bin"), out = horo::fuzz::scratch("cifar.h5");
  horo::fuzz::write_file(path, data + 1, size - 1);
  horo::data::CifarOptions options;
  options.classes = data[0] % 3 == 0 ? 10 : 100;
  options.coarse_labels = data[0] % 3 == 2;
  try {
    horo::data::convert_cifar({path}, out, options, {});
  } catch (const horo::Error&) {
  }
  std::remove(path.c_str());
  std::remove(out.c_str());
  return 0;
}
