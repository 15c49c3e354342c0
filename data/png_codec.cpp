// PNG through libpng, every colour type and bit depth to 8-bit RGB. libpng reports errors by
// longjmp: the setjmp frame holds no C++ object with a destructor; it returns false with the
// message and its caller throws.
#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>

#include "data/image_codec.h"

namespace horo::data {

namespace {

struct PngSource {
  const uint8_t* bytes;
  size_t size, offset;
  char message[256];
};

void on_error(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof source->message, "%s", message);
  png_longjmp(png, 1);
}

void on_warning(png_structp, png_const_charp) {}  // benign (e.g. an unknown ancillary chunk): PIL reads on too

void read_bytes(png_structp png, png_bytep data, png_size_t length) {
  auto* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (length > source->size - source->offset) png_error(png, "the file is truncated");
  std::memcpy(data, source->bytes + source->offset, length);
  source->offset += length;
}

bool decode(PngSource& source, std::vector<uint8_t>& out, std::vector<png_bytep>& rows, int64_t& height, int64_t& width) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &source, on_error, on_warning);
  if (!png) {
    std::snprintf(source.message, sizeof source.message, "cannot create a libpng reader");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    return false;
  }
  png_set_read_fn(png, &source, read_bytes);
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  if (static_cast<int64_t>(w) * static_cast<int64_t>(h) > kMaxImagePixels) {
    std::snprintf(source.message, sizeof source.message, "%u x %u pixels exceed the limit of %lld", w, h,
                  static_cast<long long>(kMaxImagePixels));
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (depth == 16) png_set_strip_16(png);  // the high byte
  // Alpha, and a palette's or a colour's transparency (which expansion would turn into alpha), is dropped.
  if ((color & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  if (png_get_rowbytes(png, info) != static_cast<size_t>(w) * 3) {
    std::snprintf(source.message, sizeof source.message, "unexpected layout after conversion (colour type %d, depth %d)", color, depth);
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  out.resize(static_cast<size_t>(w) * h * 3);
  rows.resize(h);
  for (png_uint_32 r = 0; r < h; ++r) rows[r] = out.data() + static_cast<size_t>(r) * w * 3;
  png_read_image(png, rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  height = h;
  width = w;
  return true;
}

}  // namespace

void decode_png(const uint8_t* bytes, size_t size, const std::string& name, RgbImage& out) {
  thread_local std::vector<png_bytep> rows;
  PngSource source{bytes, size, 0, {}};
  int64_t height = 0, width = 0;
  if (!decode(source, out.pixels, rows, height, width)) throw ImageError(name + ": PNG: " + source.message);
  out.full_height = out.height = height;
  out.full_width = out.width = width;
  out.origin_y = out.origin_x = 0;
  out.scale = 1;
}

}  // namespace horo::data
