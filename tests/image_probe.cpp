// Exposes horo's image decoding and resampling to tests/image_parity.py, which compares them with PIL.
//   image_probe decode FILE OUT [Y X H W MIN_H MIN_W]   RgbImage: 5 int64 (height, width, origin_y,
//                                                        origin_x, scale), then the pixels
//   image_probe resize FILE OUT X0 Y0 X1 Y1 OUT_H OUT_W  the box of the full image resampled as PIL's
//                                                        Image.resize(..., BILINEAR, box) does: 2 int64
//                                                        (out_h, out_w), then uint8 [out_h][out_w][3]
// Errors: the message on stderr and exit code 1.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "data/image_codec.h"
#include "data/resample.h"

namespace {

void write(const std::string& path, const std::vector<int64_t>& header, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size() * sizeof(int64_t)));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out.good()) throw horo::IOError(path + ": write failed");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 4) throw horo::ValueError("usage: image_probe decode|resize FILE OUT ...");
    const std::string command = argv[1], file = argv[2], out = argv[3];
    const auto bytes = horo::data::read_file_bytes(file);
    auto arg = [&](int i) { return std::atoll(argv[i]); };
    horo::data::RgbImage image;
    if (command == "decode") {
      horo::data::DecodeOptions options;
      if (argc >= 10) {
        options.region = {arg(4), arg(5), arg(6), arg(7)};
        options.min_height = arg(8);
        options.min_width = arg(9);
      }
      horo::data::decode_image(bytes.data(), bytes.size(), file, options, image);
      write(out, {image.height, image.width, image.origin_y, image.origin_x, image.scale}, image.pixels.data(), image.pixels.size());
    } else if (command == "resize" && argc >= 10) {
      horo::data::decode_image(bytes.data(), bytes.size(), file, {}, image);
      const horo::data::SourceBox box{std::atof(argv[4]), std::atof(argv[5]), std::atof(argv[6]), std::atof(argv[7])};
      const int64_t out_h = arg(8), out_w = arg(9);
      std::vector<float> planes(static_cast<size_t>(3 * out_h * out_w));
      horo::data::resample_rgb(image, box, out_h, out_w, false, planes.data());
      std::vector<uint8_t> pixels(planes.size());
      for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < out_h * out_w; ++i) {
          const float v = planes[static_cast<size_t>(c * out_h * out_w + i)];
          pixels[static_cast<size_t>(i * 3 + c)] = static_cast<uint8_t>(v <= 0.0f ? 0 : v >= 255.0f ? 255 : static_cast<int>(v + 0.5f));
        }
      write(out, {out_h, out_w}, pixels.data(), pixels.size());
    } else {
      throw horo::ValueError("unknown command or missing arguments: " + command);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
