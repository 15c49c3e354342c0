// HDF5 datasets (data/h5_dataset.h, data/reader.h): files in horo's layout crafted from the input —
// images, features or encoded images of any dtype, shape and chunking, written fully, partly or not
// at all; labels of any type, shape and value; mean, std, class_names of any type and value; image
// bytes and recorded sizes fuzzed — then opened, read block by block or image by image, and read
// through the Reader for one epoch with its transforms.
#include "data/h5_dataset.h"
#include "data/image_codec.h"
#include "data/reader.h"
#include "fuzz/fuzz_util.h"

namespace {

using horo::fuzz::pick_bytes;
using horo::fuzz::pick_dims;
using horo::fuzz::pick_type;

// A chunked, appendable dataset like horo's writer makes, with a fuzzed chunk shape, of which the
// first `written` rows (or all) were written.
void write_chunked(FuzzedDataProvider& in, hid_t file, const char* name, hid_t type, const std::vector<hsize_t>& dims) {
  std::vector<hsize_t> max_dims(dims), chunk(dims);
  max_dims[0] = H5S_UNLIMITED;
  for (auto& c : chunk) c = std::max<hsize_t>(1, std::min<hsize_t>(c, in.ConsumeIntegralInRange<hsize_t>(1, 64)));
  // Sometimes a chunk far longer than the dataset (blocks must be clamped to the samples there are).
  if (in.ConsumeIntegralInRange(0, 7) == 0) chunk[0] = in.ConsumeIntegralInRange<hsize_t>(1, 4096);
  const hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), max_dims.data());
  const hid_t props = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(props, static_cast<int>(chunk.size()), chunk.data());
  if (in.ConsumeBool()) H5Pset_deflate(props, 1);
  const hid_t set = H5Dcreate2(file, name, type, space, H5P_DEFAULT, props, H5P_DEFAULT);
  if (set >= 0) {
    std::vector<hsize_t> rows(dims);
    rows[0] = in.ConsumeIntegralInRange(0, 5) == 0 ? in.ConsumeIntegralInRange<hsize_t>(0, dims[0]) : dims[0];
    if (rows[0] > 0) {
      const auto bytes = pick_bytes(in, type, horo::fuzz::element_count(rows));
      const hid_t memory = H5Screate_simple(static_cast<int>(rows.size()), rows.data(), nullptr);
      const hid_t selection = H5Dget_space(set);
      std::vector<hsize_t> start(dims.size(), 0);
      H5Sselect_hyperslab(selection, H5S_SELECT_SET, start.data(), nullptr, rows.data(), nullptr);
      H5Dwrite(set, type, memory, selection, H5P_DEFAULT, bytes.data());
      H5Sclose(selection);
      H5Sclose(memory);
    }
    H5Dclose(set);
  }
  H5Pclose(props);
  H5Sclose(space);
}

