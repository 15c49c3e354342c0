// JPEG through libjpeg-turbo's libjpeg API: it decodes a region (jpeg_crop_scanline and
// jpeg_skip_scanlines) at a DCT-scaled size, and tells CMYK and YCCK files apart, which
// TurboJPEG 2.1's API (Debian 12) cannot do for a region.
//
// libjpeg reports errors by longjmp: the function that calls setjmp holds no C++ object whose
// destructor a jump would skip; it returns false with the message and its caller throws.
#include <algorithm>
#include <csetjmp>
#include <cstddef>
#include <cstdio>  // before jpeglib.h, which uses FILE and size_t
#include <cstring>

#include <jerror.h>
#include <jpeglib.h>

#include "data/image_codec.h"

namespace horo::data {

namespace {

struct JpegErrors {
  jpeg_error_mgr manager;  // first: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

// libjpeg only warns about a file that ends early and fills the rest with grey; PIL refuses such a
// file ("image file is truncated"), and so does horo. Other warnings (extraneous bytes) pass, as in PIL.
void on_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
    (*cinfo->err->format_message)(cinfo, errors->message);
    std::strncat(errors->message, " (the file is truncated)", sizeof errors->message - std::strlen(errors->message) - 1);
    std::longjmp(errors->jump, 1);
  }
}

// PIL's CMYK -> RGB (libImaging/Convert.c) on Adobe-inverted samples: ink = 255 - stored.
inline uint8_t muldiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}
void cmyk_row_to_rgb(const uint8_t* cmyk, int64_t width, uint8_t* rgb) {
  for (int64_t i = 0; i < width; ++i) {
    const int not_black = cmyk[4 * i + 3];  // 255 - (255 - stored K)
    for (int c = 0; c < 3; ++c) {
      const int ink = 255 - cmyk[4 * i + c];
      rgb[3 * i + c] = static_cast<uint8_t>(std::clamp(not_black - muldiv255(ink, not_black), 0, 255));
    }
  }
}

int choose_scale(const jpeg_decompress_struct& cinfo, const PixelBox& region, const DecodeOptions& o) {
  if (o.min_height <= 0 && o.min_width <= 0) return 1;
  (void)cinfo;
  for (int d : {8, 4, 2}) {
    if (region.height / d >= o.min_height && region.width / d >= o.min_width) return d;
  }
  return 1;
}

// The setjmp frame. `image` and `row` live in the caller; their buffers are resized here before any
// pixel is written. Returns false with errors.message set.
bool decode(const uint8_t* bytes, size_t size, const DecodeOptions& o, RgbImage& image, std::vector<uint8_t>& row,
            JpegErrors& errors) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&errors.manager);
  errors.manager.error_exit = on_error;
  errors.manager.emit_message = on_message;
  errors.message[0] = '\0';
  if (setjmp(errors.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  const int64_t full_h = cinfo.image_height, full_w = cinfo.image_width;
  if (full_h * full_w > kMaxImagePixels) {
    std::snprintf(errors.message, sizeof errors.message, "%lld x %lld pixels exceed the limit of %lld",
                  static_cast<long long>(full_w), static_cast<long long>(full_h), static_cast<long long>(kMaxImagePixels));
    jpeg_destroy_decompress(&cinfo);
    return false;
  }
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:
    case JCS_RGB: cinfo.out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; break;
    default:
      std::snprintf(errors.message, sizeof errors.message, "unsupported JPEG colour space %d", static_cast<int>(cinfo.jpeg_color_space));
      jpeg_destroy_decompress(&cinfo);
      return false;
  }
  PixelBox region = o.region;
  if (region.height <= 0 || region.width <= 0) region = {0, 0, full_h, full_w};
  region.y = std::clamp<int64_t>(region.y, 0, full_h - 1);
  region.x = std::clamp<int64_t>(region.x, 0, full_w - 1);
  region.height = std::clamp<int64_t>(region.height, 1, full_h - region.y);
  region.width = std::clamp<int64_t>(region.width, 1, full_w - region.x);
  const int scale = choose_scale(cinfo, region, o);
  cinfo.scale_num = 1;
  cinfo.scale_denom = static_cast<unsigned>(scale);
  cinfo.dct_method = JDCT_ISLOW;  // PIL's default: the same pixels
  jpeg_start_decompress(&cinfo);
  // The region in scaled rows and columns (rounded outwards).
  const int64_t out_h = cinfo.output_height, out_w = cinfo.output_width;
  const int64_t y0 = region.y / scale, y1 = std::min(out_h, (region.y + region.height + scale - 1) / scale);
  // Columns one wider on each side: libjpeg upsamples a cropped region's edge columns as if they
  // were the image's edges, so those are decoded and dropped.
  const int64_t want_x0 = std::max<int64_t>(0, region.x / scale - 1);
  const int64_t want_x1 = std::min(out_w, (region.x + region.width + scale - 1) / scale + 1);
  JDIMENSION x0 = static_cast<JDIMENSION>(want_x0), width = static_cast<JDIMENSION>(want_x1 - want_x0);
  if (want_x0 > 0 || want_x1 < out_w) jpeg_crop_scanline(&cinfo, &x0, &width);  // widened to whole blocks
  const int64_t drop_left = x0 > 0 ? 1 : 0, drop_right = static_cast<int64_t>(x0 + width) < out_w ? 1 : 0;
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  const bool cmyk = cinfo.out_color_space == JCS_CMYK;
  const int64_t rows = y1 - y0, decoded = cinfo.output_width, cols = decoded - drop_left - drop_right;
  const int64_t components = cmyk ? 4 : 3;
  std::vector<uint8_t>& out = image.pixels;
  out.resize(static_cast<size_t>(rows * cols * 3));
  row.resize(static_cast<size_t>(decoded * components));
  for (int64_t r = 0; r < rows; ++r) {
    JSAMPROW target = row.data();
    if (jpeg_read_scanlines(&cinfo, &target, 1) != 1) {
      std::snprintf(errors.message, sizeof errors.message, "no scanline %lld", static_cast<long long>(y0 + r));
      jpeg_destroy_decompress(&cinfo);
      return false;
    }
    const uint8_t* first = row.data() + drop_left * components;
    if (cmyk) cmyk_row_to_rgb(first, cols, out.data() + r * cols * 3);
    else std::memcpy(out.data() + r * cols * 3, first, static_cast<size_t>(cols * 3));
  }
  // Reading to the end checks the rest of the file (a truncated file fails here too).
  if (y1 == out_h) jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  image.full_height = full_h;
  image.full_width = full_w;
  image.height = rows;
  image.width = cols;
  image.origin_y = y0 * scale;
  image.origin_x = (static_cast<int64_t>(x0) + drop_left) * scale;
  image.scale = scale;
  return true;
}

}  // namespace

void decode_jpeg(const uint8_t* bytes, size_t size, const std::string& name, const DecodeOptions& options, RgbImage& out) {
  thread_local std::vector<uint8_t> row;
  JpegErrors errors;
  if (!decode(bytes, size, options, out, row, errors)) throw ImageError(name + ": JPEG: " + errors.message);
}

}  // namespace horo::data
