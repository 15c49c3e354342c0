// JPEG and PNG files to 8-bit RGB pixels, through libjpeg-turbo and libpng.
//
// Every colour layout a photo collection holds becomes RGB the way PIL's convert("RGB") makes it
// (which is what torchvision's ImageFolder feeds a model): grey is repeated into three channels, a
// palette is looked up, alpha is dropped (not blended), CMYK and YCCK JPEGs are converted with PIL's
// formula (Adobe files store inverted CMYK). 16-bit PNG samples keep their high byte (PIL 9 clips
// 16-bit grey to 255 instead; horo treats grey as it treats colour). Anything else is refused with
// an ImageError naming the file.
//
// A JPEG can be decoded in part and smaller: only the rows and the block columns of a region, at
// 1/2, 1/4 or 1/8 of full size (libjpeg-turbo's DCT scaling), so that a random crop resized to 224
// pixels never pays for the pixels it does not use.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/error.h"

namespace horo::data {

// A file that is not an image horo reads, or that fails to decode; the message names the file.
class ImageError : public IOError {
  using IOError::IOError;
};

enum class ImageFormat { Unknown, Jpeg, Png };
const char* image_format_name(ImageFormat format);
ImageFormat sniff_image_format(const uint8_t* bytes, size_t size);

// The largest image decoded, in pixels (PIL's decompression-bomb limit): a crafted header asking for
// more is refused before any memory is allocated.
constexpr int64_t kMaxImagePixels = 178956970;

struct ImageInfo {
  ImageFormat format = ImageFormat::Unknown;
  int64_t height = 0, width = 0;
};
// The format and size from the file's header alone.
ImageInfo read_image_info(const uint8_t* bytes, size_t size, const std::string& name);

// A region of the full-size image, in pixels: rows [y, y + height), columns [x, x + width).
struct PixelBox {
  int64_t y = 0, x = 0, height = 0, width = 0;
};

// Decoded pixels [height][width][3] and where they sit in the full-size image: pixel (r, c) covers
// full-size rows [origin_y + r * scale, + scale) and columns [origin_x + c * scale, + scale).
struct RgbImage {
  int64_t full_height = 0, full_width = 0;  // the image's size in its file
  int64_t height = 0, width = 0;
  int64_t origin_y = 0, origin_x = 0;
  int64_t scale = 1;  // 1, 2, 4 or 8
  std::vector<uint8_t> pixels;
};

struct DecodeOptions {
  // Decode only what covers this region (full image when its size is 0; PNG always decodes whole).
  PixelBox region;
  // Decode JPEGs at 1/2, 1/4 or 1/8 size as long as the region keeps at least this many rows and
  // columns (0: full size). A resize to out_h x out_w loses nothing by it.
  int64_t min_height = 0, min_width = 0;
};

// Decodes `bytes` (named `name` in errors) into `out`, reusing its buffer. Throws ImageError.
void decode_image(const uint8_t* bytes, size_t size, const std::string& name, const DecodeOptions& options, RgbImage& out);

// The format-specific halves, for the tests.
void decode_jpeg(const uint8_t* bytes, size_t size, const std::string& name, const DecodeOptions& options, RgbImage& out);
void decode_png(const uint8_t* bytes, size_t size, const std::string& name, RgbImage& out);

// The whole of a file, read into memory. Throws IOError naming it.
std::vector<uint8_t> read_file_bytes(const std::string& path);

}  // namespace horo::data