void write_encoded(FuzzedDataProvider& in, hid_t file, hsize_t count) {
  // Mostly bytes; sometimes 16-bit elements, which horo must refuse (a vlen length counts elements).
  const bool bytes = in.ConsumeIntegralInRange(0, 7) != 0;
  const hid_t type = H5Tvlen_create(bytes ? H5T_NATIVE_UINT8 : H5T_NATIVE_INT16);
  const size_t element = bytes ? 1 : 2;
  const hid_t space = H5Screate_simple(1, &count, nullptr);
  const hid_t set = H5Dcreate2(file, "encoded_images", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<std::vector<uint8_t>> images(count);
  std::vector<hvl_t> values(count);
  for (hsize_t i = 0; i < count; ++i) {
    images[i] = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange<size_t>(0, 2048));
    values[i] = {images[i].size() / element, images[i].data()};
  }
  if (set >= 0) {
    H5Dwrite(set, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Dclose(set);
  }
  H5Sclose(space);
  H5Tclose(type);
  for (const char* sizes : {"heights", "widths"}) {
    if (in.ConsumeIntegralInRange(0, 9) == 0) continue;
    std::vector<hsize_t> dims{in.ConsumeIntegralInRange(0, 9) ? count : in.ConsumeIntegralInRange<hsize_t>(0, 8)};
    horo::fuzz::write_dataset(in, file, sizes, in.ConsumeIntegralInRange(0, 5) ? H5T_STD_I32LE : pick_type(in), dims);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool ready = horo::fuzz::setup();
  (void)ready;
  FuzzedDataProvider in(data, size);
  const std::string path = horo::fuzz::scratch("dataset.h5");
  hsize_t count = 0;
  {
    const hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (file < 0) std::abort();
    const int layout = in.ConsumeIntegralInRange(0, 3);
    if (layout == 3) {
      count = in.ConsumeIntegralInRange<hsize_t>(0, 12);
      write_encoded(in, file, count);
    } else {
      auto dims = pick_dims(in, 4);
      if (dims.empty() || in.ConsumeIntegralInRange(0, 3)) {  // mostly [N, C, H, W] or [N, F]
        dims = layout == 1 ? std::vector<hsize_t>{in.ConsumeIntegralInRange<hsize_t>(0, 64), in.ConsumeIntegralInRange<hsize_t>(1, 16)}
                           : std::vector<hsize_t>{in.ConsumeIntegralInRange<hsize_t>(0, 64), in.ConsumeIntegralInRange<hsize_t>(1, 3),
                                                  in.ConsumeIntegralInRange<hsize_t>(1, 12), in.ConsumeIntegralInRange<hsize_t>(1, 12)};
      }
      count = dims[0];
      const hid_t type = in.ConsumeIntegralInRange(0, 4) ? (in.ConsumeBool() ? H5T_STD_U8LE : H5T_IEEE_F32LE) : pick_type(in);
      const char* name = layout == 1 ? "features" : "images";
      if (in.ConsumeBool()) write_chunked(in, file, name, type, dims);
      else horo::fuzz::write_dataset(in, file, name, type, dims);
    }
    if (in.ConsumeIntegralInRange(0, 4)) {  // labels, mostly well-typed and of the right count
      std::vector<hsize_t> dims{in.ConsumeIntegralInRange(0, 7) ? count : in.ConsumeIntegralInRange<hsize_t>(0, 70)};
      if (in.ConsumeIntegralInRange(0, 15) == 0) dims = pick_dims(in);
      const hid_t type = in.ConsumeIntegralInRange(0, 5) ? (in.ConsumeBool() ? H5T_STD_I64LE : H5T_STD_I32LE) : pick_type(in);
      horo::fuzz::write_dataset(in, file, "labels", type, dims);
    }
    for (const char* attribute : {"mean", "std", "class_names", "feature_names"}) {
      if (in.ConsumeIntegralInRange(0, 2) == 0) horo::fuzz::write_attribute(in, file, attribute);
    }
    H5Fclose(file);
  }
  try {
    const horo::data::H5DatasetFile file(path);
    const auto& schema = file.schema();
    if (schema.encoded) {
      std::vector<uint8_t> bytes;
      horo::data::RgbImage image;
      for (int64_t i = 0; i < schema.count; ++i) {
        file.read_encoded(i, bytes);
        try {
          horo::data::decode_image(bytes.data(), bytes.size(), file.sample_name(i), {}, image);
        } catch (const horo::Error&) {
        }
      }
    } else {
      std::vector<uint8_t> block(static_cast<size_t>(file.block_samples() * schema.sample_bytes()));
      for (int64_t b = 0; b < file.block_count(); ++b) file.read_block(b, block.data());
    }
    horo::data::ReaderOptions options;
    options.path = path;
    options.batch = in.ConsumeIntegralInRange<int64_t>(1, 8);
    options.remainder = horo::data::Remainder::Keep;
    if (schema.encoded || in.ConsumeBool()) options.transforms.resize = in.ConsumeIntegralInRange<int64_t>(1, 16);
    if (options.transforms.resize) options.transforms.center_crop = options.transforms.resize;
    options.transforms.random_hflip = in.ConsumeBool();
    horo::data::Reader reader(options);
    while (reader.next()) {
    }
  } catch (const horo::Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
