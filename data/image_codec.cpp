#include "data/image_codec.h"

#include <algorithm>
#include <fstream>

namespace horo::data {

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Png: return "PNG";
    default: return "unknown";
  }
}

ImageFormat sniff_image_format(const uint8_t* bytes, size_t size) {
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) return ImageFormat::Jpeg;
  if (size >= 8 && std::equal(kPng, kPng + 8, bytes)) return ImageFormat::Png;
  return ImageFormat::Unknown;
}

namespace {

uint32_t big_endian(const uint8_t* p, int bytes) {
  uint32_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | p[i];
  return v;
}

// The frame header (SOFn) of a JPEG: walks the marker segments without decoding anything.
ImageInfo jpeg_info(const uint8_t* bytes, size_t size, const std::string& name) {
  size_t at = 2;
  while (at + 4 <= size) {
    if (bytes[at] != 0xFF) throw ImageError(name + ": JPEG: no marker where one belongs (byte " + std::to_string(at) + ")");
    const uint8_t marker = bytes[at + 1];
    if (marker == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length
      at += 2;
      continue;
    }
    const size_t length = big_endian(bytes + at + 2, 2);
    const bool frame = marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
    if (frame) {
      if (at + 9 > size || length < 7) break;
      ImageInfo info{ImageFormat::Jpeg, big_endian(bytes + at + 5, 2), big_endian(bytes + at + 7, 2)};
      if (info.height == 0 || info.width == 0) throw ImageError(name + ": JPEG: the frame header gives a size of 0");
      return info;
    }
    if (marker == 0xDA || marker == 0xD9) break;  // scan data or end before any frame header
    at += 2 + length;
  }
  throw ImageError(name + ": JPEG: no frame header (the file is truncated or not a JPEG)");
}

ImageInfo png_info(const uint8_t* bytes, size_t size, const std::string& name) {
  if (size < 24 || std::string(reinterpret_cast<const char*>(bytes + 12), 4) != "IHDR")
    throw ImageError(name + ": PNG: no IHDR chunk (the file is truncated or not a PNG)");
  ImageInfo info{ImageFormat::Png, big_endian(bytes + 20, 4), big_endian(bytes + 16, 4)};
  if (info.height == 0 || info.width == 0 || info.height > (1 << 30) || info.width > (1 << 30))
    throw ImageError(name + ": PNG: the header gives a size of " + std::to_string(info.width) + " x " + std::to_string(info.height));
  return info;
}

}  // namespace

ImageInfo read_image_info(const uint8_t* bytes, size_t size, const std::string& name) {
  switch (sniff_image_format(bytes, size)) {
    case ImageFormat::Jpeg: return jpeg_info(bytes, size, name);
    case ImageFormat::Png: return png_info(bytes, size, name);
    default: throw ImageError(name + ": not a JPEG or PNG file (" + std::to_string(size) + " bytes, no image signature)");
  }
}

void decode_image(const uint8_t* bytes, size_t size, const std::string& name, const DecodeOptions& options, RgbImage& out) {
  switch (sniff_image_format(bytes, size)) {
    case ImageFormat::Jpeg: return decode_jpeg(bytes, size, name, options, out);
    case ImageFormat::Png: return decode_png(bytes, size, name, out);
    default: throw ImageError(name + ": not a JPEG or PNG file (" + std::to_string(size) + " bytes, no image signature)");
  }
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  HORO_CHECK(in.good(), IOError, path, ": cannot open");
  const std::streamoff size = in.tellg();
  HORO_CHECK(size >= 0, IOError, path, ": cannot tell its size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  HORO_CHECK(in.read(reinterpret_cast<char*>(bytes.data()), size).good() || size == 0, IOError, path, ": read failed");
  return bytes;
}

}  // namespace horo::data
